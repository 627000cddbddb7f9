/*
 * test_cuda.c — the CUDA backend against the CPU reference (make test-cuda; needs a GPU).
 *
 *   kernels:   norm, activations, RoPE, fused NLL and the seeded normal fill, each against its
 *              CPU twin (model.c's loops, rope_apply, model_nll, fill_normal), in fp32 (the
 *              fill bit for bit: engine/rng.h on both sides);
 *   fixtures:  every fixture and every strategy of its reference.json, on the device in fp32
 *              (TF32 off), bf16 and fp16, at several chunk sizes, against the reference NLLs;
 *   policies:  random models, CUDA vs the CPU path under dense / window / sink / s2, chunks
 *              larger than the backend's internal sub-chunk; bf16 results independent of the
 *              chunk size; the fixtures under every attention kernel variant;
 *   attention: the attention kernels alone (flash, every launch configuration, and the scalar
 *              fallback) against a CPU twin in double, for every policy, GQA/MQA and head dim;
 *   memory:    allocator accounting by category, and an impossible model failing with
 *              "out of memory" and leaving the accounting as it was;
 *   tp:        with 2+ GPUs, tensor parallelism (--tp 2, 4) against one GPU: every fixture
 *              (MHA, GQA, MQA with replicated KV heads, NeoX parallel residual with biases) in
 *              fp32, and the llama2-7b shape in bf16; shapes that cannot split are refused.
 * Every tolerance is written next to its check with its reason; measured maxima are printed.
 */
#include "testutil.h"

#include <math.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/cuda/ops.h"
#include "engine/gemm.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/rng.h"
#include "strategies/strategy.h"

/* TU_TOL_F32 and TU_TOL_BF16 (testutil.h, shared with test_cuda_state.c) bound fp32 and bf16
 * on the device against the CPU; the fp32-weight fixtures are a different model once rounded to
 * bf16 (every weight moves by up to 2^-9 relative, and these tiny random models have large logit
 * sensitivities): 1e-1 there, measured up to 7.4e-2 on llama_gqa sink:1:15; separating rounding
 * from kernel error needs a CPU run of the rounded weights (not done yet) */
#define TOL_BF16_ROUNDED 1e-1
/* fp16: 11 bits of mantissa, same structure */
#define TOL_F16 1e-2

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * 0x1.0p-53 * 2 - 1);
}

/* ---------------------------------------------------------------- kernels vs CPU twins */

static void test_kernel_norm(void **state) {
    if (!tu_have_gpu()) return;
    const int n = 5, dim = 300;
    float *x = malloc(n * dim * 4), *w = malloc(dim * 4), *b = malloc(dim * 4), *y = malloc(n * dim * 4), *r = malloc(n * dim * 4);
    for (int i = 0; i < n * dim; i++) x[i] = 3 * frand() + (i % 7);
    for (int i = 0; i < dim; i++) { w[i] = 1 + frand() * 0.5f; b[i] = frand(); }
    char err[LCB_ERRLEN];
    for (int ln = 0; ln < 2; ln++) {
        /* CPU twin: model.c's norm_rows (statistics in double there, fp32 here) */
        for (int i = 0; i < n; i++) {
            const float *xi = x + i * dim;
            double mean = 0, var = 0, ss = 0;
            for (int k = 0; k < dim; k++) { mean += xi[k]; ss += (double)xi[k] * xi[k]; }
            mean /= dim;
            for (int k = 0; k < dim; k++) var += (xi[k] - mean) * (xi[k] - mean);
            for (int k = 0; k < dim; k++)
                r[i * dim + k] = ln ? (float)((xi[k] - mean) / sqrt(var / dim + 1e-5) * w[k] + b[k]) : (float)(w[k] * (xi[k] / sqrt(ss / dim + 1e-5)));
        }
        if (cuda_op_norm(x, y, w, ln ? b : NULL, n, dim, ln, 1e-5f, err, sizeof err)) fail_msg("%s", err);
        double d = max_abs_diff(y, r, (size_t)n * dim);
        print_message("norm %s: max |cuda - cpu| = %.3g\n", ln ? "LayerNorm" : "RMSNorm", d);
        assert_true(d < 1e-5); /* fp32 statistics over 300 values: ~1e-7 relative */
    }
    free(x); free(w); free(b); free(y); free(r);
}

static float act_cpu(int a, float x) { /* model.c's act_apply */
    switch (a) {
    case ACT_SILU: return x / (1.f + expf(-x));
    case ACT_GELU: return 0.5f * x * (1.f + erff(x * (float)M_SQRT1_2));
    case ACT_GELU_TANH: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ACT_RELU: return x > 0 ? x : 0;
    }
    return x;
}

static void test_kernel_act(void **state) {
    if (!tu_have_gpu()) return;
    const int n = 4, ffn = 100;
    float h[4 * 200], bias[100], out[4 * 100], ref[4 * 100];
    for (int i = 0; i < n * 2 * ffn; i++) h[i] = 4 * frand();
    for (int i = 0; i < ffn; i++) bias[i] = frand();
    char err[LCB_ERRLEN];
    for (int a = ACT_SILU; a <= ACT_RELU; a++)
        for (int gated = 0; gated < 2; gated++) {
            for (int i = 0; i < n; i++)
                for (int k = 0; k < ffn; k++)
                    ref[i * ffn + k] = gated ? act_cpu(a, h[i * 2 * ffn + k]) * h[i * 2 * ffn + ffn + k] : act_cpu(a, h[i * ffn + k] + bias[k]);
            if (cuda_op_act(h, gated ? NULL : bias, out, n, ffn, gated, a, err, sizeof err)) fail_msg("%s", err);
            double d = max_abs_diff(out, ref, (size_t)n * ffn);
            if (d > 1e-5) fail_msg("activation %d gated %d: max |cuda - cpu| = %g", a, gated, d); /* libm vs CUDA math: ulps */
        }
}

