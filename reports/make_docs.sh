#!/bin/sh
# make_docs.sh — regenerate the committed example report (docs/report/): a multi-size,
# multi-strategy results file made with `lcbench run` on Moby Dick, then `lcbench report`.
# The exact commands are printed (and listed in docs/report/index.md's provenance).
#   sh reports/make_docs.sh [DB] [OUT]      (defaults: docs/report/results.db, docs/report)
# One thread per run (OMP_NUM_THREADS=1): on a shared 2-core machine this is faster than two
# spinning OpenMP threads, and the numbers do not depend on it beyond float rounding.
set -e
LCB=${LCBENCH:-build/lcbench}
DB=${1:-/tmp/lcbench-docs.db}
OUT=${2:-docs/report}
TOKENS=${TOKENS:-64K}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
rm -f "$DB" "$DB-wal" "$DB-shm"
run() { echo "+ $LCB run $*"; "$LCB" run --db "$DB" --dataset moby-dick --no-progress "$@" >/dev/null; }
# the sink-forming family (models/README.md): two sizes x dense past the context, window and sinks
for m in lcb-1.5m lcb-6m; do
  run --model models/$m --strategy dense --tokens 4K
  for w in 252 508; do
    run --model models/$m --strategy window:$w --tokens "$TOKENS"
    run --model models/$m --strategy sink:4:$w --tokens "$TOKENS"
  done
done
# the LongLoRA variant keeps its 2048-token context
run --model models/lcb-1.5m-longlora-pi4 --strategy dense --tokens 4K
# recompute:W does a fresh 509-token forward per step: only the smallest model, 2K tokens
run --model models/lcb-0.8m --strategy recompute:508 --tokens 2K
echo "+ $LCB report --db $DB --out $OUT"
"$LCB" report --db "$DB" --out "$OUT"
