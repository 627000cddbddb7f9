/*
 * generate.h — decoding through a cache strategy: the sampler (greedy, or seeded sampling with
 * temperature, top-k and top-p), the token loop shared by `generate`, `passkey` and the
 * probes of `run`, and `lcbench generate` itself (endless generation and multi-prompt
 * streaming chat with one cache, classified window by window by the fluency detector).
 */
#ifndef LCB_GENERATE_H
#define LCB_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"
#include "harness/cmd/cli.h"
#include "strategies/strategy.h"

typedef struct {
    int greedy;              /* temperature <= 0: argmax (lowest id on ties) */
    double temperature;
    int top_k;               /* 0 = all */
    double top_p;            /* 1 = all */
    uint64_t rng;            /* splitmix64 state */
    struct { float p; int32_t id; } *buf;   /* (vocab) scratch */
    int buf_n;
} Sampler;

void sampler_init(Sampler *s, double temperature, int top_k, double top_p, uint64_t seed);
void sampler_free(Sampler *s);
/* Pick the next token from one row of logits; -1 on allocation failure. */
int32_t sampler_pick(Sampler *s, const float *logits, int vocab);

/* Per generated token: its index, the id; non-zero stops. */
typedef int (*GenTokenFn)(void *ctx, int64_t i, int32_t id);

/* Feed `prefix` (n_prefix >= 1 tokens, in chunks of 256) through s, then pick n_out tokens,
 * feeding each back, into out (may be NULL when cb consumes them).  Returns 0, or -1 with err.
 * *n_done (may be NULL) = tokens generated before a stop. */
int gen_tokens_ex(Strategy *s, const int32_t *prefix, int64_t n_prefix, Sampler *sm, int32_t *out, int64_t n_out,
                  GenTokenFn cb, void *ctx, int64_t *n_done, char *err, size_t errlen);
static inline int gen_tokens(Strategy *s, const int32_t *prefix, int64_t n_prefix, Sampler *sm, int32_t *out, int64_t n_out,
                             GenTokenFn cb, void *ctx, char *err, size_t errlen) {
    return gen_tokens_ex(s, prefix, n_prefix, sm, out, n_out, cb, ctx, NULL, err, errlen);
}

/* Open a model (NULL: models/lcb-0.8m of the repository; the resolved path goes to `path`)
 * on a device (NULL: the CPU) and its tokenizer (NULL: the model folder's). */
int gen_open_model(const char *model, const char *tokenizer, const CliDevice *dev, Model *m, Tokenizer **tok, char *path,
                   size_t pathlen, char *err, size_t errlen);


#endif
