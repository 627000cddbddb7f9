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
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

/* ---- reading out of the map under a SIGBUS guard
 *
 * The data area is read through the map.  A file cut short after it was mapped (another process
 * truncating or rewriting a checkpoint while it loads) turns the read of a page past the new end
 * into SIGBUS, which would kill lcbench.  st_to_f32 is therefore the one place that reads the
 * data, and it reads under a guard: a SIGBUS handler, installed while at least one thread
 * copies (and the previous one put back after, so that nobody else's handler is lost), jumps
 * back into the copy of the thread that faulted, which fails with a message naming the file;
 * a SIGBUS in any other thread goes to the previous handler (by default: the process dies). */
static _Thread_local sigjmp_buf *bus_guard; /* set while this thread reads a mapped tensor */
static struct sigaction bus_prev;
static pthread_mutex_t bus_lock = PTHREAD_MUTEX_INITIALIZER;
static int bus_users;                       /* threads inside a guarded copy */

static void bus_handler(int sig, siginfo_t *si, void *uc) {
    if (bus_guard) siglongjmp(*bus_guard, 1);
    if (bus_prev.sa_flags & SA_SIGINFO) {
        if (bus_prev.sa_sigaction) bus_prev.sa_sigaction(sig, si, uc);
        return;
    }
    if (bus_prev.sa_handler == SIG_IGN) return;
    if (bus_prev.sa_handler != SIG_DFL) { bus_prev.sa_handler(sig); return; }
    signal(sig, SIG_DFL); /* the default action, once this handler returns */
    raise(sig);
}

static void bus_enter(void) {
    pthread_mutex_lock(&bus_lock);
    if (bus_users++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = bus_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, &bus_prev);
    }
    pthread_mutex_unlock(&bus_lock);
}

static void bus_leave(void) {
    bus_guard = NULL;
    pthread_mutex_lock(&bus_lock);
    if (--bus_users == 0) sigaction(SIGBUS, &bus_prev, NULL);
    pthread_mutex_unlock(&bus_lock);
}

int st_to_f32(const StTensor *t, float *out, char *err, size_t errlen) {
    const uint8_t *p = t->data;
    const char *path = t->path ? t->path : "safetensors";
    if (t->dtype != ST_F32 && t->dtype != ST_F64 && t->dtype != ST_BF16 && t->dtype != ST_F16)
        return lcb_fail(err, errlen, "%s: tensor %s: dtype %s is not a float type (F32, F16, BF16 expected)",
                        path, t->name, st_dtype_name(t->dtype));
    sigjmp_buf jb;
    bus_enter();
    if (sigsetjmp(jb, 1)) { /* 1: the handler's blocked SIGBUS is unblocked again */
        bus_leave();
        return lcb_fail(err, errlen, "%s: tensor %s: the file ended while its data was read (SIGBUS): "
                        "truncated or rewritten while loading?", path, t->name);
    }
    bus_guard = &jb;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, t->numel * 4); break;
    case ST_F64:
        for (size_t i = 0; i < t->numel; i++) { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; }
        break;
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = st_bf16_to_f32(h); }
        break;
    default: /* ST_F16 */
        for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = st_f16_to_f32(h); }
        break;
    }
    bus_leave();
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

typedef struct { size_t begin, end; const char *name; } Span;
static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Read exactly n bytes at offset off, or fail naming the file. */
static int st_pread(int fd, void *buf, size_t n, size_t off, const char *path, const char *what, char *err, size_t errlen) {
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return lcb_fail(err, errlen, "%s: reading the %s: %s", path, what, strerror(errno));
        if (k == 0) return lcb_fail(err, errlen, "%s: the file ended inside the %s (truncated while loading?)", path, what);
        got += (size_t)k;
    }
    return 0;
}

/* Map one file and append its tensors to st->tensors (the header is read, validated, and
 * published only when every entry lies inside the data area). */
static int st_add_file(StFile *st, const char *path, char *err, size_t errlen) {
    size_t fsize;
    int fd = lcb_open_regular(path, &fsize, err, errlen);
    if (fd < 0) return -1;
    if (fsize < 8) {
        close(fd);
        return lcb_fail(err, errlen, "%s: truncated: %zu bytes, shorter than the 8-byte header length", path, fsize);
    }
    /* The header is read (not taken from the map): only st_to_f32 reads the map, under its
     * SIGBUS guard. */
    uint8_t lenb[8];
    if (st_pread(fd, lenb, 8, 0, path, "header length", err, errlen)) { close(fd); return -1; }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenb[i];
    if (hlen > ST_MAX_HEADER || hlen > fsize - 8) {
        close(fd);
        return lcb_fail(err, errlen, "%s: header length %llu runs past the end of the file (%zu bytes): truncated or not a safetensors file",
                        path, (unsigned long long)hlen, fsize);
    }
    char *htext = malloc(hlen + 1);
    if (!htext) { close(fd); return lcb_fail(err, errlen, "%s: out of memory reading the %llu-byte header", path, (unsigned long long)hlen); }
    if (st_pread(fd, htext, hlen, 8, path, "header", err, errlen)) { free(htext); close(fd); return -1; }
    htext[hlen] = 0;
    void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) { free(htext); return lcb_fail(err, errlen, "%s: mmap failed: %s", path, strerror(errno)); }

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
        free(htext);
        munmap(map, fsize);
        return lcb_fail(err, errlen, "%s: out of memory", path);
    }
    st->paths[shard] = pcopy;
    st->maps[shard] = map;
    st->sizes[shard] = fsize;
    st->n_shards++;
    st->mapped_bytes += fsize;

    const uint8_t *data = (const uint8_t *)map + 8 + hlen;
    size_t data_size = fsize - 8 - hlen;

    cJSON *hdr = cJSON_ParseWithLength(htext, hlen);
    free(htext);
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
        t.path = pcopy;
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

/* Whether a folder entry exists at all (a dangling or looping link counts: it is there). */
static int st_entry_exists(const char *p) {
    struct stat sb;
    return lstat(p, &sb) == 0 || errno != ENOENT;
}

int st_open(StFile *st, const char *path, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0) return lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        /* an entry that exists but cannot be opened (a symbolic link loop, a FIFO, a folder) is
         * reported as what it is, not as missing */
        if (st_entry_exists(p)) rc = st_add_file(st, p, err, errlen);
        else {
            snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
            if (!st_entry_exists(p)) return lcb_fail(err, errlen, "%s: no model.safetensors or model.safetensors.index.json in this folder", path);
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
