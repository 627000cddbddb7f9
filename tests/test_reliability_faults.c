/*
 * test_reliability_faults.c — what a results file survives (2/2): another process holding its
 * write lock past the busy timeout, a read-only file, and a full disk.  Each must end in a
 * clear error naming the file (or correct results), never corruption; after space or access
 * comes back, --resume finishes the run with the uninterrupted numbers.  Setup and checks:
 * tests/reliability_util.h (see test_reliability.c for the model, data and tolerance).  Also:
 * a checkpoint folder whose files are FIFOs, folders or link loops is refused at once, by name.
 *
 * Read-only and full-disk cases need a filesystem that says so, and root ignores file modes:
 * as root they mount a small tmpfs (`mount -t tmpfs -o size=256k`, then `remount,ro`); when
 * mount is not permitted (an unprivileged CI container) the read-only case falls back to file
 * modes if not root, and otherwise the test is skipped with a message saying why.
 */
#include "tests/reliability_util.h"

/* Another process holds the write lock past the busy timeout (10 s): the run fails with a
 * message naming the file and the lock, nothing it committed is lost, and --resume finishes. */
static void test_lock_held(void **state) {
    (void)state;
    char db[600], log[600], args[1200], *out;
    snprintf(db, sizeof db, "%s/lock.db", tu_tmpdir());
    snprintf(log, sizeof log, "%s/lock.log", tu_tmpdir());
    snprintf(args, sizeof args, RUN_ARGS " --dataset %s --pace-ms 100", g_ids);
    pid_t pid = spawn_lcbench(db, args, log);
    for (int i = 0; i < 3000 && db_int_poll(db, "SELECT COALESCE(MAX(steps_done), 0) FROM runs") <= 0; i++) sleep_s(0.01);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int st = 0, exited = 0;
    double t0 = lcb_now();
    while (lcb_now() - t0 < 13 * (SLOW ? 2 : 1) && !(exited = waitpid(pid, &st, WNOHANG) == pid)) sleep_s(0.05);
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(h);
    if (!exited) st = wait_status(pid);
    char *l = tu_read_file(log, NULL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 1) fail_msg("run under a held lock exited %d: %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, l);
    if (!strstr(l, "locked") || !strstr(l, db)) fail_msg("no clear message about the lock: %s", l);
    print_message("write lock held 10 s by another process: lcbench run exited 1: %.200s\n", l);
    free(l);
    check_integrity(db, "after the lock");
    check_row_consistent(db, 1, "after the lock");
    int rc = tu_run(&out, "%s run --resume 1 --force --no-progress --db %s", tu_lcbench(), db);
    if (rc) fail_msg("resume after the lock exited %d: %s", rc, out);
    free(out);
    check_matches_reference(db, 1, "resumed after the lock");
}

/* ---------------------------------------------------------------- read-only, full disk */

static int mount_tmpfs(const char *dir, const char *opts) {
    mkdir(dir, 0755);
    return mount("tmpfs", dir, "tmpfs", 0, opts);
}

static void test_readonly_db(void **state) {
    (void)state;
    char dir[600], db[700], *out;
    snprintf(dir, sizeof dir, "%s/romnt", tu_tmpdir());
    int mounted = mount_tmpfs(dir, "size=8m") == 0;
    if (!mounted && geteuid() == 0) {
        print_message("SKIPPED read-only DB: root ignores file modes and mount is not permitted here (%s)\n", strerror(errno));
        skip();
    }
    if (!mounted) mkdir(dir, 0755);
    snprintf(db, sizeof db, "%s/r.db", dir);
    int rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, db);
    if (rc) fail_msg("run exited %d: %s", rc, out);
    free(out);
    size_t n0;
    char *bytes0 = tu_read_file(db, &n0);
    const char *how;
    if (mounted) { assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=8m"), 0); how = "read-only tmpfs"; }
    else { chmod(db, 0444); chmod(dir, 0555); how = "file modes 0444/0555"; }
    rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, db);
    if (rc != 1 || !strstr(out, "read-only") || !strstr(out, db)) fail_msg("run on a read-only DB (%s): exit %d: %s", how, rc, out);
    print_message("read-only DB (%s): exit 1: %s", how, out);
    free(out);
    rc = tu_run(&out, "%s run --resume 1 --force --db %s", tu_lcbench(), db);
    if (rc == 0 || !strstr(out, "read-only")) fail_msg("resume on a read-only DB: exit %d: %s", rc, out);
    free(out);
    char newdb[800];
    snprintf(newdb, sizeof newdb, "%s/new.db", dir);
    rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, newdb);
    if (rc != 1 || !strstr(out, "new.db")) fail_msg("new DB in a read-only folder: exit %d: %s", rc, out);
    free(out);
    size_t n1;
    char *bytes1 = tu_read_file(db, &n1);
    assert_true(n0 == n1 && memcmp(bytes0, bytes1, n0) == 0); /* not a byte changed */
    free(bytes0);
    free(bytes1);
    if (mounted) { assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=8m"), 0); }
    else { chmod(dir, 0755); chmod(db, 0644); }
    check_integrity(db, "after the read-only attempts");
    check_matches_reference(db, 1, "read-only");
    if (mounted) umount2(dir, MNT_DETACH);
}

