/*
 * test_sweep.c — `lcbench sweep` and `lcbench merge`: the plan's matrix (order, overrides,
 * exclusions, duplicates), stable cell keys, plan and flag errors (exit 2 naming the field or
 * flag), a local sweep with two workers on one results file, skipping recorded cells,
 * retries of a failing cell, SIGTERM and kill -9 of the sweep then resume (same runs, full
 * NLL counts), and merge of shards (new ids, child rows, idempotent, a further copy replacing
 * a partial one).  The real Slurm cluster test is tests/slurm/test_slurm.sh (make test-slurm).
 */
#include "testutil.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/common.h"
#include "harness/sweep/sweep.h"

#define MODEL "random:llama-tiny"
#define VOCAB 512

static char ids_path[256];

static void write_ids(void) {
    if (ids_path[0]) return;
    snprintf(ids_path, sizeof ids_path, "%s/stream.ids", tu_tmpdir());
    FILE *f = fopen(ids_path, "w");
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 4000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; fprintf(f, "%d ", (int)(x % VOCAB)); }
    fclose(f);
}

static const char *plan_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s.json", tu_tmpdir(), name);
    tu_write_file(path, text, strlen(text));
    return path;
}

/* ---------------------------------------------------------------- the plan */

static void test_plan_matrix(void **state) {
    SweepPlan p;
    char err[LCB_ERRLEN];
    const char *t = "{\"models\": [\"m/a/\", \"m/b\"], \"strategies\": [\"window:8\", \"sink\", {\"value\": \"dense\", \"tokens\": \"1K\"}],"
                    " \"tokens\": [500, \"2K\"], \"options\": {\"chunk\": 64, \"repeat\": false},"
                    " \"exclude\": [{\"model\": \"m/b\", \"strategy\": \"window:8\", \"tokens\": 500}]}";
    if (sweep_plan_parse(&p, t, "plan.json", err, sizeof err)) fail_msg("%s", err);
    /* 2 x 3 x 2 = 12, minus one excluded, minus dense's duplicate (tokens forced to 1000) per model */
    assert_int_equal(p.n_cells, 12 - 1 - 2);
    assert_string_equal(p.cells[0].v[SF_MODEL], "m/a");          /* trailing slash normalized */
    assert_string_equal(p.cells[0].v[SF_STRATEGY], "window:8");
    assert_string_equal(p.cells[0].v[SF_TOKENS], "500");
    assert_string_equal(p.cells[1].v[SF_TOKENS], "2000");         /* the last axis varies fastest */
    assert_string_equal(p.cells[2].v[SF_STRATEGY], "sink");        /* bare: sized from the model when the run starts */
    assert_string_equal(p.cells[4].v[SF_STRATEGY], "dense");
    assert_string_equal(p.cells[4].v[SF_TOKENS], "1000");          /* override beats the axis */
    assert_string_equal(p.cells[5].v[SF_MODEL], "m/b");
    assert_string_equal(p.cells[5].v[SF_TOKENS], "2000");          /* m/b window:8 500 excluded */
    assert_string_equal(p.cells[0].v[SF_PROTOCOL], "stream");      /* defaults made explicit */
    assert_string_equal(p.cells[0].v[SF_DEVICE], "cpu");
    for (int i = 0; i < p.n_cells; i++) assert_int_equal(p.cells[i].idx, i);
    assert_true(p.axis_vary[SF_MODEL] && p.axis_vary[SF_STRATEGY] && !p.axis_vary[SF_CHUNK]);
    assert_int_equal(strncmp(p.id, "sweep-", 6), 0);
    /* the run's arguments */
    const char *args[2 * SF_N + 8];
    int n = sweep_cell_args(&p.cells[0], "r.db", args);
    char line[1024] = "";
    for (int i = 0; i < n; i++) { strcat(line, args[i]); strcat(line, " "); }
    assert_string_equal(line, "--model m/a --strategy window:8 --tokens 500 --protocol stream --device cpu --chunk 64 --no-repeat --db r.db --no-progress ");
    /* keys: the same arguments written differently give the same key; any change another */
    SweepPlan q;
    const char *t2 = "{\"name\": \"other\", \"models\": [\"m/a\"], \"strategies\": [\"window:8\"], \"tokens\": \"0.5K\", \"protocols\": \"stream\","
                     " \"options\": {\"chunk\": \"64\", \"repeat\": \"false\", \"batch\": 7}}";
    if (sweep_plan_parse(&q, t2, "plan2.json", err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(q.n_cells, 1);
    assert_string_equal(q.id, "other");
    assert_string_equal(q.cells[0].key, p.cells[0].key);  /* batch does not change what is measured */
    assert_string_not_equal(p.cells[0].key, p.cells[1].key);
    assert_int_equal((int)strlen(p.cells[0].key), 16);
    sweep_plan_free(&q);
    sweep_plan_free(&p);
}

static void expect_plan_error(const char *text, const char *needle) {
    SweepPlan p;
    char err[LCB_ERRLEN];
    int rc = sweep_plan_parse(&p, text, "bad.json", err, sizeof err);
    sweep_plan_free(&p);
    if (rc == 0) fail_msg("plan accepted: %s", text);
    if (!strstr(err, needle) || !strstr(err, "bad.json")) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_plan_errors(void **state) {
    expect_plan_error("{\"models\": [\"a\"", "not valid JSON");
    expect_plan_error("[1]", "JSON object");
    expect_plan_error("{\"model\": \"a\"}", "unknown field \"model\"");
    expect_plan_error("{\"strategies\": [\"sink:4\"]}", "strategies[0]");
    expect_plan_error("{\"strategies\": []}", "empty list");
    expect_plan_error("{\"tokens\": [\"12Q\"]}", "tokens \"12Q\"");
    expect_plan_error("{\"tokens\": [1]}", "tokens \"1\"");
    expect_plan_error("{\"protocols\": [\"slide\"]}", "protocol \"slide\"");
    expect_plan_error("{\"devices\": [\"tpu\"]}", "device \"tpu\"");
    expect_plan_error("{\"options\": {\"bos\": \"always\"}}", "bos \"always\"");
    expect_plan_error("{\"options\": {\"colour\": 1}}", "unknown field \"colour\"");
    expect_plan_error("{\"strategies\": [{\"tokens\": 5}]}", "needs \"value\"");
    expect_plan_error("{\"tokens\": [100], \"options\": {\"tokens\": 100}}", "both as the axis");
    expect_plan_error("{\"strategies\": [\"dense\"], \"exclude\": [{\"strategy\": \"dense\"}]}", "every cell is excluded");
    expect_plan_error("{\"name\": \"../x\"}", "name must be");
    expect_plan_error("{\"executor\": {\"jobs\": 0}}", "executor.jobs");
    expect_plan_error("{\"executor\": {\"sbatch\": [\"time=1\"]}}", "executor.sbatch[0]");
}

/* ---------------------------------------------------------------- the command line */

static void expect_cli(int want, const char *needle, const char *fmt, const char *a) {
    char *out;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, tu_lcbench(), a);
    int rc = tu_run(&out, "%s", cmd);
    if (rc != want || !strstr(out, needle)) fail_msg("%s: exit %d (want %d), output lacks \"%s\":\n%s", cmd, rc, want, needle, out);
    free(out);
}

static void test_cli_errors(void **state) {
    char ok[256], bad[256];
    snprintf(ok, sizeof ok, "%s", plan_file("ok", "{\"models\": [\"random:llama-tiny\"], \"strategies\": [\"dense\"]}"));
    snprintf(bad, sizeof bad, "%s", plan_file("bad", "{\"strategies\": [\"sink:x\"]}"));
    expect_cli(2, "PLAN is missing", "%s sweep%s", "");
    expect_cli(2, "--jobs \"0\"", "%s sweep %s --jobs 0", ok);
    expect_cli(2, "unknown argument \"--frobnicate\"", "%s sweep %s --frobnicate", ok);
    expect_cli(2, "--wait goes with --slurm", "%s sweep %s --wait", ok);
    expect_cli(2, "--cell 5: the plan has 1 cells", "%s sweep %s --cell 5", ok);
    expect_cli(2, "--gpus \"0,,1\"", "%s sweep %s --gpus 0,,1", ok);
    expect_cli(2, "strategies[0]", "%s sweep %s", bad);
    expect_cli(1, "cannot open the plan", "%s sweep %s", "/nonexistent/plan.json");
    expect_cli(2, "-o ALL.db is missing", "%s merge %s", "x.db");
    expect_cli(2, "no SHARD", "%s merge -o %s", "x.db");
    expect_cli(1, "cannot read the shard", "%s merge /nonexistent.db -o %s/m.db", tu_tmpdir());
    char notdb[300];
    snprintf(notdb, sizeof notdb, "%s/notdb.db", tu_tmpdir());
    tu_write_file(notdb, "hello", 5);
    char notdb_args[700]; /* the output in the test's own folder: a stale /tmp file of another build broke this */
    snprintf(notdb_args, sizeof notdb_args, "%s -o %s/merge-x.db", notdb, tu_tmpdir());
    expect_cli(1, "notdb.db", "%s merge %s", notdb_args);
    expect_cli(0, "usage: lcbench sweep", "%s sweep --help%s", "");
    expect_cli(0, "usage: lcbench merge", "%s merge --help%s", "");
}

/* ---------------------------------------------------------------- local executor */

static void test_local_sweep(void **state) {
    write_ids();
    char text[1024], db[256], *out;
    snprintf(text, sizeof text, "{\"name\": \"local\", \"models\": [\"%s\", \"%s:7\"], \"strategies\": [\"window:32\", \"sink:4:28\"],"
             " \"datasets\": [\"%s\"], \"options\": {\"tokens\": 600, \"chunk\": 64}}", MODEL, MODEL, ids_path);
    const char *plan = plan_file("local", text);
    snprintf(db, sizeof db, "%s/local.db", tu_tmpdir());
    int rc = tu_run(&out, "%s sweep %s --db %s --jobs 2 --threads 1", tu_lcbench(), plan, db);
    if (rc) fail_msg("sweep exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "4 of 4 cells recorded (4 this time)"));
    assert_non_null(strstr(out, "| window:32 |") ? out : strstr(out, "window:32 |"));  /* the grid */
    free(out);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM runs WHERE status='done' AND steps_done=599"), 4);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(DISTINCT run_id) FROM sweep_cells WHERE sweep_id='local' AND run_id IS NOT NULL"), 4);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM sweeps WHERE id='local' AND n_cells=4"), 1);
    /* the same numbers as a plain lcbench run of cell 0 */
    char db2[256];
    snprintf(db2, sizeof db2, "%s/plain.db", tu_tmpdir());
    rc = tu_run(&out, "%s run --model %s --strategy window:32 --tokens 600 --dataset %s --chunk 64 --db %s", tu_lcbench(), MODEL, ids_path, db2);
    if (rc) fail_msg("run exited %d:\n%s", rc, out);
    free(out);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT CAST(ROUND(mean_nll * 1e9) AS INTEGER) FROM runs WHERE id=1");
    int64_t plain = tu_db_int(db2, sql);
    assert_int_equal(tu_db_int(db, "SELECT CAST(ROUND(r.mean_nll * 1e9) AS INTEGER) FROM runs r JOIN sweep_cells c ON c.run_id=r.id WHERE c.cell_idx=0"), plain);
    /* again: nothing runs; --status prints the grid; --dry-run says recorded */
    rc = tu_run(&out, "%s sweep %s --db %s", tu_lcbench(), plan, db);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "4 already recorded, 0 to run"));
    free(out);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM runs"), 4);
    rc = tu_run(&out, "%s sweep %s --db %s --status", tu_lcbench(), plan, db);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "sink:4:28"));
    assert_null(strstr(out, " - |"));
    free(out);
    rc = tu_run(&out, "%s sweep %s --db %s --dry-run 2>/dev/null | grep -c recorded", tu_lcbench(), plan, db);
    assert_int_equal(atoi(out), 4);
    free(out);
}

