/*
 * tokenizer.c — HF `tokenizer.json` BPE tokenizers (SentencePiece-style and byte-level) in C11.
 *
 * Why: lcbench measures long-context behaviour in tokens, so its token ids must be exactly the
 * ids HF `tokenizers` (0.23) gives, or its numbers would not line up with transformers.  This
 * file reproduces the HF encode pipeline step by step:
 *
 *   raw text
 *     -> added tokens with normalized=false are cut out of the raw text (leftmost-longest)
 *     -> every other piece is normalized (Prepend / Replace / Strip / Lowercase / NFC*)
 *     -> added tokens with normalized=true are cut out of the normalized pieces
 *     -> pre-tokenizers (Split regex via PCRE2, ByteLevel, Metaspace, Punctuation, Digits,
 *        Whitespace, WhitespaceSplit, Sequence) cut pieces further
 *     -> BPE model: characters (or <0xNN> byte fallback, or unk) merged by rank with a
 *        priority queue over a doubly linked symbol list, as HF's Word::merge_all does
 *     -> post-processor (TemplateProcessing, Roberta/Bert, ByteLevel, Sequence) adds specials.
 *
 * and the decode pipeline: ids -> token strings (added tokens use their normalized form)
 * -> decoders (Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel, Sequence) -> join.
 *
 * Data structures: the vocabulary is an open-addressing hash map (string -> id), the merges an
 * open-addressing map ((left id, right id) -> (rank, merged id)); strings live in a block arena
 * so that pointers stay valid.  Encoding works on "piece lists": one text buffer plus
 * (offset, length) records, each piece either still text or already a token id.
 *
 * (*) NFC is treated as the identity (no Unicode tables here): exact on text already in NFC,
 * which is what nearly all text is.  Lowercase covers ASCII, Latin, Greek, Cyrillic and
 * Armenian (see unicode_lower); other scripts are left unchanged.  Unsupported parts (WordPiece/Unigram/WordLevel models,
 * BertNormalizer, NFD/NFKD, unknown pre-tokenizers or decoders) are load errors, never
 * silent differences.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer.h"
#include "engine/gguf.h"
#include "engine/gguf_tokenizer.h"
#include "engine/common.h"

#include <cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------------------------
 * Small utilities: errors, growable byte buffers, an arena for stable strings, UTF-8.
 * ---------------------------------------------------------------------------------------- */

static void tokenizer_set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Why an encode or decode failed when it was not memory: a regex that failed while matching,
 * a normalizer or decoder that grew the text past the cap below. */
#define TOK_WHY 256

/* A match-time PCRE2 failure (match limit, depth limit, JIT stack, ...) in words; returns -1. */
static int tokenizer_regex_why(char *why, int rc, const char *where) {
    PCRE2_UCHAR msg[160];
    if (pcre2_get_error_message(rc, msg, sizeof msg) < 0) snprintf((char *)msg, sizeof msg, "PCRE2 error %d", rc);
    snprintf(why, TOK_WHY, "%s regex failed while matching: %s (PCRE2 error %d)", where, (char *)msg, rc);
    return -1;
}

/* How long a normalizer or decoder chain may make a text of n bytes.  Real chains at most
 * triple it (" " -> U+2581 is 1 -> 3 bytes, a lowercase letter 2 -> 3); a chain of Replace
 * steps that each double the text grows it exponentially (a 144 KB tokenizer.json took 12 KB
 * of text to 3.9 GB), so past this the text is refused, before memory runs out. */
#define TOK_GROWTH_MAX 64
#define TOK_GROWTH_SLACK 4096
static size_t tokenizer_growth_cap(size_t n) {
    return n > (SIZE_MAX - TOK_GROWTH_SLACK) / TOK_GROWTH_MAX ? SIZE_MAX : n * TOK_GROWTH_MAX + TOK_GROWTH_SLACK;
}

static int tokenizer_too_long(char *why, const char *chain, size_t step, const char *kind, size_t cap, size_t n) {
    snprintf(why, TOK_WHY, "%s step %zu (%s) grows the text past %zu bytes (%d times its %zu bytes + %d): "
             "an unbounded %s is refused", chain, step, kind, cap, TOK_GROWTH_MAX, n, TOK_GROWTH_SLACK, chain);
    return -1;
}

/* Growable byte buffer; p is always NUL-terminated when non-NULL. */
typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *s, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static void buf_clear(Buf *b) {
    b->n = 0;
    if (b->p) b->p[0] = 0;
}

static void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* Block arena: strings copied here never move until the arena is freed. */
typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t used, cap;
    char data[];
} ArenaBlock;

typedef struct {
    ArenaBlock *head;
} Arena;

static char *arena_strdup(Arena *a, const char *s, size_t n) {
    if (!a->head || a->head->cap - a->head->used < n + 1) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        ArenaBlock *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    char *p = a->head->data + a->head->used;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    a->head->used += n + 1;
    return p;
}

static void arena_free(Arena *a) {
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *nx = b->next;
        free(b);
        b = nx;
    }
    a->head = NULL;
}

/* One UTF-8 step at s[i] (n bytes in all).  Returns the length (1..4) of a valid sequence and
 * its code point in *cp, or -k where k >= 1 is the length of the maximal invalid subpart
 * (what Rust's from_utf8_lossy replaces by one U+FFFD). */
static int utf8_step(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    size_t k = 1;
    for (int j = 0; j < need; j++, k++) {
        if (i + k >= n) return -(int)k;
        unsigned d = s[i + k];
        if (d < lo || d > hi) return -(int)k;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    return (int)k;
}

/* Offset of the first invalid byte, or n if s is valid UTF-8. */
static size_t utf8_check(const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        int k = utf8_step((const unsigned char *)s, n, i, &cp);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return n;
}

/* Length of the (valid) UTF-8 character starting with byte c. */
static size_t utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Appends s to out, each maximal invalid subpart replaced by U+FFFD (Rust from_utf8_lossy). */
static int utf8_put_lossy(Buf *out, const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t j = i;
        int k = 0;
        while (j < n && (k = utf8_step((const unsigned char *)s, n, j, &cp)) > 0) j += (size_t)k;
        if (buf_put(out, s + i, j - i)) return -1;
        if (j >= n) break;
        if (buf_put(out, "\xEF\xBF\xBD", 3)) return -1;
        i = j + (size_t)(-k);
    }
    return 0;
}

/* Unicode White_Space (what Rust's char::is_whitespace and regex \s accept). */
static int unicode_is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Simple lowercase of one code point (Rust char::to_lowercase) for ASCII, Latin-1, Latin
 * Extended-A/Additional, Greek, Cyrillic, Armenian and fullwidth Latin; others unchanged.
 * U+0130 (İ) lowercases to two code points: returns 0x69 and sets *extra = 0x307. */
