/*
 * run.c — the driver of `lcbench run` (see run.h): resolves the model, tokenizer and dataset,
 * records the run's provenance in the store, streams the protocol through the strategy, and
 * commits per-step NLLs, samples and events in batches.  Also what makes a run survivable:
 * SIGINT/SIGTERM finish the batch in flight and mark the run interrupted; kill -9 leaves it
 * `running` with its last committed cursor; --resume continues from that cursor and gives the
 * same numbers as an uninterrupted run; an allocation failure (or --mem-limit) records an
 * `oom` event and ends the run with status oom, keeping what it measured.
 */
#include "harness/run/run.h"
#include "harness/run/kvsnap.h"
#include "datasets/dataset.h"
#include "datasets/sha256.h"
#include "datasets/words.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/gguf.h"
#include "engine/gguf_model.h"
#include "engine/gguf_tokenizer.h"
#include "engine/tokenizer.h"
#include "harness/cmd/cli.h"
#include "harness/fluency/fluency.h"
#include "reports/store/store.h"
#include "harness/run/version.h"
#include "reports/reports.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODEL "models/lcb-0.8m"
#define DEFAULT_DATASET "moby-dick"

void run_config_defaults(RunConfig *c) {
    memset(c, 0, sizeof *c);
    c->db_path = "results.db";
    c->strategy = "sink";   /* sink:4:(ctx-4), sized from the model by strategies/sink.c */
    c->proto = (ProtoParams){.proto = PROTO_STREAM, .ctx = 0, .stride = 0, .chunk = 256};
    c->token_format = "auto";
    c->bos = "auto";
    c->repeat = 1;
    c->batch_tokens = 16384;
    c->batch_seconds = 10;
    c->bin_width = 1024;
    c->device = "cpu";
    c->tp = 1;
    c->kv_snapshot_seconds = 30;
    c->progress = -1;
}

/* ---------------------------------------------------------------- signals */

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

static void signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void signals_restore(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

/* ---------------------------------------------------------------- provenance */

/* the revision compiled in by the Makefile (harness/run/version.h), not the working tree's now */
void run_git_revision(char *out, size_t n) { snprintf(out, n, "%s", lcb_version()); }

static void cpu_name(char *out, size_t n) {
    snprintf(out, n, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) { c += 1 + strspn(c + 1, " \t"); c[strcspn(c, "\n")] = 0; snprintf(out, n, "cpu (%s)", c); }
            break;
        }
    fclose(f);
}

/* Bytes held in a memory category: the GPU's own allocator for a model on the device, else the
 * host allocator. */
static size_t mem_now(const Model *m, LcbMemCat cat) {
    return m && m->device != LCB_DEVICE_CPU ? cuda_mem_now((int)cat) : lcb_mem_now(cat);
}

/* Device memory in use (cudaMemGetInfo: total - free) for a model on the GPU; -1 on the CPU. */
static int64_t device_bytes(const Model *m) {
    size_t used, total;
    if (!m || m->device == LCB_DEVICE_CPU || cuda_mem_info(&used, &total)) return -1;
    return (int64_t)used;
}

static int64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : (int64_t)res * sysconf(_SC_PAGESIZE);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The SHA-256 of one file, cached in the store by (real path, size, mtime). */
static int file_hash_cached(Store *st, const char *path, char fh[65], char *err, size_t errlen) {
    char real[PATH_MAX];
    struct stat sb;
    if (stat(path, &sb) || !realpath(path, real)) return lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
    int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    if (store_hash_lookup(st, real, (int64_t)sb.st_size, mt, fh)) return 0;
    Sha256 f;
    sha256_init(&f);
    if (sha256_file(path, &f, err, errlen)) return -1;
    sha256_hex(&f, fh);
    store_hash_remember(st, real, (int64_t)sb.st_size, mt, fh);
    return 0;
}

/* SHA-256 over the config file and every *.safetensors file of the folder (name, then the
 * file's own SHA-256), file hashes cached in the store by (path, size, mtime).  A GGUF file
 * (without --config) is one file: its own SHA-256, as sha256sum prints it. */
static int model_hash(Store *st, const char *spec, const char *config, char hex[65], char *err, size_t errlen) {
    Sha256 h;
    sha256_init(&h);
    if (!strncmp(spec, "random:", 7)) {
        sha256_update(&h, spec, strlen(spec));
        sha256_hex(&h, hex);
        return 0;
    }
    if (!config && gguf_model_is(spec)) return file_hash_cached(st, spec, hex, err, errlen);
    char cfg[PATH_MAX * 2];
    if (config) snprintf(cfg, sizeof cfg, "%s", config); else snprintf(cfg, sizeof cfg, "%s/config.json", spec);
    if (sha256_file(cfg, &h, err, errlen)) return -1;
    DIR *d = opendir(spec);
    if (!d) return lcb_fail(err, errlen, "%s: cannot open the checkpoint folder: %s", spec, strerror(errno));
    char *names[4096];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;) {
        size_t l = strlen(e->d_name);
        if (l > 12 && !strcmp(e->d_name + l - 12, ".safetensors")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX * 2], real[PATH_MAX], fh[65];
        snprintf(path, sizeof path, "%s/%s", spec, names[i]);
        struct stat sb;
        if (rc == 0 && (stat(path, &sb) || !realpath(path, real))) rc = lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
        if (rc == 0) {
            int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
            if (!store_hash_lookup(st, real, (int64_t)sb.st_size, mt, fh)) {
                Sha256 f;
                sha256_init(&f);
                if ((rc = sha256_file(path, &f, err, errlen)) == 0) {
                    sha256_hex(&f, fh);
                    store_hash_remember(st, real, (int64_t)sb.st_size, mt, fh);
                }
            }
            if (rc == 0) { sha256_update(&h, names[i], strlen(names[i]) + 1); sha256_update(&h, fh, 64); }
        }
        free(names[i]);
    }
    if (rc == 0) sha256_hex(&h, hex);
    return rc;
}

static int file_exists(const char *p) { struct stat sb; return stat(p, &sb) == 0; }

/* ---------------------------------------------------------------- the run state */

typedef struct {
    Store *st;
    StoreRun *r;
    Strategy *s;
    int64_t max_pos;            /* pre-training context, 0 = unknown */
    int ctx_event_done;
    int64_t repeat_pos;
    int repeat_event_done;
    /* pending batch */
    float *buf;                 /* steps of the pending batch */
    int64_t n_buf, cap_buf;
    struct { int64_t win_start, pos0, n; } *seg;
    int64_t n_seg, cap_seg;
    int64_t cursor, stream_pos; /* after the last unit */
    uint64_t kv_bytes, kv_formula;
    int64_t pending_ctx_event;  /* -1 none, else the position */
    int64_t pending_repeat_event;
    double t_session, t_commit, t_progress, wall_before;
    int64_t fed_session, steps_session, steps_before;
    double sum_nll;             /* over every step scored so far (previous sessions included) */
    int progress;
    int bar;                    /* stderr is a terminal: the progress line is a bar (never in a pipe or log) */
    int pace_ms;
    double batch_seconds;
    int failed;
    int64_t fail_pos;           /* with failed: the position at fault (-1: the protocol's) */
    char err[LCB_ERRLEN];
    /* --- fluency probes (harness/fluency/fluency.h) --- */
    FluencyProbe probe;          /* probe.every 0 = off */
    const int32_t *ids;          /* the stream */
    int64_t n_ids;
    /* --- */
    /* cache snapshots for fast resume (harness/run/kvsnap.h): stream protocol only */
    char snap_path[4200];        /* "" = off */
    double snap_seconds, t_snap;
    double snap_cost;            /* seconds the stream stopped for the last snapshot (the copy) */
    int snap_warned;
    KvSnapWriter *snap_writer;   /* the background write (NULL until the first snapshot) */
} RunState;

/* A snapshot that cannot be written costs only resume speed: one note, the run goes on. */
static void snapshot_note(RunState *x, const char *err) {
    if (!x->snap_warned) cli_error("run", "note: %s (a resume will re-feed the stream instead)", err);
    x->snap_warned = 1;
}

/* After a committed batch: the cache as of the committed cursor, at most every snap_seconds,
 * and, for a state that takes long to copy (a dense cache of millions of tokens), no more than
 * a tenth of the run's time (the wait grows by 9x the last stop; 0 = every commit stays).  The
 * stream stops only for the copy into memory; the file is written in the background
 * (kvsnap_save_async), and a snapshot due while the last one is still being written is
 * skipped.  A state too large for memory is written here, as before, and its whole write counts. */
