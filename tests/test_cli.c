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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_output),
        cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_tokenize_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
