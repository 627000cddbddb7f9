/*
 * ops.cu — engine/cuda/ops.h: one kernel at a time on host arrays, for the kernel-vs-CPU-twin
 * tests.  Synchronous and unoptimised on purpose.
 */
#include "engine/cuda/cuda_internal.cuh"
#include "engine/cuda/ops.h"

#include <string.h>

extern int cu_attention_variant;

/* device copies of up to 12 host arrays */
typedef struct { void *p[12]; size_t b[12]; int n; } Bufs;

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

extern "C" void cuda_op_elementwise_scalar(int on) { cu_ew_scalar = on; }

extern "C" int cuda_op_rope_table(const double *inv_freq, int rot_half, int64_t t0, int n, int64_t S, int64_t W, float *cs,
                                  float *cs_sink, char *err, size_t errlen) {
    if (rot_half <= 0 || rot_half > CU_ROPE_TAB_MAXF)
        return lcb_fail(err, errlen, "cuda_op_rope_table: rot_half %d outside 1 .. %d", rot_half, CU_ROPE_TAB_MAXF);
    Bufs B = {};
    void *dc, *dz = NULL;
    const size_t tb = (size_t)n * 2 * rot_half * 4;
    if (bufs_add(&B, &dc, NULL, tb, err, errlen) || (cs_sink && bufs_add(&B, &dz, NULL, tb, err, errlen))) { bufs_free(&B); return -1; }
    static RopeTabArgs a; /* 2 KiB: not on the stack of a test */
    memset(&a, 0, sizeof a);
    a.cs = (float *)dc; a.cs_sink = (float *)dz; a.n = n; a.half = rot_half; a.t0 = t0; a.S = S; a.W = W;
    memcpy(a.inv_freq, inv_freq, (size_t)rot_half * sizeof(double));
    k_rope_table(&a, 0);
    if (cs_sink) {
        CU_TRY(cudaDeviceSynchronize());
        CU_TRY(cudaMemcpy(cs_sink, dz, tb, cudaMemcpyDeviceToHost));
    }
    return finish(cs, dc, tb, &B, err, errlen);
}

/* ---------------------------------------------------------------- kernels in a storage dtype */

template <typename T>
__global__ void ops_to_float_kernel(const T *s, float *d, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) d[i] = to_f(s[i]);
}

/* device T copy of host floats (rounded once, k_convert) */
static int bufs_add_t(Bufs *B, int dt, void **d, const float *host, size_t n, char *err, size_t errlen) {
    if (bufs_add(B, d, NULL, n * dt_size(dt) + 16, err, errlen)) return -1;
    if (!host || !n) return 0;
    void *stage;
    if (cu_alloc(&stage, n * 4, LCB_MEM_WORK, "a test buffer", err, errlen)) return -1;
    cudaError_t e = cudaMemcpy(stage, host, n * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) { k_convert(dt, (const float *)stage, *d, n, 0); e = cudaDeviceSynchronize(); }
    cu_free(stage, n * 4, LCB_MEM_WORK);
    if (e != cudaSuccess) return cu_fail(e, "test upload", __FILE__, __LINE__, err, errlen);
    return 0;
}

/* device T (n) -> host floats (exact) */
static int get_t(int dt, float *host, const void *dev, size_t n, char *err, size_t errlen) {
    if (!n) return 0;
    void *stage;
    if (cu_alloc(&stage, n * 4, LCB_MEM_WORK, "a test buffer", err, errlen)) return -1;
    if (dt == DT_F32) cudaMemcpy(stage, dev, n * 4, cudaMemcpyDeviceToDevice);
    else if (dt == DT_BF16) ops_to_float_kernel<<<(unsigned)((n + 255) / 256), 256>>>((const __nv_bfloat16 *)dev, (float *)stage, n);
    else ops_to_float_kernel<<<(unsigned)((n + 255) / 256), 256>>>((const __half *)dev, (float *)stage, n);
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(host, stage, n * 4, cudaMemcpyDeviceToHost);
    cu_free(stage, n * 4, LCB_MEM_WORK);
    if (e != cudaSuccess) return cu_fail(e, "test download", __FILE__, __LINE__, err, errlen);
    return 0;
}

