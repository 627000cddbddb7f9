/*
 * store.h — the SQLite results file every run writes into (default results.db).
 *
 * One file, WAL mode, a versioned schema (PRAGMA user_version) upgraded in place by the
 * migrations of store.c.  Tables:
 *   runs     one row per run: provenance (revision, model + hash, tokenizer hash, strategy,
 *            protocol, dataset + hashes, device, host, times), status and the resume cursor
 *   nll      per-step NLLs: one row per scored segment of a batch, float32 LE BLOB of n steps;
 *            step j of a row sits at in-window position pos0 + j of the window starting at
 *            stream position win_start (stream protocol: win_start = 0, position = t)
 *   bins     per-bin aggregates (kind log2 | linear | all): count, mean NLL, PPL, stderr
 *   samples  memory (weights, KV, workspace, RSS, device) and throughput at each commit
 *   events   ctx_passed, oom, interrupted, resume, corpus_repeat, error ... at a position
 *   docs     document boundaries of the stream (position, name)
 *   model_hashes  cache of checkpoint content hashes keyed by (path, size, mtime)
 *   probes, generations, generation_windows, passkey_runs, passkey   the fluency detector's rows
 *            (harness/fluency/fluency.h: run --probe-every, generate, passkey)
 *   sweeps, sweep_cells   sweep plans and which run each cell produced (harness/sweep/sweep.h)
 * Every table is made by the one migrations list, and every write goes through a store_*
 * function with bound parameters.
 * A run commits its steps in batches: one transaction holds a batch's nll rows, its samples
 * and the new cursor, so a crash loses at most the batch in flight.
 * It lives in reports/, the layer that reads the results file, and includes only engine/; the
 * run driver and the commands above it (harness/) write through it.
 */
#ifndef LCB_STORE_H
#define LCB_STORE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* = the number of migrations in store.c (checked there at compile time) */
#define STORE_SCHEMA_VERSION 4

typedef struct {
    sqlite3 *db;
    char path[4096];
} Store;

/* Open (creating and migrating as needed).  Returns 0 or -1 with err. */
int store_open(Store *s, const char *path, char *err, size_t errlen);
/* Open an existing results file for reading only (runs, show, report, gate, --resume's lookup):
 * SQLITE_OPEN_READONLY, no file created, no WAL switch, no migration; works on a read-only file,
 * a read-only folder and a read-only WAL file.  Returns 0; -2 with err when the file is missing
 * or is not an lcbench results file (the argument is at fault: exit 2); -1 for other failures. */
int store_open_readonly(Store *s, const char *path, char *err, size_t errlen);
void store_close(Store *s);
int store_schema_version(Store *s);

/* Execute SQL with no result rows; -1 with err naming the statement on failure. */
int store_exec(Store *s, const char *sql, char *err, size_t errlen);
int store_begin(Store *s, char *err, size_t errlen);   /* BEGIN IMMEDIATE */
int store_commit(Store *s, char *err, size_t errlen);
void store_rollback(Store *s);

/* A run's row.  Text fields are owned by the caller when writing; by the struct (malloc'ed,
 * freed by store_run_free) when read back with store_run_get. */
typedef struct {
    int64_t id;
    char *status;           /* running, done, oom, interrupted, failed */
    char *lcbench_rev, *argv;
    char *model, *model_config, *model_hash, *arch, *dtype;
    int64_t n_params, max_pos;
    char *tokenizer, *tokenizer_hash;
    char *strategy, *protocol, *bos;
    int64_t ctx, stride, chunk;
    char *dataset, *dataset_field, *token_format, *dataset_hash, *source_hash;
    int64_t n_docs, passes, repeat;
    int64_t tokens_requested, tokens;
    int64_t steps_total, steps_done, cursor, next_seq;
    int64_t mem_limit, batch_tokens, bin_width, threads;
    char *device, *host;
    int64_t pid;
    char *started, *ended;
    double wall_s, mean_nll, ppl;   /* NAN when not measured (stored as NULL; never read back as 0) */
} StoreRun;

