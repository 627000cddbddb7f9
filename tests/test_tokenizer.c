/*
 * test_tokenizer.c — cmocka tests of engine/tokenizer.c.
 *
 * Why: lcbench's token counts must equal HF `tokenizers` (0.23).  The ground truth is
 * tests/fixtures/tokenizer/{mistral,llama3}_cases.jsonl (made with HF tokenizers; fields
 * label, text, ids, ids_with_special, decoded): every case must give exactly `ids` without
 * special tokens, `ids_with_special` with them, and `decoded` from decode(ids).  Also covered:
 * error paths (missing file, malformed JSON, unsupported model, bad ids, bad regex, bad
 * merges), empty text, a folder path, and a tiny hand-made byte-level tokenizer.json; hostile
 * files: Replace chains that would grow the text without bound, regexes that fail while
 * matching, an id of INT32_MAX, a FIFO / folder / link loop named tokenizer.json.
 * Run from the repository root.  Set LCB_TOK_BENCH=1 to print encode speed.
 */
#include "engine/tokenizer.h"
#include "tests/testutil.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKDIR FIXTURES "/tokenizer"

static Tokenizer *load_ok(const char *path) {
    char err[512] = {0};
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    if (!t) fail_msg("load %s: %s", path, err);
    return t;
}

static int32_t *json_ids(const cJSON *arr, size_t *n) {
    assert_true(cJSON_IsArray(arr));
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    assert_non_null(v);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) v[i++] = (int32_t)e->valuedouble;
    return v;
}

static void check_ids(const char *model, const char *label, const char *what, const int32_t *got, size_t ngot,
                      const int32_t *want, size_t nwant) {
    size_t i = 0;
    while (i < ngot && i < nwant && got[i] == want[i]) i++;
    if (i == ngot && i == nwant) return;
    fail_msg("%s/%s %s: %zu ids, want %zu; first difference at %zu (got %d, want %d)", model, label, what, ngot,
             nwant, i, i < ngot ? got[i] : -1, i < nwant ? want[i] : -1);
}

/* Runs every case of <model>_cases.jsonl against <model>_tokenizer.json; returns the count. */
static int run_cases(const char *model) {
    char path[256], cases[256], err[512];
    snprintf(path, sizeof path, TOKDIR "/%s_tokenizer.json", model);
    snprintf(cases, sizeof cases, TOKDIR "/%s_cases.jsonl", model);
    Tokenizer *t = load_ok(path);
    char *all = tu_read_file(cases, NULL);
    int count = 0;
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line) continue;
        cJSON *c = cJSON_Parse(line);
        if (!c) fail_msg("%s: malformed line %d", cases, count + 1);
        const char *label = cJSON_GetObjectItem(c, "label")->valuestring;
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *decoded = cJSON_GetObjectItem(c, "decoded")->valuestring;
        size_t nwant, nwant_s;
        int32_t *want = json_ids(cJSON_GetObjectItem(c, "ids"), &nwant);
        int32_t *want_s = json_ids(cJSON_GetObjectItem(c, "ids_with_special"), &nwant_s);
        int32_t *got = NULL;
        size_t ngot = 0;
        if (tokenizer_encode(t, text, strlen(text), 0, &got, &ngot, err, sizeof err))
            fail_msg("%s/%s encode: %s", model, label, err);
        check_ids(model, label, "ids", got, ngot, want, nwant);
        free(got);
        if (tokenizer_encode(t, text, strlen(text), 1, &got, &ngot, err, sizeof err))
            fail_msg("%s/%s encode(special): %s", model, label, err);
        check_ids(model, label, "ids_with_special", got, ngot, want_s, nwant_s);
        free(got);
        char *dec = NULL;
        size_t dlen = 0;
        if (tokenizer_decode(t, want, nwant, 0, &dec, &dlen, err, sizeof err))
            fail_msg("%s/%s decode: %s", model, label, err);
        if (dlen != strlen(decoded) || memcmp(dec, decoded, dlen) != 0)
            fail_msg("%s/%s decode: got \"%.80s\"... (%zu bytes), want \"%.80s\"... (%zu bytes)", model, label, dec,
                     dlen, decoded, strlen(decoded));
        free(dec);
        /* skip_special on ids_with_special drops the added BOS/EOS: same text unless the text
         * itself spelled special tokens */
        if (!strstr(text, "<s>") && !strstr(text, "</s>") && !strstr(text, "<|")) {
            if (tokenizer_decode(t, want_s, nwant_s, 1, &dec, &dlen, err, sizeof err))
                fail_msg("%s/%s decode(skip_special): %s", model, label, err);
            if (dlen != strlen(decoded) || memcmp(dec, decoded, dlen) != 0)
                fail_msg("%s/%s decode(skip_special) differs: \"%.80s\"", model, label, dec);
            free(dec);
        }
        free(want);
        free(want_s);
        cJSON_Delete(c);
        count++;
    }
    free(all);
    tokenizer_free(t);
    return count;
}