static uint32_t unicode_lower(uint32_t c, uint32_t *extra) {
    *extra = 0;
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x130) {
        *extra = 0x307;
        return 0x69;
    }
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c % 2 == 0) ? c + 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
    if (c == 0x178) return 0xFF;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return (c % 2 == 0) ? c + 1 : c;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if ((c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF)) return (c % 2 == 0) ? c + 1 : c;
    if (c == 0x1E9E) return 0xDF;
    if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
    return c;
}

/* ------------------------------------------------------------------------------------------
 * Hash maps.
 * ---------------------------------------------------------------------------------------- */

static uint64_t tokenizer_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

/* string -> int32 map, open addressing, keys point to arena strings (not owned). */
typedef struct {
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
    uint32_t *hashes;
    size_t cap, n; /* cap: power of two */
} StrMap;

static int strmap_init(StrMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->lens = calloc(cap, sizeof *m->lens);
    m->vals = calloc(cap, sizeof *m->vals);
    m->hashes = calloc(cap, sizeof *m->hashes);
    m->cap = cap;
    m->n = 0;
    return (m->keys && m->lens && m->vals && m->hashes) ? 0 : -1;
}

static void strmap_free(StrMap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    free(m->hashes);
    memset(m, 0, sizeof *m);
}

static int strmap_grow(StrMap *m);

