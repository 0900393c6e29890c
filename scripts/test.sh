#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test twice: a plain build and an
# AddressSanitizer + UBSan build; then the libFuzzer targets run briefly (clang); then the Debian
# package is built, checked, installed and purged (scripts/package.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"

jobs=$(nproc)
# -g1: line tables only (symbolized backtraces and sanitizer reports, no variables), which compiles
# about a quarter faster than -g (docs/TESTING.md). A tree configured earlier keeps its flags.
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
(cd "$root/build" && ctest --output-on-failure -j"$jobs")

"$root/scripts/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" -DVHP_SANITIZE=ON -DVHP_BUILD_BENCH=OFF -DVHP_UNITY=ON
(cd "$root/build-asan" && ctest --output-on-failure -j"$jobs")

"$root/scripts/build.sh" "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DVHP_FUZZ=ON
(cd "$root/build-fuzz" && ctest --output-on-failure -j"$jobs" -L fuzz)

"$root/scripts/package.sh"
