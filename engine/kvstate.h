/*
 * kvstate.h — a KV cache's contents as a byte stream and as an independent copy, on either
 * backend: what the strategies' state_save / state_load / clone are built on (cache snapshots
 * for `run --resume`, the copies that fluency probes generate from).
 *
 * Stream: a fixed head (KvStateHead: tag, version, backend, bytes per stored value, GPU split,
 * layers, KV dims, S, W, ring slots, n_past), then the arrays that hold tokens, and only the
 * slots written so far, so that the bytes are a function of the tokens fed:
 *   CPU   per layer: min(S, n_past) sink key rows and value rows (S, kv_dim); the recent keys
 *         (stored transposed, kv_dim rows of the used slots) and values (used slots, kv_dim);
 *         then the slot table (cap entries) of a window;
 *   CUDA  per GPU of the split, per layer and K/V: the sink rows, then the used slots of the
 *         pages, in the model's dtype (engine/cuda/backend.cu); then the host slot table.
 * used = the slots written: n_past - S for an unbounded (dense) cache, at most the ring.
 * Loading checks the head against the cache it fills and names both on a mismatch, so a CUDA
 * state never fills a CPU cache, nor a bf16 one an fp16 one, nor one GPU split another.
 */
#ifndef LCB_KVSTATE_H
#define LCB_KVSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kvcache.h"
#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A byte stream: write takes all n bytes or fails, read fills all n bytes or fails (0 = ok). */
typedef struct KvIO {
    int (*write)(void *ctx, const void *p, size_t n);
    int (*read)(void *ctx, void *p, size_t n);
    void *ctx;
} KvIO;

#define KVSTATE_TAG "LCBKVST1"
#define KVSTATE_VERSION 1u  /* bump when a cache's memory layout or this stream changes */

typedef struct {
    char tag[8];
    uint32_t version;
    int32_t device;         /* LCB_DEVICE_* */
    int32_t elt;            /* bytes per stored value: 4 fp32, 2 bf16 / fp16 */
    int32_t dtype;          /* CUDA: 0 fp32, 1 bf16, 2 fp16; CPU: 0 */
    int32_t tp;             /* GPUs the cache is split over (CPU: 1) */
    int32_t layers, kv_dim; /* kv_dim: the whole model's n_kv * head_dim */
    int32_t pad;
    int64_t n_sink, window; /* S, W (-1 unbounded) */
    int64_t ring;           /* slots per layer of a bounded cache (CPU: W; CUDA: W + its sub-chunk), 0 unbounded */
    int64_t n_past;         /* tokens the cache holds the effect of */
} KvStateHead;

/* The head of kv as it is (CUDA: the model's dtype and split, whether or not a forward ran). */
int kv_state_head(const KVCache *kv, const Model *m, KvStateHead *h, char *err, size_t errlen);
/* "cuda bf16 --tp 1, 2 layers x 32 KV dims, 4 sinks + window 60 (ring 4156)" */
void kv_state_describe(const KvStateHead *h, char *out, size_t n);
/* Write kv's contents (head first) to io. */
int kv_state_save(const KVCache *kv, const Model *m, KvIO *io, char *err, size_t errlen);
/* Fill kv (initialised for m, nothing fed) from io: the head must describe a cache of kv's
 * layout, else an error naming both; the arrays follow.  On failure kv may hold part of the
 * state: the caller starts it afresh (kv_free + kv_init). */
int kv_state_load(KVCache *kv, const Model *m, KvIO *io, char *err, size_t errlen);
/* dst = an independent copy of src (either backend; m: the model src is fed by). */
int kv_clone(KVCache *dst, const KVCache *src, const Model *m, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
