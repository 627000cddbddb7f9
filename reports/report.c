/*
 * report.c — `lcbench report`: a results file -> a folder a reader opens.
 *
 *   data/NAME.dat      the numbers behind every plot, one file per series, written from the
 *                      queries of results.c (bins, samples, events) and the memory planner
 *   NAME.gp            one gnuplot script per figure; each renders PNG (pngcairo) and SVG
 *   ppl_<model>.png    log PPL against input position (log x), one line per strategy, the
 *                      pre-training context marked
 *   memory_<model>.png weights and KV cache against position (measured samples as points, the
 *                      planner's prediction as lines)
 *   throughput.png     tokens/s per model and strategy
 *   events.png         events (context passed, OOM, collapse, fluency) on the position axis
 *   grid.png           model sizes x strategies, log PPL against position (StreamingLLM fig. 3)
 *   index.md / .html   tables (PPL at context lengths, PPL per bin and strategy, collapse
 *                      position, peak memory, throughput) and the provenance of every run
 *
 * Curves: the log2 bins up to 2 x bin_width, then the linear bins (each point is the mean NLL
 * of the steps in its bin, drawn at the bin's middle).
 *
 * What a plot shows: stream-protocol runs, grouped by model (content hash) and dataset (spec,
 * field, tokenizer) into one row of the grid and one figure each; inside a group one series per
 * (strategy, length).  Of several runs of one series the latest complete one (done, or oom: a
 * measured outcome) stands for it, else the latest.  A model is named by its folder; two
 * different models with one folder name get their hash prefix (results.c).  A run that did not
 * finish is drawn only as far as it has bins, labelled with its status, never as fluent; one with
 * nothing to draw is marked in its panel and tables.  The tables list every run.
 */
#include "reports/passkey_panel.h"
#include "reports/reports.h"
#include "engine/common.h"
#include "strategies/strategy.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_COLS 16      /* strategies */
#define MAX_GROUPS 16    /* (model, dataset) rows */
#define MAX_SER 32       /* series of a group */

typedef struct { char name[128]; } Name;

typedef struct {
    const RepRun *x;     /* the run standing for this (strategy, length) */
    int strat;           /* index into Rep.strats */
    int complete;        /* done or oom: a measured outcome */
    int drawable;        /* has bins to draw */
    char status[24];     /* store_status_display */
} Series;

typedef struct {
    char name[256];      /* what a reader sees: model label, " · dataset" when the model has several */
    char file[96];       /* file-name part of ppl_/memory_ figures */
    char dataset[128];   /* the dataset's short name */
    int64_t n_params, max_pos;
    Series ser[MAX_SER];
    int n_ser;
} Group;

typedef struct {
    const ReportOptions *o;
    RepDb d;
    Name strats[MAX_COLS];
    int n_strats;
    Group g[MAX_GROUPS];
    int n_groups;
    int n_left_out;                           /* stream runs past the limits above */
    char *figs[64];                           /* figure base names, in order */
    char *fig_caption[64];
    int n_figs;
} Rep;

static const char *nz(const char *s) { return s ? s : ""; }

/* A string for a single-quoted gnuplot literal: ' doubled, control characters dropped. */
static const char *gq(const char *s) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    size_t n = 0;
    for (; s && *s && n + 3 < sizeof buf[k]; s++) {
        if ((unsigned char)*s < 0x20) continue;
        if (*s == '\'') buf[k][n++] = '\'';
        buf[k][n++] = *s;
    }
    buf[k][n] = 0;
    return buf[k];
}

/* ---------------------------------------------------------------- ordering */

/* the registry's order (strategies/strategy.c) */
static int strat_rank(const char *s) { return strategy_rank(s); }

/* One colour per strategy instance of the report (sink:4:1020 and sink:4:508 differ): the hue of
 * its family (registry order), the lightness stepped over the family's instances in the report.
 * Returns "#rrggbb" in one of 16 rotating buffers. */
static const char *strat_color(const Rep *R, const char *spec) {
    static const double hue[] = {0, 30, 215, 125, 280, 45, 0};   /* dense red, window orange, sink blue, ... */
    static char buf[16][8];
    static int k;
    int fam = strat_rank(spec), n = 0, idx = 0;
    if (fam > 6) fam = 6;
    for (int i = 0; i < R->n_strats; i++)
        if (strat_rank(R->strats[i].name) == strat_rank(spec)) {
            if (!strcmp(R->strats[i].name, spec)) idx = n;
            n++;
        }
    double H = hue[fam] / 60.0, S = fam == 6 ? 0.0 : 0.75, L = n > 1 ? 0.30 + 0.35 * idx / (n - 1) : 0.45;
    double C = (1 - fabs(2 * L - 1)) * S, X = C * (1 - fabs(fmod(H, 2) - 1)), m = L - C / 2, rgb[3] = {0, 0, 0};
    int h6 = (int)H % 6;
    const int ix[6][2] = {{0, 1}, {1, 0}, {1, 2}, {2, 1}, {2, 0}, {0, 2}};   /* which channel gets C and X */
    rgb[ix[h6][0]] = C;
    rgb[ix[h6][1]] = X;
    char *o = buf[k++ % 16];
    snprintf(o, 8, "#%02x%02x%02x", (int)lround((rgb[0] + m) * 255), (int)lround((rgb[1] + m) * 255), (int)lround((rgb[2] + m) * 255));
    return o;
}

/* Tick labels of a log2 position axis over [lo, hi]: 16, 256, 1K, 4K, 1M (powers of 1024 named
 * K/M/G, as the README writes token counts), at most ~10 ticks. */
static void pos_xtics(char *out, size_t n, int64_t lo, int64_t hi) {
    int a = 0, b = 0;
    while (a < 62 && ((int64_t)1 << a) < lo) a++;
    while (b < 62 && ((int64_t)1 << (b + 1)) <= hi) b++;
    int step = 1;
    while ((b - a) / step > 10) step++;
    size_t l = (size_t)snprintf(out, n, "set xtics (");
    for (int e = a; e <= b && l < n; e += step) {
        int64_t v = (int64_t)1 << e;
        char lab[16];
        if (e >= 30) snprintf(lab, sizeof lab, "%lldG", (long long)(v >> 30));
        else if (e >= 20) snprintf(lab, sizeof lab, "%lldM", (long long)(v >> 20));
        else if (e >= 10) snprintf(lab, sizeof lab, "%lldK", (long long)(v >> 10));
        else snprintf(lab, sizeof lab, "%lld", (long long)v);
        l += (size_t)snprintf(out + l, n - l, "%s'%s' %lld", e == a ? "" : ", ", lab, (long long)v);
    }
    if (l < n) snprintf(out + l, n - l, ")\n");
}

static int find_name(Name *v, int n, const char *s) {
    for (int i = 0; i < n; i++) if (!strcmp(v[i].name, s)) return i;
    return -1;
}

static int run_complete(const RepRun *x) {
    return store_status_final(store_status_shown(x->r.status, x->r.host, x->r.pid));
}

/* The group key of a stream run: model content, dataset spec and field, tokenizer. */
static int same_group(const RepRun *a, const RepRun *b) {
    return !strcmp(nz(a->r.model_hash), nz(b->r.model_hash)) && !strcmp(nz(a->r.dataset), nz(b->r.dataset)) &&
           !strcmp(nz(a->r.dataset_field), nz(b->r.dataset_field)) && !strcmp(nz(a->r.tokenizer_hash), nz(b->r.tokenizer_hash)) &&
           !strcmp(a->label, b->label);
}

static void dataset_short(const char *spec, char *out, size_t n) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", spec && *spec ? spec : "?");
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
    const char *b = strrchr(tmp, '/');
    snprintf(out, n, "%.*s", (int)(n ? n - 1 : 0), b ? b + 1 : tmp);
}

/* "lcb-0.8m" -> "lcb-0_8m" for file names */
static void fname(char *out, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        out[k++] = (char)(isalnum(c) || c == '-' || c == '_' || c == '+' ? c : '_');
    }
    out[k] = 0;
}

