/*
 * cmd_bench.c — `lcbench bench`: CPU throughput of the forward pass and of the cache policies,
 * next to this machine's measured sgemm rate, printed as a markdown table for BENCHMARKS.md.
 *
 *   sgemm      GFLOP/s of cblas_sgemm on square 1024 products (the machine's GEMM ceiling)
 *   dense      tokens/s scoring (next-token NLLs, as `lcbench run`) T tokens in 1024-token dense
 *              windows, per chunk size; its fraction of the sgemm-bound rate =
 *              tokens/s x FLOPs/token / sgemm FLOP/s; next to it the rate of the model's own
 *              weight products alone (engine/gemm.h, the packed matrices) at that chunk
 *   streaming  sink:4:1020 chunked vs chunk=1, and vs dense over 1024-token windows
 * Timings are wall-clock on a noisy shared machine: compare ratios taken in one run.
 */
#include "engine/common.h"
#include "engine/gemm.h"
#include "engine/model.h"
#include "harness/cmd/cli.h"
#include "strategies/strategy.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double sgemm_gflops(int n, double min_seconds) {
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)), *c = malloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
    int reps = 0;
    double t0 = lcb_now(), dt;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        reps++;
    } while ((dt = lcb_now() - t0) < min_seconds);
    free(a); free(b); free(c);
    return 2.0 * n * n * (double)n * reps / dt / 1e9;
}

/* GFLOP/s of the forward's own weight products alone at n rows: the model's packed matrices
 * (QKV, output, MLP of every layer, LM head) through gemm_packed, as the CPU forward runs them. */
static double model_gemm_gflops(const Model *m, int n, double min_seconds) {
    const ModelConfig *c = &m->cfg;
    int sh[MAT_N][2], most_in = 0, most_out = 0; /* (out, in) */
    config_matrices(c, sh);
    for (int i = 0; i < MAT_N; i++) {
        if (sh[i][1] > most_in) most_in = sh[i][1];
        if (sh[i][0] > most_out) most_out = sh[i][0];
    }
    float *x = calloc((size_t)n * most_in, sizeof(float)), *y = calloc((size_t)n * most_out, sizeof(float));
    double flops = 0, t0 = lcb_now(), dt;
    do {
        for (int l = 0; l < c->n_layers; l++) {
            const LayerWeights *w = &m->layers[l];
            const float *wp[4] = {w->wqkv, w->wo, w->wup, w->wdown};
            for (int k = 0; k < 4; k++) {
                gemm_packed(x, sh[k][1], n, sh[k][1], wp[k], sh[k][0], NULL, y, sh[k][0], 0);
                flops += 2.0 * n * sh[k][0] * sh[k][1];
            }
        }
        gemm_packed(x, c->dim, n, c->dim, m->lm_head, c->vocab, NULL, y, c->vocab, 0);
        flops += 2.0 * n * (double)c->dim * c->vocab;
    } while ((dt = lcb_now() - t0) < min_seconds);
    free(x); free(y);
    return flops / dt / 1e9;
}

/* The same products through cblas_sgemm, each layer's weights in their own (in, out) buffer (a
 * fresh copy, so no cache sharing flatters either side): what OpenBLAS reaches when it packs the
 * weight on every call, the reason engine/gemm.h exists.  -1 when the copies would not fit. */
