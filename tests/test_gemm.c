/*
 * test_gemm.c — engine/gemm.h against a double-precision reference loop: packed weights and
 * strided operands, every row-block tail (n = 1 .. 2 blocks + odd), partial last panels
 * (N not a multiple of the panel width), bias, accumulate, alpha, and operands embedded in
 * wider rows (ldx, ldy, ldw larger than the logical sizes).  gemm_quant on block matrices and
 * gemm_strided with per-row ends (kend) against gemm_packed / gemm_strided themselves, bit for
 * bit, since that is their contract.
 */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gemm.h"
#include "engine/quant.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * 0x1.0p-53 * 2 - 1);
}

/* y_ref (n, N) = acc0 + alpha x W^T (+ b), W (N, K) given as element (col, k) */
static double check(const float *x, int ldx, int n, int K, const float *W, int N, const float *b, const float *y0, int ldy,
                    int accumulate, float alpha, const float *y) {
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)x[(size_t)i * ldx + k] * W[(size_t)j * K + k];
            s = alpha * s + (b ? b[j] : 0) + (accumulate ? y0[(size_t)i * ldy + j] : 0);
            double d = fabs(s - y[(size_t)i * ldy + j]) / (1 + fabs(s));
            if (d > worst) worst = d;
        }
    /* and nothing written past the N columns of each row */
    for (int i = 0; i < n; i++)
        for (int j = N; j < ldy; j++) assert_true(y[(size_t)i * ldy + j] == y0[(size_t)i * ldy + j]);
    return worst;
}

static void test_packed(void **state) {
    const int Ns[] = {1, 7, 31, 32, 33, 64, 100, 320}, Ks[] = {1, 5, 64, 177}, ns[] = {1, 2, 5, 6, 7, 8, 9, 16, 17, 64};
    double worst = 0;
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t bk = 0; bk < sizeof Ks / sizeof *Ks; bk++)
            for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
                for (int mode = 0; mode < 2; mode++) {
                    const int N = Ns[a], K = Ks[bk], n = ns[c], ldx = K + 3, ldy = N + 5;
                    float *W = malloc((size_t)N * K * 4), *x = malloc((size_t)n * ldx * 4), *b = malloc((size_t)N * 4);
                    float *y = malloc((size_t)n * ldy * 4), *y0 = malloc((size_t)n * ldy * 4);
                    float *wp = malloc(gemm_packed_size(N, K) * 4);
                    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = frand();
                    for (size_t i = 0; i < (size_t)n * ldx; i++) x[i] = frand();
                    for (int i = 0; i < N; i++) b[i] = frand();
                    for (size_t i = 0; i < (size_t)n * ldy; i++) y0[i] = y[i] = frand();
                    assert_true(gemm_packed_size(N, K) >= (size_t)N * K);
                    gemm_pack(W, N, K, wp);
                    gemm_packed(x, ldx, n, K, wp, N, mode ? b : NULL, y, ldy, mode);
                    double d = check(x, ldx, n, K, W, N, mode ? b : NULL, y0, ldy, mode, 1.f, y);
                    if (d > 1e-5) fail_msg("packed N %d K %d n %d mode %d: relative error %.3g", N, K, n, mode, d);
                    if (d > worst) worst = d;
                    free(W); free(x); free(b); free(y); free(y0); free(wp);
                }
    print_message("gemm_packed: max relative error %.3g over %zu shapes\n", worst, 2 * sizeof Ns / sizeof *Ns * sizeof Ks / sizeof *Ks * sizeof ns / sizeof *ns);
}

/* B (K, N) row-major with row stride ldw, as the attention's values (and its transposed keys) */
static void test_strided(void **state) {
    const int Ns[] = {16, 32, 64, 65, 1020}, Ks[] = {1, 16, 64, 300}, ns[] = {1, 3, 8, 13, 64};
    double worst = 0;
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t bk = 0; bk < sizeof Ks / sizeof *Ks; bk++)
            for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
                for (int mode = 0; mode < 2; mode++) {
                    const int N = Ns[a], K = Ks[bk], n = ns[c], ldx = K + 1, ldy = N + 2;
                    const size_t ldw = (size_t)N + 7;
                    float *B = malloc((size_t)K * ldw * 4), *W = malloc((size_t)N * K * 4), *x = malloc((size_t)n * ldx * 4);
                    float *y = malloc((size_t)n * ldy * 4), *y0 = malloc((size_t)n * ldy * 4);
                    for (size_t i = 0; i < (size_t)K * ldw; i++) B[i] = frand();
                    for (int j = 0; j < N; j++)
                        for (int k = 0; k < K; k++) W[(size_t)j * K + k] = B[(size_t)k * ldw + j];
                    for (size_t i = 0; i < (size_t)n * ldx; i++) x[i] = frand();
                    for (size_t i = 0; i < (size_t)n * ldy; i++) y0[i] = y[i] = frand();
                    const float alpha = mode ? 0.125f : 1.f;
                    gemm_strided(x, ldx, n, K, B, ldw, N, alpha, y, ldy, mode, NULL);
                    double d = check(x, ldx, n, K, W, N, NULL, y0, ldy, mode, alpha, y);
                    if (d > 1e-5) fail_msg("strided N %d K %d n %d mode %d: relative error %.3g", N, K, n, mode, d);
                    if (d > worst) worst = d;
                    free(B); free(W); free(x); free(y); free(y0);
                }
    print_message("gemm_strided: max relative error %.3g\n", worst);
}

/* gemm_quant = gemm_packed on the dequantized, packed matrix, bit for bit: two segments of
 * different types (a panel straddles them), N not a multiple of the panel, bias, accumulate,
 * 1 and 3 threads */