static void test_kernel_nll(void **state) {
    if (!tu_have_gpu()) return;
    const int n = 6, V = 32000;
    float *lg = malloc((size_t)n * V * 4);
    int32_t tg[6] = {0, 5, 31999, 1234, -1, 7};
    for (int i = 0; i < n * V; i++) lg[i] = 8 * frand();
    lg[3 * V + 1234] = 40; /* a peaked row */
    double nll[6];
    char err[LCB_ERRLEN];
    if (cuda_op_nll(lg, tg, nll, n, V, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        if (tg[i] < 0) { assert_true(isnan(nll[i])); continue; }
        double r = model_nll(lg + (size_t)i * V, V, tg[i]);
        if (fabs(r - nll[i]) > 1e-5) fail_msg("row %d: nll cuda %.8f cpu %.8f", i, nll[i], r); /* float exp sums of 32000 terms */
    }
    free(lg);
}

static void test_kernel_rope(void **state) {
    if (!tu_have_gpu()) return;
    ModelConfig c;
    char err[LCB_ERRLEN];
    if (config_random_shape(&c, "pythia-6.9b", err, sizeof err)) fail_msg("%s", err); /* partial rotary, 25 % */
    c.n_heads = 4; c.n_kv = 2; c.n_layers = 1;
    KVCache kv;
    if (kv_init(&kv, &c, LCB_DEVICE_CPU, 0, 64, 0, err, sizeof err)) fail_msg("%s", err);
    const int n = 40, hd = c.head_dim, H = 4, KV = 2, ld = (H + 2 * KV) * hd, rd = c.rot_dim;
    int64_t pos[40];
    for (int i = 0; i < n; i++) pos[i] = 3000000 + 977 * i; /* positions in the millions */
    float *qkv = malloc((size_t)n * ld * 4), *cs = malloc((size_t)n * rd * 4), *cpu = malloc((size_t)n * ld * 4);
    float *q = malloc((size_t)n * H * hd * 4), *k = malloc((size_t)n * KV * hd * 4);
    for (int i = 0; i < n * ld; i++) qkv[i] = frand();
    rope_table(&kv, pos, n, cs);
    memcpy(cpu, qkv, (size_t)n * ld * 4);
    rope_apply(&kv, cpu, n, ld, H + KV, hd, cs);
    if (cuda_op_rope(qkv, cs, q, k, n, H, KV, hd, kv.rot_half, err, sizeof err)) fail_msg("%s", err);
    double d = 0;
    for (int i = 0; i < n; i++) {
        for (int e = 0; e < H * hd; e++) d = fmax(d, fabs(q[i * H * hd + e] - cpu[i * ld + e]));
        for (int e = 0; e < KV * hd; e++) d = fmax(d, fabs(k[i * KV * hd + e] - cpu[i * ld + H * hd + e]));
    }
    print_message("rope (partial, positions ~3M): max |cuda - cpu| = %.3g\n", d);
    assert_true(d < 1e-6); /* same table, same two products: at most an ulp of fma contraction */
    kv_free(&kv);
    free(qkv); free(cs); free(cpu); free(q); free(k);
}

/* The device fill of random: weights against the CPU's, exactly: both call engine/rng.h
 * (integer hashing, one float multiply), so the floats must be equal bit for bit, bound 0.
 * (The 0.138 this test once measured was its own error: model_open packs a non-tied lm_head into
 * gemm_pack's panels, and the test compared those panels with the unpacked device tensor.  The old
 * Box-Muller fill was exact only as long as glibc's and CUDA's double log/cos/sin rounded to the
 * same float, which nothing guaranteed.) */
static void test_kernel_fill_normal(void **state) {
    if (!tu_have_gpu()) return;
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, "random:llama-tiny:9", NULL, err, sizeof err)) fail_msg("%s", err);
    assert_false(m.cfg.tie_embeddings);
    const int V = m.cfg.vocab, D = m.cfg.dim, F = m.cfg.ffn;
    const size_t ne = (size_t)V * D;
    float *g = malloc(ne * 4), *p = malloc(gemm_packed_size(V, D) * 4);
    /* the embedding is kept unpacked on the CPU */
    if (cuda_op_fill_normal(g, ne, 9, LCB_RNG_EMBED, err, sizeof err)) fail_msg("%s", err);
    double d = max_abs_diff(g, m.embed, ne);
    assert_memory_equal(g, m.embed, ne * 4);
    /* the LM head and a layer's down projection are packed: pack the device's copy the same way */
    if (cuda_op_fill_normal(g, ne, 9, LCB_RNG_LM_HEAD, err, sizeof err)) fail_msg("%s", err);
    gemm_pack(g, V, D, p);
    d = fmax(d, max_abs_diff(p, m.lm_head, gemm_packed_size(V, D)));
    assert_memory_equal(p, m.lm_head, gemm_packed_size(V, D) * 4);
    const int l = m.cfg.n_layers - 1;
    if (cuda_op_fill_normal(g, (size_t)D * F, 9, lcb_rng_layer_tensor(l, LCB_RNG_WDOWN), err, sizeof err)) fail_msg("%s", err);
    gemm_pack(g, D, F, p);
    d = fmax(d, max_abs_diff(p, m.layers[l].wdown, gemm_packed_size(D, F)));
    assert_memory_equal(p, m.layers[l].wdown, gemm_packed_size(D, F) * 4);
    /* other seeds and tensors against the header function evaluated on the host */
    const uint64_t seeds[] = {0, 1234, 18446744073709551615ull};
    for (size_t si = 0; si < sizeof seeds / sizeof *seeds; si++)
        for (uint64_t t = 0; t < 6; t++) {
            if (cuda_op_fill_normal(g, ne, seeds[si], t, err, sizeof err)) fail_msg("%s", err);
            for (size_t i = 0; i < ne; i++) {
                float h = lcb_rng_normal(seeds[si], t, i, 0.02f);
                if (memcmp(&h, &g[i], 4)) fail_msg("seed %llu tensor %llu element %zu: device %.9g, host %.9g",
                                                   (unsigned long long)seeds[si], (unsigned long long)t, i, g[i], h);
            }
        }
    print_message("fill_normal: max |cuda - cpu| = %.3g\n", d);
    assert_true(d == 0); /* exact: the same integer arithmetic and one IEEE multiply on both sides */
    free(g); free(p);
    model_free(&m);
}

/* ---------------------------------------------------------------- 8-wide kernels vs the scalar ones */

/* bit patterns of two float arrays that differ */
static size_t bits_differ(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], 4) != 0;
    return d;
}

static const char *const ew_dtypes[] = {"fp32", "bf16", "fp16"};

/* act_vec_kernel (8 columns a thread, 16-byte accesses, rows in blockIdx.y) against act_kernel
 * (cuda_op_elementwise_scalar): the same expression on the same floats, so bit for bit, bound 0,
 * for every activation, gated or with a bias, each dtype; ffn 11008 / 8 (the 7B's at tp 8), 104,
 * 100 (not a multiple of 8: both run the scalar kernel), and 70,000 rows (past gridDim.y's 65,535) */
