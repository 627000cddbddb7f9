/*
 * kernels.cu — the element-wise and row-wise kernels of the CUDA forward pass, each the twin of
 * a CPU routine in engine/model.c or engine/kvcache.c (and tested against it in
 * tests/test_cuda.c): embedding gather, RMSNorm/LayerNorm, bias, RoPE (rotate-half, partial)
 * fused with the KV-cache store, the MLP activations, the fused log-softmax NLL, and the
 * seeded normal fill of random: models (engine/rng.h, shared with model.c's fill_normal).
 */
#include "engine/cuda/cuda_internal.cuh"
#include "engine/rng.h"

#include <math.h>

#define DISPATCH_T(dt, ...)                                                                        \
    do {                                                                                           \
        if ((dt) == DT_F32) { typedef float T; __VA_ARGS__; }                                      \
        else if ((dt) == DT_BF16) { typedef __nv_bfloat16 T; __VA_ARGS__; }                        \
        else { typedef __half T; __VA_ARGS__; }                                                    \
    } while (0)

static inline unsigned blocks_for(size_t n, int per) { return (unsigned)((n + per - 1) / per); }

/* ---------------------------------------------------------------- embedding */

template <typename T>
__global__ void embed_kernel(const T *embed, const int32_t *ids, float *x, int dim) {
    const T *row = embed + (size_t)ids[blockIdx.x] * dim;
    float *o = x + (size_t)blockIdx.x * dim;
    for (int k = threadIdx.x; k < dim; k += blockDim.x) o[k] = to_f(row[k]);
}

void k_embed(int dt, const void *embed, const int32_t *ids, float *x, int n, int dim, cudaStream_t st) {
    DISPATCH_T(dt, embed_kernel<T><<<n, 256, 0, st>>>((const T *)embed, ids, x, dim));
}

/* ---------------------------------------------------------------- norms */

/* block-wide sum of a float over 256 threads */
__device__ __forceinline__ float block_sum(float v, float *sh) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
    __syncthreads();
    return t;
}

/* y = norm(x) * w (+ b), one row per block; statistics in fp32 over the row */
template <typename T>
__global__ void norm_kernel(const float *x, T *y, const float *w, const float *b, int dim, int layer_norm, float eps) {
    __shared__ float sh[32];
    const float *xi = x + (size_t)blockIdx.x * dim;
    T *yi = y + (size_t)blockIdx.x * dim;
    if (!layer_norm) {
        float ss = 0;
        for (int k = threadIdx.x; k < dim; k += blockDim.x) ss += xi[k] * xi[k];
        ss = block_sum(ss, sh);
        float r = rsqrtf(ss / dim + eps);
        for (int k = threadIdx.x; k < dim; k += blockDim.x) yi[k] = from_f<T>(w[k] * (xi[k] * r));
    } else {
        float s = 0;
        for (int k = threadIdx.x; k < dim; k += blockDim.x) s += xi[k];
        float mean = block_sum(s, sh) / dim, v = 0;
        for (int k = threadIdx.x; k < dim; k += blockDim.x) { float t = xi[k] - mean; v += t * t; }
        float r = rsqrtf(block_sum(v, sh) / dim + eps);
        for (int k = threadIdx.x; k < dim; k += blockDim.x) yi[k] = from_f<T>((xi[k] - mean) * r * w[k] + b[k]);
    }
}

void k_norm(int dt, const float *x, void *y, const float *w, const float *b, int n, int dim, int layer_norm,
            float eps, cudaStream_t st) {
    DISPATCH_T(dt, norm_kernel<T><<<n, 256, 0, st>>>(x, (T *)y, w, b, dim, layer_norm, eps));
}

/* ---------------------------------------------------------------- bias, activations */

__global__ void add_bias_kernel(float *x, const float *b, size_t total, int dim) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) x[i] += b[i % dim];
}

void k_add_bias(float *x, const float *b, int n, int dim, cudaStream_t st) {
    size_t total = (size_t)n * dim;
    add_bias_kernel<<<blocks_for(total, 256), 256, 0, st>>>(x, b, total, dim);
}

