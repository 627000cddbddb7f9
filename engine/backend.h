/*
 * backend.h — where the forward pass runs.  The CPU path (engine/model.c, engine/kvcache.c) is
 * the reference; the CUDA backend (engine/cuda/, built only where nvcc exists) implements the
 * same entry points on an NVIDIA GPU: weights in bf16/fp16 on the device, KV caches in device
 * memory sized by the policy, and a fused log-softmax NLL so full-vocabulary logits need not
 * travel to the host.  Where nvcc is absent, engine/cuda_stub.c provides these entry points
 * and each reports that the build has no CUDA backend.
 */
#ifndef LCB_BACKEND_H
#define LCB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LCB_DEVICE_CPU = 0, LCB_DEVICE_CUDA = 1 };

/* "cpu" / "cuda" -> LCB_DEVICE_*; -1 for anything else. */
int lcb_device_parse(const char *name);

/* 0 if a CUDA device can be used now, else -1 with the reason. */
int cuda_available(char *err, size_t errlen);
/* CUDA devices visible to this process (0 without CUDA). */
int cuda_device_count(void);
/* Describe the device for provenance ("NVIDIA H100 80GB HBM3, 81559 MiB, driver ..."). */
void cuda_describe(char *buf, size_t n);

/* Put m's weights on the device in `dtype` ("bf16", "fp16" or "fp32").  For a checkpoint the
 * host arena is uploaded (and may be freed after); for random: shapes the weights are
 * generated on the device from the seed without a host copy. */
int cuda_model_upload(Model *m, const char *dtype, char *err, size_t errlen);
int cuda_model_init_random(Model *m, uint64_t seed, const char *dtype, char *err, size_t errlen);
void cuda_model_free(Model *m);

/* Device KV storage for kv's parameters (n_sink, window, n_layers, kv_dim; window < 0 grows). */
int cuda_kv_init(KVCache *kv, char *err, size_t errlen);
void cuda_kv_reset(KVCache *kv);
void cuda_kv_free(KVCache *kv);

/* The arrays of a CUDA cache for engine/kvstate.c (its stream and its checks are there):
 * the storage type (0 fp32, 1 bf16, 2 fp16) and bytes per value, the GPU split and the ring
 * slots, from m's weights when no forward has run yet; the used rows to io and back (load
 * creates the device storage for m first); and a device-side copy into dst (kv_init'ed with
 * src's parameters, nothing fed). */
struct KvIO;
int cuda_kv_layout(const KVCache *kv, const Model *m, int *dtype, int *elt, int *tp, int64_t *ring, char *err, size_t errlen);
int cuda_kv_save(const KVCache *kv, const Model *m, struct KvIO *io, char *err, size_t errlen);
int cuda_kv_load(KVCache *kv, const Model *m, struct KvIO *io, char *err, size_t errlen);
int cuda_kv_copy(KVCache *dst, const KVCache *src, const Model *m, char *err, size_t errlen);

/* The forward pass of model_forward on the device (same contract). */
int cuda_forward(Model *m, KVCache *kv, const int32_t *ids, int n, int out_from, const FwdOut *out,
                 char *err, size_t errlen);

/* Device memory: bytes from cudaMemGetInfo (used = total - free, summed over the model's GPUs)
 * and the backend's own allocator (all GPUs), current and peak, split like the host counters
 * (LcbMemCat). */
int cuda_mem_info(size_t *used, size_t *total);
/* The same for GPU i alone, and how many GPUs the current model uses (its tp). */
int cuda_mem_info_dev(int i, size_t *used, size_t *total);
int cuda_tp_devices(void);
size_t cuda_mem_now(int cat);
size_t cuda_mem_peak(int cat);

#ifdef __cplusplus
}
#endif
#endif
