/*
 * test_strategies.c — cache policies beyond the fixtures: SPEC §2's own StreamingLLM example,
 * an independent check of the re-assigned positions on a one-layer model, KV storage bounded
 * by the policy over 100K tokens, spec parsing, and chunk-size independence on random models;
 * each policy's saved state (strategy_state_save / _load, what run --resume restores) and copy
 * (strategy_clone, what the fluency probes generate from) continuing bit for bit as the
 * uninterrupted stream, and a state of another policy, shape or length refused by name.
 *
 * One-layer check: in a one-layer model the key/value of token j depend only on x_j and the
 * position it is rotated at, so step t under sink:S:W must equal a dense forward over exactly
 * the tokens of A(t) at positions 0..|A(t)|-1.  That is SPEC §2 read literally, computed by a
 * path (dense, no ring, no sink rotation) that shares nothing with the policy's bookkeeping.
 */
#include "testutil.h"

#include <math.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/config.h"
#include "strategies/strategy.h"
#define LCB_TESTS_STATEIO_RUN
#include "stateio.h"

static Model one_layer(void) {
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, "random:llama-tiny:5", NULL, err, sizeof err)) fail_msg("%s", err);
    m.cfg.n_layers = 1; /* use the first layer only (test-only truncation) */
    return m;
}

static void logits_last(Model *m, const int32_t *ids, int n, float *out) {
    char err[LCB_ERRLEN];
    Strategy d;
    assert_int_equal(strategy_parse(&d, "dense", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&d, m, err, sizeof err), 0);
    float *lg = malloc((size_t)n * m->cfg.vocab * sizeof(float));
    if (strategy_feed(&d, ids, n, lg, err, sizeof err)) fail_msg("%s", err);
    memcpy(out, lg + (size_t)(n - 1) * m->cfg.vocab, m->cfg.vocab * sizeof(float));
    free(lg);
    strategy_end(&d);
}

/* A(t) of sink:S:W (window:W when S == 0), SPEC §2 */
static int attend_set(int64_t S, int64_t W, int64_t t, int64_t *set) {
    int k = 0;
    for (int64_t j = 0; j < (S < t + 1 ? S : t + 1); j++) set[k++] = j;
    for (int64_t j = (S > t - W ? S : t - W); j <= t; j++) set[k++] = j;
    return k;
}