static void test_full_disk(void **state) {
    (void)state;
    char dir[600], db[700], log[700], *out;
    snprintf(dir, sizeof dir, "%s/fullmnt", tu_tmpdir());
    if (mount_tmpfs(dir, "size=256k")) {
        print_message("SKIPPED full disk: cannot mount a small tmpfs here (%s); run as root to test it\n", strerror(errno));
        skip();
    }
    snprintf(db, sizeof db, "%s/r.db", dir);
    snprintf(log, sizeof log, "%s/full.log", tu_tmpdir());
    /* 3000 steps of float32 plus samples do not fit in 256 KiB with the WAL */
    int rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, db);
    if (rc != 1 || !strstr(out, "full") || !strstr(out, db)) fail_msg("run on a full disk: exit %d: %s", rc, out);
    print_message("full disk (256 KiB tmpfs): exit 1: %.300s\n", out);
    free(out);
    check_integrity(db, "on the full disk");
    int64_t kept = check_row_consistent(db, 1, "on the full disk");
    assert_true(kept > 0 && kept < T_IDS - 1);
    char *s = db_text(db, "SELECT status FROM runs WHERE id=1");
    assert_non_null(s);
    assert_true(!strcmp(s, "running") || !strcmp(s, "failed"));
    free(s);
    Rows before = db_rows(db);
    /* a second run on the full file: a clear error, nothing of run 1 lost */
    rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s", tu_lcbench(), g_ids, db);
    if (rc == 0) fail_msg("a second run on a full disk succeeded: %s", out);
    free(out);
    check_integrity(db, "after a second run on the full disk");
    Rows after = db_rows(db);
    check_rows_kept(&before, &after, "second run on the full disk");
    free(before.v);
    free(after.v);
    /* space again: --resume finishes run 1 with the uninterrupted numbers */
    assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    rc = tu_run(&out, "%s run --resume 1 --force --no-progress --db %s", tu_lcbench(), db);
    if (rc) fail_msg("resume after freeing space exited %d: %s", rc, out);
    free(out);
    check_integrity(db, "after the resume");
    check_matches_reference(db, 1, "resumed after a full disk");
    print_message("full disk: %lld steps kept consistent, resume reproduced the uninterrupted run\n", (long long)kept);
    umount2(dir, MNT_DETACH);
}

/* ---------------------------------------------------------------- checkpoints that are not files */

