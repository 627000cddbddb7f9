/*
 * testutil.h — shared helpers of the cmocka test programs: where fixtures live, reading files
 * and JSON, running the lcbench binary, querying results files, the kill -9 / resume cycle of
 * test_resume.c and test_cuda_state.c, and the CUDA tests' setup.  Tests run from the
 * repository root (make test does).
 * Fixtures: tests/fixtures/, copied from the project's shared fixture set (see
 * tests/fixtures/README.md for provenance).
 */
#ifndef LCB_TESTUTIL_H
#define LCB_TESTUTIL_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <cJSON.h>
#include <sqlite3.h>

#include "engine/backend.h"
#include "engine/common.h"

#define FIXTURES "tests/fixtures"

/* The model fixtures (tests/fixtures/README.md) that carry a reference.json. */
static const char *const tu_fixtures[] __attribute__((unused)) = {"llama_gqa", "llama_bf16", "llama_pi4", "mistral_swa", "gptneox_partial_rotary", "falcon_mqa"};

/* reference.json's input_ids, malloc'ed. */
static inline int32_t *tu_json_ids(cJSON *ref, size_t *T) {
    cJSON *a = cJSON_GetObjectItem(ref, "input_ids");
    assert_non_null(a);
    *T = cJSON_GetArraySize(a);
    int32_t *ids = malloc(*T * sizeof *ids);
    size_t i = 0;
    for (cJSON *x = a->child; x; x = x->next) ids[i++] = x->valueint;
    return ids;
}

/* Whole file into a NUL-terminated malloc'ed buffer; fails the test if unreadable. */
static inline char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static inline cJSON *tu_read_json(const char *path) {
    char *s = tu_read_file(path, NULL);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j) fail_msg("malformed JSON in %s", path);
    return j;
}

static inline void tu_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A fresh scratch directory under /tmp for this test program. */
static inline const char *tu_tmpdir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/lcbtest.XXXXXX");
        if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    }
    return dir;
}

/* Runs a shell command, captures stdout+stderr into *out (malloc'ed), returns exit status. */
static inline int tu_run(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) fail_msg("popen failed: %s", cmd);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf; else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static inline const char *tu_lcbench(void) {
    const char *b = getenv("LCBENCH");
    return b ? b : "build/lcbench";
}

/* The first column of the first row of a query on a results file opened read-only, as text
 * (malloc'd; NULL for none, a NULL value or an error). */
static inline char *tu_db_text(const char *db, const char *sql) {
    sqlite3 *h;
    sqlite3_stmt *q;
    char *out = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) { sqlite3_close(h); return NULL; }
    sqlite3_busy_timeout(h, 5000);
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
        out = strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(h);
    return out;
}

/* The same as an integer, or -1 (the file or the query failed, or no row). */
static inline int64_t tu_db_int(const char *db, const char *sql) {
    sqlite3 *h;
    sqlite3_stmt *q;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) { sqlite3_close(h); return -1; }
    sqlite3_busy_timeout(h, 5000);
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
    return v;
}

/* `lcbench show 1 --nll` of a results file: one line a step (9 significant digits, which name
 * each stored float exactly), malloc'd; fails the test if show fails. */
static inline char *tu_show_nll(const char *db) {
    char *out;
    if (tu_run(&out, "%s show 1 --nll --db %s", tu_lcbench(), db)) fail_msg("show --nll --db %s: %s", db, out);
    return out;
}

/* Wait (10 ms polls, at most wait_s seconds) until the run `pid` writing results file DB has
 * committed at least `steps` steps of run 1 and its cache snapshot SNAP is on disk, while it is
 * still running: the snapshot is written in the background (fsync, then rename) and one due
 * while the last is in flight is skipped, so commits alone do not mean a file (a slow disk,
 * LCB_KVSNAP_DELAY_MS).  Fails naming `label` if the run ends first or time runs out. */
static inline void tu_wait_commit_and_snapshot(pid_t pid, const char *db, const char *snap, int64_t steps, int wait_s,
                                               const char *label) {
    int64_t done = 0;
    int have = 0, st;
    struct stat sb;
    for (int i = 0; i < wait_s * 100 && !(done >= steps && have); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        done = tu_db_int(db, "SELECT steps_done FROM runs WHERE id=1");
        have = stat(snap, &sb) == 0;
        if (waitpid(pid, &st, WNOHANG) == pid)
            fail_msg("%s: the run ended (wait status %d) before it could be killed: %lld steps committed, snapshot %s", label, st,
                     (long long)done, have ? "there" : "absent");
    }
    if (done < steps) { kill(pid, SIGKILL); fail_msg("%s: fewer than %lld steps committed in %d s", label, (long long)steps, wait_s); }
    if (!have) { kill(pid, SIGKILL); fail_msg("%s: no cache snapshot %s in %d s (%lld steps committed)", label, snap, wait_s, (long long)done); }
}

