/*
 * test_loader.c — checkpoints as people publish them, and as strangers break them.
 *
 * From the llama_gqa fixture this builds, in a scratch folder: sharded copies (index.json +
 * two shards), F16/BF16 copies, and hostile copies (truncated file, header length past the end,
 * offsets past the end, overlapping tensors, a missing tensor, a wrong shape, a wrong dtype,
 * unknown architectures, malformed JSON, unsupported rope types, config numbers that would
 * make every NLL NaN, a FIFO / folder / link loop where a file should be, a file
 * truncated while it loads).  Each hostile copy must be
 * refused with a message naming the file and the field; each benign copy must give the same
 * logits as the original.
 */
#include "testutil.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "strategies/strategy.h"

#define SRC FIXTURES "/llama_gqa"

/* ---------------------------------------------------------------- safetensors surgery */

typedef struct { cJSON *hdr; uint8_t *data; size_t data_len; } StImage;

static StImage st_read(const char *path) {
    size_t len;
    char *buf = tu_read_file(path, &len);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | (uint8_t)buf[i];
    StImage im;
    im.hdr = cJSON_ParseWithLength(buf + 8, h);
    assert_non_null(im.hdr);
    im.data_len = len - 8 - h;
    im.data = malloc(im.data_len + 1);
    memcpy(im.data, buf + 8 + h, im.data_len);
    free(buf);
    return im;
}

static void st_write(const char *path, cJSON *hdr, const uint8_t *data, size_t n) {
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hl = strlen(h);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8; i++) fputc((int)((hl >> (8 * i)) & 0xff), f);
    fwrite(h, 1, hl, f);
    fwrite(data, 1, n, f);
    fclose(f);
    free(h);
}

/* A copy of the fixture folder at dir, whose model.safetensors the caller writes. */
static void mkcopy(const char *dir, const char *config_json) {
    mkdir(dir, 0755);
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (config_json) tu_write_file(p, config_json, strlen(config_json));
    else {
        size_t n;
        char *c = tu_read_file(SRC "/config.json", &n);
        tu_write_file(p, c, n);
        free(c);
    }
}

static char *scratch(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tu_tmpdir(), name);
    return p;
}

/* model_open must fail and its message contain every needle */
static void expect_open_error(const char *dir, const char *needle1, const char *needle2) {
    Model m;
    char err[LCB_ERRLEN] = "";
    int rc = model_open(&m, dir, NULL, err, sizeof err);
    if (rc == 0) { model_free(&m); fail_msg("%s: loaded, but should have been refused", dir); }
    if (needle1 && !strstr(err, needle1)) fail_msg("%s: message \"%s\" lacks \"%s\"", dir, err, needle1);
    if (needle2 && !strstr(err, needle2)) fail_msg("%s: message \"%s\" lacks \"%s\"", dir, err, needle2);
}

/* Logits of the fixture's input under dense, for comparison between copies. */
static float *logits_of(const char *dir, size_t *n_out) {
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, dir, NULL, err, sizeof err)) fail_msg("%s: %s", dir, err);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (i * 37 + 11) % m.cfg.vocab;
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
    float *lg = malloc(24 * m.cfg.vocab * sizeof(float));
    if (strategy_feed(&s, ids, 24, lg, err, sizeof err)) fail_msg("%s", err);
    strategy_end(&s);
    *n_out = 24 * (size_t)m.cfg.vocab;
    model_free(&m);
    return lg;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---------------------------------------------------------------- benign variants */