/* Insert a new run (id assigned into r->id). */
int store_run_insert(Store *s, StoreRun *r, char *err, size_t errlen);
/* Rewrite every column of r's row. */
int store_run_update(Store *s, const StoreRun *r, char *err, size_t errlen);
int store_run_get(Store *s, int64_t id, StoreRun *r, char *err, size_t errlen);
void store_run_free(StoreRun *r);
/* Set a text field of StoreRun from a string (frees the old value). */
void store_set(char **field, const char *value);

/* Rows written inside a batch transaction. */
int store_nll_insert(Store *s, int64_t run, int64_t seq, int64_t win_start, int64_t pos0, const float *nll, int64_t n,
                     char *err, size_t errlen);
int store_event(Store *s, int64_t run, int64_t pos, const char *kind, const char *detail, char *err, size_t errlen);
typedef struct {
    int64_t pos;                       /* steps done / tokens fed */
    double elapsed_s, tokens_per_s;
    int64_t weights, kv, kv_formula, work, rss, device;   /* bytes */
} StoreSample;
int store_sample(Store *s, int64_t run, const StoreSample *x, char *err, size_t errlen);
int store_docs(Store *s, int64_t run, const uint64_t *pos, char *const *names, size_t n, char *err, size_t errlen);

/* Every scored step of a run in commit order: callback per row (win_start, pos0, n, data). */
typedef int (*StoreNllFn)(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n);
int store_nll_foreach(Store *s, int64_t run, StoreNllFn fn, void *ctx, char *err, size_t errlen);
/* One per-position aggregate of a run's stored NLLs (the rows of the bins table). */
typedef struct {
    const char *kind;          /* "log2", "linear" or "all" (static strings) */
    int64_t lo, hi, count;     /* positions [lo, hi); hi = -1 for "all" */
    double mean_nll, ppl, se;  /* nats, exp(mean), stderr of the mean (NAN for one step) */
} StoreBin;
/* The run's bins computed from its NLLs without writing anything (a read-only file works):
 * *bins malloc'ed (log2, then linear, then "all"); *mean_nll NAN when no step.  A stored
 * non-finite NLL is an error naming its position, never part of an aggregate. */
int store_bins_compute(Store *s, int64_t run, int64_t bin_width, StoreBin **bins, size_t *n, double *mean_nll, int64_t *steps,
                       char *err, size_t errlen);
/* Replace the run's bins with aggregates recomputed from its NLLs (log2 bins, linear bins of
 * bin_width, and one "all" row); sets *mean_nll, *steps. */
int store_bins_recompute(Store *s, int64_t run, int64_t bin_width, double *mean_nll, int64_t *steps, char *err, size_t errlen);

/* Content-hash cache of checkpoints (path, size, mtime): hex or NULL. */
int store_hash_lookup(Store *s, const char *path, int64_t size, int64_t mtime_ns, char hex[65]);
void store_hash_remember(Store *s, const char *path, int64_t size, int64_t mtime_ns, const char *hex);

/* UTC now as "YYYY-MM-DDTHH:MM:SSZ". */
void store_now(char buf[32]);

/* ---------------------------------------------------------------- statuses */

/* What a run (runs.status), a generation or a passkey run ended as; STORE_STALE is never stored:
 * a `running` row of this host whose process is gone (kill -9, power loss) reads so. */
typedef enum {
    STORE_STATUS_UNKNOWN = 0,   /* NULL or a word this lcbench does not know */
    STORE_RUNNING,
    STORE_DONE,
    STORE_OOM,
    STORE_INTERRUPTED,
    STORE_FAILED,
    STORE_STALE,
} StoreStatus;
/* "running", "done", "oom", "interrupted", "failed", "stale"; "?" for STORE_STATUS_UNKNOWN. */
const char *store_status_name(StoreStatus st);
/* The inverse of store_status_name (NULL or any other word: STORE_STATUS_UNKNOWN). */
StoreStatus store_status_parse(const char *name);
/* A stored status as `runs`, `show`, sweeps and reports see it: `running` becomes STORE_STALE
 * when host is this host and no process pid lives. */
