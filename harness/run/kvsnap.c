/*
 * kvsnap.c — strategy-state snapshots for fast exact resume (see kvsnap.h).  The bytes of the
 * state are the policy's (strategy_state_save); this file adds the run's header, the size and
 * checksum, and the atomic write, either all at once (kvsnap_save) or as a copy in memory
 * written by a background thread (KvSnapWriter) so that the stream stops only for the copy.
 */
#include "harness/run/kvsnap.h"
#include "datasets/sha256.h"
#include "engine/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KVSNAP_MAGIC "LCBKVSN1"
#define KVSNAP_VERSION 2u /* 1: a raw CPU window/sink cache, before strategy_state_save (refused) */

typedef struct {
    char magic[8];
    uint32_t version, pad;
    int64_t run_id, pos;
    char spec[128];
    char model_hash[72];     /* the run's model hash (hex), NUL-padded */
    uint64_t state_bytes;    /* bytes of the state that follows */
} Header;

int kvsnap_supported(const Strategy *s) { return s->m && strategy_can_save(s); }

void kvsnap_path(char *out, size_t n, const char *db, int64_t run_id) { snprintf(out, n, "%s.run%lld.kv", db, (long long)run_id); }

/* the temporary file a write goes to before its rename over path */
static void tmp_path(char *out, size_t n, const char *path) { snprintf(out, n, "%s.tmp", path); }

void kvsnap_remove(const char *path) {
    char tmp[4200];
    tmp_path(tmp, sizeof tmp, path);
    unlink(path);
    unlink(tmp);
}

/* the file under a running checksum and byte count; reads stop at `limit` */
typedef struct {
    FILE *f;
    Sha256 sh;
    uint64_t n, limit;
} SnapIO;

static int snap_write(void *ctx, const void *p, size_t n) {
    SnapIO *x = ctx;
    if (fwrite(p, 1, n, x->f) != n) return -1;
    sha256_update(&x->sh, p, n);
    x->n += n;
    return 0;
}

static int snap_read(void *ctx, void *p, size_t n) {
    SnapIO *x = ctx;
    if (x->n + n > x->limit || fread(p, 1, n, x->f) != n) return -1;
    sha256_update(&x->sh, p, n);
    x->n += n;
    return 0;
}

static Header header_of(int64_t run_id, const char *model_hash, const Strategy *s) {
    Header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, KVSNAP_MAGIC, 8);
    h.version = KVSNAP_VERSION;
    h.run_id = run_id;
    h.pos = s->n_fed;
    snprintf(h.spec, sizeof h.spec, "%s", s->spec);
    snprintf(h.model_hash, sizeof h.model_hash, "%s", model_hash ? model_hash : "");
    return h;
}

int kvsnap_save(const char *path, int64_t run_id, const char *model_hash, const Strategy *s, char *err, size_t errlen) {
    if (!kvsnap_supported(s)) return lcb_fail(err, errlen, "%s: the state of --strategy %s is not snapshotted", path, s->spec);
    char tmp[4200];
    tmp_path(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lcb_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    Header h = header_of(run_id, model_hash, s);
    SnapIO x;
    memset(&x, 0, sizeof x);
    x.f = f;
    sha256_init(&x.sh);
    KvIO io = {snap_write, NULL, &x};
    char why[LCB_ERRLEN] = "";
    /* the header goes first with its size filled in after the state */
    int ok = fwrite(&h, sizeof h, 1, f) == 1 && strategy_state_save(s, &io, why, sizeof why) == 0;
    int e = ok ? 0 : errno;
    if (ok) {
        h.state_bytes = x.n;
        sha256_update(&x.sh, &h, sizeof h);
        char hex[65];
        sha256_hex(&x.sh, hex);
        ok = fseek(f, 0, SEEK_SET) == 0 && fwrite(&h, sizeof h, 1, f) == 1 && fseek(f, 0, SEEK_END) == 0 && fwrite(hex, 1, 64, f) == 64 &&
             fflush(f) == 0 && fsync(fileno(f)) == 0;
        if (!ok) e = errno;
    }
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; e = errno; }
    if (!ok) {
        unlink(tmp);
        if (why[0]) return lcb_fail(err, errlen, "%s: writing the cache snapshot: %s", path, why);
        return lcb_fail(err, errlen, "%s: writing the cache snapshot: %s", path, strerror(e ? e : EIO));
    }
    return 0;
}

