/*
 * added_tokens.c — tokenizer.json's `added_tokens`: loading them (special or not, normalized or
 * not, lstrip/rstrip/single_word), bucketing them by first byte, longest first, and cutting them
 * out of the text leftmost-longest before (normalized=false) or after (normalized=true) the
 * normalizer, as HF does.
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tokenizer_added_cmp_ctx_len(const AddedToken *a, const AddedToken *b) {
    if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Builds one matching set: added tokens whose `normalized` flag equals norm. */
int tokenizer_build_added_set(Tokenizer *t, AddedSet *set, int norm) {
    size_t cnt = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == norm && t->added[i].match_len) cnt++;
    set->order = malloc((cnt + 1) * sizeof *set->order);
    if (!set->order) return -1;
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        set->start[b] = k;
        size_t first = k;
        for (size_t i = 0; i < t->n_added; i++) {
            const AddedToken *a = &t->added[i];
            if (a->normalized != norm || !a->match_len || (unsigned char)a->match[0] != b) continue;
            /* insertion sort, longest first */
            size_t j = k++;
            while (j > first && tokenizer_added_cmp_ctx_len(a, &t->added[set->order[j - 1]]) < 0) {
                set->order[j] = set->order[j - 1];
                j--;
            }
            set->order[j] = (int32_t)i;
        }
    }
    set->start[256] = k;
    return 0;
}

int tokenizer_load_added(Loader *L, const cJSON *arr) {
    Tokenizer *t = L->t;
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return tokenizer_load_fail(L, "added_tokens", "not an array");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    t->added = calloc(n + 1, sizeof *t->added);
    if (!t->added) return tokenizer_load_fail(L, "added_tokens", "out of memory");
    const cJSON *e;
    size_t i = 0;
    cJSON_ArrayForEach(e, arr) {
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%zu]", i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = tok_json_str(e, "content");
        if (!tok_json_is_id(id) || !content)
            return tokenizer_load_fail(L, field, "needs a valid \"id\" and \"content\"");
        AddedToken *a = &t->added[t->n_added];
        a->id = (int32_t)id->valuedouble;
        a->content_len = strlen(content);
        if (!(a->content = tokenizer_dup(L, content, a->content_len)))
            return tokenizer_load_fail(L, field, "out of memory");
        a->special = tok_json_bool(e, "special", 0);
        a->lstrip = tok_json_bool(e, "lstrip", 0);
        a->rstrip = tok_json_bool(e, "rstrip", 0);
        a->single_word = tok_json_bool(e, "single_word", 0);
        a->normalized = tok_json_bool(e, "normalized", !a->special);
        a->match = a->content;
        a->match_len = a->content_len;
        i++;
        if (a->content_len == 0) continue; /* HF ignores empty added tokens */
        t->n_added++;
        if ((size_t)a->id + 1 > t->n_ids) t->n_ids = (size_t)a->id + 1;
    }
    return 0;
}

/* Whether the character ending just before s[i] (dir<0) or starting at s[i] (dir>0) is \w
 * (1, 0, or -1 with why on a regex failure). */
static int tokenizer_is_word_at(const Tokenizer *t, pcre2_match_data *md, char *why, const char *s, size_t n,
                                size_t i, int dir) {
    size_t a = i;
    if (dir < 0) {
        if (i == 0) return 0;
        a = i - 1;
        while (a > 0 && ((unsigned char)s[a] & 0xC0) == 0x80) a--;
    } else if (i >= n) {
        return 0;
    }
    size_t k = tok_utf8_len((unsigned char)s[a]);
    int rc = pcre2_match(t->re_word, (PCRE2_SPTR)(s + a), k, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) return tokenizer_regex_why(why, rc, "added_tokens single_word");
    return rc >= 0;
}

/* Cuts added tokens of `set` out of s (HF AddedVocabulary::find_matches), into out. */
int tokenizer_split_added(const Tokenizer *t, EncodeCtx *c, const AddedSet *set,
                          const char *s, size_t n, int origin, PieceList *out) {
    size_t prev = 0, i = 0;
    if (set->start[256] == 0) return tok_plist_add_text(out, s, n, origin);
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        const AddedToken *hit = NULL;
        for (size_t j = set->start[b]; j < set->start[b + 1]; j++) {
            const AddedToken *a = &t->added[set->order[j]];
            if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) {
                hit = a; /* longest first */
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        size_t start = i, stop = i + hit->match_len;
        int wl = hit->single_word ? tokenizer_is_word_at(t, c->md, c->why, s, n, start, -1) : 0;
        int wr = hit->single_word ? tokenizer_is_word_at(t, c->md, c->why, s, n, stop, +1) : 0;
        if (wl < 0 || wr < 0) return -1;
        if (wl || wr) {
            i = stop; /* the leftmost-longest iterator resumes after a discarded match */
            continue;
        }
        uint32_t cp;
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > prev) {
                size_t q = ns - 1;
                while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                int k = tok_utf8_step((const unsigned char *)s, n, q, &cp);
                if (k < 0 || !tok_unicode_is_space(cp)) break;
                ns = q;
            }
            start = ns;
        }
        if (hit->rstrip) {
            while (stop < n) {
                int k = tok_utf8_step((const unsigned char *)s, n, stop, &cp);
                if (k < 0 || !tok_unicode_is_space(cp)) break;
                stop += (size_t)k;
            }
        }
        if (prev < start && tok_plist_add_text(out, s + prev, start - prev, origin && prev == 0)) return -1;
        if (tok_plist_add_token(out, hit->id)) return -1;
        prev = i = stop;
    }
    if (prev < n && tok_plist_add_text(out, s + prev, n - prev, origin && prev == 0)) return -1;
    return 0;
}
