/*
 * test_resume.c — resuming from strategy-state snapshots (harness/run/kvsnap.h, issue 15).
 *
 *   kill -9:   `lcbench run` under dense and recompute (whose states are not a window cache:
 *              dense grows, recompute keeps tokens) killed mid-stream with a snapshot at every
 *              commit; --resume says it starts from the snapshot and stores the per-step NLLs
 *              of an uninterrupted run bit for bit (`show --nll` prints each float with 9
 *              significant digits, which name it exactly), and removes the file when done;
 *   refusals:  a snapshot of another run, model (hash), policy, cache shape, a position past
 *              the cursor, a truncated, extended or altered file and the version-1 format of
 *              older lcbench are each refused with a reason that names it, and leave the
 *              strategy fresh (the resume then re-feeds).
 * The GPU side (sink and dense on --device cuda, probes from a GPU copy) is in test_cuda.c.
 */
#include "testutil.h"

#include <sys/stat.h>

#include "engine/common.h"
#include "engine/model.h"
#include "harness/run/kvsnap.h"
#include "strategies/strategy.h"

#define MODEL "random:llama-tiny"

static const char *write_ids(size_t T, uint64_t seed) {
    static char path[600];
    snprintf(path, sizeof path, "%s/resume_ids_%llu.ids", tu_tmpdir(), (unsigned long long)seed);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < T; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        fprintf(f, "%u ", (unsigned)(x % 250) + 3);
    }
    fclose(f);
    return path;
}

/* ---------------------------------------------------------------- kill -9, then --resume */

/* one commit per 256 steps: killed after two */
static void kill9_resume(const char *spec) {
    const size_t T = 3000;
    char ref[600], db[600], args[1600];
    snprintf(ref, sizeof ref, "%s/resume_ref_%.*s.db", tu_tmpdir(), (int)strcspn(spec, ":"), spec);
    snprintf(db, sizeof db, "%s/resume_%.*s.db", tu_tmpdir(), (int)strcspn(spec, ":"), spec);
    snprintf(args, sizeof args, "--model %s --dataset %s --strategy %s --chunk 64 --batch 256", MODEL, write_ids(T, 31), spec);
    tu_kill9_resume(&(TuKill9){.label = spec, .args = args, .ref_db = ref, .db = db, .tokens = T, .kill_after = 512, .wait_s = 30});
}

static void test_kill9_resume_dense(void **state) { kill9_resume("dense"); }
static void test_kill9_resume_recompute(void **state) { kill9_resume("recompute:100"); }

/* ---------------------------------------------------------------- refusals */

static Strategy begun(Model *m, const char *spec) {
    Strategy s;
    char err[LCB_ERRLEN];
    if (strategy_parse(&s, spec, err, sizeof err) || strategy_begin(&s, m, err, sizeof err)) fail_msg("%s: %s", spec, err);
    return s;
}

static void expect_refused(const char *path, int64_t run, const char *hash, Model *m, const char *spec, int64_t cursor, const char *needle) {
    char err[LCB_ERRLEN];
    Strategy s = begun(m, spec);
    int64_t at = -1;
    int rc = kvsnap_load(path, run, hash, &s, cursor, &at, err, sizeof err);
    if (rc == 0 || !strstr(err, needle)) fail_msg("%s run %lld %s: rc %d, \"%s\" (wanted \"%s\")", spec, (long long)run, hash, rc, err, needle);
    /* fresh again: it scores as a new strategy */
    assert_int_equal(s.n_fed, 0);
    assert_int_equal(s.kv.n_past, 0);
    int32_t ids[3] = {5, 6, 7};
    float *lg = malloc((size_t)3 * m->cfg.vocab * sizeof *lg);
    assert_non_null(lg);
    if (strategy_feed(&s, ids, 3, lg, err, sizeof err)) fail_msg("%s after a refused snapshot: %s", spec, err);
    free(lg);
    strategy_end(&s);
}

