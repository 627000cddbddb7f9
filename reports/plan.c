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
 *              logits scratch of the NLL-only head (the run loop asks for NLLs, not logits);
 *              for a GGUF, also qscratch_reserve's panels of the block matrices (gemm_quant):
 *              gemm_quant_scratch(K) floats per OpenMP thread of this process (OMP_NUM_THREADS:
 *              a run under the same environment uses as many)
 *   scores     the transient attention score block of kv_attention: 64 queries x the keys
 *              visible at the last chunk, x 4 bytes (freed after every layer)
 * A GGUF file is opened once (gguf_weights_open): its config, its tensor bytes by type, and the
 * CPU's weight bytes (model_gguf_cpu_bytes' sum, from the same table; test_reports checks the two
 * agree).
 * With --device cuda (one GPU, bf16): weights n_params x 2 and a KV cache of the formula's size
 * (estimates, not yet checked against a CUDA run); the workspace is engine/cuda/backend.cu's
 * ws_reserve exactly: 14 buffers each rounded up to 256 bytes, for the largest sub-chunk
 * (CU_ROWS_MAX rows at most; s2 the whole input), with rank 0's CU_LG_ROWS x vocab logits block.
 */
#include "reports/reports.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/kvcache.h"
#include "engine/gemm.h"
#include "engine/gguf.h"
#include "engine/gguf_model.h"
#include "engine/cuda/ops.h" /* CU_ROWS_MAX, CU_LG_ROWS: plain C, no CUDA headers */
#include "strategies/strategy.h"

#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PLAN_QBLOCK 64   /* KV_QBLOCK of engine/kvcache.c */
#define PLAN_LG_ROWS 64  /* LG_ROWS of engine/model.c */
#define PLAN_CU_ALIGN 256 /* align256 of engine/cuda/backend.cu */

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

/* Whether GGUF tensor `name` is one of layer l < L's four matrices, which the CPU keeps as the
 * file's blocks (load_blocks of engine/model.c: attn_q/k/v or attn_qkv, attn_output,
 * ffn_gate and ffn_up or ffn_up alone, ffn_down). */
static int gguf_layer_matrix(const char *name, int L) {
    static const char *const mats[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_qkv.weight", "attn_output.weight",
                                       "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
    int l, end = 0;
    if (sscanf(name, "blk.%d.%n", &l, &end) != 1 || end == 0 || l < 0 || l >= L) return 0;
    for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
        if (!strcmp(name + end, mats[i])) return 1;
    return 0;
}

/* A GGUF model, from one open of the file: its config, its tensor bytes on file (and the types'
 * summary), and the CPU's weight bytes as model_gguf_cpu_bytes sums them: model_carve's fp32
 * arena without the layer matrices (arena_bytes with blocks), those matrices' blocks as on
 * file, and the LM head's packed copy (packed_extra, head only). */
static int load_gguf(const char *path, ModelConfig *c, PlanResult *o, int64_t *cpu_bytes, char *err, size_t errlen) {
    GgufWeights gw;
    char label[64];
    if (gguf_weights_open(&gw, path, c, label, sizeof label, err, errlen)) { lcb_prefix(err, errlen, "--model"); return -1; }
    o->file_weights = (int64_t)gguf_bytes_by_type(&gw.g, NULL, 0);
    gguf_type_summary(&gw.g, o->file_types, sizeof o->file_types);
    int64_t blocks = 0;
    for (uint64_t i = 0; i < gw.g.n_tensors; i++)
        if (gguf_layer_matrix(gw.g.tensors[i].name, c->n_layers)) blocks += (int64_t)gw.g.tensors[i].nbytes;
    gguf_weights_close(&gw);
    const int64_t dim = c->dim, qkvd = (int64_t)(c->n_heads + 2 * c->n_kv) * c->head_dim, ffn = c->ffn;
    const int64_t per_layer = 4 * dim + qkvd + dim + ffn + dim; /* norm and bias slots */
    int64_t arena = ((int64_t)c->vocab * dim * (c->tie_embeddings ? 1 : 2) + 2 * dim + c->n_layers * per_layer) * 4;
    int shape[MAT_N][2];
    config_matrices(c, shape);
    const int64_t head = (int64_t)shape[MAT_HEAD][0] * shape[MAT_HEAD][1], head_packed = (int64_t)gemm_packed_size(shape[MAT_HEAD][0], shape[MAT_HEAD][1]);
    *cpu_bytes = arena + blocks + (head_packed != head || c->tie_embeddings ? head_packed * 4 : 0);
    return 0;
}

/* Bytes of engine/cuda/backend.cu's ws_reserve for n rows on rank `rank` of tp (tp_split's
 * shares: H / tp query heads, KV / tp KV heads or one, ffn / tp columns), storage dtype of es
 * bytes: its 14 buffers in its order, each rounded up to 256 bytes. */
static int64_t cuda_ws_bytes(const ModelConfig *c, int64_t n, int tp, int rank, int64_t es) {
    const int64_t dim = c->dim, H = c->n_heads / tp, KV = c->n_kv % tp == 0 ? c->n_kv / tp : 1;
    const int64_t qd = H * c->head_dim, qkvd = qd + 2 * KV * c->head_dim, ffn = c->ffn / tp;
    const int64_t up_rows = (c->gated_mlp ? 2 : 1) * ffn, rd = c->rot_dim;
    const int64_t lg = rank == 0 ? (int64_t)CU_LG_ROWS * c->vocab * 4 : 0, y = rank > 0 ? dim * 4 * n : 0;
    const int64_t sz[14] = {dim * 4 * n, dim * es * n, qkvd * es * n, qd * es * n, qd * es * n, qd * es * n, up_rows * es * n,
                            ffn * es * n, 2 * rd * 4 * n + 4, lg, n * 4, n * 4, n * 8, y};
    int64_t total = 0;
    for (int i = 0; i < 14; i++) total += (sz[i] + PLAN_CU_ALIGN - 1) / PLAN_CU_ALIGN * PLAN_CU_ALIGN;
    return total;
}

int plan_predict(const PlanInput *in, PlanResult *o, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    ModelConfig c;
    /* a GGUF: quantized bytes on file; the CPU keeps the layer matrices so, the GPU dequantizes */
    const int gguf = !in->config && strncmp(in->model, "random:", 7) && gguf_model_is(in->model);
    int64_t gguf_cpu = 0;
    if (gguf ? load_gguf(in->model, &c, o, &gguf_cpu, err, errlen) : load_config(in, &c, err, errlen)) return -1;
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
    else if (gguf) o->weights = gguf_cpu; /* the layer matrices as the file's blocks (engine/model.c) */
    else {
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
    if (in->cuda) { /* the largest sub-chunk: cuda_forward splits a forward into CU_ROWS_MAX rows, but s2 */
        const int64_t n = s.ops->whole_input || o->rows < CU_ROWS_MAX ? o->rows : CU_ROWS_MAX;
        o->work = cuda_ws_bytes(&c, n, 1, 0, elt);
    } else {
        int64_t per_row = 2 * dim + qkvd + 2 * qd + 2 * ffn + 2 * (int64_t)c.rot_dim;
        o->work = (per_row * o->rows + PLAN_LG_ROWS * V) * 4;
        if (gguf) { /* qscratch_reserve: a panel per thread, for the longest K of the four matrices */
            int K = c.dim;
            if (c.n_heads * c.head_dim > K) K = c.n_heads * c.head_dim;
            if (c.ffn > K) K = c.ffn;
            o->work += (int64_t)gemm_quant_scratch(K) * omp_get_max_threads() * 4;
        }
    }

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