static void test_mistral_cases(void **state) {
    (void)state;
    int n = run_cases("mistral");
    assert_int_equal(n, 15);
    print_message("mistral: %d cases match\n", n);
}

static void test_llama3_cases(void **state) {
    (void)state;
    int n = run_cases("llama3");
    assert_int_equal(n, 15);
    print_message("llama3: %d cases match\n", n);
}

static void test_special_ids(void **state) {
    (void)state;
    Tokenizer *m = load_ok(TOKDIR "/mistral_tokenizer.json");
    assert_int_equal(tokenizer_bos_id(m), 1);
    assert_int_equal(tokenizer_eos_id(m), 2);
    assert_int_equal(tokenizer_vocab_size(m), 32000);
    assert_string_equal(tokenizer_id_to_token(m, 1), "<s>");
    assert_string_equal(tokenizer_id_to_token(m, 3), "<0x00>");
    assert_null(tokenizer_id_to_token(m, 32000));
    assert_null(tokenizer_id_to_token(m, -1));
    /* decode with skip_special drops literal specials too */
    int32_t ids[] = {1, 264, 28705, 2};
    char *s = NULL, err[256];
    size_t n;
    assert_int_equal(tokenizer_decode(m, ids, 4, 1, &s, &n, err, sizeof err), 0);
    assert_string_equal(s, "a ");
    free(s);
    assert_int_equal(tokenizer_decode(m, ids, 4, 0, &s, &n, err, sizeof err), 0);
    assert_string_equal(s, "<s> a </s>");
    free(s);
    /* a lone continuation byte decodes to U+FFFD; bytes of a valid char to the char */
    int32_t bad[] = {3 + 0x80, 264};
    assert_int_equal(tokenizer_decode(m, bad, 2, 0, &s, &n, err, sizeof err), 0);
    assert_string_equal(s, "\xEF\xBF\xBD a");
    free(s);
    tokenizer_free(m);

    Tokenizer *l = load_ok(TOKDIR "/llama3_tokenizer.json");
    assert_int_equal(tokenizer_bos_id(l), 128000);
    assert_int_equal(tokenizer_eos_id(l), 128001);
    assert_int_equal(tokenizer_vocab_size(l), 128256);
    /* special tokens in text are matched (split_special_tokens=False) */
    const char *txt = "<|begin_of_text|>Hi<|eot_id|>";
    int32_t *ids2 = NULL;
    size_t n2 = 0;
    assert_int_equal(tokenizer_encode(l, txt, strlen(txt), 0, &ids2, &n2, err, sizeof err), 0);
    assert_int_equal(n2, 3);
    assert_int_equal(ids2[0], 128000);
    assert_int_equal(ids2[2], 128009);
    assert_int_equal(tokenizer_decode(l, ids2, n2, 1, &s, &n, err, sizeof err), 0);
    assert_string_equal(s, "Hi");
    free(s);
    assert_int_equal(tokenizer_decode(l, ids2, n2, 0, &s, &n, err, sizeof err), 0);
    assert_string_equal(s, txt);
    free(s);
    free(ids2);
    /* a lone byte of a multi-byte char decodes lossily */
    int32_t lone[] = {127};    /* byte 0xC2 ... whatever it is, decode must give valid UTF-8 */
    assert_int_equal(tokenizer_decode(l, lone, 1, 0, &s, &n, err, sizeof err), 0);
    free(s);
    tokenizer_free(l);
}

