/*
 * quant.c — ggml's block types: sizes, dequantization to fp32 and reference quantizers.
 *
 * The dequantizers follow the block layouts of ggml-common.h and compute in the same order as
 * ggml's reference code (d * sc first, then times q, minus dmin * m), so their fp32 results are
 * the values llama.cpp and gguf-py get (tests/test_gguf.c checks them against gguf-py's, block by
 * block).  The quantizers are plain round-to-nearest with one scale per block or sub-block; they
 * exist to test the dequantizers by round trip and to write test files, not to make good models.
 */
#include "engine/quant.h"
#include "engine/safetensors.h"
#include "engine/common.h"

#include <math.h>
#include <string.h>

#define QK_K 256

static const struct { const char *name; int block; int size; int supported; } types[QT_COUNT + 1] = {
    [QT_F32] = {"F32", 1, 4, 1},         [QT_F16] = {"F16", 1, 2, 1},
    [QT_Q4_0] = {"Q4_0", 32, 18, 1},     [QT_Q4_1] = {"Q4_1", 32, 20, 1},
    [QT_Q5_0] = {"Q5_0", 32, 22, 1},     [QT_Q5_1] = {"Q5_1", 32, 24, 1},
    [QT_Q8_0] = {"Q8_0", 32, 34, 1},     [QT_Q8_1] = {"Q8_1", 32, 36, 0},
    [QT_Q2_K] = {"Q2_K", 256, 84, 0},    [QT_Q3_K] = {"Q3_K", 256, 110, 0},
    [QT_Q4_K] = {"Q4_K", 256, 144, 1},   [QT_Q5_K] = {"Q5_K", 256, 176, 1},
    [QT_Q6_K] = {"Q6_K", 256, 210, 1},   [QT_Q8_K] = {"Q8_K", 256, 292, 0},
    [16] = {"IQ2_XXS", 256, 66, 0},      [17] = {"IQ2_XS", 256, 74, 0},
    [18] = {"IQ3_XXS", 256, 98, 0},      [19] = {"IQ1_S", 256, 50, 0},
    [20] = {"IQ4_NL", 32, 18, 0},        [21] = {"IQ3_S", 256, 110, 0},
    [22] = {"IQ2_S", 256, 82, 0},        [23] = {"IQ4_XS", 256, 136, 0},
    [QT_I8] = {"I8", 1, 1, 0},           [QT_I16] = {"I16", 1, 2, 0},
    [QT_I32] = {"I32", 1, 4, 0},         [QT_I64] = {"I64", 1, 8, 0},
    [QT_F64] = {"F64", 1, 8, 0},         [29] = {"IQ1_M", 256, 56, 0},
    [QT_BF16] = {"BF16", 1, 2, 1},
    [34] = {"TQ1_0", 256, 54, 0},        [35] = {"TQ2_0", 256, 66, 0},
    [39] = {"MXFP4", 32, 17, 0},         [40] = {"NVFP4", 64, 36, 0},
    [41] = {"Q1_0", 128, 18, 0},         [42] = {"Q2_0", 64, 18, 0},
};

const char *quant_type_name(uint32_t t) { return t <= QT_COUNT ? types[t].name : NULL; }
int quant_block_size(uint32_t t) { return t <= QT_COUNT && types[t].name ? types[t].block : 0; }
size_t quant_type_size(uint32_t t) { return t <= QT_COUNT && types[t].name ? (size_t)types[t].size : 0; }
int quant_supported(uint32_t t) { return t <= QT_COUNT && types[t].supported; }

int quant_row_bytes(uint32_t t, uint64_t n, uint64_t *bytes) {
    int bs = quant_block_size(t);
    if (!bs || n % bs) return -1;
    uint64_t nb = n / bs, ts = quant_type_size(t);
    if (ts && nb > UINT64_MAX / ts) return -1;
    *bytes = nb * ts;
    return 0;
}

/* ---------------------------------------------------------------- fp16 / bf16 */

float quant_f16_to_f32(uint16_t h) { return st_f16_to_f32(h); } /* one IEEE half decoder (safetensors.c) */

uint16_t quant_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);              /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);             /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                              /* below 2^-14: subnormal */
        if (a < 0x33000000u) return (uint16_t)sign;                     /* below half the least subnormal */
        uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
        int shift = 126 - (int)e;                                       /* 14 + 23 - 10 - (e - 127) + 1 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((a >> 13) - (112u << 10)), rem = a & 0x1fff;          /* rebias 127 -> 15 */
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