StoreStatus store_status_shown(const char *status, const char *host, int64_t pid);
/* Its name; an unknown stored word is returned as it is ("?" for NULL). */
const char *store_status_display(const char *status, const char *host, int64_t pid);
/* done or oom: a finished measurement that a sweep records and never runs again. */
int store_status_final(StoreStatus st);

/* ---------------------------------------------------------------- side-table rows */

/* One column value of a row written with store_row_insert / store_row_update (bound, never
 * spliced into the SQL).  SV_REAL of NAN and SV_TEXT of NULL store NULL. */
typedef enum { STORE_VAL_NULL, STORE_VAL_INT, STORE_VAL_REAL, STORE_VAL_TEXT } StoreValType;
typedef struct {
    const char *col;       /* column name (a constant of the caller, never user input) */
    StoreValType type;
    int64_t i;
    double d;
    const char *s;
    int64_t len;           /* bytes of s; -1: NUL-terminated */
} StoreVal;
#define SV_NULL(c) ((StoreVal){.col = (c), .type = STORE_VAL_NULL})
#define SV_INT(c, v) ((StoreVal){.col = (c), .type = STORE_VAL_INT, .i = (int64_t)(v)})
#define SV_REAL(c, v) ((StoreVal){.col = (c), .type = STORE_VAL_REAL, .d = (double)(v)})
#define SV_TEXT(c, v) ((StoreVal){.col = (c), .type = STORE_VAL_TEXT, .s = (v), .len = -1})
#define SV_TEXTN(c, v, n) ((StoreVal){.col = (c), .type = STORE_VAL_TEXT, .s = (v), .len = (int64_t)(n)})
/* INSERT INTO table (cols) VALUES (?...); *rowid (if non-NULL) = the new row's id. */
int store_row_insert(Store *s, const char *table, const StoreVal *v, size_t n, int64_t *rowid, char *err, size_t errlen);
/* The same as INSERT OR IGNORE: a row that would break a unique key is left out, no error. */
int store_row_insert_or_ignore(Store *s, const char *table, const StoreVal *v, size_t n, char *err, size_t errlen);
/* UPDATE table SET cols = ? ... WHERE key_col = key. */
int store_row_update(Store *s, const char *table, const char *key_col, int64_t key, const StoreVal *v, size_t n, char *err,
                     size_t errlen);

/* ---------------------------------------------------------------- the run's headline metrics */

/* The headline columns of a runs row (schema 4; harness/run/run.h computes them):
 *   ctx_*   steps at in-window position t < max_pos: count, mean NLL, its standard error (nats)
 *   past_*  steps at t >= max_pos
 *   bytes, words, bits_per_byte, word_ppl   of the scored text (lm-eval's definitions)
 * -1 / NAN: unknown, stored as NULL (a dataset of token ids has no text; a file older than
 * schema 4 has no columns). */
typedef struct {
    int64_t ctx_steps, past_steps;      /* -1: not recorded (a file older than schema 4) */
    double ctx_mean_nll, ctx_se;        /* nats; NAN when no such step (se: fewer than 2) */
    double past_mean_nll, past_se;
    int64_t bytes, words;               /* -1: no text */
    double bits_per_byte, word_ppl;     /* NAN: no text */
} StoreMetrics;
void store_metrics_init(StoreMetrics *m);   /* everything unknown */
int store_metrics_write(Store *s, int64_t run, const StoreMetrics *m, char *err, size_t errlen);
/* The stored metrics of a run; a file of an older schema (read-only, not migrated) reads unknown. */
int store_metrics_read(Store *s, int64_t run, StoreMetrics *m, char *err, size_t errlen);

/* ---------------------------------------------------------------- reading a run's rows */

/* Peaks of a run's samples (bytes), their mean throughput and the last sample's; n = 0 when it
 * has none. */
