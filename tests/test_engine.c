/*
 * test_engine.c — the CPU forward pass and every cache strategy against the fixtures'
 * reference.json (made with HF transformers 5.17 and an independent token-by-token
 * implementation of SPEC §2).
 *
 * Tolerances (SPEC §4): fp32 CPU, logits within 1e-4 absolute, per-step NLL within 1e-4.
 * Strategies are checked at chunk sizes 1, 3, 16 and the whole input, since chunked prefill
 * must reproduce the per-step semantics exactly.
 *
 * random:SHAPE:SEED weights (engine/rng.h, shared with the CUDA fill): the CPU fill equals the
 * header's function element by element, golden values pin the generator, its moments over 2^20
 * samples match the Irwin-Hall approximation it states, and the fill is the same at any thread
 * count.
 */
#include "testutil.h"

#include <math.h>
#include <omp.h>

#include "engine/common.h"
#include "engine/gemm.h"
#include "engine/model.h"
#include "engine/rng.h"
#include "strategies/strategy.h"

#define TOL_LOGIT 1e-4 /* SPEC §4: fp32 CPU, logits absolute */
#define TOL_NLL 1e-4   /* SPEC §4: fp32 CPU, per-step NLL */



/* Open fixture fx with config file cfgname; its reference.json and input ids. */
static void open_fixture(const char *fx, const char *cfgname, Model *m, cJSON **ref, int32_t **ids, size_t *T) {
    char dir[256], cfg[300], refp[300], err[LCB_ERRLEN];
    snprintf(dir, sizeof dir, FIXTURES "/%s", fx);
    snprintf(cfg, sizeof cfg, "%s/%s", dir, cfgname);
    snprintf(refp, sizeof refp, "%s/reference.json", dir);
    *ref = tu_read_json(refp);
    *ids = tu_json_ids(*ref, T);
    if (model_open(m, dir, cfg, err, sizeof err)) fail_msg("%s: %s", cfg, err);
}

/* dense logits from one forward over the whole input vs reference, for one config file */
static void check_logits(const char *fx, const char *cfgname) {
    char err[LCB_ERRLEN];
    Model m;
    cJSON *ref;
    int32_t *ids;
    size_t T;
    open_fixture(fx, cfgname, &m, &ref, &ids, &T);
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    if (strategy_begin(&s, &m, err, sizeof err)) fail_msg("%s", err);
    float *logits = malloc(T * m.cfg.vocab * sizeof(float));
    if (strategy_feed(&s, ids, (int)T, logits, err, sizeof err)) fail_msg("%s: %s", fx, err);
    cJSON *dl = cJSON_GetObjectItem(ref, "dense_logits");
    double maxd = 0;
    size_t t = 0;
    for (cJSON *row = dl->child; row; row = row->next, t++) {
        size_t k = 0;
        for (cJSON *x = row->child; x; x = x->next, k++) {
            double d = fabs(x->valuedouble - logits[t * m.cfg.vocab + k]);
            if (d > maxd) maxd = d;
        }
        assert_int_equal(k, (size_t)m.cfg.vocab);
    }
    assert_int_equal(t, T);
    if (maxd > TOL_LOGIT) fail_msg("%s (%s): max |logit - reference| = %g > %g", fx, cfgname, maxd, TOL_LOGIT);
    strategy_end(&s);
    free(logits);
    free(ids);
    model_free(&m);
    cJSON_Delete(ref);
}

