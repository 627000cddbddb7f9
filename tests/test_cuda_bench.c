/*
 * test_cuda_bench.c — the CUDA benchmarks of BENCHMARKS.md as one program over the engine's
 * library (no harness, no store), so that the numbers measure the backend alone:
 *
 *   test_cuda_bench stream MODEL SPEC TOKENS CHUNK DTYPE [VARIANT]
 *       feed TOKENS random ids (seeded) through strategy SPEC, CHUNK tokens per forward, NLLs
 *       only (fused on the device); prints wall time, tokens/s and device memory.  VARIANT: the
 *       attention kernel's configuration (cuda_op_attention_variant; default -1, the engine's)
 *   test_cuda_bench oom MODEL CHUNK DTYPE
 *       dense until the first error: one line per chunk with the position, cudaMemGetInfo's
 *       used bytes and the allocator's weights / KV / workspace bytes; then the error
 *   test_cuda_bench decode MODEL SPEC PROMPT STEPS DTYPE
 *       the decode path of `lcbench generate`, greedy: a PROMPT-token prompt (random ids, seeded)
 *       in one forward, then DECODE_WARM warm-up steps and STEPS timed steps of one token each:
 *       strategy_feed of the token with its logits copied to the host, argmax there
 *       (sampler_pick), as gen_tokens does.  Prints tokens/s, ms/token and its split: inside
 *       strategy_feed (median and max of the steps too) and on the host between the calls.
 *       Then the same through gen_tokens_ex itself (harness/fluency/generate.c: the prompt in
 *       its chunks of 256, a callback's clock per token), and whether both chose the same
 *       tokens (the prompt's chunking differs, so they may part where two logits are close).
 *       Parseable lines: "lcb_decode tokens/s N ms/token N fwd_ms N host_ms N prompt P steps S"
 *       and "lcb_generate tokens/s N ms/token N prompt P steps S".  DTYPE cpu: the same on the CPU
 *       forward (fp32), which checks the bench on a machine without a GPU
 *   test_cuda_bench attn [DTYPE [VARIANTS]]
 *       the attention kernel alone on the shapes of the 7B models' chunked forward (4096 queries,
 *       N(0, 1) data): median time of 20 launches and effective TFLOP/s (4 hd H per visible
 *       (query, key) pair), for each kernel variant in VARIANTS (default "1,2,3,4,0": the flash
 *       kernel's configurations, then the scalar one on the first shape only; -1 the default,
 *       the configuration it resolves to in the kernel column); DTYPE bf16
 *   test_cuda_bench attn DTYPE VARIANTS ITERS SHAPES
 *       the same with the median of ITERS launches (at most 1000) on the first SHAPES shapes: a
 *       long enough run holds the card at its sustained (power-limited) clock
 *   test_cuda_bench gemm [DTYPE [SECONDS [ROWS]]]
 *       the weight products of one llama2-7b forward (QKV, output, gate/up, down per layer, 32
 *       layers of distinct weights, then the LM head) through the forward's own GEMM path, ROWS
 *       rows (default 4096, the chunk): each product alone (median of 10) and the whole sequence
 *       repeated for SECONDS (default 10) at the sustained clock, in TFLOP/s and microseconds per
 *       token: the bound the products alone put on a chunked run.  ROWS <= 4 times the decode
 *       product instead (the weights' bandwidth in TB/s: one read of every weight per token)
 * LCB_ATTN_SPLIT=N in the environment aims the decode attention's split over the keys at N blocks a
 * multiprocessor (cuda_op_attention_split).
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
#include "harness/fluency/generate.h"
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
static int bench_attention(const char *dtype, const char *variants, int iters, int nshapes) {
    static const struct { const char *what; CudaAttnShape sh; } shapes[] = {
        {"llama2-7b sink:4:4092, t = 1M", {4096, 32, 32, 128, 1 << 20, 4, 4092, 4092 + 4096, 0, 0}},
        {"llama2-7b window:4096, t = 1M", {4096, 32, 32, 128, 1 << 20, 0, 4096, 4096 + 4096, 0, 0}},
        {"llama2-7b window:16, t = 1M", {4096, 32, 32, 128, 1 << 20, 0, 16, 16 + 4096, 0, 0}},
        {"llama2-7b dense causal 4096 x 4096", {4096, 32, 32, 128, 0, 0, -1, 0, 0, 0}},
        {"llama2-7b dense 4096 after 4096 (x 8192)", {4096, 32, 32, 128, 4096, 0, -1, 0, 0, 0}},
        {"mistral-7b window 4096 (GQA 32:8), t = 1M", {4096, 32, 8, 128, 1 << 20, 0, 4095, 4095 + 4096, 0, 0}},
        {"falcon-7b sink:4:2044 (MQA 71:1, hd 64)", {4096, 71, 1, 64, 1 << 20, 4, 2044, 2044 + 4096, 0, 0}},
        {"llama2-7b s2:1024 over 8192", {8192, 32, 32, 128, 0, 0, -1, 0, 1024, 8192}},
        /* decode: one query over a full window (the split over the keys; memory-bound: GB/s of K and V) */
        {"llama2-7b decode sink:4:4092, t = 1M", {1, 32, 32, 128, 1 << 20, 4, 4092, 4092 + 4096, 0, 0}},
        {"mistral-7b decode window 4096 (GQA 32:8)", {1, 32, 8, 128, 1 << 20, 0, 4095, 4095 + 4096, 0, 0}},
    };
    char desc[256], err[LCB_ERRLEN];
    cuda_describe(desc, sizeof desc);
    printf("device: %s\nattention kernel alone, %s, median of %d launches\n", desc, dtype, iters);
    printf("%-44s %-8s %-7s %9s %9s\n", "shape", "variant", "kernel", "ms", "TFLOP/s");
    int vs[8], nv = 0;
    for (const char *p = variants; *p && nv < 8;) {
        vs[nv++] = atoi(p);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes && (int)i < nshapes; i++)
        for (int v = 0; v < nv; v++) {
            const CudaAttnShape *sh = &shapes[i].sh;
            const int kern = cuda_op_attention_kernel(dtype, vs[v], sh);
            if (kern == 0 && i > 0) continue; /* the scalar kernel is slow: the first shape shows it */
            double ms = 0, fl = 0;
            if (cuda_op_attention_time(dtype, vs[v], sh, kern ? iters : 3, &ms, &fl, err, sizeof err)) {
                printf("%-44s %-8d ERROR %s\n", shapes[i].what, vs[v], err);
                rc = 1;
                continue;
            }
            char kname[16];
            snprintf(kname, sizeof kname, kern >= 5 ? "wgmma %d" : kern ? "flash %d" : "scalar", kern);
            if (sh->n == 1) /* decode: K and V bytes of the keys it sees, per second */
                printf("%-44s %-8d %-7s %9.4f %9.2f TB/s of K, V\n", shapes[i].what, vs[v], kname, ms,
                       fl / (4.0 * sh->hd * sh->H) * 2 * sh->KV * sh->hd * 2 / (ms * 1e-3) / 1e12);
            else
                printf("%-44s %-8d %-7s %9.3f %9.1f\n", shapes[i].what, vs[v], kname, ms, fl / (ms * 1e-3) / 1e12);
            fflush(stdout);
        }
    return rc;
}

