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

/* ---------------------------------------------------------------- 8-wide loads and stores */

/* 8 consecutive T (16 bytes for bf16 / fp16, 32 for fp32) to fp32 and back, with 16-byte
 * accesses: p must be 16-byte aligned (the launchers check).  The conversions are to_f /
 * from_f, the scalar kernels' own, so a vector kernel's element is the scalar one's bit for bit. */
__device__ __forceinline__ void load8(const float *p, float f[8]) {
    const float4 a = ((const float4 *)p)[0], b = ((const float4 *)p)[1];
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
__device__ __forceinline__ void store8(float *p, const float f[8]) {
    ((float4 *)p)[0] = make_float4(f[0], f[1], f[2], f[3]);
    ((float4 *)p)[1] = make_float4(f[4], f[5], f[6], f[7]);
}
__device__ __forceinline__ float raw_to_f(unsigned short r, const __nv_bfloat16 *) { return to_f(__ushort_as_bfloat16(r)); }
__device__ __forceinline__ float raw_to_f(unsigned short r, const __half *) { return to_f(__ushort_as_half(r)); }
__device__ __forceinline__ unsigned short f_to_raw(float f, const __nv_bfloat16 *) { return __bfloat16_as_ushort(from_f<__nv_bfloat16>(f)); }
__device__ __forceinline__ unsigned short f_to_raw(float f, const __half *) { return __half_as_ushort(from_f<__half>(f)); }
template <typename T> /* bf16, fp16 */
__device__ __forceinline__ void load8(const T *p, float f[8]) {
    const uint4 u = *(const uint4 *)p;
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        f[2 * j] = raw_to_f((unsigned short)(w[j] & 0xffffu), (const T *)0);
        f[2 * j + 1] = raw_to_f((unsigned short)(w[j] >> 16), (const T *)0);
    }
}
template <typename T>
__device__ __forceinline__ void store8(T *p, const float f[8]) {
    unsigned w[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
        w[j] = (unsigned)f_to_raw(f[2 * j], (const T *)0) | ((unsigned)f_to_raw(f[2 * j + 1], (const T *)0) << 16);
    *(uint4 *)p = make_uint4(w[0], w[1], w[2], w[3]);
}

static inline int al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* tests (ops.h cuda_op_elementwise_scalar): nonzero runs the scalar kernels of act, RoPE and
 * norm even where the vector ones apply */
int cu_ew_scalar = 0;

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

/* The same with the row held in registers: each thread loads its NPT elements k = tid + 256 j
 * (norm_kernel's own, coalesced 4-byte loads, all in flight at once) a single time from memory,
 * and keeps them for the statistics and the output: one pass over x instead of two (three for
 * LayerNorm).  Every thread sums its elements in norm_kernel's order (j ascending) and the block
 * reduction is block_sum, so the statistics are norm_kernel's bit for bit, and each output is
 * its expression as compiled there (norm_kernel's PTX: fma(x, x, ss), fma(t, t, v), w * (x * r),
 * fma((x - mean) * r, w, b)), written with explicit intrinsics so that no contraction can
 * differ: bit-identical.  (16-byte loads would give each thread 4 consecutive elements instead,
 * another summation order; the loads here are 128 bytes a warp, which the memory system
 * coalesces the same.) */
template <typename T, int NPT>
__global__ void __launch_bounds__(256) norm_reg_kernel(const float *x, T *y, const float *w, const float *b, int dim, int layer_norm, float eps) {
    __shared__ float sh[32];
    const float *xi = x + (size_t)blockIdx.x * dim;
    T *yi = y + (size_t)blockIdx.x * dim;
    const int t = threadIdx.x, nt = blockDim.x;
    float v[NPT];
#pragma unroll
    for (int j = 0; j < NPT; j++) v[j] = t + j * nt < dim ? xi[t + j * nt] : 0.f;
    if (!layer_norm) {
        float ss = 0;
#pragma unroll
        for (int j = 0; j < NPT; j++)
            if (t + j * nt < dim) ss = __fmaf_rn(v[j], v[j], ss);
        ss = block_sum(ss, sh);
        float r = rsqrtf(ss / dim + eps);
#pragma unroll
        for (int j = 0; j < NPT; j++) {
            const int k = t + j * nt;
            if (k < dim) yi[k] = from_f<T>(__fmul_rn(w[k], __fmul_rn(v[j], r)));
        }
    } else {
        float s = 0;
#pragma unroll
        for (int j = 0; j < NPT; j++)
            if (t + j * nt < dim) s = __fadd_rn(s, v[j]);
        float mean = block_sum(s, sh) / dim, var = 0;
#pragma unroll
        for (int j = 0; j < NPT; j++)
            if (t + j * nt < dim) { float d = __fsub_rn(v[j], mean); var = __fmaf_rn(d, d, var); }
        float r = rsqrtf(block_sum(var, sh) / dim + eps);
#pragma unroll
        for (int j = 0; j < NPT; j++) {
            const int k = t + j * nt;
            if (k < dim) yi[k] = from_f<T>(__fmaf_rn(__fmul_rn(__fsub_rn(v[j], mean), r), w[k], b[k]));
        }
    }
}

void k_norm(int dt, const float *x, void *y, const float *w, const float *b, int n, int dim, int layer_norm,
            float eps, cudaStream_t st) {
    if (n <= 0) return;
    const int per = (dim + 255) / 256; /* elements per thread */
    if (!cu_ew_scalar && per <= 64) {
#define NORM_REG(NPT) DISPATCH_T(dt, norm_reg_kernel<T, NPT><<<n, 256, 0, st>>>(x, (T *)y, w, b, dim, layer_norm, eps))
        if (per <= 4) NORM_REG(4);
        else if (per <= 8) NORM_REG(8);
        else if (per <= 16) NORM_REG(16);
        else if (per <= 32) NORM_REG(32);
        else NORM_REG(64);
#undef NORM_REG
        return;
    }
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

/* The same, 8 consecutive columns k0 .. k0+7 of a row per thread with 16-byte loads and stores
 * (ffn % 8 == 0, 16-byte aligned h, out, bias): columns in blockIdx.x, rows in blockIdx.y
 * (strided past 65,535), no 64-bit division.  Each element is act_kernel's expression on the
 * same floats (act_f, the same bias add, one rounding to T): bit-identical. */
template <typename T>
__global__ void act_vec_kernel(const T *h, const float *bias, T *out, int n, int ffn, int gated, int act) {
    const int k0 = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (k0 >= ffn) return;
    const size_t ld = (size_t)(gated ? 2 : 1) * ffn;
    for (int r = blockIdx.y; r < n; r += gridDim.y) {
        const T *hr = h + (size_t)r * ld + k0;
        float a[8], b[8], o[8];
        load8(hr, a);
        if (gated) {
            load8(hr + ffn, b);
#pragma unroll
            for (int j = 0; j < 8; j++) o[j] = act_f(act, a[j]) * b[j];
        } else {
            if (bias) load8(bias + k0, b);
            else {
#pragma unroll
                for (int j = 0; j < 8; j++) b[j] = 0.f;
            }
#pragma unroll
            for (int j = 0; j < 8; j++) o[j] = act_f(act, a[j] + b[j]);
        }
        store8(out + (size_t)r * ffn + k0, o);
    }
}

void k_act(int dt, const void *h, const float *bias, void *out, int n, int ffn, int gated, int act, cudaStream_t st) {
    if (n <= 0 || ffn <= 0) return;
    if (!cu_ew_scalar && ffn % 8 == 0 && al16(h) && al16(out) && (!bias || al16(bias))) {
        const int threads = 128;
        dim3 grid(blocks_for((size_t)ffn / 8, threads), n < 65535 ? n : 65535);
        DISPATCH_T(dt, act_vec_kernel<T><<<grid, threads, 0, st>>>((const T *)h, bias, (T *)out, n, ffn, gated, act));
        return;
    }
    size_t total = (size_t)n * ffn;
    DISPATCH_T(dt, act_kernel<T><<<blocks_for(total, 256), 256, 0, st>>>((const T *)h, bias, (T *)out, total, ffn, gated, act));
}

/* ---------------------------------------------------------------- RoPE + KV store */

/* Chunk row i of the two RoPE kernels: its qkv row (T), its [cos | sin] rows at t and at the
 * sink position, where its key and value go (the sink slot t < S, else the recent slot t - S mod
 * R for a ring, i.e. page slot >> CU_PAGE_SHIFT), and its q and qs rows (qs NULL: none). */
template <typename T> struct RopeRow {
    const T *row;
    const float *c, *s, *cz, *sz;
    T *kdst, *vdst, *q, *qs;
};
template <typename T>
__device__ __forceinline__ RopeRow<T> rope_row(const RopeArgs &a, int i, int qd, int kvd) {
    RopeRow<T> r;
    const int half = a.half;
    const int64_t t = a.t0 + i;
    r.row = (const T *)a.qkv + (size_t)i * a.ldqkv;
    r.c = a.cs + (size_t)i * 2 * half; r.s = r.c + half;
    r.cz = a.cs_sink + (size_t)i * 2 * half; r.sz = r.cz + half;
    if (t < a.S) {
        r.kdst = (T *)a.sk + (size_t)t * kvd;
        r.vdst = (T *)a.sv + (size_t)t * kvd;
    } else {
        int64_t slot = t - a.S;
        if (a.R) slot %= a.R;
        const size_t off = (size_t)(slot & (CU_PAGE - 1)) * kvd;
        r.kdst = (T *)a.kp[slot >> CU_PAGE_SHIFT] + off;
        r.vdst = (T *)a.vp[slot >> CU_PAGE_SHIFT] + off;
    }
    r.q = (T *)a.q + (size_t)i * qd;
    r.qs = a.qs ? (T *)a.qs + (size_t)i * qd : NULL;
    return r;
}

/* One block per chunk row of qkv (T, as the QKV GEMM wrote it; the bias is added in fp32).
 * q heads: rotate at t (-> q) and, if asked, at the sink position (-> qs); k heads: rotate at
 * t; k and v go to the sink slot t (t < S) or to the recent slot t - S (mod R for a ring), i.e.
 * page (slot >> CU_PAGE_SHIFT). */
template <typename T>
__global__ void rope_store_kernel(RopeArgs a) {
    const int i = blockIdx.x, hd = a.hd, half = a.half, qd = a.H * hd, kvd = a.KV * hd;
    const auto [row, c, s, cz, sz, kdst, vdst, q, qs] = rope_row<T>(a, i, qd, kvd);
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

/* The same for the common shape (hd % 8 == 0, half % 8 == 0, every pointer 16-byte aligned):
 * a work item is 8 consecutive dims d0 .. d0+7 of the first half of a head's rotary dims with
 * their partners d0+half .., both rotated from one 16-byte load each of T and of the fp32 [cos |
 * sin] rows, or 8 non-rotated dims, or 8 of v, stored with 16-byte stores.  Per element the
 * arithmetic is rope_store_kernel's as compiled there (its PTX: bias added first, then
 * fma(xv, c, -(other * s)) for the first half, fma(xv, c, other * s) for the second, the
 * product rounded on its own), written with explicit intrinsics so that no contraction can
 * differ: bit-identical. */
template <typename T>
__global__ void rope_vec_kernel(RopeArgs a) {
    const int i = blockIdx.x, hd = a.hd, half = a.half, qd = a.H * hd, kvd = a.KV * hd;
    const auto [row, c, s, cz, sz, kdst, vdst, q, qs] = rope_row<T>(a, i, qd, kvd);
    const int gr = half >> 3, per_head = (hd >> 3) - gr; /* gr rotated pairs of 8, then the non-rotated dims by 8 */
    const int items = (a.H + a.KV) * per_head;
    for (int it = threadIdx.x; it < items; it += blockDim.x) {
        const int h = it / per_head, j = it - h * per_head, hb = h * hd;
        float x[8], y[8], bx[8], by[8];
        if (j < gr) {
            const int f0 = j * 8, el = hb + f0, eh = el + half;
            float cc[8], ss[8], lo[8], hi[8];
            load8(row + el, x);
            load8(row + eh, y);
            if (a.bqkv) { load8(a.bqkv + el, bx); load8(a.bqkv + eh, by); }
            else {
#pragma unroll
                for (int k = 0; k < 8; k++) bx[k] = by[k] = 0.f;
            }
#pragma unroll
            for (int k = 0; k < 8; k++) { x[k] = x[k] + bx[k]; y[k] = y[k] + by[k]; }
            load8(c + f0, cc);
            load8(s + f0, ss);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                lo[k] = __fmaf_rn(x[k], cc[k], -__fmul_rn(y[k], ss[k]));
                hi[k] = __fmaf_rn(y[k], cc[k], __fmul_rn(x[k], ss[k]));
            }
            if (hb < qd) {
                store8(q + el, lo);
                store8(q + eh, hi);
                if (qs) {
                    load8(cz + f0, cc);
                    load8(sz + f0, ss);
#pragma unroll
                    for (int k = 0; k < 8; k++) {
                        lo[k] = __fmaf_rn(x[k], cc[k], -__fmul_rn(y[k], ss[k]));
                        hi[k] = __fmaf_rn(y[k], cc[k], __fmul_rn(x[k], ss[k]));
                    }
                    store8(qs + el, lo);
                    store8(qs + eh, hi);
                }
            } else {
                store8(kdst + (el - qd), lo);
                store8(kdst + (eh - qd), hi);
            }
        } else {
            const int e = hb + 2 * half + (j - gr) * 8;
            load8(row + e, x);
            if (a.bqkv) load8(a.bqkv + e, bx);
            else {
#pragma unroll
                for (int k = 0; k < 8; k++) bx[k] = 0.f;
            }
#pragma unroll
            for (int k = 0; k < 8; k++) x[k] = x[k] + bx[k];
            if (hb < qd) {
                store8(q + e, x);
                if (qs) store8(qs + e, x);
            } else store8(kdst + (e - qd), x);
        }
    }
    for (int e = threadIdx.x * 8; e < kvd; e += blockDim.x * 8) {
        float x[8], bx[8];
        load8(row + qd + kvd + e, x);
        if (a.bqkv) load8(a.bqkv + qd + kvd + e, bx);
        else {
#pragma unroll
            for (int k = 0; k < 8; k++) bx[k] = 0.f;
        }
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = x[k] + bx[k];
        store8(vdst + e, x);
    }
}

void k_rope_store(int dt, const RopeArgs *a, cudaStream_t st) {
    if (a->n <= 0) return;
    /* the page pointers are cudaMalloc'd, and slot * kvd elements of T from them is 16-byte
     * aligned once hd % 8 == 0; sinks: S * kvd elements per layer, the same */
    const int vec = !cu_ew_scalar && a->hd % 8 == 0 && a->half % 8 == 0 && a->ldqkv % 8 == 0 && al16(a->qkv) && al16(a->q) &&
                    (!a->qs || al16(a->qs)) && (!a->bqkv || al16(a->bqkv)) && (a->half == 0 || (al16(a->cs) && al16(a->cs_sink))) &&
                    (!a->sk || (al16(a->sk) && al16(a->sv)));
    if (vec) DISPATCH_T(dt, rope_vec_kernel<T><<<a->n, 256, 0, st>>>(*a));
    else DISPATCH_T(dt, rope_store_kernel<T><<<a->n, 256, 0, st>>>(*a));
}

/* ---------------------------------------------------------------- RoPE table */

/* cs (n, 2 half) = [cos | sin] of (t0 + i) * inv_freq[f], and cs_sink the same at the sink
 * position (min(t, S + W) when S > 0 and W >= 0), in double and rounded once to float: the
 * values of kvcache.c's rope_table / backend.cu's host_rope_table (the angle a plain IEEE
 * product, __dmul_rn so that no contraction can touch it; CUDA's double cos / sin against
 * glibc's: a float can differ only where the two double results straddle a float rounding
 * boundary, test_kernel_rope_table counts them).  inv_freq travels in the launch's parameters:
 * the grid-constant struct is read in place, no device copy per cache. */
__global__ void rope_table_kernel(const __grid_constant__ RopeTabArgs a) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)a.n * a.half) return;
    const int i = (int)(idx / a.half), f = (int)(idx - (int64_t)i * a.half), half = a.half;
    const int64_t pos = a.t0 + i;
    const double fr = a.inv_freq[f];
    const double ang = __dmul_rn((double)pos, fr);
    const float cv = (float)cos(ang), sv = (float)sin(ang);
    float *o = a.cs + (size_t)i * 2 * half;
    o[f] = cv;
    o[half + f] = sv;
    if (a.cs_sink) {
        const int64_t ps = (a.S > 0 && a.W >= 0 && pos > a.S + a.W) ? a.S + a.W : pos;
        float *z = a.cs_sink + (size_t)i * 2 * half;
        if (ps == pos) { z[f] = cv; z[half + f] = sv; }
        else {
            const double az = __dmul_rn((double)ps, fr);
            z[f] = (float)cos(az);
            z[half + f] = (float)sin(az);
        }
    }
}

