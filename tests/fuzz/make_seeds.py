#!/usr/bin/env python3
"""make_seeds.py — regenerate the small seed corpora of tests/fuzz/corpus/ from the fixtures.

Seeds must be small (libFuzzer mutates and re-parses them thousands of times a second), so the
real tokenizer.json / safetensors / config files are trimmed, not copied:
  tokenizer: first N vocab entries, the merges that only use kept tokens, added tokens renumbered
             after the kept vocab (post-processor ids follow);
  safetensors: tiny files of every dtype, plus the smallest fixture tensor set re-packed;
  config: every fixture config.json / config_legacy.json as is (they are < 2 KB);
  tokens: u16/u32/ids/jsonl snippets behind the one-byte format selector fuzz_tokens reads.
Run from the repository root: python3 tests/fuzz/make_seeds.py
"""
import json, os, struct, glob

OUT = "tests/fuzz/corpus"

def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# ---------------------------------------------------------------- tokenizer
def trim_tokenizer(path, keep, max_merges=150):
    j = json.load(open(path, encoding="utf-8"))
    m = j["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < keep}
    merges = []
    for mg in m["merges"]:
        a, b = mg if isinstance(mg, list) else mg.split(" ", 1)
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append(mg)
        if len(merges) >= max_merges:
            break
    m["vocab"], m["merges"] = vocab, merges
    remap, added = {}, []
    for i, at in enumerate(j.get("added_tokens") or []):
        if at["id"] < keep:
            added.append(at)
        elif len(added) < 8:
            remap[at["id"]] = keep + len(remap)
            at["id"] = remap[at["id"]]
            added.append(at)
    j["added_tokens"] = added
    def fix(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "ids" and isinstance(v, list):
                    x[k] = [remap.get(i, i) for i in v]
                else:
                    fix(v)
        elif isinstance(x, list):
            for v in x:
                fix(v)
    fix(j.get("post_processor"))
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))

put("tokenizer", "mistral_trim.json", trim_tokenizer("tests/fixtures/tokenizer/mistral_tokenizer.json", 400))
put("tokenizer", "llama3_trim.json", trim_tokenizer("tests/fixtures/tokenizer/llama3_tokenizer.json", 300))
mods = sorted(glob.glob("models/*/tokenizer.json"))
if mods:
    put("tokenizer", "lcb_trim.json", trim_tokenizer(mods[0], 300))
# the hand-made tokenizers of tests/test_tokenizer.c (misc normalizers / pre-tokenizers / Roberta)
put("tokenizer", "tiny_misc.json", json.dumps({
    "added_tokens": [
        {"id": 1, "content": "<cls>", "special": True, "normalized": False},
        {"id": 2, "content": "<sep>", "special": True, "normalized": False},
        {"id": 11, "content": "[MASK]", "special": True, "normalized": False, "lstrip": True},
        {"id": 12, "content": "WOW", "special": False, "normalized": True, "single_word": True}],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "Lowercase"},
        {"type": "Replace", "pattern": {"Regex": "\\d"}, "content": "#"}, {"type": "NFC"}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Digits", "individual_digits": True},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]},
    "post_processor": {"type": "RobertaProcessing", "sep": ["<sep>", 2], "cls": ["<cls>", 1],
                       "trim_offsets": True, "add_prefix_space": False},
    "decoder": None,
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True,
              "vocab": {"<unk>": 0, "<cls>": 1, "<sep>": 2, "h": 3, "e": 4, "y": 5, "he": 6, "hey": 7,
                        "!": 8, ",": 9, "#": 10},
              "merges": ["h e", "he y"]}}))

# ---------------------------------------------------------------- safetensors
def st_file(tensors, meta=None, pad=0):
    hdr, data = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + data

put("safetensors", "f32.safetensors", st_file([("w", "F32", [2, 3], struct.pack("<6f", *range(6)))], {"format": "pt"}))
put("safetensors", "mixed.safetensors", st_file([
    ("a", "F16", [4], struct.pack("<4H", 0x3c00, 0x0001, 0x7c00, 0xfc01)),
    ("b", "BF16", [2, 2], struct.pack("<4H", 0x3f80, 0x8000, 0x7f80, 0x0001)),
    ("c", "F64", [1], struct.pack("<d", 2.5)),
    ("d", "I64", [2], struct.pack("<2q", -1, 7)),
    ("e", "U8", [0], b""), ("f", "BOOL", [1, 1, 1], b"\x01"),
    ("g", "I32", [1], struct.pack("<i", 3)), ("h", "I16", [1], b"\x01\x00"), ("i", "I8", [1], b"\xff")], pad=5))
put("safetensors", "empty.safetensors", st_file([]))
# the first tensors of the smallest fixture checkpoint (a real header: long names, 2-D shapes)
fx = min(glob.glob("tests/fixtures/*/model.safetensors"), key=os.path.getsize)
raw = open(fx, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = {k: v for k, v in json.loads(raw[8:8 + n]).items() if k != "__metadata__"}
small = [(k, v) for k, v in hdr.items() if v["data_offsets"][1] - v["data_offsets"][0] < 1024][:12]
put("safetensors", "fixture_head.safetensors",
    st_file([(k, v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in small]))

# ---------------------------------------------------------------- config
for p in sorted(glob.glob("tests/fixtures/*/config*.json")):
    d = p.split("/")[-2]
    put("config", d + "_" + os.path.basename(p), open(p, "rb").read())
for p in sorted(glob.glob("models/*/config.json"))[:2]:
    put("config", "model_" + p.split("/")[-2] + ".json", open(p, "rb").read())

# ---------------------------------------------------------------- tokens
# first byte selects the reader: 0 u16, 1 u32, 2 ids text, 3 jsonl (text field), 4 text
put("tokens", "u16.bin", b"\x00" + struct.pack("<8H", 1, 2, 3, 500, 65535, 0, 7, 9))
put("tokens", "u32.bin", b"\x01" + struct.pack("<4I", 1, 2, 0x7fffffff, 0x80000000))
put("tokens", "ids.txt", b"\x02" + b"1 2 3\n  40\t5 99999999999\n")
put("tokens", "docs.jsonl", b"\x03" + b'{"text": "hello world"}\n\n{"text": "caf\\u00e9 \\ud83d\\ude00"}\n{"other": 1}\n')
put("tokens", "doc.txt", b"\x04" + "Call me Ishmael. Some years ago\u2014never mind how long.\n".encode())
