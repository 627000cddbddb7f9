/*
 * kvstate.c — a KV cache as a byte stream and as a copy (see kvstate.h): the head and its
 * checks for both backends, the CPU arrays here, the CUDA arrays in engine/cuda/backend.cu.
 */
#include "engine/kvstate.h"
#include "engine/backend.h"
#include "engine/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dtype_name(int dev, int dt) {
    if (dev == LCB_DEVICE_CPU) return "fp32";
    return dt == 1 ? "bf16" : dt == 2 ? "fp16" : dt == 0 ? "fp32" : "?";
}

int kv_state_head(const KVCache *kv, const Model *m, KvStateHead *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    memcpy(h->tag, KVSTATE_TAG, 8);
    h->version = KVSTATE_VERSION;
    h->device = kv->device;
    h->layers = kv->n_layers;
    h->kv_dim = kv->kv_dim;
    h->n_sink = kv->n_sink;
    h->window = kv->window;
    h->n_past = kv->n_past;
    if (kv->device == LCB_DEVICE_CPU) {
        h->elt = 4;
        h->tp = 1;
        h->ring = kv->window >= 0 ? kv->cap : 0;
        return 0;
    }
    int dt, elt, tp;
    int64_t ring;
    if (cuda_kv_layout(kv, m, &dt, &elt, &tp, &ring, err, errlen)) return -1;
    h->dtype = dt;
    h->elt = elt;
    h->tp = tp;
    h->ring = ring;
    return 0;
}

void kv_state_describe(const KvStateHead *h, char *out, size_t n) {
    char win[64];
    if (h->window < 0) snprintf(win, sizeof win, "unbounded");
    else snprintf(win, sizeof win, "window %lld (ring %lld)", (long long)h->window, (long long)h->ring);
    snprintf(out, n, "%s %s --tp %d, %d layers x %d KV dims, %lld sinks + %s", h->device == LCB_DEVICE_CPU ? "cpu" : "cuda",
             dtype_name(h->device, h->dtype), (int)h->tp, (int)h->layers, (int)h->kv_dim, (long long)h->n_sink, win);
}

/* slots of the recent part written so far */
static int64_t used_slots(const KVCache *kv, int64_t ring) {
    int64_t u = kv->n_past - (kv->n_sink > 0 ? kv->n_sink : 0);
    if (u < 0) u = 0;
    if (kv->window >= 0 && u > ring) u = ring;
    return u;
}

static int io_put(KvIO *io, const void *p, size_t n, char *err, size_t errlen) {
    if (n && io->write(io->ctx, p, n)) return lcb_fail(err, errlen, "writing the KV cache state failed");
    return 0;
}

static int io_get(KvIO *io, void *p, size_t n, char *err, size_t errlen) {
    if (n && io->read(io->ctx, p, n)) return lcb_fail(err, errlen, "the KV cache state ends early");
    return 0;
}

int kv_state_save(const KVCache *kv, const Model *m, KvIO *io, char *err, size_t errlen) {
    KvStateHead h;
    if (kv_state_head(kv, m, &h, err, errlen) || io_put(io, &h, sizeof h, err, errlen)) return -1;
    if (kv->device != LCB_DEVICE_CPU) return cuda_kv_save(kv, m, io, err, errlen);
    const size_t row = (size_t)kv->kv_dim * sizeof(float);
    const int64_t ns = kv->n_past < kv->n_sink ? kv->n_past : kv->n_sink, used = used_slots(kv, h.ring);
    for (int l = 0; l < kv->n_layers; l++) {
        if (ns > 0 && (io_put(io, kv->sk[l], row * ns, err, errlen) || io_put(io, kv->sv[l], row * ns, err, errlen))) return -1;
        if (used <= 0) continue;
        /* keys (kv_dim, cap): the used prefix of each of the kv_dim rows */
        for (int c = 0; c < kv->kv_dim; c++)
            if (io_put(io, kv->k[l] + (size_t)c * kv->cap, (size_t)used * sizeof(float), err, errlen)) return -1;
        if (io_put(io, kv->v[l], row * used, err, errlen)) return -1;
    }
    if (kv->window >= 0 && kv->slot_pos && io_put(io, kv->slot_pos, (size_t)kv->cap * sizeof(int64_t), err, errlen)) return -1;
    return 0;
}