static void test_kernel_act_vec(void **state) {
    if (!tu_have_gpu()) return;
    const struct { int n, ffn; } shapes[] = {{37, 1376}, {5, 104}, {3, 100}, {70000, 8}};
    char err[LCB_ERRLEN];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int n = shapes[si].n, ffn = shapes[si].ffn;
        const size_t on = (size_t)n * ffn;
        float *h = malloc(on * 2 * 4), *bias = malloc(ffn * 4), *a = malloc(on * 4), *b = malloc(on * 4), *ref = malloc(on * 4);
        for (size_t i = 0; i < on * 2; i++) h[i] = 4 * frand();
        for (int i = 0; i < ffn; i++) bias[i] = frand();
        for (size_t di = 0; di < 3; di++)
            for (int act = ACT_SILU; act <= ACT_RELU; act++)
                for (int gated = 0; gated < 2; gated++) {
                    if (n > 1000 && (act != ACT_SILU || di == 0)) continue; /* the long one: grid-stride rows only */
                    cuda_op_elementwise_scalar(0);
                    if (cuda_op_act_dt(ew_dtypes[di], h, gated ? NULL : bias, a, n, ffn, gated, act, err, sizeof err)) fail_msg("%s", err);
                    cuda_op_elementwise_scalar(1);
                    if (cuda_op_act_dt(ew_dtypes[di], h, gated ? NULL : bias, b, n, ffn, gated, act, err, sizeof err)) fail_msg("%s", err);
                    cuda_op_elementwise_scalar(0);
                    size_t nd = bits_differ(a, b, on);
                    if (nd) fail_msg("act %d gated %d %s n %d ffn %d: %zu of %zu elements differ from the scalar kernel", act, gated,
                                     ew_dtypes[di], n, ffn, nd, on);
                    if (di == 0) { /* fp32: the CPU twin too, as test_kernel_act */
                        for (int i = 0; i < n; i++)
                            for (int k = 0; k < ffn; k++)
                                ref[(size_t)i * ffn + k] = gated ? act_cpu(act, h[(size_t)i * 2 * ffn + k]) * h[(size_t)i * 2 * ffn + ffn + k]
                                                                 : act_cpu(act, h[(size_t)i * ffn + k] + bias[k]);
                        double d = max_abs_diff(a, ref, on);
                        if (d > 1e-5) fail_msg("act %d gated %d n %d ffn %d: max |cuda - cpu| = %g", act, gated, n, ffn, d);
                    }
                }
        print_message("act n %d ffn %d: vector = scalar kernel bit for bit (fp32, bf16, fp16)\n", n, ffn);
        free(h); free(bias); free(a); free(b); free(ref);
    }
}

/* rope_vec_kernel against rope_store_kernel, bit for bit: q, qs (a second table), k and v, with
 * and without the QKV bias, each dtype, for full rotary (hd 128 / 64), partial (pythia's 25 %:
 * half 16 of hd 128), hd 80 (48 dims not rotated), GQA / MQA, and half 4 (not a multiple of 8:
 * both scalar) */
static void test_kernel_rope_vec(void **state) {
    if (!tu_have_gpu()) return;
    const struct { int H, KV, hd, half; } shapes[] = {{4, 2, 128, 64}, {4, 4, 128, 16}, {3, 1, 64, 32}, {2, 2, 80, 16},
                                                      {2, 1, 64, 4}, {2, 2, 96, 24}, {8, 8, 128, 64}};
    const int n = 33;
    char err[LCB_ERRLEN];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int H = shapes[si].H, KV = shapes[si].KV, hd = shapes[si].hd, half = shapes[si].half;
        const int qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
        float *qkv = malloc((size_t)n * ld * 4), *bq = malloc((size_t)ld * 4), *cs = malloc((size_t)n * 2 * half * 4),
              *cz = malloc((size_t)n * 2 * half * 4);
        float *o[2][4];
        const size_t on[4] = {(size_t)n * qd, (size_t)n * qd, (size_t)n * kvd, (size_t)n * kvd};
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < 4; j++) o[r][j] = malloc(on[j] * 4);
        for (int i = 0; i < n * ld; i++) qkv[i] = 2 * frand();
        for (int i = 0; i < ld; i++) bq[i] = frand();
        for (int i = 0; i < n; i++)
            for (int f = 0; f < half; f++) {
                double a1 = 1000.0 * frand(), a2 = 1000.0 * frand();
                cs[i * 2 * half + f] = (float)cos(a1); cs[i * 2 * half + half + f] = (float)sin(a1);
                cz[i * 2 * half + f] = (float)cos(a2); cz[i * 2 * half + half + f] = (float)sin(a2);
            }
        for (size_t di = 0; di < 3; di++)
            for (int withb = 0; withb < 2; withb++) {
                for (int r = 0; r < 2; r++) {
                    cuda_op_elementwise_scalar(r);
                    if (cuda_op_rope_store_dt(ew_dtypes[di], qkv, withb ? bq : NULL, cs, cz, o[r][0], withb ? o[r][1] : NULL, o[r][2],
                                              o[r][3], n, H, KV, hd, half, err, sizeof err)) {
                        cuda_op_elementwise_scalar(0);
                        fail_msg("%s", err);
                    }
                }
                cuda_op_elementwise_scalar(0);
                const char *names[4] = {"q", "qs", "k", "v"};
                for (int j = 0; j < 4; j++) {
                    if (j == 1 && !withb) continue;
                    size_t nd = bits_differ(o[0][j], o[1][j], on[j]);
                    if (nd) fail_msg("rope H %d KV %d hd %d half %d %s bias %d: %s: %zu of %zu elements differ from the scalar kernel", H, KV,
                                     hd, half, ew_dtypes[di], withb, names[j], nd, on[j]);
                }
            }
        print_message("rope H %d KV %d hd %d half %d: vector = scalar kernel bit for bit (q, qs, k, v; fp32, bf16, fp16)\n", H, KV, hd, half);
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < 4; j++) free(o[r][j]);
        free(qkv); free(bq); free(cs); free(cz);
    }
}

/* norm_reg_kernel (the row in registers, one pass over x) against norm_kernel: the same
 * per-thread summation order and block_sum, so bit for bit, bound 0; RMSNorm and LayerNorm, each
 * dtype, dims 300 (partial last step), 4096 (the 7B's), 5120, 8192 and 16384 (the largest), and
 * 20000 (above it: both run norm_kernel) */
static void test_kernel_norm_vec(void **state) {
    if (!tu_have_gpu()) return;
    const int dims[] = {300, 4096, 5120, 8192, 16384, 20000};
    const int n = 9;
    char err[LCB_ERRLEN];
    for (size_t si = 0; si < sizeof dims / sizeof *dims; si++) {
        const int dim = dims[si];
        const size_t rn = (size_t)n * dim;
        float *x = malloc(rn * 4), *w = malloc(dim * 4), *b = malloc(dim * 4), *y0 = malloc(rn * 4), *y1 = malloc(rn * 4);
        for (size_t i = 0; i < rn; i++) x[i] = 3 * frand() + (i % 7);
        for (int i = 0; i < dim; i++) { w[i] = 1 + frand() * 0.5f; b[i] = frand(); }
        for (size_t di = 0; di < 3; di++)
            for (int ln = 0; ln < 2; ln++) {
                cuda_op_elementwise_scalar(0);
                if (cuda_op_norm_dt(ew_dtypes[di], x, y0, w, ln ? b : NULL, n, dim, ln, 1e-5f, err, sizeof err)) fail_msg("%s", err);
                cuda_op_elementwise_scalar(1);
                if (cuda_op_norm_dt(ew_dtypes[di], x, y1, w, ln ? b : NULL, n, dim, ln, 1e-5f, err, sizeof err)) fail_msg("%s", err);
                cuda_op_elementwise_scalar(0);
                size_t nd = bits_differ(y0, y1, rn);
                if (nd) fail_msg("norm dim %d %s %s: %zu of %zu elements differ from the scalar kernel", dim, ln ? "LayerNorm" : "RMSNorm",
                                 ew_dtypes[di], nd, rn);
            }
        print_message("norm dim %d: register kernel = scalar kernel bit for bit (RMS, Layer; fp32, bf16, fp16)\n", dim);
        free(x); free(w); free(b); free(y0); free(y1);
    }
}

