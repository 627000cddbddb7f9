/*
 * test_harness.c — `lcbench run` and its parts: each protocol of SPEC §3 against a direct
 * computation with strategy_score on the same slices; the store's schema, migrations and bins;
 * end-to-end runs of build/lcbench (NLLs in the DB against strategy_score); interruption by
 * SIGINT, SIGTERM and kill -9 followed by --resume, compared with an uninterrupted run; and the
 * OOM path of --mem-limit.  And what issue 13 asked of results: a NaN run ends failed (never
 * "done" with mean 0), stored NaN reads back as missing, a run that cannot start leaves no row,
 * --resume refuses conflicting flags, and read-only commands never create or change a file.
 *
 * Models are seeded random: shapes (llama-tiny), inputs seeded random ids, so every number is
 * deterministic.  Tolerances: NLLs are stored as float32; at NLL ~ 6.2 half an ulp is 2.4e-7,
 * so stored-vs-direct checks allow 1e-6.  Interrupted+resumed vs uninterrupted runs feed the
 * same chunks in the same order (the resume re-feeds with the same chunk boundaries), so they
 * must also agree to 1e-6 (in practice bit for bit).
 */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/model.h"
#include "harness/run/run.h"
#include "reports/store/store.h"
#include "strategies/strategy.h"

#define TOL_STORED 1e-6 /* float32 storage of NLLs around 6: half-ulp 2.4e-7 */
#define MODEL "random:llama-tiny"
#define VOCAB 512

static int32_t *random_ids(size_t T, uint64_t seed) {
    int32_t *ids = malloc(T * sizeof *ids);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < T; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        ids[i] = (int32_t)(x % VOCAB);
    }
    return ids;
}

/* ---------------------------------------------------------------- protocols vs direct */

typedef struct { int64_t win_start, pos; double nll; } Step;
typedef struct { Step *v; size_t n, cap; int64_t last_cursor; int stop_after; int units; } Collect;

static int collect(void *ctx, const RunUnit *u) {
    Collect *c = ctx;
    for (int64_t j = 0; j < u->n; j++) {
        if (c->n == c->cap) c->v = realloc(c->v, (c->cap = c->cap ? 2 * c->cap : 1024) * sizeof *c->v);
        c->v[c->n++] = (Step){u->win_start, u->pos0 + j, u->nll[j]};
    }
    c->last_cursor = u->cursor;
    c->units++;
    return c->stop_after && c->units >= c->stop_after;
}

static void run_protocol(const ProtoParams *p, const char *spec, Model *m, const int32_t *ids, size_t T, int64_t cursor, Collect *c) {
    char err[LCB_ERRLEN];
    Strategy s;
    int64_t fail_pos;
    if (strategy_parse(&s, spec, err, sizeof err)) fail_msg("%s", err);
    if (protocol_run(p, &s, m, ids, T, cursor, collect, NULL, c, &fail_pos, err, sizeof err)) fail_msg("%s", err);
}

/* strategy_score over ids[b, e) with the given chunk: nll[i] for in-window step i */
static double *direct(const char *spec, Model *m, const int32_t *ids, int64_t b, int64_t e, size_t chunk) {
    char err[LCB_ERRLEN];
    Strategy s;
    double *nll = malloc((size_t)(e - b) * sizeof *nll);
    if (strategy_parse(&s, spec, err, sizeof err)) fail_msg("%s", err);
    if (strategy_score(&s, m, ids + b, (size_t)(e - b), chunk, nll, err, sizeof err)) fail_msg("%s", err);
    return nll;
}

static void check_step(const Step *st, double want, const char *what) {
    if (fabs(st->nll - want) > TOL_STORED)
        fail_msg("%s: window %lld step %lld: protocol %.9g vs direct %.9g", what, (long long)st->win_start, (long long)st->pos, st->nll, want);
}

static void test_protocol_stream(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, MODEL, NULL, err, sizeof err)) fail_msg("%s", err);
    const size_t T = 700;
    int32_t *ids = random_ids(T, 1);
    const char *specs[] = {"sink:4:60", "window:50", "dense", "recompute:40"};
    for (size_t k = 0; k < 4; k++) {
        ProtoParams p = {.proto = PROTO_STREAM, .chunk = 64};
        Collect c = {0};
        run_protocol(&p, specs[k], &m, ids, T, 0, &c);
        double *want = direct(specs[k], &m, ids, 0, (int64_t)T, 64);
        assert_int_equal(c.n, T - 1);
        for (size_t i = 0; i < c.n; i++) {
            assert_int_equal(c.v[i].pos, (int64_t)i);
            check_step(&c.v[i], want[i], specs[k]);
        }
        /* resume from a chunk boundary: the re-fed cache gives the same numbers */
        Collect r = {0};
        run_protocol(&p, specs[k], &m, ids, T, 320, &r);
        assert_int_equal(r.n, T - 1 - 320);
        for (size_t i = 0; i < r.n; i++) {
            assert_int_equal(r.v[i].pos, (int64_t)(320 + i));
            check_step(&r.v[i], want[320 + i], specs[k]);
        }
        free(want); free(c.v); free(r.v);
    }
    free(ids);
    model_free(&m);
}

static void test_protocol_stride(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, MODEL, NULL, err, sizeof err)) fail_msg("%s", err);
    const int64_t Ts[] = {700, 128, 100, 177};  /* several windows; exactly one; shorter than L; uneven tail */
    for (size_t t = 0; t < 4; t++) {
        const int64_t T = Ts[t], L = 128, S = 48;
        int32_t *ids = random_ids((size_t)T, 2 + t);
        ProtoParams p = {.proto = PROTO_STRIDE, .ctx = L, .stride = S, .chunk = 32};
        Collect c = {0};
        run_protocol(&p, "dense", &m, ids, (size_t)T, 0, &c);
        /* HF perplexity guide: every target token scored exactly once */
        assert_int_equal(c.n, (size_t)(T - 1));
        int64_t prev_end = 0;
        size_t k = 0;
        for (int64_t b = 0; b < T; b += S) {
            int64_t e = b + L < T ? b + L : T;
            double *want = direct("dense", &m, ids, b, e, 32);
            /* targets prev_end .. e-1 (the first window: 1 .. e-1) */
            for (int64_t tgt = prev_end > 1 ? prev_end : 1; tgt < e; tgt++, k++) {
                assert_true(k < c.n);
                assert_int_equal(c.v[k].win_start, b);
                assert_int_equal(c.v[k].pos, tgt - b - 1);
                check_step(&c.v[k], want[tgt - b - 1], "stride");
            }
            free(want);
            prev_end = e;
            if (e == T) break;
        }
        assert_int_equal(k, c.n);
        free(c.v);
        free(ids);
    }
    model_free(&m);
}

