/*
 * pre_tokenizers.c — tokenizer.json's `pre_tokenizer`: Split (a PCRE2 regex with HF's five
 * split behaviours), ByteLevel (GPT-2's byte-to-char map and its optional split regex),
 * Metaspace, Punctuation, Digits, Whitespace, WhitespaceSplit and Sequence.  Each step turns a
 * piece list into a finer one.
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tokenizer_add_pre(Loader *L, const char *field, PreStep *st) {
    Tokenizer *t = L->t;
    PreStep *v = realloc(t->pre, (t->n_pre + 1) * sizeof *v);
    if (!v) {
        if (st->re) pcre2_code_free(st->re);
        return tokenizer_load_fail(L, field, "out of memory");
    }
    t->pre = v;
    t->pre[t->n_pre++] = *st;
    return 0;
}

static int tokenizer_parse_behavior(Loader *L, const cJSON *o, const char *field, int dflt, int *out) {
    const char *b = tok_json_str(o, "behavior");
    if (!b) {
        *out = dflt;
        return 0;
    }
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(b, names[i])) {
            *out = i;
            return 0;
        }
    return tokenizer_load_fail(L, field, "unknown split behavior \"%s\"", b);
}

int tokenizer_load_pre(Loader *L, const cJSON *p, const char *field) {
    const char *type;
    if (tokenizer_load_type(L, p, field, "pretokenizers", tokenizer_load_pre, &type)) return -1;
    if (!type) return 0;   /* a Sequence, loaded */
    PreStep st;
    memset(&st, 0, sizeof st);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        if (!pat) return tokenizer_load_fail(L, field, "Split without \"pattern\"");
        st.kind = PRE_SPLIT;
        if (tokenizer_parse_behavior(L, p, field, SPLIT_REMOVED, &st.behavior)) return -1;
        st.invert = tok_json_bool(p, "invert", 0);
        if (!(st.re = tokenizer_load_pattern(L, pat, field, NULL, NULL))) return -1;
    } else if (!strcmp(type, "ByteLevel")) {
        st.kind = PRE_BYTELEVEL;
        st.add_prefix_space = tok_json_bool(p, "add_prefix_space", 1);
        st.use_regex = tok_json_bool(p, "use_regex", 1);
    } else if (!strcmp(type, "Metaspace")) {
        st.kind = PRE_METASPACE;
        const char *r = tok_json_str(p, "replacement");
        if (!r || !*r) return tokenizer_load_fail(L, field, "Metaspace without \"replacement\"");
        st.repl_len = tok_utf8_len((unsigned char)r[0]);
        if (st.repl_len > strlen(r)) return tokenizer_load_fail(L, field, "bad Metaspace replacement");
        if (tokenizer_check_utf8(L, field, "Metaspace \"replacement\"", r, st.repl_len)) return -1;
        st.repl = tokenizer_dup(L, r, st.repl_len);
        if (!st.repl) return tokenizer_load_fail(L, field, "out of memory");
        const char *scheme = tok_json_str(p, "prepend_scheme");
        if (scheme) {
            if (!strcmp(scheme, "always")) st.scheme = SCHEME_ALWAYS;
            else if (!strcmp(scheme, "first")) st.scheme = SCHEME_FIRST;
            else if (!strcmp(scheme, "never")) st.scheme = SCHEME_NEVER;
            else return tokenizer_load_fail(L, field, "unknown prepend_scheme \"%s\"", scheme);
        } else {
            st.scheme = tok_json_bool(p, "add_prefix_space", 1) ? SCHEME_ALWAYS : SCHEME_NEVER;
        }
        st.split = tok_json_bool(p, "split", 1);
        st.re = tokenizer_compile_regex(L, field, st.repl, st.repl_len, PCRE2_LITERAL);
        if (!st.re) return -1;
    } else if (!strcmp(type, "Punctuation")) {
        /* Rust: char::is_ascii_punctuation || Unicode punctuation; one match per char. */
        static const char re[] = "[\\p{P}!-/:-@\\[-`{-~]";
        st.kind = PRE_SPLIT;
        if (tokenizer_parse_behavior(L, p, field, SPLIT_ISOLATED, &st.behavior)) return -1;
        if (!(st.re = tokenizer_compile_regex(L, field, re, sizeof re - 1, 0))) return -1;
    } else if (!strcmp(type, "Digits")) {
        static const char re[] = "\\p{N}";
        st.kind = PRE_SPLIT;
        st.behavior = tok_json_bool(p, "individual_digits", 0) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        if (!(st.re = tokenizer_compile_regex(L, field, re, sizeof re - 1, 0))) return -1;
    } else if (!strcmp(type, "Whitespace")) {
        static const char re[] = "\\w+|[^\\w\\s]+";
        st.kind = PRE_SPLIT;
        st.behavior = SPLIT_REMOVED;
        st.invert = 1;
        if (!(st.re = tokenizer_compile_regex(L, field, re, sizeof re - 1, 0))) return -1;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        static const char re[] = "\\s";
        st.kind = PRE_SPLIT;
        st.behavior = SPLIT_REMOVED;
        if (!(st.re = tokenizer_compile_regex(L, field, re, sizeof re - 1, 0))) return -1;
    } else {
        return tokenizer_load_fail(L, field, "unsupported pre_tokenizer type \"%s\"", type);
    }
    return tokenizer_add_pre(L, field, &st);
}

