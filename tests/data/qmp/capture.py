#!/usr/bin/env python3
"""Capture real QMP replies from QEMU for PCI hot-plug, as replay data for tests.

Usage: python3 tests/data/qmp/capture.py [QEMU_BINARY]   (default: qemu-system-x86_64)

Starts QEMU (q35, TCG, paused with -S, no OS, three pcie-root-ports and an xhci
controller), talks QMP over a unix socket in a temporary directory, writes one
JSON file per capture next to this script, then kills QEMU.

Commands are sent the way vhotplugd's QmpConnection sends them: one line,
{"execute": ..., "id": <number>, "arguments": ...}, so QEMU echoes the numeric
"id" in each reply.  Each capture file holds the reply (or event) QEMU sent,
parsed and pretty-printed with QEMU's key order kept; transcript.json holds
every raw line in both directions, byte for byte (minus the trailing CRLF).
"""
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

OUT = os.path.dirname(os.path.abspath(__file__))
QEMU = sys.argv[1] if len(sys.argv) > 1 else "qemu-system-x86_64"


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(100):
            try:
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("cannot connect to " + path)
        self.buf = b""
        self.next_id = 1
        self.events = []  # (raw, parsed) events seen while waiting for replies
        self.transcript = []

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise SystemExit("QEMU closed the QMP socket")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        raw = line.rstrip(b"\r").decode()
        self.transcript.append({"dir": "recv", "raw": raw})
        return raw

    def greeting(self):
        raw = self._line(10)
        return raw, json.loads(raw)

    def send_raw(self, text):
        self.transcript.append({"dir": "send", "raw": text})
        self.sock.sendall(text.encode() + b"\n")

    def execute(self, command, arguments=None, with_id=True):
        req = {"execute": command}
        if with_id:
            req["id"] = self.next_id
            self.next_id += 1
        if arguments is not None:
            req["arguments"] = arguments
        self.send_raw(json.dumps(req, separators=(",", ":")))
        while True:
            raw = self._line(30)
            if raw is None:
                raise SystemExit("no reply to " + command)
            msg = json.loads(raw)
            if "event" in msg:
                self.events.append((raw, msg))
                continue
            if with_id and msg.get("id") != req["id"]:
                continue
            return raw, msg

    def wait_event(self, name, timeout):
        for i, (raw, msg) in enumerate(self.events):
            if msg["event"] == name:
                del self.events[i]
                return raw, msg
        deadline = time.monotonic() + timeout
        while True:
            raw = self._line(max(0, deadline - time.monotonic()))
            if raw is None:
                return None, None
            msg = json.loads(raw)
            if msg.get("event") == name:
                return raw, msg
            if "event" in msg:
                self.events.append((raw, msg))


def save(name, value):
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    print("wrote", name + ".json")


def start_qemu(tmp, name):
    sock = os.path.join(tmp, name + ".sock")
    argv = [QEMU, "-machine", "q35,accel=tcg", "-nodefaults", "-display", "none", "-S", "-m", "64",
            "-qmp", "unix:%s,server=on,wait=off" % sock,
            "-device", "qemu-xhci,id=xhci",
            "-device", "pcie-root-port,id=pci_hotplug_1,chassis=1,slot=1",
            "-device", "pcie-root-port,id=pci_hotplug_2,chassis=2,slot=2",
            "-device", "pcie-root-port,id=pci_hotplug_3,chassis=3,slot=3"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock) or proc.poll() is not None:
            break
        time.sleep(0.05)
    return proc, sock


