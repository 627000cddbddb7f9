/*
 * reliability_util.h — what the reliability tests (tests/test_reliability*.c) share: a seeded
 * token file and the uninterrupted run's per-step NLLs (setup), spawning `lcbench run`, and the
 * checks made after every fault: integrity_check, committed rows kept unchanged, the run row
 * consistent with its rows, and a finished run equal to the uninterrupted one.
 * Included by one test program each (everything here is static).
 */
#ifndef LCB_RELIABILITY_UTIL_H
#define LCB_RELIABILITY_UTIL_H

#include "tests/testutil.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "engine/common.h"

#define T_IDS 3000
#define VOCAB 512 /* random:llama-tiny */
#define RU_UNUSED __attribute__((unused)) /* each program uses a subset of the helpers */
#define TOL 1e-6
#define RUN_ARGS "--model random:llama-tiny --strategy sink:4:60 --chunk 64 --batch 128 --no-progress"
#if defined(__SANITIZE_ADDRESS__)
#define SLOW 1
#else
#define SLOW 0
#endif

static char g_ids[512];       /* the token file */
static double *g_ref;         /* (T_IDS - 1) uninterrupted per-step NLLs */
static char g_ref_mean[64];   /* its mean NLL, printed to 9 decimals */

/* ---------------------------------------------------------------- helpers */

RU_UNUSED static uint64_t rng_state;
RU_UNUSED static double rng_uniform(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return ((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

RU_UNUSED static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

RU_UNUSED static sqlite3 *db_open_ro(const char *path) {
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail_msg("%s: %s", path, h ? sqlite3_errmsg(h) : "?");
    sqlite3_busy_timeout(h, 10000);
    return h;
}

/* First column of the first row as text (malloc'ed), NULL if no row; strict: an SQL error
 * fails the test, else (polling a file still being created) it answers NULL. */
RU_UNUSED static char *db_text_q(const char *path, const char *sql, int strict) {
    sqlite3 *h = db_open_ro(path);
    sqlite3_stmt *q;
    char *out = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) != SQLITE_OK) {
        if (strict) fail_msg("%s: %s: %s", path, sql, sqlite3_errmsg(h));
        sqlite3_close(h);
        return NULL;
    }
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0)) out = strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(h);
    return out;
}

RU_UNUSED static char *db_text(const char *path, const char *sql) { return db_text_q(path, sql, 1); }

/* Polling a file another process is creating: -1 until the query works. */
RU_UNUSED static int64_t db_int_poll(const char *path, const char *sql) {
    if (access(path, F_OK)) return -1;
    char *t = db_text_q(path, sql, 0);
    int64_t v = t ? strtoll(t, NULL, 10) : -1;
    free(t);
    return v;
}

RU_UNUSED static int64_t db_int(const char *path, const char *sql) {
    char *t = db_text(path, sql);
    int64_t v = t ? strtoll(t, NULL, 10) : -1;
    free(t);
    return v;
}

/* PRAGMA integrity_check must answer exactly "ok". */
RU_UNUSED static void check_integrity(const char *path, const char *when) {
    char *r = db_text(path, "PRAGMA integrity_check");
    if (!r || strcmp(r, "ok")) fail_msg("%s: integrity_check %s: %s", path, when, r ? r : "(no answer)");
    free(r);
}

/* Every committed NLL row of a file: (run, seq) -> FNV hash of (win_start, pos0, n, data). */
typedef struct { int64_t run, seq; uint64_t h; } RowSig;
typedef struct { RowSig *v; size_t n; } Rows;

RU_UNUSED static Rows db_rows(const char *path) {
    sqlite3 *h = db_open_ro(path);
    sqlite3_stmt *q;
    Rows r = {0};
    size_t cap = 0;
    if (sqlite3_prepare_v2(h, "SELECT run_id, seq, win_start, pos0, n, data FROM nll ORDER BY run_id, seq", -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s: %s", path, sqlite3_errmsg(h));
    while (sqlite3_step(q) == SQLITE_ROW) {
        uint64_t x = 1469598103934665603ull;
        int64_t f[3] = {sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 3), sqlite3_column_int64(q, 4)};
        const unsigned char *b = (const unsigned char *)f;
        for (size_t i = 0; i < sizeof f; i++) x = (x ^ b[i]) * 1099511628211ull;
        b = sqlite3_column_blob(q, 5);
        for (int i = 0; i < sqlite3_column_bytes(q, 5); i++) x = (x ^ b[i]) * 1099511628211ull;
        if (r.n == cap) r.v = realloc(r.v, (cap = cap ? 2 * cap : 256) * sizeof *r.v);
        r.v[r.n++] = (RowSig){sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1), x};
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    return r;
}

/* Every row of `before` is still in `after`, unchanged. */
RU_UNUSED static void check_rows_kept(const Rows *before, const Rows *after, const char *when) {
    size_t j = 0;
    for (size_t i = 0; i < before->n; i++) {
        while (j < after->n && (after->v[j].run < before->v[i].run || (after->v[j].run == before->v[i].run && after->v[j].seq < before->v[i].seq))) j++;
        if (j == after->n || after->v[j].run != before->v[i].run || after->v[j].seq != before->v[i].seq)
            fail_msg("%s: committed row (run %lld, seq %lld) was lost", when, (long long)before->v[i].run, (long long)before->v[i].seq);
        if (after->v[j].h != before->v[i].h)
            fail_msg("%s: committed row (run %lld, seq %lld) changed", when, (long long)before->v[i].run, (long long)before->v[i].seq);
    }
}

/* The run row agrees with its stored rows: steps_done = stored steps = cursor (stream). */
RU_UNUSED static int64_t check_row_consistent(const char *path, int64_t run, const char *when) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT steps_done FROM runs WHERE id=%lld", (long long)run);
    int64_t done = db_int(path, sql);
    snprintf(sql, sizeof sql, "SELECT cursor FROM runs WHERE id=%lld", (long long)run);
    int64_t cursor = db_int(path, sql);
    snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(n), 0) FROM nll WHERE run_id=%lld", (long long)run);
    int64_t stored = db_int(path, sql);
    /* mid-run the stream's cursor (tokens fed) equals the steps scored; at the end the last
     * token has been fed but predicts nothing: cursor T, T - 1 steps */
    if (done != stored || (cursor != stored && !(cursor == T_IDS && stored == T_IDS - 1)))
        fail_msg("%s: run %lld: steps_done %lld, cursor %lld, but %lld steps stored", when, (long long)run, (long long)done,
                 (long long)cursor, (long long)stored);
    return stored;
}

