/*
 * fuzz_tokens.c — libFuzzer harness of the dataset readers (datasets/dataset.c): LongLoRA's
 * uint16 .bin, uint32 files, whitespace-separated id text, JSONL and plain text documents.
 * Input: one selector byte, then the file.  Selector bits 0-2: format (0 u16, 1 u32, 2 ids,
 * 3 jsonl, 4+ text); bits 3-4: BOS policy (auto, none, first, each-doc); bit 5: repeat;
 * bits 6-7: max_tokens (0, 1, 7, 100).  dataset_load must refuse the file with a message or
 * build a stream that respects max_tokens, whose ids are non-negative, whose document
 * positions are ordered and inside the stream.  Text is tokenized with the small byte-level
 * tokenizer of the seed corpus ($LCB_FUZZ_TOKENIZER overrides it).
 */
#include "tests/fuzz/fuzz_util.h"
#include "datasets/dataset.h"

static Tokenizer *fuzz_tokens_tok;

static const Tokenizer *fuzz_tokens_tokenizer(void) {
    if (!fuzz_tokens_tok) {
        const char *p = getenv("LCB_FUZZ_TOKENIZER");
        char err[1024];
        if (!p) p = "tests/fuzz/corpus/tokenizer/llama3_trim.json";
        fuzz_tokens_tok = tokenizer_load(p, err, sizeof err);
        if (!fuzz_tokens_tok) { fprintf(stderr, "fuzz_tokens: %s (run from the repository root)\n", err); abort(); }
    }
    return fuzz_tokens_tok;
}

int fuzz_tokens_one(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const LcbTokenFormat fmts[] = {LCB_FMT_U16, LCB_FMT_U32, LCB_FMT_IDS, LCB_FMT_JSONL, LCB_FMT_TEXT};
    static const LcbBos bos[] = {LCB_BOS_AUTO, LCB_BOS_NONE, LCB_BOS_FIRST, LCB_BOS_EACH_DOC};
    static const uint64_t maxes[] = {0, 1, 7, 100};
    uint8_t sel = data[0];
    LcbTokenFormat f = fmts[(sel & 7) < 4 ? (sel & 7) : 4];
    char path[64], err[1024] = "";
    int fd = fuzz_memfile(data + 1, size - 1, path, sizeof path);

    /* the raw reader of pre-tokenized files */
    if (f == LCB_FMT_U16 || f == LCB_FMT_U32 || f == LCB_FMT_IDS) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (dataset_read_tokens(path, f, &ids, &n, err, sizeof err) == 0) {
            for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0, "id %d at %zu", ids[i], i);
            if (f == LCB_FMT_U16) FUZZ_CHECK(n == (size - 1) / 2, "u16: %zu ids from %zu bytes", n, size - 1);
            if (f == LCB_FMT_U32) FUZZ_CHECK(n == (size - 1) / 4, "u32: %zu ids from %zu bytes", n, size - 1);
            free(ids);
        } else FUZZ_CHECK(err[0] != 0, "dataset_read_tokens failed without a message");
    }

    /* the whole builder over it */
    DatasetOptions o = {.spec = path, .format = f, .bos = bos[(sel >> 3) & 3], .repeat = (sel >> 5) & 1,
                        .max_tokens = maxes[(sel >> 6) & 3], .corpus_dir = "/nonexistent"};
    Dataset d;
    err[0] = 0;
    if (dataset_load(&d, &o, fuzz_tokens_tokenizer(), 1, err, sizeof err) == 0) {
        FUZZ_CHECK(d.n >= 2, "%zu ids", d.n);
        if (o.max_tokens) FUZZ_CHECK(d.n <= o.max_tokens, "%zu ids > max_tokens %llu", d.n, (unsigned long long)o.max_tokens);
        int32_t mx = -1;
        for (size_t i = 0; i < d.n; i++) { FUZZ_CHECK(d.ids[i] >= 0, "id %d", d.ids[i]); if (d.ids[i] > mx) mx = d.ids[i]; }
        FUZZ_CHECK(mx == d.max_id, "max_id %d, max %d", d.max_id, mx);
        for (size_t k = 0; k < d.n_docs; k++)
            FUZZ_CHECK(d.doc_pos[k] <= d.n && (k == 0 || d.doc_pos[k] >= d.doc_pos[k - 1]), "doc_pos[%zu] %llu", k, (unsigned long long)d.doc_pos[k]);
        FUZZ_CHECK(strlen(d.hash) == 64 && strlen(d.source_hash) == 64, "hashes");
        dataset_free(&d);
    } else FUZZ_CHECK(err[0] != 0, "dataset_load failed without a message");
    close(fd);
    return 0;
}

#ifndef LCB_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokens_one(data, size); }
#endif
