/*
 * strategy.c — the registry of cache policies (its order is the display order of reports), the
 * shared-KV-cache defaults for begin/feed/shape/clone, the resolution of bare specs against the
 * model's context, and the scoring loop every command uses (score, run, tests).
 */
#include "strategies/strategy.h"
#include "engine/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const StrategyOps *const registry[] = {
    &strategy_dense, &strategy_window, &strategy_sink, &strategy_recompute, &strategy_longlora, &strategy_s2,
};

const StrategyOps *const *strategy_list(size_t *n) {
    *n = sizeof registry / sizeof *registry;
    return registry;
}

int strategy_arg_int(const Strategy *s, const char *what, const char *arg, int64_t lo, int64_t hi,
                     int64_t *out, char *err, size_t errlen) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (!*arg || *end || errno || v < lo || v > hi)
        return lcb_fail(err, errlen, "--strategy %s: %s \"%s\" must be an integer in [%lld, %lld] (%s)", s->spec, what, arg,
                        (long long)lo, (long long)hi, s->ops->synopsis);
    *out = v;
    return 0;
}

int strategy_rank(const char *spec) {
    size_t n, len = strcspn(spec ? spec : "", ":");
    const StrategyOps *const *list = strategy_list(&n);
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]->name) == len && !strncmp(list[i]->name, spec, len)) return (int)i;
    return (int)n;
}

int strategy_parse(Strategy *s, const char *spec, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (!spec || !*spec) return lcb_fail(err, errlen, "--strategy: empty spec");
    if (strlen(spec) >= sizeof s->spec) return lcb_fail(err, errlen, "--strategy: spec too long");
    snprintf(s->spec, sizeof s->spec, "%s", spec);
    char buf[128], *argv[8];
    snprintf(buf, sizeof buf, "%s", spec);
    int argc = 0;
    char *save = NULL, *name = strtok_r(buf, ":", &save);
    if (!name) return lcb_fail(err, errlen, "--strategy \"%s\": no policy name", spec);
    for (char *a; (a = strtok_r(NULL, ":", &save));) {
        if (argc == 8) return lcb_fail(err, errlen, "--strategy \"%s\": too many arguments", spec);
        argv[argc++] = a;
    }
    /* "a::b" would silently drop an empty argument: refuse it */
    if (strstr(spec, "::") || spec[strlen(spec) - 1] == ':')
        return lcb_fail(err, errlen, "--strategy \"%s\": empty argument", spec);
    size_t n;
    const StrategyOps *const *list = strategy_list(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i]->name, name)) {
            s->ops = list[i];
            s->window = -1;
            return s->ops->parse(s, argc, argv, err, errlen);
        }
    char known[512] = "";
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(known);
        snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", list[i]->synopsis);
    }
    return lcb_fail(err, errlen, "--strategy \"%s\": unknown policy \"%s\" (known: %s)", spec, name, known);
}

int strategy_begin_dense(Strategy *s, char *err, size_t errlen) {
    const ModelConfig *c = &s->m->cfg;
    s->n_sink = 0;
    s->window = c->sliding_window > 0 ? c->sliding_window - 1 : -1;
    if (kv_init(&s->kv, c, s->m->device, 0, s->window, s->rope_factor, err, errlen)) return -1;
    s->kv_live = 1;
    return 0;
}

/* ---------------------------------------------------------------- defaults from the model */

int64_t strategy_span(const Strategy *s) {
    if (s->ops->span) return s->ops->span(s);
    return s->window < 0 ? -1 : s->n_sink + s->window;
}

int strategy_as_trained(const Strategy *s, int64_t max_pos) {
    int64_t span = strategy_span(s);
    return s->ops->as_trained && s->ops->as_trained(s) && max_pos > 0 && span >= 0 && span <= max_pos;
}

/* Once per process for each (spec, context): a sweep or the probes of one run parse the same
 * spec many times. */
static void warn_fit(const Strategy *s, int64_t ctx) {
    static char seen[8][160];
    static int n_seen;
    char key[160];
    snprintf(key, sizeof key, "%s@%lld", s->spec, (long long)ctx);
    for (int i = 0; i < n_seen; i++)
        if (!strcmp(seen[i], key)) return;
    int64_t span = strategy_span(s), sinks = s->n_sink > 0 ? s->n_sink : 0;
    if (s->window == 0 && span >= 0)
        fprintf(stderr, "lcbench: warning: --strategy %s keeps a recent window of 0 tokens: each step sees %s only\n", s->spec,
                sinks ? "its sinks and itself" : "itself");
    else if (ctx > 0 && span > ctx)
        fprintf(stderr, "lcbench: warning: --strategy %s keeps %lld previous tokens (%lld sinks + %lld recent), more than the model's "
                "context of %lld (max_position_embeddings), so it attends across positions the model never trained on%s\n",
                s->spec, (long long)span, (long long)sinks, (long long)(span - sinks), (long long)ctx,
                s->ops->resolve ? "; the bare name is sized to fit" : "");
    else return;
    if (n_seen < 8) snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
}

