/*
 * gguf.c — the GGUF reader (format in gguf.h).  The header is read through a small cursor that
 * checks each read against the bytes left in the file before it happens, so a length or count
 * is compared with what the file can hold before anything is allocated from it; the tensor data
 * is read with pread on demand.  Nothing is mapped: a file cut short after it was opened gives an
 * error naming it, not a SIGBUS.
 */
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_NAME 4096        /* tensor names (ggml's own limit is 64) */
#define GGUF_MAX_KEY 65536

/* ---------------------------------------------------------------- cursor over the header */

typedef struct {
    const char *src;
    int fd;                       /* >= 0: read with pread; else from mem */
    const uint8_t *mem;
    uint64_t size, pos;
    uint8_t buf[1 << 16];         /* read-ahead window of the file: [buf_at, buf_at + buf_n) */
    uint64_t buf_at, buf_n;
    char *err;
    size_t errlen;
} Cur;

static int cur_read(Cur *c, void *dst, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return lcb_fail(c->err, c->errlen, "%s: %s: %llu bytes needed at offset %llu, but the file has %llu: truncated or a lying length",
                        c->src, what, (unsigned long long)n, (unsigned long long)c->pos, (unsigned long long)c->size);
    if (c->fd < 0) { memcpy(dst, c->mem + c->pos, n); c->pos += n; return 0; }
    uint8_t *d = dst;
    while (n) {
        if (c->pos >= c->buf_at && c->pos < c->buf_at + c->buf_n) {
            uint64_t k = c->buf_at + c->buf_n - c->pos;
            if (k > n) k = n;
            memcpy(d, c->buf + (c->pos - c->buf_at), k);
            d += k; c->pos += k; n -= k;
            continue;
        }
        uint64_t want = c->size - c->pos < sizeof c->buf ? c->size - c->pos : sizeof c->buf;
        ssize_t r = pread(c->fd, c->buf, want, (off_t)c->pos);
        if (r <= 0)
            return lcb_fail(c->err, c->errlen, "%s: %s: read at offset %llu failed: %s", c->src, what, (unsigned long long)c->pos,
                            r < 0 ? strerror(errno) : "file shorter than when it was opened");
        c->buf_at = c->pos;
        c->buf_n = (uint64_t)r;
    }
    return 0;
}