static double openblas_gemm_gflops(const Model *m, int n, double min_seconds) {
    const ModelConfig *c = &m->cfg;
    int sh[MAT_N][2], most_in = 0, most_out = 0; /* (out, in) */
    config_matrices(c, sh);
    size_t per_layer = 0;
    for (int i = 0; i < MAT_N; i++) {
        if (i < MAT_HEAD) per_layer += (size_t)sh[i][0] * sh[i][1];
        if (sh[i][1] > most_in) most_in = sh[i][1];
        if (sh[i][0] > most_out) most_out = sh[i][0];
    }
    size_t total = per_layer * c->n_layers + (size_t)sh[MAT_HEAD][0] * sh[MAT_HEAD][1];
    if (total > ((size_t)1 << 28)) return -1; /* 1 GiB of copies */
    float *w = malloc(total * sizeof(float)), *x = calloc((size_t)n * most_in, sizeof(float)), *y = calloc((size_t)n * most_out, sizeof(float));
    if (!w || !x || !y) { free(w); free(x); free(y); return -1; }
    for (size_t i = 0; i < total; i++) w[i] = (float)((i * 2654435761u) % 1000) * 1e-4f;
    double flops = 0, t0 = lcb_now(), dt;
    do {
        const float *p = w;
        for (int l = 0; l < c->n_layers * MAT_HEAD + 1; l++) { /* every layer's four, then the LM head */
            const int k = l < c->n_layers * MAT_HEAD ? l % MAT_HEAD : MAT_HEAD, out = sh[k][0], in = sh[k][1];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.f, x, in, p, out, 0.f, y, out);
            flops += 2.0 * n * out * in;
            p += (size_t)out * in;
        }
    } while ((dt = lcb_now() - t0) < min_seconds);
    free(w); free(x); free(y);
    return flops / dt / 1e9;
}

/* FLOPs per token: every matmul weight twice (multiply-add), plus attention's QK and PV over
 * `ctx` keys on average. */
static double flops_per_token(const ModelConfig *c, double ctx) {
    double d = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv * hd;
    double layer = d * (qd + 2 * kvd) + qd * d + (c->gated_mlp ? 3 : 2) * d * c->ffn;
    return 2 * (layer * c->n_layers + (double)c->vocab * d) + 4 * ctx * qd * c->n_layers;
}

/* tokens/s of scoring ids[0..T) under spec with chunk, from a fresh state;
 * `window` > 0 restarts the strategy every `window` tokens (dense over windows). */