/* every strategy in reference.json's nll map, at several chunk sizes */
static void check_nll(const char *fx, const char *cfgname) {
    char err[LCB_ERRLEN];
    Model m;
    cJSON *ref;
    int32_t *ids;
    size_t T;
    open_fixture(fx, cfgname, &m, &ref, &ids, &T);
    double *nll = malloc(T * sizeof *nll);
    size_t chunks[] = {1, 3, 16, 0};
    int n_strat = 0;
    for (cJSON *st = cJSON_GetObjectItem(ref, "nll")->child; st; st = st->next, n_strat++) {
        assert_int_equal(cJSON_GetArraySize(st), T - 1);
        for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++) {
            Strategy s;
            if (strategy_parse(&s, st->string, err, sizeof err)) fail_msg("%s", err);
            if (strategy_score(&s, &m, ids, T, chunks[ci], nll, err, sizeof err)) fail_msg("%s %s chunk %zu: %s", fx, st->string, chunks[ci], err);
            double maxd = 0;
            size_t worst = 0, t = 0;
            for (cJSON *x = st->child; x; x = x->next, t++) {
                double d = fabs(x->valuedouble - nll[t]);
                if (d > maxd) { maxd = d; worst = t; }
            }
            if (maxd > TOL_NLL)
                fail_msg("%s (%s) %s chunk %zu: max |nll - reference| = %g at step %zu (got %.6f, want %.6f)", fx, cfgname,
                         st->string, chunks[ci], maxd, worst, nll[worst], cJSON_GetArrayItem(st, (int)worst)->valuedouble);
        }
    }
    assert_true(n_strat >= 1);
    free(nll);
    free(ids);
    model_free(&m);
    cJSON_Delete(ref);
}

static void test_logits_all(void **state) {
    for (size_t i = 0; i < sizeof tu_fixtures / sizeof *tu_fixtures; i++) {
        check_logits(tu_fixtures[i], "config.json");
        check_logits(tu_fixtures[i], "config_legacy.json");
    }
}

static void test_nll_all(void **state) {
    for (size_t i = 0; i < sizeof tu_fixtures / sizeof *tu_fixtures; i++) {
        check_nll(tu_fixtures[i], "config.json");
        check_nll(tu_fixtures[i], "config_legacy.json");
    }
}

/* random:SHAPE:SEED takes a seed in [0, 2^64) written in decimal digits, and refuses anything
 * else with a message naming it (a seed of 2^64 or more once saturated to 2^64 - 1 silently). */
