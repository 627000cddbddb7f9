/*
 * safetensors.c — the safetensors reader.  Format: 8-byte little-endian header length N, then N
 * bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then
 * the data area; offsets are relative to the data area.  A hostile file must produce an error,
 * never an out-of-bounds read, so everything is checked before the tensor table is published.
 */
#include "engine/safetensors.h"
#include "engine/common.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (256u << 20) /* 256 MiB: far above any real header */

static const struct { const char *name; StDtype d; size_t size; } dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"I16", ST_I16, 2}, {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

const char *st_dtype_name(StDtype d) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].d == d) return dtypes[i].name;
    return "unknown";
}

size_t st_dtype_size(StDtype d) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].d == d) return dtypes[i].size;
    return 0;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (man << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    union { uint32_t u; float f; } v = { u };
    return v.f;
}

int st_to_f32(const StTensor *t, float *out, char *err, size_t errlen) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, t->numel * 4); return 0;
    case ST_F64:
        for (size_t i = 0; i < t->numel; i++) { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; }
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = st_bf16_to_f32(h); }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = st_f16_to_f32(h); }
        return 0;
    default:
        return lcb_fail(err, errlen, "tensor %s: dtype %s is not a float type (F32, F16, BF16 expected)",
                        t->name, st_dtype_name(t->dtype));
    }
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

typedef struct { size_t begin, end; const char *name; } Span;
static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Map one file and append its tensors to st->tensors.  `only` (may be NULL): if set, a JSON
 * object name->file from the index; tensors of this file not listed there are still kept. */
static int st_add_file(StFile *st, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lcb_fail(err, errlen, "%s: not a regular file", path);
    }
    size_t fsize = (size_t)sb.st_size;
    if (fsize < 8) {
        close(fd);
        return lcb_fail(err, errlen, "%s: truncated: %zu bytes, shorter than the 8-byte header length", path, fsize);
    }
    void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return lcb_fail(err, errlen, "%s: mmap failed: %s", path, strerror(errno));

    int shard = st->n_shards;
    char **np = realloc(st->paths, (shard + 1) * sizeof *np);
    if (np) st->paths = np;
    void **nm = realloc(st->maps, (shard + 1) * sizeof *nm);
    if (nm) st->maps = nm;
    size_t *ns = realloc(st->sizes, (shard + 1) * sizeof *ns);
    if (ns) st->sizes = ns;
    char *pcopy = strdup(path);
    if (!np || !nm || !ns || !pcopy) {
        free(pcopy);
        munmap(map, fsize);
        return lcb_fail(err, errlen, "%s: out of memory", path);
    }
    st->paths[shard] = pcopy;
    st->maps[shard] = map;
    st->sizes[shard] = fsize;
    st->n_shards++;
    st->mapped_bytes += fsize;

    const uint8_t *base = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > ST_MAX_HEADER || hlen > fsize - 8)
        return lcb_fail(err, errlen, "%s: header length %llu runs past the end of the file (%zu bytes): truncated or not a safetensors file",
                        path, (unsigned long long)hlen, fsize);
    const uint8_t *data = base + 8 + hlen;
    size_t data_size = fsize - 8 - hlen;

    cJSON *hdr = cJSON_ParseWithLength((const char *)base + 8, hlen);
    if (!hdr || !cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        return lcb_fail(err, errlen, "%s: header is not a valid JSON object", path);
    }
    int rc = -1;
    size_t count = 0;
    for (cJSON *e = hdr->child; e; e = e->next) count++;
    Span *spans = calloc(count + 1, sizeof *spans);
    StTensor *grown = realloc(st->tensors, (st->n_tensors + count + 1) * sizeof *grown);
    if (!spans || !grown) { lcb_fail(err, errlen, "%s: out of memory", path); goto done; }
    st->tensors = grown;
    size_t nspan = 0;
    for (cJSON *e = hdr->child; e; e = e->next) {
        if (!e->string) { lcb_fail(err, errlen, "%s: header entry without a name", path); goto done; }
        if (strcmp(e->string, "__metadata__") == 0) continue;
        const char *nm = e->string;
        if (!cJSON_IsObject(e)) { lcb_fail(err, errlen, "%s: tensor %s: entry is not an object", path, nm); goto done; }
        cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd)) { lcb_fail(err, errlen, "%s: tensor %s: field dtype missing or not a string", path, nm); goto done; }
        if (!cJSON_IsArray(js)) { lcb_fail(err, errlen, "%s: tensor %s: field shape missing or not an array", path, nm); goto done; }
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) { lcb_fail(err, errlen, "%s: tensor %s: field data_offsets must be [begin, end]", path, nm); goto done; }
        StTensor t = {0};
        t.dtype = ST_OTHER;
        for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
            if (strcmp(jd->valuestring, dtypes[i].name) == 0) t.dtype = dtypes[i].d;
        if (t.dtype == ST_OTHER) { lcb_fail(err, errlen, "%s: tensor %s: unknown dtype \"%s\"", path, nm, jd->valuestring); goto done; }
        t.ndim = cJSON_GetArraySize(js);
        if (t.ndim > ST_MAX_DIMS) { lcb_fail(err, errlen, "%s: tensor %s: %d dimensions (at most %d)", path, nm, t.ndim, ST_MAX_DIMS); goto done; }
        size_t numel = 1;
        int d = 0;
        for (cJSON *x = js->child; x; x = x->next, d++) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9.0e15 || x->valuedouble != (double)(int64_t)x->valuedouble) {
                lcb_fail(err, errlen, "%s: tensor %s: shape[%d] is not a non-negative integer", path, nm, d); goto done;
            }
            t.shape[d] = (int64_t)x->valuedouble;
            if (lcb_mul_size(numel, (size_t)t.shape[d], &numel)) { lcb_fail(err, errlen, "%s: tensor %s: shape product overflows", path, nm); goto done; }
        }
        t.numel = numel;
        size_t off[2];
        for (int k = 0; k < 2; k++) {
            cJSON *x = cJSON_GetArrayItem(jo, k);
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1.8e19 || x->valuedouble != (double)(uint64_t)x->valuedouble) {
                lcb_fail(err, errlen, "%s: tensor %s: data_offsets[%d] is not a non-negative integer", path, nm, k); goto done;
            }
            off[k] = (size_t)x->valuedouble;
        }
        size_t nbytes;
        if (lcb_mul_size(numel, st_dtype_size(t.dtype), &nbytes)) { lcb_fail(err, errlen, "%s: tensor %s: byte size overflows", path, nm); goto done; }
        if (off[1] < off[0]) { lcb_fail(err, errlen, "%s: tensor %s: data_offsets end %zu before begin %zu", path, nm, off[1], off[0]); goto done; }
        if (off[1] > data_size) {
            lcb_fail(err, errlen, "%s: tensor %s: data_offsets [%zu, %zu] past the end of the data (%zu bytes): file truncated?", path, nm, off[0], off[1], data_size);
            goto done;
        }
        if (off[1] - off[0] != nbytes) {
            lcb_fail(err, errlen, "%s: tensor %s: data_offsets span %zu bytes but dtype %s and its shape need %zu", path, nm, off[1] - off[0], jd->valuestring, nbytes);
            goto done;
        }
        t.data = data + off[0];
        t.nbytes = nbytes;
        t.shard = shard;
        t.name = strdup(nm);
        if (!t.name) { lcb_fail(err, errlen, "%s: out of memory", path); goto done; }
        spans[nspan++] = (Span){off[0], off[1], t.name};
        st->tensors[st->n_tensors++] = t;
    }
    qsort(spans, nspan, sizeof *spans, cmp_span);
    for (size_t i = 1; i < nspan; i++)
        if (spans[i].begin < spans[i - 1].end) {
            lcb_fail(err, errlen, "%s: tensors %s and %s overlap in the data area", path, spans[i - 1].name, spans[i].name);
            goto done;
        }
    rc = 0;
