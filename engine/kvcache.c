/*
 * kvcache.c — KV storage bounded by the policy (sinks + ring, or a growing dense array) and the
 * chunked attention over it.  See kvcache.h for why keys are stored rotated at absolute
 * positions and why sinks get their own query rotation.
 *
 * Attention for a chunk of n queries reads four key segments, each scored with one GEMM:
 *   1. stored sinks    positions 0 .. min(S, t0)-1            query rotated at the sink position
 *   2. recent slots    ring (or dense array) from earlier chunks  query rotated at t
 *   3. chunk sinks     positions t0 .. min(S, t0+n)-1          query rotated at the sink position
 *   4. chunk rest      positions max(S, t0) .. t0+n-1          query rotated at t
 * then masks each (query, key) pair by SPEC §2's A(t) (and the s2 groups), and takes one
 * softmax over the concatenated row.  Softmax is order-free, so ring order does not matter.
 */
#include "engine/kvcache.h"
#include "engine/gemm.h"
#include "engine/backend.h"
#include "engine/common.h"

#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KV_QBLOCK 64    /* queries per score block: bounds the score buffer to 64 x keys */
#define KV_MIN_TASKS 8  /* (head, query block) tasks a chunk is cut into when it can be (blocks >= 16 rows) */

uint64_t kv_bytes_formula(const ModelConfig *c, int64_t n_sink, int64_t window, uint64_t t) {
    uint64_t per_tok = 2ull * c->n_layers * c->n_kv * c->head_dim * sizeof(float);
    uint64_t s = t < (uint64_t)n_sink ? t : (uint64_t)n_sink;
    uint64_t rest = t - s;
    if (window >= 0 && rest > (uint64_t)window) rest = (uint64_t)window;
    return per_tok * (s + rest);
}

int kv_init(KVCache *kv, const ModelConfig *c, int device, int64_t n_sink, int64_t window,
            double rope_factor, char *err, size_t errlen) {
    memset(kv, 0, sizeof *kv);
    kv->device = device;
    kv->n_layers = c->n_layers;
    kv->kv_dim = c->n_kv * c->head_dim;
    kv->n_sink = n_sink;
    kv->window = window;
    kv->rot_half = c->rot_dim / 2;
    kv->inv_freq = malloc((kv->rot_half + 1) * sizeof(double));
    kv->k = calloc(c->n_layers, sizeof(float *));
    kv->v = calloc(c->n_layers, sizeof(float *));
    kv->sk = calloc(c->n_layers, sizeof(float *));
    kv->sv = calloc(c->n_layers, sizeof(float *));
    if (!kv->inv_freq || !kv->k || !kv->v || !kv->sk || !kv->sv) {
        kv_free(kv);
        return lcb_fail(err, errlen, "KV cache: out of memory");
    }
    config_rope_inv_freq(c, rope_factor, kv->inv_freq);
    if (device != LCB_DEVICE_CPU) {
        if (cuda_kv_init(kv, err, errlen)) { kv_free(kv); return -1; }
        return 0;
    }
    size_t row = (size_t)kv->kv_dim * sizeof(float);
    for (int l = 0; l < c->n_layers && n_sink > 0; l++) {
        kv->sk[l] = lcb_alloc(LCB_MEM_KV, row * n_sink);
        kv->sv[l] = lcb_alloc(LCB_MEM_KV, row * n_sink);
        if (!kv->sk[l] || !kv->sv[l]) {
            kv_free(kv);
            return lcb_fail(err, errlen, "KV cache: out of memory for %lld sink tokens", (long long)n_sink);
        }
        kv->bytes += 2 * row * n_sink;
    }
    if (window >= 0) {
        kv->cap = window;
        for (int l = 0; l < c->n_layers && window > 0; l++) {
            kv->k[l] = lcb_alloc(LCB_MEM_KV, row * window);
            kv->v[l] = lcb_alloc(LCB_MEM_KV, row * window);
            if (!kv->k[l] || !kv->v[l]) {
                kv_free(kv);
                return lcb_fail(err, errlen, "KV cache: out of memory for a window of %lld tokens", (long long)window);
            }
            kv->bytes += 2 * row * window;
        }
        kv->slot_pos = lcb_alloc(LCB_MEM_KV, (window + 1) * sizeof(int64_t));
        if (!kv->slot_pos) { kv_free(kv); return lcb_fail(err, errlen, "KV cache: out of memory"); }
        kv->bytes += (window + 1) * sizeof(int64_t);
    }
    kv_reset(kv);
    return 0;
}

