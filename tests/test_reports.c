/*
 * test_reports.c — the regression gate, the memory planner and the report writer.
 *
 * Gate: synthetic results files written through the store API (so the bins are the ones
 * `run` computes): an identical run passes, a run made worse fails, noise within the stderr
 * passes, an earlier OOM / a new collapse / a missing run fail, exit codes 0/1/2 via the CLI.
 * CI gate: the short default run of tests/baseline/README.md against the committed baseline.
 * Plan: predicted weights / KV / workspace against what short CPU runs record, within 5%.
 * Report: every figure renders (PNG magic checked) and index.md/html carry the tables.
 */
#include "tests/testutil.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/model.h"
#include "reports/store/store.h"
#include "reports/reports.h"

#include <cJSON.h>
#include <math.h>
#include <omp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- synthetic runs */

typedef struct {
    const char *status;      /* done, oom */
    int64_t tokens;          /* steps = tokens - 1 */
    uint64_t seed;
    double shift;            /* added to every NLL */
    double collapse_from;    /* > 0: NLL + collapse_by (default 2) from this position on (a collapse past 512) */
    double collapse_by;
    int64_t easy_until;      /* > 0: NLL - 2 before this position (an easy opening, as Moby Dick's table of contents) */
    int64_t oom_at;          /* >= 0: an oom event here (and steps stop there) */
    const char *model_hash;
    const char *model, *dataset;   /* NULL: models/synthetic-1m, synthetic */
    const char *strategy;          /* NULL: window:512 (no sinks: not a reference of the collapse rule, reports.h) */
    int no_bins;                   /* a run killed before its bins were written */
    const char *token_hash;        /* NULL: the dataset name (the stream's hash; shorter runs of one stream differ) */
} Synth;

static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return ((*s >> 11) + 0.5) / 9007199254740992.0;
}

/* A stream of NLLs around 3.5 nats with sd ~1 (Box-Muller), as a small LM on prose. */
static void synth_add(const char *path, const Synth *x);
static void synth_db(const char *path, const Synth *x) {
    remove(path);
    synth_add(path, x);
}

/* Append one synthetic run to a results file. */
static void synth_add(const char *path, const Synth *x) {
    char err[LCB_ERRLEN];
    Store st;
    if (store_open(&st, path, err, sizeof err)) fail_msg("%s", err);
    StoreRun r;
    memset(&r, 0, sizeof r);
    r.status = (char *)x->status;
    r.model = (char *)(x->model ? x->model : "models/synthetic-1m");
    r.model_hash = (char *)(x->model_hash ? x->model_hash : "abc123");
    r.strategy = (char *)(x->strategy ? x->strategy : "window:512");
    r.protocol = "stream";
    r.dataset = (char *)(x->dataset ? x->dataset : "synthetic");
    r.dataset_hash = (char *)(x->token_hash ? x->token_hash : x->dataset ? x->dataset : "d0d0");
    r.tokens = x->tokens;
    r.max_pos = 512;
    r.bin_width = 1024;
    r.n_params = 1000000;
    assert_int_equal(store_run_insert(&st, &r, err, sizeof err), 0);
    int64_t n = x->oom_at >= 0 ? x->oom_at : x->tokens - 1;
    float *v = malloc((size_t)n * sizeof *v);
    uint64_t s = x->seed;
    for (int64_t t = 0; t < n; t++) {
        double u1 = urand(&s), u2 = urand(&s);
        double g = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        v[t] = (float)(3.5 + g + x->shift + (x->collapse_from > 0 && t >= x->collapse_from ? (x->collapse_by ? x->collapse_by : 2.0) : 0) -
                       (t < x->easy_until ? 2.0 : 0));
    }
    assert_int_equal(store_nll_insert(&st, r.id, 0, 0, 0, v, n, err, sizeof err), 0);
    if (x->oom_at >= 0) assert_int_equal(store_event(&st, r.id, x->oom_at, "oom", "out of memory (synthetic)", err, sizeof err), 0);
    double mean;
    int64_t steps;
    if (!x->no_bins) assert_int_equal(store_bins_recompute(&st, r.id, 1024, &mean, &steps, err, sizeof err), 0);
    free(v);
    store_close(&st);
}

