/*
 * test_engine.c — the CPU forward pass and every cache strategy against the fixtures'
 * reference.json (made with HF transformers 5.17 and an independent token-by-token
 * implementation of SPEC §2).
 *
 * Tolerances (SPEC §4): fp32 CPU, logits within 1e-4 absolute, per-step NLL within 1e-4.
 * Strategies are checked at chunk sizes 1, 3, 16 and the whole input, since chunked prefill
 * must reproduce the per-step semantics exactly.
 */
#include "testutil.h"

#include <math.h>

#include "engine/common.h"
#include "engine/model.h"
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_all),
        cmocka_unit_test(test_nll_all),
        cmocka_unit_test(test_random_seed),
        cmocka_unit_test(test_bench_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