void kv_reset(KVCache *kv) {
    kv->n_past = 0;
    if (kv->device != LCB_DEVICE_CPU) { cuda_kv_reset(kv); return; }
    if (kv->window >= 0 && kv->slot_pos)
        for (int64_t s = 0; s < kv->cap; s++) kv->slot_pos[s] = -1;
}

/* Unbounded caches grow by doubling so that appends are amortised O(1).  All layers grow
 * together or not at all, so a failed growth leaves the cache as it was. */
int kv_reserve(KVCache *kv, int64_t need, char *err, size_t errlen) {
    need -= kv->n_sink;
    if (kv->window >= 0 || need <= kv->cap) return 0;
    int64_t cap = kv->cap ? kv->cap : 256;
    while (cap < need) cap *= 2;
    size_t row = (size_t)kv->kv_dim * sizeof(float), old = row * kv->cap, nw = row * cap;
    float **nk = calloc(kv->n_layers, sizeof *nk), **nv = calloc(kv->n_layers, sizeof *nv);
    int ok = nk && nv;
    for (int l = 0; ok && l < kv->n_layers; l++) {
        nk[l] = lcb_alloc(LCB_MEM_KV, nw);
        nv[l] = lcb_alloc(LCB_MEM_KV, nw);
        ok = nk[l] && nv[l];
    }
    if (!ok) {
        for (int l = 0; nk && nv && l < kv->n_layers; l++) { lcb_free(LCB_MEM_KV, nk[l], nw); lcb_free(LCB_MEM_KV, nv[l], nw); }
        free(nk); free(nv);
        return lcb_fail(err, errlen, "out of memory: dense KV cache growing to %lld tokens (%zu bytes)",
                        (long long)cap, 2 * nw * kv->n_layers);
    }
    for (int l = 0; l < kv->n_layers; l++) {
        if (old) {
            /* keys are stored transposed, (kv_dim, cap): each row moves to the wider stride */
            for (int c = 0; c < kv->kv_dim; c++) memcpy(nk[l] + (size_t)c * cap, kv->k[l] + (size_t)c * kv->cap, kv->cap * sizeof(float));
            memcpy(nv[l], kv->v[l], old);
        }
        lcb_free(LCB_MEM_KV, kv->k[l], old); lcb_free(LCB_MEM_KV, kv->v[l], old);
        kv->k[l] = nk[l]; kv->v[l] = nv[l];
    }
    free(nk); free(nv);
    kv->bytes += 2 * (nw - old) * kv->n_layers;
    kv->cap = cap;
    return 0;
}

void kv_free(KVCache *kv) {
    if (kv->dev) cuda_kv_free(kv);
    size_t row = (size_t)kv->kv_dim * sizeof(float);
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->k) lcb_free(LCB_MEM_KV, kv->k[l], row * kv->cap);
        if (kv->v) lcb_free(LCB_MEM_KV, kv->v[l], row * kv->cap);
        if (kv->sk) lcb_free(LCB_MEM_KV, kv->sk[l], row * kv->n_sink);
        if (kv->sv) lcb_free(LCB_MEM_KV, kv->sv[l], row * kv->n_sink);
    }
    if (kv->slot_pos) lcb_free(LCB_MEM_KV, kv->slot_pos, (kv->cap + 1) * sizeof(int64_t));
    free(kv->k); free(kv->v); free(kv->sk); free(kv->sv); free(kv->inv_freq);
    memset(kv, 0, sizeof *kv);
}