static void test_sharded(void **state) {
    StImage im = st_read(SRC "/model.safetensors");
    const char *dir = scratch("sharded");
    mkcopy(dir, NULL);
    /* tensors alternately into two shards, each re-based at offset 0 */
    cJSON *h[2] = {cJSON_CreateObject(), cJSON_CreateObject()}, *wm = cJSON_CreateObject();
    uint8_t *d[2] = {malloc(im.data_len), malloc(im.data_len)};
    size_t dl[2] = {0, 0};
    int k = 0;
    for (cJSON *e = im.hdr->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        int s = k++ % 2;
        cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, en = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        memcpy(d[s] + dl[s], im.data + b, en - b);
        cJSON *t = cJSON_Duplicate(e, 1);
        cJSON *no = cJSON_CreateArray();
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)dl[s]));
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)(dl[s] + en - b)));
        cJSON_ReplaceItemInObject(t, "data_offsets", no);
        cJSON_AddItemToObject(h[s], e->string, t);
        cJSON_AddStringToObject(wm, e->string, s ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
        dl[s] += en - b;
    }
    char p[600];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    st_write(p, h[0], d[0], dl[0]);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    st_write(p, h[1], d[1], dl[1]);
    cJSON *idx = cJSON_CreateObject();
    cJSON_AddItemToObject(idx, "weight_map", wm);
    char *js = cJSON_Print(idx);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    tu_write_file(p, js, strlen(js));
    size_t n1, n2;
    float *a = logits_of(SRC, &n1), *b = logits_of(dir, &n2);
    assert_int_equal(n1, n2);
    assert_true(max_diff(a, b, n1) == 0.0);
    /* an index naming a shard outside the folder is refused */
    char orig[128];
    snprintf(orig, sizeof orig, "%s", cJSON_GetObjectItem(wm, "model.norm.weight")->valuestring);
    cJSON_ReplaceItemInObject(wm, "model.norm.weight", cJSON_CreateString("../evil.safetensors"));
    free(js);
    js = cJSON_Print(idx);
    tu_write_file(p, js, strlen(js));
    expect_open_error(dir, "model.safetensors.index.json", "plain file name");
    /* an index naming a tensor its shard lacks */
    cJSON_ReplaceItemInObject(wm, "model.norm.weight", cJSON_CreateString(orig));
    cJSON_AddStringToObject(wm, "model.extra.weight", "model-00001-of-00002.safetensors");
    free(js);
    js = cJSON_Print(idx);
    tu_write_file(p, js, strlen(js));
    expect_open_error(dir, "model.extra.weight", "missing");
    free(js); free(a); free(b); free(d[0]); free(d[1]);
    cJSON_Delete(idx); cJSON_Delete(h[0]); cJSON_Delete(h[1]); cJSON_Delete(im.hdr); free(im.data);
}

static uint16_t f32_to_half(float f, int bf16) {
    union { float f; uint32_t u; } v = {f};
    if (bf16) return (uint16_t)((v.u + 0x7fff + ((v.u >> 16) & 1)) >> 16); /* round to nearest even */
    uint32_t sign = (v.u >> 16) & 0x8000;
    int e = (int)((v.u >> 23) & 0xff) - 127 + 15;
    uint32_t man = v.u & 0x7fffff;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static float half_to_f32(uint16_t h, int bf16) {
    if (bf16) { union { uint32_t u; float f; } v = {(uint32_t)h << 16}; return v.f; }
    return st_f16_to_f32(h);
}

/* F16 and BF16 files must load to exactly the rounded values: compare against an F32 file
 * holding those values. */
static void half_variant(int bf16) {
    StImage im = st_read(SRC "/model.safetensors");
    const char *dir = scratch(bf16 ? "bf16" : "f16");
    char dir32[512];
    snprintf(dir32, sizeof dir32, "%s/%s", tu_tmpdir(), bf16 ? "bf16_as_f32" : "f16_as_f32");
    mkcopy(dir, NULL);
    mkcopy(dir32, NULL);
    cJSON *hh = cJSON_Duplicate(im.hdr, 1);
    uint8_t *dh = malloc(im.data_len / 2 + 1), *d32 = malloc(im.data_len);
    size_t oh = 0;
    for (cJSON *e = hh->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, en = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        size_t n = (en - b) / 4;
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, im.data + b + 4 * i, 4);
            uint16_t h = f32_to_half(f, bf16);
            memcpy(dh + oh + 2 * i, &h, 2);
            float r = half_to_f32(h, bf16);
            memcpy(d32 + b + 4 * i, &r, 4);
        }
        cJSON_ReplaceItemInObject(e, "dtype", cJSON_CreateString(bf16 ? "BF16" : "F16"));
        cJSON *no = cJSON_CreateArray();
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)oh));
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)(oh + 2 * n)));
        cJSON_ReplaceItemInObject(e, "data_offsets", no);
        oh += 2 * n;
    }
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(p, hh, dh, oh);
    snprintf(p, sizeof p, "%s/model.safetensors", dir32);
    st_write(p, im.hdr, d32, im.data_len);
    size_t n1, n2;
    float *a = logits_of(dir, &n1), *b = logits_of(dir32, &n2);
    assert_true(max_diff(a, b, n1) == 0.0);
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, dir, NULL, err, sizeof err), 0);
    assert_string_equal(m.disk_dtype, bf16 ? "BF16" : "F16");
    model_free(&m);
    free(a); free(b); free(dh); free(d32);
    cJSON_Delete(hh); cJSON_Delete(im.hdr); free(im.data);
}