static void snapshot_after_commit(RunState *x) {
    if (!x->snap_path[0] || !kvsnap_supported(x->s) || x->s->n_fed != x->cursor) return;
    char err[LCB_ERRLEN];
    int busy = kvsnap_writer_wait(x->snap_writer, 0, err, sizeof err);
    if (busy < 0) snapshot_note(x, err); /* the last background write failed */
    if (busy > 0) return;
    double now = lcb_now();
    if (x->t_snap > 0 && now - x->t_snap < x->snap_seconds + (x->snap_seconds > 0 ? 9 * x->snap_cost : 0)) return;
    if (!x->snap_writer && !(x->snap_writer = kvsnap_writer_new(0))) { snapshot_note(x, "out of memory: the snapshot writer"); return; }
    if (kvsnap_save_async(x->snap_writer, x->snap_path, x->r->id, x->r->model_hash, x->s, err, sizeof err) < 0) {
        snapshot_note(x, err);
        return;
    }
    x->t_snap = lcb_now();
    x->snap_cost = x->t_snap - now;
}

/* The run ends (done, failed, oom, interrupted): the write in flight finishes first, so the
 * snapshot left is whole and no temporary file stays behind. */
static void snapshot_finish(RunState *x) {
    char err[LCB_ERRLEN];
    if (kvsnap_writer_wait(x->snap_writer, 1, err, sizeof err)) snapshot_note(x, err);
    kvsnap_writer_free(x->snap_writer);
    x->snap_writer = NULL;
}

/* RunRestoreFn: the run's snapshot, if it is there and matches */
static int restore_snapshot(void *ctx, Strategy *s, int64_t cursor, int64_t *at) {
    RunState *x = ctx;
    if (!x->snap_path[0] || !kvsnap_supported(s) || access(x->snap_path, F_OK) != 0) return -1;
    char err[LCB_ERRLEN];
    if (kvsnap_load(x->snap_path, x->r->id, x->r->model_hash, s, cursor, at, err, sizeof err)) {
        cli_error("run", "note: %s; re-feeding the stream from the start", err);
        return -1;
    }
    fprintf(stderr, "lcbench run: resuming from the cache snapshot at position %lld (cursor %lld)\n", (long long)*at, (long long)cursor);
    return 0;
}

/* Per-GPU memory (cudaMemGetInfo) at the end of the stream, as an event: with --tp the VRAM of
 * each GPU, which the memory samples (summed over GPUs) do not show. */
static void gpu_memory_event(RunState *x, char *err, size_t errlen) {
    char det[1024] = "";
    size_t l = 0;
    for (int i = 0; i < cuda_tp_devices() && l < sizeof det; i++) {
        size_t used, total;
        if (cuda_mem_info_dev(i, &used, &total) == 0)
            l += snprintf(det + l, sizeof det - l, "%sGPU %d: %.0f MiB used of %.0f MiB", i ? "; " : "", i, used / 1048576.0, total / 1048576.0);
    }
    if (!det[0]) return;
    if (x->progress) fprintf(stderr, "lcbench run: device memory at position %lld: %s\n", (long long)x->stream_pos, det);
    if (store_event(x->st, x->r->id, x->stream_pos, "gpu_memory", det, err, errlen)) cli_error("run", "%s", err);
}

static int commit_batch(RunState *x, char *err, size_t errlen) {
    Store *st = x->st;
    StoreRun *r = x->r;
    double now = lcb_now();
    /* the row fields this batch advances; a failed commit (disk full, a lock held past the
     * busy timeout) must leave them as the database has them, else the closing row update
     * would record a cursor past steps that were never stored, and a retry would count the
     * batch's steps twice */
    const int64_t seq0 = r->next_seq, cursor0 = r->cursor, done0 = r->steps_done;
    const double wall0 = r->wall_s;
    if (store_begin(st, err, errlen)) return -1;
    int rc = 0;
    int64_t off = 0;
    for (int64_t i = 0; rc == 0 && i < x->n_seg; i++) {
        rc = store_nll_insert(st, r->id, r->next_seq++, x->seg[i].win_start, x->seg[i].pos0, x->buf + off, x->seg[i].n, err, errlen);
        off += x->seg[i].n;
    }
    if (rc == 0 && x->pending_ctx_event >= 0)
        rc = store_event(st, r->id, x->pending_ctx_event, "ctx_passed", "the stream passed the model's pre-training context (max_position_embeddings)", err, errlen);
    if (rc == 0 && x->pending_repeat_event >= 0)
        rc = store_event(st, r->id, x->pending_repeat_event, "corpus_repeat", "every document used; the dataset starts over (pass 2)", err, errlen);
    double el = now - x->t_session;
    StoreSample smp = {.pos = x->stream_pos, .elapsed_s = x->wall_before + el,
                       .tokens_per_s = el > 0 ? x->fed_session / el : 0,
                       .weights = (int64_t)mem_now(x->s->m, LCB_MEM_WEIGHTS), .kv = (int64_t)x->kv_bytes,
                       .kv_formula = (int64_t)x->kv_formula, .work = (int64_t)mem_now(x->s->m, LCB_MEM_WORK),
                       .rss = rss_bytes(), .device = device_bytes(x->s->m)};
    if (rc == 0) rc = store_sample(st, r->id, &smp, err, errlen);
    r->cursor = x->cursor;
    r->steps_done += x->n_buf;
    r->wall_s = x->wall_before + el;
    if (rc == 0) rc = store_run_update(st, r, err, errlen);
    if (rc == 0) rc = store_commit(st, err, errlen);
    if (rc) {
        store_rollback(st);
        r->next_seq = seq0; r->cursor = cursor0; r->steps_done = done0; r->wall_s = wall0;
        return -1;
    }
    x->n_buf = x->n_seg = 0;
    x->pending_ctx_event = x->pending_repeat_event = -1;
    x->t_commit = now;
    if (x->pace_ms > 0) { struct timespec ts = {x->pace_ms / 1000, (long)(x->pace_ms % 1000) * 1000000L}; nanosleep(&ts, NULL); }
    return 0;
}