/* float distance in ulps (same-sign finite values; cos / sin tables) */
static int64_t ulps(float a, float b) {
    int32_t x, y;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    if (x < 0) x = INT32_MIN - x;
    if (y < 0) y = INT32_MIN - y;
    return x > y ? (int64_t)x - y : (int64_t)y - x;
}

/* The device RoPE tables (k_rope_table, what the forward pass now uses) against kvcache.c's
 * rope_table (the CPU path's and the old host table's formula): cos / sin in double of pos *
 * inv_freq, rounded to float.  Positions 0 .. 5,000,000 in 41 blocks of 4,096, and the sink
 * positions of sink:4:2044 (clamped at 2,048) in the first two blocks and the last; inv_freq of
 * RoPE bases 1e4, 5e5 and 1e6, position interpolation (x 1/4), partial rotary (half 16), half
 * 128.  CUDA's double cos / sin and glibc's are both within about an ulp of double, so a float can
 * differ only where the exact value lies within that of a float rounding boundary (~1e-9 of the
 * values): expected 0, at most 1 ulp allowed; the count is printed. */
static void test_kernel_rope_table(void **state) {
    if (!tu_have_gpu()) return;
    const struct { int half; double base, scale; } sets[] = {{64, 1e4, 1}, {64, 5e5, 1}, {64, 1e4, 0.25}, {16, 1e4, 1}, {64, 1e6, 1}, {128, 1e4, 1}};
    const int n = 4096, nb = 41;
    const int64_t last = 5000000;
    const int64_t S = 4, W = 2044;
    char err[LCB_ERRLEN];
    size_t total = 0, mism = 0;
    int64_t worst = 0;
    for (size_t si = 0; si < sizeof sets / sizeof *sets; si++) {
        const int half = sets[si].half;
        double inv[128];
        for (int f = 0; f < half; f++) inv[f] = sets[si].scale * pow(sets[si].base, -(double)(2 * f) / (2 * half));
        KVCache kv;
        memset(&kv, 0, sizeof kv);
        kv.rot_half = half;
        kv.inv_freq = inv;
        const size_t tn = (size_t)n * 2 * half;
        float *dev = malloc(tn * 4), *devz = malloc(tn * 4), *host = malloc(tn * 4);
        int64_t *pos = malloc(n * sizeof *pos);
        size_t set_mism = 0;
        for (int b = 0; b < nb; b++) {
            const int64_t t0 = b == nb - 1 ? last - n + 1 : (int64_t)b * ((last - n) / (nb - 1));
            const int sink = b < 2 || b == nb - 1;
            if (cuda_op_rope_table(inv, half, t0, n, S, W, dev, sink ? devz : NULL, err, sizeof err)) fail_msg("%s", err);
            for (int pass = 0; pass < (sink ? 2 : 1); pass++) {
                for (int i = 0; i < n; i++) {
                    pos[i] = t0 + i;
                    if (pass && pos[i] > S + W) pos[i] = S + W;
                }
                rope_table(&kv, pos, n, host);
                const float *d = pass ? devz : dev;
                for (size_t e = 0; e < tn; e++) {
                    if (memcmp(&d[e], &host[e], 4) == 0) continue;
                    int64_t u = ulps(d[e], host[e]);
                    if (u > worst) worst = u;
                    set_mism++;
                    if (u > 1)
                        fail_msg("rope table half %d base %g scale %g: position %lld frequency %zu: device %.9g, host %.9g (%lld ulps)", half,
                                 sets[si].base, sets[si].scale, (long long)pos[(e / (2 * half))], e % (2 * half), d[e], host[e], (long long)u);
                }
                total += tn;
            }
        }
        print_message("rope table half %d base %g scale %g: %zu values of %d positions up to %lld differ from the host's by 1 ulp\n", half,
                      sets[si].base, sets[si].scale, set_mism, nb * n, (long long)last);
        mism += set_mism;
        free(dev); free(devz); free(host); free(pos);
    }
    print_message("rope table: %zu of %zu floats differ from the host formula (max %lld ulp)\n", mism, total, (long long)worst);
    assert_true(worst <= 1);
}

/* ---------------------------------------------------------------- fixtures */



static void check_fixtures(const char *dtype, double tol_in) {
    double worst_all = 0;
    for (size_t f = 0; f < sizeof tu_fixtures / sizeof *tu_fixtures; f++) {
        char dir[256], refp[300], err[LCB_ERRLEN];
        snprintf(dir, sizeof dir, FIXTURES "/%s", tu_fixtures[f]);
        snprintf(refp, sizeof refp, "%s/reference.json", dir);
        cJSON *ref = tu_read_json(refp);
        size_t T;
        int32_t *ids = tu_json_ids(ref, &T);
        double tol = !strcmp(dtype, "bf16") && strcmp(tu_fixtures[f], "llama_bf16") ? TOL_BF16_ROUNDED : tol_in;
        Model m;
        if (model_open_on(&m, dir, NULL, LCB_DEVICE_CUDA, dtype, err, sizeof err)) fail_msg("%s: %s", dir, err);
        assert_null(m.arena); /* the host copy is gone */
        double *nll = malloc(T * sizeof *nll);
        size_t chunks[] = {1, 5, 16, 0};
        for (cJSON *st = cJSON_GetObjectItem(ref, "nll")->child; st; st = st->next) {
            double worst = 0;
            for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++) {
                Strategy s;
                if (strategy_parse(&s, st->string, err, sizeof err)) fail_msg("%s", err);
                if (strategy_score(&s, &m, ids, T, chunks[ci], nll, err, sizeof err))
                    fail_msg("%s %s %s chunk %zu: %s", tu_fixtures[f], dtype, st->string, chunks[ci], err);
                size_t t = 0;
                for (cJSON *x = st->child; x; x = x->next, t++) {
                    double d = fabs(x->valuedouble - nll[t]);
                    if (!(d <= tol))
                        fail_msg("%s %s %s chunk %zu: step %zu nll %.6f, reference %.6f (|d| %.3g > %g)", tu_fixtures[f], dtype,
                                 st->string, chunks[ci], t, nll[t], x->valuedouble, d, tol);
                    worst = fmax(worst, d);
                }
            }
            print_message("%-24s %-5s %-12s max |nll - reference| = %.3g (tolerance %g)\n", tu_fixtures[f], dtype, st->string, worst, tol);
            worst_all = fmax(worst_all, worst);
        }
        free(nll);
        free(ids);
        model_free(&m);
        cJSON_Delete(ref);
    }
    print_message("all fixtures %s: max |nll - reference| = %.3g\n", dtype, worst_all);
}

static void test_fixtures_fp32(void **state) { if (tu_have_gpu()) check_fixtures("fp32", TU_TOL_F32); }
static void test_fixtures_bf16(void **state) { if (tu_have_gpu()) check_fixtures("bf16", TU_TOL_BF16); }
static void test_fixtures_fp16(void **state) { if (tu_have_gpu()) check_fixtures("fp16", TOL_F16); }

