/*
 * attention.cu — one flash-style attention kernel for every cache policy of SPEC §2, over a
 * chunk of queries at once, with no T x T score matrix: each block of queries streams key tiles
 * through shared memory and keeps an online softmax (running max m, sum l, output O).
 *
 * The keys a query block may need come in two phases, each a contiguous range of positions:
 *   1. sinks   0 .. min(S, t_last + 1) - 1, stored in their own slots, scored with the query
 *              rotated at the sink position min(t, S+W) (kvcache.h explains why);
 *   2. recent  lo .. t_last with lo = max(S, t_first - W) (S if unbounded), slot p - S (mod R
 *              for a ring), scored with the query rotated at t.
 * The chunk's own keys were stored before the kernel runs (the ring has W + CU_ROWS_MAX slots,
 * so no key still needed is overwritten).  A key p is visible to query t when p <= t and, in
 * phase 2, p >= t - W; under s2 the visibility is LongLoRA's group mask instead (whole input,
 * rolled for heads h >= H/2), exactly kvcache.c's s2_visible.
 *
 * Two instantiations: bf16/fp16 with head_dim in {16, 32, 64, 128} run on tensor cores
 * (mma.sync m16n8k16, fp32 accumulation; P rounded to the storage type for the PV product, as
 * flash attention does); fp32 (the 1e-3 test mode) and other head sizes use a scalar kernel
 * with the same phases and masks, one warp per query row.
 */
#include "engine/cuda/cuda_internal.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* visibility of key position p to the query at t in phase `ph` (0 sinks, 1 recent) */
__device__ __forceinline__ bool attn_visible(const AttnArgs &a, int h, int64_t t, int64_t p, int ph) {
    if (p > t && a.s2_group == 0) return false;
    if (ph == 0) return true;
    if (a.s2_group > 0) {
        int64_t G = a.s2_group, T = a.s2_total;
        if (a.s2_h0 + h >= a.s2_heads / 2) { /* the model's heads, not this GPU's (--tp) */
            t = ((t - G / 2) % T + T) % T;
            p = ((p - G / 2) % T + T) % T;
        }
        return p <= t && p / G == t / G;
    }
    return a.W < 0 || p >= t - a.W;
}

/* key range of phase ph for queries [ta, tb]: [lo, hi], empty if hi < lo */
__device__ __forceinline__ void attn_range(const AttnArgs &a, int64_t ta, int64_t tb, int ph, int64_t *lo, int64_t *hi) {
    if (ph == 0) {
        *lo = 0;
        *hi = (a.S < tb + 1 ? a.S : tb + 1) - 1;
    } else if (a.s2_group > 0) {
        *lo = 0;
        *hi = a.s2_total - 1;
    } else {
        int64_t l = a.W < 0 ? a.S : ta - a.W;
        *lo = l > a.S ? l : a.S;
        *hi = tb;
    }
}

template <typename T>
__device__ __forceinline__ const T *key_row(const AttnArgs &a, int ph, int64_t p, int g, bool val) {
    const int kvd = a.KV * a.hd;
    if (ph == 0) return (const T *)(val ? a.sv : a.sk) + (size_t)p * kvd + (size_t)g * a.hd;
    int64_t slot = p - a.S;
    if (a.R) slot %= a.R;
    const T *page = (const T *)(val ? a.vp : a.kp)[slot >> CU_PAGE_SHIFT];
    return page + (size_t)(slot & (CU_PAGE - 1)) * kvd + (size_t)g * a.hd;
}

/* ---------------------------------------------------------------- scalar kernel */

