/*
 * attention.cu — the attention of every cache policy of SPEC §2 (dense, window, sink with its two
 * rotations, a model's own sliding window, s2) over a chunk of queries at once: a flash-attention
 * forward (online softmax, no T x T score matrix) that reads the KV cache where it lies.
 *
 * The keys a query may see come in two phases, each a contiguous range of positions:
 *   1. sinks   0 .. min(S, t + 1) - 1, in their own slots, scored with the query rotated at the
 *              sink position min(t, S+W) (a.qs; kvcache.h explains why);
 *   2. recent  max(S, t - W) .. t (S .. t if unbounded), slot p - S (mod R for a ring), scored
 *              with the query rotated at t (a.q).
 * The chunk's own keys were stored before the kernel runs (the ring has W + CU_ROWS_MAX slots, so
 * no key still needed is overwritten).  Under s2 the visibility is LongLoRA's group mask instead
 * (whole input, rolled for the model's heads h >= H/2), exactly kvcache.c's s2_visible.
 *
 * Three kernels:
 *   attn_ws_kernel     bf16/fp16, head_dim 64 or 128, sm_90a (Hopper): attn_wgmma_kernel's
 *                      arithmetic with a producer warpgroup filling a ring of shared-memory
 *                      stages (mbarriers) and two consumer warpgroups that never wait for each
 *                      other (FlashAttention-3's warp specialization, optional ping-pong); the
 *                      default for chunked prefill (from 1,024 rows per KV head).
 *   attn_wgmma_kernel  bf16/fp16, head_dim 64 or 128, sm_90a: the flash kernel's rows, phases,
 *                      masks and softmax on warpgroup MMA (wgmma) with the key and value tiles
 *                      read by the tensor cores from swizzled shared memory, every warpgroup
 *                      loading and one block barrier per tile.
 *   attn_flash_kernel  bf16/fp16, head_dim 16, 32, 64 or 128: FlashAttention-2 on tensor cores
 *                      (mma.sync m16n8k16, fp32 accumulation, P rounded to the storage type for
 *                      the PV product as flash attention does).  A block holds 16 NW MT rows, a
 *                      row being one (query, head) pair of the H/KV query heads that share KV
 *                      head blockIdx.y (GQA: each key tile is loaded once for all of them); each
 *                      warp owns MT m-tiles of 16 rows.  Key tiles of 64 rows stream through
 *                      STAGES shared-memory buffers by cp.async, one barrier per tile; a warp
 *                      skips tiles none of its rows sees and masks only tiles some row sees in
 *                      part (int32 column bounds per row; under s2 too: a row's keys are one
 *                      interval of virtual positions, s2_lo).
 *   attn_scalar_kernel fp32 (the 1e-3 test mode), other head sizes up to 256: one warp per
 *                      (query, head), the same phases and masks, one key at a time.
 * tests/test_cuda.c checks them all, every configuration, against a CPU twin in double.
 */
#include "engine/cuda/cuda_internal.cuh"
#include "engine/cuda/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- shared helpers */

/* s2: is key p visible to the query at t for head h (this GPU's index) */
__device__ __forceinline__ bool s2_visible(const AttnArgs &a, int h, int64_t t, int64_t p) {
    const int64_t G = a.s2_group, T = a.s2_total;
    if (a.s2_h0 + h >= a.s2_heads / 2) { /* the model's heads, not this GPU's (--tp) */
        t = ((t - G / 2) % T + T) % T;
        p = ((p - G / 2) % T + T) % T;
    }
    return p <= t && p / G == t / G;
}

/* keys of phase ph (0 sinks, 1 recent) visible to the query at t, outside s2: [*lo, *hi] */
__device__ __forceinline__ void attn_row_range(const AttnArgs &a, int64_t t, int ph, int64_t *lo, int64_t *hi) {
    if (ph == 0) {
        *lo = 0;
        *hi = (a.S - 1 < t ? a.S - 1 : t);
    } else if (a.s2_group > 0) {
        *lo = 0;
        *hi = a.s2_total - 1;
    } else {
        int64_t l = a.W < 0 ? a.S : t - a.W;
        *lo = l > a.S ? l : a.S;
        *hi = t;
    }
}

/* recent slot of position p >= S */
__device__ __forceinline__ int64_t attn_slot(const AttnArgs &a, int64_t p) {
    int64_t s = p - a.S;
    return a.R ? s % a.R : s;
}

/* s2 in the flash kernel: the keys the query at t of head h sees, as one interval [*lo, *hi] of
 * "virtual" positions v in [h2 - G, T - 1] (h2 = G / 2), key v < 0 being position v + T.
 * s2_visible above, solved for p: heads < H/2 see their group, G (t / G) .. t; the rolled heads
 * see G ((t - h2) / G) + h2 .. t for t >= h2, and for t < h2 the last group rolled round,
 * T - (G - h2) .. T - 1 then 0 .. t, i.e. h2 - G .. t.  lo never decreases with t (per kind). */
__device__ __forceinline__ int64_t s2_lo(const AttnArgs &a, bool rolled, int64_t t) {
    const int64_t G = a.s2_group, h2 = G / 2;
    if (!rolled) return G * (t / G);
    return t >= h2 ? G * ((t - h2) / G) + h2 : h2 - G;
}
__device__ __forceinline__ bool s2_rolled(const AttnArgs &a, int h) { return a.s2_h0 + h >= a.s2_heads / 2; }

/* ---------------------------------------------------------------- scalar kernel */

/* One warp per (query row, head); lane d holds dims d, d + 32, ... of q and O. */
template <typename T>
__global__ void attn_scalar_kernel(AttnArgs a) {
    constexpr int MAXD = 8; /* head_dim <= 256 */
    const int lane = threadIdx.x & 31, i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), h = blockIdx.y;
    if (i >= a.n) return;
    const int g = h / (a.H / a.KV), qd = a.H * a.hd, kvd = a.KV * a.hd;
    const int64_t t = a.t0 + i;
    float o[MAXD] = {0}, m = -INFINITY, l = 0;
    for (int ph = 0; ph < 2; ph++) {
        int64_t lo, hi;
        attn_row_range(a, t, ph, &lo, &hi);
        const T *q = (const T *)(ph == 0 ? a.qs : a.q) + (size_t)i * qd + (size_t)h * a.hd;
        float qv[MAXD];
        for (int k = 0; k < MAXD; k++) qv[k] = lane + 32 * k < a.hd ? to_f(q[lane + 32 * k]) : 0.f;
        for (int64_t p = lo; p <= hi; p++) {
            if (a.s2_group > 0 && !s2_visible(a, h, t, p)) continue;
            const T *kr, *vr;
            if (ph == 0) {
                kr = (const T *)a.sk + (size_t)p * kvd + (size_t)g * a.hd;
                vr = (const T *)a.sv + (size_t)p * kvd + (size_t)g * a.hd;
            } else {
                int64_t s = attn_slot(a, p);
                size_t off = (size_t)(s & (CU_PAGE - 1)) * kvd + (size_t)g * a.hd;
                kr = (const T *)a.kp[s >> CU_PAGE_SHIFT] + off;
                vr = (const T *)a.vp[s >> CU_PAGE_SHIFT] + off;
            }
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

/* ---------------------------------------------------------------- tensor-core primitives */

template <typename T> struct MmaOp;
template <> struct MmaOp<__nv_bfloat16> {
    /* d (16x8 fp32) += a (16x16, row) b (16x8, col) */
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y) {
        __nv_bfloat162 v = __floats2bfloat162_rn(x, y); /* x in the low half: the lower column */
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

__device__ __forceinline__ void ldmatrix_x4(uint32_t *r, const void *smem) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t *r, const void *smem) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
/* 2^x on the special-function unit; exact 0 for -inf (masked scores) */
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* ---------------------------------------------------------------- tile kernels' shared steps */

/* The block's key range per phase (0 sinks, 1 recent) for its rows' queries t_first .. t_last of
 * KV head g: the union of their ranges (under s2, from the kinds of head among g's query heads). */
__device__ __forceinline__ void attn_block_ranges(const AttnArgs &a, int g, int Gq, int64_t t_first, int64_t t_last, int64_t *lo0,
                                                  int64_t *hi0, int64_t *lo1, int64_t *hi1) {
    int64_t l, h;
    attn_row_range(a, t_first, 0, lo0, hi0);
    attn_row_range(a, t_last, 0, &l, &h);
    *lo0 = *lo0 < l ? *lo0 : l;
    *hi0 = *hi0 > h ? *hi0 : h;
    if (a.s2_group <= 0) {
        attn_row_range(a, t_first, 1, lo1, hi1);
        attn_row_range(a, t_last, 1, &l, &h);
        *lo1 = *lo1 < l ? *lo1 : l;
        *hi1 = *hi1 > h ? *hi1 : h;
    } else { /* the kinds of head (rolled or not) among KV head g's query heads, at the first query */
        const bool any_plain = !s2_rolled(a, g * Gq), any_rolled = s2_rolled(a, g * Gq + Gq - 1);
        const int64_t lp = any_plain ? s2_lo(a, false, t_first) : INT64_MAX, lr = any_rolled ? s2_lo(a, true, t_first) : INT64_MAX;
        *lo1 = lp < lr ? lp : lr;
        *hi1 = t_last;
    }
}

/* The slot of a tile's first key kb in phase ph; later keys' slots wrap at R (s2: virtual
 * positions v < 0 are v + T; a loaded key's v is at most T - 1, so one wrap is enough there too). */
__device__ __forceinline__ int64_t attn_tile_slot0(const AttnArgs &a, int ph, int64_t kb) {
    return !ph ? 0 : a.s2_group > 0 ? (kb < 0 ? kb + a.s2_total : kb) : attn_slot(a, kb);
}

/* Where key p of phase ph (slot s before its wrap at `wrap`) keeps column col of its key and value rows */
template <typename T>
__device__ __forceinline__ void attn_kv_src(const AttnArgs &a, int ph, int64_t p, int64_t s, int64_t wrap, int col, int kvd,
                                            const T **ks, const T **vs) {
    if (ph == 0) {
        *ks = (const T *)a.sk + (size_t)p * kvd + col;
        *vs = (const T *)a.sv + (size_t)p * kvd + col;
    } else {
        if (wrap && s >= wrap) s -= wrap;
        const size_t off = (size_t)(s & (CU_PAGE - 1)) * kvd + col;
        *ks = (const T *)a.kp[s >> CU_PAGE_SHIFT] + off;
        *vs = (const T *)a.vp[s >> CU_PAGE_SHIFT] + off;
    }
}

/* The A fragments (mma.m16n8k16 layout, see attn_flash_kernel) of rows ra and ra + 8 of phase
 * ph's queries (a.qs for the sinks, a.q for the rest): a row's query index is row / Gq, its
 * head g Gq + row % Gq; rows past the end are zeros. */
template <typename T, int HD>
__device__ __forceinline__ void attn_load_qfrag(const AttnArgs &a, int ph, int ra, int nrows, int Gq, int g, int quad, uint32_t (*qf)[4]) {
    const int qd = a.H * HD, rb = ra + 8;
    const T *qb = (const T *)(ph == 0 ? a.qs : a.q);
    const bool va = ra < nrows, vb = rb < nrows;
    const T *qra = qb + (size_t)(va ? ra / Gq : 0) * qd + (size_t)(g * Gq + (va ? ra % Gq : 0)) * HD;
    const T *qrb = qb + (size_t)(vb ? rb / Gq : 0) * qd + (size_t)(g * Gq + (vb ? rb % Gq : 0)) * HD;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        const int c = ks * 16 + quad * 2;
        qf[ks][0] = va ? *(const uint32_t *)(qra + c) : 0u;
        qf[ks][1] = vb ? *(const uint32_t *)(qrb + c) : 0u;
        qf[ks][2] = va ? *(const uint32_t *)(qra + c + 8) : 0u;
        qf[ks][3] = vb ? *(const uint32_t *)(qrb + c + 8) : 0u;
    }
}

/* Row r's visible keys in phase ph as [*lo, *hi] relative to the phase's first key `base` (a
 * phase spans at most the ring, or the positions of a dense cache: int); rows past the end see
 * everything (zero queries, never written). */
__device__ __forceinline__ void attn_row_bounds(const AttnArgs &a, int ph, int r, int nrows, int Gq, int g, int64_t base, int *lo, int *hi) {
    if (r >= nrows) { *lo = -(1 << 30); *hi = 1 << 30; return; }
    int64_t l, h;
    const int64_t t = a.t0 + r / Gq;
    if (a.s2_group > 0 && ph) { l = s2_lo(a, s2_rolled(a, g * Gq + r % Gq), t); h = t; }
    else attn_row_range(a, t, ph, &l, &h);
    *lo = (int)(l - base);
    *hi = (int)(h - base);
}

/* One score tile of rows a and b (s: NT8 n-tiles of the C layout; cla .. chb their visible
 * columns of the tile, clamped by the comparisons): mask unless `full`, the online softmax
 * (new row max over the quad's 4 threads, l rescaled, P = 2^(s sl2 - m sl2)), and P left in s
 * as packed pairs of T, the A fragments of the PV product.  O is rescaled here unless o is NULL
 * (a product into O still in flight: the caller rescales by *ca, *cb once it has landed). */
template <typename T, int NT8, int D8>
__device__ __forceinline__ void attn_softmax_tile(float (*s)[4], float (*o)[4], bool full, int cla, int cha, int clb, int chb, int quad,
                                                  float sl2, float *ma, float *mb, float *la, float *lb, float *pca = nullptr,
                                                  float *pcb = nullptr) {
    if (!full) {
#pragma unroll
        for (int nt = 0; nt < NT8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = nt * 8 + quad * 2 + (e & 1);
                const bool vis = e < 2 ? (col >= cla && col <= cha) : (col >= clb && col <= chb);
                if (!vis) s[nt][e] = -INFINITY;
            }
    }
    float mxa = *ma, mxb = *mb;
#pragma unroll
    for (int nt = 0; nt < NT8; nt++) {
        mxa = fmaxf(mxa, fmaxf(s[nt][0], s[nt][1]));
        mxb = fmaxf(mxb, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, off));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, off));
    }
    /* a row with nothing visible yet keeps m = -inf: subtract 0 instead */
    const float ba = mxa == -INFINITY ? 0.f : mxa * sl2, bb = mxb == -INFINITY ? 0.f : mxb * sl2;
    const float ca = fast_exp2(fmaf(*ma, sl2, -ba)), cb = fast_exp2(fmaf(*mb, sl2, -bb)); /* 0 when m was -inf */
    *ma = mxa; *mb = mxb;
    float sa = *la * ca, sb = *lb * cb;
    if (o) {
#pragma unroll
        for (int d = 0; d < D8; d++) { o[d][0] *= ca; o[d][1] *= ca; o[d][2] *= cb; o[d][3] *= cb; }
    }
    if (pca) { *pca = ca; *pcb = cb; }
