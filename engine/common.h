/*
 * common.h — what every lcbench source file shares: the error convention, checked allocation
 * with per-category accounting (weights, KV cache, workspace), and small helpers (file reading,
 * a monotonic clock, starting a program).  It includes nothing of lcbench: every layer may use it.
 *
 * Error convention: a fallible function takes `char *err, size_t errlen`, returns 0 (or a
 * non-NULL pointer) on success, and on failure writes a one-line message that names the file,
 * field or argument at fault and returns -1 (or NULL).  Callers add context, never replace it.
 */
#ifndef LCB_COMMON_H
#define LCB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LCB_ERRLEN 1024

/* Write a message into err (if non-NULL) and evaluate to -1. */
int lcb_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "<prefix>: <old message>". */
void lcb_prefix(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Memory categories the engine accounts for (reported by `run` and checked by --mem-limit). */
typedef enum { LCB_MEM_WEIGHTS = 0, LCB_MEM_KV, LCB_MEM_WORK, LCB_MEM_NCAT } LcbMemCat;

/* Counted allocation: NULL (and no accounting) on failure or when the limit would be passed. */
void *lcb_alloc(LcbMemCat cat, size_t bytes);
void *lcb_calloc(LcbMemCat cat, size_t n, size_t size);
void lcb_free(LcbMemCat cat, void *p, size_t bytes);
/* Bytes held now and the peak, per category; limit 0 = none. */
size_t lcb_mem_now(LcbMemCat cat);
size_t lcb_mem_peak(LcbMemCat cat);
size_t lcb_mem_total(void);
void lcb_mem_set_limit(size_t bytes);
/* Whether the last failed lcb_alloc failed because of the limit (vs. the system). */
int lcb_mem_limit_hit(void);

/* a*b with overflow check: returns 0 and sets *out, or -1 on overflow. */
static inline int lcb_mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

/* Read a whole file; *data malloc'ed with a trailing NUL.  Returns 0 or -1 with err.  Only a
 * regular file is read: a FIFO, a folder or a device is refused by name (never waited on). */
int lcb_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen);
/* Open a regular file for reading without blocking on a FIFO (O_NONBLOCK until the file type is
 * known): the descriptor (and *size, if non-NULL), or -1 with err naming the path and what it is
 * instead (a folder, a FIFO, a symbolic link loop, ...). */
int lcb_open_regular(const char *path, size_t *size, char *err, size_t errlen);

/* exp(x) for softmax and log-sum-exp: Cephes' single-precision polynomial (about 1 ulp on
 * [-87, 88]), written without branches or library calls so that loops over it vectorise.
 * Arguments below -87.3 give ~1e-38 rather than 0, which no softmax can tell apart. */
static inline float lcb_expf(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    float y = p * r * r + r + 1.0f;
    union { uint32_t u; float f; } e = { (uint32_t)((int32_t)n + 127) << 23 };
    return y * e.f;
}

/* Seconds on a monotonic clock. */
double lcb_now(void);

/* Start a program with an argument vector, never through a shell (paths with quotes or spaces
 * stay one argument): posix_spawnp of argv[0] (PATH search) in folder cwd (NULL: ours), stdin
 * from /dev/null, stdout into the file out_path (NULL: ours, "" with capture: a pipe read into
 * capture, cut to capn - 1 bytes and NUL-terminated), stderr into err_path (NULL: ours).  Waits
 * for it.  Returns its exit status (128 + N when killed by signal N), or -1 with err when it
 * could not be started. */
int lcb_spawn(char *const argv[], const char *cwd, const char *out_path, const char *err_path, char *capture, size_t capn,
               char *err, size_t errlen);

/* An array v of *cap elements of elem bytes, n of them in use, with room for one more: v itself,
 * or v grown with realloc (capacity doubled, from first; *cap updated).  NULL when out of memory,
 * v still valid and *cap unchanged. */
void *lcb_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first);

/* mkdir -p: path and the folders above it (0777 before the umask); 0, or -1 with errno. */
int lcb_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif
#endif
