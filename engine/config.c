/*
 * config.c — HF config.json -> ModelConfig, for Llama, Mistral, GPT-NeoX/Pythia and Falcon,
 * in both the 5.x and the legacy layout; plus the named `random:` shapes.  Unknown
 * architectures and rope types we do not implement are refused with a message naming the
 * field, never guessed.
 */
#include "engine/config.h"
#include "engine/common.h"
#include "engine/gguf_model.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *config_arch_name(LcbArch a) {
    switch (a) {
    case ARCH_LLAMA: return "llama";
    case ARCH_MISTRAL: return "mistral";
    case ARCH_NEOX: return "gpt_neox";
    case ARCH_FALCON: return "falcon";
    }
    return "?";
}

/* Field readers: absent or null -> default; present with a wrong type -> error. */
typedef struct { const cJSON *root; const char *src; char *err; size_t errlen; int bad; } Reader;

static const cJSON *rd_item(Reader *r, const cJSON *obj, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (x && !cJSON_IsNull(x)) ? x : NULL;
}

static int rd_has(Reader *r, const cJSON *obj, const char *key) { return rd_item(r, obj, key) != NULL; }

static double rd_num(Reader *r, const cJSON *obj, const char *key, double def) {
    const cJSON *x = rd_item(r, obj, key);
    if (!x) return def;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
        if (!r->bad) lcb_fail(r->err, r->errlen, "%s: field %s must be a number", r->src, key);
        r->bad = 1;
        return def;
    }
    return x->valuedouble;
}

static int rd_int(Reader *r, const cJSON *obj, const char *key, int def, int lo, int hi) {
    const cJSON *x = rd_item(r, obj, key);
    if (!x) return def;
    double v = rd_num(r, obj, key, def);
    if (r->bad) return def;
    if (v != floor(v) || v < lo || v > hi) {
        lcb_fail(r->err, r->errlen, "%s: field %s = %g must be an integer in [%d, %d]", r->src, key, v, lo, hi);
        r->bad = 1;
        return def;
    }
    return (int)v;
}

static int rd_bool(Reader *r, const cJSON *obj, const char *key, int def) {
    const cJSON *x = rd_item(r, obj, key);
    if (!x) return def;
    if (!cJSON_IsBool(x)) {
        if (!r->bad) lcb_fail(r->err, r->errlen, "%s: field %s must be true or false", r->src, key);
        r->bad = 1;
        return def;
    }
    return cJSON_IsTrue(x);
}

static const char *rd_str(Reader *r, const cJSON *obj, const char *key, const char *def) {
    const cJSON *x = rd_item(r, obj, key);
    if (!x) return def;
    if (!cJSON_IsString(x)) {
        if (!r->bad) lcb_fail(r->err, r->errlen, "%s: field %s must be a string", r->src, key);
        r->bad = 1;
        return def;
    }
    return x->valuestring;
}

/* First present key of a list of aliases. */
static int rd_int_alias(Reader *r, const char *const *keys, int def, int lo, int hi) {
    for (; *keys; keys++)
        if (rd_has(r, r->root, *keys)) return rd_int(r, r->root, *keys, def, lo, hi);
    return def;
}

static int parse_act(Reader *r, const char *name, LcbAct *act) {
    if (!strcmp(name, "silu") || !strcmp(name, "swish")) *act = ACT_SILU;
    else if (!strcmp(name, "gelu")) *act = ACT_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast")) *act = ACT_GELU_TANH;
    else if (!strcmp(name, "relu")) *act = ACT_RELU;
    else return lcb_fail(r->err, r->errlen, "%s: activation \"%s\" is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)", r->src, name);
    return 0;
}

/* A norm epsilon: the forward computes 1/sqrt(mean square + eps) and keeps it in fp32, so a
 * zero (or negative) eps turns a zero row into Inf and then NaN, and an eps below 1e-60 can
 * overflow fp32 the same way; every NLL would then be NaN.  HF configs use 1e-12 .. 1e-5. */
static int check_norm_eps(Reader *r, const char *key, double eps) {
    if (r->bad) return -1;
    if (!(eps >= 1e-60) || !isfinite(eps))
        return lcb_fail(r->err, r->errlen, "%s: field %s = %g must be a positive number (at least 1e-60): "
                        "a zero or negative epsilon makes the norms, and every NLL, NaN", r->src, key, eps);
    return 0;
}

