/*
 * test_gguf.c — GGUF files (engine/gguf.c, engine/quant.c, engine/gguf_model.c,
 * engine/gguf_tokenizer.c).
 *
 *  - every block type by round trip (quantize, dequantize, error within the type's bound) and
 *    block by block against gguf-py's dequantization (tests/fixtures/gguf/quant_ref.json);
 *  - the reader: every metadata type read back; hostile files (truncated at every byte, lying
 *    counts, lengths and offsets, unknown types, huge n_dims, bad alignment, overlaps, versions)
 *    refused with a message naming the field;
 *  - models: each HF fixture written here as GGUF the way convert_hf_to_gguf.py writes it (Llama
 *    Q/K rows permuted, NeoX QKV regrouped) in F32, F16, BF16 and each block type, scored
 *    against the HF folder: F32 identical, F16/BF16 within 1e-3, block types within a stated
 *    bound;
 *  - the files llama.cpp's own tools made (tests/fixtures/gguf/, README there): the same checks,
 *    and their tokenizers against tokenizer.json.
 */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/sha256.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/gguf.h"
#include "engine/gguf_model.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/safetensors.h"
#include "engine/tokenizer.h"
#include "harness/run/run.h"
#include "strategies/strategy.h"
#include <sqlite3.h>

#define LCB_FUZZ_NO_MAIN
#include "tests/fuzz/fuzz_gguf.c"
#include <dirent.h>

#define GGUF_FIXTURES FIXTURES "/gguf"


static const uint32_t all_types[] = {QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#define N_OF(a) (sizeof (a) / sizeof *(a))

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double rng_u(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) * 0x1.0p-53;
}
static float rng_normal(void) { return (float)(sqrt(-2 * log(rng_u())) * cos(2 * M_PI * rng_u())); }

/* ================================================================ block types */

/* The worst error of round to nearest: half a step of the block's (or sub-block's) scale,
 * plus the rounding of that scale to fp16 and, for the K types, to 6 bits (K: up to a step of
 * the 6-bit scale grid over the sub-block's range).  Bounds relative to the block's max |x|. */
static double rt_bound(uint32_t t) {
    switch (t) {
    case QT_F16: return 1e-3;    /* 2^-11 relative */
    case QT_BF16: return 4e-3;   /* 2^-8 relative */
    case QT_Q8_0: return 0.5 / 127 * 1.01 + 1e-3;
    case QT_Q4_0: return 1.0 / 8 * 0.5 * 1.01 + 1e-3 + 1.0 / 8;  /* asymmetric: -8..7 steps, the top clamps by one */
    case QT_Q5_0: return 1.0 / 16 * 0.5 * 1.01 + 1e-3 + 1.0 / 16;
    case QT_Q4_1: return 2.0 / 15 * 0.5 * 1.01 + 2e-3;
    case QT_Q5_1: return 2.0 / 31 * 0.5 * 1.01 + 2e-3;
    case QT_Q4_K: return 2.0 / 15 * 0.5 + 2.0 / 63 + 2e-3;
    case QT_Q5_K: return 2.0 / 31 * 0.5 + 2.0 / 63 + 2e-3;
    case QT_Q6_K: return 1.0 / 31 * 0.5 + 1.0 / 127 * 1.5 + 2e-3;
    default: return 0;
    }
}

static void test_round_trip(void **state) {
    char err[LCB_ERRLEN];
    const size_t n = 256 * 64;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    uint8_t *q = malloc(n * 4);
    for (size_t ti = 0; ti < N_OF(all_types); ti++) {
        uint32_t t = all_types[ti];
        for (int dist = 0; dist < 3; dist++) {
            /* normal, uniform positive (tests the min of Q4_1/Q5_1/K), and blocks with outliers */
            for (size_t i = 0; i < n; i++) {
                x[i] = dist == 0 ? rng_normal() : dist == 1 ? (float)(rng_u() * 3 + 0.5) : rng_normal() * (i % 97 == 0 ? 20.f : 1.f);
                if (dist == 0 && i >= n - 256) x[i] = 0; /* an all-zero block: scale 0 */
            }
            uint64_t bytes;
            assert_int_equal(quant_row_bytes(t, n, &bytes), 0);
            memset(q, 0xa5, n * 4);
            if (quant_quantize(t, x, q, n, err, sizeof err)) fail_msg("%s: %s", quant_type_name(t), err);
            if (quant_dequantize(t, q, y, n, err, sizeof err)) fail_msg("%s: %s", quant_type_name(t), err);
            int bs = t == QT_F32 || t == QT_F16 || t == QT_BF16 ? 32 : quant_block_size(t);
            double worst = 0;
            for (size_t b = 0; b < n / bs; b++) {
                double amax = 0, e = 0;
                for (int j = 0; j < bs; j++) amax = fmax(amax, fabs(x[b * bs + j]));
                for (int j = 0; j < bs; j++) e = fmax(e, fabs(y[b * bs + j] - x[b * bs + j]));
                double rel = amax > 0 ? e / amax : e;
                if (amax == 0 && e != 0) fail_msg("%s: an all-zero block came back non-zero (%g)", quant_type_name(t), e);
                if (rel > worst) worst = rel;
            }
            if (t == QT_F32 && worst != 0) fail_msg("F32 round trip is not exact");
            if (worst > rt_bound(t)) fail_msg("%s (distribution %d): max |dequant(quant(x)) - x| / max|x| per block = %g > bound %g", quant_type_name(t), dist, worst, rt_bound(t));
            if (dist == 0) print_message("round trip %-5s max err / block amax %.4f (bound %.4f)\n", quant_type_name(t), worst, rt_bound(t));
        }
    }
    /* lengths that are not whole blocks */
    assert_int_not_equal(quant_dequantize(QT_Q4_K, q, y, 100, err, sizeof err), 0);
    assert_non_null(strstr(err, "block"));
    assert_int_not_equal(quant_dequantize(QT_Q2_K, q, y, 256, err, sizeof err), 0);
    assert_non_null(strstr(err, "Q2_K"));
    free(x); free(y); free(q);
}