/* the other attention kernels on the same fixtures: the scalar one (0), the flash kernel's
 * other launch configurations (2: 4 warps; 3: three stages; 4: two m-tiles per warp) and the
 * warpgroup kernel's (5, 6: head dims 64 and 128 on sm_90; others fall back); the default (-1) ran
 * above, and for the fixtures' short inputs (under 1,024 rows per KV head) it is 1 */
static void test_fixtures_bf16_other_attention(void **state) {
    if (!tu_have_gpu()) return;
    const int variants[] = {0, 2, 3, 4, 5, 6};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        print_message("attention variant %d\n", variants[v]);
        cuda_op_attention_variant(variants[v]);
        check_fixtures("bf16", TU_TOL_BF16);
    }
    cuda_op_attention_variant(-1);
}

/* ---------------------------------------------------------------- attention kernel vs CPU twin */

/* x rounded to the storage type (round to nearest even), so that the device's conversion of the
 * uploaded data is exact and the CPU twin sees the same inputs.  fp16: the test data stays in
 * [-2, 2], so only the underflow below fp16's normal range needs care (flushed to 0 here, before
 * the upload, so both sides see 0). */
static float round_to(float x, int dt) { /* dt: 0 fp32, 1 bf16, 2 fp16 */
    uint32_t u;
    memcpy(&u, &x, 4);
    if (dt == 1) { u += 0x7fffu + ((u >> 16) & 1); u &= 0xffff0000u; }
    else if (dt == 2) {
        if (fabsf(x) < 0x1p-14f) return 0.f;
        u += 0xfffu + ((u >> 13) & 1); u &= ~0x1fffu;
    }
    memcpy(&x, &u, 4);
    return x;
}

static float *attn_rand(size_t n, float amp, int dt) {
    float *x = malloc((n ? n : 1) * 4);
    for (size_t i = 0; i < n; i++) x[i] = round_to(amp * frand(), dt);
    return x;
}

/* SPEC section 2 written out for one (query, head): the visible positions of query t, each with
 * the query it is scored with (0 q, 1 qs) and its row in sk/sv (sink) or k/v (slot); the softmax
 * in double.  Independent of the kernel's phases and tiles. */
static void attn_cpu(const CudaAttnShape *sh, const float *q, const float *qs, const float *sk, const float *sv,
                     const float *k, const float *v, float *out) {
    const int H = sh->H, hd = sh->hd, Gq = H / sh->KV, qd = H * hd, kvd = sh->KV * hd;
    const double scale = 1.0f / sqrtf((float)hd); /* the float the device uses */
    const int64_t maxk = sh->s2_group > 0 ? sh->s2_group : sh->t0 + sh->n + 1;
    double *sc = malloc(maxk * sizeof *sc), *o = malloc(hd * sizeof *o);
    const float **kr = malloc(maxk * sizeof *kr), **vr = malloc(maxk * sizeof *vr);
    int *which = malloc(maxk * sizeof *which);
    for (int i = 0; i < sh->n; i++)
        for (int h = 0; h < H; h++) {
            const int64_t t = sh->t0 + i;
            const int g = h / Gq;
            int64_t nk = 0;
            if (sh->s2_group > 0) { /* LongLoRA: heads >= H/2 see their group in the sequence rolled by -G/2 */
                const int64_t G = sh->s2_group, T = sh->s2_total, sh2 = h >= H / 2 ? G / 2 : 0;
                const int64_t j = ((t - sh2) % T + T) % T; /* t's index in the rolled sequence */
                for (int64_t jj = j - j % G; jj <= j; jj++) {
                    const int64_t p = (jj + sh2) % T;
                    which[nk] = 0; kr[nk] = k + p * kvd + g * hd; vr[nk] = v + p * kvd + g * hd; nk++;
                }
            } else {
                for (int64_t p = 0; p < sh->S && p <= t; p++) { /* sinks */
                    which[nk] = 1; kr[nk] = sk + p * kvd + g * hd; vr[nk] = sv + p * kvd + g * hd; nk++;
                }
                int64_t lo = sh->W < 0 ? 0 : t - sh->W;
                if (lo < sh->S) lo = sh->S;
                for (int64_t p = lo; p <= t; p++) { /* recent, by slot */
                    const int64_t slot = sh->R > 0 ? (p - sh->S) % sh->R : p - sh->S;
                    which[nk] = 0; kr[nk] = k + slot * kvd + g * hd; vr[nk] = v + slot * kvd + g * hd; nk++;
                }
            }
            double m = -INFINITY, l = 0;
            for (int64_t e = 0; e < nk; e++) {
                const float *qq = (which[e] ? qs : q) + (size_t)i * qd + h * hd;
                double d = 0;
                for (int c = 0; c < hd; c++) d += (double)qq[c] * kr[e][c];
                sc[e] = d * scale;
                m = fmax(m, sc[e]);
            }
            for (int c = 0; c < hd; c++) o[c] = 0;
            for (int64_t e = 0; e < nk; e++) {
                const double p = exp(sc[e] - m);
                l += p;
                for (int c = 0; c < hd; c++) o[c] += p * vr[e][c];
            }
            for (int c = 0; c < hd; c++) out[(size_t)i * qd + h * hd + c] = (float)(o[c] / l);
        }
    free(sc); free(o); free(kr); free(vr); free(which);
}

/* The decode product (k_gemv: n <= 4 rows, what a one-token step multiplies every weight by)
 * against a double reference on the same rounded inputs, for shapes the models have (4096 x
 * 12288, 11008 x 4096) and edges (in not a multiple of 256, out not of 8, 1-4 rows), the fp32
 * output with and without the residual's beta = 1, the T output: fp32 within 1e-5 of sum |w x|
 * (fp32 sums), T within its own rounding (2^-8 bf16, 2^-11 fp16, relative) of that. */
static void test_kernel_gemv(void **state) {
    if (!tu_have_gpu()) return;
    static const int shapes[][3] = {{1, 4096, 12288}, {2, 11008, 4096}, {3, 136, 77}, {4, 264, 1000}, {1, 8, 3}, {4, 4096, 32000}};
    const char *dts[] = {"bf16", "fp16"};
    char err[LCB_ERRLEN];
    int bad = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int di = 0; di < 2; di++)
            for (int mode = 0; mode < 3; mode++) { /* 0 fp32, 1 fp32 + beta 1 y0, 2 T */
                const int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
                float *x = attn_rand((size_t)n * in, 1, di + 1), *w = attn_rand((size_t)out * in, 1, di + 1);
                float *y0 = attn_rand((size_t)n * out, 1, 0), *y = malloc((size_t)n * out * 4);
                const float beta = mode == 1 ? 1.f : 0.f;
                if (cuda_op_gemv_dt(dts[di], x, w, mode == 1 ? y0 : NULL, y, n, in, out, beta, mode == 2, err, sizeof err))
                    fail_msg("gemv %s %d x %d x %d: %s", dts[di], n, in, out, err);
                double worst = 0;
                for (int r = 0; r < n; r++)
                    for (int o = 0; o < out; o++) {
                        double ref = mode == 1 ? y0[(size_t)r * out + o] : 0, mag = fabs(ref);
                        for (int k = 0; k < in; k++) {
                            const double p = (double)x[(size_t)r * in + k] * w[(size_t)o * in + k];
                            ref += p; mag += fabs(p);
                        }
                        const double got = y[(size_t)r * out + o];
                        const double tol = 1e-5 * mag + (mode == 2 ? (di ? 0x1p-11 : 0x1p-8) * fabs(ref) : 0);
                        const double e = fabs(got - ref);
                        if (!(e <= tol)) bad++;
                        if (mag > 0) worst = fmax(worst, e / mag);
                    }
                print_message("gemv %s %d x %d x %d %s: worst |y - ref| / sum |w x| = %.3g\n", dts[di], n, in, out,
                              mode == 0 ? "fp32" : mode == 1 ? "fp32 + y0" : "T", worst);
                free(x); free(w); free(y0); free(y);
            }
    assert_int_equal(bad, 0);
}