static int series_cmp(const Rep *R, const Series *a, const Series *b) {
    int ra = strat_rank(R->strats[a->strat].name), rb = strat_rank(R->strats[b->strat].name);
    if (ra != rb) return ra - rb;
    int c = strcmp(R->strats[a->strat].name, R->strats[b->strat].name);
    if (c) return c;
    return a->x->r.tokens < b->x->r.tokens ? -1 : a->x->r.tokens > b->x->r.tokens;
}

static void build_index(Rep *R) {
    for (size_t i = 0; i < R->d.n; i++) {
        const RepRun *x = &R->d.runs[i];
        if (strcmp(nz(x->r.protocol), "stream")) continue;
        if (find_name(R->strats, R->n_strats, nz(x->r.strategy)) < 0 && R->n_strats < MAX_COLS)
            snprintf(R->strats[R->n_strats++].name, sizeof R->strats[0].name, "%s", nz(x->r.strategy));
    }
    for (int i = 0; i < R->n_strats; i++)
        for (int j = i + 1; j < R->n_strats; j++) {
            int a = strat_rank(R->strats[i].name), b = strat_rank(R->strats[j].name);
            if (b < a || (a == b && strcmp(R->strats[j].name, R->strats[i].name) < 0)) { Name t = R->strats[i]; R->strats[i] = R->strats[j]; R->strats[j] = t; }
        }
    /* groups and series; runs ascend by id, so a later run of a series replaces an earlier one
     * unless the earlier one is complete and the later one is not */
    for (size_t i = 0; i < R->d.n; i++) {
        const RepRun *x = &R->d.runs[i];
        if (strcmp(nz(x->r.protocol), "stream")) continue;
        int st = find_name(R->strats, R->n_strats, nz(x->r.strategy));
        int gi = 0;
        while (gi < R->n_groups && !same_group(R->g[gi].ser[0].x, x)) gi++;
        if (st < 0 || (gi == R->n_groups && gi == MAX_GROUPS)) { R->n_left_out++; continue; }
        Group *g = &R->g[gi];
        if (gi == R->n_groups) {
            memset(g, 0, sizeof *g);
            R->n_groups++;
            g->n_params = x->r.n_params;
            g->max_pos = x->r.max_pos;
            dataset_short(x->r.dataset, g->dataset, sizeof g->dataset);
        }
        int si = 0;
        while (si < g->n_ser && !(g->ser[si].strat == st && g->ser[si].x->r.tokens == x->r.tokens)) si++;
        if (si == g->n_ser && si == MAX_SER) { R->n_left_out++; continue; }
        Series v = {.x = x, .strat = st, .complete = run_complete(x), .drawable = x->n_log2 + x->n_lin > 0};
        snprintf(v.status, sizeof v.status, "%s", store_status_display(x->r.status, x->r.host, x->r.pid));
        if (si == g->n_ser) g->ser[g->n_ser++] = v;
        else if (v.complete || !g->ser[si].complete) g->ser[si] = v;
    }
    /* order: groups by parameter count, name, dataset; series by strategy, then length */
    for (int i = 0; i < R->n_groups; i++)
        for (int j = i + 1; j < R->n_groups; j++) {
            const Group *a = &R->g[i], *b = &R->g[j];
            int c = a->n_params != b->n_params ? (a->n_params > b->n_params ? 1 : -1) : strcmp(a->ser[0].x->label, b->ser[0].x->label);
            if (!c) c = strcmp(a->dataset, b->dataset);
            if (c > 0) { Group t = R->g[i]; R->g[i] = R->g[j]; R->g[j] = t; }
        }
    for (int k = 0; k < R->n_groups; k++) {
        Group *g = &R->g[k];
        for (int i = 0; i < g->n_ser; i++)
            for (int j = i + 1; j < g->n_ser; j++)
                if (series_cmp(R, &g->ser[j], &g->ser[i]) < 0) { Series t = g->ser[i]; g->ser[i] = g->ser[j]; g->ser[j] = t; }
    }
    /* names: the model label, plus the dataset where one model has several; unique file names */
    for (int k = 0; k < R->n_groups; k++) {
        Group *g = &R->g[k];
        int several = 0;
        for (int j = 0; j < R->n_groups; j++) several |= j != k && !strcmp(R->g[j].ser[0].x->label, g->ser[0].x->label);
        if (several) snprintf(g->name, sizeof g->name, "%s · %s", g->ser[0].x->label, g->dataset);
        else snprintf(g->name, sizeof g->name, "%s", g->ser[0].x->label);
        char a[64], b[32];
        fname(a, sizeof a, g->ser[0].x->label);
        fname(b, sizeof b, g->dataset);
        if (several) snprintf(g->file, sizeof g->file, "%s_%s", a, b); else snprintf(g->file, sizeof g->file, "%s", a);
        for (int j = 0; j < k; j++)
            if (!strcmp(R->g[j].file, g->file)) { size_t l = strlen(g->file); snprintf(g->file + l, sizeof g->file - l, "_%d", k); break; }
    }
}

/* What a series is, for titles: "sink:4:1020 (4000 tokens)" and, unless done, its status. */
static void series_title(const Series *v, char *out, size_t n) {
    const RepRun *x = v->x;
    if (store_status_parse(v->status) == STORE_DONE) snprintf(out, n, "%s (%lld tokens)", nz(x->r.strategy), (long long)x->r.tokens);
    else if (store_status_parse(v->status) == STORE_OOM && x->oom_pos >= 0)
        snprintf(out, n, "%s (%lld tokens; OOM at %lld)", nz(x->r.strategy), (long long)x->r.tokens, (long long)x->oom_pos);
    else snprintf(out, n, "%s (%lld tokens; %s at %lld of %lld steps)", nz(x->r.strategy), (long long)x->r.tokens, v->status,
                  (long long)x->r.steps_done, (long long)x->r.steps_total);
}

/* ---------------------------------------------------------------- files */

