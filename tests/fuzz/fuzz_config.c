/*
 * fuzz_config.c — libFuzzer harness of the config.json parser (engine/config.c).
 * Input: config.json text.  config_parse must refuse it with a message, or return a
 * ModelConfig that satisfies every invariant engine/model.c and engine/kvcache.c divide,
 * index and allocate by (positive sizes, heads a multiple of key/value heads, an even rotary
 * dimension within the head, finite positive RoPE parameters); the derived quantities
 * (parameter count, RoPE frequencies) are then computed as a run would.
 */
#include "tests/fuzz/fuzz_util.h"
#include "engine/config.h"

#include <math.h>

int fuzz_config_one(const uint8_t *data, size_t size) {
    char *txt = malloc(size + 1), err[1024] = "";
    FUZZ_CHECK(txt != NULL, "malloc");
    memcpy(txt, data, size);
    txt[size] = 0;
    ModelConfig c;
    if (config_parse(&c, txt, "fuzz/config.json", err, sizeof err) == 0) {
        FUZZ_CHECK(c.vocab >= 1 && c.dim >= 1 && c.n_layers >= 1 && c.n_heads >= 1 && c.ffn >= 1,
                   "vocab %d dim %d layers %d heads %d ffn %d", c.vocab, c.dim, c.n_layers, c.n_heads, c.ffn);
        FUZZ_CHECK(c.n_kv >= 1 && c.n_kv <= c.n_heads && c.n_heads % c.n_kv == 0, "heads %d kv %d", c.n_heads, c.n_kv);
        FUZZ_CHECK(c.head_dim >= 1, "head_dim %d (dim %d, heads %d)", c.head_dim, c.dim, c.n_heads);
        FUZZ_CHECK(c.rot_dim >= 0 && c.rot_dim % 2 == 0 && c.rot_dim <= c.head_dim, "rot_dim %d head_dim %d", c.rot_dim, c.head_dim);
        FUZZ_CHECK(isfinite(c.rope_theta) && c.rope_theta > 0, "rope_theta %g", c.rope_theta);
        FUZZ_CHECK(isfinite(c.rope_factor) && c.rope_factor > 0, "rope_factor %g", c.rope_factor);
        FUZZ_CHECK(isfinite(c.norm_eps), "norm_eps %g", c.norm_eps);
        FUZZ_CHECK(c.sliding_window >= 0 && c.max_pos >= 1, "sliding_window %d max_pos %d", c.sliding_window, c.max_pos);
        FUZZ_CHECK(c.bos_id >= -1 && c.eos_id >= -1, "bos %d eos %d", c.bos_id, c.eos_id);
        if (c.qkv_layout != QKV_SEPARATE)
            FUZZ_CHECK(c.dim == c.n_heads * c.head_dim, "fused QKV with dim %d != heads %d x head_dim %d", c.dim, c.n_heads, c.head_dim);
        (void)config_n_params(&c);
        double *f = malloc((size_t)(c.rot_dim / 2 + 1) * sizeof *f);
        FUZZ_CHECK(f != NULL, "malloc");
        config_rope_inv_freq(&c, 0, f);
        config_rope_inv_freq(&c, 4.0, f);
        free(f);
    } else {
        FUZZ_CHECK(err[0] != 0, "config_parse failed without a message");
    }
    free(txt);
    return 0;
}

#ifndef LCB_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_config_one(data, size); }
#endif