/* Inserts or overwrites. */
static int strmap_put(StrMap *m, const char *k, size_t len, int32_t v) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    uint32_t h = (uint32_t)tokenizer_hash_bytes(k, len);
    size_t i = h & (m->cap - 1);
    while (m->keys[i]) {
        if (m->hashes[i] == h && m->lens[i] == len && memcmp(m->keys[i], k, len) == 0) {
            m->vals[i] = v;
            return 0;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = k;
    m->lens[i] = (uint32_t)len;
    m->vals[i] = v;
    m->hashes[i] = h;
    m->n++;
    return 0;
}

static int strmap_grow(StrMap *m) {
    StrMap nm;
    if (strmap_init(&nm, m->cap)) {
        strmap_free(&nm);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) strmap_put(&nm, m->keys[i], m->lens[i], m->vals[i]);
    strmap_free(m);
    *m = nm;
    return 0;
}

/* Value of key, or -1. */
static int32_t strmap_get(const StrMap *m, const char *k, size_t len) {
    if (!m->cap) return -1;
    uint32_t h = (uint32_t)tokenizer_hash_bytes(k, len);
    size_t i = h & (m->cap - 1);
    while (m->keys[i]) {
        if (m->hashes[i] == h && m->lens[i] == len && memcmp(m->keys[i], k, len) == 0)
            return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* (left id, right id) -> (rank, merged id); key UINT64_MAX marks an empty slot.  One slot is
 * 16 bytes so that a probe touches one cache line. */
typedef struct {
    uint64_t key; /* left << 32 | right */
    uint32_t rank;
    int32_t new_id;
} PairSlot;

typedef struct {
    PairSlot *slots;
    size_t cap; /* power of two */
} PairMap;

static uint64_t pairmap_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static int pairmap_init(PairMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    m->cap = cap;
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    return 0;
}

static void pairmap_free(PairMap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Later inserts of the same pair overwrite earlier ones (as HF's HashMap collect does). */
static void pairmap_put(PairMap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pairmap_hash(k) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != k) i = (i + 1) & (m->cap - 1);
    m->slots[i] = (PairSlot){k, rank, new_id};
}

/* Returns 1 and fills rank/new_id if the pair merges, else 0. */
static int pairmap_get(const PairMap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pairmap_hash(k) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == k) {
            *rank = m->slots[i].rank;
            *new_id = m->slots[i].new_id;
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The tokenizer.
 * ---------------------------------------------------------------------------------------- */

enum { NORM_PREPEND, NORM_REPLACE_STR, NORM_REPLACE_RE, NORM_LOWERCASE, NORM_STRIP, NORM_NFC };
enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { SCHEME_ALWAYS, SCHEME_FIRST, SCHEME_NEVER };
enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_BYTELEVEL, DEC_BPE };

typedef struct {
    int kind;
    char *a, *b; /* arena strings: prepend text / pattern / replacement */
    size_t alen, blen;
    pcre2_code *re;
    int left, right; /* Strip */
} NormStep;

typedef struct {
    int kind;
    pcre2_code *re;     /* PRE_SPLIT; PRE_METASPACE: literal replacement char */
    int behavior, invert;
    int add_prefix_space, use_regex; /* PRE_BYTELEVEL */
    char *repl;                      /* PRE_METASPACE replacement (UTF-8) */
    size_t repl_len;
    int scheme, split;
} PreStep;

typedef struct {
    int kind;
    char *a, *b;
    size_t alen, blen;
    uint32_t content; /* DEC_STRIP: code point */
    int start, stop;
    char *repl; /* DEC_METASPACE */
    size_t repl_len;
    int prepend; /* DEC_METASPACE: prepend_scheme != never */
} DecStep;

typedef struct {
    int32_t id;
    char *content; /* raw content */
    size_t content_len;
    char *match; /* what is matched: content, or its normalized form */
    size_t match_len;
    int special, lstrip, rstrip, single_word, normalized;
} AddedToken;

/* Added tokens of one kind (normalized or not), bucketed by first byte, longest first. */
typedef struct {
    int32_t *order; /* indexes into Tokenizer.added, grouped by first byte, longest first */
    size_t start[257];
} AddedSet;

struct Tokenizer {
    char *path;
    Arena arena;
    /* model */
    StrMap vocab;
    PairMap merges;
    char **id_tok;  /* [n_ids] token string of each id (decode form), NULL where no token */
    char **id_raw;  /* [n_ids] token string as in the file (added tokens: their content) */
    uint32_t *id_tok_len;
    uint8_t *id_skip; /* [n_ids] 1: dropped by decode(skip_special) */
    size_t n_ids;
    int32_t unk_id;       /* -1: no unk token */
    int unk_missing;      /* unk_token named but absent from the vocab */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL if none) */
    size_t prefix_len, suffix_len;
    int32_t byte_ids[256]; /* id of "<0xNN>", -1 if absent */
    /* added tokens */
    AddedToken *added;
    size_t n_added;
    AddedSet added_raw, added_norm;
    pcre2_code *re_word; /* "\w" for single_word checks */
    /* pipeline */
    NormStep *norm;
    size_t n_norm;
    PreStep *pre;
    size_t n_pre;
    DecStep *dec;
    size_t n_dec;
    int has_decoder;
    int32_t *post_prefix, *post_suffix;
    size_t n_post_prefix, n_post_suffix;
    int32_t bos_id, eos_id;
    pcre2_code *re_gpt2; /* ByteLevel use_regex split */
    /* byte-level maps */
    char byte_char[256][2]; /* UTF-8 (always 2 bytes... or 1) of the GPT-2 char of each byte */
    uint8_t byte_char_len[256];
    int16_t char_byte[324]; /* code point (< 324) -> byte, -1 if not a mapped char */
};

/* ------------------------------------------------------------------------------------------
 * Loading.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    Tokenizer *t;
    const char *path;
    char *err;
    size_t errlen;
} Loader;

/* Formats "tokenizer <path>: field '<field>': <message>" into the loader's err; returns -1. */
static int tokenizer_load_fail(Loader *L, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tokenizer_set_error(L->err, L->errlen, "tokenizer %s: field '%s': %s", L->path, field, msg);
    return -1;
}

/* Strings a tokenizer.json inserts into the text being encoded (Prepend, Replace content,
 * Metaspace replacement) must be valid UTF-8: the split regexes then run with
 * PCRE2_NO_UTF_CHECK, and PCRE2 (JIT) on invalid UTF-8 read out of bounds (fuzz_tokenizer).
 * JSON escapes can produce invalid UTF-8 too (a lone surrogate \udc00), so check the result. */
static int tokenizer_check_utf8(Loader *L, const char *field, const char *what, const char *s, size_t n) {
    size_t bad = utf8_check(s, n);
    if (bad != n) return tokenizer_load_fail(L, field, "%s is not valid UTF-8 (byte %zu)", what, bad);
    return 0;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

/* Whether a JSON value is a number usable as a token id (0 .. INT32_MAX - 1, integral: the
 * id tables hold max id + 1 entries, and that count must fit an int32 too). */
static int json_is_id(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2147483647.0 &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

static char *tokenizer_dup(Loader *L, const char *s, size_t n) {
    return arena_strdup(&L->t->arena, s, n);
}

/* Compiles a UTF-8 regex (UTF + UCP, JIT when available). NULL + error on failure. */
static pcre2_code *tokenizer_compile_regex(Loader *L, const char *field, const char *pat,
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
static pcre2_code *tokenizer_load_pattern(Loader *L, const cJSON *pat, const char *field,
                                          const char **lit, int *is_regex) {
    const char *s = json_str(pat, "String");
    const char *r = json_str(pat, "Regex");
    if (lit) *lit = s;
    if (is_regex) *is_regex = r != NULL;
    if (s) return tokenizer_compile_regex(L, field, s, strlen(s), PCRE2_LITERAL);
    if (r) return tokenizer_compile_regex(L, field, r, strlen(r), 0);
    tokenizer_load_fail(L, field, "pattern must be {\"String\": ...} or {\"Regex\": ...}");
    return NULL;
}

static int tokenizer_load_normalizer(Loader *L, const cJSON *n, const char *field) {
    Tokenizer *t = L->t;
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type = json_str(n, "type");
    if (!type) return tokenizer_load_fail(L, field, "missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(arr)) return tokenizer_load_fail(L, field, "Sequence without \"normalizers\" array");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) if (tokenizer_load_normalizer(L, c, field)) return -1;
        return 0;
    }
    NormStep st;
    memset(&st, 0, sizeof st);
    if (!strcmp(type, "Prepend")) {
        const char *p = json_str(n, "prepend");
        if (!p) return tokenizer_load_fail(L, field, "Prepend without \"prepend\"");
        if (tokenizer_check_utf8(L, field, "Prepend \"prepend\"", p, strlen(p))) return -1;
        st.kind = NORM_PREPEND;
        st.alen = strlen(p);
        if (!(st.a = tokenizer_dup(L, p, st.alen))) return tokenizer_load_fail(L, field, "out of memory");
    } else if (!strcmp(type, "Replace")) {
        const char *c = json_str(n, "content");
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
        st.left = json_bool(n, "strip_left", 1);
        st.right = json_bool(n, "strip_right", 1);
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
    const char *b = json_str(o, "behavior");
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

static int tokenizer_load_pre(Loader *L, const cJSON *p, const char *field) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = json_str(p, "type");
    if (!type) return tokenizer_load_fail(L, field, "missing \"type\"");
    PreStep st;
    memset(&st, 0, sizeof st);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(arr)) return tokenizer_load_fail(L, field, "Sequence without \"pretokenizers\" array");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) if (tokenizer_load_pre(L, c, field)) return -1;
        return 0;
    } else if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        if (!pat) return tokenizer_load_fail(L, field, "Split without \"pattern\"");
        st.kind = PRE_SPLIT;
        if (tokenizer_parse_behavior(L, p, field, SPLIT_REMOVED, &st.behavior)) return -1;
        st.invert = json_bool(p, "invert", 0);
        if (!(st.re = tokenizer_load_pattern(L, pat, field, NULL, NULL))) return -1;
    } else if (!strcmp(type, "ByteLevel")) {
        st.kind = PRE_BYTELEVEL;
        st.add_prefix_space = json_bool(p, "add_prefix_space", 1);
        st.use_regex = json_bool(p, "use_regex", 1);
    } else if (!strcmp(type, "Metaspace")) {
        st.kind = PRE_METASPACE;
        const char *r = json_str(p, "replacement");
        if (!r || !*r) return tokenizer_load_fail(L, field, "Metaspace without \"replacement\"");
        st.repl_len = utf8_len((unsigned char)r[0]);
        if (st.repl_len > strlen(r)) return tokenizer_load_fail(L, field, "bad Metaspace replacement");
        if (tokenizer_check_utf8(L, field, "Metaspace \"replacement\"", r, st.repl_len)) return -1;
        st.repl = tokenizer_dup(L, r, st.repl_len);
        if (!st.repl) return tokenizer_load_fail(L, field, "out of memory");
        const char *scheme = json_str(p, "prepend_scheme");
        if (scheme) {
            if (!strcmp(scheme, "always")) st.scheme = SCHEME_ALWAYS;
            else if (!strcmp(scheme, "first")) st.scheme = SCHEME_FIRST;
            else if (!strcmp(scheme, "never")) st.scheme = SCHEME_NEVER;
            else return tokenizer_load_fail(L, field, "unknown prepend_scheme \"%s\"", scheme);
        } else {
            st.scheme = json_bool(p, "add_prefix_space", 1) ? SCHEME_ALWAYS : SCHEME_NEVER;
        }
        st.split = json_bool(p, "split", 1);
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
        st.behavior = json_bool(p, "individual_digits", 0) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
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

static int tokenizer_load_decoder(Loader *L, const cJSON *d, const char *field) {
    Tokenizer *t = L->t;
    if (!d || cJSON_IsNull(d)) return 0;
    t->has_decoder = 1;
    const char *type = json_str(d, "type");
    if (!type) return tokenizer_load_fail(L, field, "missing \"type\"");
    DecStep st;
    memset(&st, 0, sizeof st);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(arr)) return tokenizer_load_fail(L, field, "Sequence without \"decoders\" array");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) if (tokenizer_load_decoder(L, c, field)) return -1;
        return 0;
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(d, "pattern");
        const char *s = pat ? json_str(pat, "String") : NULL;
        const char *c = json_str(d, "content");
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
        const char *c = json_str(d, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!c || !*c || !cJSON_IsNumber(a) || !cJSON_IsNumber(b))
            return tokenizer_load_fail(L, field, "Strip decoder needs \"content\", \"start\", \"stop\"");
        st.kind = DEC_STRIP;
        uint32_t cp = 0;
        if (utf8_step((const unsigned char *)c, strlen(c), 0, &cp) < 0)
            return tokenizer_load_fail(L, field, "bad Strip content");
        st.content = cp;
        st.start = a->valueint;
        st.stop = b->valueint;
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = json_str(d, "replacement");
        if (!r || !*r) return tokenizer_load_fail(L, field, "Metaspace without \"replacement\"");
        st.kind = DEC_METASPACE;
        st.repl_len = utf8_len((unsigned char)r[0]);
        if (st.repl_len > strlen(r)) return tokenizer_load_fail(L, field, "bad Metaspace replacement");
        if (!(st.repl = tokenizer_dup(L, r, st.repl_len))) return tokenizer_load_fail(L, field, "out of memory");
        const char *scheme = json_str(d, "prepend_scheme");
        if (scheme) st.prepend = strcmp(scheme, "never") != 0;
        else st.prepend = json_bool(d, "add_prefix_space", 1);
    } else if (!strcmp(type, "ByteLevel")) {
        st.kind = DEC_BYTELEVEL;
    } else if (!strcmp(type, "BPEDecoder")) {
        const char *sfx = json_str(d, "suffix");
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

/* Appends ids to *v (n, cap) with growth. */
static int tokenizer_push_ids(int32_t **v, size_t *n, const int32_t *ids, size_t k) {
    int32_t *p = realloc(*v, (*n + k + 1) * sizeof *p);
    if (!p) return -1;
    memcpy(p + *n, ids, k * sizeof *p);
    *v = p;
    *n += k;
    return 0;
}

/* Looks up a token string among added tokens first, then the model vocab; -1 if absent. */
static int32_t tokenizer_lookup(const Tokenizer *t, const char *s) {
    for (size_t i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return t->added[i].id;
    return strmap_get(&t->vocab, s, strlen(s));
}

static int tokenizer_load_post(Loader *L, const cJSON *p, const char *field) {
    Tokenizer *t = L->t;
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = json_str(p, "type");
    if (!type) return tokenizer_load_fail(L, field, "missing \"type\"");
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (!cJSON_IsArray(arr)) return tokenizer_load_fail(L, field, "Sequence without \"processors\" array");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) if (tokenizer_load_post(L, c, field)) return -1;
        return 0;
    } else if (!strcmp(type, "ByteLevel")) {
        return 0; /* only trims offsets */
    } else if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single)) return tokenizer_load_fail(L, field, "TemplateProcessing without \"single\" array");
        int seen_a = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
            if (sq) {
                if (seen_a) {
                    free(pre);
                    free(suf);
                    return tokenizer_load_fail(L, field, "template \"single\" holds the sequence twice");
                }
                seen_a = 1;
                continue;
            }
            const char *name = sp ? json_str(sp, "id") : NULL;
            const cJSON *ent = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            const cJSON *ids = ent ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
            if (!cJSON_IsArray(ids)) {
                free(pre);
                free(suf);
                return tokenizer_load_fail(L, field, "special token \"%s\" of the template has no ids in \"special_tokens\"",
                                           name ? name : "?");
            }
            const cJSON *idv;
            cJSON_ArrayForEach(idv, ids) {
                int32_t id = json_is_id(idv) ? (int32_t)idv->valuedouble : -1;
                if (id < 0 ||
                    tokenizer_push_ids(seen_a ? &suf : &pre, seen_a ? &nsuf : &npre, &id, 1)) {
                    free(pre);
                    free(suf);
                    return tokenizer_load_fail(L, field, "bad id of special token \"%s\" (or out of memory)", name);
                }
            }
        }
        if (!seen_a) {
            free(pre);
            free(suf);
            return tokenizer_load_fail(L, field, "template \"single\" has no Sequence A");
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!json_is_id(ci) || !json_is_id(si))
            return tokenizer_load_fail(L, field, "%s needs \"cls\" and \"sep\" as [token, id]", type);
        int32_t c = (int32_t)ci->valuedouble, s = (int32_t)si->valuedouble;
        if (tokenizer_push_ids(&pre, &npre, &c, 1) || tokenizer_push_ids(&suf, &nsuf, &s, 1)) {
            free(pre);
            free(suf);
            return tokenizer_load_fail(L, field, "out of memory");
        }
    } else {
        return tokenizer_load_fail(L, field, "unsupported post_processor type \"%s\"", type);
    }
    /* Compose with what earlier processors added: new prefix = pre + old, suffix = old + suf. */
    int32_t *np = NULL;
    size_t nnp = 0;
    int bad = tokenizer_push_ids(&np, &nnp, pre ? pre : (int32_t[]){0}, npre) ||
              tokenizer_push_ids(&np, &nnp, t->post_prefix ? t->post_prefix : (int32_t[]){0}, t->n_post_prefix) ||
              tokenizer_push_ids(&t->post_suffix, &t->n_post_suffix, suf ? suf : (int32_t[]){0}, nsuf);
    free(pre);
    free(suf);
    if (bad) {
        free(np);
        return tokenizer_load_fail(L, field, "out of memory");
    }
    free(t->post_prefix);
    t->post_prefix = np;
    t->n_post_prefix = nnp;
    return 0;
}

