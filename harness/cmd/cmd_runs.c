/*
 * cmd_runs.c — `lcbench runs`: one line per run of a results file, newest last.  A run left
 * `running` by a process that is gone (kill -9) shows as `stale` and can be resumed.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"
#include "reports/store/store.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base(const char *p) {
    if (!p) return "?";
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

int cmd_runs(int argc, char **argv) {
    Cli c;
    cli_init(&c, "runs", argc, argv);
    const char *db = "results.db";
    uint64_t limit = 0;
    int json = 0, csv = 0;
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
        if (!strcmp(f, "--db")) { if (!(v = cli_value(&c))) return EXIT_USAGE; db = v; }
        else if (!strcmp(f, "--limit")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (cli_parse_count(f, v, 1, 1, INT64_MAX, &limit)) return cli_usage_error(&c, "--limit \"%s\" must be a positive integer", v);
        } else if (!strcmp(f, "--json")) json = 1;
        else if (!strcmp(f, "--csv")) csv = 1;
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    if (json && csv) return cli_usage_error(&c, "--json and --csv: one at a time");
    char err[LCB_ERRLEN];
    Store st;
    int orc = store_open_readonly(&st, db, err, sizeof err);   /* a listing never writes (nor creates) the file */
    if (orc) { cli_error("runs", "--db %s", err); return orc == -2 ? EXIT_USAGE : 1; }
    int64_t *ids;
    size_t n_ids;
    if (store_runs_ids(&st, (int64_t)limit, &ids, &n_ids, err, sizeof err)) { cli_error("runs", "%s", err); store_close(&st); return 1; }
    int rc = 0;
    if (json || csv) {
        cJSON *rows = cJSON_CreateArray();
        if (!rows) { cli_error("runs", "out of memory"); rc = 1; }
        for (size_t i = 0; rc == 0 && i < n_ids; i++) {
            cJSON *o = run_export_object(&st, ids[i], err, sizeof err);
            if (!o) { cli_error("runs", "%s", err); rc = 1; break; }
            cJSON_AddItemToArray(rows, o);
        }
        if (rc == 0 && csv && run_export_csv(stdout, rows)) { cli_error("runs", "write error"); rc = 1; }
        if (rc == 0 && json) {
            char *t = cJSON_Print(rows);
            if (t) printf("%s\n", t); else { cli_error("runs", "out of memory"); rc = 1; }
            free(t);
        }
        cJSON_Delete(rows);
        free(ids);
        store_close(&st);
        return rc;
    }
    printf("%-5s %-11s %-20s %-16s %-14s %-16s %-16s %-21s %s\n", "id", "status", "started", "model", "strategy", "protocol", "dataset", "steps", "ppl");
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        StoreRun r;
        StoreBin *all = NULL;
        size_t n_all = 0;
        if (store_run_get(&st, ids[i], &r, err, sizeof err)) { cli_error("runs", "%s", err); rc = 1; break; }
        if (store_bins_read(&st, r.id, "all", &all, &n_all, err, sizeof err)) { cli_error("runs", "%s", err); rc = 1; store_run_free(&r); break; }
        char proto[64], steps[64], ppl[32] = "-";
        const char *p = r.protocol;
        if (p && strcmp(p, "stream") && r.stride) snprintf(proto, sizeof proto, "%s %lld/%lld", p, (long long)r.ctx, (long long)r.stride);
        else if (p && strcmp(p, "stream")) snprintf(proto, sizeof proto, "%s %lld", p, (long long)r.ctx);
        else snprintf(proto, sizeof proto, "%s", p ? p : "?");
        snprintf(steps, sizeof steps, "%lld/%lld", (long long)r.steps_done, (long long)r.steps_total);
        /* PPL of the finished aggregate; a run still going (or killed) has none yet */
        if (n_all && isfinite(all[0].mean_nll)) snprintf(ppl, sizeof ppl, "%.4f", exp(all[0].mean_nll));
        printf("%-5lld %-11s %-20s %-16.16s %-14.14s %-16.16s %-16.16s %-21s %s\n", (long long)r.id, store_status_display(r.status, r.host, r.pid),
               r.started ? r.started : "?", base(r.model), r.strategy ? r.strategy : "?", proto, r.dataset ? base(r.dataset) : "?", steps, ppl);
        free(all);
        store_run_free(&r);
    }
    free(ids);
    store_close(&st);
    return rc;
}
