/*
 * config.h — the shape of a model, read from an HF `config.json` (both the 5.x layout with
 * `rope_parameters` and the legacy one with `rope_theta` / `rope_scaling` / NeoX `rotary_pct`),
 * or built from a named `random:` shape.  Everything the forward pass needs to know about an
 * architecture is a field here, so engine/model.c has no per-architecture branches beyond what
 * these fields say.
 */
#ifndef LCB_CONFIG_H
#define LCB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ARCH_LLAMA, ARCH_MISTRAL, ARCH_NEOX, ARCH_FALCON } LcbArch;
typedef enum { NORM_RMS, NORM_LAYER } LcbNorm;
typedef enum { ACT_SILU, ACT_GELU, ACT_GELU_TANH, ACT_RELU } LcbAct;
typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_LLAMA3 } LcbRopeType;
/* How the fused QKV tensor of NeoX/Falcon is laid out (rows of the weight). */
typedef enum {
    QKV_SEPARATE,       /* q_proj, k_proj, v_proj (Llama, Mistral) */
    QKV_PER_HEAD,       /* per head [q k v] (NeoX; Falcon with multi_query=false) */
    QKV_MULTI_QUERY,    /* [all q heads, k, v] (Falcon-7B) */
    QKV_GROUPED,        /* per kv group [q x (H/KV), k, v] (Falcon new_decoder_architecture) */
} LcbQkvLayout;

typedef struct {
    LcbArch arch;
    char model_type[32];      /* as written in config.json */
    int vocab;                /* rows of the embedding */
    int dim;                  /* hidden size */
    int n_layers;
    int n_heads;              /* query heads */
    int n_kv;                 /* key/value heads (1 = MQA) */
    int head_dim;
    int ffn;                  /* MLP hidden size */
    int rot_dim;              /* rotary dims per head (partial rotary: < head_dim), even */
    double rope_theta;
    LcbRopeType rope_type;
    double rope_factor;       /* linear / llama3 scaling factor; 1 = none */
    double rope_low_freq, rope_high_freq; /* llama3 */
    int rope_orig_ctx;        /* llama3: original_max_position_embeddings */
    LcbNorm norm;
    double norm_eps;
    LcbAct act;
    int gated_mlp;            /* SwiGLU (gate, up, down) vs. up, act, down */
    int parallel;             /* attention and MLP both read the layer input (NeoX parallel
                                 residual, Falcon parallel_attn / new architecture) */
    int shared_norm;          /* parallel block whose MLP reuses the attention norm (Falcon) */
    LcbQkvLayout qkv_layout;
    int qkv_bias, o_bias, mlp_bias;
    int tie_embeddings;       /* lm_head = embedding */
    int sliding_window;       /* Mistral: key j visible when t - j < sliding_window; 0 = none */
    int max_pos;              /* pre-training context (max_position_embeddings) */
    int bos_id, eos_id;       /* -1 if absent */
    char dtype[16];           /* torch dtype named in the config, informational */
} ModelConfig;

/* Parse config.json text; `src` names the file in messages. */
int config_parse(ModelConfig *c, const char *json_text, const char *src, char *err, size_t errlen);
int config_load(ModelConfig *c, const char *path, char *err, size_t errlen);
/* The numbers that would silently make every NLL NaN: a norm epsilon that is not positive (or
 * below 1e-60), a rope_theta or scaling factor that is not positive and finite, and any
 * combination that gives an infinite RoPE frequency.  config_parse calls it; a reader of
 * another format (GGUF metadata) should too.  0, or -1 with a message naming `src`. */
int config_check_numbers(const ModelConfig *c, const char *src, char *err, size_t errlen);
/* A named shape for `random:NAME` (llama-10m, llama2-7b, llama2-13b, llama2-70b, mistral-7b,
 * falcon-7b, pythia-6.9b, ...). */
int config_random_shape(ModelConfig *c, const char *name, char *err, size_t errlen);
/* The list of shape names, for messages and --help. */
const char *config_random_shapes(void);
/* Shapes (out, in) of the forward's weight matrices: one layer's QKV ([q | k | v] rows), output,
 * up ([gate | up] rows when gated) and down projections, then the LM head. */
enum { MAT_QKV, MAT_O, MAT_UP, MAT_DOWN, MAT_HEAD, MAT_N };
void config_matrices(const ModelConfig *c, int shape[MAT_N][2]);
/* Parameter count implied by the shape. */
uint64_t config_n_params(const ModelConfig *c);
const char *config_arch_name(LcbArch a);
/* RoPE inverse frequencies (rot_dim/2 values) with the config's scaling; factor_override > 0
 * replaces a linear factor (LongLoRA-extended evaluation). */
void config_rope_inv_freq(const ModelConfig *c, double factor_override, double *inv_freq);

#ifdef __cplusplus
}
#endif
#endif