/* RoPE: 5.x `rope_parameters` or legacy `rope_theta` + `rope_scaling`. */
static int parse_rope(Reader *r, ModelConfig *c, double theta_default) {
    const cJSON *rp = rd_item(r, r->root, "rope_parameters");
    const cJSON *rs = rd_item(r, r->root, "rope_scaling");
    if (rp && !cJSON_IsObject(rp)) return lcb_fail(r->err, r->errlen, "%s: field rope_parameters must be an object", r->src);
    if (rs && !cJSON_IsObject(rs)) return lcb_fail(r->err, r->errlen, "%s: field rope_scaling must be an object", r->src);
    c->rope_theta = rd_num(r, r->root, "rope_theta", theta_default);
    const cJSON *scal = rs;
    const char *field = "rope_scaling";
    if (rp) {
        c->rope_theta = rd_num(r, rp, "rope_theta", c->rope_theta);
        scal = rp;
        field = "rope_parameters";
    }
    c->rope_type = ROPE_DEFAULT;
    c->rope_factor = 1.0;
    if (scal) {
        const char *type = rd_str(r, scal, "rope_type", NULL);
        if (!type) type = rd_str(r, scal, "type", "default");
        if (r->bad) return -1;
        if (!strcmp(type, "default")) c->rope_type = ROPE_DEFAULT;
        else if (!strcmp(type, "linear")) c->rope_type = ROPE_LINEAR;
        else if (!strcmp(type, "llama3")) c->rope_type = ROPE_LLAMA3;
        else if (!strcmp(type, "dynamic") || !strcmp(type, "yarn") || !strcmp(type, "longrope") || !strcmp(type, "su") || !strcmp(type, "ntk"))
            return lcb_fail(r->err, r->errlen, "%s: %s.rope_type \"%s\" is recognised but not implemented by lcbench (default, linear and llama3 are); "
                            "override it with --strategy longlora:F for linear interpolation, or remove the field to use unscaled RoPE", r->src, field, type);
        else return lcb_fail(r->err, r->errlen, "%s: %s.rope_type \"%s\" is unknown", r->src, field, type);
        if (c->rope_type != ROPE_DEFAULT) {
            if (!rd_has(r, scal, "factor")) return lcb_fail(r->err, r->errlen, "%s: %s.factor is required for rope type %s", r->src, field, type);
            c->rope_factor = rd_num(r, scal, "factor", 1.0);
            if (!(c->rope_factor > 0)) return lcb_fail(r->err, r->errlen, "%s: %s.factor must be > 0", r->src, field);
        }
        if (c->rope_type == ROPE_LLAMA3) {
            c->rope_low_freq = rd_num(r, scal, "low_freq_factor", 1.0);
            c->rope_high_freq = rd_num(r, scal, "high_freq_factor", 4.0);
            c->rope_orig_ctx = rd_int(r, scal, "original_max_position_embeddings", 8192, 1, 1 << 30);
            if (r->bad) return -1;
            if (!(c->rope_low_freq > 0)) return lcb_fail(r->err, r->errlen, "%s: %s.low_freq_factor = %g must be > 0", r->src, field, c->rope_low_freq);
            if (c->rope_high_freq <= c->rope_low_freq) return lcb_fail(r->err, r->errlen, "%s: %s: high_freq_factor must exceed low_freq_factor", r->src, field);
        }
    }
    if (!(c->rope_theta > 0)) return lcb_fail(r->err, r->errlen, "%s: rope_theta must be > 0", r->src);
    return r->bad ? -1 : 0;
}