static void check_one_layer(const char *spec, int64_t S, int64_t W, size_t chunk) {
    Model m = one_layer();
    const int T = 40, V = m.cfg.vocab;
    int32_t ids[40];
    for (int i = 0; i < T; i++) ids[i] = (i * 131 + 7) % V;
    char err[LCB_ERRLEN];
    Strategy s;
    assert_int_equal(strategy_parse(&s, spec, err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
    float *lg = malloc((size_t)T * V * sizeof(float)), *ref = malloc(V * sizeof(float));
    for (int t0 = 0; t0 < T; t0 += (int)chunk) {
        int n = T - t0 < (int)chunk ? T - t0 : (int)chunk;
        if (strategy_feed(&s, ids + t0, n, lg + (size_t)t0 * V, err, sizeof err)) fail_msg("%s", err);
    }
    for (int t = 0; t < T; t++) {
        int64_t set[64];
        int k = attend_set(S, W, t, set);
        int32_t sub[64];
        for (int i = 0; i < k; i++) sub[i] = ids[set[i]];
        logits_last(&m, sub, k, ref);
        double d = 0;
        for (int v = 0; v < V; v++) d = fmax(d, fabs(ref[v] - lg[(size_t)t * V + v]));
        if (d > 1e-5) fail_msg("%s chunk %zu: step %d differs from a dense forward over A(t) by %g", spec, chunk, t, d);
    }
    strategy_end(&s);
    free(lg); free(ref);
    model_free(&m);
}

static void test_streamingllm_example(void **state) {
    /* SPEC §2: cache [0,1,2,3,6,7,8] decoding token 9 is sink:4:3 at t=9, positions 0..7 */
    int64_t set[16];
    int k = attend_set(4, 3, 9, set);
    int64_t want[] = {0, 1, 2, 3, 6, 7, 8, 9};
    assert_int_equal(k, 8);
    for (int i = 0; i < 8; i++) assert_int_equal(set[i], want[i]);
    /* and the cache after 9 tokens holds exactly sinks 0..3 and ring positions 6, 7, 8 */
    Model m = one_layer();
    char err[LCB_ERRLEN];
    Strategy s;
    assert_int_equal(strategy_parse(&s, "sink:4:3", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
    int32_t ids[9] = {1, 5, 9, 13, 17, 21, 25, 29, 33};
    float *lg = malloc(9 * m.cfg.vocab * sizeof(float));
    assert_int_equal(strategy_feed(&s, ids, 9, lg, err, sizeof err), 0);
    int seen[16] = {0};
    for (int slot = 0; slot < s.kv.cap; slot++) seen[s.kv.slot_pos[slot]] = 1;
    assert_true(seen[6] && seen[7] && seen[8]);
    assert_int_equal(s.kv.cap, 3);
    assert_int_equal(s.kv.n_sink, 4);
    free(lg);
    strategy_end(&s);
    model_free(&m);
    /* the decode step itself: positions 0..7 with the query at 7 */
    check_one_layer("sink:4:3", 4, 3, 1);
}

static void test_one_layer_exact(void **state) {
    size_t chunks[] = {1, 3, 7, 40};
    for (size_t i = 0; i < 4; i++) {
        check_one_layer("sink:4:3", 4, 3, chunks[i]);
        check_one_layer("sink:1:8", 1, 8, chunks[i]);
        check_one_layer("sink:2:0", 2, 0, chunks[i]);
        check_one_layer("window:5", 0, 5, chunks[i]);
        check_one_layer("window:0", 0, 0, chunks[i]);
    }
}

/* 100K tokens through sink:4:64: KV bytes flat after the cache fills, equal to the formula */
static void test_kv_flat(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, "random:llama-tiny:3", NULL, err, sizeof err), 0);
    Strategy s;
    assert_int_equal(strategy_parse(&s, "sink:4:64", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
    const int chunk = 512, V = m.cfg.vocab;
    int32_t ids[512];
    float *lg = malloc((size_t)chunk * V * sizeof(float));
    uint64_t first = 0;
    size_t kv_peak_first = 0;
    for (int64_t t0 = 0; t0 < 100000; t0 += chunk) {
        for (int i = 0; i < chunk; i++) ids[i] = (int32_t)((t0 + i) * 2654435761u % V);
        if (strategy_feed(&s, ids, chunk, lg, err, sizeof err)) fail_msg("%s", err);
        uint64_t now = strategy_kv_bytes_allocated(&s);
        if (t0 == 0) { first = now; kv_peak_first = lcb_mem_peak(LCB_MEM_KV); }
        assert_int_equal(now, first);
        /* what the policy needs (S + W tokens) is what it holds, plus the slot table */
        assert_true(now >= strategy_kv_bytes_formula(&s, t0 + chunk));
        assert_true(now <= strategy_kv_bytes_formula(&s, t0 + chunk) + 65 * sizeof(int64_t));
    }
    assert_int_equal(lcb_mem_peak(LCB_MEM_KV), kv_peak_first);
    assert_int_equal(strategy_kv_bytes_formula(&s, 100000), 2ull * 2 * 32 * 4 * 68); /* K+V x 2 layers x kv_dim 32 x fp32 x (4 + 64) */
    free(lg);
    strategy_end(&s);
    model_free(&m);
}

/* chunk-size independence on a multi-layer random model, for every cached policy */
static void test_chunk_independence(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, "random:llama-1m:9", NULL, err, sizeof err), 0);
    const size_t T = 300;
    int32_t ids[300];
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 3) % m.cfg.vocab);
    const char *specs[] = {"dense", "window:37", "sink:4:50", "sink:1:7", "longlora:2", "recompute:20"};
    double *a = malloc(T * sizeof *a), *b = malloc(T * sizeof *b);
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        Strategy s;
        assert_int_equal(strategy_parse(&s, specs[k], err, sizeof err), 0);
        if (strategy_score(&s, &m, ids, T, 1, a, err, sizeof err)) fail_msg("%s", err);
        size_t chunks[] = {2, 13, 64, 0};
        for (size_t c = 0; c < 4; c++) {
            assert_int_equal(strategy_parse(&s, specs[k], err, sizeof err), 0);
            if (strategy_score(&s, &m, ids, T, chunks[c], b, err, sizeof err)) fail_msg("%s", err);
            for (size_t t = 0; t + 1 < T; t++)
                if (fabs(a[t] - b[t]) > 1e-4) fail_msg("%s: chunk %zu step %zu: %g vs chunk 1: %g", specs[k], chunks[c], t, b[t], a[t]);
        }
    }
    free(a); free(b);
    model_free(&m);
}

