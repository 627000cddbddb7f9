/*
 * testutil.h — shared helpers of the cmocka test programs: where fixtures live, reading files
 * and JSON, running the lcbench binary.  Tests run from the repository root (make test does).
 * Fixtures: tests/fixtures/, copied from the project's shared fixture set (see
 * tests/fixtures/README.md for provenance).
 */
#ifndef LCB_TESTUTIL_H
#define LCB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cJSON.h>
#include <sqlite3.h>

#define FIXTURES "tests/fixtures"

/* The model fixtures (tests/fixtures/README.md) that carry a reference.json. */
static const char *const tu_fixtures[] __attribute__((unused)) = {"llama_gqa", "llama_bf16", "llama_pi4", "mistral_swa", "gptneox_partial_rotary", "falcon_mqa"};

/* reference.json's input_ids, malloc'ed. */
static inline int32_t *tu_json_ids(cJSON *ref, size_t *T) {
    cJSON *a = cJSON_GetObjectItem(ref, "input_ids");
    assert_non_null(a);
    *T = cJSON_GetArraySize(a);
    int32_t *ids = malloc(*T * sizeof *ids);
    size_t i = 0;
    for (cJSON *x = a->child; x; x = x->next) ids[i++] = x->valueint;
    return ids;
}

/* Whole file into a NUL-terminated malloc'ed buffer; fails the test if unreadable. */
static inline char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static inline cJSON *tu_read_json(const char *path) {
    char *s = tu_read_file(path, NULL);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j) fail_msg("malformed JSON in %s", path);
    return j;
}

static inline void tu_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A fresh scratch directory under /tmp for this test program. */
static inline const char *tu_tmpdir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/lcbtest.XXXXXX");
        if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    }
    return dir;
}

/* Runs a shell command, captures stdout+stderr into *out (malloc'ed), returns exit status. */
static inline int tu_run(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) fail_msg("popen failed: %s", cmd);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf; else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static inline const char *tu_lcbench(void) {
    const char *b = getenv("LCBENCH");
    return b ? b : "build/lcbench";
}

/* The first column of the first row of a query on a results file opened read-only, or -1 (the
 * file or the query failed, or no row). */
/* The first column of the first row as text (malloc'd; NULL for none, a NULL value or an error). */
static inline char *tu_db_text(const char *db, const char *sql) {
    sqlite3 *h;
    sqlite3_stmt *q;
    char *out = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) { sqlite3_close(h); return NULL; }
    sqlite3_busy_timeout(h, 5000);
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
        out = strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(h);
    return out;
}

static inline int64_t tu_db_int(const char *db, const char *sql) {
    sqlite3 *h;
    sqlite3_stmt *q;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) { sqlite3_close(h); return -1; }
    sqlite3_busy_timeout(h, 5000);
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
    return v;
}

#endif
