/*
 * gguf_model.c — GGUF metadata -> ModelConfig, GGUF tensors -> a table of them under their HF
 * names that engine/model.c's loader validates and reads, one tensor at a time, as blocks or as
 * fp32 (see gguf_model.h).  The loader checks every shape against the config exactly as for a
 * safetensors checkpoint, so a GGUF whose metadata and tensors disagree is refused there, naming
 * the tensor.
 *
 * Key names are llama.cpp's (gguf-py constants.py): "<arch>.embedding_length",
 * "<arch>.attention.head_count_kv", "<arch>.rope.scaling.type" ...; tensor names "token_embd",
 * "blk.N.attn_q", ..., "output_norm", "output" (absent when the LM head is tied).
 */
#include "engine/gguf_model.h"
#include "engine/quant.h"
#include "engine/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *gguf_file_type_name(int ft) {
    static const char *names[] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1", [10] = "Q2_K",
        [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S",
        [17] = "Q5_K_M", [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M", [28] = "IQ2_S",
        [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16", [36] = "TQ1_0", [37] = "TQ2_0",
        [38] = "MXFP4", [39] = "NVFP4", [40] = "Q1_0", [41] = "Q2_0",
    };
    return ft >= 0 && ft < (int)(sizeof names / sizeof *names) ? names[ft] : NULL;
}

int gguf_model_is(const char *spec) {
    size_t n = strlen(spec);
    return (n > 5 && !strcmp(spec + n - 5, ".gguf")) || gguf_is_gguf(spec);
}

/* ---------------------------------------------------------------- config */

typedef struct { const GgufFile *g; const char *arch; char *err; size_t errlen; } Meta;

static const char *key(const Meta *M, const char *k) {
    static __thread char buf[256];
    snprintf(buf, sizeof buf, "%s.%s", M->arch, k);
    return buf;
}

static int has_tensor(const GgufFile *g, const char *name) { return gguf_find_tensor(g, name) != NULL; }

int gguf_model_config(const GgufFile *g, ModelConfig *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    const char *arch;
    if (gguf_get_str(g, "general.architecture", NULL, &arch, err, errlen)) return -1;
    if (!arch) return lcb_fail(err, errlen, "%s: metadata general.architecture is missing", g->path);
    Meta M = {g, arch, err, errlen};
    if (!strcmp(arch, "llama")) c->arch = ARCH_LLAMA;
    else if (!strcmp(arch, "gptneox")) c->arch = ARCH_NEOX;
    else if (!strcmp(arch, "falcon")) c->arch = ARCH_FALCON;
    else return lcb_fail(err, errlen, "%s: general.architecture \"%s\" is not supported (llama, gptneox, falcon are)", g->path, arch);
    int64_t v;
#define GETI(field, k, def, lo, hi) do { if (gguf_get_int(g, key(&M, k), def, lo, hi, &v, err, errlen)) return -1; c->field = (int)v; } while (0)
    GETI(dim, "embedding_length", 0, 1, 1 << 20);
    GETI(n_layers, "block_count", 0, 1, 1 << 12);
    GETI(n_heads, "attention.head_count", 0, 1, 1 << 14);
    if (!c->dim) return lcb_fail(err, errlen, "%s: metadata %s is required", g->path, key(&M, "embedding_length"));
    if (!c->n_layers) return lcb_fail(err, errlen, "%s: metadata %s is required", g->path, key(&M, "block_count"));
    if (!c->n_heads) return lcb_fail(err, errlen, "%s: metadata %s is required", g->path, key(&M, "attention.head_count"));
    GETI(n_kv, "attention.head_count_kv", c->arch == ARCH_FALCON ? 1 : c->n_heads, 1, c->n_heads);
    GETI(head_dim, "attention.key_length", c->dim / c->n_heads, 1, 1 << 14);
    if (gguf_get_int(g, key(&M, "attention.value_length"), c->head_dim, 1, 1 << 14, &v, err, errlen)) return -1;
    if (v != c->head_dim) return lcb_fail(err, errlen, "%s: metadata %s = %lld differs from the key length %d (not supported)", g->path, key(&M, "attention.value_length"), (long long)v, c->head_dim);
    GETI(max_pos, "context_length", 2048, 1, 1 << 30);
    GETI(ffn, "feed_forward_length", 0, 1, 1 << 24);
    GETI(rot_dim, "rope.dimension_count", c->head_dim, 0, c->head_dim);
    const GgufTensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return lcb_fail(err, errlen, "%s: tensor token_embd.weight is missing", g->path);
    if (emb->n_dims != 2 || emb->ne[1] > (1 << 26))
        return lcb_fail(err, errlen, "%s: tensor token_embd.weight must be 2-D (dim, vocab)", g->path);
    c->vocab = (int)emb->ne[1];
    if (gguf_get_int(g, key(&M, "vocab_size"), c->vocab, 1, 1 << 26, &v, err, errlen)) return -1;
    if (v != c->vocab) return lcb_fail(err, errlen, "%s: metadata %s = %lld but token_embd.weight has %d rows", g->path, key(&M, "vocab_size"), (long long)v, c->vocab);
    /* the MLP width as the tensors have it (Falcon's converter writes 4 x hidden whatever it is) */
    const GgufTensor *up = gguf_find_tensor(g, "blk.0.ffn_up.weight");
    if (up && up->n_dims == 2 && up->ne[1] <= (1 << 24) && (c->arch == ARCH_FALCON || !c->ffn)) c->ffn = (int)up->ne[1];
    if (!c->ffn) return lcb_fail(err, errlen, "%s: metadata %s is required", g->path, key(&M, "feed_forward_length"));
    if (gguf_get_float(g, key(&M, "rope.freq_base"), 10000.0, &c->rope_theta, err, errlen)) return -1;
    if (!(c->rope_theta > 0)) return lcb_fail(err, errlen, "%s: metadata %s must be > 0", g->path, key(&M, "rope.freq_base"));
    /* RoPE scaling: rope.scaling.type + rope.scaling.factor, or the older rope.scale_linear */
    const char *st;
    if (gguf_get_str(g, key(&M, "rope.scaling.type"), "none", &st, err, errlen)) return -1;
    if (gguf_get_float(g, key(&M, "rope.scaling.factor"), 1.0, &c->rope_factor, err, errlen)) return -1;
    c->rope_type = ROPE_DEFAULT;
    if (gguf_find(g, key(&M, "rope.scale_linear"))) {
        if (gguf_get_float(g, key(&M, "rope.scale_linear"), 1.0, &c->rope_factor, err, errlen)) return -1;
        if (c->rope_factor != 1.0) st = "linear";
    }
    if (!strcmp(st, "linear")) {
        c->rope_type = ROPE_LINEAR;
        if (!(c->rope_factor > 0)) return lcb_fail(err, errlen, "%s: metadata %s must be > 0", g->path, key(&M, "rope.scaling.factor"));
        if (c->rope_factor == 1.0) c->rope_type = ROPE_DEFAULT;
    } else if (strcmp(st, "none"))
        return lcb_fail(err, errlen, "%s: metadata %s = \"%s\" is not implemented by lcbench (none and linear are)", g->path, key(&M, "rope.scaling.type"), st);
    else c->rope_factor = 1.0;
    if (has_tensor(g, "rope_freqs.weight"))
        return lcb_fail(err, errlen, "%s: tensor rope_freqs.weight (per-frequency RoPE factors, as for Llama 3 scaling) is not supported", g->path);
    GETI(rope_orig_ctx, "rope.scaling.original_context_length", 0, 0, 1 << 30);
    int64_t b, e;
    if (gguf_get_int(g, "tokenizer.ggml.bos_token_id", -1, -1, 1 << 26, &b, err, errlen)) return -1;
    if (gguf_get_int(g, "tokenizer.ggml.eos_token_id", -1, -1, 1 << 26, &e, err, errlen)) return -1;
    c->bos_id = (int)b;
    c->eos_id = (int)e;
    if (gguf_get_int(g, "general.file_type", -1, -1, 1 << 20, &v, err, errlen)) return -1;
    snprintf(c->dtype, sizeof c->dtype, "%s", gguf_file_type_name((int)v) ? gguf_file_type_name((int)v) : "gguf");
    c->tie_embeddings = !has_tensor(g, "output.weight");

    if (c->arch == ARCH_LLAMA) {
        GETI(sliding_window, "attention.sliding_window", 0, 0, 1 << 30);
        if (c->sliding_window) c->arch = ARCH_MISTRAL;
        if (gguf_get_float(g, key(&M, "attention.layer_norm_rms_epsilon"), 1e-5, &c->norm_eps, err, errlen)) return -1;
        c->norm = NORM_RMS;
        c->act = ACT_SILU;
        c->gated_mlp = 1;
        c->qkv_layout = QKV_SEPARATE;
        c->qkv_bias = has_tensor(g, "blk.0.attn_q.bias");
        c->o_bias = has_tensor(g, "blk.0.attn_output.bias");
        if (c->qkv_bias != c->o_bias)
            return lcb_fail(err, errlen, "%s: tensor blk.0.attn_%s.bias without blk.0.attn_%s.bias: lcbench's Llama has biases on all four attention projections or none",
                            g->path, c->qkv_bias ? "q" : "output", c->qkv_bias ? "output" : "q");
        c->mlp_bias = has_tensor(g, "blk.0.ffn_up.bias");
    } else {
        if (gguf_get_float(g, key(&M, "attention.layer_norm_epsilon"), 1e-5, &c->norm_eps, err, errlen)) return -1;
        c->norm = NORM_LAYER;
        c->act = ACT_GELU;      /* HF's default for both (GGUF does not record the activation) */
        c->gated_mlp = 0;
        c->qkv_layout = QKV_MULTI_QUERY; /* GGUF's fused QKV is [q heads | k heads | v heads] */
        c->qkv_bias = has_tensor(g, "blk.0.attn_qkv.bias");
        c->o_bias = has_tensor(g, "blk.0.attn_output.bias");
        c->mlp_bias = has_tensor(g, "blk.0.ffn_up.bias");
        if (c->arch == ARCH_NEOX) {
            if (gguf_get_bool(g, key(&M, "use_parallel_residual"), 1, &c->parallel, err, errlen)) return -1;
        } else {
            c->parallel = 1;
            c->shared_norm = !has_tensor(g, "blk.0.attn_norm_2.weight");
            if (c->qkv_bias != c->o_bias || c->qkv_bias != c->mlp_bias)
                return lcb_fail(err, errlen, "%s: Falcon with biases on some projections only is not supported", g->path);
        }
    }
#undef GETI
    if (c->arch == ARCH_LLAMA && c->rot_dim != c->head_dim)
        return lcb_fail(err, errlen, "%s: metadata %s = %d: partial rotary Llama is not supported (head_dim %d)", g->path, key(&M, "rope.dimension_count"), c->rot_dim, c->head_dim);
    snprintf(c->model_type, sizeof c->model_type, "%s", config_arch_name(c->arch));
    if (!(c->norm_eps > 0)) return lcb_fail(err, errlen, "%s: the norm epsilon must be > 0", g->path);
    if (c->n_heads % c->n_kv) return lcb_fail(err, errlen, "%s: %d attention heads are not a multiple of the %d key/value heads", g->path, c->n_heads, c->n_kv);
    if (c->rot_dim % 2) return lcb_fail(err, errlen, "%s: metadata %s = %d must be even", g->path, key(&M, "rope.dimension_count"), c->rot_dim);
    /* the numbers that make NaNs (a tiny epsilon, infinite RoPE frequencies), as for config.json */
    return config_check_numbers(c, g->path, err, errlen);
}

int gguf_config_load(ModelConfig *c, const char *path, char *err, size_t errlen) {
    GgufFile g;
    if (gguf_open(&g, path, err, errlen)) return -1;
    int rc = gguf_model_config(&g, c, err, errlen);
    gguf_close(&g);
    return rc;
}

/* ---------------------------------------------------------------- tensors */

/* GGUF tensor name (after "blk.N." for layer tensors) -> HF name, per architecture. */
typedef struct { const char *gguf, *hf; } NameMap;

static const NameMap llama_top[] = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}, {0, 0}};
static const NameMap llama_blk[] = {
    {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"}, {"ffn_down", "mlp.down_proj"}, {0, 0}};
static const NameMap neox_top[] = {{"token_embd", "gpt_neox.embed_in"}, {"output_norm", "gpt_neox.final_layer_norm"}, {"output", "embed_out"}, {0, 0}};
static const NameMap neox_blk[] = {
    {"attn_norm", "input_layernorm"}, {"attn_qkv", "attention.query_key_value"}, {"attn_output", "attention.dense"},
    {"ffn_norm", "post_attention_layernorm"}, {"ffn_up", "mlp.dense_h_to_4h"}, {"ffn_down", "mlp.dense_4h_to_h"}, {0, 0}};
static const NameMap falcon_top[] = {{"token_embd", "transformer.word_embeddings"}, {"output_norm", "transformer.ln_f"}, {"output", "lm_head"}, {0, 0}};
static const NameMap falcon_blk[] = {
    {"attn_norm", "input_layernorm"}, {"attn_norm_2", "post_attention_layernorm"}, {"attn_qkv", "self_attention.query_key_value"},
    {"attn_output", "self_attention.dense"}, {"ffn_up", "mlp.dense_h_to_4h"}, {"ffn_down", "mlp.dense_4h_to_h"}, {0, 0}};

static const char *map_base(const NameMap *m, const char *base, size_t n) {
    for (; m->gguf; m++)
        if (strlen(m->gguf) == n && !strncmp(m->gguf, base, n)) return m->hf;
    return NULL;
}

/* HF name of GGUF tensor `name` into out; *layer_part set to the GGUF part for layer tensors. */
static int hf_name(const ModelConfig *c, const char *name, char *out, size_t outlen, const char **part) {
    const NameMap *top = c->arch == ARCH_NEOX ? neox_top : c->arch == ARCH_FALCON ? falcon_top : llama_top;
    const NameMap *blk = c->arch == ARCH_NEOX ? neox_blk : c->arch == ARCH_FALCON ? falcon_blk : llama_blk;
    const char *layer_fmt = c->arch == ARCH_NEOX ? "gpt_neox.layers.%d." : c->arch == ARCH_FALCON ? "transformer.h.%d." : "model.layers.%d.";
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias"))) return -1;
    *part = NULL;
    if (!strncmp(name, "blk.", 4)) {
        char *end;
        long l = strtol(name + 4, &end, 10);
        if (end == name + 4 || *end != '.' || l < 0 || l >= c->n_layers) return -1;
        const char *base = end + 1;
        const char *hf = map_base(blk, base, (size_t)(dot - base));
        if (!hf) return -1;
        *part = base;
        int k = snprintf(out, outlen, layer_fmt, (int)l);
        snprintf(out + k, outlen - k, "%s%s", hf, dot);
        return 0;
    }
    const char *hf = map_base(top, name, (size_t)(dot - name));
    if (!hf) return -1;
    snprintf(out, outlen, "%s%s", hf, dot);
    return 0;
}

/* Undo convert_hf_to_gguf.py's permute() of Llama's Q/K rows on rows of `rb` bytes: within each
 * of n_head heads of hd rows, the converter moved HF row (i * hd/2 + j) to (2 j + i), i in
 * {0, 1}, j < hd/2. */
static int unpermute_rows(uint8_t *w, int64_t rows, size_t rb, int n_head) {
    const int64_t hd = rows / n_head, half = hd / 2;
    uint8_t *tmp = malloc((size_t)hd * rb);
    if (!tmp) return -1;
    for (int h = 0; h < n_head; h++) {
        uint8_t *head = w + (size_t)(h * hd) * rb;
        memcpy(tmp, head, (size_t)hd * rb);
        for (int i = 0; i < 2; i++)
            for (int64_t j = 0; j < half; j++) memcpy(head + (size_t)(i * half + j) * rb, tmp + (size_t)(2 * j + i) * rb, rb);
    }
    free(tmp);
    return 0;
}

static int cmp_weight(const void *a, const void *b) { return strcmp(((const GgufWeight *)a)->name, ((const GgufWeight *)b)->name); }

void gguf_weights_close(GgufWeights *gw) {
    for (size_t i = 0; i < gw->n; i++) free(gw->w[i].name);
    free(gw->w);
    gguf_close(&gw->g);
    memset(gw, 0, sizeof *gw);
    gw->g.fd = -1;
}

const GgufWeight *gguf_weights_find(const GgufWeights *gw, const char *name) {
    GgufWeight key = {.name = (char *)name};
    return gw->n ? bsearch(&key, gw->w, gw->n, sizeof *gw->w, cmp_weight) : NULL;
}

int gguf_weights_open(GgufWeights *gw, const char *path, ModelConfig *c, char *label, size_t label_len, char *err, size_t errlen) {
    memset(gw, 0, sizeof *gw);
    GgufFile *g = &gw->g;
    if (gguf_open(g, path, err, errlen)) { memset(gw, 0, sizeof *gw); gw->g.fd = -1; return -1; }
    if (gguf_model_config(g, c, err, errlen)) goto fail;
    int64_t ft;
    if (gguf_get_int(g, "general.file_type", -1, -1, 1 << 20, &ft, err, errlen)) goto fail;
    snprintf(label, label_len, "%s", gguf_file_type_name((int)ft) ? gguf_file_type_name((int)ft) : "mixed");
    gw->w = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *gw->w);
    if (!gw->w) { lcb_fail(err, errlen, "%s: out of memory", path); goto fail; }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        char name[512];
        const char *part;
        if (hf_name(c, t->name, name, sizeof name, &part)) {
            lcb_fail(err, errlen, "%s: tensor %s is not one lcbench's %s takes (an unsupported variant of the architecture?)", path, t->name, config_arch_name(c->arch));
            goto fail;
        }
        if (t->n_dims > 2) { lcb_fail(err, errlen, "%s: tensor %s has %d dimensions; 1 or 2 expected", path, t->name, t->n_dims); goto fail; }
        GgufWeight *w = &gw->w[gw->n];
        *w = (GgufWeight){.name = strdup(name), .t = t, .ndim = t->n_dims};
        if (!w->name) { lcb_fail(err, errlen, "%s: out of memory", path); goto fail; }
        gw->n++;
        if (t->n_dims == 2) { w->rows = t->ne[1]; w->cols = t->ne[0]; w->row_bytes = (size_t)(t->nbytes / (uint64_t)t->ne[1]); }
        else { w->rows = t->ne[0]; w->cols = 1; }
        int nh = 0;
        if ((c->arch == ARCH_LLAMA || c->arch == ARCH_MISTRAL) && part)
            nh = !strncmp(part, "attn_q.", 7) ? c->n_heads : !strncmp(part, "attn_k.", 7) ? c->n_kv : 0;
        if (nh) {
            if (w->rows % nh || (w->rows / nh) % 2) {
                lcb_fail(err, errlen, "%s: tensor %s: %lld rows do not split into %d heads of an even size", path, t->name, (long long)w->rows, nh);
                goto fail;
            }
            if (t->n_dims == 1 && quant_block_size(t->type) != 1) {
                lcb_fail(err, errlen, "%s: tensor %s: a 1-D tensor of type %s cannot have its rows un-permuted (F32, F16 or BF16 expected)", path, t->name,
                         quant_type_name(t->type) ? quant_type_name(t->type) : "unknown");
                goto fail;
            }
            w->unpermute_heads = nh;
        }
    }
    qsort(gw->w, gw->n, sizeof *gw->w, cmp_weight);
    return 0;
fail:
    gguf_weights_close(gw);
    return -1;
}

