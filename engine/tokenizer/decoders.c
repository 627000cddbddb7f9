/*
 * decoders.c — tokenizer.json's `decoder`: Replace, ByteFallback, Fuse, Strip, Metaspace,
 * ByteLevel, BPEDecoder and Sequence, applied to the list of token strings of the ids; and
 * tokenizer_decode, which builds that list (added tokens in their normalized form, specials
 * dropped on request) and joins the result.
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tokenizer_load_decoder(Loader *L, const cJSON *d, const char *field) {
    Tokenizer *t = L->t;
    if (!d || cJSON_IsNull(d)) return 0;
    t->has_decoder = 1;
    const char *type;
    if (tokenizer_load_type(L, d, field, "decoders", tokenizer_load_decoder, &type)) return -1;
    if (!type) return 0;   /* a Sequence, loaded */
    DecStep st;
    memset(&st, 0, sizeof st);
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(d, "pattern");
        const char *s = pat ? tok_json_str(pat, "String") : NULL;
        const char *c = tok_json_str(d, "content");
        if (!s || !c || !*s)
            return tokenizer_load_fail(L, field, "Replace decoder needs a non-empty {\"String\"} pattern and \"content\"");
        st.kind = DEC_REPLACE;
        st.alen = strlen(s);
        st.blen = strlen(c);
        st.a = tokenizer_dup(L, s, st.alen);
        st.b = tokenizer_dup(L, c, st.blen);
        if (!st.a || !st.b) return tokenizer_load_fail(L, field, "out of memory");
    } else if (!strcmp(type, "ByteFallback")) {
        st.kind = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        st.kind = DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        const char *c = tok_json_str(d, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!c || !*c || !cJSON_IsNumber(a) || !cJSON_IsNumber(b))
            return tokenizer_load_fail(L, field, "Strip decoder needs \"content\", \"start\", \"stop\"");
        st.kind = DEC_STRIP;
        uint32_t cp = 0;
        if (tok_utf8_step((const unsigned char *)c, strlen(c), 0, &cp) < 0)
            return tokenizer_load_fail(L, field, "bad Strip content");
        st.content = cp;
        st.start = a->valueint;
        st.stop = b->valueint;
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = tok_json_str(d, "replacement");
        if (!r || !*r) return tokenizer_load_fail(L, field, "Metaspace without \"replacement\"");
        st.kind = DEC_METASPACE;
        st.repl_len = tok_utf8_len((unsigned char)r[0]);
        if (st.repl_len > strlen(r)) return tokenizer_load_fail(L, field, "bad Metaspace replacement");
        if (!(st.repl = tokenizer_dup(L, r, st.repl_len))) return tokenizer_load_fail(L, field, "out of memory");
        const char *scheme = tok_json_str(d, "prepend_scheme");
        if (scheme) st.prepend = strcmp(scheme, "never") != 0;
        else st.prepend = tok_json_bool(d, "add_prefix_space", 1);
    } else if (!strcmp(type, "ByteLevel")) {
        st.kind = DEC_BYTELEVEL;
    } else if (!strcmp(type, "BPEDecoder")) {
        const char *sfx = tok_json_str(d, "suffix");
        if (!sfx) sfx = "</w>";
        st.kind = DEC_BPE;
        st.alen = strlen(sfx);
        if (!(st.a = tokenizer_dup(L, sfx, st.alen))) return tokenizer_load_fail(L, field, "out of memory");
    } else {
        return tokenizer_load_fail(L, field, "unsupported decoder type \"%s\"", type);
    }
    DecStep *v = realloc(t->dec, (t->n_dec + 1) * sizeof *v);
    if (!v) return tokenizer_load_fail(L, field, "out of memory");
    t->dec = v;
    t->dec[t->n_dec++] = st;
    return 0;
}

static int toklist_add(TokList *l, const char *s, size_t n) {
    if (l->n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *q = realloc(l->len, cap * sizeof *q);
        if (!q) return -1;
        l->len = q;
        l->cap = cap;
    }
    size_t off = l->data.n;
    if (tok_buf_put(&l->data, s, n)) return -1;
    l->off[l->n] = off;
    l->len[l->n] = n;
    l->n++;
    return 0;
}

