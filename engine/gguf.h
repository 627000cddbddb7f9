/*
 * gguf.h — read GGUF files (llama.cpp's model format, versions 2 and 3): the header, every
 * metadata key/value (all value types, arrays included), the tensor infos, general.alignment and
 * the data area.  GGUF is what llama.cpp, ollama and LM Studio users hold; engine/gguf_model.c
 * turns one into an lcbench model and engine/gguf_tokenizer.c into a tokenizer.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv times
 * {string key, u32 type, value}; n_tensors times {string name, u32 n_dims, u64 ne[n_dims],
 * u32 ggml type, u64 offset}; padding to the alignment; the data area (offsets relative to it).
 * A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
 *
 * The file is read with pread, never mapped: a file truncated or changed under us gives an error,
 * not SIGBUS.  Every length, count, n_dims, shape, offset and size is checked against the file
 * size (products and sums overflow-checked) before anything is allocated from it, and a bad file
 * is refused with a message naming the file and the field.
 */
#ifndef LCB_GGUF_H
#define LCB_GGUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types, as GGUF numbers them. */
typedef enum {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4, GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12, GGUF_NTYPES
} GgufType;

#define GGUF_MAX_DIMS 4           /* ggml's GGML_MAX_DIMS */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    char *key;
    GgufType type;
    GgufType arr_type;            /* element type when type == GGUF_ARRAY */
    uint64_t n;                   /* array length; 1 for a scalar */
    union { uint64_t u; int64_t i; double f; } v;  /* a scalar: unsigned, signed (bool 0/1), float */
    char *str;                    /* a string scalar, NUL-terminated (str_len bytes before it) */
    uint64_t str_len;
    void *arr;                    /* array elements: numbers as the element type in host order
                                     (bools as uint8); strings as char *[n], each NUL-terminated */
    uint64_t *arr_len;            /* string arrays: the byte length of each string */
} GgufKV;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];    /* ne[0] is the fastest-varying (row length); unused dims 1 */
    uint32_t type;                /* ggml type id (engine/quant.h) */
    uint64_t offset;              /* from the start of the data area */
    uint64_t nbytes;              /* size on file */
    uint64_t numel;
} GgufTensor;

typedef struct {
    char path[4096];
    int fd;
    uint64_t file_size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    GgufKV *kv;                   /* (n_kv), in file order */
    GgufTensor *tensors;          /* (n_tensors), in file order */
    uint64_t alignment;
    uint64_t data_offset;         /* file offset of the data area */
} GgufFile;

/* Whether `path` is a GGUF file: its first four bytes are "GGUF" (no message on failure). */
int gguf_is_gguf(const char *path);
/* Parse and validate the header of `path`; keeps the file open for gguf_read_tensor. */
int gguf_open(GgufFile *g, const char *path, char *err, size_t errlen);
/* The same from bytes in memory (the fuzzer); `name` labels messages.  No tensor data reads. */
int gguf_parse_buffer(GgufFile *g, const uint8_t *data, size_t size, const char *name, char *err, size_t errlen);
void gguf_close(GgufFile *g);

const GgufKV *gguf_find(const GgufFile *g, const char *key);
const GgufTensor *gguf_find_tensor(const GgufFile *g, const char *name);
const char *gguf_type_name(GgufType t);

/* Typed getters: absent key -> `def` (return 0); present with a wrong type or out of range ->
 * -1 with a message naming the key.  Integers accept any integer type; floats accept float32,
 * float64 and integers. */
int gguf_get_int(const GgufFile *g, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen);
int gguf_get_float(const GgufFile *g, const char *key, double def, double *out, char *err, size_t errlen);
int gguf_get_bool(const GgufFile *g, const char *key, int def, int *out, char *err, size_t errlen);
/* A string, or `def` when absent (may be NULL). */
int gguf_get_str(const GgufFile *g, const char *key, const char *def, const char **out, char *err, size_t errlen);
/* An array with elements of type `elem` (-1: any); NULL with *out = NULL when absent. */
int gguf_get_arr(const GgufFile *g, const char *key, int elem, const GgufKV **out, char *err, size_t errlen);

/* Read tensor t's bytes on file (t->nbytes) into dst. */
int gguf_read_tensor(const GgufFile *g, const GgufTensor *t, void *dst, char *err, size_t errlen);
/* Read tensor t and convert it to fp32 (t->numel floats) through engine/quant.h. */
int gguf_read_f32(const GgufFile *g, const GgufTensor *t, float *dst, char *err, size_t errlen);

/* Bytes on file per ggml tensor type: bytes[type] summed over the tensors of that type
 * (types < n; others are added to bytes[n - 1] when n > 0).  Returns the total.  `lcbench plan`
 * uses it for the quantized weight bytes; gguf_weight_bytes opens the file for it. */
uint64_t gguf_bytes_by_type(const GgufFile *g, uint64_t *bytes, size_t n);
int gguf_weight_bytes(const char *path, uint64_t *total, char *types, size_t types_len, char *err, size_t errlen);
/* "Q4_K 113, Q6_K 32, F32 65": the tensor count per type, most frequent first. */
void gguf_type_summary(const GgufFile *g, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
