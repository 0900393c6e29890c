#!/usr/bin/env python3
"""Record what the Python reference CLI `vhotplugcli` (tiiuae/vhotplug) prints
for given daemon answers, so a C++ test can replay the same answers to our CLI
and compare stdout/stderr/exit code byte for byte.

Rerun (from anywhere):

    mkdir -p /tmp/vhotplug-ref
    git --git-dir=/work/.mirror/tiiuae+vhotplug/repo archive HEAD | tar -x -C /tmp/vhotplug-ref
    /usr/bin/python3 /work/main/tests/data/cli/capture.py [--ref-dir /tmp/vhotplug-ref] [--python /usr/bin/python3]

Reference commit used for the checked-in files: see README.md in this folder.

For each case a tiny Unix-socket server (thread) accepts one connection, reads
one request line, answers with the case's answer line + "\\n", then keeps the
connection open until the client closes it. The reference CLI is run as
    PYTHONPATH=<ref-dir> <python> -m vhotplugcli -t unix -u <socket> <args...>
with LC_ALL=C.UTF-8, and <case>.json is written next to this script:
    {"args", "request", "answer", "stdout", "stderr", "exit_code"}
"request" is the exact line the CLI sent (without "\\n"), or null if the CLI
never connected / sent nothing. "answer" is null when no server was started.
Standard library only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Answers are compact JSON lines shaped like vhotplugd's replies. Key order
# follows vhotplug's USBInfo.to_dict()/PCIInfo.to_dict() + allowed_vms/vm
# (PCI: iommu_member is inserted before allowed_vms, as in get_pci_device_list).
# Non-ASCII is \u-escaped, like vhotplugd's json.dumps (ensure_ascii default).


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


USB_DEV_1 = {
    "device_node": "/dev/bus/usb/001/004",
    "vid": "0bda",
    "pid": "8153",
    "vendor_name": None,
    "product_name": "RTL8153 Gigabit Ethernet Adapter",
    "interfaces": ":ff0000:020600:0a0000:",
    "device_class": 0,
    "device_subclass": 0,
    "device_protocol": 0,
    "busnum": 1,
    "devnum": 4,
    "portnum": 2,
    "serial": None,
    "sys_name": "1-2",
    "allowed_vms": ["vm1", "vm2"],
    "vm": None,
}
USB_DEV_2 = {
    "device_node": "/dev/bus/usb/001/005",
    "vid": "04f2",
    "pid": "b751",
    "vendor_name": "Chicony Electronics Co., Ltd",
    "product_name": "Caméra l'USB",
    "interfaces": ":0e0100:0e0200:",
    "device_class": 239,
    "device_subclass": 2,
    "device_protocol": 1,
    "busnum": 1,
    "devnum": 5,
    "portnum": 3,
    "serial": "0001",
    "sys_name": "1-3.1",
    "allowed_vms": ["vm1"],
    "vm": "vm1",
}
USB_LIST_ANSWER = compact({"result": "ok", "usb_devices": [USB_DEV_1, USB_DEV_2]})

PCI_DEV_1 = {
    "address": "0000:00:14.3",
    "driver": "iwlwifi",
    "vendor_id": 32902,
    "device_id": 41200,
    "vid": "8086",
    "did": "A0F0",
    "vendor_name": "Intel Corporation",
    "device_name": None,
    "pci_class": 2,
    "pci_subclass": 128,
    "pci_prog_if": 0,
    "pci_subsystem_vendor_id": "8086",
    "pci_subsystem_id": "0074",
    "allowed_vms": ["net-vm"],
    "vm": "net-vm",
}
PCI_DEV_2 = {
    "address": "0000:00:1f.3",
    "driver": "vfio-pci",
    "vendor_id": 32902,
    "device_id": 41416,
    "vid": "8086",
    "did": "A0C8",
    "vendor_name": "Intel Corporation",
    "device_name": "Tiger Lake-LP Smart Sound Technology Audio Controller",
    "pci_class": 4,
    "pci_subclass": 1,
    "pci_prog_if": 0,
    "pci_subsystem_vendor_id": "17AA",
    "pci_subsystem_id": "22D8",
    "allowed_vms": ["audio-vm", "gui-vm"],
    "vm": None,
}
PCI_DEV_IOMMU = {
    "address": "0000:00:1f.0",
    "driver": None,
    "vendor_id": 32902,
    "device_id": 41090,
    "vid": "8086",
    "did": "A082",
    "vendor_name": "Intel Corporation",
    "device_name": "Tiger Lake-LP LPC Controller",
    "pci_class": 6,
    "pci_subclass": 1,
    "pci_prog_if": 0,
    "pci_subsystem_vendor_id": "17AA",
    "pci_subsystem_id": "22D8",
    "iommu_member": True,
    "allowed_vms": ["audio-vm", "gui-vm"],
    "vm": None,
}
PCI_LIST_ANSWER = compact({"result": "ok", "pci_devices": [PCI_DEV_1, PCI_DEV_2, PCI_DEV_IOMMU]})

OK = compact({"result": "ok"})


def failed(msg):
    return compact({"result": "failed", "error": msg})


NO_SERVER = object()

# (case name, CLI args after the global -t/-u, answer line or NO_SERVER)
CASES = [
    ("usb_list_long", ["usb", "list"], USB_LIST_ANSWER),
    ("usb_list_short", ["usb", "list", "--short", "--tag", "cam"], USB_LIST_ANSWER),
    ("usb_list_connected", ["usb", "list", "--connected"], compact({"result": "ok", "usb_devices": []})),
    ("pci_list_long", ["pci", "list"], PCI_LIST_ANSWER),
    ("pci_list_disconnected_short", ["pci", "list", "--disconnected", "--short"], PCI_LIST_ANSWER),
    ("usb_attach_ok", ["usb", "attach", "--devnode", "/dev/bus/usb/001/005", "--vm", "vm2"], OK),
    (
        "usb_attach_failed",
        ["usb", "attach", "--devnode", "/dev/bus/usb/001/005", "--vm", "vm2"],
        failed("Selected VM vm2 is not allowed"),
    ),
    ("usb_detach_tag", ["usb", "detach", "--tag", "cam"], OK),
    ("usb_attach_bus_port", ["usb", "attach", "--bus", "1", "--port", "2"], OK),
    ("usb_suspend", ["usb", "suspend"], OK),
    ("usb_resume_vm", ["usb", "resume", "--vm", "vm1"], failed("failed to find host usb device 1:4")),
    ("pci_attach_address", ["pci", "attach", "--address", "0000:00:14.3"], OK),
    ("pci_detach_tag", ["pci", "detach", "--tag", "net"], OK),
    (
        "pci_detach_failed",
        ["pci", "detach", "--vid", "8086", "--did", "a0f0"],
        failed("Device 0000:00:14.3 8086:A0F0 (None None) is not attached to any VM"),
    ),
    ("pci_suspend_vm", ["pci", "suspend", "--vm", "net-vm"], OK),
    (
        "pci_resume_failed",
        ["pci", "resume", "--vm", "net-vm"],
        failed("vfio 0000:00:14.3: error getting device from group 6: Device or resource busy"),
    ),
    # No selector: the CLI must fail before connecting. A server is still
    # started (it would answer OK) so that an unexpected request is recorded.
    ("usb_attach_no_selector", ["usb", "attach"], OK),
    ("pci_detach_no_selector", ["pci", "detach"], OK),
    ("list_failed", ["usb", "list"], failed("boom")),
    ("connect_refused", ["usb", "list"], NO_SERVER),
]


class OneShotServer(threading.Thread):
    def __init__(self, path, answer):
        super().__init__(daemon=True)
        self.answer = answer
        self.request = None
        self.connected = False
        self.error = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()

    def run(self):
        try:
            conn = None
            while not self.stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                    break
                except socket.timeout:
                    continue
            if conn is None:
                return
            self.connected = True
            conn.settimeout(30)
            with conn:
                buf = b""
                while b"\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        break
                    buf += data
                if b"\n" in buf:
                    line, rest = buf.split(b"\n", 1)
                    self.request = line.decode("utf-8")
                    if rest:
                        self.error = f"extra bytes after request: {rest!r}"
                    conn.sendall(self.answer.encode("utf-8") + b"\n")
                    # Keep the connection open until the client closes it.
                    while conn.recv(4096):
                        pass
                elif buf:
                    self.error = f"incomplete request: {buf!r}"
        except OSError as e:
            self.error = str(e)
        finally:
            self.sock.close()


def run_case(name, args, answer, ref_dir, python, tmp):
    sock_path = os.path.join(tmp, f"{name}.sock")
    server = None
    if answer is NO_SERVER:
        sock_path = os.path.join(tmp, "does-not-exist", "vhotplug.sock")
    else:
        server = OneShotServer(sock_path, answer)
        server.start()

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ref_dir)
    env["LC_ALL"] = "C.UTF-8"
    for var in ("PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS"):
        env.pop(var, None)
    cmd = [python, "-m", "vhotplugcli", "-t", "unix", "-u", sock_path, *args]
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)

    request = None
    if server is not None:
        server.stop.set()
        server.join(timeout=30)
        if server.is_alive():
            raise RuntimeError(f"{name}: server thread did not finish")
        if server.error:
            raise RuntimeError(f"{name}: server error: {server.error}")
        request = server.request

    stdout = proc.stdout.decode("utf-8")
    stderr = proc.stderr.decode("utf-8")
    # The socket path is per-run; make sure it did not leak into the output.
    if tmp in stdout or tmp in stderr:
        raise RuntimeError(f"{name}: temporary path appears in output:\n{stderr}")

    record = {
        "args": args,
        "request": request,
        "answer": None if answer is NO_SERVER else answer,
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": proc.returncode,
    }
    out = HERE / f"{name}.json"
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-dir", default="/tmp/vhotplug-ref", help="extracted tiiuae/vhotplug tree")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for the reference CLI")
    ap.add_argument("cases", nargs="*", help="only these cases (default: all)")
    opts = ap.parse_args()

    ref_dir = Path(opts.ref_dir)
    if not (ref_dir / "vhotplugcli" / "vhotplugcli.py").is_file():
        sys.exit(f"reference CLI not found under {ref_dir} (see the rerun command at the top of this file)")

    selected = [c for c in CASES if not opts.cases or c[0] in opts.cases]
    # Short temp dir: AF_UNIX paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="vhpcli-") as tmp:
        for name, args, answer in selected:
            rec = run_case(name, args, answer, ref_dir, opts.python, tmp)
            print(f"{name}: exit={rec['exit_code']} request={rec['request']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
