/*
 * reports.h — what people read and what CI acts on, built from the SQLite results file
 * (reports/store/store.h): the run loader shared by `report` and `gate`, the collapse position,
 * the regression gate, the memory planner, and the gnuplot/Markdown/HTML report writer.
 *
 * Everything here reads a results file read-only (sqlite3 directly, never through the
 * migrating store_open), so a committed baseline or someone else's results are never touched.
 *
 * Collapse position (used by report, gate, export and the run's headline alike): the start of the
 * first log2 bin at or after max_pos (the pre-training context), holding at least
 * REP_COLLAPSE_MIN_STEPS steps, whose PPL exceeds k x a reference R (k = --collapse-factor,
 * default 3).  R is text-matched when it can be: the lowest PPL that a *reference run* scored on
 * the same bin (same bounds and step count), a reference run being a run of the same results
 * file on the same token stream (model hash; dataset spec, field and format; tokenizer hash; BOS
 * policy; protocol, L, S: runs of different lengths score prefixes of one stream) under a cache
 * the model was trained for: sinks kept and at most max_pos previous tokens attended
 * (sink:S:W with S >= 1 and S+W <= max_pos, e.g. the default sink:4:(ctx-4); recompute:W with
 * W <= max_pos).  A reference run is compared with the best reference, itself included, so it
 * collapses only against a much better one.  Without any reference run on that stream, R is the
 * run's own PPL of the log2 bin [max_pos/2, max_pos) (the last octave inside the context).
 * Why text-matched: the text alone moves the PPL more than a cache policy does.  Moby Dick opens
 * with its table of contents, 2K-3K tokens of chapter titles at PPL 6.5-9.4 for lcb-6m against
 * 81-89 for the chapters from 4K on, so any in-run reference inside a 512-token context is that easy list, and a
 * healthy sink run "collapsed" against it at 2048 (3 x 6.5).  Against a reference on the same
 * steps, the text cancels: dense past the context reaches 4x-6x, window without sinks 2.0x-2.5x
 * (models/README.md), and k = 3 marks the first only; the worst ratio is reported either way.
 * None: the run never collapsed (or has nothing to compare with).
 *
 * Fluency verdict of a run: the first position where it lost fluency by any of: a row of the
 * fluency detector's `probes` table whose verdict is not fluent (harness/fluency.h), an event
 * whose kind is `collapse` or starts with `fluency` (and is not `fluency_ok`), or the collapse
 * position above.  A run with none is "fluent".
 */
#ifndef LCB_REPORTS_H
#define LCB_REPORTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reports/store/store.h"

#define REP_COLLAPSE_MIN_STEPS 64
#define REP_COLLAPSE_FACTOR 3.0

typedef struct {
    int64_t lo, hi, count;   /* positions [lo, hi); hi = -1 for the "all" row */
    double mean_nll, ppl;    /* nats, exp(mean_nll) */
    double se;               /* stderr of mean_nll (nats); 0 when unknown (count 1) */
} RepBin;

typedef struct { int64_t pos; char kind[48]; char detail[200]; } RepEvent;

/* A run's collapse verdict under the rule above */
typedef struct {
    int64_t pos;             /* collapse position, -1 none */
    int matched;             /* 1: R from reference runs on the same steps; 0: the run's own [max_pos/2, max_pos) */
    double ref_ppl;          /* R of the bin at pos (none: of the worst bin; unmatched: of [max_pos/2, max_pos)); NAN none */
    int64_t ref_run;         /* the run R comes from (matched; may be the run itself), -1 otherwise */
    char ref_strategy[64];   /* that run's strategy */
    double worst;            /* the largest PPL / R over the bins judged, NAN when none */
    int64_t worst_lo;        /* its bin's start, -1 none */
} RepCollapse;