#pragma unroll
    for (int nt = 0; nt < NT8; nt++) {
        const float p0 = fast_exp2(fmaf(s[nt][0], sl2, -ba)), p1 = fast_exp2(fmaf(s[nt][1], sl2, -ba));
        const float p2 = fast_exp2(fmaf(s[nt][2], sl2, -bb)), p3 = fast_exp2(fmaf(s[nt][3], sl2, -bb));
        sa += p0 + p1; sb += p2 + p3;
        s[nt][0] = __uint_as_float(MmaOp<T>::pack(p0, p1));
        s[nt][1] = __uint_as_float(MmaOp<T>::pack(p2, p3));
    }
    *la = sa; *lb = sb;
}

/* rows ra and ra + 8: O / l (l summed over the quad) into a.out */
template <typename T, int HD>
__device__ __forceinline__ void attn_store_rows(const AttnArgs &a, float (*o)[4], float la, float lb, int ra, int nrows, int Gq, int g, int quad) {
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        la += __shfl_xor_sync(0xffffffffu, la, off);
        lb += __shfl_xor_sync(0xffffffffu, lb, off);
    }
    const float inva = la > 0 ? 1.f / la : 0.f, invb = lb > 0 ? 1.f / lb : 0.f;
    const int rb = ra + 8, qd = a.H * HD;
    T *oa = (T *)a.out + (size_t)(ra / Gq) * qd + (size_t)(g * Gq + ra % Gq) * HD;
    T *ob = (T *)a.out + (size_t)(rb / Gq) * qd + (size_t)(g * Gq + rb % Gq) * HD;
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
        const int c = d * 8 + quad * 2;
        if (ra < nrows) *(uint32_t *)(oa + c) = MmaOp<T>::pack(o[d][0] * inva, o[d][1] * inva);
        if (rb < nrows) *(uint32_t *)(ob + c) = MmaOp<T>::pack(o[d][2] * invb, o[d][3] * invb);
    }
}

/* Split over the keys (flash-decoding): rows ra and ra + 8's part blockIdx.z, as
 * a.part[(z n H + i H + h) (HD + 2) ..]: O unnormalised (HD floats), the raw-score max, the sum. */
template <int HD>
__device__ __forceinline__ void attn_store_part(const AttnArgs &a, float (*o)[4], float ma, float mb, float la, float lb, int ra, int nrows,
                                                int Gq, int g, int quad) {
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        la += __shfl_xor_sync(0xffffffffu, la, off);
        lb += __shfl_xor_sync(0xffffffffu, lb, off);
    }
    const int rb = ra + 8;
    const size_t zb = (size_t)blockIdx.z * a.n * a.H;
    float *pa = a.part + (zb + (size_t)(ra / Gq) * a.H + g * Gq + ra % Gq) * (HD + 2);
    float *pb = a.part + (zb + (size_t)(rb / Gq) * a.H + g * Gq + rb % Gq) * (HD + 2);
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
        const int c = d * 8 + quad * 2;
        if (ra < nrows) { pa[c] = o[d][0]; pa[c + 1] = o[d][1]; }
        if (rb < nrows) { pb[c] = o[d][2]; pb[c + 1] = o[d][3]; }
    }
    if (quad == 0 && ra < nrows) { pa[HD] = ma; pa[HD + 1] = la; }
    if (quad == 0 && rb < nrows) { pb[HD] = mb; pb[HD + 1] = lb; }
}

/* The parts of each (query, head) row merged: weights 2^((m_z - M) sl2) against the largest raw
 * max M (0 for a part that saw no key), O = sum w_z O_z / sum w_z l_z.  One block per row, a
 * thread per dim. */
template <typename T>
__global__ void attn_combine_kernel(const float *part, T *out, int rows, int hd, int nz, float sl2) {
    const int r = blockIdx.x, d = threadIdx.x;
    if (d >= hd) return;
    const size_t stride = (size_t)rows * (hd + 2);
    const float *p = part + (size_t)r * (hd + 2);
    float M = -INFINITY;
    for (int z = 0; z < nz; z++) M = fmaxf(M, p[z * stride + hd]);
    float L = 0.f, O = 0.f;
    for (int z = 0; z < nz; z++) {
        const float m = p[z * stride + hd];
        const float w = m == -INFINITY ? 0.f : exp2f((m - M) * sl2);
        L += w * p[z * stride + hd + 1];
        O += w * p[z * stride + d];
    }
    out[(size_t)r * hd + d] = from_f<T>(L > 0 ? O / L : 0.f);
}

/* ---------------------------------------------------------------- flash kernel */

#define FA_BK 64 /* keys per tile */
#define CU_ATTN_PARTS 32 /* the most parts of a split over the keys (attn_split_parts) */

/* Launch configurations of the flash kernel, cu_attention_variant = (warps per block, shared-memory
 * stages, 16-row m-tiles per warp): 1 (8, 2, 1); 2 (4, 2, 1); 3 (8, 3, 1); 4 (4, 2, 2), the
 * default (attn_default_cfg).  A block holds 16 x warps x m-tiles rows.  With one m-tile a warp keeps its query
 * fragments in registers; with two (FlashAttention-2's 128 x 64 tile on 4 warps) each K/V
 * fragment read from shared memory feeds twice the MMAs, and the queries wait in shared memory
 * (ldmatrix per k-step), as the registers go to the second tile's O and S.  launch_flash_hd. */

template <typename T, int HD, int NW, int STAGES, int MT>
constexpr size_t fa_smem_bytes() {
    return ((size_t)2 * STAGES * FA_BK + (MT > 1 ? 16 * NW * MT : 0)) * (HD + 8) * sizeof(T);
}

/* Fragment layouts are those of mma.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"):
 * with r8 = lane / 4 and quad = lane % 4, a thread holds
 *   A (16 x 16):  a0 (r8, 2quad..+1)  a1 (r8+8, 2quad..+1)  a2 (r8, 2quad+8..+9)  a3 (r8+8, 2quad+8..+9)
 *   B (16 x 8):   b0 (k 2quad..+1, n r8)  b1 (k 2quad+8..+9, n r8)
 *   C (16 x 8):   c0 c1 (r8, 2quad..+1)  c2 c3 (r8+8, 2quad..+1)
 * so in m-tile mt a thread owns rows ra = 16 (MT warp + mt) + r8 and rb = ra + 8 of the block. */
