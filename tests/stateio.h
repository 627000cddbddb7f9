/*
 * stateio.h — a KvIO (engine/kvstate.h) over a growing memory buffer, for the tests that save a
 * strategy's state and load it back (test_strategies on the CPU, test_cuda on the GPU).
 */
#ifndef LCB_TESTS_STATEIO_H
#define LCB_TESTS_STATEIO_H

#include <stdlib.h>
#include <string.h>

#include "engine/kvstate.h"

typedef struct {
    unsigned char *p;
    size_t n, cap, at;   /* bytes held, allocated, read position */
    size_t limit;        /* reads past this fail (a truncated state); 0 = n */
} MemIO;

static int memio_write(void *ctx, const void *p, size_t n) {
    MemIO *b = ctx;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n) c *= 2;
        unsigned char *q = realloc(b->p, c);
        if (!q) return -1;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int memio_read(void *ctx, void *p, size_t n) {
    MemIO *b = ctx;
    size_t end = b->limit ? b->limit : b->n;
    if (b->at + n > end) return -1;
    memcpy(p, b->p + b->at, n);
    b->at += n;
    return 0;
}

static inline KvIO memio(MemIO *b) { return (KvIO){memio_write, memio_read, b}; }

#ifdef LCB_TESTS_STATEIO_RUN
#include "strategies/strategy.h"

/* Feed ids[t0 .. T) to s `chunk` at a time from its position t0, the NLLs of steps t0 .. T-2
 * into nll[t] (the chunk boundaries of strategy_score when t0 is a multiple of chunk). */
static void stateio_feed_rest(Strategy *s, const int32_t *ids, size_t T, size_t t0, size_t chunk, double *nll) {
    char err[LCB_ERRLEN];
    double *b = malloc(chunk * sizeof *b);
    int32_t *tg = malloc(chunk * sizeof *tg);
    assert_non_null(b);
    assert_non_null(tg);
    for (; t0 < T; t0 += chunk) {
        int n = (int)(T - t0 < chunk ? T - t0 : chunk);
        for (int i = 0; i < n; i++) tg[i] = t0 + i + 1 < T ? ids[t0 + i + 1] : -1;
        if (strategy_feed_nll(s, ids + t0, n, tg, b, err, sizeof err)) fail_msg("%s at %zu: %s", s->spec, t0, err);
        for (int i = 0; i < n && t0 + i + 1 < T; i++) nll[t0 + i] = b[i];
    }
    free(b);
    free(tg);
}

/* A resume through a saved state: feed k tokens (skip, as a resumed run does), save the
 * state, load it into a fresh instance of the spec and score steps k .. T-2 there into nll.
 * The loaded state saved again must be the same bytes; *bytes = the state's size. */
static void stateio_resume_nll(Model *m, const char *spec, const int32_t *ids, size_t T, size_t chunk, size_t k, double *nll,
                               size_t *bytes) {
    char err[LCB_ERRLEN];
    Strategy a, b;
    MemIO buf = {0}, again = {0};
    KvIO io = memio(&buf), io2 = memio(&again);
    if (strategy_parse(&a, spec, err, sizeof err) || strategy_begin(&a, m, err, sizeof err) ||
        strategy_skip(&a, ids, (int64_t)k, (int64_t)chunk, err, sizeof err) || strategy_state_save(&a, &io, err, sizeof err))
        fail_msg("%s: saving at %zu: %s", spec, k, err);
    strategy_end(&a);
    if (strategy_parse(&b, spec, err, sizeof err) || strategy_begin(&b, m, err, sizeof err) || strategy_state_load(&b, &io, err, sizeof err))
        fail_msg("%s: loading at %zu: %s", spec, k, err);
    if (buf.at != buf.n) fail_msg("%s: the load read %zu of the %zu bytes saved", spec, buf.at, buf.n);
    if (b.n_fed != (int64_t)k) fail_msg("%s: loaded at %lld, saved at %zu", spec, (long long)b.n_fed, k);
    if (strategy_state_save(&b, &io2, err, sizeof err)) fail_msg("%s: saving the loaded state: %s", spec, err);
    if (again.n != buf.n || memcmp(again.p, buf.p, buf.n)) fail_msg("%s at %zu: the loaded state saves to other bytes (%zu vs %zu)", spec, k, again.n, buf.n);
    stateio_feed_rest(&b, ids, T, k, chunk, nll);
    strategy_end(&b);
    *bytes = buf.n;
    free(buf.p);
    free(again.p);
}

/* The same through strategy_clone: the copy at k scores steps k .. T-2 into nll. */
static void stateio_clone_nll(Model *m, const char *spec, const int32_t *ids, size_t T, size_t chunk, size_t k, double *nll) {
    char err[LCB_ERRLEN];
    Strategy a, c;
    if (strategy_parse(&a, spec, err, sizeof err) || strategy_begin(&a, m, err, sizeof err) ||
        strategy_skip(&a, ids, (int64_t)k, (int64_t)chunk, err, sizeof err) || strategy_clone(&c, &a, ids, (int64_t)k, err, sizeof err))
        fail_msg("%s: cloning at %zu: %s", spec, k, err);
    strategy_end(&a);   /* the copy is independent */
    stateio_feed_rest(&c, ids, T, k, chunk, nll);
    strategy_end(&c);
}
#endif

#endif
