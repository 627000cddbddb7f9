/*
 * sink.c — `sink:S:W`: StreamingLLM / attention_sinks: the first S tokens plus the W previous
 * ones, positions re-assigned inside the cache (sinks at 0..S-1, the window after them).
 * Storage: S sink slots + a ring of W.  The engine gives sink keys their own query rotation
 * (see engine/kvcache.h), so chunked processing keeps the per-step semantics.
 * Bare `sink` is sink:4:(ctx-4), ctx = the model's max_position_embeddings: StreamingLLM's four
 * sinks and a cache of exactly the pre-training context (attention_sinks' 4 + 1020 for a
 * 1024-token model).
 */
#include "strategies/strategy.h"
#include "engine/common.h"

#include <stdio.h>

#define SINK_DEFAULT_S 4

static int sink_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc == 0) {
        s->open = 1;
        s->n_sink = SINK_DEFAULT_S;
        return 0;
    }
    if (argc != 2) return lcb_fail(err, errlen, "--strategy %s: expected sink:S:W (e.g. sink:4:1020) or sink", s->spec);
    if (strategy_arg_int(s, "S", argv[0], 0, 1 << 20, &s->n_sink, err, errlen)) return -1;
    return strategy_arg_int(s, "W", argv[1], 0, (int64_t)1 << 40, &s->window, err, errlen);
}

static int sink_resolve(Strategy *s, const ModelConfig *c, char *err, size_t errlen) {
    int64_t ctx = c ? c->max_pos : 0;
    if (ctx <= SINK_DEFAULT_S)
        return lcb_fail(err, errlen, "--strategy sink: the model's context (max_position_embeddings %lld) is too small to size the "
                        "default sink:%d:(ctx-%d); give sink:S:W", (long long)ctx, SINK_DEFAULT_S, SINK_DEFAULT_S);
    s->window = ctx - SINK_DEFAULT_S;
    snprintf(s->spec, sizeof s->spec, "sink:%lld:%lld", (long long)s->n_sink, (long long)s->window);
    return 0;
}

/* the first tokens stay where training put them, if there is at least one sink */
static int sink_as_trained(const Strategy *s) { return s->n_sink >= 1; }

const StrategyOps strategy_sink = {
    .name = "sink",
    .synopsis = "sink:S:W",
    .help = "S attention sinks + the W previous tokens (StreamingLLM); bare sink = sink:4:(context-4)",
    .parse = sink_parse,
    .resolve = sink_resolve,
    .as_trained = sink_as_trained,
};
