/*
 * model.c — loading checkpoints into the engine's one weight layout, seeded random models, and
 * the CPU forward pass.
 *
 * Loading is two passes over the same description of the architecture's tensors: the first
 * only validates (presence, float dtype, exact shape against the config) so that a bad
 * checkpoint is refused before anything is allocated or run; the second converts each tensor to
 * fp32 into one arena, permuting fused QKV rows into [q heads | k heads | v heads].  A GGUF on
 * the CPU keeps its four layer matrices as the file's blocks instead (Model.qblocks, read
 * straight into place), and the forward dequantizes them a panel at a time inside the product
 * (engine/gemm.h gemm_quant): a 7B Q4_K_M needs 3.9 GB for them where fp32 needs 25.9 GB, and the
 * numbers are those of the fp32 layout, bit for bit.
 *
 * Forward pass for a chunk of n tokens (shapes in rows x columns):
 *   x (n, dim) = embed[ids]
 *   per layer:  xn = norm(x);  qkv (n, (H+2KV) hd) = xn Wqkv^T + b
 *               rotate q, k at absolute positions (and a copy of q at the sink position)
 *               att (n, H hd) = attention over the cache policy;  o = att Wo^T + b
 *               sequential:  x += o;  x += mlp(norm2(x))
 *               parallel:    x += o + mlp(norm2(x_in) or xn)        (NeoX, Falcon)
 *   logits (n, vocab) = norm(x) lm_head^T
 * Every product with a weight matrix runs on the matrices packed once by model_cpu_layout
 * (engine/gemm.h), or on a GGUF's blocks, with the bias and the residual add done in the product.
 */
#include "engine/model.h"
#include "engine/gemm.h"
#include "engine/gguf_model.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/rng.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- tensor names per arch */

typedef struct {
    const char *embed, *final_norm, *lm_head;
    const char *attn_norm, *mlp_norm;  /* layer-relative; mlp_norm NULL if shared */
    const char *qkv;                   /* fused; NULL for separate q/k/v */
    const char *q, *k, *v, *o;
    const char *gate, *up, *down;      /* gate NULL when not gated */
    const char *layer_fmt;             /* "model.layers.%d." */
} Names;