/* a resumed run: strategy_skip over the first k tokens, then scoring, equals scoring from the
 * start (recompute's skip keeps its last W tokens; the others re-feed with the same chunks) */
static void test_skip_then_score(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, "random:llama-1m:5", NULL, err, sizeof err), 0);
    const size_t T = 260, chunk = 16;
    int32_t ids[260];
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 11) % m.cfg.vocab);
    const char *specs[] = {"recompute:20", "recompute:100", "sink:4:50", "dense"};
    const size_t ks[] = {0, 5, 16, 20, 21, 112, 240};
    double *a = malloc(T * sizeof *a), b[16];
    for (size_t q = 0; q < sizeof specs / sizeof *specs; q++) {
        Strategy s;
        assert_int_equal(strategy_parse(&s, specs[q], err, sizeof err), 0);
        if (strategy_score(&s, &m, ids, T, chunk, a, err, sizeof err)) fail_msg("%s", err);
        for (size_t kk = 0; kk < sizeof ks / sizeof *ks; kk++) {
            const size_t k = ks[kk];
            assert_int_equal(strategy_parse(&s, specs[q], err, sizeof err), 0);
            if (strategy_begin(&s, &m, err, sizeof err) || strategy_skip(&s, ids, (int64_t)k, (int64_t)chunk, err, sizeof err))
                fail_msg("%s skip %zu: %s", specs[q], k, err);
            for (size_t t0 = k; t0 < T; t0 += chunk) {
                int n = (int)(T - t0 < chunk ? T - t0 : chunk);
                int32_t tg[16];
                for (int i = 0; i < n; i++) tg[i] = t0 + i + 1 < T ? ids[t0 + i + 1] : -1;
                if (strategy_feed_nll(&s, ids + t0, n, tg, b, err, sizeof err)) fail_msg("%s: %s", specs[q], err);
                for (int i = 0; i < n && t0 + i + 1 < T; i++)
                    if (fabs(b[i] - a[t0 + i]) > 1e-5)
                        fail_msg("%s skip %zu: step %zu: %.7f, scored from the start %.7f", specs[q], k, t0 + i, b[i], a[t0 + i]);
            }
            strategy_end(&s);
        }
    }
    free(a);
    model_free(&m);
}

/* Save at k, load into a fresh instance, continue: the NLLs of the uninterrupted stream bit for
 * bit (the same arithmetic on the same values, with the same chunk boundaries: k is a multiple
 * of the chunk; the dense cache is reserved to the capacity the stream had, 512 at k = 272).
 * The copy of strategy_clone likewise.  Another policy's or shape's state, a truncated one, and
 * s2 (whole input) are refused with the reason. */
