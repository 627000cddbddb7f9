/*
 * window.c — `window:W`: the W previous tokens and the current one; positions re-assigned in
 * the cache (SPEC §2), which for RoPE equals absolute positions since only distances matter.
 * Storage: a ring of W slots.
 */
#include "strategies/strategy.h"
#include "engine/common.h"

static int window_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc != 1) return lcb_fail(err, errlen, "--strategy %s: expected window:W", s->spec);
    s->n_sink = 0;
    return strategy_arg_int(s, "W", argv[0], 0, (int64_t)1 << 40, &s->window, err, errlen);
}

const StrategyOps strategy_window = {
    .name = "window",
    .synopsis = "window:W",
    .help = "the W previous tokens only (window attention)",
    .parse = window_parse,
};