/* Every policy the chunked forward uses, GQA / MQA, the head dims the engine meets (the flash
 * kernel's 16, 32, 64, 128 and the scalar fallback's others), rings that wrap, a chunk's first
 * queries inside the sinks, rows that do not fill a block: each kernel variant and dtype against
 * the CPU twin on fresh random data, by ||out - ref|| / ||ref||, with the output poisoned (NaN)
 * before each run. */
static void test_attention_kernel_vs_cpu(void **state) {
    if (!tu_have_gpu()) return;
    static const struct { const char *what; CudaAttnShape sh; } cases[] = {
        {"dense causal", {300, 4, 4, 128, 0, 0, -1, 0, 0, 0}},
        {"dense, long history, GQA 4:1", {200, 8, 2, 64, 1000, 0, -1, 0, 0, 0}},
        {"window:100, ring wraps", {250, 4, 2, 128, 5000, 0, 100, 100 + 250 + 37, 0, 0}},
        {"sink:4:100, ring, GQA 2:1", {250, 6, 3, 128, 3000, 4, 100, 100 + 250 + 13, 0, 0}},
        {"sink:4:1000, MQA 4:1", {512, 4, 1, 128, 100000, 4, 1000, 1000 + 4096, 0, 0}},
        {"sink:4:100 from t = 0", {300, 4, 2, 64, 0, 4, 100, 100 + 300 + 1, 0, 0}},
        {"sink:4:2044, 1024 queries", {1024, 2, 1, 128, 50000, 4, 2044, 2044 + 4096, 0, 0}},
        {"Mistral sliding window 16", {200, 8, 2, 128, 40, 0, 15, 15 + 200 + 5, 0, 0}},
        {"s2:64", {256, 4, 2, 64, 0, 0, -1, 0, 64, 256}},
        {"s2:32, MQA", {96, 4, 1, 128, 0, 0, -1, 0, 32, 96}},
        {"s2:128, GQA 6:3 (a KV head's heads rolled and not)", {512, 6, 3, 128, 0, 0, -1, 0, 128, 512}},
        {"s2:33 (odd group), head_dim 64", {99, 4, 2, 64, 0, 0, -1, 0, 33, 99}},
        {"s2:16 over 48 (a block holds a key twice)", {48, 2, 2, 64, 0, 0, -1, 0, 16, 48}},
        {"dense, head_dim 32", {100, 4, 2, 32, 7, 0, -1, 0, 0, 0}},
        {"sink:1:15, head_dim 16", {130, 4, 2, 16, 50, 1, 15, 15 + 130 + 3, 0, 0}},
        {"dense, Falcon MQA 71:1, head_dim 64", {45, 71, 1, 64, 10, 0, -1, 0, 0, 0}},
        {"sink:4:20, head_dim 80 (scalar)", {60, 2, 1, 80, 5, 4, 20, 20 + 60 + 1, 0, 0}},
        {"dense, head_dim 256 (scalar)", {40, 2, 2, 256, 0, 0, -1, 0, 0, 0}},
        {"one query, sink:4:500", {1, 8, 8, 128, 777, 4, 500, 500 + 4096, 0, 0}},
        /* decode shapes with many keys: the flash configurations split the keys (flash-decoding) */
        {"decode: one query, dense over 20,000 keys, GQA 4:1", {1, 8, 2, 128, 20000, 0, -1, 0, 0, 0}},
        {"decode: 3 queries, sink:4:8188, ring, head_dim 64", {3, 8, 8, 64, 100000, 4, 8188, 8188 + 4096, 0, 0}},
        {"decode: one query, window:3000, ring wraps, MQA 16:1", {1, 16, 1, 128, 77777, 0, 3000, 3000 + 4096, 0, 0}},
        {"decode: one query, sink:4:4092 at t = 5000 (parts of sinks and recent)", {1, 4, 4, 128, 5000, 4, 4092, 4092 + 4096, 0, 0}},
    };
    /* bounds, ||out - ref|| / ||ref||: fp32 (scalar kernel, float sums and expf) far under 1e-5;
     * bf16: the output's own rounding (2^-9 relative, ~1.1e-3 in norm) plus P rounded to bf16
     * before the PV product (flash kernel): 8e-3; fp16: 11-bit mantissa, the same structure: 2e-3 */
    const char *dtypes[] = {"fp32", "bf16", "fp16"};
    const double tol[] = {1e-5, 8e-3, 2e-3};
    double worst[3] = {0};
    int nfail = 0;
    char err[LCB_ERRLEN];
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const CudaAttnShape *sh = &cases[ci].sh;
        const size_t nq = (size_t)sh->n * sh->H * sh->hd, kvd = (size_t)sh->KV * sh->hd;
        const int64_t slots = sh->R > 0 ? sh->R : sh->t0 + sh->n - sh->S;
        for (int di = 0; di < 3; di++) {
            float *q = attn_rand(nq, 2, di), *qs = attn_rand(nq, 2, di), *sk = attn_rand(sh->S * kvd, 2, di);
            float *sv = attn_rand(sh->S * kvd, 1, di), *k = attn_rand(slots * kvd, 2, di), *v = attn_rand(slots * kvd, 1, di);
            float *ref = malloc(nq * 4), *out = malloc(nq * 4);
            attn_cpu(sh, q, qs, sk, sv, k, v, ref);
            double rn = 0;
            for (size_t e = 0; e < nq; e++) rn += (double)ref[e] * ref[e];
            for (int var = 0; var <= (di ? CU_ATTN_VARIANTS : 0); var++) {
                if (cuda_op_attention(dtypes[di], var, sh, q, qs, sk, sv, k, v, slots, out, err, sizeof err))
                    fail_msg("%s %s variant %d: %s", cases[ci].what, dtypes[di], var, err);
                double dn = 0;
                size_t bad = 0;
                for (size_t e = 0; e < nq; e++) {
                    if (!isfinite(out[e])) bad++;
                    dn += ((double)out[e] - ref[e]) * ((double)out[e] - ref[e]);
                }
                const double rel = sqrt(dn / rn);
                const int kern = cuda_op_attention_kernel(dtypes[di], var, sh);
                print_message("attention %-36s %s variant %d (%s): ||cuda - cpu|| / ||cpu|| = %.3g\n", cases[ci].what, dtypes[di], var,
                              kern >= 5 ? "wgmma" : kern ? "flash" : "scalar", rel);
                /* every case is checked before the test fails, so that one device run shows them all */
                if (bad) {
                    print_message("FAIL attention %s %s variant %d: %zu of %zu outputs not finite (unwritten: the NaN poison)\n",
                                  cases[ci].what, dtypes[di], var, bad, nq);
                    nfail++;
                } else if (!(rel <= tol[di])) {
                    print_message("FAIL attention %s %s variant %d: relative error %.3g > %g\n", cases[ci].what, dtypes[di], var, rel, tol[di]);
                    nfail++;
                }
                worst[di] = fmax(worst[di], rel);
            }
            free(q); free(qs); free(sk); free(sv); free(k); free(v); free(ref); free(out);
        }
    }
    print_message("attention kernels vs CPU: worst relative error fp32 %.3g, bf16 %.3g, fp16 %.3g\n", worst[0], worst[1], worst[2]);
    if (nfail) fail_msg("%d attention kernel checks failed (the FAIL lines above)", nfail);
}