static void test_quant(void **state) {
    const uint32_t types[][2] = {{QT_Q4_K, QT_Q6_K}, {QT_Q8_0, QT_Q4_0}, {QT_Q5_K, QT_F16}, {QT_F32, QT_BF16}, {QT_Q4_1, QT_Q5_1}};
    const int K = 512, rows[2] = {45, 26}, N = rows[0] + rows[1], ns[] = {1, 9, 64};
    char err[256];
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        QuantMat m = {.N = N, .K = K, .n_seg = 2};
        float *W = malloc((size_t)N * K * sizeof(float)), *b = malloc(N * sizeof(float));
        uint8_t *blk[2];
        for (int s2 = 0, r0 = 0; s2 < 2; r0 += rows[s2], s2++) {
            uint64_t rb;
            assert_int_equal(quant_row_bytes(types[ti][s2], K, &rb), 0);
            float *src = malloc((size_t)rows[s2] * K * sizeof(float));
            for (size_t i = 0; i < (size_t)rows[s2] * K; i++) src[i] = frand();
            blk[s2] = malloc(rb * rows[s2]);
            if (quant_quantize(types[ti][s2], src, blk[s2], (size_t)rows[s2] * K, err, sizeof err)) fail_msg("%s", err);
            if (quant_dequantize(types[ti][s2], blk[s2], W + (size_t)r0 * K, (size_t)rows[s2] * K, err, sizeof err)) fail_msg("%s", err);
            m.seg[s2] = (QuantSeg){types[ti][s2], rows[s2], (size_t)rb, blk[s2]};
            free(src);
        }
        for (int j = 0; j < N; j++) b[j] = frand();
        float *wp = malloc(gemm_packed_size(N, K) * sizeof(float));
        gemm_pack(W, N, K, wp);
        float *scratch = malloc(gemm_quant_scratch(K) * 3 * sizeof(float));
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (int acc = 0; acc < 2; acc++)
                for (int th = 1; th <= 3; th += 2) {
                    const int n = ns[ni];
                    float *x = malloc((size_t)n * K * sizeof(float)), *y0 = malloc((size_t)n * N * sizeof(float)), *y1 = malloc((size_t)n * N * sizeof(float));
                    for (size_t i = 0; i < (size_t)n * K; i++) x[i] = frand();
                    for (size_t i = 0; i < (size_t)n * N; i++) y0[i] = y1[i] = frand();
                    gemm_packed(x, K, n, K, wp, N, acc ? b : NULL, y0, N, acc);
                    omp_set_num_threads(th);
                    gemm_quant(x, K, n, &m, acc ? b : NULL, y1, N, acc, scratch, th);
                    omp_set_num_threads(3);
                    if (memcmp(y0, y1, (size_t)n * N * sizeof(float)))
                        fail_msg("gemm_quant %s+%s, n %d, accumulate %d, %d threads: differs from gemm_packed", quant_type_name(types[ti][0]),
                                 quant_type_name(types[ti][1]), n, acc, th);
                    free(x); free(y0); free(y1);
                }
        free(W); free(b); free(wp); free(scratch); free(blk[0]); free(blk[1]);
    }
}

/* gemm_strided with kend: row r sums k < kend[r] only.  With x zero past kend the result is the
 * full product's bit for bit; a NaN row k of B reaches exactly the rows whose end is past k. */
static void test_strided_kend(void **state) {
    const int N = 40, K = 70, n = 19, ld = N + 3;
    float *x = malloc((size_t)n * K * sizeof(float)), *B = malloc((size_t)K * ld * sizeof(float)), *Bn = malloc((size_t)K * ld * sizeof(float));
    float *y0 = malloc((size_t)n * N * sizeof(float)), *y1 = malloc((size_t)n * N * sizeof(float)), *yi = malloc((size_t)n * N * sizeof(float));
    int kend[19];
    for (int r = 0; r < n; r++) kend[r] = 20 + (r * 37) % 51; /* unordered, 20 .. 70 */
    for (int r = 0; r < n; r++)
        for (int k = 0; k < K; k++) x[(size_t)r * K + k] = k < kend[r] ? frand() : 0.f;
    for (size_t i = 0; i < (size_t)K * ld; i++) B[i] = frand();
    for (int acc = 0; acc < 2; acc++)
        for (int kn = 19; kn < K; kn += 10) { /* the NaN row */
            for (size_t i = 0; i < (size_t)n * N; i++) yi[i] = frand();
            memcpy(y0, yi, (size_t)n * N * sizeof(float));
            memcpy(y1, yi, (size_t)n * N * sizeof(float));
            gemm_strided(x, K, n, K, B, ld, N, 0.5f, y0, N, acc, NULL);
            memcpy(Bn, B, (size_t)K * ld * sizeof(float));
            for (int j = 0; j < N; j++) Bn[(size_t)kn * ld + j] = NAN;
            gemm_strided(x, K, n, K, Bn, ld, N, 0.5f, y1, N, acc, kend);
            for (int r = 0; r < n; r++) {
                const float *a = y0 + (size_t)r * N, *c = y1 + (size_t)r * N;
                if (kend[r] <= kn) {
                    if (memcmp(a, c, N * sizeof(float))) fail_msg("kend %d, NaN at row %d of B (accumulate %d): row %d differs from the full product", kend[r], kn, acc, r);
                } else
                    for (int j = 0; j < N; j++) assert_true(isnan(c[j]));
            }
        }
    free(x); free(B); free(Bn); free(y0); free(y1); free(yi);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_quant),
        cmocka_unit_test(test_strided_kend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
