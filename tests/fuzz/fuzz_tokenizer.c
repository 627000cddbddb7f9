/*
 * fuzz_tokenizer.c — libFuzzer harness of the tokenizer.json loader and of encode/decode under
 * whatever tables a hostile file builds (engine/tokenizer.c).
 * Input: tokenizer.json text.  tokenizer_load must refuse it with a message, or return a
 * tokenizer that encodes a fixed set of texts (ASCII, whitespace runs, digits, accents, CJK,
 * emoji, U+2581, special-token look-alikes, invalid UTF-8) into ids inside its vocabulary, and
 * decodes those ids, the first ids of the vocabulary and out-of-range ids (an error) safely.
 */
#include "tests/fuzz/fuzz_util.h"
#include "engine/tokenizer.h"

static const char *const fuzz_tok_texts[] = {
    "hello world!",
    "  Hello,\tWORLD\n\n 123456 1.5e10 '",
    "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xe2\x96\x81x",
    "<s>x</s><|begin_of_text|><|endoftext|> [MASK] WOW wow <cls><sep><unk>",
    "\xff\xfe bad \xc3 utf8 \xed\xa0\x80",
    "",
    " ",
};

int fuzz_tokenizer_one(const uint8_t *data, size_t size) {
    char path[64], err[1024] = "";
    int fd = fuzz_memfile(data, size, path, sizeof path);
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    if (t) {
        size_t V = tokenizer_vocab_size(t);
        int32_t bos = tokenizer_bos_id(t), eos = tokenizer_eos_id(t);
        FUZZ_CHECK(bos >= -1 && (bos < 0 || (size_t)bos < V), "bos %d of %zu", bos, V);
        FUZZ_CHECK(eos >= -1 && (eos < 0 || (size_t)eos < V), "eos %d of %zu", eos, V);
        for (size_t k = 0; k < sizeof fuzz_tok_texts / sizeof *fuzz_tok_texts; k++) {
            const char *s = fuzz_tok_texts[k];
            for (int special = 0; special < 2; special++) {
                int32_t *ids = NULL;
                size_t n = 0;
                if (tokenizer_encode(t, s, strlen(s), special, &ids, &n, err, sizeof err) == 0) {
                    for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < V, "id %d of %zu", ids[i], V);
                    for (int skip = 0; skip < 2; skip++) {
                        char *txt = NULL;
                        size_t len = 0;
                        if (tokenizer_decode(t, ids, n, skip, &txt, &len, err, sizeof err) == 0) {
                            FUZZ_CHECK(txt && strlen(txt) <= len && txt[len] == 0, "decoded length");
                            free(txt);
                        }
                    }
                }
                free(ids);
            }
        }
        /* the first ids one by one and all together, then ids outside the vocabulary */
        size_t m = V < 300 ? V : 300;
        int32_t *all = malloc((m + 1) * sizeof *all);
        FUZZ_CHECK(all != NULL, "malloc");
        for (size_t i = 0; i < m; i++) {
            all[i] = (int32_t)i;
            (void)tokenizer_id_to_token(t, (int32_t)i);
        }
        for (int skip = 0; skip < 2; skip++) {
            char *txt = NULL;
            size_t len = 0;
            if (tokenizer_decode(t, all, m, skip, &txt, &len, err, sizeof err) == 0) free(txt);
        }
        int32_t bad[3] = {-1, (int32_t)V, INT32_MAX};
        for (int i = 0; i < 3; i++) {
            char *txt = NULL;
            size_t len = 0;
            FUZZ_CHECK(tokenizer_decode(t, &bad[i], 1, 0, &txt, &len, err, sizeof err) != 0, "decode of id %d accepted", bad[i]);
            FUZZ_CHECK(tokenizer_id_to_token(t, bad[i]) == NULL, "id_to_token(%d)", bad[i]);
        }
        free(all);
        tokenizer_free(t);
    } else {
        FUZZ_CHECK(err[0] != 0, "tokenizer_load failed without a message");
    }
    close(fd);
    return 0;
}

#ifndef LCB_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer_one(data, size); }
#endif
