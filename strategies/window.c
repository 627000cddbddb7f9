/*
 * window.c — `window:W`: the W previous tokens and the current one; positions re-assigned in
 * the cache (SPEC §2), which for RoPE equals absolute positions since only distances matter.
 * Storage: a ring of W slots.  Bare `window` is window:ctx, ctx = the model's
 * max_position_embeddings.
 */
#include "strategies/strategy.h"
#include "engine/common.h"

#include <stdio.h>

static int window_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    s->n_sink = 0;
    if (argc == 0) { s->open = 1; return 0; }
    if (argc != 1) return lcb_fail(err, errlen, "--strategy %s: expected window:W or window", s->spec);
    return strategy_arg_int(s, "W", argv[0], 0, (int64_t)1 << 40, &s->window, err, errlen);
}

static int window_resolve(Strategy *s, const ModelConfig *c, char *err, size_t errlen) {
    int64_t ctx = c ? c->max_pos : 0;
    if (ctx <= 0)
        return lcb_fail(err, errlen, "--strategy window: the model config gives no context (max_position_embeddings) to size the default window:ctx; give window:W");
    s->window = ctx;
    snprintf(s->spec, sizeof s->spec, "window:%lld", (long long)s->window);
    return 0;
}

const StrategyOps strategy_window = {
    .name = "window",
    .synopsis = "window:W",
    .help = "the W previous tokens only (window attention); bare window = window:context",
    .parse = window_parse,
    .resolve = window_resolve,
};