void rope_table(const KVCache *kv, const int64_t *pos, int n, float *cs) {
    const int half = kv->rot_half;
    for (int i = 0; i < n; i++)
        for (int f = 0; f < half; f++) {
            double a = (double)pos[i] * kv->inv_freq[f];
            cs[(size_t)i * 2 * half + f] = (float)cos(a);
            cs[(size_t)i * 2 * half + half + f] = (float)sin(a);
        }
}

void rope_apply(const KVCache *kv, float *x, int n, int stride, int nh, int head_dim, const float *cs) {
    const int half = kv->rot_half;
    if (!half) return;
    #pragma omp parallel for schedule(static) if (n >= 32)
    for (int i = 0; i < n; i++) {
        const float *c = cs + (size_t)i * 2 * half, *s = c + half;
        for (int h = 0; h < nh; h++) {
            float *p = x + (size_t)i * stride + (size_t)h * head_dim;
            for (int f = 0; f < half; f++) {
                float a = p[f], b = p[f + half];
                p[f] = a * c[f] - b * s[f];
                p[f + half] = b * c[f] + a * s[f];
            }
        }
    }
}

/* LongLoRA s2: may query t see key j in head h?  Heads h >= H/2 work on the sequence rolled by
 * -G/2 (index r = (t - G/2) mod T); attention is causal inside groups of G of the (rolled)
 * sequence.  T = the whole input. */
static inline int s2_visible(const KVCache *kv, int h, int H, int64_t t, int64_t j) {
    int64_t G = kv->s2_group, T = kv->s2_total;
    if (h >= H / 2) {
        t = ((t - G / 2) % T + T) % T;
        j = ((j - G / 2) % T + T) % T;
    }
    return j <= t && j / G == t / G;
}

