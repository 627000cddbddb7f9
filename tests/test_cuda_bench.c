/*
 * test_cuda_bench.c — the CUDA benchmarks of BENCHMARKS.md as one program over the engine's
 * library (no harness, no store), so that the numbers measure the backend alone:
 *
 *   test_cuda_bench stream MODEL SPEC TOKENS CHUNK DTYPE
 *       feed TOKENS random ids (seeded) through strategy SPEC, CHUNK tokens per forward, NLLs
 *       only (fused on the device); prints wall time, tokens/s and device memory
 *   test_cuda_bench oom MODEL CHUNK DTYPE
 *       dense until the first error: one line per chunk with the position, cudaMemGetInfo's
 *       used bytes and the allocator's weights / KV / workspace bytes; then the error
 *   test_cuda_bench attn [DTYPE [VARIANTS]]
 *       the attention kernel alone on the shapes of the 7B models' chunked forward (4096 queries,
 *       N(0, 1) data): median time of 20 launches and effective TFLOP/s (4 hd H per visible
 *       (query, key) pair), for each kernel variant in VARIANTS (default "1,2,3,4,0": the flash
 *       kernel's configurations, then the scalar one on the first shape only; -1 the default,
 *       the configuration it resolves to in the kernel column); DTYPE bf16
 * Exit status 0, or 1 on a failure other than the expected out of memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/cuda/ops.h"
#include "engine/model.h"
#include "strategies/strategy.h"

static double mib(size_t b) { return b / 1048576.0; }

static void mem_line(const char *tag, long long pos, double el) {
    size_t used = 0, total = 0;
    cuda_mem_info(&used, &total);
    printf("%s pos %lld  t %.1f s  device used %.0f MiB of %.0f  | weights %.0f  kv %.0f  work %.0f MiB (peaks %.0f / %.0f / %.0f)\n", tag, pos, el,
           mib(used), mib(total), mib(cuda_mem_now(LCB_MEM_WEIGHTS)), mib(cuda_mem_now(LCB_MEM_KV)), mib(cuda_mem_now(LCB_MEM_WORK)),
           mib(cuda_mem_peak(LCB_MEM_WEIGHTS)), mib(cuda_mem_peak(LCB_MEM_KV)), mib(cuda_mem_peak(LCB_MEM_WORK)));
    fflush(stdout);
}

/* the attention kernel alone: one line per (shape, variant) */
static int bench_attention(const char *dtype, const char *variants) {
    static const struct { const char *what; CudaAttnShape sh; } shapes[] = {
        {"llama2-7b sink:4:4092, t = 1M", {4096, 32, 32, 128, 1 << 20, 4, 4092, 4092 + 4096, 0, 0}},
        {"llama2-7b window:4096, t = 1M", {4096, 32, 32, 128, 1 << 20, 0, 4096, 4096 + 4096, 0, 0}},
        {"llama2-7b window:16, t = 1M", {4096, 32, 32, 128, 1 << 20, 0, 16, 16 + 4096, 0, 0}},
        {"llama2-7b dense causal 4096 x 4096", {4096, 32, 32, 128, 0, 0, -1, 0, 0, 0}},
        {"llama2-7b dense 4096 after 4096 (x 8192)", {4096, 32, 32, 128, 4096, 0, -1, 0, 0, 0}},
        {"mistral-7b window 4096 (GQA 32:8), t = 1M", {4096, 32, 8, 128, 1 << 20, 0, 4095, 4095 + 4096, 0, 0}},
        {"falcon-7b sink:4:2044 (MQA 71:1, hd 64)", {4096, 71, 1, 64, 1 << 20, 4, 2044, 2044 + 4096, 0, 0}},
        {"llama2-7b s2:1024 over 8192", {8192, 32, 32, 128, 0, 0, -1, 0, 1024, 8192}},
    };
    char desc[256], err[LCB_ERRLEN];
    cuda_describe(desc, sizeof desc);
    printf("device: %s\nattention kernel alone, %s, median of 20 launches\n", desc, dtype);
    printf("%-44s %-8s %-7s %9s %9s\n", "shape", "variant", "kernel", "ms", "TFLOP/s");
    int vs[8], nv = 0;
    for (const char *p = variants; *p && nv < 8;) {
        vs[nv++] = atoi(p);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int v = 0; v < nv; v++) {
            const CudaAttnShape *sh = &shapes[i].sh;
            const int kern = cuda_op_attention_kernel(dtype, vs[v], sh->hd);
            if (kern == 0 && i > 0) continue; /* the scalar kernel is slow: the first shape shows it */
            double ms = 0, fl = 0;
            if (cuda_op_attention_time(dtype, vs[v], sh, kern ? 20 : 3, &ms, &fl, err, sizeof err)) {
                printf("%-44s %-8d ERROR %s\n", shapes[i].what, vs[v], err);
                rc = 1;
                continue;
            }
            char kname[16];
            snprintf(kname, sizeof kname, kern ? "flash %d" : "scalar", kern);
            printf("%-44s %-8d %-7s %9.3f %9.1f\n", shapes[i].what, vs[v], kname, ms, fl / (ms * 1e-3) / 1e12);
            fflush(stdout);
        }
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "attn")) return bench_attention(argc > 2 ? argv[2] : "bf16", argc > 3 ? argv[3] : "1,2,3,4,0");
    if (argc < 2 || (strcmp(argv[1], "stream") && strcmp(argv[1], "oom"))) {
        fprintf(stderr, "usage: %s stream MODEL SPEC TOKENS CHUNK DTYPE | oom MODEL CHUNK DTYPE | attn [DTYPE [VARIANTS]]\n", argv[0]);
        return 2;
    }
    int oom = !strcmp(argv[1], "oom");
    if (argc != (oom ? 5 : 7)) { fprintf(stderr, "%s: wrong number of arguments\n", argv[0]); return 2; }
    const char *model = argv[2], *spec = oom ? "dense" : argv[3], *dtype = oom ? argv[4] : argv[6];
    long long tokens = oom ? (1LL << 40) : atoll(argv[4]);
    int chunk = atoi(oom ? argv[3] : argv[5]);
    char err[LCB_ERRLEN], desc[256];
    cuda_describe(desc, sizeof desc);
    printf("device: %s\n", desc);
    double t_open = lcb_now();
    Model m;
    if (model_open_on(&m, model, NULL, LCB_DEVICE_CUDA, dtype, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    printf("model %s (%s, %.2f B parameters) on the device in %.1f s\n", model, m.dev_dtype, config_n_params(&m.cfg) / 1e9, lcb_now() - t_open);
    Strategy s;
    if (strategy_parse(&s, spec, err, sizeof err) || strategy_begin(&s, &m, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    int32_t *ids = malloc((size_t)(chunk + 1) * 4), *tg = malloc((size_t)chunk * 4);
    double *nll = malloc((size_t)chunk * 8), sum = 0;
    uint64_t r = 0x243f6a8885a308d3ull;
    int V = m.cfg.vocab, rc = 0;
    for (int i = 0; i <= chunk; i++) { r ^= r << 13; r ^= r >> 7; r ^= r << 17; ids[i] = (int32_t)(r % V); }
    double t0 = lcb_now(), last = t0;
    long long pos = 0;
    while (pos < tokens) {
        int n = tokens - pos < chunk ? (int)(tokens - pos) : chunk;
        for (int i = 0; i < n; i++) tg[i] = ids[i + 1];
        if (strategy_feed_nll(&s, ids, n, tg, nll, err, sizeof err)) {
            int is_oom = !strncmp(err, "out of memory", 13);
            printf("%s at position %lld: %s\n", is_oom ? "OOM" : "ERROR", pos, err);
            rc = is_oom && oom ? 0 : 1;
            break;
        }
        for (int i = 0; i < n; i++) sum += nll[i];
        pos += n;
        ids[0] = ids[n];
        for (int i = 1; i <= chunk; i++) { r ^= r << 13; r ^= r >> 7; r ^= r << 17; ids[i] = (int32_t)(r % V); }
        double now = lcb_now();
        if (oom || now - last > 15 || pos == tokens) { mem_line(oom ? "dense" : "stream", pos, now - t0); last = now; }
    }
    double el = lcb_now() - t0;
    printf("%s %s %s chunk %d: %lld tokens in %.2f s = %.0f tokens/s, mean nll %.4f; kv allocated %.1f MiB\n", model, spec, m.dev_dtype, chunk,
           pos, el, pos / el, pos ? sum / pos : NAN, mib(s.kv.bytes));
    strategy_end(&s);
    model_free(&m);
    free(ids); free(tg); free(nll);
    return rc;
}
