/*
 * ops.h — single CUDA kernels callable from C on host arrays, fp32, so that tests can check
 * each kernel against its CPU twin (tests/test_cuda.c).  Each call copies in, runs one kernel,
 * copies out and returns 0, or -1 with err.  Not used by the forward pass.  Also the forward
 * pass's sizing constants, plain C, so that C code sizing its workspace (reports/plan.c) reads
 * the backend's own values.
 */
#ifndef LCB_CUDA_OPS_H
#define LCB_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* the CUDA forward's sizing (engine/cuda/backend.cu: ws_reserve, forward_rows) */
#define CU_ROWS_MAX 4096   /* rows per internal sub-chunk (all at once under s2); a ring holds W + CU_ROWS_MAX slots */
#define CU_LG_ROWS 512     /* logits rows per LM-head block */

/* y (n, dim) = RMSNorm (layer_norm = 0) or LayerNorm of x, weights w, bias b (LayerNorm) */
int cuda_op_norm(const float *x, float *y, const float *w, const float *b, int n, int dim, int layer_norm, float eps,
                 char *err, size_t errlen);
/* gated: out (n, ffn) = act(h[:, :ffn]) * h[:, ffn:], h (n, 2 ffn); else act(h + bias) */
int cuda_op_act(const float *h, const float *bias, float *out, int n, int ffn, int gated, int act, char *err, size_t errlen);
/* nll[i] = -ln softmax(lg[i])[tg[i]] */
int cuda_op_nll(const float *lg, const int32_t *tg, double *nll, int n, int vocab, char *err, size_t errlen);
/* rotate q heads (H) and k heads (KV) of qkv rows (n, (H + 2 KV) hd) with the table cs (n, rot_dim);
 * q_out (n, H hd), k_out (n, KV hd) */
int cuda_op_rope(const float *qkv, const float *cs, float *q_out, float *k_out, int n, int H, int KV, int hd, int rot_half,
                 char *err, size_t errlen);
/* out[i] = lcb_rng_normal(seed, tensor, i, 0.02f) for i < n (engine/rng.h), generated on the device */
int cuda_op_fill_normal(float *out, size_t n, uint64_t seed, uint64_t tensor, char *err, size_t errlen);
/* tests: which attention kernel the forward pass runs for bf16/fp16: -1 the default
 * (attn_default_cfg), 0 the scalar kernel, 1 .. 4 the flash kernel's launch configurations, 5 and
 * 6 the barrier warpgroup (wgmma, sm_90a) kernel's, 7 .. CU_ATTN_VARIANTS the warp-specialized
 * one's (attention.cu; where the shape or the device cannot take one, the default runs) */
#define CU_ATTN_VARIANTS 10
void cuda_op_attention_variant(int v);

/* One attention call (engine/cuda/attention.cu, AttnArgs): n queries at positions t0 .. t0+n-1,
 * H query heads over KV heads of hd dims; S sinks, W previous tokens (-1 unbounded), R ring
 * slots (0: slot = position - S); s2_group > 0: LongLoRA's s2 over s2_total tokens. */
typedef struct {
    int n, H, KV, hd;
    int64_t t0, S, W, R;
    int s2_group;
    int64_t s2_total;
} CudaAttnShape;
/* The attention kernel alone on host data rounded to dtype: q, qs (n, H hd) queries at t and at
 * the sink position (qs NULL: q); sk, sv (S, KV hd) sinks; k, v (slots, KV hd) recent keys and
 * values by slot; out (n, H hd).  variant as cuda_op_attention_variant.  The output is poisoned
 * with NaN before the kernel runs. */
int cuda_op_attention(const char *dtype, int variant, const CudaAttnShape *sh, const float *q, const float *qs,
                      const float *sk, const float *sv, const float *k, const float *v, int64_t slots, float *out,
                      char *err, size_t errlen);
/* Time it on N(0, 1) device data: median of iters launches after a warm-up, in ms; *flops = 4 hd H
 * times the visible (query, key) pairs (for s2, counted as if no head were rolled). */