/* ---------------------------------------------------------------- weight products */

static int bench_gemm(const char *dtype, double seconds, int rows) {
    /* llama2-7b: dim 4096, ffn 11008, vocab 32000; the forward's output types and betas (backend.cu) */
    static const CudaGemmShape layer[] = {
        {"QKV 4096 -> 12288 (T out)", 4096, 12288, 0, 0.f},
        {"output 4096 -> 4096 (fp32 += )", 4096, 4096, 1, 1.f},
        {"gate/up 4096 -> 22016 (T out)", 4096, 22016, 0, 0.f},
        {"down 11008 -> 4096 (fp32 += )", 11008, 4096, 1, 1.f},
    };
    static const CudaGemmShape head[] = {{"LM head 4096 -> 32000 (fp32)", 4096, 32000, 1, 0.f}};
    const int L = 32, nl = (int)(sizeof layer / sizeof *layer);
    char err[LCB_ERRLEN], desc[256];
    if (rows < 1 || !(seconds >= 0)) { fprintf(stderr, "gemm: ROWS must be >= 1 and SECONDS >= 0\n"); return 2; }
    cuda_describe(desc, sizeof desc);
    printf("device: %s\nweight products of random:llama2-7b, %s, %d rows; alone: median of 10 launches\n", desc, dtype, rows);
    double alone[8], seq_l = 0, fl_l = 0;
    int n_l = 0;
    if (cuda_op_gemm_time(dtype, rows, layer, nl, L, seconds, alone, &seq_l, &n_l, err, sizeof err) ||
        cuda_op_gemm_time(dtype, rows, head, 1, 1, 0, alone + nl, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "gemm: %s\n", err);
        return 1;
    }
    printf("%-34s %9s %9s\n", "product", "ms", "TFLOP/s");
    for (int i = 0; i <= nl; i++) {
        const CudaGemmShape *g = i < nl ? &layer[i] : head;
        const double fl = 2.0 * rows * g->in * g->out;
        if (i < nl) fl_l += fl;
        printf("%-34s %9.3f %9.1f\n", g->what, alone[i], fl / (alone[i] * 1e-3) / 1e12);
    }
    const double fl_h = 2.0 * rows * head->in * head->out, fl = L * fl_l + fl_h;
    const double ms = seq_l + alone[nl]; /* the 32 layers' sequence at the sustained clock, the head once */
    printf("sequence of %d layers: %.1f ms (mean of %d passes over %.1f s) = %.1f TFLOP/s\n", L, seq_l, n_l, seq_l * n_l * 1e-3,
           L * fl_l / (seq_l * 1e-3) / 1e12);
    const double wbytes = 2.0 * (L * fl_l + fl_h) / (2.0 * rows); /* bf16 / fp16 weights: 2 bytes per multiply-add of a row */
    printf("lcb_gemm rows %d us/token %.2f TFLOP/s %.1f GFLOP/token %.2f bound_tokens/s %.0f weights_TB/s %.2f\n", rows, ms * 1e3 / rows,
           fl / (ms * 1e-3) / 1e12, fl / rows / 1e9, rows / (ms * 1e-3), wbytes / (ms * 1e-3) / 1e12);
    return 0;
}

