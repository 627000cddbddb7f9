#!/bin/sh
# eval_reference.sh — the evidence of models/README.md: the reference models measured with
# lcbench itself (`lcbench score`, per-step NLLs) on the held-out Moby Dick text, binned by
# position.  Usage: tools/eval_reference.sh MOBY_DICK_TEXT [OUT_DIR]
# Prints markdown tables; keeps the per-step NLL files in OUT_DIR (default /tmp/lcb-eval).
set -eu
text=$1
out=${2:-/tmp/lcb-eval}
lcb=${LCBENCH:-build/lcbench}
mkdir -p "$out"

# position bins: [0,512) [512,1024) [1024,2048) then doubling; PPL = exp(mean NLL) per bin
bins() {
    awk '{ t = NR - 1; b = (t < 512) ? 0 : (t < 1024 ? 1 : int(log(t / 512) / log(2)) + 1);
           s[b] += $1; n[b]++; if (b > mb) mb = b }
         END { for (b = 0; b <= mb; b++) if (n[b]) {
                 lo = (b == 0) ? 0 : 512 * 2 ^ (b - 1); hi = 512 * 2 ^ b;
                 printf "%s[%d,%d)=%.2f", (b ? " " : ""), lo, (NR < hi ? NR : hi), exp(s[b] / n[b]) }
               printf "\n" }' "$1"
}
# PPL of steps [from, to)
ppl() { awk -v a="$2" -v b="$3" 'NR > a && NR <= b { s += $1; n++ } END { printf "%.2f", exp(s / n) }' "$1"; }

ids() { # model, N, prefix ids -> ids file of the first N tokens of the book (BOS first)
    f="$out/$(basename "$1").$2.ids"
    { printf '%s ' $3; "$lcb" tokenize --tokenizer "$1" --bos < "$text"; } | tr ' ' '\n' | grep . | head -n "$2" | tr '\n' ' ' > "$f"
    echo "$f"
}

score() { # model ids strategy -> nll file
    f="$out/$(basename "$1").$(echo "$3" | tr ':' '_').$(basename "$2" .ids).nll"
    [ -s "$f" ] || "$lcb" score --model "$1" --ids "$2" --strategy "$3" --chunk 512 > "$f"
    echo "$f"
}

echo "### dense, first 4096 tokens (PPL per position bin)"
echo
for m in models/lcb-0.8m models/lcb-2.5m models/lcb-8m models/lcb-0.8m-longlora-pi4; do
    f=$(score "$m" "$(ids "$m" 4096 "")" dense)
    echo "- $(basename $m): $(bins "$f")"
done
f=$(score models/lcb-0.8m-longlora-pi4 "$(ids models/lcb-0.8m-longlora-pi4 16384 "")" dense)
echo "- lcb-0.8m-longlora-pi4, 16384 tokens: $(bins "$f")"
f=$(score models/lcb-0.8m "$(ids models/lcb-0.8m 16384 "")" dense)
echo "- lcb-0.8m, 16384 tokens: $(bins "$f")"
echo

N=${N:-100000}
echo "### window:508 vs sink:4:508, first $N tokens"
echo
echo "| model | strategy | PPL [0,512) | [512,1K) | [1K,10K) | [10K,$N) | all |"
echo "|---|---|---|---|---|---|---|"
for m in models/lcb-0.8m models/lcb-2.5m models/lcb-8m; do
    i=$(ids "$m" "$N" "")
    for s in window:508 sink:4:508 sink:1:508; do
        f=$(score "$m" "$i" "$s")
        echo "| $(basename $m) | $s | $(ppl "$f" 0 512) | $(ppl "$f" 512 1024) | $(ppl "$f" 1024 10000) | $(ppl "$f" 10000 "$N") | $(ppl "$f" 0 "$N") |"
    done
done
echo

echo "### dedicated sink token (stream starts <sink> <s>) vs the base model, first $N tokens"
echo
echo "| model | strategy | PPL [0,512) | [512,1K) | [1K,10K) | [10K,$N) | all |"
echo "|---|---|---|---|---|---|---|"
m=models/lcb-0.8m-sinktoken
i=$(ids "$m" "$N" 3)
for s in sink:1:508 window:508 dense; do
    [ "$s" = dense ] && { i=$(ids "$m" 4096 3); }
    f=$(score "$m" "$i" "$s")
    n=$(wc -l < "$f")
    echo "| $(basename $m) | $s | $(ppl "$f" 0 512) | $(ppl "$f" 512 1024) | $(ppl "$f" 1024 10000) | $(ppl "$f" 10000 "$n") | $(ppl "$f" 0 "$n") |"
done