static int ops_dt(const char *dtype, char *err, size_t errlen) {
    int dt = dt_parse(dtype);
    if (dt < 0) lcb_fail(err, errlen, "unknown dtype %s", dtype);
    return dt;
}

extern "C" int cuda_op_act_dt(const char *dtype, const float *h, const float *bias, float *out, int n, int ffn, int gated, int act,
                              char *err, size_t errlen) {
    const int dt = ops_dt(dtype, err, errlen);
    if (dt < 0) return -1;
    Bufs B = {};
    void *dh, *db = NULL, *dout;
    const size_t hn = (size_t)n * ffn * (gated ? 2 : 1), on = (size_t)n * ffn;
    if (bufs_add_t(&B, dt, &dh, h, hn, err, errlen) || bufs_add_t(&B, dt, &dout, NULL, on, err, errlen) ||
        (bias && bufs_add(&B, &db, bias, ffn * 4, err, errlen))) { bufs_free(&B); return -1; }
    k_act(dt, dh, (float *)db, dout, n, ffn, gated, act, 0);
    int rc = get_t(dt, out, dout, on, err, errlen);
    bufs_free(&B);
    return rc;
}

extern "C" int cuda_op_norm_dt(const char *dtype, const float *x, float *y, const float *w, const float *b, int n, int dim,
                               int layer_norm, float eps, char *err, size_t errlen) {
    const int dt = ops_dt(dtype, err, errlen);
    if (dt < 0) return -1;
    Bufs B = {};
    void *dx, *dy, *dw, *db = NULL;
    const size_t rn = (size_t)n * dim;
    if (bufs_add(&B, &dx, x, rn * 4, err, errlen) || bufs_add_t(&B, dt, &dy, NULL, rn, err, errlen) ||
        bufs_add(&B, &dw, w, dim * 4, err, errlen) || (b && bufs_add(&B, &db, b, dim * 4, err, errlen))) { bufs_free(&B); return -1; }
    k_norm(dt, (float *)dx, dy, (float *)dw, (float *)db, n, dim, layer_norm, eps, 0);
    int rc = get_t(dt, y, dy, rn, err, errlen);
    bufs_free(&B);
    return rc;
}

