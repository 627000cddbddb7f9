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
 * A run commits its steps in batches: one transaction holds a batch's nll rows, its samples
 * and the new cursor, so a crash loses at most the batch in flight.
 */
#ifndef LCB_STORE_H
#define LCB_STORE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 2

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

#endif