/* GPT-2 byte <-> unicode mapping: printable Latin-1 bytes map to themselves, the other 68
 * bytes to U+0100.. in byte order. */
void tokenizer_init_bytemap(Tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 324; i++) t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp;
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = (uint32_t)b;
        else cp = 256u + (uint32_t)n++;
        char tmp[4];
        size_t k = tok_utf8_encode(cp, tmp);
        memcpy(t->byte_char[b], tmp, k);
        t->byte_char_len[b] = (uint8_t)k;
        t->char_byte[cp] = (int16_t)b;
    }
}

static int tok_ctx_push_seg(EncodeCtx *c, size_t s, size_t e, int m) {
    Seg *p = lcb_grow(c->segs, c->segs_n, &c->segs_cap, sizeof *p, 64);
    if (!p) return -1;
    c->segs = p;
    c->segs[c->segs_n++] = (Seg){s, e, m};
    return 0;
}

/* All matches of re in s as segments covering s (matched and not), like HF find_matches. */
static int tokenizer_find_segments(EncodeCtx *c, const pcre2_code *re, const char *s, size_t n) {
    c->segs_n = 0;
    size_t prev = 0, pos = 0;
    while (pos <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return tokenizer_regex_why(c->why, rc, "pre_tokenizer split");
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (prev != ms && tok_ctx_push_seg(c, prev, ms, 0)) return -1;
        if (tok_ctx_push_seg(c, ms, me, 1)) return -1;
        prev = me;
        if (me == ms) { /* empty match: step one character */
            if (me >= n) break;
            pos = me + tok_utf8_len((unsigned char)s[me]);
        } else {
            pos = me;
        }
    }
    if (prev != n && tok_ctx_push_seg(c, prev, n, 0)) return -1;
    return 0;
}

/* HF NormalizedString::split: segments of s by re with a delimiter behavior, into out. */
static int tokenizer_split_regex(EncodeCtx *c, const pcre2_code *re, int behavior, int invert,
                                 const char *s, size_t n, int origin, PieceList *out) {
    if (tokenizer_find_segments(c, re, s, n)) return -1;
    Seg *g = c->segs;
    size_t m = c->segs_n, k = 0; /* k: segments kept so far, compacted in place */
    if (invert)
        for (size_t i = 0; i < m; i++) g[i].is_match = !g[i].is_match;
    switch (behavior) {
    case SPLIT_REMOVED:
        for (size_t i = 0; i < m; i++)
            if (!g[i].is_match) g[k++] = g[i];
        break;
    case SPLIT_ISOLATED:
        k = m;
        break;
    case SPLIT_MERGED_PREV: {
        int prev_match = 0;
        for (size_t i = 0; i < m; i++) {
            Seg sg = g[i];
            if (sg.is_match && !prev_match && k > 0) g[k - 1].end = sg.end;
            else g[k++] = sg;
            prev_match = sg.is_match;
        }
        break;
    }
    case SPLIT_MERGED_NEXT: {
        /* walk backwards, keeping the result at the end of the array */
        int prev_match = 0;
        size_t w = m; /* result occupies g[w..m) */
        for (size_t i = m; i-- > 0;) {
            Seg sg = g[i];
            if (sg.is_match && !prev_match && w < m) g[w].start = sg.start;
            else g[--w] = sg;
            prev_match = sg.is_match;
        }
        memmove(g, g + w, (m - w) * sizeof *g);
        k = m - w;
        break;
    }
    case SPLIT_CONTIGUOUS: {
        int prev_match = 0;
        for (size_t i = 0; i < m; i++) {
            Seg sg = g[i];
            if (sg.is_match == prev_match && k > 0) g[k - 1].end = sg.end;
            else g[k++] = sg;
            prev_match = sg.is_match;
        }
        break;
    }
    }
    for (size_t i = 0; i < k; i++)
        if (tok_plist_add_text(out, s + g[i].start, g[i].end - g[i].start, origin && g[i].start == 0)) return -1;
    return 0;
}