static void test_protocol_chunks(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, MODEL, NULL, err, sizeof err)) fail_msg("%s", err);
    const int64_t T = 530, L = 100;
    int32_t *ids = random_ids((size_t)T, 7);
    ProtoParams p = {.proto = PROTO_CHUNKS, .ctx = L, .chunk = 0};
    Collect c = {0};
    run_protocol(&p, "sink:2:20", &m, ids, (size_t)T, 0, &c);
    /* llama-perplexity: floor(T/L) chunks, steps L/2 .. L-2 of each */
    assert_int_equal(c.n, (size_t)(5 * (L - 1 - L / 2)));
    size_t k = 0;
    for (int64_t ch = 0; ch < T / L; ch++) {
        double *want = direct("sink:2:20", &m, ids, ch * L, ch * L + L, 0);
        for (int64_t i = L / 2; i < L - 1; i++, k++) {
            assert_int_equal(c.v[k].win_start, ch * L);
            assert_int_equal(c.v[k].pos, i);
            check_step(&c.v[k], want[i], "chunks");
        }
        free(want);
    }
    /* resume at chunk 3 */
    Collect r = {0};
    run_protocol(&p, "sink:2:20", &m, ids, (size_t)T, 3, &r);
    assert_int_equal(r.n, (size_t)(2 * (L - 1 - L / 2)));
    for (size_t i = 0; i < r.n; i++) assert_true(r.v[i].nll == c.v[3 * (L - 1 - L / 2) + i].nll);
    free(c.v); free(r.v); free(ids);
    model_free(&m);
}

static void test_protocol_longlora(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, MODEL, NULL, err, sizeof err)) fail_msg("%s", err);
    const int64_t T = 600, L = 128, S = 64;
    int32_t *ids = random_ids((size_t)T, 9);
    ProtoParams p = {.proto = PROTO_LONGLORA, .ctx = L, .stride = S, .chunk = 50};
    Collect c = {0};
    run_protocol(&p, "dense", &m, ids, (size_t)T, 0, &c);
    /* eval.py: all_ix = range(0, T-(L+1), S), minus the last: starts 0..448 -> 0..384 */
    int64_t n_ix = 0;
    for (int64_t i = 0; i < T - (L + 1); i += S) n_ix++;
    n_ix--;
    assert_int_equal(n_ix, 7);
    assert_int_equal(c.n, (size_t)(n_ix * (L - 1)));
    double mean_of_means = 0;
    size_t k = 0;
    for (int64_t w = 0; w < n_ix; w++) {
        double *want = direct("dense", &m, ids, w * S, w * S + L, 50), wm = 0;
        for (int64_t i = 0; i < L - 1; i++, k++) {
            assert_int_equal(c.v[k].win_start, w * S);
            check_step(&c.v[k], want[i], "longlora");
            wm += want[i];
        }
        mean_of_means += wm / (L - 1);
        free(want);
    }
    mean_of_means /= n_ix;
    double all = 0;
    for (size_t i = 0; i < c.n; i++) all += c.v[i].nll;
    assert_true(fabs(all / c.n - mean_of_means) < TOL_STORED);   /* equal windows: mean of means = mean */
    free(c.v); free(ids);
    model_free(&m);
}

static void test_protocol_plan_errors(void **state) {
    char err[LCB_ERRLEN];
    int64_t steps, units;
    ProtoParams p = {.proto = PROTO_CHUNKS, .ctx = 200};
    assert_int_equal(protocol_plan(&p, 150, &steps, &units, err, sizeof err), -1);
    assert_non_null(strstr(err, "no chunk"));
    p = (ProtoParams){.proto = PROTO_LONGLORA, .ctx = 128, .stride = 256};
    assert_int_equal(protocol_plan(&p, 5000, &steps, &units, err, sizeof err), -1);
    assert_non_null(strstr(err, "--stride"));
    p = (ProtoParams){.proto = PROTO_LONGLORA, .ctx = 128, .stride = 64};
    assert_int_equal(protocol_plan(&p, 150, &steps, &units, err, sizeof err), -1);   /* range(0, 21, 64) = [0], minus the last */
    assert_non_null(strstr(err, "no window"));
    assert_int_equal(protocol_plan(&p, 200, &steps, &units, err, sizeof err), 0);    /* range(0, 71, 64) = [0, 64] -> one window */
    assert_int_equal(units, 1);
    p = (ProtoParams){.proto = PROTO_STRIDE, .ctx = 1};
    assert_int_equal(protocol_plan(&p, 200, &steps, &units, err, sizeof err), -1);
}

/* ---------------------------------------------------------------- the store */