/* GPT-2 byte <-> unicode mapping: printable Latin-1 bytes map to themselves, the other 68
 * bytes to U+0100.. in byte order. */
static void tokenizer_init_bytemap(Tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 324; i++) t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp;
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = (uint32_t)b;
        else cp = 256u + (uint32_t)n++;
        char tmp[4];
        size_t k = utf8_encode(cp, tmp);
        memcpy(t->byte_char[b], tmp, k);
        t->byte_char_len[b] = (uint8_t)k;
        t->char_byte[cp] = (int16_t)b;
    }
}

static int tokenizer_added_cmp_ctx_len(const AddedToken *a, const AddedToken *b) {
    if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Builds one matching set: added tokens whose `normalized` flag equals norm. */
static int tokenizer_build_added_set(Tokenizer *t, AddedSet *set, int norm) {
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

static int tokenizer_normalize(const Tokenizer *t, const char *s, size_t n, Buf *out, Buf *tmp,
                               pcre2_match_data *md, char *why);

/* "model.merges[<rank>]" into buf (only formatted when an error is reported). */
static const char *tokenizer_merge_field(char *buf, size_t n, uint32_t rank) {
    snprintf(buf, n, "model.merges[%u]", rank);
    return buf;
}

static int tokenizer_load_model(Loader *L, const cJSON *model) {
    Tokenizer *t = L->t;
    if (!cJSON_IsObject(model)) return tokenizer_load_fail(L, "model", "missing or not an object");
    const char *type = json_str(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (type && strcmp(type, "BPE"))
        return tokenizer_load_fail(L, "model.type", "unsupported model type \"%s\" (only BPE)", type);
    if (!type && !merges)
        return tokenizer_load_fail(L, "model.type", "missing (and no \"merges\": not a BPE model)");
    if (!cJSON_IsObject(vocab)) return tokenizer_load_fail(L, "model.vocab", "missing or not an object");
    if (!cJSON_IsArray(merges)) return tokenizer_load_fail(L, "model.merges", "missing or not an array");

    size_t nv = (size_t)cJSON_GetArraySize(vocab);
    if (strmap_init(&t->vocab, nv + 16)) return tokenizer_load_fail(L, "model.vocab", "out of memory");
    const cJSON *e;
    int32_t max_id = -1;
    cJSON_ArrayForEach(e, vocab) {
        if (!json_is_id(e))
            return tokenizer_load_fail(L, "model.vocab", "id %.17g of \"%s\" is not a valid id (an integer in 0 .. 2147483646)",
                                       cJSON_IsNumber(e) ? e->valuedouble : -1.0, e->string);
        size_t len = strlen(e->string);
        char *k = tokenizer_dup(L, e->string, len);
        if (!k || strmap_put(&t->vocab, k, len, (int32_t)e->valuedouble))
            return tokenizer_load_fail(L, "model.vocab", "out of memory");
        if ((int32_t)e->valuedouble > max_id) max_id = (int32_t)e->valuedouble;
    }
    t->n_ids = (size_t)(max_id + 1);

    t->fuse_unk = json_bool(model, "fuse_unk", 0);
    t->byte_fallback = json_bool(model, "byte_fallback", 0);
    t->ignore_merges = json_bool(model, "ignore_merges", 0);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0.0)
        return tokenizer_load_fail(L, "model.dropout", "BPE dropout is random; not supported");
    const char *unk = json_str(model, "unk_token");
    t->unk_id = -1;
    if (unk) {
        t->unk_id = strmap_get(&t->vocab, unk, strlen(unk));
        t->unk_missing = t->unk_id < 0;
    }
    const char *pfx = json_str(model, "continuing_subword_prefix");
    const char *sfx = json_str(model, "end_of_word_suffix");
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
        t->byte_ids[b] = strmap_get(&t->vocab, name, 6);
    }

    size_t nm = (size_t)cJSON_GetArraySize(merges);
    if (pairmap_init(&t->merges, nm + 16)) return tokenizer_load_fail(L, "model.merges", "out of memory");
    Buf cat = {0};
    uint32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t alen, blen;
        char field[64]; /* formatted only when reporting an error */
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                buf_free(&cat);
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
            buf_free(&cat);
            return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "not a \"left right\" string or a [left, right] pair");
        }
        int32_t ia = strmap_get(&t->vocab, a, alen), ib = strmap_get(&t->vocab, b, blen);
        if (ia < 0 || ib < 0) {
            buf_free(&cat);
            return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "token \"%.*s\" is not in the vocab",
                                       (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
        }
        size_t skip = t->prefix_len <= blen ? t->prefix_len : blen;
        buf_clear(&cat);
        if (buf_put(&cat, a, alen) || buf_put(&cat, b + skip, blen - skip)) {
            buf_free(&cat);
            return tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "out of memory");
        }
        int32_t inew = strmap_get(&t->vocab, cat.p, cat.n);
        if (inew < 0) {
            tokenizer_load_fail(L, tokenizer_merge_field(field, sizeof field, rank), "merged token \"%s\" is not in the vocab", cat.p);
            buf_free(&cat);
            return -1;
        }
        pairmap_put(&t->merges, ia, ib, rank, inew);
        rank++;
    }
    buf_free(&cat);
    return 0;
}

