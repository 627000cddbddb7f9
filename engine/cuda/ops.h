/*
 * ops.h — single CUDA kernels callable from C on host arrays, fp32, so that tests can check
 * each kernel against its CPU twin (tests/test_cuda.c).  Each call copies in, runs one kernel,
 * copies out and returns 0, or -1 with err.  Not used by the forward pass.
 */
#ifndef LCB_CUDA_OPS_H
#define LCB_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
/* tests: which attention kernel runs for bf16/fp16: 0 scalar, 1 tensor cores, 2 tensor cores with
 * cp.async double buffering (the default); -1 = from LCB_CUDA_ATTN (scalar|mma|pipe) */
void cuda_op_attention_variant(int v);

#ifdef __cplusplus
}
#endif
#endif