__device__ __forceinline__ float act_f(int a, float x) {
    switch (a) {
    case ACT_SILU: return x / (1.f + expf(-x));
    case ACT_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case ACT_GELU_TANH: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ACT_RELU: return x > 0 ? x : 0;
    }
    return x;
}

/* h and out in T (the gate/up GEMM writes T); the activation and the bias in fp32 */
template <typename T>
__global__ void act_kernel(const T *h, const float *bias, T *out, size_t total, int ffn, int gated, int act) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t r = i / ffn, k = i % ffn;
    float v;
    if (gated) v = act_f(act, to_f(h[r * 2 * ffn + k])) * to_f(h[r * 2 * ffn + ffn + k]);
    else v = act_f(act, to_f(h[i]) + (bias ? bias[k] : 0.f));
    out[i] = from_f<T>(v);
}

void k_act(int dt, const void *h, const float *bias, void *out, int n, int ffn, int gated, int act, cudaStream_t st) {
    size_t total = (size_t)n * ffn;
    DISPATCH_T(dt, act_kernel<T><<<blocks_for(total, 256), 256, 0, st>>>((const T *)h, bias, (T *)out, total, ffn, gated, act));
}

/* ---------------------------------------------------------------- RoPE + KV store */

/* One block per chunk row of qkv (T, as the QKV GEMM wrote it; the bias is added in fp32).
 * q heads: rotate at t (-> q) and, if asked, at the sink position (-> qs); k heads: rotate at
 * t; k and v go to the sink slot t (t < S) or to the recent slot t - S (mod R for a ring), i.e.
 * page (slot >> CU_PAGE_SHIFT). */
template <typename T>
__global__ void rope_store_kernel(RopeArgs a) {
    const int i = blockIdx.x, hd = a.hd, half = a.half, qd = a.H * hd, kvd = a.KV * hd;
    const T *row = (const T *)a.qkv + (size_t)i * a.ldqkv;
    const float *c = a.cs + (size_t)i * 2 * half, *s = c + half;
    const float *cz = a.cs_sink + (size_t)i * 2 * half, *sz = cz + half;
    const int64_t t = a.t0 + i;
    T *kdst, *vdst;
    if (t < a.S) {
        kdst = (T *)a.sk + (size_t)t * kvd;
        vdst = (T *)a.sv + (size_t)t * kvd;
    } else {
        int64_t slot = t - a.S;
        if (a.R) slot %= a.R;
        size_t off = (size_t)(slot & (CU_PAGE - 1)) * kvd;
        kdst = (T *)a.kp[slot >> CU_PAGE_SHIFT] + off;
        vdst = (T *)a.vp[slot >> CU_PAGE_SHIFT] + off;
    }
    T *q = (T *)a.q + (size_t)i * qd, *qs = a.qs ? (T *)a.qs + (size_t)i * qd : NULL;
    /* every element of q and k: e = head * hd + d */
    for (int e = threadIdx.x; e < qd + kvd; e += blockDim.x) {
        const int d = e % hd;
        const T *hp = row + (e - d); /* the head's first element */
        float bh = a.bqkv ? a.bqkv[e] : 0.f;
        float xv = to_f(row[e]) + bh, out = xv, outs = xv;
        if (d < 2 * half) {
            int f = d < half ? d : d - half;
            float other = to_f(hp[d < half ? d + half : d - half]) + (a.bqkv ? a.bqkv[(e - d) + (d < half ? d + half : d - half)] : 0.f);
            /* rotate-half: [a, b] -> [a c - b s, b c + a s] */
            out = d < half ? xv * c[f] - other * s[f] : xv * c[f] + other * s[f];
            outs = d < half ? xv * cz[f] - other * sz[f] : xv * cz[f] + other * sz[f];
        }
        if (e < qd) {
            q[e] = from_f<T>(out);
            if (qs) qs[e] = from_f<T>(outs);
        } else kdst[e - qd] = from_f<T>(out);
    }
    for (int e = threadIdx.x; e < kvd; e += blockDim.x) {
        float bv = a.bqkv ? a.bqkv[qd + kvd + e] : 0.f;
        vdst[e] = from_f<T>(to_f(row[qd + kvd + e]) + bv);
    }
}

