/*
 * test_reliability_fuzz.c — replays the fuzz corpora under `make test`: every committed seed
 * (tests/fuzz/corpus/TARGET/) and every crash the fuzzers found (tests/fuzz/regressions/TARGET/,
 * one file per bug, named after it) goes through the same entry point as in `make fuzz`
 * (tests/fuzz/fuzz_TARGET.c, included here without its libFuzzer main).  A regression aborts
 * the program (harness invariant) or is reported by ASan/UBSan in the test-asan pass.  The
 * bugs are also checked directly, so that the plain build catches them without a sanitizer.
 */
#define LCB_FUZZ_NO_MAIN
#include "tests/testutil.h"
#include "tests/fuzz/fuzz_safetensors.c"
#include "tests/fuzz/fuzz_config.c"
#include "tests/fuzz/fuzz_tokenizer.c"
#include "tests/fuzz/fuzz_tokens.c"
#include "harness/cmd/cli.h"

#include <dirent.h>

/* Feed every file of dir to fn; returns how many. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *buf = tu_read_file(path, &len);
        fn((const uint8_t *)buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *target, int (*fn)(const uint8_t *, size_t)) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    int seeds = replay_dir(dir, fn);
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", target);
    int regs = replay_dir(dir, fn);
    print_message("fuzz_%s: %d seeds, %d regression inputs replayed\n", target, seeds, regs);
    assert_true(seeds > 0);
}

static void test_replay_safetensors(void **state) { (void)state; replay("safetensors", fuzz_safetensors_one); }
static void test_replay_config(void **state) { (void)state; replay("config", fuzz_config_one); }
static void test_replay_tokenizer(void **state) { (void)state; replay("tokenizer", fuzz_tokenizer_one); }
static void test_replay_tokens(void **state) {
    (void)state;
    replay("tokens", fuzz_tokens_one);
    tokenizer_free(fuzz_tokens_tok);
    fuzz_tokens_tok = NULL;
}

/* Bug: tokenizer_decode of nothing (no ids, or only skipped special tokens) returned a fresh
 * buffer that was never NUL-terminated, although the API promises a C string. */
static void test_decode_empty_is_nul_terminated(void **state) {
    (void)state;
    char err[512];
    Tokenizer *t = tokenizer_load("tests/fuzz/regressions/tokenizer/decode-empty-not-nul-terminated.json", err, sizeof err);
    if (!t) fail_msg("%s", err);
    for (int trial = 0; trial < 8; trial++) {
        char *s = NULL;
        size_t len = 99;
        assert_int_equal(tokenizer_decode(t, NULL, 0, 0, &s, &len, err, sizeof err), 0);
        assert_non_null(s);
        assert_int_equal(len, 0);
        assert_int_equal(s[0], 0);
        free(s);
    }
    tokenizer_free(t);
}

/* Bug: an empty text document (or an empty JSONL text field) pushed zero ids onto a stream
 * that had no buffer yet: NULL + 0, undefined behaviour.  It must simply contribute nothing. */
