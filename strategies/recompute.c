/*
 * recompute.c — `recompute:W`: sliding window with re-computation (SPEC §2): for every step t a
 * fresh dense forward over x_{max(0,t-W)} .. x_t at positions 0 .. n-1, keeping the last
 * position's logits.  This is the quality upper bound StreamingLLM compares against, at
 * O(W) forward tokens per step.  Steps t <= W share one forward (their windows are prefixes).
 */
#include "strategies/strategy.h"
#include "engine/common.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t *hist;    /* (W) the last min(W, t) tokens of the stream, oldest first */
    int64_t n_hist;
    int32_t *tmp;     /* (W + chunk) history + the chunk */
    int64_t tmp_cap;
} RecomputeState;

static int recompute_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc != 1) return lcb_fail(err, errlen, "--strategy %s: expected recompute:W", s->spec);
    int64_t w;
    if (strategy_arg_int(s, "W", argv[0], 1, 1 << 24, &w, err, errlen)) return -1;
    s->param = (int)w;
    return 0;
}

static int recompute_begin(Strategy *s, char *err, size_t errlen) {
    RecomputeState *st = calloc(1, sizeof *st);
    if (!st || !(st->hist = malloc((size_t)s->param * sizeof(int32_t)))) {
        if (st) free(st);
        return lcb_fail(err, errlen, "--strategy %s: out of memory", s->spec);
    }
    s->priv = st;
    /* the fresh forward is a dense one: the model's own sliding window applies */
    return strategy_begin_dense(s, err, errlen);
}

static int recompute_feed(Strategy *s, const int32_t *ids, int n, const FwdOut *out, char *err, size_t errlen) {
    RecomputeState *st = s->priv;
    const int64_t W = s->param, t0 = s->n_fed, h = st->n_hist, V = s->m->cfg.vocab;
    if (h + n > st->tmp_cap) {
        int32_t *t = realloc(st->tmp, (size_t)(h + n) * sizeof *t);
        if (!t) return lcb_fail(err, errlen, "--strategy %s: out of memory", s->spec);
        st->tmp = t;
        st->tmp_cap = h + n;
    }
    /* tmp[k] holds position t0 - h + k */
    memcpy(st->tmp, st->hist, (size_t)h * sizeof *st->tmp);
    memcpy(st->tmp + h, ids, (size_t)n * sizeof *st->tmp);
    const int32_t *x = st->tmp;
    const int64_t base = t0 - h, end = t0 + n;
    /* steps t <= W: one forward over x_0 .. x_{min(end, W+1)-1} (h == t0 here) */
    int64_t pre_end = end < W + 1 ? end : W + 1;
    if (t0 < pre_end) {
        kv_reset(&s->kv);
        if (model_forward(s->m, &s->kv, x, (int)pre_end, (int)t0, out, err, errlen)) return -1;
    }
    for (int64_t t = t0 > W + 1 ? t0 : W + 1; t < end; t++) {
        kv_reset(&s->kv);
        FwdOut o = fwdout_shift(out, (size_t)(t - t0), (int)V);
        if (model_forward(s->m, &s->kv, x + (t - W - base), (int)W + 1, (int)W, &o, err, errlen)) return -1;
    }
    /* keep the last W tokens */
    int64_t keep = end < W ? end : W;
    memcpy(st->hist, st->tmp + (h + n - keep), (size_t)keep * sizeof *st->hist);
    st->n_hist = keep;
    return 0;
}

/* Every step is a fresh forward over its own window, so the state is only the last W tokens:
 * a resumed run keeps them instead of recomputing every window it already scored. */
static int recompute_skip(Strategy *s, const int32_t *ids, int64_t n, char *err, size_t errlen) {
    RecomputeState *st = s->priv;
    const int64_t W = s->param, h = st->n_hist, keep = h + n < W ? h + n : W, from_hist = keep - (n < keep ? n : keep);
    /* the new history: the last from_hist of the old one, then the last keep - from_hist of ids */
    memmove(st->hist, st->hist + (h - from_hist), (size_t)from_hist * sizeof *st->hist);
    memcpy(st->hist + from_hist, ids + (n - (keep - from_hist)), (size_t)(keep - from_hist) * sizeof *st->hist);
    st->n_hist = keep;
    return 0;
}

