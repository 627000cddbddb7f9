/*
 * strategy.c — the registry of cache policies, the shared-KV-cache default for begin/feed, and
 * the scoring loop every command uses (score, run, tests).
 */
#include "strategies/strategy.h"
#include "engine/common.h"

#include <errno.h>
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

int strategy_begin(Strategy *s, Model *m, char *err, size_t errlen) {
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
