/*
 * fluency.c — the fluency detector (measures, verdict), its word list, its tables in the store,
 * the exact strategy-state copy, and the probes `run` takes every N tokens.  See fluency.h
 * for the measures and docs/fluency.md for how the thresholds below were calibrated.
 */
#include "harness/fluency/fluency.h"
#include "engine/common.h"
#include "harness/fluency/generate.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- thresholds
 *
 * Calibrated (docs/fluency.md) on every 128-token window (lcb tokenizer) of the first 1.5 MB of
 * Moby Dick (3132 windows), SOTU (2777) and SpamAssassin (4000), the fluent class, against
 * synthetic newline floods, random bytes, U+FFFD runs, symbol soup, uniformly random
 * vocabulary tokens and token loops of period 1..50.  Extremes of the fluent prose (Moby Dick /
 * SOTU): newline run max 3 / 1, newline fraction max 0.086 / 0.002, bad fraction max 0.003 / 0,
 * alpha fraction min 0.76 / 0.76, dictionary ratio min 0.69 / 0.87, repeated n-gram fraction
 * max 0.21 / 0.27, distinct-3 min 0.58 / 0.74.  Random-token windows: dictionary ratio median
 * 0.49, p90 0.58, max 0.66 (the one overlap of the classes, at their tails).  SpamAssassin
 * bodies hold real floods, tables and base64: 3.6% of its windows are flagged, by eye rightly. */
#define FLU_NEWLINE_RUN 8       /* >= 8 newlines with only blanks between: a flood */
#define FLU_NEWLINE_FRAC 0.25   /* or a quarter of the code points are newlines */
#define FLU_BAD_FRAC 0.02       /* >= 2% U+FFFD / invalid bytes / control characters */
#define FLU_ALPHA_MIN 0.40      /* < 40% letters among non-blank code points ... */
#define FLU_ALPHA_MIN_CHARS 16  /* ... over at least 16 of them */
#define FLU_DICT_MIN 0.62       /* < 62% dictionary words ... */
#define FLU_DICT_MIN_WORDS 8    /* ... over at least 8 words */
#define FLU_REP_FRAC 0.40       /* a repeated n-gram covering >= 40% of the window */
#define FLU_DISTINCT3_MIN 0.40  /* or < 40% distinct trigrams */
#define FLU_REP_MIN_UNITS 12    /* repetition rules need at least 12 units */

/* ---------------------------------------------------------------- word list */

struct FluencyDict {
    char **slot;     /* open addressing, lowercase words */
    size_t cap;      /* power of two */
    size_t n;
    char *data;      /* the file */
};

static uint64_t hash_word(const char *w, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)tolower((unsigned char)w[i])) * 1099511628211ull;
    return h;
}

static int word_eq(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != (unsigned char)b[i]) return 0;
    return b[n] == 0;
}

