#!/bin/sh
# Fails when one of the given programs or modules would load a C++ shared library, directly or
# through another library (`ldd` lists what the loader maps): the shipped programs link the C++
# runtime, RE2 and spdlog in, and the test preload needs none (docs/BENCHMARKS.md, "Memory").
status=0
for file in "$@"; do
  loaded=$(ldd "$file") || { echo "ldd $file failed" >&2; exit 1; }
  if found=$(printf '%s\n' "$loaded" | grep -E 'lib(stdc\+\+|gcc_s|spdlog|fmt|re2)\.so'); then
    printf '%s loads a C++ shared library:\n%s\n' "$file" "$found" >&2
    status=1
  fi
done
exit $status
