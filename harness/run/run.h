/*
 * run.h — `lcbench run`: the evaluation protocols of SPEC §3 over a token array, and the run
 * driver that streams them through a model and a cache strategy into the SQLite store.
 *
 * Protocols (every scored step is NLL_t of SPEC §1 at an in-window position t):
 *   stream    one pass, one cache, every step t = 0 .. T-2 scored; position = t
 *   stride    windows [b, min(b+L, T)) at b = 0, S, 2S, ... until one reaches T, fresh cache
 *             each; every target token scored exactly once (the first window scores all its
 *             steps, later ones the steps whose target is past the previous window's end,
 *             i.e. their last S), as in the HF perplexity guide
 *   chunks    floor(T/L) non-overlapping L-token chunks, fresh cache each, steps L/2 .. L-2
 *             scored (llama.cpp llama-perplexity)
 *   chunks-bos  chunks with the model's BOS id fed in place of each chunk's first token, as
 *             llama-perplexity does when its vocabulary adds BOS (with --bos first, the same
 *             token stream and the same scored steps as `llama-perplexity -c L`)
 *   longlora  windows of L at b = 0, S, 2S, ... (S = 256) for b in range(0, T-L-1, S) minus
 *             the last (LongLoRA eval.py), all L-1 steps scored; the headline PPL is exp of
 *             the mean of window means (= mean of all steps, windows being equal)
 * A protocol advances in units (stream: one chunk of the feed; others: one window) and
 * reports each unit's scored steps to a callback, which may stop it.  The cursor after a unit
 * is where a resumed run starts: the stream re-feeds tokens 0 .. cursor-1 through the strategy
 * without scoring (the same chunking, so the cache state is rebuilt exactly); the windowed
 * protocols restart at window number cursor.
 */
#ifndef LCB_RUN_H
#define LCB_RUN_H

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "engine/model.h"
#include "engine/tokenizer.h"
#include "reports/store/store.h"
#include "reports/reports.h"
#include "strategies/strategy.h"

typedef enum { PROTO_STREAM = 0, PROTO_STRIDE, PROTO_CHUNKS, PROTO_LONGLORA, PROTO_CHUNKS_BOS } RunProtocol;

typedef struct {
    RunProtocol proto;
    int64_t ctx;      /* L: window length (stride, chunks, longlora) */
    int64_t stride;   /* S: window step (stride; longlora, default 256) */
    int64_t chunk;    /* tokens per strategy_feed; 0 = whole window/stream */
    int64_t cut_every; /* stream: > 0 = no feed crosses a multiple of it (the positions of run
                        * --probe-every), so that probes sit where asked whatever the chunk */
} ProtoParams;

const char *protocol_name(RunProtocol p);
int protocol_parse(const char *s, RunProtocol *out);    /* 0 or -1 */
/* Check the parameters against a stream of T tokens; steps and units the protocol will score. */
int protocol_plan(const ProtoParams *p, size_t T, int64_t *steps, int64_t *units, char *err, size_t errlen);

typedef struct {
    int64_t win_start;   /* stream position of the window's first token (stream: 0) */
    int64_t pos0, n;     /* scored steps: in-window positions pos0 .. pos0+n-1 */
    const float *nll;    /* (n) */
    int64_t cursor;      /* resume cursor after this unit */
    int64_t stream_pos;  /* stream position reached (end of the unit's tokens) */
    int64_t fed;         /* tokens the model processed in this unit */
    uint64_t kv_bytes, kv_formula; /* KV cache allocated / by formula at the end of the unit */
} RunUnit;
/* Non-zero: stop after this unit. */
typedef int (*RunUnitFn)(void *ctx, const RunUnit *u);
/* Resuming a stream at `cursor`: put the begun strategy in the state at some position
 * *at <= cursor (a chunk boundary), returning 0, or return non-zero to re-feed from the start. */
