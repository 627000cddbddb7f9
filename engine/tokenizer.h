/*
 * tokenizer.h — HF `tokenizer.json` tokenizers in C.
 *
 * lcbench turns text into token ids exactly as HF `tokenizers` does, so that the numbers it
 * reports line up with transformers.  Two model families are covered:
 *   - SentencePiece-style BPE with byte fallback (Llama-2, Mistral): normalizer Prepend/Replace
 *     with U+2581, BPE merges by rank, <0xNN> byte tokens for unknown bytes, decoder
 *     Replace/ByteFallback/Fuse/Strip;
 *   - byte-level BPE with a split regex (GPT-2, GPT-NeoX, Falcon, Llama-3): pre-tokenizer
 *     Split (PCRE2) + ByteLevel, BPE (with `ignore_merges`), decoder ByteLevel.
 * Added tokens (special or not) are matched in the raw text before normalization, as HF does.
 * The post-processor (TemplateProcessing / ByteLevel / BertProcessing ...) decides what
 * "with special tokens" adds.
 *
 * Every function that can fail takes an `err` buffer and returns non-zero (or NULL) with a
 * message naming the file and field at fault.
 */
#ifndef LCB_TOKENIZER_H
#define LCB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

/* path: a tokenizer.json file, or a folder that holds one. NULL on error (message in err). */
Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
/* The same from tokenizer.json text in memory; `path` names it in messages (engine/
 * gguf_tokenizer.c builds a GGUF's tokenizer this way).  tokenizer_load takes a GGUF file too. */
Tokenizer *tokenizer_load_json(const char *path, const char *json, size_t json_len, char *err, size_t errlen);
void tokenizer_free(Tokenizer *tok);

/* Encode `len` bytes of UTF-8 text.  add_special != 0 applies the post-processor as HF's
 * `add_special_tokens=True` does (e.g. prepends <s>).  *ids is malloc'ed (caller frees).
 * Returns 0 on success. */
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int add_special,
                     int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* Decode ids to UTF-8 text as HF's `decode(ids, skip_special_tokens=skip_special)`.
 * *text is malloc'ed and NUL-terminated; *len excludes the NUL.  Ids out of the vocabulary
 * are an error naming the id.  Returns 0 on success. */
int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n_ids, int skip_special,
                     char **text, size_t *len, char *err, size_t errlen);

/* Number of ids (model vocabulary plus added tokens; max id + 1). */
size_t tokenizer_vocab_size(const Tokenizer *tok);

/* The BOS id the tokenizer uses (from the post-processor template, else a token named
 * <s>, <|begin_of_text|>, <|endoftext|> ...), or -1 if it has none. */
int32_t tokenizer_bos_id(const Tokenizer *tok);
int32_t tokenizer_eos_id(const Tokenizer *tok);

/* Token string of an id (as in the vocab), or NULL if out of range. */
const char *tokenizer_id_to_token(const Tokenizer *tok, int32_t id);

#endif