static Names arch_names(const ModelConfig *c) {
    Names n = {0};
    switch (c->arch) {
    case ARCH_LLAMA: case ARCH_MISTRAL:
        n = (Names){"model.embed_tokens", "model.norm", "lm_head", "input_layernorm", "post_attention_layernorm",
                    NULL, "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "model.layers.%d."};
        break;
    case ARCH_NEOX:
        n = (Names){"gpt_neox.embed_in", "gpt_neox.final_layer_norm", "embed_out", "input_layernorm",
                    "post_attention_layernorm", "attention.query_key_value", NULL, NULL, NULL, "attention.dense",
                    NULL, "mlp.dense_h_to_4h", "mlp.dense_4h_to_h", "gpt_neox.layers.%d."};
        break;
    case ARCH_FALCON: {
        int new_arch = c->qkv_layout == QKV_GROUPED;
        n = (Names){"transformer.word_embeddings", "transformer.ln_f", "lm_head",
                    (new_arch && !c->shared_norm) ? "ln_attn" : "input_layernorm",
                    c->shared_norm ? NULL : (new_arch ? "ln_mlp" : "post_attention_layernorm"),
                    "self_attention.query_key_value", NULL, NULL, NULL, "self_attention.dense",
                    NULL, "mlp.dense_h_to_4h", "mlp.dense_4h_to_h", "transformer.h.%d."};
        break;
    }
    }
    return n;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const StFile *st;   /* the tensors: a safetensors checkpoint, */
    const GgufWeights *gw; /* or a GGUF file (exactly one of the two) */
    const char *src;
    char *err;
    size_t errlen;
    int dry;            /* 1: validate only */
    int dtype_mask;     /* bit per StDtype seen */
    float *tmp;         /* conversion buffer */
    size_t tmp_n;
    int keep_blocks;    /* GGUF: the four layer matrices stay as blocks (Model.qblocks) */
    size_t qbytes;      /* dry: the bytes those blocks need; else the bytes placed so far */
    uint8_t *qblocks;   /* where they go */
    QuantMat *qmats;    /* (n_layers, 4) their descriptions */
} Loader;

/* Shape (rows, cols) of a tensor against (d0) or (d0, d1) (d1 < 0: 1-D); the message names it. */
static int ld_shape(Loader *L, const char *path, const char *name, int ndim, const int64_t *shape, int64_t d0, int64_t d1) {
    int want_nd = d1 < 0 ? 1 : 2;
    if (ndim == want_nd && shape[0] == d0 && (want_nd == 1 || shape[1] == d1)) return 0;
    char got[128] = "", want[64];
    for (int i = 0; i < ndim; i++) {
        size_t k = strlen(got);
        snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (want_nd == 1) snprintf(want, sizeof want, "%lld", (long long)d0);
    else snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
    return lcb_fail(L->err, L->errlen, "%s: tensor %s has shape [%s]; the config implies [%s]", path, name, got, want);
}

/* A GGUF tensor by its HF name, its shape checked and its type one lcbench reads. */
static const GgufWeight *ld_gguf(Loader *L, const char *name, int64_t d0, int64_t d1) {
    const GgufWeight *w = gguf_weights_find(L->gw, name);
    const char *path = L->gw->g.path;
    if (!w) { lcb_fail(L->err, L->errlen, "%s: tensor %s is missing", L->src, name); return NULL; }
    int64_t shape[2] = {w->rows, w->cols};
    char both[600];
    snprintf(both, sizeof both, "%s (%s in the file)", name, w->t->name);
    if (ld_shape(L, path, both, w->ndim, shape, d0, d1)) return NULL;
    if (!quant_supported(w->t->type)) {
        lcb_fail(L->err, L->errlen, "%s: tensor %s has type %s, which lcbench cannot dequantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                 path, w->t->name, quant_type_name(w->t->type) ? quant_type_name(w->t->type) : "unknown");
        return NULL;
    }
    return w;
}

/* GGUF matrix `name` (d0, d1) as one segment of a block matrix: dry, count its bytes; else read
 * its blocks (rows in the HF order) into the next bytes of L->qblocks and describe them in seg. */
static int ld_blocks(Loader *L, const char *name, int64_t d0, int64_t d1, QuantSeg *seg) {
    const GgufWeight *w = ld_gguf(L, name, d0, d1);
    if (!w) return -1;
    if (!L->dry) {
        uint8_t *dst = L->qblocks + L->qbytes;
        if (gguf_weights_read(L->gw, w, dst, L->err, L->errlen)) return -1;
        *seg = (QuantSeg){w->t->type, (int)w->rows, w->row_bytes, dst};
    }
    L->qbytes += w->t->nbytes;
    return 0;
}

/* Check tensor `name` exists with a float dtype and shape (d0) or (d0, d1) (d1 < 0: 1-D);
 * unless dry, convert it to fp32 and return the converted data (valid until the next call). */
static const float *ld_take(Loader *L, const char *name, int64_t d0, int64_t d1) {
    if (L->gw) {
        const GgufWeight *w = ld_gguf(L, name, d0, d1);
        if (!w) return NULL;
        if (L->dry) return (const float *)w; /* non-NULL marker; not read */
        if ((size_t)w->t->numel > L->tmp_n) {
            free(L->tmp);
            L->tmp = malloc((size_t)w->t->numel * sizeof(float));
            L->tmp_n = L->tmp ? (size_t)w->t->numel : 0;
            if (!L->tmp) { lcb_fail(L->err, L->errlen, "%s: out of memory converting %s", L->src, name); return NULL; }
        }
        return gguf_weights_read_f32(L->gw, w, L->tmp, L->err, L->errlen) ? NULL : L->tmp;
    }
    const StTensor *t = st_find(L->st, name);
    if (!t) { lcb_fail(L->err, L->errlen, "%s: tensor %s is missing", L->src, name); return NULL; }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        lcb_fail(L->err, L->errlen, "%s: tensor %s has dtype %s; F32, F16 or BF16 expected", L->st->paths[t->shard], name, st_dtype_name(t->dtype));
        return NULL;
    }
    if (ld_shape(L, L->st->paths[t->shard], name, t->ndim, t->shape, d0, d1)) return NULL;
    L->dtype_mask |= 1 << t->dtype;
    if (L->dry) return (const float *)t->data; /* non-NULL marker; not read */
    if (t->numel > L->tmp_n) {
        free(L->tmp);
        L->tmp = malloc(t->numel * sizeof(float));
        L->tmp_n = L->tmp ? t->numel : 0;
        if (!L->tmp) { lcb_fail(L->err, L->errlen, "%s: out of memory converting %s", L->src, name); return NULL; }
    }
    if (st_to_f32(t, L->tmp, L->err, L->errlen)) return NULL;
    return L->tmp;
}

/* Take into dst (contiguous copy) */
static int ld_copy(Loader *L, const char *name, int64_t d0, int64_t d1, float *dst) {
    const float *p = ld_take(L, name, d0, d1);
    if (!p) return -1;
    if (!L->dry) memcpy(dst, p, (size_t)d0 * (d1 < 0 ? 1 : d1) * sizeof(float));
    return 0;
}

/* Row of the checkpoint's fused QKV tensor that holds row r of our [q | k | v] layout. */
static int64_t qkv_src_row(const ModelConfig *c, int64_t r) {
    int64_t hd = c->head_dim, H = c->n_heads, KV = c->n_kv, grp = H / KV;
    int64_t part, head, d = r % hd;
    if (r < H * hd) { part = 0; head = r / hd; }
    else if (r < (H + KV) * hd) { part = 1; head = (r - H * hd) / hd; }
    else { part = 2; head = (r - (H + KV) * hd) / hd; }
    switch (c->qkv_layout) {
    case QKV_PER_HEAD: return (head * 3 + part) * hd + d;
    case QKV_GROUPED:
        if (part == 0) return ((head / grp) * (grp + 2) + head % grp) * hd + d;
        return (head * (grp + 2) + grp + (part - 1)) * hd + d;
    default: return r; /* QKV_MULTI_QUERY and already-concatenated layouts */
    }
}

static void layer_name(char *buf, size_t n, const Names *nm, int l, const char *part, const char *suffix) {
    int k = snprintf(buf, n, nm->layer_fmt, l);
    snprintf(buf + k, n - k, "%s.%s", part, suffix);
}

/* Matrix `which` (0 wqkv, 1 wo, 2 wup, 3 wdown) of layer l as the GGUF's blocks into qm (NULL
 * when dry): one segment per file tensor, in the order of the fused layout. */
static int load_blocks(Loader *L, const ModelConfig *c, const Names *nm, int l, int which, QuantMat *qm) {
    char name[512];
    const int64_t dim = c->dim, hd = c->head_dim, qd = (int64_t)c->n_heads * hd, kvd = (int64_t)c->n_kv * hd, ffn = c->ffn;
    const char *part[3] = {NULL, NULL, NULL};
    int64_t rows[3] = {0, 0, 0}, K = dim;
    switch (which) {
    case 0:
        if (nm->qkv) { part[0] = nm->qkv; rows[0] = qd + 2 * kvd; } /* [q | k | v] on file already (QKV_MULTI_QUERY) */
        else { part[0] = nm->q; part[1] = nm->k; part[2] = nm->v; rows[0] = qd; rows[1] = rows[2] = kvd; }
        break;
    case 1: part[0] = nm->o; rows[0] = dim; K = qd; break;
    case 2:
        if (c->gated_mlp) { part[0] = nm->gate; part[1] = nm->up; rows[0] = rows[1] = ffn; }
        else { part[0] = nm->up; rows[0] = ffn; }
        break;
    default: part[0] = nm->down; rows[0] = dim; K = ffn; break;
    }
    QuantMat m = {.K = (int)K};
    for (int i = 0; i < 3 && part[i]; i++) {
        layer_name(name, sizeof name, nm, l, part[i], "weight");
        if (ld_blocks(L, name, rows[i], K, &m.seg[i])) return -1;
        m.N += (int)rows[i];
        m.n_seg++;
    }
    if (qm) *qm = m;
    return 0;
}

/* Carve (or, if dry, just validate) one layer. */
static int load_layer(Loader *L, const ModelConfig *c, const Names *nm, int l, LayerWeights *w) {
    char name[512];
    const int64_t dim = c->dim, hd = c->head_dim, qd = (int64_t)c->n_heads * hd, kvd = (int64_t)c->n_kv * hd;
    const int64_t qkvd = qd + 2 * kvd, ffn = c->ffn;
    int ln = c->norm == NORM_LAYER;
    if (L->keep_blocks) {
        if (nm->qkv && c->qkv_layout != QKV_MULTI_QUERY)
            return lcb_fail(L->err, L->errlen, "%s: a fused QKV kept as blocks must be [q | k | v] already", L->src);
        for (int i = 0; i < 4; i++)
            if (load_blocks(L, c, nm, l, i, L->dry ? NULL : &L->qmats[4 * (size_t)l + i])) return -1;
    }
    layer_name(name, sizeof name, nm, l, nm->attn_norm, "weight");
    if (ld_copy(L, name, dim, -1, w->attn_norm_w)) return -1;
    if (ln) { layer_name(name, sizeof name, nm, l, nm->attn_norm, "bias"); if (ld_copy(L, name, dim, -1, w->attn_norm_b)) return -1; }
    if (nm->mlp_norm) {
        layer_name(name, sizeof name, nm, l, nm->mlp_norm, "weight");
        if (ld_copy(L, name, dim, -1, w->mlp_norm_w)) return -1;
        if (ln) { layer_name(name, sizeof name, nm, l, nm->mlp_norm, "bias"); if (ld_copy(L, name, dim, -1, w->mlp_norm_b)) return -1; }
    }
    const int mats = !L->keep_blocks; /* the four matrices as fp32 (else taken above) */
    if (nm->qkv) {
        layer_name(name, sizeof name, nm, l, nm->qkv, "weight");
        const float *p = mats ? ld_take(L, name, qkvd, dim) : (const float *)w;
        if (!p) return -1;
        if (!L->dry && mats) for (int64_t r = 0; r < qkvd; r++) memcpy(w->wqkv + r * dim, p + qkv_src_row(c, r) * dim, dim * sizeof(float));
        if (c->qkv_bias) {
            layer_name(name, sizeof name, nm, l, nm->qkv, "bias");
            if (!(p = ld_take(L, name, qkvd, -1))) return -1;
            if (!L->dry) for (int64_t r = 0; r < qkvd; r++) w->bqkv[r] = p[qkv_src_row(c, r)];
        }
    } else {
        const char *parts[3] = {nm->q, nm->k, nm->v};
        int64_t rows[3] = {qd, kvd, kvd}, off = 0;
        for (int i = 0; i < 3; i++) {
            layer_name(name, sizeof name, nm, l, parts[i], "weight");
            if (mats && ld_copy(L, name, rows[i], dim, w->wqkv ? w->wqkv + off * dim : NULL)) return -1;
            if (c->qkv_bias) {
                layer_name(name, sizeof name, nm, l, parts[i], "bias");
                if (ld_copy(L, name, rows[i], -1, w->bqkv ? w->bqkv + off : NULL)) return -1;
            }
            off += rows[i];
        }
    }
    layer_name(name, sizeof name, nm, l, nm->o, "weight");
    if (mats && ld_copy(L, name, dim, qd, w->wo)) return -1;
    if (c->o_bias) { layer_name(name, sizeof name, nm, l, nm->o, "bias"); if (ld_copy(L, name, dim, -1, w->bo)) return -1; }
    if (c->gated_mlp) {
        layer_name(name, sizeof name, nm, l, nm->gate, "weight");
        if (mats && ld_copy(L, name, ffn, dim, w->wup)) return -1;
        layer_name(name, sizeof name, nm, l, nm->up, "weight");
        if (mats && ld_copy(L, name, ffn, dim, w->wup ? w->wup + ffn * dim : NULL)) return -1;
        if (c->mlp_bias) {
            return lcb_fail(L->err, L->errlen, "%s: mlp_bias = true with a gated MLP is not supported", L->src);
        }
    } else {
        layer_name(name, sizeof name, nm, l, nm->up, "weight");
        if (mats && ld_copy(L, name, ffn, dim, w->wup)) return -1;
        if (c->mlp_bias) { layer_name(name, sizeof name, nm, l, nm->up, "bias"); if (ld_copy(L, name, ffn, -1, w->bup)) return -1; }
    }
    layer_name(name, sizeof name, nm, l, nm->down, "weight");
    if (mats && ld_copy(L, name, dim, ffn, w->wdown)) return -1;
    if (c->mlp_bias) { layer_name(name, sizeof name, nm, l, nm->down, "bias"); if (ld_copy(L, name, dim, -1, w->bdown)) return -1; }
    return 0;
}

/* Lay every weight out in one arena (sizes from the config alone); with qblocks (the bytes of
 * the layer matrices kept as blocks) those four matrices are left out of the arena and the
 * blocks get a block of their own. */
/* The fp32 arena's bytes; blocks: the layer matrices are kept apart as the GGUF's blocks. */
static int arena_bytes(const ModelConfig *c, int blocks, size_t *bytes) {
    const size_t dim = c->dim, hd = c->head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv * hd;
    const size_t qkvd = qd + 2 * kvd, ffn = c->ffn, up_rows = (c->gated_mlp ? 2 : 1) * ffn;
    const size_t fm = blocks ? 0 : 1; /* the layer matrices in fp32 */
    size_t per_layer = 4 * dim + fm * (qkvd * dim + dim * qd + up_rows * dim + dim * ffn) + qkvd + dim + ffn + dim;
    size_t total = (size_t)c->vocab * dim * (c->tie_embeddings ? 1 : 2) + 2 * dim, lay;
    return lcb_mul_size(per_layer, c->n_layers, &lay) || total + lay < total || lcb_mul_size(total + lay, sizeof(float), bytes) ? -1 : 0;
}

static int model_carve(Model *m, size_t qblocks, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    const size_t dim = c->dim, hd = c->head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv * hd;
    const size_t qkvd = qd + 2 * kvd, ffn = c->ffn, up_rows = (c->gated_mlp ? 2 : 1) * ffn;
    const size_t fm = qblocks ? 0 : 1; /* the layer matrices in fp32 */
    if (arena_bytes(c, qblocks != 0, &m->arena_bytes)) return lcb_fail(err, errlen, "%s: model size overflows", m->source);
    m->arena = lcb_calloc(LCB_MEM_WEIGHTS, 1, m->arena_bytes);
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    if (!m->arena || !m->layers)
        return lcb_fail(err, errlen, "%s: out of memory: the weights need %.2f GB in fp32", m->source, m->arena_bytes / 1e9);
    if (qblocks) {
        m->qblocks = lcb_alloc(LCB_MEM_WEIGHTS, qblocks);
        m->qmats = calloc((size_t)c->n_layers * 4, sizeof *m->qmats);
        if (!m->qblocks || !m->qmats)
            return lcb_fail(err, errlen, "%s: out of memory: the layer matrices need %.2f GB as blocks", m->source, qblocks / 1e9);
        m->qblocks_bytes = qblocks;
    }
    float *p = m->arena;
#define CARVE(dst, count) do { (dst) = p; p += (count); } while (0)
    CARVE(m->embed, (size_t)c->vocab * dim);
    if (c->tie_embeddings) m->lm_head = m->embed; else CARVE(m->lm_head, (size_t)c->vocab * dim);
    CARVE(m->norm_w, dim);
    CARVE(m->norm_b, dim);
    if (c->norm != NORM_LAYER) m->norm_b = NULL;
    for (int l = 0; l < c->n_layers; l++) {
        LayerWeights *w = &m->layers[l];
        CARVE(w->attn_norm_w, dim); CARVE(w->attn_norm_b, dim);
        CARVE(w->mlp_norm_w, dim); CARVE(w->mlp_norm_b, dim);
        CARVE(w->wqkv, fm * qkvd * dim); CARVE(w->bqkv, qkvd);
        CARVE(w->wo, fm * dim * qd); CARVE(w->bo, dim);
        CARVE(w->wup, fm * up_rows * dim); CARVE(w->bup, ffn);
        CARVE(w->wdown, fm * dim * ffn); CARVE(w->bdown, dim);
        if (qblocks) {
            w->wqkv = w->wo = w->wup = w->wdown = NULL;
            for (int i = 0; i < 4; i++) w->q[i] = &m->qmats[4 * (size_t)l + i];
        }
        if (c->norm != NORM_LAYER) w->attn_norm_b = w->mlp_norm_b = NULL;
        if (c->parallel && c->shared_norm) w->mlp_norm_w = w->mlp_norm_b = NULL;
        if (!c->qkv_bias) w->bqkv = NULL;
        if (!c->o_bias) w->bo = NULL;
        if (!c->mlp_bias) w->bup = w->bdown = NULL;
    }
#undef CARVE
    return 0;
}

/* Every tensor there, of the right shape (a dry loader: nothing is read; L->qbytes sums the
 * blocks the layer matrices keep). */
static int ld_validate(Loader *L, const ModelConfig *c, const Names *nm) {
    char name[512];
    LayerWeights dummy = {0};
    snprintf(name, sizeof name, "%s.weight", nm->embed);
    if (!ld_take(L, name, c->vocab, c->dim)) return -1;
    if (!c->tie_embeddings) { snprintf(name, sizeof name, "%s.weight", nm->lm_head); if (!ld_take(L, name, c->vocab, c->dim)) return -1; }
    snprintf(name, sizeof name, "%s.weight", nm->final_norm);
    if (!ld_take(L, name, c->dim, -1)) return -1;
    if (c->norm == NORM_LAYER) { snprintf(name, sizeof name, "%s.bias", nm->final_norm); if (!ld_take(L, name, c->dim, -1)) return -1; }
    for (int l = 0; l < c->n_layers; l++)
        if (load_layer(L, c, nm, l, &dummy)) return -1;
    return 0;
}

/* The weights from a safetensors checkpoint (st) or a GGUF file (gw; keep_blocks: its layer
 * matrices as blocks). */
static int model_load_weights(Model *m, const StFile *st, const GgufWeights *gw, int keep_blocks, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    Names nm = arch_names(c);
    Loader L = {.st = st, .gw = gw, .src = m->source, .err = err, .errlen = errlen, .dry = 1, .keep_blocks = gw && keep_blocks};
    char name[512];
    /* pass 1: validate everything */
    if (ld_validate(&L, c, &nm)) return -1;
    /* pass 2: convert */
    if (L.keep_blocks && !L.qbytes) L.qbytes = 1; /* (no layer has a byte: cannot happen, n_layers >= 1) */
    if (model_carve(m, L.keep_blocks ? L.qbytes : 0, err, errlen)) return -1;
    L.qblocks = m->qblocks;
    L.qmats = m->qmats;
    L.qbytes = 0;
    L.dry = 0;
    int rc = -1;
    snprintf(name, sizeof name, "%s.weight", nm.embed);
    if (ld_copy(&L, name, c->vocab, c->dim, m->embed)) goto out;
    if (!c->tie_embeddings) { snprintf(name, sizeof name, "%s.weight", nm.lm_head); if (ld_copy(&L, name, c->vocab, c->dim, m->lm_head)) goto out; }
    snprintf(name, sizeof name, "%s.weight", nm.final_norm);
    if (ld_copy(&L, name, c->dim, -1, m->norm_w)) goto out;
    if (c->norm == NORM_LAYER) { snprintf(name, sizeof name, "%s.bias", nm.final_norm); if (ld_copy(&L, name, c->dim, -1, m->norm_b)) goto out; }
    for (int l = 0; l < c->n_layers; l++)
        if (load_layer(&L, c, &nm, l, &m->layers[l])) goto out;
    rc = 0;
out:
    free(L.tmp);
    int mask = L.dtype_mask;
    snprintf(m->disk_dtype, sizeof m->disk_dtype, "%s",
             mask == (1 << ST_F32) ? "F32" : mask == (1 << ST_BF16) ? "BF16" : mask == (1 << ST_F16) ? "F16" : "mixed");
    return rc;
}

/* ---------------------------------------------------------------- random models */

/* Tensor `tensor` of the random model with `seed`: p[i] = lcb_rng_normal(seed, tensor, i, std)
 * (engine/rng.h, the generator the CUDA fill shares).  Each element depends on its index alone,
 * so the threads' split of the loop cannot change a value. */
static void fill_normal(float *p, size_t n, float std, uint64_t seed, uint64_t tensor) {
    const uint64_t key = lcb_rng_key(seed, tensor);
    #pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) p[i] = lcb_rng_normal_key(key, i, std);
}

static int model_init_random(Model *m, const char *shape, uint64_t seed, char *err, size_t errlen) {
    if (config_random_shape(&m->cfg, shape, err, errlen)) return -1;
    if (model_carve(m, 0, err, errlen)) return -1;
    const ModelConfig *c = &m->cfg;
    const size_t dim = c->dim, qkvd = (size_t)(c->n_heads + 2 * c->n_kv) * c->head_dim;
    fill_normal(m->embed, (size_t)c->vocab * dim, 0.02f, seed, LCB_RNG_EMBED);
    if (!c->tie_embeddings) fill_normal(m->lm_head, (size_t)c->vocab * dim, 0.02f, seed, LCB_RNG_LM_HEAD);
    for (size_t i = 0; i < dim; i++) m->norm_w[i] = 1.f;
    for (int l = 0; l < c->n_layers; l++) {
        LayerWeights *w = &m->layers[l];
        for (size_t i = 0; i < dim; i++) { w->attn_norm_w[i] = 1.f; if (w->mlp_norm_w) w->mlp_norm_w[i] = 1.f; }
        fill_normal(w->wqkv, qkvd * dim, 0.02f, seed, lcb_rng_layer_tensor(l, LCB_RNG_WQKV));
        fill_normal(w->wo, dim * c->n_heads * c->head_dim, 0.02f, seed, lcb_rng_layer_tensor(l, LCB_RNG_WO));
        fill_normal(w->wup, (c->gated_mlp ? 2 : 1) * (size_t)c->ffn * dim, 0.02f, seed, lcb_rng_layer_tensor(l, LCB_RNG_WUP));
        fill_normal(w->wdown, dim * c->ffn, 0.02f, seed, lcb_rng_layer_tensor(l, LCB_RNG_WDOWN));
    }
    snprintf(m->disk_dtype, sizeof m->disk_dtype, "random");
    return 0;
}

/* ---------------------------------------------------------------- open / free */

/* "random:SHAPE[:SEED]" -> shape name and seed (default 1234).  SEED: decimal digits only, below
 * 2^64; anything else (empty, a sign, spaces, trailing characters, a value that does not fit) is
 * refused rather than read as some other seed (strtoull saturates at 2^64 - 1 and skips spaces). */
static int parse_random_spec(const char *spec, char *shape, size_t n, uint64_t *seed, char *err, size_t errlen) {
    if (strlen(spec + 7) >= n) return lcb_fail(err, errlen, "%.40s...: a random:SHAPE[:SEED] spec is at most %zu characters after random:", spec, n - 1);
    snprintf(shape, n, "%s", spec + 7);
    *seed = 1234;
    char *colon = strchr(shape, ':');
    if (!colon) return 0;
    *colon = 0;
    const char *d = colon + 1;
    if (!*d) return lcb_fail(err, errlen, "%s: the seed after \"%s:\" is empty (random:SHAPE[:SEED], SEED a decimal integer in [0, 2^64))", spec, shape);
    uint64_t v = 0;
    for (const char *p = d; *p; p++) {
        if (*p < '0' || *p > '9')
            return lcb_fail(err, errlen, "%s: seed \"%s\" is not a non-negative decimal integer (digits only)", spec, d);
        const unsigned dig = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - dig) / 10)
            return lcb_fail(err, errlen, "%s: seed %s does not fit in 64 bits (at most 18446744073709551615)", spec, d);
        v = v * 10 + dig;
    }
    *seed = v;
    return 0;
}