static FILE *open_out(const Rep *R, const char *name, char *err, size_t errlen) {
    char p[8192];
    snprintf(p, sizeof p, "%s/%s", R->o->out, name);
    FILE *f = fopen(p, "w");
    if (!f) lcb_fail(err, errlen, "--out %s: cannot write %s: %s", R->o->out, name, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *name, char *err, size_t errlen) {
    int bad = ferror(f);
    if (fclose(f) || bad) return lcb_fail(err, errlen, "writing %s failed", name);
    return 0;
}


/* The curve of one run: position, mean NLL, stderr; *points = the lines written (a bin whose
 * mean is missing is left out, never drawn as 0). */
static int write_curve(const Rep *R, const RepRun *x, char *path, size_t pn, int *points, char *err, size_t errlen) {
    snprintf(path, pn, "data/ppl_run%lld.dat", (long long)x->r.id);
    *points = 0;
    FILE *f = open_out(R, path, err, errlen);
    if (!f) return -1;
    int64_t w = x->r.bin_width > 0 ? x->r.bin_width : 1024;
    fprintf(f, "# run %lld %s %s (%s): position (bin middle), mean NLL (nats) = ln PPL, stderr, steps, 1 = log2 bin / 0 = linear bin\n",
            (long long)x->r.id, x->label, nz(x->r.strategy), nz(x->r.status));
    for (size_t i = 0; i < x->n_log2; i++) {
        const RepBin *b = &x->log2[i];
        if (b->count < 16 || b->hi > 2 * w || !isfinite(b->mean_nll)) continue; /* fewer steps: single-token noise */
        fprintf(f, "%.6g %.6f %.6f %lld 1\n", sqrt((double)b->lo * (double)b->hi), b->mean_nll, b->se, (long long)b->count);
        (*points)++;
    }
    for (size_t i = 0; i < x->n_lin; i++) {
        const RepBin *b = &x->lin[i];
        if (b->lo < 2 * w || !isfinite(b->mean_nll)) continue;
        fprintf(f, "%.6g %.6f %.6f %lld 0\n", (double)b->lo + (double)(b->hi - b->lo) / 2, b->mean_nll, b->se, (long long)b->count);
        (*points)++;
    }
    return close_out(f, path, err, errlen);
}

/* Run gnuplot on a script whose body is rendered twice: PNG, then SVG. */
static int render(Rep *R, const char *base, int w, int h, const char *body, const char *caption, char *err, size_t errlen) {
    char name[128];
    snprintf(name, sizeof name, "%s.gp", base);
    FILE *f = open_out(R, name, err, errlen);
    if (!f) return -1;
    fprintf(f, "# %s: generated by lcbench report from %s; run with gnuplot in this folder\n", name, R->o->db);
    fprintf(f, "set encoding utf8\nset termoption noenhanced\n");
    fprintf(f, "set terminal pngcairo size %d,%d font 'DejaVu Sans,10' linewidth 1.3 noenhanced\nset output '%s.png'\n%s\nunset output\n", w, h, base, body);
    if (R->o->svg)
        fprintf(f, "reset\nset termoption noenhanced\nset terminal svg size %d,%d font 'DejaVu Sans,10' dynamic noenhanced\nset output '%s.svg'\n%s\nunset output\n", w, h, base, body);
    if (close_out(f, name, err, errlen)) return -1;
    /* gnuplot in the output folder, through an argument vector (no shell: any folder name works) */
    char log[8192];
    snprintf(log, sizeof log, "%s/%s.log", R->o->out, base);
    char *argv[] = {(char *)(R->o->gnuplot ? R->o->gnuplot : "gnuplot"), name, NULL};
    int st = lcb_spawn(argv, R->o->out, NULL, log, NULL, 0, err, errlen);
    if (st < 0) return -1;
    if (st != 0) {
        char line[512] = "";
        FILE *l = fopen(log, "r");
        if (l) { if (!fgets(line, sizeof line, l)) line[0] = 0; fclose(l); }
        line[strcspn(line, "\n")] = 0;
        return lcb_fail(err, errlen, "gnuplot failed on %s/%s (exit %d): %s", R->o->out, name, st, line[0] ? line : "see its .log");
    }
    struct stat sb;
    if (stat(log, &sb) == 0 && sb.st_size == 0) remove(log);
    else {   /* gnuplot said something on stderr: surface it, naming the figure */
        FILE *l = fopen(log, "r");
        char line[512];
        while (l && fgets(line, sizeof line, l)) {
            line[strcspn(line, "\n")] = 0;
            if (line[strspn(line, " \t^")]) fprintf(stderr, "lcbench report: warning: gnuplot on %s (%s/%s.log): %s\n", name, R->o->out, base, line);
        }
        if (l) fclose(l);
    }
    if (R->n_figs < 64) { R->figs[R->n_figs] = strdup(base); R->fig_caption[R->n_figs++] = strdup(caption); }
    return 0;
}

/* A growable string. */
typedef struct { char *s; size_t n, cap; } Buf;
static void bprintf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) return;
        b->s = ns; b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* End a plot script built in b (its last line), render it when `draw` (there is something to
 * plot), and free it: the common tail of every figure. */
static int finish_figure(Rep *R, const char *base, int w, int h, Buf *b, int draw, const char *caption, char *err, size_t errlen) {
    bprintf(b, "\n");
    int rc = draw ? render(R, base, w, h, b->s, caption, err, errlen) : 0;
    free(b->s);
    b->s = NULL;
    return rc;
}

/* ---------------------------------------------------------------- figures */

/* "1,048,576" */
static void fmt_count(char *out, size_t n, int64_t v) {
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)(v < 0 ? -v : v));
    size_t l = strlen(t), k = 0;
    if (v < 0 && k + 1 < n) out[k++] = '-';
    for (size_t i = 0; i < l && k + 2 < n; i++) {
        out[k++] = t[i];
        if ((l - 1 - i) % 3 == 0 && i + 1 < l) out[k++] = ',';
    }
    out[k] = 0;
}

/* What a figure shows, from the data: "lcb-1.5m, lcb-6m on moby-dick, 4,096-65,536 tokens a run" over
 * the groups given (k < 0: every group), the first four models named. */
static void scope_title(const Rep *R, int only, char *out, size_t n) {
    char models[300] = "", datasets[200] = "";
    int nm = 0, nd = 0;
    int64_t tlo = -1, thi = -1;
    for (int k = 0; k < R->n_groups; k++) {
        if (only >= 0 && k != only) continue;
        const Group *g = &R->g[k];
        const char *lab = g->ser[0].x->label;
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= (only < 0) && !strcmp(R->g[j].ser[0].x->label, lab);
        if (!seen) {
            size_t l = strlen(models);
            if (nm < 4) snprintf(models + l, sizeof models - l, "%s%s", nm ? ", " : "", lab);
            nm++;
        }
        seen = 0;
        for (int j = 0; j < k; j++) seen |= (only < 0) && !strcmp(R->g[j].dataset, g->dataset);
        if (!seen) {
            size_t l = strlen(datasets);
            if (nd < 2) snprintf(datasets + l, sizeof datasets - l, "%s%s", nd ? ", " : "", g->dataset);
            nd++;
        }
        for (int i = 0; i < g->n_ser; i++) {
            int64_t t = g->ser[i].x->r.tokens;
            if (tlo < 0 || t < tlo) tlo = t;
            if (t > thi) thi = t;
        }
    }
    if (nm > 4) { size_t l = strlen(models); snprintf(models + l, sizeof models - l, " and %d more", nm - 4); }
    if (nd > 2) { size_t l = strlen(datasets); snprintf(datasets + l, sizeof datasets - l, " and %d more", nd - 2); }
    char a[32], b[32];
    fmt_count(a, sizeof a, tlo);
    fmt_count(b, sizeof b, thi);
    if (tlo == thi) snprintf(out, n, "%s on %s, %s tokens a run", models, datasets, a);
    else snprintf(out, n, "%s on %s, %s-%s tokens a run", models, datasets, a, b);
}


static void ctx_marker(Buf *b, int64_t max_pos, const char *ypos, int right) {
    if (max_pos <= 0) return;
    bprintf(b, "set arrow from %lld, graph 0 to %lld, graph 1 nohead dashtype 2 linecolor rgb '#555555'\n", (long long)max_pos, (long long)max_pos);
    bprintf(b, "set label 'pre-training context (%lld)' at %lld, graph %s %s textcolor rgb '#555555' font ',9'\n",
            (long long)max_pos, (long long)max_pos, ypos, right ? "right offset -0.5,0" : "left offset 0.5,0");
}

static int fig_ppl(Rep *R, char *err, size_t errlen) {
    for (int k = 0; k < R->n_groups; k++) {
        Group *g = &R->g[k];
        Buf b = {0};
        char base[128], path[256];
        snprintf(base, sizeof base, "ppl_%s", g->file);
        int64_t xmax = 0;
        int any = 0;
        for (int i = 0; i < g->n_ser; i++) if (g->ser[i].x->r.tokens > xmax) xmax = g->ser[i].x->r.tokens;
        char scope[600];
        scope_title(R, k, scope, sizeof scope);
        bprintf(&b, "set title '%s: log perplexity against input position, one line per KV-cache strategy'\n", gq(scope));
        bprintf(&b, "set logscale x 2\nset xrange [16:%lld]\n", (long long)(xmax > 32 ? xmax : 32));
        { char xt[1024]; pos_xtics(xt, sizeof xt, 16, xmax > 32 ? xmax : 32); bprintf(&b, "%s", xt); }
        bprintf(&b, "set xlabel 'input position t (tokens seen, log scale)'\nset ylabel 'log PPL = mean NLL per bin (nats/token)'\n");
        bprintf(&b, "set grid xtics ytics linecolor rgb '#dddddd'\nset key outside right top box opaque title 'strategy'\n");
        ctx_marker(&b, g->max_pos, "0.96", 1);
        bprintf(&b, "set key invert\nplot ");
        for (int i = g->n_ser - 1; i >= 0; i--) {
            const Series *v = &g->ser[i];
            const RepRun *x = v->x;
            int pts;
            if (!v->drawable) continue;   /* marked in the tables and the grid */
            if (write_curve(R, x, path, sizeof path, &pts, err, errlen)) { free(b.s); return -1; }
            if (!pts) continue;
            char t[256];
            series_title(v, t, sizeof t);
            bprintf(&b, "%s'%s' using 1:2 with lines linewidth %s dashtype %s linecolor rgb '%s' title '%s', \\\n  '%s' using 1:($5 > 0 ? $2 : 1/0):3 with yerrorbars pointsize 0 linecolor rgb '%s' notitle",
                    any ? ", \\\n  " : "", path, strat_rank(nz(x->r.strategy)) == 1 ? "2.5" : "1.8", !v->complete ? "(2,3)" : strat_rank(nz(x->r.strategy)) == 1 ? "(6,4)" : "1",
                    strat_color(R, nz(x->r.strategy)), gq(t), path, strat_color(R, nz(x->r.strategy)));
            any = 1;
        }
        char cap[512];
        snprintf(cap, sizeof cap, "%s on %s: log PPL against position, one line per strategy and length (dotted: a run that did not finish); error bars: one stderr (log2 bins); past 2048, 1024-token bins",
                 g->name, g->dataset);
        if (finish_figure(R, base, 1000, 520, &b, any, cap, err, errlen)) return -1;
    }
    return 0;
}