/* ---------------------------------------------------------------- decode */

#define DECODE_WARM 8   /* steps before the clock starts (cuBLAS heuristics, first launches) */

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* gen_tokens_ex's callback: the host clock when token i was chosen */
typedef struct { double *t; int64_t n; } GenClock;
static int gen_clock(void *ctx, int64_t i, int32_t id) {
    (void)id;
    GenClock *g = ctx;
    if (i < g->n) g->t[i] = lcb_now();
    return 0;
}

static int bench_decode(const char *model, const char *spec, int P, int steps, const char *dtype) {
    char err[LCB_ERRLEN], desc[256];
    if (P < 1 || steps < 1) { fprintf(stderr, "decode: PROMPT and STEPS must be >= 1\n"); return 2; }
    const int cpu = !strcmp(dtype, "cpu"); /* the same loops on the CPU forward (a check of this bench without a GPU) */
    if (!cpu) cuda_describe(desc, sizeof desc);
    printf("device: %s\n", cpu ? "the CPU" : desc);
    double t_open = lcb_now();
    Model m;
    if (cpu ? model_open(&m, model, NULL, err, sizeof err) : model_open_on(&m, model, NULL, LCB_DEVICE_CUDA, dtype, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char *mdt = cpu ? "fp32" : m.dev_dtype;
    printf("model %s (%s, %.2f B parameters) in %.1f s\n", model, mdt, config_n_params(&m.cfg) / 1e9, lcb_now() - t_open);
    const int V = m.cfg.vocab, total = DECODE_WARM + steps;
    int32_t *ids = malloc((size_t)P * 4), *tok = malloc((size_t)total * 4), *gtok = malloc((size_t)(total + 1) * 4);
    double *fwd = malloc((size_t)total * 8), *tg = malloc((size_t)(total + 1) * 8);
    /* the host logits as gen_tokens has them: one row, pageable, from the counting allocator */
    float *lg = lcb_alloc(LCB_MEM_WORK, (size_t)V * sizeof(float));
    if (!ids || !tok || !gtok || !fwd || !tg || !lg) { fprintf(stderr, "decode: out of memory\n"); return 1; }
    uint64_t r = 0x243f6a8885a308d3ull;
    for (int i = 0; i < P; i++) { r ^= r << 13; r ^= r >> 7; r ^= r << 17; ids[i] = (int32_t)(r % V); }
    int rc = 1;
    Strategy s;
    memset(&s, 0, sizeof s);
    Sampler sm;
    sampler_init(&sm, 0, 0, 1, 0); /* temperature 0: greedy, argmax with the lowest id on ties */
    if (strategy_parse(&s, spec, err, sizeof err) || strategy_begin(&s, &m, err, sizeof err)) goto fail;

    /* 1. the loop of gen_tokens, spelled out: the prompt in one forward (only its last row's
     *    logits come back), then per step: argmax on the host, feed the token, its logits back */
    double t_pre = lcb_now();
    if (!s.ops->feed) {
        FwdOut o = {lg, NULL, NULL};
        if (model_forward(&m, &s.kv, ids, P, P - 1, &o, err, sizeof err)) goto fail;
        s.n_fed += P;
    } else { /* a policy with its own feed: the prompt but its last token without outputs */
        if (P > 1 && strategy_feed(&s, ids, P - 1, NULL, err, sizeof err)) goto fail;
        if (strategy_feed(&s, ids + P - 1, 1, lg, err, sizeof err)) goto fail;
    }
    t_pre = lcb_now() - t_pre;
    double t0 = 0, sum_fwd = 0;
    for (int i = 0; i < total; i++) {
        double a = lcb_now();
        if (i == DECODE_WARM) t0 = a;
        int32_t id = sampler_pick(&sm, lg, V);
        tok[i] = id;
        double b = lcb_now();
        if (strategy_feed(&s, &id, 1, lg, err, sizeof err)) { printf("ERROR at decode step %d\n", i); goto fail; }
        fwd[i] = lcb_now() - b;
        if (i >= DECODE_WARM) sum_fwd += fwd[i];
    }
    double el = lcb_now() - t0;
    qsort(fwd + DECODE_WARM, (size_t)steps, sizeof *fwd, cmp_dbl);
    const double ms = 1e3 * el / steps, fwd_ms = 1e3 * sum_fwd / steps, host_ms = ms - fwd_ms;
    const double wbytes = cpu ? 0 : (double)cuda_mem_now(LCB_MEM_WEIGHTS);
    printf("decode %s %s %s: prompt %d in one forward %.1f ms; %d steps after %d warm-up: %.2f s = %.1f tokens/s, %.3f ms/token "
           "= strategy_feed %.3f ms (median %.3f, max %.3f) + host between calls %.3f ms\n",
           model, spec, mdt, P, 1e3 * t_pre, steps, DECODE_WARM, el, steps / el, ms, fwd_ms, 1e3 * fwd[DECODE_WARM + steps / 2],
           1e3 * fwd[total - 1], host_ms);
    if (!cpu) printf("weights on the device %.2f GiB (the embedding table included): one read per token at 4.8 TB/s (H200 HBM3e peak) is %.3f ms/token = %.0f tokens/s at most\n",
           wbytes / 1073741824.0, 1e3 * wbytes / 4.8e12, 4.8e12 / wbytes);
    printf("lcb_decode tokens/s %.2f ms/token %.4f fwd_ms %.4f host_ms %.4f prompt %d steps %d\n", steps / el, ms, fwd_ms, host_ms, P, steps);
    fflush(stdout);
    strategy_end(&s);

    /* 2. the same through gen_tokens_ex (harness/fluency/generate.c), a fresh cache */
    memset(&s, 0, sizeof s);
    if (strategy_parse(&s, spec, err, sizeof err) || strategy_begin(&s, &m, err, sizeof err)) goto fail;
    sampler_free(&sm);
    sampler_init(&sm, 0, 0, 1, 0);
    GenClock gc = {tg, total + 1};
    double g0 = lcb_now();
    /* total + 1 tokens: the last is chosen but not fed, so `total` feeds, the last `steps` timed */
    if (gen_tokens_ex(&s, ids, P, &sm, gtok, total + 1, gen_clock, &gc, NULL, err, sizeof err)) { printf("ERROR in gen_tokens_ex\n"); goto fail; }
    const double gel = tg[total] - tg[DECODE_WARM], gms = 1e3 * gel / steps;
    int agree = 0;
    while (agree < total && gtok[agree] == tok[agree]) agree++;
    printf("generate (gen_tokens_ex) %s %s: prompt %d in chunks of 256 %.1f ms; %d steps after %d warm-up: %.2f s = %.1f tokens/s, %.3f ms/token; "
           "the same tokens as above for the first %d of %d\n",
           spec, mdt, P, 1e3 * (tg[0] - g0), steps, DECODE_WARM, gel, steps / gel, gms, agree, total);
    printf("lcb_generate tokens/s %.2f ms/token %.4f prompt %d steps %d\n", steps / gel, gms, P, steps);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "%s\n", err);
out:
    strategy_end(&s);
    sampler_free(&sm);
    lcb_free(LCB_MEM_WORK, lg, (size_t)V * sizeof(float));
    model_free(&m);
    free(ids); free(tok); free(gtok); free(fwd); free(tg);
    return rc;
}

int main(int argc, char **argv) {
    if (getenv("LCB_ATTN_SPLIT")) cuda_op_attention_split(atoi(getenv("LCB_ATTN_SPLIT")));
    if (argc >= 2 && !strcmp(argv[1], "attn")) {
        const int iters = argc > 4 ? atoi(argv[4]) : 20, nshapes = argc > 5 ? atoi(argv[5]) : 1 << 20;
        if (iters < 1 || iters > 1000 || nshapes < 1) { fprintf(stderr, "attn: ITERS in 1 .. 1000, SHAPES >= 1\n"); return 2; }
        return bench_attention(argc > 2 ? argv[2] : "bf16", argc > 3 ? argv[3] : "1,2,3,4,0", iters, nshapes);
    }
    if (argc >= 2 && !strcmp(argv[1], "gemm"))
        return bench_gemm(argc > 2 ? argv[2] : "bf16", argc > 3 ? atof(argv[3]) : 10, argc > 4 ? atoi(argv[4]) : 4096);
    if (argc >= 2 && !strcmp(argv[1], "decode")) {
        if (argc != 7) { fprintf(stderr, "usage: %s decode MODEL SPEC PROMPT STEPS DTYPE\n", argv[0]); return 2; }
        return bench_decode(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), argv[6]);
    }
    if (argc < 2 || (strcmp(argv[1], "stream") && strcmp(argv[1], "oom"))) {
        fprintf(stderr, "usage: %s stream MODEL SPEC TOKENS CHUNK DTYPE [VARIANT] | oom MODEL CHUNK DTYPE | decode MODEL SPEC PROMPT STEPS DTYPE | attn [DTYPE [VARIANTS [ITERS SHAPES]]] | gemm [DTYPE [SECONDS [ROWS]]]\n", argv[0]);
        return 2;
    }
    int oom = !strcmp(argv[1], "oom");
    if (argc != (oom ? 5 : 7) && (oom || argc != 8)) { fprintf(stderr, "%s: wrong number of arguments\n", argv[0]); return 2; }
    if (argc == 8) cuda_op_attention_variant(atoi(argv[7]));
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