static int tokenizer_load_added(Loader *L, const cJSON *arr) {
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
        const char *content = json_str(e, "content");
        if (!json_is_id(id) || !content)
            return tokenizer_load_fail(L, field, "needs a valid \"id\" and \"content\"");
        AddedToken *a = &t->added[t->n_added];
        a->id = (int32_t)id->valuedouble;
        a->content_len = strlen(content);
        if (!(a->content = tokenizer_dup(L, content, a->content_len)))
            return tokenizer_load_fail(L, field, "out of memory");
        a->special = json_bool(e, "special", 0);
        a->lstrip = json_bool(e, "lstrip", 0);
        a->rstrip = json_bool(e, "rstrip", 0);
        a->single_word = json_bool(e, "single_word", 0);
        a->normalized = json_bool(e, "normalized", !a->special);
        a->match = a->content;
        a->match_len = a->content_len;
        i++;
        if (a->content_len == 0) continue; /* HF ignores empty added tokens */
        t->n_added++;
        if ((size_t)a->id + 1 > t->n_ids) t->n_ids = (size_t)a->id + 1;
    }
    return 0;
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
        buf_clear(&out);
        if (tokenizer_normalize(t, a->content, a->content_len, &out, &tmp, md, why)) {
            pcre2_match_data_free(md);
            buf_free(&out);
            buf_free(&tmp);
            return tokenizer_load_fail(L, "added_tokens", "normalizing \"%s\": %s", a->content, why[0] ? why : "out of memory");
        }
        a->match_len = out.n;
        a->match = tokenizer_dup(L, out.p ? out.p : "", out.n);
        if (!a->match) {
            pcre2_match_data_free(md);
            buf_free(&out);
            buf_free(&tmp);
            return tokenizer_load_fail(L, "added_tokens", "out of memory");
        }
    }
    pcre2_match_data_free(md);
    buf_free(&out);
    buf_free(&tmp);

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
    if (strmap_init(&special, t->n_added + 1)) return tokenizer_load_fail(L, "added_tokens", "out of memory");
    for (size_t i = 0; i < t->n_added; i++) {
        AddedToken *a = &t->added[i];
        /* decode uses the normalized form of added tokens (HF simple_id_to_token) */
        t->id_tok[a->id] = a->match;
        t->id_raw[a->id] = a->content;
        t->id_tok_len[a->id] = (uint32_t)a->match_len;
        if (a->special && strmap_put(&special, a->content, a->content_len, 1)) {
            strmap_free(&special);
            return tokenizer_load_fail(L, "added_tokens", "out of memory");
        }
    }
    for (size_t id = 0; id < t->n_ids; id++)
        if (t->id_tok[id] && strmap_get(&special, t->id_tok[id], t->id_tok_len[id]) >= 0) t->id_skip[id] = 1;
    strmap_free(&special);
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
    strmap_free(&t->vocab);
    pairmap_free(&t->merges);
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
    arena_free(&t->arena);
    free(t->path);
    free(t);
}

/* ------------------------------------------------------------------------------------------
 * Encoding.
 * ---------------------------------------------------------------------------------------- */

/* A piece of the text being encoded: bytes [off, off+len) of the list's text buffer, or (id
 * >= 0) an added token already matched.  origin: the piece starts at original offset 0. */
typedef struct {
    size_t off, len;
    int32_t id;
    int origin;
} Piece;

typedef struct {
    Piece *v;
    size_t n, cap;
    Buf text;
} PieceList;

static void plist_reset(PieceList *l) {
    l->n = 0;
    buf_clear(&l->text);
}

