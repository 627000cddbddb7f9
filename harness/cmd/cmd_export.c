/*
 * cmd_export.c — results people can take elsewhere: `lcbench export RUN --bins|--steps
 * [--json|--csv] [-o FILE]`, and the machine-readable forms of `runs` and `show` (--json,
 * --csv), which share the run object built here (run.h).  JSON is built with cJSON; CSV is
 * RFC 4180 (a field holding a comma, a quote, a line break or edge blanks is quoted, its quotes
 * doubled; a NULL is an empty field).  The columns are documented in docs/results.md.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"
#include "reports/store/store.h"
#include "reports/reports.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- CSV */

static void csv_field(FILE *f, const char *s) {
    size_t n = strlen(s);
    int q = n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t');
    for (const char *p = s; *p && !q; p++) q = *p == ',' || *p == '"' || *p == '\n' || *p == '\r';
    if (!q) { fputs(s, f); return; }
    fputc('"', f);
    for (const char *p = s; *p; p++) { if (*p == '"') fputc('"', f); fputc(*p, f); }
    fputc('"', f);
}

static void csv_value(FILE *f, const cJSON *v) {
    char b[64];
    if (!v || cJSON_IsNull(v)) return;
    if (cJSON_IsString(v)) csv_field(f, v->valuestring);
    else if (cJSON_IsBool(v)) fputs(cJSON_IsTrue(v) ? "1" : "0", f);
    else if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (x == floor(x) && fabs(x) < 9007199254740992.0) snprintf(b, sizeof b, "%.0f", x);
        else snprintf(b, sizeof b, "%.17g", x);
        fputs(b, f);
    }
}

int run_export_csv(FILE *f, const cJSON *rows) {
    const cJSON *first = rows ? rows->child : NULL;
    if (!first) return 0;
    int k = 0;
    for (const cJSON *c = first->child; c; c = c->next)
        if (!cJSON_IsArray(c) && !cJSON_IsObject(c)) { if (k++) fputc(',', f); csv_field(f, c->string); }
    fputc('\n', f);
    for (const cJSON *r = first; r; r = r->next) {
        k = 0;
        for (const cJSON *c = first->child; c; c = c->next) {
            if (cJSON_IsArray(c) || cJSON_IsObject(c)) continue;
            if (k++) fputc(',', f);
            csv_value(f, cJSON_GetObjectItemCaseSensitive(r, c->string));
        }
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

/* ---------------------------------------------------------------- the run object */

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v); else cJSON_AddNullToObject(o, k);
}

static int is_live(const char *status) { return store_status_parse(status) == STORE_RUNNING; }

/* store_run_columns callback: a column under its own name, by its stored type, NULL as null */
static int add_column(void *ctx, const StoreVal *v) {
    cJSON *o = ctx;
    switch (v->type) {
    case STORE_VAL_INT: cJSON_AddNumberToObject(o, v->col, (double)v->i); break;
    case STORE_VAL_REAL: add_num(o, v->col, v->d); break;
    case STORE_VAL_TEXT: cJSON_AddStringToObject(o, v->col, v->s); break;
    default: cJSON_AddNullToObject(o, v->col);
    }
    return 0;
}

cJSON *run_export_object(Store *st, int64_t id, char *err, size_t errlen) {
    StoreRun r;
    if (store_run_get(st, id, &r, err, errlen)) return NULL;
    cJSON *o = cJSON_CreateObject();
    /* every column of the row, under its own name, by its stored type: NULL stays null */
    if (!o || store_run_columns(st, id, add_column, o, err, errlen)) {
        if (!o) lcb_fail(err, errlen, "out of memory");
        cJSON_Delete(o);
        store_run_free(&r);
        return NULL;
    }
    /* derived: what `show` prints in its headline */
    RunMetrics m;
    int live = is_live(r.status);
    double mean = r.mean_nll;
    if (live) {
        if (run_metrics_compute(st, id, r.max_pos, NULL, NULL, 0, &m, err, errlen)) { cJSON_Delete(o); store_run_free(&r); return NULL; }
        int64_t nall = (m.ctx_steps > 0 ? m.ctx_steps : 0) + (m.past_steps > 0 ? m.past_steps : 0);
        double s = (m.ctx_steps > 0 ? m.ctx_mean_nll * m.ctx_steps : 0) + (m.past_steps > 0 ? m.past_mean_nll * m.past_steps : 0);
        mean = nall ? s / nall : NAN;
    } else if (store_metrics_read(st, id, &m, err, errlen)) { cJSON_Delete(o); store_run_free(&r); return NULL; }
    cJSON_AddStringToObject(o, "status_shown", store_status_display(r.status, r.host, r.pid));
    add_num(o, "ppl_all", exp(mean));
    add_num(o, "ppl_in_context", exp(m.ctx_mean_nll));
    add_num(o, "ppl_in_context_stderr", exp(m.ctx_mean_nll) * m.ctx_se);
    add_num(o, "ppl_past_context", exp(m.past_mean_nll));
    add_num(o, "ppl_past_context_stderr", exp(m.past_mean_nll) * m.past_se);
    size_t nb;
    RepBin *lb = run_log2_bins(st, &r, &nb, err, errlen);
    RepCollapse col;   /* reports.h's rule: a reference run on the same steps where the file has one */
    int64_t cp = lb && !rep_collapse(st->db, &r, lb, nb, REP_COLLAPSE_FACTOR, &col) ? col.pos : -1;
    free(lb);
    add_num(o, "collapse_pos", cp >= 0 ? (double)cp : NAN);
    int64_t ct = run_cache_tokens(r.strategy);
    add_num(o, "cache_tokens", ct >= 0 ? (double)ct : NAN);
    add_num(o, "cache_over_context", ct >= 0 && r.max_pos > 0 ? (double)ct / r.max_pos : NAN);
    double tps = NAN, pw = NAN, pk = NAN, pwk = NAN;
    StoreSamplePeaks peaks;
    if (store_samples_peaks(st, id, &peaks, err, errlen)) { cJSON_Delete(o); store_run_free(&r); return NULL; }
    if (peaks.n > 0) { pw = peaks.weights; pk = peaks.kv; pwk = peaks.work; tps = peaks.last_tokens_per_s; }
    add_num(o, "tokens_per_s", tps);
    add_num(o, "peak_weights_bytes", pw);
    add_num(o, "peak_kv_bytes", pk);
    add_num(o, "peak_work_bytes", pwk);
    store_run_free(&r);
    return o;
}