/* Load (or generate) the weights into the host arena in the checkpoint's (out, in) layout;
 * keep_blocks: a GGUF's layer matrices stay as its blocks (the CPU forward). */
static int model_open_host(Model *m, const char *spec, const char *config_path, int keep_blocks, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    snprintf(m->source, sizeof m->source, "%s", spec);
    if (strncmp(spec, "random:", 7) == 0) {
        char shape[128];
        uint64_t seed;
        if (parse_random_spec(spec, shape, sizeof shape, &seed, err, errlen)) return -1;
        if (model_init_random(m, shape, seed, err, errlen)) { model_free(m); return -1; }
        return 0;
    }
    if (gguf_model_is(spec)) { /* a GGUF file: engine/gguf_model.c names its tensors and reads them */
        if (config_path) return lcb_fail(err, errlen, "%s: a GGUF file carries its own config; --config does not apply", spec);
        GgufWeights gw;
        char label[sizeof m->disk_dtype];
        if (gguf_weights_open(&gw, spec, &m->cfg, label, sizeof label, err, errlen)) return -1;
        int rc = model_load_weights(m, NULL, &gw, keep_blocks, err, errlen);
        gguf_weights_close(&gw);
        if (rc) { model_free(m); return -1; }
        memcpy(m->disk_dtype, label, sizeof label);
        return 0;
    }
    struct stat sb;
    if (stat(spec, &sb) != 0) return lcb_fail(err, errlen, "%s: no such checkpoint folder (or use random:SHAPE)", spec);
    char cfgp[4200];
    if (config_path) snprintf(cfgp, sizeof cfgp, "%s", config_path);
    else if (S_ISDIR(sb.st_mode)) snprintf(cfgp, sizeof cfgp, "%s/config.json", spec);
    else return lcb_fail(err, errlen, "%s: a checkpoint is a folder holding config.json and safetensors", spec);
    if (config_load(&m->cfg, cfgp, err, errlen)) return -1;
    StFile st;
    if (st_open(&st, spec, err, errlen)) return -1;
    int rc = model_load_weights(m, &st, NULL, 0, err, errlen);
    st_close(&st);
    if (rc) { model_free(m); return -1; }
    return 0;
}

