/*
 * gguf_model.h — a GGUF file as an lcbench model: the architecture's metadata (llama.cpp's
 * `llama` for Llama and Mistral, `gptneox`, `falcon`) into a ModelConfig, and its tensors under
 * the HF checkpoint names that engine/model.c loads.  The tensors are read from the file when
 * the loader takes them, one at a time, either as the file's blocks (the CPU keeps its layer
 * matrices so, engine/quant.h QuantMat) or dequantized to fp32 (everything else, and every
 * weight for --device cuda): no copy of the whole model is held besides the one the model keeps.
 * llama.cpp's converter permutes the rows of Llama's Q and K projections for its RoPE layout;
 * that is undone on read (rows of blocks move as wholes), so a GGUF gives the same weights as
 * the HF folder it was made from.  NeoX and Falcon GGUFs hold their fused QKV as
 * [q heads | k heads | v heads], which the config records as a concatenated layout
 * (QKV_MULTI_QUERY).
 */
#ifndef LCB_GGUF_MODEL_H
#define LCB_GGUF_MODEL_H

#include <stddef.h>

#include "engine/config.h"
#include "engine/gguf.h"

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
/* One tensor of the file under its HF name: HF shape (rows, cols) = GGUF (ne[1], ne[0]) (a 1-D
 * tensor: (ne[0]) with cols 1). */
typedef struct {
    char *name;               /* HF name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    const GgufTensor *t;      /* in GgufWeights.g */
    int ndim;                 /* 1 or 2 */
    int64_t rows, cols;
    size_t row_bytes;         /* bytes of one row on file (2-D; 0 for 1-D) */
    int unpermute_heads;      /* Llama Q/K: rows are un-permuted in this many heads on read; else 0 */
} GgufWeight;

typedef struct {
    GgufFile g;               /* open: tensors are read on demand */
    GgufWeight *w;            /* (n), sorted by name */
    size_t n;
} GgufWeights;

/* Open path, fill *c, the tensor table of *gw and `label` (the file type as llama.cpp names it:
 * F32, F16, BF16, Q8_0, Q4_K_M, ... or mixed).  Every tensor's name, rank and Q/K head split are
 * checked here; its type when it is read. */
int gguf_weights_open(GgufWeights *gw, const char *path, ModelConfig *c, char *label, size_t label_len, char *err, size_t errlen);
void gguf_weights_close(GgufWeights *gw);
const GgufWeight *gguf_weights_find(const GgufWeights *gw, const char *name);
/* The tensor's bytes as on file (t->nbytes), rows in the HF order, into dst. */
int gguf_weights_read(const GgufWeights *gw, const GgufWeight *w, void *dst, char *err, size_t errlen);
/* The same dequantized to fp32 (rows x cols floats); types lcbench cannot dequantize are refused
 * naming the tensor. */
int gguf_weights_read_f32(const GgufWeights *gw, const GgufWeight *w, float *dst, char *err, size_t errlen);
/* llama.cpp's general.file_type names (LLAMA_FTYPE_*), NULL for an unknown value. */
const char *gguf_file_type_name(int ftype);

#ifdef __cplusplus
}
#endif
#endif