/* ---------------------------------------------------------------- background writes */

/* The state in memory: fixed-size blocks, kept from one snapshot to the next (a state of
 * gigabytes is not faulted in again each time), appended to by strategy_state_save. */
#define MEM_BLOCK ((size_t)8 << 20)

typedef struct {
    char **block;            /* n_block blocks of MEM_BLOCK bytes (allocated so far) */
    size_t n_block, cap_block;
    uint64_t n;              /* bytes of the current state */
    uint64_t limit;          /* the most bytes held */
    int too_big;             /* the state passed `limit`, or a block could not be allocated */
} MemState;

static int mem_write(void *ctx, const void *p, size_t n) {
    MemState *b = ctx;
    if (b->n + n > b->limit) { b->too_big = 1; return -1; }
    const char *src = p;
    while (n > 0) {
        size_t i = (size_t)(b->n / MEM_BLOCK), off = (size_t)(b->n % MEM_BLOCK);
        if (i == b->n_block) {
            if (b->n_block == b->cap_block) {
                size_t cap = b->cap_block ? 2 * b->cap_block : 16;
                char **nb = realloc(b->block, cap * sizeof *nb);
                if (!nb) { b->too_big = 1; return -1; }
                b->block = nb;
                b->cap_block = cap;
            }
            /* plain malloc, not lcb_alloc: a copy of the state is not the run's memory, and
             * --mem-limit must not turn a snapshot into an oom of the run */
            if (!(b->block[b->n_block] = malloc(MEM_BLOCK))) { b->too_big = 1; return -1; }
            b->n_block++;
        }
        size_t k = MEM_BLOCK - off < n ? MEM_BLOCK - off : n;
        memcpy(b->block[i] + off, src, k);
        src += k;
        b->n += k;
        n -= k;
    }
    return 0;
}

static void mem_release(MemState *b) {
    for (size_t i = 0; i < b->n_block; i++) free(b->block[i]);
    free(b->block);
    b->block = NULL;
    b->n_block = b->cap_block = 0;
    b->n = 0;
}

struct KvSnapWriter {
    MemState mem;
    int sync_only;           /* a state was too large for memory: kvsnap_save from then on */
    int delay_ms;            /* LCB_KVSNAP_DELAY_MS (tests): a pause after the header */
    /* the write in flight: thread started (not joined yet), done set by the thread last */
    int started;
    int done;                /* __atomic: the thread has finished (join does not block) */
    pthread_t thread;
    char path[4200];
    Header h;                /* complete: state_bytes = mem.n */
    int rc;                  /* the thread's result, with err */
    char err[LCB_ERRLEN];
};

KvSnapWriter *kvsnap_writer_new(uint64_t max_bytes) {
    KvSnapWriter *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    if (!max_bytes) {
        /* a quarter of the machine's memory: a larger state is written synchronously, as before */
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        max_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 : (uint64_t)1 << 30;
    }
    w->mem.limit = max_bytes;
    const char *d = getenv("LCB_KVSNAP_DELAY_MS");
    if (d && *d) w->delay_ms = atoi(d);
    return w;
}

/* The thread: the file as kvsnap_save writes it, from the copy: header (its size known now),
 * the state, the SHA-256 of exactly those state bytes followed by the header; fsync; rename.
 * Touches only w (never the strategy, the store or stdio streams of the run). */
