/*
 * results.c — the read-only loader shared by `lcbench report` and `lcbench gate`: every run
 * of a results file with its bins, events, memory/throughput peaks, and the derived collapse
 * position and fluency verdict defined in reports.h.  Opens the file through store_open_readonly
 * (SQLITE_OPEN_READONLY: no migration, no WAL switch), so a committed baseline stays byte-identical.
 */
#include "reports/reports.h"
#include "engine/common.h"
#include "strategies/strategy.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void rep_human_bytes(char *b, size_t n, double v) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (v >= 1024 && k < 4) { v /= 1024; k++; }
    snprintf(b, n, k ? "%.1f %s" : "%.0f %s", v, u[k]);
}

const RepBin *rep_bin_at(const RepBin *b, size_t n, int64_t lo) {
    for (size_t i = 0; i < n; i++) if (b[i].lo == lo) return &b[i];
    return NULL;
}

static int table_exists(sqlite3 *db, const char *name) {
    sqlite3_stmt *st;
    int yes = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

static int load_bins(sqlite3 *db, RepRun *x, const char *kind, RepBin **out, size_t *n) {
    sqlite3_stmt *st;
    *out = NULL; *n = 0;
    if (sqlite3_prepare_v2(db, "SELECT lo, hi, count, mean_nll, ppl, stderr FROM bins WHERE run_id=? AND kind=? ORDER BY lo", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, x->r.id);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            RepBin *nb = realloc(*out, cap * sizeof *nb);
            if (!nb) { sqlite3_finalize(st); return -1; }
            *out = nb;
        }
        RepBin *b = &(*out)[(*n)++];
        b->lo = sqlite3_column_int64(st, 0);
        b->hi = sqlite3_column_int64(st, 1);
        b->count = sqlite3_column_int64(st, 2);
        /* NULL (SQLite's NaN) is missing, never 0 */
        b->mean_nll = sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 3);
        b->ppl = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
        b->se = sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 5);
    }
    sqlite3_finalize(st);
    return 0;
}

static int load_events(sqlite3 *db, RepRun *x) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT pos, kind, detail FROM events WHERE run_id=? ORDER BY pos, rowid", -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, x->r.id);
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (x->n_ev == cap) {
            cap = cap ? 2 * cap : 8;
            RepEvent *ne = realloc(x->ev, cap * sizeof *ne);
            if (!ne) { sqlite3_finalize(st); return -1; }
            x->ev = ne;
        }
        RepEvent *e = &x->ev[x->n_ev++];
        e->pos = sqlite3_column_int64(st, 0);
        const unsigned char *k = sqlite3_column_text(st, 1), *d = sqlite3_column_text(st, 2);
        snprintf(e->kind, sizeof e->kind, "%s", k ? (const char *)k : "?");
        snprintf(e->detail, sizeof e->detail, "%s", d ? (const char *)d : "");
    }
    sqlite3_finalize(st);
    return 0;
}

/* Peaks, and the throughput from the samples' positions and elapsed times: the run's rate (tokens
 * over seconds, all intervals) and the range of the per-interval rates (one interval per committed
 * batch: from the previous sample, the first from position 0 at time 0). */