def main():
    tmp = tempfile.mkdtemp(prefix="vhp-qmp-")
    procs = []
    try:
        proc, sock = start_qemu(tmp, "vm")
        procs.append(proc)
        q = Qmp(sock)
        raw, msg = q.greeting()
        save("greeting", msg)
        raw, msg = q.execute("qmp_capabilities", with_id=False)  # exactly as QmpConnection::open sends it
        save("qmp_capabilities", msg)
        save("query-version", q.execute("query-version")[1])

        # 1. all root ports empty
        save("query-pci-empty", q.execute("query-pci")[1])

        # 2. a device behind pci_hotplug_1 (stands in for a realised vfio-pci)
        save("device_add-e1000e-ok",
             q.execute("device_add", {"driver": "e1000e", "bus": "pci_hotplug_1", "id": "vhp-pci-0000-00-14.3"})[1])
        save("query-pci-after-add", q.execute("query-pci")[1])

        # 3. peripheral containers
        save("qom-list-peripheral", q.execute("qom-list", {"path": "/machine/peripheral"})[1])
        save("qom-list-peripheral-anon", q.execute("qom-list", {"path": "/machine/peripheral-anon"})[1])

        # 4. failing adds
        save("device_add-vfio-pci-bus-error",
             q.execute("device_add", {"driver": "vfio-pci", "host": "0000:00:14.3", "bus": "pci_hotplug_2",
                                      "id": "vhp-pci-0000-00-14.3b"})[1])
        save("device_add-vfio-pci-nobus-error",
             q.execute("device_add", {"driver": "vfio-pci", "host": "0000:00:14.3",
                                      "id": "vhp-pci-0000-00-14.3b"})[1])
        save("device_add-vfio-pci-nohost-error",
             q.execute("device_add", {"driver": "vfio-pci", "host": "0000:09:00.0", "bus": "pci_hotplug_2",
                                      "id": "vhp-pci-0000-09-00.0"})[1])
        save("device_add-occupied-error",
             q.execute("device_add", {"driver": "e1000e", "bus": "pci_hotplug_1", "id": "vhp-pci-0000-00-14.3c"})[1])
        # the auto-addressed add above succeeds (see README); with an explicit addr the slot conflict shows
        save("qom-get-addr-second", q.execute("qom-get", {"path": "/machine/peripheral/vhp-pci-0000-00-14.3c",
                                                           "property": "addr"})[1])
        save("device_add-occupied-addr0-error",
             q.execute("device_add", {"driver": "e1000e", "bus": "pci_hotplug_1", "addr": "0",
                                      "id": "vhp-pci-0000-00-14.3d"})[1])
        save("device_add-duplicate-id-error",
             q.execute("device_add", {"driver": "e1000e", "bus": "pci_hotplug_3", "id": "vhp-pci-0000-00-14.3"})[1])
        save("device_add-nobus-error",
             q.execute("device_add", {"driver": "e1000e", "bus": "no_such_bus", "id": "vhp-pci-x"})[1])

        # 6 (before the delete, while the device certainly exists)
        save("qom-get-addr", q.execute("qom-get", {"path": "/machine/peripheral/vhp-pci-0000-00-14.3",
                                                    "property": "addr"})[1])
        props = q.execute("device-list-properties", {"typename": "vfio-pci"})[1]
        save("device-list-properties-vfio-pci", props)
        save("device-list-properties-vfio-pci-host",
             [p for p in props["return"] if p["name"] in ("host", "sysfsdev")])

        # 5. device_del of a PCI device: no DEVICE_DELETED without a guest
        save("device_del-pci-ok", q.execute("device_del", {"id": "vhp-pci-0000-00-14.3"})[1])
        raw, ev = q.wait_event("DEVICE_DELETED", 3)
        save("device_del-pci-wait3s", {"DEVICE_DELETED_within_3s": ev, "other_events": [m for _, m in q.events]})
        save("device_del-pci-again-error", q.execute("device_del", {"id": "vhp-pci-0000-00-14.3"})[1])
        save("query-pci-after-del", q.execute("query-pci")[1])
        save("qom-list-peripheral-after-del", q.execute("qom-list", {"path": "/machine/peripheral"})[1])
        save("device_del-unknown-error", q.execute("device_del", {"id": "vhp-no-such-device"})[1])

        # 7. DEVICE_DELETED event format, from a usb device (unplugged without guest help)
        save("device_add-usb-host-ok",
             q.execute("device_add", {"driver": "usb-host", "bus": "xhci.0", "id": "u1",
                                      "vendorid": 1133, "productid": 50475})[1])
        q.events.clear()
        save("device_del-usb-ok", q.execute("device_del", {"id": "u1"})[1])
        raw, ev = q.wait_event("DEVICE_DELETED", 5)
        save("event-DEVICE_DELETED-usb", ev)
        seen = [m for _, m in q.events] + ([ev] if ev else [])
        q.events.clear()
        q.wait_event("NO_SUCH_EVENT", 1)  # collect whatever else arrives within 1 s
        save("event-DEVICE_DELETED-usb-all", seen + [m for _, m in q.events])

        save("transcript", q.transcript)
        running_phase(tmp, procs)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def bridge_secondary(reply, qdev_id):
    for d in reply["return"][0]["devices"]:
        if d.get("qdev_id") == qdev_id and "pci_bridge" in d:
            return d["pci_bridge"]["bus"]["secondary"]
    return None


def running_phase(tmp, procs):
    """Second QEMU, same command line, but 'cont' so SeaBIOS numbers the root ports' buses.

    In the paused VM every root port has secondary bus 0 and query-pci lists nothing behind
    them; once firmware ran, devices behind the ports show up under pci_bridge.devices.
    """
    proc, sock = start_qemu(tmp, "vm-running")
    procs.append(proc)
    q = Qmp(sock)
    q.greeting()
    q.execute("qmp_capabilities", with_id=False)
    q.execute("cont")
    deadline = time.monotonic() + 20
    while True:
        reply = q.execute("query-pci")[1]
        if bridge_secondary(reply, "pci_hotplug_3") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    save("running-query-pci-empty", reply)
    q.events.clear()  # drop RESUME from 'cont'
    save("running-device_add-e1000e-ok",
         q.execute("device_add", {"driver": "e1000e", "bus": "pci_hotplug_1", "id": "vhp-pci-0000-00-14.3"})[1])
    save("running-query-pci-after-add", q.execute("query-pci")[1])
    save("running-device_add-occupied-addr0-error",
         q.execute("device_add", {"driver": "e1000e", "bus": "pci_hotplug_1", "addr": "0",
                                  "id": "vhp-pci-0000-00-14.3d"})[1])
    save("running-device_del-pci-ok", q.execute("device_del", {"id": "vhp-pci-0000-00-14.3"})[1])
    raw, ev = q.wait_event("DEVICE_DELETED", 3)
    save("running-device_del-pci-wait3s", {"DEVICE_DELETED_within_3s": ev, "other_events": [m for _, m in q.events]})
    save("running-query-pci-after-del", q.execute("query-pci")[1])
    save("running-transcript", q.transcript)


if __name__ == "__main__":
    main()