static int cur_u32(Cur *c, uint32_t *v, const char *what) {
    uint8_t b[4];
    if (cur_read(c, b, 4, what)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int cur_u64(Cur *c, uint64_t *v, const char *what) {
    uint8_t b[8];
    if (cur_read(c, b, 8, what)) return -1;
    *v = 0;
    for (int i = 7; i >= 0; i--) *v = *v << 8 | b[i];
    return 0;
}

/* A GGUF string: u64 length (at most `maxlen` and what the file holds), then the bytes.
 * Returned NUL-terminated, malloc'ed. */
static char *cur_str(Cur *c, uint64_t maxlen, uint64_t *len_out, const char *what) {
    uint64_t n;
    if (cur_u64(c, &n, what)) return NULL;
    if (n > c->size - c->pos) {
        lcb_fail(c->err, c->errlen, "%s: %s: string length %llu at offset %llu runs past the end of the file (%llu bytes)",
                 c->src, what, (unsigned long long)n, (unsigned long long)(c->pos - 8), (unsigned long long)c->size);
        return NULL;
    }
    if (n > maxlen) {
        lcb_fail(c->err, c->errlen, "%s: %s: string length %llu exceeds the limit %llu", c->src, what, (unsigned long long)n, (unsigned long long)maxlen);
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) { lcb_fail(c->err, c->errlen, "%s: %s: out of memory for a %llu-byte string", c->src, what, (unsigned long long)n); return NULL; }
    if (cur_read(c, s, n, what)) { free(s); return NULL; }
    s[n] = 0;
    if (len_out) *len_out = n;
    return s;
}

/* ---------------------------------------------------------------- values */

static const char *type_names[GGUF_NTYPES] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                              "bool", "string", "array", "uint64", "int64", "float64"};
static const uint8_t type_sizes[GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_type_name(GgufType t) { return (unsigned)t < GGUF_NTYPES ? type_names[t] : "unknown"; }

static int is_int_type(GgufType t) {
    return t == GGUF_UINT8 || t == GGUF_INT8 || t == GGUF_UINT16 || t == GGUF_INT16 || t == GGUF_UINT32 ||
           t == GGUF_INT32 || t == GGUF_UINT64 || t == GGUF_INT64;
}

/* Decode a little-endian scalar of numeric type t from b into kv->v. */
static void set_scalar(GgufKV *kv, GgufType t, const uint8_t *b) {
    uint64_t u = 0;
    for (int i = type_sizes[t] - 1; i >= 0; i--) u = u << 8 | b[i];
    switch (t) {
    case GGUF_INT8: kv->v.i = (int8_t)u; break;
    case GGUF_INT16: kv->v.i = (int16_t)u; break;
    case GGUF_INT32: kv->v.i = (int32_t)u; break;
    case GGUF_INT64: kv->v.i = (int64_t)u; break;
    case GGUF_FLOAT32: { uint32_t w = (uint32_t)u; float f; memcpy(&f, &w, 4); kv->v.f = f; break; }
    case GGUF_FLOAT64: { double f; memcpy(&f, &u, 8); kv->v.f = f; break; }
    default: kv->v.u = u; break;
    }
}

static void kv_free(GgufKV *kv) {
    free(kv->key);
    free(kv->str);
    if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING && kv->arr)
        for (uint64_t i = 0; i < kv->n; i++) free(((char **)kv->arr)[i]);
    free(kv->arr);
    free(kv->arr_len);
}

static int read_kv(Cur *c, GgufKV *kv, uint64_t idx) {
    char what[160];
    snprintf(what, sizeof what, "metadata entry %llu key", (unsigned long long)idx);
    if (!(kv->key = cur_str(c, GGUF_MAX_KEY, NULL, what))) return -1;
    snprintf(what, sizeof what, "metadata %s: value type", kv->key);
    uint32_t t;
    if (cur_u32(c, &t, what)) return -1;
    if (t >= GGUF_NTYPES) return lcb_fail(c->err, c->errlen, "%s: metadata %s: unknown value type %u", c->src, kv->key, t);
    kv->type = (GgufType)t;
    kv->n = 1;
    snprintf(what, sizeof what, "metadata %s (%s)", kv->key, type_names[t]);
    if (t == GGUF_STRING) return (kv->str = cur_str(c, UINT64_MAX, &kv->str_len, what)) ? 0 : -1;
    if (t != GGUF_ARRAY) {
        uint8_t b[8];
        if (cur_read(c, b, type_sizes[t], what)) return -1;
        set_scalar(kv, kv->type, b);
        if (t == GGUF_BOOL && b[0] > 1) return lcb_fail(c->err, c->errlen, "%s: metadata %s: bool value %u is not 0 or 1", c->src, kv->key, b[0]);
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, &et, what) || cur_u64(c, &n, what)) return -1;
    if (et >= GGUF_NTYPES) return lcb_fail(c->err, c->errlen, "%s: metadata %s: array of unknown element type %u", c->src, kv->key, et);
    if (et == GGUF_ARRAY) return lcb_fail(c->err, c->errlen, "%s: metadata %s: arrays of arrays are not supported", c->src, kv->key);
    kv->arr_type = (GgufType)et;
    uint64_t left = c->size - c->pos;
    /* each element takes at least its size on file (a string its 8-byte length) */
    uint64_t least = et == GGUF_STRING ? 8 : type_sizes[et];
    if (n > left / least)
        return lcb_fail(c->err, c->errlen, "%s: metadata %s: array count %llu of %s cannot fit in the %llu bytes left in the file",
                        c->src, kv->key, (unsigned long long)n, type_names[et], (unsigned long long)left);
    kv->n = n;
    if (et == GGUF_STRING) {
        char **a = calloc(n ? n : 1, sizeof *a);
        uint64_t *len = calloc(n ? n : 1, sizeof *len);
        kv->arr = a;
        kv->arr_len = len;
        if (!a || !len) return lcb_fail(c->err, c->errlen, "%s: metadata %s: out of memory for %llu strings", c->src, kv->key, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            snprintf(what, sizeof what, "metadata %s[%llu]", kv->key, (unsigned long long)i);
            if (!(a[i] = cur_str(c, UINT64_MAX, &len[i], what))) return -1;
        }
        return 0;
    }
    size_t es = type_sizes[et];
    uint8_t *a = malloc(n ? n * es : 1);
    kv->arr = a;
    if (!a) return lcb_fail(c->err, c->errlen, "%s: metadata %s: out of memory for %llu elements", c->src, kv->key, (unsigned long long)n);
    if (cur_read(c, a, n * es, what)) return -1;
    /* to host order (a no-op on little-endian hosts, kept for clarity) */
    for (uint64_t i = 0; i < n && es > 1; i++) {
        uint64_t u = 0;
        for (int k = (int)es - 1; k >= 0; k--) u = u << 8 | a[i * es + k];
        switch (es) {
        case 2: { uint16_t w = (uint16_t)u; memcpy(a + i * es, &w, 2); break; }
        case 4: { uint32_t w = (uint32_t)u; memcpy(a + i * es, &w, 4); break; }
        default: memcpy(a + i * es, &u, 8); break;
        }
    }
    if (et == GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (a[i] > 1) return lcb_fail(c->err, c->errlen, "%s: metadata %s[%llu]: bool value %u is not 0 or 1", c->src, kv->key, (unsigned long long)i, a[i]);
    return 0;
}

/* ---------------------------------------------------------------- the file */

typedef struct { uint64_t begin, end; size_t idx; } Span;
static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int gguf_parse(GgufFile *g, Cur *c) {
    uint8_t magic[4];
    if (cur_read(c, magic, 4, "magic")) return -1;
    if (memcmp(magic, "GGUF", 4)) return lcb_fail(c->err, c->errlen, "%s: not a GGUF file (magic %02x %02x %02x %02x, \"GGUF\" expected)", c->src, magic[0], magic[1], magic[2], magic[3]);
    if (cur_u32(c, &g->version, "version")) return -1;
    if (g->version == 1) return lcb_fail(c->err, c->errlen, "%s: GGUF version 1 (32-bit counts) is not supported; versions 2 and 3 are: re-convert the file", c->src);
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && (g->version >> 24) >= 2 && (g->version >> 24) <= 3)
            return lcb_fail(c->err, c->errlen, "%s: version field %u: a big-endian GGUF file; only little-endian files are supported", c->src, g->version);
        return lcb_fail(c->err, c->errlen, "%s: GGUF version %u is not supported (2 and 3 are)", c->src, g->version);
    }
    if (cur_u64(c, &g->n_tensors, "tensor count") || cur_u64(c, &g->n_kv, "metadata count")) return -1;
    uint64_t left = c->size - c->pos;
    /* a key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info 8 + 4 + 8 + 4 + 8 */
    if (g->n_kv > left / 13)
        return lcb_fail(c->err, c->errlen, "%s: metadata count %llu cannot fit in the %llu bytes left in the file", c->src, (unsigned long long)g->n_kv, (unsigned long long)left);
    if (g->n_tensors > left / 32)
        return lcb_fail(c->err, c->errlen, "%s: tensor count %llu cannot fit in the %llu bytes left in the file", c->src, (unsigned long long)g->n_tensors, (unsigned long long)left);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv) return lcb_fail(c->err, c->errlen, "%s: out of memory for %llu metadata entries", c->src, (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        /* entries are zeroed (calloc): gguf_close frees a partly read one and skips the rest */
        if (read_kv(c, &g->kv[i], i)) return -1;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->kv[j].key, g->kv[i].key)) return lcb_fail(c->err, c->errlen, "%s: metadata key %s appears twice", c->src, g->kv[i].key);
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *al = gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_UINT32) return lcb_fail(c->err, c->errlen, "%s: general.alignment has type %s; uint32 expected", c->src, type_names[al->type]);
        if (al->v.u == 0 || (al->v.u & (al->v.u - 1)))
            return lcb_fail(c->err, c->errlen, "%s: general.alignment = %llu is not a power of two", c->src, (unsigned long long)al->v.u);
        g->alignment = al->v.u;
    }
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors) return lcb_fail(c->err, c->errlen, "%s: out of memory for %llu tensor infos", c->src, (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        GgufTensor *t = &g->tensors[i];
        char what[GGUF_MAX_NAME + 64];
        snprintf(what, sizeof what, "tensor info %llu name", (unsigned long long)i);
        if (!(t->name = cur_str(c, GGUF_MAX_NAME, NULL, what))) return -1;
        uint32_t nd;
        snprintf(what, sizeof what, "tensor %s: n_dims", t->name);
        if (cur_u32(c, &nd, what)) return -1;
        if (nd < 1 || nd > GGUF_MAX_DIMS) return lcb_fail(c->err, c->errlen, "%s: tensor %s: n_dims = %u (1 to %d)", c->src, t->name, nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t numel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (int d = 0; d < (int)nd; d++) {
            uint64_t ne;
            snprintf(what, sizeof what, "tensor %s: ne[%d]", t->name, d);
            if (cur_u64(c, &ne, what)) return -1;
            if (ne == 0 || ne > (uint64_t)INT64_MAX) return lcb_fail(c->err, c->errlen, "%s: tensor %s: ne[%d] = %llu (must be in 1 .. 2^63-1)", c->src, t->name, d, (unsigned long long)ne);
            if (numel > UINT64_MAX / ne || numel * ne > (uint64_t)INT64_MAX)
                return lcb_fail(c->err, c->errlen, "%s: tensor %s: the element count overflows at ne[%d] = %llu", c->src, t->name, d, (unsigned long long)ne);
            numel *= ne;
            t->ne[d] = (int64_t)ne;
        }
        t->numel = numel;
        snprintf(what, sizeof what, "tensor %s: type", t->name);
        if (cur_u32(c, &t->type, what)) return -1;
        if (!quant_type_name(t->type)) return lcb_fail(c->err, c->errlen, "%s: tensor %s: unknown ggml type id %u", c->src, t->name, t->type);
        int bs = quant_block_size(t->type);
        if (t->ne[0] % bs)
            return lcb_fail(c->err, c->errlen, "%s: tensor %s: ne[0] = %lld is not a multiple of the %s block size %d", c->src, t->name, (long long)t->ne[0], quant_type_name(t->type), bs);
        if (quant_row_bytes(t->type, numel, &t->nbytes))
            return lcb_fail(c->err, c->errlen, "%s: tensor %s: byte size of %llu %s values overflows", c->src, t->name, (unsigned long long)numel, quant_type_name(t->type));
        snprintf(what, sizeof what, "tensor %s: offset", t->name);
        if (cur_u64(c, &t->offset, what)) return -1;
        if (t->offset % g->alignment)
            return lcb_fail(c->err, c->errlen, "%s: tensor %s: offset %llu is not a multiple of the alignment %llu", c->src, t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->tensors[j].name, t->name)) return lcb_fail(c->err, c->errlen, "%s: tensor %s appears twice", c->src, t->name);
    }
    /* the data area starts at the next multiple of the alignment */
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    if (pad > c->size - c->pos && g->n_tensors)
        return lcb_fail(c->err, c->errlen, "%s: the data area (aligned to %llu) starts past the end of the file (%llu bytes): truncated",
                        c->src, (unsigned long long)g->alignment, (unsigned long long)c->size);
    g->data_offset = c->pos + pad;
    uint64_t data_size = c->size >= g->data_offset ? c->size - g->data_offset : 0;
    Span *sp = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *sp);
    if (!sp) return lcb_fail(c->err, c->errlen, "%s: out of memory", c->src);
    int rc = 0;
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const GgufTensor *t = &g->tensors[i];
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            rc = lcb_fail(c->err, c->errlen, "%s: tensor %s: data [%llu, +%llu) runs past the end of the data area (%llu bytes): truncated or a lying offset",
                          c->src, t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes, (unsigned long long)data_size);
        sp[i] = (Span){t->offset, t->offset + t->nbytes, i};
    }
    if (!rc) {
        qsort(sp, g->n_tensors, sizeof *sp, cmp_span);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (sp[i].begin < sp[i - 1].end) {
                rc = lcb_fail(c->err, c->errlen, "%s: tensors %s and %s overlap in the data area", c->src, g->tensors[sp[i - 1].idx].name, g->tensors[sp[i].idx].name);
                break;
            }
    }
    free(sp);
    return rc;
}

