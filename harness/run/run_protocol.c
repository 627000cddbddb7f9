/*
 * run_protocol.c — the evaluation protocols of SPEC §3 (stream, stride, chunks, longlora) as
 * loops over a token array that feed a cache strategy and report scored steps per unit (see
 * run.h).  tests/test_harness.c checks each against strategy_score on the same slices;
 * tests/test_gguf.c checks chunks-bos against a hand computation and llama-perplexity's numbers.
 *
 * llama-perplexity (tools/perplexity/perplexity.cpp, perplexity()) scores a text so: tokenize it
 * once with add_special (one BOS first when the vocabulary adds BOS), cut n_tokens / n_ctx chunks
 * of n_ctx tokens, clear the KV cache per chunk, feed each chunk with its first token replaced by
 * BOS (when the vocabulary adds BOS), and score the logits of positions n_ctx/2 .. n_ctx-2
 * against the next token: n_ctx - 1 - n_ctx/2 NLLs per chunk, PPL = exp(mean).  `chunks` is
 * that window without the replacement, `chunks-bos` with it; the scored targets never include a
 * chunk's first token, so only the context the model sees changes.
 */
#include "harness/run/run.h"
#include "engine/common.h"

#include <stdlib.h>
#include <string.h>

static const char *const proto_names[] = {"stream", "stride", "chunks", "longlora", "chunks-bos"};
#define N_PROTO (int)(sizeof proto_names / sizeof *proto_names)

const char *protocol_name(RunProtocol p) { return (unsigned)p < (unsigned)N_PROTO ? proto_names[p] : "?"; }

int protocol_parse(const char *s, RunProtocol *out) {
    for (int i = 0; i < N_PROTO; i++)
        if (!strcmp(s, proto_names[i])) { *out = (RunProtocol)i; return 0; }
    return -1;
}

/* Window k of a windowed protocol: tokens [b, e), scored in-window steps [i0, i1). */
typedef struct { int64_t b, e, i0, i1; } Win;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int64_t n_windows(const ProtoParams *p, int64_t T) {
    switch (p->proto) {
    case PROTO_STRIDE: return T <= p->ctx ? 1 : ceil_div(T - p->ctx, p->stride) + 1;
    case PROTO_CHUNKS: case PROTO_CHUNKS_BOS: return T / p->ctx;
    case PROTO_LONGLORA: { int64_t all = T - p->ctx - 1 > 0 ? ceil_div(T - p->ctx - 1, p->stride) : 0; return all - 1; }
    default: return 0;
    }
}

static Win window(const ProtoParams *p, int64_t T, int64_t k) {
    Win w = {0};
    const int64_t L = p->ctx, S = p->stride;
    switch (p->proto) {
    case PROTO_STRIDE: {
        w.b = k * S;
        w.e = w.b + L < T ? w.b + L : T;
        int64_t prev_end = k == 0 ? 0 : ((k - 1) * S + L < T ? (k - 1) * S + L : T);
        w.i0 = prev_end - w.b - 1 > 0 ? prev_end - w.b - 1 : 0;
        w.i1 = w.e - w.b - 1;
        break;
    }
    case PROTO_CHUNKS: case PROTO_CHUNKS_BOS:
        w.b = k * L; w.e = w.b + L; w.i0 = L / 2; w.i1 = L - 1;
        break;
    case PROTO_LONGLORA:
        w.b = k * S; w.e = w.b + L; w.i0 = 0; w.i1 = L - 1;
        break;
    default: break;
    }
    if (w.i1 < w.i0) w.i1 = w.i0;
    return w;
}

int protocol_plan(const ProtoParams *p, size_t T, int64_t *steps, int64_t *units, char *err, size_t errlen) {
    if (T < 2) return lcb_fail(err, errlen, "a run needs at least 2 tokens (got %zu)", T);
    if (p->chunk < 0) return lcb_fail(err, errlen, "--chunk %lld must be >= 0", (long long)p->chunk);
    if (p->proto == PROTO_STREAM) {
        *steps = (int64_t)T - 1;
        int64_t c = p->chunk > 0 ? p->chunk : (int64_t)T;
        *units = ceil_div((int64_t)T, c);
        return 0;
    }
    if (p->ctx < 2) return lcb_fail(err, errlen, "--protocol %s needs --ctx L >= 2", protocol_name(p->proto));
    if ((p->proto == PROTO_STRIDE || p->proto == PROTO_LONGLORA) && (p->stride < 1 || p->stride > p->ctx))
        return lcb_fail(err, errlen, "--protocol %s: --stride %lld must be in [1, --ctx %lld]", protocol_name(p->proto),
                        (long long)p->stride, (long long)p->ctx);
    int64_t nw = n_windows(p, (int64_t)T);
    if (nw < 1) {
        if (p->proto == PROTO_CHUNKS || p->proto == PROTO_CHUNKS_BOS)
            return lcb_fail(err, errlen, "--protocol %s: %zu tokens make no chunk of --ctx %lld", protocol_name(p->proto), T, (long long)p->ctx);
        return lcb_fail(err, errlen, "--protocol longlora: %zu tokens make no window (needs > ctx + 1 + 2 x stride = %lld)", T,
                        (long long)(p->ctx + 1 + 2 * p->stride));
    }
    int64_t s = 0;
    for (int64_t k = 0; k < nw; k++) { Win w = window(p, (int64_t)T, k); s += w.i1 - w.i0; }
    *steps = s;
    *units = nw;
    return 0;
}

