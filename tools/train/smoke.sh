#!/bin/bash
# Smoke test on the GPU machine: tokenizer, throughput probe, tiny runs of every stage with export + transformers check.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
S=/tmp/smoke
{
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, transformers, tokenizers; print(torch.__version__, transformers.__version__, tokenizers.__version__)"
python3 tools/train/lcb_train.py tokenizer &&
python3 tools/train/lcb_train.py train --size 0.8m --out $S/lcb-0.8m --steps 300 --minutes 0.4 --eval-every 100 --long-eval 8 &&
python3 tools/train/lcb_train.py train --size 0.8m --sink --out $S/sink --steps 100 --minutes 0.2 --eval-every 50 &&
python3 tools/train/lcb_train.py longlora --base $S/lcb-0.8m --out $S/ll --steps 40 --minutes 0.3 --eval-every 20 --long-eval 8
python3 tools/train/lcb_train.py probe --sizes 0.8m,8m --seconds 10
} 2>&1 | tee $OUT/log.txt
cp .carry/train/tokenizer.json $OUT/
cp $S/lcb-0.8m/README.md $OUT/card_base.md; cp $S/sink/README.md $OUT/card_sink.md; cp $S/ll/README.md $OUT/card_ll.md
cp $S/ll/config.json $OUT/config_ll.json; ls -la $S/* > $OUT/files.txt