static void test_state_save_load(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, "random:llama-1m:5", NULL, err, sizeof err), 0);
    enum { T = 300, CH = 16 };
    int32_t ids[T];
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 11) % m.cfg.vocab);
    const char *specs[] = {"dense", "window:30", "sink:4:50", "sink:4:0", "recompute:20", "longlora:2"};
    const size_t ks[] = {0, 16, 48, 272};
    double ref[T], got[T];
    for (size_t q = 0; q < sizeof specs / sizeof *specs; q++) {
        Strategy s;
        assert_int_equal(strategy_parse(&s, specs[q], err, sizeof err), 0);
        assert_true(strategy_can_save(&s));
        if (strategy_score(&s, &m, ids, T, CH, ref, err, sizeof err)) fail_msg("%s", err);
        for (size_t kk = 0; kk < sizeof ks / sizeof *ks; kk++) {
            size_t k = ks[kk], bytes;
            stateio_resume_nll(&m, specs[q], ids, T, CH, k, got, &bytes);
            for (size_t t = k; t + 1 < T; t++)
                if (got[t] != ref[t]) fail_msg("%s loaded at %zu: step %zu: %.9g, uninterrupted %.9g", specs[q], k, t, got[t], ref[t]);
            stateio_clone_nll(&m, specs[q], ids, T, CH, k, got);
            for (size_t t = k; t + 1 < T; t++)
                if (got[t] != ref[t]) fail_msg("%s cloned at %zu: step %zu: %.9g, uninterrupted %.9g", specs[q], k, t, got[t], ref[t]);
            print_message("%-12s state at %3zu: %zu bytes\n", specs[q], k, bytes);
        }
    }
    /* refusals: save sink:4:50 at 48, load it elsewhere */
    Strategy a, b;
    MemIO buf = {0};
    KvIO io = memio(&buf);
    assert_int_equal(strategy_parse(&a, "sink:4:50", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&a, &m, err, sizeof err), 0);
    assert_int_equal(strategy_skip(&a, ids, 48, CH, err, sizeof err), 0);
    assert_int_equal(strategy_state_save(&a, &io, err, sizeof err), 0);
    strategy_end(&a);
    const struct { const char *spec, *needle; size_t limit; } bad[] = {
        {"sink:4:51", "the saved KV cache is cpu fp32 --tp 1, 4 layers x 96 KV dims, 4 sinks + window 50 (ring 50); this run's is", 0},
        {"dense", "4 sinks + window 50", 0},
        {"recompute:20", "not a recompute state", 0},
        {"sink:4:50", "ends early", 1000},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        buf.at = 0;
        buf.limit = bad[i].limit;
        assert_int_equal(strategy_parse(&b, bad[i].spec, err, sizeof err), 0);
        assert_int_equal(strategy_begin(&b, &m, err, sizeof err), 0);
        int rc = strategy_state_load(&b, &io, err, sizeof err);
        strategy_end(&b);
        if (rc == 0 || !strstr(err, bad[i].needle)) fail_msg("%s from a sink:4:50 state: rc %d, \"%s\" (wanted \"%s\")", bad[i].spec, rc, err, bad[i].needle);
    }
    /* a state is loaded only into a strategy that was fed nothing */
    buf.at = 0;
    buf.limit = 0;
    assert_int_equal(strategy_parse(&b, "sink:4:50", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&b, &m, err, sizeof err), 0);
    assert_int_equal(strategy_skip(&b, ids, 16, CH, err, sizeof err), 0);
    assert_int_not_equal(strategy_state_load(&b, &io, err, sizeof err), 0);
    assert_non_null(strstr(err, "fed nothing"));
    strategy_end(&b);
    assert_int_equal(strategy_parse(&b, "s2:16", err, sizeof err), 0);
    assert_false(strategy_can_save(&b));
    free(buf.p);
    model_free(&m);
}

static void expect_parse_error(const char *spec, const char *needle) {
    Strategy s;
    char err[LCB_ERRLEN] = "";
    if (strategy_parse(&s, spec, err, sizeof err) == 0) fail_msg("spec \"%s\" was accepted", spec);
    if (!strstr(err, needle)) fail_msg("spec \"%s\": message \"%s\" lacks \"%s\"", spec, err, needle);
}

