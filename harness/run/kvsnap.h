/*
 * kvsnap.h — snapshots of a stream run's strategy state, so that `lcbench run --resume`
 * restarts from the last snapshot instead of re-feeding every token already scored.
 *
 * A cache depends on every earlier token, so without a snapshot a resume must re-run the whole
 * stream up to its cursor (exact, but as long as the run so far).  The run writes the policy's
 * state (strategy_state_save: the KV cache's rows on the CPU or the GPU, recompute's last W
 * tokens) beside the database (DB.runN.kv) after a batch commit, at most every
 * --kv-snapshot-seconds; resuming loads it and re-feeds only from the snapshot's position to the
 * cursor, with the same chunk boundaries, so the numbers are the same to the bit.  A snapshot
 * that does not match (another run, policy, model, cache shape, backend, dtype or GPU split, an
 * older format, a truncated or altered file) is refused with the reason in a note: the resume
 * re-feeds.  The file goes when the run is done.
 *
 * File: header ("LCBKVSN1", u32 version 2, i64 run id, i64 position, char[128] strategy spec,
 * char[72] model hash, u64 state bytes), the state (engine/kvstate.h's stream for the shared KV
 * cache, whose head names backend, dtype, split and shape), then the SHA-256 (64 hex) of the
 * state followed by the header.  Version 1 (raw CPU window/sink caches) is refused, never read.
 */
#ifndef LCB_KVSNAP_H
#define LCB_KVSNAP_H

#include <stddef.h>
#include <stdint.h>

#include "strategies/strategy.h"

/* Whether s's state can be snapshotted (every policy that continues a stream, either backend). */
int kvsnap_supported(const Strategy *s);
/* "DB.runN.kv" */
void kvsnap_path(char *out, size_t n, const char *db, int64_t run_id);
/* Write s's state (at s->n_fed) to path atomically (a temporary file renamed over it);
 * model_hash: the run's (recorded and checked on load). */
int kvsnap_save(const char *path, int64_t run_id, const char *model_hash, const Strategy *s, char *err, size_t errlen);
/* Restore s (begun, fresh) from path if the snapshot belongs to run_id, the model, s's policy
 * and cache and lies at or before `cursor`: 0 with *at = its position, else -1 with the reason
 * in err and s begun afresh. */
int kvsnap_load(const char *path, int64_t run_id, const char *model_hash, Strategy *s, int64_t cursor, int64_t *at, char *err,
                size_t errlen);

#endif
