#!/usr/bin/env bash
# Runs the installed vhotplugd.service under a real systemd: boots this machine's own root (with
# the package installed) as a container, systemd as its PID 1, on a throw-away overlay. Inside it
# checks what only a service manager can show: the hardened unit starts and reports READY and its
# STATUS line, `vhotplugctl status` answers, a reload goes through ExecReload, the journal holds the
# lines' priorities and VHOTPLUG_* fields, and a hung event loop (SIGSTOP) is killed by the
# watchdog and restarted. Needs root and systemd-nspawn; called by scripts/package.sh.
set -euo pipefail

work=$(mktemp -d /tmp/vhp-service.XXXXXX)
cleanup() {
  umount -l "$work/root" 2>/dev/null || true
  umount -l "$work" 2>/dev/null || true
  rmdir "$work" 2>/dev/null || true
}
trap cleanup EXIT
mount -t tmpfs tmpfs "$work"
mkdir "$work/upper" "$work/work" "$work/root" "$work/out"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$work/root"
root=$work/root

# Only what the check needs starts at boot: the check itself, which starts the service.
rm -f "$root"/etc/systemd/system/multi-user.target.wants/*
# A VM whose QMP socket is absent (its VMM args get logged with its name) and API rights that refuse
# the CLI's suspend (logged with the caller).
cat >"$root/etc/vhotplug.conf" <<'EOF'
{
  "general": {"api": {"transports": ["unix"], "permissions": [{"users": ["root"], "actions": ["list", "vmm_args"]}]}},
  "vms": [{"name": "netvm", "type": "qemu", "socket": "/run/netvm-qmp.sock"}],
  "usbPassthrough": [], "pciPassthrough": []
}
EOF
cat >"$root/etc/systemd/system/vhp-check.service" <<'EOF'
[Unit]
Description=vhotplugd service check
SuccessAction=poweroff
FailureAction=poweroff
[Service]
Type=oneshot
ExecStart=/bin/bash /vhp-check.sh
StandardOutput=append:/out/check.log
StandardError=inherit
EOF
cat >"$root/vhp-check.sh" <<'EOF'
set -uo pipefail
failures=0
check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAILED: $1"; failures=$((failures + 1)); fi
}
prop() { systemctl show -p "$1" --value vhotplugd; }
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
  local end=$((SECONDS + $1))
  until "${@:2}"; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
active() { [ "$(prop ActiveState)" = active ]; }
# journald stores asynchronously: wait_for these. (Output captured first: grep -q on a pipe under
# pipefail fails by SIGPIPE.)
logged() { [ -n "$(journalctl "$@" -o cat --no-pager)" ]; }
says() { local text; text=$(journalctl -u vhotplugd -o cat --no-pager); grep -qF "$1" <<<"$text"; }
restarted() { [ "$(prop NRestarts)" -ge 1 ] && active; }

systemctl start vhotplugd.service  # Type=notify: returns once READY=1 came
check "the service is active after READY=1" active
check "its STATUS= line counts devices, VMs and clients" grep -q "devices; 0/1 VMs up; 0 clients" <<<"$(prop StatusText)"
status=$(vhotplugctl -t unix status 2>&1); echo "$status"
check "vhotplugctl status answers" grep -q "netvm" <<<"$status"
check "vmm args answers" test -z "$(vhotplugctl -t unix vmm args --vm netvm 2>&1)"
check "a refused request answers Permission denied" grep -q "Permission denied" <<<"$(vhotplugctl -t unix usb suspend 2>&1)"
systemctl reload vhotplugd.service
check "a reload goes through" wait_for 10 says "config reloaded"
pci=$(basename "$(ls -d /sys/bus/pci/devices/* | head -1)")
check "lines about a device carry VHOTPLUG_DEVICE" wait_for 10 logged "VHOTPLUG_DEVICE=pci-$pci"
check "lines about a VM carry VHOTPLUG_VM" wait_for 10 logged VHOTPLUG_VM=netvm
check "lines about a caller carry VHOTPLUG_CALLER" wait_for 10 logged "VHOTPLUG_CALLER=unix uid 0"
check "warnings have priority 4" wait_for 10 logged -u vhotplugd -p warning..warning

pid=$(prop MainPID)
check "the daemon has a main process" test "$pid" -gt 0
[ "$pid" -gt 0 ] && kill -STOP "$pid"  # the event loop stops: no WATCHDOG=1 any more
check "a hung loop is killed by the watchdog and restarted" wait_for 40 restarted
check "the restarted daemon is a new process" test "$(prop MainPID)" != "$pid"
check "the watchdog is what killed it" wait_for 10 says "Watchdog timeout"
journalctl -u vhotplugd -o short-monotonic --no-pager | tail -40
echo "failures: $failures"
EOF

timeout -k 30 300 systemd-nspawn --quiet --register=no --keep-unit --machine=vhp-check --directory="$root" \
  --bind="$work/out:/out" --boot -- systemd.unit=vhp-check.service </dev/null >"$work/out/console.log" 2>&1 || true
log=$work/out/check.log
if [ -f "$log" ] && grep -q "^failures: 0$" "$log"; then
  grep "^ok: " "$log" | sed 's/^/service: /'
  exit 0
fi
echo "service: the check under systemd failed" >&2
cat "$log" "$work/out/console.log" >&2 2>/dev/null || true
exit 1
