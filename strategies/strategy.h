/*
 * strategy.h — the one interface every KV-cache policy implements, and the registry that finds
 * a policy by the name at the start of its spec ("sink:4:1020" -> "sink").
 *
 * A strategy owns the cache state of one stream.  The harness feeds it the stream in chunks;
 * for every token fed it returns the logits that predict the next one, with exactly the
 * per-step semantics of SPEC §2 whatever the chunk size.  Policies built on the shared KV cache
 * (dense, window, sink, longlora) differ only in the cache parameters they choose; recompute and
 * s2 bring their own feed.
 *
 * A policy knows everything about itself, so that no caller compares policy names: its spec and
 * the defaults of a bare name (`sink` = sink:4:(ctx-4), `window` = window:ctx, ctx = the model's
 * max_position_embeddings, filled in by strategy_resolve), the cache it allocates and its bytes
 * (strategy_shape, used by `lcbench plan`), how to copy its state (strategy_clone), how to write
 * that state out and read it back (strategy_state_save / strategy_state_load: the cache
 * snapshots of `run --resume`), on the CPU and on the GPU alike, and its place in listings (the
 * registry order, strategy_rank).
 */
#ifndef LCB_STRATEGY_H
#define LCB_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kvcache.h"
#include "engine/kvstate.h"
#include "engine/model.h"

typedef struct Strategy Strategy;

/* The cache a policy allocates for a stream of T tokens fed `chunk` at a time (strategy_shape):
 * what `lcbench plan` predicts from a config alone. */
typedef struct {
    int64_t n_sink;         /* S sink rows per layer */
    int64_t window;         /* W ring rows per layer; -1 = unbounded (grows with the tokens held) */
    int64_t held;           /* tokens one cache fill holds at the end of the stream */
    int64_t chunk;          /* tokens per feed (s2: the whole input) */
    int64_t rows;           /* rows of the largest forward pass (recompute: W+1) */
    int fresh;              /* 1: every forward starts from an empty cache (recompute) */
    int64_t kv_formula;     /* bytes the policy's formula keeps after T tokens (elt-byte rows) */
    int64_t kv_alloc;       /* bytes the CPU cache allocates (rows, ring slot table, doubling growth) */
} StrategyShape;

typedef struct StrategyOps {
    const char *name;       /* registry key, the spec up to the first ':' */
    const char *synopsis;   /* "sink:S:W" */
    const char *help;       /* one line for --help */
    int whole_input;        /* 1: scores the whole input in one forward (s2) */
    /* Parse the ':'-separated arguments after the name (argc may be 0) into s. */
    int (*parse)(Strategy *s, int argc, char **argv, char *err, size_t errlen);
    /* Allocate the state for model m.  Optional: NULL = the shared KV cache with s->n_sink,
     * s->window, s->rope_factor. */
    int (*begin)(Strategy *s, char *err, size_t errlen);
    /* The next n tokens of the stream -> what `out` asks for, one row per token (logits
     * predicting the next token, or the NLL of a given target).  Optional: NULL = one model
     * forward through the shared KV cache. */
    int (*feed)(Strategy *s, const int32_t *ids, int n, const FwdOut *out, char *err, size_t errlen);
    /* Optional: release what begin allocated beyond the shared cache. */
    void (*end)(Strategy *s);
    /* Optional: reach the state after the next n tokens without computing anything that only
     * outputs need (a resumed run).  NULL = feed them, which every cache-holding policy must. */
    int (*skip)(Strategy *s, const int32_t *ids, int64_t n, char *err, size_t errlen);
    /* Optional: fill in the sizes a bare name left open (s->open) from the model config and
     * write the full spec into s->spec.  NULL = the policy has no bare form. */
    int (*resolve)(Strategy *s, const ModelConfig *c, char *err, size_t errlen);
    /* Optional: the cache for T tokens (fields n_sink .. fresh of StrategyShape; `chunk` comes
     * in already clamped to [1, T]).  NULL = s->n_sink sinks + a ring of s->window, T held. */
    int (*shape)(const Strategy *s, const ModelConfig *c, int64_t T, StrategyShape *o, char *err, size_t errlen);
    /* Optional: dst = an independent copy of src's state.  NULL = a copy of the shared CPU KV
     * cache.  hist = the stream fed to src so far (n_hist == src->n_fed). */
    int (*clone)(Strategy *dst, const Strategy *src, const int32_t *hist, int64_t n_hist, char *err, size_t errlen);
    /* Optional: write the whole state after s->n_fed tokens to io.  NULL = the shared KV cache
     * (engine/kvstate.h: either backend, its layout and shape in its head). */
    int (*state_save)(const Strategy *s, KvIO *io, char *err, size_t errlen);
    /* Optional: read what state_save wrote into s (begun, nothing fed), refusing a state of
     * another shape with both named, and set s->n_fed.  NULL = the shared KV cache. */
    int (*state_load)(Strategy *s, KvIO *io, char *err, size_t errlen);
    /* Optional: the most previous tokens one step attends to, for the fit-the-context warning.
     * NULL = s->n_sink + s->window (-1 when the window is unbounded). */
    int64_t (*span)(const Strategy *s);
    /* Optional: 1 when every step sees what the model saw in training, provided the span fits
     * its context (the first tokens kept as sinks, or a fresh forward over the window): such a
     * run is the reference a collapse is judged against (reports/results.c).  NULL = 0. */
    int (*as_trained)(const Strategy *s);
} StrategyOps;