template <typename T, int HD, int NW, int STAGES, int MT>
__global__ void __launch_bounds__(32 * NW, 1) attn_flash_kernel(AttnArgs a) {
    constexpr int BQ = 16 * NW * MT, BK = FA_BK, NT = 32 * NW;
    constexpr int KP = HD + 8;  /* padded smem row: 8 consecutive rows start 16 bytes apart mod 128, so
                                 * ldmatrix and cp.async touch every bank once */
    constexpr int VEC = HD / 8; /* 16-byte vectors per key row */
    constexpr bool QREG = MT == 1; /* query fragments in registers, else in shared memory */
    static_assert(HD == 16 || HD == 32 || HD == 64 || HD == 128, "head_dim of the flash kernel");
    static_assert(sizeof(T) == 2, "16-bit storage");
    static_assert((KP * sizeof(T)) % 16 == 0, "smem rows 16-byte aligned for cp.async and ldmatrix");
    static_assert((KP * sizeof(T) / 16) % 2 == 1, "row stride an odd number of 16-byte units: 8 rows hit 8 distinct bank quads");
    static_assert(STAGES >= 2 && STAGES <= 4, "pipeline depth");
    static_assert(MT == 1 || MT == 2, "m-tiles per warp");
    static_assert(BK % 16 == 0 && (BK / 8) % 2 == 0, "key tile: whole k-steps of the PV product, n-tile pairs");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *sK = (T *)smem_raw;            /* [STAGES][BK][KP] */
    T *sV = sK + STAGES * BK * KP;    /* [STAGES][BK][KP] */
    T *sQ = sV + STAGES * BK * KP;    /* [BQ][KP] when !QREG: warp w's rows 16 MT w .. */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, quad = lane & 3, r8 = lane >> 2;
    const int g = blockIdx.y, Gq = a.H / a.KV, qd = a.H * HD, kvd = a.KV * HD;
    const int nrows = a.n * Gq;                 /* rows (query i, head g Gq + j) at i Gq + j */
    const int R0 = blockIdx.x * BQ;
    const int Rlast = (R0 + BQ < nrows ? R0 + BQ : nrows) - 1;
    const int64_t t_first = a.t0 + R0 / Gq, t_last = a.t0 + Rlast / Gq;
    const bool s2 = a.s2_group > 0;

    /* this thread's rows: a = row0 + 16 mt and b = a + 8 of each m-tile; a row's query index is
     * row / Gq, its head g Gq + row % Gq (recomputed where needed: registers go to O and S) */
    const int row0 = R0 + warp * MT * 16 + r8;

    /* the block's key range per phase (0 sinks, 1 recent), in tiles: scalars, not arrays indexed by
     * the phase, which would live in local memory */
    int64_t lo0, hi0, lo1, hi1;
    attn_block_ranges(a, g, Gq, t_first, t_last, &lo0, &hi0, &lo1, &hi1);
    /* from here on keys are counted from their phase's first one (lo0 = 0: the sinks start at 0) */
    const int n0 = (int)(hi0 - lo0 + 1), n1 = hi1 < lo1 ? 0 : (int)(hi1 - lo1 + 1); /* keys per phase */
    const int nt0 = n0 > 0 ? (n0 + BK - 1) / BK : 0, ntiles = nt0 + (n1 + BK - 1) / BK;
    /* split over the keys (gridDim.z parts, a.part): this block's tiles it_lo .. it_hi - 1 */
    const int it_lo = (int)((int64_t)ntiles * blockIdx.z / gridDim.z), it_hi = (int)((int64_t)ntiles * (blockIdx.z + 1) / gridDim.z);

    /* Tile it's keys into stage st: phase 0 from the sink rows, phase 1 from the pages; keys past
     * the phase's end are zeros (their scores are masked; V must not hold NaN garbage). */
    auto load_tile = [&](int it, int st) {
        const int ph = it < nt0 ? 0 : 1;
        const int kr = (ph ? it - nt0 : it) * BK, kn = ph ? n1 : n0; /* first key, keys of the phase */
        const int64_t kb = (ph ? lo1 : lo0) + kr;
        T *dk = sK + st * BK * KP, *dv = sV + st * BK * KP;
        const int64_t slot0 = attn_tile_slot0(a, ph, kb), wrap = s2 ? a.s2_total : a.R;
#pragma unroll
        for (int j = 0; j < (BK * VEC + NT - 1) / NT; j++) {
            const int idx = tid + j * NT;
            if ((BK * VEC) % NT != 0 && idx >= BK * VEC) break;
            const int key = idx / VEC, c = (idx % VEC) * 8;
            const int64_t p = kb + key;
            T *sk_dst = dk + key * KP + c, *sv_dst = dv + key * KP + c;
            if (kr + key < kn) {
                const T *ks, *vs;
                attn_kv_src<T>(a, ph, p, slot0 + key, wrap, g * HD + c, kvd, &ks, &vs);
                cp_async16(sk_dst, ks);
                cp_async16(sv_dst, vs);
            } else {
                *(uint4 *)sk_dst = make_uint4(0, 0, 0, 0);
                *(uint4 *)sv_dst = make_uint4(0, 0, 0, 0);
            }
        }
    };

    float o[MT][HD / 8][4];
    float ma[MT], mb[MT], la[MT], lb[MT];     /* running max (raw score), partial sums */
    int loa[MT], hia[MT], lob[MT], hib[MT]; /* this phase's visible keys of rows a, b, relative to the
                                              * phase's first key (a phase spans at most the ring, or
                                              * the positions of a dense cache: int); rows past the
                                              * end see everything (zero queries, never written) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int d = 0; d < HD / 8; d++) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
        ma[mt] = mb[mt] = -INFINITY;
        la[mt] = lb[mt] = 0.f;
        loa[mt] = lob[mt] = 1;
        hia[mt] = hib[mt] = 0;
    }
    const float sl2 = a.scale * 1.4426950408889634f; /* raw score -> log2 units */
    uint32_t qf[QREG ? HD / 16 : 1][4];                /* QREG: the A fragments of Q */
    int cur_ph = -1;

    /* prologue: tiles it_lo .. it_lo + STAGES-2 in flight, one commit group each (empty groups past the end) */
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (it_lo + s < it_hi) load_tile(it_lo + s, s);
        cp_async_commit();
    }
    int st = 0;
    for (int it = it_lo; it < it_hi; it++) {
        /* groups committed: STAGES - 1 + it; tile it's is complete when at most STAGES - 2 remain */
        cp_async_wait<STAGES - 2>();
        __syncthreads(); /* tile it visible to all; every warp is done with tile it - 1's stage */
        {
            const int nx = it + STAGES - 1;
            int sn = st + STAGES - 1;
            if (sn >= STAGES) sn -= STAGES;
            if (nx < it_hi) load_tile(nx, sn); /* into the stage tile it - 1 used */
            cp_async_commit();
        }
        const int ph = it < nt0 ? 0 : 1;
        const int kr = (ph ? it - nt0 : it) * BK; /* the tile's first key relative to the phase's */
        if (ph != cur_ph) { /* this warp's queries and row ranges for the phase */
            cur_ph = ph;
            if constexpr (QREG) {
                attn_load_qfrag<T, HD>(a, ph, row0, nrows, Gq, g, quad, qf);
            } else {
                /* the warp's 16 MT rows into its own part of sQ (only this warp reads it) */
                __syncwarp(); /* the previous phase's ldmatrix reads are done */
                const T *qb = (const T *)(ph == 0 ? a.qs : a.q);
                T *wq = sQ + warp * MT * 16 * KP;
#pragma unroll
                for (int j = 0; j < MT * 16 * VEC / 32; j++) {
                    const int idx = lane + 32 * j, r = idx / VEC, c = (idx % VEC) * 8;
                    const int row = R0 + warp * MT * 16 + r;
                    uint4 x = make_uint4(0, 0, 0, 0);
                    if (row < nrows) x = *(const uint4 *)(qb + (size_t)(row / Gq) * qd + (size_t)(g * Gq + row % Gq) * HD + c);
                    *(uint4 *)(wq + r * KP + c) = x;
                }
                __syncwarp();
            }
            const int64_t base = ph ? lo1 : lo0;
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                attn_row_bounds(a, ph, row0 + 16 * mt, nrows, Gq, g, base, &loa[mt], &hia[mt]);
                attn_row_bounds(a, ph, row0 + 16 * mt + 8, nrows, Gq, g, base, &lob[mt], &hib[mt]);
            }
        }
        /* which of this warp's rows see the tile whole, in part or not at all */
        const int ke = kr + BK - 1;
        bool full = true, empty = true;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            full = full && loa[mt] <= kr && hia[mt] >= ke && lob[mt] <= kr && hib[mt] >= ke;
            empty = empty && (hia[mt] < kr || loa[mt] > ke) && (hib[mt] < kr || lob[mt] > ke);
        }
        full = __all_sync(0xffffffffu, full);
        empty = __all_sync(0xffffffffu, empty);
        if (!empty) {
            const T *tK = sK + st * BK * KP, *tV = sV + st * BK * KP;
            const int mi = lane >> 3;
            /* S = Q K^T, 16 MT x BK per warp; k-steps outer so that each Q fragment is read once */
            float s[MT][BK / 8][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
            for (int ks = 0; ks < HD / 16; ks++) {
                uint32_t qa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    if constexpr (QREG) {
                        qa[mt][0] = qf[ks][0]; qa[mt][1] = qf[ks][1]; qa[mt][2] = qf[ks][2]; qa[mt][3] = qf[ks][3];
                    } else {
                        /* lane l addresses row (l & 7) + 8 ((l >> 3) & 1), dims 16 ks + 8 (l >> 4): a0 .. a3 */
                        ldmatrix_x4(qa[mt], sQ + ((warp * MT + mt) * 16 + (lane & 7) + (mi & 1) * 8) * KP + ks * 16 + (mi >> 1) * 8);
                    }
                }
                /* K by ldmatrix x4 over an n-tile pair: lane l addresses key row 8 (nt + (l >> 4)) +
                 * (l & 7), dims 16 ks + 8 ((l >> 3) & 1): b0 b1 of n-tile nt, then of nt + 1 */
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt += 2) {
                    uint32_t b[4];
                    ldmatrix_x4(b, tK + ((nt + (mi >> 1)) * 8 + (lane & 7)) * KP + ks * 16 + (mi & 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        MmaOp<T>::run(s[mt][nt], qa[mt], b[0], b[1]);
                        MmaOp<T>::run(s[mt][nt + 1], qa[mt], b[2], b[3]);
                    }
                }
            }
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                attn_softmax_tile<T, BK / 8, HD / 8>(s[mt], o[mt], full, loa[mt] - kr, hia[mt] - kr, lob[mt] - kr, hib[mt] - kr, quad, sl2,
                                                     &ma[mt], &mb[mt], &la[mt], &lb[mt]);
            /* O += P V.  A fragment of k-step j (keys 16j .. 16j+15): (row a, keys 16j + 2quad),
             * (row b, same), (row a, + 8), (row b, + 8) = the packed pairs of n-tiles 2j and 2j+1.
             * B fragments by ldmatrix.trans: lane l addresses key row 16j + 8 ((l >> 3) & 1) + (l & 7),
             * dims 8 (d + (l >> 4)) ..: b0 b1 of dim tile d, then of d + 1 */
#pragma unroll
            for (int j = 0; j < BK / 16; j++)
#pragma unroll
                for (int d = 0; d < HD / 8; d += 2) {
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, tV + (j * 16 + (mi & 1) * 8 + (lane & 7)) * KP + (d + (mi >> 1)) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        const uint32_t pa[4] = {__float_as_uint(s[mt][2 * j][0]), __float_as_uint(s[mt][2 * j][1]),
                                                __float_as_uint(s[mt][2 * j + 1][0]), __float_as_uint(s[mt][2 * j + 1][1])};
                        MmaOp<T>::run(o[mt][d], pa, b[0], b[1]);
                        MmaOp<T>::run(o[mt][d + 1], pa, b[2], b[3]);
                    }
                }
        }
        if (++st == STAGES) st = 0;
    }
    cp_async_wait<0>(); /* no copy outlives the block (only empty groups are left) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        if (gridDim.z > 1) attn_store_part<HD>(a, o[mt], ma[mt], mb[mt], la[mt], lb[mt], row0 + 16 * mt, nrows, Gq, g, quad);
        else attn_store_rows<T, HD>(a, o[mt], la[mt], lb[mt], row0 + 16 * mt, nrows, Gq, g, quad);
    }
}

/* ---------------------------------------------------------------- warpgroup kernel (sm_90a) */

