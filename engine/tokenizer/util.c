/*
 * util.c — the tokenizer's small utilities: error messages, growable byte buffers, an arena
 * for strings whose pointers stay valid, UTF-8 stepping and encoding, the few Unicode properties
 * the normalizers need, and two open-addressing hash maps: the vocabulary (string -> id) and the
 * merges ((left id, right id) -> (rank, merged id)).
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

void tokenizer_set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A match-time PCRE2 failure (match limit, depth limit, JIT stack, ...) in words; returns -1. */
int tokenizer_regex_why(char *why, int rc, const char *where) {
    PCRE2_UCHAR msg[160];
    if (pcre2_get_error_message(rc, msg, sizeof msg) < 0) snprintf((char *)msg, sizeof msg, "PCRE2 error %d", rc);
    snprintf(why, TOK_WHY, "%s regex failed while matching: %s (PCRE2 error %d)", where, (char *)msg, rc);
    return -1;
}

size_t tokenizer_growth_cap(size_t n) {
    return n > (SIZE_MAX - TOK_GROWTH_SLACK) / TOK_GROWTH_MAX ? SIZE_MAX : n * TOK_GROWTH_MAX + TOK_GROWTH_SLACK;
}

int tokenizer_too_long(char *why, const char *chain, size_t step, const char *kind, size_t cap, size_t n) {
    snprintf(why, TOK_WHY, "%s step %zu (%s) grows the text past %zu bytes (%d times its %zu bytes + %d): "
             "an unbounded %s is refused", chain, step, kind, cap, TOK_GROWTH_MAX, n, TOK_GROWTH_SLACK, chain);
    return -1;
}

int tok_buf_reserve(Buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_put(Buf *b, const void *s, size_t n) {
    if (tok_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

void tok_buf_clear(Buf *b) {
    b->n = 0;
    if (b->p) b->p[0] = 0;
}

void tok_buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

char *tok_arena_strdup(Arena *a, const char *s, size_t n) {
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

void tok_arena_free(Arena *a) {
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
int tok_utf8_step(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
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
size_t tok_utf8_check(const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        int k = tok_utf8_step((const unsigned char *)s, n, i, &cp);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return n;
}

/* Length of the (valid) UTF-8 character starting with byte c. */
size_t tok_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

size_t tok_utf8_encode(uint32_t cp, char out[4]) {
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
int tok_utf8_put_lossy(Buf *out, const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t j = i;
        int k = 0;
        while (j < n && (k = tok_utf8_step((const unsigned char *)s, n, j, &cp)) > 0) j += (size_t)k;
        if (tok_buf_put(out, s + i, j - i)) return -1;
        if (j >= n) break;
        if (tok_buf_put(out, "\xEF\xBF\xBD", 3)) return -1;
        i = j + (size_t)(-k);
    }
    return 0;
}

/* Unicode White_Space (what Rust's char::is_whitespace and regex \s accept). */
int tok_unicode_is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Simple lowercase of one code point (Rust char::to_lowercase) for ASCII, Latin-1, Latin
 * Extended-A/Additional, Greek, Cyrillic, Armenian and fullwidth Latin; others unchanged.
 * U+0130 (İ) lowercases to two code points: returns 0x69 and sets *extra = 0x307. */
uint32_t tok_unicode_lower(uint32_t c, uint32_t *extra) {
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

static uint64_t tokenizer_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int tok_strmap_init(StrMap *m, size_t expected) {
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

void tok_strmap_free(StrMap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    free(m->hashes);
    memset(m, 0, sizeof *m);
}

static int tok_strmap_grow(StrMap *m);

/* Inserts or overwrites. */
int tok_strmap_put(StrMap *m, const char *k, size_t len, int32_t v) {
    if ((m->n + 1) * 2 > m->cap && tok_strmap_grow(m)) return -1;
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

static int tok_strmap_grow(StrMap *m) {
    StrMap nm;
    if (tok_strmap_init(&nm, m->cap)) {
        tok_strmap_free(&nm);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) tok_strmap_put(&nm, m->keys[i], m->lens[i], m->vals[i]);
    tok_strmap_free(m);
    *m = nm;
    return 0;
}

/* Value of key, or -1. */
int32_t tok_strmap_get(const StrMap *m, const char *k, size_t len) {
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

static uint64_t tok_pairmap_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

int tok_pairmap_init(PairMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    m->cap = cap;
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    return 0;
}

void tok_pairmap_free(PairMap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Later inserts of the same pair overwrite earlier ones (as HF's HashMap collect does). */
void tok_pairmap_put(PairMap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = tok_pairmap_hash(k) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != k) i = (i + 1) & (m->cap - 1);
    m->slots[i] = (PairSlot){k, rank, new_id};
}

/* Returns 1 and fills rank/new_id if the pair merges, else 0. */
int tok_pairmap_get(const PairMap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = tok_pairmap_hash(k) & (m->cap - 1);
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