static void test_retries(void **state) {
    write_ids();
    char text[1024], db[256], *out;
    snprintf(text, sizeof text, "{\"name\": \"retry\", \"models\": [\"%s\"], \"strategies\": [\"window:32\"],"
             " \"datasets\": [\"%s\", \"%s/missing.ids\"], \"options\": {\"tokens\": 300}}", MODEL, ids_path, tu_tmpdir());
    const char *plan = plan_file("retry", text);
    snprintf(db, sizeof db, "%s/retry.db", tu_tmpdir());
    int rc = tu_run(&out, "%s sweep %s --db %s --retries 2 --threads 1", tu_lcbench(), plan, db);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "attempt 1 of 3; retrying"));
    assert_non_null(strstr(out, "after 3 attempts"));
    assert_non_null(strstr(out, "missing.ids"));         /* the run's own error, from its log */
    assert_non_null(strstr(out, "1 of 2 cells recorded"));
    free(out);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM sweep_cells WHERE cell_idx=1"), 3);
    assert_int_equal(tu_db_int(db, "SELECT MAX(attempt) FROM sweep_cells WHERE cell_idx=1"), 3);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM sweep_cells WHERE cell_idx=0 AND exit_status=0"), 1);
}

/* Interrupt the sweep (SIGTERM, or kill -9 of the sweep alone), then rerun: the runs it
 * started resume (same ids, every step once). */
