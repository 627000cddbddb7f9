/*
 * gguf_model.h — a GGUF file as an lcbench model: the architecture's metadata (llama.cpp's
 * `llama` for Llama and Mistral, `gptneox`, `falcon`) into a ModelConfig, and its tensors,
 * dequantized to fp32 and renamed to the HF checkpoint names that engine/model.c loads, into an
 * in-memory StFile.  llama.cpp's converter permutes the rows of Llama's Q and K projections for
 * its RoPE layout; that is undone here, so a GGUF gives the same weights as the HF folder it was
 * made from.  NeoX and Falcon GGUFs hold their fused QKV as [q heads | k heads | v heads], which
 * the config records as a concatenated layout (QKV_MULTI_QUERY).
 */
#ifndef LCB_GGUF_MODEL_H
#define LCB_GGUF_MODEL_H

#include <stddef.h>

#include "engine/config.h"
#include "engine/gguf.h"
#include "engine/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a --model spec names a GGUF file: a path ending in .gguf, or a file whose magic is
 * GGUF. */
int gguf_model_is(const char *spec);
/* The ModelConfig of an open GGUF file; architectures other than llama, gptneox and falcon are
 * refused by name. */
int gguf_model_config(const GgufFile *g, ModelConfig *c, char *err, size_t errlen);
/* config_load's hook: the config of the GGUF file at path. */
int gguf_config_load(ModelConfig *c, const char *path, char *err, size_t errlen);
/* Open path, fill *c and *st (every weight as F32 under its HF name, owned by st) and `label`
 * (the file type as llama.cpp names it: F32, F16, BF16, Q8_0, Q4_K_M, ... or mixed). */
int gguf_model_open(const char *path, ModelConfig *c, StFile *st, char *label, size_t label_len, char *err, size_t errlen);
void gguf_model_close(StFile *st);
/* llama.cpp's general.file_type names (LLAMA_FTYPE_*), NULL for an unknown value. */
const char *gguf_file_type_name(int ftype);

#ifdef __cplusplus
}
#endif
#endif