static void fmt_count(char *b, size_t n, double v) {
    if (v >= 1e9) snprintf(b, n, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(b, n, "%.2fM", v / 1e6);
    else if (v >= 1e4) snprintf(b, n, "%.1fK", v / 1e3);
    else snprintf(b, n, "%.0f", v);
}

static void show_progress(RunState *x, int final) {
    double now = lcb_now();
    if (!final && now - x->t_progress < 0.25) return;
    x->t_progress = now;
    double el = now - x->t_session;
    double rate = el > 0 ? x->steps_session / el : 0;
    int64_t done = x->r->steps_done + x->n_buf, left = x->r->steps_total - done;
    char a[32], b[32], c[32], eta[32] = "?";
    fmt_count(a, sizeof a, (double)done);
    fmt_count(b, sizeof b, (double)x->r->steps_total);
    fmt_count(c, sizeof c, el > 0 ? x->fed_session / el : 0);
    if (rate > 0) {
        double s = left / rate;
        if (s >= 3600) snprintf(eta, sizeof eta, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
        else snprintf(eta, sizeof eta, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    }
    int64_t nsteps = x->steps_before + x->steps_session;
    if (x->bar) {
        /* a terminal: a bar redrawn in place */
        enum { W = 30 };
        double f = x->r->steps_total > 0 ? (double)done / x->r->steps_total : 0;
        if (f > 1) f = 1;
        char bar[W + 1];
        int k = (int)(f * W + 0.5);
        for (int i = 0; i < W; i++) bar[i] = i < k ? '#' : '.';
        bar[W] = 0;
        fprintf(stderr, "\r[%s] %5.1f%%  %s/%s steps  %s tok/s  ETA %s  ppl %.3f \033[K%s", bar, 100 * f, a, b, c, final ? "0s" : eta,
                nsteps ? exp(x->sum_nll / nsteps) : NAN, final ? "\n" : "");
        fflush(stderr);
        return;
    }
    fprintf(stderr, "\rrun %lld: %s/%s steps  %s tok/s  ETA %s  ppl %.3f   %s", (long long)x->r->id, a, b, c, eta,
            nsteps ? exp(x->sum_nll / nsteps) : NAN, final ? "\n" : "");
    fflush(stderr);
}

/* The header of a terminal run: what is about to be measured, and a warning when the cache
 * (sinks included) is larger than the model's pre-training context. */
static void print_header(const StoreRun *r, const Strategy *s, const char *db, int resuming) {
    char np[32], tk[32];
    fmt_count(np, sizeof np, (double)r->n_params);
    fmt_count(tk, sizeof tk, (double)r->tokens);
    fprintf(stderr, "lcbench run %lld%s: %s\n", (long long)r->id, resuming ? " (resumed)" : "", r->model ? r->model : "?");
    fprintf(stderr, "  model     %s, %s params, context %lld (max_position_embeddings)\n", r->arch ? r->arch : "?", np, (long long)r->max_pos);
    int64_t ct = run_cache_tokens(s->spec);
    if (ct >= 0 && r->max_pos > 0)
        fprintf(stderr, "  strategy  %s: cache %lld tokens = %.2fx the context%s\n", s->spec, (long long)ct, (double)ct / r->max_pos,
                ct > r->max_pos ? " (larger than the context: expect a collapse past it)" : "");
    else fprintf(stderr, "  strategy  %s: cache %s\n", s->spec, ct < 0 ? "unbounded (every token kept)" : "?");
    fprintf(stderr, "  protocol  %s", r->protocol ? r->protocol : "?");
    if (r->ctx) fprintf(stderr, " L %lld", (long long)r->ctx);
    if (r->stride) fprintf(stderr, " S %lld", (long long)r->stride);
    fprintf(stderr, "; dataset %s, %s tokens, %lld steps\n", r->dataset ? r->dataset : "?", tk, (long long)r->steps_total);
    fprintf(stderr, "  device    %s, %lld threads; results %s\n", r->device ? r->device : "?", (long long)r->threads, db);
    fflush(stderr);
}

static int on_unit(void *ctx, const RunUnit *u) {
    RunState *x = ctx;
    /* a non-finite NLL is never a number (SPEC §1): the run fails at that step.  The unit is
     * not kept (its cursor would skip the bad step on --resume); the units before it are. */
    for (int64_t i = 0; i < u->n; i++)
        if (!isfinite(u->nll[i])) {
            x->failed = 1;
            x->fail_pos = u->win_start + u->pos0 + i;
            if (u->win_start > 0 || strcmp(x->r->protocol, "stream"))
                snprintf(x->err, sizeof x->err, "non-finite NLL (%g) at stream position %lld (window at %lld, in-window step %lld): the model's output is not a number",
                         u->nll[i], (long long)x->fail_pos, (long long)u->win_start, (long long)(u->pos0 + i));
            else
                snprintf(x->err, sizeof x->err, "non-finite NLL (%g) at position %lld: the model's output is not a number (a NaN/Inf weight or a bad config value?)",
                         u->nll[i], (long long)x->fail_pos);
            return 1;
        }
    if (x->n_buf + u->n > x->cap_buf) {
        int64_t nc = x->cap_buf ? x->cap_buf : 4096;
        while (nc < x->n_buf + u->n) nc *= 2;
        float *nb = realloc(x->buf, (size_t)nc * sizeof *nb);
        if (!nb) { x->failed = 1; snprintf(x->err, sizeof x->err, "out of memory: pending batch of %lld steps", (long long)nc); return 1; }
        x->buf = nb; x->cap_buf = nc;
    }
    if (x->n_seg == x->cap_seg) {
        int64_t nc = x->cap_seg ? 2 * x->cap_seg : 64;
        void *ns = realloc(x->seg, (size_t)nc * sizeof *x->seg);
        if (!ns) { x->failed = 1; snprintf(x->err, sizeof x->err, "out of memory: pending batch"); return 1; }
        x->seg = ns; x->cap_seg = nc;
    }
    if (u->n > 0 && x->n_seg > 0 && x->seg[x->n_seg - 1].win_start == u->win_start &&
        x->seg[x->n_seg - 1].pos0 + x->seg[x->n_seg - 1].n == u->pos0) {
        /* contiguous with the last segment (the stream's chunks): one row per batch */
        memcpy(x->buf + x->n_buf, u->nll, (size_t)u->n * sizeof *u->nll);
        x->n_buf += u->n;
        x->seg[x->n_seg - 1].n += u->n;
        for (int64_t i = 0; i < u->n; i++) x->sum_nll += u->nll[i];
    } else if (u->n > 0) {
        memcpy(x->buf + x->n_buf, u->nll, (size_t)u->n * sizeof *u->nll);
        x->n_buf += u->n;
        x->seg[x->n_seg].win_start = u->win_start;
        x->seg[x->n_seg].pos0 = u->pos0;
        x->seg[x->n_seg].n = u->n;
        x->n_seg++;
        for (int64_t i = 0; i < u->n; i++) x->sum_nll += u->nll[i];
    }
    x->steps_session += u->n;
    x->fed_session += u->fed;
    x->cursor = u->cursor;
    x->stream_pos = u->stream_pos;
    x->kv_bytes = u->kv_bytes;
    x->kv_formula = u->kv_formula;
    /* the stream passes the pre-training context at step t = max_pos (t+1 tokens seen) */
    if (!x->ctx_event_done && x->max_pos > 0 && !strcmp(x->r->protocol, "stream") && u->pos0 + u->n > x->max_pos) {
        x->pending_ctx_event = x->max_pos;
        x->ctx_event_done = 1;
    }
    if (!x->repeat_event_done && x->repeat_pos > 0 && u->stream_pos > x->repeat_pos) {
        x->pending_repeat_event = x->repeat_pos;
        x->repeat_event_done = 1;
    }
    double now = lcb_now();
    if (x->n_buf >= x->r->batch_tokens || now - x->t_commit >= x->batch_seconds || got_signal) {
        if (commit_batch(x, x->err, sizeof x->err)) { x->failed = 1; return 1; }
        snapshot_after_commit(x);
    }
    /* --- fluency probes: from a copy of the strategy state, never the stream's own --- */
    if (x->probe.every > 0 && fluency_probe_step(&x->probe, x->st, x->r->id, x->s, x->ids, x->n_ids, u->stream_pos, x->err, sizeof x->err)) {
        x->failed = 1;
        return 1;
    }
    /* --- */
    if (x->progress) show_progress(x, 0);
    return got_signal ? 1 : 0;
}

/* ---------------------------------------------------------------- execute */

/* The config of a model without loading its weights (for the BOS id and max_pos). */
static int peek_config(const char *spec, const char *config, ModelConfig *cfg, char *err, size_t errlen) {
    if (!strncmp(spec, "random:", 7)) {
        char shape[128];
        snprintf(shape, sizeof shape, "%.100s", spec + 7);
        shape[strcspn(shape, ":")] = 0;
        return config_random_shape(cfg, shape, err, errlen);
    }
    if (!config && gguf_model_is(spec)) return gguf_config_load(cfg, spec, err, errlen);
    char p[PATH_MAX * 2];
    if (config) snprintf(p, sizeof p, "%s", config); else snprintf(p, sizeof p, "%s/config.json", spec);
    return config_load(cfg, p, err, errlen);
}

static int is_oom(const char *err) { return !strncmp(err, "out of memory", 13) || strstr(err, ": out of memory") || lcb_mem_limit_hit(); }

/* cJSON number, or null for a value that was not measured (NaN): never 0 */
static void json_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v); else cJSON_AddNullToObject(o, k);
}

/* ---------------------------------------------------------------- the headline (run.h) */

typedef struct { int64_t n; double sum, sumsq; } MetAcc;
typedef struct {
    int64_t max_pos;
    MetAcc ctx, past;
    const Tokenizer *tok;
    const int32_t *ids;
    size_t n_ids;
    int64_t bytes;
    Words words;                 /* UTF-8 aware, white space as lm-eval splits words (datasets/words.h) */
    int64_t prev_win, prev_end;  /* the last row: window start and in-window end (continuation) */
    int bad;                     /* a row's targets past the stream, or a decode error */
    char err[LCB_ERRLEN];
} MetCtx;

static int metrics_row(void *vctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    MetCtx *x = vctx;
    for (int64_t j = 0; j < n; j++) {
        MetAcc *a = x->max_pos > 0 && pos0 + j >= x->max_pos ? &x->past : &x->ctx;
        a->n++; a->sum += nll[j]; a->sumsq += (double)nll[j] * nll[j];
    }
    if (!x->tok || n <= 0) return 0;
    /* the targets of steps pos0 .. pos0+n-1 are stream tokens win_start+pos0+1 .. win_start+pos0+n */
    int64_t a = win_start + pos0 + 1;
    if (a < 0 || (uint64_t)(a + n) > x->n_ids) {
        x->bad = 1;
        snprintf(x->err, sizeof x->err, "an nll row (window %lld, steps %lld..%lld) lies past the stream of %zu tokens",
                 (long long)win_start, (long long)pos0, (long long)(pos0 + n - 1), x->n_ids);
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(x->tok, x->ids + a, (size_t)n, 1, &text, &len, x->err, sizeof x->err)) { x->bad = 1; return 1; }
    if (!(win_start == x->prev_win && pos0 == x->prev_end)) {   /* not the continuation of the last row: a new text */
        words_end(&x->words);
        x->words.in_word = 0;
    }
    words_feed(&x->words, text, len);
    x->bytes += (int64_t)len;
    x->prev_win = win_start;
    x->prev_end = pos0 + n;
    free(text);
    return 0;
}

static void met_stats(const MetAcc *a, int64_t *steps, double *mean, double *se) {
    *steps = a->n;
    *mean = a->n ? a->sum / a->n : NAN;
    double var = a->n > 1 ? (a->sumsq - a->n * *mean * *mean) / (a->n - 1) : 0;
    *se = a->n > 1 ? sqrt(var > 0 ? var : 0) / sqrt((double)a->n) : NAN;
}

int run_metrics_compute(Store *st, int64_t run, int64_t max_pos, const Tokenizer *tok, const int32_t *ids, size_t n_ids,
                        RunMetrics *m, char *err, size_t errlen) {
    store_metrics_init(m);
    MetCtx x = {.max_pos = max_pos, .tok = ids ? tok : NULL, .ids = ids, .n_ids = n_ids, .prev_win = -1, .prev_end = -1};
    words_init(&x.words);
    if (store_nll_foreach(st, run, metrics_row, &x, err, errlen)) return -1;
    if (x.bad) return lcb_fail(err, errlen, "run %lld: bytes and words of the scored text: %s", (long long)run, x.err);
    met_stats(&x.ctx, &m->ctx_steps, &m->ctx_mean_nll, &m->ctx_se);
    met_stats(&x.past, &m->past_steps, &m->past_mean_nll, &m->past_se);
    if (x.tok) {
        double sum = x.ctx.sum + x.past.sum;
        words_end(&x.words);
        m->bytes = x.bytes;
        m->words = x.words.words;
        m->bits_per_byte = x.bytes > 0 ? sum / (M_LN2 * (double)x.bytes) : NAN;
        m->word_ppl = m->words > 0 ? exp(sum / (double)m->words) : NAN;
    }
    return 0;
}

int64_t run_cache_tokens(const char *spec) {
    Strategy s;
    char err[LCB_ERRLEN];
    if (!spec || strategy_parse(&s, spec, err, sizeof err)) return -1;
    return strategy_span(&s);   /* the policy's own count (strategies/) */
}

static void fmt_bytes(char *b, size_t n, double v) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (v >= 1024 && k < 4) { v /= 1024; k++; }
    snprintf(b, n, k ? "%.1f %s" : "%.0f %s", v, u[k]);
}


