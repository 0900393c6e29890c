#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo: vhotplugd on a simulated host
# (umockdev) with two real QEMU VMs, driven through vhotplugctl.
# With arguments it runs vhotplugd itself with them instead, e.g. ./scripts/run.sh --list-devices,
# or ./scripts/run.sh -c /etc/vhotplug.conf (no config file: the built-in default).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
source "$root/scripts/trees.sh"
"$root/scripts/build.sh" "$root/build" "${plain_tree[@]}"
if [ $# -eq 0 ]; then
  exec "$root/build/demo/vhotplug-demo"
fi
exec "$root/build/src/app/vhotplugd" "$@"
