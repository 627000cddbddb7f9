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
 * Writing: the run copies the state into memory (for a GPU cache, the device-to-host copy),
 * which is all the stream waits for, and a background thread (KvSnapWriter) hashes and writes
 * the file and renames it over the last snapshot: the rename is the commit, so a kill -9 during
 * a write leaves the last snapshot whole and a stale DB.runN.kv.tmp, which no load reads and the
 * next write or the finished run removes.  One write at a time: a snapshot due while one is in
 * flight is skipped.  A state larger than a quarter of the memory (or whose copy cannot be
 * allocated) is written as before, streamed to the file while the stream waits.
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
/* Remove the snapshot at path and a temporary file a killed write left beside it. */
void kvsnap_remove(const char *path);

/* The background writer of a run's snapshots (one write in flight at most). */
typedef struct KvSnapWriter KvSnapWriter;
/* max_bytes: the largest state copied into memory (0 = a quarter of the physical memory); a
 * larger one (or one whose copy cannot be allocated) is written synchronously by kvsnap_save,
 * and so is every later one of this writer (a state only grows).  NULL when out of memory.
 * Test hook: LCB_KVSNAP_DELAY_MS in the environment pauses each background write that long
 * after its header, so that a test can signal or kill a run during a write. */
KvSnapWriter *kvsnap_writer_new(uint64_t max_bytes);
enum { KVSNAP_WRITTEN = 0, KVSNAP_STARTED = 1, KVSNAP_BUSY = 2 };
/* The snapshot kvsnap_save writes (the same file, byte for byte), its state copied into memory
 * now and written by a background thread: KVSNAP_STARTED; KVSNAP_BUSY (nothing done) while the
 * last write is still in flight; KVSNAP_WRITTEN when it was written here (the state was too
 * large for memory, or no thread could start); -1 with err (this state, or the last background
 * write, which failed: its file is not there and the previous snapshot stands).  Only the copy
 * reads s: it may go on being fed once this returns. */
int kvsnap_save_async(KvSnapWriter *w, const char *path, int64_t run_id, const char *model_hash, const Strategy *s, char *err,
                      size_t errlen);
/* The write in flight: block = 0 returns 1 while it runs; otherwise it is joined (waited for)
 * and the result is 0 (done, or none was in flight) or -1 with err when it failed. */
int kvsnap_writer_wait(KvSnapWriter *w, int block, char *err, size_t errlen);
/* Joins the write in flight (its result dropped) and frees the memory copy. */
void kvsnap_writer_free(KvSnapWriter *w);
/* Restore s (begun, fresh) from path if the snapshot belongs to run_id, the model, s's policy
 * and cache and lies at or before `cursor`: 0 with *at = its position, else -1 with the reason
 * in err and s begun afresh. */
int kvsnap_load(const char *path, int64_t run_id, const char *model_hash, Strategy *s, int64_t cursor, int64_t *at, char *err,
                size_t errlen);

#endif
