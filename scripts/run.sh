#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the daemon in the foreground.
# Without -c (and with no /etc/vhotplug.conf) the daemon runs on its built-in default config.
# Extra arguments go to vhotplugd, e.g. ./scripts/run.sh --list-devices
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
exec "$root/build/src/app/vhotplugd" "$@"