static void test_spec_parsing(void **state) {
    expect_parse_error("", "empty");
    expect_parse_error("nope", "unknown policy");
    expect_parse_error("sink:4", "sink:S:W");
    expect_parse_error("sink:4:x", "W");
    expect_parse_error("sink:-1:10", "S");
    expect_parse_error("sink:4:5:6", "sink:S:W");
    expect_parse_error("window:10:3", "window:W");
    expect_parse_error("window::3", "empty");
    expect_parse_error("dense:3", "no arguments");
    expect_parse_error("s2:15", "even");
    expect_parse_error("longlora:0.5", ">= 1");
    expect_parse_error("recompute:0", "W");
    Strategy s;
    char err[LCB_ERRLEN];
    assert_int_equal(strategy_parse(&s, "sink:4:1020", err, sizeof err), 0);
    assert_int_equal(s.n_sink, 4);
    assert_int_equal(s.window, 1020);
    /* longlora without a factor needs one in the config */
    Model m;
    assert_int_equal(model_open(&m, "random:llama-tiny", NULL, err, sizeof err), 0);
    assert_int_equal(strategy_parse(&s, "longlora", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "longlora:F"));
    /* s2 refuses a length that is not a multiple of G */
    int32_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    double nll[10];
    assert_int_equal(strategy_parse(&s, "s2:4", err, sizeof err), 0);
    assert_int_equal(strategy_score(&s, &m, ids, 10, 0, nll, err, sizeof err), -1);
    assert_non_null(strstr(err, "multiple of the group size 4"));
    model_free(&m);
}

/* Issue 16/15: a bare name means the model's context: sink = sink:4:(ctx-4), window =
 * window:ctx, resolved by the strategy (strategy_resolve, or strategy_begin for callers that
 * do not record the spec), never by a caller's alias table. */
