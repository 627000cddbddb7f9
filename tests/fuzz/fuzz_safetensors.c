/*
 * fuzz_safetensors.c — libFuzzer harness of the safetensors reader (engine/safetensors.c).
 * Input: a whole .safetensors file (8-byte header length, JSON header, data area).  st_open
 * must either refuse it with a message or publish a tensor table whose every entry lies inside
 * the mapped file; every float tensor is then converted with st_to_f32, which reads all of its
 * bytes, so that an offset check that is off by one shows up as an ASan report.
 */
#include "tests/fuzz/fuzz_util.h"
#include "engine/safetensors.h"

int fuzz_safetensors_one(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    StFile st;
    if (st_open(&st, path, err, sizeof err) == 0) {
        FUZZ_CHECK(st.n_shards == 1, "%d shards", st.n_shards);
        const uint8_t *base = st.maps[0];
        for (size_t i = 0; i < st.n_tensors; i++) {
            const StTensor *t = &st.tensors[i];
            size_t need = t->numel * st_dtype_size(t->dtype);
            FUZZ_CHECK(t->nbytes == need, "%s: nbytes %zu, numel x dtype %zu", t->name, t->nbytes, need);
            FUZZ_CHECK(t->data >= base + 8 && t->data + t->nbytes <= base + st.sizes[0], "%s outside the file", t->name);
            FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "%s: ndim %d", t->name, t->ndim);
            FUZZ_CHECK(t->path && strcmp(t->path, st.paths[t->shard]) == 0, "%s: path of its shard", t->name);
            FUZZ_CHECK(i == 0 || strcmp(st.tensors[i - 1].name, t->name) < 0, "names not sorted/unique at %s", t->name);
            FUZZ_CHECK(st_find(&st, t->name) == t, "st_find(%s)", t->name);
            float *out = malloc(t->numel ? t->numel * sizeof(float) : 1);
            FUZZ_CHECK(out != NULL, "malloc %zu floats", t->numel);
            int rc = st_to_f32(t, out, err, sizeof err);
            int is_float = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64;
            FUZZ_CHECK((rc == 0) == is_float, "st_to_f32 on %s returned %d", st_dtype_name(t->dtype), rc);
            free(out);
        }
        FUZZ_CHECK(st_find(&st, "") == NULL || st_find(&st, "")->name[0] == 0, "st_find(\"\")");
        st_close(&st);
    } else {
        FUZZ_CHECK(err[0] != 0, "st_open failed without a message");
    }
    close(fd);
    return 0;
}

#ifndef LCB_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_safetensors_one(data, size); }
#endif
