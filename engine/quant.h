/*
 * quant.h — ggml's tensor types: their block sizes, dequantization to fp32, and reference
 * round-to-nearest quantizers (used to test the dequantizers by round trip).
 *
 * Block layouts as ggml-common.h defines them (all little-endian, fp16 scales):
 *   Q8_0  32 values: d, int8 q[32]                              x = d q
 *   Q4_0  32 values: d, 4-bit q[32] (low nibbles first)         x = d (q - 8)
 *   Q4_1  32 values: d, m, 4-bit q[32]                          x = d q + m
 *   Q5_0  32 values: d, high bits u32, 4-bit low q[32]          x = d (q - 16)
 *   Q5_1  32 values: d, m, high bits, low q                     x = d q + m
 *   Q4_K 256 values: d, dmin, 12 bytes of 6-bit (scale, min) for 8 sub-blocks of 32, 4-bit q
 *                    x = d sc q - dmin m
 *   Q5_K 256 values: as Q4_K plus 32 bytes of fifth bits
 *   Q6_K 256 values: 4-bit low q[256], 2-bit high q, int8 scales for 16 sub-blocks of 16, d
 *                    x = d sc (q - 32)
 * The other ggml types are known by size (a file holding them can be read and its bytes
 * counted) but not dequantized: quant_supported says which are.
 */
#ifndef LCB_QUANT_H
#define LCB_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ggml type ids (ggml.h's enum ggml_type). */
enum {
    QT_F32 = 0, QT_F16 = 1, QT_Q4_0 = 2, QT_Q4_1 = 3, QT_Q5_0 = 6, QT_Q5_1 = 7, QT_Q8_0 = 8,
    QT_Q8_1 = 9, QT_Q2_K = 10, QT_Q3_K = 11, QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14, QT_Q8_K = 15,
    QT_I8 = 24, QT_I16 = 25, QT_I32 = 26, QT_I64 = 27, QT_F64 = 28, QT_BF16 = 30,
    QT_COUNT = 42 /* ids below this are looked up; unknown ids are refused */
};

/* Name ("Q4_K"), or NULL for an id ggml does not define. */
const char *quant_type_name(uint32_t type);
/* Values per block and bytes per block; 0 for an unknown id. */
int quant_block_size(uint32_t type);
size_t quant_type_size(uint32_t type);
/* 1 when quant_dequantize handles the type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K). */
int quant_supported(uint32_t type);
/* Bytes of n values (n a multiple of the block size): -1 when it is not, or overflows. */
int quant_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes);

/* n values (a multiple of the block size) from src to fp32. */
int quant_dequantize(uint32_t type, const void *src, float *dst, size_t n, char *err, size_t errlen);
/* n values to blocks of `type`: round to nearest, one scale per block or sub-block as ggml's
 * reference quantizers lay them out (not its error-minimising search). */
int quant_quantize(uint32_t type, const float *src, void *dst, size_t n, char *err, size_t errlen);

/* A weight matrix kept as its blocks (a GGUF tensor on the CPU, engine/gemm.h gemm_quant):
 * N rows of K values, row r in the segment that holds it, as the file stores it (row_bytes per
 * row, whole blocks).  A fused matrix ([q | k | v], [gate | up]) is one segment per tensor,
 * which may differ in type (Q4_K_M files hold Q4_K and Q6_K side by side). */
typedef struct {
    uint32_t type;            /* a quant_supported type */
    int rows;
    size_t row_bytes;
    const uint8_t *data;      /* (rows, row_bytes) */
} QuantSeg;

typedef struct {
    int N, K;                 /* (out, in) */
    int n_seg;
    QuantSeg seg[3];
} QuantMat;

/* Rows r0 .. r0 + nr - 1 of m as a column panel of `ld` columns: dst[k ld + j] = W[r0 + j][k],
 * 0 for nr <= j < ld (nr <= ld).  tmp: ld * QUANT_SLAB floats of scratch (the rows are
 * dequantized QUANT_SLAB values at a time, then transposed).  The values are
 * quant_dequantize's, bit for bit. */
#define QUANT_SLAB 256
void quant_panel(const QuantMat *m, int r0, int nr, int ld, float *dst, float *tmp);

/* fp32 -> fp16 / bf16, rounding to nearest even (NaN stays NaN). */
uint16_t quant_f32_to_f16(float f);
uint16_t quant_f32_to_bf16(float f);
float quant_f16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
