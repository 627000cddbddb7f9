/*
 * test_reliability.c — what a results file survives (1/2): `lcbench run` killed with kill -9
 * at random points, and several runs writing one file at the same time (a held write lock, a
 * read-only file and a full disk are in test_reliability_faults.c).  After each: SQLite's
 * integrity_check passes, no committed NLL row of any run is lost or changed, the run row
 * agrees with its rows (steps_done = stored steps = cursor for the stream protocol), and
 * --resume reproduces the uninterrupted run's per-step NLLs.
 *
 * Setup (tests/reliability_util.h): the seeded random model random:llama-tiny over 3000
 * seeded random ids (a u16 token file), strategy sink:4:60, chunks of 64, a commit every 128
 * steps.  Resume re-feeds the same chunks, so resumed NLLs must match the uninterrupted ones
 * to float32 storage precision (TOL: 1e-6 at NLL ~ 6; in practice bit for bit).
 * LCB_RELIABILITY_KILLS overrides the number of kills (default 10; 4 under ASan, which is
 * several times slower).  LCB_RELIABILITY_SEED replays the random kill points (printed).
 */
#include "tests/reliability_util.h"

/* ---------------------------------------------------------------- kill -9 */

static void test_kill9_loop(void **state) {
    (void)state;
    double t_start = lcb_now();
    const char *env = getenv("LCB_RELIABILITY_KILLS");
    int want = env ? atoi(env) : (SLOW ? 4 : 10);
    const char *senv = getenv("LCB_RELIABILITY_SEED");
    rng_state = senv ? strtoull(senv, NULL, 10) : (uint64_t)time(NULL);
    print_message("kill -9 loop: %d kills, seed %llu (LCB_RELIABILITY_SEED to replay)\n", want, (unsigned long long)rng_state);
    char db[600], log[600], args[1200], when[128];
    snprintf(db, sizeof db, "%s/kill.db", tu_tmpdir());
    snprintf(log, sizeof log, "%s/kill.log", tu_tmpdir());
    /* a finished run first: its rows and bins must come through every kill untouched */
    char *out;
    double t_first = lcb_now();
    int rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, db);
    t_first = lcb_now() - t_first; /* start-up included: on a loaded machine the kills must reach past it */
    if (rc) fail_msg("first run exited %d: %s", rc, out);
    free(out);
    char *bins0 = db_text(db, "SELECT group_concat(kind || lo || ':' || count || ':' || printf('%.9f', mean_nll), ';') FROM bins WHERE run_id=1");

    /* paced: one commit per 128 steps and 25 ms after each, ~1-2 s for the whole stream */
    const double scale = SLOW ? 4.0 : 1.0, max_delay = 1.6 * scale + t_first;
    int kills = 0, resumes = 0, completed = 0, before_row = 0, iter = 0;
    int64_t run = 0; /* the run being killed; 0: none yet */
    Rows seen = db_rows(db);
    while (kills < want || run || !completed) { /* every kill may land before the row: then one more full run */
        if (++iter > 20 * want + 20) fail_msg("kill loop does not converge (%d kills, %d completed)", kills, completed);
        int final = kills >= want; /* the last resume runs to the end */
        if (run) snprintf(args, sizeof args, "--resume %lld --force --no-progress --pace-ms 25", (long long)run);
        else snprintf(args, sizeof args, RUN_ARGS " --dataset %s --pace-ms 25", g_ids);
        int64_t max_before = db_int(db, "SELECT MAX(id) FROM runs");
        pid_t pid = spawn_lcbench(db, args, log);
        int st;
        int killed = 0;
        if (!final) {
            double delay = rng_uniform() * max_delay, t0 = lcb_now();
            while (lcb_now() - t0 < delay && waitpid(pid, &st, WNOHANG) == 0) sleep_s(0.005);
            if (waitpid(pid, &st, WNOHANG) == 0) {
                kill(pid, SIGKILL);
                st = wait_status(pid);
                killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
            }
        } else st = wait_status(pid);
        if (run) resumes++;
        if (!run) { /* a fresh run: which id did it get, if any? */
            int64_t max_after = db_int(db, "SELECT MAX(id) FROM runs");
            if (max_after > max_before) run = max_after;
        }
        snprintf(when, sizeof when, "after %s %d", killed ? "kill" : "exit", kills + (killed ? 1 : 0));
        check_integrity(db, when);
        Rows now = db_rows(db);
        check_rows_kept(&seen, &now, when);
        free(seen.v);
        seen = now;
        char *bins = db_text(db, "SELECT group_concat(kind || lo || ':' || count || ':' || printf('%.9f', mean_nll), ';') FROM bins WHERE run_id=1");
        if (!bins || strcmp(bins, bins0)) fail_msg("%s: the bins of finished run 1 changed", when);
        free(bins);
        if (killed) {
            kills++;
            if (!run) { before_row++; continue; } /* killed before the run was recorded: start again */
            check_row_consistent(db, run, when);
            char sql[128];
            snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id=%lld", (long long)run);
            char *s = db_text(db, sql);
            if (!s || (strcmp(s, "running") && strcmp(s, "done"))) fail_msg("%s: run %lld has status %s", when, (long long)run, s ? s : "NULL");
            int done = !strcmp(s, "done"); /* killed after the final commit */
            free(s);
            if (done) { check_matches_reference(db, run, when); completed++; run = 0; }
            continue;
        }
        /* it exited by itself: it must have finished, with the uninterrupted numbers */
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            char *l = tu_read_file(log, NULL);
            fail_msg("%s: lcbench run %s exited with status %d: %s", when, args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, l);
        }
        if (!run) fail_msg("%s: a finished run left no row", when);
        check_row_consistent(db, run, when);
        check_matches_reference(db, run, when);
        completed++;
        run = 0;
    }
    free(seen.v);
    free(bins0);
    print_message("kill -9 loop: %d kills (%d before the run row existed), %d resumes, %d runs completed and equal to the "
                  "uninterrupted run, integrity_check ok after each (%.1f s)\n", kills, before_row, resumes, completed, lcb_now() - t_start);
    assert_true(kills >= want);
    assert_true(completed >= 1);
}