/* Pack one (N, K) matrix for gemm_packed: in place when the packed form is the same size, else
 * into *extra (advanced), the block model_cpu_layout set aside for matrices with a partial panel. */
static float *pack_matrix(float *w, int N, int K, float *tmp, float **extra) {
    size_t ps = gemm_packed_size(N, K);
    memcpy(tmp, w, (size_t)N * K * sizeof(float));
    float *dst = w;
    if (ps != (size_t)N * K) { dst = *extra; *extra += ps; }
    gemm_pack(tmp, N, K, dst);
    return dst;
}

/* Floats packed apart from the arena: matrices whose rows do not fill whole panels, and a tied LM
 * head (its rows stay the embedding table); head_only: the layer matrices are blocks. */
static size_t packed_extra(const ModelConfig *c, int head_only) {
    int shape[MAT_N][2];
    config_matrices(c, shape);
    size_t extra = 0;
    for (int i = head_only ? MAT_HEAD : 0; i < MAT_N; i++) {
        size_t e = (size_t)shape[i][0] * shape[i][1], ps = gemm_packed_size(shape[i][0], shape[i][1]);
        if (ps != e || (i == MAT_HEAD && c->tie_embeddings)) extra += ps * (i == MAT_HEAD ? 1 : c->n_layers);
    }
    return extra;
}

