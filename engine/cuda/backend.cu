/*
 * backend.cu — the CUDA implementation of engine/backend.h: device discovery, the counting
 * allocator, weights on the device (uploaded from the host arena, or generated from the seed
 * for random: shapes), paged KV storage sized by the policy, and the forward pass of
 * model_forward (engine/model.c) with the same contract.
 *
 * Forward pass of a chunk (split into sub-chunks of at most CU_ROWS_MAX rows, except under s2,
 * which needs the whole input at once; per-step semantics make the split invisible):
 *   RoPE [cos | sin] tables of positions t and min(t, S+W), in double -> float, on the device
 *   (k_rope_table: the host formula's values; inv_freq in the launch parameters)
 *   x (n, dim) fp32 = embed[ids]
 *   per layer:  xn = norm(x) (T);  qkv (T) = xn Wqkv^T               cuBLAS, fp32 accumulate
 *               rope_store: + bias (fp32), rotate q (at t and at the sink position), k; k, v -> cache
 *               att = attention(q, qs, cache) (T)                      attention.cu
 *               sequential:  x += att Wo^T (+ bo);  x += mlp(norm2(x))   (GEMM beta = 1)
 *               parallel:    x += mlp(norm2(x) or xn) + att Wo^T (+ biases)
 *               mlp: h (T) = xn Wup^T; a (T) = act(h (+ bup)); x += a Wdown^T (+ bdown)
 *               (the QKV and gate/up products are stored in T, as HF's bf16 models store them:
 *               half the bytes of fp32 written and read again; fp32 mode is all fp32)
 *   head:  per block of CU_LG_ROWS rows: norm, logits (fp32) = xn lm_head^T, fused NLL;
 *          logits go to the host only when the caller asks for them.
 * KV storage: sinks (S slots) per layer, and pages of CU_PAGE slots for the recent keys: a ring
 * of W + CU_ROWS_MAX slots (all allocated at init), or, unbounded, pages added as the stream
 * grows (no copy, so the dense cache can use all free memory).
 *
 * Tensor parallelism (--tp N, one process driving N GPUs of one host, NCCL): rank r holds query
 * heads, KV heads and MLP columns r/N of every layer (Megatron-style: QKV and up/gate split by
 * rows, the output and down projections by columns) and its heads' KV cache; embeddings, norms
 * and the LM head are replicated.  The residual stream x is replicated: rank 0 accumulates its
 * partial products into x (bias included), the other ranks into y, and one NCCL all-reduce per
 * residual add (two per layer, one for parallel-attention layers) sums them into every x.  The
 * head and the NLL run on rank 0.
 */
#include "engine/cuda/cuda_internal.cuh"
#include "engine/kvstate.h"
#include "engine/rng.h"

#include <cublasLt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef LCB_HAVE_NCCL
#include <nccl.h>
#endif

/* ---------------------------------------------------------------- errors, allocator */

int cu_fail(cudaError_t e, const char *what, const char *file, int line, char *err, size_t errlen) {
    cudaGetLastError(); /* clear a non-sticky error */
    if (e == cudaErrorMemoryAllocation)
        return lcb_fail(err, errlen, "out of memory: %s (%s:%d)", what, file, line);
    return lcb_fail(err, errlen, "CUDA error: %s: %s (%s:%d)", what, cudaGetErrorString(e), file, line);
}

static size_t g_now[LCB_MEM_NCAT], g_peak[LCB_MEM_NCAT];

int cu_alloc(void **p, size_t bytes, int cat, const char *what, char *err, size_t errlen) {
    *p = NULL;
    if (bytes == 0) bytes = 1;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        if (e == cudaErrorMemoryAllocation)
            return lcb_fail(err, errlen, "out of memory: %s needs %.1f MiB on the device (%.1f MiB free of %.1f MiB)", what,
                            bytes / 1048576.0, fr / 1048576.0, tot / 1048576.0);
        return lcb_fail(err, errlen, "CUDA error: cudaMalloc for %s (%zu bytes): %s", what, bytes, cudaGetErrorString(e));
    }
    g_now[cat] += bytes;
    if (g_now[cat] > g_peak[cat]) g_peak[cat] = g_now[cat];
    return 0;
}

void cu_free(void *p, size_t bytes, int cat) {
    if (!p) return;
    cudaFree(p);
    if (bytes == 0) bytes = 1;
    g_now[cat] -= bytes < g_now[cat] ? bytes : g_now[cat];
}

extern "C" size_t cuda_mem_now(int cat) { return cat >= 0 && cat < LCB_MEM_NCAT ? g_now[cat] : 0; }
extern "C" size_t cuda_mem_peak(int cat) { return cat >= 0 && cat < LCB_MEM_NCAT ? g_peak[cat] : 0; }

static int g_ndev = 1; /* GPUs of the current model (its tp) */

extern "C" int cuda_mem_info_dev(int i, size_t *used, size_t *total) {
    size_t fr = 0, tot = 0;
    int cur = 0;
    *used = *total = 0;
    if (cudaGetDevice(&cur) != cudaSuccess || cudaSetDevice(i) != cudaSuccess) { cudaGetLastError(); return -1; }
    cudaError_t e = cudaMemGetInfo(&fr, &tot);
    cudaSetDevice(cur);
    if (e != cudaSuccess) { cudaGetLastError(); return -1; }
    *used = tot - fr;
    *total = tot;
    return 0;
}

extern "C" int cuda_mem_info(size_t *used, size_t *total) {
    *used = *total = 0;
    for (int i = 0; i < g_ndev; i++) {
        size_t u, t;
        if (cuda_mem_info_dev(i, &u, &t)) return -1;
        *used += u;
        *total += t;
    }
    return 0;
}

extern "C" int cuda_tp_devices(void) { return g_ndev; }

int dt_parse(const char *s) {
    if (!s || !strcmp(s, "bf16")) return DT_BF16;
    if (!strcmp(s, "fp16")) return DT_F16;
    if (!strcmp(s, "fp32")) return DT_F32;
    return -1;
}

/* ---------------------------------------------------------------- device */

extern "C" int cuda_available(char *err, size_t errlen) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) { cudaGetLastError(); return lcb_fail(err, errlen, "--device cuda: no usable CUDA device (%s)", cudaGetErrorString(e)); }
    if (n == 0) return lcb_fail(err, errlen, "--device cuda: no CUDA device found");
    return 0;
}

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n;
}

extern "C" void cuda_describe(char *buf, size_t n) {
    cudaDeviceProp p;
    int dev = 0, drv = 0, rt = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        cudaGetLastError();
        snprintf(buf, n, "none");
        return;
    }
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(buf, n, "%s, %zu MiB, sm_%d%d, driver %d.%d, runtime %d.%d", p.name, p.totalGlobalMem >> 20, p.major, p.minor,
             drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
}

/* ---------------------------------------------------------------- weights */

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* Lay out (and, if base != NULL, point into) the device weight block.  Returns its size. */
static size_t dev_carve(const ModelConfig *c, int dt, DevModel *d, char *base) {
    const size_t dim = c->dim, hd = c->head_dim, qd = (size_t)d->H * hd, kvd = (size_t)d->KV * hd;
    const size_t qkvd = qd + 2 * kvd, ffn = d->ffn, up_rows = (c->gated_mlp ? 2 : 1) * ffn, es = dt_size(dt);
    size_t off = 0;
#define TAKE(dst, type, count, esz) do { if (base) (dst) = (type)(base + off); off = align256(off + (size_t)(count) * (esz)); } while (0)
    TAKE(d->embed, void *, (size_t)c->vocab * dim, es);
    if (c->tie_embeddings) { if (base) d->lm_head = d->embed; }
    else TAKE(d->lm_head, void *, (size_t)c->vocab * dim, es);
    TAKE(d->norm_w, float *, dim, 4);
    if (c->norm == NORM_LAYER) TAKE(d->norm_b, float *, dim, 4); else if (base) d->norm_b = NULL;
    for (int l = 0; l < c->n_layers; l++) {
        DevLayer dummy, *w = base ? &d->L[l] : &dummy;
        memset(w, 0, sizeof *w);
        TAKE(w->attn_norm_w, float *, dim, 4);
        if (c->norm == NORM_LAYER) TAKE(w->attn_norm_b, float *, dim, 4);
        if (!(c->parallel && c->shared_norm)) {
            TAKE(w->mlp_norm_w, float *, dim, 4);
            if (c->norm == NORM_LAYER) TAKE(w->mlp_norm_b, float *, dim, 4);
        }
        TAKE(w->wqkv, void *, qkvd * dim, es);
        if (c->qkv_bias) TAKE(w->bqkv, float *, qkvd, 4);
        TAKE(w->wo, void *, dim * qd, es);
        if (c->o_bias) TAKE(w->bo, float *, dim, 4);
        TAKE(w->wup, void *, up_rows * dim, es);
        if (c->mlp_bias) { TAKE(w->bup, float *, ffn, 4); TAKE(w->bdown, float *, dim, 4); }
        TAKE(w->wdown, void *, dim * ffn, es);
    }
#undef TAKE
    return off;
}