/* FlashAttention-3's arithmetic on Hopper's warpgroup MMA (wgmma, PTX ISA "Asynchronous
 * Warpgroup Level Matrix Multiply-Accumulate"): the same rows, phases, bounds, masks and online
 * softmax as attn_flash_kernel, but each warpgroup of 4 warps computes a 64 x BK score tile and
 * its 64 x HD output with single wgmma instructions, the key and value tiles read by the tensor
 * cores straight from shared memory (no ldmatrix through registers).  A block is NWG warpgroups,
 * 64 NWG rows; all its threads stream the key tiles through STAGES shared-memory buffers by
 * cp.async (the ring's slots are not contiguous: no bulk tensor copy), one barrier per tile.
 *
 * Operands (PTX ISA, "Matrix Descriptor", "Shared Memory Matrix Layout"; CUTLASS's canonical
 * GMMA layouts):
 *   S = Q K^T  m64 n BK k16: A = the queries, from registers (the mma.m16n8k16 A fragments the
 *              other kernel loads, per warp 16 rows); B = the key tile, K-major (a key's dims
 *              contiguous), 128-byte swizzle.
 *   O += P V   m64 n HD k16: A = P from registers (the score accumulators, rounded to T: the
 *              accumulator layout of m64nN is the A layout of the next product, as in FA2/FA3);
 *              B = the value tile, MN-major (a key's dims contiguous = N contiguous), transposed
 *              operand, 128-byte swizzle.
 * Both tiles are stored as HD / 64 panels of BK rows x 128 bytes (dims 64 p .. 64 p + 63 of each
 * key), 16-byte chunk c of row r at r 128 + ((c ^ (r mod 8)) 16) within its panel (the
 * hardware's 128-byte swizzle on a 1024-byte aligned panel).  Descriptors: K (K-major): rows 128
 * bytes apart, 8-row groups 1024 apart (SBO), a k-step of 16 dims is 32 bytes into the row, the
 * next 64 dims the next panel.  V (MN-major): 8-key groups 1024 apart (SBO), the next 64 dims the
 * next panel (LBO), a k-step of 16 keys 2048 bytes. */
#define WG_BQ 64 /* rows per warpgroup: the M of every wgmma */

/* one wgmma with A (4 x 32 bits: the m16n8k16 A fragment of this warp's 16 rows) in registers
 * and B by descriptor; accumulate 0 overwrites d */
template <typename T, int N> struct WgmmaRS;
#define LCB_WGMMA_RS_N64(TY) \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, " \
                 "{%32, %33, %34, %35}, %37, p, 1, 1, %38;\n}\n" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc_b), "n"(TRANS_B))

#define LCB_WGMMA_RS_N128(TY) \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %68, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
                 "{%64, %65, %66, %67}, %69, p, 1, 1, %70;\n}\n" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc_b), "n"(TRANS_B))

template <> struct WgmmaRS<__nv_bfloat16, 64> {
    template <int TRANS_B> static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc_b, int accumulate) {
        LCB_WGMMA_RS_N64("bf16");
    }
};
template <> struct WgmmaRS<__half, 64> {
    template <int TRANS_B> static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc_b, int accumulate) {
        LCB_WGMMA_RS_N64("f16");
    }
};
template <> struct WgmmaRS<__nv_bfloat16, 128> {
    template <int TRANS_B> static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc_b, int accumulate) {
        LCB_WGMMA_RS_N128("bf16");
    }
};
template <> struct WgmmaRS<__half, 128> {
    template <int TRANS_B> static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc_b, int accumulate) {
        LCB_WGMMA_RS_N128("f16");
    }
};
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
/* the compiler must not move an accumulator across the asynchronous product (CUTLASS's
 * warpgroup_fence_operand) */
__device__ __forceinline__ void reg_fence(float &x) { asm volatile("" : "+f"(x)::"memory"); }
/* ordinary and cp.async stores to shared memory made visible to the tensor cores' (async proxy) reads */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* shared-memory matrix descriptor, 128-byte swizzle */
__device__ __forceinline__ uint64_t wg_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 | (uint64_t)((sbo >> 4) & 0x3FFF) << 32 |
           (uint64_t)1 << 62;
}

template <int HD, int BK, int STAGES>
constexpr size_t wg_smem_bytes() { return (size_t)2 * STAGES * BK * HD * 2 + 1024; /* + alignment of the panels */ }

/* A warp's 16 rows in the warpgroup kernels (rows row0 and row0 + 8 of each thread): the output
 * accumulators, the online softmax's running max (raw score) and sums, and the current phase's
 * query fragments and visible keys (relative to the phase's first key; rows past the end see
 * everything: zero queries, never written). */
template <typename T, int HD, int BK>
struct WgRows {
    float o[HD / 8][4];
    float ma = -INFINITY, mb = -INFINITY, la = 0.f, lb = 0.f;
    int loa = 1, hia = 0, lob = 1, hib = 0;
    uint32_t qf[HD / 16][4];
    int cur_ph = -1;
    __device__ __forceinline__ WgRows() {
#pragma unroll
        for (int d = 0; d < HD / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    }
    /* tile it of the block's (nt0 sink tiles, then the recent keys'): the phase's queries and
     * bounds when the phase changes; returns the tile's first key relative to its phase's */
    __device__ __forceinline__ int enter(const AttnArgs &a, int it, int nt0, int64_t lo0, int64_t lo1, int row0, int nrows, int Gq, int g,
                                         int quad) {
        const int ph = it < nt0 ? 0 : 1;
        if (ph != cur_ph) {
            cur_ph = ph;
            attn_load_qfrag<T, HD>(a, ph, row0, nrows, Gq, g, quad, qf);
            const int64_t base = ph ? lo1 : lo0;
            attn_row_bounds(a, ph, row0, nrows, Gq, g, base, &loa, &hia);
            attn_row_bounds(a, ph, row0 + 8, nrows, Gq, g, base, &lob, &hib);
        }
        return (ph ? it - nt0 : it) * BK;
    }
    /* the warp's rows all see the key tile starting at kr whole (no mask needed) */
    __device__ __forceinline__ bool full(int kr) const {
        const int ke = kr + BK - 1;
        return __all_sync(0xffffffffu, loa <= kr && hia >= ke && lob <= kr && hib >= ke);
    }
    /* the tile's softmax (attn_softmax_tile), O rescaled, and P as the PV product's A fragments */
    __device__ __forceinline__ void softmax(float (*s)[4], uint32_t (*pf)[4], int kr, int quad, float sl2) {
        attn_softmax_tile<T, BK / 8, HD / 8>(s, o, full(kr), loa - kr, hia - kr, lob - kr, hib - kr, quad, sl2, &ma, &mb, &la, &lb);
#pragma unroll
        for (int j = 0; j < BK / 16; j++) {
            pf[j][0] = __float_as_uint(s[2 * j][0]); pf[j][1] = __float_as_uint(s[2 * j][1]);
            pf[j][2] = __float_as_uint(s[2 * j + 1][0]); pf[j][3] = __float_as_uint(s[2 * j + 1][1]);
        }
    }
    /* S = Q K^T of the key tile at shared address tk (K-major, 128-byte swizzled panels of BK keys;
     * issued, not fenced, committed or waited) */
    __device__ __forceinline__ void qk(float (*s)[4], uint32_t tk) {
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++)
            WgmmaRS<T, BK>::template run<0>(&s[0][0], qf[ks], wg_desc(tk + (ks >> 2) * BK * 128 + (ks & 3) * 32, 16, 1024), ks > 0);
    }
    /* O += P V of the value tile at shared address tv (MN-major, the same panels; issued only) */
    __device__ __forceinline__ void pv(const uint32_t (*pf)[4], uint32_t tv) {
#pragma unroll
        for (int k = 0; k < BK / 16; k++) WgmmaRS<T, HD>::template run<1>(&o[0][0], pf[k], wg_desc(tv + k * 2048, BK * 128, 1024), 1);
    }
    /* the compiler must not move O across an asynchronous product into it */
    __device__ __forceinline__ void fence_o() {
#pragma unroll
        for (int d = 0; d < HD / 8; d++) { reg_fence(o[d][0]); reg_fence(o[d][1]); reg_fence(o[d][2]); reg_fence(o[d][3]); }
    }
};

/* the same for a score tile */
template <int NT8>
__device__ __forceinline__ void wg_fence_s(float (*s)[4]) {
#pragma unroll
    for (int nt = 0; nt < NT8; nt++) { reg_fence(s[nt][0]); reg_fence(s[nt][1]); reg_fence(s[nt][2]); reg_fence(s[nt][3]); }
}