/* The copy is a fresh instance fed the last W tokens of the stream: the same state. */
static int recompute_clone(Strategy *dst, const Strategy *src, const int32_t *hist, int64_t n_hist, char *err, size_t errlen) {
    if (n_hist != src->n_fed || (!hist && n_hist))
        return lcb_fail(err, errlen, "--strategy %s: copying needs the stream fed so far", src->spec);
    Strategy s;
    if (strategy_parse(&s, src->spec, err, errlen)) return -1;
    s.resolved = 1;   /* src was; no second warning */
    if (strategy_begin(&s, src->m, err, errlen)) { strategy_end(&s); return -1; }
    int64_t keep = src->param < n_hist ? src->param : n_hist, V = src->m->cfg.vocab;
    float *lg = keep ? malloc((size_t)keep * (size_t)V * sizeof *lg) : NULL;
    if (keep && !lg) { strategy_end(&s); return lcb_fail(err, errlen, "out of memory"); }
    int rc = keep ? strategy_feed(&s, hist + n_hist - keep, (int)keep, lg, err, errlen) : 0;
    free(lg);
    if (rc) { strategy_end(&s); return -1; }
    /* the copy is at stream position n_hist although it was fed `keep` tokens */
    s.n_fed = src->n_fed;
    *dst = s;
    return 0;
}

/* The saved state is the same: the stream position and the last min(W, t) tokens.  Its cache
 * is scratch (reset before every forward), on whichever backend. */
typedef struct {
    char tag[8];            /* "LCBRCMP1" */
    int64_t W, n_fed, n_hist;
} RecomputeHead;

static int recompute_state_save(const Strategy *s, KvIO *io, char *err, size_t errlen) {
    const RecomputeState *st = s->priv;
    RecomputeHead h = {"LCBRCMP1", s->param, s->n_fed, st->n_hist};
    if (io->write(io->ctx, &h, sizeof h) || (st->n_hist && io->write(io->ctx, st->hist, (size_t)st->n_hist * sizeof *st->hist)))
        return lcb_fail(err, errlen, "--strategy %s: writing the state failed", s->spec);
    return 0;
}

static int recompute_state_load(Strategy *s, KvIO *io, char *err, size_t errlen) {
    RecomputeState *st = s->priv;
    RecomputeHead h;
    if (io->read(io->ctx, &h, sizeof h)) return lcb_fail(err, errlen, "--strategy %s: the saved state ends early", s->spec);
    if (memcmp(h.tag, "LCBRCMP1", 8)) return lcb_fail(err, errlen, "--strategy %s: the saved state is not a recompute state", s->spec);
    if (h.W != s->param) return lcb_fail(err, errlen, "--strategy %s: the saved state is of recompute:%lld", s->spec, (long long)h.W);
    if (h.n_fed < 0 || h.n_hist != (h.n_fed < h.W ? h.n_fed : h.W))
        return lcb_fail(err, errlen, "--strategy %s: the saved state holds %lld tokens at position %lld", s->spec, (long long)h.n_hist, (long long)h.n_fed);
    if (h.n_hist && io->read(io->ctx, st->hist, (size_t)h.n_hist * sizeof *st->hist))
        return lcb_fail(err, errlen, "--strategy %s: the saved state ends early", s->spec);
    for (int64_t i = 0; i < h.n_hist; i++)
        if (st->hist[i] < 0 || st->hist[i] >= s->m->cfg.vocab)
            return lcb_fail(err, errlen, "--strategy %s: the saved state holds token id %d (vocabulary %d)", s->spec, st->hist[i], s->m->cfg.vocab);
    st->n_hist = h.n_hist;
    s->n_fed = h.n_fed;
    return 0;
}

/* Each forward is fresh over at most W+1 tokens: a dense cache of min(T, W+1) tokens. */
static int recompute_shape(const Strategy *s, const ModelConfig *c, int64_t T, StrategyShape *o, char *err, size_t errlen) {
    strategy_shape_dense(s, c, T, o, err, errlen);
    o->held = o->rows = T < s->param + 1 ? T : s->param + 1;
    o->fresh = 1;
    return 0;
}

static int64_t recompute_span(const Strategy *s) { return s->param; }

static void recompute_end(Strategy *s) {
    RecomputeState *st = s->priv;
    if (st) { free(st->hist); free(st->tmp); free(st); }
    s->priv = NULL;
}

/* every step is a fresh forward from position 0, as in training */
static int recompute_as_trained(const Strategy *s) { return 1; }

const StrategyOps strategy_recompute = {
    .name = "recompute",
    .synopsis = "recompute:W",
    .help = "sliding window with re-computation: a fresh forward over the last W+1 tokens per step",
    .parse = recompute_parse,
    .begin = recompute_begin,
    .feed = recompute_feed,
    .end = recompute_end,
    .skip = recompute_skip,
    .clone = recompute_clone,
    .state_save = recompute_state_save,
    .state_load = recompute_state_load,
    .shape = recompute_shape,
    .span = recompute_span,
    .as_trained = recompute_as_trained,
};