static void load_samples(sqlite3 *db, RepRun *x) {
    sqlite3_stmt *st;
    x->peak_weights = x->peak_kv = x->peak_kv_formula = x->peak_work = x->peak_rss = -1;
    x->tokens_per_s = x->tps_lo = x->tps_hi = NAN;
    x->tps_n = 0;
    if (sqlite3_prepare_v2(db, "SELECT MAX(weights_bytes), MAX(kv_bytes), MAX(kv_formula_bytes), MAX(work_bytes), MAX(rss_bytes),"
                               " COUNT(*) FROM samples WHERE run_id=?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_int64(st, 1, x->r.id);
    int have = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 5) > 0) {
        have = 1;
        x->peak_weights = sqlite3_column_int64(st, 0);
        x->peak_kv = sqlite3_column_int64(st, 1);
        x->peak_kv_formula = sqlite3_column_int64(st, 2);
        x->peak_work = sqlite3_column_int64(st, 3);
        x->peak_rss = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    if (!have || sqlite3_prepare_v2(db, "SELECT pos, elapsed_s FROM samples WHERE run_id=? ORDER BY rowid", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_int64(st, 1, x->r.id);
    double p0 = 0, t0 = 0, sum_p = 0, sum_t = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        double p = (double)sqlite3_column_int64(st, 0), t = sqlite3_column_double(st, 1);
        double dp = p - p0, dt = t - t0;
        p0 = p; t0 = t;
        if (!(dp > 0 && dt > 0)) continue;   /* a resumed session re-feeding from its snapshot, or no time measured */
        double rate = dp / dt;
        sum_p += dp; sum_t += dt;
        if (!x->tps_n || rate < x->tps_lo) x->tps_lo = rate;
        if (!x->tps_n || rate > x->tps_hi) x->tps_hi = rate;
        x->tps_n++;
    }
    sqlite3_finalize(st);
    if (sum_t > 0) x->tokens_per_s = sum_p / sum_t;
}

/* The headline columns of schema 4 (a file older than that has none: unknown).  0 or -1. */
static int load_metrics(sqlite3 *db, RepRun *x) {
    x->metrics.ctx_steps = x->metrics.past_steps = x->metrics.bytes = x->metrics.words = -1;
    x->metrics.ctx_mean_nll = x->metrics.ctx_se = x->metrics.past_mean_nll = x->metrics.past_se = NAN;
    x->metrics.bits_per_byte = x->metrics.word_ppl = NAN;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT ctx_steps, ctx_mean_nll, ctx_stderr, past_steps, past_mean_nll, past_stderr,"
                               " scored_bytes, scored_words, bits_per_byte, word_ppl FROM runs WHERE id=?", -1, &q, NULL) != SQLITE_OK)
        return strstr(sqlite3_errmsg(db), "no such column") ? 0 : -1;
    sqlite3_bind_int64(q, 1, x->r.id);
    if (sqlite3_step(q) == SQLITE_ROW) {
#define CNT(k) (sqlite3_column_type(q, k) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, k))
#define REAL(k) (sqlite3_column_type(q, k) == SQLITE_NULL ? NAN : sqlite3_column_double(q, k))
        x->metrics.ctx_steps = CNT(0); x->metrics.ctx_mean_nll = REAL(1); x->metrics.ctx_se = REAL(2);
        x->metrics.past_steps = CNT(3); x->metrics.past_mean_nll = REAL(4); x->metrics.past_se = REAL(5);
        x->metrics.bytes = CNT(6); x->metrics.words = CNT(7); x->metrics.bits_per_byte = REAL(8); x->metrics.word_ppl = REAL(9);
#undef CNT
#undef REAL
    }
    sqlite3_finalize(q);
    return 0;
}

/* A verdict value of the fluency detector's probes table is fluent when it is the text
 * "fluent" (any case) or the integer 0 (FLU_FLUENT). */
static int verdict_fluent(sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_INTEGER) return sqlite3_column_int(st, col) == 0;
    const unsigned char *t = sqlite3_column_text(st, col);
    return !t || !strcasecmp((const char *)t, "fluent") || !strcmp((const char *)t, "0");
}

static void set_fluency(RepRun *x, int64_t pos, const char *why) {
    if (pos < 0) return;
    if (x->fluency_pos < 0 || pos < x->fluency_pos) {
        x->fluency_pos = pos;
        snprintf(x->fluency_why, sizeof x->fluency_why, "%s", why);
    }
}

int64_t rep_collapse_pos(const RepBin *log2, size_t n, int64_t P, double k, double *ref_out) {
    /* R = PPL of the log2 bin [max_pos/2, max_pos) */
    double ref = NAN;
    if (P >= 2) {
        const RepBin *rb = rep_bin_at(log2, n, P / 2);
        if (rb && rb->hi == P && rb->count > 0) ref = rb->ppl;
    }
    if (ref_out) *ref_out = ref;
    if (isnan(ref)) return -1;
    for (size_t i = 0; i < n; i++)
        if (log2[i].lo >= P && log2[i].count >= REP_COLLAPSE_MIN_STEPS && log2[i].ppl > k * ref) return log2[i].lo;
    return -1;
}

/* A cache that the model was trained for: sinks kept (sink:S:W, S >= 1) or a fresh forward
 * (recompute:W), attending at most max_pos previous tokens (strategy_span). */
int rep_is_reference_strategy(const char *spec, int64_t max_pos) {
    Strategy s;
    char err[LCB_ERRLEN];
    if (!spec || strategy_parse(&s, spec, err, sizeof err)) return 0;
    return strategy_as_trained(&s, max_pos);
}