static void test_empty_text(void **state) {
    (void)state;
    char err[256];
    int32_t *ids = NULL;
    size_t n = 99;
    Tokenizer *m = load_ok(TOKDIR "/mistral_tokenizer.json");
    assert_int_equal(tokenizer_encode(m, "", 0, 0, &ids, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(tokenizer_encode(m, NULL, 0, 1, &ids, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    char *s = NULL;
    size_t len = 9;
    assert_int_equal(tokenizer_decode(m, NULL, 0, 0, &s, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    free(s);
    tokenizer_free(m);
}

/* Write `json` to NAME in the test folder, check that loading it fails, and return the message
 * (which names the file) for the caller's further checks. */
static const char *load_error(const char *name, const char *json, size_t len) {
    static char err[512];
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), name);
    tu_write_file(path, json, len);
    assert_null(tokenizer_load(path, err, sizeof err));
    assert_non_null(strstr(err, name));
    return err;
}

static void test_errors(void **state) {
    (void)state;
    char err[512] = {0};
    const char *e;

    assert_null(tokenizer_load("tests/fixtures/tokenizer/nope.json", err, sizeof err));
    assert_non_null(strstr(err, "nope.json"));

    e = load_error("bad.json", "{\"model\": {", 11);
    assert_non_null(strstr(e, "malformed JSON"));

    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}";
    e = load_error("wp.json", wp, strlen(wp));
    assert_non_null(strstr(e, "model.type"));
    assert_non_null(strstr(e, "WordPiece"));

    const char *uni = "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}";
    assert_non_null(strstr(load_error("uni.json", uni, strlen(uni)), "Unigram"));

    assert_non_null(strstr(load_error("nomodel.json", "{}", 2), "'model'"));

    const char *bm = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}";
    assert_non_null(strstr(load_error("badmerge.json", bm, strlen(bm)), "model.merges[0]"));

    const char *br = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                     " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"},"
                     " \"behavior\": \"Isolated\"}}";
    e = load_error("badre.json", br, strlen(br));
    assert_non_null(strstr(e, "pre_tokenizer"));
    assert_non_null(strstr(e, "regex"));

    const char *bn = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                     " \"normalizer\": {\"type\": \"BertNormalizer\"}}";
    assert_non_null(strstr(load_error("badnorm.json", bn, strlen(bn)), "normalizer"));

    /* ids out of the vocabulary */
    Tokenizer *m = load_ok(TOKDIR "/mistral_tokenizer.json");
    int32_t ids[] = {1, 32000};
    char *s = (char *)1;
    size_t n;
    assert_int_not_equal(tokenizer_decode(m, ids, 2, 0, &s, &n, err, sizeof err), 0);
    assert_non_null(strstr(err, "32000"));
    assert_null(s);
    int32_t neg[] = {-5};
    assert_int_not_equal(tokenizer_decode(m, neg, 1, 0, &s, &n, err, sizeof err), 0);
    assert_non_null(strstr(err, "-5"));
    /* invalid UTF-8 text */
    int32_t *out = NULL;
    assert_int_not_equal(tokenizer_encode(m, "a\xff", 2, 0, &out, &n, err, sizeof err), 0);
    assert_non_null(strstr(err, "UTF-8"));
    tokenizer_free(m);
}

static void test_folder_path(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/folder", tu_tmpdir());
    mkdir(path, 0700);
    char file[600];
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
    size_t n;
    char *data = tu_read_file(TOKDIR "/mistral_tokenizer.json", &n);
    tu_write_file(file, data, n);
    free(data);
    Tokenizer *t = load_ok(path);
    int32_t *ids = NULL;
    size_t k;
    char err[256];
    assert_int_equal(tokenizer_encode(t, "Hello", 5, 1, &ids, &k, err, sizeof err), 0);
    assert_true(k >= 2);
    assert_int_equal(ids[0], 1);
    free(ids);
    tokenizer_free(t);
    /* an empty folder names the missing tokenizer.json */
    snprintf(path, sizeof path, "%s/emptyfolder", tu_tmpdir());
    mkdir(path, 0700);
    assert_null(tokenizer_load(path, err, sizeof err));
    assert_non_null(strstr(err, "emptyfolder/tokenizer.json"));
}

/* ---------------------------------------------------------------- hostile tokenizer.json (issue 13, 12) */

/* A tokenizer whose vocabulary is just "a" (and "b", "c"), with the given normalizer,
 * pre_tokenizer and decoder JSON (NULL: null). */
static char *tiny_with(const char *normalizer, const char *pre, const char *decoder) {
    static const char fmt[] =
        "{\"normalizer\": %s, \"pre_tokenizer\": %s, \"decoder\": %s,"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2}, \"merges\": []}}";
    size_t n = strlen(fmt) + (normalizer ? strlen(normalizer) : 4) + (pre ? strlen(pre) : 4) + (decoder ? strlen(decoder) : 4);
    char *s = malloc(n);
    snprintf(s, n, fmt, normalizer ? normalizer : "null", pre ? pre : "null", decoder ? decoder : "null");
    return s;
}

