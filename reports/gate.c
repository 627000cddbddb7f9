/*
 * gate.c — the regression gate of `lcbench gate`: pairs the runs of a new results file with
 * those of a baseline and judges each pair.
 *
 * Pairing key: model content hash, strategy spec, protocol (with L and S), dataset token hash
 * (the dataset name when a run has no hash) and token count.  Several runs with one key: the
 * latest (highest id) of each file stands for it.
 *
 * A pair regresses when any of these holds:
 *   - the new run did not finish while the baseline did (oom, failed, interrupted, running);
 *   - both hit OOM and the new one earlier (by more than pos_tol of the baseline position);
 *   - a log2 bin, or the whole run, has a mean NLL higher than the baseline's by more than
 *     BOTH ln(1 + rel_tol) (the PPL grew by more than rel_tol) AND sigma * sqrt(se_b^2 + se_n^2)
 *     (more than sigma combined standard errors, so sampling noise does not fail the gate;
 *     sigma 3 because a run has ~20 bins: at 2, one noise-only comparison in three fails);
 *     bins with fewer than min_steps steps in either run are shown but not judged;
 *   - the fluency verdict is worse: the baseline stayed fluent and the new run did not, or
 *     both lost fluency and the new run earlier (reports.h defines the verdict; the collapse
 *     position is part of it).
 * A baseline run that did not end with a measured outcome (failed, interrupted, killed or still
 * running: anything but done or oom) is not comparable: nothing about it is fluent or a number
 * to compare with.  It, and a baseline run with no partner, fail the gate unless allow_missing.
 * A bin whose mean NLL is missing (NULL/NaN) in the new run regresses; one missing in the
 * baseline is not judged.  A gate that compared no pair fails unless allow_empty: a pass must
 * have compared something.  New runs with no baseline are listed and ignored.
 */
#include "reports/reports.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gate_defaults(GateOptions *o) {
    o->rel_tol = 0.01;
    o->sigma = 3.0;   /* ~20 bins a run: at 2 sigma one noise-only comparison in three fails a bin */
    o->min_steps = 32;
    o->pos_tol = 0.0;
    o->allow_missing = 0;
    o->allow_empty = 0;
    o->verbose = 0;
    o->metric = REP_METRIC_PPL;
    o->pair_by = GATE_PAIR_ALL;
}

int gate_pair_parse(const char *s, unsigned *out, char *err, size_t errlen) {
    static const struct { const char *name; unsigned bit; } f[] = {
        {"model", GATE_PAIR_MODEL}, {"strategy", GATE_PAIR_STRATEGY}, {"protocol", GATE_PAIR_PROTOCOL},
        {"dataset", GATE_PAIR_DATASET}, {"tokens", GATE_PAIR_TOKENS}};
    unsigned bits = 0;
    const char *p = s;
    for (;;) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        while (i < sizeof f / sizeof *f && !(strlen(f[i].name) == n && !strncmp(f[i].name, p, n))) i++;
        if (i == sizeof f / sizeof *f) {
            snprintf(err, errlen, "\"%.*s\" is not a pairing field (model, strategy, protocol, dataset, tokens)", (int)n, p);
            return -1;
        }
        bits |= f[i].bit;
        if (!p[n]) break;
        p += n + 1;
    }
    *out = bits;
    return 0;
}

static const char *nz(const char *s) { return s ? s : ""; }

/* The pairing key, restricted to the fields of `by` (GATE_PAIR_*): without `model` a checkpoint
 * B is gated against a checkpoint A run with the same strategy, protocol, data and length. */
static int same_key(const StoreRun *a, const StoreRun *b, unsigned by) {
    const char *da = a->dataset_hash ? a->dataset_hash : nz(a->dataset);
    const char *db = b->dataset_hash ? b->dataset_hash : nz(b->dataset);
    return (!(by & GATE_PAIR_MODEL) || !strcmp(nz(a->model_hash), nz(b->model_hash))) &&
           (!(by & GATE_PAIR_STRATEGY) || !strcmp(nz(a->strategy), nz(b->strategy))) &&
           (!(by & GATE_PAIR_PROTOCOL) || (!strcmp(nz(a->protocol), nz(b->protocol)) && a->ctx == b->ctx && a->stride == b->stride)) &&
           (!(by & GATE_PAIR_DATASET) || !strcmp(da, db)) && (!(by & GATE_PAIR_TOKENS) || a->tokens == b->tokens);
}