static void plist_free(PieceList *l) {
    free(l->v);
    buf_free(&l->text);
    memset(l, 0, sizeof *l);
}

static int plist_grow(PieceList *l) {
    if (l->n < l->cap) return 0;
    size_t cap = l->cap ? l->cap * 2 : 64;
    Piece *v = realloc(l->v, cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
    return 0;
}

/* Adds a text piece (copied); empty pieces are dropped as HF does. */
static int plist_add_text(PieceList *l, const char *s, size_t n, int origin) {
    if (n == 0) return 0;
    if (plist_grow(l)) return -1;
    size_t off = l->text.n;
    if (buf_put(&l->text, s, n)) return -1;
    l->v[l->n++] = (Piece){off, n, -1, origin};
    return 0;
}

static int plist_add_token(PieceList *l, int32_t id) {
    if (plist_grow(l)) return -1;
    l->v[l->n++] = (Piece){0, 0, id, 0};
    return 0;
}

typedef struct {
    int32_t id, prev, next;
    uint32_t len; /* bytes covered; 0 marks a symbol merged away */
} Sym;

typedef struct {
    uint64_t key; /* rank << 32 | position of the left symbol */
    int32_t new_id;
} HeapItem;

#define HEAP_KEY(rank, pos) (((uint64_t)(rank) << 32) | (uint32_t)(pos))

typedef struct {
    size_t start, end;
    int is_match;
} Seg;

/* Scratch space of one encode call. */
typedef struct {
    PieceList a, b, tmp;
    Buf norm, norm_tmp, word;
    Sym *syms;
    size_t syms_cap;
    HeapItem *heap;
    size_t heap_n, heap_cap;
    Seg *segs;
    size_t segs_n, segs_cap;
    int32_t *ids;
    size_t n_ids, ids_cap;
    pcre2_match_data *md;
    char why[TOK_WHY]; /* what failed, when it was not memory (a regex, the growth cap) */
} EncodeCtx;

static int ctx_push_id(EncodeCtx *c, int32_t id) {
    if (c->n_ids + 1 > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap * 2 : 256;
        int32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) return -1;
        c->ids = p;
        c->ids_cap = cap;
    }
    c->ids[c->n_ids++] = id;
    return 0;
}

static int ctx_push_seg(EncodeCtx *c, size_t s, size_t e, int m) {
    if (c->segs_n + 1 > c->segs_cap) {
        size_t cap = c->segs_cap ? c->segs_cap * 2 : 64;
        Seg *p = realloc(c->segs, cap * sizeof *p);
        if (!p) return -1;
        c->segs = p;
        c->segs_cap = cap;
    }
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
        if (prev != ms && ctx_push_seg(c, prev, ms, 0)) return -1;
        if (ctx_push_seg(c, ms, me, 1)) return -1;
        prev = me;
        if (me == ms) { /* empty match: step one character */
            if (me >= n) break;
            pos = me + utf8_len((unsigned char)s[me]);
        } else {
            pos = me;
        }
    }
    if (prev != n && ctx_push_seg(c, prev, n, 0)) return -1;
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
        if (plist_add_text(out, s + g[i].start, g[i].end - g[i].start, origin && g[i].start == 0)) return -1;
    return 0;
}

/* Runs the normalizer chain on s into out (tmp: scratch). */
static int tokenizer_normalize(const Tokenizer *t, const char *s, size_t n, Buf *out, Buf *tmp,
                               pcre2_match_data *md, char *why) {
    static const char *const kind_name[] = {"Prepend", "Replace", "Replace", "Lowercase", "Strip", "NFC"};
    const size_t cap = tokenizer_growth_cap(n);
    /* checked after every append, so that memory stays within the cap */
#define NORM_GROWN(b) ((b)->n > cap ? tokenizer_too_long(why, "normalizer", si, kind_name[st->kind], cap, n) : 0)
    buf_clear(out);
    if (buf_put(out, s, n)) return -1;
    for (size_t si = 0; si < t->n_norm; si++) {
        const NormStep *st = &t->norm[si];
        buf_clear(tmp);
        switch (st->kind) {
        case NORM_PREPEND:
            if (out->n == 0) continue;
            if (buf_put(tmp, st->a, st->alen) || buf_put(tmp, out->p, out->n) || NORM_GROWN(tmp)) return -1;
            break;
        case NORM_REPLACE_STR: {
            size_t i = 0;
            while (i < out->n) {
                const char *hit = out->n - i >= st->alen ? memmem(out->p + i, out->n - i, st->a, st->alen) : NULL;
                if (!hit) break;
                size_t h = (size_t)(hit - out->p);
                if (buf_put(tmp, out->p + i, h - i) || buf_put(tmp, st->b, st->blen) || NORM_GROWN(tmp)) return -1;
                i = h + st->alen;
            }
            if (buf_put(tmp, out->p + i, out->n - i) || NORM_GROWN(tmp)) return -1;
            break;
        }
        case NORM_REPLACE_RE: {
            size_t pos = 0, prev = 0;
            while (pos <= out->n) {
                int rc = pcre2_match(st->re, (PCRE2_SPTR)out->p, out->n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) return tokenizer_regex_why(why, rc, "normalizer Replace");
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (buf_put(tmp, out->p + prev, ov[0] - prev) || buf_put(tmp, st->b, st->blen) || NORM_GROWN(tmp)) return -1;
                prev = ov[1];
                if (ov[1] == ov[0]) {
                    if (ov[1] >= out->n) break;
                    size_t k = utf8_len((unsigned char)out->p[ov[1]]);
                    if (buf_put(tmp, out->p + ov[1], k) || NORM_GROWN(tmp)) return -1;
                    prev = ov[1] + k;
                    pos = prev;
                } else {
                    pos = ov[1];
                }
            }
            if (prev < out->n && buf_put(tmp, out->p + prev, out->n - prev)) return -1;
            if (NORM_GROWN(tmp)) return -1;
            break;
        }
        case NORM_LOWERCASE: /* see unicode_lower for the scripts covered */
            for (size_t i = 0; i < out->n;) {
                uint32_t cp, extra;
                int k = utf8_step((const unsigned char *)out->p, out->n, i, &cp);
                if (k < 0) return -1; /* cannot happen: text was checked */
                char enc[8];
                size_t m = utf8_encode(unicode_lower(cp, &extra), enc);
                if (extra) m += utf8_encode(extra, enc + m);
                if (buf_put(tmp, enc, m) || NORM_GROWN(tmp)) return -1;
                i += (size_t)k;
            }
            break;
        case NORM_STRIP: {
            size_t a = 0, b = out->n;
            uint32_t cp;
            if (st->left)
                while (a < b) {
                    int k = utf8_step((const unsigned char *)out->p, b, a, &cp);
                    if (k < 0 || !unicode_is_space(cp)) break;
                    a += (size_t)k;
                }
            if (st->right)
                while (b > a) {
                    size_t q = b - 1;
                    while (q > a && ((unsigned char)out->p[q] & 0xC0) == 0x80) q--;
                    int k = utf8_step((const unsigned char *)out->p, b, q, &cp);
                    if (k < 0 || !unicode_is_space(cp)) break;
                    b = q;
                }
            if (buf_put(tmp, out->p + a, b - a)) return -1;
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
    if (buf_reserve(out, 0)) return -1; /* ensure out->p exists */
    return 0;
#undef NORM_GROWN
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
    size_t k = utf8_len((unsigned char)s[a]);
    int rc = pcre2_match(t->re_word, (PCRE2_SPTR)(s + a), k, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) return tokenizer_regex_why(why, rc, "added_tokens single_word");
    return rc >= 0;
}

/* Cuts added tokens of `set` out of s (HF AddedVocabulary::find_matches), into out. */
static int tokenizer_split_added(const Tokenizer *t, EncodeCtx *c, const AddedSet *set,
                                 const char *s, size_t n, int origin, PieceList *out) {
    size_t prev = 0, i = 0;
    if (set->start[256] == 0) return plist_add_text(out, s, n, origin);
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
                int k = utf8_step((const unsigned char *)s, n, q, &cp);
                if (k < 0 || !unicode_is_space(cp)) break;
                ns = q;
            }
            start = ns;
        }
        if (hit->rstrip) {
            while (stop < n) {
                int k = utf8_step((const unsigned char *)s, n, stop, &cp);
                if (k < 0 || !unicode_is_space(cp)) break;
                stop += (size_t)k;
            }
        }
        if (prev < start && plist_add_text(out, s + prev, start - prev, origin && prev == 0)) return -1;
        if (plist_add_token(out, hit->id)) return -1;
        prev = i = stop;
    }
    if (prev < n && plist_add_text(out, s + prev, n - prev, origin && prev == 0)) return -1;
    return 0;
}