struct Strategy {
    const StrategyOps *ops;
    char spec[128];         /* as given, e.g. "sink:4:1020"; in full once resolved ("sink" -> "sink:4:508") */
    int open;               /* 1: a bare name whose sizes come from the model (strategy_resolve) */
    int resolved;           /* strategy_resolve ran (strategy_begin runs it otherwise) */
    Model *m;               /* set by strategy_begin */
    /* parameters of the shared KV cache */
    int64_t n_sink;         /* S */
    int64_t window;         /* W, or -1 = unbounded */
    double rope_factor;     /* > 0: linear RoPE factor replacing the config's (longlora) */
    int param;              /* policy-specific: s2 group G, recompute window W */
    KVCache kv;
    int kv_live;
    int64_t n_fed;          /* tokens fed so far */
    void *priv;             /* policy-private state */
    /* Optional diagnostic, owned by the caller: (n_layers) arrays that the cache fills with the
     * attention paid to position 0 (see KVCache.first_mass).  NULL = off. */
    double *first_mass, *first_count;
};

/* Parse a spec into s via the registry; unknown names and bad arguments are usage errors.  A bare
 * `sink` or `window` parses with its sizes left open until strategy_resolve. */
int strategy_parse(Strategy *s, const char *spec, char *err, size_t errlen);
/* Fill the defaults of a bare spec from the model (c->max_pos, the pre-training context) and
 * warn once per process on stderr, with the numbers, when the cache plus its sinks is larger
 * than the context or the recent window is 0.  Idempotent; strategy_begin calls it when the
 * caller did not.  Callers that record the spec resolve first and record s->spec. */
int strategy_resolve(Strategy *s, const ModelConfig *c, char *err, size_t errlen);
/* The full spec a user's spec means for a model of context ctx (no warning), e.g. "sink", 512
 * -> "sink:4:508"; for comparing a given spec with a recorded one. */
int strategy_spec_for_ctx(const char *spec, int64_t ctx, char *out, size_t n, char *err, size_t errlen);
/* The cache of a stream of T tokens fed `chunk` at a time (0 = all at once), elt bytes per
 * stored value (4 fp32, 2 bf16); usage errors (longlora without a factor, s2 length) with err. */