/* One kill -9 / --resume / compare cycle (test_resume.c on the CPU, test_cuda_state.c with
 * --device cuda).  `lcbench run ARGS --no-progress --db REF_DB` runs uninterrupted; then the same
 * run, paced (--pace-ms 500: a pause after each commit, time for a slow disk's fsync of the
 * first snapshot before the run ends) with a snapshot at every commit
 * (--kv-snapshot-seconds 0), into DB, is killed with SIGKILL once KILL_AFTER steps are
 * committed and a snapshot is on disk, before it ends; `run --resume 1` must say that it starts from the snapshot
 * (DB.run1.kv), remove the file when done, and store the uninterrupted run's TOKENS - 1 NLLs
 * byte for byte (tu_show_nll).  Both files must be new (the run is id 1). */
typedef struct {
    const char *label;  /* names the case in messages: "dense", "cuda sink:4:300" */
    const char *args;   /* run's arguments but --db, --no-progress and the pacing */
    const char *ref_db; /* the uninterrupted run's results file */
    const char *db;     /* the killed and resumed run's */
    size_t tokens;      /* the dataset's length in tokens */
    int64_t kill_after; /* kill once this many steps are committed ... */
    int wait_s;         /* ... which must be within this many seconds */
} TuKill9;

static inline void tu_kill9_resume(const TuKill9 *k) {
    char snap[1100], cmd[4096], *out;
    snprintf(snap, sizeof snap, "%s.run1.kv", k->db);
    int rc = tu_run(&out, "%s run %s --no-progress --db %s", tu_lcbench(), k->args, k->ref_db);
    if (rc) fail_msg("%s: reference run exited %d: %s", k->label, rc, out);
    free(out);
    snprintf(cmd, sizeof cmd, "exec %s run %s --no-progress --pace-ms 500 --kv-snapshot-seconds 0 --db %s >/dev/null 2>&1", tu_lcbench(),
             k->args, k->db);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    assert_true(pid > 0);
    tu_wait_commit_and_snapshot(pid, k->db, snap, k->kill_after, k->wait_s, k->label);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    int64_t steps = tu_db_int(k->db, "SELECT steps_done FROM runs WHERE id=1");
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL || steps >= (int64_t)k->tokens - 1)
        fail_msg("%s: the run finished before the kill (wait status %d, %lld steps)", k->label, st, (long long)steps);
    struct stat sb;
    if (stat(snap, &sb) != 0) fail_msg("%s: no snapshot %s after %lld steps", k->label, snap, (long long)steps);
    long long snap_bytes = (long long)sb.st_size;
    rc = tu_run(&out, "%s run --resume 1 --db %s --no-progress", tu_lcbench(), k->db);
    if (rc) fail_msg("%s: resume exited %d: %s", k->label, rc, out);
    if (!strstr(out, "resuming from the cache snapshot at position")) fail_msg("%s: the resume did not start from the snapshot: %s", k->label, out);
    free(out);
    if (stat(snap, &sb) == 0) fail_msg("%s: the snapshot outlived the finished run", k->label);
    char *a = tu_show_nll(k->db), *b = tu_show_nll(k->ref_db);
    size_t lines = 0;
    for (char *p = b; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, k->tokens - 1);
    if (strcmp(a, b)) {
        size_t i = 0;
        while (a[i] && a[i] == b[i]) i++;
        fail_msg("%s: resumed NLLs differ from the uninterrupted run's near byte %zu: \"%.60s\" vs \"%.60s\"", k->label, i, a + i, b + i);
    }
    print_message("%s: killed after %lld steps (snapshot %lld bytes), resumed from it: %zu NLLs equal to the uninterrupted run's\n", k->label,
                  (long long)steps, snap_bytes, lines);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- the CUDA tests' setup */

/* fp32 on the device does the CPU's arithmetic in another order (cuBLAS, block reductions,
 * flash-style online softmax): 1e-3 in NLL is the bound, far above the ~1e-6 we see */
#define TU_TOL_F32 1e-3
/* bf16 weights, KV and GEMM inputs (8 bits of mantissa), fp32 accumulation and residual: 5e-2
 * in NLL where the weights are bf16 already (llama_bf16: measured 2.3e-2 on an H100, the
 * activations' rounding alone; vs the CPU on random models, measured 1.3e-2) */
#define TU_TOL_BF16 5e-2

/* 1 if a CUDA device can be used now; else 0, printing "skipped: " and the reason (the CUDA
 * tests pass without a GPU, each saying so). */
static inline int tu_have_gpu(void) {
    char err[LCB_ERRLEN];
    if (cuda_available(err, sizeof err)) { print_message("skipped: %s\n", err); return 0; }
    return 1;
}

/* PROG [WORD...]: runs the tests of `all` whose names contain one of the words (all of them
 * without any) as group `group`; exit status 2 when no test matches. */
static inline int tu_run_selected(const char *group, const struct CMUnitTest *all, size_t n_all, int argc, char **argv) {
    struct CMUnitTest *tests = malloc(n_all * sizeof *tests);
    assert_non_null(tests);
    size_t n = 0;
    for (size_t i = 0; i < n_all; i++) {
        int keep = argc < 2;
        for (int a = 1; a < argc && !keep; a++) keep = strstr(all[i].name, argv[a]) != NULL;
        if (keep) tests[n++] = all[i];
    }
    if (!n) { fprintf(stderr, "%s: no test matches\n", argv[0]); free(tests); return 2; }
    int rc = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    free(tests);
    return rc;
}

#endif
