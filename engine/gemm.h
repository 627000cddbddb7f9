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

#include "engine/quant.h"

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
 * No packing: B's rows are read in place, NR columns at a time.  kend (n) or NULL: row r sums
 * k < kend[r] only, in the same order (the result is the full sum's when x[r][k] = 0 past
 * kend[r] and B is finite there; B's rows past it are not read for row r: the causal attention's
 * later positions, whose values may be NaN, cannot reach an earlier row). */
void gemm_strided(const float *x, int ldx, int n, int K, const float *w, size_t ldw, int N, float alpha, float *y, int ldy,
                  int accumulate, const int *kend);

/* The same product on a matrix kept as blocks (engine/quant.h, a GGUF tensor on the CPU): each
 * panel of GEMM_NR rows of w is dequantized into the packed layout above (quant_panel) and
 * multiplied by every row of x, so the result equals gemm_packed on the dequantized, packed
 * matrix bit for bit.  Threads: OpenMP over panels, each thread its own panel in scratch
 * (gemm_quant_scratch(K) floats per thread, `threads` of them; at most that many threads run). */
size_t gemm_quant_scratch(int K);
void gemm_quant(const float *x, int ldx, int n, const QuantMat *w, const float *b, float *y, int ldy, int accumulate,
                float *scratch, int threads);

#ifdef __cplusplus
}
#endif
#endif