/* One warp per (query row, head); lane d holds dims d, d + 32, ... of q and O. */
template <typename T>
__global__ void attn_scalar_kernel(AttnArgs a) {
    constexpr int MAXD = 8; /* head_dim <= 256 */
    const int lane = threadIdx.x & 31, i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), h = blockIdx.y;
    if (i >= a.n) return;
    const int g = h / (a.H / a.KV), qd = a.H * a.hd;
    const int64_t t = a.t0 + i;
    float o[MAXD] = {0}, m = -INFINITY, l = 0;
    for (int ph = 0; ph < 2; ph++) {
        int64_t lo, hi;
        attn_range(a, t, t, ph, &lo, &hi);
        const T *q = (const T *)(ph == 0 ? a.qs : a.q) + (size_t)i * qd + (size_t)h * a.hd;
        float qv[MAXD];
        for (int k = 0; k < MAXD; k++) qv[k] = lane + 32 * k < a.hd ? to_f(q[lane + 32 * k]) : 0.f;
        for (int64_t p = lo; p <= hi; p++) {
            if (!attn_visible(a, h, t, p, ph)) continue;
            const T *kr = key_row<T>(a, ph, p, g, false), *vr = key_row<T>(a, ph, p, g, true);
            float s = 0;
            for (int k = 0; k < MAXD; k++) if (lane + 32 * k < a.hd) s += qv[k] * to_f(kr[lane + 32 * k]);
            for (int off = 16; off; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
            s *= a.scale;
            float mn = fmaxf(m, s), corr = expf(m - mn), e = expf(s - mn);
            l = l * corr + e;
            for (int k = 0; k < MAXD; k++) if (lane + 32 * k < a.hd) o[k] = o[k] * corr + e * to_f(vr[lane + 32 * k]);
            m = mn;
        }
    }
    T *out = (T *)a.out + (size_t)i * qd + (size_t)h * a.hd;
    float inv = l > 0 ? 1.f / l : 0.f;
    for (int k = 0; k < MAXD; k++) if (lane + 32 * k < a.hd) out[lane + 32 * k] = from_f<T>(o[k] * inv);
}

/* ---------------------------------------------------------------- tensor-core kernel */

template <typename T> struct MmaOp;
template <> struct MmaOp<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
        return *(uint32_t *)&v;
    }
};
template <> struct MmaOp<__half> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __half2 v = __floats2half2_rn(x, y);
        return *(uint32_t *)&v;
    }
};

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t *r, const void *smem) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t *r, const void *smem) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

#define MMA_WARPS 8
#define MMA_BQ (16 * MMA_WARPS) /* queries per block */
#define MMA_BK 64               /* keys per tile */

/* Block: MMA_BQ queries of one head; warp w owns rows 16w .. 16w+15.  Fragment layouts are
 * those of mma.m16n8k16: a thread holds rows r = lane/4 and r + 8, columns 2 (lane%4) + {0,1}
 * (+8). */
