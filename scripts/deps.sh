#!/usr/bin/env bash
# Installs the Debian 12 packages vhotplugd needs to build, run and test, when any is missing.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libudev-dev libboost-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libsystemd-dev libkmod-dev libre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev umockdev libumockdev-dev
  clang libclang-rt-14-dev qemu-system-x86
)

# `deps.sh packaging`: what building, checking and installing the Debian package needs.
[ "${1:-}" = packaging ] && packages=(dpkg-dev debhelper scdoc lintian systemd systemd-container man-db
  cmake ninja-build pkg-config g++ libudev-dev libboost-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libsystemd-dev libkmod-dev libre2-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
