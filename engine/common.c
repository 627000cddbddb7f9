/*
 * common.c — the error helpers and the counting allocator shared by the whole engine.
 * The allocator exists so that lcbench can report weights / KV / workspace bytes apart and
 * enforce --mem-limit; it is a thin wrapper over malloc with atomic counters.
 */
#include "engine/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int lcb_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void lcb_prefix(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    char old[LCB_ERRLEN], pre[LCB_ERRLEN];
    snprintf(old, sizeof old, "%s", err);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", pre, old);
}

static size_t mem_now[LCB_MEM_NCAT], mem_peak[LCB_MEM_NCAT], mem_limit;
static int limit_hit;

static int mem_reserve(LcbMemCat cat, size_t bytes) {
    size_t total;
    #pragma omp critical(lcb_mem)
    {
        total = lcb_mem_total();
        if (mem_limit && (bytes > mem_limit || total > mem_limit - bytes)) {
            limit_hit = 1;
            total = SIZE_MAX;
        } else {
            mem_now[cat] += bytes;
            if (mem_now[cat] > mem_peak[cat]) mem_peak[cat] = mem_now[cat];
        }
    }
    return total == SIZE_MAX ? -1 : 0;
}

static void mem_release(LcbMemCat cat, size_t bytes) {
    #pragma omp critical(lcb_mem)
    mem_now[cat] = mem_now[cat] >= bytes ? mem_now[cat] - bytes : 0;
}

void *lcb_alloc(LcbMemCat cat, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (mem_reserve(cat, bytes)) return NULL;
    limit_hit = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes)) p = NULL;
    if (!p) mem_release(cat, bytes);
    return p;
}

void *lcb_calloc(LcbMemCat cat, size_t n, size_t size) {
    size_t bytes;
    if (lcb_mul_size(n, size, &bytes)) return NULL;
    void *p = lcb_alloc(cat, bytes);
    if (p) memset(p, 0, bytes ? bytes : 1);
    return p;
}

void *lcb_realloc(LcbMemCat cat, void *p, size_t old_bytes, size_t new_bytes) {
    void *q = lcb_alloc(cat, new_bytes);
    if (!q) return NULL;
    if (p) {
        memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
        lcb_free(cat, p, old_bytes);
    }
    return q;
}

void lcb_free(LcbMemCat cat, void *p, size_t bytes) {
    if (!p) return;
    free(p);
    mem_release(cat, bytes ? bytes : 1);
}

size_t lcb_mem_now(LcbMemCat cat) { return mem_now[cat]; }
size_t lcb_mem_peak(LcbMemCat cat) { return mem_peak[cat]; }
size_t lcb_mem_total(void) {
    size_t t = 0;
    for (int i = 0; i < LCB_MEM_NCAT; i++) t += mem_now[i];
    return t;
}
void lcb_mem_set_limit(size_t bytes) { mem_limit = bytes; }
size_t lcb_mem_limit(void) { return mem_limit; }
int lcb_mem_limit_hit(void) { return limit_hit; }

int lcb_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return lcb_fail(err, errlen, "%s: cannot seek", path); }
    long n = ftell(f);
    if (n < 0) { fclose(f); return lcb_fail(err, errlen, "%s: not a regular file", path); }
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf) { fclose(f); return lcb_fail(err, errlen, "%s: out of memory reading %ld bytes", path, n); }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf); fclose(f);
        return lcb_fail(err, errlen, "%s: read error", path);
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    if (len) *len = (size_t)n;
    return 0;
}

double lcb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