int config_parse(ModelConfig *c, const char *json_text, const char *src, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(json_text);
    if (!root) return lcb_fail(err, errlen, "%s: malformed JSON near byte %ld", src, (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json_text : 0));
    Reader rr = {root, src, err, errlen, 0}, *r = &rr;
    int rc = -1;
    if (!cJSON_IsObject(root)) { lcb_fail(err, errlen, "%s: top level is not a JSON object", src); goto out; }

    const char *mt = rd_str(r, root, "model_type", NULL);
    if (r->bad) goto out;
    const cJSON *archs = rd_item(r, root, "architectures");
    const char *arch0 = (archs && cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0))) ? cJSON_GetArrayItem(archs, 0)->valuestring : "";
    if (!mt) {
        if (!strcmp(arch0, "LlamaForCausalLM")) mt = "llama";
        else if (!strcmp(arch0, "MistralForCausalLM")) mt = "mistral";
        else if (!strcmp(arch0, "GPTNeoXForCausalLM")) mt = "gpt_neox";
        else if (!strcmp(arch0, "FalconForCausalLM") || !strcmp(arch0, "RWForCausalLM")) mt = "falcon";
        else { lcb_fail(err, errlen, "%s: field model_type is missing and architectures[0] \"%s\" is not recognised", src, arch0); goto out; }
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if (!strcmp(mt, "llama")) c->arch = ARCH_LLAMA;
    else if (!strcmp(mt, "mistral")) c->arch = ARCH_MISTRAL;
    else if (!strcmp(mt, "gpt_neox")) c->arch = ARCH_NEOX;
    else if (!strcmp(mt, "falcon") || !strcmp(mt, "RefinedWeb") || !strcmp(mt, "RefinedWebModel")) c->arch = ARCH_FALCON;
    else {
        lcb_fail(err, errlen, "%s: model_type \"%s\" is not a supported architecture (llama, mistral, gpt_neox, falcon)", src, mt);
        goto out;
    }

    static const char *k_vocab[] = {"vocab_size", NULL};
    static const char *k_dim[] = {"hidden_size", "d_model", NULL};
    static const char *k_layers[] = {"num_hidden_layers", "n_layer", NULL};
    static const char *k_heads[] = {"num_attention_heads", "n_head", NULL};
    c->vocab = rd_int_alias(r, k_vocab, 0, 1, 1 << 26);
    c->dim = rd_int_alias(r, k_dim, 0, 1, 1 << 20);
    c->n_layers = rd_int_alias(r, k_layers, 0, 1, 1 << 12);
    c->n_heads = rd_int_alias(r, k_heads, 0, 1, 1 << 14);
    if (r->bad) goto out;
    if (!c->vocab) { lcb_fail(err, errlen, "%s: field vocab_size is required", src); goto out; }
    if (!c->dim) { lcb_fail(err, errlen, "%s: field hidden_size is required", src); goto out; }
    if (!c->n_layers) { lcb_fail(err, errlen, "%s: field num_hidden_layers is required", src); goto out; }
    if (!c->n_heads) { lcb_fail(err, errlen, "%s: field num_attention_heads is required", src); goto out; }
    c->max_pos = rd_int(r, root, "max_position_embeddings", 2048, 1, 1 << 30);
    c->bos_id = rd_int(r, root, "bos_token_id", -1, -1, 1 << 26);
    c->eos_id = rd_has(r, root, "eos_token_id") && cJSON_IsArray(rd_item(r, root, "eos_token_id")) ? -1 : rd_int(r, root, "eos_token_id", -1, -1, 1 << 26);
    const char *dt = rd_str(r, root, "dtype", NULL);
    if (!dt) dt = rd_str(r, root, "torch_dtype", "");
    snprintf(c->dtype, sizeof c->dtype, "%s", dt ? dt : "");
    c->head_dim = c->dim / c->n_heads;

    if (c->arch == ARCH_LLAMA || c->arch == ARCH_MISTRAL) {
        c->n_kv = rd_int(r, root, "num_key_value_heads", c->n_heads, 1, c->n_heads);
        c->head_dim = rd_int(r, root, "head_dim", c->dim / c->n_heads, 1, 1 << 14);
        c->ffn = rd_int(r, root, "intermediate_size", 0, 1, 1 << 24);
        c->norm = NORM_RMS;
        c->norm_eps = rd_num(r, root, "rms_norm_eps", 1e-6);
        if (check_norm_eps(r, "rms_norm_eps", c->norm_eps)) goto out;
        c->gated_mlp = 1;
        if (parse_act(r, rd_str(r, root, "hidden_act", "silu"), &c->act)) goto out;
        c->qkv_layout = QKV_SEPARATE;
        c->qkv_bias = c->o_bias = rd_bool(r, root, "attention_bias", 0);
        c->mlp_bias = rd_bool(r, root, "mlp_bias", 0);
        c->tie_embeddings = rd_bool(r, root, "tie_word_embeddings", 0);
        c->sliding_window = c->arch == ARCH_MISTRAL ? rd_int(r, root, "sliding_window", 0, 0, 1 << 30) : 0;
        if (c->arch == ARCH_LLAMA && rd_has(r, root, "sliding_window")) c->sliding_window = rd_int(r, root, "sliding_window", 0, 0, 1 << 30);
        c->rot_dim = c->head_dim;
        if (parse_rope(r, c, 10000.0)) goto out;
        if (rd_item(r, root, "rope_parameters") && rd_has(r, rd_item(r, root, "rope_parameters"), "partial_rotary_factor")) {
            double pf = rd_num(r, rd_item(r, root, "rope_parameters"), "partial_rotary_factor", 1.0);
            /* checked before the cast: a huge factor made (int) overflow, undefined behaviour */
            if (!(pf > 0 && pf <= 1)) { lcb_fail(err, errlen, "%s: rope_parameters.partial_rotary_factor must be in (0, 1]", src); goto out; }
            c->rot_dim = (int)(c->head_dim * pf);
        }
    } else if (c->arch == ARCH_NEOX) {
        c->n_kv = c->n_heads;
        c->ffn = rd_int(r, root, "intermediate_size", 4 * c->dim, 1, 1 << 24);
        c->norm = NORM_LAYER;
        c->norm_eps = rd_num(r, root, "layer_norm_eps", 1e-5);
        if (check_norm_eps(r, "layer_norm_eps", c->norm_eps)) goto out;
        c->gated_mlp = 0;
        if (parse_act(r, rd_str(r, root, "hidden_act", "gelu"), &c->act)) goto out;
        c->parallel = rd_bool(r, root, "use_parallel_residual", 1);
        c->qkv_layout = QKV_PER_HEAD;
        c->qkv_bias = c->o_bias = rd_bool(r, root, "attention_bias", 1);
        c->mlp_bias = 1;
        c->tie_embeddings = rd_bool(r, root, "tie_word_embeddings", 0);
        if (parse_rope(r, c, rd_num(r, root, "rotary_emb_base", 10000.0))) goto out;
        double pct = rd_num(r, root, "rotary_pct", 1.0);
        const cJSON *rp = rd_item(r, root, "rope_parameters");
        if (rp && cJSON_IsObject(rp)) pct = rd_num(r, rp, "partial_rotary_factor", pct);
        if (!(pct > 0 && pct <= 1)) { lcb_fail(err, errlen, "%s: rotary_pct / partial_rotary_factor must be in (0, 1]", src); goto out; }
        c->rot_dim = (int)(c->head_dim * pct);
    } else { /* Falcon */
        if (rd_bool(r, root, "alibi", 0)) { lcb_fail(err, errlen, "%s: field alibi = true: ALiBi Falcon models are not supported (RoPE only)", src); goto out; }
        int new_arch = rd_bool(r, root, "new_decoder_architecture", 0);
        int mq = rd_bool(r, root, "multi_query", 1);
        static const char *k_kv[] = {"num_kv_heads", "n_head_kv", NULL};
        int kv = rd_int_alias(r, k_kv, c->n_heads, 1, c->n_heads);
        if (new_arch) { c->n_kv = kv; c->qkv_layout = QKV_GROUPED; }
        else if (mq) { c->n_kv = 1; c->qkv_layout = QKV_MULTI_QUERY; }
        else { c->n_kv = c->n_heads; c->qkv_layout = QKV_PER_HEAD; }
        c->ffn = rd_int(r, root, "ffn_hidden_size", 4 * c->dim, 1, 1 << 24);
        c->norm = NORM_LAYER;
        c->norm_eps = rd_num(r, root, "layer_norm_epsilon", 1e-5);
        if (check_norm_eps(r, "layer_norm_epsilon", c->norm_eps)) goto out;
        c->gated_mlp = 0;
        if (parse_act(r, rd_str(r, root, "activation", "gelu"), &c->act)) goto out;
        int par = rd_bool(r, root, "parallel_attn", 1);
        int nln = rd_int(r, root, "num_ln_in_parallel_attn", new_arch ? 2 : 0, 0, 2);
        c->parallel = new_arch || par;
        c->shared_norm = new_arch ? (nln != 2) : par;
        c->qkv_bias = c->o_bias = c->mlp_bias = rd_bool(r, root, "bias", 0);
        c->tie_embeddings = rd_bool(r, root, "tie_word_embeddings", 1);
        c->rot_dim = c->head_dim;
        if (parse_rope(r, c, 10000.0)) goto out;
    }
    if (r->bad) goto out;
    /* hidden_size < num_attention_heads without an explicit head_dim gave head_dim 0, accepted
     * and then divided by (fuzz_config) */
    if (c->head_dim < 1) {
        lcb_fail(err, errlen, "%s: hidden_size %d is smaller than num_attention_heads %d (head_dim would be 0)", src, c->dim, c->n_heads);
        goto out;
    }
    if (!c->ffn) { lcb_fail(err, errlen, "%s: field intermediate_size is required", src); goto out; }
    if (c->n_heads % c->n_kv) { lcb_fail(err, errlen, "%s: num_attention_heads %d is not a multiple of the key/value heads %d", src, c->n_heads, c->n_kv); goto out; }
    if (c->qkv_layout != QKV_SEPARATE && c->dim % c->n_heads) { lcb_fail(err, errlen, "%s: hidden_size %d is not a multiple of num_attention_heads %d", src, c->dim, c->n_heads); goto out; }
    if (c->rot_dim % 2 || c->rot_dim < 0 || c->rot_dim > c->head_dim) {
        lcb_fail(err, errlen, "%s: rotary dimension %d (of head_dim %d) must be even", src, c->rot_dim, c->head_dim);
        goto out;
    }
    if (config_check_numbers(c, src, err, errlen)) goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int config_check_numbers(const ModelConfig *c, const char *src, char *err, size_t errlen) {
    if (!(c->norm_eps >= 1e-60) || !isfinite(c->norm_eps))
        return lcb_fail(err, errlen, "%s: norm epsilon %g must be a positive number (at least 1e-60): "
                        "a zero or negative epsilon makes the norms, and every NLL, NaN", src, c->norm_eps);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return lcb_fail(err, errlen, "%s: rope_theta %g must be a positive finite number", src, c->rope_theta);
    if (!(c->rope_factor > 0) || !isfinite(c->rope_factor))
        return lcb_fail(err, errlen, "%s: RoPE scaling factor %g must be a positive finite number", src, c->rope_factor);
    /* each finite and positive, the combination can still give an infinite frequency (a factor
     * near 0: 1/1e-320), and an infinite angle has a NaN sine: check what the forward will use */
    if (c->rot_dim <= 0) return 0;
    double *inv = malloc((size_t)(c->rot_dim / 2) * sizeof *inv);
    if (!inv) return lcb_fail(err, errlen, "%s: out of memory checking the RoPE frequencies", src);
    config_rope_inv_freq(c, 0, inv);
    int bad = -1;
    for (int i = 0; i < c->rot_dim / 2 && bad < 0; i++)
        if (!isfinite(inv[i]) || !(inv[i] > 0)) bad = i;
    if (bad >= 0)
        lcb_fail(err, errlen, "%s: rope_theta %g with scaling factor %g gives RoPE frequency %d = %g: not a positive finite number",
                 src, c->rope_theta, c->rope_factor, bad, inv[bad]);
    free(inv);
    return bad >= 0 ? -1 : 0;
}

int config_load(ModelConfig *c, const char *path, char *err, size_t errlen) {
    /* refuse a FIFO, a folder or a link loop by name before anything opens it to look */
    int fd = lcb_open_regular(path, NULL, err, errlen);
    if (fd < 0) return -1;
    close(fd);
    if (gguf_is_gguf(path)) return gguf_config_load(c, path, err, errlen); /* engine/gguf_model.c */
    char *txt;
    if (lcb_read_file(path, &txt, NULL, err, errlen)) return -1;
    int rc = config_parse(c, txt, path, err, errlen);
    free(txt);
    return rc;
}

void config_matrices(const ModelConfig *c, int shape[MAT_N][2]) {
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv * c->head_dim;
    const int nk[MAT_N][2] = {{qd + 2 * kvd, d}, {d, qd}, {(c->gated_mlp ? 2 : 1) * c->ffn, d}, {d, c->ffn}, {c->vocab, d}};
    memcpy(shape, nk, sizeof nk);
}

uint64_t config_n_params(const ModelConfig *c) {
    uint64_t d = c->dim, hd = c->head_dim, q = (uint64_t)c->n_heads * hd, kv = (uint64_t)c->n_kv * hd;
    uint64_t attn = d * (q + 2 * kv) + q * d + (c->qkv_bias ? q + 2 * kv : 0) + (c->o_bias ? d : 0);
    uint64_t mlp = (c->gated_mlp ? 3 : 2) * d * (uint64_t)c->ffn + (c->mlp_bias ? c->ffn + d : 0);
    uint64_t norms = (c->norm == NORM_LAYER ? 2 : 1) * d * ((c->parallel && c->shared_norm) ? 1 : 2);
    uint64_t per_layer = attn + mlp + norms;
    uint64_t emb = (uint64_t)c->vocab * d * (c->tie_embeddings ? 1 : 2);
    return per_layer * c->n_layers + emb + (c->norm == NORM_LAYER ? 2 : 1) * d;
}

void config_rope_inv_freq(const ModelConfig *c, double factor_override, double *inv_freq) {
    int half = c->rot_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(c->rope_theta, (2.0 * i) / c->rot_dim);
        if (factor_override > 0) f /= factor_override;
        else if (c->rope_type == ROPE_LINEAR) f /= c->rope_factor;
        else if (c->rope_type == ROPE_LLAMA3) {
            double lo_wl = c->rope_orig_ctx / c->rope_low_freq, hi_wl = c->rope_orig_ctx / c->rope_high_freq;
            double wl = 2 * M_PI / f;
            if (wl > lo_wl) f = f / c->rope_factor;
            else if (wl >= hi_wl) {
                double s = (c->rope_orig_ctx / wl - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
                f = (1 - s) * f / c->rope_factor + s * f;
            }
        }
        inv_freq[i] = f;
    }
}

/* Named shapes.  Weights of a random: model are seeded normals, so its numbers mean nothing
 * but its speed and memory are those of the real model. */
typedef struct {
    const char *name;
    LcbArch arch;
    int vocab, dim, layers, heads, kv, ffn, max_pos, sliding_window;
    double rot_pct;
} Shape;

static const Shape shapes[] = {
    {"llama-tiny", ARCH_LLAMA, 512, 64, 2, 4, 2, 176, 512, 0, 1.0},
    {"llama-1m", ARCH_LLAMA, 4096, 96, 4, 4, 4, 256, 512, 0, 1.0},
    {"llama-10m", ARCH_LLAMA, 4096, 320, 6, 5, 5, 864, 512, 0, 1.0},
    {"llama2-7b", ARCH_LLAMA, 32000, 4096, 32, 32, 32, 11008, 4096, 0, 1.0},
    {"llama2-13b", ARCH_LLAMA, 32000, 5120, 40, 40, 40, 13824, 4096, 0, 1.0},
    {"llama2-70b", ARCH_LLAMA, 32000, 8192, 80, 64, 8, 28672, 4096, 0, 1.0},
    {"mistral-7b", ARCH_MISTRAL, 32000, 4096, 32, 32, 8, 14336, 32768, 4096, 1.0},
    {"falcon-7b", ARCH_FALCON, 65024, 4544, 32, 71, 1, 18176, 2048, 0, 1.0},
    {"pythia-6.9b", ARCH_NEOX, 50432, 4096, 32, 32, 32, 16384, 2048, 0, 0.25},
};

const char *config_random_shapes(void) {
    return "llama-tiny, llama-1m, llama-10m, llama2-7b, llama2-13b, llama2-70b, mistral-7b, falcon-7b, pythia-6.9b";
}

int config_random_shape(ModelConfig *c, const char *name, char *err, size_t errlen) {
    const Shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(shapes[i].name, name)) s = &shapes[i];
    if (!s) return lcb_fail(err, errlen, "random:%s: unknown shape (known: %s)", name, config_random_shapes());
    memset(c, 0, sizeof *c);
    c->arch = s->arch;
    snprintf(c->model_type, sizeof c->model_type, "%s", config_arch_name(s->arch));
    c->vocab = s->vocab; c->dim = s->dim; c->n_layers = s->layers; c->n_heads = s->heads; c->n_kv = s->kv;
    c->head_dim = s->dim / s->heads; c->ffn = s->ffn; c->max_pos = s->max_pos; c->sliding_window = s->sliding_window;
    c->rot_dim = (int)(c->head_dim * s->rot_pct) & ~1;
    c->rope_theta = 10000.0; c->rope_type = ROPE_DEFAULT; c->rope_factor = 1.0;
    c->bos_id = 1; c->eos_id = 2;
    snprintf(c->dtype, sizeof c->dtype, "float32");
    if (s->arch == ARCH_LLAMA || s->arch == ARCH_MISTRAL) {
        c->norm = NORM_RMS; c->norm_eps = 1e-5; c->act = ACT_SILU; c->gated_mlp = 1; c->qkv_layout = QKV_SEPARATE;
    } else if (s->arch == ARCH_NEOX) {
        c->norm = NORM_LAYER; c->norm_eps = 1e-5; c->act = ACT_GELU; c->parallel = 1; c->qkv_layout = QKV_PER_HEAD;
        c->qkv_bias = c->o_bias = c->mlp_bias = 1;
    } else {
        c->norm = NORM_LAYER; c->norm_eps = 1e-5; c->act = ACT_GELU; c->parallel = 1; c->shared_norm = 1;
        c->qkv_layout = QKV_MULTI_QUERY; c->tie_embeddings = 1;
    }
    return 0;
}