static void copy_file(const char *from, const char *to, long cut, long flip) {
    size_t n;
    char *p = tu_read_file(from, &n);
    assert_non_null(p);
    if (flip >= 0) p[n - (size_t)flip] ^= 0x10;
    tu_write_file(to, p, cut < 0 ? n : (size_t)cut);
    free(p);
}

static void test_snapshot_refusals(void **state) {
    Model m, other;
    char err[LCB_ERRLEN], path[600], bad[600];
    assert_int_equal(model_open(&m, MODEL, NULL, err, sizeof err), 0);
    assert_int_equal(model_open(&other, "random:llama-1m", NULL, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/refuse.kv", tu_tmpdir());
    snprintf(bad, sizeof bad, "%s/refuse_bad.kv", tu_tmpdir());
    int32_t ids[200];
    for (int i = 0; i < 200; i++) ids[i] = (i * 37 + 3) % m.cfg.vocab;
    Strategy s = begun(&m, "sink:4:60");
    assert_int_equal(strategy_skip(&s, ids, 128, 64, err, sizeof err), 0);
    if (kvsnap_save(path, 7, "abc123", &s, err, sizeof err)) fail_msg("%s", err);
    strategy_end(&s);
    /* the right one loads, at its position */
    Strategy t = begun(&m, "sink:4:60");
    int64_t at = -1;
    if (kvsnap_load(path, 7, "abc123", &t, 200, &at, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(at, 128);
    assert_int_equal(t.n_fed, 128);
    strategy_end(&t);
    expect_refused(path, 8, "abc123", &m, "sink:4:60", 200, "of run 7, not 8");
    expect_refused(path, 7, "abc124", &m, "sink:4:60", 200, "another model");
    expect_refused(path, 7, "abc123", &m, "sink:4:61", 200, "--strategy sink:4:60, the run's is sink:4:61");
    expect_refused(path, 7, "abc123", &m, "sink:4:60", 100, "past the run's cursor 100");
    /* the same spec and hash on a model of another shape: the cache's own head says so */
    expect_refused(path, 7, "abc123", &other, "sink:4:60", 200, "the saved KV cache is cpu fp32");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    copy_file(path, bad, (long)sb.st_size / 2, -1);
    expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "truncated or altered");
    copy_file(path, bad, 100, -1);
    expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "shorter than its header");
    copy_file(path, bad, -1, 200); /* a byte of the state's last rows */
    expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "checksum");
    {
        size_t n;
        char *p = tu_read_file(path, &n);
        char *q = malloc(n + 1);
        memcpy(q, p, n);
        q[n] = 'x';
        tu_write_file(bad, q, n + 1);
        free(p);
        free(q);
    }
    expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "truncated or altered");
    /* version 1 (lcbench before state_save): magic, u32 1, then a raw cache; never read as one */
    {
        char old[4096];
        memset(old, 0x41, sizeof old);
        memcpy(old, "LCBKVSN1", 8);
        uint32_t v = 1, pad = 0;
        memcpy(old + 8, &v, 4);
        memcpy(old + 12, &pad, 4);
        tu_write_file(bad, old, sizeof old);
        expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "format version 1");
        tu_write_file(bad, old, 64);
        expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "format version 1");
    }
    tu_write_file(bad, "not a snapshot at all, but long enough to hold a header of two hundred and forty bytes ......"
                       "..................................................................................................................."
                       "....................................", 240);
    expect_refused(bad, 7, "abc123", &m, "sink:4:60", 200, "not a cache snapshot");
    /* s2 (whole input) has no state to snapshot */
    Strategy w;
    assert_int_equal(strategy_parse(&w, "s2:16", err, sizeof err), 0);
    w.m = &m;
    assert_false(kvsnap_supported(&w));
    model_free(&m);
    model_free(&other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_refusals),
        cmocka_unit_test(test_kill9_resume_dense),
        cmocka_unit_test(test_kill9_resume_recompute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
