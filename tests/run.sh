#!/bin/sh
# Runs each cmocka test binary given as an argument and prints one closing line,
# "N passed, N failed", summed over all of them.  Exit status 1 if anything failed.
pass=0; fail=0; bad=""
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
  if [ $rc -ne 0 ] && [ -z "$f" ]; then fail=$((fail + 1)); bad="$bad $t(rc=$rc)"; fi
done
[ -n "$bad" ] && echo "crashed or exited non-zero:$bad"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