FluencyDict *fluency_dict_load(const char *path, char *err, size_t errlen) {
    if (!path) path = FLUENCY_WORDLIST;
    FluencyDict *d = calloc(1, sizeof *d);
    size_t len;
    if (!d) { lcb_fail(err, errlen, "out of memory"); return NULL; }
    if (lcb_read_file(path, &d->data, &len, err, errlen)) {
        lcb_prefix(err, errlen, "word list %s (Debian package wamerican: apt-get install wamerican, or make deps)", path);
        free(d);
        return NULL;
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += d->data[i] == '\n';
    d->cap = 1;
    while (d->cap < 2 * lines) d->cap *= 2;
    if (!(d->slot = calloc(d->cap, sizeof *d->slot))) { fluency_dict_free(d); lcb_fail(err, errlen, "out of memory"); return NULL; }
    for (char *p = d->data, *e; *p; p = e) {
        e = p + strcspn(p, "\r\n");
        size_t n = (size_t)(e - p);
        if (*e) *e++ = 0;
        if (!n) continue;
        for (size_t i = 0; i < n; i++) p[i] = (char)tolower((unsigned char)p[i]);
        size_t h = hash_word(p, n) & (d->cap - 1);
        while (d->slot[h] && strcmp(d->slot[h], p)) h = (h + 1) & (d->cap - 1);
        if (!d->slot[h]) { d->slot[h] = p; d->n++; }
    }
    if (d->n == 0) { fluency_dict_free(d); lcb_fail(err, errlen, "word list %s: no words", path); return NULL; }
    return d;
}

void fluency_dict_free(FluencyDict *d) {
    if (!d) return;
    free(d->slot);
    free(d->data);
    free(d);
}

int fluency_dict_has(const FluencyDict *d, const char *w, size_t n) {
    size_t h = hash_word(w, n) & (d->cap - 1);
    for (; d->slot[h]; h = (h + 1) & (d->cap - 1))
        if (word_eq(w, d->slot[h], n)) return 1;
    return 0;
}

/* ---------------------------------------------------------------- measures */

/* Next code point of s[i..len): its value (-1 for an invalid byte) and length. */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t i, size_t *adv) {
    unsigned c = s[i];
    *adv = 1;
    if (c < 0x80) return (int32_t)c;
    int n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (!n || (c >= 0xF0 && n != 4) || i + (size_t)n > len) return -1;
    uint32_t v = c & (0xFF >> (n + 1));
    for (int k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return -1;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    /* overlong, surrogate, out of range */
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF)) return -1;
    *adv = (size_t)n;
    return (int32_t)v;
}

static int is_blank_cp(int32_t c) { return c == ' ' || c == '\t' || c == '\r' || c == 0xA0; }

/* Longest n-gram occurring twice (overlaps allowed), in expected O(n): the suffix automaton of u
 * (Blumer et al. 1985).  Each state stands for a set of substrings that end at the same set of
 * positions; the longest of them has len(state) units, and it occurs twice when the state ends
 * at two or more positions.  The old pairwise DP was O(n^2): 300 KB of text took 45 s.
 * Transitions (at most 3n) live in one open-addressing table keyed by (state, unit), each also
 * on its state's list so that a clone can copy them.  *ops (if non-NULL) counts the loop steps
 * and table probes, for the test that the work grows linearly.  0 when memory runs out, or for
 * 2^29 units or more (indices are 32-bit). */
typedef struct {
    int32_t *len, *link, *cnt, *head; /* per state: longest length, suffix link, end positions, edges */
    uint64_t *ekey;                   /* per edge: state << 32 | unit */
    int32_t *eto, *enext;             /* per edge: target state, next edge of the same state */
    int32_t *slot;                    /* hash table: edge index + 1, 0 = empty */
    uint64_t mask, ops;
    int32_t n_edges;
} Sam;

static uint64_t sam_key(int32_t state, int32_t unit) { return (uint64_t)(uint32_t)state << 32 | (uint32_t)unit; }

/* The table slot of (state, unit): holding its edge, or the empty slot where it would go. */
static uint64_t sam_slot(Sam *a, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull; /* splitmix64's finaliser: every key bit reaches the low bits */
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    for (;; h++) {
        a->ops++;
        int32_t e = a->slot[h & a->mask];
        if (!e || a->ekey[e - 1] == key) return h & a->mask;
    }
}

static int32_t sam_get(Sam *a, int32_t state, int32_t unit) {
    int32_t e = a->slot[sam_slot(a, sam_key(state, unit))];
    return e ? a->eto[e - 1] : -1;
}

/* Set the transition (state, unit) -> to, adding the edge if it is new. */
static void sam_set(Sam *a, int32_t state, int32_t unit, int32_t to) {
    uint64_t key = sam_key(state, unit), h = sam_slot(a, key);
    if (a->slot[h]) { a->eto[a->slot[h] - 1] = to; return; }
    int32_t e = a->n_edges++;
    a->ekey[e] = key;
    a->eto[e] = to;
    a->enext[e] = a->head[state];
    a->head[state] = e;
    a->slot[h] = e + 1;
}