void k_rope_store(int dt, const RopeArgs *a, cudaStream_t st) {
    DISPATCH_T(dt, rope_store_kernel<T><<<a->n, 256, 0, st>>>(*a));
}

/* ---------------------------------------------------------------- fused log-softmax NLL */

/* nll[i] = log(sum exp(lg - max)) + max - lg[target]; NAN where target < 0.  One block per row. */
__global__ void nll_kernel(const float *lg, const int32_t *tg, double *nll, int vocab) {
    __shared__ float shm[32];
    __shared__ double shd[32];
    const float *r = lg + (size_t)blockIdx.x * vocab;
    const int target = tg[blockIdx.x];
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < vocab; k += blockDim.x) mx = fmaxf(mx, r[k]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) shm[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) mx = fmaxf(mx, shm[i]);
    float s = 0;
    for (int k = threadIdx.x; k < vocab; k += blockDim.x) s += expf(r[k] - mx);
    double sd = s;
    for (int o = 16; o; o >>= 1) sd += __shfl_xor_sync(0xffffffffu, sd, o);
    if ((threadIdx.x & 31) == 0) shd[threadIdx.x >> 5] = sd;
    __syncthreads();
    if (threadIdx.x == 0) {
        double tot = 0;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) tot += shd[i];
        nll[blockIdx.x] = (target >= 0 && target < vocab) ? log(tot) + mx - r[target] : (double)NAN;
    }
}

void k_nll(const float *lg, const int32_t *tg, double *nll, int n, int vocab, cudaStream_t st) {
    nll_kernel<<<n, 512, 0, st>>>(lg, tg, nll, vocab);
}

/* ---------------------------------------------------------------- random weights */

/* Element g of tensor `tensor` is lcb_rng_normal(seed, tensor, g, std) (engine/rng.h, the very
 * function model.c's fill_normal calls: integer hashing and one float multiply, so the float is
 * the CPU's bit for bit; bf16/fp16 round it once more).  Each thread computes one element, so any
 * block of the tensor can be generated on its own: dst (rows, cols) holds elements
 * base + r * ld + c of the whole tensor (a tensor-parallel shard, or all of it). */
template <typename T>
__global__ void fill_normal_kernel(T *p, size_t rows, size_t cols, size_t ld, size_t base, float std, uint64_t key) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    size_t g = base + (i / cols) * ld + i % cols;
    p[i] = from_f<T>(lcb_rng_normal_key(key, g, std));
}

void k_fill_normal_block(int dt, void *p, size_t rows, size_t cols, size_t ld, size_t base, float std, uint64_t seed,
                         uint64_t tensor, cudaStream_t st) {
    const uint64_t key = lcb_rng_key(seed, tensor);
    if (rows && cols)
        DISPATCH_T(dt, fill_normal_kernel<T><<<blocks_for(rows * cols, 256), 256, 0, st>>>((T *)p, rows, cols, ld, base, std, key));
}

void k_fill_normal(int dt, void *p, size_t n, float std, uint64_t seed, uint64_t tensor, cudaStream_t st) {
    k_fill_normal_block(dt, p, 1, n, n, 0, std, seed, tensor, st);
}

__global__ void fill_const_kernel(float *p, size_t n, float v) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = v;
}

void k_fill_const(float *p, size_t n, float v, cudaStream_t st) {
    if (n) fill_const_kernel<<<blocks_for(n, 256), 256, 0, st>>>(p, n, v);
}

template <typename T>
__global__ void convert_kernel(const float *s, T *d, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) d[i] = from_f<T>(s[i]);
}

void k_convert(int dt, const float *src, void *dst, size_t n, cudaStream_t st) {
    if (n) DISPATCH_T(dt, convert_kernel<T><<<blocks_for(n, 256), 256, 0, st>>>(src, (T *)dst, n));
}