static void test_random_seed(void **state) {
    char err[LCB_ERRLEN];
    Model a, b;
    /* the largest seed is a seed of its own, not the default */
    if (model_open(&a, "random:llama-tiny:18446744073709551615", NULL, err, sizeof err)) fail_msg("%s", err);
    if (model_open(&b, "random:llama-tiny", NULL, err, sizeof err)) fail_msg("%s", err);
    assert_memory_not_equal(a.embed, b.embed, (size_t)a.cfg.vocab * a.cfg.dim * sizeof(float));
    model_free(&b);
    if (model_open(&b, "random:llama-tiny:1234", NULL, err, sizeof err)) fail_msg("%s", err); /* the default, spelt out */
    Model d;
    if (model_open(&d, "random:llama-tiny", NULL, err, sizeof err)) fail_msg("%s", err);
    assert_memory_equal(b.embed, d.embed, (size_t)b.cfg.vocab * b.cfg.dim * sizeof(float));
    model_free(&a); model_free(&b); model_free(&d);
    static const struct { const char *spec, *msg; } bad[] = {
        {"random:llama-tiny:18446744073709551616", "does not fit in 64 bits"}, /* 2^64 */
        {"random:llama-tiny:99999999999999999999999", "does not fit in 64 bits"},
        {"random:llama-tiny:-1", "not a non-negative decimal integer"},
        {"random:llama-tiny:+5", "not a non-negative decimal integer"},
        {"random:llama-tiny: 5", "not a non-negative decimal integer"},
        {"random:llama-tiny:12x", "not a non-negative decimal integer"},
        {"random:llama-tiny:1:2", "not a non-negative decimal integer"},
        {"random:llama-tiny:0x10", "not a non-negative decimal integer"},
        {"random:llama-tiny:", "is empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        if (model_open(&a, bad[i].spec, NULL, err, sizeof err) == 0) fail_msg("%s: accepted", bad[i].spec);
        if (!strstr(err, bad[i].msg) || !strstr(err, bad[i].spec)) fail_msg("%s: error \"%s\" lacks \"%s\" or the spec", bad[i].spec, err, bad[i].msg);
    }
    /* a spec too long to hold is refused, not cut (a cut could drop the seed's last digits) */
    char longspec[400];
    snprintf(longspec, sizeof longspec, "random:llama-tiny:%0300d", 7);
    assert_int_not_equal(model_open(&a, longspec, NULL, err, sizeof err), 0);
    /* through the CLI: exit status 1, the message on stderr */
    char *out;
    int rc = tu_run(&out, "echo 1 2 3 | %s score --model random:llama-tiny:18446744073709551616 --ids -", tu_lcbench());
    assert_int_equal(rc, 1);
    if (!strstr(out, "does not fit in 64 bits")) fail_msg("score printed:\n%s", out);
    free(out);
}

/* lcbench bench at its smallest --tokens: every rate scores ids inside the T it generated (it
 * once read 4096 ids from a buffer of T: "token id ... outside the vocabulary", or an ASan
 * heap-buffer-overflow, for T in 2048..4095). */
static void test_bench_small(void **state) {
    char *out;
    int rc = tu_run(&out, "%s bench --model random:llama-tiny --tokens 2048 --reps 1", tu_lcbench());
    if (rc) fail_msg("bench exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "| dense, 1024-token windows | 1024 |"));
    assert_non_null(strstr(out, "| sink:4:1020 stream | 1 |"));
    assert_non_null(strstr(out, "sink:4:1020 chunk 256 vs chunk 1:"));
    assert_null(strstr(out, "vocabulary"));
    free(out);
}

/* ---------------------------------------------------------------- random: weights (engine/rng.h) */

/* tensor t of the random model (seed), rows x cols, as the header computes it */
static float *rng_tensor(uint64_t seed, uint64_t t, int rows, int cols) {
    float *w = malloc((size_t)rows * cols * sizeof *w);
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = lcb_rng_normal(seed, t, i, 0.02f);
    return w;
}

/* the model's matrix (packed by model_open into gemm_pack's panels) against the header's values,
 * packed the same way: element by element, bit for bit */
static void check_packed(const float *got, uint64_t seed, uint64_t t, int rows, int cols, const char *what) {
    float *w = rng_tensor(seed, t, rows, cols);
    size_t ps = gemm_packed_size(rows, cols);
    float *p = malloc(ps * sizeof *p);
    gemm_pack(w, rows, cols, p);
    for (size_t i = 0; i < ps; i++)
        if (memcmp(&p[i], &got[i], sizeof *p)) fail_msg("%s (tensor %llu): packed float %zu is %.9g, rng.h gives %.9g", what, (unsigned long long)t, i, got[i], p[i]);
    free(w); free(p);
}

/* model_open's CPU fill of random:llama-1m:77 is engine/rng.h's function, element by element, for
 * every tensor (the one the CUDA fill calls too: tests/test_cuda.c checks the device against it);
 * norms are ones, and there are no biases in a Llama shape */
static void test_random_fill_is_rng_h(void **state) {
    char err[LCB_ERRLEN];
    Model m;
    const uint64_t seed = 77;
    if (model_open(&m, "random:llama-1m:77", NULL, err, sizeof err)) fail_msg("%s", err);
    const ModelConfig *c = &m.cfg;
    assert_false(c->tie_embeddings);
    const int D = c->dim, qkvd = (c->n_heads + 2 * c->n_kv) * c->head_dim, qd = c->n_heads * c->head_dim;
    float *e = rng_tensor(seed, LCB_RNG_EMBED, c->vocab, D);
    assert_memory_equal(e, m.embed, (size_t)c->vocab * D * sizeof *e); /* the embedding stays unpacked */
    free(e);
    check_packed(m.lm_head, seed, LCB_RNG_LM_HEAD, c->vocab, D, "lm_head");
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *w = &m.layers[l];
        check_packed(w->wqkv, seed, lcb_rng_layer_tensor(l, LCB_RNG_WQKV), qkvd, D, "wqkv");
        check_packed(w->wo, seed, lcb_rng_layer_tensor(l, LCB_RNG_WO), D, qd, "wo");
        check_packed(w->wup, seed, lcb_rng_layer_tensor(l, LCB_RNG_WUP), 2 * c->ffn, D, "wup");
        check_packed(w->wdown, seed, lcb_rng_layer_tensor(l, LCB_RNG_WDOWN), D, c->ffn, "wdown");
        for (int i = 0; i < D; i++) { assert_true(w->attn_norm_w[i] == 1.f); assert_true(w->mlp_norm_w[i] == 1.f); }
        assert_null(w->bqkv);
    }
    for (int i = 0; i < D; i++) assert_true(m.norm_w[i] == 1.f);
    model_free(&m);
}

/* Golden values: the generator may not change silently (a change changes every random: model,
 * every stored random: result and the GPU twin).  Computed once with this header and checked
 * against an independent Python transcription of the formula in rng.h's comment. */
static void test_rng_golden(void **state) {
    static const struct { uint64_t seed, tensor, index; int32_t x; uint32_t bits; } g[] = {
        {1234ull, 0, 0ull, 27496, 0x3b897ae1u},                      /* 0.00419555651 */
        {1234ull, 0, 1ull, -45178, 0xbbe1e3d7u},                     /* -0.0068936157 */
        {1234ull, 1, 0ull, 3202, 0x3a00147bu},                       /* 0.000488586433 */
        {9ull, 2, 12345ull, 242152, 0x3d175852u},                    /* 0.0369494632 */
        {0ull, 0, 0ull, 238130, 0x3d14d4cdu},                        /* 0.0363357551 */
        {18446744073709551615ull, 5, 7ull, 102874, 0x3c8097aeu},     /* 0.0156973265 */
        {42ull, 130, 8589934597ull, -7958, 0xba9f28f6u},             /* -0.00121429446, index 2^33 + 5 */
    };
    for (size_t k = 0; k < sizeof g / sizeof *g; k++) {
        int32_t x = lcb_rng_irwin_hall(lcb_rng_key(g[k].seed, g[k].tensor), g[k].index);
        float f = lcb_rng_normal(g[k].seed, g[k].tensor, g[k].index, 0.02f);
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        if (x != g[k].x || b != g[k].bits)
            fail_msg("rng.h (seed %llu, tensor %llu, index %llu): x %d bits 0x%08x, golden x %d bits 0x%08x", (unsigned long long)g[k].seed,
                     (unsigned long long)g[k].tensor, (unsigned long long)g[k].index, x, b, g[k].x, g[k].bits);
        assert_true(f == (float)x * (0.02f / 131072.0f)); /* one multiply of an exact integer */
    }
    /* the model's own weights: random:llama-tiny (seed 1234) starts its embedding with the first two */
    char err[LCB_ERRLEN];
    Model m;
    if (model_open(&m, "random:llama-tiny", NULL, err, sizeof err)) fail_msg("%s", err);
    uint32_t b;
    memcpy(&b, &m.embed[0], 4); assert_int_equal(b, 0x3b897ae1u);
    memcpy(&b, &m.embed[1], 4); assert_int_equal(b, 0xbbe1e3d7u);
    model_free(&m);
}

/* Statistics of the Irwin-Hall approximation over 1M samples of one tensor: mean 0, variance
 * 1 - 2^-32, kurtosis 3 - 6/(5 * 12) = 2.9, |z| <= 6 (z = x / 2^17); no correlation between
 * neighbouring elements, tensors or seeds.  Bounds are 5 standard errors for n = 2^20 (mean:
 * 1/sqrt(n) ~ 1e-3; variance: sqrt((kurt - 1)/n) ~ 1.4e-3; kurtosis ~ 1e-2; correlation 1e-3). */
static void test_rng_moments(void **state) {
    const size_t n = (size_t)1 << 20;
    const uint64_t k0 = lcb_rng_key(1234, 0), k1 = lcb_rng_key(1234, 1), k2 = lcb_rng_key(1235, 0);
    double s1 = 0, s2 = 0, s4 = 0, c_next = 0, c_tensor = 0, c_seed = 0, zmax = 0, w2 = 0;
    for (size_t i = 0; i < n; i++) {
        double z = lcb_rng_irwin_hall(k0, i) / 131072.0, nx = lcb_rng_irwin_hall(k0, i + 1) / 131072.0;
        s1 += z; s2 += z * z; s4 += z * z * z * z;
        c_next += z * nx;
        c_tensor += z * (lcb_rng_irwin_hall(k1, i) / 131072.0);
        c_seed += z * (lcb_rng_irwin_hall(k2, i) / 131072.0);
        if (fabs(z) > zmax) zmax = fabs(z);
        double w = lcb_rng_normal(1234, 0, i, 0.02f);
        w2 += w * w;
    }
    const double mean = s1 / n, var = s2 / n - mean * mean, kurt = (s4 / n) / (var * var), wstd = sqrt(w2 / n);
    print_message("rng.h over 2^20: mean %.2e var %.5f kurt %.4f max|z| %.2f corr next %.1e tensor %.1e seed %.1e std %.6f\n", mean, var, kurt,
                  zmax, c_next / n, c_tensor / n, c_seed / n, wstd);
    assert_true(fabs(mean) < 5e-3);
    assert_true(fabs(var - 1) < 7e-3);
    assert_true(fabs(kurt - 2.9) < 5e-2);
    assert_true(zmax <= 6.0 && zmax > 3.5); /* the bound, and tails reaching past 3.5 sigma (p ~ 5e-4 each) */
    assert_true(fabs(c_next / n) < 5e-3 && fabs(c_tensor / n) < 5e-3 && fabs(c_seed / n) < 5e-3);
    assert_true(fabs(wstd - 0.02) < 0.02 * 4e-3); /* the std the shapes ask for */
}

/* The fill's values do not depend on the thread count (each element is a function of its index):
 * random:llama-1m (tensors past the fill's 65536-element threshold, so the loop really is split)
 * built with 1 and with 3 OpenMP threads, every weight compared bit for bit. */
static void test_random_fill_threads(void **state) {
    char err[LCB_ERRLEN];
    Model a, b;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    if (model_open(&a, "random:llama-1m:5", NULL, err, sizeof err)) fail_msg("%s", err);
    omp_set_num_threads(3);
    if (model_open(&b, "random:llama-1m:5", NULL, err, sizeof err)) fail_msg("%s", err);
    omp_set_num_threads(saved);
    assert_true((size_t)a.cfg.vocab * a.cfg.dim >= 65536);
    assert_int_equal(a.arena_bytes, b.arena_bytes);
    assert_memory_equal(a.arena, b.arena, a.arena_bytes);
    assert_int_equal(a.packed_extra_bytes, b.packed_extra_bytes);
    if (a.packed_extra_bytes) assert_memory_equal(a.packed_extra, b.packed_extra, a.packed_extra_bytes);
    assert_memory_equal(a.lm_head, b.lm_head, gemm_packed_size(a.cfg.vocab, a.cfg.dim) * sizeof(float));
    model_free(&a); model_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_all),
        cmocka_unit_test(test_nll_all),
        cmocka_unit_test(test_random_seed),
        cmocka_unit_test(test_random_fill_is_rng_h),
        cmocka_unit_test(test_rng_golden),
        cmocka_unit_test(test_rng_moments),
        cmocka_unit_test(test_random_fill_threads),
        cmocka_unit_test(test_bench_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