template <typename T, int HD, int BK, int NWG, int STAGES>
__global__ void __launch_bounds__(128 * NWG, 1) attn_wgmma_kernel(AttnArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = WG_BQ * NWG, NT = 128 * NWG, VEC = HD / 8, PANEL = BK * 128, TILE = (HD / 64) * PANEL;
    static_assert(HD == 64 || HD == 128, "head_dim of the warpgroup kernel");
    static_assert(BK == 64 || BK == 128, "key tile of the warpgroup kernel (an n of wgmma)");
    static_assert(sizeof(T) == 2, "16-bit storage");
    static_assert(STAGES >= 2 && STAGES <= 4, "pipeline depth");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t sbase = ((uint32_t)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
    unsigned char *const sgen = smem_raw + (sbase - (uint32_t)__cvta_generic_to_shared(smem_raw));
    /* stage st: keys at sbase + 2 st TILE, values at + TILE */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, quad = lane & 3, r8 = lane >> 2;
    const int g = blockIdx.y, Gq = a.H / a.KV, kvd = a.KV * HD;
    const int nrows = a.n * Gq;
    const int R0 = blockIdx.x * BQ;
    const int Rlast = (R0 + BQ < nrows ? R0 + BQ : nrows) - 1;
    const bool s2 = a.s2_group > 0;
    const int row0 = R0 + warp * 16 + r8; /* warp w of warpgroup w / 4 holds rows 16 w .. 16 w + 15 of the block */

    int64_t lo0, hi0, lo1, hi1;
    attn_block_ranges(a, g, Gq, a.t0 + R0 / Gq, a.t0 + Rlast / Gq, &lo0, &hi0, &lo1, &hi1);
    const int n0 = (int)(hi0 - lo0 + 1), n1 = hi1 < lo1 ? 0 : (int)(hi1 - lo1 + 1);
    const int nt0 = n0 > 0 ? (n0 + BK - 1) / BK : 0, ntiles = nt0 + (n1 + BK - 1) / BK;

    auto load_tile = [&](int it, int st) {
        const int ph = it < nt0 ? 0 : 1;
        const int kr = (ph ? it - nt0 : it) * BK, kn = ph ? n1 : n0;
        const int64_t kb = (ph ? lo1 : lo0) + kr;
        unsigned char *dk = sgen + (size_t)(2 * st) * TILE, *dv = dk + TILE;
        const int64_t slot0 = attn_tile_slot0(a, ph, kb), wrap = s2 ? a.s2_total : a.R;
#pragma unroll
        for (int j = 0; j < (BK * VEC + NT - 1) / NT; j++) {
            const int idx = tid + j * NT;
            if ((BK * VEC) % NT != 0 && idx >= BK * VEC) break;
            const int key = idx / VEC, c = idx % VEC;
            const int off = (c >> 3) * PANEL + key * 128 + (((c & 7) ^ (key & 7)) << 4);
            if (kr + key < kn) {
                const T *ks, *vs;
                attn_kv_src<T>(a, ph, kb + key, slot0 + key, wrap, g * HD + c * 8, kvd, &ks, &vs);
                cp_async16(dk + off, ks);
                cp_async16(dv + off, vs);
            } else {
                *(uint4 *)(dk + off) = make_uint4(0, 0, 0, 0);
                *(uint4 *)(dv + off) = make_uint4(0, 0, 0, 0);
            }
        }
    };

    WgRows<T, HD, BK> w;
    const float sl2 = a.scale * 1.4426950408889634f;

    /* tiles in flight: D ahead of the one computed, one commit group each */
    constexpr int D = STAGES - 1;
#pragma unroll
    for (int s = 0; s < D; s++) {
        if (s < ntiles) load_tile(s, s);
        cp_async_commit();
    }
    uint32_t pf[BK / 16][4];
    for (int it = 0; it < ntiles; it++) {
        const int st = it % STAGES;
        cp_async_wait<D - 1>(); /* tile it's group complete (D groups were ahead of it) */
        fence_proxy_async();    /* this thread's copies and zero stores, before the tensor cores read them */
        __syncthreads();        /* tile it visible to all; every warpgroup is done with the stage reloaded next */
        if (it + D < ntiles) load_tile(it + D, (it + D) % STAGES); /* the stage of tile it - 1, read no more */
        cp_async_commit();
        const int kr = w.enter(a, it, nt0, lo0, lo1, row0, nrows, Gq, g, quad);
        float s[BK / 8][4];
        wgmma_fence();
        w.qk(s, sbase + (uint32_t)(2 * st) * TILE); /* S over the warpgroup's 64 rows, from stage st's keys */
        wgmma_commit();
        wgmma_wait<0>();
        wg_fence_s<BK / 8>(s);
        w.softmax(s, pf, kr, quad, sl2);
        wgmma_fence();
        w.pv(pf, sbase + (uint32_t)(2 * st + 1) * TILE); /* O += P V from stage st's values */
        wgmma_commit();
        wgmma_wait<0>();
        w.fence_o();
    }
    cp_async_wait<0>();
    attn_store_rows<T, HD>(a, w.o, w.la, w.lb, row0, nrows, Gq, g, quad);
#endif
}

/* ---------------------------------------------------------------- warp-specialized kernel (sm_90a) */

/* attn_wgmma_kernel's arithmetic (the same operands, layouts, bounds, masks and softmax) with
 * FlashAttention-3's division of labour, so that one warpgroup's softmax runs under the other's
 * products instead of every warpgroup waiting at one barrier per tile:
 *   warpgroup 0  the producer: its 128 threads copy key tile it into stage it mod ST by cp.async
 *                (keys past the phase's end zero-filled by the copy itself, src-size 0) and each
 *                arrives on full[stage] once its own copies have landed (cp.async.mbarrier.arrive
 *                .noinc; full counts 128); before reusing a stage it waits for empty[stage];
 *   warpgroups 1 and 2  the consumers, 64 rows each: segment j waits for full[tile j], issues
 *                O += P V of tile j - 1 and S = Q K^T of tile j as one commit group, waits for both,
 *                releases tile j - 1's stage (lane 0 of each warp arrives on empty: 8 arrivals),
 *                then runs tile j's softmax; segment ntiles issues the last PV alone.
 * With PP (ping-pong, FA3) the two consumers take turns issuing their products through two named
 * barriers (ids 1, 2: consumer w waits on 1 + w before issuing and lets the other go right after),
 * so the tensor cores run one warpgroup's products while the other computes its softmax.
 * setmaxnreg hands the producer's registers to the consumers (40 / 232 of the 168 each warp starts
 * with: 128 x 40 + 256 x 232 = 384 x 168).  The copies are cp.async (the ring's slots are not
 * contiguous, and a tensor map would be needed per page); the consumers read the tiles through the
 * tensor cores after acquiring full (CUTLASS's cp.async warp-specialized GMMA pipeline). */

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ bool mbar_try(uint32_t bar, uint32_t parity) {
    uint32_t ok;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
    return ok != 0;
}
/* until the phase of parity `parity` of the barrier has completed */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) { while (!mbar_try(bar, parity)) {} }
__device__ __forceinline__ void mbar_arrive(uint32_t bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory"); }
/* arrive on the barrier once this thread's earlier cp.async copies have landed (counted at init) */
__device__ __forceinline__ void mbar_arrive_cp_async(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
/* 16 bytes from gmem, or zeros when bytes is 0 (nothing is read then) */
__device__ __forceinline__ void cp_async16_zfill(uint32_t saddr, const void *gmem, uint32_t bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(gmem), "r"(bytes) : "memory");
}
__device__ __forceinline__ void named_sync(uint32_t id, uint32_t threads) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory"); }
__device__ __forceinline__ void named_arrive(uint32_t id, uint32_t threads) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory"); }

#define WS_THREADS 384 /* a producer warpgroup and two consumers */

template <int HD, int BK, int ST>
constexpr size_t ws_smem_bytes() { return (size_t)2 * ST * BK * HD * 2 + 1024 + 2 * ST * 8; /* tiles, their alignment, full[] and empty[] */ }

template <typename T, int HD, int BK, int ST, bool PP>
__global__ void __launch_bounds__(WS_THREADS, 1) attn_ws_kernel(AttnArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NC = 2, BQ = WG_BQ * NC, VEC = HD / 8, PANEL = BK * 128, TILE = (HD / 64) * PANEL;
    static_assert(HD == 64 || HD == 128, "head_dim of the warpgroup kernel");
    static_assert(BK == 64 || BK == 128, "key tile of the warpgroup kernel (an n of wgmma)");
    static_assert(sizeof(T) == 2, "16-bit storage");
    static_assert(ST >= 2 && ST <= 4, "pipeline depth");
    static_assert(BK % 64 == 0 && VEC % 2 == 0, "the producer's 128 threads: two a key, 64 keys a pass");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t sbase = ((uint32_t)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
    const uint32_t bars = sbase + (uint32_t)(2 * ST * TILE); /* full[s] at bars + 8 s, empty[s] at bars + 8 (ST + s) */

    const int tid = threadIdx.x, wg = tid >> 7;
    const int g = blockIdx.y, Gq = a.H / a.KV, kvd = a.KV * HD;
    const int nrows = a.n * Gq;
    const int R0 = blockIdx.x * BQ;
    const int Rlast = (R0 + BQ < nrows ? R0 + BQ : nrows) - 1;
    const bool s2 = a.s2_group > 0;

    int64_t lo0, hi0, lo1, hi1;
    attn_block_ranges(a, g, Gq, a.t0 + R0 / Gq, a.t0 + Rlast / Gq, &lo0, &hi0, &lo1, &hi1);
    const int n0 = (int)(hi0 - lo0 + 1), n1 = hi1 < lo1 ? 0 : (int)(hi1 - lo1 + 1);
    const int nt0 = n0 > 0 ? (n0 + BK - 1) / BK : 0, ntiles = nt0 + (n1 + BK - 1) / BK;

    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < ST; s++) { mbar_init(bars + 8 * s, 128); mbar_init(bars + 8 * (ST + s), 4 * NC); }
    }
    __syncthreads(); /* the barriers initialised before anyone uses them; the last block-wide barrier */

    if (wg == 0) { /* ------------------------------------------------ producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        /* Two threads per key, each copying every other 16-byte chunk of its key and value rows (a
         * warp's copy reads whole 32-byte sectors of 16 keys): thread tid has keys tid / 2 + 64 k
         * (k < BK / 64), chunks 2 m + (tid & 1) (m < VEC / 2).  One slot and page lookup per key:
         * the producer's instructions, not the L2's requests, bound the kernel (ATTENTION_NOTES.md:
         * eight threads per key, whole 128-byte lines a copy, ran 5-14 % slower). */
        constexpr int KPT = BK / 64, CPT = VEC / 2;
        const int par = tid & 1, kq = tid >> 1;
        for (int it = 0; it < ntiles; it++) {
            const int st = it % ST;
            if (it >= ST) mbar_wait(bars + 8 * (ST + st), (uint32_t)((it / ST - 1) & 1)); /* the consumers are done with tile it - ST */
            const int ph = it < nt0 ? 0 : 1;
            const int kr = (ph ? it - nt0 : it) * BK, kn = ph ? n1 : n0;
            const int64_t kb = (ph ? lo1 : lo0) + kr;
            const uint32_t dk = sbase + (uint32_t)(2 * st * TILE), dv = dk + TILE;
            /* slots are int: a ring, s2's input, or a dense cache's positions (never 2^31 of them in
             * memory); a loaded key's slot wraps at most once (wrap 0: no ring) */
            const int s0 = ph ? (int)attn_tile_slot0(a, ph, kb) : 0, wrap = (int)(s2 ? a.s2_total : a.R);
#pragma unroll
            for (int k = 0; k < KPT; k++) {
                const int key = kq + 64 * k;
                const bool in = kr + key < kn; /* keys past the phase's end are zero-filled (src-size 0: nothing read) */
                const T *ks = (const T *)a.q, *vs = ks;
                if (in) {
                    if (ph == 0) {
                        ks = (const T *)a.sk + (size_t)(kb + key) * kvd + g * HD;
                        vs = (const T *)a.sv + (size_t)(kb + key) * kvd + g * HD;
                    } else {
                        int sl = s0 + key;
                        if (wrap && sl >= wrap) sl -= wrap;
                        const int po = (sl & (CU_PAGE - 1)) * kvd + g * HD;
                        ks = (const T *)a.kp[sl >> CU_PAGE_SHIFT] + po;
                        vs = (const T *)a.vp[sl >> CU_PAGE_SHIFT] + po;
                    }
                }
                const uint32_t row = (uint32_t)(key * 128), sw = (uint32_t)(key & 7), bytes = in ? 16u : 0u;
#pragma unroll
                for (int m = 0; m < CPT; m++) {
                    const int c = 2 * m + par;
                    const uint32_t off = (uint32_t)((c >> 3) * PANEL) + row + ((((uint32_t)c & 7u) ^ sw) << 4);
                    cp_async16_zfill(dk + off, in ? ks + 8 * c : ks, bytes);
                    cp_async16_zfill(dv + off, in ? vs + 8 * c : vs, bytes);
                }
            }
            mbar_arrive_cp_async(bars + 8 * st);
        }
        asm volatile("cp.async.wait_all;\n" ::: "memory"); /* no copy outlives its thread (they were never committed to a group) */
    } else { /* ------------------------------------------------ consumers */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
        const int cw = (tid >> 5) - 4, cwg = cw >> 2, lane = tid & 31, quad = lane & 3, r8 = lane >> 2;
        const int row0 = R0 + cw * 16 + r8; /* consumer warp cw holds rows 16 cw .. 16 cw + 15 of the block */
        WgRows<T, HD, BK> w;
        const float sl2 = a.scale * 1.4426950408889634f;
        uint32_t pf[BK / 16][4]; /* P of the tile whose PV product is next */
        /* tile j landed; this phase's queries and row bounds; the tile's first key relative to its phase's */
        auto enter = [&](int j) {
            mbar_wait(bars + 8 * (j % ST), (uint32_t)((j / ST) & 1));
            return w.enter(a, j, nt0, lo0, lo1, row0, nrows, Gq, g, quad);
        };
        auto pv = [&](int j) { w.pv(pf, sbase + (uint32_t)((2 * (j % ST) + 1) * TILE)); }; /* O += P V of tile j */
        auto qk = [&](float (*s)[4], int j) { w.qk(s, sbase + (uint32_t)(2 * (j % ST) * TILE)); }; /* S = Q K^T of tile j */
        auto release = [&](int j) { /* tile j's stage is free: its keys and values are read */
            __syncwarp();
            if (lane == 0) mbar_arrive(bars + 8 * (ST + j % ST));
        };
        /* turns (PP): consumer w waits on barrier 1 + w, then lets the next go; the last consumer
         * opens consumer 0's first turn and skips its own last hand-over, so every barrier is left
         * with as many arrivals as waits */
        const uint32_t my_turn = 1 + cwg, next_turn = 1 + (cwg + 1) % NC;
        /* segment j (1 <= j < ntiles): tile j - 1's PV and tile j's S as one commit group, then tile
         * j's softmax.  (FlashAttention-3's intra-warpgroup overlap, the softmax under the PV with P
         * in a second buffer, ran no faster here: ATTENTION_NOTES.md.) */
        auto step = [&](int j) {
            float s[BK / 8][4];
            const int kr = enter(j);
            if (PP) named_sync(my_turn, 2 * 128);
            wgmma_fence();
            pv(j - 1);
            qk(s, j);
            wgmma_commit();
            if (PP) named_arrive(next_turn, 2 * 128);
            wgmma_wait<0>();
            w.fence_o();
            wg_fence_s<BK / 8>(s);
            release(j - 1);
            w.softmax(s, pf, kr, quad, sl2);
        };
        if (ntiles > 0) {
            if (PP && cwg == NC - 1) named_arrive(1, 2 * 128);
            { /* the first segment peeled (no PV yet): products issued under an if are serialized by ptxas */
                float s[BK / 8][4];
                const int kr = enter(0);
                if (PP) named_sync(my_turn, 2 * 128);
                wgmma_fence();
                qk(s, 0);
                wgmma_commit();
                if (PP) named_arrive(next_turn, 2 * 128);
                wgmma_wait<0>();
                wg_fence_s<BK / 8>(s);
                w.softmax(s, pf, kr, quad, sl2);
            }
            for (int j = 1; j < ntiles; j++) step(j);
            /* the last tile's PV */
            if (PP) named_sync(my_turn, 2 * 128);
            wgmma_fence();
            pv(ntiles - 1);
            wgmma_commit();
            if (PP && cwg != NC - 1) named_arrive(next_turn, 2 * 128);
            wgmma_wait<0>();
            w.fence_o();
        }
        attn_store_rows<T, HD>(a, w.o, w.la, w.lb, row0, nrows, Gq, g, quad);
    }
#endif
}