/* "PPL 124.53 +- 0.84": the stderr of the mean NLL carried to the PPL (delta method: PPL * se) */
static void fmt_ppl(char *b, size_t n, double mean, double se) {
    if (!isfinite(mean)) { snprintf(b, n, "-"); return; }
    double p = exp(mean);
    if (isfinite(se)) snprintf(b, n, "PPL %.4g \xc2\xb1 %.2g", p, p * se);
    else snprintf(b, n, "PPL %.4g", p);
}

/* The log2 bins of a list of bins as reports' RepBin (an unknown stderr as 0); NULL on no memory. */
static RepBin *rep_log2(const StoreBin *b, size_t nb, size_t *n) {
    RepBin *v = malloc((nb ? nb : 1) * sizeof *v);
    *n = 0;
    for (size_t i = 0; v && i < nb; i++)
        if (!strcmp(b[i].kind, "log2"))
            v[(*n)++] = (RepBin){.lo = b[i].lo, .hi = b[i].hi, .count = b[i].count, .mean_nll = b[i].mean_nll, .ppl = b[i].ppl,
                                 .se = isnan(b[i].se) ? 0 : b[i].se};
    return v;
}

RepBin *run_log2_bins(Store *st, const StoreRun *r, size_t *n, char *err, size_t errlen) {
    StoreBin *b;
    size_t nb;
    double mean;
    int64_t steps;
    *n = 0;
    int rc = store_status_parse(r->status) == STORE_RUNNING
                 ? store_bins_compute(st, r->id, r->bin_width, &b, &nb, &mean, &steps, err, errlen)
                 : store_bins_read(st, r->id, "log2", &b, &nb, err, errlen);
    if (rc) return NULL;
    RepBin *v = rep_log2(b, nb, n);
    free(b);
    if (!v) lcb_fail(err, errlen, "out of memory");
    return v;
}

void run_headline_print(FILE *f, Store *st, const StoreRun *r, const RunMetrics *m, const StoreBin *bins, size_t n_bins) {
    char a[96], b[96];
    int64_t P = r->max_pos;
    fprintf(f, "headline of run %lld (%s):\n", (long long)r->id, r->status ? r->status : "?");
    if (m->ctx_steps >= 0) {
        fmt_ppl(a, sizeof a, m->ctx_mean_nll, m->ctx_se);
        fprintf(f, "  in context    %-26s positions t < %lld, %lld steps\n", a, (long long)P, (long long)m->ctx_steps);
        fmt_ppl(b, sizeof b, m->past_mean_nll, m->past_se);
        if (m->past_steps > 0) fprintf(f, "  past context  %-26s positions t >= %lld, %lld steps\n", b, (long long)P, (long long)m->past_steps);
        else fprintf(f, "  past context  -                          no step past the context\n");
    } else fprintf(f, "  in context    -                          (not recorded: a file older than schema 4)\n");
    /* collapse: reports.h's rule on the log2 bins */
    size_t nl = 0;
    char err[LCB_ERRLEN];
    RepBin *lb = bins ? rep_log2(bins, n_bins, &nl) : run_log2_bins(st, r, &nl, err, sizeof err);
    if (!lb) fprintf(f, "  (bins: %s)\n", bins ? "out of memory" : err);
    /* R: a reference run on the same steps (sinks kept, cache within the context), else the run's own octave */
    RepCollapse c;
    const double k = REP_COLLAPSE_FACTOR;
    int crc = lb ? rep_collapse(st->db, r, lb, nl, k, &c) : -1;
    double at = NAN;
    for (size_t i = 0; lb && crc == 0 && i < nl; i++) if (lb[i].lo == c.pos) at = lb[i].ppl;
    int have_bins = lb != NULL;
    free(lb);
    char who[128] = "";
    if (crc == 0 && c.matched) {
        if (c.ref_run == r->id) snprintf(who, sizeof who, "this run's own (%s: sinks kept, a cache within the context)", c.ref_strategy);
        else snprintf(who, sizeof who, "run %lld's (%s)", (long long)c.ref_run, c.ref_strategy);
    }
    if (crc) fprintf(f, "  collapse      -                          %s\n", have_bins ? sqlite3_errmsg(st->db) : "no bins");
    else if (c.matched && c.pos >= 0)
        fprintf(f, "  collapse      at position %lld      PPL %.4g > %g x %.4g, %s PPL on the same steps\n", (long long)c.pos, at, k, c.ref_ppl, who);
    else if (c.matched && isfinite(c.worst))
        fprintf(f, "  collapse      none                       worst log2 bin past the context: %.2fx %s PPL on the same steps, at %lld (a collapse is > %gx)\n",
                c.worst, who, (long long)c.worst_lo, k);
    else if (c.matched) fprintf(f, "  collapse      -                          no log2 bin past the context to compare with %s\n", who);
    else if (c.pos >= 0)
        fprintf(f, "  collapse      at position %lld      first log2 bin past the context with PPL > %g x %.4g (the PPL of [%lld, %lld); no reference run on this stream)\n",
                (long long)c.pos, k, c.ref_ppl, (long long)(P / 2), (long long)P);
    else if (isnan(c.ref_ppl)) fprintf(f, "  collapse      -                          no full in-context octave [%lld, %lld) to compare with\n", (long long)(P / 2), (long long)P);
    else fprintf(f, "  collapse      none                       no log2 bin past the context above %g x %.4g (the PPL of [%lld, %lld); no reference run on this stream)\n",
                 k, c.ref_ppl, (long long)(P / 2), (long long)P);
    if (m->bytes >= 0) {
        char bpb[32] = "-", wp[32] = "-";
        if (isfinite(m->bits_per_byte)) snprintf(bpb, sizeof bpb, "%.4f", m->bits_per_byte);
        if (isfinite(m->word_ppl)) snprintf(wp, sizeof wp, "%.4g", m->word_ppl);
        fprintf(f, "  per byte      %s bits/byte, word PPL %s  (%lld bytes, %lld words of scored text)\n", bpb, wp, (long long)m->bytes,
                (long long)m->words);
    } else fprintf(f, "  per byte      -                          no text (a dataset of token ids): bits/byte and word PPL unknown\n");
    StoreSamplePeaks pk;
    if (store_samples_peaks(st, r->id, &pk, err, sizeof err)) fprintf(f, "  (samples: %s)\n", err);
    else if (pk.n > 0) {
        char w[32], k[32], wk[32], t[32];
        fmt_bytes(w, sizeof w, pk.weights);
        fmt_bytes(k, sizeof k, pk.kv);
        fmt_bytes(wk, sizeof wk, pk.work);
        fmt_count(t, sizeof t, pk.last_tokens_per_s);
        fprintf(f, "  throughput    %s tokens/s\n", t);
        fprintf(f, "  peak memory   weights %s, KV %s, workspace %s\n", w, k, wk);
    }
    int64_t ct = run_cache_tokens(r->strategy);
    if (ct < 0) fprintf(f, "  cache         %s keeps every token: past %lld it sees positions the model never saw\n", r->strategy ? r->strategy : "?", (long long)P);
    else if (P > 0)
        fprintf(f, "  cache         %lld tokens (%s) against a context of %lld: %.2fx%s\n", (long long)ct, r->strategy, (long long)P, (double)ct / P,
                ct > P ? ", larger than the context (expect a collapse past it)" : "");
    else fprintf(f, "  cache         %lld tokens (%s)\n", (long long)ct, r->strategy);
}