size_t model_packed_extra(const ModelConfig *c) { return packed_extra(c, 0); }

int model_gguf_cpu_bytes(const char *path, uint64_t *bytes, char *err, size_t errlen) {
    GgufWeights gw;
    ModelConfig c;
    char label[64];
    if (gguf_weights_open(&gw, path, &c, label, sizeof label, err, errlen)) return -1;
    Names nm = arch_names(&c);
    Loader L = {.gw = &gw, .src = path, .err = err, .errlen = errlen, .dry = 1, .keep_blocks = 1};
    size_t arena = 0;
    int rc = ld_validate(&L, &c, &nm);
    if (rc == 0 && arena_bytes(&c, 1, &arena)) rc = lcb_fail(err, errlen, "%s: model size overflows", path);
    gguf_weights_close(&gw);
    if (rc == 0) *bytes = (uint64_t)arena + L.qbytes + (uint64_t)packed_extra(&c, 1) * sizeof(float);
    return rc;
}

/* The CPU forward multiplies by weights packed into column panels (engine/gemm.h: packing once
 * here instead of inside every OpenBLAS call).  Done once after loading; the CUDA upload reads
 * the arena before this, in the checkpoint's layout. */
static int model_cpu_layout(Model *m, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    int shape[MAT_N][2]; /* (N, K) */
    config_matrices(c, shape);
    const int blocks = m->qblocks != NULL; /* the layer matrices are the GGUF's blocks: only the head is packed */
    size_t most = 0, extra = packed_extra(c, blocks);
    for (int i = blocks ? MAT_HEAD : 0; i < MAT_N; i++)
        if ((size_t)shape[i][0] * shape[i][1] > most) most = (size_t)shape[i][0] * shape[i][1];
    float *tmp = malloc(most * sizeof(float));
    if (!tmp) return lcb_fail(err, errlen, "%s: out of memory preparing the weights", m->source);
    if (extra) {
        m->packed_extra = lcb_alloc(LCB_MEM_WEIGHTS, extra * sizeof(float));
        if (!m->packed_extra) { free(tmp); return lcb_fail(err, errlen, "%s: out of memory packing the weights (%zu bytes)", m->source, extra * 4); }
        m->packed_extra_bytes = extra * sizeof(float);
    }
    float *ex = m->packed_extra;
    for (int l = 0; l < c->n_layers && !blocks; l++) {
        LayerWeights *w = &m->layers[l];
        float **mat[4] = {&w->wqkv, &w->wo, &w->wup, &w->wdown};
        for (int i = 0; i < 4; i++) *mat[i] = pack_matrix(*mat[i], shape[i][0], shape[i][1], tmp, &ex);
    }
    if (c->tie_embeddings) {
        m->lm_head = ex;
        gemm_pack(m->embed, c->vocab, c->dim, m->lm_head);
    } else
        m->lm_head = pack_matrix(m->lm_head, c->vocab, c->dim, tmp, &ex);
    free(tmp);
    m->cpu_layout = 1;
    return 0;
}