/* ---------------------------------------------------------------- launch */

/* -1 the default (attn_default_cfg), 0 scalar, 1 .. 4 flash configurations, 5 and 6 the barrier
 * warpgroup kernel's, 7 .. CU_ATTN_VARIANTS the warp-specialized kernel's; tests and benchmarks set it */
int cu_attention_variant = -1;

/* multiprocessors of the current device, asked once per device */
static int attn_dev_sms(void) {
    static int known[32];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 32) { cudaGetLastError(); return 1; }
    if (!known[dev] && cudaDeviceGetAttribute(&known[dev], cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) { cudaGetLastError(); known[dev] = 1; }
    return known[dev] > 0 ? known[dev] : 1;
}

/* Parts of the split over the keys (flash-decoding) for a flash launch of bq-row blocks: with
 * fewer blocks than the multiprocessors (decode: one query, H / KV rows a KV head), each block
 * streams every key its rows see, so the keys are cut into parts of at least 4 tiles, enough
 * parts for ~cu_attn_split_per_sm (4) blocks a multiprocessor, at most CU_ATTN_PARTS; 1 (no
 * split) otherwise and under s2.  The keys a row sees: its window (S + W + n) or the whole
 * history. */
static int cu_attn_split_per_sm = 4; /* the split's target, blocks a multiprocessor (cuda_op_attention_split) */
static int attn_split_parts(const AttnArgs *a, int bq) {
    if (a->s2_group > 0) return 1;
    const int64_t blocks = (int64_t)((a->n * (a->H / a->KV) + bq - 1) / bq) * a->KV, sms = attn_dev_sms();
    if (blocks * 2 > sms) return 1;
    int64_t keys = a->t0 + a->n;
    if (a->W >= 0 && a->S + a->W + a->n < keys) keys = a->S + a->W + a->n;
    int64_t parts = (cu_attn_split_per_sm * sms + blocks - 1) / blocks, most = keys / (4 * FA_BK);
    if (parts > most) parts = most;
    if (parts > CU_ATTN_PARTS) parts = CU_ATTN_PARTS;
    return parts > 1 ? (int)parts : 1;
}

/* Raise kern's dynamic shared-memory limit to smem once per device (*attr_set: one bit per
 * device, kept by the caller per kernel instantiation; --tp launches on several). */
template <typename F>
static int attn_smem_limit(F *kern, size_t smem, unsigned *attr_set, char *err, size_t errlen) {
    int dev = 0;
    CU_TRY(cudaGetDevice(&dev));
    if (dev >= 32 || !(*attr_set >> dev & 1)) {
        CU_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        if (dev < 32) *attr_set |= 1u << dev;
    }
    return 0;
}

/* A warpgroup kernel over blocks of bq rows of one KV head each, `threads` threads and smem bytes
 * of shared memory (no split over the keys) */
template <typename F>
static int attn_launch_rows(F *kern, size_t smem, unsigned *attr_set, int bq, int threads, const AttnArgs *a, cudaStream_t st, char *err,
                            size_t errlen) {
    if (attn_smem_limit(kern, smem, attr_set, err, errlen)) return -1;
    const int rows = a->n * (a->H / a->KV);
    kern<<<dim3((rows + bq - 1) / bq, a->KV), threads, smem, st>>>(*a);
    return 0;
}

template <typename T, int HD, int NW, int STAGES, int MT>
static int launch_flash_cfg(const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    constexpr size_t smem = fa_smem_bytes<T, HD, NW, STAGES, MT>();
    static_assert(smem <= 227 * 1024, "shared memory of one block on sm_90");
    static unsigned attr_set = 0; /* per instantiation, one bit per device (--tp) */
    if (attn_smem_limit(attn_flash_kernel<T, HD, NW, STAGES, MT>, smem, &attr_set, err, errlen)) return -1;
    const int rows = a->n * (a->H / a->KV);
    dim3 grid((rows + 16 * NW * MT - 1) / (16 * NW * MT), a->KV, a->part ? a->nparts : 1);
    attn_flash_kernel<T, HD, NW, STAGES, MT><<<grid, 32 * NW, smem, st>>>(*a);
    if (grid.z > 1)
        attn_combine_kernel<T><<<a->n * a->H, (a->hd + 31) & ~31, 0, st>>>(a->part, (T *)a->out, a->n * a->H, a->hd, (int)grid.z,
                                                                       a->scale * 1.4426950408889634f);
    return 0;
}

template <typename T, int HD>
static int launch_flash_hd(int cfg, const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    switch (cfg) {
    case 2: return launch_flash_cfg<T, HD, 4, 2, 1>(a, st, err, errlen);
    case 3: return launch_flash_cfg<T, HD, 8, 3, 1>(a, st, err, errlen);
    case 4: return launch_flash_cfg<T, HD, 4, 2, 2>(a, st, err, errlen);
    default: return launch_flash_cfg<T, HD, 8, 2, 1>(a, st, err, errlen); /* 1 */
    }
}

/* The warpgroup kernel's configurations, cu_attention_variant = warpgroups: 5 two, 6 three; key
 * tiles of 64, two stages.  (Tried on the H200, ATTENTION_NOTES.md: key tiles of 128, three
 * stages, and FlashAttention-3's overlap of the PV product with the next tile's softmax.) */
template <typename T, int HD, int BK, int NWG, int STAGES>
static int launch_wgmma_cfg(const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    constexpr size_t smem = wg_smem_bytes<HD, BK, STAGES>();
    static_assert(smem <= 227 * 1024, "shared memory of one block on sm_90");
    static unsigned attr_set = 0;
    return attn_launch_rows(attn_wgmma_kernel<T, HD, BK, NWG, STAGES>, smem, &attr_set, WG_BQ * NWG, 128 * NWG, a, st, err, errlen);
}