static void test_store_schema(void **state) {
    char path[256], err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/schema.db", tu_tmpdir());
    Store s;
    if (store_open(&s, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(store_schema_version(&s), STORE_SCHEMA_VERSION);
    char *mode = NULL;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(s.db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    mode = strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    assert_string_equal(mode, "wal");
    free(mode);
    /* a run row round-trips every column */
    StoreRun r = {0};
    store_set(&r.status, "running");
    store_set(&r.model, "random:x");
    store_set(&r.strategy, "sink:4:60");
    r.tokens = 1234; r.ctx = 7; r.wall_s = 1.5;
    if (store_run_insert(&s, &r, err, sizeof err)) fail_msg("%s", err);
    assert_true(r.id > 0);
    StoreRun g;
    if (store_run_get(&s, r.id, &g, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(g.status, "running");
    assert_string_equal(g.strategy, "sink:4:60");
    assert_null(g.tokenizer);
    assert_int_equal(g.tokens, 1234);
    assert_true(g.wall_s == 1.5);
    /* bins from two rows of NLLs */
    float a[5] = {1, 2, 3, 4, 5}, b[3] = {6, 7, 8};
    if (store_nll_insert(&s, r.id, 0, 0, 0, a, 5, err, sizeof err) || store_nll_insert(&s, r.id, 1, 0, 5, b, 3, err, sizeof err)) fail_msg("%s", err);
    double mean;
    int64_t n;
    if (store_bins_recompute(&s, r.id, 3, &mean, &n, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(n, 8);
    assert_true(fabs(mean - 4.5) < 1e-12);
    /* log2 bin [4, 8) holds positions 4..7 = NLLs 5,6,7,8; linear bin [3,6) holds 4,5,6 */
    assert_int_equal(sqlite3_prepare_v2(s.db, "SELECT count, mean_nll FROM bins WHERE run_id=? AND kind=? AND lo=?", -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_int64(q, 1, r.id); sqlite3_bind_text(q, 2, "log2", -1, SQLITE_STATIC); sqlite3_bind_int64(q, 3, 4);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), 4);
    assert_true(fabs(sqlite3_column_double(q, 1) - 6.5) < 1e-12);
    sqlite3_reset(q);
    sqlite3_bind_text(q, 2, "linear", -1, SQLITE_STATIC); sqlite3_bind_int64(q, 3, 3);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), 3);
    assert_true(fabs(sqlite3_column_double(q, 1) - 5.0) < 1e-12);
    sqlite3_finalize(q);
    store_run_free(&r);
    store_run_free(&g);
    store_close(&s);
    /* reopening is a no-op; a file from a newer lcbench is refused */
    if (store_open(&s, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(store_schema_version(&s), STORE_SCHEMA_VERSION);
    assert_int_equal(store_exec(&s, "PRAGMA user_version=99", err, sizeof err), 0);
    store_close(&s);
    assert_int_equal(store_open(&s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "newer"));
}

static void test_store_migrates_v1(void **state) {
    /* a version-1 file (before model_hashes) is upgraded in place, its runs kept */
    char path[256], err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/v1.db", tu_tmpdir());
    Store s;
    if (store_open(&s, path, err, sizeof err)) fail_msg("%s", err);
    StoreRun r = {0};
    store_set(&r.status, "done");
    if (store_run_insert(&s, &r, err, sizeof err)) fail_msg("%s", err);
    /* what a version-1 file lacks: model_hashes, and the run columns of migration 3 -> 4 */
    assert_int_equal(store_exec(&s, "DROP TABLE model_hashes; PRAGMA user_version=1", err, sizeof err), 0);
    const char *v4[] = {"ctx_steps", "ctx_mean_nll", "ctx_stderr", "past_steps", "past_mean_nll", "past_stderr",
                        "scored_bytes", "scored_words", "bits_per_byte", "word_ppl"};
    for (size_t i = 0; i < sizeof v4 / sizeof *v4; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "ALTER TABLE runs DROP COLUMN %s", v4[i]);
        assert_int_equal(store_exec(&s, sql, err, sizeof err), 0);
    }
    store_close(&s);
    store_run_free(&r);
    if (store_open(&s, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(store_schema_version(&s), STORE_SCHEMA_VERSION);
    /* the old run's new columns are NULL (unknown), never 0 */
    RunMetrics met;
    assert_int_equal(store_metrics_read(&s, 1, &met, err, sizeof err), 0);
    assert_int_equal(met.bytes, -1);
    assert_true(isnan(met.bits_per_byte) && isnan(met.word_ppl) && isnan(met.ctx_mean_nll));
    store_hash_remember(&s, "/x", 1, 2, "abc");
    char hex[65];
    assert_int_equal(store_hash_lookup(&s, "/x", 1, 2, hex), 1);
    assert_string_equal(hex, "abc");
    assert_int_equal(store_hash_lookup(&s, "/x", 1, 3, hex), 0);
    StoreRun g;
    if (store_run_get(&s, 1, &g, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(g.status, "done");
    store_run_free(&g);
    store_close(&s);
}

/* The table names of a results file, sorted, comma-separated. */
static void table_names(Store *s, char *out, size_t n) {
    sqlite3_stmt *q;
    out[0] = 0;
    assert_int_equal(sqlite3_prepare_v2(s->db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", -1, &q, NULL), SQLITE_OK);
    size_t l = 0;
    while (sqlite3_step(q) == SQLITE_ROW && l < n) l += (size_t)snprintf(out + l, n - l, "%s,", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
}

static int count_steps(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    *(int64_t *)ctx += n;
    return 0;
}

/* Files written by released versions open with this one and migrate forward, their runs intact:
 * tests/fixtures/store/lcb-v4.db (schema 4, the current one: tests/fixtures/store/README.md)
 * and the gate's baseline tests/baseline/lcb-0.8m.db (schema 2).  Each is copied, opened for
 * writing (which migrates), and must then hold every table a new file has, its run readable
 * with the numbers it was written with, and bins that its stored NLLs reproduce. */
static void test_store_released_runs(void **state) {
    const struct { const char *file; int version; int64_t steps, ctx_steps; const char *strategy; } files[] = {
        {FIXTURES "/store/lcb-v4.db", 4, 999, 512, "sink:4:252"},
        {"tests/baseline/lcb-0.8m.db", 2, -1, -1, NULL},   /* -1, NULL: whatever it holds */
    };
    char err[LCB_ERRLEN], fresh_tables[1024], path[256];
    snprintf(path, sizeof path, "%s/fresh.db", tu_tmpdir());
    Store s;
    if (store_open(&s, path, err, sizeof err)) fail_msg("%s", err);
    table_names(&s, fresh_tables, sizeof fresh_tables);
    store_close(&s);
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        size_t len;
        char *data = tu_read_file(files[f].file, &len);
        if (!data) fail_msg("%s: cannot read", files[f].file);
        snprintf(path, sizeof path, "%s/released-%zu.db", tu_tmpdir(), f);
        tu_write_file(path, data, len);
        free(data);
        /* the file is what it says: its schema version, read-only (no migration) */
        if (store_open_readonly(&s, path, err, sizeof err)) fail_msg("%s: %s", files[f].file, err);
        assert_int_equal(store_schema_version(&s), files[f].version);
        StoreRun before;
        if (store_run_get(&s, 1, &before, err, sizeof err)) fail_msg("%s: %s", files[f].file, err);
        store_close(&s);

        if (store_open(&s, path, err, sizeof err)) fail_msg("%s: %s", files[f].file, err);
        assert_int_equal(store_schema_version(&s), STORE_SCHEMA_VERSION);
        char tables[1024];
        table_names(&s, tables, sizeof tables);
        assert_string_equal(tables, fresh_tables);
        StoreRun r;
        if (store_run_get(&s, 1, &r, err, sizeof err)) fail_msg("%s: %s", files[f].file, err);
        assert_int_equal(store_status_parse(r.status), STORE_DONE);
        assert_string_equal(r.strategy, before.strategy);
        assert_string_equal(r.model_hash, before.model_hash);
        assert_string_equal(r.dataset_hash, before.dataset_hash);
        assert_int_equal(r.steps_done, before.steps_done);
        assert_true(r.mean_nll == before.mean_nll);
        if (files[f].strategy) assert_string_equal(r.strategy, files[f].strategy);
        if (files[f].steps >= 0) assert_int_equal(r.steps_done, files[f].steps);
        /* every stored step is still there, and the stored bins are what the steps give */
        int64_t n = 0;
        assert_int_equal(store_nll_foreach(&s, 1, count_steps, &n, err, sizeof err), 0);
        assert_int_equal(n, r.steps_done);
        StoreBin *all;
        size_t n_all;
        assert_int_equal(store_bins_read(&s, 1, "all", &all, &n_all, err, sizeof err), 0);
        assert_int_equal(n_all, 1);
        double mean;
        int64_t steps;
        StoreBin *b;
        size_t nb;
        assert_int_equal(store_bins_compute(&s, 1, r.bin_width, &b, &nb, &mean, &steps, err, sizeof err), 0);
        assert_int_equal(steps, r.steps_done);
        assert_true(fabs(mean - all[0].mean_nll) <= 1e-12 * fabs(mean));   /* the same sums, in the same order */
        assert_true(fabs(mean - r.mean_nll) <= 1e-12 * fabs(mean));
        free(all);
        free(b);
        /* the headline columns: as written (schema 4), or unknown (older files never had them) */
        RunMetrics met;
        assert_int_equal(store_metrics_read(&s, 1, &met, err, sizeof err), 0);
        if (files[f].version >= 4) {
            assert_int_equal(met.ctx_steps, files[f].ctx_steps);
            assert_int_equal(met.ctx_steps + met.past_steps, r.steps_done);
            assert_true(isfinite(met.bits_per_byte) && met.bytes > 0);
        } else {
            assert_int_equal(met.ctx_steps, -1);
            assert_true(isnan(met.bits_per_byte));
        }
        /* and the migrated file takes new rows */
        assert_int_equal(store_event(&s, 1, 0, "test", "after migration", err, sizeof err), 0);
        store_run_free(&r);
        store_run_free(&before);
        store_close(&s);
    }
}

/* ---------------------------------------------------------------- end to end */

static const char *ids_file(size_t T, uint64_t seed) {
    static char path[256];
    char err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/ids_%zu_%llu.bin", tu_tmpdir(), T, (unsigned long long)seed);
    int32_t *ids = random_ids(T, seed);
    if (dataset_write_tokens(path, LCB_FMT_U16, ids, T, err, sizeof err)) fail_msg("%s", err);
    free(ids);
    return path;
}

/* All stored steps of run `id`, in commit order. */
typedef struct { double *v; size_t n, cap; } Vec;
static int vec_push(void *ctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    Vec *v = ctx;
    for (int64_t j = 0; j < n; j++) {
        if (v->n == v->cap) v->v = realloc(v->v, (v->cap = v->cap ? 2 * v->cap : 1024) * sizeof *v->v);
        v->v[v->n++] = nll[j];
    }
    return 0;
}
static Vec db_nll(const char *db, int64_t id) {
    Store s;
    char err[LCB_ERRLEN];
    Vec v = {0};
    if (store_open(&s, db, err, sizeof err)) fail_msg("%s", err);
    if (store_nll_foreach(&s, id, vec_push, &v, err, sizeof err)) fail_msg("%s", err);
    store_close(&s);
    return v;
}

static char *db_text(const char *db, const char *sql) { return tu_db_text(db, sql); }

static int64_t db_int(const char *db, const char *sql) {
    char *t = db_text(db, sql);
    int64_t v = t ? strtoll(t, NULL, 10) : -1;
    free(t);
    return v;
}

/* The JSON summary `lcbench run` prints on stdout (its last line starting with '{'), parsed. */
static cJSON *run_json(const char *out) {
    const char *line = NULL;
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (*p == '{') line = p;
    if (!line) fail_msg("no JSON summary in: %s", out);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(line, "\n"), line);
    cJSON *j = cJSON_Parse(buf);
    if (!j) fail_msg("malformed JSON summary: %s", buf);
    return j;
}

static void assert_json_status(const char *out, const char *want) {
    cJSON *j = run_json(out);
    const cJSON *st = cJSON_GetObjectItem(j, "status");
    if (!cJSON_IsString(st) || strcmp(st->valuestring, want)) fail_msg("status %s expected in: %s", want, out);
    cJSON_Delete(j);
}

static void test_run_end_to_end(void **state) {
    const size_t T = 1500;
    const char *in = ids_file(T, 11);
    char db[256], *out;
    snprintf(db, sizeof db, "%s/e2e.db", tu_tmpdir());
    int rc = tu_run(&out, "%s run --model %s --dataset %s --strategy sink:4:60 --chunk 64 --batch 300 --db %s", tu_lcbench(), MODEL, in, db);
    if (rc) fail_msg("lcbench run exited %d: %s", rc, out);
    assert_json_status(out, "done");
    free(out);
    /* what the DB holds is strategy_score's numbers */
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, MODEL, NULL, err, sizeof err)) fail_msg("%s", err);
    int32_t *ids = random_ids(T, 11);
    double *want = direct("sink:4:60", &m, ids, 0, (int64_t)T, 64);
    Vec v = db_nll(db, 1);
    assert_int_equal(v.n, T - 1);
    double mean = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (fabs(v.v[i] - want[i]) > TOL_STORED) fail_msg("step %zu: db %.9g vs direct %.9g", i, v.v[i], want[i]);
        mean += v.v[i];
    }
    mean /= v.n;
    char *st = db_text(db, "SELECT status||' '||protocol||' '||bos||' '||strategy FROM runs WHERE id=1");
    assert_string_equal(st, "done stream none sink:4:60");
    free(st);
    char *mn = db_text(db, "SELECT mean_nll FROM runs WHERE id=1");
    assert_true(fabs(strtod(mn, NULL) - mean) < 1e-9);
    free(mn);
    assert_int_equal(db_int(db, "SELECT COUNT(*) FROM events WHERE run_id=1 AND kind='ctx_passed' AND pos=512"), 1);
    assert_true(db_int(db, "SELECT COUNT(*) FROM samples WHERE run_id=1") >= 5);
    assert_int_equal(db_int(db, "SELECT SUM(count) FROM bins WHERE run_id=1 AND kind='log2'"), (int64_t)(T - 1));
    assert_int_equal(db_int(db, "SELECT SUM(count) FROM bins WHERE run_id=1 AND kind='linear'"), (int64_t)(T - 1));
    assert_int_equal(db_int(db, "SELECT length(dataset_hash) FROM runs WHERE id=1"), 64);
    /* runs and show read it back; show --nll prints the stored steps */
    rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), db);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "done"));
    free(out);
    rc = tu_run(&out, "%s show 1 --db %s", tu_lcbench(), db);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "ctx_passed"));
    assert_non_null(strstr(out, "sink:4:60"));
    free(out);
    rc = tu_run(&out, "%s show 1 --db %s --nll | wc -l", tu_lcbench(), db);
    assert_int_equal(atoi(out), (int)(T - 1));
    free(out);
    /* a windowed protocol through the CLI: the counts of SPEC §3 */
    rc = tu_run(&out, "%s run --model %s --dataset %s --strategy dense --protocol chunks --ctx 200 --db %s", tu_lcbench(), MODEL, in, db);
    if (rc) fail_msg("chunks run exited %d: %s", rc, out);
    free(out);
    assert_int_equal(db_int(db, "SELECT steps_done FROM runs WHERE id=2"), 7 * 99);
    assert_int_equal(db_int(db, "SELECT ctx FROM runs WHERE id=2"), 200);
    /* usage errors name the flag */
    rc = tu_run(&out, "%s run --model %s --dataset %s --protocol nope --db %s", tu_lcbench(), MODEL, in, db);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--protocol"));
    free(out);
    rc = tu_run(&out, "%s run --resume 1 --db %s", tu_lcbench(), db);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "already complete"));
    free(out);
    free(v.v); free(want); free(ids);
    model_free(&m);
}

