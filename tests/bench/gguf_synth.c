/*
 * gguf_synth.c — write a synthetic Llama GGUF of a real shape with random weights, quantized by
 * lcbench's own quantizers (engine/quant.c), to measure what loading and scoring a big quantized
 * file costs (BENCHMARKS.md: a 7B-shaped Q4_K_M under 24 GiB).  Not a model: the weights are
 * engine/rng.h's N(0, 0.02^2) (norms ones), written as llama-quantize lays out Q4_K_M: Q4_K
 * everywhere except Q6_K for output.weight and for attn_v / ffn_down in the layers llama.cpp's
 * use_more_bits picks (the first and last eighth, and every third in between), F32 norms.
 * No tokenizer: score it with `lcbench score --ids`.
 *
 *   cc -O3 -march=native -fopenmp -I. -o /tmp/gguf_synth tests/bench/gguf_synth.c BUILD/liblcbench.a \
 *      -lcjson -lpcre2-8 -lsqlite3 -lcrypto -lm -lpthread
 *   /tmp/gguf_synth /tmp/synth-7b-Q4_K_M.gguf [layers]      (Llama-2-7B: 4096 wide, 32 layers)
 *
 * The file is big (3.9 GB for 32 layers): write it under /tmp, never into the repository.
 */
#include "engine/quant.h"
#include "engine/rng.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DIM = 4096, FFN = 11008, HEADS = 32, VOCAB = 32000, CTX = 4096 };
#define ALIGN 32

typedef struct { char name[64]; uint32_t type; int64_t rows, cols; uint64_t offset, nbytes; } Tensor;

static void put(FILE *f, const void *p, size_t n) {
    if (fwrite(p, 1, n, f) != n) { perror("gguf_synth: write"); exit(1); }
}
static void put_u32(FILE *f, uint32_t v) { put(f, &v, 4); }
static void put_u64(FILE *f, uint64_t v) { put(f, &v, 8); }
static void put_str(FILE *f, const char *s) { put_u64(f, strlen(s)); put(f, s, strlen(s)); }
static void kv_u32(FILE *f, const char *k, uint32_t v) { put_str(f, k); put_u32(f, 4 /* uint32 */); put_u32(f, v); }
static void kv_f32(FILE *f, const char *k, float v) { put_str(f, k); put_u32(f, 6 /* float32 */); put(f, &v, 4); }
static void kv_str(FILE *f, const char *k, const char *v) { put_str(f, k); put_u32(f, 8 /* string */); put_str(f, v); }

/* llama.cpp's use_more_bits(i, n): the layers Q4_K_M gives Q6_K attn_v and ffn_down */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: gguf_synth OUT.gguf [layers (32)]\n"); return 2; }
    const int layers = argc > 2 ? atoi(argv[2]) : 32;
    if (layers < 1 || layers > 256) { fprintf(stderr, "gguf_synth: layers %s: 1 .. 256\n", argv[2]); return 2; }
    Tensor *t = calloc((size_t)(3 + 9 * layers), sizeof *t);
    int nt = 0;
#define ADD(nm, ty, r, c) do { snprintf(t[nt].name, sizeof t[nt].name, "%s", nm); t[nt].type = (ty); t[nt].rows = (r); t[nt].cols = (c); nt++; } while (0)
    ADD("token_embd.weight", QT_Q4_K, VOCAB, DIM);
    ADD("output_norm.weight", QT_F32, 1, DIM);
    ADD("output.weight", QT_Q6_K, VOCAB, DIM);
    for (int l = 0; l < layers; l++) {
        char n[64];
        const uint32_t hi = more_bits(l, layers) ? QT_Q6_K : QT_Q4_K;
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l); ADD(n, QT_F32, 1, DIM);
        snprintf(n, sizeof n, "blk.%d.attn_q.weight", l); ADD(n, QT_Q4_K, DIM, DIM);
        snprintf(n, sizeof n, "blk.%d.attn_k.weight", l); ADD(n, QT_Q4_K, DIM, DIM);
        snprintf(n, sizeof n, "blk.%d.attn_v.weight", l); ADD(n, hi, DIM, DIM);
        snprintf(n, sizeof n, "blk.%d.attn_output.weight", l); ADD(n, QT_Q4_K, DIM, DIM);
        snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", l); ADD(n, QT_F32, 1, DIM);
        snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", l); ADD(n, QT_Q4_K, FFN, DIM);
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l); ADD(n, QT_Q4_K, FFN, DIM);
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l); ADD(n, hi, DIM, FFN);
    }
