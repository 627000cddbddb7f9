/*
 * gguf_tokenizer.c — the tokenizer a GGUF file carries (tokenizer.ggml.*), built as the
 * tokenizer.json it stands for and handed to engine/tokenizer.c's loader, so a GGUF tokenizes
 * through exactly the code that tokenizer.json files do.
 *
 *   gpt2  (byte-level BPE): tokens, merges, token types; tokenizer.ggml.pre picks the split
 *         regex (gpt-2 / default: GPT-2's ByteLevel regex; llama-bpe: Llama 3's, with
 *         ignore_merges as its tokenizer.json has; smaug-bpe: Llama 3's regex without it);
 *   llama (SentencePiece BPE with byte fallback): tokens, scores, token types; the merges are
 *         rebuilt from the scores as HF's SentencePiece converter does (every split of a token
 *         into two vocabulary pieces, ordered by the token's score, best first; ties by id).
 *         A GGUF made from a tokenizer.json alone (no tokenizer.model) has every score at
 *         -1000, which loses the merge order: such files are refused by name.
 * Tokens of type control or unknown become special added tokens, user-defined ones non-special
 * added tokens; tokenizer.ggml.add_bos_token / add_eos_token give the post-processor.
 */
#include "engine/gguf_tokenizer.h"
#include "engine/gguf.h"
#include "engine/common.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* string -> id, open addressing over the token list */
typedef struct { int32_t *slot; size_t cap; char **tok; const uint64_t *len; } Map;

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int map_init(Map *m, char **tok, const uint64_t *len, size_t n) {
    m->cap = 16;
    while (m->cap < 2 * n + 2) m->cap *= 2;
    m->slot = malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    memset(m->slot, 0xff, m->cap * sizeof *m->slot);
    m->tok = tok;
    m->len = len;
    for (size_t i = 0; i < n; i++) {
        size_t h = hash(tok[i], len[i]) & (m->cap - 1);
        while (m->slot[h] >= 0) {
            if (m->len[m->slot[h]] == len[i] && !memcmp(tok[m->slot[h]], tok[i], len[i])) break; /* keep the first */
            h = (h + 1) & (m->cap - 1);
        }
        if (m->slot[h] < 0) m->slot[h] = (int32_t)i;
    }
    return 0;
}

static int32_t map_get(const Map *m, const char *s, size_t n) {
    size_t h = hash(s, n) & (m->cap - 1);
    for (; m->slot[h] >= 0; h = (h + 1) & (m->cap - 1))
        if (m->len[m->slot[h]] == n && !memcmp(m->tok[m->slot[h]], s, n)) return m->slot[h];
    return -1;
}

typedef struct { float score; int32_t id, l, r; } Merge;