extern "C" int cuda_op_rope_store_dt(const char *dtype, const float *qkv, const float *bqkv, const float *cs, const float *cs_sink,
                                     float *q, float *qs, float *k, float *v, int n, int H, int KV, int hd, int rot_half,
                                     char *err, size_t errlen) {
    const int dt = ops_dt(dtype, err, errlen);
    if (dt < 0) return -1;
    const int qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
    if (n > CU_PAGE) return lcb_fail(err, errlen, "cuda_op_rope_store_dt: n > %d", CU_PAGE);
    Bufs B = {};
    void *dqkv, *db = NULL, *dcs, *dcz, *dq, *dqs = NULL, *dk, *dv, *dtab;
    const size_t tb = (size_t)n * 2 * rot_half * 4 + 16;
    if (bufs_add_t(&B, dt, &dqkv, qkv, (size_t)n * ld, err, errlen) || (bqkv && bufs_add(&B, &db, bqkv, (size_t)ld * 4, err, errlen)) ||
        bufs_add(&B, &dcs, NULL, tb, err, errlen) || bufs_add(&B, &dcz, NULL, tb, err, errlen) ||
        bufs_add_t(&B, dt, &dq, NULL, (size_t)n * qd, err, errlen) || (qs && bufs_add_t(&B, dt, &dqs, NULL, (size_t)n * qd, err, errlen)) ||
        bufs_add_t(&B, dt, &dk, NULL, (size_t)CU_PAGE * kvd, err, errlen) || bufs_add_t(&B, dt, &dv, NULL, (size_t)CU_PAGE * kvd, err, errlen) ||
        bufs_add(&B, &dtab, NULL, 2 * sizeof(void *), err, errlen)) {
        bufs_free(&B);
        return -1;
    }
    int rc = -1;
    void *tab[2] = {dk, dv};
    if (cudaMemcpy(dtab, tab, sizeof tab, cudaMemcpyHostToDevice) != cudaSuccess ||
        (rot_half && cudaMemcpy(dcs, cs, tb - 16, cudaMemcpyHostToDevice) != cudaSuccess) ||
        (rot_half && cudaMemcpy(dcz, cs_sink ? cs_sink : cs, tb - 16, cudaMemcpyHostToDevice) != cudaSuccess)) {
        cu_fail(cudaGetLastError(), "test upload", __FILE__, __LINE__, err, errlen);
        bufs_free(&B);
        return -1;
    }
    RopeArgs a = {dqkv, (const float *)db, ld, dq, dqs, (float *)dcs, (float *)dcz, n, H, KV, hd, rot_half, 0, 0, 0, NULL, NULL,
                  (void *const *)dtab, (void *const *)dtab + 1};
    k_rope_store(dt, &a, 0);
    if (!get_t(dt, q, dq, (size_t)n * qd, err, errlen) && (!qs || !get_t(dt, qs, dqs, (size_t)n * qd, err, errlen)) &&
        !get_t(dt, k, dk, (size_t)n * kvd, err, errlen) && !get_t(dt, v, dv, (size_t)n * kvd, err, errlen))
        rc = 0;
    bufs_free(&B);
    return rc;
}

/* The decode product (kernels.cu k_gemv) in a storage dtype: x (n, in) and W (out, in) rounded to
 * T on the device, y (n, out) in fp32 (y_t 0: y0, NULL for zeros, then y = x W^T + beta y0) or in
 * T (y_t 1, beta 0); the result returned as floats (exact).  An error where k_gemv would not take
 * the shape (the forward pass then uses cuBLAS). */
extern "C" int cuda_op_gemv_dt(const char *dtype, const float *x, const float *w, const float *y0, float *y, int n, int in, int out,
                               float beta, int y_t, char *err, size_t errlen) {
    const int dt = dt_parse(dtype);
    if (dt < 0 || dt == DT_F32) return lcb_fail(err, errlen, "cuda_op_gemv_dt: dtype '%s' (bf16 or fp16)", dtype);
    Bufs B = {};
    void *dx, *dw, *dy, *df;
    const size_t ny = (size_t)n * out;
    if (bufs_add_t(&B, dt, &dx, x, (size_t)n * in, err, errlen) || bufs_add_t(&B, dt, &dw, w, (size_t)out * in, err, errlen) ||
        bufs_add(&B, &df, NULL, ny * 4, err, errlen)) { bufs_free(&B); return -1; }
    if (y_t) { if (bufs_add_t(&B, dt, &dy, NULL, ny, err, errlen)) { bufs_free(&B); return -1; } }
    else if (bufs_add(&B, &dy, y0, ny * 4, err, errlen)) { bufs_free(&B); return -1; }
    if (!y_t && !y0) CU_TRY(cudaMemset(dy, 0, ny * 4));
    if (k_gemv(dt, dx, dw, dy, y_t ? dt : DT_F32, n, in, out, beta, 0)) { bufs_free(&B); return lcb_fail(err, errlen, "k_gemv did not take n %d in %d", n, in); }
    if (!y_t) return finish(y, dy, ny * 4, &B, err, errlen);
    if (dt == DT_BF16) ops_to_float_kernel<__nv_bfloat16><<<(unsigned)((ny + 255) / 256), 256>>>((const __nv_bfloat16 *)dy, (float *)df, ny);
    else ops_to_float_kernel<__half><<<(unsigned)((ny + 255) / 256), 256>>>((const __half *)dy, (float *)df, ny);
    return finish(y, df, ny * 4, &B, err, errlen);
}