static void test_f16(void **state) { half_variant(0); }
static void test_bf16(void **state) { half_variant(1); }

/* ---------------------------------------------------------------- hostile variants */

/* Write a copy whose header was edited by fn. */
static const char *edited(const char *name, void (*fn)(cJSON *hdr)) {
    StImage im = st_read(SRC "/model.safetensors");
    fn(im.hdr);
    const char *dir = scratch(name);
    mkcopy(dir, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(p, im.hdr, im.data, im.data_len);
    cJSON_Delete(im.hdr);
    free(im.data);
    return dir;
}

static void set_offsets(cJSON *t, double b, double e) {
    cJSON *no = cJSON_CreateArray();
    cJSON_AddItemToArray(no, cJSON_CreateNumber(b));
    cJSON_AddItemToArray(no, cJSON_CreateNumber(e));
    cJSON_ReplaceItemInObject(t, "data_offsets", no);
}

static void ed_past_end(cJSON *h) {
    cJSON *t = cJSON_GetObjectItem(h, "model.norm.weight");
    set_offsets(t, 819000, 819256);
}
static void ed_overlap(cJSON *h) {
    cJSON *a = cJSON_GetObjectItem(h, "model.layers.0.input_layernorm.weight");
    cJSON *b = cJSON_GetObjectItem(h, "model.layers.1.input_layernorm.weight");
    cJSON *off = cJSON_GetObjectItem(a, "data_offsets");
    set_offsets(b, cJSON_GetArrayItem(off, 0)->valuedouble, cJSON_GetArrayItem(off, 1)->valuedouble);
}
static void ed_missing(cJSON *h) { cJSON_DeleteItemFromObject(h, "model.layers.1.self_attn.k_proj.weight"); }
static void ed_shape(cJSON *h) {
    cJSON *t = cJSON_GetObjectItem(h, "model.layers.0.self_attn.q_proj.weight");
    cJSON *s = cJSON_CreateArray();
    cJSON_AddItemToArray(s, cJSON_CreateNumber(32));
    cJSON_AddItemToArray(s, cJSON_CreateNumber(128));
    cJSON_ReplaceItemInObject(t, "shape", s);
}
static void ed_dtype(cJSON *h) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.layers.2.mlp.up_proj.weight"), "dtype", cJSON_CreateString("I32"));
}
static void ed_bad_dtype(cJSON *h) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.norm.weight"), "dtype", cJSON_CreateString("F128"));
}
static void ed_span(cJSON *h) { /* offsets shorter than the shape needs */
    cJSON *t = cJSON_GetObjectItem(h, "model.norm.weight");
    double b = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble;
    set_offsets(t, b, b + 128);
}
static void ed_neg_shape(cJSON *h) {
    cJSON *s = cJSON_CreateArray();
    cJSON_AddItemToArray(s, cJSON_CreateNumber(-64));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.norm.weight"), "shape", s);
}
static void ed_huge_shape(cJSON *h) { /* product overflows 64 bits */
    cJSON *s = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber(4294967296.0));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.norm.weight"), "shape", s);
}

