/*
 * models.c — tokenizer.json's `model`: BPE (vocab, merges as pairs or "a b" strings, unk,
 * byte_fallback, fuse_unk, ignore_merges, continuing_subword_prefix, end_of_word_suffix), and the
 * merge loop: a priority queue keyed by (rank, position) over a doubly linked symbol list, as
 * HF's Word::merge_all does, so that ties break exactly as HF breaks them.
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAP_KEY(rank, pos) (((uint64_t)(rank) << 32) | (uint32_t)(pos))

/* "model.merges[<rank>]" into buf (only formatted when an error is reported). */
static const char *tokenizer_merge_field(char *buf, size_t n, uint32_t rank) {
    snprintf(buf, n, "model.merges[%u]", rank);
    return buf;
}

int tokenizer_load_model(Loader *L, const cJSON *model) {
    Tokenizer *t = L->t;
    if (!cJSON_IsObject(model)) return tokenizer_load_fail(L, "model", "missing or not an object");
    const char *type = tok_json_str(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (type && strcmp(type, "BPE"))
        return tokenizer_load_fail(L, "model.type", "unsupported model type \"%s\" (only BPE)", type);
    if (!type && !merges)
        return tokenizer_load_fail(L, "model.type", "missing (and no \"merges\": not a BPE model)");
    if (!cJSON_IsObject(vocab)) return tokenizer_load_fail(L, "model.vocab", "missing or not an object");
    if (!cJSON_IsArray(merges)) return tokenizer_load_fail(L, "model.merges", "missing or not an array");

    size_t nv = (size_t)cJSON_GetArraySize(vocab);
    if (tok_strmap_init(&t->vocab, nv + 16)) return tokenizer_load_fail(L, "model.vocab", "out of memory");
    const cJSON *e;
    int32_t max_id = -1;
    cJSON_ArrayForEach(e, vocab) {
        if (!tok_json_is_id(e))
            return tokenizer_load_fail(L, "model.vocab", "id %.17g of \"%s\" is not a valid id (an integer in 0 .. 2147483646)",
                                       cJSON_IsNumber(e) ? e->valuedouble : -1.0, e->string);
        size_t len = strlen(e->string);
        char *k = tokenizer_dup(L, e->string, len);
        if (!k || tok_strmap_put(&t->vocab, k, len, (int32_t)e->valuedouble))
            return tokenizer_load_fail(L, "model.vocab", "out of memory");
        if ((int32_t)e->valuedouble > max_id) max_id = (int32_t)e->valuedouble;
    }
    t->n_ids = (size_t)(max_id + 1);

    t->fuse_unk = tok_json_bool(model, "fuse_unk", 0);
    t->byte_fallback = tok_json_bool(model, "byte_fallback", 0);
    t->ignore_merges = tok_json_bool(model, "ignore_merges", 0);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0.0)
        return tokenizer_load_fail(L, "model.dropout", "BPE dropout is random; not supported");
    const char *unk = tok_json_str(model, "unk_token");
    t->unk_id = -1;
    if (unk) {
        t->unk_id = tok_strmap_get(&t->vocab, unk, strlen(unk));
        t->unk_missing = t->unk_id < 0;
    }
    const char *pfx = tok_json_str(model, "continuing_subword_prefix");
    const char *sfx = tok_json_str(model, "end_of_word_suffix");
    if (pfx && *pfx) {
        t->prefix_len = strlen(pfx);
        if (!(t->prefix = tokenizer_dup(L, pfx, t->prefix_len))) return tokenizer_load_fail(L, "model", "out of memory");
    }
    if (sfx && *sfx) {
        t->suffix_len = strlen(sfx);
        if (!(t->suffix = tokenizer_dup(L, sfx, t->suffix_len))) return tokenizer_load_fail(L, "model", "out of memory");
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = tok_strmap_get(&t->vocab, name, 6);
    }

    size_t nm = (size_t)cJSON_GetArraySize(merges);
    if (tok_pairmap_init(&t->merges, nm + 16)) return tokenizer_load_fail(L, "model.merges", "out of memory");
    Buf cat = {0};
    uint32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t alen, blen;
        char field[64]; /* formatted only when reporting an error */
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                tok_buf_free(&cat);
                return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "\"%s\" is not \"left right\"", e->valuestring);
            }
            a = e->valuestring;
            alen = (size_t)(sp - a);
            b = sp + 1;
            blen = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            alen = strlen(a);
            blen = strlen(b);
        } else {
            tok_buf_free(&cat);
            return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "not a \"left right\" string or a [left, right] pair");
        }
        int32_t ia = tok_strmap_get(&t->vocab, a, alen), ib = tok_strmap_get(&t->vocab, b, blen);
        if (ia < 0 || ib < 0) {
            tok_buf_free(&cat);
            return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "token \"%.*s\" is not in the vocab",
                                       (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
        }
        size_t skip = t->prefix_len <= blen ? t->prefix_len : blen;
        tok_buf_clear(&cat);
        if (tok_buf_put(&cat, a, alen) || tok_buf_put(&cat, b + skip, blen - skip)) {
            tok_buf_free(&cat);
            return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "out of memory");
        }
        int32_t inew = tok_strmap_get(&t->vocab, cat.p, cat.n);
        if (inew < 0) {
            tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "merged token \"%s\" is not in the vocab", cat.p);
            tok_buf_free(&cat);
            return -1;
        }
        tok_pairmap_put(&t->merges, ia, ib, rank, inew);
        rank++;
    }
    tok_buf_free(&cat);
    return 0;
}