/* ---------------------------------------------------------------- random models, policies */

static void score_on(const char *model, int device, const char *dtype, const char *spec, const int32_t *ids, size_t T,
                     size_t chunk, double *nll) {
    char err[LCB_ERRLEN];
    Model m;
    if (model_open_on(&m, model, NULL, device, dtype, err, sizeof err)) fail_msg("%s: %s", model, err);
    Strategy s;
    if (strategy_parse(&s, spec, err, sizeof err)) fail_msg("%s", err);
    if (strategy_score(&s, &m, ids, T, chunk, nll, err, sizeof err)) fail_msg("%s %s chunk %zu: %s", model, spec, chunk, err);
    model_free(&m);
}

static void score_tp(const char *model, const char *dtype, int tp, const char *spec, const int32_t *ids, size_t T,
                     size_t chunk, double *nll) {
    char err[LCB_ERRLEN];
    Model m;
    if (model_open_tp(&m, model, NULL, LCB_DEVICE_CUDA, dtype, tp, err, sizeof err)) fail_msg("%s --tp %d: %s", model, tp, err);
    Strategy s;
    if (strategy_parse(&s, spec, err, sizeof err)) fail_msg("%s", err);
    if (strategy_score(&s, &m, ids, T, chunk, nll, err, sizeof err)) fail_msg("%s --tp %d %s chunk %zu: %s", model, tp, spec, chunk, err);
    model_free(&m);
}

static double max_nll_diff(const double *a, const double *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

/* CUDA (fp32) vs the CPU on random:llama-10m (weights generated on the device from the seed),
 * long enough that the ring wraps and that one chunk is split into sub-chunks (> 4096 rows) */
static void test_random_policies_vs_cpu(void **state) {
    if (!tu_have_gpu()) return;
    const size_t T = 5000;
    int32_t *ids = malloc(T * 4);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 2654435761u) % 4096);
    double *a = malloc(T * 8), *b = malloc(T * 8);
    const char *specs[] = {"sink:4:300", "window:250", "sink:1:1000", "dense", "s2:1000"};
    size_t chunks[] = {0, 777};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        score_on("random:llama-10m:3", LCB_DEVICE_CPU, NULL, specs[i], ids, T, 0, a);
        for (size_t c = 0; c < 2; c++) {
            if (!strncmp(specs[i], "s2", 2) && c) continue;
            score_on("random:llama-10m:3", LCB_DEVICE_CUDA, "fp32", specs[i], ids, T, chunks[c], b);
            double d = max_nll_diff(a, b, T - 1);
            print_message("random:llama-10m %-12s chunk %4zu fp32: max |cuda - cpu| = %.3g\n", specs[i], chunks[c], d);
            assert_true(d < TU_TOL_F32);
            score_on("random:llama-10m:3", LCB_DEVICE_CUDA, "bf16", specs[i], ids, T, chunks[c], b);
            d = max_nll_diff(a, b, T - 1);
            print_message("random:llama-10m %-12s chunk %4zu bf16: max |cuda - cpu| = %.3g\n", specs[i], chunks[c], d);
            assert_true(d < TU_TOL_BF16);
        }
    }
    free(ids); free(a); free(b);
}

/* bf16: the same numbers whatever the chunk size (up to GEMM rounding with another M) */
static void test_chunk_independence_bf16(void **state) {
    if (!tu_have_gpu()) return;
    const size_t T = 3000;
    int32_t *ids = malloc(T * 4);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 40503u + 11) % 4096);
    double *a = malloc(T * 8), *b = malloc(T * 8);
    size_t chunks[] = {1, 64, 1000};
    score_on("random:llama-1m:4", LCB_DEVICE_CUDA, "bf16", "sink:4:500", ids, T, 0, a);
    for (size_t c = 0; c < 3; c++) {
        score_on("random:llama-1m:4", LCB_DEVICE_CUDA, "bf16", "sink:4:500", ids, T, chunks[c], b);
        double d = max_nll_diff(a, b, T - 1);
        print_message("bf16 sink:4:500 chunk %zu vs whole: max |d nll| = %.3g\n", chunks[c], d);
        assert_true(d < 5e-3); /* a GEMM with another row count may round one bf16 input differently */
    }
    free(ids); free(a); free(b);
}

/* ---------------------------------------------------------------- memory */

static void test_memory_accounting_and_oom(void **state) {
    if (!tu_have_gpu()) return;
    char err[LCB_ERRLEN];
    Model m;
    /* deltas: a failed earlier test may have left its model and cache allocated */
    const size_t w0 = cuda_mem_now(LCB_MEM_WEIGHTS), k0 = cuda_mem_now(LCB_MEM_KV);
    if (model_open_on(&m, "random:llama-10m", NULL, LCB_DEVICE_CUDA, "bf16", err, sizeof err)) fail_msg("%s", err);
    size_t w = cuda_mem_now(LCB_MEM_WEIGHTS) - w0;
    uint64_t params = config_n_params(&m.cfg);
    print_message("random:llama-10m bf16: %zu weight bytes for %llu parameters\n", w, (unsigned long long)params);
    /* bf16 matrices, fp32 norms, 256-byte alignment: within 5 % of 2 bytes per parameter */
    assert_true(w > 1.95 * params && w < 2.1 * params);
    Strategy s;
    assert_int_equal(strategy_parse(&s, "sink:4:1000", err, sizeof err), 0);
    if (strategy_begin(&s, &m, err, sizeof err)) fail_msg("%s", err);
    int32_t ids[100] = {0};
    double nll[100];
    if (strategy_feed_nll(&s, ids, 100, ids, nll, err, sizeof err)) fail_msg("%s", err);
    size_t kvb = cuda_mem_now(LCB_MEM_KV) - k0;
    print_message("sink:4:1000 KV: %zu bytes on the device, kv.bytes %zu\n", kvb, s.kv.bytes);
    assert_true(kvb >= s.kv.bytes && s.kv.bytes > 0);
    strategy_end(&s);
    assert_int_equal(cuda_mem_now(LCB_MEM_KV), k0);
    model_free(&m);
    assert_int_equal(cuda_mem_now(LCB_MEM_WEIGHTS), w0);
    size_t used, total;
    assert_int_equal(cuda_mem_info(&used, &total), 0);
    /* 70B in fp32 (280 GB) cannot fit: a clean "out of memory" error, nothing left allocated */
    int rc = model_open_on(&m, "random:llama2-70b", NULL, LCB_DEVICE_CUDA, "fp32", err, sizeof err);
    assert_int_equal(rc, -1);
    print_message("70B fp32: %s\n", err);
    assert_true(!strncmp(err, "out of memory", 13));
    assert_int_equal(cuda_mem_now(LCB_MEM_WEIGHTS), w0);
    char desc[256];
    cuda_describe(desc, sizeof desc);
    print_message("device: %s; %zu of %zu MiB used\n", desc, used >> 20, total >> 20);
}