static int fig_memory(Rep *R, char *err, size_t errlen) {
    for (int k = 0; k < R->n_groups; k++) {
        Group *g = &R->g[k];
        Buf b = {0};
        char base[128];
        snprintf(base, sizeof base, "memory_%s", g->file);
        int64_t xmax = 2, weights = -1;
        for (int i = 0; i < g->n_ser; i++) {
            const RepRun *x = g->ser[i].x;
            if (x->r.tokens > xmax) xmax = x->r.tokens;
            if (x->peak_weights > 0) weights = x->peak_weights;
        }
        char scope[600];
        scope_title(R, k, scope, sizeof scope);
        bprintf(&b, "set title '%s: memory against position'.\"\\n\".'(points: measured at each commit; lines: lcbench plan)'\n", gq(scope));
        bprintf(&b, "set logscale x 2\nset xrange [256:%lld]\nset logscale y 2\n", (long long)(xmax * 1.15));
        { char xt[1024]; pos_xtics(xt, sizeof xt, 256, (int64_t)(xmax * 1.15)); bprintf(&b, "%s", xt); }
        bprintf(&b, "set xlabel 'input position t (tokens seen, log scale)'\nset ylabel 'memory (MiB, log scale)'\n");
        bprintf(&b, "set grid xtics ytics linecolor rgb '#dddddd'\nset key outside right top box opaque\n");
        ctx_marker(&b, g->max_pos, "0.96", 0);
        bprintf(&b, "set offsets 0, 0, graph 0.12, graph 0.04\n");
        int any = 0;
        bprintf(&b, "plot ");
        if (weights > 0) {
            bprintf(&b, "%.6f with lines linewidth 2 dashtype 2 linecolor rgb 'black' title 'weights (fp32)'", weights / 1048576.0);
            any = 1;
        }
        for (int i = 0; i < g->n_ser; i++) {
            const RepRun *x = g->ser[i].x;
            char path[256], pathp[256];
            snprintf(path, sizeof path, "data/mem_run%lld.dat", (long long)x->r.id);
            snprintf(pathp, sizeof pathp, "data/mem_plan_run%lld.dat", (long long)x->r.id);
            FILE *f = open_out(R, path, err, errlen);
            if (!f) { free(b.s); return -1; }
            sqlite3_stmt *st;
            int measured = 0;
            fprintf(f, "# run %lld: position, KV allocated, KV formula, workspace, weights, RSS (MiB)\n", (long long)x->r.id);
            if (sqlite3_prepare_v2(R->d.db, "SELECT pos, kv_bytes, kv_formula_bytes, work_bytes, weights_bytes, rss_bytes FROM samples WHERE run_id=? ORDER BY pos",
                                   -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, x->r.id);
                while (sqlite3_step(st) == SQLITE_ROW) {
                    fprintf(f, "%lld %.6f %.6f %.6f %.6f %.6f\n", (long long)sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1) / 1048576.0,
                            sqlite3_column_int64(st, 2) / 1048576.0, sqlite3_column_int64(st, 3) / 1048576.0,
                            sqlite3_column_int64(st, 4) / 1048576.0, sqlite3_column_int64(st, 5) / 1048576.0);
                    measured += sqlite3_column_int64(st, 1) > 0 && sqlite3_column_int64(st, 0) >= 256;
                }
                sqlite3_finalize(st);
            }
            if (close_out(f, path, err, errlen)) { free(b.s); return -1; }
            /* the planner's KV at positions 256 .. tokens */
            f = open_out(R, pathp, err, errlen);
            if (!f) { free(b.s); return -1; }
            fprintf(f, "# run %lld: position, KV allocated by lcbench plan (MiB)\n", (long long)x->r.id);
            int planned = 0;
            for (double p = 256; p <= (double)x->r.tokens * 1.0001; p *= pow(2, 0.125)) {
                PlanInput in = {.model = x->r.model, .config = x->r.model_config, .strategy = x->r.strategy, .tokens = (uint64_t)p, .chunk = x->r.chunk};
                PlanResult pr;
                char e2[LCB_ERRLEN];
                if (plan_predict(&in, &pr, e2, sizeof e2)) break;
                fprintf(f, "%.0f %.6f\n", p, pr.kv / 1048576.0);
                planned = 1;
            }
            if (close_out(f, pathp, err, errlen)) { free(b.s); return -1; }
            const char *col = strat_color(R, nz(x->r.strategy));
            char t[300];
            snprintf(t, sizeof t, "KV cache, %s%s%s", nz(x->r.strategy), g->ser[i].complete ? "" : " (", g->ser[i].complete ? "" : g->ser[i].status);
            if (!g->ser[i].complete) strcat(t, ")");
            if (planned) { bprintf(&b, "%s'%s' using 1:2 with lines linewidth 2 linecolor rgb '%s' title '%s'", any ? ", \\\n  " : "", pathp, col, gq(t)); any = 1; }
            if (measured) {   /* a file with no point in range would be gnuplot's "no valid points" */
                bprintf(&b, "%s'%s' using 1:($2 > 0 ? $2 : 1/0) with points pointtype 7 pointsize 1.2 linecolor rgb '%s' %s%s%s", any ? ", \\\n  " : "", path, col,
                        planned ? "notitle" : "title '", planned ? "" : gq(t), planned ? "" : "'");
                any = 1;
            }
        }
        char cap[512];
        snprintf(cap, sizeof cap, "%s: weights and KV cache against position (log-log); points measured, lines predicted by lcbench plan (window and sink caches nearly coincide)", g->name);
        if (finish_figure(R, base, 1000, 520, &b, any, cap, err, errlen)) return -1;
    }
    return 0;
}

/* The series of group g and strategy s that a one-value-per-cell figure shows: the longest
 * complete one, else the longest. */
static const Series *cell_series(const Group *g, int s) {
    const Series *best = NULL;
    for (int i = 0; i < g->n_ser; i++) {
        const Series *v = &g->ser[i];
        if (v->strat != s) continue;
        if (!best || (v->complete && !best->complete) || (v->complete == best->complete && v->x->r.tokens > best->x->r.tokens)) best = v;
    }
    return best;
}

