/*
 * cuda_internal.cuh — what the CUDA backend's files share: the checking macros, the counting
 * device allocator (weights / KV / workspace, current and peak), the device-side structs that
 * hang off Model.dev and KVCache.dev, and the kernel launchers each .cu file provides.
 *
 * Storage types: weights, the K/V cache and GEMM inputs are in the model's dtype T (fp32, bf16
 * or fp16), and so are the QKV and gate/up products (as HF stores them: cuBLAS accumulates in
 * fp32 and rounds once on the write; the kernels that read them add biases in fp32); the
 * residual stream, the output and down projections (accumulated into it), the logits, norms'
 * statistics, softmax and NLL are fp32.
 */
#ifndef LCB_CUDA_INTERNAL_CUH
#define LCB_CUDA_INTERNAL_CUH

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/cuda/ops.h"
#include "engine/kvcache.h"
#include "engine/model.h"

/* ---------------------------------------------------------------- dtypes */

enum { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2 };
static inline size_t dt_size(int dt) { return dt == DT_F32 ? 4 : 2; }
/* qsort order of floats, ascending (the benchmarks' medians) */
static inline int cu_cmp_float(const void *x, const void *y) {
    const float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}
static inline cudaDataType dt_cuda(int dt) { return dt == DT_F32 ? CUDA_R_32F : dt == DT_BF16 ? CUDA_R_16BF : CUDA_R_16F; }
/* "fp32" / "bf16" / "fp16" -> DT_*, -1 otherwise */
int dt_parse(const char *s);

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }

/* ---------------------------------------------------------------- errors */