/* Per-step NLLs of a run in order, compared with the uninterrupted reference. */
RU_UNUSED static void check_matches_reference(const char *path, int64_t run, const char *what) {
    sqlite3 *h = db_open_ro(path);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(h, "SELECT pos0, n, data FROM nll WHERE run_id=? ORDER BY seq", -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s: %s", path, sqlite3_errmsg(h));
    sqlite3_bind_int64(q, 1, run);
    int64_t next = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t pos0 = sqlite3_column_int64(q, 0), n = sqlite3_column_int64(q, 1);
        if (pos0 != next) fail_msg("%s: run %lld: rows jump from step %lld to %lld", what, (long long)run, (long long)next, (long long)pos0);
        assert_int_equal(sqlite3_column_bytes(q, 2), n * 4);
        const unsigned char *b = sqlite3_column_blob(q, 2);
        for (int64_t j = 0; j < n; j++) {
            float f;
            memcpy(&f, b + 4 * j, 4);
            if (pos0 + j >= T_IDS - 1 || fabs(f - g_ref[pos0 + j]) > TOL)
                fail_msg("%s: run %lld: step %lld: %.9g, uninterrupted %.9g", what, (long long)run, (long long)(pos0 + j), f,
                         pos0 + j < T_IDS - 1 ? g_ref[pos0 + j] : NAN);
        }
        next = pos0 + n;
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    if (next != T_IDS - 1) fail_msg("%s: run %lld: %lld steps stored, %d expected", what, (long long)run, (long long)next, T_IDS - 1);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT printf('%%.9f', mean_nll) FROM runs WHERE id=%lld", (long long)run);
    char *m = db_text(path, sql);
    if (!m || strcmp(m, g_ref_mean)) fail_msg("%s: run %lld: mean NLL %s, uninterrupted %s", what, (long long)run, m ? m : "NULL", g_ref_mean);
    free(m);
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id=%lld", (long long)run);
    m = db_text(path, sql);
    assert_string_equal(m, "done");
    free(m);
}

/* `lcbench run ... --db DB EXTRA` in the background (stdout/stderr to LOG). */
RU_UNUSED static pid_t spawn_lcbench(const char *db, const char *extra, const char *log) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s run %s --db %s >%s 2>&1", tu_lcbench(), extra, db, log);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    assert_true(pid > 0);
    return pid;
}

RU_UNUSED static int wait_status(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return st;
}

/* ---------------------------------------------------------------- setup */

RU_UNUSED static int setup(void **state) {
    (void)state;
    snprintf(g_ids, sizeof g_ids, "%s/ids.bin", tu_tmpdir());
    int32_t *ids = malloc(T_IDS * sizeof *ids);
    uint64_t s = 77;
    for (int i = 0; i < T_IDS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % VOCAB);
    }
    char err[LCB_ERRLEN];
    if (dataset_write_tokens(g_ids, LCB_FMT_U16, ids, T_IDS, err, sizeof err)) { fprintf(stderr, "%s\n", err); return -1; }
    free(ids);
    /* the uninterrupted reference */
    char db[600], *out;
    snprintf(db, sizeof db, "%s/ref.db", tu_tmpdir());
    int rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, db);
    if (rc) { fprintf(stderr, "reference run exited %d: %s\n", rc, out); free(out); return -1; }
    free(out);
    sqlite3 *h = db_open_ro(db);
    sqlite3_stmt *q;
    g_ref = calloc(T_IDS, sizeof *g_ref);
    sqlite3_prepare_v2(h, "SELECT pos0, n, data FROM nll WHERE run_id=1 ORDER BY seq", -1, &q, NULL);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t pos0 = sqlite3_column_int64(q, 0), n = sqlite3_column_int64(q, 1);
        const unsigned char *b = sqlite3_column_blob(q, 2);
        for (int64_t j = 0; j < n && pos0 + j < T_IDS; j++) { float f; memcpy(&f, b + 4 * j, 4); g_ref[pos0 + j] = f; }
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    char *m = db_text(db, "SELECT printf('%.9f', mean_nll) FROM runs WHERE id=1");
    snprintf(g_ref_mean, sizeof g_ref_mean, "%s", m ? m : "?");
    free(m);
    return 0;
}

RU_UNUSED static int teardown(void **state) {
    (void)state;
    free(g_ref);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/romnt", tu_tmpdir());
    umount2(dir, MNT_DETACH); /* if a failed test left them mounted */
    snprintf(dir, sizeof dir, "%s/fullmnt", tu_tmpdir());
    umount2(dir, MNT_DETACH);
    return 0;
}

#endif
