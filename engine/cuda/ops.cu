/*
 * ops.cu — engine/cuda/ops.h: one kernel at a time on host arrays, for the kernel-vs-CPU-twin
 * tests.  Synchronous and unoptimised on purpose.
 */
#include "engine/cuda/cuda_internal.cuh"
#include "engine/cuda/ops.h"

#include <string.h>

extern int cu_attention_variant;

/* device copies of up to 4 host arrays */
typedef struct { void *p[6]; size_t b[6]; int n; } Bufs;

static int bufs_add(Bufs *B, void **d, const void *host, size_t bytes, char *err, size_t errlen) {
    if (cu_alloc(d, bytes, LCB_MEM_WORK, "a test buffer", err, errlen)) return -1;
    B->p[B->n] = *d; B->b[B->n] = bytes; B->n++;
    if (host) CU_TRY(cudaMemcpy(*d, host, bytes, cudaMemcpyHostToDevice));
    return 0;
}

static void bufs_free(Bufs *B) {
    for (int i = 0; i < B->n; i++) cu_free(B->p[i], B->b[i], LCB_MEM_WORK);
}

static int finish(void *host, const void *dev, size_t bytes, Bufs *B, char *err, size_t errlen) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost);
    bufs_free(B);
    if (e != cudaSuccess) return cu_fail(e, "test kernel", __FILE__, __LINE__, err, errlen);
    return 0;
}

extern "C" int cuda_op_norm(const float *x, float *y, const float *w, const float *b, int n, int dim, int layer_norm, float eps,
                            char *err, size_t errlen) {
    Bufs B = {};
    void *dx, *dy, *dw, *db = NULL;
    size_t rb = (size_t)n * dim * 4;
    if (bufs_add(&B, &dx, x, rb, err, errlen) || bufs_add(&B, &dy, NULL, rb, err, errlen) ||
        bufs_add(&B, &dw, w, dim * 4, err, errlen) || (b && bufs_add(&B, &db, b, dim * 4, err, errlen))) { bufs_free(&B); return -1; }
    k_norm(DT_F32, (float *)dx, dy, (float *)dw, (float *)db, n, dim, layer_norm, eps, 0);
    return finish(y, dy, rb, &B, err, errlen);
}

extern "C" int cuda_op_act(const float *h, const float *bias, float *out, int n, int ffn, int gated, int act, char *err, size_t errlen) {
    Bufs B = {};
    void *dh, *db = NULL, *dout;
    size_t hb = (size_t)n * ffn * (gated ? 2 : 1) * 4, ob = (size_t)n * ffn * 4;
    if (bufs_add(&B, &dh, h, hb, err, errlen) || bufs_add(&B, &dout, NULL, ob, err, errlen) ||
        (bias && bufs_add(&B, &db, bias, ffn * 4, err, errlen))) { bufs_free(&B); return -1; }
    k_act(DT_F32, (float *)dh, (float *)db, dout, n, ffn, gated, act, 0);
    return finish(out, dout, ob, &B, err, errlen);
}

extern "C" int cuda_op_nll(const float *lg, const int32_t *tg, double *nll, int n, int vocab, char *err, size_t errlen) {
    Bufs B = {};
    void *dl, *dt, *dn;
    if (bufs_add(&B, &dl, lg, (size_t)n * vocab * 4, err, errlen) || bufs_add(&B, &dt, tg, (size_t)n * 4, err, errlen) ||
        bufs_add(&B, &dn, NULL, (size_t)n * 8, err, errlen)) { bufs_free(&B); return -1; }
    k_nll((float *)dl, (int32_t *)dt, (double *)dn, n, vocab, 0);
    return finish(nll, dn, (size_t)n * 8, &B, err, errlen);
}

extern "C" int cuda_op_rope(const float *qkv, const float *cs, float *q_out, float *k_out, int n, int H, int KV, int hd, int rot_half,
                            char *err, size_t errlen) {
    Bufs B = {};
    const int qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
    void *dqkv, *dcs, *dq, *dk, *dv, *dtab;
    /* one dense page holding all n keys (slot = t, S = 0) */
    if (n > CU_PAGE) return lcb_fail(err, errlen, "cuda_op_rope: n > %d", CU_PAGE);
    if (bufs_add(&B, &dqkv, qkv, (size_t)n * ld * 4, err, errlen) || bufs_add(&B, &dcs, cs, (size_t)n * 2 * rot_half * 4 + 4, err, errlen) ||
        bufs_add(&B, &dq, NULL, (size_t)n * qd * 4, err, errlen) || bufs_add(&B, &dk, NULL, (size_t)CU_PAGE * kvd * 4, err, errlen) ||
        bufs_add(&B, &dv, NULL, (size_t)CU_PAGE * kvd * 4, err, errlen) || bufs_add(&B, &dtab, NULL, 2 * sizeof(void *), err, errlen)) {
        bufs_free(&B);
        return -1;
    }
    void *tab[2] = {dk, dv};
    CU_TRY(cudaMemcpy(dtab, tab, sizeof tab, cudaMemcpyHostToDevice));
    RopeArgs a = {(float *)dqkv, NULL, ld, dq, NULL, (float *)dcs, (float *)dcs, n, H, KV, hd, rot_half, 0, 0, 0, NULL, NULL,
                  (void *const *)dtab, (void *const *)dtab + 1};
    k_rope_store(DT_F32, &a, 0);
    CU_TRY(cudaDeviceSynchronize());
    CU_TRY(cudaMemcpy(k_out, dk, (size_t)n * kvd * 4, cudaMemcpyDeviceToHost));
    return finish(q_out, dq, (size_t)n * qd * 4, &B, err, errlen);
}

extern "C" int cuda_op_fill_normal(float *out, size_t n, uint64_t seed, uint64_t tensor, char *err, size_t errlen) {
    Bufs B = {};
    void *d;
    if (bufs_add(&B, &d, NULL, n * 4, err, errlen)) return -1;
    k_fill_normal(DT_F32, d, n, 0.02f, seed, tensor, 0);
    return finish(out, d, n * 4, &B, err, errlen);
}

extern "C" void cuda_op_attention_variant(int v) { cu_attention_variant = v; }