static void test_empty_document(void **state) {
    (void)state;
    char dir[512], a[600], b[600], spec[1300], err[1024];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(a, sizeof a, "%s/empty.txt", dir);
    snprintf(b, sizeof b, "%s/ids.ids", dir);
    tu_write_file(a, "", 0);
    tu_write_file(b, "5 6 7", 5);
    snprintf(spec, sizeof spec, "%s,%s", a, b);
    DatasetOptions o = {.spec = spec, .bos = LCB_BOS_NONE, .corpus_dir = "/nonexistent"};
    Dataset d;
    if (dataset_load(&d, &o, fuzz_tokens_tokenizer(), 1, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.n_docs, 2);
    assert_int_equal(d.ids[0], 5);
    dataset_free(&d);
    tokenizer_free(fuzz_tokens_tok);
    fuzz_tokens_tok = NULL;
}

/* Bugs: a config with hidden_size < num_attention_heads and no head_dim was accepted with
 * head_dim 0; rope_parameters.partial_rotary_factor was cast to int unchecked (1e300: UB). */
static void test_config_regressions(void **state) {
    (void)state;
    static const struct { const char *file, *want; } cases[] = {
        {"tests/fuzz/regressions/config/head-dim-zero.json", "head_dim"},
        {"tests/fuzz/regressions/config/partial-rotary-factor-overflow.json", "partial_rotary_factor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *txt = tu_read_file(cases[i].file, NULL), err[1024] = "";
        ModelConfig c;
        assert_int_equal(config_parse(&c, txt, cases[i].file, err, sizeof err), -1);
        if (!strstr(err, cases[i].want)) fail_msg("%s: message \"%s\" does not name %s", cases[i].file, err, cases[i].want);
        free(txt);
    }
}

/* Bug: strings a tokenizer.json inserts into the text (here a Replace content with raw invalid
 * bytes) reached PCRE2 with PCRE2_NO_UTF_CHECK: the JIT read out of bounds (SEGV).  They are
 * refused at load, naming the field.  (A lone surrogate escape, the other way to smuggle
 * invalid UTF-8 in, is already refused by cJSON as malformed JSON.) */
static void test_tokenizer_invalid_utf8_insertions(void **state) {
    (void)state;
    char err[1024] = "";
    const char *f = "tests/fuzz/regressions/tokenizer/replace-content-invalid-utf8-pcre2-jit.json";
    Tokenizer *t = tokenizer_load(f, err, sizeof err);
    if (t || !strstr(err, "not valid UTF-8") || !strstr(err, "normalizer")) fail_msg("%s: %s", f, t ? "loaded" : err);
    f = "tests/fuzz/regressions/tokenizer/replace-content-lone-surrogate.json";
    err[0] = 0;
    t = tokenizer_load(f, err, sizeof err);
    if (t || !err[0]) fail_msg("%s: loaded", f);
}

/* Bug: a vocabulary with one id near 2^31 made the id tables tens of GB (a 60-byte file). */
static void test_tokenizer_sparse_ids(void **state) {
    (void)state;
    char err[1024] = "";
    const char *f = "tests/fuzz/regressions/tokenizer/sparse-id-huge-tables.json";
    Tokenizer *t = tokenizer_load(f, err, sizeof err);
    if (t || !strstr(err, "contiguous")) fail_msg("%s: %s", f, t ? "loaded" : err);
}

/* Bug: a count like 1e30 was converted to uint64_t before its range was checked (UB). */
static void test_cli_count_range(void **state) {
    (void)state;
    uint64_t v = 7;
    assert_int_equal(cli_parse_count("--x", "1e30", 1, 0, UINT64_MAX, &v), -1);
    assert_int_equal(cli_parse_count("--x", "2e19", 1, 0, UINT64_MAX, &v), -1);
    assert_int_equal(cli_parse_count("--x", "99999999T", 1, 0, UINT64_MAX, &v), -1);
    assert_int_equal(cli_parse_count("--x", "1.5", 1, 0, 100, &v), -1);
    assert_int_equal(cli_parse_count("--x", "-1", 1, 0, 100, &v), -1);
    assert_int_equal(v, 7);
    assert_int_equal(cli_parse_count("--x", "4K", 1, 0, 1u << 30, &v), 0);
    assert_int_equal(v, 4000);
    assert_int_equal(cli_parse_count("--x", "2MiB", 0, 0, 1u << 30, &v), 0);
    assert_int_equal(v, 2u << 20);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_safetensors), cmocka_unit_test(test_replay_config),
        cmocka_unit_test(test_replay_tokenizer), cmocka_unit_test(test_replay_tokens),
        cmocka_unit_test(test_decode_empty_is_nul_terminated), cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_config_regressions), cmocka_unit_test(test_cli_count_range),
        cmocka_unit_test(test_tokenizer_invalid_utf8_insertions), cmocka_unit_test(test_tokenizer_sparse_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