/* Start lcbench run in the background; returns its pid. */
static pid_t spawn_run(const char *db, const char *in, const char *extra) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s run --model %s --dataset %s --strategy sink:4:60 --chunk 64 --batch 256 --db %s %s >/dev/null 2>&1",
             tu_lcbench(), MODEL, in, db, extra);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    assert_true(pid > 0);
    return pid;
}

static void interrupt_and_resume(int sig) {
    const size_t T = 3000;
    const char *in = ids_file(T, 21);
    char db[256], ref[256], *out;
    snprintf(db, sizeof db, "%s/int_%d.db", tu_tmpdir(), sig);
    snprintf(ref, sizeof ref, "%s/ref_%d.db", tu_tmpdir(), sig);
    /* the uninterrupted reference */
    int rc = tu_run(&out, "%s run --model %s --dataset %s --strategy sink:4:60 --chunk 64 --batch 256 --db %s", tu_lcbench(), MODEL, in, ref);
    if (rc) fail_msg("reference run exited %d: %s", rc, out);
    free(out);
    /* paced so that it is mid-run when the signal lands: one commit per 256 steps, 150 ms each */
    pid_t pid = spawn_run(db, in, "--pace-ms 150");
    int64_t done = 0;
    for (int i = 0; i < 2000 && done <= 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        done = db_int(db, "SELECT steps_done FROM runs WHERE id=1");
    }
    if (done <= 0) fail_msg("no batch committed");
    kill(pid, sig);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    int64_t steps_done = db_int(db, "SELECT steps_done FROM runs WHERE id=1");
    assert_true(steps_done > 0 && steps_done < (int64_t)T - 1);
    char *status = db_text(db, "SELECT status FROM runs WHERE id=1");
    if (sig == SIGKILL) {
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        assert_string_equal(status, "running");               /* nobody closed it */
        rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), db);
        assert_non_null(strstr(out, "stale"));                /* ... and runs says so */
        free(out);
    } else {
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 128 + sig);          /* 130 / 143 */
        assert_string_equal(status, "interrupted");
        assert_int_equal(db_int(db, "SELECT COUNT(*) FROM events WHERE run_id=1 AND kind='interrupted'"), 1);
    }
    free(status);
    /* what is stored is consistent with the cursor: nothing half-written */
    Vec part = db_nll(db, 1);
    assert_int_equal((int64_t)part.n, steps_done);
    assert_int_equal(db_int(db, "SELECT cursor FROM runs WHERE id=1"), steps_done);
    free(part.v);
    rc = tu_run(&out, "%s run --resume 1 --db %s", tu_lcbench(), db);
    if (rc) fail_msg("resume exited %d: %s", rc, out);
    free(out);
    status = db_text(db, "SELECT status FROM runs WHERE id=1");
    assert_string_equal(status, "done");
    free(status);
    assert_int_equal(db_int(db, "SELECT COUNT(*) FROM events WHERE run_id=1 AND kind='resume'"), 1);
    assert_int_equal(db_int(db, "SELECT COUNT(*) FROM events WHERE run_id=1 AND kind='ctx_passed'"), 1);
    Vec a = db_nll(db, 1), b = db_nll(ref, 1);
    assert_int_equal(a.n, T - 1);
    assert_int_equal(b.n, T - 1);
    for (size_t i = 0; i < a.n; i++)
        if (fabs(a.v[i] - b.v[i]) > TOL_STORED) fail_msg("signal %d: step %zu: resumed %.9g vs uninterrupted %.9g", sig, i, a.v[i], b.v[i]);
    char *m1 = db_text(db, "SELECT printf('%.9f', mean_nll) FROM runs WHERE id=1"), *m2 = db_text(ref, "SELECT printf('%.9f', mean_nll) FROM runs WHERE id=1");
    assert_string_equal(m1, m2);
    free(m1); free(m2); free(a.v); free(b.v);
}