static int fig_throughput(Rep *R, char *err, size_t errlen) {
    FILE *f = open_out(R, "data/throughput.dat", err, errlen);
    if (!f) return -1;
    fprintf(f, "# per (model, dataset) and strategy, the longest complete run: tokens/s (tokens over seconds of its committed batches),\n"
               "# the lowest and the highest rate of one batch (interval between two samples); ? = none\nmodel");
    for (int s = 0; s < R->n_strats; s++) fprintf(f, " \"%s\" lo hi", R->strats[s].name);
    fprintf(f, "\n");
    int have = 0, spread = 0;
    double ymin = INFINITY;   /* the y axis starts at the power of ten below the slowest batch */
    for (int k = 0; k < R->n_groups; k++) {
        fprintf(f, "\"");
        for (const char *p = R->g[k].name; *p; p++) if (*p != '"' && (unsigned char)*p >= 0x20) fputc(*p, f);
        fprintf(f, "\"");
        for (int s = 0; s < R->n_strats; s++) {
            const Series *v = cell_series(&R->g[k], s);
            if (v && v->complete && isfinite(v->x->tokens_per_s)) {
                fprintf(f, " %.1f %.1f %.1f", v->x->tokens_per_s, v->x->tps_lo, v->x->tps_hi);
                have = 1;
                spread |= v->x->tps_n > 1;
                if (v->x->tokens_per_s > 0 && v->x->tokens_per_s < ymin) ymin = v->x->tokens_per_s;
                if (v->x->tps_lo > 0 && v->x->tps_lo < ymin) ymin = v->x->tps_lo;
            } else fprintf(f, " ? ? ?");
        }
        fprintf(f, "\n");
    }
    if (close_out(f, "data/throughput.dat", err, errlen)) return -1;
    if (!have) return 0;
    Buf b = {0};
    int threads = 0;
    char dev[160] = "", scope[600];
    for (size_t i = 0; i < R->d.n; i++) { threads = (int)R->d.runs[i].r.threads; snprintf(dev, sizeof dev, "%s", nz(R->d.runs[i].r.device)); }
    scope_title(R, -1, scope, sizeof scope);
    bprintf(&b, "set title 'tokens/s: %s'.\"\\n\".'(%d thread%s, %s; bars: the run, whiskers: its slowest and fastest batch)'\n", gq(scope), threads,
            threads == 1 ? "" : "s", gq(dev));
    bprintf(&b, "set datafile missing '?'\nset style data histograms\nset style histogram errorbars gap 1 linewidth 1.2\nset style fill solid 0.85 border -1\n");
    bprintf(&b, "set boxwidth 0.9\nset logscale y 10\nset yrange [%g:*]\nset ylabel 'tokens per second (log scale)'\nset xlabel 'model'\n",
            isfinite(ymin) ? pow(10, floor(log10(ymin))) : 1.0);
    bprintf(&b, "set grid ytics linecolor rgb '#dddddd'\nset key outside right top box opaque title 'strategy'\n");
    bprintf(&b, "plot ");
    for (int s = 0; s < R->n_strats; s++)
        bprintf(&b, "%s'data/throughput.dat' using %d:%d:%d:xtic(1) title columnheader(%d) linecolor rgb '%s'", s ? ", \\\n  " : "", 3 * s + 2,
                3 * s + 3, 3 * s + 4, 3 * s + 2, strat_color(R, R->strats[s].name));
    char cap[400];
    snprintf(cap, sizeof cap, "throughput: tokens/s of each complete run (bar), the slowest and fastest committed batch (whiskers%s); dense is O(T) per token",
             spread ? "" : "; every run here has a single batch, so they coincide");
    return finish_figure(R, "throughput", 1000, 480, &b, R->n_strats > 0, cap, err, errlen);
}

static int fig_events(Rep *R, char *err, size_t errlen) {
    /* one row per series; kinds: ctx_passed, collapse (derived), fluency/probe, oom, other */
    static const char *kinds[] = {"ctx_passed", "collapse", "fluency", "oom", "corpus_repeat", "other"};
    static const char *kcol[] = {"#555555", "#d62728", "#9467bd", "#000000", "#2ca02c", "#ff7f0e"};
    static const int kpt[] = {2, 6, 9, 5, 13, 4};   /* collapse: an open circle, so a ctx_passed cross at the same position shows through */
    const int nk = 6;
    FILE *f = open_out(R, "data/events.dat", err, errlen);
    if (!f) return -1;
    fprintf(f, "# one block per kind (%s ...): position, row, run\n", kinds[0]);
    Buf ytics = {0};
    int row = 0, nrows = 0;
    int64_t xmax = 2;
    const RepRun *rows[MAX_GROUPS * MAX_SER];
    const Group *rowg[MAX_GROUPS * MAX_SER];
    for (int k = 0; k < R->n_groups; k++)
        for (int i = 0; i < R->g[k].n_ser; i++) { rowg[nrows] = &R->g[k]; rows[nrows++] = R->g[k].ser[i].x; }
    int count[6] = {0};
    for (int k = 0; k < nk; k++) {
        fprintf(f, "# %s\n", kinds[k]);
        for (row = 0; row < nrows; row++) {
            const RepRun *x = rows[row];
            if (x->r.tokens > xmax) xmax = x->r.tokens;
            if (k == 1) { if (x->collapse_pos >= 0) { fprintf(f, "%lld %d %lld\n", (long long)x->collapse_pos, row, (long long)x->r.id); count[k]++; } continue; }
            if (k == 2 && x->fluency_pos >= 0 && strcmp(x->fluency_why, "collapse")) { fprintf(f, "%lld %d %lld\n", (long long)x->fluency_pos, row, (long long)x->r.id); count[k]++; }
            for (size_t i = 0; i < x->n_ev; i++) {
                const char *kd = x->ev[i].kind;
                int kk = !strcmp(kd, "ctx_passed") ? 0 : !strcmp(kd, "oom") ? 3 : !strcmp(kd, "corpus_repeat") ? 4 :
                         (!strcmp(kd, "collapse") || !strncmp(kd, "fluency", 7)) ? 2 : 5;
                if (kk == k && k != 2) { fprintf(f, "%lld %d %lld\n", (long long)(x->ev[i].pos > 0 ? x->ev[i].pos : 1), row, (long long)x->r.id); count[k]++; }
            }
        }
        fprintf(f, "\n\n");
    }
    if (close_out(f, "data/events.dat", err, errlen)) return -1;
    size_t longest = 0;   /* the left margin fits the longest row label */
    for (row = 0; row < nrows; row++) {
        char t[400];
        snprintf(t, sizeof t, "%s %s %lldK", rowg[row]->name, nz(rows[row]->r.strategy), (long long)(rows[row]->r.tokens / 1000));
        bprintf(&ytics, "%s'%s' %d", row ? ", " : "", gq(t), row);
        if (strlen(t) > longest) longest = strlen(t);
    }
    int total = 0;
    for (int k = 0; k < nk; k++) total += count[k];
    Buf b = {0};
    char scope[600];
    scope_title(R, -1, scope, sizeof scope);
    bprintf(&b, "set title '%s: events on the position axis'.\"\\n\".'(collapse: first octave past the context with PPL > %g x the reference on the same steps)'\n",
            gq(scope), R->o->collapse_factor > 0 ? R->o->collapse_factor : REP_COLLAPSE_FACTOR);
    bprintf(&b, "set logscale x 2\nset xrange [1:%lld]\nset yrange [-0.7:%d]\n", (long long)xmax * 2, nrows > 0 ? nrows : 1);
    { char xt[1024]; pos_xtics(xt, sizeof xt, 1, (int64_t)xmax * 2); bprintf(&b, "%s", xt); }
    bprintf(&b, "set ytics (%s)\nset ytics nomirror\nset xlabel 'input position t (tokens seen, log scale)'\n", ytics.s ? ytics.s : "");
    bprintf(&b, "set grid xtics ytics linecolor rgb '#dddddd'\nset key outside right top box opaque title 'event'\nset lmargin %d\n", (int)(longest * 0.85) + 3);
    bprintf(&b, "set style line 1 linecolor rgb '#cccccc'\n");
    int first = 1;
    bprintf(&b, "plot ");
    for (int k = 0; k < nk; k++)
        if (count[k]) {
            bprintf(&b, "%s'data/events.dat' index %d using 1:2 with points pointtype %d pointsize 1.6 linecolor rgb '%s' title '%s'", first ? "" : ", \\\n  ",
                    k, kpt[k], kcol[k], k == 2 ? "fluency loss (probe/event)" : kinds[k]);
            first = 0;
        }
    int rc = finish_figure(R, "events", 1000, 130 + 34 * nrows, &b, nrows > 0 && total > 0,
                           "events per run on the position axis (context passed, collapse, fluency, OOM, errors)", err, errlen);
    free(ytics.s);
    return rc;
}

