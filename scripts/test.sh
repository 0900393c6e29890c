#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test twice: a plain build and an
# AddressSanitizer + UBSan build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"

jobs=$(nproc)
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd "$root/build" && ctest --output-on-failure -j"$jobs")

"$root/scripts/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DVHP_SANITIZE=ON -DVHP_BUILD_BENCH=OFF
(cd "$root/build-asan" && ctest --output-on-failure -j"$jobs")

