#!/usr/bin/env bash
# Builds the Debian package from the tree's tracked files, checks it with lintian, installs it,
# verifies the installed unit and config, runs it as a service under systemd
# (scripts/service_check.sh), and purges it again: purge must leave nothing behind but the state
# directory. Needs root (dpkg -i); called by scripts/test.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" packaging

version=$(sed -n 's/^project(vhotplugd VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/vhotplugd-$version"
(cd "$root" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$work/vhotplugd-$version"
(cd "$work/vhotplugd-$version" && dpkg-buildpackage -b -us -uc -j"$(nproc)" >"$work/build.log" 2>&1) || { tail -50 "$work/build.log"; exit 1; }
deb="$work/vhotplugd_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || { echo "package: $deb was not built" >&2; ls "$work" >&2; exit 1; }
echo "package: built $(basename "$deb")"

lintian --fail-on error "$deb"
contents=$(dpkg-deb -c "$deb")
for page in man8/vhotplugd.8 man1/vhotplugctl.1 man1/vhotplugcli.1 man5/vhotplug.conf.5; do
  grep -q "usr/share/man/$page.gz" <<<"$contents" || { echo "package: no $page" >&2; exit 1; }
done

dpkg -i "$deb"
trap 'dpkg --purge vhotplugd >/dev/null 2>&1 || true; rm -rf "$work"' EXIT  # a failed check leaves nothing installed
installed=$(dpkg -L vhotplugd)
unit=$(pkg-config --variable=systemdsystemunitdir systemd)/vhotplugd.service
systemd-analyze verify "$unit"
vhotplugd --check-config /etc/vhotplug.conf
[ "$(vhotplugd --version)" = "vhotplugd $version" ]
[ "$(vhotplugcli --version)" = "vhotplugcli $version" ]
[ "$(stat -c %a /var/lib/vhotplug)" = 750 ]
"$root/scripts/service_check.sh"

dpkg --purge vhotplugd
left=()
while read -r path; do
  [ -e "$path" ] || [ -L "$path" ] || continue
  [ -d "$path" ] && continue  # shared directories (/usr/bin, /lib → usr/lib, …) stay
  left+=("$path")
done <<<"$installed"
[ -e /etc/systemd/system/multi-user.target.wants/vhotplugd.service ] && left+=("the service's enablement link")
[ ${#left[@]} -eq 0 ] || { echo "package: purge left ${left[*]}" >&2; exit 1; }
echo "package: installed, verified and purged cleanly"