template <typename T, int HD>
__global__ void __launch_bounds__(32 * MMA_WARPS) attn_mma_kernel(AttnArgs a) {
    constexpr int KP = HD + 8; /* padded row: conflict-free fragment loads */
    __shared__ __align__(16) T sK[MMA_BK][KP];
    __shared__ __align__(16) T sV[MMA_BK][KP];
    __shared__ int64_t sPos[MMA_BK];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, quad = lane & 3, r8 = lane >> 2;
    const int h = blockIdx.y, g = h / (a.H / a.KV), qd = a.H * HD;
    const int i0 = blockIdx.x * MMA_BQ;
    const int ilast = (i0 + MMA_BQ < a.n ? i0 + MMA_BQ : a.n) - 1;
    const int ra = i0 + warp * 16 + r8, rb = ra + 8; /* this thread's two rows */
    const int64_t ta = a.t0 + ra, tb = a.t0 + rb;
    const float sl2 = a.scale * 1.4426950408889634f; /* scores in log2 units */

    float o[HD / 8][4];
    for (int d = 0; d < HD / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float ma = -INFINITY, mb = -INFINITY, la = 0.f, lb = 0.f;

    for (int ph = 0; ph < 2; ph++) {
        int64_t lo, hi;
        attn_range(a, a.t0 + i0, a.t0 + ilast, ph, &lo, &hi);
        if (hi < lo) continue;
        /* this warp's query fragments for the phase */
        uint32_t qf[HD / 16][4];
        {
            const T *qb = (const T *)(ph == 0 ? a.qs : a.q) + (size_t)h * HD;
            for (int ks = 0; ks < HD / 16; ks++) {
                int c = ks * 16 + quad * 2;
                qf[ks][0] = ra < a.n ? *(const uint32_t *)(qb + (size_t)ra * qd + c) : 0u;
                qf[ks][1] = rb < a.n ? *(const uint32_t *)(qb + (size_t)rb * qd + c) : 0u;
                qf[ks][2] = ra < a.n ? *(const uint32_t *)(qb + (size_t)ra * qd + c + 8) : 0u;
                qf[ks][3] = rb < a.n ? *(const uint32_t *)(qb + (size_t)rb * qd + c + 8) : 0u;
            }
        }
        for (int64_t kb = lo; kb <= hi; kb += MMA_BK) {
            __syncthreads();
            constexpr int VEC = HD / 8; /* 16-byte vectors per key row */
            for (int idx = tid; idx < MMA_BK * VEC; idx += 32 * MMA_WARPS) {
                int key = idx / VEC, c = (idx % VEC) * 8;
                int64_t p = kb + key;
                uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
                if (p <= hi) {
                    kv = *(const uint4 *)(key_row<T>(a, ph, p, g, false) + c);
                    vv = *(const uint4 *)(key_row<T>(a, ph, p, g, true) + c);
                }
                *(uint4 *)&sK[key][c] = kv;
                *(uint4 *)&sV[key][c] = vv;
                if (c == 0) sPos[key] = p <= hi ? p : INT64_MAX;
            }
            __syncthreads();
            /* S = Q K^T: MMA_BK / 8 tiles of 16 x 8 */
            float s[MMA_BK / 8][4];
            for (int nt = 0; nt < MMA_BK / 8; nt++) {
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
                for (int ks = 0; ks < HD / 16; ks++) {
                    const T *kr = &sK[nt * 8 + r8][ks * 16 + quad * 2];
                    MmaOp<T>::run(s[nt], qf[ks], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
                }
            }
            /* mask, row max */
            float mxa = -INFINITY, mxb = -INFINITY;
            for (int nt = 0; nt < MMA_BK / 8; nt++)
                for (int e = 0; e < 4; e++) {
                    int64_t p = sPos[nt * 8 + quad * 2 + (e & 1)];
                    bool rowa = e < 2;
                    bool vis = p != INT64_MAX && (rowa ? ra : rb) < a.n && attn_visible(a, h, rowa ? ta : tb, p, ph);
                    float v = vis ? s[nt][e] * sl2 : -INFINITY;
                    s[nt][e] = v;
                    if (rowa) mxa = fmaxf(mxa, v); else mxb = fmaxf(mxb, v);
                }
            for (int off = 1; off < 4; off <<= 1) {
                mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, off));
                mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, off));
            }
            float na = fmaxf(ma, mxa), nb = fmaxf(mb, mxb);
            /* a row with nothing visible yet keeps m = -inf: subtract 0 instead */
            float ba = na == -INFINITY ? 0.f : na, bb = nb == -INFINITY ? 0.f : nb;
            float ca = exp2f(ma - ba), cb = exp2f(mb - bb);
            ma = na; mb = nb;
            la *= ca; lb *= cb;
            for (int d = 0; d < HD / 8; d++) { o[d][0] *= ca; o[d][1] *= ca; o[d][2] *= cb; o[d][3] *= cb; }
            uint32_t pf[MMA_BK / 16][4];
            for (int nt = 0; nt < MMA_BK / 8; nt++) {
                float p0 = exp2f(s[nt][0] - ba), p1 = exp2f(s[nt][1] - ba);
                float p2 = exp2f(s[nt][2] - bb), p3 = exp2f(s[nt][3] - bb);
                la += p0 + p1; lb += p2 + p3;
                pf[nt >> 1][(nt & 1) * 2 + 0] = MmaOp<T>::pack(p0, p1);
                pf[nt >> 1][(nt & 1) * 2 + 1] = MmaOp<T>::pack(p2, p3);
            }
            /* O += P V; B fragments of V by ldmatrix.trans: lane l addresses row (l & 7) of
             * matrix l >> 3 = (key half, dim tile) */
            for (int j = 0; j < MMA_BK / 16; j++) {
                for (int d = 0; d < HD / 8; d += 2) {
                    int mi = lane >> 3;
                    const T *src = &sV[j * 16 + (mi & 1) * 8 + (lane & 7)][(d + (mi >> 1)) * 8];
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, src);
                    MmaOp<T>::run(o[d], pf[j], b[0], b[1]);
                    MmaOp<T>::run(o[d + 1], pf[j], b[2], b[3]);
                }
            }
        }
    }
    for (int off = 1; off < 4; off <<= 1) {
        la += __shfl_xor_sync(0xffffffffu, la, off);
        lb += __shfl_xor_sync(0xffffffffu, lb, off);
    }
    float ia = la > 0 ? 1.f / la : 0.f, ib = lb > 0 ? 1.f / lb : 0.f;
    T *out = (T *)a.out + (size_t)h * HD;
    for (int d = 0; d < HD / 8; d++) {
        int c = d * 8 + quad * 2;
        if (ra < a.n) *(uint32_t *)(out + (size_t)ra * qd + c) = MmaOp<T>::pack(o[d][0] * ia, o[d][1] * ia);
        if (rb < a.n) *(uint32_t *)(out + (size_t)rb * qd + c) = MmaOp<T>::pack(o[d][2] * ib, o[d][3] * ib);
    }
}