int rep_collapse(void *vdb, const StoreRun *r, const RepBin *log2, size_t n, double k, RepCollapse *out) {
    sqlite3 *db = vdb;
    int64_t P = r->max_pos;
    memset(out, 0, sizeof *out);
    out->pos = -1;
    out->ref_run = -1;
    out->ref_ppl = out->worst = NAN;
    out->worst_lo = -1;
    /* the reference per bin: the lowest PPL of a reference run on the same token stream */
    double *ref = malloc((n ? n : 1) * sizeof *ref);
    int64_t *who = malloc((n ? n : 1) * sizeof *who);
    if (!ref || !who) { free(ref); free(who); return -1; }
    for (size_t i = 0; i < n; i++) { ref[i] = NAN; who[i] = -1; }
    size_t n_ref = 0;
    sqlite3_stmt *q = NULL, *b = NULL;
    int rc = 0;
    /* one token stream: the same dataset spec, field and format through the same tokenizer and BOS
     * policy (runs of different lengths score prefixes of one stream); the bins' bounds and counts
     * then say which steps are the same */
    if (db && sqlite3_prepare_v2(db, "SELECT id FROM runs WHERE max_pos=? AND dataset IS ? AND model_hash IS ? AND tokenizer_hash IS ?"
                                     " AND protocol IS ? AND bos IS ? AND ctx IS ? AND stride IS ? AND dataset_field IS ? AND token_format IS ?"
                                     " ORDER BY id", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT lo, hi, count, ppl FROM bins WHERE run_id=? AND kind='log2'", -1, &b, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, P);
        const char *txt[] = {r->dataset, r->model_hash, r->tokenizer_hash, r->protocol, r->bos};
        for (int j = 0; j < 5; j++) {
            if (txt[j]) sqlite3_bind_text(q, 2 + j, txt[j], -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(q, 2 + j);
        }
        sqlite3_bind_int64(q, 7, r->ctx);
        sqlite3_bind_int64(q, 8, r->stride);
        if (r->dataset_field) sqlite3_bind_text(q, 9, r->dataset_field, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(q, 9);
        if (r->token_format) sqlite3_bind_text(q, 10, r->token_format, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(q, 10);
        while (sqlite3_step(q) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(q, 0);
            StoreRun c;
            const StoreRun *cr = r;
            if (id != r->id) {
                Store s = {.db = db};
                char err[LCB_ERRLEN];
                memset(&c, 0, sizeof c);
                if (store_run_get(&s, id, &c, err, sizeof err)) { rc = -1; break; }
                cr = &c;
            }
            int is_ref = rep_is_reference_strategy(cr->strategy, P);
            if (is_ref) {
                n_ref++;
                if (!out->ref_strategy[0] || id == r->id) snprintf(out->ref_strategy, sizeof out->ref_strategy, "%s", cr->strategy);
                if (id == r->id) {
                    for (size_t i = 0; i < n; i++)
                        if (log2[i].count > 0 && !(ref[i] <= log2[i].ppl)) { ref[i] = log2[i].ppl; who[i] = id; }
                } else {
                    sqlite3_reset(b);
                    sqlite3_bind_int64(b, 1, id);
                    while (sqlite3_step(b) == SQLITE_ROW) {
                        int64_t lo = sqlite3_column_int64(b, 0), hi = sqlite3_column_int64(b, 1), cnt = sqlite3_column_int64(b, 2);
                        if (sqlite3_column_type(b, 3) == SQLITE_NULL) continue;
                        double p = sqlite3_column_double(b, 3);
                        for (size_t i = 0; i < n; i++)   /* the same steps: same bounds and count */
                            if (log2[i].lo == lo && log2[i].hi == hi && log2[i].count == cnt && !(ref[i] <= p)) { ref[i] = p; who[i] = id; }
                    }
                }
            }
            if (cr != r) store_run_free(&c);
        }
    }
    if (q) sqlite3_finalize(q);
    if (b) sqlite3_finalize(b);
    if (rc == 0 && n_ref > 0) {
        /* text-matched rule: each bin against the reference's PPL on the same steps */
        out->matched = 1;
        for (size_t i = 0; i < n; i++) {
            if (log2[i].lo < P || log2[i].count < REP_COLLAPSE_MIN_STEPS || isnan(ref[i]) || isnan(log2[i].ppl)) continue;
            double ratio = log2[i].ppl / ref[i];
            if (isnan(out->worst) || ratio > out->worst) { out->worst = ratio; out->worst_lo = log2[i].lo; }
            if (out->pos < 0 && ratio > k) { out->pos = log2[i].lo; out->ref_ppl = ref[i]; out->ref_run = who[i]; }
        }
        if (out->pos < 0 && out->worst_lo >= 0)
            for (size_t i = 0; i < n; i++)
                if (log2[i].lo == out->worst_lo) { out->ref_ppl = ref[i]; out->ref_run = who[i]; }
        if (out->ref_run >= 0 && out->ref_run != r->id) {
            /* name the reference the verdict used */
            Store s = {.db = db};
            StoreRun c;
            char err[LCB_ERRLEN];
            memset(&c, 0, sizeof c);
            if (!store_run_get(&s, out->ref_run, &c, err, sizeof err)) {
                snprintf(out->ref_strategy, sizeof out->ref_strategy, "%s", c.strategy ? c.strategy : "?");
                store_run_free(&c);
            }
        } else if (out->ref_run == r->id) snprintf(out->ref_strategy, sizeof out->ref_strategy, "%s", r->strategy ? r->strategy : "?");
    } else if (rc == 0) {
        /* no reference run: the run's own last in-context octave */
        out->pos = rep_collapse_pos(log2, n, P, k, &out->ref_ppl);
        if (!isnan(out->ref_ppl))
            for (size_t i = 0; i < n; i++) {
                if (log2[i].lo < P || log2[i].count < REP_COLLAPSE_MIN_STEPS || isnan(log2[i].ppl)) continue;
                double ratio = log2[i].ppl / out->ref_ppl;
                if (isnan(out->worst) || ratio > out->worst) { out->worst = ratio; out->worst_lo = log2[i].lo; }
            }
    }
    free(ref);
    free(who);
    return rc;
}

int rep_metric_parse(const char *s, RepMetric *out) {
    if (!strcmp(s, "ppl")) *out = REP_METRIC_PPL;
    else if (!strcmp(s, "bpb")) *out = REP_METRIC_BPB;
    else if (!strcmp(s, "word_ppl")) *out = REP_METRIC_WORD_PPL;
    else return -1;
    return 0;
}

const char *rep_metric_name(RepMetric m) { return m == REP_METRIC_BPB ? "bpb" : m == REP_METRIC_WORD_PPL ? "word_ppl" : "ppl"; }

double rep_run_metric(const RepRun *x, RepMetric m) {
    if (m == REP_METRIC_BPB) return x->metrics.bits_per_byte;
    if (m == REP_METRIC_WORD_PPL) return x->metrics.word_ppl;
    return x->all.count ? x->all.ppl : NAN;
}

static int derive(sqlite3 *db, RepRun *x, double k, int has_probes) {
    if (rep_collapse(db, &x->r, x->log2, x->n_log2, k, &x->collapse)) return -1;
    x->collapse_pos = x->collapse.pos;
    x->ref_ppl = x->collapse.ref_ppl;
    x->oom_pos = -1;
    x->fluency_pos = -1;
    x->fluency_why[0] = 0;
    for (size_t i = 0; i < x->n_ev; i++) {
        const char *kd = x->ev[i].kind;
        if (!strcmp(kd, "oom") && x->oom_pos < 0) x->oom_pos = x->ev[i].pos;
        if (!strcmp(kd, "collapse") || (!strncmp(kd, "fluency", 7) && strcmp(kd, "fluency_ok"))) set_fluency(x, x->ev[i].pos, kd);
    }
    if (x->collapse_pos >= 0) set_fluency(x, x->collapse_pos, "collapse");
    if (has_probes) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT pos, verdict FROM probes WHERE run_id=? ORDER BY pos", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, x->r.id);
            while (sqlite3_step(st) == SQLITE_ROW)
                if (!verdict_fluent(st, 1)) {
                    char why[64];
                    const unsigned char *t = sqlite3_column_text(st, 1);
                    snprintf(why, sizeof why, "probe: %s", t ? (const char *)t : "?");
                    set_fluency(x, sqlite3_column_int64(st, 0), why);
                    break;
                }
            sqlite3_finalize(st);
        }
    }
    return 0;
}

static void label_of(const char *model, char *out, size_t n) {
    if (!model) { snprintf(out, n, "?"); return; }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", model);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
    const char *b = strrchr(tmp, '/');
    snprintf(out, n, "%.*s", (int)(n ? n - 1 : 0), b ? b + 1 : tmp); /* labels are cut to fit, on purpose */
}

int rep_load(RepDb *d, const char *path, const char *flag, double collapse_factor, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    Store ro;
    int orc = store_open_readonly(&ro, path, err, errlen);
    if (orc) {
        char t[LCB_ERRLEN];
        snprintf(t, sizeof t, "%s", err);
        snprintf(err, errlen, "%s %s", flag, t);   /* "--db PATH: no such results file" */
        return orc;
    }
    sqlite3 *db = ro.db;
    d->db = db;
    if (!table_exists(db, "bins")) {
        lcb_fail(err, errlen, "%s %s: not an lcbench results file (no bins table)", flag, path);
        rep_free(d);
        return -2;
    }
    int has_probes = table_exists(db, "probes");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT id FROM runs ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        lcb_fail(err, errlen, "%s %s: %s", flag, path, sqlite3_errmsg(db));
        rep_free(d);
        return -1;
    }
    size_t cap = 0;
    Store s = {.db = db};
    snprintf(s.path, sizeof s.path, "%s", path);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        if (d->n == cap) {
            cap = cap ? 2 * cap : 16;
            RepRun *nr = realloc(d->runs, cap * sizeof *nr);
            if (!nr) { rc = lcb_fail(err, errlen, "out of memory reading %s", path); break; }
            d->runs = nr;
        }
        RepRun *x = &d->runs[d->n];
        memset(x, 0, sizeof *x);
        if (store_run_get(&s, sqlite3_column_int64(st, 0), &x->r, err, errlen)) { rc = -1; break; }
        d->n++;
        label_of(x->r.model, x->label, sizeof x->label);
        RepBin *all = NULL;
        size_t n_all = 0;
        if (load_bins(db, x, "log2", &x->log2, &x->n_log2) || load_bins(db, x, "linear", &x->lin, &x->n_lin) ||
            load_bins(db, x, "all", &all, &n_all) || load_events(db, x)) {
            free(all);
            rc = lcb_fail(err, errlen, "%s %s: reading run %lld: %s", flag, path, (long long)x->r.id, sqlite3_errmsg(db));
            break;
        }
        if (n_all) x->all = all[0];
        free(all);
        load_samples(db, x);
        if (load_metrics(db, x)) {
            rc = lcb_fail(err, errlen, "%s %s: reading run %lld's headline: %s", flag, path, (long long)x->r.id, sqlite3_errmsg(db));
            break;
        }
        if (derive(db, x, collapse_factor > 0 ? collapse_factor : REP_COLLAPSE_FACTOR, has_probes)) {
            rc = lcb_fail(err, errlen, "%s %s: reading the reference runs of run %lld: %s", flag, path, (long long)x->r.id, sqlite3_errmsg(db));
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc) { rep_free(d); return -1; }
    /* two different models (content hashes) in folders of one name: the hash prefix tells them apart */
    int *amb = calloc(d->n ? d->n : 1, sizeof *amb);
    if (!amb) { rep_free(d); return lcb_fail(err, errlen, "out of memory reading %s", path); }
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < d->n; j++)
            if (strcmp(d->runs[i].label, d->runs[j].label) == 0 && strcmp(d->runs[i].r.model_hash ? d->runs[i].r.model_hash : "",
                                                                          d->runs[j].r.model_hash ? d->runs[j].r.model_hash : "")) amb[i] = 1;
    for (size_t i = 0; i < d->n; i++)
        if (amb[i]) {
            size_t l = strlen(d->runs[i].label);
            if (l > sizeof d->runs[i].label - 12) l = sizeof d->runs[i].label - 12;
            snprintf(d->runs[i].label + l, sizeof d->runs[i].label - l, " [%.8s]", d->runs[i].r.model_hash ? d->runs[i].r.model_hash : "no hash");
        }
    free(amb);
    return 0;
}

void rep_free(RepDb *d) {
    for (size_t i = 0; i < d->n; i++) {
        store_run_free(&d->runs[i].r);
        free(d->runs[i].log2);
        free(d->runs[i].lin);
        free(d->runs[i].ev);
    }
    free(d->runs);
    if (d->db) sqlite3_close(d->db);
    memset(d, 0, sizeof *d);
}
