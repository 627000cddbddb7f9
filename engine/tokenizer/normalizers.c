/*
 * normalizers.c — tokenizer.json's `normalizer`: Prepend, Replace (string or regex), Strip,
 * Lowercase, NFC (identity, see tokenizer.c) and Sequence of them; loaded once, applied to
 * every text piece that is not a raw added token.
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tokenizer_load_normalizer(Loader *L, const cJSON *n, const char *field) {
    Tokenizer *t = L->t;
    const char *type;
    if (tokenizer_load_type(L, n, field, "normalizers", tokenizer_load_normalizer, &type)) return -1;
    if (!type) return 0;   /* a Sequence, loaded */
    NormStep st;
    memset(&st, 0, sizeof st);
    if (!strcmp(type, "Prepend")) {
        const char *p = tok_json_str(n, "prepend");
        if (!p) return tokenizer_load_fail(L, field, "Prepend without \"prepend\"");
        if (tokenizer_check_utf8(L, field, "Prepend \"prepend\"", p, strlen(p))) return -1;
        st.kind = NORM_PREPEND;
        st.alen = strlen(p);
        if (!(st.a = tokenizer_dup(L, p, st.alen))) return tokenizer_load_fail(L, field, "out of memory");
    } else if (!strcmp(type, "Replace")) {
        const char *c = tok_json_str(n, "content");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        if (!c || !pat) return tokenizer_load_fail(L, field, "Replace needs \"pattern\" and \"content\"");
        if (tokenizer_check_utf8(L, field, "Replace \"content\"", c, strlen(c))) return -1;
        const char *lit;
        int is_re;
        st.re = tokenizer_load_pattern(L, pat, field, &lit, &is_re);
        if (!st.re) return -1;
        st.kind = is_re ? NORM_REPLACE_RE : NORM_REPLACE_STR;
        st.blen = strlen(c);
        st.b = tokenizer_dup(L, c, st.blen);
        if (lit) {
            st.alen = strlen(lit);
            st.a = tokenizer_dup(L, lit, st.alen);
        }
        if (!st.b || (lit && !st.a)) {
            pcre2_code_free(st.re);
            return tokenizer_load_fail(L, field, "out of memory");
        }
        if (st.kind == NORM_REPLACE_STR && st.alen == 0) {
            pcre2_code_free(st.re);
            return tokenizer_load_fail(L, field, "Replace with an empty String pattern");
        }
    } else if (!strcmp(type, "Lowercase")) {
        st.kind = NORM_LOWERCASE;
    } else if (!strcmp(type, "Strip")) {
        st.kind = NORM_STRIP;
        st.left = tok_json_bool(n, "strip_left", 1);
        st.right = tok_json_bool(n, "strip_right", 1);
    } else if (!strcmp(type, "NFC")) {
        st.kind = NORM_NFC;
    } else {
        return tokenizer_load_fail(L, field, "unsupported normalizer type \"%s\"", type);
    }
    NormStep *v = realloc(t->norm, (t->n_norm + 1) * sizeof *v);
    if (!v) {
        if (st.re) pcre2_code_free(st.re);
        return tokenizer_load_fail(L, field, "out of memory");
    }
    t->norm = v;
    t->norm[t->n_norm++] = st;
    return 0;
}