int kv_attention(KVCache *kv, int layer, const ModelConfig *c, const float *qkv, int ldqkv,
                 const float *qs, float *out, int n, char *err, size_t errlen) {
    const int H = c->n_heads, hd = c->head_dim, grp = c->n_heads / c->n_kv, kvd = kv->kv_dim;
    const int64_t S = kv->n_sink, W = kv->window, t0 = kv->n_past;
    const float scale = 1.0f / sqrtf((float)hd);
    const int ldq = H * hd;
    if (kv->s2_group > 0 && (t0 != 0 || n != kv->s2_total))
        return lcb_fail(err, errlen, "s2 attention needs the whole input in one forward");
    /* segment sizes */
    const int64_t m1 = t0 < S ? t0 : S;                                   /* stored sinks */
    const int64_t m2 = t0 - S <= 0 ? 0 : (W < 0 || t0 - S < kv->cap ? t0 - S : kv->cap); /* recent */
    const int64_t c3_end = S > t0 ? (S < t0 + n ? S : t0 + n) : t0;      /* chunk sinks: [t0, c3_end) */
    const int64_t m3 = c3_end - t0;
    const int64_t mtot = m1 + m2 + n;
    if (kv_reserve(kv, t0 + n, err, errlen)) return -1;
    /* (head, query block) tasks run in parallel, one score block per thread, each task with
     * single-threaded GEMMs (OpenMP OpenBLAS does not nest inside an active parallel region; the
     * region is entered even for one task, so that OpenBLAS never threads a call itself).
     * Query blocks of at most KV_QBLOCK rows, halved while there are fewer than KV_MIN_TASKS
     * tasks (with 4 heads and a chunk of 64, one block per head would leave threads idle).
     * The partition depends on the shapes alone, never on the thread count: a block's first
     * query decides which ring slots it reads and its size decides the GEMMs' shapes, both of
     * which change the rounding, and SPEC §1 wants the same bits for any number of threads. */
    const int nthreads = omp_get_max_threads();
    int qb = KV_QBLOCK;
    while (qb > 16 && (int64_t)H * ((n + qb - 1) / qb) < KV_MIN_TASKS) qb /= 2;
    const int nblocks = (n + qb - 1) / qb, ntasks = H * nblocks;
    size_t sbytes, per_thread;
    if (lcb_mul_size((size_t)KV_QBLOCK * sizeof(float), (size_t)mtot, &per_thread) ||
        lcb_mul_size(per_thread, (size_t)nthreads, &sbytes))
        return lcb_fail(err, errlen, "attention: score buffer size overflows");
    float *sbuf = lcb_alloc(LCB_MEM_WORK, sbytes);
    /* diagnostic (attention on position 0): one partial sum per task, added in task order
     * after the loop, not an OpenMP reduction (whose order depends on the team) */
    double *first_part = kv->first_mass ? calloc((size_t)ntasks, 2 * sizeof(double)) : NULL;
    if (!sbuf || (kv->first_mass && !first_part)) {
        lcb_free(LCB_MEM_WORK, sbuf, sbytes);
        return lcb_fail(err, errlen, "out of memory: attention scores (%zu bytes)", sbytes);
    }
    const float *kc = qkv + H * hd, *vc = qkv + H * hd + kvd; /* chunk keys / values */
    const float *sink_q = qs ? qs : qkv;
    const int ld_sq = qs ? ldq : ldqkv;

    #pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < ntasks; task++) {
        const int h = task / nblocks, g = h / grp, i0 = (task % nblocks) * qb;
        float *sc = sbuf + (size_t)omp_get_thread_num() * (per_thread / sizeof(float)), rinv[KV_QBLOCK];
        int kend[KV_QBLOCK]; /* per row: the chunk keys (segment 4) it sums over, [0, kend) */
        double first_sum = 0, first_n = 0;
        {
            const int nb = n - i0 < qb ? n - i0 : qb;
            const float *qa = qkv + (size_t)i0 * ldqkv + h * hd;
            const float *qsb = sink_q + (size_t)i0 * ld_sq + h * hd;
            /* chunk keys this block can see: up to its last query (all of them for s2) */
            const int64_t cend = kv->s2_group > 0 ? n : i0 + nb;
            const int64_t m4 = cend - m3 > 0 ? cend - m3 : 0;
            const int64_t ld = mtot;
            float *s1 = sc, *s2 = sc + m1, *s3 = sc + m1 + m2, *s4 = s3 + m3;
            if (m1) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, m1, hd, scale, qsb, ld_sq,
                                kv->sk[layer] + g * hd, kvd, 0.f, s1, ld);
            /* the recent keys, stored transposed: no packing, no copy (engine/gemm.h).  Only the
             * slots some query of this block can see: in a window, positions before the first
             * query's t - W are masked for every row, and they are one circular run of slots;
             * the scores left unwritten there are masked to -inf below before any use */
            int64_t rs[2] = {0, 0}, rn[2] = {m2, 0};
            if (m2 && W >= 0 && kv->s2_group == 0) {
                const int64_t lo = t0 + i0 - W > S ? t0 + i0 - W : S, cnt = t0 - lo > 0 ? t0 - lo : 0;
                rs[0] = (lo - S) % W;
                rn[0] = rs[0] + cnt <= m2 ? cnt : m2 - rs[0];
                rn[1] = cnt - rn[0]; /* wrapped to slot 0 */
            }
            for (int r = 0; r < 2; r++)
                if (rn[r] > 0)
                    gemm_strided(qa, ldqkv, nb, hd, kv->k[layer] + (size_t)g * hd * kv->cap + rs[r], (size_t)kv->cap, (int)rn[r], scale,
                                 s2 + rs[r], (int)ld, 0, NULL);
            if (m3) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, m3 < cend ? m3 : cend, hd, scale, qsb, ld_sq,
                                kc + g * hd, ldqkv, 0.f, s3, ld);
            if (m4) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, m4, hd, scale, qa, ldqkv,
                                kc + (size_t)m3 * ldqkv + g * hd, ldqkv, 0.f, s4, ld);
            const int64_t m3v = m3 < cend ? m3 : cend;
            /* mask by A(t) and softmax each row; segments 1-3 are contiguous in the row,
             * segment 4 starts at column m1 + m2 + m3 */
            for (int i = 0; i < nb; i++) {
                const int64_t t = t0 + i0 + i;
                const int64_t lo = W < 0 ? 0 : t - W; /* oldest visible non-sink position */
                float *row = sc + (size_t)i * ld, *r4 = s4 + (size_t)i * ld, mx = -INFINITY;
                /* mask by A(t): branch-free selects, so that the loops vectorise */
                if (W >= 0) {
                    const int64_t *sp = kv->slot_pos;
                    #pragma omp simd
                    for (int64_t k = 0; k < m2; k++) row[m1 + k] = sp[k] < lo ? -INFINITY : row[m1 + k];
                }
                for (int64_t k = t - t0 + 1; k < m3v; k++) row[m1 + m2 + k] = -INFINITY;
                /* segment 4 (this chunk): visible columns are [k0, k1), except under s2 */
                int64_t k0 = 0, k1 = m4;
                if (kv->s2_group > 0) {
                    for (int64_t k = 0; k < m4; k++)
                        if (!s2_visible(kv, h, H, t, t0 + m3 + k)) r4[k] = -INFINITY;
                } else {
                    /* visible chunk keys j = t0 + m3 + k: lo <= j <= t */
                    int64_t klo = lo - t0 - m3, khi = t - t0 - m3;
                    k0 = klo > 0 ? (klo < m4 ? klo : m4) : 0;
                    k1 = khi + 1 < m4 ? (khi + 1 > k0 ? khi + 1 : k0) : m4;
                    for (int64_t k = 0; k < k0; k++) r4[k] = 0.f;
                    for (int64_t k = k1; k < m4; k++) r4[k] = 0.f;
                }
                kend[i] = (int)k1;
                const int64_t a = m1 + m2 + m3v;
                #pragma omp simd reduction(max:mx)
                for (int64_t k = 0; k < a; k++) mx = row[k] > mx ? row[k] : mx;
                #pragma omp simd reduction(max:mx)
                for (int64_t k = k0; k < k1; k++) mx = r4[k] > mx ? r4[k] : mx;
                float sum = 0.f;
                #pragma omp simd reduction(+:sum)
                for (int64_t k = 0; k < a; k++) { float e = row[k] == -INFINITY ? 0.f : lcb_expf(row[k] - mx); row[k] = e; sum += e; }
                #pragma omp simd reduction(+:sum)
                for (int64_t k = k0; k < k1; k++) { float e = r4[k] == -INFINITY ? 0.f : lcb_expf(r4[k] - mx); r4[k] = e; sum += e; }
                /* the rows stay unnormalised: the output row is divided by the sum after the
                 * products with the values (hd multiplies instead of one per key) */
                const float inv = 1.f / sum;
                rinv[i] = inv;
                if (kv->first_mass && t >= 1 && kv->s2_group == 0) {
                    /* where position 0 sits in this row, if it is visible */
                    float p0 = 0.f;
                    if (m1) p0 = row[0];
                    else if (m2 && (W < 0 ? S == 0 : kv->slot_pos[0] == 0)) p0 = row[m1];
                    else if (t0 == 0) p0 = m3 ? row[m1 + m2] : r4[0];
                    first_sum += p0 * inv;
                    first_n += 1;
                }
            }
            if (first_part) { first_part[2 * task] = first_sum; first_part[2 * task + 1] = first_n; }
            float *o = out + (size_t)i0 * ldq + h * hd;
            float beta = 0.f;
            if (m1) { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, m1, 1.f, s1, ld, kv->sv[layer] + g * hd, kvd, beta, o, ldq); beta = 1.f; }
            for (int r = 0; r < 2; r++)
                if (rn[r] > 0) {
                    gemm_strided(s2 + rs[r], (int)ld, nb, (int)rn[r], kv->v[layer] + (size_t)rs[r] * kvd + g * hd, (size_t)kvd, hd, 1.f, o, ldq,
                                 beta == 1.f, NULL);
                    beta = 1.f;
                }
            if (m3v) {
                const float beta3 = beta;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, m3v, 1.f, s3, ld, vc + g * hd, ldqkv, beta3, o, ldq);
                beta = 1.f;
                /* a row before the last chunk sink gives the later sinks weight 0, which keeps its
                 * output only while their values are finite: a non-finite value of a later
                 * position (a NaN the run fails at, there) would make it NaN.  Such a row is
                 * recomputed without those keys (rows t >= S - 1 never need it: A(t) holds every
                 * sink) */
                for (int i = 0; i < nb && t0 + i0 + i + 1 < t0 + m3v; i++) {
                    const int vis = i0 + i + 1; /* chunk sinks of this row: [t0, t0 + vis) */
                    int bad = 0;
                    for (int64_t j = vis; j < m3v && !bad; j++)
                        for (int k = 0; k < hd; k++) bad |= !isfinite(vc[(size_t)j * ldqkv + g * hd + k]);
                    if (!bad) continue;
                    float *oi = o + (size_t)i * ldq;
                    if (m1) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, hd, m1, 1.f, s1 + (size_t)i * ld, ld, kv->sv[layer] + g * hd, kvd, 0.f, oi, ldq);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, hd, vis, 1.f, s3 + (size_t)i * ld, ld, vc + g * hd, ldqkv, m1 ? 1.f : beta3, oi, ldq);
                }
            }
            /* each row sums only the chunk keys it sees (kend: none past its own position), so a
             * later position's values cannot reach it; under s2 every key of the row's span */
            if (m4) { gemm_strided(s4, (int)ld, nb, (int)m4, vc + (size_t)m3 * ldqkv + g * hd, (size_t)ldqkv, hd, 1.f, o, ldq, beta == 1.f, kv->s2_group > 0 ? NULL : kend); beta = 1.f; }
            for (int i = 0; i < nb; i++) {
                float *oi = o + (size_t)i * ldq;
                const float inv = rinv[i];
                #pragma omp simd
                for (int k = 0; k < hd; k++) oi[k] *= inv;
            }
        }
    }
    lcb_free(LCB_MEM_WORK, sbuf, sbytes);
    if (first_part) {
        double first_sum = 0, first_n = 0;
        for (int task = 0; task < ntasks; task++) { first_sum += first_part[2 * task]; first_n += first_part[2 * task + 1]; }
        kv->first_mass[layer] += first_sum;
        kv->first_count[layer] += first_n;
        free(first_part);
    }
    return 0;
}