static void print_summary(Store *st, const StoreRun *r, const RunMetrics *m, const char *db, int tty) {
    if (tty) {
        char res[128];
        if (isfinite(r->mean_nll)) snprintf(res, sizeof res, "mean NLL %.6f  PPL %.4f", r->mean_nll, r->ppl);
        else snprintf(res, sizeof res, "no mean NLL (nothing aggregated)");
        printf("run %lld: %s  %lld steps over %lld tokens  %s  %.1f s  (%s)\n", (long long)r->id, r->status,
               (long long)r->steps_done, (long long)r->tokens, res, r->wall_s, db);
        run_headline_print(stdout, st, r, m, NULL, 0);
        printf("details: lcbench show %lld --db %s\n", (long long)r->id, db);
    } else {
        cJSON *o = cJSON_CreateObject();
        char *txt = NULL;
        if (o) {
            cJSON_AddNumberToObject(o, "run", (double)r->id);
            cJSON_AddStringToObject(o, "status", r->status ? r->status : "?");
            cJSON_AddNumberToObject(o, "steps", (double)r->steps_done);
            cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
            /* a failed run has no result (its mean would cover the steps before the failure only);
             * oom and interrupted runs report the mean of the `steps` they scored */
            int failed = !r->status || store_status_parse(r->status) == STORE_FAILED;
            json_num(o, "mean_nll", failed ? NAN : r->mean_nll);
            json_num(o, "ppl", failed ? NAN : r->ppl);
            json_num(o, "wall_s", r->wall_s);
            /* the headline (run.h): null when not measured, never 0 */
            json_num(o, "ppl_in_context", failed ? NAN : exp(m->ctx_mean_nll));
            json_num(o, "ppl_in_context_stderr", failed ? NAN : exp(m->ctx_mean_nll) * m->ctx_se);
            json_num(o, "ppl_past_context", failed ? NAN : exp(m->past_mean_nll));
            json_num(o, "ppl_past_context_stderr", failed ? NAN : exp(m->past_mean_nll) * m->past_se);
            json_num(o, "bits_per_byte", failed ? NAN : m->bits_per_byte);
            json_num(o, "word_ppl", failed ? NAN : m->word_ppl);
            json_num(o, "scored_bytes", m->bytes >= 0 ? (double)m->bytes : NAN);
            json_num(o, "scored_words", m->words >= 0 ? (double)m->words : NAN);
            cJSON_AddStringToObject(o, "db", db);
            txt = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
        }
        if (txt) printf("%s\n", txt); else fprintf(stderr, "lcbench run: out of memory printing the summary of run %lld\n", (long long)r->id);
        free(txt);
    }
    fflush(stdout);
}

static const char *nzs(const char *s) { return s ? s : ""; }

/* The device a run row records ("cpu (...)", "cuda bf16 (...)", "cuda fp16, tp 2 (...)"). */
static void stored_device(const StoreRun *r, char dev[8], char dtype[8], int *tp) {
    const char *d = nzs(r->device);
    snprintf(dev, 8, "%s", !strncmp(d, "cuda", 4) ? "cuda" : "cpu");
    dtype[0] = 0;
    *tp = 1;
    if (strcmp(dev, "cuda")) return;
    if (sscanf(d, "cuda %7[a-z0-9]", dtype) != 1) dtype[0] = 0;
    const char *t = strstr(d, ", tp ");
    if (t) *tp = atoi(t + 5);
}

/* Flags given with --resume that contradict the run's row, as "--flag VALUE (the run has X)"
 * joined by "; " into out; returns how many.  A flag equal to the stored value is no conflict. */
static int resume_conflicts(const RunConfig *c, const StoreRun *r, char *out, size_t n) {
    int k = 0;
    size_t l = 0;
    out[0] = 0;
#define CONFLICT(bit, flag, fmt_g, val_g, fmt_s, val_s, differs)                                                     \
    do {                                                                                                                       \
        if ((c->given & (bit)) && (differs) && l < n) {                                                                        \
            l += (size_t)snprintf(out + l, n - l, "%s" flag " " fmt_g " (the run has " fmt_s ")", k ? "; " : "", val_g, val_s); \
            k++;                                                                                                               \
        }                                                                                                                      \
    } while (0)
    CONFLICT(RUN_GIVEN_MODEL, "--model", "%s", nzs(c->model), "%s", nzs(r->model), strcmp(nzs(c->model), nzs(r->model)));
    CONFLICT(RUN_GIVEN_CONFIG, "--config", "%s", nzs(c->config), "%s", r->model_config ? r->model_config : "none", strcmp(nzs(c->config), nzs(r->model_config)));
    CONFLICT(RUN_GIVEN_TOKENIZER, "--tokenizer", "%s", nzs(c->tokenizer), "%s", r->tokenizer ? r->tokenizer : "none",
             strcmp(nzs(c->tokenizer), nzs(r->tokenizer)));
    char spec[128] = "";   /* a bare name means what it meant for this run's model */
    if (c->strategy && strategy_spec_for_ctx(c->strategy, r->max_pos, spec, sizeof spec, NULL, 0)) snprintf(spec, sizeof spec, "%s", c->strategy);
    CONFLICT(RUN_GIVEN_STRATEGY, "--strategy", "%s", nzs(c->strategy), "%s", nzs(r->strategy), strcmp(spec, nzs(r->strategy)));
    CONFLICT(RUN_GIVEN_PROTOCOL, "--protocol", "%s", protocol_name(c->proto.proto), "%s", nzs(r->protocol),
             strcmp(protocol_name(c->proto.proto), r->protocol ? r->protocol : "stream"));
    CONFLICT(RUN_GIVEN_CTX, "--ctx", "%lld", (long long)c->proto.ctx, "%lld", (long long)r->ctx, c->proto.ctx != r->ctx);
    CONFLICT(RUN_GIVEN_STRIDE, "--stride", "%lld", (long long)c->proto.stride, "%lld", (long long)r->stride, c->proto.stride != r->stride);
    CONFLICT(RUN_GIVEN_CHUNK, "--chunk", "%lld", (long long)c->proto.chunk, "%lld", (long long)r->chunk, c->proto.chunk != r->chunk);
    CONFLICT(RUN_GIVEN_DATASET, "--dataset", "%s", nzs(c->dataset), "%s", nzs(r->dataset), strcmp(nzs(c->dataset), nzs(r->dataset)));
    CONFLICT(RUN_GIVEN_FIELD, "--field", "%s", nzs(c->field), "%s", r->dataset_field ? r->dataset_field : "none", strcmp(nzs(c->field), nzs(r->dataset_field)));
    CONFLICT(RUN_GIVEN_TOKEN_FORMAT, "--token-format", "%s", nzs(c->token_format), "%s", nzs(r->token_format),
             strcmp(nzs(c->token_format), nzs(r->token_format)));
    CONFLICT(RUN_GIVEN_BOS, "--bos", "%s", nzs(c->bos), "%s", nzs(r->bos), strcmp(nzs(c->bos), nzs(r->bos)));
    CONFLICT(RUN_GIVEN_TOKENS, "--tokens", "%llu", (unsigned long long)c->tokens, "%lld", (long long)r->tokens_requested,
             (int64_t)c->tokens != r->tokens_requested);
    CONFLICT(RUN_GIVEN_REPEAT, "--no-repeat", "%s", "", "%s", r->repeat ? "repeat on" : "repeat off", (int64_t)c->repeat != r->repeat);
    CONFLICT(RUN_GIVEN_BATCH, "--batch", "%lld", (long long)c->batch_tokens, "%lld", (long long)r->batch_tokens, c->batch_tokens != r->batch_tokens);
    CONFLICT(RUN_GIVEN_BIN_WIDTH, "--bin-width", "%lld", (long long)c->bin_width, "%lld", (long long)r->bin_width, c->bin_width != r->bin_width);
    char dev[8], dtype[8];
    int tp;
    stored_device(r, dev, dtype, &tp);
    CONFLICT(RUN_GIVEN_DEVICE, "--device", "%s", nzs(c->device), "%s", nzs(r->device), strcmp(nzs(c->device), dev));
    CONFLICT(RUN_GIVEN_DTYPE, "--dtype", "%s", nzs(c->dtype), "%s", nzs(r->device), strcmp(nzs(c->dtype), dtype));
    CONFLICT(RUN_GIVEN_TP, "--tp", "%d", c->tp, "%s", nzs(r->device), c->tp != tp);
#undef CONFLICT
    return k;
}

/* ---------------------------------------------------------------- run_execute, in four steps
 *
 *   run_resolve  what to run: a --resume's stored settings, the model, tokenizer, strategy,
 *                protocol and dataset, each checked (a usage error is refused before anything
 *                is written), the model opened (an OOM there is a measured outcome)
 *   run_record   the runs row: a new one with its provenance, or the resumed one marked running
 *   run_stream   the protocol over the stream, batches committed as it goes; its end status
 *   run_finish   bins, headline and closing row in one transaction; the summary; the exit status
 */