/* kill -9 with a snapshot at every commit: the resume starts from the snapshot (it says so),
 * gives the uninterrupted numbers and removes the file; a truncated snapshot is refused with
 * a note and the resume re-feeds from the start, with the same numbers */
static void test_resume_from_snapshot(void **state) {
    const size_t T = 3000;
    const char *in = ids_file(T, 23);
    char ref[256], *out;
    snprintf(ref, sizeof ref, "%s/snapref.db", tu_tmpdir());
    int rc = tu_run(&out, "%s run --model %s --dataset %s --strategy sink:4:60 --chunk 64 --batch 256 --db %s", tu_lcbench(), MODEL, in, ref);
    if (rc) fail_msg("reference run exited %d: %s", rc, out);
    free(out);
    Vec b = db_nll(ref, 1);
    for (int corrupt = 0; corrupt < 2; corrupt++) {
        char db[256], snap[300];
        snprintf(db, sizeof db, "%s/snap%d.db", tu_tmpdir(), corrupt);
        snprintf(snap, sizeof snap, "%s.run1.kv", db);
        pid_t pid = spawn_run(db, in, "--pace-ms 500 --kv-snapshot-seconds 0"); /* time for a slow disk's fsync */
        tu_wait_commit_and_snapshot(pid, db, snap, 512, 30, corrupt ? "truncated snapshot" : "snapshot"); /* two batches */
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        struct stat sb;
        assert_int_equal(stat(snap, &sb), 0);
        if (corrupt) assert_int_equal(truncate(snap, sb.st_size / 2), 0);
        rc = tu_run(&out, "%s run --resume 1 --db %s", tu_lcbench(), db);
        if (rc) fail_msg("resume exited %d: %s", rc, out);
        if (corrupt) assert_non_null(strstr(out, "truncated or altered"));
        else assert_non_null(strstr(out, "resuming from the cache snapshot at position"));
        free(out);
        assert_int_not_equal(stat(snap, &sb), 0); /* done: nothing left to resume */
        Vec a = db_nll(db, 1);
        assert_int_equal(a.n, b.n);
        for (size_t i = 0; i < a.n; i++)
            if (fabs(a.v[i] - b.v[i]) > TOL_STORED) fail_msg("corrupt %d: step %zu: resumed %.9g vs uninterrupted %.9g", corrupt, i, a.v[i], b.v[i]);
        free(a.v);
    }
    free(b.v);
}