/* The same kernel with the key tiles double-buffered through cp.async: tile i+1 is in flight
 * while tile i is scored.  Both phases form one sequence of tiles; the query fragments are
 * reloaded when the phase changes.  Shared memory: 2 stages of K and V (dynamic). */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

template <typename T, int HD>
__global__ void __launch_bounds__(32 * MMA_WARPS) attn_pipe_kernel(AttnArgs a) {
    constexpr int KP = HD + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T (*sK)[MMA_BK][KP] = (T (*)[MMA_BK][KP])smem_raw;                 /* [2][BK][KP] */
    T (*sV)[MMA_BK][KP] = (T (*)[MMA_BK][KP])(smem_raw + 2 * MMA_BK * KP * sizeof(T));
    int64_t (*sPos)[MMA_BK] = (int64_t (*)[MMA_BK])(smem_raw + 4 * MMA_BK * KP * sizeof(T));
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, quad = lane & 3, r8 = lane >> 2;
    const int h = blockIdx.y, g = h / (a.H / a.KV), qd = a.H * HD;
    const int i0 = blockIdx.x * MMA_BQ;
    const int ilast = (i0 + MMA_BQ < a.n ? i0 + MMA_BQ : a.n) - 1;
    const int ra = i0 + warp * 16 + r8, rb = ra + 8;
    const int64_t ta = a.t0 + ra, tb = a.t0 + rb;
    const float sl2 = a.scale * 1.4426950408889634f;
    int64_t lo[2], hi[2], nt_ph[2];
    for (int ph = 0; ph < 2; ph++) {
        attn_range(a, a.t0 + i0, a.t0 + ilast, ph, &lo[ph], &hi[ph]);
        nt_ph[ph] = hi[ph] < lo[ph] ? 0 : (hi[ph] - lo[ph]) / MMA_BK + 1;
    }
    const int64_t ntiles = nt_ph[0] + nt_ph[1];
    auto load_tile = [&](int64_t it, int buf) {
        int ph = it < nt_ph[0] ? 0 : 1;
        int64_t kb = lo[ph] + (ph ? it - nt_ph[0] : it) * MMA_BK;
        constexpr int VEC = HD / 8;
        for (int idx = tid; idx < MMA_BK * VEC; idx += 32 * MMA_WARPS) {
            int key = idx / VEC, c = (idx % VEC) * 8;
            int64_t p = kb + key;
            if (p <= hi[ph]) {
                cp_async16(&sK[buf][key][c], key_row<T>(a, ph, p, g, false) + c);
                cp_async16(&sV[buf][key][c], key_row<T>(a, ph, p, g, true) + c);
            } else {
                *(uint4 *)&sK[buf][key][c] = make_uint4(0, 0, 0, 0);
                *(uint4 *)&sV[buf][key][c] = make_uint4(0, 0, 0, 0);
            }
            if (c == 0) sPos[buf][key] = p <= hi[ph] ? p : INT64_MAX;
        }
        cp_async_commit();
    };

    float o[HD / 8][4];
    for (int d = 0; d < HD / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float ma = -INFINITY, mb = -INFINITY, la = 0.f, lb = 0.f;
    uint32_t qf[HD / 16][4];
    int cur_ph = -1;
    if (ntiles > 0) load_tile(0, 0);
    for (int64_t it = 0; it < ntiles; it++) {
        const int buf = it & 1, ph = it < nt_ph[0] ? 0 : 1;
        if (it + 1 < ntiles) load_tile(it + 1, buf ^ 1); else cp_async_commit();
        if (ph != cur_ph) {
            cur_ph = ph;
            const T *qb = (const T *)(ph == 0 ? a.qs : a.q) + (size_t)h * HD;
            for (int ks = 0; ks < HD / 16; ks++) {
                int c = ks * 16 + quad * 2;
                qf[ks][0] = ra < a.n ? *(const uint32_t *)(qb + (size_t)ra * qd + c) : 0u;
                qf[ks][1] = rb < a.n ? *(const uint32_t *)(qb + (size_t)rb * qd + c) : 0u;
                qf[ks][2] = ra < a.n ? *(const uint32_t *)(qb + (size_t)ra * qd + c + 8) : 0u;
                qf[ks][3] = rb < a.n ? *(const uint32_t *)(qb + (size_t)rb * qd + c + 8) : 0u;
            }
        }
        cp_async_wait<1>();
        __syncthreads();
        float s[MMA_BK / 8][4];
        for (int nt = 0; nt < MMA_BK / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        /* K fragments by ldmatrix (no transpose): lane l addresses key row (l & 7) of matrix
         * l >> 3 = (dim half, k-step pair) */
        if constexpr (HD >= 32) {
            for (int nt = 0; nt < MMA_BK / 8; nt++)
                for (int ks = 0; ks < HD / 16; ks += 2) {
                    int mi = lane >> 3;
                    uint32_t b[4];
                    ldmatrix_x4(b, &sK[buf][nt * 8 + (lane & 7)][(ks + (mi >> 1)) * 16 + (mi & 1) * 8]);
                    MmaOp<T>::run(s[nt], qf[ks], b[0], b[1]);
                    MmaOp<T>::run(s[nt], qf[ks + 1], b[2], b[3]);
                }
        } else {
            for (int nt = 0; nt < MMA_BK / 8; nt++) {
                const T *kr = &sK[buf][nt * 8 + r8][quad * 2];
                MmaOp<T>::run(s[nt], qf[0], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        }
        /* a tile every row of the block sees whole needs no mask (most tiles of a long window) */
        const int64_t kb = sPos[buf][0], klast = kb + MMA_BK - 1;
        const bool full = a.s2_group == 0 && klast <= hi[ph] && klast <= a.t0 + i0 &&
                          (ph == 0 || a.W < 0 || kb >= a.t0 + ilast - a.W);
        float mxa = -INFINITY, mxb = -INFINITY;
        if (full) {
            for (int nt = 0; nt < MMA_BK / 8; nt++) {
                s[nt][0] *= sl2; s[nt][1] *= sl2; s[nt][2] *= sl2; s[nt][3] *= sl2;
                mxa = fmaxf(mxa, fmaxf(s[nt][0], s[nt][1]));
                mxb = fmaxf(mxb, fmaxf(s[nt][2], s[nt][3]));
            }
        } else
        for (int nt = 0; nt < MMA_BK / 8; nt++)
            for (int e = 0; e < 4; e++) {
                int64_t p = sPos[buf][nt * 8 + quad * 2 + (e & 1)];
                bool rowa = e < 2;
                bool vis = p != INT64_MAX && (rowa ? ra : rb) < a.n && attn_visible(a, h, rowa ? ta : tb, p, ph);
                float v = vis ? s[nt][e] * sl2 : -INFINITY;
                s[nt][e] = v;
                if (rowa) mxa = fmaxf(mxa, v); else mxb = fmaxf(mxb, v);
            }
        for (int off = 1; off < 4; off <<= 1) {
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, off));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, off));
        }
        float na = fmaxf(ma, mxa), nb = fmaxf(mb, mxb);
        float ba = na == -INFINITY ? 0.f : na, bb = nb == -INFINITY ? 0.f : nb;
        float ca = exp2f(ma - ba), cb = exp2f(mb - bb);
        ma = na; mb = nb;
        la *= ca; lb *= cb;
        for (int d = 0; d < HD / 8; d++) { o[d][0] *= ca; o[d][1] *= ca; o[d][2] *= cb; o[d][3] *= cb; }
        uint32_t pf[MMA_BK / 16][4];
        for (int nt = 0; nt < MMA_BK / 8; nt++) {
            float p0 = exp2f(s[nt][0] - ba), p1 = exp2f(s[nt][1] - ba);
            float p2 = exp2f(s[nt][2] - bb), p3 = exp2f(s[nt][3] - bb);
            la += p0 + p1; lb += p2 + p3;
            pf[nt >> 1][(nt & 1) * 2 + 0] = MmaOp<T>::pack(p0, p1);
            pf[nt >> 1][(nt & 1) * 2 + 1] = MmaOp<T>::pack(p2, p3);
        }
        for (int j = 0; j < MMA_BK / 16; j++)
            for (int d = 0; d < HD / 8; d += 2) {
                int mi = lane >> 3;
                uint32_t b[4];
                ldmatrix_x4_trans(b, &sV[buf][j * 16 + (mi & 1) * 8 + (lane & 7)][(d + (mi >> 1)) * 8]);
                MmaOp<T>::run(o[d], pf[j], b[0], b[1]);
                MmaOp<T>::run(o[d + 1], pf[j], b[2], b[3]);
            }
        __syncthreads(); /* buf is refilled by the next iteration's prefetch */
    }
    cp_async_wait<0>();
    for (int off = 1; off < 4; off <<= 1) {
        la += __shfl_xor_sync(0xffffffffu, la, off);
        lb += __shfl_xor_sync(0xffffffffu, lb, off);
    }
    float ia = la > 0 ? 1.f / la : 0.f, ib = lb > 0 ? 1.f / lb : 0.f;
    T *out = (T *)a.out + (size_t)h * HD;
    for (int d = 0; d < HD / 8; d++) {
        int c = d * 8 + quad * 2;
        if (ra < a.n) *(uint32_t *)(out + (size_t)ra * qd + c) = MmaOp<T>::pack(o[d][0] * ia, o[d][1] * ia);
        if (rb < a.n) *(uint32_t *)(out + (size_t)rb * qd + c) = MmaOp<T>::pack(o[d][2] * ib, o[d][3] * ib);
    }
}