static void dev_model_destroy(DevModel *d) {
    if (!d) return;
    cudaSetDevice(d->device);
    cu_free(d->wblock, d->wbytes, LCB_MEM_WEIGHTS);
    cu_free(d->ws, d->ws_bytes, LCB_MEM_WORK);
    cudaFreeHost(d->h_cs); cudaFreeHost(d->h_ids); cudaFreeHost(d->h_tg); cudaFreeHost(d->h_nll); cudaFreeHost(d->h_pos);
    if (d->blas) cublasDestroy(d->blas);
    if (d->st) cudaStreamDestroy(d->st);
    free(d->L);
    free(d);
}

/* Rank r's share of the model: query heads, KV heads (split, or replicated when there are fewer
 * KV heads than ranks, as with multi-query attention) and MLP columns. */
static int tp_split(const ModelConfig *c, int tp, int r, DevModel *d, char *err, size_t errlen) {
    const int H = c->n_heads, KV = c->n_kv;
    if (H % tp) return lcb_fail(err, errlen, "--tp %d: the model's %d attention heads do not split evenly over %d GPUs", tp, H, tp);
    if (KV % tp && tp % KV)
        return lcb_fail(err, errlen, "--tp %d: the model's %d KV heads neither split evenly over %d GPUs nor divide %d", tp, KV, tp, tp);
    if (c->ffn % tp) return lcb_fail(err, errlen, "--tp %d: the MLP's %d columns do not split evenly over %d GPUs", tp, c->ffn, tp);
    d->rank = r; d->tp = tp; d->device = r;
    d->H = H / tp; d->h0 = r * d->H;
    d->KV = KV % tp == 0 ? KV / tp : 1;
    d->kv0 = d->h0 / (H / KV);      /* the KV head of this rank's first query head */
    d->ffn = c->ffn / tp; d->f0 = r * d->ffn;
    return 0;
}

static void group_destroy(DevGroup *g) {
    if (!g) return;
    for (int r = 0; r < g->tp; r++) {
#ifdef LCB_HAVE_NCCL
        if (g->comm[r]) ncclCommDestroy((ncclComm_t)g->comm[r]);
#endif
        dev_model_destroy(g->r[r]);
    }
    cudaSetDevice(0);
    free(g);
}