static void test_interrupt_sigint(void **state) { interrupt_and_resume(SIGINT); }
static void test_interrupt_sigterm(void **state) { interrupt_and_resume(SIGTERM); }
static void test_interrupt_sigkill(void **state) { interrupt_and_resume(SIGKILL); }

static void test_resume_windowed(void **state) {
    /* a windowed protocol interrupted between windows resumes at the next window */
    const size_t T = 2000;
    const char *in = ids_file(T, 31);
    char db[256], ref[256], *out;
    snprintf(db, sizeof db, "%s/win.db", tu_tmpdir());
    snprintf(ref, sizeof ref, "%s/win_ref.db", tu_tmpdir());
    const char *args = "--strategy dense --protocol stride --ctx 256 --stride 100 --batch 100";
    int rc = tu_run(&out, "%s run --model %s --dataset %s %s --db %s", tu_lcbench(), MODEL, in, args, ref);
    if (rc) fail_msg("%s", out);
    free(out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s run --model %s --dataset %s %s --db %s --pace-ms 150 >/dev/null 2>&1", tu_lcbench(), MODEL, in, args, db);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    int64_t done = 0;
    for (int i = 0; i < 2000 && done <= 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        done = db_int(db, "SELECT steps_done FROM runs WHERE id=1");
    }
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(WEXITSTATUS(st), 143);
    rc = tu_run(&out, "%s run --resume 1 --db %s", tu_lcbench(), db);
    if (rc) fail_msg("%s", out);
    free(out);
    Vec a = db_nll(db, 1), b = db_nll(ref, 1);
    assert_int_equal(a.n, T - 1);
    assert_int_equal(b.n, a.n);
    for (size_t i = 0; i < a.n; i++) assert_true(fabs(a.v[i] - b.v[i]) <= TOL_STORED);
    free(a.v); free(b.v);
}

static void test_mem_limit_oom(void **state) {
    /* dense KV grows with the stream: a cap between the start and the end ends the run as oom */
    const size_t T = 4000;
    const char *in = ids_file(T, 41);
    char db[256], *out;
    snprintf(db, sizeof db, "%s/oom.db", tu_tmpdir());
    int rc = tu_run(&out, "%s run --model %s --dataset %s --strategy dense --chunk 64 --batch 256 --mem-limit 3M --db %s", tu_lcbench(), MODEL, in, db);
    assert_int_equal(rc, 1);
    assert_json_status(out, "oom");
    free(out);
    char *status = db_text(db, "SELECT status FROM runs WHERE id=1");
    assert_string_equal(status, "oom");
    free(status);
    int64_t pos = db_int(db, "SELECT pos FROM events WHERE run_id=1 AND kind='oom'");
    int64_t steps = db_int(db, "SELECT steps_done FROM runs WHERE id=1");
    assert_true(pos > 0 && pos < (int64_t)T);
    assert_int_equal(steps, pos);           /* every step before the failing chunk was kept */
    Vec v = db_nll(db, 1);
    assert_int_equal((int64_t)v.n, steps);
    free(v.v);
    char *detail = db_text(db, "SELECT detail FROM events WHERE run_id=1 AND kind='oom'");
    assert_non_null(strstr(detail, "out of memory"));
    assert_non_null(strstr(detail, "--mem-limit"));
    free(detail);
    assert_true(db_int(db, "SELECT count FROM bins WHERE run_id=1 AND kind='all'") == steps);
}


/* ---------------------------------------------------------------- results that cannot be trusted */

/* A copy of tests/fixtures/llama_gqa that the loader accepts but whose NLLs turn NaN part-way
 * through a stream: a linear RoPE factor of 1e-306 (positions / factor overflow double to inf
 * past position ~180 / head frequency, and cos(inf) is NaN).  Weights that are NaN or Inf, and
 * rms_norm_eps <= 0, are refused by the loader itself. */
static const char *nan_checkpoint(void) {
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/nan_model", tu_tmpdir());
    mkdir(dir, 0755);
    char p[400];
    size_t n;
    char *b = tu_read_file(FIXTURES "/llama_gqa/model.safetensors", &n);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    tu_write_file(p, b, n);
    free(b);
    cJSON *cfg = tu_read_json(FIXTURES "/llama_gqa/config.json");
    cJSON_DeleteItemFromObject(cfg, "rope_parameters");
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddStringToObject(rs, "type", "linear");
    cJSON_AddNumberToObject(rs, "factor", 1e-306);
    cJSON_AddItemToObject(cfg, "rope_scaling", rs);
    char *txt = cJSON_Print(cfg);
    snprintf(p, sizeof p, "%s/config.json", dir);
    tu_write_file(p, txt, strlen(txt));
    free(txt);
    cJSON_Delete(cfg);
    return dir;
}

/* issue 13 (2): NaN NLLs end the run as failed, with an error event at the first bad position,
 * keep the steps before it, print null (never 0) in the JSON summary, and nothing reads the
 * run back as a perfect model. */
static void test_nan_run_fails(void **state) {
    const char *model = nan_checkpoint();
    char ids[300], db[300], *out;
    snprintf(ids, sizeof ids, "%s/nan.ids", tu_tmpdir());
    snprintf(db, sizeof db, "%s/nan.db", tu_tmpdir());
    remove(db);
    int32_t *v = random_ids(400, 5);
    FILE *f = fopen(ids, "w");
    for (int i = 0; i < 400; i++) fprintf(f, "%d ", v[i]);
    fclose(f);
    free(v);
    /* where the NLLs turn non-finite, from lcbench score (which prints them as they are) */
    int rc = tu_run(&out, "%s score --model %s --ids %s --strategy dense --chunk 16", tu_lcbench(), model, ids);   /* the run's chunks */
    int bad_at = -1, k = 0;
    const char *pm = strstr(out, "position ");
    if (rc && pm) bad_at = atoi(pm + 9);   /* a score that refuses non-finite NLLs names the step */
    else for (char *t = strtok(out, "\n"); t && bad_at < 0; t = strtok(NULL, "\n"), k++)
        if (!isfinite(strtod(t, NULL))) bad_at = k;
    free(out);
    if (bad_at < 32 || bad_at > 390) fail_msg("the NaN checkpoint turns non-finite at step %d (a step in [32, 390] was expected)", bad_at);
    rc = tu_run(&out, "%s run --model %s --dataset %s --strategy dense --chunk 16 --batch 16 --no-progress --db %s", tu_lcbench(), model, ids, db);
    if (rc != 1) fail_msg("a NaN run exited %d (1 expected): %s", rc, out);
    cJSON *j = run_json(out);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "failed");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "mean_nll")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "ppl")));
    cJSON_Delete(j);
    char want[64];
    snprintf(want, sizeof want, "position %d", bad_at);
    assert_non_null(strstr(out, want));
    free(out);
    char *st = db_text(db, "SELECT status FROM runs WHERE id=1");
    assert_string_equal(st, "failed");
    free(st);
    assert_int_equal(db_int(db, "SELECT pos FROM events WHERE run_id=1 AND kind='error'"), bad_at);
    char *det = db_text(db, "SELECT detail FROM events WHERE run_id=1 AND kind='error'");
    assert_non_null(strstr(det, "non-finite"));
    free(det);
    /* the chunks before the bad one are kept (16-token units), and all finite */
    assert_int_equal(db_int(db, "SELECT steps_done FROM runs WHERE id=1"), bad_at / 16 * 16);
    Vec nl = db_nll(db, 1);
    assert_int_equal(nl.n, (size_t)(bad_at / 16 * 16));
    for (size_t i = 0; i < nl.n; i++) assert_true(isfinite(nl.v[i]));
    free(nl.v);
    rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), db);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "failed"));
    free(out);
}

