/*
 * gemm.c — packed-weight products for the CPU forward (see gemm.h for why).
 *
 * Micro-kernel: an MR x NR block of y in registers (MR rows of x, one panel of NR = 2 vectors of
 * columns), the whole K loop with one broadcast of x and two vector loads of the panel per k.
 * Written with GCC/Clang vector extensions, so the compiler picks the instructions of the target
 * (-march=native: AVX-512, AVX2 + FMA, or SSE); the Makefile builds this file with
 * -ffp-contract=fast so that each multiply-add is one FMA.  Sums run in k order per output, in
 * fp32 as OpenBLAS's do.
 */
#include "engine/gemm.h"

#include <omp.h>
#include <string.h>

#if defined(__AVX512F__)
#define VL 16 /* floats per vector */
#define MR 8  /* rows per block: 2 MR accumulators + 2 panel vectors + 1 broadcast <= 32 registers */
#elif defined(__AVX__)
#define VL 8
#define MR 6  /* 16 registers */
#else
#define VL 4
#define MR 6
#endif
#define NR (2 * VL)

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4), may_alias)); /* any float address */

size_t gemm_packed_size(int N, int K) { return (size_t)((N + NR - 1) / NR) * NR * (size_t)K; }

void gemm_pack(const float *w, int N, int K, float *dst) {
    const int panels = (N + NR - 1) / NR;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < panels; p++) {
        float *d = dst + (size_t)p * K * NR;
        for (int j = 0; j < NR; j++) {
            const int col = p * NR + j;
            if (col < N)
                for (int k = 0; k < K; k++) d[(size_t)k * NR + j] = w[(size_t)col * K + k];
            else
                for (int k = 0; k < K; k++) d[(size_t)k * NR + j] = 0.f;
        }
    }
}

/* y[r][0..nc) (+)= alpha sum_k x[r][k] w[k ldw + 0..nc) (+ b) for r < mr; mr is a constant where
 * inlined; NR columns of w are read at every k.  ke: row r sums k < ke[r] only (NULL: all K), the
 * terms in the same order, so a row's result is what the full sum gives when the terms past
 * ke[r] are zeros times finite values, and is not touched by what w holds there. */
static inline __attribute__((always_inline)) void kern(const int mr, const float *x, int ldx, int K, const float *wp,
                                                       size_t ldw, float alpha, const float *b, float *y, int ldy, int nc,
                                                       int accumulate, const int *ke) {
    vf c0[MR], c1[MR];
    const float *xr[MR];
    int kmin = K, kmax = K;
    #pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        c0[r] = (vf){0};
        c1[r] = (vf){0};
        xr[r] = x + (size_t)r * ldx;
    }
    if (ke) {
        kmax = 0;
        for (int r = 0; r < mr; r++) {
            kmin = ke[r] < kmin ? ke[r] : kmin;
            kmax = ke[r] > kmax ? ke[r] : kmax;
        }
    }
    for (int k = 0; k < kmin; k++) {
        const vf w0 = *(const vfu *)(wp + k * ldw), w1 = *(const vfu *)(wp + k * ldw + VL);
        #pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            const float a = xr[r][k];
            c0[r] += a * w0;
            c1[r] += a * w1;
        }
    }
    for (int k = kmin; k < kmax; k++) { /* the rows' ends differ: a row past its end skips the term */
        const vf w0 = *(const vfu *)(wp + k * ldw), w1 = *(const vfu *)(wp + k * ldw + VL);
        for (int r = 0; r < mr; r++)
            if (k < ke[r]) {
                const float a = xr[r][k];
                c0[r] += a * w0;
                c1[r] += a * w1;
            }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float *yr = y + (size_t)r * ldy;
        vf o0 = c0[r], o1 = c1[r];
        if (alpha != 1.f) { o0 *= alpha; o1 *= alpha; }
        if (nc == NR) {
            if (b) { o0 += *(const vfu *)b; o1 += *(const vfu *)(b + VL); }
            if (accumulate) { o0 += *(vfu *)yr; o1 += *(vfu *)(yr + VL); }
            *(vfu *)yr = o0;
            *(vfu *)(yr + VL) = o1;
        } else { /* the last, partial panel */
            float t[NR];
            memcpy(t, &o0, sizeof o0);
            memcpy(t + VL, &o1, sizeof o1);
            for (int j = 0; j < nc; j++) {
                float v = t[j] + (b ? b[j] : 0.f);
                yr[j] = accumulate ? v + yr[j] : v;
            }
        }
    }
}

#define KERN(m) case m: kern(m, x, ldx, K, wp, ldw, alpha, b, y, ldy, nc, accumulate, ke); break
static void kern_rows(int mr, const float *x, int ldx, int K, const float *wp, size_t ldw, float alpha, const float *b,
                      float *y, int ldy, int nc, int accumulate, const int *ke) {
    switch (mr) {
#if MR >= 8
        KERN(8); KERN(7);
#endif
        KERN(6); KERN(5); KERN(4); KERN(3); KERN(2); KERN(1);
    }
}
#undef KERN