/* The latest run of d with r's key, or NULL. */
static const RepRun *find_latest(const RepDb *d, const StoreRun *r, unsigned by) {
    const RepRun *best = NULL;
    for (size_t i = 0; i < d->n; i++)
        if (same_key(&d->runs[i].r, r, by) && (!best || d->runs[i].r.id > best->r.id)) best = &d->runs[i];
    return best;
}

/* A whole-run value of a tokenizer-independent metric as a bin of judge_bin: mean_nll = ln(value)
 * (so the change is relative, as for PPL), se = its standard error in that log scale, carried
 * from the stderr of the mean NLL; count 0 when the run has no such value (no text). */
static RepBin metric_bin(const RepRun *x, RepMetric m) {
    RepBin b = {.lo = 0, .hi = -1, .count = x->all.count, .mean_nll = NAN, .ppl = NAN, .se = 0};
    double v = rep_run_metric(x, m);
    if (!isfinite(v) || v <= 0 || !x->all.count) return b;
    b.mean_nll = log(v);
    b.ppl = v;
    if (m == REP_METRIC_BPB) b.se = x->all.mean_nll > 0 ? x->all.se / x->all.mean_nll : 0;   /* ln bpb = ln(mean NLL) + const */
    else if (x->metrics.words > 0) b.se = x->all.se * (double)x->all.count / (double)x->metrics.words; /* ln word PPL = sum NLL / words */
    return b;
}

static void pos_str(char *b, size_t n, int64_t p) {
    if (p < 0) snprintf(b, n, "none"); else snprintf(b, n, "%lld", (long long)p);
}

static int earlier(int64_t cur, int64_t base, double tol) { return cur >= 0 && base >= 0 && (double)cur < (double)base * (1.0 - tol); }

/* One bin: prints a row, returns 1 when it regresses. */
static int judge_bin(FILE *out, const char *what, int always, const RepBin *b, const RepBin *c, const GateOptions *o) {
    if (!c) {
        fprintf(out, "    %-18s %8lld %10.4f %10s %8s %8s  REGRESSION (bin missing in the new run)\n", what, (long long)b->count, b->ppl, "-", "-", "-");
        return 1;
    }
    if (!isfinite(b->mean_nll)) {   /* nothing to compare with: shown, not judged */
        if (always) fprintf(out, "    %-18s %8lld %10s %10s %8s %8s  (no baseline value)\n", what, (long long)b->count, "-", "-", "-", "-");
        return 0;
    }
    if (!isfinite(c->mean_nll)) {
        fprintf(out, "    %-18s %8lld %10.4f %10s %8s %8s  REGRESSION (no value in the new run)\n", what, (long long)b->count, b->ppl, "-", "-", "-");
        return 1;
    }
    double d = c->mean_nll - b->mean_nll;
    double noise = o->sigma * sqrt(b->se * b->se + c->se * c->se);
    double tol = log1p(o->rel_tol);
    double allowed = noise > tol ? noise : tol;
    int judged = b->count >= o->min_steps && c->count >= o->min_steps;
    int bad = judged && d > allowed;
    const char *v = bad ? "REGRESSION" : !judged ? "(too few steps)" : d < -allowed ? "better" : "ok";
    if (bad || always)
        fprintf(out, "    %-18s %8lld %10.4f %10.4f %+7.2f%% %8.4f  %s\n", what, (long long)b->count, b->ppl, c->ppl,
                100.0 * (exp(d) - 1.0), allowed, v);
    return bad;
}