int k_rope_table(const RopeTabArgs *a, cudaStream_t st) {
    if (a->half <= 0 || a->half > CU_ROPE_TAB_MAXF) return -1;
    if (a->n <= 0) return 0;
    rope_table_kernel<<<blocks_for((size_t)a->n * a->half, 256), 256, 0, st>>>(*a);
    return 0;
}

/* ---------------------------------------------------------------- decode products */

/* y (NR, out) = x (NR, in) W^T (+ beta y) for the few rows of a decode step: a warp per output,
 * 16-byte loads of W (each weight read once for all NR rows: the product is W's bytes over the
 * memory bandwidth), x read the same way (cached), fp32 sums (8 products a lane per load, then
 * the lanes by shuffles, a fixed order), y in fp32 or in T.  cuBLAS's GEMV-shaped GemmEx reads W
 * at about half the bandwidth (ATTENTION_NOTES.md, "Decode"). */
template <typename T, typename Y, int NR>
__global__ void __launch_bounds__(256) gemv_kernel(const T *__restrict__ x, const T *__restrict__ w, Y *y, int in, int out, float beta) {
    const int lane = threadIdx.x & 31, o = blockIdx.x * 8 + (threadIdx.x >> 5);
    if (o >= out) return;
    const T *wr = w + (size_t)o * in;
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.f;
#pragma unroll 4
    for (int k = lane * 8; k < in; k += 256) {
        const uint4 wv = __ldg((const uint4 *)(wr + k));
        const T *we = (const T *)&wv;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            const uint4 xv = __ldg((const uint4 *)(x + (size_t)r * in + k));
            const T *xe = (const T *)&xv;
            float s = 0.f;
#pragma unroll
            for (int j = 0; j < 8; j++) s = fmaf(to_f(we[j]), to_f(xe[j]), s);
            acc[r] += s;
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
#pragma unroll
        for (int off = 16; off; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    }
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < NR; r++) {
            Y *yo = y + (size_t)r * out + o;
            *yo = from_f<Y>(beta != 0.f ? acc[r] + beta * to_f(*yo) : acc[r]);
        }
    }
}