/* Everything one run_execute holds from resolve to finish. */
typedef struct {
    RunConfig *c;
    Store st;
    StoreRun r;                 /* the row: filled by run_record, or read back on --resume */
    int resuming;
    Tokenizer *tok;             /* NULL: a model without a tokenizer (random:, token ids) */
    Dataset d;
    DatasetOptions dopt;
    ModelConfig cfg;
    Model m;
    int model_live;             /* 0: the model could not be opened (open_err: an OOM) */
    int opened;                 /* st is open */
    Strategy s;
    const char *spec;           /* the strategy in full (bare sink/window sized from the model) */
    int64_t steps_total;
    char model_path[PATH_MAX + 64], tok_path[PATH_MAX + 64], tok_hash[65], hex[65];
    char quant[512];            /* a GGUF's tensor types ("" otherwise), a model_quant event */
    char open_err[LCB_ERRLEN];
    StoreStatus end;            /* how the stream ended (run_stream) */
    int64_t fail_pos;
    char err[LCB_ERRLEN];       /* with end != STORE_DONE: why */
} RunJob;

/* --resume: the stored run, looked up read-only first (a mistyped --db is refused, never
 * created; flags that contradict the run are refused before anything is written), then its
 * recorded settings taken as this run's.  0 or the exit status. */
static int run_resolve_resume(RunJob *j) {
    RunConfig *c = j->c;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    StoreRun r;
    Store ro;
    int orc = store_open_readonly(&ro, c->db_path, err, errlen);
    if (orc) { cli_error("run", "--resume %lld: --db %s", (long long)c->resume_id, err); return orc == -2 ? EXIT_USAGE : 1; }
    if (store_run_get(&ro, c->resume_id, &r, err, errlen)) { cli_error("run", "--resume: %s", err); store_close(&ro); return EXIT_USAGE; }
    store_close(&ro);
    char why[2048];
    int nc = resume_conflicts(c, &r, why, sizeof why);
    if (nc) {
        cli_error("run", "--resume %lld: %s conflict%s with the stored run: %s (drop %s: a resumed run keeps its recorded settings)",
                  (long long)r.id, nc == 1 ? "a flag" : "flags", nc == 1 ? "s" : "", why, nc == 1 ? "it" : "them");
        store_run_free(&r);
        return EXIT_USAGE;
    }
    /* the device the run was recorded on, unless --device says the same */
    if (!(c->given & RUN_GIVEN_DEVICE)) {
        static char dev[8], dtype[8];
        int tp;
        stored_device(&r, dev, dtype, &tp);
        c->device = dev;
        if (!(c->given & RUN_GIVEN_DTYPE)) c->dtype = dtype[0] ? dtype : NULL;
        if (!(c->given & RUN_GIVEN_TP)) c->tp = tp;
    }
    store_run_free(&r);
    return 0;
}

/* The resumed row, from the file opened for writing: not done, not alive elsewhere; its
 * settings become the configuration (the strings stay owned by j->r). */
static int run_resolve_stored(RunJob *j) {
    RunConfig *c = j->c;
    StoreRun *r = &j->r;
    if (store_run_get(&j->st, c->resume_id, r, j->err, sizeof j->err)) { cli_error("run", "--resume: %s", j->err); return EXIT_USAGE; }
    StoreStatus shown = store_status_shown(r->status, r->host, r->pid);
    if (shown == STORE_DONE) { cli_error("run", "--resume %lld: the run is already complete", (long long)r->id); return EXIT_USAGE; }
    if (shown == STORE_RUNNING && !c->force) {
        cli_error("run", "--resume %lld: the run looks alive (host %s, pid %lld); use --force if it is not", (long long)r->id,
                  r->host ? r->host : "?", (long long)r->pid);
        return EXIT_USAGE;
    }
    c->model = r->model; c->config = r->model_config; c->tokenizer = r->tokenizer; c->strategy = r->strategy;
    protocol_parse(r->protocol ? r->protocol : "stream", &c->proto.proto);
    c->proto.ctx = r->ctx; c->proto.stride = r->stride; c->proto.chunk = r->chunk;
    c->dataset = r->dataset; c->field = r->dataset_field; c->token_format = r->token_format; c->bos = r->bos;
    c->tokens = (uint64_t)r->tokens_requested; c->repeat = (int)r->repeat;
    if (!c->mem_limit) c->mem_limit = (uint64_t)r->mem_limit;
    r->mem_limit = (int64_t)c->mem_limit;
    c->batch_tokens = r->batch_tokens; c->bin_width = r->bin_width;
    return 0;
}

/* The model's path and its tokenizer (its own, a GGUF's tokenizer.ggml.*, or --tokenizer),
 * loaded and hashed; the config peeked.  0, or 1 after the message. */