int model_open(Model *m, const char *spec, const char *config_path, char *err, size_t errlen) {
    if (model_open_host(m, spec, config_path, 1, err, errlen)) return -1;
    if (model_cpu_layout(m, err, errlen)) { model_free(m); return -1; }
    return 0;
}

int model_open_fp32(Model *m, const char *spec, char *err, size_t errlen) {
    if (model_open_host(m, spec, NULL, 0, err, errlen)) return -1;
    if (model_cpu_layout(m, err, errlen)) { model_free(m); return -1; }
    return 0;
}

int model_open_on(Model *m, const char *spec, const char *config_path, int device, const char *dtype,
                  char *err, size_t errlen) {
    return model_open_tp(m, spec, config_path, device, dtype, 1, err, errlen);
}

int model_open_tp(Model *m, const char *spec, const char *config_path, int device, const char *dtype, int tp,
                  char *err, size_t errlen) {
    if (tp < 1) return lcb_fail(err, errlen, "--tp %d: must be at least 1", tp);
    if (device == LCB_DEVICE_CPU) {
        if (tp > 1) return lcb_fail(err, errlen, "--tp %d: tensor parallelism needs --device cuda", tp);
        return model_open(m, spec, config_path, err, errlen);
    }
    if (cuda_available(err, errlen)) return -1;
    if (!dtype) dtype = "bf16";
    if (strncmp(spec, "random:", 7) == 0) {
        memset(m, 0, sizeof *m);
        snprintf(m->source, sizeof m->source, "%s", spec);
        char shape[128];
        uint64_t seed;
        if (parse_random_spec(spec, shape, sizeof shape, &seed, err, errlen)) return -1;
        if (config_random_shape(&m->cfg, shape, err, errlen)) return -1;
        snprintf(m->disk_dtype, sizeof m->disk_dtype, "random");
        m->device = device;
        m->tp = tp;
        if (cuda_model_init_random(m, seed, dtype, err, errlen)) { model_free(m); return -1; }
        return 0;
    }
    if (model_open_host(m, spec, config_path, 0, err, errlen)) return -1; /* fp32: the upload converts it */
    m->device = device;
    m->tp = tp;
    if (cuda_model_upload(m, dtype, err, errlen)) { model_free(m); return -1; }
    /* the device holds the weights now: drop the host copy */
    lcb_free(LCB_MEM_WEIGHTS, m->arena, m->arena_bytes);
    m->arena = NULL;
    m->arena_bytes = 0;
    return 0;
}