template <typename T, typename Y>
static void gemv_rows(const T *x, const T *w, Y *y, int n, int in, int out, float beta, cudaStream_t st) {
    const unsigned blocks = blocks_for((size_t)out, 8);
    switch (n) {
    case 1: gemv_kernel<T, Y, 1><<<blocks, 256, 0, st>>>(x, w, y, in, out, beta); break;
    case 2: gemv_kernel<T, Y, 2><<<blocks, 256, 0, st>>>(x, w, y, in, out, beta); break;
    case 3: gemv_kernel<T, Y, 3><<<blocks, 256, 0, st>>>(x, w, y, in, out, beta); break;
    default: gemv_kernel<T, Y, 4><<<blocks, 256, 0, st>>>(x, w, y, in, out, beta); break;
    }
}

int k_gemv(int dt, const void *x, const void *w, void *y, int yt, int n, int in, int out, float beta, cudaStream_t st) {
    if (dt == DT_F32 || n < 1 || n > CU_GEMV_ROWS || in % 8 || ((uintptr_t)x | (uintptr_t)w) % 16) return 1;
    if (dt == DT_BF16) {
        typedef __nv_bfloat16 T;
        if (yt == DT_F32) gemv_rows<T, float>((const T *)x, (const T *)w, (float *)y, n, in, out, beta, st);
        else gemv_rows<T, T>((const T *)x, (const T *)w, (T *)y, n, in, out, beta, st);
    } else {
        typedef __half T;
        if (yt == DT_F32) gemv_rows<T, float>((const T *)x, (const T *)w, (float *)y, n, in, out, beta, st);
        else gemv_rows<T, T>((const T *)x, (const T *)w, (T *)y, n, in, out, beta, st);
    }
    return 0;
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