/* {"type": "Sequence", "<key>": [k copies of step]} */
static char *sequence_of(const char *key, const char *step, int k) {
    size_t n = 64 + strlen(key) + (size_t)k * (strlen(step) + 2);
    char *s = malloc(n);
    size_t at = (size_t)snprintf(s, n, "{\"type\": \"Sequence\", \"%s\": [", key);
    for (int i = 0; i < k; i++) at += (size_t)snprintf(s + at, n - at, "%s%s", i ? ", " : "", step);
    snprintf(s + at, n - at, "]}");
    return s;
}

static Tokenizer *load_json_ok(const char *name, const char *json) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), name);
    tu_write_file(path, json, strlen(json));
    return load_ok(path);
}

/* 16 Replace steps, each doubling the text: 100 bytes would become 6.5 MB (and a few more steps,
 * gigabytes).  The growth is refused past a cap, with a message naming the step. */
static void test_replace_growth_bounded(void **state) {
    (void)state;
    char err[512];
    char *norm = sequence_of("normalizers", "{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"aa\"}", 16);
    char *js = tiny_with(norm, NULL, NULL);
    Tokenizer *t = load_json_ok("grow_norm.json", js);
    char text[101];
    memset(text, 'a', 100);
    text[100] = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tokenizer_encode(t, text, 100, 0, &ids, &n, err, sizeof err);
    if (rc == 0) fail_msg("encode grew 100 bytes into %zu tokens; expected a refusal", n);
    assert_non_null(strstr(err, "grow_norm.json"));
    assert_non_null(strstr(err, "normalizer step"));
    assert_non_null(strstr(err, "Replace"));
    /* a modest chain still works: 3 doublings of 100 bytes */
    tokenizer_free(t);
    free(js);
    free(norm);
    norm = sequence_of("normalizers", "{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"aa\"}", 3);
    js = tiny_with(norm, NULL, NULL);
    t = load_json_ok("grow_norm3.json", js);
    if (tokenizer_encode(t, text, 100, 0, &ids, &n, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(n, 800);
    free(ids);
    tokenizer_free(t);
    free(js);
    free(norm);

    /* the decoder's Replace likewise */
    char *dec = sequence_of("decoders", "{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"aa\"}", 16);
    js = tiny_with(NULL, NULL, dec);
    t = load_json_ok("grow_dec.json", js);
    int32_t zeros[100] = {0};
    char *out = NULL;
    size_t len = 0;
    rc = tokenizer_decode(t, zeros, 100, 0, &out, &len, err, sizeof err);
    if (rc == 0) fail_msg("decode grew 100 ids into %zu bytes; expected a refusal", len);
    assert_non_null(strstr(err, "grow_dec.json"));
    assert_non_null(strstr(err, "decoder step"));
    tokenizer_free(t);
    free(js);
    free(dec);
}

/* A regex that backtracks exponentially (on 40 a's then a c) hits PCRE2's match limit while
 * matching: the message is PCRE2's, not "out of memory". */
static void test_regex_match_failure(void **state) {
    (void)state;
    char err[512];
    char text[64];
    memset(text, 'a', 40);
    strcpy(text + 40, "c");
    const char *bad_re = "{\"Regex\": \"(a+)+$\"}"; /* no required character to rule it out early */
    char norm[256], pre[256];
    snprintf(norm, sizeof norm, "{\"type\": \"Replace\", \"pattern\": %s, \"content\": \"b\"}", bad_re);
    snprintf(pre, sizeof pre, "{\"type\": \"Split\", \"pattern\": %s, \"behavior\": \"Isolated\"}", bad_re);
    const char *cases[][2] = {{norm, NULL}, {NULL, pre}};
    for (int i = 0; i < 2; i++) {
        char *js = tiny_with(cases[i][0], cases[i][1], NULL);
        Tokenizer *t = load_json_ok(i ? "re_pre.json" : "re_norm.json", js);
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = tokenizer_encode(t, text, strlen(text), 0, &ids, &n, err, sizeof err);
        if (rc == 0) fail_msg("case %d: encode succeeded (%zu ids); the regex should exhaust the match limit", i, n);
        if (strstr(err, "out of memory") || !strstr(err, "limit")) fail_msg("case %d: message \"%s\" is not PCRE2's", i, err);
        assert_non_null(strstr(err, i ? "pre_tokenizer" : "normalizer"));
        tokenizer_free(t);
        free(js);
    }
}

/* An id of INT32_MAX made max_id + 1 overflow an int (UBSan); ids are below INT32_MAX. */
static void test_vocab_id_limit(void **state) {
    (void)state;
    const char *js = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2147483647}, \"merges\": []}}";
    const char *e = load_error("maxid.json", js, strlen(js));
    if (!strstr(e, "model.vocab") || !strstr(e, "2147483647")) fail_msg("message \"%s\" does not name the id", e);
    const char *ja = "{\"added_tokens\": [{\"id\": 2147483647, \"content\": \"<x>\"}],"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
    assert_non_null(strstr(load_error("maxid_added.json", ja, strlen(ja)), "added_tokens[0]"));
}

/* A FIFO, a folder or a link loop named tokenizer.json is refused by name, never waited on. */
static void test_special_files(void **state) {
    (void)state;
    char dir[512], p[600], err[512];
    snprintf(dir, sizeof dir, "%s/specials", tu_tmpdir());
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    alarm(20); /* the old reader blocked forever in open() on a FIFO */
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_null(tokenizer_load(dir, err, sizeof err));
    if (!strstr(err, "tokenizer.json") || !strstr(err, "FIFO")) fail_msg("FIFO: \"%s\"", err);
    assert_null(tokenizer_load(p, err, sizeof err)); /* the FIFO's own path, as --tokenizer PATH */
    if (!strstr(err, "tokenizer.json") || !strstr(err, "FIFO")) fail_msg("FIFO by path: \"%s\"", err);
    unlink(p);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_null(tokenizer_load(dir, err, sizeof err));
    if (!strstr(err, "folder") || strstr(err, "out of memory")) fail_msg("folder: \"%s\"", err);
    rmdir(p);
    assert_int_equal(symlink("tokenizer.json", p), 0);
    assert_null(tokenizer_load(dir, err, sizeof err));
    if (!strstr(err, "tokenizer.json") || !strstr(err, "link loop")) fail_msg("link loop: \"%s\"", err);
    unlink(p);
    alarm(0);
}

/* A tiny GPT-2 style byte-level tokenizer: "Ġ" is the byte-level form of a space. */
static const char *TINY_BL =
    "{\"version\": \"1.0\","
    " \"added_tokens\": [{\"id\": 0, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false,"
    "   \"rstrip\": false, \"normalized\": false, \"special\": true}],"
    " \"normalizer\": null,"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
    "   \"use_regex\": true},"
    " \"post_processor\": {\"type\": \"TemplateProcessing\","
    "   \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
    "   \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [0], \"tokens\": [\"<s>\"]}}},"
    " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"fuse_unk\": false,"
    "   \"byte_fallback\": false, \"ignore_merges\": false,"
    "   \"vocab\": {\"<s>\": 0, \"h\": 1, \"e\": 2, \"l\": 3, \"o\": 4, \"Ġ\": 5, \"w\": 6, \"r\": 7, \"d\": 8,"
    "     \"he\": 9, \"ll\": 10, \"hell\": 11, \"hello\": 12, \"Ġw\": 13, \"or\": 14, \"Ġwor\": 15, \"Ġworld\": 16,"
    "     \"!\": 17, \"Ã\": 18, \"©\": 19, \"Ã©\": 20, \"'\": 21, \"s\": 22},"
    "   \"merges\": [[\"h\", \"e\"], [\"l\", \"l\"], [\"he\", \"ll\"], [\"hell\", \"o\"], [\"Ġ\", \"w\"],"
    "     [\"o\", \"r\"], \"Ġw or\", [\"Ġwor\", \"ld\"], [\"Ã\", \"©\"]]}}";

static void test_tiny_bytelevel(void **state) {
    (void)state;
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/tiny_bl.json", tu_tmpdir());
    tu_write_file(path, TINY_BL, strlen(TINY_BL));
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    /* "Ġwor ld" merge needs "ld", which is not in the vocab: must be a load error */
    assert_null(t);
    assert_non_null(strstr(err, "model.merges[7]"));

    /* Build a consistent version: replace the bad merge by one whose result exists. */
    const char *good_merges = "[[\"h\", \"e\"], [\"l\", \"l\"], [\"he\", \"ll\"], [\"hell\", \"o\"], [\"Ġ\", \"w\"],"
                              " [\"o\", \"r\"], \"Ġw or\", [\"Ã\", \"©\"]]}}";
    const char *m = strstr(TINY_BL, "\"merges\": ");
    size_t head = (size_t)(m - TINY_BL) + strlen("\"merges\": ");
    char *json = malloc(head + strlen(good_merges) + 1);
    assert_non_null(json);
    memcpy(json, TINY_BL, head);
    strcpy(json + head, good_merges);
    tu_write_file(path, json, strlen(json));
    free(json);
    t = load_ok(path);
    assert_int_equal(tokenizer_bos_id(t), 0);
    assert_int_equal(tokenizer_vocab_size(t), 23);

    const char *text = "hello world!";
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), 0, &ids, &n, err, sizeof err), 0);
    /* hello | Ġworld -> Ġwor l d | ! */
    int32_t want[] = {12, 15, 3, 8, 17};
    check_ids("tiny", "hello", "ids", ids, n, want, 5);
    free(ids);
    assert_int_equal(tokenizer_encode(t, text, strlen(text), 1, &ids, &n, err, sizeof err), 0);
    int32_t want_s[] = {0, 12, 15, 3, 8, 17};
    check_ids("tiny", "hello", "ids_with_special", ids, n, want_s, 6);
    char *s = NULL;
    size_t len;
    assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "<s>hello world!");
    free(s);
    assert_int_equal(tokenizer_decode(t, ids, n, 1, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, text);
    free(s);
    free(ids);

    /* é is bytes C3 A9 -> "Ã©" merged; "'s" is split by the GPT-2 regex; unknown chars vanish
     * (no unk token) */
    const char *t2 = "\xc3\xa9's<s>";
    assert_int_equal(tokenizer_encode(t, t2, strlen(t2), 0, &ids, &n, err, sizeof err), 0);
    int32_t want2[] = {20, 21, 22, 0};
    check_ids("tiny", "accent", "ids", ids, n, want2, 4);
    assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, t2);
    free(s);
    /* half a character: lossy U+FFFD */
    int32_t half[] = {18, 17};
    assert_int_equal(tokenizer_decode(t, half, 2, 0, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "\xEF\xBF\xBD!");
    free(s);
    free(ids);
    tokenizer_free(t);
}