/* A CUDA runtime error as an lcbench error; allocation failures read "out of memory: ...". */
int cu_fail(cudaError_t e, const char *what, const char *file, int line, char *err, size_t errlen);
#define CU_TRY(expr)                                                                               \
    do {                                                                                           \
        cudaError_t e_ = (expr);                                                                   \
        if (e_ != cudaSuccess) return cu_fail(e_, #expr, __FILE__, __LINE__, err, errlen);        \
    } while (0)
#define CUBLAS_TRY(expr)                                                                           \
    do {                                                                                           \
        cublasStatus_t s_ = (expr);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return lcb_fail(err, errlen, "%s: cuBLAS status %d (%s:%d)", #expr, (int)s_, __FILE__, __LINE__); \
    } while (0)
/* After kernel launches: a bad launch configuration or an earlier asynchronous fault. */
#define CU_LAUNCHED() CU_TRY(cudaGetLastError())

/* ---------------------------------------------------------------- counting allocator */

/* cudaMalloc counted under cat (LcbMemCat).  On failure: *p = NULL, nothing counted, and an
 * error "out of memory: <what> needs N MiB on the device (M MiB free)". */
int cu_alloc(void **p, size_t bytes, int cat, const char *what, char *err, size_t errlen);
void cu_free(void *p, size_t bytes, int cat);

/* ---------------------------------------------------------------- device state */

/* CU_ROWS_MAX (rows per internal sub-chunk; a ring holds W + CU_ROWS_MAX slots) and CU_LG_ROWS
 * (logits rows per LM-head block): engine/cuda/ops.h, plain C, which reports/plan.c reads too */
#define CU_PAGE_SHIFT 10   /* KV pages of 1024 token slots */
#define CU_PAGE (1 << CU_PAGE_SHIFT)

typedef struct {
    void *wqkv, *wo, *wup, *wdown;             /* T, shapes as LayerWeights */
    float *attn_norm_w, *attn_norm_b, *mlp_norm_w, *mlp_norm_b, *bqkv, *bo, *bup, *bdown; /* fp32 or NULL */
} DevLayer;

typedef struct {
    int dt;
    /* tensor parallelism: this is rank `rank` of `tp` on CUDA device `device`, holding query
     * heads [h0, h0 + H), KV heads [kv0, kv0 + KV) and MLP columns [f0, f0 + ffn) of the model
     * (all of them when tp = 1); embeddings, norms and the LM head are replicated */
    int rank, tp, device;
    int H, KV, ffn, h0, kv0, f0;
    cudaStream_t st;
    cublasHandle_t blas;
    void *wblock;                  /* every weight, one allocation (LCB_MEM_WEIGHTS) */
    size_t wbytes;
    void *embed, *lm_head;         /* T (vocab, dim) */
    float *norm_w, *norm_b;
    DevLayer *L;                   /* host array (n_layers) of device pointers */
    /* workspace for ws_rows rows (LCB_MEM_WORK) */
    int ws_rows;
    void *ws;
    size_t ws_bytes;
    float *x;                      /* (rows, dim) residual stream (replicated across ranks) */
    float *y;                      /* (rows, dim) this rank's partial sum, ranks > 0 (all-reduced into x) */
    void *xn;                      /* T (rows, dim) normed input of a GEMM */
    void *qkv;                     /* T (rows, qkvd) QKV projection, bias not yet added */
    void *q, *qs, *att;            /* T (rows, H hd): queries at t, at the sink position, attention out */
    void *hb;                      /* T (rows, up_rows ffn) [gate | up] projection, bias not yet added */
    void *ha;                      /* T (rows, ffn) activated MLP hidden */
    float *cs;                     /* (2 rows, rot_dim) RoPE [cos | sin]: absolute, then sink positions */
    float *lg;                     /* (CU_LG_ROWS, vocab) logits */
    int32_t *ids, *tg;             /* (rows) */
    double *nll;                   /* (rows) */
    /* pinned host staging */
    int h_rows;
    float *h_cs;
    int32_t *h_ids, *h_tg;
    double *h_nll;
    int64_t *h_pos;                /* (2 rows) */
} DevModel;

#define CU_TP_MAX 8

/* Model.dev: one DevModel per GPU, with NCCL communicators when tp > 1 */
typedef struct {
    int tp;
    DevModel *r[CU_TP_MAX];
    void *comm[CU_TP_MAX];         /* ncclComm_t */
} DevGroup;

typedef struct {
    int dt;                        /* storage type: the model's */
    int device;                    /* the CUDA device holding it (its rank's DevModel.device) */
    int L, kvd;                    /* layers; this GPU's KV dims */
    int64_t R;                     /* ring slots (W + CU_ROWS_MAX), 0 = dense (slot = position - S) */
    void *sinks;                   /* T (L, 2, S, kvd): sink keys, values */
    size_t sink_bytes;
    int npages, maxpages;          /* pages allocated per layer and per K/V; table capacity */
    void **hpages;                 /* host table [(l * 2 + kv) * maxpages + page] */
    void **dpages;                 /* device copy of the table */
    size_t page_bytes;
} DevKV;

/* KVCache.dev: the policy, and one DevKV per rank (its heads' keys and values), created by the
 * first forward, when the model's dtype and sharding are known */
typedef struct {
    int L, kvd;                    /* layers, whole-model KV dims */
    int64_t S, W, R;
    int tp;                        /* 0 until the first forward */
    DevKV *r[CU_TP_MAX];
} DevKVSet;

/* ---------------------------------------------------------------- kernels (kernels.cu) */

void k_embed(int dt, const void *embed, const int32_t *ids, float *x, int n, int dim, cudaStream_t st);
void k_norm(int dt, const float *x, void *y, const float *w, const float *b, int n, int dim, int layer_norm,
            float eps, cudaStream_t st);
/* rows of qkv (T, + the fp32 bias in fp32) -> rotated q (and q at the sink positions) in T,
 * rotated k and v into the cache (sinks, pages) */
typedef struct {
    const void *qkv; const float *bqkv; int ldqkv; /* qkv: T (n, ldqkv) */
    void *q, *qs;                   /* qs NULL: no sink rotation needed */
    const float *cs, *cs_sink;      /* (n, rot_dim) */
    int n, H, KV, hd, half;
    int64_t t0, S, R;
    void *sk, *sv;                  /* (S, kvd) this layer's sinks */
    void *const *kp, *const *vp;    /* page tables of this layer */
} RopeArgs;
void k_rope_store(int dt, const RopeArgs *a, cudaStream_t st);
/* RoPE [cos | sin] tables on the device (kernels.cu rope_table_kernel): cs (n, 2 half) at positions
 * t0 + i, and, if cs_sink, at the sink positions min(t0 + i, S + W) (S > 0, W >= 0; else t0 + i);
 * inv_freq (half) by value in the launch parameters.  -1 (nothing launched) when half is 0 or
 * above CU_ROPE_TAB_MAXF: the caller computes the table on the host. */
#define CU_ROPE_TAB_MAXF 256
typedef struct {
    float *cs, *cs_sink;
    int n, half;
    int64_t t0, S, W;
    double inv_freq[CU_ROPE_TAB_MAXF];
} RopeTabArgs;
int k_rope_table(const RopeTabArgs *a, cudaStream_t st);
/* tests: nonzero forces the scalar act / RoPE / norm kernels (ops.h cuda_op_elementwise_scalar) */
extern int cu_ew_scalar;
void k_add_bias(float *x, const float *b, int n, int dim, cudaStream_t st);
/* h, out in T; gated: out[i, k] = act(h[i, k]) * h[i, ffn + k]; else act(h[i, k] + bias[k]) (in fp32) */
void k_act(int dt, const void *h, const float *bias, void *out, int n, int ffn, int gated, int act, cudaStream_t st);
void k_nll(const float *lg, const int32_t *tg, double *nll, int n, int vocab, cudaStream_t st);
/* y (n, out) = x (n, in) W^T (+ beta y), W (out, in) in T (bf16/fp16), y in fp32 (yt DT_F32) or T,
 * for n <= CU_GEMV_ROWS (decode): 0 launched, 1 not taken (fp32, other n, in % 8, alignment) */
#define CU_GEMV_ROWS 4
int k_gemv(int dt, const void *x, const void *w, void *y, int yt, int n, int in, int out, float beta, cudaStream_t st);
/* p[i] = lcb_rng_normal(seed, tensor, i, std) (engine/rng.h: ~N(0, std^2), model.c's fill_normal bit for bit) */
void k_fill_normal(int dt, void *p, size_t n, float std, uint64_t seed, uint64_t tensor, cudaStream_t st);
/* the block dst (rows, cols) of such a tensor: elements base + r * ld + c */
void k_fill_normal_block(int dt, void *p, size_t rows, size_t cols, size_t ld, size_t base, float std, uint64_t seed,
                         uint64_t tensor, cudaStream_t st);
void k_fill_const(float *p, size_t n, float v, cudaStream_t st);
void k_convert(int dt, const float *src, void *dst, size_t n, cudaStream_t st);

/* ---------------------------------------------------------------- attention (attention.cu) */

typedef struct {
    const void *q, *qs;             /* T (n, H hd): queries at t, at the sink position */
    const void *sk, *sv;            /* T (S, kvd) */
    void *const *kp, *const *vp;    /* page tables: slot s at page s >> CU_PAGE_SHIFT */
    void *out;                      /* T (n, H hd) */
    int n, H, KV, hd;
    int64_t t0, S, W, R;            /* W < 0 unbounded; R ring slots, 0 = dense */
    int s2_group;
    int64_t s2_total;
    int s2_h0, s2_heads;            /* s2 rolls the model's heads h0 + h >= heads / 2: with --tp this
                                     * GPU holds heads [h0, h0 + H) of `heads` */
    float scale;
    float *part;                    /* set by cu_attention for a split over the keys (flash-decoding):
                                     * nparts parts (gridDim.z), each row's unnormalised O, max and sum */
    int nparts;
} AttnArgs;
int cu_attention(int dt, const AttnArgs *a, cudaStream_t st, char *err, size_t errlen);

#endif