static void interrupt_resume(int sig, const char *name) {
    write_ids();
    char text[1024], db[256], *out;
    snprintf(text, sizeof text, "{\"name\": \"%s\", \"models\": [\"%s\"], \"strategies\": [\"window:64\", \"sink:4:60\"],"
             " \"datasets\": [\"%s\"], \"options\": {\"tokens\": \"40K\", \"chunk\": 32, \"batch\": 256, \"batch_seconds\": 0.2}}", name, MODEL, ids_path);
    const char *plan = plan_file(name, text);
    snprintf(db, sizeof db, "%s/%s.db", tu_tmpdir(), name);
    /* wait for a first committed batch of both runs, then signal the sweep process only */
    char logp[300];
    snprintf(logp, sizeof logp, "%s/%s.out", tu_tmpdir(), name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        freopen(logp, "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(tu_lcbench(), "lcbench", "sweep", plan, "--db", db, "--jobs", "2", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600 && tu_db_int(db, "SELECT COUNT(*) FROM runs WHERE steps_done > 0") != 2; i++) usleep(50000);
    kill(pid, sig);
    int st;
    waitpid(pid, &st, 0);
    if (sig == SIGTERM) assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 143);
    else assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* the workers end on their own (SIGTERM passed on, or PR_SET_PDEATHSIG): wait for both rows */
    for (int i = 0; i < 200 && tu_db_int(db, "SELECT COUNT(*) FROM runs WHERE status='interrupted'") != 2; i++) usleep(50000);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM runs WHERE status='interrupted'"), 2);   /* TERM passed on, or PDEATHSIG */
    assert_true(tu_db_int(db, "SELECT MIN(steps_done) FROM runs") < 39999);
    int rc = tu_run(&out, "%s sweep %s --db %s --jobs 2 --threads 1", tu_lcbench(), plan, db);
    if (rc) fail_msg("resumed sweep exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "2 to run (2 to resume)"));
    assert_non_null(strstr(out, "resuming"));
    free(out);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM runs WHERE status='done' AND steps_done=39999"), 2);
    assert_int_equal(tu_db_int(db, "SELECT SUM(n) FROM nll"), 2 * 39999);
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM events WHERE kind='resume'"), 2);
}

static void test_interrupt_term(void **state) { interrupt_resume(SIGTERM, "intterm"); }
static void test_interrupt_kill9(void **state) { interrupt_resume(SIGKILL, "intkill"); }

/* ---------------------------------------------------------------- merge */

static void test_merge(void **state) {
    write_ids();
    char text[1024], s0[256], s1[256], all[256], *out;
    snprintf(text, sizeof text, "{\"name\": \"shards\", \"models\": [\"%s\"], \"strategies\": [\"window:32\", \"dense\"],"
             " \"datasets\": [\"%s\"], \"options\": {\"tokens\": 400, \"batch\": 100}}", MODEL, ids_path);
    const char *plan = plan_file("shards", text);
    snprintf(s0, sizeof s0, "%s/shard-0.db", tu_tmpdir());
    snprintf(s1, sizeof s1, "%s/shard-1.db", tu_tmpdir());
    snprintf(all, sizeof all, "%s/all.db", tu_tmpdir());
    for (int c = 0; c < 2; c++) {
        int rc = tu_run(&out, "%s sweep %s --cell %d --db %s --threads 1", tu_lcbench(), plan, c, c ? s1 : s0);
        if (rc) fail_msg("cell %d exited %d:\n%s", c, rc, out);
        free(out);
    }
    /* both shards number their run 1 */
    assert_int_equal(tu_db_int(s0, "SELECT MAX(id) FROM runs"), 1);
    assert_int_equal(tu_db_int(s1, "SELECT MAX(id) FROM runs"), 1);
    int rc = tu_run(&out, "%s merge %s %s -o %s", tu_lcbench(), s0, s1, all);
    if (rc) fail_msg("merge exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "\"added\": 2"));
    free(out);
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(tu_db_int(all, "SELECT SUM(n) FROM nll"), 2 * 399);
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM nll"), tu_db_int(s0, "SELECT COUNT(*) FROM nll") + tu_db_int(s1, "SELECT COUNT(*) FROM nll"));
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM bins"), tu_db_int(s0, "SELECT COUNT(*) FROM bins") + tu_db_int(s1, "SELECT COUNT(*) FROM bins"));
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM samples"), tu_db_int(s0, "SELECT COUNT(*) FROM samples") + tu_db_int(s1, "SELECT COUNT(*) FROM samples"));
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM docs"), tu_db_int(s0, "SELECT COUNT(*) FROM docs") + tu_db_int(s1, "SELECT COUNT(*) FROM docs"));
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM events WHERE kind='merged'"), 2);
    /* provenance intact: the second run is shard-1's run 1 with its strategy, hashes, argv */
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM runs WHERE id=2 AND strategy='dense' AND argv LIKE '%shard-1.db%' AND length(model_hash)=64"), 1);
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM sweep_cells WHERE run_id=2 AND cell_idx=1 AND sweep_id='shards'"), 1);
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM sweeps"), 1);
    /* idempotent: merging again (and a shard twice) adds nothing */
    rc = tu_run(&out, "%s merge %s %s %s -o %s", tu_lcbench(), s0, s1, s0, all);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"added\": 0, \"updated\": 0, \"skipped\": 3"));
    free(out);
    assert_int_equal(tu_db_int(all, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(tu_db_int(all, "SELECT SUM(n) FROM nll"), 2 * 399);
    /* lcbench runs and the sweep itself read the merged file: every cell is recorded there */
    rc = tu_run(&out, "%s runs --db %s", tu_lcbench(), all);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "window:32"));
    assert_non_null(strstr(out, "dense"));
    free(out);
    rc = tu_run(&out, "%s sweep %s --db %s", tu_lcbench(), plan, all);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "2 already recorded, 0 to run"));
    free(out);
    /* a partial copy of a run merged first is replaced by the full one */
    char part[256], all2[256];
    snprintf(part, sizeof part, "%s/partial.db", tu_tmpdir());
    snprintf(all2, sizeof all2, "%s/all2.db", tu_tmpdir());
    {
        sqlite3 *h;
        char sql[600];
        assert_int_equal(sqlite3_open(s0, &h), SQLITE_OK);
        snprintf(sql, sizeof sql, "VACUUM INTO '%s'", part);
        assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h);
        assert_int_equal(sqlite3_open(part, &h), SQLITE_OK);
        assert_int_equal(sqlite3_exec(h, "UPDATE runs SET status='interrupted', steps_done=100; DELETE FROM nll WHERE seq > 0; DELETE FROM bins;",
                                      NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h);
    }
    rc = tu_run(&out, "%s merge %s -o %s && %s merge %s -o %s", tu_lcbench(), part, all2, tu_lcbench(), s0, all2);
    if (rc) fail_msg("merge exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "0 runs added, 1 updated"));
    free(out);
    assert_int_equal(tu_db_int(all2, "SELECT COUNT(*) FROM runs WHERE status='done' AND steps_done=399"), 1);
    assert_int_equal(tu_db_int(all2, "SELECT SUM(n) FROM nll"), 399);
    assert_int_equal(tu_db_int(all2, "SELECT COUNT(*) FROM events WHERE kind='merged'"), 1);
    /* and the partial one merged after the full one is skipped */
    rc = tu_run(&out, "%s merge %s -o %s", tu_lcbench(), part, all2);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"skipped\": 1"));
    free(out);
    /* the output named as a shard is a usage error */
    rc = tu_run(&out, "%s merge %s %s -o %s", tu_lcbench(), s0, all, all);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "is also a SHARD"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_matrix),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_local_sweep),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_interrupt_term),
        cmocka_unit_test(test_interrupt_kill9),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