/* One pre-tokenizer step on every text piece of in, into out. */
int tokenizer_pre_step(const Tokenizer *t, EncodeCtx *c, const PreStep *st, const PieceList *in,
                       PieceList *out) {
    tok_plist_reset(out);
    for (size_t pi = 0; pi < in->n; pi++) {
        const Piece *p = &in->v[pi];
        if (p->id >= 0) {
            if (tok_plist_add_token(out, p->id)) return -1;
            continue;
        }
        const char *s = in->text.p + p->off;
        size_t n = p->len;
        if (st->kind == PRE_SPLIT) {
            if (tokenizer_split_regex(c, st->re, st->behavior, st->invert, s, n, p->origin, out)) return -1;
        } else if (st->kind == PRE_BYTELEVEL) {
            Buf *w = &c->word;
            tok_buf_clear(w);
            if (st->add_prefix_space && s[0] != ' ' && tok_buf_put(w, " ", 1)) return -1;
            if (tok_buf_put(w, s, n)) return -1;
            tok_plist_reset(&c->tmp);
            if (st->use_regex) {
                if (tokenizer_split_regex(c, t->re_gpt2, SPLIT_ISOLATED, 0, w->p, w->n, p->origin, &c->tmp)) return -1;
            } else if (tok_plist_add_text(&c->tmp, w->p, w->n, p->origin)) {
                return -1;
            }
            for (size_t k = 0; k < c->tmp.n; k++) {
                const Piece *q = &c->tmp.v[k];
                if (tok_plist_grow(out)) return -1;
                size_t off = out->text.n;
                if (tok_buf_reserve(&out->text, 2 * q->len)) return -1;
                char *d = out->text.p + off;
                for (size_t j = 0; j < q->len; j++) {
                    unsigned char b = (unsigned char)c->tmp.text.p[q->off + j];
                    memcpy(d, t->byte_char[b], t->byte_char_len[b]);
                    d += t->byte_char_len[b];
                }
                out->text.n = (size_t)(d - out->text.p);
                out->text.p[out->text.n] = 0;
                out->v[out->n++] = (Piece){off, out->text.n - off, -1, q->origin};
            }
        } else { /* PRE_METASPACE */
            Buf *w = &c->word;
            tok_buf_clear(w);
            int starts = n >= st->repl_len && memcmp(s, st->repl, st->repl_len) == 0;
            int starts_space = n > 0 && s[0] == ' ';
            if (!starts && !starts_space &&
                (st->scheme == SCHEME_ALWAYS || (st->scheme == SCHEME_FIRST && p->origin)) &&
                tok_buf_put(w, st->repl, st->repl_len))
                return -1;
            for (size_t j = 0; j < n; j++) {
                if (s[j] == ' ') {
                    if (tok_buf_put(w, st->repl, st->repl_len)) return -1;
                } else if (tok_buf_put(w, s + j, 1)) {
                    return -1;
                }
            }
            if (st->split) {
                if (tokenizer_split_regex(c, st->re, SPLIT_MERGED_NEXT, 0, w->p, w->n, p->origin, out)) return -1;
            } else if (tok_plist_add_text(out, w->p, w->n, p->origin)) {
                return -1;
            }
        }
    }
    return 0;
}
