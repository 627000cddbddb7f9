/*
 * model.h — a decoder LM in memory and its forward pass over a chunk of tokens (CPU, fp32:
 * packed-weight kernels of engine/gemm.h, OpenBLAS for the rest).  Llama, Mistral, GPT-NeoX/Pythia and Falcon share one weight layout after
 * loading: fused QKV rows [q heads | k heads | v heads], fused [gate | up] rows for SwiGLU,
 * whatever the checkpoint's own layout was.  This is the reference path every other backend is
 * tested against.
 */
#ifndef LCB_MODEL_H
#define LCB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/kvcache.h"
#include "engine/quant.h"
#include "engine/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shapes as (rows, cols) of the checkpoint: weights are (out, in).  After model_open the CPU
 * path holds the four matrices wqkv, wo, wup, wdown packed into column panels for
 * engine/gemm.h (Model.cpu_layout), as is the LM head; a matrix whose rows do not fill whole
 * panels, and a tied LM head (its rows stay the embedding table), live in Model.packed_extra.
 * A GGUF on the CPU keeps those four as the file's blocks instead (q[], the float pointers
 * NULL): a 7B Q4_K_M holds 3.9 GB of blocks where fp32 would need 25.9 GB; the embedding table,
 * the LM head, norms and biases are fp32 as for any checkpoint. */
typedef struct {
    float *attn_norm_w, *attn_norm_b; /* (dim), bias NULL for RMSNorm */
    float *mlp_norm_w, *mlp_norm_b;   /* (dim); NULL when the MLP reuses the attention norm */
    float *wqkv, *bqkv;               /* ((H + 2 KV) hd, dim), ((H + 2 KV) hd) or NULL */
    float *wo, *bo;                   /* (dim, H hd), (dim) or NULL */
    float *wup, *bup;                 /* gated: (2 ffn, dim) rows [gate | up]; else (ffn, dim); bias (ffn) or NULL */
    float *wdown, *bdown;             /* (dim, ffn), (dim) or NULL */
    const QuantMat *q[4];             /* GGUF on the CPU: wqkv, wo, wup, wdown as blocks (same shapes); else NULL */
} LayerWeights;

typedef struct Model {
    ModelConfig cfg;
    int device;               /* LCB_DEVICE_CPU / LCB_DEVICE_CUDA (engine/backend.h) */
    void *dev;                /* device-side weights and workspace of a non-CPU backend */
    char dev_dtype[8];        /* weight dtype on the device: "fp32", "bf16", "fp16" */
    int tp;                   /* GPUs the device weights are split over (tensor parallelism), 1 = one */
    int cpu_layout;           /* 1: layer matrices packed for the CPU forward (engine/gemm.h) */
    float *packed_extra;      /* packed matrices larger than their arena slot (partial panels) */
    size_t packed_extra_bytes;
    char source[4096];        /* folder, or "random:NAME" */
    char disk_dtype[8];       /* dtype of the weights on disk: F32, F16, BF16, mixed */
    float *embed;             /* (vocab, dim) */
    float *norm_w, *norm_b;   /* (dim) final norm */
    float *lm_head;           /* (vocab, dim); == embed when tied; packed (engine/gemm.h) on the CPU */
    LayerWeights *layers;     /* (n_layers) */
    float *arena;             /* one block holding every weight above */
    size_t arena_bytes;
    uint8_t *qblocks;         /* LayerWeights.q[] data: the GGUF's blocks of those matrices */
    size_t qblocks_bytes;
    QuantMat *qmats;          /* (n_layers, 4) what LayerWeights.q[] point to */
    float *qscratch;          /* per-thread panels of gemm_quant */
    size_t qscratch_bytes;
    int qscratch_threads;
    /* workspace, grown to the largest chunk seen */
    int ws_rows;
    float *ws;                /* all activation buffers, carved below */
    size_t ws_bytes;
    float *x, *xn, *qkv, *qs, *att, *hb;
    int64_t *pos;             /* (ws_rows) absolute positions; pos + ws_rows: sink positions */
    float *rope_cs;           /* (2 ws_rows, rot_dim) RoPE [cos | sin] for pos and sink pos */
    float *lg;                /* (LG_ROWS, vocab) logits scratch when only NLLs are wanted */
} Model;

/* What a forward pass returns for its output rows (rows out_from .. n-1 of the chunk, indexed
 * from 0 here).  Any field may be NULL. */
typedef struct {
    float *logits;            /* (rows, vocab) */
    const int32_t *targets;   /* (rows) the token each row predicts; < 0: none */
    double *nll;              /* (rows) -ln p(target), NAN where target < 0 */
} FwdOut;

/* The same request shifted by k rows. */
FwdOut fwdout_shift(const FwdOut *o, size_t k, int vocab);

/* spec: a checkpoint folder (config.json + safetensors), or random:SHAPE[:SEED].
 * config_path: NULL for SPEC/config.json, else another config file (e.g. config_legacy.json). */
int model_open(Model *m, const char *spec, const char *config_path, char *err, size_t errlen);
/* The same on a device: LCB_DEVICE_CUDA uploads the weights as `dtype` ("bf16", "fp16",
 * "fp32"; NULL = bf16) and frees the host copy; random: shapes are generated on the device. */
int model_open_on(Model *m, const char *spec, const char *config_path, int device, const char *dtype,
                  char *err, size_t errlen);
/* The same split over `tp` GPUs of this host (tensor parallelism: heads, MLP columns and KV
 * caches divided, NCCL all-reduce); tp = 1 is model_open_on. */
int model_open_tp(Model *m, const char *spec, const char *config_path, int device, const char *dtype, int tp,
                  char *err, size_t errlen);
/* As model_open, with a GGUF's layer matrices dequantized to fp32 at load and packed (the
 * host layout that --device cuda uploads from) instead of kept as blocks; both score the same,
 * bit for bit (tests/test_gguf.c). */
int model_open_fp32(Model *m, const char *spec, char *err, size_t errlen);
void model_free(Model *m);
/* Floats of Model.packed_extra for this shape (lcbench plan predicts them). */
size_t model_packed_extra(const ModelConfig *c);
/* The bytes a GGUF's weights take on the CPU (model_open: the fp32 arena without the layer
 * matrices, their blocks as on file, the packed LM head), from its metadata alone. */
int model_gguf_cpu_bytes(const char *path, uint64_t *bytes, char *err, size_t errlen);

/* Forward n tokens at positions kv->n_past .. +n-1 through the cache, then advance it.
 * Rows out_from .. n-1 produce what `out` asks for (out may be NULL: cache only). */
int model_forward(Model *m, KVCache *kv, const int32_t *ids, int n, int out_from, const FwdOut *out,
                  char *err, size_t errlen);

/* -ln softmax(logits)[target], accumulated in double. */
double model_nll(const float *logits, int vocab, int target);

#ifdef __cplusplus
}
#endif
#endif