/* issue 13 (2), the reading side: a NaN stored by an older lcbench (SQLite keeps it as NULL in
 * REAL columns; a BLOB keeps the bits) is missing, never 0. */
static void test_nan_stored_is_missing(void **state) {
    char db[300], err[LCB_ERRLEN];
    snprintf(db, sizeof db, "%s/nanstore.db", tu_tmpdir());
    remove(db);
    Store s;
    if (store_open(&s, db, err, sizeof err)) fail_msg("%s", err);
    StoreRun r;
    memset(&r, 0, sizeof r);
    r.status = "done";
    r.mean_nll = r.ppl = NAN;
    assert_int_equal(store_run_insert(&s, &r, err, sizeof err), 0);
    StoreRun back;
    assert_int_equal(store_run_get(&s, r.id, &back, err, sizeof err), 0);
    assert_true(isnan(back.mean_nll) && isnan(back.ppl));   /* was 0: a perfect model */
    store_run_free(&back);
    float v[4] = {1, 2, NAN, 3};
    assert_int_equal(store_nll_insert(&s, r.id, 0, 0, 0, v, 4, err, sizeof err), 0);
    double mean;
    int64_t steps;
    assert_int_not_equal(store_bins_recompute(&s, r.id, 1024, &mean, &steps, err, sizeof err), 0);
    assert_non_null(strstr(err, "position 2"));
    store_close(&s);
    char *out;
    int rc = tu_run(&out, "%s show 1 --db %s", tu_lcbench(), db);
    assert_null(strstr(out, "mean NLL 0.0"));
    assert_null(strstr(out, "PPL 0.0"));
    (void)rc;
    free(out);
}