/* The warp-specialized kernel's configurations 7-10: key tile, stages, ping-pong.  The launch
 * and attn_wgmma_ok (a ring must hold a key tile) both read this table. */
struct WsCfg { int bk, stages; bool pp; };
static constexpr WsCfg WS_CFG[] = {{64, 4, false}, {64, 4, true}, {128, 3, true}, {128, 3, false}};
#define WS_CFG_FIRST 7
static constexpr int WS_CFG_N = (int)(sizeof WS_CFG / sizeof *WS_CFG);

/* keys per tile of configuration cfg (5-6 attn_wgmma_kernel: FA_BK) */
static int attn_cfg_key_tile(int cfg) {
    return cfg >= WS_CFG_FIRST && cfg < WS_CFG_FIRST + WS_CFG_N ? WS_CFG[cfg - WS_CFG_FIRST].bk : FA_BK;
}

template <typename T, int HD, int I>
static int launch_ws_cfg(const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    constexpr WsCfg c = WS_CFG[I];
    constexpr size_t smem = ws_smem_bytes<HD, c.bk, c.stages>();
    static_assert(smem <= 227 * 1024, "shared memory of one block on sm_90");
    static unsigned attr_set = 0;
    return attn_launch_rows(attn_ws_kernel<T, HD, c.bk, c.stages, c.pp>, smem, &attr_set, 2 * WG_BQ, WS_THREADS, a, st, err, errlen);
}

template <typename T, int HD>
static int launch_wgmma_hd(int cfg, const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    static_assert(WS_CFG_N == 4 && WS_CFG_FIRST + WS_CFG_N - 1 == CU_ATTN_VARIANTS, "one case below for each row of WS_CFG");
    switch (cfg) {
    case 5: return launch_wgmma_cfg<T, HD, FA_BK, 2, 2>(a, st, err, errlen);
    case WS_CFG_FIRST + 0: return launch_ws_cfg<T, HD, 0>(a, st, err, errlen);
    case WS_CFG_FIRST + 1: return launch_ws_cfg<T, HD, 1>(a, st, err, errlen);
    case WS_CFG_FIRST + 2: return launch_ws_cfg<T, HD, 2>(a, st, err, errlen);
    case WS_CFG_FIRST + 3: return launch_ws_cfg<T, HD, 3>(a, st, err, errlen);
    default: return launch_wgmma_cfg<T, HD, FA_BK, 3, 2>(a, st, err, errlen); /* 6 */
    }
}

/* 1 launched, 0 not covered (dtype or head size), -1 error */
template <typename T>
static int launch_flash(int cfg, const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    if (cfg >= 5) {
        switch (a->hd) {
        case 64: return launch_wgmma_hd<T, 64>(cfg, a, st, err, errlen) ? -1 : 1;
        case 128: return launch_wgmma_hd<T, 128>(cfg, a, st, err, errlen) ? -1 : 1;
        }
        return 0;
    }
    switch (a->hd) {
    case 16: return launch_flash_hd<T, 16>(cfg, a, st, err, errlen) ? -1 : 1;
    case 32: return launch_flash_hd<T, 32>(cfg, a, st, err, errlen) ? -1 : 1;
    case 64: return launch_flash_hd<T, 64>(cfg, a, st, err, errlen) ? -1 : 1;
    case 128: return launch_flash_hd<T, 128>(cfg, a, st, err, errlen) ? -1 : 1;
    }
    return 0;
}

/* the current device runs sm_90a code (the warpgroup kernel), per device, asked once */
static bool attn_dev_sm90(void) {
    static signed char known[32];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 32) { cudaGetLastError(); return false; }
    if (!known[dev]) {
        int major = 0, minor = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) { cudaGetLastError(); major = 0; }
        known[dev] = major == 9 && minor == 0 ? 1 : -1;
    }
    return known[dev] > 0;
}

/* the warpgroup configuration v can take these arguments: head dim 64 or 128, a ring of at
 * least one key tile, an sm_90 device */
static bool attn_wgmma_ok(const AttnArgs *a, int cfg) {
    if (a->R > 0 && a->R < attn_cfg_key_tile(cfg)) return false; /* a tile's slots wrap at most once */
    return (a->hd == 64 || a->hd == 128) && attn_dev_sm90();
}

/* The default configuration, from the device runs of ATTENTION_NOTES.md (one H200, bf16): from
 * 1,024 rows per KV head (chunked prefill) the warp-specialized kernel's 9 where it can run
 * (398-492 TFLOP/s at head_dim 128 on the sink, window, dense and GQA shapes, 293 at 64 for
 * Falcon's MQA), then the barrier warpgroup kernel's 6 (a ring under 128 slots: 252-300, 211),
 * else the flash kernel's 4 (208-263 at 128, 187-203 at 64).  Calls with few rows per KV head
 * (decode: one query, H / KV rows; short chunks) launch a block or two per KV head, far fewer
 * than the SMs, and each block streams every key: there the flash kernel split over the keys,
 * its 1 (twice the threads issuing copies) from 65 rows, its 2 (64-row blocks: half the idle
 * products of 1 on a 1-row block) up to 64. */
static int attn_default_cfg(const AttnArgs *a) {
    /* one query over 4,096 keys of llama2-7b at t = 1M: 43 us with 2, 63-71 with 1 (BENCHMARKS.md,
     * seventh session) */
    if (a->n * (a->H / a->KV) <= 64) return 2;
    if (a->n * (a->H / a->KV) < 1024) return 1;
    return attn_wgmma_ok(a, 9) ? 9 : attn_wgmma_ok(a, 6) ? 6 : 4;
}

/* which kernel cu_attention runs for these arguments: 0 scalar, else the configuration (1-4
 * attn_flash_kernel, 5-6 attn_wgmma_kernel, 7-10 attn_ws_kernel; one the arguments or the device cannot take falls
 * back to the default) */
static int attn_kernel_for(int dt, const AttnArgs *a, int variant) {
    if (variant == 0 || dt == DT_F32) return 0;
    if (a->hd != 16 && a->hd != 32 && a->hd != 64 && a->hd != 128) return 0;
    if (a->R > 0 && a->R < FA_BK) return 0; /* a tile's slots wrap at most once (the engine's rings hold W + CU_ROWS_MAX) */
    if (variant >= 1 && variant <= 4) return variant;
    if (variant >= 5 && variant <= CU_ATTN_VARIANTS && attn_wgmma_ok(a, variant)) return variant;
    return attn_default_cfg(a);
}

/* The split's partial rows (CU_ATTN_PARTS x n H x (hd + 2) floats), one buffer per device kept
 * for the process and grown when a call needs more (workspace in the memory accounting). */
static int attn_part_reserve(const AttnArgs *a, float **part, char *err, size_t errlen) {
    static float *buf[32];
    static size_t bytes[32];
    int dev = 0;
    CU_TRY(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 32) return lcb_fail(err, errlen, "CUDA attention: device %d", dev);
    const size_t need = (size_t)CU_ATTN_PARTS * a->n * a->H * (a->hd + 2) * sizeof(float);
    if (need > bytes[dev]) {
        if (buf[dev]) { CU_TRY(cudaDeviceSynchronize()); cu_free(buf[dev], bytes[dev], LCB_MEM_WORK); buf[dev] = NULL; bytes[dev] = 0; }
        if (cu_alloc((void **)&buf[dev], need, LCB_MEM_WORK, "the attention's split over the keys", err, errlen)) return -1;
        bytes[dev] = need;
    }
    *part = buf[dev];
    return 0;
}

int cu_attention(int dt, const AttnArgs *a, cudaStream_t st, char *err, size_t errlen) {
    if (a->hd > 256) return lcb_fail(err, errlen, "CUDA attention: head_dim %d > 256 is not supported", a->hd);
    if (a->KV <= 0 || a->H % a->KV) return lcb_fail(err, errlen, "CUDA attention: %d query heads over %d KV heads", a->H, a->KV);
    const int cfg = attn_kernel_for(dt, a, cu_attention_variant);
    int done = 0;
    AttnArgs b = *a;
    b.part = NULL;
    b.nparts = cfg >= 1 && cfg <= 4 ? attn_split_parts(a, cfg == 2 ? 64 : 128) : 1; /* the flash configurations' block rows */
    if (b.nparts > 1 && attn_part_reserve(a, &b.part, err, errlen)) return -1;
    if (cfg > 0) done = dt == DT_BF16 ? launch_flash<__nv_bfloat16>(cfg, &b, st, err, errlen) : launch_flash<__half>(cfg, &b, st, err, errlen);
    if (done < 0) return -1;
    if (!done) {
        dim3 grid((a->n + 3) / 4, a->H);
        if (dt == DT_F32) attn_scalar_kernel<float><<<grid, 128, 0, st>>>(*a);
        else if (dt == DT_BF16) attn_scalar_kernel<__nv_bfloat16><<<grid, 128, 0, st>>>(*a);
        else attn_scalar_kernel<__half><<<grid, 128, 0, st>>>(*a);
    }
    CU_LAUNCHED();
    return 0;
}

/* ---------------------------------------------------------------- ops.h: the kernel alone */

/* visible (query, key) pairs of a shape: the work the kernel must do, for TFLOP/s */
static double attn_pairs(const CudaAttnShape *sh) {
    double n = 0;
    for (int i = 0; i < sh->n; i++) {
        const int64_t t = sh->t0 + i;
        if (sh->s2_group > 0) { n += (double)(t % sh->s2_group) + 1; continue; } /* unrolled heads' count */
        n += (double)(sh->S < t + 1 ? sh->S : t + 1);
        int64_t lo = sh->W < 0 ? sh->S : t - sh->W;
        if (lo < sh->S) lo = sh->S;
        if (t >= lo) n += (double)(t - lo + 1);
    }
    return n;
}

/* The arguments of a shape of the tests and benchmarks (ops.h), without its buffers: every
 * head of the model on this GPU (s2 over all H), the 1 / sqrt(hd) scale. */
static AttnArgs attn_args_of(const CudaAttnShape *sh) {
    AttnArgs a = {};
    a.n = sh->n, a.H = sh->H, a.KV = sh->KV, a.hd = sh->hd;
    a.t0 = sh->t0, a.S = sh->S, a.W = sh->W, a.R = sh->R;
    a.s2_group = sh->s2_group, a.s2_total = sh->s2_total, a.s2_h0 = 0, a.s2_heads = sh->H;
    a.scale = 1.0f / sqrtf((float)sh->hd);
    return a;
}

/* Device buffers of one shape: q, qs, out (n, H hd); sinks (S, kvd); recent keys and values in
 * pages of CU_PAGE slots, one allocation each, with their page tables. */
typedef struct {
    int dt;
    AttnArgs a;
    void *q, *qs, *out, *sk, *sv, *k, *v, **tab;
    size_t qb, sb, kb, tb;
} AttnBufs;

