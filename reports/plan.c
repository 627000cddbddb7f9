/*
 * plan.c — `lcbench plan`: the memory a stream run will take, predicted from the model's
 * config alone (no weights read), so that a 70B shape can be sized on a laptop.
 *
 * The prediction follows the CPU engine's allocations one for one; tests/test_reports.c
 * checks it against what a real run records (samples table) and lcb_mem_peak:
 *   weights    the fp32 arena of model_carve (engine/model.c): every weight, and a slot for
 *              each norm/bias the layout has room for, x 4 bytes (about config_n_params x 4)
 *   KV         kv_init / kv_reserve (engine/kvcache.c): S sink rows + a ring of W rows and its
 *              slot table; an unbounded (dense) cache grows by doubling from 256 tokens, so
 *              it is the next 256 x 2^k >= the tokens it holds; 2 x layers x kv_dim x 4 B/token
 *   workspace  ws_reserve (engine/model.c) for the largest forward (the chunk; recompute:W
 *              forwards W+1 rows; s2 the whole input), which includes the LG_ROWS x vocab
 *              logits scratch of the NLL-only head (the run loop asks for NLLs, not logits)
 *   scores     the transient attention score block of kv_attention: 64 queries x the keys
 *              visible at the last chunk, x 4 bytes (freed after every layer)
 * With --device cuda: bf16 weights (n_params x 2) and a bf16 KV cache of the formula's size,
 * workspace as on the CPU: an estimate, not yet checked against a CUDA run.
 */
#include "reports/reports.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/kvcache.h"
#include "engine/gguf.h"
#include "engine/gguf_model.h"
#include "strategies/strategy.h"

#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#define PLAN_QBLOCK 64   /* KV_QBLOCK of engine/kvcache.c */
#define PLAN_LG_ROWS 64  /* LG_ROWS of engine/model.c */

static int load_config(const PlanInput *in, ModelConfig *cfg, char *err, size_t errlen) {
    if (!strncmp(in->model, "random:", 7)) {
        char shape[128];
        snprintf(shape, sizeof shape, "%.100s", in->model + 7);
        shape[strcspn(shape, ":")] = 0;
        if (config_random_shape(cfg, shape, err, errlen)) { lcb_prefix(err, errlen, "--model"); return -1; }
        return 0;
    }
    char p[PATH_MAX + 32];
    struct stat sb;
    if (in->config) snprintf(p, sizeof p, "%s", in->config);
    else if (stat(in->model, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(p, sizeof p, "%s/config.json", in->model);
    else snprintf(p, sizeof p, "%s", in->model);
    if (config_load(cfg, p, err, errlen)) { lcb_prefix(err, errlen, "--model"); return -1; }
    return 0;
}

int plan_predict(const PlanInput *in, PlanResult *o, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    ModelConfig c;
    if (load_config(in, &c, err, errlen)) return -1;
    const int gguf = !in->config && gguf_model_is(in->model);
    if (gguf) { /* quantized bytes on file; the CPU keeps the layer matrices so, the GPU dequantizes */
        uint64_t b = 0;
        if (gguf_weight_bytes(in->model, &b, o->file_types, sizeof o->file_types, err, errlen)) return -1;
        o->file_weights = (int64_t)b;
    }
    Strategy s;
    if (strategy_parse(&s, in->strategy ? in->strategy : "sink", err, errlen)) return -1;
    if (in->tokens < 2) return lcb_fail(err, errlen, "--tokens must be at least 2");
    const int64_t T = (int64_t)in->tokens;
    const int64_t elt = in->cuda ? 2 : 4;
    /* the policy's own cache for T tokens (strategies/): sinks, ring, tokens held, forward rows */
    StrategyShape sh;
    if (strategy_shape(&s, &c, T, in->chunk, (int)elt, &sh, err, errlen)) return -1;
    snprintf(o->strategy, sizeof o->strategy, "%s", s.spec);
    const int64_t S = sh.n_sink, W = sh.window;

    o->n_params = config_n_params(&c);
    o->max_pos = c.max_pos;
    snprintf(o->arch, sizeof o->arch, "%s", config_arch_name(c.arch));
    const int64_t dim = c.dim, qd = (int64_t)c.n_heads * c.head_dim, kvd = (int64_t)c.n_kv * c.head_dim;
    const int64_t qkvd = qd + 2 * kvd, ffn = c.ffn, up_rows = (c.gated_mlp ? 2 : 1) * ffn, V = c.vocab, L = c.n_layers;
    snprintf(o->dtype, sizeof o->dtype, "%s", in->cuda ? "bf16" : "fp32");

    /* weights: model_carve's arena */
    if (in->cuda) o->weights = (int64_t)o->n_params * 2;
    else if (gguf) { /* the layer matrices as the file's blocks (engine/model.c) */
        uint64_t gb = 0;
        if (model_gguf_cpu_bytes(in->model, &gb, err, errlen)) return -1;
        o->weights = (int64_t)gb;
    } else {
        int64_t per_layer = 4 * dim + qkvd * dim + qkvd + dim * qd + dim + up_rows * dim + ffn + dim * ffn + dim;
        o->weights = (V * dim * (c.tie_embeddings ? 1 : 2) + 2 * dim + L * per_layer) * 4;
        /* and what model_cpu_layout packs apart (engine/gemm.h) */
        o->weights += (int64_t)model_packed_extra(&c) * 4;
    }

    const int64_t chunk = sh.chunk;
    o->rows = sh.rows;
    o->kv_formula = sh.kv_formula;
    o->kv = in->cuda ? o->kv_formula : sh.kv_alloc;

    /* workspace: ws_reserve (forward buffers + the NLL head's logits scratch) */
    int64_t per_row = 2 * dim + qkvd + 2 * qd + 2 * ffn + 2 * (int64_t)c.rot_dim;
    o->work = (per_row * o->rows + PLAN_LG_ROWS * V) * 4;

    /* scores: keys visible = stored sinks + stored recent + the chunk, largest at the last
     * full chunk or the last (partial) one */
    int64_t cand_n[2] = {chunk, T % chunk ? T % chunk : chunk};
    for (int i = 0; i < 2; i++) {
        int64_t n = sh.fresh ? o->rows : cand_n[i];
        int64_t t0 = sh.fresh ? 0 : (i == 0 ? (T - cand_n[1]) - (cand_n[1] == chunk ? 0 : chunk) : T - cand_n[1]);
        if (t0 < 0) t0 = 0;
        int64_t m1 = t0 < S ? t0 : S;
        int64_t m2 = t0 - S <= 0 ? 0 : (W < 0 || t0 - S < W ? t0 - S : W);
        int64_t sc = (int64_t)PLAN_QBLOCK * (m1 + m2 + n) * 4;
        if (sc > o->scores) o->scores = sc;
    }
    o->total = o->weights + o->kv + o->work + o->scores;
    return 0;
}
