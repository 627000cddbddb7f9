/*
 * fuzz_gguf.c — libFuzzer harness of the GGUF reader (engine/gguf.c), the block types
 * (engine/quant.c) and the model mapping (engine/gguf_model.c).  Input: a whole .gguf file.
 * gguf_open must either refuse it with a message or publish tensor infos that lie inside the
 * data area, with byte sizes matching their type and shape; every tensor of a type lcbench
 * dequantizes is then read and converted (all of its bytes), and the file is mapped to an
 * lcbench config and HF-named tensors as `--model` would, each read again through that mapping.
 */
#include "tests/fuzz/fuzz_util.h"
#include "engine/gguf.h"
#include "engine/gguf_model.h"
#include "engine/quant.h"

int fuzz_gguf_one(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    GgufFile g;
    if (gguf_open(&g, path, err, sizeof err) == 0) {
        FUZZ_CHECK(g.data_offset % g.alignment == 0, "data offset %llu", (unsigned long long)g.data_offset);
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const GgufTensor *t = &g.tensors[i];
            uint64_t need;
            FUZZ_CHECK(quant_row_bytes(t->type, t->numel, &need) == 0 && need == t->nbytes, "%s: nbytes %llu", t->name, (unsigned long long)t->nbytes);
            FUZZ_CHECK(g.data_offset + t->offset + t->nbytes <= g.file_size, "%s outside the file", t->name);
            FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS, "%s: n_dims %d", t->name, t->n_dims);
            FUZZ_CHECK(gguf_find_tensor(&g, t->name) == t, "gguf_find_tensor(%s)", t->name);
            float *out = malloc(t->numel ? t->numel * sizeof(float) : 1);
            FUZZ_CHECK(out != NULL, "malloc %llu floats", (unsigned long long)t->numel);
            int rc = gguf_read_f32(&g, t, out, err, sizeof err);
            FUZZ_CHECK((rc == 0) == (quant_supported(t->type) != 0), "gguf_read_f32 on %s returned %d", quant_type_name(t->type), rc);
            free(out);
        }
        for (uint64_t i = 0; i < g.n_kv; i++) FUZZ_CHECK(gguf_find(&g, g.kv[i].key) == &g.kv[i], "gguf_find(%s)", g.kv[i].key);
        char sum[256];
        gguf_type_summary(&g, sum, sizeof sum);
        gguf_close(&g);
        ModelConfig c;
        GgufWeights gw;
        char label[8];
        if (gguf_weights_open(&gw, path, &c, label, sizeof label, err, sizeof err) == 0) {
            FUZZ_CHECK(c.dim > 0 && c.n_heads > 0 && c.n_kv > 0 && c.n_heads % c.n_kv == 0, "config %d %d %d", c.dim, c.n_heads, c.n_kv);
            for (size_t i = 0; i < gw.n; i++) {
                const GgufWeight *w = &gw.w[i];
                FUZZ_CHECK(gguf_weights_find(&gw, w->name) == w, "gguf_weights_find(%s)", w->name);
                /* every tensor read as --model reads it: blocks with the Q/K rows un-permuted, and fp32 */
                uint8_t *raw = malloc(w->t->nbytes ? w->t->nbytes : 1);
                float *f = malloc(w->t->numel ? w->t->numel * sizeof(float) : 1);
                FUZZ_CHECK(raw && f, "malloc for %s", w->name);
                FUZZ_CHECK(gguf_weights_read(&gw, w, raw, err, sizeof err) == 0, "gguf_weights_read(%s): %s", w->name, err);
                int rc = gguf_weights_read_f32(&gw, w, f, err, sizeof err);
                FUZZ_CHECK((rc == 0) == (quant_supported(w->t->type) != 0), "gguf_weights_read_f32 on %s returned %d", w->name, rc);
                free(raw);
                free(f);
            }
            gguf_weights_close(&gw);
        } else
            FUZZ_CHECK(err[0] != 0, "gguf_weights_open failed without a message");
    } else {
        FUZZ_CHECK(err[0] != 0, "gguf_open failed without a message");
    }
    close(fd);
    return 0;
}

#ifndef LCB_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_gguf_one(data, size); }
#endif
