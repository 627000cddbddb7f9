#!/bin/sh
# test_layers.sh — the layering of the source tree, checked on its #include lines:
#
#   engine < strategies < datasets < reports < harness
#
# A file may include headers of its own layer and of the layers below it, never one above, with no
# exception.  The results store (reports/store/) lives in reports/, the layer that reads the results
# file, and harness/ above it writes through it.  A header named *_internal.h (engine/tokenizer/
# tokenizer_internal.h) belongs to its folder: only files in that folder may include it.  tests/,
# tools/ and fuzz targets may include anything.
#
# Usage: sh tests/test_layers.sh [ROOT]   (ROOT: the tree to check, default the repository)
# Prints each violation as FILE:LINE: ... and exits 1 if there is one.  Without ROOT it first
# checks itself on a scratch tree holding one violation per rule (a checker that cannot fail
# proves nothing), then checks the repository.  `make layers` runs it.
set -u

# allowed LAYER FILE INCLUDE -> 0 if FILE (in LAYER) may include INCLUDE
allowed() {
  inc_dir=${3%%/*}
  case "$3" in
    *_internal.h) [ "${3%/*}" = "${2%/*}" ] || return 1 ;;
  esac
  case "$1" in
    engine)     case "$inc_dir" in engine) return 0 ;; esac ;;
    strategies) case "$inc_dir" in engine|strategies) return 0 ;; esac ;;
    datasets)   case "$inc_dir" in engine|strategies|datasets) return 0 ;; esac ;;
    reports)    case "$inc_dir" in engine|strategies|datasets|reports) return 0 ;; esac ;;
    harness)    return 0 ;;
  esac
  # an include outside the project's folders (a system header written with quotes) is no layer
  case "$inc_dir" in engine|strategies|datasets|reports|harness) return 1 ;; esac
  return 0
}

check() {
  root=$1
  bad=0
  for layer in engine strategies datasets reports harness; do
    [ -d "$root/$layer" ] || continue
    for f in $(cd "$root" && find "$layer" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort); do
      # lines: NUMBER:#include "path"
      grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$f" | while IFS= read -r line; do
        n=${line%%:*}
        inc=$(printf '%s\n' "$line" | sed 's/^[^"]*"\([^"]*\)".*/\1/')
        if ! allowed "$layer" "$f" "$inc"; then
          echo "$f:$n: $layer includes \"$inc\", which is above it (engine < strategies < datasets < reports < harness; *_internal.h: its own folder)"
        fi
      done
    done
  done
}

run_check() {
  out=$(check "$1")
  if [ -n "$out" ]; then printf '%s\n' "$out"; return 1; fi
  return 0
}

if [ $# -ge 1 ]; then run_check "$1"; exit $?; fi

# --- self-check: each rule catches its violation, and a clean tree passes
tmp=$(mktemp -d /tmp/lcb_layers.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/engine" "$tmp/strategies" "$tmp/datasets" "$tmp/reports" "$tmp/harness"
printf '#include "engine/common.h"\n#include <stdio.h>\n' > "$tmp/engine/ok.c"
printf '#include "engine/model.h"\n#include "strategies/strategy.h"\n' > "$tmp/strategies/ok.c"
printf '#include "strategies/strategy.h"\n' > "$tmp/datasets/ok.h"
printf '#include "datasets/dataset.h"\n#include "reports/store/store.h"\n' > "$tmp/reports/ok.c"
mkdir -p "$tmp/reports/store" "$tmp/harness/cmd" "$tmp/engine/tokenizer"
printf '#include "engine/common.h"\n' > "$tmp/reports/store/store.h"
printf '#include "reports/reports.h"\n#include "harness/cmd/cli.h"\n' > "$tmp/harness/cmd/cmd.c"
printf '#include "engine/tokenizer/tokenizer_internal.h"\n' > "$tmp/engine/tokenizer/ok.c"
if ! run_check "$tmp" > "$tmp/out"; then echo "test_layers: FAILED: a clean tree was refused:"; cat "$tmp/out"; exit 1; fi
for v in 'engine/bad.c:strategies/strategy.h' 'engine/cuda/bad.cu:harness/cmd/cli.h' 'strategies/bad.c:datasets/dataset.h' \
         'datasets/bad.c:harness/cmd/cli.h' 'datasets/bad.h:reports/reports.h' 'reports/bad.c:harness/run/run.h' \
         'reports/bad.h:harness/cmd/cli.h' 'reports/store/store.c:harness/store/store.h' \
         'engine/bad.c:engine/tokenizer/tokenizer_internal.h' 'harness/cmd/bad.c:engine/tokenizer/tokenizer_internal.h'; do
  file=${v%%:*}; inc=${v#*:}
  mkdir -p "$tmp/$(dirname "$file")"
  [ -f "$tmp/$file" ] && cp "$tmp/$file" "$tmp/keep" || rm -f "$tmp/keep"
  printf '#include "engine/common.h"\n  #  include "%s"  /* up a layer */\n' "$inc" > "$tmp/$file"
  if run_check "$tmp" > "$tmp/out" || ! grep -q "^$file:2: " "$tmp/out"; then
    echo "test_layers: FAILED: $file including $inc was not caught"; cat "$tmp/out"; exit 1
  fi
  if [ -f "$tmp/keep" ]; then mv "$tmp/keep" "$tmp/$file"; else rm -f "$tmp/$file"; fi
done

# --- the repository
root=$(cd "$(dirname "$0")/.." && pwd)
if ! run_check "$root"; then echo "test_layers: FAILED: includes point up a layer (above)"; exit 1; fi
echo "test_layers: the includes of engine, strategies, datasets, reports and harness keep the layering"