/* ---------------------------------------------------------------- bins and steps */

static cJSON *bin_object(const char *kind, int64_t lo, int64_t hi, int64_t count, double mean, double ppl, double se) {
    cJSON *b = cJSON_CreateObject();
    if (!b) return NULL;
    cJSON_AddStringToObject(b, "kind", kind);
    cJSON_AddNumberToObject(b, "lo", (double)lo);
    cJSON_AddNumberToObject(b, "hi", (double)hi);
    cJSON_AddNumberToObject(b, "count", (double)count);
    add_num(b, "mean_nll", mean);
    add_num(b, "ppl", ppl);
    add_num(b, "stderr", se);
    return b;
}

cJSON *run_export_bins(Store *st, int64_t id, const char *kind, char *err, size_t errlen) {
    StoreRun r;
    if (store_run_get(st, id, &r, err, errlen)) return NULL;
    cJSON *a = cJSON_CreateArray();
    int rc = 0;
    if (is_live(r.status)) {   /* no aggregates yet: computed from the NLLs so far, nothing written */
        StoreBin *b;
        size_t nb;
        double mean;
        int64_t steps;
        if ((rc = store_bins_compute(st, id, r.bin_width, &b, &nb, &mean, &steps, err, errlen)) == 0) {
            for (size_t i = 0; i < nb; i++)
                if (!kind || !strcmp(kind, b[i].kind))
                    cJSON_AddItemToArray(a, bin_object(b[i].kind, b[i].lo, b[i].hi, b[i].count, b[i].mean_nll, b[i].ppl, b[i].se));
            free(b);
        }
    } else {
        static const char *const kinds[] = {"log2", "linear", "all"};   /* the order of store_bins_compute */
        for (size_t k = 0; k < 3 && !rc; k++) {
            if (kind && strcmp(kind, kinds[k])) continue;
            StoreBin *b;
            size_t nb;
            if ((rc = store_bins_read(st, id, kinds[k], &b, &nb, err, errlen))) break;
            for (size_t i = 0; i < nb; i++)
                cJSON_AddItemToArray(a, bin_object(b[i].kind, b[i].lo, b[i].hi, b[i].count, b[i].mean_nll, b[i].ppl, b[i].se));
            free(b);
        }
    }
    store_run_free(&r);
    if (rc) { cJSON_Delete(a); return NULL; }
    return a;
}

/* JSON of the steps, streamed: one array, each element one cJSON object built, printed and freed in
 * turn, so memory stays bounded whatever the run's length (millions of steps) */
typedef struct { FILE *f; int64_t n; } StepJson;
static int step_json(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    StepJson *c = ctx;
    char buf[512];
    for (int64_t j = 0; j < n; j++) {
        cJSON *s = cJSON_CreateObject();
        if (!s) return 1;
        cJSON_AddNumberToObject(s, "win_start", (double)win_start);
        cJSON_AddNumberToObject(s, "pos", (double)(pos0 + j));
        cJSON_AddNumberToObject(s, "stream_pos", (double)(win_start + pos0 + j));
        add_num(s, "nll", nll[j]);
        int ok = cJSON_PrintPreallocated(s, buf, (int)sizeof buf, 0);
        cJSON_Delete(s);
        if (!ok) return 1;
        fprintf(c->f, "%s%s", c->n++ ? ",\n" : "\n", buf);
    }
    return ferror(c->f) ? 1 : 0;
}