static double rate(Model *m, const char *spec, const int32_t *ids, size_t T, size_t chunk, size_t window) {
    char err[LCB_ERRLEN];
    Strategy s;
    if (strategy_parse(&s, spec, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    double *nll = malloc(chunk * sizeof *nll);
    int32_t *tg = malloc(chunk * sizeof *tg);
    double t0 = lcb_now();
    size_t w = window ? window : T;
    for (size_t w0 = 0; w0 < T; w0 += w) {
        if (strategy_begin(&s, m, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
        for (size_t t = w0; t < w0 + w && t < T; t += chunk) {
            size_t n = chunk < w0 + w - t ? chunk : w0 + w - t;
            if (t + n > T) n = T - t;
            /* scoring as `lcbench run` does it: the NLL of each next token, no logits kept */
            for (size_t i = 0; i < n; i++) tg[i] = t + i + 1 < w0 + w && t + i + 1 < T ? ids[t + i + 1] : -1;
            if (strategy_feed_nll(&s, ids + t, (int)n, tg, nll, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
        }
        strategy_end(&s);
    }
    double dt = lcb_now() - t0;
    free(nll);
    free(tg);
    return T / dt;
}

/* The best of `reps` timings: this machine is shared and noisy, and a ratio of two rates is only
 * as steady as its slower measurement. */
static double best_rate(Model *m, const char *spec, const int32_t *ids, size_t T, size_t chunk, size_t window, int reps) {
    double best = 0;
    for (int i = 0; i < reps; i++) {
        double r = rate(m, spec, ids, T, chunk, window);
        if (r > best) best = r;
    }
    return best;
}

int cmd_bench(int argc, char **argv) {
    Cli c;
    cli_init(&c, "bench", argc, argv);
    const char *model = "random:llama-10m";
    uint64_t tokens = 8192, reps = 3;
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
        if (!strcmp(f, "--model")) { if (!(v = cli_value(&c))) return EXIT_USAGE; model = v; }
        else if (!strcmp(f, "--reps")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (cli_parse_count(f, v, 1, 1, 100, &reps)) return cli_usage_error(&c, "--reps \"%s\" must be an integer in [1, 100]", v);
        }
        else if (!strcmp(f, "--tokens")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (cli_parse_count(f, v, 1, 2048, 1ull << 26, &tokens)) return cli_usage_error(&c, "--tokens \"%s\" must be a count >= 2048", v);
        } else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    char err[LCB_ERRLEN];
    Model m;
    if (model_open(&m, model, NULL, err, sizeof err)) { cli_error("bench", "%s", err); return 1; }
    const ModelConfig *cfg = &m.cfg;
    size_t T = tokens;
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 2654435761u) % cfg->vocab);

    double gf = sgemm_gflops(1024, 1.0);
    printf("## lcbench bench: %s (%.2fM parameters), %zu tokens, best of %d timings per rate\n\n", model, config_n_params(cfg) / 1e6, T, (int)reps);
    printf("sgemm 1024x1024x1024: %.1f GFLOP/s\n\n", gf);
    printf("| workload | chunk | tokens/s | GFLOP/s | of sgemm-bound (1024^3) | model's GEMMs alone, GFLOP/s | of that bound |\n|---|---|---|---|---|---|---|\n");
    const size_t L = 1024;
    size_t chunks[] = {1, 16, 64, 256, 1024};
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        size_t n = chunks[k] == 1 ? 512 : 4 * L; /* chunk=1 is slow: fewer tokens */
        if (n > T) n = T;                           /* never past the T ids there are (--tokens >= 2048) */
        double r = best_rate(&m, "dense", ids, n, chunks[k], L, (int)reps);
        double fl = flops_per_token(cfg, L / 2.0);
        double mg = model_gemm_gflops(&m, (int)chunks[k], 0.5);
        printf("| dense, %zu-token windows | %zu | %.0f | %.1f | %.0f%% | %.1f | %.0f%% |\n", L, chunks[k], r, r * fl / 1e9,
               100 * r * fl / 1e9 / gf, mg, 100 * r * fl / 1e9 / mg);
        fflush(stdout);
    }
    double sink_c = best_rate(&m, "sink:4:1020", ids, T, 256, 0, (int)reps);
    double sink_1 = best_rate(&m, "sink:4:1020", ids, 1536, 1, 0, (int)reps);
    double dense_w = best_rate(&m, "dense", ids, T, 256, L, (int)reps);
    double fs = flops_per_token(cfg, 1024);
    double mg256 = model_gemm_gflops(&m, 256, 0.5), mg1 = model_gemm_gflops(&m, 1, 0.5);
    printf("| sink:4:1020 stream | 256 | %.0f | %.1f | %.0f%% | %.1f | %.0f%% |\n", sink_c, sink_c * fs / 1e9, 100 * sink_c * fs / 1e9 / gf,
           mg256, 100 * sink_c * fs / 1e9 / mg256);
    printf("| sink:4:1020 stream | 1 | %.0f | %.1f | %.0f%% | %.1f | %.0f%% |\n", sink_1, sink_1 * fs / 1e9, 100 * sink_1 * fs / 1e9 / gf,
           mg1, 100 * sink_1 * fs / 1e9 / mg1);
    printf("| dense, 1024-token windows | 256 | %.0f | | | | |\n\n", dense_w);
    printf("sink:4:1020 chunk 256 vs chunk 1: %.1fx; vs dense over 1024-token windows: %.0f%%\n", sink_c / sink_1, 100 * sink_c / dense_w);
    printf("\n| weight products alone, rows | packed kernel (engine/gemm.h), GFLOP/s | cblas_sgemm on the same shapes, GFLOP/s |\n|---|---|---|\n");
    const int rows[] = {16, 64, 256};
    for (int i = 0; i < 3; i++) {
        double ob = openblas_gemm_gflops(&m, rows[i], 0.5);
        if (ob < 0) break;
        printf("| %d | %.1f | %.1f |\n", rows[i], model_gemm_gflops(&m, rows[i], 0.5), ob);
    }
    free(ids);
    model_free(&m);
    return 0;
}
