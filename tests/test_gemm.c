/*
 * test_gemm.c — engine/gemm.h against a double-precision reference loop: packed weights and
 * strided operands, every row-block tail (n = 1 .. 2 blocks + odd), partial last panels
 * (N not a multiple of the panel width), bias, accumulate, alpha, and operands embedded in
 * wider rows (ldx, ldy, ldw larger than the logical sizes).
 */
#include "testutil.h"

#include <math.h>

#include "engine/gemm.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed),
        cmocka_unit_test(test_strided),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