/* issue 13 (8): a run that could never start records no run row. */
static void test_run_refused_before_row(void **state) {
    const char *in = ids_file(300, 3);
    char db[300], *out;
    snprintf(db, sizeof db, "%s/refused.db", tu_tmpdir());
    remove(db);
    int rc = tu_run(&out, "%s run --model %s --dataset %s --strategy longlora --no-progress --db %s", tu_lcbench(), MODEL, in, db);
    if (rc != 2 || !strstr(out, "longlora")) fail_msg("longlora on an unscaled model: exit %d: %s", rc, out);
    free(out);
    char err[LCB_ERRLEN];
    int have_gpu = cuda_available(err, sizeof err) == 0;
    if (!have_gpu) {
        rc = tu_run(&out, "%s run --model %s --dataset %s --device cuda --no-progress --db %s", tu_lcbench(), MODEL, in, db);
        if (rc != 1 || !strstr(out, "cuda")) fail_msg("--device cuda without a GPU: exit %d: %s", rc, out);
        free(out);
    } else print_message("a GPU is here: the --device cuda case is not tried\n");
    /* a truncated checkpoint fails at load, before the row */
    char dir[300], p[400];
    snprintf(dir, sizeof dir, "%s/truncated_model", tu_tmpdir());
    mkdir(dir, 0755);
    size_t n;
    char *b = tu_read_file(FIXTURES "/llama_gqa/config.json", &n);
    snprintf(p, sizeof p, "%s/config.json", dir);
    tu_write_file(p, b, n);
    free(b);
    b = tu_read_file(FIXTURES "/llama_gqa/model.safetensors", &n);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    tu_write_file(p, b, n / 2);
    free(b);
    rc = tu_run(&out, "%s run --model %s --dataset %s --no-progress --db %s", tu_lcbench(), dir, in, db);
    if (rc != 1) fail_msg("a truncated checkpoint: exit %d: %s", rc, out);
    free(out);
    assert_true(db_int(db, "SELECT COUNT(*) FROM runs") <= 0);   /* -1: no file, 0: no row */
}

/* issue 13 (9): --resume refuses flags that contradict the stored run, naming each. */
static void test_resume_conflicting_flags(void **state) {
    const char *in = ids_file(600, 9);
    char db[300], *out;
    snprintf(db, sizeof db, "%s/conflict.db", tu_tmpdir());
    remove(db);
    int rc = tu_run(&out, "%s run --model %s --dataset %s --strategy sink:4:60 --chunk 64 --no-progress --db %s", tu_lcbench(), MODEL, in, db);
    if (rc) fail_msg("run: %d: %s", rc, out);
    free(out);
    /* make it resumable: as if it had been interrupted after its first batch */
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "UPDATE runs SET status='interrupted'", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    int64_t ev0 = db_int(db, "SELECT COUNT(*) FROM events");
    rc = tu_run(&out, "%s run --resume 1 --strategy window:8 --tokens 500 --db %s --no-progress", tu_lcbench(), db);
    if (rc != 2 || !strstr(out, "--strategy window:8") || !strstr(out, "--tokens 500") || !strstr(out, "sink:4:60"))
        fail_msg("conflicting --resume: exit %d: %s", rc, out);
    free(out);
    char *st = db_text(db, "SELECT status FROM runs WHERE id=1");
    assert_string_equal(st, "interrupted");   /* nothing written */
    free(st);
    assert_int_equal(db_int(db, "SELECT COUNT(*) FROM events"), ev0);
    /* the same values are no conflict */
    rc = tu_run(&out, "%s run --resume 1 --strategy sink:4:60 --chunk 64 --db %s --no-progress", tu_lcbench(), db);
    if (rc) fail_msg("--resume with the stored values: exit %d: %s", rc, out);
    free(out);
}

/* issue 13 (7): the read-only commands never create or change a file. */
static void test_readonly_commands(void **state) {
    const char *base = "tests/baseline/lcb-0.8m.db";
    char *out, *before, *after;
    tu_run(&before, "sha256sum %s", base);
    int rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), base);
    if (rc || !strstr(out, "done")) fail_msg("runs on the baseline: %d: %s", rc, out);
    free(out);
    rc = tu_run(&out, "%s show 1 --db %s", tu_lcbench(), base);
    if (rc) fail_msg("show on the baseline: %d: %s", rc, out);
    free(out);
    tu_run(&after, "sha256sum %s", base);
    assert_string_equal(before, after);
    free(before); free(after);
    struct stat sb;
    assert_int_not_equal(stat("tests/baseline/lcb-0.8m.db-wal", &sb), 0);
    assert_int_not_equal(stat("tests/baseline/lcb-0.8m.db-shm", &sb), 0);
    /* a mistyped --db is refused (exit 2, naming it) and not created */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no-such.db", tu_tmpdir());
    const char *cmds[] = {"runs --db %s", "show 1 --db %s", "run --resume 1 --db %s", "report --out %s.report --db %s", "gate --baseline %s --db %s"};
    for (int i = 0; i < 5; i++) {
        char args[900];
        snprintf(args, sizeof args, cmds[i], missing, missing);
        rc = tu_run(&out, "%s %s", tu_lcbench(), args);
        if (rc != 2 || !strstr(out, missing)) fail_msg("lcbench %s: exit %d (2 expected): %s", args, rc, out);
        free(out);
        assert_int_not_equal(stat(missing, &sb), 0);
    }
}

int main(void) {
    /* tiny models run fastest on one thread, and a busy machine does not make OpenMP spin
     * (set before the first parallel region; inherited by the lcbench processes spawned) */
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_stream),
        cmocka_unit_test(test_protocol_stride),
        cmocka_unit_test(test_protocol_chunks),
        cmocka_unit_test(test_protocol_longlora),
        cmocka_unit_test(test_protocol_plan_errors),
        cmocka_unit_test(test_store_schema),
        cmocka_unit_test(test_store_migrates_v1),
        cmocka_unit_test(test_store_released_runs),
        cmocka_unit_test(test_run_end_to_end),
        cmocka_unit_test(test_interrupt_sigint),
        cmocka_unit_test(test_interrupt_sigterm),
        cmocka_unit_test(test_interrupt_sigkill),
        cmocka_unit_test(test_resume_from_snapshot),
        cmocka_unit_test(test_resume_windowed),
        cmocka_unit_test(test_mem_limit_oom),
        cmocka_unit_test(test_nan_run_fails),
        cmocka_unit_test(test_nan_stored_is_missing),
        cmocka_unit_test(test_run_refused_before_row),
        cmocka_unit_test(test_resume_conflicting_flags),
        cmocka_unit_test(test_readonly_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