/* A hand-made tokenizer exercising the other supported parts: Sequence normalizer (Strip,
 * Lowercase, Replace with a Regex), Sequence pre-tokenizer (WhitespaceSplit, Punctuation,
 * Digits), fused unk, added tokens with lstrip / single_word / normalized, RobertaProcessing,
 * and no decoder (tokens joined by spaces). Expected ids follow HF's documented semantics. */
static const char *TINY_MISC =
    "{\"added_tokens\": ["
    "  {\"id\": 1, \"content\": \"<cls>\", \"special\": true, \"normalized\": false},"
    "  {\"id\": 2, \"content\": \"<sep>\", \"special\": true, \"normalized\": false},"
    "  {\"id\": 11, \"content\": \"[MASK]\", \"special\": true, \"normalized\": false, \"lstrip\": true},"
    "  {\"id\": 12, \"content\": \"WOW\", \"special\": false, \"normalized\": true, \"single_word\": true}],"
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Strip\", \"strip_left\": true,"
    "   \"strip_right\": true}, {\"type\": \"Lowercase\"}, {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\d\"},"
    "   \"content\": \"#\"}]},"
    " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"WhitespaceSplit\"},"
    "   {\"type\": \"Punctuation\", \"behavior\": \"Isolated\"}, {\"type\": \"Digits\", \"individual_digits\": true}]},"
    " \"post_processor\": {\"type\": \"RobertaProcessing\", \"sep\": [\"<sep>\", 2], \"cls\": [\"<cls>\", 1],"
    "   \"trim_offsets\": true, \"add_prefix_space\": false},"
    " \"decoder\": null,"
    " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
    "   \"vocab\": {\"<unk>\": 0, \"<cls>\": 1, \"<sep>\": 2, \"h\": 3, \"e\": 4, \"y\": 5, \"he\": 6, \"hey\": 7,"
    "     \"!\": 8, \",\": 9, \"#\": 10},"
    "   \"merges\": [\"h e\", \"he y\"]}}";

