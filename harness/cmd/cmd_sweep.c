/*
 * cmd_sweep.c — `lcbench sweep PLAN`: flags -> the plan (sweep_plan.c) -> the local executor
 * (sweep_exec.c), one cell (what a Slurm array task runs), or the Slurm executor (slurm.c).
 * Flags given here override the plan's "executor" settings.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/sweep/sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_sweep(int argc, char **argv) {
    Cli c;
    cli_init(&c, "sweep", argc, argv);
    const char *plan_path = NULL, *db = "results.db", *log_dir = NULL, *dir = NULL, *gpus = NULL;
    int jobs = -1, retries = -1, threads = -1, cell = -1, dry = 0, status = 0, slurm = 0, wait = 0;
    double poll = 5;
    uint64_t u;
    for (const char *f; (f = cli_next(&c));) {
        const char *v = NULL;
#define VAL() do { if (!(v = cli_value(&c))) return EXIT_USAGE; } while (0)
#define COUNT(lo, hi, what) do { VAL(); if (cli_parse_count(f, v, 1, lo, hi, &u)) return cli_usage_error(&c, "%s \"%s\" must be %s", f, v, what); } while (0)
        if (!strcmp(f, "--db")) { VAL(); db = v; }
        else if (!strcmp(f, "--jobs")) { COUNT(1, 1024, "an integer in 1..1024"); jobs = (int)u; }
        else if (!strcmp(f, "--retries")) { COUNT(0, 100, "an integer in 0..100"); retries = (int)u; }
        else if (!strcmp(f, "--threads")) { COUNT(1, 4096, "an integer in 1..4096"); threads = (int)u; }
        else if (!strcmp(f, "--cell")) { COUNT(0, 1u << 30, "a cell index (0-based)"); cell = (int)u; }
        else if (!strcmp(f, "--gpus")) {
            VAL();
            if (!*v || strspn(v, "0123456789,") != strlen(v) || strstr(v, ",,") || v[0] == ',' || v[strlen(v) - 1] == ',')
                return cli_usage_error(&c, "--gpus \"%s\" must be a comma-separated list of GPU indices", v);
            gpus = v;
        }
        else if (!strcmp(f, "--log-dir")) { VAL(); log_dir = v; }
        else if (!strcmp(f, "--dir")) { VAL(); dir = v; }
        else if (!strcmp(f, "--poll")) {
            VAL();
            char *end;
            poll = strtod(v, &end);
            if (*end || !(poll > 0)) return cli_usage_error(&c, "--poll \"%s\" must be a positive number of seconds", v);
        }
        else if (!strcmp(f, "--dry-run")) dry = 1;
        else if (!strcmp(f, "--status")) status = 1;
        else if (!strcmp(f, "--slurm")) slurm = 1;
        else if (!strcmp(f, "--wait")) wait = 1;
        else if (f[0] != '-' && !plan_path) plan_path = f;
        else if (f[0] != '-') return cli_usage_error(&c, "one PLAN only (got \"%s\" and \"%s\")", plan_path, f);
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
#undef VAL
#undef COUNT
    }
    if (!plan_path) return cli_usage_error(&c, "PLAN is missing");
    if (slurm && cell >= 0) return cli_usage_error(&c, "--cell runs one cell here; it cannot go with --slurm");
    if (!slurm && (wait || dir)) return cli_usage_error(&c, "%s goes with --slurm", wait ? "--wait" : "--dir");
    if (status && (slurm || cell >= 0 || dry)) return cli_usage_error(&c, "--status only reads the results file; drop the other mode flags");
    char err[LCB_ERRLEN];
    SweepPlan p;
    int lr = sweep_plan_load(&p, plan_path, err, sizeof err);
    if (lr) {
        cli_error("sweep", "%s", err);
        sweep_plan_free(&p);
        return lr == -2 ? EXIT_USAGE : 1;
    }
    if (cell >= p.n_cells) {
        int n = p.n_cells;
        sweep_plan_free(&p);
        return cli_usage_error(&c, "--cell %d: the plan has %d cells (0..%d)", cell, n, n - 1);
    }
    if (gpus) {
        p.n_gpus = 0;
        for (const char *s = gpus; *s && p.n_gpus < 64;) { p.gpus[p.n_gpus++] = atoi(s); s += strcspn(s, ","); if (*s) s++; }
    }
    int rc;
    if (status) {
        rc = sweep_print_grid(&p, db, err, sizeof err) ? (cli_error("sweep", "%s", err), 1) : 0;
    } else if (slurm) {
        SlurmOptions o = {.db = db, .dir = dir, .retries = retries >= 0 ? retries : p.retries >= 0 ? p.retries : 1,
                          .threads = threads > 0 ? threads : 0, .wait = wait, .poll_s = poll, .dry_run = dry};
        rc = slurm_submit(&p, &o);
    } else {
        int any_cuda = 0;
        for (int i = 0; i < p.n_cells; i++) any_cuda |= p.cells[i].v[SF_DEVICE] && !strcmp(p.cells[i].v[SF_DEVICE], "cuda");
        int dj = p.jobs > 0 ? p.jobs : 1;
        if (p.jobs <= 0 && any_cuda && p.n_gpus > 0) dj = p.n_gpus;
        SweepExecOptions o = {.db = db, .jobs = cell >= 0 ? 1 : jobs > 0 ? jobs : dj,
                              .retries = retries >= 0 ? retries : p.retries >= 0 ? p.retries : 1,
                              .threads = threads > 0 ? threads : p.threads > 0 ? p.threads : 0, .only_cell = cell, .log_dir = log_dir,
                              .dry_run = dry, .progress = -1};
        rc = sweep_execute(&p, &o);
    }
    sweep_plan_free(&p);
    return rc;
}