int strategy_shape(Strategy *s, const ModelConfig *c, int64_t T, int64_t chunk, int elt, StrategyShape *o, char *err, size_t errlen);
/* dst = an independent copy of src's state, on src's backend (CPU or CUDA).  Cached policies
 * copy the KV cache; recompute, whose state is the last W tokens, is rebuilt by feeding them
 * from `hist` (the whole stream fed to src so far, n_hist == src->n_fed).  s2 (whole input) is
 * refused.  Free dst with strategy_end. */
int strategy_clone(Strategy *dst, const Strategy *src, const int32_t *hist, int64_t n_hist, char *err, size_t errlen);
/* The most previous tokens one step attends to (sinks + recent window; recompute:W -> W), -1 when
 * unbounded (dense, longlora, s2) or still open (a bare name before strategy_resolve). */
int64_t strategy_span(const Strategy *s);
/* 1 when s attends as in training (ops->as_trained) within a context of max_pos tokens. */
int strategy_as_trained(const Strategy *s, int64_t max_pos);
/* 1 when s's state can be saved and loaded (every policy that continues a stream: not s2). */
int strategy_can_save(const Strategy *s);
/* The state of s (begun, at s->n_fed) to io, and back into a begun s that was fed nothing (on
 * failure s may hold part of it: end and begin it again).  Usage: kvsnap (harness). */
int strategy_state_save(const Strategy *s, KvIO *io, char *err, size_t errlen);
int strategy_state_load(Strategy *s, KvIO *io, char *err, size_t errlen);
/* Display order of a spec's policy: its index in the registry (unknown names last). */
int strategy_rank(const char *spec);
int strategy_begin(Strategy *s, Model *m, char *err, size_t errlen);
/* logits (n, vocab), or NULL to only advance the state. */
int strategy_feed(Strategy *s, const int32_t *ids, int n, float *logits, char *err, size_t errlen);
/* nll[i] = -ln p(targets[i] | state after ids[i]) (NAN where targets[i] < 0).  On the GPU the
 * log-softmax is fused, so no logits leave the device. */
int strategy_feed_nll(Strategy *s, const int32_t *ids, int n, const int32_t *targets, double *nll,
                      char *err, size_t errlen);
void strategy_end(Strategy *s);
/* Advance over ids[0..n) as a resumed run does: the policy's skip where it has one, else feeds of
 * `chunk` tokens with no outputs (the same chunk boundaries as the scoring run, so that the cache
 * is the same to the bit). */
int strategy_skip(Strategy *s, const int32_t *ids, int64_t n, int64_t chunk, char *err, size_t errlen);

/* KV bytes: what the policy's formula says after t tokens, and what is allocated now. */
uint64_t strategy_kv_bytes_formula(const Strategy *s, uint64_t t);
uint64_t strategy_kv_bytes_allocated(const Strategy *s);

/* Score a token array: nll[t] = -ln p(ids[t+1] | state after step t), t = 0 .. T-2, feeding
 * `chunk` tokens per call (0 = all at once).  Fresh state: calls begin/end itself. */
int strategy_score(Strategy *s, Model *m, const int32_t *ids, size_t T, size_t chunk, double *nll,
                   char *err, size_t errlen);

/* Shared begin of the dense-like policies (dense, longlora, recompute's fresh forwards): no
 * sinks, the model's own sliding window if it has one, RoPE factor s->rope_factor. */
int strategy_begin_dense(Strategy *s, char *err, size_t errlen);
/* ... and their shape: no sinks, the model's own sliding window, T held. */
int strategy_shape_dense(const Strategy *s, const ModelConfig *c, int64_t T, StrategyShape *o, char *err, size_t errlen);

/* The registry, for --help listings. */
const StrategyOps *const *strategy_list(size_t *n);

/* Parse helpers shared by the policy files: a non-negative integer argument. */
int strategy_arg_int(const Strategy *s, const char *what, const char *arg, int64_t lo, int64_t hi,
                     int64_t *out, char *err, size_t errlen);

/* The policies (one file each). */
extern const StrategyOps strategy_dense, strategy_window, strategy_sink, strategy_recompute,
    strategy_longlora, strategy_s2;

#endif