static int fig_grid(Rep *R, char *err, size_t errlen) {
    if (R->n_groups == 0 || R->n_strats == 0) return 0;
    /* a shared y range across cells */
    double ylo = 1e30, yhi = -1e30;
    int64_t xmax = 2;
    for (int k = 0; k < R->n_groups; k++)
        for (int i = 0; i < R->g[k].n_ser; i++) {
            const RepRun *x = R->g[k].ser[i].x;
            if (x->r.tokens > xmax) xmax = x->r.tokens;
            int64_t w = x->r.bin_width > 0 ? x->r.bin_width : 1024;
            for (size_t j = 0; j < x->n_log2; j++) if (x->log2[j].count >= 16 && x->log2[j].hi <= 2 * w && isfinite(x->log2[j].mean_nll)) {
                if (x->log2[j].mean_nll < ylo) ylo = x->log2[j].mean_nll;
                if (x->log2[j].mean_nll > yhi) yhi = x->log2[j].mean_nll;
            }
            for (size_t j = 0; j < x->n_lin; j++) if (x->lin[j].lo >= 2 * w && isfinite(x->lin[j].mean_nll)) {
                if (x->lin[j].mean_nll < ylo) ylo = x->lin[j].mean_nll;
                if (x->lin[j].mean_nll > yhi) yhi = x->lin[j].mean_nll;
            }
        }
    if (ylo > yhi) { ylo = 0; yhi = 10; }
    ylo = floor((ylo - 0.1) * 2) / 2; yhi = ceil((yhi + 0.2) * 2) / 2;
    Buf b = {0};
    /* rows = models and datasets, columns = strategies; one model's strategies wrap at 4 a row, so
     * that 1 model x 7 strategies stays legible (a 2,200-pixel strip does not) */
    int wrap = R->n_groups == 1 && R->n_strats > 4;
    int cols = wrap ? 4 : R->n_strats, rows = wrap ? (R->n_strats + 3) / 4 : R->n_groups;
    int W = 300 * cols + 120, H = 230 * rows + 110;
    char scope[600];
    scope_title(R, -1, scope, sizeof scope);
    bprintf(&b, "set multiplot layout %d,%d title '%s: log PPL against input position, %s'.\"\\n\".'"
                "dashed: pre-training context; dotted: a run that did not finish' font ',12' margins screen 0.06, 0.99, %.3f, %.3f spacing screen 0.045, %.3f\n",
            rows, cols, gq(scope), wrap ? "one panel per KV-cache strategy" : "models and datasets (rows) x KV-cache strategies (columns)",
            55.0 / H, 1.0 - 90.0 / H, 75.0 / H);
    { char xt[1024]; pos_xtics(xt, sizeof xt, 1, (int64_t)xmax); bprintf(&b, "%s", xt); }
    bprintf(&b, "set logscale x 2\nset xrange [1:%lld]\nset yrange [%g:%g]\nset xtics font ',8'\nset ytics font ',8'\n",
            (long long)xmax, ylo, yhi);
    bprintf(&b, "set grid xtics ytics linecolor rgb '#dddddd'\nunset key\n");
    for (int k = 0; k < R->n_groups; k++)
        for (int s = 0; s < R->n_strats; s++) {
            const Group *g = &R->g[k];
            int panel = k * R->n_strats + s, row = wrap ? panel / cols : k, col = wrap ? panel % cols : s;
            bprintf(&b, "unset arrow\nunset label\nset title '%s, %s' font ',10'\n", gq(g->name), R->strats[s].name);
            bprintf(&b, "set xlabel %s\nset ylabel %s\n", row == rows - 1 || (wrap && panel + cols >= R->n_strats) ? "'position (log)' font ',9'" : "''",
                    col == 0 ? "'log PPL (nats)' font ',9'" : "''");
            if (g->max_pos > 0)
                bprintf(&b, "set arrow from %lld, graph 0 to %lld, graph 1 nohead dashtype 2 linecolor rgb '#555555'\n", (long long)g->max_pos, (long long)g->max_pos);
            Buf pl = {0};
            char marks[512] = "";
            int n_mark = 0;
            for (int i = 0; i < g->n_ser; i++) {
                const Series *v = &g->ser[i];
                if (v->strat != s) continue;
                const RepRun *x = v->x;
                char path[256];
                int pts = 0;
                if (v->drawable && write_curve(R, x, path, sizeof path, &pts, err, errlen)) { free(b.s); free(pl.s); return -1; }
                if (!v->complete) {   /* never drawn as if it were a finished, fluent run */
                    size_t l = strlen(marks);
                    snprintf(marks + l, sizeof marks - l, "%srun %lld %s%s", n_mark++ ? "; " : "", (long long)x->r.id, v->status, pts ? "" : " (nothing to draw)");
                }
                if (x->collapse_pos >= 0)
                    bprintf(&b, "set label 'collapse' at %lld, graph 0.08 left offset 0.3,0 textcolor rgb '#d62728' font ',8'\nset arrow from %lld, graph 0 to %lld, graph 0.05 nohead linewidth 3 linecolor rgb '#d62728'\n",
                            (long long)x->collapse_pos, (long long)x->collapse_pos, (long long)x->collapse_pos);
                if (pts)
                    bprintf(&pl, "%s'%s' using 1:2 with lines linewidth 2 dashtype %s linecolor rgb '%s' notitle", pl.s ? ", " : "", path,
                            v->complete ? "1" : "(2,3)", strat_color(R, nz(x->r.strategy)));
            }
            if (n_mark) bprintf(&b, "set label '%s' at graph 0.5, graph 0.9 center textcolor rgb '#d62728' font ',8'\n", gq(marks));
            if (!pl.s) {
                if (!n_mark) bprintf(&b, "set label 'not run' at graph 0.5, graph 0.5 center textcolor rgb '#999999'\n");
                bprintf(&b, "plot 1e30 notitle\n");   /* an empty panel: a constant outside the y range (1/0 has no valid point) */
            } else bprintf(&b, "plot %s\n", pl.s);
            free(pl.s);
        }
    bprintf(&b, "unset multiplot\n");
    int rc = render(R, "grid", W, H, b.s, "models and datasets x strategies (StreamingLLM fig. 3 style); dashed: pre-training context; dotted or marked red: runs that did not finish", err, errlen);
    free(b.s);
    return rc;
}

/* ---------------------------------------------------------------- tables */

/* PPL of the steps at positions < L (cumulative over the log2 bins), NAN if not reached. */
static double ppl_upto(const RepRun *x, int64_t L) {
    double sum = 0;
    int64_t n = 0, reach = 0;
    for (size_t i = 0; i < x->n_log2; i++) {
        if (x->log2[i].hi <= L) { sum += x->log2[i].mean_nll * x->log2[i].count; n += x->log2[i].count; }
        if (x->log2[i].lo + x->log2[i].count >= L - 1 && x->log2[i].hi >= L) reach = 1;
    }
    return n && reach ? exp(sum / n) : NAN;
}

typedef struct { FILE *md, *html; } Out2;

static void cell(Out2 *o, int header, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cell(Out2 *o, int header, const char *fmt, ...) {
    char t[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    fprintf(o->md, " %s |", t);
    fprintf(o->html, "<%s>", header ? "th" : "td");
    for (const char *p = t; *p; p++) {
        if (*p == '<') fputs("&lt;", o->html);
        else if (*p == '>') fputs("&gt;", o->html);
        else if (*p == '&') fputs("&amp;", o->html);
        else if (*p == '`') continue;   /* a cell is plain text in HTML */
        else fputc(*p, o->html);
    }
    fprintf(o->html, "</%s>", header ? "th" : "td");
}
static void row_begin(Out2 *o) { fprintf(o->md, "|"); fprintf(o->html, "<tr>"); }
static void row_end(Out2 *o, int header, int ncols) {
    fprintf(o->md, "\n");
    fprintf(o->html, "</tr>\n");
    if (header) { fprintf(o->md, "|"); for (int i = 0; i < ncols; i++) fprintf(o->md, "---|"); fprintf(o->md, "\n"); }
}
static void table_begin(Out2 *o) { fprintf(o->html, "<table>\n"); }
static void table_end(Out2 *o) { fprintf(o->md, "\n"); fprintf(o->html, "</table>\n"); }
/* Markdown text as HTML: `code` spans become <code>, no literal backtick reaches the page. */
static void html_text(FILE *f, const char *t) {
    int code = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '`') { fputs(code ? "</code>" : "<code>", f); code = !code; }
        else if (*p == '<' && code) fputs("&lt;", f);
        else if (*p == '>' && code) fputs("&gt;", f);
        else if (*p == '&' && code) fputs("&amp;", f);
        else fputc(*p, f);
    }
    if (code) fputs("</code>", f);
}
static void heading(Out2 *o, int level, const char *t) {
    fprintf(o->md, "%.*s %s\n\n", level, "####", t);
    fprintf(o->html, "<h%d>", level); html_text(o->html, t); fprintf(o->html, "</h%d>\n", level);
}
static void para(Out2 *o, const char *t) { fprintf(o->md, "%s\n\n", t); fprintf(o->html, "<p>"); html_text(o->html, t); fprintf(o->html, "</p>\n"); }

