#!/usr/bin/env bash
# A fuzzing campaign (not part of CI): every libFuzzer target for MINUTES minutes (default 10),
# one after another, each from its seed corpus plus what earlier campaigns found (kept in
# build-fuzz/campaign/<target>). Prints each target's final coverage line and any crash file.
#   scripts/fuzz.sh [MINUTES] [TARGET…]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
minutes=${1:-10}
shift || true
"$root/scripts/deps.sh"
source "$root/scripts/trees.sh"
"$root/scripts/build.sh" "$root/build-fuzz" "${fuzz_tree[@]}" >/dev/null

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls "$root/fuzz/corpus"))
status=0
for t in "${targets[@]}"; do
  corpus="$root/build-fuzz/campaign/$t"
  mkdir -p "$corpus" "$root/build-fuzz/campaign/crashes"
  cp -n "$root/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  log="$root/build-fuzz/campaign/$t.log"
  if "$root/build-fuzz/fuzz/$t" -max_total_time=$((minutes * 60)) -timeout=5 -rss_limit_mb=2048 \
       -artifact_prefix="$root/build-fuzz/campaign/crashes/$t-" "$corpus" >"$log" 2>&1; then
    echo "$t: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1)"
  else
    status=1
    echo "$t: FAILED, see $log and $(ls "$root/build-fuzz/campaign/crashes/$t-"* 2>/dev/null | head -1)"
  fi
done
exit $status