static void *writer_main(void *arg) {
    KvSnapWriter *w = arg;
    char tmp[sizeof w->path + 8];
    tmp_path(tmp, sizeof tmp, w->path);
    int ok = 0, e = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) e = errno;
    else {
        Sha256 sh;
        sha256_init(&sh);
        ok = fwrite(&w->h, sizeof w->h, 1, f) == 1;
        if (ok && w->delay_ms > 0) {
            /* tests: a write that is seen in flight (a kill -9 or SIGTERM lands in it) */
            fflush(f);
            struct timespec ts = {w->delay_ms / 1000, (long)(w->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        for (uint64_t at = 0; ok && at < w->mem.n; at += MEM_BLOCK) {
            size_t k = w->mem.n - at < MEM_BLOCK ? (size_t)(w->mem.n - at) : MEM_BLOCK;
            const char *p = w->mem.block[at / MEM_BLOCK];
            ok = fwrite(p, 1, k, f) == k;
            sha256_update(&sh, p, k);
            /* start the write-back as we go (Linux; errors are the fsync's to report): a state
             * of gigabytes is not left dirty for one long fsync that the run's database
             * commits, on the same disk, would queue behind */
            if (ok && (at / MEM_BLOCK) % 8 == 7 && fflush(f) == 0) sync_file_range(fileno(f), 0, 0, SYNC_FILE_RANGE_WRITE);
        }
        if (ok) {
            char hex[65];
            sha256_update(&sh, &w->h, sizeof w->h);
            sha256_hex(&sh, hex);
            ok = fwrite(hex, 1, 64, f) == 64 && fflush(f) == 0 && fsync(fileno(f)) == 0;
        }
        if (!ok) e = errno;
        if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
        if (ok && rename(tmp, w->path) != 0) { ok = 0; e = errno; }
        if (!ok) unlink(tmp);
    }
    w->rc = ok ? 0 : lcb_fail(w->err, sizeof w->err, "%s: writing the cache snapshot: %s", w->path, strerror(e ? e : EIO));
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int kvsnap_writer_wait(KvSnapWriter *w, int block, char *err, size_t errlen) {
    if (!w || !w->started) return 0;
    if (!block && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) return 1;
    pthread_join(w->thread, NULL);
    w->started = 0;
    if (w->rc) return lcb_fail(err, errlen, "%s", w->err);
    return 0;
}

int kvsnap_save_async(KvSnapWriter *w, const char *path, int64_t run_id, const char *model_hash, const Strategy *s, char *err,
                      size_t errlen) {
    if (!kvsnap_supported(s)) return lcb_fail(err, errlen, "%s: the state of --strategy %s is not snapshotted", path, s->spec);
    /* one write at a time: never a queue, never a wait */
    if (w->started && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) return KVSNAP_BUSY;
    if (w->started && kvsnap_writer_wait(w, 1, err, errlen)) return -1; /* the last one's failure, not reported yet */
    if (strlen(path) >= sizeof w->path) return lcb_fail(err, errlen, "%.200s...: the snapshot's path is too long", path);
    /* a state larger than the memory we allow (the cache's allocation says so before any copy,
     * or the copy passes it, or a block cannot be allocated): today's streaming write, the
     * stream waits for all of it */
    MemState *b = &w->mem;
    b->n = 0;
    b->too_big = 0;
    if (w->sync_only || strategy_kv_bytes_allocated(s) > b->limit) return kvsnap_save(path, run_id, model_hash, s, err, errlen) ? -1 : KVSNAP_WRITTEN;
    KvIO io = {mem_write, NULL, b};
    char why[LCB_ERRLEN] = "";
    if (strategy_state_save(s, &io, why, sizeof why)) {
        if (!b->too_big) return lcb_fail(err, errlen, "%s: writing the cache snapshot: %s", path, why);
        /* for the rest of the run (a state only grows): the copy's memory goes back now */
        mem_release(b);
        w->sync_only = 1;
        return kvsnap_save(path, run_id, model_hash, s, err, errlen) ? -1 : KVSNAP_WRITTEN;
    }
    w->h = header_of(run_id, model_hash, s);
    w->h.state_bytes = b->n;
    snprintf(w->path, sizeof w->path, "%s", path);
    w->rc = 0;
    w->err[0] = 0;
    w->done = 0;
    /* the thread takes no signal: SIGINT / SIGTERM reach the run's handler, and its writes are
     * never cut short by one */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        /* no thread: write it now from the copy */
        writer_main(w);
        return w->rc ? lcb_fail(err, errlen, "%s", w->err) : KVSNAP_WRITTEN;
    }
    w->started = 1;
    return KVSNAP_STARTED;
}

void kvsnap_writer_free(KvSnapWriter *w) {
    if (!w) return;
    kvsnap_writer_wait(w, 1, NULL, 0);
    mem_release(&w->mem);
    free(w);
}

/* the checks of the header against the run, in the order a reader wants the reason */
static int check_header(const char *path, const Header *h, long long size, int64_t run_id, const char *model_hash, const Strategy *s,
                        int64_t cursor, char *err, size_t errlen) {
    if (memcmp(h->magic, KVSNAP_MAGIC, 8)) return lcb_fail(err, errlen, "%s: not a cache snapshot of lcbench", path);
    if (h->version != KVSNAP_VERSION)
        return lcb_fail(err, errlen, "%s: a cache snapshot of format version %u (another lcbench); this one reads version %u", path,
                        h->version, KVSNAP_VERSION);
    if (h->state_bytes > (uint64_t)size || (long long)(sizeof *h + h->state_bytes + 64) != size)
        return lcb_fail(err, errlen, "%s: the snapshot is truncated or altered (%lld bytes; its header says %llu)", path, size,
                        (unsigned long long)(sizeof *h + h->state_bytes + 64));
    if (h->run_id != run_id) return lcb_fail(err, errlen, "%s: the snapshot is of run %lld, not %lld", path, (long long)h->run_id, (long long)run_id);
    if (strncmp(h->spec, s->spec, sizeof h->spec))
        return lcb_fail(err, errlen, "%s: the snapshot is of --strategy %.128s, the run's is %s", path, h->spec, s->spec);
    if (strncmp(h->model_hash, model_hash ? model_hash : "", sizeof h->model_hash))
        return lcb_fail(err, errlen, "%s: the snapshot is of another model (hash %.12s..., the run's %.12s...)", path, h->model_hash,
                        model_hash ? model_hash : "");
    if (h->pos < 0 || h->pos > cursor)
        return lcb_fail(err, errlen, "%s: the snapshot is at position %lld, past the run's cursor %lld", path, (long long)h->pos, (long long)cursor);
    return 0;
}

int kvsnap_load(const char *path, int64_t run_id, const char *model_hash, Strategy *s, int64_t cursor, int64_t *at, char *err,
                size_t errlen) {
    if (!kvsnap_supported(s)) return lcb_fail(err, errlen, "%s: the state of --strategy %s is not snapshotted", path, s->spec);
    FILE *f = fopen(path, "rb");
    if (!f) return lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    Header h;
    memset(&h, 0, sizeof h);
    int rc = -1;
    size_t got_n;
    if (fstat(fileno(f), &sb) != 0) lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
    else if ((got_n = fread(&h, 1, sizeof h, f)) != sizeof h) {
        /* an old or foreign file shorter than this header: say which when the start tells */
        if (got_n >= 12 && !memcmp(h.magic, KVSNAP_MAGIC, 8) && h.version != KVSNAP_VERSION)
            lcb_fail(err, errlen, "%s: a cache snapshot of format version %u (another lcbench); this one reads version %u", path, h.version,
                     KVSNAP_VERSION);
        else lcb_fail(err, errlen, "%s: the snapshot is truncated or altered (%lld bytes, shorter than its header)", path, (long long)sb.st_size);
    } else if (check_header(path, &h, (long long)sb.st_size, run_id, model_hash, s, cursor, err, errlen) == 0) {
        SnapIO x;
        memset(&x, 0, sizeof x);
        x.f = f;
        x.limit = h.state_bytes;
        sha256_init(&x.sh);
        KvIO io = {NULL, snap_read, &x};
        char why[LCB_ERRLEN];
        char hex[65], got[65] = "";
        if (strategy_state_load(s, &io, why, sizeof why)) lcb_fail(err, errlen, "%s: %s", path, why);
        else if (x.n != h.state_bytes || s->n_fed != h.pos)
            lcb_fail(err, errlen, "%s: the snapshot is truncated or altered (a state of %llu bytes at %lld in %llu bytes at %lld)", path,
                     (unsigned long long)x.n, (long long)s->n_fed, (unsigned long long)h.state_bytes, (long long)h.pos);
        else {
            sha256_update(&x.sh, &h, sizeof h);
            sha256_hex(&x.sh, hex);
            if (fread(got, 1, 64, f) != 64 || memcmp(hex, got, 64)) lcb_fail(err, errlen, "%s: the snapshot is truncated or altered (checksum)", path);
            else rc = 0;
        }
    }
    fclose(f);
    if (rc) {
        /* fresh again, as begun: a part of the state may have been read */
        Model *m = s->m;
        char e2[LCB_ERRLEN];
        strategy_end(s);
        if (strategy_begin(s, m, e2, sizeof e2)) {
            size_t k = strlen(err);
            snprintf(err + k, errlen > k ? errlen - k : 0, "; and starting --strategy %s again failed: %s", s->spec, e2);
        }
        return -1;
    }
    *at = h.pos;
    return 0;
}