static int gate_files(const char *base, const char *cur, const GateOptions *o, char **text) {
    RepDb b, c;
    char err[LCB_ERRLEN];
    if (rep_load(&b, base, "--baseline", REP_COLLAPSE_FACTOR, err, sizeof err)) fail_msg("%s", err);
    if (rep_load(&c, cur, "--db", REP_COLLAPSE_FACTOR, err, sizeof err)) fail_msg("%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    GateOptions d;
    gate_defaults(&d);
    int rc = gate_compare(&b, &c, o ? o : &d, f);
    fclose(f);
    rep_free(&b);
    rep_free(&c);
    if (text) *text = buf; else free(buf);
    return rc;
}

static char *tmp(const char *name) {
    static char p[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", tu_tmpdir(), name);
    return p[k];
}

static const Synth BASE = {.status = "done", .tokens = 16384, .seed = 1, .oom_at = -1};

static void test_gate_identical_passes(void **state) {
    (void)state;
    char *a = tmp("base.db"), *b = tmp("same.db");
    synth_db(a, &BASE);
    synth_db(b, &BASE);
    char *out;
    int rc = gate_files(a, b, NULL, &out);
    if (rc) fail_msg("identical runs failed the gate:\n%s", out);
    assert_non_null(strstr(out, "gate: PASS: 1 pair"));
    free(out);
}

static void test_gate_worse_fails(void **state) {
    (void)state;
    char *a = tmp("base.db"), *b = tmp("worse.db");
    synth_db(a, &BASE);
    Synth w = BASE;
    w.shift = 0.15; /* PPL x 1.16 everywhere: ~9 stderrs over the whole run, ~3 in a 1024-step bin */
    synth_db(b, &w);
    char *out;
    assert_int_equal(gate_files(a, b, NULL, &out), 1);
    assert_non_null(strstr(out, "REGRESSION"));
    assert_non_null(strstr(out, "gate: FAIL"));
    free(out);
    /* the same shift downwards is an improvement, not a failure */
    w.shift = -0.15;
    synth_db(b, &w);
    assert_int_equal(gate_files(a, b, NULL, NULL), 0);
}

static void test_gate_noise_within_stderr_passes(void **state) {
    (void)state;
    char *a = tmp("base.db"), *b = tmp("noise.db");
    synth_db(a, &BASE);
    /* the same distribution, other draws: every bin moves by about its stderr */
    for (uint64_t seed = 2; seed < 8; seed++) {
        Synth n = BASE;
        n.seed = seed;
        synth_db(b, &n);
        char *out;
        int rc = gate_files(a, b, NULL, &out);
        if (rc) fail_msg("seed %llu: sampling noise failed the gate:\n%s", (unsigned long long)seed, out);
        free(out);
    }
    /* a shift of half a stderr of the whole run (sd 1 / sqrt(16383) = 0.0078): still within */
    Synth n = BASE;
    n.shift = 0.004;
    synth_db(b, &n);
    assert_int_equal(gate_files(a, b, NULL, NULL), 0);
    /* with --sigma 0 and a 0.1% tolerance the same shift is a regression (the rule is max of both) */
    GateOptions o;
    gate_defaults(&o);
    o.sigma = 0;
    o.rel_tol = 0.001;
    assert_int_equal(gate_files(a, b, &o, NULL), 1);
}

static void test_gate_oom_collapse_missing(void **state) {
    (void)state;
    char *a = tmp("base.db"), *b = tmp("bad.db");
    synth_db(a, &BASE);
    Synth o = BASE;
    o.status = "oom";
    o.oom_at = 8000;
    synth_db(b, &o);
    char *out;
    assert_int_equal(gate_files(a, b, NULL, &out), 1);
    assert_non_null(strstr(out, "ended oom"));
    free(out);
    /* both OOM: earlier is a regression, later is not */
    synth_db(a, &o);
    Synth e = o;
    e.oom_at = 4000;
    synth_db(b, &e);
    assert_int_equal(gate_files(a, b, NULL, &out), 1);
    assert_non_null(strstr(out, "OOM earlier"));
    free(out);
    e.oom_at = 12000;
    synth_db(b, &e);
    assert_int_equal(gate_files(a, b, NULL, NULL), 0);
    /* a collapse past the context where the baseline stayed fluent */
    synth_db(a, &BASE);
    Synth c = BASE;
    c.collapse_from = 2048;
    synth_db(b, &c);
    assert_int_equal(gate_files(a, b, NULL, &out), 1);
    assert_non_null(strstr(out, "new lost at 2048 by collapse"));
    free(out);
    /* a baseline run with no partner */
    Synth m = BASE;
    m.model_hash = "other";
    synth_db(b, &m);
    assert_int_equal(gate_files(a, b, NULL, &out), 1);
    assert_non_null(strstr(out, "missing run"));
    free(out);
    /* --allow-missing with nothing compared is not a pass (issue 13 (5)) unless asked for */
    GateOptions g;
    gate_defaults(&g);
    g.allow_missing = 1;
    assert_int_equal(gate_files(a, b, &g, &out), 1);
    assert_non_null(strstr(out, "0 pairs compared"));
    free(out);
    g.allow_empty = 1;
    assert_int_equal(gate_files(a, b, &g, NULL), 0);
}

/* issue 13 (5): a killed or failed baseline run is not comparable (never "running and fluent");
 * an empty pass fails unless --allow-empty; a NaN (NULL) bin of the new run is no improvement. */
static void test_gate_not_comparable(void **state) {
    (void)state;
    char *a = tmp("nc_base.db"), *b = tmp("nc_cur.db"), *out;
    Synth k = BASE;
    k.status = "interrupted";
    k.oom_at = 3000;   /* steps stop there; no oom event is what matters less than the status */
    synth_db(a, &k);
    Synth c = BASE;
    c.collapse_from = 2048;
    synth_db(b, &c);
    int rc = tu_run(&out, "%s gate --db %s --baseline %s", tu_lcbench(), b, a);
    if (rc != 1 || !strstr(out, "not comparable")) fail_msg("a killed baseline: exit %d: %s", rc, out);
    free(out);
    rc = tu_run(&out, "%s gate --db %s --baseline %s --allow-missing", tu_lcbench(), b, a);
    if (rc != 1 || !strstr(out, "0 pairs")) fail_msg("--allow-missing, nothing compared: exit %d: %s", rc, out);
    free(out);
    rc = tu_run(&out, "%s gate --db %s --baseline %s --allow-missing --allow-empty", tu_lcbench(), b, a);
    if (rc != 0) fail_msg("--allow-empty: exit %d: %s", rc, out);
    free(out);
    /* a new run whose bins hold NULL (what SQLite makes of NaN) */
    synth_db(a, &BASE);
    synth_db(b, &BASE);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(b, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "UPDATE bins SET mean_nll = NULL, ppl = NULL; UPDATE runs SET mean_nll = NULL, ppl = NULL", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    rc = tu_run(&out, "%s gate --db %s --baseline %s", tu_lcbench(), b, a);
    if (rc != 1 || strstr(out, "better")) fail_msg("NULL bins gated as a number: exit %d: %s", rc, out);
    free(out);
}

static void test_gate_cli_exit_codes(void **state) {
    (void)state;
    char *a = tmp("cbase.db"), *b = tmp("ccur.db");
    synth_db(a, &BASE);
    synth_db(b, &BASE);
    char *out;
    assert_int_equal(tu_run(&out, "%s gate --db %s --baseline %s", tu_lcbench(), b, a), 0);
    free(out);
    Synth w = BASE;
    w.shift = 0.2;
    synth_db(b, &w);
    assert_int_equal(tu_run(&out, "%s gate --db %s --baseline %s --verbose", tu_lcbench(), b, a), 1);
    assert_non_null(strstr(out, "[1024, 2048)"));
    free(out);
    assert_int_equal(tu_run(&out, "%s gate --db %s --baseline %s --rel-tol 0.5", tu_lcbench(), b, a), 0); /* 22%% < 50%% */
    free(out);
    assert_int_equal(tu_run(&out, "%s gate --baseline %s", tu_lcbench(), a), 2);
    assert_non_null(strstr(out, "--db"));
    free(out);
    assert_int_equal(tu_run(&out, "%s gate --db %s/nonexistent.db --baseline %s", tu_lcbench(), tu_tmpdir(), a), 2);
    assert_non_null(strstr(out, "--db"));
    free(out);
    assert_int_equal(tu_run(&out, "%s gate --db %s --baseline %s --sigma x", tu_lcbench(), b, a), 2);
    assert_non_null(strstr(out, "--sigma"));
    free(out);
    assert_int_equal(tu_run(&out, "%s gate --db %s --baseline %s --bogus", tu_lcbench(), b, a), 2);
    free(out);
    /* the baseline is opened read-only: not modified by gating */
    struct stat s1, s2;
    assert_int_equal(stat(a, &s1), 0);
    assert_int_equal(tu_run(NULL, "%s gate --db %s --baseline %s", tu_lcbench(), b, a), 1);
    assert_int_equal(stat(a, &s2), 0);
    assert_int_equal(s1.st_mtime, s2.st_mtime);
    assert_int_equal(s1.st_size, s2.st_size);
}

/* The project's own CI gate: the short default run against the committed baseline
 * (tests/baseline/README.md).  Needs the Moby Dick corpus (make corpora). */
static void test_ci_gate_against_baseline(void **state) {
    (void)state;
    struct stat sb;
    if (stat(".cache/corpora/moby-dick/.done", &sb)) {
        print_message("skipped: .cache/corpora/moby-dick missing (make corpora); the CI gate needs it\n");
        skip();
    }
    char *db = tmp("ci.db"), *out;
    /* the baseline's strategy pinned (tests/baseline/README.md): the default is sized from the model now */
    int rc = tu_run(&out, "OMP_NUM_THREADS=1 %s run --db %s --tokens 4K --strategy sink:4:1020 --no-progress", tu_lcbench(), db);
    if (rc) fail_msg("the CI run failed (%d):\n%s", rc, out);
    free(out);
    rc = tu_run(&out, "%s gate --db %s --baseline tests/baseline/lcb-0.8m.db", tu_lcbench(), db);
    if (rc) fail_msg("the CI gate failed (%d):\n%s", rc, out);
    assert_non_null(strstr(out, "gate: PASS: 1 pair"));
    free(out);
}

/* ---------------------------------------------------------------- plan */

/* Run `lcbench run` on a token file and compare the samples' peaks with plan_predict.  --batch
 * 256 commits mid-run, while the chunk's logits are allocated (the final commit comes after the
 * protocol has freed them, so a one-batch run records only the forward's workspace). */
static void plan_check(const char *model, const char *strategy, int tokens, int chunk) {
    char *ids = tmp("plan.ids"), *db = tmp("plan.db");
    FILE *f = fopen(ids, "w");
    uint64_t s = 7;
    for (int i = 0; i < tokens; i++) fprintf(f, "%d ", 4 + (int)(urand(&s) * 4000));
    fclose(f);
    remove(db);
    char *out;
    int rc = tu_run(&out, "OMP_NUM_THREADS=1 %s run --db %s --model %s --strategy %s --dataset %s --chunk %d --batch 256 --no-progress", tu_lcbench(), db,
                    model, strategy, ids, chunk);
    if (rc) fail_msg("%s %s: run failed:\n%s", model, strategy, out);
    free(out);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT MAX(weights_bytes), MAX(kv_bytes), MAX(work_bytes) FROM samples", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    double w = (double)sqlite3_column_int64(q, 0), kv = (double)sqlite3_column_int64(q, 1), wk = (double)sqlite3_column_int64(q, 2);
    sqlite3_finalize(q);
    sqlite3_close(h);
    PlanInput in = {.model = model, .strategy = strategy, .tokens = (uint64_t)tokens, .chunk = chunk};
    PlanResult p;
    char err[LCB_ERRLEN];
    /* the run had one thread (OMP_NUM_THREADS=1): a GGUF's panel scratch is per thread */
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    int prc = plan_predict(&in, &p, err, sizeof err);
    omp_set_num_threads(threads);
    if (prc) fail_msg("%s", err);
    /* 5%: the issue's bound; the prediction follows the allocations one for one, so in
     * practice these agree to the byte */
    double measured = w + kv + wk, predicted = (double)(p.weights + p.kv + p.work);
    print_message("plan %s %s %d tokens: weights %.0f/%lld  kv %.0f/%lld  work %.0f/%lld (measured/predicted)\n", model, strategy, tokens,
                  w, (long long)p.weights, kv, (long long)p.kv, wk, (long long)p.work);
    if (strstr(model, ".gguf")) {
        /* a GGUF: plan opens the file once and sums the CPU's weight bytes itself (the arena
         * without the layer matrices, their blocks, the head's packed copy): the engine's own sum
         * to the byte, and weights, KV and workspace (panel scratch included) the run's to the byte */
        uint64_t eb = 0;
        if (model_gguf_cpu_bytes(model, &eb, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(p.weights, (int64_t)eb);
        if (w != (double)p.weights) fail_msg("%s: weights %.0f measured, %lld predicted", model, w, (long long)p.weights);
        if (kv != (double)p.kv) fail_msg("%s: KV %.0f measured, %lld predicted", model, kv, (long long)p.kv);
        if (wk != (double)p.work) fail_msg("%s: workspace %.0f measured, %lld predicted", model, wk, (long long)p.work);
    }
    if (fabs(w - p.weights) > 0.05 * w) fail_msg("%s: weights %.0f measured, %lld predicted", strategy, w, (long long)p.weights);
    if (fabs(kv - p.kv) > 0.05 * kv) fail_msg("%s: KV %.0f measured, %lld predicted", strategy, kv, (long long)p.kv);
    if (fabs(wk - p.work) > 0.05 * wk) fail_msg("%s: workspace %.0f measured, %lld predicted", strategy, wk, (long long)p.work);
    if (fabs(measured - predicted) > 0.05 * measured) fail_msg("%s: total %.0f measured, %.0f predicted", strategy, measured, predicted);
}

static void test_plan_matches_cpu_runs(void **state) {
    (void)state;
    plan_check("models/lcb-0.8m", "sink:4:60", 3000, 256);
    plan_check("models/lcb-0.8m", "window:100", 2000, 128);
    plan_check("models/lcb-0.8m", "dense", 1500, 256);   /* doubling KV: 2048-token capacity */
    plan_check("models/lcb-0.8m", "recompute:64", 300, 256);
    plan_check("models/lcb-2.5m", "sink:4:508", 1200, 256);
    /* a GGUF on the CPU keeps its layer matrices as blocks (6.8 MiB here, not the 12.1 of fp32) */
    plan_check("tests/fixtures/gguf/lcb-2.5m-Q4_K_M.gguf", "sink:4:100", 1200, 256);
}

static void test_plan_shapes_and_errors(void **state) {
    (void)state;
    const char *shapes[] = {"llama2-7b", "llama2-13b", "llama2-70b", "mistral-7b", "falcon-7b", "pythia-6.9b"};
    for (int i = 0; i < 6; i++) {
        char m[64];
        snprintf(m, sizeof m, "random:%s", shapes[i]);
        PlanInput in = {.model = m, .strategy = "sink:4:1020", .tokens = 1000000, .chunk = 256};
        PlanResult p;
        char err[LCB_ERRLEN];
        if (plan_predict(&in, &p, err, sizeof err)) fail_msg("%s: %s", m, err);
        /* the fp32 arena is the parameters x 4 plus norm/bias slots: within 1%; plus, for a
         * tied LM head (falcon-7b), its packed copy for the CPU forward (engine/gemm.h) */
        ModelConfig cfg;
        assert_int_equal(config_random_shape(&cfg, shapes[i], err, sizeof err), 0);
        const double head = cfg.tie_embeddings ? 4.0 * cfg.vocab * cfg.dim : 0;
        assert_true(fabs((double)p.weights - head - 4.0 * p.n_params) < 0.01 * 4.0 * p.n_params);
        assert_true(p.kv > 0 && p.work > 0 && p.total > p.weights);
        in.cuda = 1;
        assert_int_equal(plan_predict(&in, &p, err, sizeof err), 0);
        assert_int_equal(p.weights, (int64_t)p.n_params * 2);
    }
    /* llama2-70b dense at 32K tokens on the CPU: ~69B x 4 B of weights, GQA KV of 80 layers x 8 x 128 */
    PlanInput in = {.model = "random:llama2-70b", .strategy = "dense", .tokens = 32768, .chunk = 256};
    PlanResult p;
    char err[LCB_ERRLEN];
    assert_int_equal(plan_predict(&in, &p, err, sizeof err), 0);
    assert_int_equal(p.kv, 2ll * 80 * 8 * 128 * 4 * 32768);
    /* --device cuda: engine/cuda/backend.cu's ws_reserve (bf16, one GPU), written out for
     * llama2-7b at 4,096 rows: x fp32, xn, qkv and hb in bf16 (issue 17), q/qs/att, ha, the RoPE
     * table (2 x 128 floats a row + 4 B, rounded up to 256), rank 0's 512 x 32,000 fp32 logits,
     * ids, targets, NLLs */
    const int64_t n = 4096, al = 256;
    const int64_t ws7b = n * 4096 * 4 + n * 4096 * 2 + n * 12288 * 2 + 3 * n * 4096 * 2 + n * 22016 * 2 + n * 11008 * 2 +
                         (2 * 128 * 4 * n + 4 + al - 1) / al * al + 512 * 32000 * 4 + n * 4 + n * 4 + n * 8;
    PlanInput cu = {.model = "random:llama2-7b", .strategy = "sink:4:4092", .tokens = 1000000, .chunk = 4096, .cuda = 1};
    assert_int_equal(plan_predict(&cu, &p, err, sizeof err), 0);
    assert_int_equal(p.work, ws7b);
    cu.chunk = 10000; /* forwards of more rows run as sub-chunks of CU_ROWS_MAX = 4,096 */
    assert_int_equal(plan_predict(&cu, &p, err, sizeof err), 0);
    assert_int_equal(p.work, ws7b);
    cu.strategy = "s2:1024"; /* s2: the whole input in one forward */
    cu.tokens = 8192;
    assert_int_equal(plan_predict(&cu, &p, err, sizeof err), 0);
    assert_true(p.rows == 8192 && p.work > ws7b);
    char *out;
    assert_int_equal(tu_run(&out, "%s plan --model random:llama2-70b --strategy sink:4:1020 --tokens 1M", tu_lcbench()), 0);
    assert_non_null(strstr(out, "KV cache"));
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model random:nope --tokens 1M", tu_lcbench()), 2);
    assert_non_null(strstr(out, "--model"));
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 1M --strategy what:1", tu_lcbench()), 2);
    assert_non_null(strstr(out, "--strategy"));
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m", tu_lcbench()), 2);
    assert_non_null(strstr(out, "--tokens"));
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 1K --device tpu", tu_lcbench()), 2);
    assert_non_null(strstr(out, "--device"));
    free(out);
}

/* ---------------------------------------------------------------- report */

static int png_ok(const char *path) {
    unsigned char h[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(h, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8);
}

static void test_report_renders(void **state) {
    (void)state;
    if (tu_run(NULL, "gnuplot -e \"set terminal pngcairo\" </dev/null")) { print_message("skipped: no gnuplot with pngcairo\n"); skip(); }
    char *db = tmp("rep.db"), dir[512], p[600];
    Synth c = BASE;
    c.collapse_from = 2048;
    synth_db(db, &c);
    snprintf(dir, sizeof dir, "%s/report", tu_tmpdir());
    char *out;
    int rc = tu_run(&out, "%s report --db %s --out %s", tu_lcbench(), db, dir);
    if (rc) fail_msg("report failed (%d):\n%s", rc, out);
    free(out);
    const char *figs[] = {"grid", "ppl_synthetic-1m", "memory_synthetic-1m", "throughput", "events"};
    for (int i = 0; i < 5; i++) {
        if (!strcmp(figs[i], "memory_synthetic-1m") || !strcmp(figs[i], "throughput")) continue; /* no samples in a synthetic run */
        snprintf(p, sizeof p, "%s/%s.png", dir, figs[i]);
        if (!png_ok(p)) fail_msg("%s is not a PNG", p);
        snprintf(p, sizeof p, "%s/%s.svg", dir, figs[i]);
        char *svg = tu_read_file(p, NULL);
        assert_non_null(strstr(svg, "<svg"));
        free(svg);
    }
    snprintf(p, sizeof p, "%s/index.md", dir);
    char *md = tu_read_file(p, NULL);
    assert_non_null(strstr(md, "Perplexity at context lengths"));
    assert_non_null(strstr(md, "| 2048 |"));            /* the collapse position */
    assert_non_null(strstr(md, "PPL per position bin"));
    assert_non_null(strstr(md, "Provenance"));
    free(md);
    snprintf(p, sizeof p, "%s/index.html", dir);
    char *html = tu_read_file(p, NULL);
    assert_non_null(strstr(html, "<table>"));
    free(html);
    /* usage errors */
    assert_int_equal(tu_run(&out, "%s report --db %s", tu_lcbench(), db), 2);
    assert_non_null(strstr(out, "--out"));
    free(out);
    assert_int_equal(tu_run(&out, "%s report --db %s/none.db --out %s", tu_lcbench(), tu_tmpdir(), dir), 2);
    assert_non_null(strstr(out, "--db"));
    free(out);
}

/* issue 16: figures a reader can tell apart: one colour per strategy instance (sink:4:1020 and
 * sink:4:508 differ), position ticks written 1K/4K (not gnuplot's 1ki), gnuplot's warnings on
 * stderr naming the figure, and HTML without Markdown backticks.  Read from the .gp scripts. */
static void test_report_figure_style(void **state) {
    (void)state;
    if (tu_run(NULL, "gnuplot -e \"set terminal pngcairo\" </dev/null")) { print_message("skipped: no gnuplot with pngcairo\n"); skip(); }
    char *db = tmp("style.db"), dir[512], p[600];
    static const char *specs[] = {"sink:4:508", "sink:4:1020", "window:508", "dense"};
    for (int i = 0; i < 4; i++) {
        Synth c = BASE;
        c.strategy = specs[i];
        c.seed = 1 + i;
        if (i == 0) synth_db(db, &c); else synth_add(db, &c);
    }
    snprintf(dir, sizeof dir, "%s/style", tu_tmpdir());
    char *out;
    int rc = tu_run(&out, "%s report --db %s --out %s", tu_lcbench(), db, dir);
    if (rc) fail_msg("report failed (%d):\n%s", rc, out);
    free(out);
    snprintf(p, sizeof p, "%s/ppl_synthetic-1m.gp", dir);
    char *gp = tu_read_file(p, NULL);
    /* the colour of each series: "lc rgb '#rrggbb'" after its title */
    char col[4][8];
    for (int i = 0; i < 4; i++) {
        char t[64];
        snprintf(t, sizeof t, "title '%s", specs[i]);
        const char *q = strstr(gp, t);
        if (!q) fail_msg("no series titled %s in %s", specs[i], p);
        const char *c = strstr(q, "rgb '#");
        if (!c) c = strstr(q, "rgb \"#");
        if (!c) fail_msg("series %s has no colour", specs[i]);
        snprintf(col[i], sizeof col[i], "%.7s", c + 5);
        for (int j = 0; j < i; j++)
            if (!strcmp(col[i], col[j])) fail_msg("%s and %s share colour %s", specs[i], specs[j], col[i]);
    }
    if (strstr(gp, "%B") || strstr(gp, "%b")) fail_msg("binary-prefix tick format (1ki) in %s", p);
    if (!strstr(gp, "'1K' 1024") || !strstr(gp, "'4K' 4096")) fail_msg("no 1K/4K tick labels in %s", p);
    free(gp);
    snprintf(p, sizeof p, "%s/index.html", dir);
    char *html = tu_read_file(p, NULL);
    if (strchr(html, '`')) fail_msg("a literal backtick in %s", p);
    assert_non_null(strstr(html, "<code>"));
    free(html);
    /* gnuplot's complaints come back as warnings naming the figure: a gnuplot that warns */
    char fake[600];
    snprintf(fake, sizeof fake, "%s/warn-gnuplot", tu_tmpdir());
    char script[700];
    snprintf(script, sizeof script, "#!/bin/sh\necho 'warning: Skipping data file with no valid points' >&2\nexec gnuplot \"$@\"\n");
    tu_write_file(fake, script, strlen(script));
    assert_int_equal(tu_run(NULL, "chmod +x %s", fake), 0);
    rc = tu_run(&out, "%s report --db %s --out %s2 --gnuplot %s", tu_lcbench(), db, dir, fake);
    if (rc || !strstr(out, "warning: gnuplot on ppl_synthetic-1m.gp") || !strstr(out, "no valid points"))
        fail_msg("gnuplot's warning not surfaced (exit %d):\n%s", rc, out);
    free(out);
}

/* issue 13 (3), (4), (15): report cells keyed by model hash, dataset and length; two models in
 * folders of one name told apart; a model whose only run was killed does not stop the report
 * and is never called fluent; an output folder with a quote in its name works. */
static void test_report_keys_and_killed(void **state) {
    (void)state;
    if (tu_run(NULL, "gnuplot -e \"set terminal pngcairo\" </dev/null")) { print_message("skipped: no gnuplot with pngcairo\n"); skip(); }
    char *db = tmp("keys.db"), dir[512], p[700], *out;
    remove(db);
    Synth a = BASE;
    a.model = "/x/final"; a.model_hash = "aaaa1111"; a.dataset = "moby-dick";
    synth_add(db, &a);                               /* run 1 */
    Synth a2 = a;
    a2.dataset = "sotu"; a2.shift = 1.0;
    synth_add(db, &a2);                              /* run 2: same model, another dataset */
    Synth a3 = a;
    a3.tokens = 4096;
    synth_add(db, &a3);                              /* run 3: same model and dataset, shorter */
    Synth b = BASE;
    b.model = "/y/final"; b.model_hash = "bbbb2222"; b.dataset = "moby-dick"; b.shift = 0.5;
    synth_add(db, &b);                               /* run 4: another model named final */
    Synth k = BASE;
    k.model = "/z/killed-1m"; k.model_hash = "cccc3333"; k.status = "interrupted"; k.oom_at = 3000; k.no_bins = 1;
    synth_add(db, &k);                               /* run 5: its model's only run, killed */
    snprintf(dir, sizeof dir, "%s/dir with a ' quote", tu_tmpdir());
    int rc = tu_run(&out, "%s report --db %s --out \"%s\"", tu_lcbench(), db, dir);
    if (rc) fail_msg("report failed (%d):\n%s", rc, out);
    free(out);
    snprintf(p, sizeof p, "%s/grid.png", dir);
    if (!png_ok(p)) fail_msg("%s is not a PNG", p);
    snprintf(p, sizeof p, "%s/index.md", dir);
    char *md = tu_read_file(p, NULL);
    assert_non_null(strstr(md, "final [aaaa1111]"));
    assert_non_null(strstr(md, "final [bbbb2222]"));
    assert_non_null(strstr(md, "| sotu |"));
    assert_non_null(strstr(md, "| moby-dick |"));
    assert_non_null(strstr(md, "16384 tokens"));     /* both lengths have a column */
    assert_non_null(strstr(md, "4096 tokens"));
    assert_non_null(strstr(md, "not judged (run interrupted)"));
    /* the killed run's row: never "fluent" */
    char *row = strstr(md, "| 5 | killed-1m |");
    assert_non_null(row);
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(row, "\n"), row);
    assert_null(strstr(line, "fluent |"));
    free(md);
    /* one PPL figure per model and dataset; the moby-dick one of model aaaa holds both lengths */
    snprintf(p, sizeof p, "%s/ppl_final__aaaa1111__moby-dick.gp", dir);   /* "final [aaaa1111] · moby-dick" */
    char *gp = tu_read_file(p, NULL);
    assert_non_null(strstr(gp, "(16384 tokens)"));
    assert_non_null(strstr(gp, "(4096 tokens)"));
    assert_null(strstr(gp, "sotu"));
    free(gp);
}

/* plan on a quantized GGUF states its bytes on file (less than the file, more than nothing), an
 * HF folder has none (null in JSON, never 0), and the JSON is built by cJSON: a model path with
 * a quote and a backslash in it parses back. */
static void test_plan_gguf_and_json(void **state) {
    (void)state;
    const char *g = FIXTURES "/gguf/lcb-2.5m-Q4_K_M.gguf";
    struct stat sb;
    assert_int_equal(stat(g, &sb), 0);
    char *out;
    assert_int_equal(tu_run(&out, "%s plan --model %s --tokens 4K --json", tu_lcbench(), g), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    cJSON *fw = cJSON_GetObjectItem(j, "file_weights"), *ft = cJSON_GetObjectItem(j, "file_types");
    assert_true(cJSON_IsNumber(fw) && fw->valuedouble > 0 && fw->valuedouble < (double)sb.st_size);
    assert_true(cJSON_IsString(ft) && strstr(ft->valuestring, "F32"));
    assert_true(cJSON_GetObjectItem(j, "weights")->valuedouble > fw->valuedouble); /* dequantized to fp32 */
    cJSON_Delete(j);
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model %s --tokens 4K", tu_lcbench(), g), 0);
    assert_non_null(strstr(out, "on file"));
    free(out);
    char odd[600];
    snprintf(odd, sizeof odd, "%s/a\"b\\c", tu_tmpdir());
    assert_int_equal(mkdir(odd, 0755), 0);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp models/lcb-0.8m/config.json '%s/'", odd);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "%s plan --model '%s' --tokens 4K --json", tu_lcbench(), odd), 0);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, odd);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "file_weights")));
    cJSON_Delete(j);
    free(out);
}

/* Review finding (issue 16): the collapse marker fired on sink runs because Moby Dick opens with an
 * easy table of contents, so the in-context octave [256, 512) was unusually low.  The rule is now
 * text-matched (reports.h): each bin against a reference run (sinks kept, cache within the context)
 * on the same steps; a lone reference run is its own reference; only a file without any reference
 * run falls back to the run's own octave.  Streams here: an opening 2 nats easier up to 2048. */
static void test_collapse_text_matched(void **state) {
    (void)state;
    assert_true(rep_is_reference_strategy("sink:4:508", 512));
    assert_true(rep_is_reference_strategy("sink:1:252", 512));
    assert_true(rep_is_reference_strategy("recompute:252", 512));
    assert_false(rep_is_reference_strategy("sink:4:1020", 512));   /* a cache past the context */
    assert_false(rep_is_reference_strategy("window:512", 512));    /* no sinks */
    assert_false(rep_is_reference_strategy("dense", 512));
    assert_false(rep_is_reference_strategy(NULL, 512));
    char *db = tmp("tm.db"), err[LCB_ERRLEN];
    Synth sk = BASE;
    sk.strategy = "sink:4:508";
    sk.easy_until = 2048;
    synth_db(db, &sk);   /* run 1: a healthy sink run over the easy opening */
    RepDb d;
    /* alone, the sink run is its own reference: never a collapse (the old rule: 2048, e^2 > 3) */
    assert_int_equal(rep_load(&d, db, "--db", REP_COLLAPSE_FACTOR, err, sizeof err), 0);
    assert_int_equal(d.runs[0].collapse_pos, -1);
    assert_true(d.runs[0].collapse.matched);
    assert_int_equal(d.runs[0].collapse.ref_run, 1);
    double own;
    assert_int_equal(rep_collapse_pos(d.runs[0].log2, d.runs[0].n_log2, 512, REP_COLLAPSE_FACTOR, &own), 2048);   /* what it was */
    rep_free(&d);
    Synth w = sk;
    w.strategy = "window:512";
    w.collapse_from = 512;
    w.collapse_by = log(2.0);   /* twice the sink's PPL past the context: below the factor 3 */
    synth_add(db, &w);          /* run 2 */
    Synth dn = sk;
    dn.strategy = "dense";
    dn.collapse_from = 1024;    /* e^2 = 7.4 x past 1024 */
    synth_add(db, &dn);         /* run 3 */
    Synth other = sk;
    other.strategy = "window:512";
    other.dataset = "another";  /* another token stream, no reference run there; the text alone changes at 2048 */
    synth_add(db, &other);      /* run 4 */
    Synth shorter = dn;
    shorter.tokens = 4096;
    shorter.token_hash = "d0d0-4096";   /* a prefix of run 1's stream: another hash, the same steps */
    synth_add(db, &shorter);    /* run 5 */
    assert_int_equal(rep_load(&d, db, "--db", REP_COLLAPSE_FACTOR, err, sizeof err), 0);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.runs[4].collapse.pos, 1024);
    assert_true(d.runs[4].collapse.matched && d.runs[4].collapse.ref_run == 1);
    assert_int_equal(d.runs[0].collapse_pos, -1);
    const RepCollapse *cw = &d.runs[1].collapse, *cd = &d.runs[2].collapse, *co = &d.runs[3].collapse;
    assert_int_equal(cw->pos, -1);
    assert_true(cw->matched && cw->ref_run == 1 && !strcmp(cw->ref_strategy, "sink:4:508"));
    assert_true(fabs(cw->worst - 2.0) < 1e-3);   /* the same steps: the text cancels exactly */
    assert_int_equal(cd->pos, 1024);
    assert_true(cd->matched && cd->ref_run == 1);
    assert_true(fabs(d.runs[2].log2[0].ppl - d.runs[0].log2[0].ppl) < 1e-9);
    assert_int_equal(co->matched, 0);            /* fallback: its own [256, 512) */
    assert_int_equal(co->pos, 2048);             /* the easy opening fools it: why references exist */
    rep_free(&d);
    /* the report says where R came from; gate and show use the same verdict */
    if (!tu_run(NULL, "gnuplot -e \"set terminal pngcairo\" </dev/null")) {
        char dir[512], p[600], *out;
        snprintf(dir, sizeof dir, "%s/tm_report", tu_tmpdir());
        assert_int_equal(tu_run(&out, "%s report --db %s --out %s", tu_lcbench(), db, dir), 0);
        free(out);
        snprintf(p, sizeof p, "%s/index.md", dir);
        char *md = tu_read_file(p, NULL);
        if (!strstr(md, "| 1 | synthetic-1m | sink:4:508 | done | 16384 |") || !strstr(md, "| itself (sink:4:508) | 1.00× at 512 | none |") ||
            !strstr(md, "| run 1 (sink:4:508) | 2.00× at ") || !strstr(md, "| run 1 (sink:4:508) | 7.39× at ") || !strstr(md, " | 1024 | lost at 1024 (collapse) |") ||
            !strstr(md, "| own [256, 512): "))
            fail_msg("collapse table of %s:\n%s", p, md);
        free(md);
    }
    char *out;
    assert_int_equal(tu_run(&out, "%s show 2 --db %s", tu_lcbench(), db), 0);
    if (!strstr(out, "collapse      none") || !strstr(out, "2.00x run 1's (sink:4:508) PPL on the same steps")) fail_msg("show 2:\n%s", out);
    free(out);
    assert_int_equal(tu_run(&out, "%s show 3 --db %s", tu_lcbench(), db), 0);
    if (!strstr(out, "collapse      at position 1024") || !strstr(out, "run 1's (sink:4:508) PPL on the same steps")) fail_msg("show 3:\n%s", out);
    free(out);
    assert_int_equal(tu_run(&out, "%s export 3 --bins --json --db %s >/dev/null && %s show 3 --json --db %s", tu_lcbench(), db, tu_lcbench(), db), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal((int)cJSON_GetObjectItem(j, "collapse_pos")->valuedouble, 1024);
    cJSON_Delete(j);
    free(out);
}

/* issue 16: throughput with its spread (per-batch rates from the samples' positions and times),
 * titles from the data, one model x 7 strategies wrapped into rows of 4 panels. */
static void test_report_throughput_titles_layout(void **state) {
    (void)state;
    char *db = tmp("tp.db"), err[LCB_ERRLEN];
    static const char *specs[] = {"dense", "window:508", "window:252", "sink:4:508", "sink:4:252", "recompute:252", "longlora:2"};
    for (int i = 0; i < 7; i++) {
        Synth c = BASE;
        c.strategy = specs[i];
        c.seed = 1 + i;
        if (i == 0) synth_db(db, &c); else synth_add(db, &c);
    }
    /* samples of run 4: positions 1000, 2000, 4000 at 1 s, 1.5 s, 3.5 s: batches of 1000, 2000 and 1000 tokens/s */
    Store st;
    assert_int_equal(store_open(&st, db, err, sizeof err), 0);
    const double pos[] = {1000, 2000, 4000}, el[] = {1.0, 1.5, 3.5};
    for (int i = 0; i < 3; i++) {
        StoreSample x = {.pos = (int64_t)pos[i], .elapsed_s = el[i], .tokens_per_s = pos[i] / el[i], .weights = 1 << 20, .kv = 1 << 16,
                         .kv_formula = 1 << 16, .work = 1 << 16, .rss = 1 << 24, .device = -1};
        assert_int_equal(store_sample(&st, 4, &x, err, sizeof err), 0);
    }
    store_close(&st);
    RepDb d;
    assert_int_equal(rep_load(&d, db, "--db", REP_COLLAPSE_FACTOR, err, sizeof err), 0);
    const RepRun *x = &d.runs[3];
    assert_int_equal(x->tps_n, 3);
    assert_true(fabs(x->tokens_per_s - 4000 / 3.5) < 1e-9);   /* tokens over seconds, not a mean of cumulative rates */
    assert_true(fabs(x->tps_lo - 1000) < 1e-9 && fabs(x->tps_hi - 2000) < 1e-9);
    assert_int_equal(d.runs[0].tps_n, 0);
    assert_true(isnan(d.runs[0].tokens_per_s));
    rep_free(&d);
    if (tu_run(NULL, "gnuplot -e \"set terminal pngcairo\" </dev/null")) { print_message("figures skipped: no gnuplot with pngcairo\n"); return; }
    char dir[512], p[600], *out;
    snprintf(dir, sizeof dir, "%s/tp_report", tu_tmpdir());
    int rc = tu_run(&out, "%s report --db %s --out %s", tu_lcbench(), db, dir);
    if (rc) fail_msg("report failed (%d):\n%s", rc, out);
    free(out);
    snprintf(p, sizeof p, "%s/data/throughput.dat", dir);
    char *dat = tu_read_file(p, NULL);
    if (!strstr(dat, " 1142.9 1000.0 2000.0")) fail_msg("no rate and range in %s:\n%s", p, dat);
    free(dat);
    snprintf(p, sizeof p, "%s/throughput.gp", dir);
    char *gp = tu_read_file(p, NULL);
    if (!strstr(gp, "set style histogram errorbars") || !strstr(gp, "using 11:12:13:xtic(1)")) fail_msg("no error bars in %s:\n%s", p, gp);
    if (!strstr(gp, "synthetic-1m on synthetic, 16,384 tokens a run")) fail_msg("title not from the data in %s", p);
    free(gp);
    snprintf(p, sizeof p, "%s/throughput.png", dir);
    assert_true(png_ok(p));
    snprintf(p, sizeof p, "%s/grid.gp", dir);
    gp = tu_read_file(p, NULL);
    if (!strstr(gp, "set multiplot layout 2,4 title 'synthetic-1m on synthetic, 16,384 tokens a run: log PPL against input position, one panel"))
        fail_msg("1 model x 7 strategies not wrapped, or the title not from the data, in %s", p);
    free(gp);
    const char *titled[] = {"ppl_synthetic-1m.gp", "memory_synthetic-1m.gp"};   /* events.gp: none without events */
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, titled[i]);
        gp = tu_read_file(p, NULL);
        if (!strstr(gp, "set title 'synthetic-1m on synthetic, 16,384 tokens a run: ")) fail_msg("title of %s not from the data", p);
        free(gp);
    }
    snprintf(p, sizeof p, "%s/index.md", dir);
    char *md = tu_read_file(p, NULL);
    if (!strstr(md, "| 1143 | 1000–2000 (3 batches) |")) fail_msg("no throughput range in %s", p);
    free(md);
}

/* the README's `make run` job: the sink-forming reference model, its default cache, then no sinks */
static void test_make_run_job(void **state) {
    (void)state;
    char *out;
    if (tu_run(&out, "make -s --no-print-directory -n SKIP_DEPS=1 run 2>&1")) fail_msg("make -n run:\n%s", out);
    if (!strstr(out, "lcbench run --model models/lcb-6m --tokens 64K --strategy sink") ||
        !strstr(out, "lcbench run --model models/lcb-6m --tokens 64K --strategy window"))
        fail_msg("make run's job:\n%s", out);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_identical_passes),
        cmocka_unit_test(test_gate_worse_fails),
        cmocka_unit_test(test_gate_noise_within_stderr_passes),
        cmocka_unit_test(test_gate_oom_collapse_missing),
        cmocka_unit_test(test_gate_cli_exit_codes),
        cmocka_unit_test(test_ci_gate_against_baseline),
        cmocka_unit_test(test_plan_matches_cpu_runs),
        cmocka_unit_test(test_plan_shapes_and_errors),
        cmocka_unit_test(test_report_renders),
        cmocka_unit_test(test_report_figure_style),
        cmocka_unit_test(test_gate_not_comparable),
        cmocka_unit_test(test_report_keys_and_killed),
        cmocka_unit_test(test_plan_gguf_and_json),
        cmocka_unit_test(test_collapse_text_matched),
        cmocka_unit_test(test_report_throughput_titles_layout),
        cmocka_unit_test(test_make_run_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