/* Panel p of w at w + p pstride, element (k, j) at [k ldw + j].  `padded`: every panel, the last
 * included, has NR readable columns (zero past N: the packed weights); else the columns of a
 * partial last panel are copied into a zero-padded scratch panel first. */
static void panels(const float *x, int ldx, int n, int K, const float *w, size_t ldw, size_t pstride, int padded, int N,
                   float alpha, const float *b, float *y, int ldy, int accumulate, const int *kend) {
    const int full = N / NR, panels = padded ? (N + NR - 1) / NR : full, rblocks = (n + MR - 1) / MR;
    #pragma omp parallel for collapse(2) schedule(static) if ((double)n * N * K >= 65536)
    for (int p = 0; p < panels; p++)
        for (int rb = 0; rb < rblocks; rb++) {
            const int r0 = rb * MR, c0 = p * NR;
            const int mr = n - r0 < MR ? n - r0 : MR, nc = N - c0 < NR ? N - c0 : NR;
            kern_rows(mr, x + (size_t)r0 * ldx, ldx, K, w + (size_t)p * pstride, ldw, alpha, b ? b + c0 : NULL,
                      y + (size_t)r0 * ldy + c0, ldy, nc, accumulate, kend ? kend + r0 : NULL);
        }
    if (panels * NR >= N) return;
    /* the partial last panel of an unpadded operand: copied, zero-padded, into a stack panel a
     * slab of KS rows of k at a time; slabs after the first add to what is there (bias once) */
    enum { KS = 4096 / NR };
    float t[KS * NR];
    const int c0 = full * NR, nc = N - c0;
    for (int k0 = 0; k0 < K; k0 += KS) {
        const int kn = K - k0 < KS ? K - k0 : KS;
        for (int k = 0; k < kn; k++) {
            const float *src = w + (size_t)full * pstride + (size_t)(k0 + k) * ldw;
            for (int j = 0; j < NR; j++) t[k * NR + j] = j < nc ? src[j] : 0.f;
        }
        for (int r0 = 0; r0 < n; r0 += MR) {
            const int mr = n - r0 < MR ? n - r0 : MR;
            int ke[MR]; /* the rows' ends inside this slab */
            for (int r = 0; r < mr && kend; r++) ke[r] = kend[r0 + r] - k0 < 0 ? 0 : kend[r0 + r] - k0 > kn ? kn : kend[r0 + r] - k0;
            kern_rows(mr, x + (size_t)r0 * ldx + k0, ldx, kn, t, NR, alpha, b && k0 == 0 ? b + c0 : NULL,
                      y + (size_t)r0 * ldy + c0, ldy, nc, accumulate || k0 > 0, kend ? ke : NULL);
        }
    }
}

void gemm_packed(const float *x, int ldx, int n, int K, const float *wp, int N, const float *b, float *y, int ldy,
                 int accumulate) {
    panels(x, ldx, n, K, wp, NR, (size_t)K * NR, 1, N, 1.f, b, y, ldy, accumulate, NULL);
}

void gemm_strided(const float *x, int ldx, int n, int K, const float *w, size_t ldw, int N, float alpha, float *y, int ldy,
                  int accumulate, const int *kend) {
    panels(x, ldx, n, K, w, ldw, NR, 0, N, alpha, NULL, y, ldy, accumulate, kend);
}

size_t gemm_quant_scratch(int K) { return (size_t)K * NR + (size_t)NR * QUANT_SLAB; }

void gemm_quant(const float *x, int ldx, int n, const QuantMat *w, const float *b, float *y, int ldy, int accumulate,
                float *scratch, int threads) {
    const int N = w->N, K = w->K, panels = (N + NR - 1) / NR, rblocks = (n + MR - 1) / MR;
    const size_t per = gemm_quant_scratch(K);
    /* each panel is dequantized once per call, by the thread that then runs all its row blocks,
     * so the threads split the panels (the row blocks of gemm_packed's split would dequantize
     * a panel once per thread); every output is still one kern call over the whole K */
    #pragma omp parallel num_threads(threads) if ((double)n * N * K >= 65536 && threads > 1)
    {
        float *wp = scratch + (size_t)omp_get_thread_num() * per, *tmp = wp + (size_t)K * NR;
        #pragma omp for schedule(static)
        for (int p = 0; p < panels; p++) {
            const int c0 = p * NR, nc = N - c0 < NR ? N - c0 : NR;
            quant_panel(w, c0, nc, NR, wp, tmp);
            for (int rb = 0; rb < rblocks; rb++) {
                const int r0 = rb * MR, mr = n - r0 < MR ? n - r0 : MR;
                kern_rows(mr, x + (size_t)r0 * ldx, ldx, K, wp, NR, 1.f, b ? b + c0 : NULL, y + (size_t)r0 * ldy + c0, ldy, nc,
                          accumulate, NULL);
            }
        }
    }
}