/* Empties the list (keeps its memory). */
static void toklist_reset(TokList *l) {
    l->n = 0;
    tok_buf_clear(&l->data);
}

static void toklist_free(TokList *l) {
    tok_buf_free(&l->data);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

/* Byte of a "<0xNN>" token, or -1. */
static int tokenizer_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Flushes pending fallback bytes: the string if valid UTF-8, else one U+FFFD per byte. */
static int tokenizer_flush_bytes(TokList *out, Buf *bytes) {
    if (bytes->n == 0) return 0;
    int r = 0;
    if (tok_utf8_check(bytes->p, bytes->n) == bytes->n) {
        r = toklist_add(out, bytes->p, bytes->n);
    } else {
        for (size_t i = 0; i < bytes->n && !r; i++) r = toklist_add(out, "\xEF\xBF\xBD", 3);
    }
    tok_buf_clear(bytes);
    return r;
}

/* One decoder step; -2 when a Replace makes the tokens longer than cap bytes in all. */
static int tokenizer_dec_step(const Tokenizer *t, const DecStep *st, const TokList *in, TokList *out, Buf *tmp,
                              size_t cap) {
    toklist_reset(out);
    tok_buf_clear(tmp);
    switch (st->kind) {
    case DEC_REPLACE:
    case DEC_BPE: /* BPEDecoder: suffix -> " ", or "" in the last token */
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            size_t n = in->len[i], j = 0;
            const char *rep = st->b;
            size_t rlen = st->blen;
            if (st->kind == DEC_BPE) {
                rep = i + 1 == in->n ? "" : " ";
                rlen = i + 1 == in->n ? 0 : 1;
            }
            tok_buf_clear(tmp);
            while (st->alen && j < n) {
                const char *hit = n - j >= st->alen ? memmem(s + j, n - j, st->a, st->alen) : NULL;
                if (!hit) break;
                size_t h = (size_t)(hit - s);
                if (tok_buf_put(tmp, s + j, h - j) || tok_buf_put(tmp, rep, rlen)) return -1;
                if (out->data.n + tmp->n > cap) return -2;
                j = h + st->alen;
            }
            if (tok_buf_put(tmp, s + j, n - j) || toklist_add(out, tmp->p, tmp->n)) return -1;
            if (out->data.n > cap) return -2;
        }
        return 0;
    case DEC_BYTEFALLBACK:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            int b = tokenizer_byte_token(s, in->len[i]);
            if (b >= 0) {
                unsigned char ub = (unsigned char)b;
                if (tok_buf_put(tmp, &ub, 1)) return -1;
                continue;
            }
            if (tokenizer_flush_bytes(out, tmp) || toklist_add(out, s, in->len[i])) return -1;
        }
        return tokenizer_flush_bytes(out, tmp);
    case DEC_FUSE:
        for (size_t i = 0; i < in->n; i++)
            if (tok_buf_put(tmp, in->data.p + in->off[i], in->len[i])) return -1;
        return toklist_add(out, tmp->p ? tmp->p : "", tmp->n);
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            size_t n = in->len[i], a = 0, b = n;
            uint32_t cp;
            for (int k = 0; k < st->start && a < n; k++) {
                int l = tok_utf8_step((const unsigned char *)s, n, a, &cp);
                if (l < 0 || cp != st->content) break;
                a += (size_t)l;
            }
            for (int k = 0; k < st->stop && b > a; k++) {
                size_t q = b - 1;
                while (q > a && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                int l = tok_utf8_step((const unsigned char *)s, b, q, &cp);
                if (l < 0 || cp != st->content) break;
                b = q;
            }
            if (toklist_add(out, s + a, b - a)) return -1;
        }
        return 0;
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            size_t n = in->len[i];
            tok_buf_clear(tmp);
            for (size_t j = 0; j < n;) {
                if (n - j >= st->repl_len && memcmp(s + j, st->repl, st->repl_len) == 0) {
                    if (!(i == 0 && st->prepend) && tok_buf_put(tmp, " ", 1)) return -1;
                    j += st->repl_len;
                } else {
                    if (tok_buf_put(tmp, s + j, 1)) return -1;
                    j++;
                }
            }
            if (toklist_add(out, tmp->p ? tmp->p : "", tmp->n)) return -1;
        }
        return 0;
    case DEC_BYTELEVEL: {
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            size_t n = in->len[i], start = tmp->n;
            int ok = 1;
            for (size_t j = 0; j < n;) {
                uint32_t cp;
                int l = tok_utf8_step((const unsigned char *)s, n, j, &cp);
                if (l < 0 || cp >= 324 || t->char_byte[cp] < 0) {
                    ok = 0;
                    break;
                }
                unsigned char b = (unsigned char)t->char_byte[cp];
                if (tok_buf_put(tmp, &b, 1)) return -1;
                j += (size_t)l;
            }
            if (!ok) { /* a char outside the byte map: the token's raw bytes */
                tmp->n = start;
                if (tok_buf_put(tmp, s, n)) return -1;
            }
        }
        Buf lossy = {0};
        if (tok_utf8_put_lossy(&lossy, tmp->p ? tmp->p : "", tmp->n) ||
            toklist_add(out, lossy.p ? lossy.p : "", lossy.n)) {
            tok_buf_free(&lossy);
            return -1;
        }
        tok_buf_free(&lossy);
        return 0;
    }
    }
    return 0;
}

