/*
 * cmd_runs.c — `lcbench runs`: one line per run of a results file, newest last.  A run left
 * `running` by a process that is gone (kill -9) shows as `stale` and can be resumed.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"
#include "harness/store/store.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void runs_help(void) {
    printf("usage: lcbench runs [--db PATH] [--limit N] [--json | --csv]\n"
           "  --db PATH   results file (default results.db)\n"
           "  --limit N   only the last N runs\n"
           "  --json      a JSON array, one object per run: every column of its row and the headline's\n"
           "              values (docs/results.md); --csv: the same as CSV with a header row\n"
           "Columns: id, status (running, stale, done, oom, interrupted, failed), start time, model,\n"
           "strategy, protocol (L/S), dataset, steps done/total, PPL over the steps done.\n");
}

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
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { runs_help(); return 0; }
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
    sqlite3_stmt *q;
    const char *sql = "SELECT id, status, host, pid, started, model, strategy, protocol, ctx, stride, dataset, steps_done, steps_total,"
                      " (SELECT mean_nll FROM bins WHERE run_id=runs.id AND kind='all') FROM runs"
                      " WHERE id > (SELECT COALESCE(MAX(id), 0) FROM runs) - ?1 OR ?1 = 0 ORDER BY id";
    if (sqlite3_prepare_v2(st.db, sql, -1, &q, NULL) != SQLITE_OK) { cli_error("runs", "%s: %s", db, sqlite3_errmsg(st.db)); store_close(&st); return 1; }
    sqlite3_bind_int64(q, 1, (int64_t)limit);
    if (json || csv) {
        cJSON *rows = cJSON_CreateArray();
        int rc = rows ? 0 : 1;
        while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
            cJSON *o = run_export_object(&st, sqlite3_column_int64(q, 0), err, sizeof err);
            if (!o) { cli_error("runs", "%s", err); rc = 1; break; }
            cJSON_AddItemToArray(rows, o);
        }
        sqlite3_finalize(q);
        if (rc == 0 && csv && run_export_csv(stdout, rows)) { cli_error("runs", "write error"); rc = 1; }
        if (rc == 0 && json) {
            char *t = cJSON_Print(rows);
            if (t) printf("%s\n", t); else { cli_error("runs", "out of memory"); rc = 1; }
            free(t);
        }
        cJSON_Delete(rows);
        store_close(&st);
        return rc;
    }
    printf("%-5s %-11s %-20s %-16s %-14s %-16s %-16s %-21s %s\n", "id", "status", "started", "model", "strategy", "protocol", "dataset", "steps", "ppl");
    while (sqlite3_step(q) == SQLITE_ROW) {
        char proto[64], steps[64], ppl[32] = "-";
        const char *p = (const char *)sqlite3_column_text(q, 7);
        int64_t L = sqlite3_column_int64(q, 8), S = sqlite3_column_int64(q, 9);
        if (p && strcmp(p, "stream") && S) snprintf(proto, sizeof proto, "%s %lld/%lld", p, (long long)L, (long long)S);
        else if (p && strcmp(p, "stream")) snprintf(proto, sizeof proto, "%s %lld", p, (long long)L);
        else snprintf(proto, sizeof proto, "%s", p ? p : "?");
        snprintf(steps, sizeof steps, "%lld/%lld", (long long)sqlite3_column_int64(q, 11), (long long)sqlite3_column_int64(q, 12));
        /* PPL of the finished aggregate; a run still going (or killed) has none yet */
        if (sqlite3_column_type(q, 13) != SQLITE_NULL && isfinite(sqlite3_column_double(q, 13)))
            snprintf(ppl, sizeof ppl, "%.4f", exp(sqlite3_column_double(q, 13)));
        const char *ds = (const char *)sqlite3_column_text(q, 10);
        printf("%-5lld %-11s %-20s %-16.16s %-14.14s %-16.16s %-16.16s %-21s %s\n", (long long)sqlite3_column_int64(q, 0),
               store_status_display((const char *)sqlite3_column_text(q, 1), (const char *)sqlite3_column_text(q, 2), sqlite3_column_int64(q, 3)),
               sqlite3_column_text(q, 4) ? (const char *)sqlite3_column_text(q, 4) : "?", base((const char *)sqlite3_column_text(q, 5)),
               sqlite3_column_text(q, 6) ? (const char *)sqlite3_column_text(q, 6) : "?", proto, ds ? base(ds) : "?", steps, ppl);
    }
    sqlite3_finalize(q);
    store_close(&st);
    return 0;
}
