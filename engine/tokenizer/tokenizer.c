/*
 * tokenizer.c — the tokenizer.json pipeline: loading the file, encoding, freeing, accessors.
 *
 * Why: lcbench measures long-context behaviour in tokens, so its token ids must be exactly the
 * ids HF `tokenizers` (0.23) gives, or its numbers would not line up with transformers.  This
 * folder reproduces the HF pipeline step by step, one file per section of tokenizer.json:
 *
 *   raw text
 *     -> added tokens with normalized=false are cut out of the raw text     added_tokens.c
 *     -> every other piece is normalized (Prepend / Replace / Strip /        normalizers.c
 *        Lowercase / NFC*)
 *     -> added tokens with normalized=true are cut out of the normalized pieces
 *     -> pre-tokenizers (Split regex via PCRE2, ByteLevel, Metaspace,        pre_tokenizers.c
 *        Punctuation, Digits, Whitespace, WhitespaceSplit, Sequence)
 *     -> BPE model: characters (or <0xNN> byte fallback, or unk) merged by   models.c
 *        rank with a priority queue over a doubly linked symbol list, as
 *        HF's Word::merge_all does
 *     -> post-processor (TemplateProcessing, Roberta/Bert, ByteLevel,        post_processor.c
 *        Sequence) adds specials.
 *
 * and the decode pipeline: ids -> token strings (added tokens use their normalized form)
 * -> decoders (Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel, Sequence) -> join
 * (decoders.c).  Buffers, the string arena, UTF-8 and the hash maps are in util.c; the types
 * all of them share are in tokenizer_internal.h.
 *
 * This file: tokenizer_load / tokenizer_load_json read the file and call each section's loader;
 * tokenizer_encode drives the encode pipeline over "piece lists" (one text buffer plus
 * (offset, length) records, each piece either still text or already a token id).
 *
 * (*) NFC is treated as the identity (no Unicode tables here): exact on text already in NFC,
 * which is what nearly all text is.  Lowercase covers ASCII, Latin, Greek, Cyrillic and
 * Armenian (see tok_unicode_lower); other scripts are left unchanged.  Unsupported parts
 * (WordPiece/Unigram/WordLevel models, BertNormalizer, NFD/NFKD, unknown pre-tokenizers or
 * decoders) are load errors, never silent differences.
 */
#include "engine/tokenizer/tokenizer_internal.h"
#include "engine/gguf.h"
#include "engine/gguf_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Formats "tokenizer <path>: field '<field>': <message>" into the loader's err; returns -1. */
int tokenizer_load_fail(Loader *L, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tokenizer_set_error(L->err, L->errlen, "tokenizer %s: field '%s': %s", L->path, field, msg);
    return -1;
}

int tokenizer_load_type(Loader *L, const cJSON *o, const char *field, const char *items, TokLoadFn load, const char **type) {
    *type = NULL;
    if (!o || cJSON_IsNull(o)) return 0;   /* the section is absent */
    *type = tok_json_str(o, "type");
    if (!*type) return tokenizer_load_fail(L, field, "missing \"type\"");
    if (strcmp(*type, "Sequence")) return 0;
    *type = NULL;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, items);
    if (!cJSON_IsArray(arr)) return tokenizer_load_fail(L, field, "Sequence without \"%s\" array", items);
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) if (load(L, c, field)) return -1;
    return 0;
}

/* Strings a tokenizer.json inserts into the text being encoded (Prepend, Replace content,
 * Metaspace replacement) must be valid UTF-8: the split regexes then run with
 * PCRE2_NO_UTF_CHECK, and PCRE2 (JIT) on invalid UTF-8 read out of bounds (fuzz_tokenizer).
 * JSON escapes can produce invalid UTF-8 too (a lone surrogate \udc00), so check the result. */
int tokenizer_check_utf8(Loader *L, const char *field, const char *what, const char *s, size_t n) {
    size_t bad = tok_utf8_check(s, n);
    if (bad != n) return tokenizer_load_fail(L, field, "%s is not valid UTF-8 (byte %zu)", what, bad);
    return 0;
}

const char *tok_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int tok_json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

