/*
 * model.h — a decoder LM in memory and its forward pass over a chunk of tokens (CPU, fp32,
 * OpenBLAS).  Llama, Mistral, GPT-NeoX/Pythia and Falcon share one weight layout after
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
#include "engine/safetensors.h"

typedef struct {
    float *attn_norm_w, *attn_norm_b; /* (dim), bias NULL for RMSNorm */
    float *mlp_norm_w, *mlp_norm_b;   /* (dim); NULL when the MLP reuses the attention norm */
    float *wqkv, *bqkv;               /* ((H + 2 KV) hd, dim), ((H + 2 KV) hd) or NULL */
    float *wo, *bo;                   /* (dim, H hd), (dim) or NULL */
    float *wup, *bup;                 /* gated: (2 ffn, dim) rows [gate | up]; else (ffn, dim); bias (ffn) or NULL */
    float *wdown, *bdown;             /* (dim, ffn), (dim) or NULL */
} LayerWeights;

typedef struct Model {
    ModelConfig cfg;
    char source[4096];        /* folder, or "random:NAME" */
    char disk_dtype[8];       /* dtype of the weights on disk: F32, F16, BF16, mixed */
    float *embed;             /* (vocab, dim) */
    float *norm_w, *norm_b;   /* (dim) final norm */
    float *lm_head;           /* (vocab, dim); == embed when tied */
    LayerWeights *layers;     /* (n_layers) */
    float *arena;             /* one block holding every weight above */
    size_t arena_bytes;
    /* workspace, grown to the largest chunk seen */
    int ws_rows;
    float *ws;                /* all activation buffers, carved below */
    size_t ws_bytes;
    float *x, *xn, *qkv, *qs, *att, *o, *hb, *mo;
    int64_t *pos;             /* (ws_rows) absolute positions; pos + ws_rows: sink positions */
} Model;

/* spec: a checkpoint folder (config.json + safetensors), or random:SHAPE[:SEED].
 * config_path: NULL for SPEC/config.json, else another config file (e.g. config_legacy.json). */
int model_open(Model *m, const char *spec, const char *config_path, char *err, size_t errlen);
void model_free(Model *m);

/* Forward n tokens at positions kv->n_past .. +n-1 through the cache, then advance it.
 * logits: (n - out_from, vocab) for rows out_from .. n-1, or NULL for none. */
int model_forward(Model *m, KVCache *kv, const int32_t *ids, int n, float *logits, int out_from,
                  char *err, size_t errlen);

/* -ln softmax(logits)[target], accumulated in double. */
double model_nll(const float *logits, int vocab, int target);

#endif