int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, char **text,
                     size_t *len, char *err, size_t errlen) {
    if (!t || !text || !len || (!ids && n_ids)) {
        tokenizer_set_error(err, errlen, "tokenizer_decode: NULL argument");
        return -1;
    }
    *text = NULL;
    *len = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n_ids || !t->id_tok[id]) {
            tokenizer_set_error(err, errlen, "tokenizer %s: decode: id %d (position %zu) is not in the vocabulary (size %zu)",
                                t->path, id, i, t->n_ids);
            return -1;
        }
    }
    TokList a = {0}, b = {0};
    Buf tmp = {0}, out = {0};
    int rc = -1;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (skip_special && t->id_skip[id]) continue;
        if (toklist_add(&a, t->id_tok[id], t->id_tok_len[id])) goto oom;
    }
    if (!t->has_decoder) {
        for (size_t i = 0; i < a.n; i++)
            if ((i && tok_buf_put(&out, " ", 1)) || tok_buf_put(&out, a.data.p + a.off[i], a.len[i])) goto oom;
    } else {
        TokList *cur = &a, *nxt = &b;
        const size_t cap = tokenizer_growth_cap(a.data.n);
        for (size_t si = 0; si < t->n_dec; si++) {
            int r = tokenizer_dec_step(t, &t->dec[si], cur, nxt, &tmp, cap);
            if (r == -2) {
                char why[TOK_WHY];
                tokenizer_too_long(why, "decoder", si, "Replace", cap, a.data.n);
                tokenizer_set_error(err, errlen, "tokenizer %s: decode: %s", t->path, why);
                goto done;
            }
            if (r) goto oom;
            TokList *sw = cur;
            cur = nxt;
            nxt = sw;
        }
        for (size_t i = 0; i < cur->n; i++)
            if (tok_buf_put(&out, cur->data.p + cur->off[i], cur->len[i])) goto oom;
    }
    if (tok_buf_reserve(&out, 0)) goto oom;
    out.p[out.n] = 0; /* an empty result (no ids, or only skipped specials) was never
                         written, so the fresh buffer was not NUL-terminated (fuzz_tokenizer) */
    *text = out.p;
    *len = out.n;
    out.p = NULL;
    rc = 0;
    goto done;
oom:
    tokenizer_set_error(err, errlen, "tokenizer %s: decode: out of memory", t->path);
done:
    toklist_free(&a);
    toklist_free(&b);
    tok_buf_free(&tmp);
    tok_buf_free(&out);
    return rc;
}
