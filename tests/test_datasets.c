/*
 * test_datasets.c — datasets/: SHA-256 against the FIPS 180-4 vectors; the token file formats
 * (LongLoRA uint16 .bin, uint32, text ids); text files, folders and JSONL tokenized with a
 * real tokenizer (the Mistral fixture) against tokenizer_encode of each document; the BOS
 * policies, truncation at --tokens and repetition; and the error messages of bad inputs.
 */
#include "testutil.h"

#include <sys/stat.h>

#include "datasets/dataset.h"
#include "datasets/sha256.h"
#include "engine/common.h"
#include "engine/tokenizer.h"

#define TOKJSON FIXTURES "/tokenizer/mistral_tokenizer.json"

static void hex_of(const char *s, size_t n, char out[65]) {
    Sha256 h;
    sha256_init(&h);
    /* fed in uneven pieces to exercise the partial-block path */
    for (size_t i = 0; i < n; i += 7) sha256_update(&h, s + i, n - i < 7 ? n - i : 7);
    sha256_hex(&h, out);
}

static void test_sha256_vectors(void **state) {
    char h[65];
    hex_of("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *mil = malloc(1000000);
    memset(mil, 'a', 1000000);
    hex_of(mil, 1000000, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(mil);
}

static void test_token_files(void **state) {
    char p16[256], p32[256], pids[256], err[LCB_ERRLEN];
    snprintf(p16, sizeof p16, "%s/t.bin", tu_tmpdir());
    snprintf(p32, sizeof p32, "%s/t.u32", tu_tmpdir());
    snprintf(pids, sizeof pids, "%s/t.ids", tu_tmpdir());
    int32_t ids[6] = {0, 1, 255, 256, 65535, 12345};
    assert_int_equal(dataset_write_tokens(p16, LCB_FMT_U16, ids, 6, err, sizeof err), 0);
    int32_t big[2] = {70000, 3};
    assert_int_equal(dataset_write_tokens(p32, LCB_FMT_U32, big, 2, err, sizeof err), 0);
    tu_write_file(pids, "5 6\n7\t8 ", 8);
    /* uint16 little-endian on disk, as numpy's memmap of LongLoRA's .bin */
    size_t len;
    unsigned char *raw = (unsigned char *)tu_read_file(p16, &len);
    assert_int_equal(len, 12);
    assert_int_equal(raw[4], 0xff); assert_int_equal(raw[5], 0x00);
    assert_int_equal(raw[6], 0x00); assert_int_equal(raw[7], 0x01);
    free(raw);
    assert_int_equal(dataset_write_tokens(p16, LCB_FMT_U16, big, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "70000"));
    assert_int_equal(dataset_write_tokens(p16, LCB_FMT_U16, ids, 6, err, sizeof err), 0);

    DatasetOptions o = {.spec = p16, .bos = LCB_BOS_AUTO};
    Dataset d;
    if (dataset_load(&d, &o, NULL, -1, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.n, 6);
    assert_memory_equal(d.ids, ids, sizeof ids);
    assert_int_equal(d.bos, LCB_BOS_NONE);       /* auto: token files carry their own */
    assert_int_equal(d.pretokenized, 1);
    assert_int_equal(d.max_id, 65535);
    char h1[65];
    memcpy(h1, d.hash, 65);
    dataset_free(&d);
    /* the same ids as uint32 hash the same: the hash is of the stream, not the file */
    int32_t *v;
    size_t n;
    char p32b[256];
    snprintf(p32b, sizeof p32b, "%s/same.u32", tu_tmpdir());
    assert_int_equal(dataset_write_tokens(p32b, LCB_FMT_U32, ids, 6, err, sizeof err), 0);
    o.spec = p32b;
    if (dataset_load(&d, &o, NULL, -1, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(d.hash, h1);
    dataset_free(&d);
    assert_int_equal(dataset_read_tokens(p32, LCB_FMT_U32, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 70000);
    free(v);
    /* several sources, BOS before each, truncated at max_tokens */
    char spec[800];
    snprintf(spec, sizeof spec, "%s,%s,%s", p16, p32, pids);
    o = (DatasetOptions){.spec = spec, .bos = LCB_BOS_EACH_DOC, .max_tokens = 12};
    if (dataset_load(&d, &o, NULL, 9, err, sizeof err)) fail_msg("%s", err);
    int32_t want[12] = {9, 0, 1, 255, 256, 65535, 12345, 9, 70000, 3, 9, 5};
    assert_int_equal(d.n, 12);
    assert_memory_equal(d.ids, want, sizeof want);
    assert_int_equal(d.n_docs, 3);
    assert_int_equal(d.doc_pos[1], 7);
    assert_int_equal(d.doc_pos[2], 10);
    assert_int_equal(d.truncated, 1);
    assert_int_equal(d.passes, 1);
    dataset_free(&d);
    /* repeated to reach max_tokens, and the second pass is where it says */
    o = (DatasetOptions){.spec = pids, .bos = LCB_BOS_NONE, .max_tokens = 10, .repeat = 1};
    if (dataset_load(&d, &o, NULL, -1, err, sizeof err)) fail_msg("%s", err);
    int32_t rep[10] = {5, 6, 7, 8, 5, 6, 7, 8, 5, 6};
    assert_memory_equal(d.ids, rep, sizeof rep);
    assert_int_equal(d.passes, 3);
    assert_int_equal(d.repeat_pos, 4);
    dataset_free(&d);
    /* without repeat the stream is what there is */
    o.repeat = 0;
    if (dataset_load(&d, &o, NULL, -1, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.n, 4);
    dataset_free(&d);
    /* an odd byte count is not a uint16 file */
    char odd[256];
    snprintf(odd, sizeof odd, "%s/odd.bin", tu_tmpdir());
    tu_write_file(odd, "abc", 3);
    o = (DatasetOptions){.spec = odd};
    assert_int_equal(dataset_load(&d, &o, NULL, -1, err, sizeof err), -1);
    assert_non_null(strstr(err, "odd.bin"));
    /* a policy needing BOS without one */
    o = (DatasetOptions){.spec = p16, .bos = LCB_BOS_FIRST};
    assert_int_equal(dataset_load(&d, &o, NULL, -1, err, sizeof err), -1);
    assert_non_null(strstr(err, "--bos"));
}

static int32_t *encode(Tokenizer *t, const char *s, size_t *n) {
    int32_t *ids;
    char err[LCB_ERRLEN];
    if (tokenizer_encode(t, s, strlen(s), 0, &ids, n, err, sizeof err)) fail_msg("%s", err);
    return ids;
}

static void test_text_sources(void **state) {
    char err[LCB_ERRLEN];
    Tokenizer *tok = tokenizer_load(TOKJSON, err, sizeof err);
    if (!tok) fail_msg("%s", err);
    int32_t bos = tokenizer_bos_id(tok);
    assert_int_equal(bos, 1);
    const char *docs[3] = {"Call me Ishmael.", "Some years ago, never mind how long precisely.", "It is a way I have."};
    /* a folder: *.txt sorted by name (other files ignored) */
    char dir[256], p[512];
    snprintf(dir, sizeof dir, "%s/corpus", tu_tmpdir());
    mkdir(dir, 0755);
    const char *names[3] = {"b.txt", "c.txt", "a.txt"};   /* sorted: a (docs[2]), b (docs[0]), c (docs[1]) */
    for (int i = 0; i < 3; i++) { snprintf(p, sizeof p, "%s/%s", dir, names[i]); tu_write_file(p, docs[i], strlen(docs[i])); }
    snprintf(p, sizeof p, "%s/README.md", dir);
    tu_write_file(p, "not a document", 14);
    size_t n[3];
    int32_t *e[3];
    for (int i = 0; i < 3; i++) e[i] = encode(tok, docs[i], &n[i]);
    const int order[3] = {2, 0, 1};
    LcbBos pol[3] = {LCB_BOS_NONE, LCB_BOS_FIRST, LCB_BOS_EACH_DOC};
    for (int k = 0; k < 3; k++) {
        DatasetOptions o = {.spec = dir, .bos = pol[k]};
        Dataset d;
        if (dataset_load(&d, &o, tok, bos, err, sizeof err)) fail_msg("%s", err);
        size_t at = 0;
        for (int j = 0; j < 3; j++) {
            int i = order[j];
            assert_int_equal(d.doc_pos[j], at);
            if (pol[k] == LCB_BOS_EACH_DOC || (pol[k] == LCB_BOS_FIRST && j == 0)) assert_int_equal(d.ids[at++], bos);
            assert_memory_equal(d.ids + at, e[i], n[i] * sizeof(int32_t));
            at += n[i];
        }
        assert_int_equal(d.n, at);
        assert_int_equal(d.n_docs, 3);
        assert_non_null(strstr(d.doc_name[0], "a.txt"));
        dataset_free(&d);
    }
    /* auto = first for text */
    DatasetOptions o = {.spec = dir, .bos = LCB_BOS_AUTO};
    Dataset d;
    if (dataset_load(&d, &o, tok, bos, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.bos, LCB_BOS_FIRST);
    assert_int_equal(d.ids[0], bos);
    char src_hash[65];
    memcpy(src_hash, d.hash, 65);
    dataset_free(&d);
    /* a named corpus is a folder of the corpus directory */
    o = (DatasetOptions){.spec = "corpus", .bos = LCB_BOS_AUTO, .corpus_dir = tu_tmpdir()};
    if (dataset_load(&d, &o, tok, bos, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(d.hash, src_hash);
    dataset_free(&d);
    o.spec = "moby-dick-nope";
    assert_int_equal(dataset_load(&d, &o, tok, bos, err, sizeof err), -1);
    assert_non_null(strstr(err, "make corpora"));
    /* JSONL: one document per line, the named field */
    char jl[256];
    snprintf(jl, sizeof jl, "%s/docs.jsonl", tu_tmpdir());
    char body[1024];
    snprintf(body, sizeof body, "{\"body\": \"%s\", \"id\": 1}\n\n{\"body\": \"%s\"}\n", docs[0], docs[1]);
    tu_write_file(jl, body, strlen(body));
    o = (DatasetOptions){.spec = jl, .field = "body", .bos = LCB_BOS_EACH_DOC};
    if (dataset_load(&d, &o, tok, bos, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.n, 2 + n[0] + n[1]);
    assert_int_equal(d.n_docs, 2);
    assert_memory_equal(d.ids + 1, e[0], n[0] * sizeof(int32_t));
    assert_int_equal(d.ids[1 + n[0]], bos);
    assert_non_null(strstr(d.doc_name[1], "docs.jsonl:3"));
    dataset_free(&d);
    o.field = "text";
    assert_int_equal(dataset_load(&d, &o, tok, bos, err, sizeof err), -1);
    assert_non_null(strstr(err, "docs.jsonl:1"));
    assert_non_null(strstr(err, "\"text\""));
    /* a plain text file is one document; text without a tokenizer is an error */
    snprintf(p, sizeof p, "%s/a.txt", dir);
    o = (DatasetOptions){.spec = p, .bos = LCB_BOS_NONE};
    if (dataset_load(&d, &o, tok, bos, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.n, n[2]);
    dataset_free(&d);
    assert_int_equal(dataset_load(&d, &o, NULL, -1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tokenizer"));
    /* the text file can be forced to be read as ids */
    char idsf[256];
    snprintf(idsf, sizeof idsf, "%s/ids.txt", tu_tmpdir());
    tu_write_file(idsf, "3 4 5", 5);
    o = (DatasetOptions){.spec = idsf, .format = LCB_FMT_IDS};
    if (dataset_load(&d, &o, NULL, -1, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.ids[2], 5);
    dataset_free(&d);
    for (int i = 0; i < 3; i++) free(e[i]);
    tokenizer_free(tok);
}

static void test_names(void **state) {
    LcbBos b;
    LcbTokenFormat f;
    assert_int_equal(dataset_bos_parse("each-doc", &b), 0);
    assert_int_equal(b, LCB_BOS_EACH_DOC);
    assert_int_equal(dataset_bos_parse("every", &b), -1);
    assert_int_equal(dataset_format_parse("u16", &f), 0);
    assert_int_equal(f, LCB_FMT_U16);
    assert_string_equal(dataset_format_name(LCB_FMT_U32), "u32");
    assert_int_equal(dataset_format_parse("u8", &f), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_token_files),
        cmocka_unit_test(test_text_sources),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