/* The merge queue is a 4-ary min-heap on key = rank << 32 | pos (lowest rank, then leftmost,
 * as HF orders its queue); 4-ary halves the depth of a binary heap, which matters for the
 * very long words of SentencePiece-style models (no pre-tokenizer: a whole text is one word). */
static int heap_push(EncodeCtx *c, HeapItem it) {
    HeapItem *h = lcb_grow(c->heap, c->heap_n, &c->heap_cap, sizeof *h, 64);
    if (!h) return -1;
    c->heap = h;
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t par = (i - 1) / 4;
        if (it.key >= c->heap[par].key) break;
        c->heap[i] = c->heap[par];
        i = par;
    }
    c->heap[i] = it;
    return 0;
}

static HeapItem heap_pop(EncodeCtx *c) {
    HeapItem top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    if (n == 0) return top;
    for (;;) {
        size_t first = 4 * i + 1, m = i;
        uint64_t best = last.key;
        size_t end = first + 4 < n ? first + 4 : n;
        for (size_t j = first; j < end; j++)
            if (c->heap[j].key < best) {
                best = c->heap[j].key;
                m = j;
            }
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    c->heap[i] = last;
    return top;
}

static int bpe_add_sym(EncodeCtx *c, size_t *ns, int32_t id, size_t len) {
    Sym *p = lcb_grow(c->syms, *ns, &c->syms_cap, sizeof *p, 256);
    if (!p) return -1;
    c->syms = p;
    c->syms[*ns] = (Sym){id, (int32_t)*ns - 1, (int32_t)*ns + 1, (uint32_t)len};
    (*ns)++;
    return 0;
}

/* BPE of one pre-token w (n bytes of valid UTF-8): ids appended to c->ids.
 * Returns 0, -1 on out of memory, -2 if the unk token is missing from the vocab. */
int tokenizer_bpe_word(const Tokenizer *t, EncodeCtx *c, const char *w, size_t n) {
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->vocab, w, n);
        if (id >= 0) return tok_ctx_push_id(c, id);
    }
    size_t ns = 0, unk_len = 0;
    int have_unk = 0;
    for (size_t i = 0; i < n;) {
        size_t k = tok_utf8_len((unsigned char)w[i]);
        if (k > n - i) k = n - i;
        const char *s = w + i;
        size_t slen = k;
        if ((t->prefix && i > 0) || (t->suffix && i + k == n)) {
            tok_buf_clear(&c->word);
            if ((t->prefix && i > 0 && tok_buf_put(&c->word, t->prefix, t->prefix_len)) || tok_buf_put(&c->word, w + i, k) ||
                (t->suffix && i + k == n && tok_buf_put(&c->word, t->suffix, t->suffix_len)))
                return -1;
            s = c->word.p;
            slen = c->word.n;
        }
        int32_t id = tok_strmap_get(&t->vocab, s, slen);
        if (id >= 0) {
            if (have_unk) {
                if (bpe_add_sym(c, &ns, t->unk_id, unk_len)) return -1;
                have_unk = 0;
            }
            if (bpe_add_sym(c, &ns, id, k)) return -1;
        } else {
            int done = 0;
            if (t->byte_fallback) {
                size_t j = 0;
                while (j < slen && t->byte_ids[(unsigned char)s[j]] >= 0) j++;
                if (j == slen) {
                    for (j = 0; j < slen; j++)
                        if (bpe_add_sym(c, &ns, t->byte_ids[(unsigned char)s[j]], 1)) return -1;
                    done = 1;
                }
            }
            if (!done && (t->unk_id >= 0 || t->unk_missing)) {
                if (t->unk_missing) return -2;
                if (have_unk && t->fuse_unk) {
                    unk_len += k;
                } else {
                    if (have_unk && bpe_add_sym(c, &ns, t->unk_id, unk_len)) return -1;
                    have_unk = 1;
                    unk_len = k;
                }
            }
        }
        i += k;
    }
    if (have_unk && bpe_add_sym(c, &ns, t->unk_id, unk_len)) return -1;
    if (ns == 0) return 0;
    c->syms[ns - 1].next = -1;

    /* merge_all: lowest rank first, leftmost on ties; stale queue entries are skipped */
    Sym *y = c->syms;
    c->heap_n = 0;
    uint32_t rank;
    int32_t nid;
    for (size_t i = 0; i + 1 < ns; i++)
        if (tok_pairmap_get(&t->merges, y[i].id, y[i + 1].id, &rank, &nid) &&
            heap_push(c, (HeapItem){HEAP_KEY(rank, i), nid}))
            return -1;
    while (c->heap_n) {
        HeapItem top = heap_pop(c);
        uint32_t pos = (uint32_t)top.key;
        Sym *cur = &y[pos];
        if (cur->len == 0 || cur->next < 0) continue;
        Sym *right = &y[cur->next];
        if (!tok_pairmap_get(&t->merges, cur->id, right->id, &rank, &nid) || nid != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0) y[cur->next].prev = (int32_t)pos;
        if (cur->prev >= 0 && tok_pairmap_get(&t->merges, y[cur->prev].id, cur->id, &rank, &nid) &&
            heap_push(c, (HeapItem){HEAP_KEY(rank, cur->prev), nid}))
            return -1;
        if (cur->next >= 0 && tok_pairmap_get(&t->merges, cur->id, y[cur->next].id, &rank, &nid) &&
            heap_push(c, (HeapItem){HEAP_KEY(rank, pos), nid}))
            return -1;
    }
    for (int32_t i = 0; i >= 0; i = y[i].next)
        if (tok_ctx_push_id(c, y[i].id)) return -1;
    return 0;
}
