/*
 * gguf_tokenizer.h — the tokenizer of a GGUF file (tokenizer.ggml.* metadata), loaded through
 * engine/tokenizer.c as the tokenizer.json it stands for (see gguf_tokenizer.c).
 */
#ifndef LCB_GGUF_TOKENIZER_H
#define LCB_GGUF_TOKENIZER_H

#include <stddef.h>

#include "engine/tokenizer.h"

/* NULL with a message naming the file and the tokenizer.ggml key at fault. */
Tokenizer *gguf_tokenizer_load(const char *path, char *err, size_t errlen);
/* Whether the GGUF file at path carries a tokenizer (tokenizer.ggml.model): a model file made
 * without one (or not a GGUF file) gives 0, and `run` then has no default tokenizer. */
int gguf_tokenizer_present(const char *path);

#endif