uint16_t quant_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline float ld_half(const uint8_t *p) { return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline void st_half(uint8_t *p, float f) { uint16_t h = quant_f32_to_f16(f); p[0] = (uint8_t)h; p[1] = (uint8_t)(h >> 8); }

/* ---------------------------------------------------------------- dequantization */

static void dq_q8_0(const uint8_t *b, float *y) {
    const float d = ld_half(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

static void dq_q4_0(const uint8_t *b, float *y) {
    const float d = ld_half(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    const float d = ld_half(b), m = ld_half(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0f) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static inline uint32_t ld_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void dq_q5_0(const uint8_t *b, float *y) {
    const float d = ld_half(b);
    const uint32_t qh = ld_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
        y[j] = (float)(((qs[j] & 0x0f) | h0 << 4) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | h1 << 4) - 16) * d;
    }
}

static void dq_q5_1(const uint8_t *b, float *y) {
    const float d = ld_half(b), m = ld_half(b + 2);
    const uint32_t qh = ld_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
        y[j] = (float)((qs[j] & 0x0f) | h0 << 4) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) | h1 << 4) * d + m;
    }
}

/* The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K / Q5_K. */
static inline void k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) { *sc = q[j] & 63; *m = q[j + 4] & 63; }
    else { *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

static void dq_q4_k(const uint8_t *b, float *y) {
    const float d = ld_half(b), dmin = ld_half(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
        int sc, m;
        k_scale_min(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        k_scale_min(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
}

static void dq_q5_k(const uint8_t *b, float *y) {
    const float d = ld_half(b), dmin = ld_half(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        int sc, m;
        k_scale_min(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        k_scale_min(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0x0f) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = ld_half(b + 208);
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
    }
}

typedef void (*BlockFn)(const uint8_t *, float *);

/* The block dequantizer of a block type (NULL for F32, F16, BF16). */
static BlockFn block_fn(uint32_t t) {
    switch (t) {
    case QT_Q8_0: return dq_q8_0;
    case QT_Q4_0: return dq_q4_0;
    case QT_Q4_1: return dq_q4_1;
    case QT_Q5_0: return dq_q5_0;
    case QT_Q5_1: return dq_q5_1;
    case QT_Q4_K: return dq_q4_k;
    case QT_Q5_K: return dq_q5_k;
    case QT_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}

/* n values of the float types from p (n whole blocks for the others, fn their dequantizer). */
static void dq_run(uint32_t t, BlockFn fn, const uint8_t *p, float *dst, size_t n) {
    switch (t) {
    case QT_F32: memcpy(dst, p, n * 4); return;
    case QT_F16: for (size_t i = 0; i < n; i++) dst[i] = ld_half(p + 2 * i); return;
    case QT_BF16:
        for (size_t i = 0; i < n; i++) { uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16; memcpy(dst + i, &u, 4); }
        return;
    default: {
        const int bs = types[t].block, ts = types[t].size;
        for (size_t i = 0; i < n / bs; i++) fn(p + i * ts, dst + i * bs);
    }
    }
}

int quant_dequantize(uint32_t t, const void *src, float *dst, size_t n, char *err, size_t errlen) {
    const uint8_t *p = src;
    if (!quant_supported(t))
        return lcb_fail(err, errlen, "tensor type %s (ggml type %u) cannot be dequantized by lcbench (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K can)",
                        quant_type_name(t) ? quant_type_name(t) : "unknown", t);
    const int bs = types[t].block, ts = types[t].size;
    if (n % bs) return lcb_fail(err, errlen, "%zu values of type %s: not a whole number of %d-value blocks", n, types[t].name, bs);
    BlockFn fn = block_fn(t);
    if (!fn) { dq_run(t, NULL, p, dst, n); return 0; }
    const size_t nb = n / bs;
    #pragma omp parallel for schedule(static) if (nb >= 4096)
    for (size_t i = 0; i < nb; i++) fn(p + i * ts, dst + i * bs);
    return 0;
}

void quant_panel(const QuantMat *m, int r0, int nr, int ld, float *dst, float *tmp) {
    const int K = m->K;
    /* the segment of each row: rows of one panel may straddle two segments */
    const uint8_t *src[nr > 0 ? nr : 1];
    uint32_t type[nr > 0 ? nr : 1];
    for (int j = 0, s = 0, base = 0; j < nr; j++) {
        while (r0 + j >= base + m->seg[s].rows) base += m->seg[s++].rows;
        src[j] = m->seg[s].data + (size_t)(r0 + j - base) * m->seg[s].row_bytes;
        type[j] = m->seg[s].type;
    }
    for (int k0 = 0; k0 < K; k0 += QUANT_SLAB) {
        const int kn = K - k0 < QUANT_SLAB ? K - k0 : QUANT_SLAB;
        for (int j = 0; j < nr; j++) {
            const uint32_t t = type[j];
            /* kn is whole blocks: k0 is a multiple of 256 and K of the block size */
            dq_run(t, block_fn(t), src[j] + (size_t)(k0 / types[t].block) * types[t].size, tmp + (size_t)j * QUANT_SLAB, (size_t)kn);
        }
        float *d = dst + (size_t)k0 * ld;
        for (int k = 0; k < kn; k++, d += ld) {
            int j = 0;
            for (; j < nr; j++) d[j] = tmp[(size_t)j * QUANT_SLAB + k];
            for (; j < ld; j++) d[j] = 0.f;
        }
    }
}

/* ---------------------------------------------------------------- quantization (round to nearest) */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The value of largest magnitude, with its sign (ggml's Q4_0/Q5_0 scale it to -8 / -16). */
static float signed_max(const float *x, int n) {
    float amax = 0, mx = 0;
    for (int j = 0; j < n; j++) if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); mx = x[j]; }
    return mx;
}

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127, id = d ? 1 / d : 0;
    st_half(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)clampi((int)roundf(x[j] * id), -127, 127);
}

static void q_q4_0(const float *x, uint8_t *b) {
    const float d = signed_max(x, 32) / -8, id = d ? 1 / d : 0;
    st_half(b, d);
    for (int j = 0; j < 16; j++) {
        int q0 = clampi((int)(x[j] * id + 8.5f), 0, 15), q1 = clampi((int)(x[j + 16] * id + 8.5f), 0, 15);
        b[2 + j] = (uint8_t)(q0 | q1 << 4);
    }
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    *mn = *mx = x[0];
    for (int j = 1; j < n; j++) { *mn = fminf(*mn, x[j]); *mx = fmaxf(*mx, x[j]); }
}

/* Q4_1 / Q5_1: x ~ d q + m over the block's range, m its minimum, d = range / nmax (both fp16
 * at b, b + 2); q gets the 32 levels. */
static void q_affine(const float *x, int nmax, uint8_t *b, int *q) {
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    const float d = (mx - mn) / nmax, id = d ? 1 / d : 0;
    st_half(b, d);
    st_half(b + 2, mn);
    for (int j = 0; j < 32; j++) q[j] = clampi((int)((x[j] - mn) * id + 0.5f), 0, nmax);
}

static void q_q4_1(const float *x, uint8_t *b) {
    int q[32];
    q_affine(x, 15, b, q);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

static void put_u32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

static void q_q5_0(const float *x, uint8_t *b) {
    const float d = signed_max(x, 32) / -16, id = d ? 1 / d : 0;
    st_half(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int q0 = clampi((int)(x[j] * id + 16.5f), 0, 31), q1 = clampi((int)(x[j + 16] * id + 16.5f), 0, 31);
        b[6 + j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
    }
    put_u32(b + 2, qh);
}

static void q_q5_1(const float *x, uint8_t *b) {
    int q[32];
    q_affine(x, 31, b, q);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        b[8 + j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    put_u32(b + 4, qh);
}

/* Q4_K / Q5_K: per sub-block of 32 a scale and a min (x ~ scale q - min, min >= 0), both
 * stored as 6-bit multiples of the fp16 d and dmin; nmax = 15 or 31.  L gets the levels. */
static void q_k_scales(const float *x, int nmax, uint8_t *b, uint8_t *L) {
    float scale[8], mins[8], smax = 0, mmax = 0;
    for (int j = 0; j < 8; j++) {
        float mn, mx;
        minmax(x + 32 * j, 32, &mn, &mx);
        mn = fminf(mn, 0);
        scale[j] = (mx - mn) / nmax;
        mins[j] = -mn;
        smax = fmaxf(smax, scale[j]);
        mmax = fmaxf(mmax, mins[j]);
    }
    const float d = smax / 63, dmin = mmax / 63;
    st_half(b, d);
    st_half(b + 2, dmin);
    const float dh = ld_half(b), dminh = ld_half(b + 2); /* the values the dequantizer will see */
    uint8_t *s = b + 4;
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        int sc = d ? clampi((int)roundf(scale[j] / d), 0, 63) : 0, m = dmin ? clampi((int)roundf(mins[j] / dmin), 0, 63) : 0;
        if (j < 4) { s[j] = (uint8_t)sc; s[j + 4] = (uint8_t)m; }
        else {
            s[j + 4] = (uint8_t)((sc & 0x0f) | (m & 0x0f) << 4);
            s[j - 4] |= (uint8_t)((sc >> 4) << 6);
            s[j] |= (uint8_t)((m >> 4) << 6);
        }
        const float ds = dh * sc, dm = dminh * m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)(ds ? clampi((int)roundf((x[32 * j + l] + dm) / ds), 0, nmax) : 0);
    }
}

static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    q_k_scales(x, 15, b, L);
    uint8_t *q = b + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
}

static void q_q5_k(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    q_k_scales(x, 31, b, L);
    uint8_t *qh = b + 16, *ql = b + 48;
    memset(qh, 0, 32);
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K; j += 64, ql += 32, u1 <<= 2, u2 <<= 2)
        for (int l = 0; l < 32; l++) {
            int a = L[j + l], c = L[j + l + 32];
            ql[l] = (uint8_t)((a & 0x0f) | (c & 0x0f) << 4);
            if (a > 15) qh[l] |= u1;
            if (c > 15) qh[l] |= u2;
        }
}

static void q_q6_k(const float *x, uint8_t *b) {
    float scale[16], smax = 0;
    for (int j = 0; j < 16; j++) {
        float amax = 0;
        for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(x[16 * j + l]));
        scale[j] = amax / 31;
        smax = fmaxf(smax, scale[j]);
    }
    const float d = smax / 127;
    st_half(b + 208, d);
    const float dh = ld_half(b + 208);
    int8_t *sc = (int8_t *)(b + 192);
    uint8_t L[QK_K];
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)(d ? clampi((int)roundf(scale[j] / d), -127, 127) : 0);
        const float ds = dh * sc[j];
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)(ds ? clampi((int)roundf(x[16 * j + l] / ds), -32, 31) + 32 : 32);
    }
    uint8_t *ql = b, *qh = b + 128;
    for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = L + n;
            ql[l] = (uint8_t)((v[l] & 0x0f) | (v[l + 64] & 0x0f) << 4);
            ql[l + 32] = (uint8_t)((v[l + 32] & 0x0f) | (v[l + 96] & 0x0f) << 4);
            qh[l] = (uint8_t)((v[l] >> 4) | (v[l + 32] >> 4) << 2 | (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
        }
}