static void test_hostile_safetensors(void **state) {
    expect_open_error(edited("past_end", ed_past_end), "model.norm.weight", "past the end");
    expect_open_error(edited("overlap", ed_overlap), "overlap", "input_layernorm");
    expect_open_error(edited("missing", ed_missing), "model.layers.1.self_attn.k_proj.weight", "missing");
    expect_open_error(edited("shape", ed_shape), "q_proj.weight", "shape [32, 128]");
    expect_open_error(edited("dtype", ed_dtype), "up_proj.weight", "I32");
    expect_open_error(edited("bad_dtype", ed_bad_dtype), "model.norm.weight", "F128");
    expect_open_error(edited("span", ed_span), "model.norm.weight", "data_offsets");
    expect_open_error(edited("neg_shape", ed_neg_shape), "model.norm.weight", "shape");
    expect_open_error(edited("huge_shape", ed_huge_shape), "model.norm.weight", "overflow");

    /* truncated file: cut the data area */
    size_t len;
    char *buf = tu_read_file(SRC "/model.safetensors", &len);
    const char *dir = scratch("truncated");
    mkcopy(dir, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    tu_write_file(p, buf, len / 2);
    expect_open_error(dir, "model.safetensors", "past the end");
    /* truncated inside the header, and shorter than the length field */
    tu_write_file(p, buf, 100);
    expect_open_error(dir, "model.safetensors", "header length");
    tu_write_file(p, buf, 5);
    expect_open_error(dir, "model.safetensors", "truncated");
    /* header that is not JSON */
    memcpy(buf + 8, "{garbage", 8);
    tu_write_file(p, buf, len);
    expect_open_error(dir, "model.safetensors", "JSON");
    free(buf);
    /* no weights at all */
    dir = scratch("noweights");
    mkcopy(dir, NULL);
    expect_open_error(dir, "noweights", "model.safetensors");
    expect_open_error(scratch("does-not-exist"), "does-not-exist", NULL);
}

static void config_case(const char *name, const char *from, const char *to, const char *needle1, const char *needle2) {
    size_t n;
    char *c = tu_read_file(SRC "/config.json", &n), *out = malloc(n + 512);
    char *at = strstr(c, from);
    if (!at) fail_msg("config does not contain %s", from);
    size_t pre = at - c;
    memcpy(out, c, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    const char *dir = scratch(name);
    mkcopy(dir, out);
    size_t l;
    char *w = tu_read_file(SRC "/model.safetensors", &l);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    tu_write_file(p, w, l);
    expect_open_error(dir, needle1, needle2);
    free(w); free(c); free(out);
}

static void test_hostile_config(void **state) {
    config_case("arch", "\"model_type\": \"llama\"", "\"model_type\": \"bert\"", "config.json", "bert");
    config_case("malformed", "\"hidden_size\": 64,", "\"hidden_size\": 64,,", "config.json", "malformed JSON");
    config_case("type", "\"hidden_size\": 64", "\"hidden_size\": \"64\"", "config.json", "hidden_size");
    config_case("neg", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": -3", "config.json", "num_hidden_layers");
    config_case("gqa", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "config.json", "key/value heads 3");
    config_case("dims", "\"hidden_size\": 64", "\"hidden_size\": 48", "model.safetensors", "config implies [512, 48]");
    config_case("yarn", "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\", \"factor\": 4.0", "config.json", "yarn");
    config_case("dynamic", "\"rope_type\": \"default\"", "\"rope_type\": \"dynamic\", \"factor\": 2.0", "config.json", "dynamic");
    config_case("nofactor", "\"rope_type\": \"default\"", "\"rope_type\": \"linear\"", "config.json", "factor");
    config_case("empty", "{", "", "config.json", "JSON");
}

/* ---------------------------------------------------------------- numbers that make NaNs (issue 13) */

/* A fixture's config.json with `from` replaced by `to` must be refused, the message naming the
 * file and `needle`. */
static void config_refused(const char *fixture, const char *from, const char *to, const char *needle) {
    char path[256], err[LCB_ERRLEN] = "";
    snprintf(path, sizeof path, FIXTURES "/%s/config.json", fixture);
    size_t n;
    char *c = tu_read_file(path, &n), *out = malloc(n + strlen(to) + 1);
    char *at = strstr(c, from);
    if (!at) fail_msg("%s does not contain %s", path, from);
    memcpy(out, c, (size_t)(at - c));
    strcpy(out + (at - c), to);
    strcat(out, at + strlen(from));
    ModelConfig cfg;
    if (config_parse(&cfg, out, path, err, sizeof err) == 0)
        fail_msg("%s with %s: accepted (norm_eps %g, rope_factor %g), should have been refused", fixture, to, cfg.norm_eps, cfg.rope_factor);
    if (!strstr(err, path) || !strstr(err, needle)) fail_msg("%s with %s: message \"%s\" lacks \"%s\"", fixture, to, err, needle);
    free(c);
    free(out);
}

static void test_config_nan_makers(void **state) {
    /* a non-positive epsilon: 1/sqrt(0 + 0) on a zero row, NaN NLLs recorded as a perfect model */
    config_refused("llama_gqa", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1", "rms_norm_eps");
    config_refused("llama_gqa", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0", "rms_norm_eps");
    config_refused("llama_gqa", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e-300", "rms_norm_eps");
    config_refused("gptneox_partial_rotary", "\"layer_norm_eps\": 1e-05", "\"layer_norm_eps\": 0.0", "layer_norm_eps");
    config_refused("falcon_mqa", "\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": -1e-05", "layer_norm_epsilon");
    config_refused("llama_gqa", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e999", "rms_norm_eps"); /* Inf */
    /* positive and finite, but a RoPE frequency of 1/1e-320 = Inf: sin(Inf) is NaN */
    config_refused("llama_gqa", "\"rope_type\": \"default\"", "\"rope_type\": \"linear\", \"factor\": 1e-320", "RoPE frequency");
    config_refused("llama_gqa", "\"rope_type\": \"default\"",
                   "\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 0, \"high_freq_factor\": 4", "low_freq_factor");
    /* the end to end path names the file too */
    config_case("eps", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1", "config.json", "rms_norm_eps");
    /* real values still load */
    ModelConfig c;
    char err[LCB_ERRLEN];
    const char *ok = "{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":1,\"intermediate_size\":8,\"rms_norm_eps\":1e-12,\"rope_theta\":1e6}";
    if (config_parse(&c, ok, "inline", err, sizeof err)) fail_msg("%s", err);
    /* the same checks for a config built from another format's metadata (GGUF) */
    assert_int_equal(config_check_numbers(&c, "inline", err, sizeof err), 0);
    ModelConfig bad = c;
    bad.norm_eps = 0;
    assert_int_equal(config_check_numbers(&bad, "meta.gguf", err, sizeof err), -1);
    assert_non_null(strstr(err, "meta.gguf"));
    assert_non_null(strstr(err, "epsilon"));
    bad = c;
    bad.rope_factor = NAN;
    assert_int_equal(config_check_numbers(&bad, "meta.gguf", err, sizeof err), -1);
    assert_non_null(strstr(err, "scaling factor"));
}

/* ---------------------------------------------------------------- special files (issue 13) */

/* Folder `name` holding the fixture's files except `special`, which the caller makes. */
static const char *special_dir(const char *name, const char *special, char *p, size_t plen) {
    const char *dir = scratch(name);
    char d[600];
    snprintf(d, sizeof d, "%s", dir);
    mkdir(d, 0755);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        if (!strcmp(files[i], special)) continue;
        char src[300], dst[700];
        snprintf(src, sizeof src, SRC "/%s", files[i]);
        snprintf(dst, sizeof dst, "%s/%s", d, files[i]);
        size_t n;
        char *c = tu_read_file(src, &n);
        tu_write_file(dst, c, n);
        free(c);
    }
    snprintf(p, plen, "%s/%s", d, special);
    unlink(p);
    rmdir(p);
    return dir;
}

/* A FIFO named config.json, model.safetensors or model.safetensors.index.json blocked forever in
 * open(); a folder named config.json said "out of memory reading 9223372036854775807 bytes"; a
 * link loop said "no model.safetensors in this folder".  Each is now named for what it is. */
static void test_special_files(void **state) {
    char p[800], dir[600];
    alarm(30); /* the old readers blocked forever: die rather than hang */
    const char *names[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(dir, sizeof dir, "%s", special_dir("fifo", names[i], p, sizeof p));
        assert_int_equal(mkfifo(p, 0600), 0);
        expect_open_error(dir, names[i], "FIFO");
        unlink(p);
        assert_int_equal(mkdir(p, 0700), 0);
        expect_open_error(dir, names[i], "a folder");
        rmdir(p);
        assert_int_equal(symlink(names[i], p), 0); /* a link to itself */
        expect_open_error(dir, names[i], "symbolic link loop");
        unlink(p);
        assert_int_equal(symlink("nowhere", p), 0);
        expect_open_error(dir, names[i], "does not exist");
        unlink(p);
    }
    /* no model.safetensors, and the index is a FIFO */
    snprintf(dir, sizeof dir, "%s", special_dir("fifo_index", "model.safetensors", p, sizeof p));
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    expect_open_error(dir, "model.safetensors.index.json", "FIFO");
    unlink(p);
    alarm(0);
    /* the one reader, directly */
    char *data = NULL, err[LCB_ERRLEN];
    size_t len;
    assert_int_equal(lcb_read_file("/dev/null", &data, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "character device"));
    assert_int_equal(lcb_read_file(SRC "/config.json", &data, &len, err, sizeof err), 0);
    assert_int_equal(len, strlen(data));
    free(data);
}

/* ---------------------------------------------------------------- truncated while loading (issue 13) */

/* Cutting a checkpoint short after st_open mapped it turned the tensor copy into SIGBUS, which
 * killed lcbench.  The copy now fails with a message naming the file and tensor (and the guard
 * works again for the next tensor: the signal mask is restored). */
static void test_truncated_while_loading(void **state) {
    const size_t n = 1 << 16; /* 256 KiB of F32: many pages past the cut */
    const char *path = scratch("cut.safetensors");
    cJSON *hdr = cJSON_CreateObject();
    const char *names[] = {"a", "b"};
    const char *dt[] = {"F32", "BF16"};
    size_t off = 0;
    for (int i = 0; i < 2; i++) {
        cJSON *t = cJSON_AddObjectToObject(hdr, names[i]);
        cJSON_AddStringToObject(t, "dtype", dt[i]);
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)n));
        size_t bytes = n * (i ? 2 : 4);
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    uint8_t *data = calloc(off, 1);
    st_write(path, hdr, data, off);
    char *h = cJSON_PrintUnformatted(hdr);
    size_t header_end = 8 + strlen(h);
    free(h);
    StFile st;
    char err[LCB_ERRLEN] = "";
    if (st_open(&st, path, err, sizeof err)) fail_msg("%s", err);
    float *out = malloc(n * sizeof *out);
    assert_int_equal(truncate(path, (off_t)header_end), 0); /* another process cuts the file */
    for (int i = 0; i < 2; i++) {
        const StTensor *t = st_find(&st, names[i]);
        assert_non_null(t);
        err[0] = 0;
        assert_int_equal(st_to_f32(t, out, err, sizeof err), -1);
        if (!strstr(err, path) || !strstr(err, "SIGBUS") || !strstr(err, names[i])) fail_msg("message \"%s\"", err);
    }
    st_close(&st);
    /* an untouched file still reads */
    st_write(path, hdr, data, off);
    if (st_open(&st, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(st_to_f32(st_find(&st, "a"), out, err, sizeof err), 0);
    st_close(&st);
    free(out);
    free(data);
    cJSON_Delete(hdr);
}

/* llama3 rope scaling is implemented: it loads and changes the numbers only at low frequency */
static void test_llama3_rope(void **state) {
    ModelConfig c;
    char err[LCB_ERRLEN];
    const char *js = "{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":1,\"intermediate_size\":8,\"rope_theta\":500000.0,"
                     "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
                     "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}";
    if (config_parse(&c, js, "inline", err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(c.rope_type, ROPE_LLAMA3);
    double f[32];
    config_rope_inv_freq(&c, 0, f);
    assert_true(fabs(f[0] - 1.0) < 1e-12);                 /* high frequency: unchanged */
    double raw = 1.0 / pow(500000.0, 62.0 / 64);
    assert_true(fabs(f[31] - raw / 8) < 1e-15);            /* low frequency: divided by factor */
}

/* random: shapes build, and refuse unknown names */
static void test_random_models(void **state) {
    Model m;
    char err[LCB_ERRLEN];
    assert_int_equal(model_open(&m, "random:llama-tiny:7", NULL, err, sizeof err), 0);
    assert_int_equal(m.cfg.dim, 64);
    model_free(&m);
    assert_int_equal(model_open(&m, "random:nope", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown shape"));
    assert_int_equal(model_open(&m, "random:llama-tiny:x", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "seed"));
    ModelConfig c;
    assert_int_equal(config_random_shape(&c, "llama2-70b", err, sizeof err), 0);
    uint64_t p = config_n_params(&c);
    assert_true(p > 68e9 && p < 70e9);
    assert_int_equal(config_random_shape(&c, "llama2-7b", err, sizeof err), 0);
    p = config_n_params(&c);
    assert_true(p > 6.6e9 && p < 6.8e9);
}

/* ---------------------------------------------------------------- Falcon layouts */

/* The falcon_mqa fixture (4 query heads, 1 KV head, head_dim 16) rewritten into the two other
 * Falcon QKV layouts, with the key/value head replicated so that the model computes the same
 * function: its logits must still match the fixture's transformers reference.
 *   grouped:  new_decoder_architecture, num_kv_heads 2: per group [q q k v]; the attention and
 *             MLP norms ln_attn / ln_mlp are both copies of input_layernorm;
 *   per-head: multi_query false, 4 KV heads: per head [q k v]. */
#define FMQA FIXTURES "/falcon_mqa"
typedef struct { cJSON *hdr; uint8_t *data; size_t n, cap; } StBuild;

static void sb_add(StBuild *b, const char *name, const float *v, int64_t d0, int64_t d1) {
    size_t bytes = (size_t)d0 * (d1 > 0 ? d1 : 1) * 4;
    if (b->n + bytes > b->cap) { b->cap = (b->n + bytes) * 2; b->data = realloc(b->data, b->cap); }
    memcpy(b->data + b->n, v, bytes);
    cJSON *t = cJSON_CreateObject(), *sh = cJSON_CreateArray();
    cJSON_AddStringToObject(t, "dtype", "F32");
    cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)d0));
    if (d1 > 0) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)d1));
    cJSON_AddItemToObject(t, "shape", sh);
    cJSON *off = cJSON_CreateArray();
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)b->n));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(b->n + bytes)));
    cJSON_AddItemToObject(t, "data_offsets", off);
    cJSON_AddItemToObject(b->hdr, name, t);
    b->n += bytes;
}