int kv_state_load(KVCache *kv, const Model *m, KvIO *io, char *err, size_t errlen) {
    KvStateHead h, want;
    if (kv->n_past != 0) return lcb_fail(err, errlen, "loading a KV cache state: the cache already holds %lld tokens", (long long)kv->n_past);
    if (kv_state_head(kv, m, &want, err, errlen) || io_get(io, &h, sizeof h, err, errlen)) return -1;
    if (memcmp(h.tag, KVSTATE_TAG, 8) || h.version != KVSTATE_VERSION)
        return lcb_fail(err, errlen, "not a KV cache state of this lcbench (tag %.8s, version %u; this one reads %s version %u)", h.tag,
                        h.version, KVSTATE_TAG, KVSTATE_VERSION);
    if (h.device != want.device || h.elt != want.elt || h.dtype != want.dtype || h.tp != want.tp || h.layers != want.layers ||
        h.kv_dim != want.kv_dim || h.n_sink != want.n_sink || h.window != want.window || h.ring != want.ring) {
        char a[160], b[160];
        kv_state_describe(&h, a, sizeof a);
        kv_state_describe(&want, b, sizeof b);
        return lcb_fail(err, errlen, "the saved KV cache is %s; this run's is %s", a, b);
    }
    if (h.n_past < 0 || h.n_past > ((int64_t)1 << 48)) return lcb_fail(err, errlen, "the saved KV cache holds %lld tokens", (long long)h.n_past);
    kv->n_past = h.n_past;
    if (kv->device != LCB_DEVICE_CPU) return cuda_kv_load(kv, m, io, err, errlen);
    /* an unbounded cache has the capacity the run had when it reached n_past */
    if (kv_reserve(kv, h.n_past, err, errlen)) return -1;
    const size_t row = (size_t)kv->kv_dim * sizeof(float);
    const int64_t ns = kv->n_past < kv->n_sink ? kv->n_past : kv->n_sink, used = used_slots(kv, h.ring);
    for (int l = 0; l < kv->n_layers; l++) {
        if (ns > 0 && (io_get(io, kv->sk[l], row * ns, err, errlen) || io_get(io, kv->sv[l], row * ns, err, errlen))) return -1;
        if (used <= 0) continue;
        for (int c = 0; c < kv->kv_dim; c++)
            if (io_get(io, kv->k[l] + (size_t)c * kv->cap, (size_t)used * sizeof(float), err, errlen)) return -1;
        if (io_get(io, kv->v[l], row * used, err, errlen)) return -1;
    }
    if (kv->window >= 0 && kv->slot_pos) {
        if (io_get(io, kv->slot_pos, (size_t)kv->cap * sizeof(int64_t), err, errlen)) return -1;
        for (int64_t s = 0; s < kv->cap; s++)
            if (kv->slot_pos[s] < -1 || kv->slot_pos[s] >= kv->n_past)
                return lcb_fail(err, errlen, "the saved KV cache's slot %lld holds position %lld (the cache is at %lld)", (long long)s,
                                (long long)kv->slot_pos[s], (long long)kv->n_past);
    }
    return 0;
}

static float *dup_rows(const float *src, size_t bytes, int *ok) {
    if (!src || !bytes) return NULL;
    float *d = lcb_alloc(LCB_MEM_KV, bytes);
    if (!d) { *ok = 0; return NULL; }
    memcpy(d, src, bytes);
    return d;
}

int kv_clone(KVCache *dst, const KVCache *src, const Model *m, char *err, size_t errlen) {
    memset(dst, 0, sizeof *dst);
    if (src->device != LCB_DEVICE_CPU) {
        /* a fresh device cache of src's parameters, then its rows copied on the device */
        if (kv_init(dst, &m->cfg, src->device, src->n_sink, src->window, 0, err, errlen)) return -1;
        memcpy(dst->inv_freq, src->inv_freq, (size_t)(src->rot_half + 1) * sizeof(double));
        dst->s2_group = src->s2_group;
        dst->s2_total = src->s2_total;
        dst->first_mass = src->first_mass;
        dst->first_count = src->first_count;
        if (cuda_kv_copy(dst, src, m, err, errlen)) { kv_free(dst); return -1; }
        if (src->slot_pos && dst->slot_pos) memcpy(dst->slot_pos, src->slot_pos, (size_t)(src->cap + 1) * sizeof(int64_t));
        dst->n_past = src->n_past;
        return 0;
    }
    *dst = *src;
    dst->k = calloc((size_t)src->n_layers, sizeof *dst->k);
    dst->v = calloc((size_t)src->n_layers, sizeof *dst->v);
    dst->sk = calloc((size_t)src->n_layers, sizeof *dst->sk);
    dst->sv = calloc((size_t)src->n_layers, sizeof *dst->sv);
    dst->inv_freq = malloc((size_t)(src->rot_half + 1) * sizeof(double));
    dst->slot_pos = NULL;
    int ok = dst->k && dst->v && dst->sk && dst->sv && dst->inv_freq;
    size_t row = (size_t)src->kv_dim * sizeof(float);
    for (int l = 0; ok && l < src->n_layers; l++) {
        dst->k[l] = dup_rows(src->k[l], row * (size_t)src->cap, &ok);
        dst->v[l] = dup_rows(src->v[l], row * (size_t)src->cap, &ok);
        dst->sk[l] = dup_rows(src->sk[l], row * (size_t)src->n_sink, &ok);
        dst->sv[l] = dup_rows(src->sv[l], row * (size_t)src->n_sink, &ok);
    }
    if (ok && src->inv_freq) memcpy(dst->inv_freq, src->inv_freq, (size_t)(src->rot_half + 1) * sizeof(double));
    if (ok && src->slot_pos) {
        size_t sb = (size_t)(src->cap + 1) * sizeof(int64_t);
        if ((dst->slot_pos = lcb_alloc(LCB_MEM_KV, sb))) memcpy(dst->slot_pos, src->slot_pos, sb); else ok = 0;
    }
    if (!ok) { kv_free(dst); return lcb_fail(err, errlen, "out of memory: copying the KV cache"); }
    return 0;
}
