/*
 * test_cli.c — the stable scripting interface of SPEC §5 driven as users drive it: the
 * `lcbench` binary, its output format, exit statuses (0 ok, 2 usage, 1 other) and messages that
 * name the file, field or argument at fault.
 */
#include "testutil.h"

#include <math.h>

#define GQA FIXTURES "/llama_gqa"

static const char *ids_file(const char *name, const char *content) {
    static char p[32][512];
    static int k;
    char *path = p[k++ % 32];
    snprintf(path, 512, "%s/%s", tu_tmpdir(), name);
    tu_write_file(path, content, strlen(content));
    return path;
}

static void expect(int want_rc, const char *needle, const char *fmt, const char *a, const char *b) {
    char *out;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int rc = tu_run(&out, "%s %s", tu_lcbench(), cmd);
    if (rc != want_rc) fail_msg("lcbench %s: exit %d, want %d; output:\n%s", cmd, rc, want_rc, out);
    if (needle && !strstr(out, needle)) fail_msg("lcbench %s: output lacks \"%s\":\n%s", cmd, needle, out);
    free(out);
}

/* score prints T-1 lines matching reference.json's dense NLLs */
static void test_score_output(void **state) {
    cJSON *ref = tu_read_json(GQA "/reference.json");
    cJSON *ids = cJSON_GetObjectItem(ref, "input_ids");
    char buf[8192] = "";
    for (cJSON *x = ids->child; x; x = x->next) {
        char t[16];
        snprintf(t, sizeof t, "%d ", x->valueint);
        strcat(buf, t);
    }
    const char *p = ids_file("gqa.ids", buf);
    const char *specs[] = {"dense", "sink:4:12", "window:16", "recompute:16"};
    for (int s = 0; s < 4; s++) {
        char *out;
        int rc = tu_run(&out, "%s score --model %s --ids %s --strategy %s --chunk 5", tu_lcbench(), GQA, p, specs[s]);
        assert_int_equal(rc, 0);
        cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "nll"), specs[s]);
        char *save = NULL;
        int n = 0;
        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
            double v = atof(line);
            assert_true(fabs(v - cJSON_GetArrayItem(want, n)->valuedouble) < 1e-4);
            /* at least 6 significant digits */
            int digits = 0;
            for (char *c = line; *c && *c != 'e'; c++) digits += (*c >= '0' && *c <= '9');
            assert_true(digits >= 6);
        }
        assert_int_equal(n, cJSON_GetArraySize(ids) - 1);
        free(out);
    }
    /* ids on stdin */
    char *out;
    assert_int_equal(tu_run(&out, "echo 1 2 3 4 | %s score --model %s --ids -", tu_lcbench(), GQA), 0);
    int lines = 0;
    for (char *c = out; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 3);
    free(out);
    cJSON_Delete(ref);
}