int quant_quantize(uint32_t t, const float *src, void *dst, size_t n, char *err, size_t errlen) {
    uint8_t *p = dst;
    if (!quant_supported(t)) return lcb_fail(err, errlen, "no quantizer for tensor type %s", quant_type_name(t) ? quant_type_name(t) : "unknown");
    const int bs = types[t].block, ts = types[t].size;
    if (n % bs) return lcb_fail(err, errlen, "%zu values of type %s: not a whole number of %d-value blocks", n, types[t].name, bs);
    switch (t) {
    case QT_F32: memcpy(p, src, n * 4); return 0;
    case QT_F16: for (size_t i = 0; i < n; i++) st_half(p + 2 * i, src[i]); return 0;
    case QT_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h = quant_f32_to_bf16(src[i]); p[2 * i] = (uint8_t)h; p[2 * i + 1] = (uint8_t)(h >> 8); }
        return 0;
    default: break;
    }
    void (*fn)(const float *, uint8_t *) = t == QT_Q8_0 ? q_q8_0 : t == QT_Q4_0 ? q_q4_0 : t == QT_Q4_1 ? q_q4_1
                                         : t == QT_Q5_0 ? q_q5_0 : t == QT_Q5_1 ? q_q5_1 : t == QT_Q4_K ? q_q4_k
                                         : t == QT_Q5_K ? q_q5_k : q_q6_k;
    for (size_t i = 0; i < n / bs; i++) fn(src + i * bs, p + i * ts);
    return 0;
}
