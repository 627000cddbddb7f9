/*
 * test_cuda_state.c — strategy state on the GPU (issue 15): what `run --resume` restores from a
 * snapshot and what `run --probe-every` generates from, on --device cuda.  Needs a GPU (each
 * test says "skipped" without one); run by .carry/h5_device.sh and meant for make test-cuda.
 *
 *   state:   every cached policy on a random model in fp32 and bf16, its state saved after k
 *            tokens (rings that wrapped, a dense cache over several 1024-slot pages), loaded
 *            into a fresh device cache and continued: the NLLs of the uninterrupted GPU stream
 *            bit for bit (the same kernels on the same values and chunk boundaries); the same
 *            through strategy_clone (a device-side copy); a bf16 state refused by an fp32 cache
 *            and a GPU state by a CPU one, each naming both;
 *   kill -9: `lcbench run --device cuda` under sink and dense killed mid-stream with a
 *            snapshot at every commit; --resume starts from the snapshot and stores the
 *            uninterrupted run's NLLs bit for bit (`show --nll`, 9 significant digits);
 *   probes:  `run --probe-every` on the GPU (fp32 and bf16) against the CPU: the same number of
 *            probes at the same positions with the same verdicts, and the stream's NLLs within
 *            the tolerances of test_cuda.c (testutil.h: fp32 1e-3 per step; bf16 5e-2 in the mean).
 */
#include "testutil.h"

#include <math.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/model.h"
#include "strategies/strategy.h"
#define LCB_TESTS_STATEIO_RUN
#include "stateio.h"

static void open_on(Model *m, const char *spec, int device, const char *dtype) {
    char err[LCB_ERRLEN];
    if (model_open_on(m, spec, NULL, device, dtype, err, sizeof err)) fail_msg("%s on %s %s: %s", spec, device ? "cuda" : "cpu", dtype ? dtype : "", err);
}

/* ---------------------------------------------------------------- state and copies */