static void fmt_ppl(char *b, size_t n, double v) { if (isnan(v)) snprintf(b, n, "–"); else snprintf(b, n, v >= 100 ? "%.1f" : "%.2f", v); }

static int write_index(Rep *R, char *err, size_t errlen) {
    Out2 o;
    if (!(o.md = open_out(R, "index.md", err, errlen))) return -1;
    if (!(o.html = open_out(R, "index.html", err, errlen))) { fclose(o.md); return -1; }
    fprintf(o.html, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>lcbench report</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
                    "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
                    "td:first-child,th:first-child{text-align:left}img{max-width:100%%}code{font-size:90%%}</style></head><body>\n");
    heading(&o, 1, "lcbench report");
    char t[8192];
    snprintf(t, sizeof t, "Generated by `lcbench report` from `%s` (%zu runs). Positions are the step index t of SPEC §1 (tokens already seen); "
                          "log PPL is the mean NLL in nats/token. Collapse position: the start of the first log2 bin (at least %d steps) at or past "
                          "the pre-training context whose PPL exceeds %g × a reference on the same steps: the lowest PPL that a run with a cache the model "
                          "was trained for (sinks kept, at most ctx tokens attended: sink:S:W with S+W ≤ ctx, or recompute:W) scored on that bin of the "
                          "same token stream; without such a run, the run's own last in-context octave [ctx/2, ctx). `lcbench gate`, `export` and the "
                          "run's headline use the same rule (reports/reports.h says why: the text alone, such as an easy table of contents, moves a bin's PPL "
                          "by more than a cache policy does).",
             R->o->db, R->d.n, REP_COLLAPSE_MIN_STEPS, R->o->collapse_factor > 0 ? R->o->collapse_factor : REP_COLLAPSE_FACTOR);
    para(&o, t);

    /* LongLoRA-style table */
    heading(&o, 2, "Perplexity at context lengths");
    para(&o, "As in LongLoRA's tables: the PPL of the first L tokens of the stream (every step at a position below L), for each model and strategy; "
             "– where the run is shorter than L.");
    int64_t Ls[] = {512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576};
    int nL = 0;
    int64_t maxT = 0;
    for (size_t i = 0; i < R->d.n; i++) if (R->d.runs[i].r.tokens > maxT) maxT = R->d.runs[i].r.tokens;
    while (nL < 12 && Ls[nL] <= maxT) nL++;
    table_begin(&o);
    row_begin(&o); cell(&o, 1, "model"); cell(&o, 1, "dataset"); cell(&o, 1, "strategy"); cell(&o, 1, "run"); cell(&o, 1, "status");
    for (int k = 0; k < nL; k++) { if (Ls[k] >= 1024) cell(&o, 1, "%lldK", (long long)(Ls[k] / 1024)); else cell(&o, 1, "%lld", (long long)Ls[k]); }
    cell(&o, 1, "whole run"); row_end(&o, 1, nL + 6);
    for (int g = 0; g < R->n_groups; g++)
        for (int i = 0; i < R->g[g].n_ser; i++) {
            const Series *sv = &R->g[g].ser[i];
            const RepRun *x = sv->x;
            row_begin(&o); cell(&o, 0, "%s", x->label); cell(&o, 0, "%s", R->g[g].dataset); cell(&o, 0, "%s", nz(x->r.strategy));
            cell(&o, 0, "%lld", (long long)x->r.id); cell(&o, 0, "%s", sv->status);
            for (int k = 0; k < nL; k++) { char v[32]; fmt_ppl(v, sizeof v, ppl_upto(x, Ls[k])); cell(&o, 0, "%s", v); }
            /* the whole-run PPL of a run that did not finish is not a result */
            char v[32]; fmt_ppl(v, sizeof v, x->all.count && sv->complete ? x->all.ppl : NAN); cell(&o, 0, "%s", v);
            row_end(&o, 0, 0);
        }
    table_end(&o);
    if (R->n_left_out) {
        snprintf(t, sizeof t, "%d stream run%s left out of the figures (more than %d model/dataset rows, %d strategies or %d series a row); the tables below list every run.",
                 R->n_left_out, R->n_left_out == 1 ? "" : "s", MAX_GROUPS, MAX_COLS, MAX_SER);
        para(&o, t);
    }

    /* collapse, memory, throughput */
    heading(&o, 2, "Collapse, fluency, peak memory, throughput");
    para(&o, "Memory columns are the peaks of the run's samples (one per committed batch). "
             "`lcbench plan` predicts the same categories (tests/test_reports.c checks them against CPU runs).");
    table_begin(&o);
    row_begin(&o);
    const char *hdr[] = {"run", "model", "strategy", "status", "tokens", "PPL", "collapse reference", "worst PPL / reference", "collapse at", "fluency", "weights", "KV peak", "workspace", "RSS", "tokens/s",
                         "tokens/s of one batch"};
    for (int i = 0; i < 16; i++) cell(&o, 1, "%s", hdr[i]);
    row_end(&o, 1, 16);
    for (size_t i = 0; i < R->d.n; i++) {
        const RepRun *x = &R->d.runs[i];
        char v[64], w[32], k[32], wk[32], rs[32];
        row_begin(&o);
        const char *stt = store_status_display(x->r.status, x->r.host, x->r.pid);
        int complete = run_complete(x);
        cell(&o, 0, "%lld", (long long)x->r.id); cell(&o, 0, "%s", x->label); cell(&o, 0, "%s", nz(x->r.strategy));
        if (complete) cell(&o, 0, "%s", stt); else cell(&o, 0, "**%s** at %lld of %lld steps", stt, (long long)x->r.steps_done, (long long)x->r.steps_total);
        cell(&o, 0, "%lld", (long long)x->r.tokens);
        fmt_ppl(v, sizeof v, x->all.count && complete ? x->all.ppl : NAN); cell(&o, 0, "%s", v);
        /* where R comes from: a reference run on the same steps, or the run's own last in-context octave */
        const RepCollapse *c = &x->collapse;
        if (c->matched && c->ref_run == x->r.id) cell(&o, 0, "itself (%s)", c->ref_strategy);
        else if (c->matched && c->ref_run >= 0) cell(&o, 0, "run %lld (%s)", (long long)c->ref_run, c->ref_strategy);
        else if (!isnan(c->ref_ppl)) { fmt_ppl(v, sizeof v, c->ref_ppl); cell(&o, 0, "own [%lld, %lld): %s", (long long)(x->r.max_pos / 2), (long long)x->r.max_pos, v); }
        else cell(&o, 0, "–");
        if (isfinite(c->worst)) cell(&o, 0, "%.2f× at %lld", c->worst, (long long)c->worst_lo); else cell(&o, 0, "–");
        if (x->collapse_pos >= 0) cell(&o, 0, "%lld", (long long)x->collapse_pos); else cell(&o, 0, complete ? "none" : "–");
        /* a run that did not finish is never called fluent: nobody saw its end */
        if (x->fluency_pos >= 0) cell(&o, 0, "lost at %lld (%s)", (long long)x->fluency_pos, x->fluency_why);
        else if (complete) cell(&o, 0, "fluent");
        else cell(&o, 0, "not judged (run %s)", stt);
        rep_human_bytes(w, sizeof w, (double)x->peak_weights); rep_human_bytes(k, sizeof k, (double)x->peak_kv);
        rep_human_bytes(wk, sizeof wk, (double)x->peak_work); rep_human_bytes(rs, sizeof rs, (double)x->peak_rss);
        if (x->peak_weights >= 0) { cell(&o, 0, "%s", w); cell(&o, 0, "%s", k); cell(&o, 0, "%s", wk); cell(&o, 0, "%s", rs);
            if (isfinite(x->tokens_per_s)) cell(&o, 0, "%.0f", x->tokens_per_s); else cell(&o, 0, "–");
            if (x->tps_n > 0) cell(&o, 0, "%.0f–%.0f (%lld batch%s)", x->tps_lo, x->tps_hi, (long long)x->tps_n, x->tps_n == 1 ? "" : "es"); else cell(&o, 0, "–");
        } else for (int j = 0; j < 6; j++) cell(&o, 0, "–");
        row_end(&o, 0, 0);
    }
    table_end(&o);

    /* figures */
    heading(&o, 2, "Figures");
    for (int i = 0; i < R->n_figs; i++) {
        fprintf(o.md, "![%s](%s.png)\n\n*%s* ([SVG](%s.svg), [script](%s.gp))\n\n", R->fig_caption[i], R->figs[i], R->fig_caption[i], R->figs[i], R->figs[i]);
        fprintf(o.html, "<figure><img src=\"%s.png\" alt=\"%s\"><figcaption>%s (<a href=\"%s.svg\">SVG</a>, <a href=\"%s.gp\">script</a>)</figcaption></figure>\n",
                R->figs[i], R->fig_caption[i], R->fig_caption[i], R->figs[i], R->figs[i]);
    }

    /* PPL per bin and strategy, one table per model */
    heading(&o, 2, "PPL per position bin and strategy");
    para(&o, "log2 bins [lo, hi) of the position t; each cell is exp(mean NLL) ± one stderr of the mean NLL (nats).");
    for (int g = 0; g < R->n_groups; g++) {
        const Group *G = &R->g[g];
        snprintf(t, sizeof t, "%s on %s", G->name, G->dataset);
        heading(&o, 3, t);
        int64_t maxhi = 0;
        for (int i = 0; i < G->n_ser; i++) for (size_t j = 0; j < G->ser[i].x->n_log2; j++) if (G->ser[i].x->log2[j].hi > maxhi) maxhi = G->ser[i].x->log2[j].hi;
        if (!maxhi) { para(&o, "No run of this model and dataset has bins (none finished)."); continue; }
        table_begin(&o);
        row_begin(&o); cell(&o, 1, "positions");
        int nc = 1;
        for (int i = 0; i < G->n_ser; i++) {
            const Series *sv = &G->ser[i];
            if (sv->complete) cell(&o, 1, "%s, %lld tokens", R->strats[sv->strat].name, (long long)sv->x->r.tokens);
            else cell(&o, 1, "%s, %lld tokens (%s)", R->strats[sv->strat].name, (long long)sv->x->r.tokens, sv->status);
            nc++;
        }
        row_end(&o, 1, nc);
        for (int64_t lo = 0, hi = 1; hi <= maxhi; lo = hi, hi *= 2) {
            row_begin(&o); cell(&o, 0, "[%lld, %lld)", (long long)lo, (long long)hi);
            for (int i = 0; i < G->n_ser; i++) {
                const RepRun *x = G->ser[i].x;
                const RepBin *b = rep_bin_at(x->log2, x->n_log2, lo);
                if (b && b->hi == hi && isfinite(b->ppl)) cell(&o, 0, b->count > 1 ? "%.2f ± %.3f" : "%.2f", b->ppl, b->se); else cell(&o, 0, "–");
            }
            row_end(&o, 0, 0);
        }
        table_end(&o);
    }

    /* provenance */
    heading(&o, 2, "Provenance");
    table_begin(&o);
    row_begin(&o);
    const char *ph[] = {"run", "command", "model hash", "dataset (token hash)", "protocol", "lcbench", "device", "threads", "started", "wall s"};
    for (int i = 0; i < 10; i++) cell(&o, 1, "%s", ph[i]);
    row_end(&o, 1, 10);
    for (size_t i = 0; i < R->d.n; i++) {
        const StoreRun *r = &R->d.runs[i].r;
        row_begin(&o);
        cell(&o, 0, "%lld", (long long)r->id); cell(&o, 0, "`%s`", nz(r->argv)); cell(&o, 0, "%.12s", nz(r->model_hash));
        cell(&o, 0, "%s (%.12s)", nz(r->dataset), nz(r->dataset_hash)); cell(&o, 0, "%s chunk %lld bos %s", nz(r->protocol), (long long)r->chunk, nz(r->bos));
        cell(&o, 0, "%s", nz(r->lcbench_rev)); cell(&o, 0, "%s", nz(r->device)); cell(&o, 0, "%lld", (long long)r->threads);
        cell(&o, 0, "%s", nz(r->started)); cell(&o, 0, "%.1f", r->wall_s);
        row_end(&o, 0, 0);
    }
    table_end(&o);
    fprintf(o.html, "</body></html>\n");
    int rc = close_out(o.md, "index.md", err, errlen);
    if (close_out(o.html, "index.html", err, errlen)) rc = -1;
    return rc;
}

