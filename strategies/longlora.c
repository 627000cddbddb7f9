/*
 * longlora.c — `longlora[:F]`: dense attention with linear RoPE scaling (position
 * interpolation) by F in place of the config's, for LongLoRA-extended evaluation.  Without F
 * the config must carry a linear factor, which is then used (and recorded).
 */
#include "strategies/strategy.h"
#include "engine/common.h"

#include <stdlib.h>

static int longlora_parse(Strategy *s, int argc, char **argv, char *err, size_t errlen) {
    if (argc > 1) return lcb_fail(err, errlen, "--strategy %s: expected longlora or longlora:F", s->spec);
    if (argc == 1) {
        char *end;
        double f = strtod(argv[0], &end);
        if (*end || !(f >= 1.0 && f <= 1e6))
            return lcb_fail(err, errlen, "--strategy %s: factor F \"%s\" must be a number >= 1", s->spec, argv[0]);
        s->rope_factor = f;
    }
    return 0;
}

static int longlora_begin(Strategy *s, char *err, size_t errlen) {
    const ModelConfig *c = &s->m->cfg;
    if (s->rope_factor <= 0) {
        if (c->rope_type != ROPE_LINEAR)
            return lcb_fail(err, errlen, "--strategy longlora: the model config has no linear rope scaling factor; give one as longlora:F");
        s->rope_factor = c->rope_factor;
    }
    return strategy_begin_dense(s, err, errlen);
}

static int longlora_shape(const Strategy *s, const ModelConfig *c, int64_t T, StrategyShape *o, char *err, size_t errlen) {
    if (s->rope_factor <= 0 && c->rope_type != ROPE_LINEAR)
        return lcb_fail(err, errlen, "--strategy longlora: the model config has no linear rope scaling factor; give one as longlora:F");
    return strategy_shape_dense(s, c, T, o, err, errlen);
}

const StrategyOps strategy_longlora = {
    .name = "longlora",
    .synopsis = "longlora[:F]",
    .help = "dense with linear RoPE scaling (position interpolation) by F",
    .parse = longlora_parse,
    .begin = longlora_begin,
    .shape = longlora_shape,
};