/* ---------------------------------------------------------------- tensor parallelism */

static int have_gpus(int n) {
    if (!tu_have_gpu()) return 0;
    if (cuda_device_count() < n) { print_message("skipped: %d CUDA device(s), the test needs %d\n", cuda_device_count(), n); return 0; }
    return 1;
}

/* every fixture and strategy, fp32, on 2 (and 4) GPUs vs one: the same arithmetic but for the
 * order of the all-reduce's sums and of the split GEMMs' reductions, so TU_TOL_F32 */
static void test_tp_fixtures_fp32(void **state) {
    if (!have_gpus(2)) return;
    char err[LCB_ERRLEN];
    for (int tp = 2; tp <= 4 && tp <= cuda_device_count(); tp += 2)
        for (size_t f = 0; f < sizeof tu_fixtures / sizeof *tu_fixtures; f++) {
            char dir[256], refp[300];
            snprintf(dir, sizeof dir, FIXTURES "/%s", tu_fixtures[f]);
            snprintf(refp, sizeof refp, "%s/reference.json", dir);
            Model m;
            if (model_open_tp(&m, dir, NULL, LCB_DEVICE_CUDA, "fp32", tp, err, sizeof err)) {
                /* a shape that does not split is refused with the reason */
                print_message("%-24s --tp %d: refused: %s\n", tu_fixtures[f], tp, err);
                assert_non_null(strstr(err, "--tp"));
                continue;
            }
            model_free(&m);
            cJSON *ref = tu_read_json(refp);
            size_t T;
            int32_t *ids = tu_json_ids(ref, &T);
            double *a = malloc(T * 8), *b = malloc(T * 8);
            for (cJSON *st = cJSON_GetObjectItem(ref, "nll")->child; st; st = st->next) {
                score_tp(dir, "fp32", 1, st->string, ids, T, 0, a);
                double worst = 0;
                size_t chunks[] = {0, 5};
                for (size_t c = 0; c < 2; c++) {
                    score_tp(dir, "fp32", tp, st->string, ids, T, chunks[c], b);
                    worst = fmax(worst, max_nll_diff(a, b, T - 1));
                }
                print_message("%-24s %-12s --tp %d vs 1 GPU, fp32: max |d nll| = %.3g\n", tu_fixtures[f], st->string, tp, worst);
                assert_true(worst < TU_TOL_F32);
            }
            free(a); free(b); free(ids);
            cJSON_Delete(ref);
        }
}

/* the check: llama2-7b (fits one GPU) in bf16, --tp 2 vs one GPU, within the bf16
 * tolerance; the ring wraps (sink:4:508 over 1500 tokens) and the weights are split in half */
static void test_tp_llama2_7b_bf16(void **state) {
    if (!have_gpus(2)) return;
    const size_t T = 1500;
    int32_t *ids = malloc(T * 4);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 2654435761u) % 32000);
    double *a = malloc(T * 8), *b = malloc(T * 8);
    score_tp("random:llama2-7b", "bf16", 1, "sink:4:508", ids, T, 512, a);
    size_t w0 = cuda_mem_peak(LCB_MEM_WEIGHTS);
    score_tp("random:llama2-7b", "bf16", 2, "sink:4:508", ids, T, 512, b);
    double d = max_nll_diff(a, b, T - 1), mean = 0;
    for (size_t i = 0; i + 1 < T; i++) mean += a[i] / (T - 1);
    print_message("random:llama2-7b bf16 sink:4:508: --tp 2 vs 1 GPU: max |d nll| = %.3g (mean nll %.4f; weights peak %.2f GB)\n", d, mean,
                  w0 / 1e9);
    assert_true(d < 2e-2); /* the CUDA issue's bf16 tolerance */
    free(ids); free(a); free(b);
}

/* shapes that do not split: refused with the reason, nothing left allocated */
static void test_tp_refusals(void **state) {
    if (!have_gpus(2)) return;
    char err[LCB_ERRLEN];
    Model m;
    const size_t w0 = cuda_mem_now(LCB_MEM_WEIGHTS);
    assert_int_equal(model_open_tp(&m, "random:llama-10m", NULL, LCB_DEVICE_CUDA, "bf16", 2, err, sizeof err), -1);
    print_message("llama-10m --tp 2: %s\n", err);
    assert_non_null(strstr(err, "5 attention heads"));
    assert_int_equal(model_open_tp(&m, "random:llama-tiny", NULL, LCB_DEVICE_CUDA, "bf16", 64, err, sizeof err), -1);
    print_message("--tp 64: %s\n", err);
    assert_int_equal(cuda_mem_now(LCB_MEM_WEIGHTS), w0);
}

/* test_cuda [WORD...]: only the tests whose names contain one of the words (all without any) */
int main(int argc, char **argv) {
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_kernel_norm),
        cmocka_unit_test(test_kernel_act),
        cmocka_unit_test(test_kernel_nll),
        cmocka_unit_test(test_kernel_rope),
        cmocka_unit_test(test_kernel_fill_normal),
        cmocka_unit_test(test_kernel_act_vec),
        cmocka_unit_test(test_kernel_rope_vec),
        cmocka_unit_test(test_kernel_rope_table),
        cmocka_unit_test(test_kernel_gemv),
        cmocka_unit_test(test_kernel_norm_vec),
        cmocka_unit_test(test_fixtures_fp32),
        cmocka_unit_test(test_fixtures_bf16),
        cmocka_unit_test(test_fixtures_fp16),
        cmocka_unit_test(test_attention_kernel_vs_cpu),
        cmocka_unit_test(test_fixtures_bf16_other_attention),
        cmocka_unit_test(test_random_policies_vs_cpu),
        cmocka_unit_test(test_chunk_independence_bf16),
        cmocka_unit_test(test_memory_accounting_and_oom),
        cmocka_unit_test(test_tp_refusals),
        cmocka_unit_test(test_tp_fixtures_fp32),
        cmocka_unit_test(test_tp_llama2_7b_bf16),
    };
    return tu_run_selected("test_cuda", all, sizeof all / sizeof *all, argc, argv);
}