typedef struct {
    StoreRun r;              /* the run row (store.h) */
    char label[128];         /* model folder's base name, e.g. lcb-8m; "final [3fa2c1d4]" (hash prefix) when
                                two different models share a folder name (rep_load) */
    RepBin *log2, *lin;      /* ordered by lo */
    size_t n_log2, n_lin;
    RepBin all;              /* count 0 when absent */
    RepEvent *ev;            /* every event, ordered by position */
    size_t n_ev;
    int64_t oom_pos;         /* first oom event, -1 none */
    int64_t collapse_pos;    /* see above, -1 none (= collapse.pos) */
    double ref_ppl;          /* R of the collapse rule (= collapse.ref_ppl), NAN when there is none */
    RepCollapse collapse;    /* the verdict in full */
    int64_t fluency_pos;     /* first loss of fluency (collapse included), -1 fluent */
    char fluency_why[64];    /* what said so: probe verdict, event kind or "collapse" */
    /* from the samples table: peaks (bytes), -1 when no samples; throughput: tokens over seconds of
     * every interval between samples (one interval per committed batch, the first from position 0
     * at time 0), and the lowest and highest rate of one interval; NAN / 0 when none */
    int64_t peak_weights, peak_kv, peak_kv_formula, peak_work, peak_rss;
    double tokens_per_s, tps_lo, tps_hi;
    int64_t tps_n;           /* intervals measured */
    /* the headline columns of the runs row (schema 4; harness/run.h computes them): PPL in /
     * past the context, bits per byte, word PPL.  Unknown: -1 / NAN (a dataset of token ids
     * has no bytes or words; a file older than schema 4 has none of them) */
    struct {
        int64_t ctx_steps, past_steps;
        double ctx_mean_nll, ctx_se, past_mean_nll, past_se;
        int64_t bytes, words;
        double bits_per_byte, word_ppl;
    } metrics;
} RepRun;

typedef struct {
    char path[4096];
    void *db;                /* sqlite3 *, opened read-only */
    RepRun *runs;
    size_t n;
} RepDb;

/* Open `path` read-only (store_open_readonly) and load every run.  flag names the command-line
 * flag for messages.  Returns 0; -2 with err for a missing or foreign file (the argument is at
 * fault); -1 for another failure. */
int rep_load(RepDb *d, const char *path, const char *flag, double collapse_factor, char *err, size_t errlen);
void rep_free(RepDb *d);
/* The bin of kind log2 that starts at lo, or NULL. */
const RepBin *rep_bin_at(const RepBin *b, size_t n, int64_t lo);
/* The collapse position of the rule above without reference runs (R = the run's own bin
 * [max_pos/2, max_pos)) over its log2 bins (ordered by lo), -1 none; *ref = R, NAN when the run has
 * no such bin. */
int64_t rep_collapse_pos(const RepBin *log2, size_t n, int64_t max_pos, double k, double *ref);
/* The full rule for run r (its log2 bins given, ordered by lo): reference runs looked up in db
 * (a sqlite3 *; NULL = none).  0, or -1 when the file could not be read. */
int rep_collapse(void *db, const StoreRun *r, const RepBin *log2, size_t n, double k, RepCollapse *out);
/* 1 when spec is a cache the model was trained for (a reference of the rule above) */
int rep_is_reference_strategy(const char *spec, int64_t max_pos);

/* Which numbers `gate` and the report tables judge: token PPL (per bin and overall), or the
 * tokenizer-independent bits per byte or word PPL (overall only: they have no bins). */
typedef enum { REP_METRIC_PPL = 0, REP_METRIC_BPB, REP_METRIC_WORD_PPL } RepMetric;
int rep_metric_parse(const char *s, RepMetric *out);   /* "ppl" | "bpb" | "word_ppl": 0, else -1 */
const char *rep_metric_name(RepMetric m);
/* A run's value of the metric over all its steps (PPL, bits/byte, word PPL); NAN when unknown. */
double rep_run_metric(const RepRun *x, RepMetric m);

/* ---------------------------------------------------------------- gate */