/* ---------------------------------------------------------------- concurrency */

/* Two runs started together on a new file (it raced on creating the schema: "table runs
 * already exists", and on switching to WAL: "database is locked"), while `lcbench runs` reads
 * it: both succeed, each with the uninterrupted numbers.  OMP_WAIT_POLICY=passive: two
 * OpenMP processes spinning on two cores would only make the test slow. */
static void test_concurrent_runs(void **state) {
    (void)state;
    char db[600], log[3][600], args[1200];
    snprintf(db, sizeof db, "%s/conc.db", tu_tmpdir());
    snprintf(args, sizeof args, RUN_ARGS " --dataset %s --batch 64", g_ids);
    enum { NRUN = 2 };
    pid_t pid[NRUN];
    setenv("OMP_WAIT_POLICY", "passive", 1);
    for (int i = 0; i < NRUN; i++) {
        snprintf(log[i], sizeof log[i], "%s/conc%d.log", tu_tmpdir(), i);
        pid[i] = spawn_lcbench(db, args, log[i]);
    }
    unsetenv("OMP_WAIT_POLICY");
    /* readers start once a writer has created the file: `runs` refuses a file that does not
     * exist (it never creates one); one still being set up is waited for (store_open_readonly) */
    struct stat sb;
    for (double t0 = lcb_now(); stat(db, &sb) != 0; sleep_s(0.01))
        if (lcb_now() - t0 > 60) fail_msg("no run created %s within 60 s", db);
    int reads = 0;
    for (int k = 0; k < 10; k++) {
        char *out;
        int rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), db);
        if (rc) fail_msg("lcbench runs during concurrent writes exited %d: %s", rc, out);
        free(out);
        reads++;
        sleep_s(0.05);
    }
    for (int i = 0; i < NRUN; i++) {
        int st = wait_status(pid[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) fail_msg("concurrent run %d exited %d: %s", i, WIFEXITED(st) ? WEXITSTATUS(st) : -1, tu_read_file(log[i], NULL));
    }
    check_integrity(db, "after concurrent runs");
    assert_int_equal(db_int(db, "SELECT COUNT(*) FROM runs"), NRUN);
    for (int64_t r = 1; r <= NRUN; r++) {
        check_row_consistent(db, r, "concurrent");
        check_matches_reference(db, r, "concurrent");
    }
    print_message("2 concurrent runs on one new file, %d concurrent `runs` reads: all succeeded, equal to the uninterrupted run\n", reads);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9_loop), cmocka_unit_test(test_concurrent_runs)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