/* Scratch of the NLL-only feeding: targets and double NLLs for one chunk. */
typedef struct { int32_t *tg; double *nl; } Scratch;

static int scratch_init(Scratch *x, int64_t n, char *err, size_t errlen) {
    x->tg = malloc((size_t)n * sizeof *x->tg);
    x->nl = malloc((size_t)n * sizeof *x->nl);
    if (!x->tg || !x->nl) {
        free(x->tg); free(x->nl);
        return lcb_fail(err, errlen, "out of memory: NLL buffers for a chunk of %lld tokens", (long long)n);
    }
    return 0;
}

static void scratch_free(Scratch *x) { free(x->tg); free(x->nl); }

/* Tokens of the stream's feed that starts at t0: a chunk, the rest of the stream, or up to the
 * next multiple of cut_every, whichever ends first.  A function of t0 alone, so that a resume
 * re-feeds with the boundaries of the run it continues. */
static int64_t feed_len(const ProtoParams *p, int64_t chunk, int64_t t0, int64_t end) {
    int64_t n = end - t0 < chunk ? end - t0 : chunk;
    if (p->cut_every > 0) {
        int64_t next = (t0 / p->cut_every + 1) * p->cut_every;
        if (t0 + n > next) n = next - t0;
    }
    return n;
}

/* The stream protocol.  The model returns NLLs only (on the GPU the log-softmax is fused and
 * no logits leave the device). */
static int run_stream(const ProtoParams *p, Strategy *s, Model *m, const int32_t *ids, size_t T, int64_t cursor,
                      RunUnitFn fn, RunRestoreFn restore, void *ctx, int64_t *fail_pos, char *err, size_t errlen) {
    int64_t chunk = p->chunk > 0 && !s->ops->whole_input ? p->chunk : (int64_t)T;
    if (chunk > (int64_t)T) chunk = (int64_t)T;
    float *nll = malloc((size_t)chunk * sizeof *nll);
    Scratch x;
    *fail_pos = 0;
    if (!nll || scratch_init(&x, chunk, err, errlen)) {
        free(nll);
        return lcb_fail(err, errlen, "out of memory: NLL buffers for a chunk of %lld tokens", (long long)chunk);
    }
    int rc = strategy_begin(s, m, err, errlen);
    /* resume: rebuild the state at the cursor: from the caller's snapshot if it has one, then by
     * re-feeding what was scored since, with the same chunk boundaries (recompute keeps only its
     * last W tokens) */
    int64_t from = 0;
    if (rc == 0 && cursor > 0 && restore && restore(ctx, s, cursor, &from)) from = 0;
    ProtoParams q = *p;
    if (s->ops->whole_input) q.cut_every = 0;   /* one forward over the whole input */
    for (int64_t t0 = from, n; rc == 0 && t0 < cursor; t0 += n) {
        n = feed_len(&q, chunk, t0, cursor);
        rc = strategy_skip(s, ids + t0, n, chunk, err, errlen);
    }
    for (int64_t t0 = cursor, n = 0; rc == 0 && t0 < (int64_t)T; t0 += n) {
        n = feed_len(&q, chunk, t0, (int64_t)T);
        *fail_pos = t0;
        for (int i = 0; i < n; i++) x.tg[i] = t0 + i + 1 < (int64_t)T ? ids[t0 + i + 1] : -1;
        if ((rc = strategy_feed_nll(s, ids + t0, n, x.tg, x.nl, err, errlen))) break;
        int64_t ns = t0 + n < (int64_t)T ? n : n - 1;   /* the last token has no target */
        for (int64_t i = 0; i < ns; i++) nll[i] = (float)x.nl[i];
        RunUnit u = {.win_start = 0, .pos0 = t0, .n = ns, .nll = nll, .cursor = t0 + n, .stream_pos = t0 + n, .fed = n,
                     .kv_bytes = strategy_kv_bytes_allocated(s), .kv_formula = strategy_kv_bytes_formula(s, (uint64_t)(t0 + n))};
        if (fn(ctx, &u)) break;
    }
    strategy_end(s);
    scratch_free(&x);
    free(nll);
    return rc;
}