int kv_append(KVCache *kv, int layer, const ModelConfig *c, const float *qkv, int ldqkv, int n,
              char *err, size_t errlen) {
    const int H = c->n_heads, hd = c->head_dim, kvd = kv->kv_dim;
    const int64_t S = kv->n_sink, W = kv->window, t0 = kv->n_past;
    size_t row = (size_t)kvd * sizeof(float);
    if (kv_reserve(kv, t0 + n, err, errlen)) return -1;
    for (int i = 0; i < n; i++) {
        int64_t j = t0 + i;
        const float *k = qkv + (size_t)i * ldqkv + H * hd, *v = k + kvd;
        if (j < S) {
            memcpy(kv->sk[layer] + (size_t)j * kvd, k, row);
            memcpy(kv->sv[layer] + (size_t)j * kvd, v, row);
        } else if (W < 0 || (W > 0 && j >= t0 + n - W)) {
            const int64_t slot = W < 0 ? j - S : (j - S) % W, cap = kv->cap;
            float *kt = kv->k[layer] + slot; /* keys transposed: column `slot` of (kv_dim, cap) */
            for (int c = 0; c < kvd; c++) kt[(size_t)c * cap] = k[c];
            memcpy(kv->v[layer] + (size_t)slot * kvd, v, row);
        }
    }
    return 0;
}

void kv_advance(KVCache *kv, int n) {
    const int64_t S = kv->n_sink, W = kv->window, t0 = kv->n_past;
    if (W > 0)
        for (int64_t j = t0 + n - W > t0 ? t0 + n - W : t0; j < t0 + n; j++)
            if (j >= S) kv->slot_pos[(j - S) % W] = j;
    kv->n_past += n;
}
