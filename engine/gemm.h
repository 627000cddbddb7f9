/*
 * gemm.h — the CPU forward's weight products, y (n, N) (+)= x (n, K) W^T (+ b), on weights packed
 * once at load into column panels.
 *
 * Why not OpenBLAS here: cblas_sgemm packs both operands on every call.  With the weight as one
 * operand and a chunk of 64 tokens as the other, re-packing the weight costs a third of the
 * GEMM's time on this project's machines (perf, `make bench`: sgemm_itcopy + incopy 30% of a
 * one-thread forward), because each weight element is used only n = 64 times per call.  OpenBLAS
 * has no API to keep a packed operand, so the CPU path packs its weights itself, once, in the
 * layout its micro-kernel reads, and only the activations stream per call.  OpenBLAS still does
 * the LM head's products and every other GEMM.
 *
 * Packed layout: panels of GEMM_NR output columns; panel p holds W[p NR + j][k] at
 * [p][k][j] (k < K, j < NR), zero past column N.
 */
#ifndef LCB_GEMM_H
#define LCB_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* floats of the packed form of a (N, K) matrix (N rounded up to whole panels) */
size_t gemm_packed_size(int N, int K);
/* w (N, K) row-major (the checkpoint's (out, in) layout) -> dst (gemm_packed_size floats) */
void gemm_pack(const float *w, int N, int K, float *dst);
/* y (n, N) with row stride ldy: y = x W^T (+ b) (accumulate = 0) or y += x W^T (+ b);
 * x (n, K) row stride ldx; b (N) or NULL.  Threads: OpenMP over column panels and row blocks. */
void gemm_packed(const float *x, int ldx, int n, int K, const float *wp, int N, const float *b, float *y, int ldy,
                 int accumulate);

/* The same kernel on an unpacked right operand: y (n, N) (+)= alpha x (n, K) B with B (K, N)
 * row-major, row stride ldw (for example the attention's values, or its keys stored transposed).
 * No packing: B's rows are read in place, NR columns at a time. */
void gemm_strided(const float *x, int ldx, int n, int K, const float *w, size_t ldw, int N, float alpha, float *y, int ldy,
                  int accumulate);

#ifdef __cplusplus
}
#endif
#endif