typedef struct {
    int64_t n;
    double weights, kv, kv_formula, work, rss, device, tokens_per_s, last_tokens_per_s;
} StoreSamplePeaks;
int store_samples_peaks(Store *s, int64_t run, StoreSamplePeaks *p, char *err, size_t errlen);
/* The ids of the last `last` runs (0: every run), ascending: *ids malloc'ed (NULL when none). */
int store_runs_ids(Store *s, int64_t last, int64_t **ids, size_t *n, char *err, size_t errlen);
/* Every column of a run's row, the schema's order, under its own name, by its stored type
 * (INTEGER, REAL, TEXT; NULL and BLOB as STORE_VAL_NULL): fn(ctx, value) per column; a
 * non-zero return of fn stops the walk and is returned.  A missing run is an error. */
typedef int (*StoreColumnFn)(void *ctx, const StoreVal *v);
int store_run_columns(Store *s, int64_t id, StoreColumnFn fn, void *ctx, char *err, size_t errlen);
/* Every event of a run in the order written: fn(ctx, pos, time, kind, detail) (NULL texts as "");
 * a non-zero return of fn stops the walk and is returned (err untouched). */
typedef int (*StoreEventFn)(void *ctx, int64_t pos, const char *time, const char *kind, const char *detail);
int store_events_foreach(Store *s, int64_t run, StoreEventFn fn, void *ctx, char *err, size_t errlen);
/* The stored bins of one kind ("log2", "linear", "all") ordered by lo: *bins malloc'ed, kind
 * pointing at a static string; a NULL mean, PPL or stderr reads NAN. */
int store_bins_read(Store *s, int64_t run, const char *kind, StoreBin **bins, size_t *n, char *err, size_t errlen);

/* ---------------------------------------------------------------- sweeps and merge (store_sweep.c) */

/* Record a sweep's plan (once per sweep id; again: nothing changes). */
int store_sweep_record(Store *s, const char *id, const char *plan_path, const char *plan_text, int n_cells, char *err, size_t errlen);
/* One attempt of a cell: a sweep_cells row; the run it makes is found afterwards from host,
 * pid and id_floor (store_sweep_resolve). */
typedef struct {
    const char *sweep_id, *cell_key, *args;  /* args: the cell's canonical text */
    int cell_idx, attempt;                   /* attempt 1, 2, ... */
    int64_t run_id;                          /* the run resumed, 0 for a new one (stored NULL) */
    const char *host;
    int64_t pid, id_floor;                   /* the worker; max runs.id when it was launched */
} StoreSweepAttempt;
/* Insert it; *row = its rowid. */
int store_sweep_attempt(Store *s, const StoreSweepAttempt *a, int64_t *row, char *err, size_t errlen);
/* The attempt of row ended with exit_status: recorded, runs resolved, *run_id = its run (0: none). */
int store_sweep_attempt_end(Store *s, int64_t row, int exit_status, int64_t *run_id, char *err, size_t errlen);
/* Attach runs to attempts that were left without one (a sweep killed mid-cell). */
int store_sweep_resolve(Store *s, char *err, size_t errlen);
/* The latest run recorded for a cell key (a done or oom run outranks later attempts): *run_id
 * (0: none, *status STORE_STATUS_UNKNOWN) and its status as shown (stale for a dead process). */
int store_sweep_cell(Store *s, const char *key, int64_t *run_id, StoreStatus *status, char *err, size_t errlen);
/* The largest run id in the file (0 when it holds none). */
int store_runs_max_id(Store *s, int64_t *id, char *err, size_t errlen);
/* The position of a run's last oom event; -1 when it has none. */
int store_oom_pos(Store *s, int64_t run, int64_t *pos, char *err, size_t errlen);

/* Merge the shard file into out (created if missing): runs and their rows, new ids, duplicates
 * skipped (same start time, command line, model and dataset hashes), a more complete copy of a
 * run replacing a less complete one.  0, or -1 with err. */
typedef struct { int64_t added, replaced, skipped; } StoreMergeStats;
int store_merge(const char *out, const char *shard, StoreMergeStats *ms, char *err, size_t errlen);

#endif
