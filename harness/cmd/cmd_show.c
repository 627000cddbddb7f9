/*
 * cmd_show.c — `lcbench show RUN`: a run's provenance, outcome, events, memory and throughput,
 * and its per-bin perplexity; --nll prints every stored per-step NLL.  A run still going (or
 * killed) has its bins computed on the fly from the NLLs committed so far, without writing.
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

static void show_help(void) {
    printf("usage: lcbench show RUN [--db PATH] [--bins log2|linear|all|none] [--nll] [--json | --csv]\n"
           "  --db PATH     results file (default results.db)\n"
           "  --bins KIND   which per-position bins to print (default log2)\n"
           "  --nll         print every scored step instead: window start, in-window position, NLL\n"
           "                (tab-separated, commit order)\n"
           "  --json        the run as one JSON object: every column of its row, the headline's values,\n"
           "                its bins and events (docs/results.md)\n"
           "  --csv         the run's row and headline values as CSV (the columns of lcbench runs --csv)\n");
}

static int print_nll(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    (void)ctx;
    for (int64_t j = 0; j < n; j++) printf("%lld\t%lld\t%.9g\n", (long long)win_start, (long long)(pos0 + j), nll[j]);
    return 0;
}

static const char *nz(const char *s) { return s ? s : "-"; }

static void human_bytes(char *b, size_t n, double v) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (v >= 1024 && k < 4) { v /= 1024; k++; }
    snprintf(b, n, k ? "%.1f %s" : "%.0f %s", v, u[k]);
}

int cmd_show(int argc, char **argv) {
    Cli c;
    cli_init(&c, "show", argc, argv);
    const char *db = "results.db", *bins = "log2";
    int dump = 0, json = 0, csv = 0;
    uint64_t id = 0;
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { show_help(); return 0; }
        if (!strcmp(f, "--db")) { if (!(v = cli_value(&c))) return EXIT_USAGE; db = v; }
        else if (!strcmp(f, "--bins")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (strcmp(v, "log2") && strcmp(v, "linear") && strcmp(v, "all") && strcmp(v, "none"))
                return cli_usage_error(&c, "--bins \"%s\" must be log2, linear, all or none", v);
            bins = v;
        } else if (!strcmp(f, "--nll")) dump = 1;
        else if (!strcmp(f, "--json")) json = 1;
        else if (!strcmp(f, "--csv")) csv = 1;
        else if (f[0] != '-' && !id) {
            if (cli_parse_count("RUN", f, 1, 1, INT64_MAX, &id)) return cli_usage_error(&c, "RUN \"%s\" must be a run id", f);
        } else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    if (!id) return cli_usage_error(&c, "which run? (lcbench runs lists them)");
    if (json + csv + dump > 1) return cli_usage_error(&c, "--json, --csv and --nll: one at a time");
    char err[LCB_ERRLEN];
    Store st;
    int orc = store_open_readonly(&st, db, err, sizeof err);   /* showing never writes (nor creates) the file */
    if (orc) { cli_error("show", "--db %s", err); return orc == -2 ? EXIT_USAGE : 1; }
    StoreRun r;
    if (store_run_get(&st, (int64_t)id, &r, err, sizeof err)) { cli_error("show", "%s", err); store_close(&st); return 1; }
    int rc = 0;
    if (json || csv) {
        cJSON *o = run_export_object(&st, r.id, err, sizeof err);
        cJSON *rows = cJSON_CreateArray();
        if (!o || !rows) { cli_error("show", "%s", o ? "out of memory" : err); cJSON_Delete(o); cJSON_Delete(rows); rc = 1; goto out; }
        if (csv) {
            cJSON_AddItemToArray(rows, o);
            if (run_export_csv(stdout, rows)) { cli_error("show", "write error"); rc = 1; }
        } else {
            cJSON *b = run_export_bins(&st, r.id, NULL, err, sizeof err);
            if (!b) { cli_error("show", "%s", err); rc = 1; b = cJSON_CreateNull(); }
            cJSON_AddItemToObject(o, "bins", b);
            cJSON *ev = cJSON_AddArrayToObject(o, "events");
            sqlite3_stmt *q;
            if (ev && sqlite3_prepare_v2(st.db, "SELECT pos, time, kind, detail FROM events WHERE run_id=? ORDER BY rowid", -1, &q, NULL) == SQLITE_OK) {
                sqlite3_bind_int64(q, 1, r.id);
                while (sqlite3_step(q) == SQLITE_ROW) {
                    cJSON *e = cJSON_CreateObject();
                    cJSON_AddNumberToObject(e, "pos", (double)sqlite3_column_int64(q, 0));
                    for (int k = 1; k <= 3; k++) {
                        const char *name = k == 1 ? "time" : k == 2 ? "kind" : "detail";
                        if (sqlite3_column_text(q, k)) cJSON_AddStringToObject(e, name, (const char *)sqlite3_column_text(q, k));
                        else cJSON_AddNullToObject(e, name);
                    }
                    cJSON_AddItemToArray(ev, e);
                }
                sqlite3_finalize(q);
            }
            char *t = cJSON_Print(o);
            if (t) printf("%s\n", t); else { cli_error("show", "out of memory"); rc = 1; }
            free(t);
            cJSON_Delete(o);
        }
        cJSON_Delete(rows);
        goto out;
    }
    if (dump) {
        if (store_nll_foreach(&st, r.id, print_nll, NULL, err, sizeof err)) { cli_error("show", "%s", err); rc = 1; }
        goto out;
    }
    const char *status = store_status_display(r.status, r.host, r.pid);
    /* a run without final aggregates: compute them from the NLLs committed so far, in memory */
    int live = !strcmp(r.status ? r.status : "", "running");
    StoreBin *lb = NULL;
    size_t n_lb = 0;
    if (live) {
        int64_t n;
        if (store_bins_compute(&st, r.id, r.bin_width, &lb, &n_lb, &r.mean_nll, &n, err, sizeof err)) {
            cli_error("show", "%s", err);
            r.mean_nll = NAN;
            rc = 1;
        }
        r.ppl = exp(r.mean_nll);
    }
    char result[160];
    if (isfinite(r.mean_nll)) snprintf(result, sizeof result, "mean NLL %.6f  PPL %.4f%s", r.mean_nll, r.ppl, live ? "  (so far)" : "");
    else snprintf(result, sizeof result, "none (no scored step%s)", strcmp(status, "done") ? " aggregated: the run did not finish" : "");

    printf("run %lld  %s%s\n", (long long)r.id, status, !strcmp(status, "stale") ? "  (process gone: lcbench run --resume continues it)" : "");
    printf("  model       %s  (%s, %lld params, %s, max_pos %lld)\n", nz(r.model), nz(r.arch), (long long)r.n_params, nz(r.dtype), (long long)r.max_pos);
    printf("  model hash  %s%s%s\n", nz(r.model_hash), r.model_config ? "  config " : "", r.model_config ? r.model_config : "");
    printf("  tokenizer   %s  %s\n", nz(r.tokenizer), nz(r.tokenizer_hash));
    printf("  strategy    %s\n", nz(r.strategy));
    printf("  protocol    %s  L %lld  S %lld  chunk %lld  bos %s\n", nz(r.protocol), (long long)r.ctx, (long long)r.stride, (long long)r.chunk, nz(r.bos));
    printf("  dataset     %s  (%s%s%s, %lld docs, %lld pass%s)\n", nz(r.dataset), nz(r.token_format), r.dataset_field ? ", field " : "",
           r.dataset_field ? r.dataset_field : "", (long long)r.n_docs, (long long)r.passes, r.passes == 1 ? "" : "es");
    printf("  token hash  %s\n  source hash %s\n", nz(r.dataset_hash), nz(r.source_hash));
    printf("  tokens      %lld (requested %lld)\n", (long long)r.tokens, (long long)r.tokens_requested);
    printf("  steps       %lld of %lld scored  (cursor %lld)\n", (long long)r.steps_done, (long long)r.steps_total, (long long)r.cursor);
    printf("  result      %s\n", result);
    printf("  where       %s on %s, %lld threads, lcbench %s\n", nz(r.device), nz(r.host), (long long)r.threads, nz(r.lcbench_rev));
    printf("  when        %s .. %s  (%.1f s running)\n", nz(r.started), nz(r.ended), r.wall_s);
    if (r.mem_limit) { char b[32]; human_bytes(b, sizeof b, (double)r.mem_limit); printf("  mem limit   %s\n", b); }
    printf("  command     %s\n", nz(r.argv));
    RunMetrics met;
    if (live) run_metrics_compute(&st, r.id, r.max_pos, NULL, NULL, 0, &met, err, sizeof err);
    else run_metrics_read(st.db, r.id, &met);
    run_headline_print(stdout, st.db, &r, &met, live ? lb : NULL, n_lb);

    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st.db, "SELECT MAX(weights_bytes), MAX(kv_bytes), MAX(kv_formula_bytes), MAX(work_bytes), MAX(rss_bytes),"
                                  " MAX(device_bytes), COUNT(*), AVG(tokens_per_s) FROM samples WHERE run_id=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, r.id);
        if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 6) > 0) {
            char w[32], k[32], kf[32], wk[32], rs[32];
            human_bytes(w, sizeof w, sqlite3_column_double(q, 0));
            human_bytes(k, sizeof k, sqlite3_column_double(q, 1));
            human_bytes(kf, sizeof kf, sqlite3_column_double(q, 2));
            human_bytes(wk, sizeof wk, sqlite3_column_double(q, 3));
            human_bytes(rs, sizeof rs, sqlite3_column_double(q, 4));
            printf("memory (peak of %lld samples): weights %s, KV %s (formula %s), workspace %s, RSS %s\n",
                   (long long)sqlite3_column_int64(q, 6), w, k, kf, wk, rs);
            printf("throughput: %.0f tokens/s (mean over samples)\n", sqlite3_column_double(q, 7));
        }
        sqlite3_finalize(q);
    }
    if (sqlite3_prepare_v2(st.db, "SELECT pos, time, kind, detail FROM events WHERE run_id=? ORDER BY rowid", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, r.id);
        int first = 1;
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (first) printf("events:\n");
            first = 0;
            printf("  %-10lld %-20s %-14s %s\n", (long long)sqlite3_column_int64(q, 0), nz((const char *)sqlite3_column_text(q, 1)),
                   nz((const char *)sqlite3_column_text(q, 2)), nz((const char *)sqlite3_column_text(q, 3)));
        }
        sqlite3_finalize(q);
    }
    if (live && strcmp(bins, "none")) {
        printf("bins (%s, by position t = step index in its window, SPEC §1; so far):\n  %-12s %-12s %-10s %-12s %-12s %s\n", bins, "from", "to",
               "steps", "mean NLL", "PPL", "stderr");
        for (size_t i = 0; i < n_lb; i++) {
            if (strcmp(lb[i].kind, bins)) continue;
            char se[32] = "-";
            if (!isnan(lb[i].se)) snprintf(se, sizeof se, "%.6f", lb[i].se);
            printf("  %-12lld %-12lld %-10lld %-12.6f %-12.4f %s\n", (long long)lb[i].lo, (long long)lb[i].hi, (long long)lb[i].count,
                   lb[i].mean_nll, lb[i].ppl, se);
        }
    } else if (strcmp(bins, "none") && sqlite3_prepare_v2(st.db, "SELECT lo, hi, count, mean_nll, ppl, stderr FROM bins WHERE run_id=? AND kind=? ORDER BY lo",
                                                   -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, r.id);
        sqlite3_bind_text(q, 2, bins, -1, SQLITE_STATIC);
        printf("bins (%s, by position t = step index in its window, SPEC §1):\n  %-12s %-12s %-10s %-12s %-12s %s\n", bins, "from", "to",
               "steps", "mean NLL", "PPL", "stderr");
        while (sqlite3_step(q) == SQLITE_ROW) {
            char se[32] = "-", mean[32] = "-", ppl[32] = "-";   /* one step: no standard error; NULL: not measured */
            if (sqlite3_column_type(q, 5) != SQLITE_NULL) snprintf(se, sizeof se, "%.6f", sqlite3_column_double(q, 5));
            if (sqlite3_column_type(q, 3) != SQLITE_NULL) snprintf(mean, sizeof mean, "%.6f", sqlite3_column_double(q, 3));
            if (sqlite3_column_type(q, 4) != SQLITE_NULL) snprintf(ppl, sizeof ppl, "%.4f", sqlite3_column_double(q, 4));
            printf("  %-12lld %-12lld %-10lld %-12s %-12s %s\n", (long long)sqlite3_column_int64(q, 0), (long long)sqlite3_column_int64(q, 1),
                   (long long)sqlite3_column_int64(q, 2), mean, ppl, se);
        }
        sqlite3_finalize(q);
    }
    free(lb);
out:
    store_run_free(&r);
    store_close(&st);
    return rc;
}
