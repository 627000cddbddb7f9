/*
 * dense.c — `dense`: every previous token, keys at absolute positions (SPEC §2).  A model's own
 * sliding window (Mistral) is part of the model here: key j is visible while t - j <
 * sliding_window, which is a ring of sliding_window - 1 previous tokens.
 */
#include "strategies/strategy.h"
#include "engine/common.h"

static int dense_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc) return lcb_fail(err, errlen, "--strategy %s: dense takes no arguments", s->spec);
    return 0;
}

const StrategyOps strategy_dense = {
    .name = "dense",
    .synopsis = "dense",
    .help = "full causal attention, absolute positions (the model's own sliding window applies)",
    .parse = dense_parse,
    .begin = strategy_begin_dense,
    .shape = strategy_shape_dense,
};