/* Runs the normalizer chain on s into out (tmp: scratch). */
int tokenizer_normalize(const Tokenizer *t, const char *s, size_t n, Buf *out, Buf *tmp,
                        pcre2_match_data *md, char *why) {
    static const char *const kind_name[] = {"Prepend", "Replace", "Replace", "Lowercase", "Strip", "NFC"};
    const size_t cap = tokenizer_growth_cap(n);
    /* checked after every append, so that memory stays within the cap */
#define NORM_GROWN(b) ((b)->n > cap ? tokenizer_too_long(why, "normalizer", si, kind_name[st->kind], cap, n) : 0)
    tok_buf_clear(out);
    if (tok_buf_put(out, s, n)) return -1;
    for (size_t si = 0; si < t->n_norm; si++) {
        const NormStep *st = &t->norm[si];
        tok_buf_clear(tmp);
        switch (st->kind) {
        case NORM_PREPEND:
            if (out->n == 0) continue;
            if (tok_buf_put(tmp, st->a, st->alen) || tok_buf_put(tmp, out->p, out->n) || NORM_GROWN(tmp)) return -1;
            break;
        case NORM_REPLACE_STR: {
            size_t i = 0;
            while (i < out->n) {
                const char *hit = out->n - i >= st->alen ? memmem(out->p + i, out->n - i, st->a, st->alen) : NULL;
                if (!hit) break;
                size_t h = (size_t)(hit - out->p);
                if (tok_buf_put(tmp, out->p + i, h - i) || tok_buf_put(tmp, st->b, st->blen) || NORM_GROWN(tmp)) return -1;
                i = h + st->alen;
            }
            if (tok_buf_put(tmp, out->p + i, out->n - i) || NORM_GROWN(tmp)) return -1;
            break;
        }
        case NORM_REPLACE_RE: {
            size_t pos = 0, prev = 0;
            while (pos <= out->n) {
                int rc = pcre2_match(st->re, (PCRE2_SPTR)out->p, out->n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) return tokenizer_regex_why(why, rc, "normalizer Replace");
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (tok_buf_put(tmp, out->p + prev, ov[0] - prev) || tok_buf_put(tmp, st->b, st->blen) || NORM_GROWN(tmp)) return -1;
                prev = ov[1];
                if (ov[1] == ov[0]) {
                    if (ov[1] >= out->n) break;
                    size_t k = tok_utf8_len((unsigned char)out->p[ov[1]]);
                    if (tok_buf_put(tmp, out->p + ov[1], k) || NORM_GROWN(tmp)) return -1;
                    prev = ov[1] + k;
                    pos = prev;
                } else {
                    pos = ov[1];
                }
            }
            if (prev < out->n && tok_buf_put(tmp, out->p + prev, out->n - prev)) return -1;
            if (NORM_GROWN(tmp)) return -1;
            break;
        }
        case NORM_LOWERCASE: /* see tok_unicode_lower for the scripts covered */
            for (size_t i = 0; i < out->n;) {
                uint32_t cp, extra;
                int k = tok_utf8_step((const unsigned char *)out->p, out->n, i, &cp);
                if (k < 0) return -1; /* cannot happen: text was checked */
                char enc[8];
                size_t m = tok_utf8_encode(tok_unicode_lower(cp, &extra), enc);
                if (extra) m += tok_utf8_encode(extra, enc + m);
                if (tok_buf_put(tmp, enc, m) || NORM_GROWN(tmp)) return -1;
                i += (size_t)k;
            }
            break;
        case NORM_STRIP: {
            size_t a = 0, b = out->n;
            uint32_t cp;
            if (st->left)
                while (a < b) {
                    int k = tok_utf8_step((const unsigned char *)out->p, b, a, &cp);
                    if (k < 0 || !tok_unicode_is_space(cp)) break;
                    a += (size_t)k;
                }
            if (st->right)
                while (b > a) {
                    size_t q = b - 1;
                    while (q > a && ((unsigned char)out->p[q] & 0xC0) == 0x80) q--;
                    int k = tok_utf8_step((const unsigned char *)out->p, b, q, &cp);
                    if (k < 0 || !tok_unicode_is_space(cp)) break;
                    b = q;
                }
            if (tok_buf_put(tmp, out->p + a, b - a)) return -1;
            break;
        }
        case NORM_NFC:
        default:
            continue;
        }
        Buf sw = *out;
        *out = *tmp;
        *tmp = sw;
    }
    if (tok_buf_reserve(out, 0)) return -1; /* ensure out->p exists */
    return 0;
#undef NORM_GROWN
}