#undef ADD
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        uint64_t rb;
        if (quant_row_bytes(t[i].type, (uint64_t)t[i].cols, &rb)) { fprintf(stderr, "gguf_synth: %s: bad row\n", t[i].name); return 1; }
        t[i].offset = off;
        t[i].nbytes = rb * (uint64_t)t[i].rows;
        off = (off + t[i].nbytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    FILE *f = fopen(argv[1], "wb");
    if (!f) { perror(argv[1]); return 1; }
    put(f, "GGUF", 4);
    put_u32(f, 3);
    put_u64(f, (uint64_t)nt);
    put_u64(f, 11);
    kv_str(f, "general.architecture", "llama");
    kv_u32(f, "general.file_type", 15 /* Q4_K_M */);
    kv_u32(f, "llama.embedding_length", DIM);
    kv_u32(f, "llama.block_count", (uint32_t)layers);
    kv_u32(f, "llama.attention.head_count", HEADS);
    kv_u32(f, "llama.attention.head_count_kv", HEADS);
    kv_u32(f, "llama.feed_forward_length", FFN);
    kv_u32(f, "llama.context_length", CTX);
    kv_f32(f, "llama.rope.freq_base", 10000.f);
    kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_u32(f, "tokenizer.ggml.bos_token_id", 1);
    for (int i = 0; i < nt; i++) {
        put_str(f, t[i].name);
        const int nd = t[i].rows == 1 ? 1 : 2;
        put_u32(f, (uint32_t)nd);
        put_u64(f, (uint64_t)t[i].cols);
        if (nd == 2) put_u64(f, (uint64_t)t[i].rows);
        put_u32(f, t[i].type);
        put_u64(f, t[i].offset);
    }
    static const uint8_t zeros[ALIGN];
    long pos = ftell(f);
    put(f, zeros, (size_t)((ALIGN - pos % ALIGN) % ALIGN));
    /* the data: rows generated and quantized in parallel, a slab of rows at a time */
    enum { SLAB = 256 };
    char err[256];
    for (int i = 0; i < nt; i++) {
        const int64_t K = t[i].cols;
        const size_t rb = (size_t)(t[i].nbytes / (uint64_t)t[i].rows);
        uint8_t *out = malloc(rb * SLAB);
        const uint64_t key = lcb_rng_key(20261202, (uint64_t)i);
        for (int64_t r0 = 0; r0 < t[i].rows; r0 += SLAB) {
            const int nr = t[i].rows - r0 < SLAB ? (int)(t[i].rows - r0) : SLAB;
            int bad = 0;
            #pragma omp parallel reduction(|:bad)
            {
                float *x = malloc((size_t)K * sizeof(float));
                #pragma omp for schedule(static)
                for (int r = 0; r < nr; r++) {
                    for (int64_t k = 0; k < K; k++)
                        x[k] = t[i].type == QT_F32 ? 1.f : lcb_rng_normal_key(key, (uint64_t)(r0 + r) * (uint64_t)K + (uint64_t)k, 0.02f);
                    bad |= quant_quantize(t[i].type, x, out + (size_t)r * rb, (size_t)K, err, sizeof err) != 0;
                }
                free(x);
            }
            if (bad) { fprintf(stderr, "gguf_synth: %s: quantize failed\n", t[i].name); return 1; }
            put(f, out, rb * (size_t)nr);
        }
        free(out);
        uint64_t end = t[i].offset + t[i].nbytes, next = (end + ALIGN - 1) / ALIGN * ALIGN;
        put(f, zeros, (size_t)(next - end));
        fprintf(stderr, "\r%d/%d %s        ", i + 1, nt, t[i].name);
    }
    if (fclose(f)) { perror(argv[1]); return 1; }
    fprintf(stderr, "\n%s: %d tensors, %.2f GB of tensor data\n", argv[1], nt, off / 1e9);
    free(t);
    return 0;
}
