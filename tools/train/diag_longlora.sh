#!/bin/bash
# Diagnostic: LongLoRA hyper-parameters (val with full attention and with S2-Attn), short concurrent runs.
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1
T="python3 tools/train/lcb_train.py longlora --base models/lcb-0.8m --steps 700 --eval-every 100 --patience 99 --val-seqs 64 --eval-s2 --minutes 2"
python3 tools/train/lcb_train.py tokenize
$T --out /tmp/d1 > /tmp/d1.log 2>&1 &
$T --out /tmp/d2 --lr 2e-4 > /tmp/d2.log 2>&1 &
$T --out /tmp/d3 --freeze-embed > /tmp/d3.log 2>&1 &
$T --out /tmp/d4 --group 0 > /tmp/d4.log 2>&1 &
$T --out /tmp/d5 --lr 2e-4 --freeze-embed > /tmp/d5.log 2>&1 &
wait
for i in 1 2 3 4 5; do echo "#### d$i"; grep -E "EVAL|before|stopped|Error|error" /tmp/d$i.log; done