/* stride, chunks, longlora: independent windows, fresh cache each. */
static int run_windows(const ProtoParams *p, Strategy *s, Model *m, const int32_t *ids, size_t T, int64_t cursor,
                       RunUnitFn fn, void *ctx, int64_t *fail_pos, char *err, size_t errlen) {
    const int64_t nw = n_windows(p, (int64_t)T);
    int64_t chunk = p->chunk > 0 && !s->ops->whole_input && p->chunk < p->ctx ? p->chunk : p->ctx;
    /* chunks-bos: each chunk's first feed, with the model's BOS in place of its first token */
    const int bos_first = p->proto == PROTO_CHUNKS_BOS;
    if (bos_first && (m->cfg.bos_id < 0 || m->cfg.bos_id >= m->cfg.vocab))
        return lcb_fail(err, errlen, "--protocol chunks-bos: the model has no BOS token id (bos_token_id / tokenizer.ggml.bos_token_id)");
    float *nll = malloc((size_t)p->ctx * sizeof *nll);
    int32_t *head = bos_first ? malloc((size_t)chunk * sizeof *head) : NULL;
    Scratch x;
    *fail_pos = 0;
    if (!nll || (bos_first && !head) || scratch_init(&x, chunk, err, errlen)) {
        free(nll);
        free(head);
        return lcb_fail(err, errlen, "out of memory: NLL buffers for a window of %lld tokens", (long long)p->ctx);
    }
    int rc = 0;
    for (int64_t k = cursor; rc == 0 && k < nw; k++) {
        Win w = window(p, (int64_t)T, k);
        *fail_pos = w.b;
        RunUnit u = {.win_start = w.b, .pos0 = w.i0, .n = w.i1 - w.i0, .nll = nll, .cursor = k + 1, .stream_pos = w.e};
        if (u.n > 0) {
            if ((rc = strategy_begin(s, m, err, errlen))) { strategy_end(s); break; }
            for (int64_t c0 = 0; rc == 0 && c0 < w.i1; c0 += chunk) {
                int n = (int)(w.e - w.b - c0 < chunk ? w.e - w.b - c0 : chunk);
                /* s2 needs the whole window in one forward; others may stop at the last scored step */
                if (!s->ops->whole_input && c0 + n > w.i1) n = (int)(w.i1 - c0);
                *fail_pos = w.b + c0;
                /* row i (window index c0 + i) is scored when it lies in [i0, i1) */
                for (int i = 0; i < n; i++) x.tg[i] = (c0 + i >= w.i0 && c0 + i < w.i1) ? ids[w.b + c0 + i + 1] : -1;
                const int32_t *in = ids + w.b + c0;
                if (bos_first && c0 == 0) {
                    memcpy(head, in, (size_t)n * sizeof *head);
                    head[0] = m->cfg.bos_id;   /* the targets stay the chunk's own tokens */
                    in = head;
                }
                if ((rc = strategy_feed_nll(s, in, n, x.tg, x.nl, err, errlen))) break;
                u.fed += n;
                for (int64_t i = c0 > w.i0 ? c0 : w.i0; i < c0 + n && i < w.i1; i++) nll[i - w.i0] = (float)x.nl[i - c0];
            }
            u.kv_bytes = strategy_kv_bytes_allocated(s);
            u.kv_formula = strategy_kv_bytes_formula(s, (uint64_t)u.fed);
            strategy_end(s);
            if (rc) break;
        }
        if (fn(ctx, &u)) break;
    }
    scratch_free(&x);
    free(nll);
    free(head);
    return rc;
}

int protocol_run(const ProtoParams *p, Strategy *s, Model *m, const int32_t *ids, size_t T, int64_t cursor,
                 RunUnitFn fn, RunRestoreFn restore, void *ctx, int64_t *fail_pos, char *err, size_t errlen) {
    int64_t steps, units;
    if (protocol_plan(p, T, &steps, &units, err, errlen)) return -1;
    if (p->proto == PROTO_STREAM) return run_stream(p, s, m, ids, T, cursor, fn, restore, ctx, fail_pos, err, errlen);
    return run_windows(p, s, m, ids, T, cursor, fn, ctx, fail_pos, err, errlen);
}