static int run_resolve_model(RunJob *j) {
    RunConfig *c = j->c;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    if (c->model) snprintf(j->model_path, sizeof j->model_path, "%s", c->model);
    else {
        lcb_data_path(DEFAULT_MODEL, j->model_path, sizeof j->model_path);   /* the install's data folder, then the checkout */
        if (!file_exists(j->model_path)) {
            cli_error("run", "the default model %s is not there (the reference models go in models/); pass --model PATH or random:SHAPE", j->model_path);
            return 1;
        }
    }
    const char *model_path = j->model_path;
    int is_random = !strncmp(model_path, "random:", 7);
    if (c->tokenizer && *c->tokenizer) snprintf(j->tok_path, sizeof j->tok_path, "%s", c->tokenizer);
    else if (!is_random && gguf_model_is(model_path)) {
        if (gguf_tokenizer_present(model_path)) snprintf(j->tok_path, sizeof j->tok_path, "%s", model_path); /* its own tokenizer.ggml.* */
    }
    else if (!is_random) {
        char p[PATH_MAX + 96];
        snprintf(p, sizeof p, "%s/tokenizer.json", model_path);
        if (file_exists(p)) snprintf(j->tok_path, sizeof j->tok_path, "%s", model_path);
    }
    if (j->tok_path[0]) {
        if (!(j->tok = tokenizer_load(j->tok_path, err, errlen))) { cli_error("run", "%s", err); return 1; }
        char f[PATH_MAX + 96];
        struct stat sb;
        if (stat(j->tok_path, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(f, sizeof f, "%s/tokenizer.json", j->tok_path);
        else snprintf(f, sizeof f, "%s", j->tok_path);
        Sha256 h;
        sha256_init(&h);
        if (sha256_file(f, &h, err, errlen)) { cli_error("run", "%s", err); return 1; }
        sha256_hex(&h, j->tok_hash);
    }
    if (peek_config(model_path, c->config, &j->cfg, err, errlen)) { cli_error("run", "--model: %s", err); return 1; }
    return 0;
}

/* Strategy, protocol and dataset: usage errors before anything is recorded; the model's hash
 * and a GGUF's tensor types.  0 or the exit status. */
static int run_resolve_inputs(RunJob *j) {
    RunConfig *c = j->c;
    const ModelConfig *cfg = &j->cfg;
    const char *model_path = j->model_path;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    if (strategy_parse(&j->s, c->strategy ? c->strategy : "sink", err, errlen) || strategy_resolve(&j->s, cfg, err, errlen)) {
        cli_error("run", "%s", err);
        return EXIT_USAGE;
    }
    j->spec = j->s.spec;
    if (c->proto.proto != PROTO_STREAM && c->proto.ctx <= 0) c->proto.ctx = cfg->max_pos;   /* default: the pre-training context */
    if (c->proto.proto == PROTO_LONGLORA && c->proto.stride <= 0) c->proto.stride = 256;
    if (c->proto.proto == PROTO_STRIDE && c->proto.stride <= 0) c->proto.stride = c->proto.ctx / 2 > 0 ? c->proto.ctx / 2 : 1;

    j->dopt = (DatasetOptions){.spec = c->dataset ? c->dataset : DEFAULT_DATASET, .corpus_dir = lcb_corpus_dir(), .field = c->field,
                               .max_tokens = c->tokens, .repeat = c->repeat};
    if (dataset_format_parse(c->token_format ? c->token_format : "auto", &j->dopt.format)) {
        cli_error("run", "--token-format \"%s\" must be auto, text, jsonl, u16, u32 or ids", c->token_format);
        return EXIT_USAGE;
    }
    if (dataset_bos_parse(c->bos ? c->bos : "auto", &j->dopt.bos)) {
        cli_error("run", "--bos \"%s\" must be auto, none, first or each-doc", c->bos);
        return EXIT_USAGE;
    }
    int32_t bos_id = j->tok ? tokenizer_bos_id(j->tok) : cfg->bos_id;
    if (dataset_load(&j->d, &j->dopt, j->tok, bos_id, err, errlen)) { cli_error("run", "%s", err); return 1; }
    if (j->d.max_id >= cfg->vocab) {
        cli_error("run", "--dataset %s: token id %d is outside the vocabulary of %s (size %d)", j->dopt.spec, j->d.max_id, model_path, cfg->vocab);
        return 1;
    }
    int64_t units;
    if (protocol_plan(&c->proto, j->d.n, &j->steps_total, &units, err, errlen)) { cli_error("run", "%s", err); return EXIT_USAGE; }
    if (model_hash(&j->st, model_path, c->config, j->hex, err, errlen)) { cli_error("run", "%s", err); return 1; }
    /* a GGUF's tensor types, recorded as a model_quant event of the run ("Q4_K 48, F32 17, ...") */
    if (strncmp(model_path, "random:", 7) && !c->config && gguf_model_is(model_path)) {
        uint64_t wbytes;
        char types[400];
        if (gguf_weight_bytes(model_path, &wbytes, types, sizeof types, err, errlen)) { cli_error("run", "--model: %s", err); return 1; }
        snprintf(j->quant, sizeof j->quant, "tensors by ggml type: %s; %llu bytes of tensor data", types, (unsigned long long)wbytes);
    }
    if (c->proto.proto == PROTO_CHUNKS_BOS && (cfg->bos_id < 0 || cfg->bos_id >= cfg->vocab)) {
        cli_error("run", "--protocol chunks-bos: %s has no BOS token id (bos_token_id / tokenizer.ggml.bos_token_id)", model_path);
        return EXIT_USAGE;
    }
    return 0;
}

/* Device, model and strategy are checked before the run row exists: a run that could never
 * start is an error, not a recorded run.  An OOM loading the model is a measured outcome
 * (recorded as an oom run at position 0: model_live 0, open_err); any other failure is not. */
static int run_open_model(RunJob *j) {
    RunConfig *c = j->c;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    if (lcb_device_parse(c->device) == LCB_DEVICE_CUDA && cuda_available(err, errlen)) {
        if (strncmp(err, "--device", 8)) cli_error("run", "--device cuda: %s", err); else cli_error("run", "%s", err);
        return 1;
    }
    if (model_open_tp(&j->m, j->model_path, c->config, lcb_device_parse(c->device), c->dtype, c->tp, err, errlen)) {
        if (!is_oom(err)) { cli_error("run", "--model %s: %s", j->model_path, err); return 1; }
        snprintf(j->open_err, sizeof j->open_err, "%s", err);
        return 0;
    }
    j->model_live = 1;
    int brc = strategy_begin(&j->s, &j->m, err, errlen);
    strategy_end(&j->s);
    if (brc && !is_oom(err)) { cli_error("run", "%s (model %s)", err, j->model_path); return EXIT_USAGE; }
    return 0;
}

/* Step 1: what to run.  0 or the exit status (the store is open from here on). */
static int run_resolve(RunJob *j) {
    int rc;
    if (j->resuming && (rc = run_resolve_resume(j))) return rc;
    if (store_open(&j->st, j->c->db_path, j->err, sizeof j->err)) { cli_error("run", "%s", j->err); return 1; }
    j->opened = 1;
    if (j->resuming && (rc = run_resolve_stored(j))) return rc;
    lcb_mem_set_limit((size_t)j->c->mem_limit);
    if ((rc = run_resolve_model(j)) || (rc = run_resolve_inputs(j)) || (rc = run_open_model(j))) return rc;
    return 0;
}

/* Step 2: the runs row.  A resumed run must still be the same stream of the same model; a new
 * one is inserted with its provenance, documents and first events in one transaction. */
static int run_record(RunJob *j) {
    RunConfig *c = j->c;
    StoreRun *r = &j->r;
    Store *st = &j->st;
    char *err = j->err;
    size_t errlen = sizeof j->err;
    char now[32], host[256] = "", rev[96], dev[300];
    store_now(now);
    gethostname(host, sizeof host - 1);
    if (j->resuming) {
        if (r->dataset_hash && strcmp(r->dataset_hash, j->d.hash)) {
            cli_error("run", "--resume %lld: the dataset's token stream changed (hash %.12s..., recorded %.12s...)", (long long)r->id, j->d.hash,
                      r->dataset_hash);
            return 1;
        }
        if (r->model_hash && strcmp(r->model_hash, j->hex)) {
            cli_error("run", "--resume %lld: the model's content changed (hash %.12s..., recorded %.12s...)", (long long)r->id, j->hex, r->model_hash);
            return 1;
        }
        store_set(&r->status, store_status_name(STORE_RUNNING));
        store_set(&r->host, host);
        r->pid = getpid();
        r->threads = omp_get_max_threads();
        if (store_run_update(st, r, err, errlen) || store_event(st, r->id, r->cursor, "resume", NULL, err, errlen)) {
            cli_error("run", "%s", err);
            return 1;
        }
        return 0;
    }
    const ModelConfig *cfg = &j->cfg;
    const Dataset *d = &j->d;
    run_git_revision(rev, sizeof rev);
    if (lcb_device_parse(c->device) == LCB_DEVICE_CUDA) {
        char gpu[256];
        cuda_describe(gpu, sizeof gpu);
        const char *dt = c->dtype ? c->dtype : "bf16";
        if (c->tp > 1) snprintf(dev, sizeof dev, "cuda %s, tp %d (%d x %s)", dt, c->tp, c->tp, gpu);
        else snprintf(dev, sizeof dev, "cuda %s (%s)", dt, gpu);
    } else cpu_name(dev, sizeof dev);
    store_set(&r->status, store_status_name(STORE_RUNNING));
    store_set(&r->lcbench_rev, rev);
    store_set(&r->argv, c->argv_text);
    store_set(&r->model, j->model_path);
    store_set(&r->model_config, c->config);
    store_set(&r->model_hash, j->hex);
    store_set(&r->arch, config_arch_name(cfg->arch));
    r->n_params = (int64_t)config_n_params(cfg);
    r->max_pos = cfg->max_pos;
    store_set(&r->tokenizer, j->tok_path[0] ? j->tok_path : NULL);
    store_set(&r->tokenizer_hash, j->tok_hash[0] ? j->tok_hash : NULL);
    store_set(&r->strategy, j->spec);
    store_set(&r->protocol, protocol_name(c->proto.proto));
    store_set(&r->bos, dataset_bos_name(d->bos));
    r->ctx = c->proto.proto == PROTO_STREAM ? 0 : c->proto.ctx;
    r->stride = c->proto.proto == PROTO_STRIDE || c->proto.proto == PROTO_LONGLORA ? c->proto.stride : 0;
    r->chunk = c->proto.chunk;
    store_set(&r->dataset, j->dopt.spec);
    store_set(&r->dataset_field, c->field);
    store_set(&r->token_format, dataset_format_name(j->dopt.format));
    store_set(&r->dataset_hash, d->hash);
    store_set(&r->source_hash, d->source_hash);
    r->n_docs = (int64_t)d->n_docs;
    r->passes = d->passes;
    r->repeat = c->repeat;
    r->tokens_requested = (int64_t)c->tokens;
    r->tokens = (int64_t)d->n;
    r->steps_total = j->steps_total;
    r->mem_limit = (int64_t)c->mem_limit;
    r->batch_tokens = c->batch_tokens;
    r->bin_width = c->bin_width;
    r->threads = omp_get_max_threads();
    store_set(&r->device, dev);
    store_set(&r->host, host);
    r->pid = getpid();
    store_set(&r->started, now);
    r->mean_nll = r->ppl = NAN;
    int rc = store_begin(st, err, errlen);
    if (rc == 0) rc = store_run_insert(st, r, err, errlen);
    if (rc == 0) rc = store_docs(st, r->id, d->doc_pos, d->doc_name, d->n_docs, err, errlen);
    if (rc == 0 && j->quant[0]) rc = store_event(st, r->id, 0, "model_quant", j->quant, err, errlen);
    if (rc == 0 && c->proto.proto != PROTO_STREAM && cfg->max_pos > 0 && c->proto.ctx > cfg->max_pos)
        rc = store_event(st, r->id, cfg->max_pos, "ctx_passed", "the window is longer than the model's pre-training context", err, errlen);
    if (rc == 0) rc = store_commit(st, err, errlen);
    if (rc) { store_rollback(st); cli_error("run", "%s", err); return 1; }
    if (d->passes > 1)
        fprintf(stderr, "lcbench run: note: --dataset %s has %llu tokens; it was repeated to reach --tokens %llu (passes %d, recorded)\n",
                j->dopt.spec, (unsigned long long)d->repeat_pos, (unsigned long long)c->tokens, d->passes);
    return 0;
}

/* Step 3: the stream.  Sets j->end (done, oom, failed, interrupted) with j->err and j->fail_pos,
 * keeps what was measured (the pending batch), and records the closing event of a run that
 * did not finish.  x is the run state the protocol's callbacks share. */
static void run_stream(RunJob *j, RunState *x) {
    RunConfig *c = j->c;
    StoreRun *r = &j->r;
    signals_install();
    j->end = STORE_DONE;
    j->fail_pos = r->cursor;
    if (!j->model_live) { j->end = STORE_OOM; snprintf(j->err, sizeof j->err, "%s", j->open_err); }
    else store_set(&r->dtype, j->m.disk_dtype);

    x->st = &j->st; x->r = r; x->s = &j->s;
    x->max_pos = j->cfg.max_pos;
    x->ctx_event_done = j->resuming && (r->protocol && !strcmp(r->protocol, "stream")) && r->cursor > j->cfg.max_pos;
    x->repeat_pos = (int64_t)j->d.repeat_pos;
    x->repeat_event_done = j->resuming && r->cursor >= x->repeat_pos;
    x->pending_ctx_event = x->pending_repeat_event = -1;
    x->fail_pos = -1;
    x->cursor = r->cursor;
    x->stream_pos = r->cursor;
    x->t_session = x->t_commit = lcb_now();
    x->wall_before = r->wall_s;
    x->steps_before = r->steps_done;
    x->batch_seconds = c->batch_seconds > 0 ? c->batch_seconds : 10;
    x->progress = c->progress < 0 ? isatty(2) : c->progress;
    x->bar = x->progress && isatty(2);
    x->pace_ms = c->pace_ms;
    if (c->proto.proto == PROTO_STREAM && c->kv_snapshot_seconds >= 0) {
        kvsnap_path(x->snap_path, sizeof x->snap_path, c->db_path, r->id);
        x->snap_seconds = c->kv_snapshot_seconds;
    }
    if (j->resuming) {
        double mean;
        int64_t n;
        if (store_bins_recompute(&j->st, r->id, r->bin_width, &mean, &n, j->err, sizeof j->err) == 0 && n > 0) x->sum_nll = mean * n;
    }

    /* --- fluency probes (harness/fluency/fluency.h): word list, first probe after the cursor --- */
    FluencyDict *probe_dict = NULL;
    int live = j->model_live;
    if (c->probe_every > 0 && live) {
        if (!(probe_dict = fluency_dict_load(NULL, j->err, sizeof j->err))) {
            cli_error("run", "--probe-every: %s", j->err);
            live = 0;
            j->end = STORE_FAILED;
        }
        x->probe = (FluencyProbe){.every = c->probe_every, .tokens = c->probe_tokens, .tok = j->tok, .dict = probe_dict,
                                  .next = (r->cursor / c->probe_every + 1) * c->probe_every};
        c->proto.cut_every = c->probe_every;   /* probes at the positions asked, whatever the chunk */
        x->ids = j->d.ids;
        x->n_ids = (int64_t)j->d.n;
    }
    /* --- */
    if (x->progress) print_header(r, &j->s, c->db_path, j->resuming);
    if (live) {
        int prc = protocol_run(&c->proto, &j->s, &j->m, j->d.ids, j->d.n, r->cursor, on_unit, restore_snapshot, x, &j->fail_pos, j->err,
                               sizeof j->err);
        if (x->failed) { prc = -1; snprintf(j->err, sizeof j->err, "%s", x->err); if (x->fail_pos >= 0) j->fail_pos = x->fail_pos; }
        if (prc) j->end = is_oom(j->err) ? STORE_OOM : STORE_FAILED;
        else if (got_signal) j->end = STORE_INTERRUPTED;
    }
    snapshot_finish(x);
    if (x->progress) show_progress(x, 1);
    /* keep what was measured: commit the pending batch, then the closing event */
    char err2[LCB_ERRLEN];
    if (j->model_live && j->m.device != LCB_DEVICE_CPU) gpu_memory_event(x, err2, sizeof err2);
    if (x->n_buf > 0 && commit_batch(x, err2, sizeof err2)) {
        cli_error("run", "%s", err2);
        /* the last steps are not stored: the run is not done (--resume redoes them) */
        if (j->end == STORE_DONE) { j->end = STORE_FAILED; snprintf(j->err, sizeof j->err, "%s", err2); j->fail_pos = x->stream_pos; }
    }
    if (j->end != STORE_DONE) {
        char detail[LCB_ERRLEN + 64];
        int64_t pos = j->fail_pos;
        if (j->end == STORE_INTERRUPTED) { snprintf(detail, sizeof detail, "signal %d", (int)got_signal); pos = x->stream_pos; }
        else snprintf(detail, sizeof detail, "%s", j->err);
        if (j->end == STORE_OOM && c->mem_limit) {
            size_t l = strlen(detail);
            snprintf(detail + l, sizeof detail - l, " (--mem-limit %llu bytes%s)", (unsigned long long)c->mem_limit,
                     lcb_mem_limit_hit() ? ", reached" : "");
        }
        const char *kind = j->end == STORE_INTERRUPTED || j->end == STORE_OOM ? store_status_name(j->end) : "error";
        if (store_event(&j->st, r->id, pos, kind, detail, err2, sizeof err2)) cli_error("run", "%s", err2);
        if (j->end != STORE_INTERRUPTED)
            cli_error("run", "run %lld: %s at position %lld: %s", (long long)r->id, store_status_name(j->end), (long long)pos, j->err);
    }
    signals_restore();
    fluency_dict_free(probe_dict);
}

/* Step 4: bins and the closing row in one transaction: on a full disk or a read error the file
 * keeps its previous bins and a `running` row (shown stale; --resume finishes it) rather than
 * deleted bins under a `done` status.  Prints the summary; returns the exit status. */
static int run_finish(RunJob *j, RunState *x) {
    StoreRun *r = &j->r;
    Store *st = &j->st;
    char err2[LCB_ERRLEN], now[32];
    int64_t steps;
    int closed = store_begin(st, err2, sizeof err2) == 0;
    if (closed && store_bins_recompute(st, r->id, r->bin_width, &r->mean_nll, &steps, err2, sizeof err2)) closed = 0;
    r->ppl = exp(r->mean_nll);
    /* the headline's numbers; bytes and words need the text: none for a dataset of token ids */
    RunMetrics met;
    store_metrics_init(&met);
    const Tokenizer *text_tok = j->d.pretokenized ? NULL : j->tok;
    if (closed && run_metrics_compute(st, r->id, r->max_pos, text_tok, j->d.ids, j->d.n, &met, err2, sizeof err2)) {
        cli_error("run", "note: %s (bits per byte and word PPL not recorded)", err2);
        if (run_metrics_compute(st, r->id, r->max_pos, NULL, NULL, 0, &met, err2, sizeof err2)) closed = 0;
    }
    if (closed && store_metrics_write(st, r->id, &met, err2, sizeof err2)) closed = 0;
    store_now(now);
    store_set(&r->ended, now);
    store_set(&r->status, store_status_name(j->end));
    r->wall_s = x->wall_before + (lcb_now() - x->t_session);
    if (closed && store_run_update(st, r, err2, sizeof err2)) closed = 0;
    if (closed && store_commit(st, err2, sizeof err2)) closed = 0;
    if (!closed) {
        store_rollback(st);
        cli_error("run", "%s", err2);
        cli_error("run", "run %lld: its final status and bins could not be written; the steps committed so far are kept (lcbench run --resume %lld)",
                  (long long)r->id, (long long)r->id);
        if (j->end == STORE_DONE) j->end = STORE_FAILED;
        store_set(&r->status, store_status_name(j->end));
    }
    if (closed && j->end == STORE_DONE && x->snap_path[0]) kvsnap_remove(x->snap_path); /* nothing left to resume (nor a killed write's temporary) */
    print_summary(st, r, &met, j->c->db_path, isatty(1));
    if (x->bar && !isatty(1)) run_headline_print(stderr, st, r, &met, NULL, 0);   /* stdout is JSON: the person reads stderr */
    return j->end == STORE_DONE ? 0 : j->end == STORE_INTERRUPTED ? 128 + (int)got_signal : 1;
}

int run_execute(RunConfig *c, int64_t *run_id) {
    RunJob *j = calloc(1, sizeof *j);
    if (!j) { cli_error("run", "out of memory"); return 1; }
    j->c = c;
    j->resuming = c->resume_id > 0;
    int rc_exit = run_resolve(j);
    if (rc_exit == 0 && (rc_exit = run_record(j)) == 0) {
        *run_id = j->r.id;
        RunState x;
        memset(&x, 0, sizeof x);
        run_stream(j, &x);
        rc_exit = run_finish(j, &x);
        free(x.buf);
        free(x.seg);
    }
    if (j->model_live) model_free(&j->m);
    dataset_free(&j->d);
    if (j->tok) tokenizer_free(j->tok);
    if (j->resuming) { c->model = c->config = c->tokenizer = c->strategy = c->dataset = c->field = c->token_format = c->bos = NULL; }
    store_run_free(&j->r);
    if (j->opened) store_close(&j->st);
    lcb_mem_set_limit(0);
    free(j);
    return rc_exit;
}