static void attn_bufs_free(AttnBufs *b) {
    void *p[] = {b->q, b->qs, b->out, b->sk, b->sv, b->k, b->v, b->tab};
    size_t s[] = {b->qb, b->qb, b->qb, b->sb, b->sb, b->kb, b->kb, b->tb};
    for (int i = 0; i < 8; i++) if (p[i]) cu_free(p[i], s[i], LCB_MEM_WORK);
    memset(b, 0, sizeof *b);
}

static int attn_bufs_init(AttnBufs *b, int dt, const CudaAttnShape *sh, int64_t slots, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    if (sh->n <= 0 || sh->KV <= 0 || sh->H % sh->KV || sh->hd <= 0 || slots < 0)
        return lcb_fail(err, errlen, "cuda_op_attention: bad shape n %d H %d KV %d hd %d slots %lld", sh->n, sh->H, sh->KV, sh->hd,
                        (long long)slots);
    const size_t es = dt_size(dt), kvd = (size_t)sh->KV * sh->hd;
    const int64_t pages = (slots + CU_PAGE - 1) / CU_PAGE;
    b->dt = dt;
    b->qb = (size_t)sh->n * sh->H * sh->hd * es;
    b->sb = (size_t)(sh->S > 0 ? sh->S : 1) * kvd * es;
    b->kb = (size_t)(pages > 0 ? pages : 1) * CU_PAGE * kvd * es;
    b->tb = (size_t)2 * (pages > 0 ? pages : 1) * sizeof(void *);
    if (cu_alloc(&b->q, b->qb, LCB_MEM_WORK, "attention test q", err, errlen) ||
        cu_alloc(&b->qs, b->qb, LCB_MEM_WORK, "attention test qs", err, errlen) ||
        cu_alloc(&b->out, b->qb, LCB_MEM_WORK, "attention test out", err, errlen) ||
        cu_alloc(&b->sk, b->sb, LCB_MEM_WORK, "attention test sink keys", err, errlen) ||
        cu_alloc(&b->sv, b->sb, LCB_MEM_WORK, "attention test sink values", err, errlen) ||
        cu_alloc(&b->k, b->kb, LCB_MEM_WORK, "attention test keys", err, errlen) ||
        cu_alloc(&b->v, b->kb, LCB_MEM_WORK, "attention test values", err, errlen) ||
        cu_alloc((void **)&b->tab, b->tb, LCB_MEM_WORK, "attention test page tables", err, errlen)) {
        attn_bufs_free(b);
        return -1;
    }
    const int64_t np = pages > 0 ? pages : 1;
    void **h = (void **)malloc((size_t)b->tb);
    if (!h) { attn_bufs_free(b); return lcb_fail(err, errlen, "out of memory: attention test page tables"); }
    for (int64_t p = 0; p < np; p++) {
        h[p] = (char *)b->k + (size_t)p * CU_PAGE * kvd * es;
        h[np + p] = (char *)b->v + (size_t)p * CU_PAGE * kvd * es;
    }
    cudaError_t e = cudaMemcpy(b->tab, h, b->tb, cudaMemcpyHostToDevice);
    free(h);
    if (e != cudaSuccess) { attn_bufs_free(b); return cu_fail(e, "page tables", __FILE__, __LINE__, err, errlen); }
    b->a = attn_args_of(sh);
    b->a.q = b->q, b->a.qs = b->qs, b->a.sk = b->sk, b->a.sv = b->sv;
    b->a.kp = b->tab, b->a.vp = b->tab + np, b->a.out = b->out;
    return 0;
}

/* host fp32 -> device dtype */
static int attn_upload(int dt, void *dst, const float *src, size_t n, char *err, size_t errlen) {
    if (dt == DT_F32) { CU_TRY(cudaMemcpy(dst, src, n * 4, cudaMemcpyHostToDevice)); return 0; }
    float *tmp;
    if (cu_alloc((void **)&tmp, n * 4, LCB_MEM_WORK, "attention test staging", err, errlen)) return -1;
    cudaError_t e = cudaMemcpy(tmp, src, n * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) { k_convert(dt, tmp, dst, n, 0); e = cudaDeviceSynchronize(); }
    cu_free(tmp, n * 4, LCB_MEM_WORK);
    if (e != cudaSuccess) return cu_fail(e, "attention test upload", __FILE__, __LINE__, err, errlen);
    return 0;
}

template <typename T>
__global__ void attn_download_kernel(const T *src, float *dst, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) dst[i] = to_f(src[i]);
}

extern "C" int cuda_op_attention(const char *dtype, int variant, const CudaAttnShape *sh, const float *q, const float *qs,
                                 const float *sk, const float *sv, const float *k, const float *v, int64_t slots, float *out,
                                 char *err, size_t errlen) {
    const int dt = dt_parse(dtype);
    if (dt < 0) return lcb_fail(err, errlen, "cuda_op_attention: unknown dtype '%s'", dtype);
    AttnBufs b;
    if (attn_bufs_init(&b, dt, sh, slots, err, errlen)) return -1;
    const size_t nq = (size_t)sh->n * sh->H * sh->hd, kvd = (size_t)sh->KV * sh->hd;
    int rc = attn_upload(dt, b.q, q, nq, err, errlen) || attn_upload(dt, b.qs, qs ? qs : q, nq, err, errlen) ||
             (sh->S > 0 && (attn_upload(dt, b.sk, sk, (size_t)sh->S * kvd, err, errlen) ||
                            attn_upload(dt, b.sv, sv, (size_t)sh->S * kvd, err, errlen))) ||
             (slots > 0 && (attn_upload(dt, b.k, k, (size_t)slots * kvd, err, errlen) ||
                            attn_upload(dt, b.v, v, (size_t)slots * kvd, err, errlen)))
                 ? -1 : 0;
    float *dout = NULL;
    if (!rc) rc = cu_alloc((void **)&dout, nq * 4, LCB_MEM_WORK, "attention test output", err, errlen);
    if (!rc) {
        cudaError_t e = cudaMemset(b.out, 0xff, b.qb); /* NaN in every dtype: an unwritten element fails the check */
        if (e != cudaSuccess) rc = cu_fail(e, "poison", __FILE__, __LINE__, err, errlen);
    }
    if (!rc) {
        const int saved = cu_attention_variant;
        cu_attention_variant = variant;
        rc = cu_attention(dt, &b.a, 0, err, errlen);
        cu_attention_variant = saved;
    }
    if (!rc) {
        const unsigned blocks = (unsigned)((nq + 255) / 256);
        if (dt == DT_F32) attn_download_kernel<float><<<blocks, 256>>>((const float *)b.out, dout, nq);
        else if (dt == DT_BF16) attn_download_kernel<__nv_bfloat16><<<blocks, 256>>>((const __nv_bfloat16 *)b.out, dout, nq);
        else attn_download_kernel<__half><<<blocks, 256>>>((const __half *)b.out, dout, nq);
        cudaError_t e = cudaDeviceSynchronize();
        if (e == cudaSuccess) e = cudaGetLastError();
        if (e == cudaSuccess) e = cudaMemcpy(out, dout, nq * 4, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) rc = cu_fail(e, "attention kernel", __FILE__, __LINE__, err, errlen);
    }
    if (dout) cu_free(dout, nq * 4, LCB_MEM_WORK);
    attn_bufs_free(&b);
    return rc;
}

extern "C" int cuda_op_attention_time(const char *dtype, int variant, const CudaAttnShape *sh, int iters, double *ms,
                                      double *flops, char *err, size_t errlen) {
    const int dt = dt_parse(dtype);
    if (dt < 0) return lcb_fail(err, errlen, "cuda_op_attention_time: unknown dtype '%s'", dtype);
    if (iters < 1 || iters > 1000) return lcb_fail(err, errlen, "cuda_op_attention_time: iters %d", iters);
    int64_t slots = sh->R > 0 ? sh->R : sh->t0 + sh->n - sh->S;
    if (slots < 0) slots = 0;
    AttnBufs b;
    if (attn_bufs_init(&b, dt, sh, slots, err, errlen)) return -1;
    /* N(0, 1) data (scores of a realistic spread: q.k / sqrt(hd) ~ N(0, 1)); never zeros */
    const size_t nq = (size_t)sh->n * sh->H * sh->hd;
    k_fill_normal(dt, b.q, nq, 1.f, 11, 1, 0);
    k_fill_normal(dt, b.qs, nq, 1.f, 11, 2, 0);
    k_fill_normal(dt, b.sk, b.sb / dt_size(dt), 1.f, 11, 3, 0);
    k_fill_normal(dt, b.sv, b.sb / dt_size(dt), 1.f, 11, 4, 0);
    k_fill_normal(dt, b.k, b.kb / dt_size(dt), 1.f, 11, 5, 0);
    k_fill_normal(dt, b.v, b.kb / dt_size(dt), 1.f, 11, 6, 0);
    cudaEvent_t ev[2];
    int rc = 0;
    if (cudaEventCreate(&ev[0]) != cudaSuccess || cudaEventCreate(&ev[1]) != cudaSuccess) {
        attn_bufs_free(&b);
        return lcb_fail(err, errlen, "cuda_op_attention_time: cudaEventCreate failed");
    }
    const int saved = cu_attention_variant;
    cu_attention_variant = variant;
    float *t = (float *)malloc((size_t)iters * sizeof(float));
    for (int w = 0; w < 3 && !rc; w++) rc = cu_attention(dt, &b.a, 0, err, errlen); /* warm-up */
    for (int i = 0; i < iters && !rc; i++) {
        cudaEventRecord(ev[0], 0);
        rc = cu_attention(dt, &b.a, 0, err, errlen);
        cudaEventRecord(ev[1], 0);
        cudaError_t e = cudaEventSynchronize(ev[1]);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&t[i], ev[0], ev[1]);
        if (!rc && e != cudaSuccess) rc = cu_fail(e, "attention timing", __FILE__, __LINE__, err, errlen);
    }
    cu_attention_variant = saved;
    if (!rc) {
        qsort(t, (size_t)iters, sizeof *t, cu_cmp_float);
        *ms = t[iters / 2];
        *flops = 4.0 * sh->hd * sh->H * attn_pairs(sh); /* QK^T and PV, 2 FLOP per multiply-add */
    }
    free(t);
    cudaEventDestroy(ev[0]);
    cudaEventDestroy(ev[1]);
    attn_bufs_free(&b);
    return rc;
}

extern "C" void cuda_op_attention_split(int per_sm) { cu_attn_split_per_sm = per_sm < 1 ? 4 : per_sm; }

extern "C" int cuda_op_attention_kernel(const char *dtype, int variant, const CudaAttnShape *sh) {
    if (sh->KV <= 0 || sh->H % sh->KV) return 0;
    const AttnArgs a = attn_args_of(sh);
    const int dt = dt_parse(dtype);
    return dt < 0 ? 0 : attn_kernel_for(dt, &a, variant);
}