static void test_score_errors(void **state) {
    const char *ok = ids_file("ok.ids", "1 2 3 4 5\n");
    /* usage errors: exit 2, naming the argument */
    expect(2, "--model is required", "score --ids %s%s", ok, "");
    expect(2, "--ids is required", "score --model %s%s", GQA, "");
    expect(2, "unknown argument \"--bogus\"", "score --model %s --ids %s --bogus", GQA, ok);
    expect(2, "--chunk", "score --model %s --ids %s --chunk -3", GQA, ok);
    expect(2, "--chunk", "score --model %s --ids %s --chunk abc", GQA, ok);
    expect(2, "unknown policy", "score --model %s --ids %s --strategy nope:1", GQA, ok);
    expect(2, "sink:S:W", "score --model %s --ids %s --strategy sink:4", GQA, ok);
    expect(2, "--device", "score --model %s --ids %s --device tpu", GQA, ok);
    expect(2, "--strategy needs a value", "score --model %s --ids %s --strategy", GQA, ok);
    expect(2, "unknown command", "frobnicate%s%s", "", "");
    expect(2, NULL, "%s%s", "", "");
    /* other failures: exit 1, naming the file and the problem */
    expect(1, "outside the vocabulary", "score --model %s --ids %s", GQA, ids_file("oov.ids", "1 2 600 4\n"));
    expect(1, "index 2", "score --model %s --ids %s", GQA, ids_file("oov2.ids", "1 2 600 4\n"));
    expect(1, "empty.ids", "score --model %s --ids %s", GQA, ids_file("empty.ids", " \n"));
    expect(1, "at least 2", "score --model %s --ids %s", GQA, ids_file("one.ids", "7"));
    expect(1, "not a non-negative integer", "score --model %s --ids %s", GQA, ids_file("bad.ids", "1 2 x3 4"));
    expect(1, "not a non-negative integer", "score --model %s --ids %s", GQA, ids_file("neg.ids", "1 -2 3"));
    expect(1, "cannot open", "score --model %s --ids %s", GQA, "/nonexistent/ids");
    expect(1, "no such checkpoint", "score --model %s --ids %s", "/nonexistent/model", ok);
    expect(1, "multiple of the group size", "score --model %s --ids %s --strategy s2:4", GQA, ok);
    /* help */
    expect(0, "--strategy SPEC", "score --help%s%s", "", "");
}

static void test_tokenize_cli(void **state) {
    char *out;
    int rc = tu_run(&out, "printf 'Call me Ishmael.' | %s tokenize --tokenizer %s/tokenizer/mistral_tokenizer.json --bos", tu_lcbench(), FIXTURES);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "1 5529 528 315 811 705 301 28723\n");
    free(out);
    rc = tu_run(&out, "printf 'Call me Ishmael.' | %s tokenize --tokenizer %s/tokenizer/mistral_tokenizer.json", tu_lcbench(), FIXTURES);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "5529 528 315 811 705 301 28723\n");
    free(out);
    rc = tu_run(&out, "echo 5529 528 315 811 705 301 28723 | %s tokenize --tokenizer %s/tokenizer/mistral_tokenizer.json --decode", tu_lcbench(), FIXTURES);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Call me Ishmael.");
    free(out);
    expect(1, "nonexistent", "tokenize --tokenizer /nonexistent%s%s", "", "");
    expect(2, "--tokenizer is required", "tokenize%s%s", "", "");
    const char *bad = ids_file("bad_tok.json", "{\"model\": ");
    expect(1, "bad_tok.json", "tokenize --tokenizer %s%s", bad, "");
}

/* The directory of the binary under test: its BUILD folder (build-16b/lcbench -> build-16b). */
static const char *build_dir(void) {
    static char d[1024];
    snprintf(d, sizeof d, "%s", tu_lcbench());
    char *slash = strrchr(d, '/');
    if (slash) *slash = 0; else snprintf(d, sizeof d, ".");
    return d;
}

static char *first_line(const char *s) {
    size_t n = strcspn(s, "\n");
    char *l = malloc(n + 1);
    memcpy(l, s, n);
    l[n] = 0;
    return l;
}

/* issue 16: --version and version print the revision and flags compiled in at build time; a copy
 * of the binary run outside the checkout, with no git to call, says the same. */
static void test_version(void **state) {
    char *a, *b, *c;
    assert_int_equal(tu_run(&a, "%s --version", tu_lcbench()), 0);
    assert_int_equal(tu_run(&b, "%s version", tu_lcbench()), 0);
    assert_string_equal(a, b);
    if (strncmp(a, "lcbench ", 8) || a[8] == '\n' || !strstr(a, "build:") || !strstr(a, "-std=c11"))
        fail_msg("version output: %s", a);
    /* built in a git checkout: a revision, not "unknown" */
    if (tu_run(NULL, "git rev-parse --git-dir >/dev/null 2>&1") == 0 && strstr(a, "lcbench unknown")) fail_msg("no revision: %s", a);
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/copied-lcbench", tu_tmpdir());
    assert_int_equal(tu_run(NULL, "cp %s %s", tu_lcbench(), bin), 0);
    assert_int_equal(tu_run(&c, "cd / && PATH=/nonexistent %s --version", bin), 0);
    char *la = first_line(a), *lc = first_line(c);
    assert_string_equal(la, lc);
    free(la); free(lc);
    free(a); free(b); free(c);
    expect(2, "unknown argument", "version --bogus%s%s", "", "");
}

