/*
 * kvsnap.c — strategy-state snapshots for fast exact resume (see kvsnap.h).  The bytes of the
 * state are the policy's (strategy_state_save); this file adds the run's header, the size and
 * checksum, and the atomic write.
 */
#include "harness/run/kvsnap.h"
#include "datasets/sha256.h"
#include "engine/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
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