/* Whether a JSON value is a number usable as a token id (0 .. INT32_MAX - 1, integral: the
 * id tables hold max id + 1 entries, and that count must fit an int32 too). */
int tok_json_is_id(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2147483647.0 &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

char *tokenizer_dup(Loader *L, const char *s, size_t n) {
    return tok_arena_strdup(&L->t->arena, s, n);
}

/* Compiles a UTF-8 regex (UTF + UCP, JIT when available). NULL + error on failure. */
pcre2_code *tokenizer_compile_regex(Loader *L, const char *field, const char *pat,
                                    size_t len, uint32_t flags) {
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | flags | ((flags & PCRE2_LITERAL) ? 0 : PCRE2_UCP); /* UCP: not with LITERAL */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        tokenizer_load_fail(L, field, "bad regex at offset %zu: %s", (size_t)eo, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; falls back to the interpreter */
    return re;
}

/* Pattern object {"String": s} or {"Regex": r} -> regex (strings compiled as literals). */
pcre2_code *tokenizer_load_pattern(Loader *L, const cJSON *pat, const char *field,
                                   const char **lit, int *is_regex) {
    const char *s = tok_json_str(pat, "String");
    const char *r = tok_json_str(pat, "Regex");
    if (lit) *lit = s;
    if (is_regex) *is_regex = r != NULL;
    if (s) return tokenizer_compile_regex(L, field, s, strlen(s), PCRE2_LITERAL);
    if (r) return tokenizer_compile_regex(L, field, r, strlen(r), 0);
    tokenizer_load_fail(L, field, "pattern must be {\"String\": ...} or {\"Regex\": ...}");
    return NULL;
}

/* Looks up a token string among added tokens first, then the model vocab; -1 if absent. */
static int32_t tokenizer_lookup(const Tokenizer *t, const char *s) {
    for (size_t i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return t->added[i].id;
    return tok_strmap_get(&t->vocab, s, strlen(s));
}

/* After the normalizer is known: normalized forms of normalized added tokens, the id -> token
 * table, the skip-special flags and the matching sets. */
static int tokenizer_finish_tables(Loader *L) {
    Tokenizer *t = L->t;
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    Buf out = {0}, tmp = {0};
    char why[TOK_WHY] = "";
    if (!md) return tokenizer_load_fail(L, "added_tokens", "out of memory");
    for (size_t i = 0; i < t->n_added; i++) {
        AddedToken *a = &t->added[i];
        if (!a->normalized || !t->n_norm) continue;
        tok_buf_clear(&out);
        if (tokenizer_normalize(t, a->content, a->content_len, &out, &tmp, md, why)) {
            pcre2_match_data_free(md);
            tok_buf_free(&out);
            tok_buf_free(&tmp);
            return tokenizer_load_fail(L, "added_tokens", "normalizing \"%s\": %s", a->content, why[0] ? why : "out of memory");
        }
        a->match_len = out.n;
        a->match = tokenizer_dup(L, out.p ? out.p : "", out.n);
        if (!a->match) {
            pcre2_match_data_free(md);
            tok_buf_free(&out);
            tok_buf_free(&tmp);
            return tokenizer_load_fail(L, "added_tokens", "out of memory");
        }
    }
    pcre2_match_data_free(md);
    tok_buf_free(&out);
    tok_buf_free(&tmp);

    /* the id tables below have max id + 1 entries: one token with id 2000000000 in a 60-byte
     * file made lcbench reserve 40 GB (fuzz_tokenizer, over its malloc limit).  Real
     * vocabularies are dense (added tokens right after the model's), so refuse sparse ones. */
    if (t->n_ids > 2 * (t->vocab.n + t->n_added) + 65536)
        return tokenizer_load_fail(L, "model.vocab", "ids go up to %zu for %zu tokens; ids must be (nearly) contiguous",
                                   t->n_ids - 1, t->vocab.n + t->n_added);
    t->id_tok = calloc(t->n_ids + 1, sizeof *t->id_tok);
    t->id_tok_len = calloc(t->n_ids + 1, sizeof *t->id_tok_len);
    t->id_skip = calloc(t->n_ids + 1, 1);
    t->id_raw = calloc(t->n_ids + 1, sizeof *t->id_raw);
    if (!t->id_tok || !t->id_tok_len || !t->id_skip || !t->id_raw) return tokenizer_load_fail(L, "model.vocab", "out of memory");
    for (size_t i = 0; i < t->vocab.cap; i++) {
        if (!t->vocab.keys[i]) continue;
        int32_t id = t->vocab.vals[i];
        t->id_tok[id] = t->id_raw[id] = (char *)t->vocab.keys[i];
        t->id_tok_len[id] = t->vocab.lens[i];
    }
    StrMap special;
    if (tok_strmap_init(&special, t->n_added + 1)) return tokenizer_load_fail(L, "added_tokens", "out of memory");
    for (size_t i = 0; i < t->n_added; i++) {
        AddedToken *a = &t->added[i];
        /* decode uses the normalized form of added tokens (HF simple_id_to_token) */
        t->id_tok[a->id] = a->match;
        t->id_raw[a->id] = a->content;
        t->id_tok_len[a->id] = (uint32_t)a->match_len;
        if (a->special && tok_strmap_put(&special, a->content, a->content_len, 1)) {
            tok_strmap_free(&special);
            return tokenizer_load_fail(L, "added_tokens", "out of memory");
        }
    }
    for (size_t id = 0; id < t->n_ids; id++)
        if (t->id_tok[id] && tok_strmap_get(&special, t->id_tok[id], t->id_tok_len[id]) >= 0) t->id_skip[id] = 1;
    tok_strmap_free(&special);
    if (tokenizer_build_added_set(t, &t->added_raw, 0) || tokenizer_build_added_set(t, &t->added_norm, 1))
        return tokenizer_load_fail(L, "added_tokens", "out of memory");
    return 0;
}

static int32_t tokenizer_find_named(const Tokenizer *t, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = tokenizer_lookup(t, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen) {
    /* only a regular file is opened to look for the GGUF magic: open() on a FIFO would block */
    struct stat sb;
    if (path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && gguf_is_gguf(path))
        return gguf_tokenizer_load(path, err, errlen); /* engine/gguf_tokenizer.c */
    return tokenizer_load_json(path, NULL, 0, err, errlen);
}

Tokenizer *tokenizer_load_json(const char *path, const char *json, size_t json_len, char *err, size_t errlen) {
    if (!path) {
        tokenizer_set_error(err, errlen, "tokenizer: NULL path");
        return NULL;
    }
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        tokenizer_set_error(err, errlen, "tokenizer %s: out of memory", path);
        return NULL;
    }
    Loader L = {t, path, err, errlen};
    char *text = NULL;
    cJSON *root = NULL;

    /* a folder means <folder>/tokenizer.json */
    struct stat sb;
    size_t plen = strlen(path);
    t->path = malloc(plen + sizeof "/tokenizer.json");
    if (!t->path) {
        tokenizer_set_error(err, errlen, "tokenizer %s: out of memory", path);
        goto fail;
    }
    memcpy(t->path, path, plen + 1);
    if (!json && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) memcpy(t->path + plen, "/tokenizer.json", sizeof "/tokenizer.json");
    L.path = t->path;

    /* the one file reader: a FIFO, a folder or a link loop is refused by name, never waited on */
    size_t fsz = json_len;
    if (json && (text = malloc(json_len + 1))) { memcpy(text, json, json_len); text[json_len] = 0; } /* tokenizer_load_json */
    else if (json) { tokenizer_set_error(err, errlen, "tokenizer %s: out of memory", path); goto fail; }
    else if (lcb_read_file(t->path, &text, &fsz, err, errlen)) {
        lcb_prefix(err, errlen, "tokenizer");
        goto fail;
    }
    root = cJSON_ParseWithLength(text, fsz);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text && at <= text + fsz ? (long)(at - text) : -1;
        tokenizer_set_error(err, errlen, "tokenizer %s: malformed JSON near byte %ld", t->path, off);
        goto fail;
    }
    free(text);
    text = NULL;
    if (!cJSON_IsObject(root)) {
        tokenizer_load_fail(&L, "(root)", "not a JSON object");
        goto fail;
    }

    tokenizer_init_bytemap(t);
    if (tokenizer_load_model(&L, cJSON_GetObjectItemCaseSensitive(root, "model"))) goto fail;
    if (tokenizer_load_added(&L, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"))) goto fail;
    if (tokenizer_load_normalizer(&L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer")) goto fail;
    if (tokenizer_load_pre(&L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer")) goto fail;
    if (tokenizer_load_post(&L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor")) goto fail;
    if (tokenizer_load_decoder(&L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoder")) goto fail;
    if (tokenizer_finish_tables(&L)) goto fail;
    for (size_t i = 0; i < t->n_post_prefix + t->n_post_suffix; i++) {
        int32_t id = i < t->n_post_prefix ? t->post_prefix[i] : t->post_suffix[i - t->n_post_prefix];
        if (id < 0 || (size_t)id >= t->n_ids) {
            tokenizer_load_fail(&L, "post_processor", "special id %d is outside the vocabulary", id);
            goto fail;
        }
    }
    {
        static const char re_w[] = "^\\w";
        static const char re_g[] =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
        if (!(t->re_word = tokenizer_compile_regex(&L, "added_tokens", re_w, sizeof re_w - 1, 0))) goto fail;
        if (!(t->re_gpt2 = tokenizer_compile_regex(&L, "pre_tokenizer", re_g, sizeof re_g - 1, 0))) goto fail;
    }
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", "<bos>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"};
    t->bos_id = t->n_post_prefix ? t->post_prefix[0] : tokenizer_find_named(t, bos_names, 4);
    t->eos_id = t->n_post_suffix ? t->post_suffix[t->n_post_suffix - 1] : tokenizer_find_named(t, eos_names, 4);
    cJSON_Delete(root);
    return t;

fail:
    free(text);
    cJSON_Delete(root);
    tokenizer_free(t);
    return NULL;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    tok_strmap_free(&t->vocab);
    tok_pairmap_free(&t->merges);
    free(t->id_tok);
    free(t->id_raw);
    free(t->id_tok_len);
    free(t->id_skip);
    free(t->added);
    free(t->added_raw.order);
    free(t->added_norm.order);
    if (t->re_word) pcre2_code_free(t->re_word);
    if (t->re_gpt2) pcre2_code_free(t->re_gpt2);
    for (size_t i = 0; i < t->n_norm; i++)
        if (t->norm[i].re) pcre2_code_free(t->norm[i].re);
    for (size_t i = 0; i < t->n_pre; i++)
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
    free(t->norm);
    free(t->pre);
    free(t->dec);
    free(t->post_prefix);
    free(t->post_suffix);
    tok_arena_free(&t->arena);
    free(t->path);
    free(t);
}

void tok_plist_reset(PieceList *l) {
    l->n = 0;
    tok_buf_clear(&l->text);
}

static void tok_plist_free(PieceList *l) {
    free(l->v);
    tok_buf_free(&l->text);
    memset(l, 0, sizeof *l);
}

int tok_plist_grow(PieceList *l) {
    Piece *v = lcb_grow(l->v, l->n, &l->cap, sizeof *v, 64);
    if (!v) return -1;
    l->v = v;
    return 0;
}

/* Adds a text piece (copied); empty pieces are dropped as HF does. */
int tok_plist_add_text(PieceList *l, const char *s, size_t n, int origin) {
    if (n == 0) return 0;
    if (tok_plist_grow(l)) return -1;
    size_t off = l->text.n;
    if (tok_buf_put(&l->text, s, n)) return -1;
    l->v[l->n++] = (Piece){off, n, -1, origin};
    return 0;
}

int tok_plist_add_token(PieceList *l, int32_t id) {
    if (tok_plist_grow(l)) return -1;
    l->v[l->n++] = (Piece){0, 0, id, 0};
    return 0;
}

int tok_ctx_push_id(EncodeCtx *c, int32_t id) {
    int32_t *p = lcb_grow(c->ids, c->n_ids, &c->ids_cap, sizeof *p, 256);
    if (!p) return -1;
    c->ids = p;
    c->ids[c->n_ids++] = id;
    return 0;
}

static void tok_ctx_free(EncodeCtx *c) {
    tok_plist_free(&c->a);
    tok_plist_free(&c->b);
    tok_plist_free(&c->tmp);
    tok_buf_free(&c->norm);
    tok_buf_free(&c->norm_tmp);
    tok_buf_free(&c->word);
    free(c->syms);
    free(c->heap);
    free(c->segs);
    free(c->ids);
    if (c->md) pcre2_match_data_free(c->md);
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                     size_t *n_ids, char *err, size_t errlen) {
    if (!t || !ids || !n_ids || (!text && len)) {
        tokenizer_set_error(err, errlen, "tokenizer_encode: NULL argument");
        return -1;
    }
    *ids = NULL;
    *n_ids = 0;
    size_t bad = tok_utf8_check(text, len);
    if (bad != len) {
        tokenizer_set_error(err, errlen, "tokenizer %s: encode: text is not valid UTF-8 at byte %zu", t->path, bad);
        return -1;
    }
    EncodeCtx c;
    memset(&c, 0, sizeof c);
    int rc = -1;
    c.md = pcre2_match_data_create(32, NULL);
    if (!c.md) goto oom;
    if (!text) text = "";

    /* 1. added tokens matched in the raw text */
    if (tokenizer_split_added(t, &c, &t->added_raw, text, len, 1, &c.a)) goto oom;
    /* 2. normalize each text piece, then match normalized added tokens */
    tok_plist_reset(&c.b);
    for (size_t i = 0; i < c.a.n; i++) {
        const Piece *p = &c.a.v[i];
        if (p->id >= 0) {
            if (tok_plist_add_token(&c.b, p->id)) goto oom;
            continue;
        }
        if (tokenizer_normalize(t, c.a.text.p + p->off, p->len, &c.norm, &c.norm_tmp, c.md, c.why)) goto oom;
        if (tokenizer_split_added(t, &c, &t->added_norm, c.norm.p, c.norm.n, p->origin, &c.b)) goto oom;
    }
    /* 3. pre-tokenizers */
    PieceList *cur = &c.b, *nxt = &c.a;
    for (size_t si = 0; si < t->n_pre; si++) {
        if (tokenizer_pre_step(t, &c, &t->pre[si], cur, nxt)) goto oom;
        PieceList *sw = cur;
        cur = nxt;
        nxt = sw;
    }
    /* 4. model, with the post-processor around it */
    if (add_special)
        for (size_t i = 0; i < t->n_post_prefix; i++)
            if (tok_ctx_push_id(&c, t->post_prefix[i])) goto oom;
    for (size_t i = 0; i < cur->n; i++) {
        const Piece *p = &cur->v[i];
        if (p->id >= 0) {
            if (tok_ctx_push_id(&c, p->id)) goto oom;
            continue;
        }
        int r = tokenizer_bpe_word(t, &c, cur->text.p + p->off, p->len);
        if (r == -2) {
            tokenizer_set_error(err, errlen, "tokenizer %s: field 'model.unk_token': not in the vocab", t->path);
            goto done;
        }
        if (r) goto oom;
    }
    if (add_special)
        for (size_t i = 0; i < t->n_post_suffix; i++)
            if (tok_ctx_push_id(&c, t->post_suffix[i])) goto oom;
    if (!c.ids && !(c.ids = malloc(sizeof *c.ids))) goto oom; /* non-NULL even when empty */
    *ids = c.ids;
    *n_ids = c.n_ids;
    c.ids = NULL;
    rc = 0;
    goto done;
oom:
    if (c.why[0]) tokenizer_set_error(err, errlen, "tokenizer %s: encode: %s", t->path, c.why);
    else tokenizer_set_error(err, errlen, "tokenizer %s: encode: out of memory", t->path);
done:
    tok_ctx_free(&c);
    return rc;
}

size_t tokenizer_vocab_size(const Tokenizer *t) { return t ? t->n_ids : 0; }

int32_t tokenizer_bos_id(const Tokenizer *t) { return t ? t->bos_id : -1; }

int32_t tokenizer_eos_id(const Tokenizer *t) { return t ? t->eos_id : -1; }

const char *tokenizer_id_to_token(const Tokenizer *t, int32_t id) {
    if (!t || id < 0 || (size_t)id >= t->n_ids) return NULL;
    return t->id_raw[id];
}
