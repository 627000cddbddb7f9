/*
 * kvsnap.c — cache snapshots for fast exact resume (see kvsnap.h).
 */
#include "harness/run/kvsnap.h"
#include "datasets/sha256.h"
#include "engine/backend.h"
#include "engine/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KVSNAP_MAGIC "LCBKVSN1"
#define KVSNAP_VERSION 1u /* bump when the cache's memory layout changes */

typedef struct {
    char magic[8];
    uint32_t version, pad;
    int64_t run_id, pos;
    char spec[128];
    int32_t layers, kv_dim;
    int64_t n_sink, window, cap;
} Header;

int kvsnap_supported(const Strategy *s) {
    return s->m && s->m->device == LCB_DEVICE_CPU && s->kv_live && s->kv.window >= 0 && strategy_kv_is_state(s) &&
           s->kv.s2_group == 0;
}

void kvsnap_path(char *out, size_t n, const char *db, int64_t run_id) { snprintf(out, n, "%s.run%lld.kv", db, (long long)run_id); }

/* the arrays of the cache, in file order: (pointer, floats) pairs, then the slot table */
typedef struct { void *p; size_t bytes; } Part;

static size_t parts(const KVCache *kv, Part *out, size_t max) {
    const size_t row = (size_t)kv->kv_dim * sizeof(float);
    size_t n = 0;
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->n_sink > 0 && n + 2 <= max) {
            out[n++] = (Part){kv->sk[l], row * kv->n_sink};
            out[n++] = (Part){kv->sv[l], row * kv->n_sink};
        }
        if (kv->cap > 0 && n + 2 <= max) {
            out[n++] = (Part){kv->k[l], row * kv->cap};
            out[n++] = (Part){kv->v[l], row * kv->cap};
        }
    }
    if (kv->slot_pos && n < max) out[n++] = (Part){kv->slot_pos, (kv->cap + 1) * sizeof(int64_t)};
    return n;
}

static Header header_of(int64_t run_id, const Strategy *s) {
    Header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, KVSNAP_MAGIC, 8);
    h.version = KVSNAP_VERSION;
    h.run_id = run_id;
    h.pos = s->n_fed;
    snprintf(h.spec, sizeof h.spec, "%s", s->spec);
    h.layers = s->kv.n_layers;
    h.kv_dim = s->kv.kv_dim;
    h.n_sink = s->kv.n_sink;
    h.window = s->kv.window;
    h.cap = s->kv.cap;
    return h;
}

int kvsnap_save(const char *path, int64_t run_id, const Strategy *s, char *err, size_t errlen) {
    if (!kvsnap_supported(s)) return lcb_fail(err, errlen, "%s: this cache is not snapshotted", path);
    if (s->kv.n_past != s->n_fed) return lcb_fail(err, errlen, "%s: cache at %lld, stream at %lld", path, (long long)s->kv.n_past, (long long)s->n_fed);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lcb_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    Header h = header_of(run_id, s);
    Sha256 sh;
    sha256_init(&sh);
    Part p[4 * 1024 + 1];
    size_t np = parts(&s->kv, p, sizeof p / sizeof *p);
    int ok = (size_t)s->kv.n_layers * 4 + 1 <= sizeof p / sizeof *p && fwrite(&h, sizeof h, 1, f) == 1;
    sha256_update(&sh, &h, sizeof h);
    for (size_t i = 0; ok && i < np; i++) {
        ok = fwrite(p[i].p, 1, p[i].bytes, f) == p[i].bytes;
        sha256_update(&sh, p[i].p, p[i].bytes);
    }
    char hex[65];
    sha256_hex(&sh, hex);
    if (ok) ok = fwrite(hex, 1, 64, f) == 64;
    if (ok) ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return lcb_fail(err, errlen, "%s: writing the cache snapshot: %s", path, strerror(e ? e : EIO));
    }
    return 0;
}

int kvsnap_load(const char *path, int64_t run_id, Strategy *s, int64_t cursor, int64_t *at, char *err, size_t errlen) {
    if (!kvsnap_supported(s)) return lcb_fail(err, errlen, "%s: this cache is not snapshotted", path);
    FILE *f = fopen(path, "rb");
    if (!f) return lcb_fail(err, errlen, "%s: %s", path, strerror(errno));
    Header h, want = header_of(run_id, s);
    int rc = -1;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, KVSNAP_MAGIC, 8) || h.version != KVSNAP_VERSION)
        lcb_fail(err, errlen, "%s: not a cache snapshot of this lcbench", path);
    else if (h.run_id != run_id || strncmp(h.spec, want.spec, sizeof h.spec) || h.layers != want.layers || h.kv_dim != want.kv_dim ||
             h.n_sink != want.n_sink || h.window != want.window || h.cap != want.cap)
        lcb_fail(err, errlen, "%s: the snapshot is of another run, policy or model shape", path);
    else if (h.pos < 0 || h.pos > cursor)
        lcb_fail(err, errlen, "%s: the snapshot is at position %lld, past the run's cursor %lld", path, (long long)h.pos, (long long)cursor);
    else {
        Sha256 sh;
        sha256_init(&sh);
        sha256_update(&sh, &h, sizeof h);
        Part p[4 * 1024 + 1];
        size_t np = parts(&s->kv, p, sizeof p / sizeof *p);
        int ok = (size_t)s->kv.n_layers * 4 + 1 <= sizeof p / sizeof *p;
        for (size_t i = 0; ok && i < np; i++) {
            ok = fread(p[i].p, 1, p[i].bytes, f) == p[i].bytes;
            if (ok) sha256_update(&sh, p[i].p, p[i].bytes);
        }
        char hex[65], got[65] = "";
        sha256_hex(&sh, hex);
        if (ok) ok = fread(got, 1, 64, f) == 64 && !memcmp(hex, got, 64) && fgetc(f) == EOF;
        if (!ok) lcb_fail(err, errlen, "%s: the snapshot is truncated or altered (checksum)", path);
        else rc = 0;
    }
    fclose(f);
    if (rc) { kv_reset(&s->kv); s->n_fed = 0; return -1; } /* fresh again: the arrays are rewritten as fed */
    s->kv.n_past = h.pos;
    s->n_fed = h.pos;
    *at = h.pos;
    return 0;
}