/* `lcbench help CMD` is `lcbench CMD --help`, for every command */
static void test_help_command(void **state) {
    static const char *cmds[] = {"tokenize", "score", "run", "runs", "show", "bench", "report", "gate", "plan",
                                 "generate", "passkey", "fluency", "sweep", "merge", "version"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char *a, *b;
        int ra = tu_run(&a, "%s help %s", tu_lcbench(), cmds[i]), rb = tu_run(&b, "%s %s --help", tu_lcbench(), cmds[i]);
        if (ra != 0 || rb != 0 || strcmp(a, b) || !strstr(a, "usage")) fail_msg("help %s (exit %d) vs %s --help (exit %d):\n%s\n---\n%s", cmds[i], ra, cmds[i], rb, a, b);
        free(a); free(b);
    }
    expect(2, "unknown command \"frob\"", "help frob%s%s", "", "");
    expect(0, "plan", "help%s%s", "", "");
}

/* issue 16: make install into a DESTDIR, then the installed binary runs the default job from
 * another folder: its model and corpus found beside it (EXE/../share/lcbench), nothing read
 * from the checkout. */
static void test_install(void **state) {
    char dest[1024], elsewhere[1024];
    snprintf(dest, sizeof dest, "%s/dest", tu_tmpdir());
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", tu_tmpdir());
    char *out;
    /* -o: install the binary under test as it is (no rebuild) */
    int rc = tu_run(&out, "make -s --no-print-directory SKIP_DEPS=1 BUILD=%s -o %s install DESTDIR=%s INSTALL_MODELS=lcb-0.8m",
                    build_dir(), tu_lcbench(), dest);
    if (rc) fail_msg("make install: exit %d:\n%s", rc, out);
    free(out);
    char p[1200];
    snprintf(p, sizeof p, "%s/usr/local/share/lcbench/models/lcb-0.8m/config.json", dest);
    assert_int_equal(tu_run(NULL, "test -f %s", p), 0);
    assert_int_equal(tu_run(NULL, "mkdir -p %s", elsewhere), 0);
    /* the default model comes from the install */
    assert_int_equal(tu_run(&out, "cd %s && %s/usr/local/bin/lcbench version", elsewhere, dest), 0);
    snprintf(p, sizeof p, "%s/usr/local/bin/../share/lcbench/models/lcb-0.8m", dest);
    if (!strstr(out, p) || !strstr(out, "datadir: /usr/local/share/lcbench")) fail_msg("installed version: %s", out);
    free(out);
    int have_corpus = tu_run(NULL, "test -f .cache/corpora/moby-dick/.done") == 0;
    rc = tu_run(&out, "cd %s && env -u LCBENCH_CORPORA -u LCBENCH_DATADIR %s/usr/local/bin/lcbench run --tokens 2K --db %s/r.db --no-progress",
                elsewhere, dest, elsewhere);
    if (have_corpus) {
        if (rc != 0) fail_msg("installed run: exit %d:\n%s", rc, out);
        free(out);
        assert_int_equal(tu_run(&out, "cd %s && %s/usr/local/bin/lcbench runs --db r.db", elsewhere, dest), 0);
        if (!strstr(out, "sink:4:508") || !strstr(out, "lcb-0.8m")) fail_msg("installed run's row: %s", out);
    } else if (rc != 1 || !strstr(out, "moby-dick") || !strstr(out, "corpora"))
        fail_msg("installed run without a fetched corpus: exit %d, want 1 naming moby-dick and how to fetch it:\n%s", rc, out);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_output),
        cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_tokenize_cli),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_help_command),
        cmocka_unit_test(test_install),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