typedef int (*RunRestoreFn)(void *ctx, Strategy *s, int64_t cursor, int64_t *at);

/* Run a protocol from `cursor` (0 = the start).  On failure returns -1 with err ("out of
 * memory ..." for an allocation failure) and *fail_pos = the stream position being processed. */
int protocol_run(const ProtoParams *p, Strategy *s, Model *m, const int32_t *ids, size_t T, int64_t cursor,
                 RunUnitFn fn, RunRestoreFn restore, void *ctx, int64_t *fail_pos, char *err, size_t errlen);

/* ---------------------------------------------------------------- the driver */

typedef struct {
    const char *db_path;         /* results.db */
    int64_t resume_id;           /* > 0: continue this run (the other fields come from its row; see given) */
    int force;                   /* resume a run that looks alive */
    const char *model;           /* NULL: models/lcb-0.8m of the repository */
    const char *config;          /* alternative config.json, or NULL */
    const char *tokenizer;       /* NULL: the model folder's */
    const char *strategy;        /* spec; aliases sink, window expand to their defaults */
    ProtoParams proto;
    const char *dataset;         /* spec of datasets/dataset.h; NULL: moby-dick */
    const char *field;           /* JSONL field */
    const char *token_format;    /* auto|text|jsonl|u16|u32|ids */
    const char *bos;             /* auto|none|first|each-doc */
    uint64_t tokens;             /* 0: every document once */
    int repeat;                  /* cycle the documents to reach tokens (default 1) */
    uint64_t mem_limit;          /* bytes, 0 = none */
    int64_t batch_tokens;        /* steps per committed batch */
    double batch_seconds;        /* or this long since the last commit */
    int64_t bin_width;           /* linear bins */
    const char *device;          /* cpu */
    const char *dtype;           /* weights on the GPU (--dtype): NULL = bf16 */
    int tp;                      /* GPUs the model is split over (--tp, cuda), default 1 */
    double kv_snapshot_seconds;  /* stream: cache snapshot (harness/run/kvsnap.h) at most this often; < 0 off */
    int progress;                /* -1 auto (terminal), 0 no, 1 yes */
    int pace_ms;                 /* sleep after each commit (tests use it to interrupt mid-run) */
    const char *argv_text;       /* the command line, for provenance */
    /* fluency probes (harness/fluency/fluency.h): every probe_every stream positions, probe_tokens
     * greedy tokens from a copy of the cache, classified into the `probes` table; 0 = off */
    int64_t probe_every, probe_tokens;
    /* RUN_GIVEN_* bits: the run-defining flags given on the command line.  With --resume they
     * must agree with the run's row (a conflict is refused, naming the flags). */
    unsigned given;
} RunConfig;

enum {
    RUN_GIVEN_MODEL = 1u << 0, RUN_GIVEN_CONFIG = 1u << 1, RUN_GIVEN_TOKENIZER = 1u << 2, RUN_GIVEN_STRATEGY = 1u << 3,
    RUN_GIVEN_PROTOCOL = 1u << 4, RUN_GIVEN_CTX = 1u << 5, RUN_GIVEN_STRIDE = 1u << 6, RUN_GIVEN_CHUNK = 1u << 7,
    RUN_GIVEN_DATASET = 1u << 8, RUN_GIVEN_FIELD = 1u << 9, RUN_GIVEN_TOKEN_FORMAT = 1u << 10, RUN_GIVEN_BOS = 1u << 11,
    RUN_GIVEN_TOKENS = 1u << 12, RUN_GIVEN_REPEAT = 1u << 13, RUN_GIVEN_BATCH = 1u << 14, RUN_GIVEN_BIN_WIDTH = 1u << 15,
    RUN_GIVEN_DEVICE = 1u << 16, RUN_GIVEN_DTYPE = 1u << 17, RUN_GIVEN_TP = 1u << 18,
};