/* the math mode of a handle for dtype dt: fp32 mode is the exact twin of the CPU path (no TF32) */
static cublasStatus_t blas_math(cublasHandle_t h, int dt) {
    return cublasSetMathMode(h, dt == DT_F32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
}

/* Create m->dev: tp ranks, each with its weight block allocated and carved (contents unset). */
static int dev_model_create(Model *m, const char *dtype, char *err, size_t errlen) {
    int dt = dt_parse(dtype), tp = m->tp > 0 ? m->tp : 1, ndev = 0;
    if (dt < 0) return lcb_fail(err, errlen, "--dtype \"%s\": expected bf16, fp16 or fp32", dtype);
    if (cuda_available(err, errlen)) return -1;
    if (tp > CU_TP_MAX) return lcb_fail(err, errlen, "--tp %d: at most %d GPUs", tp, CU_TP_MAX);
    CU_TRY(cudaGetDeviceCount(&ndev));
    if (tp > ndev) return lcb_fail(err, errlen, "--tp %d: only %d CUDA device%s visible", tp, ndev, ndev == 1 ? " is" : "s are");
#ifndef LCB_HAVE_NCCL
    if (tp > 1) return lcb_fail(err, errlen, "--tp %d: this lcbench was built without NCCL (no nccl.h and libnccl beside nvcc)", tp);
#endif
    DevGroup *g = (DevGroup *)calloc(1, sizeof *g);
    if (!g) return lcb_fail(err, errlen, "out of memory");
    m->dev = g;
    snprintf(m->dev_dtype, sizeof m->dev_dtype, "%s", dt == DT_F32 ? "fp32" : dt == DT_BF16 ? "bf16" : "fp16");
    for (int r = 0; r < tp; r++) {
        DevModel *d = (DevModel *)calloc(1, sizeof *d);
        if (!d || !(d->L = (DevLayer *)calloc(m->cfg.n_layers, sizeof *d->L))) { free(d); return lcb_fail(err, errlen, "out of memory"); }
        g->r[r] = d;
        g->tp = r + 1;
        d->dt = dt;
        if (tp_split(&m->cfg, tp, r, d, err, errlen)) return -1;
        CU_TRY(cudaSetDevice(d->device));
        CU_TRY(cudaStreamCreateWithFlags(&d->st, cudaStreamNonBlocking));
        CUBLAS_TRY(cublasCreate(&d->blas));
        CUBLAS_TRY(cublasSetStream(d->blas, d->st));
        CUBLAS_TRY(blas_math(d->blas, dt));
        d->wbytes = dev_carve(&m->cfg, dt, d, NULL);
        char what[96];
        snprintf(what, sizeof what, tp > 1 ? "the weights (%s) on GPU %d" : "the weights (%s)", m->dev_dtype, r);
        if (cu_alloc(&d->wblock, d->wbytes, LCB_MEM_WEIGHTS, what, err, errlen)) return -1;
        dev_carve(&m->cfg, dt, d, (char *)d->wblock);
    }
    g_ndev = tp;
#ifdef LCB_HAVE_NCCL
    if (tp > 1) {
        /* NVLink multicast (NVLS) can take a shared host's GPUs down: always off */
        setenv("NCCL_NVLS_ENABLE", "0", 1);
        ncclComm_t comms[CU_TP_MAX];
        int devs[CU_TP_MAX];
        for (int r = 0; r < tp; r++) devs[r] = r;
        ncclResult_t nr = ncclCommInitAll(comms, tp, devs);
        if (nr != ncclSuccess) return lcb_fail(err, errlen, "--tp %d: NCCL initialisation failed: %s", tp, ncclGetErrorString(nr));
        for (int r = 0; r < tp; r++) g->comm[r] = comms[r];
    }
#endif
    CU_TRY(cudaSetDevice(0));
    return 0;
}

/* host fp32 (rows, cols) with leading dimension ld -> device T (rows, cols) contiguous, through
 * a device staging buffer (converted on the device); as_fp32: stored as fp32 */
static int upload2d(DevModel *d, void *dst, const float *src, size_t rows, size_t cols, size_t ld, int as_fp32, float *stage,
                    size_t stage_n, char *err, size_t errlen) {
    if (rows == 1 || cols == ld) { cols *= rows; ld = cols; rows = 1; } /* contiguous: one run */
    if (as_fp32 || d->dt == DT_F32) {
        if (rows == 1) CU_TRY(cudaMemcpyAsync(dst, src, cols * 4, cudaMemcpyHostToDevice, d->st));
        else CU_TRY(cudaMemcpy2DAsync(dst, cols * 4, src, ld * 4, cols * 4, rows, cudaMemcpyHostToDevice, d->st));
        return 0;
    }
    size_t per = cols >= stage_n ? 0 : stage_n / cols;                    /* whole rows per staging load */
    for (size_t r = 0; r < rows;) {
        if (per == 0) { /* a row longer than the stage: in pieces */
            for (size_t o = 0; o < cols; o += stage_n) {
                size_t k = cols - o < stage_n ? cols - o : stage_n;
                CU_TRY(cudaMemcpyAsync(stage, src + r * ld + o, k * 4, cudaMemcpyHostToDevice, d->st));
                k_convert(d->dt, stage, (char *)dst + (r * cols + o) * dt_size(d->dt), k, d->st);
                CU_LAUNCHED();
            }
            r++;
            continue;
        }
        size_t k = rows - r < per ? rows - r : per;
        CU_TRY(cudaMemcpy2DAsync(stage, cols * 4, src + r * ld, ld * 4, cols * 4, k, cudaMemcpyHostToDevice, d->st));
        k_convert(d->dt, stage, (char *)dst + r * cols * dt_size(d->dt), k * cols, d->st);
        CU_LAUNCHED();
        r += k;
    }
    return 0;
}

static int upload(DevModel *d, void *dst, const float *src, size_t n, int as_fp32, float *stage, size_t stage_n,
                  char *err, size_t errlen) {
    return upload2d(d, dst, src, 1, n, n, as_fp32, stage, stage_n, err, errlen);
}

/* Rank d's shard of each layer matrix, from the whole matrix (out, in), as calls of
 *   put(which, dst, row0, rows, col0, cols, ld): the block of rows row0.. and columns col0.. of
 *   matrix `which` (0 wqkv, 1 wo, 2 wup, 3 wdown; ld columns), stored contiguously at dst.
 * Returns nonzero as soon as put does. */
template <typename Put>
static int shard_layer(const ModelConfig *c, const DevModel *d, const DevLayer *w, Put put) {
    const size_t dim = c->dim, hd = c->head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv * hd;
    const size_t ffn = c->ffn, lq = (size_t)d->H * hd, lkv = (size_t)d->KV * hd, lf = d->ffn, es = dt_size(d->dt);
    char *qkv = (char *)w->wqkv;
    /* [q | k | v] rows of this rank's heads */
    if (put(0, qkv, (size_t)d->h0 * hd, lq, 0, dim, dim)) return -1;
    if (put(0, qkv + lq * dim * es, qd + (size_t)d->kv0 * hd, lkv, 0, dim, dim)) return -1;
    if (put(0, qkv + (lq + lkv) * dim * es, qd + kvd + (size_t)d->kv0 * hd, lkv, 0, dim, dim)) return -1;
    /* output projection: this rank's head columns */
    if (put(1, w->wo, 0, dim, (size_t)d->h0 * hd, lq, qd)) return -1;
    /* [gate | up] rows (or the up rows) of this rank's columns */
    if (put(2, w->wup, (size_t)d->f0, lf, 0, dim, dim)) return -1;
    if (c->gated_mlp && put(2, (char *)w->wup + lf * dim * es, ffn + d->f0, lf, 0, dim, dim)) return -1;
    /* down projection: this rank's columns */
    if (put(3, w->wdown, 0, dim, (size_t)d->f0, lf, ffn)) return -1;
    return 0;
}

/* this rank's slice of the fused QKV bias, [q | k | v] */
static int upload_bqkv(const ModelConfig *c, DevModel *d, const DevLayer *w, const float *b, float *stage, size_t stage_n,
                       char *err, size_t errlen) {
    const size_t hd = c->head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv * hd, lq = (size_t)d->H * hd,
                 lkv = (size_t)d->KV * hd;
    if (upload(d, w->bqkv, b + (size_t)d->h0 * hd, lq, 1, stage, stage_n, err, errlen)) return -1;
    if (upload(d, w->bqkv + lq, b + qd + (size_t)d->kv0 * hd, lkv, 1, stage, stage_n, err, errlen)) return -1;
    return upload(d, w->bqkv + lq + lkv, b + qd + kvd + (size_t)d->kv0 * hd, lkv, 1, stage, stage_n, err, errlen);
}

static int upload_rank(Model *m, DevModel *d, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    const size_t dim = c->dim;
    CU_TRY(cudaSetDevice(d->device));
    size_t stage_n = (size_t)16 << 20;
    float *stage = NULL;
    if (cu_alloc((void **)&stage, stage_n * 4, LCB_MEM_WORK, "weight upload staging", err, errlen)) return -1;
    int rc = upload(d, d->embed, m->embed, (size_t)c->vocab * dim, 0, stage, stage_n, err, errlen);
    if (!rc && !c->tie_embeddings) rc = upload(d, d->lm_head, m->lm_head, (size_t)c->vocab * dim, 0, stage, stage_n, err, errlen);
    if (!rc) rc = upload(d, d->norm_w, m->norm_w, dim, 1, stage, stage_n, err, errlen);
    if (!rc && d->norm_b) rc = upload(d, d->norm_b, m->norm_b, dim, 1, stage, stage_n, err, errlen);
    for (int l = 0; !rc && l < c->n_layers; l++) {
        const LayerWeights *h = &m->layers[l];
        DevLayer *w = &d->L[l];
        rc = upload(d, w->attn_norm_w, h->attn_norm_w, dim, 1, stage, stage_n, err, errlen);
        if (!rc && w->attn_norm_b) rc = upload(d, w->attn_norm_b, h->attn_norm_b, dim, 1, stage, stage_n, err, errlen);
        if (!rc && w->mlp_norm_w) rc = upload(d, w->mlp_norm_w, h->mlp_norm_w, dim, 1, stage, stage_n, err, errlen);
        if (!rc && w->mlp_norm_b) rc = upload(d, w->mlp_norm_b, h->mlp_norm_b, dim, 1, stage, stage_n, err, errlen);
        const float *src[4] = {h->wqkv, h->wo, h->wup, h->wdown};
        if (!rc)
            rc = shard_layer(c, d, w, [&](int which, void *dst, size_t r0, size_t rows, size_t c0, size_t cols, size_t ld) {
                return upload2d(d, dst, src[which] + r0 * ld + c0, rows, cols, ld, 0, stage, stage_n, err, errlen);
            });
        if (!rc && w->bqkv) rc = upload_bqkv(c, d, w, h->bqkv, stage, stage_n, err, errlen);
        if (!rc && w->bo) rc = upload(d, w->bo, h->bo, dim, 1, stage, stage_n, err, errlen);
        if (!rc && w->bup) rc = upload(d, w->bup, h->bup + d->f0, d->ffn, 1, stage, stage_n, err, errlen); /* (ffn): non-gated MLPs */
        if (!rc && w->bdown) rc = upload(d, w->bdown, h->bdown, dim, 1, stage, stage_n, err, errlen);
    }
    cudaError_t e = cudaStreamSynchronize(d->st);
    cu_free(stage, stage_n * 4, LCB_MEM_WORK);
    if (!rc && e != cudaSuccess) rc = cu_fail(e, "weight upload", __FILE__, __LINE__, err, errlen);
    return rc;
}

extern "C" int cuda_model_upload(Model *m, const char *dtype, char *err, size_t errlen) {
    if (dev_model_create(m, dtype, err, errlen)) { cuda_model_free(m); return -1; }
    DevGroup *g = (DevGroup *)m->dev;
    for (int r = 0; r < g->tp; r++)
        if (upload_rank(m, g->r[r], err, errlen)) { cuda_model_free(m); return -1; }
    cudaSetDevice(0);
    return 0;
}

static int init_random_rank(Model *m, DevModel *d, uint64_t seed, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    const size_t dim = c->dim;
    CU_TRY(cudaSetDevice(d->device));
    /* biases zero, norms one, matrices N(0, 0.02^2): element i of tensor t is engine/rng.h's
     * lcb_rng_normal(seed, t, i), as in model.c's model_init_random; each rank generates its own
     * blocks of the same tensors, so every tp gives the same model */
    CU_TRY(cudaMemsetAsync(d->wblock, 0, d->wbytes, d->st));
    k_fill_normal(d->dt, d->embed, (size_t)c->vocab * dim, 0.02f, seed, LCB_RNG_EMBED, d->st);
    if (!c->tie_embeddings) k_fill_normal(d->dt, d->lm_head, (size_t)c->vocab * dim, 0.02f, seed, LCB_RNG_LM_HEAD, d->st);
    k_fill_const(d->norm_w, dim, 1.f, d->st);
    for (int l = 0; l < c->n_layers; l++) {
        DevLayer *w = &d->L[l];
        k_fill_const(w->attn_norm_w, dim, 1.f, d->st);
        if (w->mlp_norm_w) k_fill_const(w->mlp_norm_w, dim, 1.f, d->st);
        /* shard_layer's `which` (0 qkv, 1 o, 2 up, 3 down) is rng.h's LCB_RNG_WQKV .. LCB_RNG_WDOWN */
        shard_layer(c, d, w, [&](int which, void *dst, size_t r0, size_t rows, size_t c0, size_t cols, size_t ld) {
            k_fill_normal_block(d->dt, dst, rows, cols, ld, r0 * ld + c0, 0.02f, seed, lcb_rng_layer_tensor(l, which), d->st);
            return 0;
        });
    }
    CU_LAUNCHED();
    CU_TRY(cudaStreamSynchronize(d->st));
    return 0;
}

extern "C" int cuda_model_init_random(Model *m, uint64_t seed, const char *dtype, char *err, size_t errlen) {
    if (dev_model_create(m, dtype, err, errlen)) { cuda_model_free(m); return -1; }
    DevGroup *g = (DevGroup *)m->dev;
    for (int r = 0; r < g->tp; r++)
        if (init_random_rank(m, g->r[r], seed, err, errlen)) { cuda_model_free(m); return -1; }
    cudaSetDevice(0);
    return 0;
}

extern "C" void cuda_model_free(Model *m) {
    group_destroy((DevGroup *)m->dev);
    m->dev = NULL;
    g_ndev = 1;
}

/* ---------------------------------------------------------------- workspace */

/* One allocation for n rows, 14 buffers each rounded up to 256 bytes (in slots[] order):
 *   x (n, dim) fp32, xn (n, dim) T, qkv (n, qkvd) T, q, qs, att (n, qd) T, hb (n, up_rows) T,
 *   ha (n, ffn) T, cs (2 n rot_dim + 1) fp32, lg (CU_LG_ROWS, vocab) fp32 on rank 0, ids, tg (n)
 *   int32, nll (n) double, y (n, dim) fp32 on ranks > 0.
 * reports/plan.c (`lcbench plan --device cuda`) predicts it by the same formula: change both. */
static int ws_reserve(const ModelConfig *c, DevModel *d, int n, char *err, size_t errlen) {
    if (n <= d->ws_rows) return 0;
    const size_t dim = c->dim, qd = (size_t)d->H * c->head_dim, qkvd = qd + 2 * (size_t)d->KV * c->head_dim;
    const size_t ffn = d->ffn, up_rows = (c->gated_mlp ? 2 : 1) * ffn, es = dt_size(d->dt), rd = c->rot_dim;
    const size_t lg = d->rank == 0 ? (size_t)CU_LG_ROWS * c->vocab * 4 : 0, y = d->rank > 0 ? dim * 4 * n : 0;
    size_t sz[14] = {dim * 4 * n, dim * es * n, qkvd * es * n, qd * es * n, qd * es * n, qd * es * n, up_rows * es * n,
                     ffn * es * n, 2 * rd * 4 * n + 4, lg, (size_t)n * 4, (size_t)n * 4, (size_t)n * 8, y};
    size_t total = 0;
    for (int i = 0; i < 14; i++) total += align256(sz[i]);
    void *ws;
    char what[96];
    snprintf(what, sizeof what, "the workspace for a chunk of %d tokens", n);
    if (cu_alloc(&ws, total, LCB_MEM_WORK, what, err, errlen)) return -1;
    float *hcs = NULL; int32_t *hids = NULL, *htg = NULL; double *hnll = NULL; int64_t *hpos = NULL;
    if (cudaMallocHost((void **)&hcs, sz[8]) != cudaSuccess || cudaMallocHost((void **)&hids, n * 4) != cudaSuccess ||
        cudaMallocHost((void **)&htg, n * 4) != cudaSuccess || cudaMallocHost((void **)&hnll, n * 8) != cudaSuccess ||
        cudaMallocHost((void **)&hpos, 2 * n * 8) != cudaSuccess) {
        cudaGetLastError();
        cudaFreeHost(hcs); cudaFreeHost(hids); cudaFreeHost(htg); cudaFreeHost(hnll); cudaFreeHost(hpos);
        cu_free(ws, total, LCB_MEM_WORK);
        return lcb_fail(err, errlen, "out of memory: pinned host buffers for a chunk of %d tokens", n);
    }
    cudaStreamSynchronize(d->st);
    cu_free(d->ws, d->ws_bytes, LCB_MEM_WORK);
    cudaFreeHost(d->h_cs); cudaFreeHost(d->h_ids); cudaFreeHost(d->h_tg); cudaFreeHost(d->h_nll); cudaFreeHost(d->h_pos);
    d->ws = ws; d->ws_bytes = total; d->ws_rows = n;
    d->h_cs = hcs; d->h_ids = hids; d->h_tg = htg; d->h_nll = hnll; d->h_pos = hpos; d->h_rows = n;
    char *p = (char *)ws;
    void **slots[14] = {(void **)&d->x, &d->xn, (void **)&d->qkv, &d->q, &d->qs, &d->att, (void **)&d->hb, &d->ha,
                        (void **)&d->cs, (void **)&d->lg, (void **)&d->ids, (void **)&d->tg, (void **)&d->nll, (void **)&d->y};
    for (int i = 0; i < 14; i++) { *slots[i] = sz[i] ? p : NULL; p += align256(sz[i]); }
    return 0;
}

/* ---------------------------------------------------------------- KV cache */

static int kv_table_sync(DevKV *k, char *err, size_t errlen) {
    size_t bytes = (size_t)k->L * 2 * k->maxpages * sizeof(void *);
    /* no kernel runs now (forward_rows syncs its stream before growing the cache) */
    CU_TRY(cudaMemcpy(k->dpages, k->hpages, bytes, cudaMemcpyHostToDevice));
    CU_TRY(cudaDeviceSynchronize());
    return 0;
}

/* Make room for `slots` recent slots per layer (pages of CU_PAGE) in one rank's cache (its
 * device current).  All layers grow together or not at all: a failure leaves it as it was. */
static int kv_grow_rank(DevKV *k, int64_t S, int64_t slots, char *err, size_t errlen) {
    int need = (int)((slots + CU_PAGE - 1) >> CU_PAGE_SHIFT);
    if (need <= k->npages) return 0;
    if (need > k->maxpages) {
        int mp = k->maxpages ? k->maxpages : 16;
        while (mp < need) mp *= 2;
        void **h = (void **)calloc((size_t)k->L * 2 * mp, sizeof(void *));
        void **dtab = NULL;
        if (!h) return lcb_fail(err, errlen, "out of memory: KV page table");
        if (cu_alloc((void **)&dtab, (size_t)k->L * 2 * mp * sizeof(void *), LCB_MEM_KV, "the KV page table", err, errlen)) { free(h); return -1; }
        for (int r = 0; r < k->L * 2; r++)
            for (int p = 0; p < k->npages; p++) h[(size_t)r * mp + p] = k->hpages[(size_t)r * k->maxpages + p];
        cu_free(k->dpages, (size_t)k->L * 2 * k->maxpages * sizeof(void *), LCB_MEM_KV);
        free(k->hpages);
        k->hpages = h; k->dpages = dtab; k->maxpages = mp;
    }
    int old = k->npages;
    for (int p = old; p < need; p++)
        for (int r = 0; r < k->L * 2; r++) {
            char what[128];
            snprintf(what, sizeof what, "the KV cache growing to %lld tokens", (long long)(S + ((int64_t)need << CU_PAGE_SHIFT)));
            if (cu_alloc(&k->hpages[(size_t)r * k->maxpages + p], k->page_bytes, LCB_MEM_KV, what, err, errlen)) {
                for (int q = old; q <= p; q++)
                    for (int s = 0; s < k->L * 2; s++) {
                        void **slot = &k->hpages[(size_t)s * k->maxpages + q];
                        if (*slot) { cu_free(*slot, k->page_bytes, LCB_MEM_KV); *slot = NULL; }
                    }
                return -1;
            }
        }
    k->npages = need;
    return kv_table_sync(k, err, errlen);
}

/* bytes and capacity of the whole cache (every rank) into the host struct */
static void kv_account(KVCache *kv) {
    DevKVSet *ks = (DevKVSet *)kv->dev;
    kv->bytes = 0;
    for (int r = 0; r < ks->tp; r++) kv->bytes += ks->r[r]->sink_bytes + (size_t)ks->r[r]->npages * ks->r[r]->L * 2 * ks->r[r]->page_bytes;
    /* after a growth that failed on one GPU the others may hold more pages: the least counts */
    int pages = ks->tp > 0 ? ks->r[0]->npages : 0;
    for (int r = 1; r < ks->tp; r++) if (ks->r[r]->npages < pages) pages = ks->r[r]->npages;
    if (ks->tp > 0) kv->cap = kv->window >= 0 ? kv->window : ((int64_t)pages << CU_PAGE_SHIFT);
}

static int kv_grow(KVCache *kv, const DevGroup *g, int64_t slots, char *err, size_t errlen) {
    DevKVSet *ks = (DevKVSet *)kv->dev;
    int rc = 0;
    for (int r = 0; r < ks->tp && !rc; r++) {
        CU_TRY(cudaSetDevice(g->r[r]->device));
        rc = kv_grow_rank(ks->r[r], kv->n_sink, slots, err, errlen);
    }
    kv_account(kv);
    return rc;
}

static void dev_kv_destroy(DevKV *k) {
    if (!k) return;
    for (int r = 0; r < k->L * 2; r++)
        for (int p = 0; p < k->npages; p++) cu_free(k->hpages[(size_t)r * k->maxpages + p], k->page_bytes, LCB_MEM_KV);
    cu_free(k->dpages, (size_t)k->L * 2 * k->maxpages * sizeof(void *), LCB_MEM_KV);
    cu_free(k->sinks, k->sink_bytes, LCB_MEM_KV);
    free(k->hpages);
    free(k);
}

/* The dtype and the sharding of the cache come from the model: kv_init does not see the model,
 * so the per-rank caches are created on the first forward (cuda_kv_init only checks and records
 * the policy). */
static int kv_materialise(KVCache *kv, const ModelConfig *c, const DevGroup *g, char *err, size_t errlen) {
    DevKVSet *ks = (DevKVSet *)kv->dev;
    const int dt = g->r[0]->dt;
    if (ks->tp) {
        if (ks->tp != g->tp || ks->r[0]->dt != dt) return lcb_fail(err, errlen, "KV cache: used with models of two dtypes or GPU splits");
        return 0;
    }
    for (int r = 0; r < g->tp; r++) {
        const DevModel *d = g->r[r];
        if (cudaSetDevice(d->device) != cudaSuccess) { cu_fail(cudaGetLastError(), "cudaSetDevice", __FILE__, __LINE__, err, errlen); goto fail; }
        DevKV *k = (DevKV *)calloc(1, sizeof *k);
        if (!k) { lcb_fail(err, errlen, "KV cache: out of memory"); goto fail; }
        ks->r[r] = k;
        ks->tp = r + 1;
        k->dt = dt;
        k->device = d->device; /* for cuda_kv_free, which has no model to ask */
        k->L = ks->L;
        k->kvd = d->KV * c->head_dim; /* this rank's KV heads */
        k->R = ks->R;
        size_t es = dt_size(dt);
        k->page_bytes = (size_t)CU_PAGE * k->kvd * es;
        if (kv->n_sink > 0) {
            k->sink_bytes = (size_t)k->L * 2 * kv->n_sink * k->kvd * es;
            if (cu_alloc(&k->sinks, k->sink_bytes, LCB_MEM_KV, "the KV cache's sink slots", err, errlen)) { k->sink_bytes = 0; goto fail; }
        }
        if (k->R > 0 && kv_grow_rank(k, kv->n_sink, k->R, err, errlen)) goto fail;
    }
    kv_account(kv);
    return 0;
fail: /* as if never materialised: the next forward tries again */
    for (int r = 0; r < ks->tp; r++) { cudaSetDevice(g->r[r]->device); dev_kv_destroy(ks->r[r]); ks->r[r] = NULL; }
    ks->tp = 0;
    cudaSetDevice(g->r[0]->device);
    return -1;
}

extern "C" int cuda_kv_init(KVCache *kv, char *err, size_t errlen) {
    if (cuda_available(err, errlen)) return -1;
    DevKVSet *k = (DevKVSet *)calloc(1, sizeof *k);
    if (!k) return lcb_fail(err, errlen, "KV cache: out of memory");
    k->L = kv->n_layers;
    k->kvd = kv->kv_dim;
    k->S = kv->n_sink;
    k->W = kv->window;
    k->R = kv->window >= 0 ? kv->window + CU_ROWS_MAX : 0;
    kv->dev = k;
    /* the host slot table stays authoritative (kv_advance keeps it) */
    if (kv->window > 0) {
        kv->cap = kv->window;
        kv->slot_pos = (int64_t *)lcb_alloc(LCB_MEM_KV, (kv->window + 1) * sizeof(int64_t));
        if (!kv->slot_pos) return lcb_fail(err, errlen, "KV cache: out of memory for the slot table of a window of %lld", (long long)kv->window);
    } else kv->cap = 0;
    cuda_kv_reset(kv);
    return 0;
}

extern "C" void cuda_kv_reset(KVCache *kv) {
    kv->n_past = 0;
    if (kv->slot_pos)
        for (int64_t s = 0; s < kv->cap; s++) kv->slot_pos[s] = -1;
}

/* Each rank's storage is freed on the device that holds it (DevKV.device, recorded by
 * kv_materialise from the model's rank: kv_free has no model to ask); the current device is
 * left as it was. */
extern "C" void cuda_kv_free(KVCache *kv) {
    DevKVSet *ks = (DevKVSet *)kv->dev;
    if (ks) {
        int cur = -1;
        if (cudaGetDevice(&cur) != cudaSuccess) { cudaGetLastError(); cur = -1; }
        for (int r = 0; r < ks->tp; r++) {
            if (!ks->r[r]) continue;
            cudaSetDevice(ks->r[r]->device);
            dev_kv_destroy(ks->r[r]);
        }
        if (cur >= 0) cudaSetDevice(cur);
        free(ks);
    }
    kv->dev = NULL;
}

/* ---------------------------------------------------------------- KV state (engine/kvstate.c) */

extern "C" int cuda_kv_layout(const KVCache *kv, const Model *m, int *dtype, int *elt, int *tp, int64_t *ring, char *err, size_t errlen) {
    const DevKVSet *ks = (const DevKVSet *)kv->dev;
    const DevGroup *g = m ? (const DevGroup *)m->dev : NULL;
    if (!ks) return lcb_fail(err, errlen, "KV state: not a CUDA cache");
    if (ks->tp) { *dtype = ks->r[0]->dt; *tp = ks->tp; }
    else if (g) { *dtype = g->r[0]->dt; *tp = g->tp; }
    else return lcb_fail(err, errlen, "KV state: the model has no device weights");
    *elt = (int)dt_size(*dtype);
    *ring = ks->R;
    return 0;
}

/* What a rank stores in token rows: sink rows written so far, recent slots written so far. */
static void kv_used(const KVCache *kv, const DevKVSet *ks, int64_t *ns, int64_t *used) {
    const int64_t S = kv->n_sink > 0 ? kv->n_sink : 0;
    *ns = kv->n_past < S ? kv->n_past : S;
    *used = kv->n_past - S > 0 ? kv->n_past - S : 0;
    if (ks->R > 0 && *used > ks->R) *used = ks->R;
}

/* Visit the used rows of every rank in stream order (rank, layer, K/V: sinks, then the recent
 * slots page by page), moving each block through a host buffer: to io (save) or from it. */
static int kv_rows_io(KVCache *kv, const Model *m, KvIO *io, int save, char *err, size_t errlen) {
    DevKVSet *ks = (DevKVSet *)kv->dev;
    const DevGroup *g = (const DevGroup *)m->dev;
    int64_t ns, used;
    kv_used(kv, ks, &ns, &used);
    int rc = 0;
    for (int r = 0; r < ks->tp && !rc; r++) {
        DevKV *k = ks->r[r];
        const size_t es = dt_size(k->dt), row = (size_t)k->kvd * es, sink_layer = (size_t)kv->n_sink * row;
        size_t buf_bytes = k->page_bytes > (size_t)ns * row ? k->page_bytes : (size_t)ns * row;
        CU_TRY(cudaSetDevice(g->r[r]->device));
        CU_TRY(cudaDeviceSynchronize()); /* the forward's streams are done with the cache */
        char *buf = (char *)malloc(buf_bytes ? buf_bytes : 1);
        if (!buf) return lcb_fail(err, errlen, "out of memory: a %zu-byte buffer for the KV state", buf_bytes);
        for (int l = 0; l < k->L && !rc; l++)
            for (int kvi = 0; kvi < 2 && !rc; kvi++) {
                /* the sink rows, then the recent slots page by page */
                for (int64_t p = -1; !rc && (p < 0 || (p << CU_PAGE_SHIFT) < used); p++) {
                    char *dev;
                    size_t bytes;
                    if (p < 0) { dev = (char *)k->sinks + (size_t)(2 * l + kvi) * sink_layer; bytes = (size_t)ns * row; }
                    else {
                        int64_t n = used - (p << CU_PAGE_SHIFT);
                        dev = (char *)k->hpages[(size_t)(l * 2 + kvi) * k->maxpages + p];
                        bytes = (size_t)(n < CU_PAGE ? n : CU_PAGE) * row;
                    }
                    if (!bytes) continue;
                    cudaError_t e = cudaSuccess;
                    if (save) {
                        e = cudaMemcpy(buf, dev, bytes, cudaMemcpyDeviceToHost);
                        if (e == cudaSuccess && io->write(io->ctx, buf, bytes)) rc = lcb_fail(err, errlen, "writing the KV cache state failed");
                    } else if (io->read(io->ctx, buf, bytes)) rc = lcb_fail(err, errlen, "the KV cache state ends early");
                    else e = cudaMemcpy(dev, buf, bytes, cudaMemcpyHostToDevice);
                    if (e != cudaSuccess) rc = cu_fail(e, save ? "cudaMemcpy (KV state out)" : "cudaMemcpy (KV state in)", __FILE__, __LINE__, err, errlen);
                }
            }
        free(buf);
    }
    CU_TRY(cudaSetDevice(g->r[0]->device));
    return rc;
}

extern "C" int cuda_kv_save(const KVCache *kv, const Model *m, KvIO *io, char *err, size_t errlen) {
    const DevKVSet *ks = (const DevKVSet *)kv->dev;
    if (!ks || !m || !m->dev) return lcb_fail(err, errlen, "KV state: not a CUDA cache of a model on the device");
    if (ks->tp == 0 && kv->n_past > 0) return lcb_fail(err, errlen, "KV state: a cache at %lld with no device storage", (long long)kv->n_past);
    if (ks->tp && kv_rows_io((KVCache *)kv, m, io, 1, err, errlen)) return -1;
    /* the host slot table (kv_advance keeps it for a window) */
    if (kv->window >= 0 && kv->slot_pos && kv->cap > 0 && io->write(io->ctx, kv->slot_pos, (size_t)kv->cap * sizeof(int64_t)))
        return lcb_fail(err, errlen, "writing the KV cache state failed");
    return 0;
}

extern "C" int cuda_kv_load(KVCache *kv, const Model *m, KvIO *io, char *err, size_t errlen) {
    DevKVSet *ks = (DevKVSet *)kv->dev;
    const DevGroup *g = m ? (const DevGroup *)m->dev : NULL;
    if (!ks || !g) return lcb_fail(err, errlen, "KV state: not a CUDA cache of a model on the device");
    if (kv->n_past > 0) {
        if (kv_materialise(kv, &m->cfg, g, err, errlen)) return -1;
        int64_t ns, used;
        kv_used(kv, ks, &ns, &used);
        /* an unbounded cache: the pages the run had grown to at n_past */
        if (ks->R == 0 && used > 0 && kv_grow(kv, g, used, err, errlen)) return -1;
        if (kv_rows_io(kv, m, io, 0, err, errlen)) return -1;
    }
    if (kv->window >= 0 && kv->slot_pos && kv->cap > 0) {
        if (io->read(io->ctx, kv->slot_pos, (size_t)kv->cap * sizeof(int64_t))) return lcb_fail(err, errlen, "the KV cache state ends early");
        for (int64_t s = 0; s < kv->cap; s++)
            if (kv->slot_pos[s] < -1 || kv->slot_pos[s] >= kv->n_past)
                return lcb_fail(err, errlen, "the saved KV cache's slot %lld holds position %lld (the cache is at %lld)", (long long)s,
                                (long long)kv->slot_pos[s], (long long)kv->n_past);
    }
    return 0;
}

extern "C" int cuda_kv_copy(KVCache *dst, const KVCache *src, const Model *m, char *err, size_t errlen) {
    const DevKVSet *a = (const DevKVSet *)src->dev;
    DevKVSet *b = (DevKVSet *)dst->dev;
    const DevGroup *g = m ? (const DevGroup *)m->dev : NULL;
    if (!a || !b || !g) return lcb_fail(err, errlen, "copying a KV cache: not CUDA caches of a model on the device");
    if (a->tp == 0) return 0; /* nothing fed yet: nothing on the device */
    if (kv_materialise(dst, &m->cfg, g, err, errlen)) return -1;
    if (b->R == 0 && a->r[0]->npages > 0 && kv_grow(dst, g, (int64_t)a->r[0]->npages << CU_PAGE_SHIFT, err, errlen)) return -1;
    for (int r = 0; r < a->tp; r++) {
        const DevKV *x = a->r[r];
        DevKV *y = b->r[r];
        if (x->dt != y->dt || x->kvd != y->kvd || x->page_bytes != y->page_bytes || y->npages < x->npages)
            return lcb_fail(err, errlen, "copying a KV cache: the copy's device storage differs from the original's");
        CU_TRY(cudaSetDevice(g->r[r]->device));
        CU_TRY(cudaDeviceSynchronize());
        if (x->sink_bytes) CU_TRY(cudaMemcpy(y->sinks, x->sinks, x->sink_bytes, cudaMemcpyDeviceToDevice));
        for (int q = 0; q < x->L * 2; q++)
            for (int p = 0; p < x->npages; p++)
                CU_TRY(cudaMemcpy(y->hpages[(size_t)q * y->maxpages + p], x->hpages[(size_t)q * x->maxpages + p], x->page_bytes,
                                  cudaMemcpyDeviceToDevice));
    }
    CU_TRY(cudaSetDevice(g->r[0]->device));
    kv_account(dst);
    return 0;
}

/* ---------------------------------------------------------------- forward */

/* y (n, out) = x (n, in) W^T (+ beta y), W (out, in) row-major in T; y in fp32 (yt = DT_F32) or
 * in T (yt = d->dt); fp32 accumulation either way (fp32 mode: pedantic, the CPU twin's) */
static int gemm_to(DevModel *d, const void *x, const void *w, void *y, int yt, int n, int in, int out, float beta, char *err,
                   size_t errlen) {
    if (n <= CU_GEMV_ROWS && !k_gemv(d->dt, x, w, y, yt, n, in, out, beta, d->st)) return 0; /* decode: W read at bandwidth */
    const float alpha = 1.f;
    cudaDataType t = dt_cuda(d->dt);
    CUBLAS_TRY(cublasGemmEx(d->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, t, in, x, t, in, &beta, y, dt_cuda(yt), out,
                            d->dt == DT_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* y (n, out) fp32 = x (n, in) W^T (+ beta y) */
static int gemm(DevModel *d, const void *x, const void *w, float *y, int n, int in, int out, float beta, char *err, size_t errlen) {
    return gemm_to(d, x, w, y, DT_F32, n, in, out, beta, err, errlen);
}

/* cuBLASLt handles, one per device, made on first use and kept for the process (gemm_bias), and
 * the heuristic's algorithm per shape (the query costs tens of microseconds: decode calls it
 * twice a layer a token); found 0 marks a shape with no algorithm */
static cublasLtHandle_t lt_handle[64];
typedef struct {
    int device, dt, n, in, out, found;
    cublasLtMatmulAlgo_t algo;
} LtAlgo;
static LtAlgo lt_algos[32];
static int lt_nalgos, lt_next;

/* gemm with the bias (out) added in cuBLASLt's epilogue: y = x W^T + beta y + bias, one pass over y.
 * 0 done; 1 not done (fp32 mode, or no algorithm for the types: gemm_bias falls back), y untouched. */
static int gemm_lt_bias(DevModel *d, const void *x, const void *w, float *y, const float *bias, int n, int in, int out, float beta) {
    if (d->dt == DT_F32 || d->device < 0 || d->device >= 64) return 1;
    cublasLtHandle_t lt = lt_handle[d->device];
    if (!lt && cublasLtCreate(&lt_handle[d->device]) != CUBLAS_STATUS_SUCCESS) { lt_handle[d->device] = NULL; return 1; }
    lt = lt_handle[d->device];
    const cudaDataType t = dt_cuda(d->dt), bt = CUDA_R_32F;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const float alpha = 1.f;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL; /* as stored, column-major: W (in, out), x (in, n), y (out, n) */
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t h;
    int found = 0, rc = 1;
    const cublasStatus_t OK = CUBLAS_STATUS_SUCCESS;
    LtAlgo *cached = NULL;
    for (int i = 0; i < lt_nalgos; i++) {
        const LtAlgo *e = &lt_algos[i];
        if (e->device == d->device && e->dt == d->dt && e->n == n && e->in == in && e->out == out) { cached = &lt_algos[i]; break; }
    }
    if (cached && !cached->found) return 1;
    if (cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == OK &&
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == OK &&
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == OK &&
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == OK &&
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) == OK &&
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt) == OK &&
        cublasLtMatrixLayoutCreate(&la, t, in, out, in) == OK && cublasLtMatrixLayoutCreate(&lb, t, in, n, in) == OK &&
        cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, out, n, out) == OK) {
        if (!cached) {
            if (cublasLtMatmulPreferenceCreate(&pref) != OK ||
                cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &h, &found) != OK)
                found = 0;
            cached = &lt_algos[lt_nalgos < 32 ? lt_nalgos++ : (lt_next++ & 31)];
            cached->device = d->device; cached->dt = d->dt; cached->n = n; cached->in = in; cached->out = out;
            cached->found = found > 0;
            if (found > 0) cached->algo = h.algo;
        }
        if (cached->found && cublasLtMatmul(lt, op, &alpha, w, la, x, lb, &beta, y, lc, y, lc, &cached->algo, NULL, 0, d->st) == OK)
            rc = 0;
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

/* y = x W^T + beta y (+ bias (out), NULL for none): the bias in the GEMM's epilogue where
 * cuBLASLt has one for the types, else a separate pass (fp32 mode: the CPU twin's order) */
static int gemm_bias(DevModel *d, const void *x, const void *w, float *y, const float *bias, int n, int in, int out, float beta,
                     char *err, size_t errlen) {
    if (bias && !gemm_lt_bias(d, x, w, y, bias, n, in, out, beta)) return 0;
    if (gemm(d, x, w, y, n, in, out, beta, err, errlen)) return -1;
    if (bias) k_add_bias(y, bias, n, out, d->st);
    return 0;
}

extern "C" int cuda_op_gemm_time(const char *dtype, int n, const CudaGemmShape *sh, int nsh, int layers, double seconds,
                                 double *alone_ms, double *seq_ms, int *seq_n, char *err, size_t errlen) {
    const int dt = dt_parse(dtype);
    if (dt < 0) return lcb_fail(err, errlen, "cuda_op_gemm_time: unknown dtype '%s'", dtype);
    if (n < 1 || nsh < 1 || nsh > 16 || layers < 1 || !(seconds >= 0))
        return lcb_fail(err, errlen, "cuda_op_gemm_time: n %d, %d shapes, %d layers, %g s", n, nsh, layers, seconds);
    DevModel d = {};
    d.dt = dt;
    const size_t es = dt_size(dt);
    size_t xmax = 0;
    for (int i = 0; i < nsh; i++) {
        if (sh[i].in < 1 || sh[i].out < 1) return lcb_fail(err, errlen, "cuda_op_gemm_time: shape %s is %d x %d", sh[i].what, sh[i].in, sh[i].out);
        if ((size_t)sh[i].in > xmax) xmax = sh[i].in;
    }
    void *x = NULL, *y[16] = {}, **w = (void **)calloc((size_t)nsh * layers, sizeof(void *));
    cudaEvent_t ev[2] = {};
    float *t = NULL;
    int rc = w ? 0 : lcb_fail(err, errlen, "cuda_op_gemm_time: out of host memory");
    if (!rc && cublasCreate(&d.blas) != CUBLAS_STATUS_SUCCESS) rc = lcb_fail(err, errlen, "cuda_op_gemm_time: cublasCreate failed");
    if (!rc && (blas_math(d.blas, dt) != CUBLAS_STATUS_SUCCESS ||
                cudaEventCreate(&ev[0]) != cudaSuccess || cudaEventCreate(&ev[1]) != cudaSuccess))
        rc = lcb_fail(err, errlen, "cuda_op_gemm_time: cuBLAS or event setup failed");
    if (!rc) rc = cu_alloc(&x, (size_t)n * xmax * es, LCB_MEM_WORK, "GEMM input", err, errlen);
    size_t yb[16], wb[16]; /* bytes of each shape's output and of one copy of its weights */
    for (int i = 0; i < nsh; i++) {
        yb[i] = (size_t)n * sh[i].out * (sh[i].y_f32 ? 4 : es);
        wb[i] = (size_t)sh[i].out * sh[i].in * es;
    }
    for (int i = 0; i < nsh && !rc; i++) {
        rc = cu_alloc(&y[i], yb[i], LCB_MEM_WORK, "GEMM output", err, errlen);
        if (!rc) rc = cudaMemset(y[i], 0, yb[i]) == cudaSuccess ? 0 : lcb_fail(err, errlen, "cudaMemset failed");
        for (int l = 0; l < layers && !rc; l++) {
            void **p = &w[(size_t)l * nsh + i];
            rc = cu_alloc(p, wb[i], LCB_MEM_WORK, "GEMM weights", err, errlen);
            if (!rc) k_fill_normal(dt, *p, (size_t)sh[i].out * sh[i].in, 0.02f, 13, (uint64_t)l * nsh + i, 0);
        }
    }
    if (!rc) k_fill_normal(dt, x, (size_t)n * xmax, 1.f, 13, 1u << 20, 0);
    const int iters = 10;
    if (!rc && !(t = (float *)malloc(iters * sizeof(float)))) rc = lcb_fail(err, errlen, "cuda_op_gemm_time: out of host memory");
#define GT_ONE(i, l) gemm_to(&d, x, w[(size_t)(l) * nsh + (i)], y[i], sh[i].y_f32 ? DT_F32 : dt, n, sh[i].in, sh[i].out, sh[i].beta, err, errlen)
#define GT_EV(e) (cudaEventRecord(ev[e], 0) == cudaSuccess ? 0 : lcb_fail(err, errlen, "cudaEventRecord failed"))
    for (int i = 0; i < nsh && !rc; i++) {
        for (int k = 0; k < 3 && !rc; k++) rc = GT_ONE(i, k % layers);
        for (int k = 0; k < iters && !rc; k++) {
            rc = GT_EV(0);
            if (!rc) rc = GT_ONE(i, k % layers);
            if (!rc) rc = GT_EV(1);
            if (!rc && (cudaEventSynchronize(ev[1]) != cudaSuccess || cudaEventElapsedTime(&t[k], ev[0], ev[1]) != cudaSuccess))
                rc = lcb_fail(err, errlen, "cuda_op_gemm_time: %s", cudaGetErrorString(cudaGetLastError()));
        }
        if (!rc) {
            qsort(t, iters, sizeof *t, cu_cmp_float);
            alone_ms[i] = t[iters / 2];
        }
    }
    /* the sequence: one pass of warm-up, then passes until `seconds` of them are timed */
    double total = 0;
    int passes = 0;
    for (int pass = -1; !rc && seq_ms && (pass < 1 || total < seconds * 1e3); pass++) {
        rc = GT_EV(0);
        for (int l = 0; l < layers && !rc; l++)
            for (int i = 0; i < nsh && !rc; i++) rc = GT_ONE(i, l);
        if (!rc) rc = GT_EV(1);
        float ms = 0;
        if (!rc && (cudaEventSynchronize(ev[1]) != cudaSuccess || cudaEventElapsedTime(&ms, ev[0], ev[1]) != cudaSuccess))
            rc = lcb_fail(err, errlen, "cuda_op_gemm_time: %s", cudaGetErrorString(cudaGetLastError()));
        if (!rc && pass >= 0) { total += ms; passes++; }
    }
#undef GT_ONE
#undef GT_EV
    if (!rc && seq_ms) {
        *seq_ms = total / passes;
        *seq_n = passes;
    }
    free(t);
    for (int i = 0; i < nsh; i++) {
        for (int l = 0; w && l < layers; l++)
            if (w[(size_t)l * nsh + i]) cu_free(w[(size_t)l * nsh + i], wb[i], LCB_MEM_WORK);
        if (y[i]) cu_free(y[i], yb[i], LCB_MEM_WORK);
    }
    if (x) cu_free(x, (size_t)n * xmax * es, LCB_MEM_WORK);
    free(w);
    if (ev[0]) cudaEventDestroy(ev[0]);
    if (ev[1]) cudaEventDestroy(ev[1]);
    if (d.blas) cublasDestroy(d.blas);
    return rc;
}

/* Where a rank's share of a residual add goes: rank 0 adds into x (with the biases), the
 * others into y (zeroed by their first GEMM, beta 0); the all-reduce then sums y into every x. */
static float *acc_of(const DevModel *d) { return d->rank == 0 ? d->x : d->y; }

/* acc += mlp(xn) (+ down bias on rank 0); on ranks > 0 this starts y (beta 0).  The gate/up
 * product hb is this rank's own (its ffn columns), in T. */
static int mlp(const ModelConfig *c, DevModel *d, const DevLayer *w, int n, char *err, size_t errlen) {
    const int dim = c->dim, ffn = d->ffn;
    if (gemm_to(d, d->xn, w->wup, d->hb, d->dt, n, dim, (c->gated_mlp ? 2 : 1) * ffn, 0.f, err, errlen)) return -1;
    k_act(d->dt, d->hb, w->bup, d->ha, n, ffn, c->gated_mlp, c->act, d->st);
    return gemm_bias(d, d->ha, w->wdown, acc_of(d), d->rank == 0 ? w->bdown : NULL, n, ffn, dim, d->rank > 0 ? 0.f : 1.f, err,
                     errlen);
}

/* x += the sum over ranks of their partial sums (NCCL all-reduce: rank 0's x, the others' y) */
static int allreduce(const DevGroup *g, int n, int dim, char *err, size_t errlen) {
    if (g->tp == 1) return 0;
#ifdef LCB_HAVE_NCCL
    ncclResult_t nr = ncclGroupStart();
    for (int r = 0; r < g->tp && nr == ncclSuccess; r++) {
        const DevModel *d = g->r[r];
        nr = ncclAllReduce(r == 0 ? (const void *)d->x : (const void *)d->y, d->x, (size_t)n * dim, ncclFloat32, ncclSum,
                           (ncclComm_t)g->comm[r], d->st);
    }
    ncclResult_t ne = ncclGroupEnd();
    if (nr == ncclSuccess) nr = ne;
    if (nr != ncclSuccess) return lcb_fail(err, errlen, "NCCL all-reduce over %d GPUs failed: %s", g->tp, ncclGetErrorString(nr));
    return 0;
#else
    return lcb_fail(err, errlen, "tensor parallelism needs NCCL");
#endif
}

/* cos/sin of pos * inv_freq in double, as rope_table, on all cores: forward_rows' fallback where
 * rot_half > CU_ROPE_TAB_MAXF (else k_rope_table computes the same values on the device) */
static void host_rope_table(const KVCache *kv, const int64_t *pos, int n, float *cs) {
    const int half = kv->rot_half;
    #pragma omp parallel for schedule(static) if (n >= 64)
    for (int i = 0; i < n; i++)
        for (int f = 0; f < half; f++) {
            double a = (double)pos[i] * kv->inv_freq[f];
            cs[(size_t)i * 2 * half + f] = (float)cos(a);
            cs[(size_t)i * 2 * half + half + f] = (float)sin(a);
        }
}

/* One rank's attention half of layer l: norm, QKV, RoPE + cache store, attention, output
 * projection into acc (and, for parallel-attention layers, the MLP too). */
static int layer_attn(const ModelConfig *c, KVCache *kv, DevModel *d, DevKV *k, int l, int n, int need_qs, char *err, size_t errlen) {
    const int dim = c->dim, H = d->H, hd = c->head_dim, qd = H * hd, kvd = d->KV * hd, qkvd = qd + 2 * kvd, rd = 2 * kv->rot_half;
    const int64_t t0 = kv->n_past, S = kv->n_sink, W = kv->window;
    const float eps = (float)c->norm_eps;
    const int ln = c->norm == NORM_LAYER;
    const DevLayer *w = &d->L[l];
    k_norm(d->dt, d->x, d->xn, w->attn_norm_w, w->attn_norm_b, n, dim, ln, eps, d->st);
    if (gemm_to(d, d->xn, w->wqkv, d->qkv, d->dt, n, dim, qkvd, 0.f, err, errlen)) return -1; /* T: rope_store adds the bias */
    char *sinks = (char *)k->sinks;
    size_t sink_layer = (size_t)S * kvd * dt_size(d->dt);
    void *const *kp = k->dpages ? k->dpages + (size_t)(2 * l) * k->maxpages : NULL;
    void *const *vp = k->dpages ? k->dpages + (size_t)(2 * l + 1) * k->maxpages : NULL;
    RopeArgs ra = {d->qkv, w->bqkv, qkvd, d->q, need_qs ? d->qs : NULL, d->cs, d->cs + (size_t)n * rd, n, H, d->KV, hd,
                   kv->rot_half, t0, S, k->R, sinks ? sinks + 2 * l * sink_layer : NULL,
                   sinks ? sinks + (2 * l + 1) * sink_layer : NULL, kp, vp};
    k_rope_store(d->dt, &ra, d->st);
    AttnArgs aa = {d->q, need_qs ? d->qs : d->q, ra.sk, ra.sv, kp, vp, d->att, n, H, d->KV, hd, t0, S, W, k->R,
                   kv->s2_group, kv->s2_total, d->h0, c->n_heads, 1.0f / sqrtf((float)hd), NULL};
    if (cu_attention(d->dt, &aa, d->st, err, errlen)) return -1;
    float *acc = acc_of(d);
    if (c->parallel) {
        if (!c->shared_norm) k_norm(d->dt, d->x, d->xn, w->mlp_norm_w, w->mlp_norm_b, n, dim, ln, eps, d->st);
        if (mlp(c, d, w, n, err, errlen)) return -1;
        return gemm_bias(d, d->att, w->wo, acc, d->rank == 0 ? w->bo : NULL, n, qd, dim, 1.f, err, errlen);
    }
    return gemm_bias(d, d->att, w->wo, acc, d->rank == 0 ? w->bo : NULL, n, qd, dim, d->rank > 0 ? 0.f : 1.f, err, errlen);
}

/* One sub-chunk of n rows: the whole of model_forward's work for them. */
static int forward_rows(Model *m, KVCache *kv, const int32_t *ids, int n, int out_from, const FwdOut *out,
                        char *err, size_t errlen) {
    DevGroup *g = (DevGroup *)m->dev;
    DevKVSet *ks = (DevKVSet *)kv->dev;
    DevModel *d0 = g->r[0];
    const ModelConfig *c = &m->cfg;
    const int dim = c->dim, V = c->vocab, rd = 2 * kv->rot_half, tp = g->tp;
    const int64_t t0 = kv->n_past, S = kv->n_sink, W = kv->window;
    for (int r = 0; r < tp; r++) {
        CU_TRY(cudaSetDevice(g->r[r]->device));
        if (ws_reserve(c, g->r[r], n, err, errlen)) return -1;
    }
    if (kv_materialise(kv, c, g, err, errlen)) return -1;
    if (ks->R == 0 && t0 + n > S && kv_grow(kv, g, t0 + n - S, err, errlen)) return -1;
    /* positions and RoPE tables, computed once into rank 0's pinned buffers */
    for (int r = 0; r < tp; r++) { CU_TRY(cudaSetDevice(g->r[r]->device)); CU_TRY(cudaStreamSynchronize(g->r[r]->st)); } /* pinned buffers free */
    int64_t *pa = d0->h_pos, *ps = d0->h_pos + n;
    int need_qs = 0;
    for (int i = 0; i < n; i++) {
        pa[i] = t0 + i;
        ps[i] = (S > 0 && W >= 0 && pa[i] > S + W) ? S + W : pa[i];
        need_qs |= ps[i] != pa[i];
    }
    /* the tables: on each rank's device (k_rope_table, the host formula's values; inv_freq, this
     * cache's, in the launch parameters), or on the host where rot_half > CU_ROPE_TAB_MAXF */
    const int dev_table = rd && kv->rot_half <= CU_ROPE_TAB_MAXF;
    if (rd && !dev_table) {
        host_rope_table(kv, pa, n, d0->h_cs);
        if (need_qs) host_rope_table(kv, ps, n, d0->h_cs + (size_t)n * rd);
    }
    RopeTabArgs ta;
    memset(&ta, 0, sizeof ta);
    if (dev_table) {
        ta.n = n; ta.half = kv->rot_half; ta.t0 = t0; ta.S = S; ta.W = W;
        memcpy(ta.inv_freq, kv->inv_freq, (size_t)kv->rot_half * sizeof(double));
    }
    memcpy(d0->h_ids, ids, (size_t)n * 4);
    for (int r = 0; r < tp; r++) {
        DevModel *d = g->r[r];
        CU_TRY(cudaSetDevice(d->device));
        if (r > 0) {
            if (rd && !dev_table) memcpy(d->h_cs, d0->h_cs, (size_t)(need_qs ? 2 : 1) * n * rd * 4);
            memcpy(d->h_ids, d0->h_ids, (size_t)n * 4);
        }
        if (dev_table) {
            ta.cs = d->cs;
            ta.cs_sink = need_qs ? d->cs + (size_t)n * rd : NULL;
            k_rope_table(&ta, d->st);
        } else if (rd) CU_TRY(cudaMemcpyAsync(d->cs, d->h_cs, (size_t)(need_qs ? 2 : 1) * n * rd * 4, cudaMemcpyHostToDevice, d->st));
        CU_TRY(cudaMemcpyAsync(d->ids, d->h_ids, (size_t)n * 4, cudaMemcpyHostToDevice, d->st));
        k_embed(d->dt, d->embed, d->ids, d->x, n, dim, d->st);
    }
    const float eps = (float)c->norm_eps;
    const int ln = c->norm == NORM_LAYER;
    for (int l = 0; l < c->n_layers; l++) {
        for (int r = 0; r < tp; r++) {
            if (tp > 1) CU_TRY(cudaSetDevice(g->r[r]->device));
            if (layer_attn(c, kv, g->r[r], ks->r[r], l, n, need_qs, err, errlen)) return -1;
        }
        if (allreduce(g, n, dim, err, errlen)) return -1;
        if (c->parallel) continue;
        for (int r = 0; r < tp; r++) {
            DevModel *d = g->r[r];
            const DevLayer *w = &d->L[l];
            if (tp > 1) CU_TRY(cudaSetDevice(d->device));
            k_norm(d->dt, d->x, d->xn, w->mlp_norm_w, w->mlp_norm_b, n, dim, ln, eps, d->st);
            if (mlp(c, d, w, n, err, errlen)) return -1;
        }
        if (allreduce(g, n, dim, err, errlen)) return -1;
    }
    for (int r = 0; r < tp; r++) { CU_TRY(cudaSetDevice(g->r[r]->device)); CU_LAUNCHED(); }
    CU_TRY(cudaSetDevice(d0->device));
    /* the cache now holds the chunk in every layer: the host bookkeeping of kvcache.c */
    kv_advance(kv, n);
    DevModel *d = d0; /* the head runs on rank 0 */
    if (out && (out->logits || out->nll) && out_from < n) {
        if (out->nll) {
            for (int i = out_from; i < n; i++) d->h_tg[i - out_from] = out->targets ? out->targets[i - out_from] : -1;
            CU_TRY(cudaMemcpyAsync(d->tg, d->h_tg, (size_t)(n - out_from) * 4, cudaMemcpyHostToDevice, d->st));
        }
        for (int b0 = out_from; b0 < n; b0 += CU_LG_ROWS) {
            int rows = n - b0 < CU_LG_ROWS ? n - b0 : CU_LG_ROWS;
            k_norm(d->dt, d->x + (size_t)b0 * dim, d->xn, d->norm_w, d->norm_b, rows, dim, ln, eps, d->st);
            if (gemm(d, d->xn, d->lm_head, d->lg, rows, dim, V, 0.f, err, errlen)) return -1;
            if (out->nll) k_nll(d->lg, d->tg + (b0 - out_from), d->nll + (b0 - out_from), rows, V, d->st);
            if (out->logits)
                CU_TRY(cudaMemcpyAsync(out->logits + (size_t)(b0 - out_from) * V, d->lg, (size_t)rows * V * 4, cudaMemcpyDeviceToHost, d->st));
        }
        CU_LAUNCHED();
        if (out->nll) {
            CU_TRY(cudaMemcpyAsync(d->h_nll, d->nll, (size_t)(n - out_from) * 8, cudaMemcpyDeviceToHost, d->st));
            CU_TRY(cudaStreamSynchronize(d->st));
            memcpy(out->nll, d->h_nll, (size_t)(n - out_from) * 8);
        }
    }
    for (int r = tp - 1; r >= 0; r--) { CU_TRY(cudaSetDevice(g->r[r]->device)); CU_TRY(cudaStreamSynchronize(g->r[r]->st)); }
    return 0;
}

extern "C" int cuda_forward(Model *m, KVCache *kv, const int32_t *ids, int n, int out_from, const FwdOut *out,
                            char *err, size_t errlen) {
    if (!m->dev) return lcb_fail(err, errlen, "cuda_forward: the model has no device weights");
    if (!kv->dev) return lcb_fail(err, errlen, "cuda_forward: the KV cache is not a CUDA cache (kv_init with LCB_DEVICE_CUDA)");
    if (kv->s2_group > 0) {
        if (kv->n_past != 0 || n != kv->s2_total) return lcb_fail(err, errlen, "s2 attention needs the whole input in one forward");
        return forward_rows(m, kv, ids, n, out_from, out, err, errlen);
    }
    const int V = m->cfg.vocab;
    for (int r0 = 0; r0 < n; r0 += CU_ROWS_MAX) {
        int rows = n - r0 < CU_ROWS_MAX ? n - r0 : CU_ROWS_MAX;
        int from = out_from - r0 > 0 ? out_from - r0 : 0;
        int wants = out && from < rows;
        FwdOut o = wants ? fwdout_shift(out, (size_t)(r0 + from - out_from), V) : FwdOut{};
        if (forward_rows(m, kv, ids + r0, rows, wants ? from : rows, wants ? &o : NULL, err, errlen)) return -1;
    }
    return 0;
}
