/*
 * safetensors.h — read HF safetensors checkpoints: one `model.safetensors`, or the shards named
 * by `model.safetensors.index.json`.  Files are memory-mapped; tensors are pointed into, never
 * copied here.  Every header field is validated against the file before it is trusted: header
 * length, dtype, shape products (overflow-checked), offsets inside the data area, no overlaps.
 * The data is read only by st_to_f32, under a SIGBUS guard, so a file truncated while it loads
 * fails with a message instead of killing the process.
 */
#ifndef LCB_SAFETENSORS_H
#define LCB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
               ST_OTHER } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;                 /* tensor name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;               /* product of shape */
    const uint8_t *data;        /* points into the mapped file */
    size_t nbytes;
    int shard;                  /* index into StFile.paths */
    const char *path;           /* StFile.paths[shard], for messages */
} StTensor;

typedef struct {
    int n_shards;
    char **paths;               /* (n_shards) file paths */
    void **maps;                /* (n_shards) mmap bases */
    size_t *sizes;              /* (n_shards) file sizes */
    StTensor *tensors;          /* (n_tensors), sorted by name */
    size_t n_tensors;
    uint64_t mapped_bytes;      /* total size of the mapped files */
} StFile;

/* path: a folder (model.safetensors or model.safetensors.index.json inside), a .safetensors
 * file, or an index .json.  Returns 0, or -1 with a message naming file and field. */
int st_open(StFile *st, const char *path, char *err, size_t errlen);
void st_close(StFile *st);
const StTensor *st_find(const StFile *st, const char *name);
const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);
/* Convert a float tensor (F32/F16/BF16/F64) to fp32 into out (numel floats).  -1 with a message
 * naming file and tensor when the file was cut short under the map (SIGBUS). */
int st_to_f32(const StTensor *t, float *out, char *err, size_t errlen);

static inline float st_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}
float st_f16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
