/*
 * kvcache.h — the KV cache every cached policy is built on, and the attention that reads it.
 *
 * A cache keeps, per layer, the keys and values of:
 *   - sinks:  positions 0 .. S-1, kept forever (attention sinks);
 *   - recent: a ring of W slots holding the most recent positions >= S (window), or, when the
 *             window is unbounded (dense), a growing array with slot = position.
 * Keys are stored rotated at their absolute position.  A query at step t attends to the sink
 * keys with a query rotated at position |A(t)|-1 = min(t, S+W) and to the recent keys with a
 * query rotated at t: RoPE scores depend only on the position difference, so this reproduces
 * SPEC §2's re-assigned cache positions exactly (sinks at 0..S-1, the window right after them)
 * while the ring is written once per token and never shifted.
 */
#ifndef LCB_KVCACHE_H
#define LCB_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KVCache {
    int device;               /* LCB_DEVICE_CPU or LCB_DEVICE_CUDA (engine/backend.h) */
    void *dev;                /* device-side state of a non-CPU backend */
    int n_layers;
    int kv_dim;               /* n_kv * head_dim floats per token per layer for K (and for V) */
    int64_t n_sink;           /* S */
    int64_t window;           /* W previous tokens visible besides the sinks; -1 = unbounded */
    int64_t cap;              /* recent slots allocated per layer */
    float **k, **v;           /* [layer] -> recent keys (kv_dim, cap), stored transposed so that
                               * the attention's q k^T reads them in place, and values (cap, kv_dim) */
    float **sk, **sv;         /* [layer] -> (S, kv_dim) sink keys / values */
    int64_t *slot_pos;        /* (cap) absolute position held by each recent slot, -1 empty */
    int64_t n_past;           /* tokens processed so far = position of the next token */
    int rot_half;             /* rot_dim / 2 */
    double *inv_freq;         /* (rot_half) RoPE inverse frequencies, scaling applied */
    int s2_group;             /* > 0: LongLoRA shift-short attention in groups of this size */
    int64_t s2_total;         /* s2: length of the whole input */
    size_t bytes;             /* bytes allocated for keys, values and slot table */
    /* Optional diagnostic (CPU): attention paid to position 0 (the first token, the usual
     * attention sink).  When first_mass is non-NULL, kv_attention adds, per layer, the softmax
     * probability on position 0 summed over heads and over queries t >= 1, and first_count
     * counts those (query, head) pairs per layer.  Position 0 evicted from a window counts 0. */
    double *first_mass;       /* (n_layers) or NULL */
    double *first_count;      /* (n_layers) */
} KVCache;

/* window < 0: unbounded (dense).  rope_factor > 0 overrides the config's linear scaling.
 * device: where the keys and values live (LCB_DEVICE_CPU / LCB_DEVICE_CUDA). */
int kv_init(KVCache *kv, const ModelConfig *c, int device, int64_t n_sink, int64_t window,
            double rope_factor, char *err, size_t errlen);
/* Forget every token (keeps the allocation). */
void kv_reset(KVCache *kv);
void kv_free(KVCache *kv);
/* An unbounded CPU cache: room for positions 0 .. need-1 (doubling from 256 recent slots, as
 * appends grow it; no-op for a bounded one).  A restored snapshot reserves as the run did. */
int kv_reserve(KVCache *kv, int64_t need, char *err, size_t errlen);
/* KV bytes a policy needs after t tokens: (min(t,S) + min(t-S, W)) tokens, or t if unbounded. */
uint64_t kv_bytes_formula(const ModelConfig *c, int64_t n_sink, int64_t window, uint64_t t);

/* Attention of one layer for a chunk of n queries at positions kv->n_past .. +n-1.
 *   qkv:  (n, ldqkv) rows: [q heads (n_heads*hd) | k (kv_dim) | v (kv_dim)], q and k already
 *         rotated at absolute positions;
 *   qs:   (n, n_heads*hd) queries rotated at the sink position min(t, S+W), or NULL when no
 *         query of the chunk needs it (then q is used);
 *   out:  (n, n_heads*hd).
 * Does not modify the cache; kv_append stores the chunk's keys afterwards. */
int kv_attention(KVCache *kv, int layer, const ModelConfig *c, const float *qkv, int ldqkv,
                 const float *qs, float *out, int n, char *err, size_t errlen);
/* Store the chunk's keys/values of `layer` (rows of qkv as above) in the cache. */
int kv_append(KVCache *kv, int layer, const ModelConfig *c, const float *qkv, int ldqkv, int n,
              char *err, size_t errlen);

/* After every layer has appended a chunk of n tokens: publish their slots and advance n_past.
 * (The slot table is shared by all layers, so it may only change once all have written.) */
void kv_advance(KVCache *kv, int n);

/* RoPE table for n positions: cs (n, 2 * rot_half) = [cos | sin] of pos * inv_freq, angles in
 * double so that positions in the millions keep full float accuracy. */
void rope_table(const KVCache *kv, const int64_t *pos, int n, float *cs);
/* Rotate x (rows of `stride` floats, `nh` heads of head_dim starting at x) in place with the
 * table's row per row: first rot_dim dims of each head, rotate-half convention (HF). */
void rope_apply(const KVCache *kv, float *x, int n, int stride, int nh, int head_dim, const float *cs);

#ifdef __cplusplus
}
#endif
#endif