/* Copy a fixture file into dir (unless it is `skip`). */
static void copy_fixture_file(const char *dir, const char *name, const char *skip) {
    if (!strcmp(name, skip)) return;
    char src[300], dst[800];
    snprintf(src, sizeof src, FIXTURES "/llama_gqa/%s", name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    size_t n;
    char *c = tu_read_file(src, &n);
    tu_write_file(dst, c, n);
    free(c);
}

/* `lcbench score` / `tokenize` on a folder whose config.json, model.safetensors or
 * tokenizer.json is a FIFO (which blocked forever), a folder ("out of memory reading
 * 9223372036854775807 bytes") or a symbolic link loop ("no model.safetensors in this folder"):
 * each exits 1 at once with a message naming the file and what it is.  `timeout` turns a hang
 * into exit 124. */
static void test_special_files_cli(void **state) {
    (void)state;
    char ids[600], *out;
    snprintf(ids, sizeof ids, "%s/three.ids", tu_tmpdir());
    tu_write_file(ids, "1 2 3\n", 6);
    const char *names[] = {"config.json", "model.safetensors", "tokenizer.json"};
    const char *kinds[] = {"fifo", "folder", "loop"};
    const char *says[] = {"FIFO", "a folder", "symbolic link loop"};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 3; k++) {
            char dir[700], p[800];
            snprintf(dir, sizeof dir, "%s/special_%d_%d", tu_tmpdir(), f, k);
            mkdir(dir, 0755);
            copy_fixture_file(dir, "config.json", names[f]);
            copy_fixture_file(dir, "model.safetensors", names[f]);
            snprintf(p, sizeof p, "%s/%s", dir, names[f]);
            int made = k == 0 ? mkfifo(p, 0600) : k == 1 ? mkdir(p, 0755) : symlink(names[f], p);
            assert_int_equal(made, 0);
            int rc = f == 2 ? tu_run(&out, "echo hi | timeout 20 %s tokenize --tokenizer %s", tu_lcbench(), dir)
                            : tu_run(&out, "timeout 20 %s score --model %s --ids %s --strategy dense", tu_lcbench(), dir, ids);
            if (rc != 1 || !strstr(out, names[f]) || !strstr(out, says[k]) || strstr(out, "out of memory"))
                fail_msg("%s as a %s: exit %d (1 expected; 124 = it hung): %s", names[f], kinds[k], rc, out);
            free(out);
        }
}

/* issue 13 (7): runs, show, report and gate read a results file they cannot write: a WAL file
 * on a read-only filesystem with its -wal and -shm (committed rows that live only in the -wal
 * are seen), and one whose -wal/-shm are gone (a clean close); nothing is created beside it. */
static void test_readonly_wal_readers(void **state) {
    (void)state;
    char dir[600], a[700], b[700], *out;
    snprintf(dir, sizeof dir, "%s/rowal", tu_tmpdir());
    if (mount_tmpfs(dir, "size=8m")) { print_message("SKIPPED read-only WAL readers: mount not permitted (%s)\n", strerror(errno)); skip(); }
    snprintf(a, sizeof a, "%s/open.db", dir);
    snprintf(b, sizeof b, "%s/closed.db", dir);
    int rc = tu_run(&out, "%s run " RUN_ARGS " --dataset %s --db %s && cp %s %s", tu_lcbench(), g_ids, a, a, b);
    if (rc) fail_msg("run: %d: %s", rc, out);
    free(out);
    /* a writer's committed change still in the -wal: copy the three files while it is open */
    sqlite3 *h;
    assert_int_equal(sqlite3_open(a, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA wal_autocheckpoint=0; UPDATE runs SET argv='only in the wal'", NULL, NULL, NULL), SQLITE_OK);
    char cp[2400];
    snprintf(cp, sizeof cp, "cd %s && cp open.db w.db && cp open.db-wal w.db-wal && cp open.db-shm w.db-shm", dir);
    assert_int_equal(tu_run(NULL, "%s", cp), 0);
    sqlite3_close(h);
    assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=8m"), 0);
    const char *dbs[] = {"w.db", "closed.db"};
    for (int i = 0; i < 2; i++) {
        char db[700];
        snprintf(db, sizeof db, "%s/%s", dir, dbs[i]);
        rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), db);
        if (rc || !strstr(out, "done")) fail_msg("runs on read-only %s: exit %d: %s", dbs[i], rc, out);
        free(out);
        rc = tu_run(&out, "%s show 1 --db %s", tu_lcbench(), db);
        if (rc || (i == 0 && !strstr(out, "only in the wal"))) fail_msg("show on read-only %s: exit %d: %s", dbs[i], rc, out);
        free(out);
        rc = tu_run(&out, "%s gate --db %s --baseline %s", tu_lcbench(), db, db);
        if (rc || !strstr(out, "PASS: 1 pair")) fail_msg("gate on read-only %s: exit %d: %s", dbs[i], rc, out);
        free(out);
        rc = tu_run(&out, "%s report --db %s --out %s/report-%d --no-svg", tu_lcbench(), db, tu_tmpdir(), i);
        if (rc) fail_msg("report on read-only %s: exit %d: %s", dbs[i], rc, out);
        free(out);
    }
    assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=8m"), 0);
    umount2(dir, MNT_DETACH);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lock_held), cmocka_unit_test(test_readonly_db), cmocka_unit_test(test_full_disk),
                                       cmocka_unit_test(test_special_files_cli),
                                       cmocka_unit_test(test_readonly_wal_readers)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