static void test_cuda_state_save_load_clone(void **state) {
    if (!tu_have_gpu()) return;
    enum { T = 6000, CH = 256 };
    int32_t *ids = malloc(T * sizeof *ids);
    double *ref = malloc(T * sizeof *ref), *got = malloc(T * sizeof *got);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 2654435761u + 7) % 4096);
    const char *dtypes[] = {"fp32", "bf16"};
    /* a device ring holds W + 4096 slots: at k = 5120 the rings of sink:4:300, window:250 and
     * sink:2:0 have wrapped; the dense cache spans 2 pages of 1024 slots at 1280 and 5 at 5120 */
    const char *specs[] = {"sink:4:300", "window:250", "dense", "recompute:64", "sink:2:0"};
    const size_t ks[] = {0, 256, 1280, 5120};
    char err[LCB_ERRLEN];
    for (int d = 0; d < 2; d++) {
        Model m;
        open_on(&m, "random:llama-1m:4", LCB_DEVICE_CUDA, dtypes[d]);
        for (size_t q = 0; q < sizeof specs / sizeof *specs; q++) {
            Strategy s;
            assert_int_equal(strategy_parse(&s, specs[q], err, sizeof err), 0);
            if (strategy_score(&s, &m, ids, T, CH, ref, err, sizeof err)) fail_msg("%s: %s", specs[q], err);
            for (size_t kk = 0; kk < sizeof ks / sizeof *ks; kk++) {
                size_t k = ks[kk], bytes;
                stateio_resume_nll(&m, specs[q], ids, T, CH, k, got, &bytes);
                for (size_t t = k; t + 1 < T; t++)
                    if (got[t] != ref[t]) fail_msg("%s %s loaded at %zu: step %zu: %.9g, uninterrupted %.9g", dtypes[d], specs[q], k, t, got[t], ref[t]);
                stateio_clone_nll(&m, specs[q], ids, T, CH, k, got);
                for (size_t t = k; t + 1 < T; t++)
                    if (got[t] != ref[t]) fail_msg("%s %s cloned at %zu: step %zu: %.9g, uninterrupted %.9g", dtypes[d], specs[q], k, t, got[t], ref[t]);
                print_message("cuda %s %-12s state at %4zu: %zu bytes; loaded and cloned continue bit for bit\n", dtypes[d], specs[q], k, bytes);
            }
        }
        model_free(&m);
    }
    /* refusals: a bf16 state into an fp32 cache, a GPU state into a CPU cache */
    Model mb, mf, mc;
    open_on(&mb, "random:llama-1m:4", LCB_DEVICE_CUDA, "bf16");
    open_on(&mf, "random:llama-1m:4", LCB_DEVICE_CUDA, "fp32");
    open_on(&mc, "random:llama-1m:4", LCB_DEVICE_CPU, NULL);
    Strategy a, b;
    MemIO buf = {0};
    KvIO io = memio(&buf);
    if (strategy_parse(&a, "sink:4:300", err, sizeof err) || strategy_begin(&a, &mb, err, sizeof err) ||
        strategy_skip(&a, ids, 512, CH, err, sizeof err) || strategy_state_save(&a, &io, err, sizeof err))
        fail_msg("%s", err);
    strategy_end(&a);
    Model *into[] = {&mf, &mc};
    const char *needle[] = {"the saved KV cache is cuda bf16 --tp 1, 4 layers x 96 KV dims, 4 sinks + window 300 (ring 4396); this run's is cuda fp32",
                            "this run's is cpu fp32"};
    for (int i = 0; i < 2; i++) {
        buf.at = 0;
        assert_int_equal(strategy_parse(&b, "sink:4:300", err, sizeof err), 0);
        assert_int_equal(strategy_begin(&b, into[i], err, sizeof err), 0);
        int rc = strategy_state_load(&b, &io, err, sizeof err);
        strategy_end(&b);
        if (rc == 0 || !strstr(err, needle[i])) fail_msg("refusal %d: rc %d, \"%s\" (wanted \"%s\")", i, rc, err, needle[i]);
    }
    free(buf.p);
    model_free(&mb); model_free(&mf); model_free(&mc);
    free(ids); free(ref); free(got);
}

/* ---------------------------------------------------------------- the CLI */

static const char *write_ids(size_t T) {
    static char path[600];
    snprintf(path, sizeof path, "%s/cuda_state_ids.ids", tu_tmpdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < T; i++) fprintf(f, "%u ", (unsigned)((i * 2654435761u + 3) % 4096));
    fclose(f);
    return path;
}

/* one commit per 512 steps: killed after four */
static void kill9_resume_cuda(const char *spec) {
    const size_t T = 8000;
    char label[300], ref[600], db[600], args[1600];
    snprintf(label, sizeof label, "cuda %s", spec);
    snprintf(ref, sizeof ref, "%s/cuda_ref_%.*s.db", tu_tmpdir(), (int)strcspn(spec, ":"), spec);
    snprintf(db, sizeof db, "%s/cuda_kill_%.*s.db", tu_tmpdir(), (int)strcspn(spec, ":"), spec);
    snprintf(args, sizeof args, "--model random:llama-1m:4 --device cuda --dtype bf16 --dataset %s --strategy %s --chunk 256 --batch 512",
             write_ids(T), spec);
    tu_kill9_resume(&(TuKill9){.label = label, .args = args, .ref_db = ref, .db = db, .tokens = T, .kill_after = 2048, .wait_s = 60});
}

static void test_cuda_kill9_resume_sink(void **state) { if (tu_have_gpu()) kill9_resume_cuda("sink:4:300"); }
static void test_cuda_kill9_resume_dense(void **state) { if (tu_have_gpu()) kill9_resume_cuda("dense"); }

/* Probes from a GPU copy of the cache against the CPU's, on the reference model (real text, so
 * that verdicts are not all alike): runs 1 (cpu), 2 (cuda fp32), 3 (cuda bf16) in one file. */