/* CSV of the steps without building them all in memory (a run can have millions) */
typedef struct { FILE *f; } StepCsv;
static int step_csv(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    StepCsv *c = ctx;
    for (int64_t j = 0; j < n; j++) {
        if (isfinite(nll[j])) fprintf(c->f, "%lld,%lld,%lld,%.9g\n", (long long)win_start, (long long)(pos0 + j), (long long)(win_start + pos0 + j), nll[j]);
        else fprintf(c->f, "%lld,%lld,%lld,\n", (long long)win_start, (long long)(pos0 + j), (long long)(win_start + pos0 + j));
    }
    return ferror(c->f) ? 1 : 0;
}

/* ---------------------------------------------------------------- lcbench export */

static int write_json(FILE *f, const cJSON *j) {
    char *t = cJSON_Print(j);
    if (!t) return -1;
    fputs(t, f);
    fputc('\n', f);
    free(t);
    return ferror(f) ? -1 : 0;
}

int cmd_export(int argc, char **argv) {
    Cli c;
    cli_init(&c, "export", argc, argv);
    const char *db = "results.db", *out = NULL, *kind = NULL;
    int what = 0, json = 0;   /* what: 1 bins, 2 steps */
    uint64_t id = 0;
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
        if (!strcmp(f, "--db")) { if (!(v = cli_value(&c))) return EXIT_USAGE; db = v; }
        else if (!strcmp(f, "-o") || !strcmp(f, "--out")) { if (!(v = cli_value(&c))) return EXIT_USAGE; out = v; }
        else if (!strcmp(f, "--kind")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (strcmp(v, "log2") && strcmp(v, "linear") && strcmp(v, "all")) return cli_usage_error(&c, "--kind \"%s\" must be log2, linear or all", v);
            kind = v;
        } else if (!strcmp(f, "--bins") || !strcmp(f, "--steps")) {
            int w = !strcmp(f, "--bins") ? 1 : 2;
            if (what && what != w) return cli_usage_error(&c, "--bins and --steps: one at a time");
            what = w;
        } else if (!strcmp(f, "--json")) json = 1;
        else if (!strcmp(f, "--csv")) json = 0;
        else if (f[0] != '-' && !id) {
            if (cli_parse_count("RUN", f, 1, 1, INT64_MAX, &id)) return cli_usage_error(&c, "RUN \"%s\" must be a run id", f);
        } else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    if (!id) return cli_usage_error(&c, "which run? (lcbench runs lists them)");
    if (!what) return cli_usage_error(&c, "what to export: --bins or --steps");
    if (kind && what != 1) return cli_usage_error(&c, "--kind goes with --bins");
    char err[LCB_ERRLEN];
    Store st;
    int orc = store_open_readonly(&st, db, err, sizeof err);   /* exporting never writes the results file */
    if (orc) { cli_error("export", "--db %s", err); return orc == -2 ? EXIT_USAGE : 1; }
    StoreRun r;
    if (store_run_get(&st, (int64_t)id, &r, err, sizeof err)) { cli_error("export", "%s", err); store_close(&st); return 1; }
    store_run_free(&r);
    FILE *f = stdout;
    if (out && !(f = fopen(out, "w"))) { cli_error("export", "-o %s: %s", out, strerror(errno)); store_close(&st); return 1; }
    int rc = 0;
    if (what == 1) {
        cJSON *a = run_export_bins(&st, (int64_t)id, kind, err, sizeof err);
        if (!a) { cli_error("export", "%s", err); rc = 1; }
        else if (json ? write_json(f, a) : run_export_csv(f, a)) { cli_error("export", "%s: write error", out ? out : "stdout"); rc = 1; }
        else if (!json && !a->child) fputs("kind,lo,hi,count,mean_nll,ppl,stderr\n", f);   /* no bin: the header alone */
        cJSON_Delete(a);
    } else if (json) {
        StepJson sj = {f, 0};
        fputc('[', f);
        if (store_nll_foreach(&st, (int64_t)id, step_json, &sj, err, sizeof err)) { cli_error("export", "%s", err); rc = 1; }
        else if (fputs(sj.n ? "\n]\n" : "]\n", f) < 0 || ferror(f)) { cli_error("export", "%s: write error", out ? out : "stdout"); rc = 1; }
    } else {
        StepCsv sc = {f};
        fputs("win_start,pos,stream_pos,nll\n", f);
        if (store_nll_foreach(&st, (int64_t)id, step_csv, &sc, err, sizeof err)) { cli_error("export", "%s", err); rc = 1; }
        else if (ferror(f)) { cli_error("export", "%s: write error", out ? out : "stdout"); rc = 1; }
    }
    if (f != stdout && fclose(f) && !rc) { cli_error("export", "-o %s: %s", out, strerror(errno)); rc = 1; }
    store_close(&st);
    return rc;
}
