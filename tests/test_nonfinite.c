/*
 * test_nonfinite.c — a non-finite value at one position of a chunk must not reach the rows of
 * earlier positions (SPEC §1: a non-finite NLL fails the run at its step, so every step before
 * it must still be the number it would have been).
 *
 * The attention scores a whole chunk of queries against the chunk's keys with GEMMs and masks
 * the later keys afterwards; a masked key has weight 0, and 0 x NaN (or 0 x Inf) is NaN, so a
 * later position's non-finite value could poison an earlier row through the product with the
 * values.  Here the embedding row of one token is made NaN or Inf (every key and value of that
 * position is then non-finite), the token is put at position p of one chunk, and the NLLs of the
 * steps before p are compared bit for bit with the same chunk where that token is a clean one:
 * under dense (the chunk's own keys), window (its ring and the chunk) and sink with p inside the
 * sinks (the chunk's sink keys).  The steps from p on must be non-finite, or the poison never got
 * in and the test would prove nothing.  Tolerance: none (memcmp): the earlier rows compute the
 * same products in both runs.
 */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/kvcache.h"
#include "engine/model.h"

#define N_OF(a) (sizeof(a) / sizeof *(a))

/* NLLs of rows 0 .. n-1 of one forward of ids (chunked in `chunk` rows) through a fresh cache */
static void nlls(Model *m, int64_t sink, int64_t window, const int32_t *ids, int n, int chunk, double *nll) {
    char err[LCB_ERRLEN];
    KVCache kv;
    if (kv_init(&kv, &m->cfg, LCB_DEVICE_CPU, sink, window, m->cfg.rope_factor, err, sizeof err)) fail_msg("%s", err);
    for (int c0 = 0; c0 < n; c0 += chunk) {
        const int k = n - c0 < chunk ? n - c0 : chunk;
        int32_t tg[256]; /* row i predicts ids[i + 1]; the last row nothing */
        for (int i = 0; i < k; i++) tg[i] = c0 + i + 1 < n ? ids[c0 + i + 1] : -1;
        FwdOut o = {.targets = tg, .nll = nll + c0};
        if (model_forward(m, &kv, ids + c0, k, 0, &o, err, sizeof err)) fail_msg("%s", err);
    }
    kv_free(&kv);
}

static void check_model(const char *spec) {
    char err[LCB_ERRLEN];
    Model m;
    if (model_open(&m, spec, NULL, err, sizeof err)) fail_msg("%s: %s", spec, err);
    const int V = m.cfg.vocab, dim = m.cfg.dim, n = 40;
    const int32_t bad_id = 7;
    int32_t clean[64], dirty[64];
    for (int i = 0; i < n; i++) clean[i] = 11 + (i * 37) % (V - 11 > 1 ? V - 11 : 1); /* never bad_id */
    const struct { int64_t sink, window; int p, chunk; const char *what; } cases[] = {
        {0, -1, 25, 40, "dense, p inside the chunk"},
        {0, -1, 35, 32, "dense, p in the second chunk"},
        {0, 16, 30, 40, "window:16"},
        {4, 16, 2, 40, "sink:4:16, p among the chunk's sinks"},
        {4, 16, 20, 40, "sink:4:16, p past the sinks"},
    };
    const float poison[2] = {NAN, INFINITY};
    float *row = m.embed + (size_t)bad_id * dim, saved[4096];
    assert_true(dim <= 4096);
    memcpy(saved, row, dim * sizeof(float));
    const int threads = omp_get_max_threads();
    for (int pi = 0; pi < 2; pi++)
        for (size_t ci = 0; ci < N_OF(cases); ci++) {
            const int p = cases[ci].p;
            double ref[64], got[64];
            for (int th = 1; th <= 3; th += 2) {
                omp_set_num_threads(th);
                memcpy(row, saved, dim * sizeof(float));
                nlls(&m, cases[ci].sink, cases[ci].window, clean, n, cases[ci].chunk, ref);
                for (int k = 0; k < dim; k++) row[k] = poison[pi];
                memcpy(dirty, clean, sizeof clean);
                dirty[p] = bad_id;
                nlls(&m, cases[ci].sink, cases[ci].window, dirty, n, cases[ci].chunk, got);
                /* steps t < p - 1 predict the same targets from the same prefix; step p - 1
                 * predicts bad_id from a clean prefix: finite */
                for (int t = 0; t + 1 < p; t++)
                    if (memcmp(&got[t], &ref[t], sizeof got[t]) || !isfinite(got[t]))
                        fail_msg("%s, %s: %s at position %d: step %d NLL %.17g, %.17g without it (%d threads)", spec,
                                 cases[ci].what, pi ? "Inf" : "NaN", p, t, got[t], ref[t], th);
                if (!isfinite(got[p - 1])) fail_msg("%s, %s: step %d (predicting the poisoned token) is %g", spec, cases[ci].what, p - 1, got[p - 1]);
                int poisoned = 0;
                for (int t = p; t + 1 < n; t++) poisoned += !isfinite(got[t]);
                if (poisoned != n - 1 - p) fail_msg("%s, %s: only %d of the %d steps from position %d on are non-finite", spec, cases[ci].what, poisoned, n - 1 - p, p);
            }
        }
    memcpy(row, saved, dim * sizeof(float));
    omp_set_num_threads(threads);
    model_free(&m);
}

/* GQA 4:2 head_dim 16 (the partial-panel path of the value products), and the default model */
static void test_llama_gqa(void **state) { check_model(FIXTURES "/llama_gqa"); }
static void test_lcb_model(void **state) { check_model("models/lcb-0.8m"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_gqa),
        cmocka_unit_test(test_lcb_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