int gguf_is_gguf(const char *path) {
    struct stat st0;
    if (stat(path, &st0) != 0 || !S_ISREG(st0.st_mode)) return 0; /* a FIFO would block open() */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return 0;
    struct stat sb;
    char m[4];
    int ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && pread(fd, m, 4, 0) == 4 && !memcmp(m, "GGUF", 4);
    close(fd);
    return ok;
}

int gguf_open(GgufFile *g, const char *path, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    g->fd = -1;
    snprintf(g->path, sizeof g->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) { close(fd); return lcb_fail(err, errlen, "%s: not a regular file", path); }
    g->fd = fd;
    g->file_size = (uint64_t)sb.st_size;
    Cur *c = calloc(1, sizeof *c);
    if (!c) { gguf_close(g); return lcb_fail(err, errlen, "%s: out of memory", path); }
    *c = (Cur){.src = g->path, .fd = fd, .size = g->file_size, .err = err, .errlen = errlen};
    int rc = gguf_parse(g, c);
    free(c);
    if (rc) { gguf_close(g); return -1; }
    return 0;
}

int gguf_parse_buffer(GgufFile *g, const uint8_t *data, size_t size, const char *name, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    g->fd = -1;
    snprintf(g->path, sizeof g->path, "%s", name);
    g->file_size = size;
    Cur *c = calloc(1, sizeof *c);
    if (!c) return lcb_fail(err, errlen, "%s: out of memory", name);
    *c = (Cur){.src = g->path, .fd = -1, .mem = data, .size = size, .err = err, .errlen = errlen};
    int rc = gguf_parse(g, c);
    free(c);
    if (rc) { gguf_close(g); return -1; }
    return 0;
}

