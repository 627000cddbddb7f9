#!/bin/bash
# The sink-forming reference family on one GPU (models/README.md): four trainings share the GPU,
# started in their own process session so that they outlive the command that starts them.
#
#   bash tools/train/run_family.sh start  DATA WORK    tokenize, then start the runs in the background
#   bash tools/train/run_family.sh sink   DATA WORK    the same for lcb-6m-sinktoken alone (`<sink> text`, no `<s>`)
#   bash tools/train/run_family.sh watch  WORK SECS    print progress for SECS seconds (stops early if a run died)
#   bash tools/train/run_family.sh pack   WORK DEST    one tar per finished model folder, plus the logs
#
# DATA holds train/val.jsonl.xz from `prepare_corpus.py --more --xz`; the Python sources of the
# machine's own site-packages join the training data (--code-roots).  Every model keeps its final
# weights (--keep final) and follows a cosine schedule over its time budget (--schedule time).
set -u
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=true
T="python3 tools/train/lcb_train.py"
TOK=models/lcb-0.8m/tokenizer.json
BIG_MIN=${BIG_MIN:-19}      # minutes of the two 6m runs and the ablation
SMALL_MIN=${SMALL_MIN:-12}  # the 1.5m base, then LongLoRA on it
LL_MIN=${LL_MIN:-4}

case "$1" in
start|sink)
  DATA=$2 W=$3
  mkdir -p $W/logs $W/models
  ROOTS=$(python3 -c 'import site, sysconfig; print(",".join(sorted(set(site.getsitepackages() + [sysconfig.get_paths()["stdlib"]]))))')
  echo "code roots: $ROOTS"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  cp -r $DATA $W/data
  C="--data $W/data --tokenizer $TOK"
  time $T tokenize $C --code-roots "$ROOTS" || exit 1
  cat $W/data/code_stats.json; echo
  COMMON="$C --code-roots $ROOTS --english-repeat 2 --keep final --schedule time --steps 100000000 \
          --batch 64 --ctx 512 --eval-every 1000 --log-every 500 --val-seqs 512 --compile --long-eval 64"
  run() { name=$1; shift; setsid nohup bash -c "$*" > $W/logs/$name.log 2>&1 < /dev/null & echo "started $name (pid $!)"; }
  if [ "$1" = sink ]; then
    run lcb-6m-sinktoken "$T train $COMMON --size 6m --sink --minutes ${SINK_MIN:-11} --out $W/models/lcb-6m-sinktoken"
    exit 0
  fi
  run lcb-6m "$T train $COMMON --size 6m --minutes $BIG_MIN --out $W/models/lcb-6m --snapshot $W/lcb-6m.snap.safetensors"
  run lcb-6m-sinktoken "$T train $COMMON --size 6m --sink-bos --minutes $BIG_MIN --out $W/models/lcb-6m-sinktoken --snapshot $W/lcb-6m-sinktoken.snap.safetensors"
  run lcb-6m-wd05 "$T train $COMMON --size 6m --weight-decay 0.5 --minutes $BIG_MIN --out $W/models/lcb-6m-wd05"
  run lcb-1.5m "$T train $COMMON --size 1.5m --minutes $SMALL_MIN --out $W/models/lcb-1.5m && \
      $T longlora $C --base $W/models/lcb-1.5m --out $W/models/lcb-1.5m-longlora-pi4 --lr 2e-4 --steps 100000 \
         --minutes $LL_MIN --eval-s2 --long-eval 64 --eval-every 250 --val-seqs 128 --keep final --schedule time"
  ;;
watch)
  W=$2 END=$(( $(date +%s) + $3 ))
  while [ $(date +%s) -lt $END ]; do
    sleep 30
    date +%T; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    dead=0
    for f in $W/logs/*.log; do
      echo "== $(basename $f): $(grep -E 'step|EVAL|CARD|VERIFY|Error|error' $f | tail -n 1 | cut -c1-200)"
      if grep -q 'Traceback' $f; then dead=1; tail -n 30 $f; fi
    done
    [ $dead = 1 ] && { echo "a run failed"; exit 1; }
    pgrep -f lcb_train.py > /dev/null || { echo "all runs finished"; break; }
  done
  ;;
pack)
  W=$2 D=$3
  for m in $W/models/*/; do
    n=$(basename $m); [ -f $m/train_meta.json ] && tar cf $D/$n.tar -C $W/models $n && echo "packed $n"
  done
  tar czf $D/logs.tgz -C $W logs data/code_stats.json
  ls -la $D
  ;;
esac