static void test_bare_specs_from_the_model(void **state) {
    char err[LCB_ERRLEN], out[128];
    Strategy s;
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.max_pos = 512;
    assert_int_equal(strategy_parse(&s, "sink", err, sizeof err), 0);
    assert_int_equal(s.open, 1);
    assert_int_equal(strategy_resolve(&s, &c, err, sizeof err), 0);
    assert_string_equal(s.spec, "sink:4:508");
    assert_int_equal(s.n_sink, 4);
    assert_int_equal(s.window, 508);
    assert_int_equal(strategy_parse(&s, "window", err, sizeof err), 0);
    assert_int_equal(strategy_resolve(&s, &c, err, sizeof err), 0);
    assert_string_equal(s.spec, "window:512");
    assert_int_equal(s.window, 512);
    /* a full spec is kept as given */
    assert_int_equal(strategy_parse(&s, "sink:4:1020", err, sizeof err), 0);
    assert_int_equal(strategy_resolve(&s, &c, err, sizeof err), 0);
    assert_string_equal(s.spec, "sink:4:1020");
    /* the string form, for comparing a given spec with a recorded one */
    assert_int_equal(strategy_spec_for_ctx("sink", 1024, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "sink:4:1020");
    assert_int_equal(strategy_spec_for_ctx("window", 2048, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "window:2048");
    assert_int_equal(strategy_spec_for_ctx("dense", 2048, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "dense");
    /* no context to size from: an error naming the explicit form */
    assert_int_equal(strategy_spec_for_ctx("sink", 3, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "sink:S:W"));
    /* strategy_begin resolves from the model it is given */
    Model m;
    assert_int_equal(model_open(&m, "random:llama-tiny", NULL, err, sizeof err), 0);
    assert_int_equal(strategy_parse(&s, "sink", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
    char want[64];
    snprintf(want, sizeof want, "sink:4:%d", m.cfg.max_pos - 4);
    assert_string_equal(s.spec, want);
    assert_int_equal(s.kv.window, m.cfg.max_pos - 4);
    strategy_end(&s);
    model_free(&m);
}

/* The cache a policy allocates (used by plan): each policy says its own shape. */
static void test_shapes(void **state) {
    char err[LCB_ERRLEN];
    ModelConfig c;
    if (config_random_shape(&c, "llama-tiny", err, sizeof err)) fail_msg("%s", err);
    Strategy s;
    StrategyShape sh;
    const uint64_t per_tok = 2ull * c.n_layers * c.n_kv * c.head_dim * 4;
    assert_int_equal(strategy_parse(&s, "sink", err, sizeof err), 0);
    assert_int_equal(strategy_shape(&s, &c, 100000, 256, 4, &sh, err, sizeof err), 0);
    assert_int_equal(sh.n_sink, 4);
    assert_int_equal(sh.window, c.max_pos - 4);
    assert_int_equal(sh.rows, 256);
    assert_int_equal(sh.kv_formula, (int64_t)(per_tok * c.max_pos));
    assert_int_equal(sh.kv_alloc, (int64_t)(per_tok * c.max_pos) + (c.max_pos - 4 + 1) * 8);
    /* dense: unbounded, doubling from 256 */
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    assert_int_equal(strategy_shape(&s, &c, 1000, 0, 4, &sh, err, sizeof err), 0);
    assert_int_equal(sh.window, -1);
    assert_int_equal(sh.rows, 1000);
    assert_int_equal(sh.kv_alloc, (int64_t)(per_tok * 1024));
    /* recompute: fresh forwards over W+1 tokens */
    assert_int_equal(strategy_parse(&s, "recompute:63", err, sizeof err), 0);
    assert_int_equal(strategy_shape(&s, &c, 1000, 256, 4, &sh, err, sizeof err), 0);
    assert_int_equal(sh.fresh, 1);
    assert_int_equal(sh.rows, 64);
    assert_int_equal(sh.held, 64);
    /* s2: the whole input, a multiple of G */
    assert_int_equal(strategy_parse(&s, "s2:8", err, sizeof err), 0);
    assert_int_equal(strategy_shape(&s, &c, 1000, 256, 4, &sh, err, sizeof err), 0);
    assert_int_equal(sh.rows, 1000);
    assert_int_equal(strategy_shape(&s, &c, 1001, 256, 4, &sh, err, sizeof err), -1);
    assert_non_null(strstr(err, "multiple of the group size 8"));
    /* longlora without a factor in the config */
    assert_int_equal(strategy_parse(&s, "longlora", err, sizeof err), 0);
    assert_int_equal(strategy_shape(&s, &c, 1000, 256, 4, &sh, err, sizeof err), -1);
    assert_non_null(strstr(err, "longlora:F"));
    /* bf16 rows halve the bytes */
    assert_int_equal(strategy_parse(&s, "window:100", err, sizeof err), 0);
    assert_int_equal(strategy_shape(&s, &c, 1000, 256, 2, &sh, err, sizeof err), 0);
    assert_int_equal(sh.kv_formula, (int64_t)(per_tok * 100 / 2));
}

/* Display order is the registry's; unknown names last. */
static void test_rank(void **state) {
    size_t n;
    const StrategyOps *const *list = strategy_list(&n);
    for (size_t i = 0; i < n; i++) assert_int_equal(strategy_rank(list[i]->name), (int)i);
    assert_true(strategy_rank("dense") < strategy_rank("window:8"));
    assert_true(strategy_rank("window:8") < strategy_rank("sink:4:8"));
    assert_int_equal(strategy_rank("sinkhole:3"), (int)n);
    assert_int_equal(strategy_rank("bogus"), (int)n);
}

/* The fit warning: once, on stderr, with the numbers; none for a cache that fits. */
static void test_fit_warning(void **state) {
    char *out;
    const char *lcb = tu_lcbench();
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 4K --strategy sink:4:1020 >/dev/null", lcb), 0);
    if (!strstr(out, "sink:4:1020 keeps 1024 previous tokens (4 sinks + 1020 recent)") || !strstr(out, "context of 512"))
        fail_msg("no fit warning with the numbers: %s", out);
    const char *w = strstr(out, "warning");
    assert_non_null(w);
    assert_null(strstr(w + 1, "warning"));
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 4K --strategy window:0 >/dev/null", lcb), 0);
    if (!strstr(out, "window:0 keeps a recent window of 0 tokens")) fail_msg("no window:0 warning: %s", out);
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 4K --strategy recompute:1000 >/dev/null", lcb), 0);
    if (!strstr(out, "1000 previous tokens") || !strstr(out, "context of 512")) fail_msg("no recompute warning: %s", out);
    free(out);
    /* the default fits the model: no warning, and it is sink:4:508 */
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 4K", lcb), 0);
    if (strstr(out, "warning") || !strstr(out, "sink:4:508")) fail_msg("default plan: %s", out);
    free(out);
    assert_int_equal(tu_run(&out, "%s plan --model models/lcb-0.8m --tokens 4K --strategy window --json", lcb), 0);
    if (strstr(out, "warning") || !strstr(out, "\"strategy\":\"window:512\"")) fail_msg("window plan: %s", out);
    free(out);
}

/* No caller compares policy names or re-codes the bare-name defaults: a policy's meaning lives
 * in strategies/ only.  Scans the C sources of the other folders and their subfolders. */
static void test_no_policy_names_outside_strategies(void **state) {
    static const char *dirs[] = {"harness", "reports", "datasets", "engine"};
    static const char *names[] = {"sink", "window", "recompute", "dense", "longlora", "s2"};
    char *out;
    for (size_t d = 0; d < sizeof dirs / sizeof *dirs; d++) {
        assert_int_equal(tu_run(&out, "find %s -name '*.[ch]' | sort", dirs[d]), 0);
        for (char *save = NULL, *f = strtok_r(out, "\n", &save); f; f = strtok_r(NULL, "\n", &save)) {
            char *src = tu_read_file(f, NULL);
            int line = 1;
            for (char *p = src, *eol; *p; p = eol + (*eol != 0), line++) {
                eol = p + strcspn(p, "\n");
                char l[2048];
                snprintf(l, sizeof l, "%.*s", (int)(eol - p < 2047 ? eol - p : 2047), p);
                if (!strstr(l, "cmp(")) continue;
                for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
                    char q[32];
                    snprintf(q, sizeof q, "\"%s\"", names[k]);
                    char q2[32];
                    snprintf(q2, sizeof q2, "\"%s:", names[k]);
                    if (strstr(l, q) || strstr(l, q2)) fail_msg("%s:%d compares a policy name: %s", f, line, l);
                }
            }
            if (strstr(src, "\"window:1024\"")) fail_msg("%s re-codes the bare window default", f);
            free(src);
        }
        free(out);
    }
}

/* the attention-on-position-0 diagnostic: independent of the chunk size, 0 when position 0 is
 * out of the window, and strictly between 0 and 1 when it is one of two visible keys */
static double first_mass(Model *m, const char *spec, size_t chunk, const int32_t *ids, size_t T) {
    char err[LCB_ERRLEN];
    Strategy s;
    assert_int_equal(strategy_parse(&s, spec, err, sizeof err), 0);
    double mass[16] = {0}, count[16] = {0}, nll[64];
    s.first_mass = mass;
    s.first_count = count;
    if (strategy_score(&s, m, ids, T, chunk, nll, err, sizeof err)) fail_msg("%s", err);
    double tot = 0, n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) { tot += mass[l]; n += count[l]; }
    assert_true(n == (double)(T - 1) * m->cfg.n_heads * m->cfg.n_layers);
    return tot / n;
}

static void test_first_token_attention(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, "random:llama-tiny:4", NULL, err, sizeof err), 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 97 + 5) % m.cfg.vocab;
    double d1 = first_mass(&m, "dense", 1, ids, 40), d7 = first_mass(&m, "dense", 7, ids, 40);
    assert_true(fabs(d1 - d7) < 1e-6);
    assert_true(d1 > 0 && d1 < 1);
    assert_true(first_mass(&m, "window:0", 5, ids, 40) == 0.0);
    double s = first_mass(&m, "sink:1:0", 5, ids, 40);
    assert_true(s > 0.05 && s < 0.95);
    assert_true(fabs(first_mass(&m, "sink:4:8", 1, ids, 40) - first_mass(&m, "sink:4:8", 40, ids, 40)) < 1e-6);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streamingllm_example),
        cmocka_unit_test(test_one_layer_exact),
        cmocka_unit_test(test_kv_flat),
        cmocka_unit_test(test_chunk_independence),
        cmocka_unit_test(test_skip_then_score),
        cmocka_unit_test(test_state_save_load),
        cmocka_unit_test(test_spec_parsing),
        cmocka_unit_test(test_bare_specs_from_the_model),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_fit_warning),
        cmocka_unit_test(test_no_policy_names_outside_strategies),
        cmocka_unit_test(test_first_token_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
