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
 *              strategy fresh (the resume then re-feeds);
 *   background: kvsnap_save_async writes kvsnap_save's file byte for byte from a copy taken
 *              when it is called (the strategy fed on meanwhile), skips a snapshot while one is
 *              in flight, falls back to the synchronous write for a state over its memory
 *              bound, and reports a failed write; a run killed with SIGKILL during a write
 *              (slowed by LCB_KVSNAP_DELAY_MS) keeps its previous snapshot and resumes from it
 *              exactly, one stopped with SIGTERM waits for the write (no temporary file left),
 *              and a finished run leaves neither file.
 * The GPU side (sink and dense on --device cuda, probes from a GPU copy) is in test_cuda.c.
 */
#include "testutil.h"

#include <sys/stat.h>
#include <sys/wait.h>

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

/* ---------------------------------------------------------------- background writes */

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *p = tu_read_file(a, &na), *q = tu_read_file(b, &nb);
    int same = na == nb && !memcmp(p, q, na);
    free(p);
    free(q);
    return same;
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void test_async_snapshot(void **state) {
    Model m;
    char err[LCB_ERRLEN], sync_path[600], async_path[600], tmp[700];
    assert_int_equal(model_open(&m, MODEL, NULL, err, sizeof err), 0);
    snprintf(sync_path, sizeof sync_path, "%s/async_sync.kv", tu_tmpdir());
    snprintf(async_path, sizeof async_path, "%s/async.kv", tu_tmpdir());
    snprintf(tmp, sizeof tmp, "%s.tmp", async_path);
    int32_t ids[400];
    for (int i = 0; i < 400; i++) ids[i] = (i * 53 + 11) % m.cfg.vocab;
    Strategy s = begun(&m, "sink:4:60");
    assert_int_equal(strategy_skip(&s, ids, 128, 64, err, sizeof err), 0);
    if (kvsnap_save(sync_path, 7, "abc123", &s, err, sizeof err)) fail_msg("%s", err);
    /* the copy is taken at the call: the strategy fed on while the thread writes (slowed) */
    setenv("LCB_KVSNAP_DELAY_MS", "600", 1);
    KvSnapWriter *w = kvsnap_writer_new(0);
    unsetenv("LCB_KVSNAP_DELAY_MS");
    assert_non_null(w);
    int rc = kvsnap_save_async(w, async_path, 7, "abc123", &s, err, sizeof err);
    if (rc != KVSNAP_STARTED) fail_msg("save_async: %d %s", rc, rc < 0 ? err : "");
    assert_int_equal(strategy_skip(&s, ids + 128, 128, 64, err, sizeof err), 0);
    /* in flight: the next one is skipped, not queued nor waited for */
    assert_int_equal(kvsnap_save_async(w, async_path, 7, "abc123", &s, err, sizeof err), KVSNAP_BUSY);
    assert_int_equal(kvsnap_writer_wait(w, 0, err, sizeof err), 1);
    assert_false(exists(async_path)); /* the rename comes last */
    if (kvsnap_writer_wait(w, 1, err, sizeof err)) fail_msg("%s", err);
    assert_false(exists(tmp));
    if (!same_file(sync_path, async_path)) fail_msg("the background write differs from kvsnap_save's file");
    Strategy t = begun(&m, "sink:4:60");
    int64_t at = -1;
    if (kvsnap_load(async_path, 7, "abc123", &t, 400, &at, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(at, 128);
    strategy_end(&t);
    /* again, unslowed, at 256: STARTED, then joined */
    if (kvsnap_save(sync_path, 7, "abc123", &s, err, sizeof err)) fail_msg("%s", err);
    if ((rc = kvsnap_save_async(w, async_path, 7, "abc123", &s, err, sizeof err)) != KVSNAP_STARTED) fail_msg("save_async: %d %s", rc, err);
    if (kvsnap_writer_wait(w, 1, err, sizeof err)) fail_msg("%s", err);
    assert_true(same_file(sync_path, async_path));
    /* a write that fails (no such directory) is reported by the wait, once, and leaves no file */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no_such_dir/x.kv", tu_tmpdir());
    assert_int_equal(kvsnap_save_async(w, bad, 7, "abc123", &s, err, sizeof err), KVSNAP_STARTED);
    err[0] = 0;
    assert_int_equal(kvsnap_writer_wait(w, 1, err, sizeof err), -1);
    if (!strstr(err, "writing the cache snapshot")) fail_msg("the failed write said \"%s\"", err);
    assert_int_equal(kvsnap_writer_wait(w, 1, err, sizeof err), 0);
    kvsnap_writer_free(w);
    /* a state over the memory bound: written synchronously, the same file */
    assert_int_equal(strategy_skip(&s, ids + 256, 64, 64, err, sizeof err), 0);
    if (kvsnap_save(sync_path, 7, "abc123", &s, err, sizeof err)) fail_msg("%s", err);
    KvSnapWriter *small = kvsnap_writer_new(1000);
    assert_non_null(small);
    if ((rc = kvsnap_save_async(small, async_path, 7, "abc123", &s, err, sizeof err)) != KVSNAP_WRITTEN) fail_msg("save_async: %d %s", rc, err);
    assert_int_equal(kvsnap_writer_wait(small, 0, err, sizeof err), 0);
    assert_true(same_file(sync_path, async_path));
    /* ... and from then on, even for a state that would fit */
    assert_int_equal(kvsnap_save_async(small, async_path, 7, "abc123", &s, err, sizeof err), KVSNAP_WRITTEN);
    kvsnap_writer_free(small);
    strategy_end(&s);
    model_free(&m);
}

/* A run with a snapshot at every commit, each background write slowed to 400 ms, gets `sig`
 * once a snapshot is on disk and the next one is being written (DB.run1.kv.tmp); then
 * --resume (its writes slowed too, so that it ends with one in flight) must start from the
 * snapshot, store the uninterrupted run's NLLs, and leave neither file. */
static void signal_during_write(int sig) {
    const size_t T = 3000;
    char ref[600], db[600], snap[700], tmp[720], args[1600], cmd[4096], *out;
    const char *name = sig == SIGKILL ? "kill" : "term";
    snprintf(ref, sizeof ref, "%s/bgwrite_ref_%s.db", tu_tmpdir(), name);
    snprintf(db, sizeof db, "%s/bgwrite_%s.db", tu_tmpdir(), name);
    snprintf(snap, sizeof snap, "%s.run1.kv", db);
    snprintf(tmp, sizeof tmp, "%s.tmp", snap);
    snprintf(args, sizeof args, "--model %s --dataset %s --strategy dense --chunk 64 --batch 256", MODEL, write_ids(T, 37));
    int rc = tu_run(&out, "%s run %s --no-progress --db %s", tu_lcbench(), args, ref);
    if (rc) fail_msg("reference run exited %d: %s", rc, out);
    free(out);
    snprintf(cmd, sizeof cmd, "exec %s run %s --no-progress --pace-ms 100 --kv-snapshot-seconds 0 --db %s >/dev/null 2>&1", tu_lcbench(), args, db);
    setenv("LCB_KVSNAP_DELAY_MS", "400", 1);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    assert_true(pid > 0);
    int seen = 0, st;
    for (int i = 0; i < 3000 && !seen; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        seen = exists(snap) && exists(tmp);
        if (waitpid(pid, &st, WNOHANG) == pid) { pid = -1; break; }
    }
    if (pid < 0) { unsetenv("LCB_KVSNAP_DELAY_MS"); fail_msg("%s: the run ended before a background write was seen in flight", name); }
    kill(pid, sig);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!seen) { unsetenv("LCB_KVSNAP_DELAY_MS"); fail_msg("%s: no background write seen in flight in 30 s", name); }
    int64_t steps = tu_db_int(db, "SELECT steps_done FROM runs WHERE id=1");
    if (steps >= (int64_t)T - 1) fail_msg("%s: the run finished before the signal (%lld steps)", name, (long long)steps);
    if (sig == SIGKILL) {
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) fail_msg("kill: wait status %d", st);
        /* the rename is the commit: the last snapshot whole, the killed write's temporary stale */
        assert_true(exists(snap));
        assert_true(exists(tmp));
    } else {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 128 + SIGTERM) fail_msg("term: wait status %d (wanted exit %d)", st, 128 + SIGTERM);
        /* the write in flight was waited for */
        if (exists(tmp)) fail_msg("term: the interrupted run left %s", tmp);
        assert_true(exists(snap));
        char *status = tu_db_text(db, "SELECT status FROM runs WHERE id=1");
        assert_non_null(status);
        assert_string_equal(status, "interrupted");
        free(status);
    }
    rc = tu_run(&out, "%s run --resume 1 --db %s --no-progress --kv-snapshot-seconds 0", tu_lcbench(), db);
    unsetenv("LCB_KVSNAP_DELAY_MS");
    if (rc) fail_msg("%s: resume exited %d: %s", name, rc, out);
    if (!strstr(out, "resuming from the cache snapshot at position")) fail_msg("%s: the resume did not start from the snapshot: %s", name, out);
    free(out);
    if (exists(snap) || exists(tmp)) fail_msg("%s: the finished run left %s%s", name, exists(snap) ? snap : "", exists(tmp) ? tmp : "");
    char *a = tu_show_nll(db), *b = tu_show_nll(ref);
    if (strcmp(a, b)) fail_msg("%s: resumed NLLs differ from the uninterrupted run's", name);
    print_message("%s during a background write after %lld steps: resumed exactly, no file left\n", name, (long long)steps);
    free(a);
    free(b);
}

static void test_kill9_during_write(void **state) { signal_during_write(SIGKILL); }
static void test_sigterm_during_write(void **state) { signal_during_write(SIGTERM); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_refusals),
        cmocka_unit_test(test_kill9_resume_dense),
        cmocka_unit_test(test_kill9_resume_recompute),
        cmocka_unit_test(test_async_snapshot),
        cmocka_unit_test(test_kill9_during_write),
        cmocka_unit_test(test_sigterm_during_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