void gguf_close(GgufFile *g) {
    if (g->kv) for (uint64_t i = 0; i < g->n_kv; i++) kv_free(&g->kv[i]); /* zeroed past a failed read */
    free(g->kv);
    if (g->tensors) for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->fd >= 0) close(g->fd);
    memset(g, 0, sizeof *g);
    g->fd = -1;
}

const GgufKV *gguf_find(const GgufFile *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const GgufTensor *gguf_find_tensor(const GgufFile *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- typed getters */

int gguf_get_int(const GgufFile *g, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen) {
    const GgufKV *kv = gguf_find(g, key);
    *out = def;
    if (!kv) return 0;
    if (!is_int_type(kv->type)) return lcb_fail(err, errlen, "%s: metadata %s has type %s; an integer expected", g->path, key, type_names[kv->type]);
    int is_signed = kv->type == GGUF_INT8 || kv->type == GGUF_INT16 || kv->type == GGUF_INT32 || kv->type == GGUF_INT64;
    if (!is_signed && kv->v.u > (uint64_t)INT64_MAX)
        return lcb_fail(err, errlen, "%s: metadata %s = %llu is out of range [%lld, %lld]", g->path, key, (unsigned long long)kv->v.u, (long long)lo, (long long)hi);
    int64_t v = is_signed ? kv->v.i : (int64_t)kv->v.u;
    if (v < lo || v > hi) return lcb_fail(err, errlen, "%s: metadata %s = %lld is out of range [%lld, %lld]", g->path, key, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int gguf_get_float(const GgufFile *g, const char *key, double def, double *out, char *err, size_t errlen) {
    const GgufKV *kv = gguf_find(g, key);
    *out = def;
    if (!kv) return 0;
    if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64) *out = kv->v.f;
    else if (is_int_type(kv->type)) {
        int64_t v;
        if (gguf_get_int(g, key, 0, INT64_MIN, INT64_MAX, &v, err, errlen)) return -1;
        *out = (double)v;
    } else return lcb_fail(err, errlen, "%s: metadata %s has type %s; a number expected", g->path, key, type_names[kv->type]);
    if (*out != *out || *out - *out != 0) return lcb_fail(err, errlen, "%s: metadata %s is not a finite number", g->path, key);
    return 0;
}

int gguf_get_bool(const GgufFile *g, const char *key, int def, int *out, char *err, size_t errlen) {
    const GgufKV *kv = gguf_find(g, key);
    *out = def;
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) return lcb_fail(err, errlen, "%s: metadata %s has type %s; bool expected", g->path, key, type_names[kv->type]);
    *out = kv->v.u != 0;
    return 0;
}

int gguf_get_str(const GgufFile *g, const char *key, const char *def, const char **out, char *err, size_t errlen) {
    const GgufKV *kv = gguf_find(g, key);
    *out = def;
    if (!kv) return 0;
    if (kv->type != GGUF_STRING) return lcb_fail(err, errlen, "%s: metadata %s has type %s; string expected", g->path, key, type_names[kv->type]);
    *out = kv->str;
    return 0;
}

int gguf_get_arr(const GgufFile *g, const char *key, int elem, const GgufKV **out, char *err, size_t errlen) {
    const GgufKV *kv = gguf_find(g, key);
    *out = NULL;
    if (!kv) return 0;
    if (kv->type != GGUF_ARRAY) return lcb_fail(err, errlen, "%s: metadata %s has type %s; an array expected", g->path, key, type_names[kv->type]);
    if (elem >= 0 && kv->arr_type != (GgufType)elem)
        return lcb_fail(err, errlen, "%s: metadata %s is an array of %s; of %s expected", g->path, key, type_names[kv->arr_type], type_names[elem]);
    *out = kv;
    return 0;
}

/* ---------------------------------------------------------------- tensor data */

int gguf_read_tensor(const GgufFile *g, const GgufTensor *t, void *dst, char *err, size_t errlen) {
    if (g->fd < 0) return lcb_fail(err, errlen, "%s: tensor %s: the file is not open for reading", g->path, t->name);
    uint8_t *d = dst;
    uint64_t off = g->data_offset + t->offset, n = t->nbytes;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = pread(g->fd, d, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return lcb_fail(err, errlen, "%s: tensor %s: reading %llu bytes at offset %llu failed: %s", g->path, t->name,
                            (unsigned long long)n, (unsigned long long)off, r < 0 ? strerror(errno) : "the file is shorter than when it was opened");
        d += r; off += (uint64_t)r; n -= (uint64_t)r;
    }
    return 0;
}

int gguf_read_f32(const GgufFile *g, const GgufTensor *t, float *dst, char *err, size_t errlen) {
    if (!quant_supported(t->type))
        return lcb_fail(err, errlen, "%s: tensor %s has type %s, which lcbench cannot dequantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                        g->path, t->name, quant_type_name(t->type));
    if (t->type == QT_F32) return gguf_read_tensor(g, t, dst, err, errlen);
    void *raw = malloc(t->nbytes ? t->nbytes : 1);
    if (!raw) return lcb_fail(err, errlen, "%s: tensor %s: out of memory (%llu bytes)", g->path, t->name, (unsigned long long)t->nbytes);
    int rc = gguf_read_tensor(g, t, raw, err, errlen);
    if (!rc && quant_dequantize(t->type, raw, dst, t->numel, err, errlen)) {
        lcb_prefix(err, errlen, "%s: tensor %s", g->path, t->name);
        rc = -1;
    }
    free(raw);
    return rc;
}

/* ---------------------------------------------------------------- sizes per type */

uint64_t gguf_bytes_by_type(const GgufFile *g, uint64_t *bytes, size_t n) {
    uint64_t total = 0;
    if (bytes) memset(bytes, 0, n * sizeof *bytes);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        total += t->nbytes;
        if (bytes && n) bytes[t->type < n ? t->type : n - 1] += t->nbytes;
    }
    return total;
}

void gguf_type_summary(const GgufFile *g, char *out, size_t outlen) {
    uint64_t count[QT_COUNT + 1] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++) count[g->tensors[i].type <= QT_COUNT ? g->tensors[i].type : QT_COUNT]++;
    size_t k = 0;
    out[0] = 0;
    for (;;) {
        int best = -1;
        for (int t = 0; t <= QT_COUNT; t++)
            if (count[t] && (best < 0 || count[t] > count[best])) best = t;
        if (best < 0) break;
        int w = snprintf(out + k, k < outlen ? outlen - k : 0, "%s%s %llu", k ? ", " : "", quant_type_name(best) ? quant_type_name(best) : "?",
                         (unsigned long long)count[best]);
        if (w < 0 || k + (size_t)w >= outlen) break;
        k += (size_t)w;
        count[best] = 0;
    }
}

int gguf_weight_bytes(const char *path, uint64_t *total, char *types, size_t types_len, char *err, size_t errlen) {
    GgufFile g;
    if (gguf_open(&g, path, err, errlen)) return -1;
    *total = gguf_bytes_by_type(&g, NULL, 0);
    if (types && types_len) gguf_type_summary(&g, types, types_len);
    gguf_close(&g);
    return 0;
}