static void test_half_conversions(void **state) {
    /* every fp16 bit pattern survives f16 -> f32 -> f16 (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        uint16_t back = quant_f32_to_f16(f);
        if (isnan(f)) { assert_true(isnan(quant_f16_to_f32(back))); continue; }
        if (back != h) fail_msg("f16 0x%04x -> %g -> 0x%04x", h, f, back);
        assert_true(quant_f16_to_f32((uint16_t)h) == st_f16_to_f32((uint16_t)h)); /* the safetensors reader agrees */
    }
    /* rounding to nearest even, overflow, the subnormal range */
    assert_int_equal(quant_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);          /* tie: down to even */
    assert_int_equal(quant_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);      /* tie: up to even */
    assert_int_equal(quant_f32_to_f16(65520.f), 0x7c00);
    assert_int_equal(quant_f32_to_f16(65519.f), 0x7bff);
    assert_int_equal(quant_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(quant_f32_to_f16(0x1p-25f), 0x0000);                 /* tie to even 0 */
    assert_int_equal(quant_f32_to_f16(-0x1.8p-25f), 0x8001);
    assert_int_equal(quant_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    assert_int_equal(quant_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
}

/* gguf-py's quants.dequantize of blocks llama-quantize wrote and of random bytes: our
 * dequantizers give the same fp32 values bit for bit (both compute in the same order). */
static const char *find_fixture(const char *name, char *buf, size_t n) {
    const char *dirs[] = {GGUF_FIXTURES, ".devwork/gguf_out"};
    for (size_t i = 0; i < N_OF(dirs); i++) {
        snprintf(buf, n, "%s/%s", dirs[i], name);
        if (access(buf, R_OK) == 0) return buf;
    }
    return NULL;
}

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static void test_gguf_py_reference(void **state) {
    char path[512], err[LCB_ERRLEN];
    if (!find_fixture("quant_ref.json", path, sizeof path)) {
        print_message("SKIPPED: no quant_ref.json in " GGUF_FIXTURES " or .devwork/gguf_out (made by llama.cpp's gguf-py)\n");
        skip();
    }
    cJSON *j = tu_read_json(path);
    int seen[QT_COUNT + 1] = {0}, n_blocks = 0;
    for (cJSON *b = cJSON_GetObjectItem(j, "blocks")->child; b; b = b->next) {
        const char *tn = cJSON_GetObjectItem(b, "type")->valuestring;
        uint32_t t = 0;
        while (t <= QT_COUNT && !(quant_type_name(t) && !strcmp(quant_type_name(t), tn))) t++;
        if (t > QT_COUNT) fail_msg("quant_ref.json: type %s unknown", tn);
        const char *hex = cJSON_GetObjectItem(b, "hex")->valuestring;
        size_t nb = strlen(hex) / 2;
        uint8_t *raw = malloc(nb);
        for (size_t i = 0; i < nb; i++) raw[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        cJSON *vals = cJSON_GetObjectItem(b, "values");
        size_t nv = (size_t)cJSON_GetArraySize(vals);
        assert_int_equal(nv * quant_type_size(t), nb * quant_block_size(t));
        float *y = malloc(nv * 4);
        if (quant_dequantize(t, raw, y, nv, err, sizeof err)) fail_msg("%s: %s", tn, err);
        size_t i = 0;
        for (cJSON *v = vals->child; v; v = v->next, i++)
            if ((float)v->valuedouble != y[i] && !(isnan(y[i]) && isnan(v->valuedouble)))
                fail_msg("%s (%s): value %zu = %.9g, gguf-py says %.9g", tn, cJSON_GetObjectItem(b, "origin")->valuestring, i, y[i], v->valuedouble);
        seen[t]++;
        n_blocks++;
        free(raw);
        free(y);
    }
    for (size_t ti = 0; ti < N_OF(all_types); ti++)
        if (all_types[ti] != QT_F32 && !seen[all_types[ti]]) fail_msg("quant_ref.json has no %s entry", quant_type_name(all_types[ti]));
    print_message("gguf-py reference: %d entries, every value equal\n", n_blocks);
    cJSON_Delete(j);
}

/* ================================================================ a GGUF writer (tests only) */

typedef struct { uint8_t *p; size_t n, cap; } Buf;

static void b_put(Buf *b, const void *s, size_t n) {
    if (!n) return;
    if (b->n + n > b->cap) { b->cap = (b->n + n) * 2 + 64; b->p = realloc(b->p, b->cap); assert_non_null(b->p); }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void b_u32(Buf *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(Buf *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(Buf *b, const char *s) { b_u64(b, strlen(s)); b_put(b, s, strlen(s)); }

typedef struct {
    char name[128];
    int nd;
    int64_t ne[4];
    uint32_t type;
    uint8_t *data;
    size_t nbytes;
    /* hostile overrides, applied when written (0: none) */
    int force_nd;
    uint64_t force_ne0, force_off;
    int force_type;
} WTensor;

typedef struct {
    Buf kv;
    uint64_t n_kv;
    WTensor t[512];
    int nt;
    uint32_t version, alignment;
    int64_t force_nkv, force_nt; /* -1: none */
} GW;

static void gw_init(GW *g) { memset(g, 0, sizeof *g); g->version = 3; g->alignment = 32; g->force_nkv = g->force_nt = -1; }
static void gw_free(GW *g) { free(g->kv.p); for (int i = 0; i < g->nt; i++) free(g->t[i].data); }
static void gw_key(GW *g, const char *k, uint32_t type) { b_str(&g->kv, k); b_u32(&g->kv, type); g->n_kv++; }
static void gw_str(GW *g, const char *k, const char *v) { gw_key(g, k, GGUF_STRING); b_str(&g->kv, v); }
static void gw_u32(GW *g, const char *k, uint32_t v) { gw_key(g, k, GGUF_UINT32); b_u32(&g->kv, v); }
static void gw_i32(GW *g, const char *k, int32_t v) { gw_key(g, k, GGUF_INT32); b_put(&g->kv, &v, 4); }
static void gw_f32(GW *g, const char *k, float v) { gw_key(g, k, GGUF_FLOAT32); b_put(&g->kv, &v, 4); }
static void gw_bool(GW *g, const char *k, int v) { gw_key(g, k, GGUF_BOOL); uint8_t b = (uint8_t)v; b_put(&g->kv, &b, 1); }
static void gw_arr_str(GW *g, const char *k, const char *const *v, size_t n) {
    gw_key(g, k, GGUF_ARRAY); b_u32(&g->kv, GGUF_STRING); b_u64(&g->kv, n);
    for (size_t i = 0; i < n; i++) b_str(&g->kv, v[i]);
}
static void gw_arr(GW *g, const char *k, uint32_t et, const void *v, size_t n, size_t es) {
    gw_key(g, k, GGUF_ARRAY); b_u32(&g->kv, et); b_u64(&g->kv, n); b_put(&g->kv, v, n * es);
}

/* A tensor of HF shape (rows, cols) (rows = 0: 1-D of cols) from fp32 values, as `type`. */
static WTensor *gw_tensor(GW *g, const char *name, uint32_t type, int64_t rows, int64_t cols, const float *x) {
    char err[LCB_ERRLEN];
    assert_true(g->nt < 512);
    WTensor *t = &g->t[g->nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nd = rows ? 2 : 1;
    t->ne[0] = cols; t->ne[1] = rows ? rows : 1; t->ne[2] = t->ne[3] = 1;
    t->type = type;
    uint64_t nb;
    assert_int_equal(quant_row_bytes(type, (uint64_t)(cols * (rows ? rows : 1)), &nb), 0);
    t->nbytes = nb;
    t->data = malloc(nb ? nb : 1);
    if (x && quant_quantize(type, x, t->data, (size_t)(cols * (rows ? rows : 1)), err, sizeof err)) fail_msg("%s: %s", name, err);
    if (!x) memset(t->data, 0, nb);
    return t;
}

static Buf gw_bytes(const GW *g) {
    Buf b = {0};
    b_put(&b, "GGUF", 4);
    b_u32(&b, g->version);
    b_u64(&b, g->force_nt >= 0 ? (uint64_t)g->force_nt : (uint64_t)g->nt);
    b_u64(&b, g->force_nkv >= 0 ? (uint64_t)g->force_nkv : g->n_kv);
    b_put(&b, g->kv.p, g->kv.n);
    uint64_t off = 0, *offs = calloc(g->nt + 1, 8);
    for (int i = 0; i < g->nt; i++) {
        const WTensor *t = &g->t[i];
        b_str(&b, t->name);
        int nd = t->force_nd ? t->force_nd : t->nd;
        b_u32(&b, (uint32_t)nd);
        for (int d = 0; d < t->nd; d++) b_u64(&b, d == 0 && t->force_ne0 ? t->force_ne0 : (uint64_t)t->ne[d]); /* force_nd lies */
        b_u32(&b, t->force_type ? (uint32_t)t->force_type : t->type);
        offs[i] = off;
        b_u64(&b, t->force_off ? t->force_off : off);
        off += (t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
    }
    static const uint8_t zero[4096] = {0};
    b_put(&b, zero, (g->alignment - b.n % g->alignment) % g->alignment);
    size_t base = b.n;
    for (int i = 0; i < g->nt; i++) {
        b_put(&b, zero, base + offs[i] - b.n);
        b_put(&b, g->t[i].data, g->t[i].nbytes);
    }
    free(offs);
    return b;
}

static void gw_write(const GW *g, const char *path) {
    Buf b = gw_bytes(g);
    tu_write_file(path, b.p, b.n);
    free(b.p);
}

/* ================================================================ the reader */

static void test_metadata_types(void **state) {
    char err[LCB_ERRLEN], path[256];
    GW g;
    gw_init(&g);
    gw_str(&g, "general.architecture", "llama");
    gw_u32(&g, "u32", 4000000000u);
    gw_i32(&g, "i32", -7);
    gw_f32(&g, "f32", 0.25f);
    gw_bool(&g, "b", 1);
    gw_key(&g, "u8", GGUF_UINT8); b_put(&g.kv, (uint8_t[]){200}, 1);
    gw_key(&g, "i8", GGUF_INT8); b_put(&g.kv, (int8_t[]){-100}, 1);
    gw_key(&g, "u16", GGUF_UINT16); b_put(&g.kv, (uint16_t[]){60000}, 2);
    gw_key(&g, "i16", GGUF_INT16); b_put(&g.kv, (int16_t[]){-30000}, 2);
    gw_key(&g, "u64", GGUF_UINT64); b_u64(&g.kv, 1ull << 40);
    gw_key(&g, "i64", GGUF_INT64); b_u64(&g.kv, (uint64_t)-5);
    gw_key(&g, "f64", GGUF_FLOAT64); b_put(&g.kv, (double[]){1e300}, 8);
    const char *strs[] = {"a", "", "\xe2\x96\x81hello"};
    gw_arr_str(&g, "strs", strs, 3);
    int32_t iv[] = {1, -2, 3};
    gw_arr(&g, "ints", GGUF_INT32, iv, 3, 4);
    float fv[] = {0.5f, -1.5f};
    gw_arr(&g, "floats", GGUF_FLOAT32, fv, 2, 4);
    gw_arr(&g, "empty", GGUF_UINT8, NULL, 0, 1);
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)i;
    gw_tensor(&g, "a", QT_F32, 2, 32, w);
    gw_tensor(&g, "b", QT_Q8_0, 0, 64, w);
    snprintf(path, sizeof path, "%s/types.gguf", tu_tmpdir());
    gw_write(&g, path);
    gw_free(&g);

    assert_true(gguf_is_gguf(path));
    GgufFile f;
    if (gguf_open(&f, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.n_kv, 16);
    int64_t v;
    double d;
    const char *s;
    assert_int_equal(gguf_get_int(&f, "u32", 0, 0, INT64_MAX, &v, err, sizeof err), 0); assert_true(v == 4000000000ll);
    assert_int_equal(gguf_get_int(&f, "i32", 0, -100, 100, &v, err, sizeof err), 0); assert_true(v == -7);
    assert_int_equal(gguf_get_int(&f, "u8", 0, 0, 255, &v, err, sizeof err), 0); assert_true(v == 200);
    assert_int_equal(gguf_get_int(&f, "i8", 0, -128, 127, &v, err, sizeof err), 0); assert_true(v == -100);
    assert_int_equal(gguf_get_int(&f, "u16", 0, 0, 70000, &v, err, sizeof err), 0); assert_true(v == 60000);
    assert_int_equal(gguf_get_int(&f, "i16", 0, -40000, 0, &v, err, sizeof err), 0); assert_true(v == -30000);
    assert_int_equal(gguf_get_int(&f, "u64", 0, 0, INT64_MAX, &v, err, sizeof err), 0); assert_true(v == 1ll << 40);
    assert_int_equal(gguf_get_int(&f, "i64", 0, -10, 10, &v, err, sizeof err), 0); assert_true(v == -5);
    assert_int_equal(gguf_get_float(&f, "f32", 0, &d, err, sizeof err), 0); assert_true(d == 0.25);
    assert_int_equal(gguf_get_float(&f, "f64", 0, &d, err, sizeof err), 0); assert_true(d == 1e300);
    int b;
    assert_int_equal(gguf_get_bool(&f, "b", 0, &b, err, sizeof err), 0); assert_int_equal(b, 1);
    assert_int_equal(gguf_get_str(&f, "general.architecture", NULL, &s, err, sizeof err), 0); assert_string_equal(s, "llama");
    const GgufKV *a;
    assert_int_equal(gguf_get_arr(&f, "strs", GGUF_STRING, &a, err, sizeof err), 0);
    assert_int_equal(a->n, 3);
    assert_string_equal(((char **)a->arr)[2], "\xe2\x96\x81hello");
    assert_int_equal(a->arr_len[1], 0);
    assert_int_equal(gguf_get_arr(&f, "ints", GGUF_INT32, &a, err, sizeof err), 0);
    assert_int_equal(((int32_t *)a->arr)[1], -2);
    assert_int_equal(gguf_get_arr(&f, "floats", GGUF_FLOAT32, &a, err, sizeof err), 0);
    assert_true(((float *)a->arr)[1] == -1.5f);
    assert_int_equal(gguf_get_arr(&f, "empty", GGUF_UINT8, &a, err, sizeof err), 0);
    assert_int_equal(a->n, 0);
    /* wrong types and ranges name the key */
    assert_int_not_equal(gguf_get_int(&f, "f32", 0, 0, 1, &v, err, sizeof err), 0); assert_non_null(strstr(err, "f32"));
    assert_int_not_equal(gguf_get_int(&f, "u32", 0, 0, 10, &v, err, sizeof err), 0); assert_non_null(strstr(err, "out of range"));
    assert_int_not_equal(gguf_get_str(&f, "u32", NULL, &s, err, sizeof err), 0); assert_non_null(strstr(err, "u32"));
    assert_int_not_equal(gguf_get_arr(&f, "ints", GGUF_STRING, &a, err, sizeof err), 0); assert_non_null(strstr(err, "ints"));
    assert_int_equal(gguf_get_int(&f, "absent", 42, 0, 100, &v, err, sizeof err), 0); assert_true(v == 42);
    /* tensors */
    const GgufTensor *t = gguf_find_tensor(&f, "b");
    assert_non_null(t);
    assert_int_equal(t->type, QT_Q8_0);
    assert_int_equal(t->nbytes, 2 * 34);
    float y[64];
    if (gguf_read_f32(&f, t, y, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < 64; i++) assert_true(fabsf(y[i] - w[i]) <= 63.f / 127 * 0.51f + 0.05f);
    t = gguf_find_tensor(&f, "a");
    if (gguf_read_f32(&f, t, y, err, sizeof err)) fail_msg("%s", err);
    assert_memory_equal(y, w, 64 * 4);
    uint64_t by[QT_COUNT + 1];
    assert_int_equal(gguf_bytes_by_type(&f, by, QT_COUNT + 1), 256 + 68);
    assert_int_equal(by[QT_F32], 256);
    assert_int_equal(by[QT_Q8_0], 68);
    char sum[64];
    gguf_type_summary(&f, sum, sizeof sum);
    assert_string_equal(sum, "F32 1, Q8_0 1");
    gguf_close(&f);
}

/* The least metadata of a Llama model lcbench reads (64 wide, 1 layer, 4 heads, MLP 128), into a
 * fresh g: a test adds the key or tensor it is about. */
static void gw_llama_min(GW *g) {
    gw_init(g);
    gw_str(g, "general.architecture", "llama");
    gw_u32(g, "llama.embedding_length", 64);
    gw_u32(g, "llama.block_count", 1);
    gw_u32(g, "llama.attention.head_count", 4);
    gw_u32(g, "llama.feed_forward_length", 128);
}

/* A valid small file as bytes, built by `build` into g. */
static void base_file(GW *g) {
    gw_init(g);
    gw_str(g, "general.architecture", "llama");
    gw_u32(g, "general.alignment", 32);
    float w[256];
    for (int i = 0; i < 256; i++) w[i] = (float)sin(i);
    gw_tensor(g, "t0", QT_Q4_K, 1, 256, w);
    gw_tensor(g, "t1", QT_F16, 2, 64, w);
}

/* Parse the bytes from memory and from a file: both must fail with `want` in the message. */
static void expect_refused(const Buf *b, const char *want, const char *what) {
    char err[LCB_ERRLEN], path[256];
    GgufFile f;
    if (gguf_parse_buffer(&f, b->p, b->n, "mem", err, sizeof err) == 0) { gguf_close(&f); fail_msg("%s: accepted", what); }
    if (want && !strstr(err, want)) fail_msg("%s: message \"%s\" does not name \"%s\"", what, err, want);
    snprintf(path, sizeof path, "%s/hostile.gguf", tu_tmpdir());
    tu_write_file(path, b->p, b->n);
    if (gguf_open(&f, path, err, sizeof err) == 0) { gguf_close(&f); fail_msg("%s: file accepted", what); }
    if (want && !strstr(err, want)) fail_msg("%s: file message \"%s\" does not name \"%s\"", what, err, want);
}

static void test_hostile(void **state) {
    char err[LCB_ERRLEN];
    GW g;
    base_file(&g);
    Buf ok = gw_bytes(&g);
    GgufFile f;
    if (gguf_parse_buffer(&f, ok.p, ok.n, "mem", err, sizeof err)) fail_msg("the base file: %s", err);
    gguf_close(&f);
    /* truncated at every length: refused, never a crash (ASan build checks reads) */
    for (size_t n = 0; n < ok.n; n++) {
        Buf cut = {ok.p, n, n};
        if (gguf_parse_buffer(&f, cut.p, cut.n, "cut", err, sizeof err) == 0) { gguf_close(&f); fail_msg("truncated to %zu of %zu bytes: accepted", n, ok.n); }
    }
    Buf cut = {ok.p, ok.n - 1, ok.n};
    expect_refused(&cut, "t1", "data cut by one byte");
    /* header fields */
    Buf b = {0};
    b_put(&b, ok.p, ok.n);
    memcpy(b.p, "GGUG", 4); expect_refused(&b, "magic", "bad magic");
    memcpy(b.p, "GGUF", 4);
    uint32_t ver = 1; memcpy(b.p + 4, &ver, 4); expect_refused(&b, "version 1", "version 1");
    ver = 4; memcpy(b.p + 4, &ver, 4); expect_refused(&b, "version 4", "version 4");
    ver = 3u << 24; memcpy(b.p + 4, &ver, 4); expect_refused(&b, "big-endian", "big-endian");
    free(b.p);
    gw_free(&g);

    /* lying counts */
    base_file(&g); g.force_nt = 1000000; b = gw_bytes(&g); expect_refused(&b, "tensor count", "huge tensor count"); free(b.p); gw_free(&g);
    base_file(&g); g.force_nt = 3; b = gw_bytes(&g); expect_refused(&b, NULL, "tensor count one too many"); free(b.p); gw_free(&g);
    base_file(&g); g.force_nkv = (int64_t)1 << 62; b = gw_bytes(&g); expect_refused(&b, "metadata count", "huge kv count"); free(b.p); gw_free(&g);
    base_file(&g); g.force_nkv = 3; b = gw_bytes(&g); expect_refused(&b, NULL, "kv count one too many"); free(b.p); gw_free(&g);
    /* lying string and array lengths */
    base_file(&g); gw_key(&g, "s", GGUF_STRING); b_u64(&g.kv, 1ull << 60); b = gw_bytes(&g); expect_refused(&b, "metadata s", "string length"); free(b.p); gw_free(&g);
    base_file(&g); gw_key(&g, "arr", GGUF_ARRAY); b_u32(&g.kv, GGUF_UINT64); b_u64(&g.kv, 1ull << 61); b = gw_bytes(&g); expect_refused(&b, "arr", "array count"); free(b.p); gw_free(&g);
    base_file(&g); gw_key(&g, "arr", GGUF_ARRAY); b_u32(&g.kv, GGUF_STRING); b_u64(&g.kv, 1ull << 40); b = gw_bytes(&g); expect_refused(&b, "arr", "string array count"); free(b.p); gw_free(&g);
    base_file(&g); gw_key(&g, "arr", GGUF_ARRAY); b_u32(&g.kv, 77); b_u64(&g.kv, 1); b = gw_bytes(&g); expect_refused(&b, "arr", "array element type"); free(b.p); gw_free(&g);
    base_file(&g); gw_key(&g, "arr", GGUF_ARRAY); b_u32(&g.kv, GGUF_ARRAY); b_u64(&g.kv, 1); b = gw_bytes(&g); expect_refused(&b, "arrays of arrays", "nested array"); free(b.p); gw_free(&g);
    base_file(&g); gw_key(&g, "x", 13); b = gw_bytes(&g); expect_refused(&b, "unknown value type", "value type"); free(b.p); gw_free(&g);
    base_file(&g); gw_key(&g, "bb", GGUF_BOOL); b_put(&g.kv, (uint8_t[]){7}, 1); b = gw_bytes(&g); expect_refused(&b, "bb", "bool 7"); free(b.p); gw_free(&g);
    base_file(&g); gw_str(&g, "general.architecture", "x"); b = gw_bytes(&g); expect_refused(&b, "twice", "duplicate key"); free(b.p); gw_free(&g);
    /* alignment */
    gw_init(&g); gw_u32(&g, "general.alignment", 24); b = gw_bytes(&g); expect_refused(&b, "general.alignment", "alignment 24"); free(b.p); gw_free(&g);
    gw_init(&g); gw_u32(&g, "general.alignment", 0); b = gw_bytes(&g); expect_refused(&b, "general.alignment", "alignment 0"); free(b.p); gw_free(&g);
    gw_init(&g); gw_str(&g, "general.alignment", "32"); b = gw_bytes(&g); expect_refused(&b, "general.alignment", "alignment as a string"); free(b.p); gw_free(&g);
    /* tensor infos */
    base_file(&g); g.t[1].force_nd = 5; b = gw_bytes(&g); expect_refused(&b, "n_dims", "n_dims 5"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_nd = 0x7fffffff; b = gw_bytes(&g); expect_refused(&b, "n_dims", "huge n_dims"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_nd = 4; b = gw_bytes(&g); expect_refused(&b, NULL, "n_dims one more than written"); free(b.p); gw_free(&g);
    base_file(&g); g.t[0].force_ne0 = 100; b = gw_bytes(&g); expect_refused(&b, "block size", "ne[0] not whole blocks"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_ne0 = 1ull << 62; b = gw_bytes(&g); expect_refused(&b, "t1", "element count overflow"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_ne0 = UINT64_MAX; b = gw_bytes(&g); expect_refused(&b, "ne[0]", "ne 2^64-1"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_type = 4; b = gw_bytes(&g); expect_refused(&b, "unknown ggml type", "removed type 4"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_type = 9999; b = gw_bytes(&g); expect_refused(&b, "unknown ggml type", "type 9999"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_off = 8; b = gw_bytes(&g); expect_refused(&b, "alignment", "unaligned offset"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_off = 1ull << 40; b = gw_bytes(&g); expect_refused(&b, "t1", "offset past the end"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_off = UINT64_MAX - 31; b = gw_bytes(&g); expect_refused(&b, "t1", "offset + size overflows"); free(b.p); gw_free(&g);
    base_file(&g); g.t[1].force_off = 64; b = gw_bytes(&g); expect_refused(&b, "overlap", "overlapping tensors"); free(b.p); gw_free(&g);
    base_file(&g); snprintf(g.t[1].name, sizeof g.t[1].name, "t0"); b = gw_bytes(&g); expect_refused(&b, "twice", "duplicate tensor"); free(b.p); gw_free(&g);
    free(ok.p);

    /* a file that shrinks after it was opened: an error, not SIGBUS */
    char path[256];
    snprintf(path, sizeof path, "%s/shrink.gguf", tu_tmpdir());
    base_file(&g); gw_write(&g, path); gw_free(&g);
    if (gguf_open(&f, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(truncate(path, (off_t)f.data_offset + 10), 0);
    float y[256];
    assert_int_not_equal(gguf_read_f32(&f, &f.tensors[1], y, err, sizeof err), 0);
    assert_non_null(strstr(err, "t1"));
    gguf_close(&f);
    /* a type we know by size but cannot dequantize */
    GW q;
    gw_init(&q);
    WTensor *t = gw_tensor(&q, "iq", QT_F32, 0, 256, NULL);
    free(t->data); t->type = 20 /* IQ4_NL */; t->nbytes = 8 * 18; t->data = calloc(1, t->nbytes);
    snprintf(path, sizeof path, "%s/iq.gguf", tu_tmpdir());
    gw_write(&q, path); gw_free(&q);
    if (gguf_open(&f, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_not_equal(gguf_read_f32(&f, &f.tensors[0], y, err, sizeof err), 0);
    assert_non_null(strstr(err, "IQ4_NL"));
    gguf_close(&f);
}

/* ================================================================ models */

/* HF fixture -> GGUF as convert_hf_to_gguf.py writes it; 2-D weights as `type` where their rows
 * are whole blocks (else F16, as llama-quantize falls back), 1-D tensors F32. */
static int is_llama(const ModelConfig *c) { return c->arch == ARCH_LLAMA || c->arch == ARCH_MISTRAL; }

static void to_gguf_name(const ModelConfig *c, const char *hf, char *out, size_t n, int *perm_heads) {
    static const char *const map[][2] = {
        {"model.embed_tokens.", "token_embd."}, {"model.norm.", "output_norm."}, {"lm_head.", "output."},
        {"gpt_neox.embed_in.", "token_embd."}, {"gpt_neox.final_layer_norm.", "output_norm."}, {"embed_out.", "output."},
        {"transformer.word_embeddings.", "token_embd."}, {"transformer.ln_f.", "output_norm."},
        {"input_layernorm.", "attn_norm."}, {"post_attention_layernorm.", "ffn_norm."},
        {"self_attn.q_proj.", "attn_q."}, {"self_attn.k_proj.", "attn_k."}, {"self_attn.v_proj.", "attn_v."}, {"self_attn.o_proj.", "attn_output."},
        {"mlp.gate_proj.", "ffn_gate."}, {"mlp.up_proj.", "ffn_up."}, {"mlp.down_proj.", "ffn_down."},
        {"attention.query_key_value.", "attn_qkv."}, {"attention.dense.", "attn_output."},
        {"self_attention.query_key_value.", "attn_qkv."}, {"self_attention.dense.", "attn_output."},
        {"mlp.dense_h_to_4h.", "ffn_up."}, {"mlp.dense_4h_to_h.", "ffn_down."},
    };
    *perm_heads = 0;
    int layer = -1;
    const char *rest = hf;
    const char *pre[] = {"model.layers.", "gpt_neox.layers.", "transformer.h."};
    for (int i = 0; i < 3; i++)
        if (!strncmp(hf, pre[i], strlen(pre[i]))) { layer = atoi(hf + strlen(pre[i])); rest = strchr(hf + strlen(pre[i]), '.') + 1; }
    for (size_t i = 0; i < N_OF(map); i++)
        if (!strncmp(rest, map[i][0], strlen(map[i][0]))) {
            const char *g = map[i][1];
            /* Falcon-7B's single norm is attn_norm; a second one would be attn_norm_2 */
            if (c->arch == ARCH_FALCON && !strcmp(g, "ffn_norm.")) g = "attn_norm_2.";
            if (layer >= 0) snprintf(out, n, "blk.%d.%s%s", layer, g, rest + strlen(map[i][0]));
            else snprintf(out, n, "%s%s", g, rest + strlen(map[i][0]));
            if (is_llama(c) && !strcmp(g, "attn_q.")) *perm_heads = c->n_heads;
            if (is_llama(c) && !strcmp(g, "attn_k.")) *perm_heads = c->n_kv;
            return;
        }
    fail_msg("no GGUF name for %s", hf);
}

/* convert_hf_to_gguf.py's permute(): within each head, HF row (i * hd/2 + j) goes to (2 j + i). */
static void permute_rows(float *w, int64_t rows, int64_t cols, int nh) {
    int64_t hd = rows / nh, half = hd / 2;
    float *tmp = malloc((size_t)(rows * cols) * 4);
    memcpy(tmp, w, (size_t)(rows * cols) * 4);
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < 2; i++)
            for (int64_t j = 0; j < half; j++)
                memcpy(w + (h * hd + 2 * j + i) * cols, tmp + (h * hd + i * half + j) * cols, (size_t)cols * 4);
    free(tmp);
}

static const char *wf_drop, *wf_extra; /* a tensor to leave out / to add (hostile models) */
static const char *wf_retype;            /* a tensor whose type id is written as wf_retype_to */
static uint32_t wf_retype_to;

static void write_fixture_gguf(const char *fx, uint32_t type, const char *path) {
    char dir[256], cfgp[300], err[LCB_ERRLEN];
    snprintf(dir, sizeof dir, FIXTURES "/%s", fx);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    ModelConfig c;
    if (config_load(&c, cfgp, err, sizeof err)) fail_msg("%s", err);
    StFile st;
    if (st_open(&st, dir, err, sizeof err)) fail_msg("%s", err);
    GW g;
    gw_init(&g);
    const char *arch = is_llama(&c) ? "llama" : c.arch == ARCH_NEOX ? "gptneox" : "falcon";
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gw_str(&g, "general.architecture", arch);
    gw_u32(&g, "general.file_type", type == QT_F32 ? 0 : type == QT_F16 ? 1 : type == QT_BF16 ? 32 : type == QT_Q8_0 ? 7 : 2);
    gw_u32(&g, KEY("context_length"), (uint32_t)c.max_pos);
    gw_u32(&g, KEY("embedding_length"), (uint32_t)c.dim);
    gw_u32(&g, KEY("block_count"), (uint32_t)c.n_layers);
    gw_u32(&g, KEY("feed_forward_length"), (uint32_t)c.ffn);
    gw_u32(&g, KEY("attention.head_count"), (uint32_t)c.n_heads);
    gw_u32(&g, KEY("attention.head_count_kv"), (uint32_t)c.n_kv);
    gw_u32(&g, KEY("rope.dimension_count"), (uint32_t)c.rot_dim);
    gw_f32(&g, KEY("rope.freq_base"), (float)c.rope_theta);
    if (is_llama(&c)) {
        gw_f32(&g, KEY("attention.layer_norm_rms_epsilon"), (float)c.norm_eps);
        gw_u32(&g, KEY("attention.key_length"), (uint32_t)c.head_dim);
        gw_u32(&g, KEY("attention.value_length"), (uint32_t)c.head_dim);
        if (c.sliding_window) gw_u32(&g, KEY("attention.sliding_window"), (uint32_t)c.sliding_window);
    } else gw_f32(&g, KEY("attention.layer_norm_epsilon"), (float)c.norm_eps);
    if (c.arch == ARCH_NEOX) gw_bool(&g, KEY("use_parallel_residual"), c.parallel);
    if (c.rope_type == ROPE_LINEAR) { gw_str(&g, KEY("rope.scaling.type"), "linear"); gw_f32(&g, KEY("rope.scaling.factor"), (float)c.rope_factor); }
    gw_u32(&g, "tokenizer.ggml.bos_token_id", (uint32_t)c.bos_id);
#undef KEY
    for (size_t i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        char name[256];
        int ph;
        to_gguf_name(&c, t->name, name, sizeof name, &ph);
        if (wf_drop && !strcmp(name, wf_drop)) continue;
        float *x = malloc(t->numel * 4);
        if (st_to_f32(t, x, err, sizeof err)) fail_msg("%s", err);
        int64_t rows = t->ndim == 2 ? t->shape[0] : 0, cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
        if (ph) permute_rows(x, rows ? rows : cols, rows ? cols : 1, ph);
        if (c.arch == ARCH_NEOX && strstr(name, "attn_qkv")) {
            /* per head [q k v] -> [q heads | k heads | v heads], as the converter regroups it */
            int64_t hd = c.head_dim, H = c.n_heads, cc = rows ? cols : 1;
            float *y = malloc(t->numel * 4);
            for (int64_t h = 0; h < H; h++)
                for (int p = 0; p < 3; p++)
                    memcpy(y + ((p * H + h) * hd) * cc, x + ((h * 3 + p) * hd) * cc, (size_t)(hd * cc) * 4);
            free(x);
            x = y;
        }
        uint32_t tt = QT_F32;
        if (rows) tt = cols % quant_block_size(type) == 0 ? type : QT_F16;
        WTensor *w = gw_tensor(&g, name, tt, rows, cols, x);
        if (wf_retype && !strcmp(name, wf_retype)) w->force_type = (int)wf_retype_to;
        free(x);
    }
    if (wf_extra) gw_tensor(&g, wf_extra, QT_F32, 0, 64, NULL);
    gw_write(&g, path);
    gw_free(&g);
    st_close(&st);
}

/* dense NLLs of `spec` (config: NULL or a config file) over the fixture's reference ids */
static double *score(const char *spec, const char *config, const int32_t *ids, size_t T) {
    char err[LCB_ERRLEN];
    Model m;
    if (model_open(&m, spec, config, err, sizeof err)) fail_msg("%s: %s", spec, err);
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    double *nll = malloc(T * sizeof *nll);
    if (strategy_score(&s, &m, ids, T, 0, nll, err, sizeof err)) fail_msg("%s: %s", spec, err);
    model_free(&m);
    return nll;
}

/* dense NLLs of a GGUF on the CPU with `threads` OpenMP threads and chunks of `chunk` (0: the
 * default): its layer matrices as blocks (model_open) or dequantized at load (model_open_fp32) */
static double *score_gguf(const char *path, int fp32, int threads, size_t chunk, const int32_t *ids, size_t T, size_t *arena_bytes) {
    char err[LCB_ERRLEN];
    Model m;
    if ((fp32 ? model_open_fp32(&m, path, err, sizeof err) : model_open(&m, path, NULL, err, sizeof err))) fail_msg("%s: %s", path, err);
    if (!fp32) {
        /* the blocks are the file's bytes of the layer matrices, and the arena has no fp32 copy of them */
        GgufFile g;
        if (gguf_open(&g, path, err, sizeof err)) fail_msg("%s", err);
        uint64_t mats = 0;
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const char *n = g.tensors[i].name;
            if (!strncmp(n, "blk.", 4) && strstr(n, ".weight") && g.tensors[i].n_dims == 2) mats += g.tensors[i].nbytes;
        }
        gguf_close(&g);
        assert_int_equal(m.qblocks_bytes, mats);
        assert_null(m.layers[0].wqkv);
    }
    *arena_bytes = m.arena_bytes;
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    double *nll = malloc(T * sizeof *nll);
    int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    int rc = strategy_score(&s, &m, ids, T, chunk, nll, err, sizeof err);
    omp_set_num_threads(before);
    if (rc) fail_msg("%s: %s", path, err);
    model_free(&m);
    return nll;
}

/* The CPU keeps a GGUF's layer matrices as blocks and dequantizes them per panel: the NLLs equal
 * those of the weights dequantized at load (the layout before, and the one --device cuda
 * uploads), bit for bit, with 1, 2 or 3 threads and in chunks of any size. */
static void expect_blocks_equal_fp32(const char *path, const int32_t *ids, size_t T) {
    char err[LCB_ERRLEN];
    ModelConfig c;
    if (config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    size_t qd = (size_t)c.n_heads * c.head_dim, qkvd = qd + 2 * (size_t)c.n_kv * c.head_dim;
    size_t mats = (size_t)c.n_layers * c.dim * (qkvd + qd + (c.gated_mlp ? 3 : 2) * (size_t)c.ffn);
    /* chunk sizes change the rounding (SPEC §1), so each is compared with its own reference */
    const struct { size_t chunk; int threads[3]; } runs[] = {{0, {1, 2, 3}}, {5, {1, 3, 0}}, {1, {1, 0, 0}}};
    for (size_t r = 0; r < N_OF(runs); r++) {
        size_t fp32_arena, arena;
        double *ref = score_gguf(path, 1, 1, runs[r].chunk, ids, T, &fp32_arena);
        for (int k = 0; k < 3 && runs[r].threads[k]; k++) {
            const int th = runs[r].threads[k];
            double *b = score_gguf(path, 0, th, runs[r].chunk, ids, T, &arena);
            /* the fp32 arena less exactly the four layer matrices: no fp32 copy of them is kept */
            assert_int_equal(arena + mats * sizeof(float), fp32_arena);
            for (size_t i = 0; i + 1 < T; i++)
                if (memcmp(&b[i], &ref[i], sizeof *b))
                    fail_msg("%s: step %zu: NLL %.17g with blocks (%d threads, chunk %zu), %.17g dequantized at load", path, i, b[i], th,
                             runs[r].chunk, ref[i]);
            free(b);
        }
        free(ref);
    }
}

static double max_diff(const double *a, const double *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

static void test_fixture_models(void **state) {
    char path[512], refp[300];
    int bad = 0;
    for (size_t fi = 0; fi < N_OF(tu_fixtures); fi++) {
        const char *fx = tu_fixtures[fi];
        snprintf(refp, sizeof refp, FIXTURES "/%s/reference.json", fx);
        cJSON *ref = tu_read_json(refp);
        size_t T;
        int32_t *ids = tu_json_ids(ref, &T);
        char dir[256];
        snprintf(dir, sizeof dir, FIXTURES "/%s", fx);
        double *hf = score(dir, NULL, ids, T);
        char line[1024];
        int k = snprintf(line, sizeof line, "%-24s |dNLL| vs HF, max/mean:", fx);
        for (size_t ti = 0; ti < N_OF(all_types); ti++) {
            uint32_t t = all_types[ti];
            snprintf(path, sizeof path, "%s/%s-%s.gguf", tu_tmpdir(), fx, quant_type_name(t));
            write_fixture_gguf(fx, t, path);
            double *g = score(path, NULL, ids, T);
            expect_blocks_equal_fp32(path, ids, T);
            double d = max_diff(hf, g, T - 1);
            /* F32: the same fp32 weights, the same forward: identical.  The rest is the
             * rounding of the weights, which these random-weight fixtures (no structure, 64
             * wide) feel far more than a trained model: measured per-step maxima over the six
             * fixtures were F16 3.3e-3, BF16 1.3e-2, Q8_0 4.2e-2, Q6_K 7.2e-2, Q5_* 0.32, Q4_*
             * 0.83, Q4_* 1.6 nats; the bounds below leave about 1.5-2x, and the mean |dNLL| is
             * bounded tighter (a wrong layout gives whole nats on average) */
            int b5 = t == QT_Q5_0 || t == QT_Q5_1 || t == QT_Q5_K;
            double bound = t == QT_F32 ? 0 : t == QT_F16 ? 8e-3 : t == QT_BF16 ? 5e-2 : t == QT_Q8_0 ? 0.15 : t == QT_Q6_K ? 0.15 : b5 ? 1.3 : 2.5;
            double mbound = t == QT_F32 ? 0 : t == QT_F16 ? 2e-3 : t == QT_BF16 ? 1.5e-2 : t == QT_Q8_0 || t == QT_Q6_K ? 0.05 : b5 ? 0.35 : 0.7;
            if (t == QT_BF16 && !strcmp(fx, "llama_bf16")) bound = 0; /* bf16 weights survive BF16 exactly */
            double mean = 0;
            for (size_t i = 0; i + 1 < T; i++) mean += fabs(g[i] - hf[i]);
            mean /= (double)(T - 1);
            if (d > bound || mean > mbound) {
                print_message("%s as %s: |NLL(GGUF) - NLL(HF)| max %g (bound %g), mean %g (bound %g)\n", fx, quant_type_name(t), d, bound, mean, mbound);
                bad++;
            }
            k += snprintf(line + k, sizeof line - k, " %s %.2g/%.1e", quant_type_name(t), d, mean);
            free(g);
            unlink(path);
        }
        print_message("%s\n", line);
        free(hf);
        free(ids);
        cJSON_Delete(ref);
    }
    if (bad) fail_msg("%d fixture x type pairs past their bound", bad);
}

/* config and label of a written file; --config refused; an unsupported architecture named */
static void test_model_config(void **state) {
    char path[512], err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/cfg.gguf", tu_tmpdir());
    write_fixture_gguf("mistral_swa", QT_Q8_0, path);
    ModelConfig a, b;
    if (config_load(&a, FIXTURES "/mistral_swa/config.json", err, sizeof err)) fail_msg("%s", err);
    if (config_load(&b, path, err, sizeof err)) fail_msg("config_load on a GGUF: %s", err);
    assert_int_equal(b.arch, ARCH_MISTRAL);
    assert_int_equal(b.sliding_window, a.sliding_window);
    assert_int_equal(b.n_kv, a.n_kv);
    assert_int_equal(b.head_dim, a.head_dim);
    assert_int_equal(b.ffn, a.ffn);
    assert_int_equal(b.vocab, a.vocab);
    assert_int_equal(b.tie_embeddings, a.tie_embeddings);
    Model m;
    if (model_open(&m, path, NULL, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(m.disk_dtype, "Q8_0");
    model_free(&m);
    assert_int_not_equal(model_open(&m, path, FIXTURES "/mistral_swa/config.json", err, sizeof err), 0);
    assert_non_null(strstr(err, "--config"));
    snprintf(path, sizeof path, "%s/pi4.gguf", tu_tmpdir());
    write_fixture_gguf("llama_pi4", QT_F32, path);
    if (config_load(&b, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(b.rope_type, ROPE_LINEAR);
    assert_true(b.rope_factor == 4.0);
    /* architectures and variants lcbench does not run */
    GW g;
    gw_init(&g);
    gw_str(&g, "general.architecture", "qwen2");
    snprintf(path, sizeof path, "%s/qwen.gguf", tu_tmpdir());
    gw_write(&g, path);
    gw_free(&g);
    assert_int_not_equal(model_open(&m, path, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "qwen2"));
    gw_llama_min(&g);
    gw_str(&g, "llama.rope.scaling.type", "yarn");
    gw_tensor(&g, "token_embd.weight", QT_F32, 8, 64, NULL);
    gw_write(&g, path);
    gw_free(&g);
    assert_int_not_equal(model_open(&m, path, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "yarn"));
    /* the numbers config.json is checked for (config_check_numbers): a norm epsilon of 1e-70
     * (float64 metadata; positive, but it makes the norms NaN) */
    gw_llama_min(&g);
    double eps = 1e-70;
    gw_key(&g, "llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT64);
    b_put(&g.kv, &eps, 8);
    gw_tensor(&g, "token_embd.weight", QT_F32, 8, 64, NULL);
    gw_write(&g, path);
    gw_free(&g);
    assert_int_not_equal(config_load(&b, path, err, sizeof err), 0);
    if (!strstr(err, "norm epsilon")) fail_msg("a norm epsilon of 1e-70: \"%s\"", err);
    assert_non_null(strstr(err, path));
    /* a tensor the architecture does not have, and a missing one */
    snprintf(path, sizeof path, "%s/extra.gguf", tu_tmpdir());
    wf_extra = "blk.0.attn_sinks.weight";
    write_fixture_gguf("llama_gqa", QT_F32, path);
    wf_extra = NULL;
    assert_int_not_equal(model_open(&m, path, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "blk.0.attn_sinks.weight"));
    wf_drop = "blk.2.ffn_down.weight";
    write_fixture_gguf("llama_gqa", QT_F32, path);
    wf_drop = NULL;
    assert_int_not_equal(model_open(&m, path, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "model.layers.2.mlp.down_proj.weight"));
    assert_non_null(strstr(err, "missing"));
    /* a layer matrix of a type ggml knows but lcbench cannot dequantize (IQ4_NL: 18-byte blocks
     * of 32, the size of Q4_0's, so the file itself is consistent): refused by name whether the
     * matrix would stay as blocks or be dequantized at load */
    wf_retype = "blk.1.ffn_down.weight";
    wf_retype_to = 20;
    write_fixture_gguf("llama_gqa", QT_Q4_0, path);
    wf_retype = NULL;
    for (int fp32 = 0; fp32 < 2; fp32++) {
        assert_int_not_equal(fp32 ? model_open_fp32(&m, path, err, sizeof err) : model_open(&m, path, NULL, err, sizeof err), 0);
        if (!strstr(err, "blk.1.ffn_down.weight") || !strstr(err, "IQ4_NL")) fail_msg("an IQ4_NL matrix: \"%s\"", err);
    }
}

/* the CLI takes a GGUF wherever it takes a folder: score, and its stdout equals the folder's */
static void test_cli_score(void **state) {
    char path[512], idsp[512];
    snprintf(path, sizeof path, "%s/cli.gguf", tu_tmpdir());
    write_fixture_gguf("llama_gqa", QT_F32, path);
    cJSON *ref = tu_read_json(FIXTURES "/llama_gqa/reference.json");
    size_t T;
    int32_t *ids = tu_json_ids(ref, &T);
    snprintf(idsp, sizeof idsp, "%s/ids.txt", tu_tmpdir());
    FILE *f = fopen(idsp, "w");
    for (size_t i = 0; i < T; i++) fprintf(f, "%d ", ids[i]);
    fclose(f);
    char *a, *b;
    assert_int_equal(tu_run(&a, "%s score --model %s --ids %s --strategy sink:4:8", tu_lcbench(), path, idsp), 0);
    assert_int_equal(tu_run(&b, "%s score --model " FIXTURES "/llama_gqa --ids %s --strategy sink:4:8", tu_lcbench(), idsp), 0);
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_int_equal(tu_run(&a, "%s score --model %s/nope.gguf --ids %s --strategy dense", tu_lcbench(), tu_tmpdir(), idsp), 1);
    assert_non_null(strstr(a, "nope.gguf"));
    free(a);
    free(ids);
    cJSON_Delete(ref);
}

/* A gpt2-model GGUF tokenizer from a byte-level BPE tokenizer.json, as convert_hf_to_gguf.py's
 * _set_vocab_gpt2 writes one: tokens by id, types (added special -> control, added -> user
 * defined), merges "a b", BOS/EOS ids, add_bos_token, the pre-tokenizer name. */
static void write_gpt2_tokenizer_gguf(const char *json_path, const char *pre, int add_bos, const char *bos, const char *out) {
    cJSON *j = tu_read_json(json_path);
    cJSON *m = cJSON_GetObjectItem(j, "model"), *v = cJSON_GetObjectItem(m, "vocab");
    int n = 0;
    for (cJSON *x = v->child; x; x = x->next) if (x->valueint + 1 > n) n = x->valueint + 1;
    for (cJSON *a = cJSON_GetObjectItem(j, "added_tokens")->child; a; a = a->next)
        if (cJSON_GetObjectItem(a, "id")->valueint + 1 > n) n = cJSON_GetObjectItem(a, "id")->valueint + 1;
    const char **tok = calloc(n, sizeof *tok);
    int32_t *type = calloc(n, sizeof *type);
    for (cJSON *x = v->child; x; x = x->next) { tok[x->valueint] = x->string; type[x->valueint] = 1; }
    int32_t bos_id = -1;
    for (cJSON *a = cJSON_GetObjectItem(j, "added_tokens")->child; a; a = a->next) {
        int id = cJSON_GetObjectItem(a, "id")->valueint;
        tok[id] = cJSON_GetObjectItem(a, "content")->valuestring;
        type[id] = cJSON_IsTrue(cJSON_GetObjectItem(a, "special")) ? 3 : 4;
        if (!strcmp(tok[id], bos)) bos_id = id;
    }
    char pad[64][24];
    for (int i = 0, k = 0; i < n; i++)
        if (!tok[i]) { assert_true(k < 64); snprintf(pad[k], sizeof pad[k], "[PAD%d]", i); tok[i] = pad[k++]; type[i] = 5; }
    cJSON *mg = cJSON_GetObjectItem(m, "merges");
    int nm = cJSON_GetArraySize(mg);
    char **merges = calloc(nm, sizeof *merges);
    int i = 0;
    for (cJSON *x = mg->child; x; x = x->next, i++) {
        if (cJSON_IsString(x)) merges[i] = strdup(x->valuestring);
        else {
            const char *a = x->child->valuestring, *b = x->child->next->valuestring;
            merges[i] = malloc(strlen(a) + strlen(b) + 2);
            sprintf(merges[i], "%s %s", a, b);
        }
    }
    GW g;
    gw_init(&g);
    gw_str(&g, "general.architecture", "llama");
    gw_str(&g, "tokenizer.ggml.model", "gpt2");
    gw_str(&g, "tokenizer.ggml.pre", pre);
    gw_arr_str(&g, "tokenizer.ggml.tokens", tok, (size_t)n);
    gw_arr(&g, "tokenizer.ggml.token_type", GGUF_INT32, type, (size_t)n, 4);
    gw_arr_str(&g, "tokenizer.ggml.merges", (const char *const *)merges, (size_t)nm);
    if (bos_id >= 0) gw_u32(&g, "tokenizer.ggml.bos_token_id", (uint32_t)bos_id);
    gw_bool(&g, "tokenizer.ggml.add_bos_token", add_bos);
    gw_write(&g, out);
    gw_free(&g);
    for (i = 0; i < nm; i++) free(merges[i]);
    free(merges);
    free(tok);
    free(type);
    cJSON_Delete(j);
}

/* ids of every case text, with and without special tokens, and their decoding: GGUF == JSON */
static int compare_tokenizers(const char *a_path, const char *b_path, const char *cases) {
    char err[LCB_ERRLEN];
    Tokenizer *a = tokenizer_load(a_path, err, sizeof err);
    if (!a) fail_msg("%s", err);
    Tokenizer *b = tokenizer_load(b_path, err, sizeof err);
    if (!b) fail_msg("%s", err);
    assert_int_equal(tokenizer_vocab_size(a), tokenizer_vocab_size(b));
    assert_int_equal(tokenizer_bos_id(a), tokenizer_bos_id(b));
    char *txt = tu_read_file(cases, NULL);
    int n = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *c = cJSON_Parse(line);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        for (int sp = 0; sp < 2; sp++) {
            int32_t *ia, *ib;
            size_t na, nb;
            if (tokenizer_encode(a, text, strlen(text), sp, &ia, &na, err, sizeof err)) fail_msg("%s", err);
            if (tokenizer_encode(b, text, strlen(text), sp, &ib, &nb, err, sizeof err)) fail_msg("%s", err);
            if (na != nb || memcmp(ia, ib, na * 4)) fail_msg("%s: case %s (special %d): ids differ from %s", a_path, cJSON_GetObjectItem(c, "label")->valuestring, sp, b_path);
            char *da, *db;
            size_t la, lb;
            if (tokenizer_decode(a, ia, na, 0, &da, &la, err, sizeof err) || tokenizer_decode(b, ib, nb, 0, &db, &lb, err, sizeof err)) fail_msg("%s", err);
            assert_int_equal(la, lb);
            assert_memory_equal(da, db, la);
            free(da); free(db); free(ia); free(ib);
        }
        n++;
        cJSON_Delete(c);
    }
    free(txt);
    tokenizer_free(a);
    tokenizer_free(b);
    return n;
}

static void test_tokenizer_gpt2(void **state) {
    char path[512], err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/llama3_tok.gguf", tu_tmpdir());
    write_gpt2_tokenizer_gguf(FIXTURES "/tokenizer/llama3_tokenizer.json", "llama-bpe", 0, "<|begin_of_text|>", path);
    int n = compare_tokenizers(path, FIXTURES "/tokenizer/llama3_tokenizer.json", FIXTURES "/tokenizer/llama3_cases.jsonl");
    /* and against the ids HF tokenizers gave (the case file) */
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    if (!t) fail_msg("%s", err);
    char *txt = tu_read_file(FIXTURES "/tokenizer/llama3_cases.jsonl", NULL);
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *c = cJSON_Parse(line);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int32_t *ids;
        size_t k;
        if (tokenizer_encode(t, text, strlen(text), 0, &ids, &k, err, sizeof err)) fail_msg("%s", err);
        cJSON *want = cJSON_GetObjectItem(c, "ids");
        assert_int_equal(k, (size_t)cJSON_GetArraySize(want));
        size_t i = 0;
        for (cJSON *x = want->child; x; x = x->next, i++) assert_int_equal(ids[i], x->valueint);
        free(ids);
        cJSON_Delete(c);
    }
    free(txt);
    tokenizer_free(t);
    /* lcbench's own reference-model tokenizer (GPT-2 regex, a BOS template) */
    snprintf(path, sizeof path, "%s/lcb_tok.gguf", tu_tmpdir());
    write_gpt2_tokenizer_gguf("models/lcb-2.5m/tokenizer.json", "gpt-2", 1, "<s>", path);
    n += compare_tokenizers(path, "models/lcb-2.5m/tokenizer.json", FIXTURES "/tokenizer/llama3_cases.jsonl");
    print_message("GGUF tokenizers: %d case texts, ids and decodings equal to tokenizer.json\n", n);
    /* the CLI: tokenize --tokenizer FILE.gguf */
    char *out, *ref;
    assert_int_equal(tu_run(&out, "echo 'Call me Ishmael.' | %s tokenize --tokenizer %s --bos", tu_lcbench(), path), 0);
    assert_int_equal(tu_run(&ref, "echo 'Call me Ishmael.' | %s tokenize --tokenizer models/lcb-2.5m/tokenizer.json --bos", tu_lcbench()), 0);
    assert_string_equal(out, ref);
    free(out);
    free(ref);
}

static void test_tokenizer_refusals(void **state) {
    char path[512], err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/tokbad.gguf", tu_tmpdir());
    const char *toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "a"};
    float flat[] = {-1000, -1000, -1000, -1000, -1000}, scored[] = {0, 0, 0, -1, -2};
    int32_t types[] = {2, 3, 3, 1, 1};
    struct { const char *model, *pre, *want; const float *scores; } cases[] = {
        {"bert", NULL, "tokenizer.ggml.model", NULL}, {"gpt2", "qwen2", "tokenizer.ggml.pre", NULL},
        {"gpt2", "gpt-2", "tokenizer.ggml.merges", NULL}, {"llama", NULL, "scores", flat}, {NULL, NULL, "tokenizer.ggml.model", NULL},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        GW g;
        gw_init(&g);
        gw_str(&g, "general.architecture", "llama");
        if (cases[i].model) gw_str(&g, "tokenizer.ggml.model", cases[i].model);
        if (cases[i].pre) gw_str(&g, "tokenizer.ggml.pre", cases[i].pre);
        gw_arr_str(&g, "tokenizer.ggml.tokens", toks, 5);
        gw_arr(&g, "tokenizer.ggml.token_type", GGUF_INT32, types, 5, 4);
        if (cases[i].scores) gw_arr(&g, "tokenizer.ggml.scores", GGUF_FLOAT32, cases[i].scores, 5, 4);
        gw_u32(&g, "tokenizer.ggml.bos_token_id", 1);
        gw_write(&g, path);
        gw_free(&g);
        Tokenizer *t = tokenizer_load(path, err, sizeof err);
        if (t) fail_msg("case %zu: accepted", i);
        if (!strstr(err, cases[i].want)) fail_msg("case %zu: \"%s\" does not name %s", i, err, cases[i].want);
    }
    /* a SentencePiece vocabulary with real scores: merges rebuilt, "\xe2\x96\x81a" is one token */
    GW g;
    gw_init(&g);
    gw_str(&g, "tokenizer.ggml.model", "llama");
    gw_arr_str(&g, "tokenizer.ggml.tokens", toks, 5);
    gw_arr(&g, "tokenizer.ggml.token_type", GGUF_INT32, types, 5, 4);
    gw_arr(&g, "tokenizer.ggml.scores", GGUF_FLOAT32, scored, 5, 4);
    gw_u32(&g, "tokenizer.ggml.bos_token_id", 1);
    gw_write(&g, path);
    gw_free(&g);
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    if (!t) fail_msg("%s", err);
    int32_t *ids;
    size_t k;
    if (tokenizer_encode(t, "a", 1, 1, &ids, &k, err, sizeof err)) fail_msg("%s", err);
    /* "a" -> prepend U+2581: "\xe2\x96\x81a" is no merge of two vocabulary pieces (U+2581 alone is
     * not a token), so it falls back to unk + "a"; with BOS first */
    assert_true(k >= 2);
    assert_int_equal(ids[0], 1);
    free(ids);
    tokenizer_free(t);
}

/* The files llama.cpp's own tools made (tests/fixtures/gguf/README.md): scored against the HF
 * folder they came from; their tokenizers against tokenizer.json. */
static void test_llama_cpp_files(void **state) {
    char path[512], err[LCB_ERRLEN];
    /* convert_hf_to_gguf.py drops Mistral's sliding_window (llama.cpp's llama architecture has
     * none): mistral_swa's GGUF is compared with its HF folder under a config without it */
    char noswa[512];
    snprintf(noswa, sizeof noswa, "%s/mistral_noswa.json", tu_tmpdir());
    cJSON *mc = tu_read_json(FIXTURES "/mistral_swa/config.json");
    cJSON_DeleteItemFromObject(mc, "sliding_window");
    char *mt = cJSON_Print(mc);
    tu_write_file(noswa, mt, strlen(mt));
    free(mt);
    cJSON_Delete(mc);
    /* bounds: F32 identical; the rest as measured here (max / mean |dNLL| over the reference
     * ids: F16 2.5e-3 / 7.6e-4, BF16 2.0e-2 / 6.6e-3, Q6_K 6.8e-2 / 1.9e-2, Q4_K_M 0.63 / 0.16),
     * with about 2x room */
    struct { const char *file, *fx, *config; double max, mean; } cases[] = {
        {"llama_gqa-F32.gguf", "llama_gqa", NULL, 0, 0},
        {"llama_gqa-Q6_K.gguf", "llama_gqa", NULL, 0.15, 0.04},
        {"llama_gqa-Q4_K_M.gguf", "llama_gqa", NULL, 1.3, 0.35},
        {"mistral_swa-F16.gguf", "mistral_swa", noswa, 8e-3, 2e-3},
        {"llama_pi4-BF16.gguf", "llama_pi4", NULL, 5e-2, 1.5e-2},
    };
    int found = 0;
    for (size_t i = 0; i < N_OF(cases); i++) {
        if (!find_fixture(cases[i].file, path, sizeof path)) continue;
        found++;
        char refp[300], dir[256];
        snprintf(refp, sizeof refp, FIXTURES "/%s/reference.json", cases[i].fx);
        snprintf(dir, sizeof dir, FIXTURES "/%s", cases[i].fx);
        cJSON *ref = tu_read_json(refp);
        size_t T;
        int32_t *ids = tu_json_ids(ref, &T);
        double *hf = score(dir, cases[i].config, ids, T), *g = score(path, NULL, ids, T), mean = 0;
        expect_blocks_equal_fp32(path, ids, T);
        for (size_t k = 0; k + 1 < T; k++) mean += fabs(g[k] - hf[k]) / (double)(T - 1);
        double d = max_diff(hf, g, T - 1);
        print_message("%-24s (llama.cpp) vs HF %s: |dNLL| max %.2g mean %.2g\n", cases[i].file, cases[i].fx, d, mean);
        if (d > cases[i].max || mean > cases[i].mean) fail_msg("%s: |dNLL| max %g (bound %g), mean %g (bound %g)", cases[i].file, d, cases[i].max, mean, cases[i].mean);
        free(hf); free(g); free(ids);
        cJSON_Delete(ref);
    }
    /* a reference model: the converter's tokenizer (gpt2, pre gpt-2 via conv.py) and weights */
    if (find_fixture("lcb-2.5m-Q4_K_M.gguf", path, sizeof path)) {
        found++;
        int n = compare_tokenizers(path, "models/lcb-2.5m/tokenizer.json", FIXTURES "/tokenizer/llama3_cases.jsonl");
        Tokenizer *t = tokenizer_load("models/lcb-2.5m", err, sizeof err);
        if (!t) fail_msg("%s", err);
        const char *text = "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
                           "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.";
        int32_t *ids;
        size_t T;
        if (tokenizer_encode(t, text, strlen(text), 1, &ids, &T, err, sizeof err)) fail_msg("%s", err);
        tokenizer_free(t);
        double *hf = score("models/lcb-2.5m", NULL, ids, T), *g = score(path, NULL, ids, T), mean = 0;
        expect_blocks_equal_fp32(path, ids, T);
        for (size_t k = 0; k + 1 < T; k++) mean += fabs(g[k] - hf[k]) / (double)(T - 1);
        double d = max_diff(hf, g, T - 1);
        /* measured 0.52 / 0.11 (Q4_K_M of a 160-wide model is mostly Q5_0: rows of 160 and
         * 432 are no whole 256-blocks, so llama-quantize falls back) */
        print_message("lcb-2.5m-Q4_K_M.gguf (llama.cpp) vs HF: |dNLL| max %.2g mean %.2g; tokenizer equal on %d texts\n", d, mean, n);
        if (d > 1.0 || mean > 0.25) fail_msg("lcb-2.5m Q4_K_M: |dNLL| max %g mean %g", d, mean);
        free(hf); free(g); free(ids);
    }
    /* the converter's vocab-only files of the two real tokenizers */
    if (find_fixture("llama3_tok-vocab.gguf", path, sizeof path)) {
        found++;
        compare_tokenizers(path, FIXTURES "/tokenizer/llama3_tokenizer.json", FIXTURES "/tokenizer/llama3_cases.jsonl");
        print_message("llama3_tok-vocab.gguf (tokenizer.ggml.pre smaug-bpe): equal to llama3_tokenizer.json on the cases\n");
    }
    if (find_fixture("mistral_tok-vocab.gguf", path, sizeof path)) {
        found++;
        /* made from tokenizer.json alone, every score -1000: refused, naming why */
        assert_null(tokenizer_load(path, err, sizeof err));
        assert_non_null(strstr(err, "scores are all equal"));
    }
    if (!found) {
        print_message("SKIPPED: none of llama.cpp's GGUF files in " GGUF_FIXTURES " or .devwork/gguf_out\n");
        skip();
    }
}

/* ---------------------------------------------------------------- lcbench run on a GGUF */

static char *sql_text(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

static void file_sha256(const char *path, char hex[65]) {
    char err[LCB_ERRLEN];
    Sha256 h;
    sha256_init(&h);
    if (sha256_file(path, &h, err, sizeof err)) fail_msg("%s", err);
    sha256_hex(&h, hex);
}

/* "Q5_0 12" for each ggml type of the file, counted here from its tensor infos */
static void expect_type_counts(const char *path, const char *detail) {
    char err[LCB_ERRLEN];
    GgufFile g;
    if (gguf_open(&g, path, err, sizeof err)) fail_msg("%s", err);
    int seen[QT_COUNT] = {0};
    for (uint64_t i = 0; i < g.n_tensors; i++) seen[g.tensors[i].type]++;
    int kinds = 0;
    for (int t = 0; t < QT_COUNT; t++) {
        if (!seen[t]) continue;
        char want[64];
        snprintf(want, sizeof want, "%s %d", quant_type_name((uint32_t)t), seen[t]);
        if (!strstr(detail, want)) fail_msg("%s: the model_quant event \"%s\" lacks \"%s\"", path, detail, want);
        kinds++;
    }
    gguf_close(&g);
    assert_true(kinds >= 1);
}

static const char *const ishmael =
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing "
    "particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. It is a "
    "way I have of driving off the spleen and regulating the circulation. Whenever I find myself growing grim about the mouth; "
    "whenever it is a damp, drizzly November in my soul; whenever I find myself involuntarily pausing before coffin warehouses, "
    "and bringing up the rear of every funeral I meet; then, I account it high time to get to sea as soon as I can.";

/* `lcbench run --model FILE.gguf`: config from the file, its own tokenizer by default, the
 * file's SHA-256 as model_hash, its file type as dtype and its tensor types as an event. */
static void test_run_provenance(void **state) {
    char path[512], db[512], txt[512], sql[1024], hex[65], *out;
    snprintf(txt, sizeof txt, "%s/ishmael.txt", tu_tmpdir());
    tu_write_file(txt, ishmael, strlen(ishmael));
    if (!find_fixture("llama_gqa-Q4_K_M.gguf", path, sizeof path)) fail_msg("tests/fixtures/gguf/llama_gqa-Q4_K_M.gguf is missing");
    snprintf(db, sizeof db, "%s/prov.db", tu_tmpdir());
    if (tu_run(&out, "%s run --db %s --model %s --protocol chunks --ctx 16 --strategy dense --dataset %s --no-progress", tu_lcbench(), db, path, txt))
        fail_msg("run on a GGUF: %s", out);
    free(out);
    file_sha256(path, hex);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *v = sql_text(h, "SELECT model_hash FROM runs WHERE id=1");
    assert_non_null(v);
    assert_string_equal(v, hex);   /* the file's own SHA-256, as sha256sum prints it */
    free(v);
    v = sql_text(h, "SELECT tokenizer FROM runs WHERE id=1");
    assert_non_null(v);
    assert_string_equal(v, path);  /* its tokenizer.ggml.*, no tokenizer.json needed */
    free(v);
    v = sql_text(h, "SELECT tokenizer_hash FROM runs WHERE id=1");
    assert_string_equal(v, hex);
    free(v);
    v = sql_text(h, "SELECT dtype FROM runs WHERE id=1");
    assert_string_equal(v, "Q4_K_M");  /* general.file_type 15 */
    free(v);
    v = sql_text(h, "SELECT detail FROM events WHERE run_id=1 AND kind='model_quant'");
    if (!v) fail_msg("no model_quant event");
    expect_type_counts(path, v);
    assert_non_null(strstr(v, "Q5_0"));  /* Q4_K_M of a 64-wide model: Q5_0 where Q4_K cannot go (README) */
    free(v);
    sqlite3_close(h);
    /* a GGUF without a tokenizer (as test_gguf writes them) and a dataset of ids: no tokenizer
     * recorded, the Q8_0 tensors counted */
    snprintf(path, sizeof path, "%s/prov-q8.gguf", tu_tmpdir());
    write_fixture_gguf("llama_gqa", QT_Q8_0, path);
    snprintf(txt, sizeof txt, "%s/prov.ids", tu_tmpdir());
    FILE *f = fopen(txt, "w");
    for (int i = 0; i < 80; i++) fprintf(f, "%d ", (i * 37 + 5) % 500);
    fclose(f);
    if (tu_run(&out, "%s run --db %s --model %s --protocol chunks-bos --ctx 16 --strategy dense --dataset %s --token-format ids --no-progress",
               tu_lcbench(), db, path, txt))
        fail_msg("run on a GGUF without a tokenizer: %s", out);
    free(out);
    file_sha256(path, hex);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    v = sql_text(h, "SELECT model_hash FROM runs WHERE id=2");
    assert_string_equal(v, hex);
    free(v);
    assert_null(sql_text(h, "SELECT tokenizer FROM runs WHERE id=2"));
    v = sql_text(h, "SELECT protocol FROM runs WHERE id=2");
    assert_string_equal(v, "chunks-bos");
    free(v);
    v = sql_text(h, "SELECT detail FROM events WHERE run_id=2 AND kind='model_quant'");
    if (!v) fail_msg("no model_quant event");
    expect_type_counts(path, v);
    assert_non_null(strstr(v, "Q8_0"));
    free(v);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM runs");
    v = sql_text(h, sql);
    assert_string_equal(v, "2");
    free(v);
    sqlite3_close(h);
}

/* ---------------------------------------------------------------- chunks-bos = llama-perplexity */

typedef struct { int64_t n_units, win[8], pos0[8], n[8]; float nll[8][16]; } Units;

static int collect_unit(void *ctx, const RunUnit *u) {
    Units *x = ctx;
    if (x->n_units >= 8 || u->n > 16) return 1;
    x->win[x->n_units] = u->win_start;
    x->pos0[x->n_units] = u->pos0;
    x->n[x->n_units] = u->n;
    memcpy(x->nll[x->n_units], u->nll, (size_t)u->n * sizeof *u->nll);
    x->n_units++;
    return 0;
}

static void run_protocol_units(const char *model, RunProtocol proto, int64_t L, const int32_t *ids, size_t T, Units *x) {
    char err[LCB_ERRLEN];
    Model m;
    if (model_open(&m, model, NULL, err, sizeof err)) fail_msg("%s", err);
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    ProtoParams p = {.proto = proto, .ctx = L, .chunk = 3};   /* fed 3 tokens at a time: the BOS swap only in the first feed */
    int64_t fail_pos;
    memset(x, 0, sizeof *x);
    if (protocol_run(&p, &s, &m, ids, T, 0, collect_unit, NULL, x, &fail_pos, err, sizeof err)) fail_msg("%s", err);
    model_free(&m);
}

/* By hand: chunk k is ids[kL .. kL+L) with its first token replaced by BOS, scored from a fresh
 * dense cache; only steps t = L/2 .. L-2 (the second half, the last token having no target) are
 * kept.  chunks-bos gives exactly those; plain chunks differs from chunk 1 on (its first token
 * is not BOS) and agrees on chunk 0 (the stream's BOS is its first token). */
static void test_chunks_bos_by_hand(void **state) {
    char path[512], err[LCB_ERRLEN];
    snprintf(path, sizeof path, "%s/chunks.gguf", tu_tmpdir());
    write_fixture_gguf("llama_gqa", QT_F32, path);
    ModelConfig c;
    if (config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    assert_true(c.bos_id >= 0);
    enum { L = 10, K = 3 };
    size_t T = K * L + 4;   /* the 4 left over make no chunk */
    int32_t ids[K * L + 4];
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)(2 + (i * 131 + 17) % (size_t)(c.vocab - 2));
    ids[0] = c.bos_id;      /* --bos first */
    Units bos, plain;
    run_protocol_units(path, PROTO_CHUNKS_BOS, L, ids, T, &bos);
    run_protocol_units(path, PROTO_CHUNKS, L, ids, T, &plain);
    assert_int_equal(bos.n_units, K);
    assert_int_equal(plain.n_units, K);
    double worst = 0, moved = 0;
    for (int k = 0; k < K; k++) {
        int32_t w[L];
        memcpy(w, ids + k * L, sizeof w);
        w[0] = c.bos_id;
        double *hand = score(path, NULL, w, L);
        assert_int_equal(bos.win[k], k * L);
        assert_int_equal(bos.pos0[k], L / 2);
        assert_int_equal(bos.n[k], L - 1 - L / 2);   /* llama-perplexity's n_ctx - 1 - first */
        for (int64_t i = 0; i < bos.n[k]; i++) worst = fmax(worst, fabs(bos.nll[k][i] - hand[L / 2 + i]));
        for (int64_t i = 0; i < plain.n[k]; i++) {
            double d = fabs(plain.nll[k][i] - bos.nll[k][i]);
            if (k == 0) assert_true(d == 0);   /* the same tokens fed */
            else moved = fmax(moved, d);
        }
        free(hand);
    }
    /* float storage of the NLLs and a chunked feed against one forward: 1e-5 */
    if (worst > 1e-5) fail_msg("chunks-bos differs from the hand computation by %g", worst);
    if (!(moved > 1e-3)) fail_msg("chunks-bos and chunks agree past chunk 0 (%g): the BOS was not fed", moved);
    /* a model without a BOS id: refused before a run row exists */
    ProtoParams p = {.proto = PROTO_CHUNKS_BOS, .ctx = L};
    Model m;
    if (model_open(&m, path, NULL, err, sizeof err)) fail_msg("%s", err);
    m.cfg.bos_id = -1;
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    Units x;
    int64_t fp;
    assert_int_not_equal(protocol_run(&p, &s, &m, ids, T, 0, collect_unit, NULL, &x, &fp, err, sizeof err), 0);
    assert_non_null(strstr(err, "BOS"));
    model_free(&m);
}

/* The number llama-perplexity itself gives for a llama.cpp-made file (commit 3f545bec, CPU):
 *   printf '%s' "$ISHMAEL" > small.txt     (the text above, 590 bytes, 301 tokens with BOS)
 *   llama-perplexity -m tests/fixtures/gguf/llama_gqa-F32.gguf -f small.txt -c 32 -b 32 -t 2
 *   -> [1]764.4652,...,[9]759.2329  Final estimate: PPL = 759.2329
 * `run --protocol chunks-bos --ctx 32 --bos first` on the same file and text matches it (measured
 * 759.1569, 1.0e-4 relative: llama.cpp's own rounding); plain chunks does not (769.85). */
static void test_chunks_bos_llama_perplexity(void **state) {
    char path[512], db[512], txt[512], *out;
    if (!find_fixture("llama_gqa-F32.gguf", path, sizeof path)) fail_msg("tests/fixtures/gguf/llama_gqa-F32.gguf is missing");
    snprintf(txt, sizeof txt, "%s/ishmael.txt", tu_tmpdir());
    tu_write_file(txt, ishmael, strlen(ishmael));
    snprintf(db, sizeof db, "%s/llama_ppl.db", tu_tmpdir());
    const double llama_ppl = 759.2329;
    double ppl[2];
    const char *protos[2] = {"chunks-bos", "chunks"};
    for (int i = 0; i < 2; i++) {
        if (tu_run(&out, "%s run --db %s --model %s --protocol %s --ctx 32 --strategy dense --dataset %s --bos first --no-progress",
                   tu_lcbench(), db, path, protos[i], txt))
            fail_msg("%s", out);
        cJSON *j = cJSON_Parse(out);
        if (!j) fail_msg("not a JSON summary: %s", out);
        ppl[i] = cJSON_GetObjectItem(j, "ppl")->valuedouble;
        assert_int_equal(cJSON_GetObjectItem(j, "steps")->valueint, 9 * (32 - 1 - 16));   /* 9 chunks of 301 tokens */
        cJSON_Delete(j);
        free(out);
    }
    print_message("llama-perplexity -c 32: %.4f; lcbench chunks-bos %.4f, chunks %.4f\n", llama_ppl, ppl[0], ppl[1]);
    if (fabs(ppl[0] / llama_ppl - 1) > 1e-3) fail_msg("chunks-bos PPL %.4f is not llama-perplexity's %.4f (within 0.1%%)", ppl[0], llama_ppl);
    if (!(fabs(ppl[1] / llama_ppl - 1) > 5e-3)) fail_msg("plain chunks (%.4f) should not match llama-perplexity (%.4f)", ppl[1], llama_ppl);
}

/* the fuzz target's seeds and saved crashes (tests/fuzz/corpus/gguf, regressions/gguf) replayed */
static void test_fuzz_replay(void **state) {
    const char *dirs[] = {"tests/fuzz/corpus/gguf", "tests/fuzz/regressions/gguf"};
    int n = 0;
    for (size_t k = 0; k < N_OF(dirs); k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) continue;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char path[600];
            snprintf(path, sizeof path, "%s/%s", dirs[k], e->d_name);
            size_t len;
            char *buf = tu_read_file(path, &len);
            fuzz_gguf_one((const uint8_t *)buf, len);
            /* every prefix of a seed too: the truncations a fuzzer tries first */
            if (k == 0)
                for (size_t cut = 0; cut < len; cut += len / 97 + 1) fuzz_gguf_one((const uint8_t *)buf, cut);
            free(buf);
            n++;
        }
        closedir(d);
    }
    assert_true(n >= 3);
    print_message("fuzz_gguf: %d inputs replayed (and their prefixes)\n", n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_gguf_py_reference),
        cmocka_unit_test(test_metadata_types),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_model_config),
        cmocka_unit_test(test_fixture_models),
        cmocka_unit_test(test_cli_score),
        cmocka_unit_test(test_fuzz_replay),
        cmocka_unit_test(test_tokenizer_gpt2),
        cmocka_unit_test(test_tokenizer_refusals),
        cmocka_unit_test(test_llama_cpp_files),
        cmocka_unit_test(test_run_provenance),
        cmocka_unit_test(test_chunks_bos_by_hand),
        cmocka_unit_test(test_chunks_bos_llama_perplexity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