int64_t fluency_longest_repeat(const int32_t *u, int64_t n, uint64_t *ops) {
    if (ops) *ops = 0;
    if (n < 2 || n >= (1 << 29)) return 0;
    const size_t states = 2 * (size_t)n + 1, edges = 3 * (size_t)n + 4;
    size_t cap = 1;
    while (cap < 2 * edges) cap *= 2;
    Sam a = {0};
    a.mask = cap - 1;
    a.len = malloc(states * sizeof *a.len);
    a.link = malloc(states * sizeof *a.link);
    a.cnt = calloc(states, sizeof *a.cnt);
    a.head = malloc(states * sizeof *a.head);
    a.ekey = malloc(edges * sizeof *a.ekey);
    a.eto = malloc(edges * sizeof *a.eto);
    a.enext = malloc(edges * sizeof *a.enext);
    a.slot = calloc(cap, sizeof *a.slot);
    int64_t best = 0;
    int32_t *order = NULL, *bucket = NULL;
    if (!a.len || !a.link || !a.cnt || !a.head || !a.ekey || !a.eto || !a.enext || !a.slot) goto out;
    int32_t size = 1, last = 0;
    a.len[0] = 0;
    a.link[0] = -1;
    a.head[0] = -1;
    for (int64_t i = 0; i < n; i++) {
        const int32_t c = u[i], cur = size++;
        a.len[cur] = a.len[last] + 1;
        a.cnt[cur] = 1;
        a.head[cur] = -1;
        int32_t p = last;
        for (; p != -1 && sam_get(&a, p, c) < 0; p = a.link[p]) sam_set(&a, p, c, cur);
        if (p == -1) a.link[cur] = 0;
        else {
            int32_t q = sam_get(&a, p, c);
            if (a.len[p] + 1 == a.len[q]) a.link[cur] = q;
            else { /* split q: a clone takes the shorter substrings */
                int32_t cl = size++;
                a.len[cl] = a.len[p] + 1;
                a.link[cl] = a.link[q];
                a.head[cl] = -1;
                for (int32_t e = a.head[q]; e >= 0; e = a.enext[e]) {
                    a.ops++;
                    sam_set(&a, cl, (int32_t)(uint32_t)a.ekey[e], a.eto[e]);
                }
                for (; p != -1 && sam_get(&a, p, c) == q; p = a.link[p]) sam_set(&a, p, c, cl);
                a.link[q] = a.link[cur] = cl;
            }
        }
        last = cur;
    }
    /* end positions: add each state's count to its suffix link, longest states first (a
     * counting sort by length) */
    order = malloc((size_t)size * sizeof *order);
    bucket = calloc((size_t)n + 2, sizeof *bucket);
    if (!order || !bucket) goto out;
    for (int32_t v = 0; v < size; v++) bucket[a.len[v]]++;
    for (int64_t l = 1; l <= n; l++) bucket[l] += bucket[l - 1];
    for (int32_t v = size - 1; v >= 0; v--) order[--bucket[a.len[v]]] = v;
    for (int32_t k = size - 1; k > 0; k--) {
        int32_t v = order[k];
        a.ops++;
        if (a.cnt[v] >= 2 && a.len[v] > best) best = a.len[v];
        a.cnt[a.link[v]] += a.cnt[v];
    }
out:
    if (ops) *ops = a.ops;
    free(order); free(bucket);
    free(a.len); free(a.link); free(a.cnt); free(a.head);
    free(a.ekey); free(a.eto); free(a.enext); free(a.slot);
    return best;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double distinct3(const int32_t *u, int64_t n) {
    if (n < 3) return 1.0;
    uint64_t *g = malloc((size_t)(n - 2) * sizeof *g);
    if (!g) return 1.0;
    for (int64_t i = 0; i + 2 < n; i++)
        g[i] = ((uint64_t)(uint32_t)u[i] & 0x1FFFFF) << 42 | ((uint64_t)(uint32_t)u[i + 1] & 0x1FFFFF) << 21 |
               ((uint64_t)(uint32_t)u[i + 2] & 0x1FFFFF);
    qsort(g, (size_t)(n - 2), sizeof *g, cmp_u64);
    int64_t d = 1;
    for (int64_t i = 1; i < n - 2; i++) d += g[i] != g[i - 1];
    free(g);
    return (double)d / (double)(n - 2);
}

void fluency_measure(const char *text, size_t len, const int32_t *ids, size_t n_ids, const FluencyDict *dict,
                     FluencyMetrics *m) {
    memset(m, 0, sizeof *m);
    const unsigned char *s = (const unsigned char *)text;
    int64_t nl = 0, run = 0, letters = 0, nonblank = 0, words = 0, known = 0;
    char word[64];
    size_t wl = 0;
    int word_long = 0;
    for (size_t i = 0, adv = 1; i <= len; i += adv) {
        int32_t c = i < len ? utf8_next(s, len, i, &adv) : ' ';
        if (i == len) adv = 1;
        /* words: ASCII letters, apostrophes (' or U+2019) inside */
        int letter = (c < 0x80 && c >= 0 && isalpha(c));
        int apos = (c == '\'' || c == 0x2019) && wl > 0 && i + adv < len && isalpha(s[i + adv]);
        if (letter || apos) {
            if (wl < sizeof word - 1) word[wl++] = letter ? (char)c : '\''; else word_long = 1;
        } else if (wl) {
            words++;
            if (dict && !word_long && fluency_dict_has(dict, word, wl)) known++;
            wl = 0;
            word_long = 0;
        }
        if (i == len) break;
        m->chars++;
        if (c < 0 || c == 0xFFFD || (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || (c >= 0x7F && c < 0xA0)) m->bad_chars++;
        if (c == '\n') { nl++; run++; if (run > m->newline_run) m->newline_run = run; }
        else if (!is_blank_cp(c)) run = 0;
        if (c != '\n' && !is_blank_cp(c)) {
            nonblank++;
            if (letter || (c >= 0xC0 && c != 0xD7 && c != 0xF7 && c < 0x2000 && c != 0xFFFD)) letters++;
        }
    }
    m->newline_frac = m->chars ? (double)nl / (double)m->chars : 0;
    m->bad_frac = m->chars ? (double)m->bad_chars / (double)m->chars : 0;
    m->alpha_frac = nonblank ? (double)letters / (double)nonblank : 1.0;
    m->words = words;
    m->dict_ratio = dict && words ? (double)known / (double)words : NAN;
    /* repetition units: the token ids, else the bytes */
    int32_t *u = NULL;
    int64_t n = 0;
    if (ids) { u = (int32_t *)ids; n = (int64_t)n_ids; }
    else if ((u = malloc((len ? len : 1) * sizeof *u))) { for (size_t i = 0; i < len; i++) u[i] = s[i]; n = (int64_t)len; }
    m->tokens = n;
    m->rep_len = u ? fluency_longest_repeat(u, n, NULL) : 0;
    m->rep_frac = n ? (double)m->rep_len / (double)n : 0;
    m->distinct3 = u ? distinct3(u, n) : 1.0;
    if (!ids) free(u);
}

FluencyVerdict fluency_verdict(const FluencyMetrics *m) {
    if (m->newline_run >= FLU_NEWLINE_RUN || m->newline_frac >= FLU_NEWLINE_FRAC) return FLU_NEWLINE_FLOOD;
    if (m->bad_frac >= FLU_BAD_FRAC) return FLU_GARBAGE;
    /* a loop before the lexical rules: a loop of word fragments glues into non-words */
    if (m->tokens >= FLU_REP_MIN_UNITS && (m->rep_frac >= FLU_REP_FRAC || m->distinct3 < FLU_DISTINCT3_MIN))
        return FLU_REPETITION_LOOP;
    int64_t nonblank_est = (int64_t)(m->chars * (1 - m->newline_frac));
    if (nonblank_est >= FLU_ALPHA_MIN_CHARS && m->alpha_frac < FLU_ALPHA_MIN) return FLU_GARBAGE;
    if (m->words >= FLU_DICT_MIN_WORDS && !isnan(m->dict_ratio) && m->dict_ratio < FLU_DICT_MIN) return FLU_GARBAGE;
    return FLU_FLUENT;
}

const char *fluency_verdict_name(FluencyVerdict v) {
    static const char *const names[] = {"fluent", "newline-flood", "garbage", "repetition-loop"};
    return (unsigned)v < 4 ? names[v] : "?";
}

/* ---------------------------------------------------------------- store */

/* A window's row (the tables are made by store.c's migrations). */
int fluency_store_window(Store *st, const char *table, int64_t owner, int64_t prompt_idx, int64_t pos, const char *text,
                         size_t len, const FluencyMetrics *m, FluencyVerdict v, char *err, size_t errlen) {
    const StoreVal row[] = {
        SV_INT(strcmp(table, "probes") ? "gen_id" : "run_id", owner),
        prompt_idx >= 0 ? SV_INT("prompt_idx", prompt_idx) : SV_NULL("prompt_idx"),
        SV_INT("pos", pos), SV_INT("tokens", m->tokens), SV_TEXTN("text", text ? text : "", text ? len : 0),
        SV_TEXT("verdict", fluency_verdict_name(v)), SV_INT("chars", m->chars), SV_INT("newline_run", m->newline_run),
        SV_REAL("newline_frac", m->newline_frac), SV_INT("bad_chars", m->bad_chars), SV_REAL("bad_frac", m->bad_frac),
        SV_REAL("alpha_frac", m->alpha_frac), SV_INT("words", m->words), SV_REAL("dict_ratio", m->dict_ratio) /* NAN: NULL */,
        SV_INT("rep_len", m->rep_len), SV_REAL("rep_frac", m->rep_frac), SV_REAL("distinct3", m->distinct3),
    };
    return store_row_insert(st, table, row, sizeof row / sizeof *row, NULL, err, errlen);
}

/* ---------------------------------------------------------------- strategy state */

int strategy_can_generate(const Strategy *s) { return s->ops && !s->ops->whole_input; }

/* strategy_clone: strategies/strategy.c (each policy owns its copy) */

/* ---------------------------------------------------------------- probes */

int fluency_probe_step(FluencyProbe *p, Store *st, int64_t run_id, const Strategy *s, const int32_t *ids, int64_t n_ids,
                       int64_t pos, char *err, size_t errlen) {
    if (p->every <= 0 || p->tokens <= 0) return 0;
    if (p->next <= 0) p->next = p->every;
    if (pos < p->next || pos >= n_ids) return 0;
    while (p->next <= pos) p->next += p->every;
    /* the probe continues x_0 .. x_pos: the copy of the stream's state after x_0 .. x_{pos-1},
     * fed x_pos, then G greedy tokens */
    Strategy c;
    if (strategy_clone(&c, s, ids, pos, err, errlen)) return -1;
    Sampler sm;
    sampler_init(&sm, 0, 0, 1.0, 0);
    int32_t *out = malloc((size_t)p->tokens * sizeof *out);
    int rc = out ? gen_tokens(&c, ids + pos, 1, &sm, out, p->tokens, NULL, NULL, err, errlen)
                 : lcb_fail(err, errlen, "out of memory");
    strategy_end(&c);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0 && p->tok && tokenizer_decode(p->tok, out, (size_t)p->tokens, 0, &text, &len, err, errlen)) rc = -1;
    if (rc == 0) {
        FluencyMetrics m;
        fluency_measure(text ? text : "", len, out, (size_t)p->tokens, p->dict, &m);
        rc = fluency_store_window(st, "probes", run_id, -1, pos + 1, text, len, &m, fluency_verdict(&m), err, errlen);
    }
    free(text);
    free(out);
    return rc;
}