static const float *im_tensor(const StImage *im, const char *name, int64_t *d0, int64_t *d1) {
    cJSON *t = cJSON_GetObjectItem(im->hdr, name);
    assert_non_null(t);
    cJSON *sh = cJSON_GetObjectItem(t, "shape");
    *d0 = (int64_t)cJSON_GetArrayItem(sh, 0)->valuedouble;
    *d1 = cJSON_GetArraySize(sh) > 1 ? (int64_t)cJSON_GetArrayItem(sh, 1)->valuedouble : -1;
    return (const float *)(im->data + (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble);
}

static void falcon_variant(const char *name, int grouped) {
    const int H = 4, hd = 16, dim = 64, kvh = grouped ? 2 : 4, per = grouped ? H / kvh + 2 : 3;
    StImage im = st_read(FMQA "/model.safetensors");
    StBuild b = {cJSON_CreateObject(), NULL, 0, 0};
    float *q = malloc((size_t)kvh * per * hd * dim * 4);
    for (cJSON *e = im.hdr->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        int64_t d0, d1;
        const float *v = im_tensor(&im, e->string, &d0, &d1);
        char nm[256];
        if (strstr(e->string, "query_key_value")) {
            /* MQA rows: q heads 0..3, k, v -> the variant's row order */
            size_t r = 0;
            for (int g = 0; g < kvh; g++) {
                int nq = grouped ? H / kvh : 1;
                for (int i = 0; i < nq; i++, r += hd) memcpy(q + r * dim, v + (size_t)(g * nq + i) * hd * dim, (size_t)hd * dim * 4);
                memcpy(q + r * dim, v + (size_t)H * hd * dim, (size_t)hd * dim * 4), r += hd;
                memcpy(q + r * dim, v + (size_t)(H + 1) * hd * dim, (size_t)hd * dim * 4), r += hd;
            }
            sb_add(&b, e->string, q, (int64_t)r, dim);
        } else if (grouped && strstr(e->string, "input_layernorm")) {
            const char *suffix = strstr(e->string, "input_layernorm") + strlen("input_layernorm");
            size_t pre = strstr(e->string, "input_layernorm") - e->string;
            snprintf(nm, sizeof nm, "%.*sln_attn%s", (int)pre, e->string, suffix);
            sb_add(&b, nm, v, d0, d1);
            snprintf(nm, sizeof nm, "%.*sln_mlp%s", (int)pre, e->string, suffix);
            sb_add(&b, nm, v, d0, d1);
        } else sb_add(&b, e->string, v, d0, d1);
    }
    (void)per;
    const char *dir = scratch(name);
    size_t n;
    char *cfg = tu_read_file(FMQA "/config.json", &n), *out = malloc(n + 256);
    cJSON *cj = cJSON_Parse(cfg);
    cJSON_ReplaceItemInObject(cj, "new_decoder_architecture", cJSON_CreateBool(grouped));
    cJSON_ReplaceItemInObject(cj, "multi_query", cJSON_CreateBool(0));
    cJSON_ReplaceItemInObject(cj, "num_kv_heads", cJSON_CreateNumber(kvh));
    char *js = cJSON_Print(cj);
    mkcopy(dir, js);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(p, b.hdr, b.data, b.n);
    /* the fixture's reference logits */
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, dir, NULL, err, sizeof err)) fail_msg("%s: %s", name, err);
    assert_int_equal(m.cfg.qkv_layout, grouped ? QKV_GROUPED : QKV_PER_HEAD);
    assert_int_equal(m.cfg.n_kv, kvh);
    assert_int_equal(m.cfg.shared_norm, 0 == grouped ? 1 : 0);
    cJSON *ref = tu_read_json(FMQA "/reference.json");
    cJSON *ids = cJSON_GetObjectItem(ref, "input_ids");
    int T = cJSON_GetArraySize(ids), V = m.cfg.vocab;
    int32_t *tok = malloc(T * sizeof *tok);
    for (int i = 0; i < T; i++) tok[i] = cJSON_GetArrayItem(ids, i)->valueint;
    Strategy s;
    assert_int_equal(strategy_parse(&s, "dense", err, sizeof err), 0);
    assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
    float *lg = malloc((size_t)T * V * sizeof(float));
    if (strategy_feed(&s, tok, T, lg, err, sizeof err)) fail_msg("%s", err);
    double d = 0;
    int t = 0;
    for (cJSON *row = cJSON_GetObjectItem(ref, "dense_logits")->child; row; row = row->next, t++) {
        int k = 0;
        for (cJSON *x = row->child; x; x = x->next, k++) d = fmax(d, fabs(x->valuedouble - lg[(size_t)t * V + k]));
    }
    if (d > 1e-4) fail_msg("%s: max |logit - reference| = %g", name, d); /* SPEC §4 tolerance */
    strategy_end(&s);
    model_free(&m);
    free(lg); free(tok); free(q); free(b.data); free(cfg); free(out); free(js);
    cJSON_Delete(ref); cJSON_Delete(cj); cJSON_Delete(b.hdr); cJSON_Delete(im.hdr); free(im.data);
}

static void test_falcon_layouts(void **state) {
    falcon_variant("falcon_grouped", 1);
    falcon_variant("falcon_per_head", 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_hostile_safetensors),
        cmocka_unit_test(test_hostile_config),
        cmocka_unit_test(test_llama3_rope),
        cmocka_unit_test(test_random_models),
        cmocka_unit_test(test_falcon_layouts),
        cmocka_unit_test(test_config_nan_makers),
        cmocka_unit_test(test_special_files),
        cmocka_unit_test(test_truncated_while_loading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
