/*
 * generate.c — the sampler and the decoding loop (see generate.h).  Sampling follows the
 * usual order (HF generate, llama.cpp): logits / temperature, keep the top-k, keep the
 * smallest prefix of the sorted distribution whose mass reaches top-p, renormalise, draw.
 * The generator is splitmix64, so a seed gives the same tokens on every machine.
 */
#include "harness/fluency/generate.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "datasets/dataset.h"
#include "harness/run/version.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GEN_FEED_CHUNK 256

void sampler_init(Sampler *s, double temperature, int top_k, double top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->greedy = !(temperature > 0);
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p > 0 && top_p < 1 ? top_p : 1.0;
    s->rng = seed;
}

void sampler_free(Sampler *s) { free(s->buf); s->buf = NULL; s->buf_n = 0; }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;   /* p is the first member */
    if (x != y) return x > y ? -1 : 1;
    int32_t i = ((const int32_t *)a)[1], j = ((const int32_t *)b)[1];
    return (i > j) - (i < j);
}

/* Selection for top-k over the (p, id) pairs of Sampler.buf (an anonymous struct of sz bytes):
 * move the k that come first in cmp_desc order to the front, in no particular order, keeping a
 * heap of the k best so far whose root is the last of them. */
static void swap_at(char *a, size_t sz, int i, int j) {
    char t[16];
    memcpy(t, a + (size_t)i * sz, sz);
    memcpy(a + (size_t)i * sz, a + (size_t)j * sz, sz);
    memcpy(a + (size_t)j * sz, t, sz);
}

static void sift_last(char *a, size_t sz, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && cmp_desc(a + (size_t)l * sz, a + (size_t)w * sz) > 0) w = l;
        if (r < k && cmp_desc(a + (size_t)r * sz, a + (size_t)w * sz) > 0) w = r;
        if (w == i) return;
        swap_at(a, sz, i, w);
        i = w;
    }
}

static void select_first(void *buf, size_t sz, int n, int k) {
    char *a = buf;
    for (int i = k / 2 - 1; i >= 0; i--) sift_last(a, sz, k, i);
    for (int i = k; i < n; i++)
        if (cmp_desc(a + (size_t)i * sz, a) < 0) { /* better than the worst kept */
            swap_at(a, sz, 0, i);
            sift_last(a, sz, k, 0);
        }
}

int32_t sampler_pick(Sampler *s, const float *logits, int vocab) {
    if (s->greedy) {
        int32_t best = 0;
        for (int i = 1; i < vocab; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
    if (s->buf_n < vocab) {
        void *nb = realloc(s->buf, (size_t)vocab * sizeof *s->buf);
        if (!nb) return -1;
        s->buf = nb;
        s->buf_n = vocab;
    }
    float mx = -INFINITY;
    for (int i = 0; i < vocab; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < vocab; i++) {
        double p = exp((logits[i] - mx) / s->temperature);
        s->buf[i].p = (float)p;
        s->buf[i].id = i;
        sum += p;
    }
    int n = vocab;
    if ((s->top_k > 0 && s->top_k < vocab) || s->top_p < 1) {
        /* top-k: only the k first in sorted order are read below, so select them, then sort
         * those k (cmp_desc is a total order: the same k entries in the same order as a sort of
         * the whole vocabulary, in O(vocab log k) a step instead of O(vocab log vocab)) */
        if (s->top_k > 0 && s->top_k < n) {
            n = s->top_k;
            select_first(s->buf, sizeof *s->buf, vocab, n);
        }
        qsort(s->buf, (size_t)n, sizeof *s->buf, cmp_desc);
        sum = 0;
        for (int i = 0; i < n; i++) sum += s->buf[i].p;
        if (s->top_p < 1) {
            double c = 0, tot = sum;
            for (int i = 0; i < n; i++) { c += s->buf[i].p; if (c >= s->top_p * tot) { n = i + 1; break; } }
            sum = 0;
            for (int i = 0; i < n; i++) sum += s->buf[i].p;
        }
    }
    double u = (double)(splitmix64(&s->rng) >> 11) * 0x1.0p-53 * sum, c = 0;
    for (int i = 0; i < n; i++) { c += s->buf[i].p; if (u < c) return s->buf[i].id; }
    return s->buf[n - 1].id;
}

int gen_tokens_ex(Strategy *s, const int32_t *prefix, int64_t n_prefix, Sampler *sm, int32_t *out, int64_t n_out,
                  GenTokenFn cb, void *ctx, int64_t *n_done, char *err, size_t errlen) {
    const int V = s->m->cfg.vocab;
    if (n_done) *n_done = 0;
    if (n_prefix < 1) return lcb_fail(err, errlen, "generation needs at least one token of context");
    /* Only the prefix's last token's logits are used: the chunks before the last advance the
     * cache alone (no LM head, no logits copied back from the device), with the same chunk
     * boundaries, so the cache and the logits are the same to the bit.  The buffer holds the
     * last chunk's rows, then one row a step. */
    const int n_last = (int)((n_prefix - 1) % GEN_FEED_CHUNK) + 1;
    size_t lbytes = (size_t)n_last * (size_t)V * sizeof(float);
    float *lg = lcb_alloc(LCB_MEM_WORK, lbytes);
    if (!lg) return lcb_fail(err, errlen, "out of memory: logits for %d tokens", n_last);
    int rc = 0, last = 0;
    for (int64_t t0 = 0; rc == 0 && t0 < n_prefix; t0 += GEN_FEED_CHUNK) {
        int n = (int)(n_prefix - t0 < GEN_FEED_CHUNK ? n_prefix - t0 : GEN_FEED_CHUNK);
        rc = strategy_feed(s, prefix + t0, n, t0 + n < n_prefix ? NULL : lg, err, errlen);
        last = n - 1;
    }
    for (int64_t i = 0; rc == 0 && i < n_out; i++) {
        int32_t id = sampler_pick(sm, lg + (size_t)last * V, V);
        if (id < 0) { rc = lcb_fail(err, errlen, "out of memory: sampler"); break; }
        if (out) out[i] = id;
        if (n_done) *n_done = i + 1;
        if (cb && cb(ctx, i, id)) break;
        if (i + 1 < n_out || !out) {    /* the last token is fed only when the caller keeps the state */
            rc = strategy_feed(s, &id, 1, lg, err, errlen);
            last = 0;
        }
    }
    lcb_free(LCB_MEM_WORK, lg, lbytes);
    return rc;
}


int gen_open_model(const char *model, const char *tokenizer, const CliDevice *dev, Model *m, Tokenizer **tok, char *path,
                   size_t pathlen, char *err, size_t errlen) {
    if (model) snprintf(path, pathlen, "%s", model);
    else lcb_data_path("models/lcb-0.8m", path, pathlen);   /* the install's data folder, then the checkout */
    const char *tp = tokenizer ? tokenizer : path;
    if (!strncmp(tp, "random:", 7)) return lcb_fail(err, errlen, "--tokenizer: a random: model needs --tokenizer PATH");
    if (!(*tok = tokenizer_load(tp, err, errlen))) return -1;
    int rc = dev ? model_open_tp(m, path, NULL, lcb_device_parse(dev->device), dev->dtype, (int)dev->tp, err, errlen)
                 : model_open(m, path, NULL, err, errlen);
    if (rc) { tokenizer_free(*tok); *tok = NULL; return -1; }
    return 0;
}