typedef struct {
    double rel_tol;          /* per-bin PPL may grow by this fraction before it counts (0.01) */
    double sigma;            /* ... and by more than sigma combined stderrs (3) */
    int64_t min_steps;       /* bins with fewer steps in either run are shown, not judged (32) */
    double pos_tol;          /* an OOM, collapse or fluency loss counts as earlier when it is
                                earlier by more than this fraction of the baseline's position */
    int allow_missing;       /* a baseline run with no partner (or not comparable) is a warning, not a failure */
    int allow_empty;         /* a gate that compared no pair passes (default: it fails) */
    int verbose;             /* print every bin, not only the worse ones */
    RepMetric metric;        /* what is judged: token PPL per bin and overall (default), or bits per
                                byte / word PPL over the whole run (they have no bins) */
    unsigned pair_by;        /* GATE_PAIR_* bits: the fields a pair shares (default: all of them) */
} GateOptions;

enum { GATE_PAIR_MODEL = 1u << 0, GATE_PAIR_STRATEGY = 1u << 1, GATE_PAIR_PROTOCOL = 1u << 2, GATE_PAIR_DATASET = 1u << 3,
       GATE_PAIR_TOKENS = 1u << 4, GATE_PAIR_ALL = 31u };
/* "strategy,dataset,protocol,tokens" (model, strategy, protocol, dataset, tokens; any order):
 * 0, else -1 naming the unknown field in err. */
int gate_pair_parse(const char *s, unsigned *out, char *err, size_t errlen);

void gate_defaults(GateOptions *o);
/* Pair runs and judge them; prints the diff table on out.  Returns 0 pass, 1 regression. */
int gate_compare(const RepDb *base, const RepDb *cur, const GateOptions *o, FILE *out);

/* ---------------------------------------------------------------- plan */

typedef struct {
    const char *model;       /* checkpoint folder, config.json, or random:SHAPE[:SEED] */
    const char *config;      /* alternative config.json, or NULL */
    const char *strategy;    /* spec (NULL = bare sink, sized from the model) */
    uint64_t tokens;         /* stream length */
    int64_t chunk;           /* tokens per forward (run's default 256; 0 = whole stream) */
    int cuda;                /* predict the CUDA path: bf16 weights and KV (estimate) */
} PlanInput;

typedef struct {
    uint64_t n_params;
    int64_t weights;         /* bytes: the fp32 arena (CPU) or bf16 weights (CUDA) */
    int64_t kv;              /* bytes allocated at the end of the stream (dense grows by doubling) */
    int64_t kv_formula;      /* bytes by kv_bytes_formula: what the policy keeps */
    int64_t work;            /* persistent workspace: forward buffers + the chunk's logits */
    int64_t scores;          /* transient attention score block at the last chunk */
    int64_t total;           /* weights + kv + work + scores */
    int64_t rows;            /* rows of the largest forward */
    int64_t max_pos;
    char arch[16], dtype[8];
    char strategy[128];      /* the spec in full, defaults filled from the model ("sink" -> "sink:4:508") */
    int64_t file_weights;    /* a GGUF model: bytes of tensor data on file (quantized), else 0 */
    char file_types[160];    /* a GGUF model: its tensor types and counts, e.g. "Q4_K 48, Q6_K 9, F32 17" */
} PlanResult;

/* Predict without running.  -1 with err for a bad model/strategy (usage errors). */
int plan_predict(const PlanInput *in, PlanResult *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- report */

typedef struct {
    const char *db;          /* results file */
    const char *out;         /* output folder (created) */
    const char *gnuplot;     /* gnuplot binary (default "gnuplot") */
    double collapse_factor;
    int svg;                 /* also SVG (default 1) */
} ReportOptions;

/* Write data files, gnuplot scripts, PNG + SVG, index.md and index.html into out.
 * Returns 0 or -1 with err. */
int report_write(const ReportOptions *o, char *err, size_t errlen);

/* Shared formatting: 12.3 MiB, 1.5 GiB. */
void rep_human_bytes(char *b, size_t n, double v);

#endif