int gate_compare(const RepDb *base, const RepDb *cur, const GateOptions *o, FILE *out) {
    int regressions = 0, pairs = 0, missing = 0;
    fprintf(out, "gate: %s (%zu runs) against baseline %s (%zu runs)\n", cur->path, cur->n, base->path, base->n);
    fprintf(out, "rules: a bin regresses when its PPL grows by > %.2f%% and by > %.1f combined stderr; bins under %lld steps "
                 "not judged; OOM, collapse and fluency loss may not come earlier%s\n",
            100 * o->rel_tol, o->sigma, (long long)o->min_steps, o->pos_tol > 0 ? " (beyond the position tolerance)" : "");
    if (o->metric != REP_METRIC_PPL)
        fprintf(out, "metric: %s over the whole run (it has no bins; the same tolerances, relative; a run without text has none)\n",
                o->metric == REP_METRIC_BPB ? "bits per byte" : "word PPL");
    if (o->pair_by != GATE_PAIR_ALL) {
        fprintf(out, "pairing: by");
        const char *names[] = {"model", "strategy", "protocol", "dataset", "tokens"};
        for (int i = 0, k = 0; i < 5; i++) if (o->pair_by & (1u << i)) fprintf(out, "%s%s", k++ ? ", " : " ", names[i]);
        fprintf(out, "%s\n", o->pair_by & GATE_PAIR_MODEL ? "" : " (across models: checkpoint against checkpoint)");
    }
    for (size_t i = 0; i < base->n; i++) {
        const RepRun *b = &base->runs[i];
        if (find_latest(base, &b->r, o->pair_by) != b) continue; /* an older run of the same key */
        const RepRun *c = find_latest(cur, &b->r, o->pair_by);
        fprintf(out, "\n%s  %s  %s", b->label, nz(b->r.strategy), nz(b->r.protocol));
        if (b->r.ctx) fprintf(out, " L=%lld", (long long)b->r.ctx);
        if (b->r.stride) fprintf(out, " S=%lld", (long long)b->r.stride);
        fprintf(out, "  %s  %lld tokens  model %.12s\n", nz(b->r.dataset), (long long)b->r.tokens, nz(b->r.model_hash));
        /* a baseline without a measured outcome: not comparable (never "running and fluent") */
        const char *bs = store_status_display(b->r.status, b->r.host, b->r.pid);
        if (!store_status_final(store_status_shown(b->r.status, b->r.host, b->r.pid))) {
            missing++;
            fprintf(out, "  baseline run %lld ended %s: not comparable (no complete result to judge against): %s\n", (long long)b->r.id, bs,
                    o->allow_missing ? "skipped (--allow-missing)" : "REGRESSION (baseline not comparable)");
            if (!o->allow_missing) regressions++;
            continue;
        }
        if (!c) {
            missing++;
            fprintf(out, "  baseline run %lld has no partner in %s: %s\n", (long long)b->r.id, cur->path,
                    o->allow_missing ? "skipped (--allow-missing)" : "REGRESSION (missing run)");
            if (!o->allow_missing) regressions++;
            continue;
        }
        pairs++;
        int bad = 0;
        char pb[32], pc[32];
        fprintf(out, "  runs: baseline %lld (%s, lcbench %s)  new %lld (%s, lcbench %s)\n", (long long)b->r.id, nz(b->r.status),
                nz(b->r.lcbench_rev), (long long)c->r.id, nz(c->r.status), nz(c->r.lcbench_rev));
        int b_done = store_status_parse(b->r.status) == STORE_DONE, c_done = store_status_parse(c->r.status) == STORE_DONE;
        if (b_done && !c_done) {
            pos_str(pc, sizeof pc, c->oom_pos);
            fprintf(out, "  REGRESSION: the new run ended %s (baseline: done)%s%s\n", nz(c->r.status), c->oom_pos >= 0 ? ", OOM at " : "",
                    c->oom_pos >= 0 ? pc : "");
            bad++;
        }
        if (earlier(c->oom_pos, b->oom_pos, o->pos_tol)) {
            pos_str(pb, sizeof pb, b->oom_pos); pos_str(pc, sizeof pc, c->oom_pos);
            fprintf(out, "  REGRESSION: OOM earlier: at %s (baseline %s)\n", pc, pb);
            bad++;
        }
        /* fluency verdict (collapse included) */
        pos_str(pb, sizeof pb, b->fluency_pos); pos_str(pc, sizeof pc, c->fluency_pos);
        int flu_bad = (b->fluency_pos < 0 && c->fluency_pos >= 0) || earlier(c->fluency_pos, b->fluency_pos, o->pos_tol);
        /* a run that did not finish is never "fluent": it was not seen to the end */
        const char *b_ok = b_done ? "fluent" : "no loss seen before it ended", *c_ok = c_done ? "fluent" : "no loss seen before it ended";
        fprintf(out, "  fluency: baseline %s%s%s%s, new %s%s%s%s%s\n", b->fluency_pos < 0 ? b_ok : "lost at ", b->fluency_pos < 0 ? "" : pb,
                b->fluency_pos < 0 ? "" : " by ", b->fluency_pos < 0 ? "" : b->fluency_why, c->fluency_pos < 0 ? c_ok : "lost at ",
                c->fluency_pos < 0 ? "" : pc, c->fluency_pos < 0 ? "" : " by ", c->fluency_pos < 0 ? "" : c->fluency_why,
                flu_bad ? "  REGRESSION" : "");
        bad += flu_bad;
        /* bins */
        const char *mn = o->metric == REP_METRIC_BPB ? "bpb" : o->metric == REP_METRIC_WORD_PPL ? "wPPL" : "PPL";
        char hb[16], hn[16];
        snprintf(hb, sizeof hb, "%s base", mn);
        snprintf(hn, sizeof hn, "%s new", mn);
        fprintf(out, "    %-18s %8s %10s %10s %8s %8s  %s\n", "positions", "steps", hb, hn, "change", "allowed", "verdict");
        for (size_t k = 0; o->metric == REP_METRIC_PPL && k < b->n_log2; k++) {
            const RepBin *bb = &b->log2[k];
            char what[48];
            snprintf(what, sizeof what, "[%lld, %lld)", (long long)bb->lo, (long long)bb->hi);
            const RepBin *cb = rep_bin_at(c->log2, c->n_log2, bb->lo);
            if (!cb && !c_done) continue; /* covered by the status line */
            bad += judge_bin(out, what, o->verbose, bb, cb, o);
        }
        if (b->all.count && o->metric == REP_METRIC_PPL) bad += judge_bin(out, "all positions", 1, &b->all, c->all.count ? &c->all : NULL, o);
        else if (b->all.count) {
            RepBin mb = metric_bin(b, o->metric), mc = metric_bin(c, o->metric);
            bad += judge_bin(out, o->metric == REP_METRIC_BPB ? "bits per byte" : "word PPL", 1, &mb, c->all.count ? &mc : NULL, o);
        }
        if (bad) fprintf(out, "  => REGRESSION (%d finding%s)\n", bad, bad == 1 ? "" : "s");
        else fprintf(out, "  => ok\n");
        regressions += bad != 0;
    }
    for (size_t i = 0; i < cur->n; i++)
        if (find_latest(cur, &cur->runs[i].r, o->pair_by) == &cur->runs[i] && !find_latest(base, &cur->runs[i].r, o->pair_by))
            fprintf(out, "\nnew run %lld (%s %s) has no baseline: not judged\n", (long long)cur->runs[i].r.id, cur->runs[i].label,
                    nz(cur->runs[i].r.strategy));
    if (regressions) {
        fprintf(out, "\ngate: FAIL: %d of %d pair%s regressed%s\n", regressions, pairs + missing, pairs + missing == 1 ? "" : "s",
                missing && !o->allow_missing ? " (missing or not comparable baseline runs count)" : "");
        return 1;
    }
    if (pairs == 0 && !o->allow_empty) {
        fprintf(out, "\ngate: FAIL: 0 pairs compared (%d baseline run%s skipped): a pass must compare something (--allow-empty accepts this)\n",
                missing, missing == 1 ? "" : "s");
        return 1;
    }
    fprintf(out, "\ngate: PASS: %d pair%s, no regression%s\n", pairs, pairs == 1 ? "" : "s", pairs ? "" : " (nothing compared: --allow-empty)");
    return 0;
}