/* ---------------------------------------------------------------- entry */

int report_write(const ReportOptions *o, char *err, size_t errlen) {
    Rep R;
    memset(&R, 0, sizeof R);
    R.o = o;
    if (rep_load(&R.d, o->db, "--db", o->collapse_factor, err, errlen)) return -1;
    char data[4200];
    if (strlen(o->out) > 4000) return lcb_fail(err, errlen, "--out: the path is too long");
    snprintf(data, sizeof data, "%s/data", o->out);
    int rc = 0;
    if (lcb_mkdir_p(data)) rc = lcb_fail(err, errlen, "--out %.4000s: cannot create the folder: %s", o->out, strerror(errno));
    if (rc == 0 && R.d.n == 0) {
        /* a file of passkey results only: the passkey panel alone */
        char md[4200];
        int n_pk = 0;
        snprintf(md, sizeof md, "%s/index.md", o->out);
        FILE *f = fopen(md, "w");
        if (!f) rc = lcb_fail(err, errlen, "%s: cannot create: %s", md, strerror(errno));
        else {
            fprintf(f, "# lcbench report\n\nSource: `%s` (passkey results only).\n\n", o->db);
            rc = report_passkey_panel(o->db, o->out, o->gnuplot, f, &n_pk, err, errlen);
            fclose(f);
        }
        if (rc == 0 && n_pk == 0) rc = lcb_fail(err, errlen, "--db %s: the file holds no run", o->db);
        if (rc == 0) {
            snprintf(md, sizeof md, "%s/index.html", o->out);
            if (!(f = fopen(md, "w"))) rc = lcb_fail(err, errlen, "%s: cannot create: %s", md, strerror(errno));
            else {
                fprintf(f, "<!doctype html><meta charset=\"utf-8\"><title>lcbench report</title>\n<h1>lcbench report</h1>\n"
                           "<p>Passkey results only; the table is in <a href=\"index.md\">index.md</a>.</p>\n"
                           "<img src=\"passkey.png\" alt=\"passkey accuracy against prompt length\">\n");
                fclose(f);
            }
        }
        rep_free(&R.d);
        return rc;
    }
    if (rc == 0) {
        build_index(&R);
        rc = fig_grid(&R, err, errlen);
        if (rc == 0) rc = fig_ppl(&R, err, errlen);
        if (rc == 0) rc = fig_memory(&R, err, errlen);
        if (rc == 0) rc = fig_throughput(&R, err, errlen);
        if (rc == 0) rc = fig_events(&R, err, errlen);
        if (rc == 0) rc = write_index(&R, err, errlen);
        if (rc == 0) { /* passkey accuracy against length (lcbench passkey), appended to index.md */
            char md[4200];
            snprintf(md, sizeof md, "%s/index.md", o->out);
            FILE *f = fopen(md, "a");
            if (!f) rc = lcb_fail(err, errlen, "%s: cannot append: %s", md, strerror(errno));
            else {
                rc = report_passkey_panel(o->db, o->out, o->gnuplot, f, NULL, err, errlen);
                if (fclose(f) != 0 && rc == 0) rc = lcb_fail(err, errlen, "%s: write error", md);
            }
        }
    }
    for (int i = 0; i < R.n_figs; i++) { free(R.figs[i]); free(R.fig_caption[i]); }
    rep_free(&R.d);
    return rc;
}