int strategy_resolve(Strategy *s, const ModelConfig *c, char *err, size_t errlen) {
    if (s->resolved) return 0;
    if (s->open) {
        if (!s->ops->resolve) return lcb_fail(err, errlen, "--strategy %s: needs arguments (%s)", s->spec, s->ops->synopsis);
        if (s->ops->resolve(s, c, err, errlen)) return -1;
        s->open = 0;
    }
    s->resolved = 1;
    warn_fit(s, c ? c->max_pos : 0);
    return 0;
}

int strategy_spec_for_ctx(const char *spec, int64_t ctx, char *out, size_t n, char *err, size_t errlen) {
    Strategy s;
    if (strategy_parse(&s, spec, err, errlen)) return -1;
    if (s.open) {
        ModelConfig c;
        memset(&c, 0, sizeof c);
        c.max_pos = (int)ctx;
        if (s.ops->resolve(&s, &c, err, errlen)) return -1;
    }
    snprintf(out, n, "%s", s.spec);
    return 0;
}

/* ---------------------------------------------------------------- cache shape (plan) */

static int64_t grow_cap(int64_t need) {
    int64_t cap = 256;   /* kv_reserve: an unbounded cache doubles from 256 tokens */
    while (cap < need) cap *= 2;
    return need <= 0 ? 0 : cap;
}

int strategy_shape(Strategy *s, const ModelConfig *c, int64_t T, int64_t chunk, int elt, StrategyShape *o, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    if (T < 1) return lcb_fail(err, errlen, "--tokens must be at least 1");
    if (strategy_resolve(s, c, err, errlen)) return -1;
    o->chunk = chunk > 0 && chunk < T ? chunk : T;
    if (s->ops->shape) {
        if (s->ops->shape(s, c, T, o, err, errlen)) return -1;
    } else {
        o->n_sink = s->n_sink;
        o->window = s->window;
        o->held = T;
        o->rows = o->chunk;
    }
    /* the formula counts 4-byte values; a bf16 cache stores 2 */
    o->kv_formula = (int64_t)kv_bytes_formula(c, o->n_sink, o->window, (uint64_t)o->held) / 4 * elt;
    const int64_t row = (int64_t)c->n_kv * c->head_dim * elt, L = c->n_layers;
    int64_t kv = 0;
    if (o->n_sink > 0) kv += 2 * row * o->n_sink * L;
    if (o->window >= 0) kv += 2 * row * o->window * L + (o->window + 1) * (int64_t)sizeof(int64_t);
    else kv += 2 * row * grow_cap(o->held - o->n_sink) * L;
    o->kv_alloc = kv;
    return 0;
}

/* The shape of the dense-like policies: no sinks, the model's own sliding window. */
int strategy_shape_dense(const Strategy *s, const ModelConfig *c, int64_t T, StrategyShape *o, char *err, size_t errlen) {
    o->n_sink = 0;
    o->window = c->sliding_window > 0 ? c->sliding_window - 1 : -1;
    o->held = T;
    o->rows = o->chunk;
    return 0;
}

/* ---------------------------------------------------------------- copies, saved state */

int strategy_clone(Strategy *dst, const Strategy *src, const int32_t *hist, int64_t n_hist, char *err, size_t errlen) {
    memset(dst, 0, sizeof *dst);
    if (!src->ops || src->ops->whole_input)
        return lcb_fail(err, errlen, "--strategy %s: whole-input policies cannot be continued token by token", src->spec);
    if (src->ops->clone) return src->ops->clone(dst, src, hist, n_hist, err, errlen);
    *dst = *src;
    dst->kv_live = 0;
    memset(&dst->kv, 0, sizeof dst->kv);
    if (!src->kv_live) return 0;
    /* the shared KV cache, on its own backend (engine/kvstate.h) */
    if (kv_clone(&dst->kv, &src->kv, src->m, err, errlen)) return -1;
    dst->kv_live = 1;
    return 0;
}

int strategy_can_save(const Strategy *s) {
    return s->ops && !s->ops->whole_input && (s->ops->state_save ? s->ops->state_load != NULL : !s->ops->feed);
}

int strategy_state_save(const Strategy *s, KvIO *io, char *err, size_t errlen) {
    if (!strategy_can_save(s)) return lcb_fail(err, errlen, "--strategy %s: its state cannot be saved", s->spec);
    if (s->ops->state_save) return s->ops->state_save(s, io, err, errlen);
    if (!s->kv_live) return lcb_fail(err, errlen, "--strategy %s: no cache to save (not begun)", s->spec);
    if (s->kv.n_past != s->n_fed)
        return lcb_fail(err, errlen, "--strategy %s: the cache is at %lld, the stream at %lld", s->spec, (long long)s->kv.n_past, (long long)s->n_fed);
    return kv_state_save(&s->kv, s->m, io, err, errlen);
}

