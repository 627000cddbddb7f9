/*
 * cmd_show.c — `lcbench show RUN`: a run's provenance, outcome, events, memory and throughput,
 * and its per-bin perplexity; --nll prints every stored per-step NLL.  A run still going (or
 * killed) has its bins computed on the fly from the NLLs committed so far, without writing.
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

static int print_nll(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    (void)ctx;
    for (int64_t j = 0; j < n; j++) printf("%lld\t%lld\t%.9g\n", (long long)win_start, (long long)(pos0 + j), nll[j]);
    return 0;
}

static const char *nz(const char *s) { return s ? s : "-"; }

/* store_events_foreach callbacks: one JSON object per event (ctx: the array); one line each */
static int event_json(void *ctx, int64_t pos, const char *time, const char *kind, const char *detail) {
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddItemToArray(ctx, e)) { cJSON_Delete(e); return -1; }
    cJSON_AddNumberToObject(e, "pos", (double)pos);
    const char *name[] = {"time", "kind", "detail"}, *val[] = {time, kind, detail};
    for (int k = 0; k < 3; k++)   /* NULL in the file (read as "") is null, as every column of --json */
        if (val[k][0]) cJSON_AddStringToObject(e, name[k], val[k]); else cJSON_AddNullToObject(e, name[k]);
    return 0;
}

static int event_line(void *ctx, int64_t pos, const char *time, const char *kind, const char *detail) {
    int *first = ctx;
    if (*first) printf("events:\n");
    *first = 0;
    printf("  %-10lld %-20s %-14s %s\n", (long long)pos, time[0] ? time : "-", kind[0] ? kind : "-", detail[0] ? detail : "-");
    return 0;
}

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
            int erc = ev ? store_events_foreach(&st, r.id, event_json, ev, err, sizeof err) : -1;
            if (erc) { cli_error("show", "%s", erc > 0 || !ev ? "out of memory" : err); rc = 1; }
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
    StoreStatus shown = store_status_shown(r.status, r.host, r.pid);
    int live = store_status_parse(r.status) == STORE_RUNNING;
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
    else snprintf(result, sizeof result, "none (no scored step%s)", shown != STORE_DONE ? " aggregated: the run did not finish" : "");

    printf("run %lld  %s%s\n", (long long)r.id, status, shown == STORE_STALE ? "  (process gone: lcbench run --resume continues it)" : "");
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
    else if (store_metrics_read(&st, r.id, &met, err, sizeof err)) { cli_error("show", "%s", err); rc = 1; }
    run_headline_print(stdout, &st, &r, &met, live ? lb : NULL, n_lb);

    StoreSamplePeaks pk;
    if (store_samples_peaks(&st, r.id, &pk, err, sizeof err)) { cli_error("show", "%s", err); rc = 1; }
    else if (pk.n > 0) {
        char w[32], k[32], kf[32], wk[32], rs[32];
        human_bytes(w, sizeof w, pk.weights);
        human_bytes(k, sizeof k, pk.kv);
        human_bytes(kf, sizeof kf, pk.kv_formula);
        human_bytes(wk, sizeof wk, pk.work);
        human_bytes(rs, sizeof rs, pk.rss);
        printf("memory (peak of %lld samples): weights %s, KV %s (formula %s), workspace %s, RSS %s\n", (long long)pk.n, w, k, kf, wk, rs);
        printf("throughput: %.0f tokens/s (mean over samples)\n", pk.tokens_per_s);
    }
    int first = 1;
    if (store_events_foreach(&st, r.id, event_line, &first, err, sizeof err)) { cli_error("show", "%s", err); rc = 1; }
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
    } else if (strcmp(bins, "none")) {
        StoreBin *sb = NULL;
        size_t n_sb = 0;
        if (store_bins_read(&st, r.id, bins, &sb, &n_sb, err, sizeof err)) { cli_error("show", "%s", err); rc = 1; }
        printf("bins (%s, by position t = step index in its window, SPEC §1):\n  %-12s %-12s %-10s %-12s %-12s %s\n", bins, "from", "to",
               "steps", "mean NLL", "PPL", "stderr");
        for (size_t i = 0; i < n_sb; i++) {
            char se[32] = "-", mean[32] = "-", ppl[32] = "-";   /* one step: no standard error; NULL: not measured */
            if (!isnan(sb[i].se)) snprintf(se, sizeof se, "%.6f", sb[i].se);
            if (!isnan(sb[i].mean_nll)) snprintf(mean, sizeof mean, "%.6f", sb[i].mean_nll);
            if (!isnan(sb[i].ppl)) snprintf(ppl, sizeof ppl, "%.4f", sb[i].ppl);
            printf("  %-12lld %-12lld %-10lld %-12s %-12s %s\n", (long long)sb[i].lo, (long long)sb[i].hi, (long long)sb[i].count, mean, ppl, se);
        }
        free(sb);
    }
    free(lb);
out:
    store_run_free(&r);
    store_close(&st);
    return rc;
}
