/*
 * common.h — what every lcbench source file shares: the error convention, checked allocation
 * with per-category accounting (weights, KV cache, workspace), and small helpers.
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
/* realloc of a counted block; old_bytes is what it was allocated with. */
void *lcb_realloc(LcbMemCat cat, void *p, size_t old_bytes, size_t new_bytes);
void lcb_free(LcbMemCat cat, void *p, size_t bytes);
/* Bytes held now and the peak, per category; limit 0 = none. */
size_t lcb_mem_now(LcbMemCat cat);
size_t lcb_mem_peak(LcbMemCat cat);
size_t lcb_mem_total(void);
void lcb_mem_set_limit(size_t bytes);
size_t lcb_mem_limit(void);
/* Whether the last failed lcb_alloc failed because of the limit (vs. the system). */
int lcb_mem_limit_hit(void);

/* a*b with overflow check: returns 0 and sets *out, or -1 on overflow. */
static inline int lcb_mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

/* Read a whole file; *data malloc'ed with a trailing NUL.  Returns 0 or -1 with err. */
int lcb_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen);

/* Seconds on a monotonic clock. */
double lcb_now(void);

#endif