int cuda_op_attention_time(const char *dtype, int variant, const CudaAttnShape *sh, int iters, double *ms, double *flops,
                           char *err, size_t errlen);
/* benchmarks: the split over the keys of the flash kernel's short launches (decode) aims at per_sm
 * blocks a multiprocessor (default 4; below 1 restores it) */
void cuda_op_attention_split(int per_sm);
/* which kernel a variant runs for dtype on a shape: 0 the scalar one, else the configuration */
int cuda_op_attention_kernel(const char *dtype, int variant, const CudaAttnShape *sh);

/* tests: nonzero runs the scalar (one element per thread) act, RoPE and norm kernels even where
 * their 8-wide vector versions apply; 0 (the default) lets k_act / k_rope_store / k_norm choose */
void cuda_op_elementwise_scalar(int on);
/* The device RoPE tables (kernels.cu rope_table_kernel, what the forward pass uses): cs (n, 2
 * rot_half) = [cos | sin] of (t0 + i) * inv_freq, and, if cs_sink is not NULL, the same at the
 * sink positions min(t0 + i, S + W) (when S > 0 and W >= 0); rot_half at most 256. */
int cuda_op_rope_table(const double *inv_freq, int rot_half, int64_t t0, int n, int64_t S, int64_t W, float *cs, float *cs_sink,
                       char *err, size_t errlen);
/* The forward pass's kernels in a storage dtype ("fp32", "bf16", "fp16"): the inputs that the
 * forward holds in T (h; x's output y; qkv, q, qs, k, v) rounded to it on the device, the outputs
 * returned as floats (exact); biases, weights, tables fp32.  Shapes as cuda_op_act / cuda_op_norm;
 * rope_store: qkv (n, (H + 2 KV) hd) plus the bias bqkv ((H + 2 KV) hd, or NULL), q and k
 * rotated by cs, qs (NULL: none) by cs_sink, v copied, n <= 1024, positions 0 .. n-1. */
/* The decode product (n <= 4 rows, bf16/fp16 W): y (n, out) = x W^T (+ beta y0) in fp32 (y_t 0;
 * y0 NULL for zeros) or in the dtype (y_t 1); x and W rounded to the dtype first */
int cuda_op_gemv_dt(const char *dtype, const float *x, const float *w, const float *y0, float *y, int n, int in, int out, float beta,
                    int y_t, char *err, size_t errlen);
int cuda_op_act_dt(const char *dtype, const float *h, const float *bias, float *out, int n, int ffn, int gated, int act,
                   char *err, size_t errlen);
int cuda_op_norm_dt(const char *dtype, const float *x, float *y, const float *w, const float *b, int n, int dim, int layer_norm,
                    float eps, char *err, size_t errlen);
int cuda_op_rope_store_dt(const char *dtype, const float *qkv, const float *bqkv, const float *cs, const float *cs_sink, float *q,
                          float *qs, float *k, float *v, int n, int H, int KV, int hd, int rot_half, char *err, size_t errlen);

/* One weight product of the forward pass: y (n, out) = x (n, in) W^T + beta y, y in fp32 (y_f32)
 * or in the dtype, through the forward's own path (backend.cu gemm_to: cuBLAS, or the decode
 * product for n <= CU_GEMV_ROWS). */
typedef struct {
    const char *what;
    int in, out, y_f32;
    float beta;
} CudaGemmShape;
/* Time that path on device data (W ~ N(0, 0.02), x ~ N(0, 1)), n rows: each shape alone, median of
 * 10 launches after 3 of warm-up, into alone_ms[i]; then the sequence of all shapes over `layers`
 * distinct copies of their weights (one forward's products: no weight is in L2 when it is read),
 * repeated for at least `seconds` so that the card runs at its sustained clock and power:
 * *seq_ms the mean time of one sequence, *seq_n how many were timed (seq_ms NULL: no sequence). */
int cuda_op_gemm_time(const char *dtype, int n, const CudaGemmShape *sh, int nsh, int layers, double seconds, double *alone_ms,
                      double *seq_ms, int *seq_n, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