void model_free(Model *m) {
    if (m->dev) cuda_model_free(m);
    lcb_free(LCB_MEM_WEIGHTS, m->arena, m->arena_bytes);
    lcb_free(LCB_MEM_WEIGHTS, m->packed_extra, m->packed_extra_bytes);
    lcb_free(LCB_MEM_WEIGHTS, m->qblocks, m->qblocks_bytes);
    lcb_free(LCB_MEM_WORK, m->qscratch, m->qscratch_bytes);
    free(m->qmats);
    lcb_free(LCB_MEM_WORK, m->ws, m->ws_bytes);
    free(m->pos);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- forward */

#define LG_ROWS 64 /* logits rows computed at a time when only NLLs are asked for */

static int ws_reserve(Model *m, int n, char *err, size_t errlen) {
    if (n <= m->ws_rows) return 0;
    const ModelConfig *c = &m->cfg;
    size_t dim = c->dim, qd = (size_t)c->n_heads * c->head_dim, qkvd = qd + 2 * (size_t)c->n_kv * c->head_dim;
    size_t per_row = 2 * dim + qkvd + 2 * qd + 2 * (size_t)c->ffn;
    per_row += 2 * (size_t)c->rot_dim; /* RoPE tables for absolute and sink positions */
    size_t bytes = (per_row * n + (size_t)LG_ROWS * c->vocab) * sizeof(float);
    float *ws = lcb_alloc(LCB_MEM_WORK, bytes);
    int64_t *pos = malloc(2 * n * sizeof(int64_t));
    if (!ws || !pos) {
        lcb_free(LCB_MEM_WORK, ws, bytes);
        free(pos);
        return lcb_fail(err, errlen, "out of memory: workspace for a chunk of %d tokens (%zu bytes)", n, bytes);
    }
    lcb_free(LCB_MEM_WORK, m->ws, m->ws_bytes);
    free(m->pos);
    m->ws = ws; m->ws_bytes = bytes; m->ws_rows = n; m->pos = pos;
    float *p = ws;
    m->x = p; p += dim * n;
    m->xn = p; p += dim * n;
    m->qkv = p; p += qkvd * n;
    m->qs = p; p += qd * n;
    m->att = p; p += qd * n;
    m->hb = p; p += 2 * (size_t)c->ffn * n;
    m->rope_cs = p; p += 2 * (size_t)c->rot_dim * n;
    m->lg = p;
    return 0;
}

static void norm_rows(const ModelConfig *c, const float *x, float *y, const float *w, const float *b, int n) {
    const int d = c->dim;
    #pragma omp parallel for schedule(static) if (n >= 32)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        if (c->norm == NORM_RMS) {
            double ss = 0;
            for (int k = 0; k < d; k++) ss += (double)xi[k] * xi[k];
            float r = (float)(1.0 / sqrt(ss / d + c->norm_eps));
            for (int k = 0; k < d; k++) yi[k] = w[k] * (xi[k] * r);
        } else {
            double mean = 0, var = 0;
            for (int k = 0; k < d; k++) mean += xi[k];
            mean /= d;
            for (int k = 0; k < d; k++) { double t = xi[k] - mean; var += t * t; }
            float r = (float)(1.0 / sqrt(var / d + c->norm_eps)), mu = (float)mean;
            for (int k = 0; k < d; k++) yi[k] = (xi[k] - mu) * r * w[k] + b[k];
        }
    }
}

/* y (n, N) (+)= x (n, K) W^T (+ bias), x rows of stride ldx: W packed by model_cpu_layout (wp),
 * or the GGUF's blocks (q, dequantized per panel) */
static void wmul(const Model *m, const float *x, int ldx, int n, int K, const float *wp, const QuantMat *q, int N,
                 const float *b, float *y, int accumulate) {
    if (q) gemm_quant(x, ldx, n, q, b, y, N, accumulate, m->qscratch, omp_get_max_threads());
    else gemm_packed(x, ldx, n, K, wp, N, b, y, N, accumulate);
}

static void linear(const Model *m, const float *x, const float *wp, const QuantMat *q, const float *b, float *y, int n, int in,
                   int out, int accumulate) {
    wmul(m, x, in, n, in, wp, q, out, b, y, accumulate);
}

/* gemm_quant's per-thread panels for this many threads (grown when the thread count grows) */
static int qscratch_reserve(Model *m, char *err, size_t errlen) {
    const int nt = omp_get_max_threads();
    if (!m->qblocks || nt <= m->qscratch_threads) return 0;
    const ModelConfig *c = &m->cfg;
    int K = c->dim;
    if (c->n_heads * c->head_dim > K) K = c->n_heads * c->head_dim;
    if (c->ffn > K) K = c->ffn;
    size_t bytes = gemm_quant_scratch(K) * (size_t)nt * sizeof(float);
    float *s = lcb_alloc(LCB_MEM_WORK, bytes);
    if (!s) return lcb_fail(err, errlen, "out of memory: panels of the block matrices for %d threads (%zu bytes)", nt, bytes);
    lcb_free(LCB_MEM_WORK, m->qscratch, m->qscratch_bytes);
    m->qscratch = s; m->qscratch_bytes = bytes; m->qscratch_threads = nt;
    return 0;
}

static inline float act_apply(LcbAct a, float x) {
    switch (a) {
    case ACT_SILU: return x / (1.f + lcb_expf(-x));
    case ACT_GELU: return 0.5f * x * (1.f + erff(x * (float)M_SQRT1_2));
    case ACT_GELU_TANH: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ACT_RELU: return x > 0 ? x : 0;
    }
    return x;
}

/* out += mlp(in) */
static void mlp(const Model *m, const LayerWeights *w, const float *in, float *out, int n) {
    const ModelConfig *c = &m->cfg;
    const int dim = c->dim, ffn = c->ffn;
    float *hb = m->hb;
    if (c->gated_mlp) {
        linear(m, in, w->wup, w->q[2], NULL, hb, n, dim, 2 * ffn, 0); /* (n, 2 ffn): [gate | up] */
        /* act(gate) * up over the gate half of each row: rows are independent, so in parallel */
        #pragma omp parallel for schedule(static) if (n >= 16)
        for (int i = 0; i < n; i++) {
            float *g = hb + (size_t)i * 2 * ffn, *u = g + ffn;
            if (c->act == ACT_SILU) {
                #pragma omp simd
                for (int k = 0; k < ffn; k++) g[k] = g[k] / (1.f + lcb_expf(-g[k])) * u[k];
            } else
                for (int k = 0; k < ffn; k++) g[k] = act_apply(c->act, g[k]) * u[k];
        }
        wmul(m, hb, 2 * ffn, n, ffn, w->wdown, w->q[3], dim, w->bdown, out, 1); /* rows of stride 2 ffn */
        return;
    }
    linear(m, in, w->wup, w->q[2], w->bup, hb, n, dim, ffn, 0);
    #pragma omp parallel for schedule(static) if (n >= 16)
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ffn; k++) hb[(size_t)i * ffn + k] = act_apply(c->act, hb[(size_t)i * ffn + k]);
    linear(m, hb, w->wdown, w->q[3], w->bdown, out, n, ffn, dim, 1);
}