static void test_cuda_probes_vs_cpu(void **state) {
    if (!tu_have_gpu()) return;
    char db[600], *out;
    snprintf(db, sizeof db, "%s/cuda_probes.db", tu_tmpdir());
    unlink(db);
    const char *dev[] = {"--device cpu", "--device cuda --dtype fp32", "--device cuda --dtype bf16"};
    for (int i = 0; i < 3; i++) {
        int rc = tu_run(&out, "%s run --model models/lcb-0.8m --dataset README.md --tokens 3000 --strategy sink:4:252 %s --probe-every 500 "
                        "--probe-tokens 48 --no-progress --db %s", tu_lcbench(), dev[i], db);
        if (rc) fail_msg("%s: exit %d: %s", dev[i], rc, out);
        free(out);
    }
    char *v[3], *pos[3];
    for (int i = 0; i < 3; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT group_concat(verdict, ' ') FROM (SELECT verdict FROM probes WHERE run_id=%d ORDER BY pos)", i + 1);
        v[i] = tu_db_text(db, sql);
        snprintf(sql, sizeof sql, "SELECT group_concat(pos, ' ') FROM (SELECT pos FROM probes WHERE run_id=%d ORDER BY pos)", i + 1);
        pos[i] = tu_db_text(db, sql);
        print_message("probes %-28s at %s: %s\n", dev[i], pos[i] ? pos[i] : "-", v[i] ? v[i] : "-");
        assert_non_null(v[i]);
    }
    assert_int_equal(tu_db_int(db, "SELECT COUNT(*) FROM probes WHERE run_id=1"), 5); /* 500 .. 2500 */
    for (int i = 1; i < 3; i++) {
        assert_string_equal(pos[i], pos[0]);
        if (strcmp(v[i], v[0])) fail_msg("%s: probe verdicts \"%s\", on the CPU \"%s\"", dev[i], v[i], v[0]);
    }
    /* the streams themselves: per step in fp32, the mean in bf16 */
    double worst = 0;
    {
        char *o1, *o2;
        if (tu_run(&o1, "%s show 1 --nll --db %s", tu_lcbench(), db) || tu_run(&o2, "%s show 2 --nll --db %s", tu_lcbench(), db))
            fail_msg("show --nll");
        char *p1 = o1, *p2 = o2;
        size_t n = 0;
        while (*p1 && *p2) {
            long w1, w2, t1, t2;
            double x1, x2;
            int k1, k2;
            if (sscanf(p1, "%ld\t%ld\t%lf%n", &w1, &t1, &x1, &k1) != 3 || sscanf(p2, "%ld\t%ld\t%lf%n", &w2, &t2, &x2, &k2) != 3) break;
            assert_true(t1 == t2);
            worst = fmax(worst, fabs(x1 - x2));
            p1 += k1 + (p1[k1] == '\n');
            p2 += k2 + (p2[k2] == '\n');
            n++;
        }
        assert_int_equal(n, 2999);
        free(o1);
        free(o2);
    }
    print_message("stream cuda fp32 vs cpu: max |d nll| = %.3g\n", worst);
    assert_true(worst < TU_TOL_F32);
    char *dt = tu_db_text(db, "SELECT printf('%.9f', abs((SELECT mean_nll FROM runs WHERE id=3) - (SELECT mean_nll FROM runs WHERE id=1)))");
    assert_non_null(dt);
    double dm = strtod(dt, NULL);
    free(dt);
    print_message("stream cuda bf16 vs cpu: |d mean nll| = %.3g\n", dm);
    assert_true(dm < TU_TOL_BF16);
    for (int i = 0; i < 3; i++) { free(v[i]); free(pos[i]); }
}

int main(int argc, char **argv) {
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_cuda_state_save_load_clone),
        cmocka_unit_test(test_cuda_kill9_resume_sink),
        cmocka_unit_test(test_cuda_kill9_resume_dense),
        cmocka_unit_test(test_cuda_probes_vs_cpu),
    };
    return tu_run_selected("test_cuda_state", all, sizeof all / sizeof *all, argc, argv);
}
