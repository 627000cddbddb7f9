/*
 * s2.c — `s2:G`: LongLoRA's shift-short attention at test time (SPEC §2): causal attention
 * inside groups of G tokens; heads h >= H/2 work on the sequence rolled by -G/2 (wrapping
 * around, as LongLoRA's training code does) and are rolled back.  The engine applies it as a
 * per-head visibility mask, so no data is moved.  The whole input is one forward and its
 * length must be a multiple of G.
 */
#include "strategies/strategy.h"
#include "engine/common.h"

static int s2_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc != 1) return lcb_fail(err, errlen, "--strategy %s: expected s2:G", s->spec);
    int64_t g;
    if (strategy_arg_int(s, "G", argv[0], 2, 1 << 24, &g, err, errlen)) return -1;
    if (g % 2) return lcb_fail(err, errlen, "--strategy %s: group size G must be even", s->spec);
    s->param = (int)g;
    return 0;
}

static int s2_begin(Strategy *s, char *err, size_t errlen) {
    if (kv_init(&s->kv, &s->m->cfg, s->m->device, 0, -1, 0, err, errlen)) return -1;
    s->kv_live = 1;
    s->kv.s2_group = s->param;
    return 0;
}

static int s2_feed(Strategy *s, const int32_t *ids, int n, const FwdOut *out, char *err, size_t errlen) {
    if (s->n_fed) return lcb_fail(err, errlen, "--strategy %s scores the whole input in one forward; it cannot continue a stream", s->spec);
    if (n % s->param)
        return lcb_fail(err, errlen, "--strategy %s: the input length %d must be a multiple of the group size %d", s->spec, n, s->param);
    s->kv.s2_total = n;
    return model_forward(s->m, &s->kv, ids, n, 0, out, err, errlen);
}

/* one forward over the whole input: an unbounded cache of T tokens, T rows */
static int s2_shape(const Strategy *s, const ModelConfig *c, int64_t T, StrategyShape *o, char *err, size_t errlen) {
    if (T % s->param)
        return lcb_fail(err, errlen, "--strategy %s: --tokens %lld must be a multiple of the group size %d", s->spec, (long long)T, s->param);
    o->n_sink = 0;
    o->window = -1;
    o->held = o->chunk = o->rows = T;
    return 0;
}

const StrategyOps strategy_s2 = {
    .name = "s2",
    .synopsis = "s2:G",
    .help = "LongLoRA shift-short attention in groups of G (whole input in one forward)",
    .whole_input = 1,
    .parse = s2_parse,
    .begin = s2_begin,
    .feed = s2_feed,
    .shape = s2_shape,
};