/* The merge queue is a 4-ary min-heap on key = rank << 32 | pos (lowest rank, then leftmost,
 * as HF orders its queue); 4-ary halves the depth of a binary heap, which matters for the
 * very long words of SentencePiece-style models (no pre-tokenizer: a whole text is one word). */
static int heap_push(EncodeCtx *c, HeapItem it) {
    if (c->heap_n + 1 > c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        HeapItem *p = realloc(c->heap, cap * sizeof *p);
        if (!p) return -1;
        c->heap = p;
        c->heap_cap = cap;
    }
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
    if (*ns + 1 > c->syms_cap) {
        size_t cap = c->syms_cap ? c->syms_cap * 2 : 256;
        Sym *p = realloc(c->syms, cap * sizeof *p);
        if (!p) return -1;
        c->syms = p;
        c->syms_cap = cap;
    }
    c->syms[*ns] = (Sym){id, (int32_t)*ns - 1, (int32_t)*ns + 1, (uint32_t)len};
    (*ns)++;
    return 0;
}

/* BPE of one pre-token w (n bytes of valid UTF-8): ids appended to c->ids.
 * Returns 0, -1 on out of memory, -2 if the unk token is missing from the vocab. */
static int tokenizer_bpe_word(const Tokenizer *t, EncodeCtx *c, const char *w, size_t n) {
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, w, n);
        if (id >= 0) return ctx_push_id(c, id);
    }
    size_t ns = 0, unk_len = 0;
    int have_unk = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((unsigned char)w[i]);
        if (k > n - i) k = n - i;
        const char *s = w + i;
        size_t slen = k;
        if ((t->prefix && i > 0) || (t->suffix && i + k == n)) {
            buf_clear(&c->word);
            if ((t->prefix && i > 0 && buf_put(&c->word, t->prefix, t->prefix_len)) || buf_put(&c->word, w + i, k) ||
                (t->suffix && i + k == n && buf_put(&c->word, t->suffix, t->suffix_len)))
                return -1;
            s = c->word.p;
            slen = c->word.n;
        }
        int32_t id = strmap_get(&t->vocab, s, slen);
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
        if (pairmap_get(&t->merges, y[i].id, y[i + 1].id, &rank, &nid) &&
            heap_push(c, (HeapItem){HEAP_KEY(rank, i), nid}))
            return -1;
    while (c->heap_n) {
        HeapItem top = heap_pop(c);
        uint32_t pos = (uint32_t)top.key;
        Sym *cur = &y[pos];
        if (cur->len == 0 || cur->next < 0) continue;
        Sym *right = &y[cur->next];
        if (!pairmap_get(&t->merges, cur->id, right->id, &rank, &nid) || nid != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0) y[cur->next].prev = (int32_t)pos;
        if (cur->prev >= 0 && pairmap_get(&t->merges, y[cur->prev].id, cur->id, &rank, &nid) &&
            heap_push(c, (HeapItem){HEAP_KEY(rank, cur->prev), nid}))
            return -1;
        if (cur->next >= 0 && pairmap_get(&t->merges, cur->id, y[cur->next].id, &rank, &nid) &&
            heap_push(c, (HeapItem){HEAP_KEY(rank, pos), nid}))
            return -1;
    }
    for (int32_t i = 0; i >= 0; i = y[i].next)
        if (ctx_push_id(c, y[i].id)) return -1;
    return 0;
}