static void test_tiny_misc(void **state) {
    (void)state;
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/tiny_misc.json", tu_tmpdir());
    tu_write_file(path, TINY_MISC, strlen(TINY_MISC));
    Tokenizer *t = load_ok(path);
    assert_int_equal(tokenizer_bos_id(t), 1);
    assert_int_equal(tokenizer_eos_id(t), 2);
    assert_int_equal(tokenizer_vocab_size(t), 13);
    const char *text = "  HEY, hey!  [MASK] 12 q wowx wow";
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), 1, &ids, &n, err, sizeof err), 0);
    int32_t want[] = {1, 7, 9, 7, 8, 11, 10, 10, 0, 0, 12, 2};
    check_ids("misc", "text", "ids_with_special", ids, n, want, 12);
    char *s = NULL;
    size_t len;
    assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "<cls> hey , hey ! [MASK] # # <unk> <unk> wow <sep>");
    free(s);
    assert_int_equal(tokenizer_decode(t, ids, n, 1, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "hey , hey ! # # <unk> <unk> wow");
    free(s);
    free(ids);
    tokenizer_free(t);
}

/* CLIP-like: end_of_word_suffix "</w>", BPEDecoder, non-ASCII Lowercase. */
static void test_tiny_suffix(void **state) {
    (void)state;
    const char *js =
        "{\"normalizer\": {\"type\": \"Lowercase\"}, \"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"},"
        " \"decoder\": {\"type\": \"BPEDecoder\", \"suffix\": \"</w>\"}, \"post_processor\": null,"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"end_of_word_suffix\": \"</w>\","
        "  \"vocab\": {\"h\": 0, \"i</w>\": 1, \"hi</w>\": 2, \"\xc3\xa9</w>\": 3, \"<unk>\": 4},"
        "  \"merges\": [\"h i</w>\"]}}";
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/tiny_suffix.json", tu_tmpdir());
    tu_write_file(path, js, strlen(js));
    Tokenizer *t = load_ok(path);
    assert_int_equal(tokenizer_bos_id(t), -1);
    assert_int_equal(tokenizer_eos_id(t), -1);
    const char *text = "HI \xc3\x89 x";
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), 1, &ids, &n, err, sizeof err), 0);
    int32_t want[] = {2, 3, 4};
    check_ids("suffix", "text", "ids", ids, n, want, 3);
    char *s = NULL;
    size_t len;
    assert_int_equal(tokenizer_decode(t, ids, 2, 0, &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "hi \xc3\xa9");
    free(s);
    free(ids);
    tokenizer_free(t);
}

