/*
 * kvsnap.h — snapshots of a stream run's cache, so that `lcbench run --resume` restarts from
 * the last snapshot instead of re-feeding every token already scored.
 *
 * A bounded cache (window and sink policies, a model's own sliding window) depends on every
 * earlier token, so without a snapshot a resume must re-run the whole stream up to its cursor
 * (exact, but as long as the run so far).  The run writes the cache's exact bytes beside the
 * database (DB.runN.kv) after a batch commit, at most every --kv-snapshot-seconds; resuming
 * loads it and re-feeds only from the snapshot's position to the cursor, with the same chunk
 * boundaries, so the numbers are the same to the bit.  A snapshot that does not match (another
 * run, policy, shape, a truncated or altered file) is ignored with a note: the resume re-feeds.
 * Only CPU caches of fixed size are snapshotted; the file goes when the run is done.
 *
 * File: "LCBKVSN1", u32 version, i64 run id, i64 position, char[128] strategy spec, the cache's
 * shape (i32 layers, i32 kv_dim, i64 S, W, cap), then the arrays (sinks K V per layer, recent
 * keys transposed and values per layer, the slot table), then the SHA-256 of everything before.
 */
#ifndef LCB_KVSNAP_H
#define LCB_KVSNAP_H

#include <stddef.h>
#include <stdint.h>

#include "strategies/strategy.h"

/* Whether s's state is one fixed-size CPU cache that a snapshot restores. */
int kvsnap_supported(const Strategy *s);
/* "DB.runN.kv" */
void kvsnap_path(char *out, size_t n, const char *db, int64_t run_id);
/* Write s's cache (at s->n_fed) to path atomically (a temporary file renamed over it). */
int kvsnap_save(const char *path, int64_t run_id, const Strategy *s, char *err, size_t errlen);
/* Restore s (begun, fresh) from path if the snapshot belongs to run_id and s's policy and shape
 * and lies at or before `cursor`: 0 with *at = its position, else -1 with the reason in err and s
 * left fresh. */
int kvsnap_load(const char *path, int64_t run_id, Strategy *s, int64_t cursor, int64_t *at, char *err, size_t errlen);

#endif