int cu_attention_variant = -1; /* 0 scalar, 1 tensor cores, 2 tensor cores + cp.async; -1: LCB_CUDA_ATTN or 2 */

template <typename T, int HD>
static void launch_pipe_hd(const AttnArgs *a, dim3 grid, cudaStream_t st) {
    size_t smem = 4 * MMA_BK * (HD + 8) * sizeof(T) + 2 * MMA_BK * sizeof(int64_t);
    static bool attr_set = false;
    if (!attr_set) {
        cudaFuncSetAttribute(attn_pipe_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        attr_set = true;
    }
    attn_pipe_kernel<T, HD><<<grid, 32 * MMA_WARPS, smem, st>>>(*a);
}

template <typename T>
static bool launch_pipe(const AttnArgs *a, cudaStream_t st) {
    dim3 grid((a->n + MMA_BQ - 1) / MMA_BQ, a->H);
    switch (a->hd) {
    case 16: launch_pipe_hd<T, 16>(a, grid, st); return true;
    case 32: launch_pipe_hd<T, 32>(a, grid, st); return true;
    case 64: launch_pipe_hd<T, 64>(a, grid, st); return true;
    case 128: launch_pipe_hd<T, 128>(a, grid, st); return true;
    }
    return false;
}

template <typename T>
static bool launch_mma(const AttnArgs *a, cudaStream_t st) {
    dim3 grid((a->n + MMA_BQ - 1) / MMA_BQ, a->H);
    switch (a->hd) {
    case 16: attn_mma_kernel<T, 16><<<grid, 32 * MMA_WARPS, 0, st>>>(*a); return true;
    case 32: attn_mma_kernel<T, 32><<<grid, 32 * MMA_WARPS, 0, st>>>(*a); return true;
    case 64: attn_mma_kernel<T, 64><<<grid, 32 * MMA_WARPS, 0, st>>>(*a); return true;
    case 128: attn_mma_kernel<T, 128><<<grid, 32 * MMA_WARPS, 0, st>>>(*a); return true;
    }
    return false;
}

int cu_attention(int dt, const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    if (a->hd > 256) return lcb_fail(err, errlen, "CUDA attention: head_dim %d > 256 is not supported", a->hd);
    if (cu_attention_variant < 0) {
        const char *v = getenv("LCB_CUDA_ATTN");
        cu_attention_variant = v && !strcmp(v, "scalar") ? 0 : v && !strcmp(v, "mma") ? 1 : 2;
    }
    bool done = false;
    if (cu_attention_variant == 1) {
        if (dt == DT_BF16) done = launch_mma<__nv_bfloat16>(a, st);
        else if (dt == DT_F16) done = launch_mma<__half>(a, st);
    } else if (cu_attention_variant == 2) {
        if (dt == DT_BF16) done = launch_pipe<__nv_bfloat16>(a, st);
        else if (dt == DT_F16) done = launch_pipe<__half>(a, st);
    }
    if (!done) {
        dim3 grid((a->n + 3) / 4, a->H);
        if (dt == DT_F32) attn_scalar_kernel<float><<<grid, 128, 0, st>>>(*a);
        else if (dt == DT_BF16) attn_scalar_kernel<__nv_bfloat16><<<grid, 128, 0, st>>>(*a);
        else attn_scalar_kernel<__half><<<grid, 128, 0, st>>>(*a);
    }
    CU_LAUNCHED();
    return 0;
}