/* Metaspace pre-tokenizer (older Llama/Mistral files) built from the Mistral vocab: must give
 * the same ids as the Prepend/Replace normalizer form on text without added tokens. */
static void test_metaspace_form(void **state) {
    (void)state;
    size_t n;
    char *data = tu_read_file(TOKDIR "/mistral_tokenizer.json", &n);
    cJSON *j = cJSON_Parse(data);
    free(data);
    assert_non_null(j);
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", "first");
    cJSON_AddBoolToObject(pre, "split", 0);
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", pre);
    cJSON *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(dec, "type", "Metaspace");
    cJSON_AddStringToObject(dec, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(dec, "prepend_scheme", "first");
    cJSON_AddBoolToObject(dec, "split", 0);
    cJSON_ReplaceItemInObject(j, "decoder", dec);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/metaspace.json", tu_tmpdir());
    tu_write_file(path, out, strlen(out));
    free(out);
    Tokenizer *ms = load_ok(path);
    Tokenizer *ref = load_ok(TOKDIR "/mistral_tokenizer.json");
    const char *texts[] = {"Hello world, this is  a test.", "tabs\tand\nlines", "naïve café 日本", "x"};
    for (int i = 0; i < 4; i++) {
        int32_t *a = NULL, *b = NULL;
        size_t na, nb;
        assert_int_equal(tokenizer_encode(ms, texts[i], strlen(texts[i]), 1, &a, &na, err, sizeof err), 0);
        assert_int_equal(tokenizer_encode(ref, texts[i], strlen(texts[i]), 1, &b, &nb, err, sizeof err), 0);
        check_ids("metaspace", texts[i], "ids", a, na, b, nb);
        char *s = NULL;
        size_t len;
        assert_int_equal(tokenizer_decode(ms, a + 1, na - 1, 0, &s, &len, err, sizeof err), 0);
        /* the Metaspace decoder drops every ▁ of the first token and, having no ByteFallback,
         * leaves <0x09>-style tokens as they are */
        if (i != 1) assert_string_equal(s, texts[i]);
        else assert_string_equal(s, "tabs<0x09>and<0x0A>lines");
        free(s);
        free(a);
        free(b);
    }
    /* "first": the piece after an added token gets no ▁ */
    const char *t3 = "<s>hi";
    int32_t *a = NULL;
    size_t na;
    assert_int_equal(tokenizer_encode(ms, t3, strlen(t3), 0, &a, &na, err, sizeof err), 0);
    assert_true(na >= 2);
    assert_int_equal(a[0], 1);
    assert_string_not_equal(tokenizer_id_to_token(ms, a[1]), "\xe2\x96\x81hi");
    free(a);
    tokenizer_free(ms);
    tokenizer_free(ref);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A large text (the fixture texts repeated to 256 KB) encodes and decodes back exactly; the
 * load and encode times are printed for information only: speed is measured in make bench. */
static void test_large_roundtrip(void **state) {
    (void)state;
    const char *models[] = {"mistral", "llama3"};
    for (int mi = 0; mi < 2; mi++) {
        char path[256], cases[256], err[256];
        snprintf(path, sizeof path, TOKDIR "/%s_tokenizer.json", models[mi]);
        snprintf(cases, sizeof cases, TOKDIR "/%s_cases.jsonl", models[mi]);
        double t0 = now_s();
        Tokenizer *t = load_ok(path);
        double t_load = now_s() - t0;
        /* concatenate the case texts until ~1 MB */
        char *all = tu_read_file(cases, NULL);
        char *big = NULL;
        size_t nbig = 0;
        char *save = NULL;
        char *texts = strdup(all);
        assert_non_null(texts);
        for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *c = cJSON_Parse(line);
            const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
            size_t k = strlen(s);
            if (strstr(s, "<s>")) k = 0; /* literal specials do not round-trip */
            big = realloc(big, nbig + k + 2);
            assert_non_null(big);
            memcpy(big + nbig, s, k);
            nbig += k;
            big[nbig++] = '\n';
            cJSON_Delete(c);
        }
        free(texts);
        free(all);
        size_t one = nbig;
        const char *bench = getenv("LCB_TOK_BENCH");
        size_t target = bench ? (1u << 20) : (1u << 18);
        while (nbig < target) {
            big = realloc(big, nbig + one);
            assert_non_null(big);
            memcpy(big + nbig, big, one);
            nbig += one;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        t0 = now_s();
        assert_int_equal(tokenizer_encode(t, big, nbig, 0, &ids, &n, err, sizeof err), 0);
        double t_enc = now_s() - t0;
        print_message("%s: load %.3f s, encode %zu bytes -> %zu ids in %.3f s (%.2f MB/s)\n", models[mi], t_load,
                      nbig, n, t_enc, (double)nbig / 1e6 / t_enc);
        /* round trip through decode */
        char *s = NULL;
        size_t len;
        assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, err, sizeof err), 0);
        assert_int_equal(len, nbig);
        assert_memory_equal(s, big, nbig);
        free(s);
        free(ids);
        free(big);
        tokenizer_free(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mistral_cases),  cmocka_unit_test(test_llama3_cases),
        cmocka_unit_test(test_special_ids),    cmocka_unit_test(test_empty_text),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_folder_path),
        cmocka_unit_test(test_tiny_bytelevel), cmocka_unit_test(test_metaspace_form), cmocka_unit_test(test_tiny_misc), cmocka_unit_test(test_tiny_suffix),
        cmocka_unit_test(test_large_roundtrip),
        cmocka_unit_test(test_replace_growth_bounded), cmocka_unit_test(test_regex_match_failure),
        cmocka_unit_test(test_vocab_id_limit), cmocka_unit_test(test_special_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
