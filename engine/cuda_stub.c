/*
 * cuda_stub.c — the CUDA entry points of backend.h for builds without nvcc: every call reports
 * that this build has no CUDA backend, so `--device cuda` fails with a clear message instead of
 * a link error.  The Makefile compiles this file only when engine/cuda/ is not built.
 */
#include "engine/backend.h"
#include "engine/common.h"

#include <stdio.h>

#define NO_CUDA "--device cuda: this lcbench was built without CUDA (nvcc was not found at build time)"

int cuda_available(char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
void cuda_describe(char *buf, size_t n) { snprintf(buf, n, "none"); }
int cuda_model_upload(Model *m, const char *dtype, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_model_init_random(Model *m, uint64_t seed, const char *dtype, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
void cuda_model_free(Model *m) {}
int cuda_kv_init(KVCache *kv, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
void cuda_kv_reset(KVCache *kv) {}
void cuda_kv_free(KVCache *kv) {}
int cuda_kv_layout(const KVCache *kv, const Model *m, int *dtype, int *elt, int *tp, int64_t *ring, char *err, size_t errlen) {
    return lcb_fail(err, errlen, NO_CUDA);
}
int cuda_kv_save(const KVCache *kv, const Model *m, struct KvIO *io, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_kv_load(KVCache *kv, const Model *m, struct KvIO *io, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_kv_copy(KVCache *dst, const KVCache *src, const Model *m, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_forward(Model *m, KVCache *kv, const int32_t *ids, int n, int out_from, const FwdOut *out, char *err, size_t errlen) {
    return lcb_fail(err, errlen, NO_CUDA);
}
int cuda_mem_info(size_t *used, size_t *total) { *used = *total = 0; return -1; }
int cuda_mem_info_dev(int i, size_t *used, size_t *total) { *used = *total = 0; return -1; }
int cuda_tp_devices(void) { return 0; }
int cuda_device_count(void) { return 0; }
size_t cuda_mem_now(int cat) { return 0; }
size_t cuda_mem_peak(int cat) { return 0; }

/* engine/cuda/ops.h: the kernel-test entry points */
#include "engine/cuda/ops.h"
int cuda_op_norm(const float *x, float *y, const float *w, const float *b, int n, int dim, int layer_norm, float eps, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_op_act(const float *h, const float *bias, float *out, int n, int ffn, int gated, int act, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_op_nll(const float *lg, const int32_t *tg, double *nll, int n, int vocab, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_op_rope(const float *qkv, const float *cs, float *q_out, float *k_out, int n, int H, int KV, int hd, int rot_half, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_op_fill_normal(float *out, size_t n, uint64_t seed, uint64_t tensor, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
void cuda_op_attention_variant(int v) {}
int cuda_op_attention(const char *dtype, int variant, const CudaAttnShape *sh, const float *q, const float *qs, const float *sk, const float *sv,
                      const float *k, const float *v, int64_t slots, float *out, char *err, size_t errlen) { return lcb_fail(err, errlen, NO_CUDA); }
int cuda_op_attention_time(const char *dtype, int variant, const CudaAttnShape *sh, int iters, double *ms, double *flops, char *err, size_t errlen) {
    return lcb_fail(err, errlen, NO_CUDA);
}
int cuda_op_attention_kernel(const char *dtype, int variant, const CudaAttnShape *sh) { return 0; }