done:
    free(spans);
    cJSON_Delete(hdr);
    return rc;
}

static int st_open_index(StFile *st, const char *index_path, char *err, size_t errlen) {
    char *txt;
    if (lcb_read_file(index_path, &txt, NULL, err, errlen)) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!j) return lcb_fail(err, errlen, "%s: malformed JSON", index_path);
    int rc = -1;
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(wm)) { lcb_fail(err, errlen, "%s: field weight_map missing or not an object", index_path); goto out; }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0; else dir[0] = 0;
    /* distinct shard files, in order of first mention */
    for (cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) { lcb_fail(err, errlen, "%s: weight_map[\"%s\"] is not a file name", index_path, e->string ? e->string : "?"); goto out; }
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || strcmp(f, "..") == 0) { lcb_fail(err, errlen, "%s: weight_map[\"%s\"]: shard name \"%s\" must be a plain file name in the same folder", index_path, e->string, f); goto out; }
        char full[4600];
        snprintf(full, sizeof full, "%s%s", dir, f);
        int seen = 0;
        for (int s = 0; s < st->n_shards; s++) if (strcmp(st->paths[s], full) == 0) seen = 1;
        if (!seen && st_add_file(st, full, err, errlen)) goto out;
    }
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (cJSON *e = wm->child; e; e = e->next) {
        const StTensor *t = st_find(st, e->string);
        char full[4600];
        snprintf(full, sizeof full, "%s%s", dir, e->valuestring);
        if (!t) { lcb_fail(err, errlen, "%s: tensor %s is listed in weight_map but missing from %s", index_path, e->string, full); goto out; }
        if (strcmp(st->paths[t->shard], full) != 0) { lcb_fail(err, errlen, "%s: tensor %s is in %s, not in %s as weight_map says", index_path, e->string, st->paths[t->shard], full); goto out; }
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

int st_open(StFile *st, const char *path, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0) return lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (access(p, F_OK) == 0) rc = st_add_file(st, p, err, errlen);
        else {
            snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
            if (access(p, F_OK) != 0) return lcb_fail(err, errlen, "%s: no model.safetensors or model.safetensors.index.json in this folder", path);
            rc = st_open_index(st, p, err, errlen);
        }
    } else {
        size_t n = strlen(path);
        if (n > 5 && strcmp(path + n - 5, ".json") == 0) rc = st_open_index(st, path, err, errlen);
        else rc = st_add_file(st, path, err, errlen);
    }
    if (rc) { st_close(st); return -1; }
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, st->tensors[i - 1].name) == 0) {
            lcb_fail(err, errlen, "%s: tensor %s appears twice (in %s and %s)", path, st->tensors[i].name,
                     st->paths[st->tensors[i - 1].shard], st->paths[st->tensors[i].shard]);
            st_close(st);
            return -1;
        }
    return 0;
}

const StTensor *st_find(const StFile *st, const char *name) {
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

void st_close(StFile *st) {
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int s = 0; s < st->n_shards; s++) {
        munmap(st->maps[s], st->sizes[s]);
        free(st->paths[s]);
    }
    free(st->paths);
    free(st->maps);
    free(st->sizes);
    memset(st, 0, sizeof *st);
}
