#!/bin/bash
# The first family (the CI models lcb-0.8m, lcb-2.5m, lcb-0.8m-longlora-pi4) on one GPU (about 6 minutes
# on an H100).  The sink-forming family is tools/train/run_family.sh.
# Prerequisites (once, on any machine with network):  python3 tools/train/prepare_corpus.py
# The tokenizer is trained here unless .carry/train/tokenizer.json exists.
# The small models are launch-bound, so the runs share the GPU concurrently.
set -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1
LOG=${LOG:-/dev/stdout}
T="python3 tools/train/lcb_train.py"
[ -f .carry/train/tokenizer.json ] || $T tokenizer
# tokenize once (cached) before the concurrent runs
$T tokenize
mkdir -p models
$T train --size 2.5m --out models/lcb-2.5m --steps 5000 --minutes 5.5 --long-eval 64 > /tmp/l25m.log 2>&1 &
P2=$!
( $T train --size 0.8m --out models/lcb-0.8m --steps 6000 --minutes 4 --long-eval 64 &&
  $T longlora --base models/lcb-0.8m --out models/lcb-0.8m-longlora-pi4 --lr 2e-4 --steps 2000 --minutes 3 --eval-s2 --long-eval 64 ) > /tmp/l08m.log 2>&1 &
P4=$!
while kill -0 $P2 2>/dev/null || kill -0 $P4 2>/dev/null; do
  sleep 20; date; for f in /tmp/l25m.log /tmp/l08m.log; do echo "== $f"; grep -v '^$' $f | tail -n 2; done
done >> $LOG
wait $P2; r2=$?; wait $P4; r4=$?
for f in /tmp/l25m.log /tmp/l08m.log; do echo "######## $f"; cat $f; done >> $LOG
echo "rc: 2.5m=$r2 0.8m+longlora=$r4" >> $LOG
