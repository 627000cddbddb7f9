/*
 * sink.c — `sink:S:W`: StreamingLLM / attention_sinks: the first S tokens plus the W previous
 * ones, positions re-assigned inside the cache (sinks at 0..S-1, the window after them).
 * Storage: S sink slots + a ring of W.  The engine gives sink keys their own query rotation
 * (see engine/kvcache.h), so chunked processing keeps the per-step semantics.
 */
#include "strategies/strategy.h"
#include "engine/common.h"

static int sink_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc != 2) return lcb_fail(err, errlen, "--strategy %s: expected sink:S:W (e.g. sink:4:1020)", s->spec);
    if (strategy_arg_int(s, "S", argv[0], 0, 1 << 20, &s->n_sink, err, errlen)) return -1;
    return strategy_arg_int(s, "W", argv[1], 0, (int64_t)1 << 40, &s->window, err, errlen);
}

const StrategyOps strategy_sink = {
    .name = "sink",
    .synopsis = "sink:S:W",
    .help = "S attention sinks + the W previous tokens (StreamingLLM)",
    .parse = sink_parse,
};
