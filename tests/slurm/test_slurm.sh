#!/bin/sh
# tests/slurm/test_slurm.sh LCBENCH — a small sweep end to end on a real single-host Slurm
# cluster (tests/slurm/cluster.sh): submit the job array, wait, merge the shards, report, and
# check that the merged file holds every cell once with the numbers of a local sweep, that
# merging again adds nothing, and that resubmitting submits nothing.  Needs root (slurmd).
# Prints "N passed, N failed" like tests/run.sh; "SKIP: why" and exit 0 when slurm-wlm or
# munge is not installed (make test-slurm installs them).
set -u
LCB=$(realpath "${1:-build/lcbench}")
T=$(mktemp -d /tmp/lcbslurm.XXXXXX)
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
cleanup() {
  sh tests/slurm/cluster.sh stop "$T/cluster" >/dev/null 2>&1
  if [ $fail -eq 0 ]; then rm -rf "$T"; else echo "kept for inspection: $T (cluster logs in $T/cluster)"; fi
}
trap cleanup EXIT INT TERM

export LCB_SLURM_PORT=${LCB_SLURM_PORT:-$((20000 + $$ % 20000))}
start=$(timeout 120 sh tests/slurm/cluster.sh start "$T/cluster" 2>&1); rc=$?
case "$start" in
  SKIP:*) echo "$start"; echo "0 passed, 0 failed (slurm test skipped)"; exit 0;;
esac
if [ $rc -ne 0 ]; then echo "$start"; echo "0 passed, 1 failed"; exit 1; fi
eval "$start"   # export SLURM_CONF=...
ok "single-host cluster up ($(sinfo -h -o '%P %a %D %T' | head -1))"

# the stream: 3000 random token ids of the llama-tiny vocabulary
awk 'BEGIN { srand(7); for (i = 0; i < 3000; i++) printf "%d ", int(rand() * 512); print "" }' > "$T/stream.ids"
cat > "$T/plan.json" <<JSON
{
  "name": "slurm-test",
  "models": ["random:llama-tiny", "random:llama-tiny:3"],
  "strategies": ["window:64", "sink:4:60", {"value": "dense", "tokens": 1000}],
  "datasets": ["$T/stream.ids"],
  "options": {"tokens": 2000, "chunk": 64},
  "executor": {"threads": 1, "sbatch": ["--time=00:10:00"]}
}
JSON

out=$(timeout 300 "$LCB" sweep "$T/plan.json" --slurm --wait --poll 1 --dir "$T/sweep" --db "$T/all.db" 2>&1); rc=$?
echo "$out" | sed 's/^/  | /'
check "sweep --slurm --wait exits 0" "[ $rc -eq 0 ]"
check "sbatch script is a job array of 6 tasks" "grep -q '^#SBATCH --array=0-5$' '$T/sweep/sweep.sbatch'"
check "six shards written" "[ \$(ls '$T/sweep/shards/' | grep -c '^shard-[0-5].db$') -eq 6 ]"
check "sbatch accepted the array" "echo \"\$out\" | grep -q 'submitted Slurm job'"
check "6 of 6 cells recorded in the merged file" "echo \"\$out\" | grep -q '6 of 6 cells recorded'"

runs=$("$LCB" runs --db "$T/all.db" 2>&1)
echo "$runs" | sed 's/^/  | /'
check "lcbench runs lists 6 done runs" "[ \$(echo \"\$runs\" | grep -c ' done ') -eq 6 ]"

# merging the shards again adds nothing
m=$("$LCB" merge "$T"/sweep/shards/shard-*.db -o "$T/all.db" 2>/dev/null)
check "re-merge is idempotent" "echo '$m' | grep -q '\"added\": 0, \"updated\": 0, \"skipped\": 6'"

# resubmitting: every cell is recorded, nothing is submitted
r=$("$LCB" sweep "$T/plan.json" --slurm --dir "$T/sweep" --db "$T/all.db" 2>&1)
check "resubmission submits nothing" "echo \"\$r\" | grep -q 'nothing to submit'"

# the same numbers as a local sweep of the same plan
l=$("$LCB" sweep "$T/plan.json" --db "$T/local.db" --threads 1 2>/dev/null)
g=$("$LCB" sweep "$T/plan.json" --db "$T/all.db" --status 2>/dev/null)
check "merged grid equals the local sweep's grid" "[ \"\$l\" = \"\$g\" ]"
echo "$g" | sed 's/^/  | /'

# report and gate work on the merged file
if command -v gnuplot >/dev/null 2>&1; then
  "$LCB" report --db "$T/all.db" --out "$T/report" --no-svg >/dev/null 2>&1
  check "lcbench report renders the merged file" "[ -s '$T/report/index.md' ]"
fi
"$LCB" gate --db "$T/all.db" --baseline "$T/local.db" >"$T/gate.out" 2>&1
check "lcbench gate: merged vs local passes" "[ $? -eq 0 ]"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