FwdOut fwdout_shift(const FwdOut *o, size_t k, int vocab) {
    FwdOut r = {0};
    if (!o) return r;
    r.logits = o->logits ? o->logits + k * (size_t)vocab : NULL;
    r.targets = o->targets ? o->targets + k : NULL;
    r.nll = o->nll ? o->nll + k : NULL;
    return r;
}

/* Final norm, LM head and NLL for rows [r0, r1) of the chunk into out rows [0, r1 - r0). */
static void model_head(Model *m, int r0, int r1, const FwdOut *out) {
    const ModelConfig *c = &m->cfg;
    const int dim = c->dim, V = c->vocab;
    for (int b0 = r0; b0 < r1;) {
        /* with caller logits, one GEMM for all rows; else blocks of LG_ROWS into scratch */
        int b1 = out->logits ? r1 : (b0 + LG_ROWS < r1 ? b0 + LG_ROWS : r1), rows = b1 - b0;
        float *lg = out->logits ? out->logits + (size_t)(b0 - r0) * V : m->lg;
        norm_rows(c, m->x + (size_t)b0 * dim, m->xn, m->norm_w, m->norm_b, rows);
        gemm_packed(m->xn, dim, rows, dim, m->lm_head, V, NULL, lg, V, 0);
        if (out->nll) {
            #pragma omp parallel for schedule(static) if (rows >= 8)
            for (int i = 0; i < rows; i++) {
                int tgt = out->targets ? out->targets[b0 - r0 + i] : -1;
                out->nll[b0 - r0 + i] = (tgt >= 0 && tgt < V) ? model_nll(lg + (size_t)i * V, V, tgt) : NAN;
            }
        }
        b0 = b1;
    }
}

int model_forward(Model *m, KVCache *kv, const int32_t *ids, int n, int out_from, const FwdOut *out,
                  char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    if (n <= 0) return 0;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return lcb_fail(err, errlen, "token id %d at position %lld is outside the vocabulary [0, %d)", ids[i], (long long)(kv->n_past + i), c->vocab);
    if (m->device != LCB_DEVICE_CPU) return cuda_forward(m, kv, ids, n, out_from, out, err, errlen);
    if (!m->cpu_layout) return lcb_fail(err, errlen, "%s: weights not prepared for the CPU forward", m->source);
    if (ws_reserve(m, n, err, errlen) || qscratch_reserve(m, err, errlen)) return -1;
    const int dim = c->dim, H = c->n_heads, hd = c->head_dim, qd = H * hd;
    const int qkvd = qd + 2 * c->n_kv * hd;
    const int64_t t0 = kv->n_past, S = kv->n_sink, W = kv->window;
    for (int i = 0; i < n; i++) memcpy(m->x + (size_t)i * dim, m->embed + (size_t)ids[i] * dim, dim * sizeof(float));
    /* positions: absolute, and the sink-query position min(t, S+W) = |A(t)| - 1 */
    int64_t *pa = m->pos, *ps = m->pos + m->ws_rows;
    int need_qs = 0;
    for (int i = 0; i < n; i++) {
        pa[i] = t0 + i;
        ps[i] = (S > 0 && W >= 0 && pa[i] > S + W) ? S + W : pa[i];
        need_qs |= ps[i] != pa[i];
    }
    float *cs_abs = m->rope_cs, *cs_sink = m->rope_cs + (size_t)n * c->rot_dim;
    rope_table(kv, pa, n, cs_abs);
    if (need_qs) rope_table(kv, ps, n, cs_sink);
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *w = &m->layers[l];
        norm_rows(c, m->x, m->xn, w->attn_norm_w, w->attn_norm_b, n);
        linear(m, m->xn, w->wqkv, w->q[0], w->bqkv, m->qkv, n, dim, qkvd, 0);
        if (need_qs) {
            for (int i = 0; i < n; i++) memcpy(m->qs + (size_t)i * qd, m->qkv + (size_t)i * qkvd, qd * sizeof(float));
            rope_apply(kv, m->qs, n, qd, H, hd, cs_sink);
        }
        rope_apply(kv, m->qkv, n, qkvd, H + c->n_kv, hd, cs_abs); /* q heads then k heads */
        if (kv_attention(kv, l, c, m->qkv, qkvd, need_qs ? m->qs : NULL, m->att, n, err, errlen)) return -1;
        if (kv_append(kv, l, c, m->qkv, qkvd, n, err, errlen)) return -1;
        if (c->parallel) {
            /* x += attention + mlp of the same input: xn (the attention norm) is free after the
             * QKV projection: the MLP's own norm of the layer input goes there, unless the block
             * shares the attention norm; it is taken before x changes */
            if (!c->shared_norm) norm_rows(c, m->x, m->xn, w->mlp_norm_w, w->mlp_norm_b, n);
            linear(m, m->att, w->wo, w->q[1], w->bo, m->x, n, qd, dim, 1);
            mlp(m, w, m->xn, m->x, n);
        } else {
            linear(m, m->att, w->wo, w->q[1], w->bo, m->x, n, qd, dim, 1); /* residual adds in the GEMM */
            norm_rows(c, m->x, m->xn, w->mlp_norm_w, w->mlp_norm_b, n);
            mlp(m, w, m->xn, m->x, n);
        }
    }
    kv_advance(kv, n);
    if (out && (out->logits || out->nll) && out_from < n) model_head(m, out_from, n, out);
    return 0;
}

double model_nll(const float *logits, int vocab, int target) {
    float mx = -INFINITY;
    #pragma omp simd reduction(max:mx)
    for (int k = 0; k < vocab; k++) mx = logits[k] > mx ? logits[k] : mx;
    double s = 0;
    #pragma omp simd reduction(+:s)
    for (int k = 0; k < vocab; k++) s += lcb_expf(logits[k] - mx);
    return log(s) + mx - logits[target];
}

int lcb_device_parse(const char *name) {
    if (!strcmp(name, "cpu")) return LCB_DEVICE_CPU;
    if (!strcmp(name, "cuda")) return LCB_DEVICE_CUDA;
    return -1;
}

