/*
 * sweep.h — `lcbench sweep`: a study as a matrix of ordinary `lcbench run`s.
 *
 * A PLAN file (JSON, docs/sweeps.md) lists axes (models, strategies, tokens, protocols,
 * devices, datasets) and run options; the matrix is their cartesian product, in that order,
 * minus the `exclude`d cells, with per-value overrides applied.  Every cell has a stable key:
 * the first 16 hex digits of the SHA-256 of its normalized arguments (K/M suffixes expanded,
 * strategy aliases resolved, defaults of protocol and device made explicit), so that whether a
 * cell is "already recorded" is decided from the results file alone, whichever sweep ran it.
 *
 * What a sweep keeps in the results file is written and read through the store
 * (reports/store/store_sweep.c, tables made by store.c's migrations):
 *   sweeps       id, plan path and text, cell count, creation time
 *   sweep_cells  one row per attempt of a cell: sweep id, cell index and key, the run
 *                arguments, attempt number, the run it produced (NULL until resolved), and
 *                host, pid and id_floor (max runs.id at launch) that resolve it after a crash
 *
 * Executors: local (sweep_exec.c: a pool of --jobs worker processes, each one `lcbench run`,
 * retries, resume) and Slurm (slurm.c: a job array, one cell and one DB shard per task, then
 * `lcbench merge`, store_merge in reports/store/store_sweep.c).
 */
#ifndef LCB_SWEEP_H
#define LCB_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "reports/store/store.h"

/* The run options a plan may set: plan name, `lcbench run` flag, part of the cell key. */
typedef enum {
    SF_MODEL, SF_STRATEGY, SF_TOKENS, SF_PROTOCOL, SF_DEVICE, SF_DATASET,
    SF_CTX, SF_STRIDE, SF_CHUNK, SF_CONFIG, SF_TOKENIZER, SF_FIELD, SF_TOKEN_FORMAT, SF_BOS,
    SF_REPEAT, SF_MEM_LIMIT, SF_BATCH, SF_BATCH_SECONDS, SF_BIN_WIDTH,
    SF_N
} SweepField;


typedef struct {
    char *v[SF_N];      /* normalized values; NULL = the run's own default (not passed) */
    char key[17];       /* 16 hex digits */
    int idx;            /* position in the matrix, 0-based (the Slurm array index) */
} SweepCell;

typedef struct {
    char id[128];       /* plan "name", or "sweep-" + 12 hex digits of the matrix */
    char *path, *text;  /* the plan file and its content */
    SweepCell *cells;
    int n_cells;
    int vary[SF_N];     /* the field takes more than one value across the cells */
    int axis_vary[SF_N];/* the field is an axis of more than one value (grid rows and columns) */
    /* executor settings from the plan's "executor" object (flags override them); -1 unset */
    int jobs, retries, threads;
    int gpus[64], n_gpus;   /* n_gpus -1: unset */
    char **sbatch;          /* extra #SBATCH lines */
    int n_sbatch;
} SweepPlan;

/* Parse plan text (path only names it in messages).  0, or -1 with err naming the field. */
int sweep_plan_parse(SweepPlan *p, const char *text, const char *path, char *err, size_t errlen);
/* Read and parse a plan file: 0; -1 (err) when it cannot be read; -2 (err) when it is invalid. */
int sweep_plan_load(SweepPlan *p, const char *path, char *err, size_t errlen);
void sweep_plan_free(SweepPlan *p);

/* `lcbench run` arguments of a cell (after "run"), then "--db DB --no-progress", NULL-
 * terminated; returns the count.  args must hold 2 * SF_N + 8 entries; strings point into c. */
int sweep_cell_args(const SweepCell *c, const char *db, const char **args);
/* The canonical "field=value ..." text of a cell (the key's preimage, one line). */
void sweep_cell_text(const SweepCell *c, char *buf, size_t n);
/* A short label: the varying fields only (model by its folder name), or with axes_only the
 * fields of multi-valued axes only; skip_field (-1: none) left out. */
void sweep_cell_label(const SweepPlan *p, const SweepCell *c, int skip_field, int axes_only, char *buf, size_t n);

/* ---------------------------------------------------------------- executors */

typedef struct {
    const char *db;         /* results file (local) or merged output (Slurm) */
    int jobs;               /* worker processes */
    int retries;            /* extra attempts of a failed cell */
    int threads;            /* OMP/OpenBLAS threads per worker; 0: cores / jobs */
    int only_cell;          /* -1: all; else run this cell index only (a Slurm task) */
    const char *log_dir;    /* per-cell logs; NULL: DB.logs/ */
    int dry_run;            /* print the cells and their commands, run nothing */
    int progress;           /* -1 auto (terminal), 0 lines only, 1 live line too */
} SweepExecOptions;

/* Local executor.  Exit status: 0 every cell recorded (done or oom), 1 some failed, 2 usage,
 * 130/143 interrupted (rerun the same command to resume). */
int sweep_execute(const SweepPlan *p, const SweepExecOptions *o);
/* The PPL grid of the plan's cells as recorded in db: strategies across, the other varying
 * fields down. */
int sweep_print_grid(const SweepPlan *p, const char *db, char *err, size_t errlen);

typedef struct {
    const char *db;         /* merged output */
    const char *dir;        /* sweep directory (plan copy, script, shards, logs) */
    int retries, threads;
    int wait;               /* poll squeue until the array ends, then merge into db */
    double poll_s;
    int dry_run;            /* write the script, do not submit */
} SlurmOptions;

/* Slurm executor: exit status as sweep_execute. */
int slurm_submit(const SweepPlan *p, const SlurmOptions *o);

#endif
