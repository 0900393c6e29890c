#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test twice: a plain build and an
# AddressSanitizer + UBSan build; then the libFuzzer targets run briefly (clang); then the Debian
# package is built, checked, installed and purged (scripts/package.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"

jobs=$(nproc)
source "$root/scripts/trees.sh"
"$root/scripts/build.sh" "$root/build" "${plain_tree[@]}"
(cd "$root/build" && ctest --output-on-failure -j"$jobs")

"$root/scripts/build.sh" "$root/build-asan" "${asan_tree[@]}"
(cd "$root/build-asan" && ctest --output-on-failure -j"$jobs")

"$root/scripts/build.sh" "$root/build-fuzz" "${fuzz_tree[@]}"
(cd "$root/build-fuzz" && ctest --output-on-failure -j"$jobs" -L fuzz)

"$root/scripts/package.sh"