static int cmp_merge(const void *a, const void *b) {
    const Merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

static size_t utf8_next(const char *s, size_t n, size_t i) {
    i++;
    while (i < n && ((uint8_t)s[i] & 0xc0) == 0x80) i++;
    return i;
}

static cJSON *str_item(const char *s, uint64_t n) {
    char *c = malloc(n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    cJSON *x = cJSON_CreateString(c);
    free(c);
    return x;
}

static cJSON *special_template(const char *bos, int32_t bos_id, const char *eos, int32_t eos_id) {
    cJSON *pp = cJSON_CreateObject(), *single = cJSON_CreateArray(), *pair = cJSON_CreateArray(), *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    for (int which = 0; which < 2; which++) {
        cJSON *arr = which ? pair : single;
        for (int seq = 0; seq < (which ? 2 : 1); seq++) {
            if (bos) {
                cJSON *e = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(e, "SpecialToken");
                cJSON_AddStringToObject(st, "id", bos);
                cJSON_AddNumberToObject(st, "type_id", seq);
                cJSON_AddItemToArray(arr, e);
            }
            cJSON *e = cJSON_CreateObject(), *sq = cJSON_AddObjectToObject(e, "Sequence");
            cJSON_AddStringToObject(sq, "id", seq ? "B" : "A");
            cJSON_AddNumberToObject(sq, "type_id", seq);
            cJSON_AddItemToArray(arr, e);
            if (eos) {
                cJSON *e2 = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(e2, "SpecialToken");
                cJSON_AddStringToObject(st, "id", eos);
                cJSON_AddNumberToObject(st, "type_id", seq);
                cJSON_AddItemToArray(arr, e2);
            }
        }
    }
    const char *names[2] = {bos, eos};
    int32_t ids[2] = {bos_id, eos_id};
    for (int i = 0; i < 2; i++) {
        if (!names[i] || cJSON_GetObjectItemCaseSensitive(sp, names[i])) continue;
        cJSON *o = cJSON_AddObjectToObject(sp, names[i]);
        cJSON_AddStringToObject(o, "id", names[i]);
        cJSON *a = cJSON_AddArrayToObject(o, "ids"), *t = cJSON_AddArrayToObject(o, "tokens");
        cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
        cJSON_AddItemToArray(t, cJSON_CreateString(names[i]));
    }
    cJSON_AddItemToObject(pp, "single", single);
    cJSON_AddItemToObject(pp, "pair", pair);
    cJSON_AddItemToObject(pp, "special_tokens", sp);
    return pp;
}

static const char LLAMA3_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* tokenizer.json text of the GGUF's tokenizer (malloc'ed), or NULL with err. */
static char *gguf_tokenizer_json(const GgufFile *g, char *err, size_t errlen) {
    const char *model, *pre;
    const GgufKV *tk, *sc, *ty, *mg;
    int64_t bos, eos, unk;
    int add_bos, add_eos, add_space;
    if (gguf_get_str(g, "tokenizer.ggml.model", NULL, &model, err, errlen)) return NULL;
    if (!model) { lcb_fail(err, errlen, "%s: metadata tokenizer.ggml.model is missing: the file carries no tokenizer (use --tokenizer)", g->path); return NULL; }
    int spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2")) { lcb_fail(err, errlen, "%s: tokenizer.ggml.model \"%s\" is not supported (llama, gpt2 are)", g->path, model); return NULL; }
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, &tk, err, errlen) || gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_FLOAT32, &sc, err, errlen) ||
        gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_INT32, &ty, err, errlen) || gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_STRING, &mg, err, errlen) ||
        gguf_get_int(g, "tokenizer.ggml.bos_token_id", -1, -1, INT32_MAX, &bos, err, errlen) ||
        gguf_get_int(g, "tokenizer.ggml.eos_token_id", -1, -1, INT32_MAX, &eos, err, errlen) ||
        gguf_get_int(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, -1, INT32_MAX, &unk, err, errlen) ||
        gguf_get_bool(g, "tokenizer.ggml.add_bos_token", spm, &add_bos, err, errlen) ||
        gguf_get_bool(g, "tokenizer.ggml.add_eos_token", 0, &add_eos, err, errlen) ||
        gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", 1, &add_space, err, errlen) ||
        gguf_get_str(g, "tokenizer.ggml.pre", "default", &pre, err, errlen))
        return NULL;
    if (!tk || tk->n == 0) { lcb_fail(err, errlen, "%s: metadata tokenizer.ggml.tokens is missing or empty", g->path); return NULL; }
    const uint64_t n = tk->n;
    if (n > (1u << 26)) { lcb_fail(err, errlen, "%s: tokenizer.ggml.tokens has %llu entries (at most 2^26)", g->path, (unsigned long long)n); return NULL; }
    if (sc && sc->n != n) { lcb_fail(err, errlen, "%s: tokenizer.ggml.scores has %llu entries for %llu tokens", g->path, (unsigned long long)sc->n, (unsigned long long)n); return NULL; }
    if (ty && ty->n != n) { lcb_fail(err, errlen, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", g->path, (unsigned long long)ty->n, (unsigned long long)n); return NULL; }
    const int64_t ids[3] = {bos, eos, unk};
    const char *idk[3] = {"bos_token_id", "eos_token_id", "unknown_token_id"};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= (int64_t)n) { lcb_fail(err, errlen, "%s: tokenizer.ggml.%s = %lld is outside the %llu tokens", g->path, idk[i], (long long)ids[i], (unsigned long long)n); return NULL; }
    if ((add_bos && bos < 0) || (add_eos && eos < 0)) { lcb_fail(err, errlen, "%s: tokenizer.ggml.add_%s_token is set without a %s id", g->path, add_bos && bos < 0 ? "bos" : "eos", add_bos && bos < 0 ? "BOS" : "EOS"); return NULL; }
    int llama3 = 0, ignore_merges = 0;
    if (!spm) {
        /* as llama.cpp's llama-vocab.cpp reads them: llama-bpe ignores merges for whole-vocabulary
         * words, smaug-bpe (what the converter names Llama 3's split with other merges) does not */
        if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) llama3 = ignore_merges = 1;
        else if (!strcmp(pre, "smaug-bpe")) llama3 = 1;
        else if (strcmp(pre, "gpt-2") && strcmp(pre, "default")) {
            lcb_fail(err, errlen, "%s: tokenizer.ggml.pre \"%s\" is not supported (gpt-2, default, llama-bpe, smaug-bpe are); pass --tokenizer tokenizer.json", g->path, pre);
            return NULL;
        }
        if (!mg) { lcb_fail(err, errlen, "%s: metadata tokenizer.ggml.merges is missing (a gpt2 tokenizer needs it)", g->path); return NULL; }
    }
    char **tok = tk->arr;
    const int32_t *type = ty ? ty->arr : NULL;
    const float *score = sc ? sc->arr : NULL;
    if (spm) {
        int varied = 0;
        for (uint64_t i = 1; score && i < n && !varied; i++) varied = score[i] != score[0];
        if (!varied) {
            lcb_fail(err, errlen, "%s: tokenizer.ggml.scores %s: the SentencePiece merge order is lost (a GGUF converted from tokenizer.json without tokenizer.model); pass --tokenizer tokenizer.json",
                     g->path, score ? "are all equal" : "are missing");
            return NULL;
        }
    }

    char *out = NULL;
    Map map = {0};
    Merge *mv = NULL;
    cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *mdl = cJSON_CreateObject(), *vocab = cJSON_AddObjectToObject(mdl, "vocab"), *merges = cJSON_AddArrayToObject(mdl, "merges");
    if (map_init(&map, tok, tk->arr_len, n)) { lcb_fail(err, errlen, "%s: out of memory", g->path); goto out; }
    for (uint64_t i = 0; i < n; i++) {
        if (map_get(&map, tok[i], tk->arr_len[i]) == (int32_t)i) cJSON_AddItemToObject(vocab, tok[i], cJSON_CreateNumber((double)i));
        int t = type ? type[i] : TT_NORMAL;
        if (t == TT_CONTROL || t == TT_UNKNOWN || t == TT_USER) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddItemToObject(a, "content", str_item(tok[i], tk->arr_len[i]));
            cJSON_AddBoolToObject(a, "single_word", 0);
            cJSON_AddBoolToObject(a, "lstrip", 0);
            cJSON_AddBoolToObject(a, "rstrip", 0);
            cJSON_AddBoolToObject(a, "normalized", 0);
            cJSON_AddBoolToObject(a, "special", t != TT_USER);
            cJSON_AddItemToArray(added, a);
        }
    }
    if (spm) {
        /* every split of a normal token into two vocabulary pieces, by the token's score */
        size_t nm = 0, cap = 1024;
        mv = malloc(cap * sizeof *mv);
        if (!mv) { lcb_fail(err, errlen, "%s: out of memory", g->path); goto out; }
        for (uint64_t i = 0; i < n; i++) {
            if (type && type[i] != TT_NORMAL) continue;
            const char *s = tok[i];
            size_t len = tk->arr_len[i];
            for (size_t k = utf8_next(s, len, 0); k < len; k = utf8_next(s, len, k)) {
                int32_t l = map_get(&map, s, k), r = map_get(&map, s + k, len - k);
                if (l < 0 || r < 0) continue;
                if (nm == cap) {
                    Merge *grown = realloc(mv, (cap *= 2) * sizeof *mv);
                    if (!grown) { lcb_fail(err, errlen, "%s: out of memory", g->path); goto out; }
                    mv = grown;
                }
                mv[nm++] = (Merge){score[i], (int32_t)i, l, r};
            }
        }
        qsort(mv, nm, sizeof *mv, cmp_merge);
        for (size_t i = 0; i < nm; i++) {
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, str_item(tok[mv[i].l], tk->arr_len[mv[i].l]));
            cJSON_AddItemToArray(p, str_item(tok[mv[i].r], tk->arr_len[mv[i].r]));
            cJSON_AddItemToArray(merges, p);
        }
    } else {
        char **m = mg->arr;
        for (uint64_t i = 0; i < mg->n; i++) {
            const char *sp = memchr(m[i], ' ', mg->arr_len[i]);
            if (!sp || sp == m[i] || sp + 1 == m[i] + mg->arr_len[i]) {
                lcb_fail(err, errlen, "%s: tokenizer.ggml.merges[%llu] \"%.60s\" is not two tokens separated by one space", g->path, (unsigned long long)i, m[i]);
                goto out;
            }
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, str_item(m[i], (uint64_t)(sp - m[i])));
            cJSON_AddItemToArray(p, str_item(sp + 1, mg->arr_len[i] - (uint64_t)(sp - m[i]) - 1));
            cJSON_AddItemToArray(merges, p);
        }
    }
    cJSON_AddStringToObject(mdl, "type", "BPE");
    if (spm) {
        if (unk >= 0) cJSON_AddItemToObject(mdl, "unk_token", str_item(tok[unk], tk->arr_len[unk]));
        cJSON_AddBoolToObject(mdl, "fuse_unk", 1);
        cJSON_AddBoolToObject(mdl, "byte_fallback", 1);
        cJSON *nz = cJSON_AddObjectToObject(root, "normalizer"), *ns = cJSON_AddArrayToObject(nz, "normalizers");
        cJSON_AddStringToObject(nz, "type", "Sequence");
        if (add_space) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "type", "Prepend");
            cJSON_AddStringToObject(p, "prepend", "\xe2\x96\x81");
            cJSON_AddItemToArray(ns, p);
        }
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "type", "Replace");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "pattern"), "String", " ");
        cJSON_AddStringToObject(r, "content", "\xe2\x96\x81");
        cJSON_AddItemToArray(ns, r);
        cJSON_AddNullToObject(root, "pre_tokenizer");
        cJSON *dec = cJSON_AddObjectToObject(root, "decoder"), *ds = cJSON_AddArrayToObject(dec, "decoders");
        cJSON_AddStringToObject(dec, "type", "Sequence");
        cJSON *d0 = cJSON_CreateObject();
        cJSON_AddStringToObject(d0, "type", "Replace");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(d0, "pattern"), "String", "\xe2\x96\x81");
        cJSON_AddStringToObject(d0, "content", " ");
        cJSON_AddItemToArray(ds, d0);
        cJSON *d1 = cJSON_CreateObject(), *d2 = cJSON_CreateObject();
        cJSON_AddStringToObject(d1, "type", "ByteFallback");
        cJSON_AddStringToObject(d2, "type", "Fuse");
        cJSON_AddItemToArray(ds, d1);
        cJSON_AddItemToArray(ds, d2);
        if (add_space) {
            cJSON *d3 = cJSON_CreateObject();
            cJSON_AddStringToObject(d3, "type", "Strip");
            cJSON_AddStringToObject(d3, "content", " ");
            cJSON_AddNumberToObject(d3, "start", 1);
            cJSON_AddNumberToObject(d3, "stop", 0);
            cJSON_AddItemToArray(ds, d3);
        }
    } else {
        cJSON_AddBoolToObject(mdl, "byte_fallback", 0);
        cJSON_AddBoolToObject(mdl, "ignore_merges", ignore_merges);
        cJSON_AddNullToObject(root, "normalizer");
        cJSON *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
        cJSON_AddBoolToObject(bl, "trim_offsets", 1);
        cJSON_AddBoolToObject(bl, "use_regex", !llama3);
        if (llama3) {
            cJSON *seq = cJSON_AddObjectToObject(root, "pre_tokenizer"), *ps = cJSON_AddArrayToObject(seq, "pretokenizers");
            cJSON_AddStringToObject(seq, "type", "Sequence");
            cJSON *split = cJSON_CreateObject();
            cJSON_AddStringToObject(split, "type", "Split");
            cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", LLAMA3_SPLIT);
            cJSON_AddStringToObject(split, "behavior", "Isolated");
            cJSON_AddBoolToObject(split, "invert", 0);
            cJSON_AddItemToArray(ps, split);
            cJSON_AddItemToArray(ps, bl);
        } else
            cJSON_AddItemToObject(root, "pre_tokenizer", bl);
        cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
        cJSON_AddStringToObject(dec, "type", "ByteLevel");
        cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
        cJSON_AddBoolToObject(dec, "trim_offsets", 1);
        cJSON_AddBoolToObject(dec, "use_regex", 1);
    }
    if (add_bos || add_eos) {
        char *b = add_bos ? tok[bos] : NULL, *e = add_eos ? tok[eos] : NULL;
        cJSON_AddItemToObject(root, "post_processor", special_template(b, (int32_t)bos, e, (int32_t)eos));
    } else
        cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "model", mdl);
    mdl = NULL;
    if (!(out = cJSON_PrintUnformatted(root))) lcb_fail(err, errlen, "%s: out of memory building the tokenizer", g->path);
out:
    cJSON_Delete(mdl);
    cJSON_Delete(root);
    free(map.slot);
    free(mv);
    return out;
}

Tokenizer *gguf_tokenizer_load(const char *path, char *err, size_t errlen) {
    GgufFile g;
    if (gguf_open(&g, path, err, errlen)) return NULL;
    char *json = gguf_tokenizer_json(&g, err, errlen);
    gguf_close(&g);
    if (!json) return NULL;
    Tokenizer *t = tokenizer_load_json(path, json, strlen(json), err, errlen);
    free(json);
    return t;
}

int gguf_tokenizer_present(const char *path) {
    GgufFile g;
    char err[LCB_ERRLEN];
    if (!gguf_is_gguf(path) || gguf_open(&g, path, err, sizeof err)) return 0;
    int has = gguf_find(&g, "tokenizer.ggml.model") != NULL;
    gguf_close(&g);
    return has;
}