void run_config_defaults(RunConfig *c);
/* Execute (or resume) a run.  Returns the process exit status: 0 done, 130/143 interrupted
 * by SIGINT/SIGTERM, 1 failure or OOM (the run row says which), 2 usage error. */
int run_execute(RunConfig *c, int64_t *run_id);

/* The lcbench revision for provenance: `git rev-parse` of the repository lcbench runs from, with
 * "-dirty" when tracked files differ, or "unknown" outside a git checkout. */
void run_git_revision(char *out, size_t n);

/* ---------------------------------------------------------------- the headline (issue 16) */

/* What a person reads at the end of a run and in `show`, from the stored per-step NLLs:
 *   in context   steps at in-window position t < max_pos (max_position_embeddings): count,
 *                mean NLL and its standard error (nats); PPL = exp(mean), shown +- PPL * stderr
 *   past it      steps at t >= max_pos (a stream longer than the context)
 *   bytes, words UTF-8 bytes and whitespace-separated words of the scored text: the decoded
 *                targets x_{t+1} of the stored rows (HF decode, special tokens skipped), row by
 *                row, a row that continues the previous one continuing its words
 *   bits_per_byte = sum NLL / (ln 2 * bytes), word_ppl = exp(sum NLL / words), lm-eval's
 *                definitions; unknown (-1 / NAN, NULL in the DB) for a dataset of token ids,
 *                which has no text */
typedef StoreMetrics RunMetrics;   /* reports/store/store.h: store_metrics_init, _write, _read */
/* From the run's stored NLLs; tok and ids (the scored stream) NULL: no bytes or words. */
int run_metrics_compute(Store *st, int64_t run, int64_t max_pos, const Tokenizer *tok, const int32_t *ids, size_t n_ids,
                        RunMetrics *m, char *err, size_t errlen);
/* The headline: result with PPL +- stderr in/past the context, bits per byte, word PPL, the
 * collapse position (reports.h's rule, REP_COLLAPSE_FACTOR), tokens/s, peak memory (weights,
 * KV, workspace) and the cache against the context.  log2 bins of the run (NULL: from the
 * bins table). */
void run_headline_print(FILE *f, Store *st, const StoreRun *r, const RunMetrics *m, const StoreBin *bins, size_t n_bins);
/* The run's log2 bins as reports' RepBin: the bins table's, or for a run still going computed
 * from its NLLs so far (nothing written).  *n of them (malloc'ed), NULL with err. */
RepBin *run_log2_bins(Store *st, const StoreRun *r, size_t *n, char *err, size_t errlen);
/* Cache size of a strategy spec in tokens, as attention_sinks counts it (the tokens kept
 * besides the current one: S+W for sink:S:W, W for window:W and recompute:W), -1 unbounded
 * (dense, longlora, s2) or unparsable.  Larger than max_pos: positions past the context. */
int64_t run_cache_tokens(const char *spec);

/* ---------------------------------------------------------------- export (harness/cmd/cmd_export.c) */

struct cJSON;
/* A run as one flat JSON object: every column of its runs row under its own name (NULL as
 * null), then the headline's derived values (status_shown, ppl_all, ppl_in_context[_stderr],
 * ppl_past_context[_stderr], collapse_pos, cache_tokens, cache_over_context, tokens_per_s,
 * peak_weights_bytes, peak_kv_bytes, peak_work_bytes).  NULL with err. */
struct cJSON *run_export_object(Store *st, int64_t id, char *err, size_t errlen);
/* The run's bins (kind NULL: every kind) as an array of {kind, lo, hi, count, mean_nll, ppl, stderr}. */
struct cJSON *run_export_bins(Store *st, int64_t id, const char *kind, char *err, size_t errlen);
/* An array of flat objects as CSV: a header of the first object's scalar keys, one line each. */
int run_export_csv(FILE *f, const struct cJSON *rows);
int cmd_export(int argc, char **argv);   /* lcbench export RUN --bins|--steps [--json|--csv] [-o FILE] */

#endif