/* One pre-tokenizer step on every text piece of in, into out. */
static int tokenizer_pre_step(const Tokenizer *t, EncodeCtx *c, const PreStep *st, const PieceList *in,
                              PieceList *out) {
    plist_reset(out);
    for (size_t pi = 0; pi < in->n; pi++) {
        const Piece *p = &in->v[pi];
        if (p->id >= 0) {
            if (plist_add_token(out, p->id)) return -1;
            continue;
        }
        const char *s = in->text.p + p->off;
        size_t n = p->len;
        if (st->kind == PRE_SPLIT) {
            if (tokenizer_split_regex(c, st->re, st->behavior, st->invert, s, n, p->origin, out)) return -1;
        } else if (st->kind == PRE_BYTELEVEL) {
            Buf *w = &c->word;
            buf_clear(w);
            if (st->add_prefix_space && s[0] != ' ' && buf_put(w, " ", 1)) return -1;
            if (buf_put(w, s, n)) return -1;
            plist_reset(&c->tmp);
            if (st->use_regex) {
                if (tokenizer_split_regex(c, t->re_gpt2, SPLIT_ISOLATED, 0, w->p, w->n, p->origin, &c->tmp)) return -1;
            } else if (plist_add_text(&c->tmp, w->p, w->n, p->origin)) {
                return -1;
            }
            for (size_t k = 0; k < c->tmp.n; k++) {
                const Piece *q = &c->tmp.v[k];
                if (plist_grow(out)) return -1;
                size_t off = out->text.n;
                if (buf_reserve(&out->text, 2 * q->len)) return -1;
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
            buf_clear(w);
            int starts = n >= st->repl_len && memcmp(s, st->repl, st->repl_len) == 0;
            int starts_space = n > 0 && s[0] == ' ';
            if (!starts && !starts_space &&
                (st->scheme == SCHEME_ALWAYS || (st->scheme == SCHEME_FIRST && p->origin)) &&
                buf_put(w, st->repl, st->repl_len))
                return -1;
            for (size_t j = 0; j < n; j++) {
                if (s[j] == ' ') {
                    if (buf_put(w, st->repl, st->repl_len)) return -1;
                } else if (buf_put(w, s + j, 1)) {
                    return -1;
                }
            }
            if (st->split) {
                if (tokenizer_split_regex(c, st->re, SPLIT_MERGED_NEXT, 0, w->p, w->n, p->origin, out)) return -1;
            } else if (plist_add_text(out, w->p, w->n, p->origin)) {
                return -1;
            }
        }
    }
    return 0;
}

static void ctx_free(EncodeCtx *c) {
    plist_free(&c->a);
    plist_free(&c->b);
    plist_free(&c->tmp);
    buf_free(&c->norm);
    buf_free(&c->norm_tmp);
    buf_free(&c->word);
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
    size_t bad = utf8_check(text, len);
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
    plist_reset(&c.b);
    for (size_t i = 0; i < c.a.n; i++) {
        const Piece *p = &c.a.v[i];
        if (p->id >= 0) {
            if (plist_add_token(&c.b, p->id)) goto oom;
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
            if (ctx_push_id(&c, t->post_prefix[i])) goto oom;
    for (size_t i = 0; i < cur->n; i++) {
        const Piece *p = &cur->v[i];
        if (p->id >= 0) {
            if (ctx_push_id(&c, p->id)) goto oom;
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
            if (ctx_push_id(&c, t->post_suffix[i])) goto oom;
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
    ctx_free(&c);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Decoding.
 * ---------------------------------------------------------------------------------------- */

/* A list of strings: data holds them back to back, off/len index it. */
typedef struct {
    Buf data;
    size_t *off, *len;
    size_t n, cap;
} TokList;

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
    if (buf_put(&l->data, s, n)) return -1;
    l->off[l->n] = off;
    l->len[l->n] = n;
    l->n++;
    return 0;
}

/* Empties the list (keeps its memory). */
static void toklist_reset(TokList *l) {
    l->n = 0;
    buf_clear(&l->data);
}

static void toklist_free(TokList *l) {
    buf_free(&l->data);
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
    if (utf8_check(bytes->p, bytes->n) == bytes->n) {
        r = toklist_add(out, bytes->p, bytes->n);
    } else {
        for (size_t i = 0; i < bytes->n && !r; i++) r = toklist_add(out, "\xEF\xBF\xBD", 3);
    }
    buf_clear(bytes);
    return r;
}

/* One decoder step; -2 when a Replace makes the tokens longer than cap bytes in all. */
static int tokenizer_dec_step(const Tokenizer *t, const DecStep *st, const TokList *in, TokList *out, Buf *tmp,
                              size_t cap) {
    toklist_reset(out);
    buf_clear(tmp);
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
            buf_clear(tmp);
            while (st->alen && j < n) {
                const char *hit = n - j >= st->alen ? memmem(s + j, n - j, st->a, st->alen) : NULL;
                if (!hit) break;
                size_t h = (size_t)(hit - s);
                if (buf_put(tmp, s + j, h - j) || buf_put(tmp, rep, rlen)) return -1;
                if (out->data.n + tmp->n > cap) return -2;
                j = h + st->alen;
            }
            if (buf_put(tmp, s + j, n - j) || toklist_add(out, tmp->p, tmp->n)) return -1;
            if (out->data.n > cap) return -2;
        }
        return 0;
    case DEC_BYTEFALLBACK:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            int b = tokenizer_byte_token(s, in->len[i]);
            if (b >= 0) {
                unsigned char ub = (unsigned char)b;
                if (buf_put(tmp, &ub, 1)) return -1;
                continue;
            }
            if (tokenizer_flush_bytes(out, tmp) || toklist_add(out, s, in->len[i])) return -1;
        }
        return tokenizer_flush_bytes(out, tmp);
    case DEC_FUSE:
        for (size_t i = 0; i < in->n; i++)
            if (buf_put(tmp, in->data.p + in->off[i], in->len[i])) return -1;
        return toklist_add(out, tmp->p ? tmp->p : "", tmp->n);
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->data.p + in->off[i];
            size_t n = in->len[i], a = 0, b = n;
            uint32_t cp;
            for (int k = 0; k < st->start && a < n; k++) {
                int l = utf8_step((const unsigned char *)s, n, a, &cp);
                if (l < 0 || cp != st->content) break;
                a += (size_t)l;
            }
            for (int k = 0; k < st->stop && b > a; k++) {
                size_t q = b - 1;
                while (q > a && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                int l = utf8_step((const unsigned char *)s, b, q, &cp);
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
            buf_clear(tmp);
            for (size_t j = 0; j < n;) {
                if (n - j >= st->repl_len && memcmp(s + j, st->repl, st->repl_len) == 0) {
                    if (!(i == 0 && st->prepend) && buf_put(tmp, " ", 1)) return -1;
                    j += st->repl_len;
                } else {
                    if (buf_put(tmp, s + j, 1)) return -1;
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
                int l = utf8_step((const unsigned char *)s, n, j, &cp);
                if (l < 0 || cp >= 324 || t->char_byte[cp] < 0) {
                    ok = 0;
                    break;
                }
                unsigned char b = (unsigned char)t->char_byte[cp];
                if (buf_put(tmp, &b, 1)) return -1;
                j += (size_t)l;
            }
            if (!ok) { /* a char outside the byte map: the token's raw bytes */
                tmp->n = start;
                if (buf_put(tmp, s, n)) return -1;
            }
        }
        Buf lossy = {0};
        if (utf8_put_lossy(&lossy, tmp->p ? tmp->p : "", tmp->n) ||
            toklist_add(out, lossy.p ? lossy.p : "", lossy.n)) {
            buf_free(&lossy);
            return -1;
        }
        buf_free(&lossy);
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
            if ((i && buf_put(&out, " ", 1)) || buf_put(&out, a.data.p + a.off[i], a.len[i])) goto oom;
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
            if (buf_put(&out, cur->data.p + cur->off[i], cur->len[i])) goto oom;
    }
    if (buf_reserve(&out, 0)) goto oom;
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
    buf_free(&tmp);
    buf_free(&out);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Accessors.
 * ---------------------------------------------------------------------------------------- */

size_t tokenizer_vocab_size(const Tokenizer *t) { return t ? t->n_ids : 0; }

int32_t tokenizer_bos_id(const Tokenizer *t) { return t ? t->bos_id : -1; }

int32_t tokenizer_eos_id(const Tokenizer *t) { return t ? t->eos_id : -1; }

const char *tokenizer_id_to_token(const Tokenizer *t, int32_t id) {
    if (!t || id < 0 || (size_t)id >= t->n_ids) return NULL;
    return t->id_raw[id];
}