int gguf_weights_read(const GgufWeights *gw, const GgufWeight *w, void *dst, char *err, size_t errlen) {
    const GgufTensor *t = w->t;
    if (gguf_read_tensor(&gw->g, t, dst, err, errlen)) return -1;
    if (!w->unpermute_heads) return 0;
    size_t rb = w->ndim == 2 ? w->row_bytes : quant_type_size(t->type);
    if (unpermute_rows(dst, w->rows, rb, w->unpermute_heads)) return lcb_fail(err, errlen, "%s: tensor %s: out of memory", gw->g.path, t->name);
    return 0;
}

int gguf_weights_read_f32(const GgufWeights *gw, const GgufWeight *w, float *dst, char *err, size_t errlen) {
    const GgufTensor *t = w->t;
    if (!quant_supported(t->type))
        return lcb_fail(err, errlen, "%s: tensor %s has type %s, which lcbench cannot dequantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                        gw->g.path, t->name, quant_type_name(t->type) ? quant_type_name(t->type) : "unknown");
    if (t->type == QT_F32) return gguf_weights_read(gw, w, dst, err, errlen);
    void *raw = malloc(t->nbytes ? t->nbytes : 1);
    if (!raw) return lcb_fail(err, errlen, "%s: tensor %s: out of memory (%llu bytes)", gw->g.path, t->name, (unsigned long long)t->nbytes);
    int rc = gguf_weights_read(gw, w, raw, err, errlen);
    if (!rc && quant_dequantize(t->type, raw, dst, t->numel, err, errlen)) {
        lcb_prefix(err, errlen, "%s: tensor %s", gw->g.path, t->name);
        rc = -1;
    }
    free(raw);
    return rc;
}