int strategy_state_load(Strategy *s, KvIO *io, char *err, size_t errlen) {
    if (!strategy_can_save(s)) return lcb_fail(err, errlen, "--strategy %s: its state cannot be loaded", s->spec);
    if (!s->m || s->n_fed) return lcb_fail(err, errlen, "--strategy %s: a state loads into a begun strategy fed nothing", s->spec);
    if (s->ops->state_load) return s->ops->state_load(s, io, err, errlen);
    if (!s->kv_live) return lcb_fail(err, errlen, "--strategy %s: no cache to load into (not begun)", s->spec);
    if (kv_state_load(&s->kv, s->m, io, err, errlen)) return -1;
    s->n_fed = s->kv.n_past;
    return 0;
}

/* ---------------------------------------------------------------- state */

int strategy_begin(Strategy *s, Model *m, char *err, size_t errlen) {
    if (strategy_resolve(s, &m->cfg, err, errlen)) return -1;
    s->m = m;
    s->n_fed = 0;
    if (s->ops->begin) {
        if (s->ops->begin(s, err, errlen)) return -1;
    } else {
        if (kv_init(&s->kv, &m->cfg, m->device, s->n_sink, s->window, s->rope_factor, err, errlen)) return -1;
        s->kv_live = 1;
    }
    s->kv.first_mass = s->first_mass;
    s->kv.first_count = s->first_count;
    return 0;
}

static int feed(Strategy *s, const int32_t *ids, int n, const FwdOut *out, char *err, size_t errlen) {
    int rc = s->ops->feed ? s->ops->feed(s, ids, n, out, err, errlen)
                          : model_forward(s->m, &s->kv, ids, n, 0, out, err, errlen);
    if (rc == 0) s->n_fed += n;
    return rc;
}

int strategy_skip(Strategy *s, const int32_t *ids, int64_t n, int64_t chunk, char *err, size_t errlen) {
    if (s->ops->skip) {
        if (s->ops->skip(s, ids, n, err, errlen)) return -1;
        s->n_fed += n;
        return 0;
    }
    if (chunk <= 0) chunk = n;
    for (int64_t t0 = 0; t0 < n; t0 += chunk)
        if (feed(s, ids + t0, (int)(n - t0 < chunk ? n - t0 : chunk), NULL, err, errlen)) return -1;
    return 0;
}

int strategy_feed(Strategy *s, const int32_t *ids, int n, float *logits, char *err, size_t errlen) {
    FwdOut o = {logits, NULL, NULL};
    return feed(s, ids, n, &o, err, errlen);
}

int strategy_feed_nll(Strategy *s, const int32_t *ids, int n, const int32_t *targets, double *nll,
                      char *err, size_t errlen) {
    FwdOut o = {NULL, targets, nll};
    return feed(s, ids, n, &o, err, errlen);
}

void strategy_end(Strategy *s) {
    if (s->ops && s->ops->end) s->ops->end(s);
    if (s->kv_live) kv_free(&s->kv);
    s->kv_live = 0;
}

uint64_t strategy_kv_bytes_formula(const Strategy *s, uint64_t t) {
    return kv_bytes_formula(&s->m->cfg, s->n_sink, s->window, t);
}

uint64_t strategy_kv_bytes_allocated(const Strategy *s) { return s->kv_live ? s->kv.bytes : 0; }

int strategy_score(Strategy *s, Model *m, const int32_t *ids, size_t T, size_t chunk, double *nll,
                   char *err, size_t errlen) {
    if (T < 2) return lcb_fail(err, errlen, "scoring needs at least 2 tokens (got %zu)", T);
    if (T > INT32_MAX) return lcb_fail(err, errlen, "scoring: %zu tokens is too many for one call", T);
    if (chunk == 0 || chunk > T || s->ops->whole_input) chunk = T;
    double *tmp = malloc(chunk * sizeof *tmp);
    int32_t *tg = malloc(chunk * sizeof *tg);
    if (!tmp || !tg) { free(tmp); free(tg); return lcb_fail(err, errlen, "out of memory"); }
    int rc = strategy_begin(s, m, err, errlen);
    for (size_t t0 = 0; rc == 0 && t0 < T; t0 += chunk) {
        size_t n = T - t0 < chunk ? T - t0 : chunk;
        /* row i predicts ids[t0 + i + 1]; the last token of the input predicts nothing */
        for (size_t i = 0; i < n; i++) tg[i] = t0 + i + 1 < T ? ids[t0 + i + 1] : -1;
        rc = strategy_feed_nll(s, ids + t0, (int)n, tg, tmp, err, errlen);
        for (size_t i = 0; rc == 0 && i < n && t0 + i + 1 < T; i++) nll[t0 + i] = tmp[i];
    }
    strategy_end(s);
    free(tmp);
    free(tg);
    return rc;
}
