"""A loopback adb server with an emulated phone: the real adbutils client talks to it, and a
pushed ARM64 bundle runs under qemu-aarch64 in a scratch folder.

    with FakeAdbServer() as server:
        client = connect(port=server.port)        # workbench.phone.adb, as for a phone

It speaks the adb host-protocol subset adbutils uses: host:version, host:devices(-l),
host-serial:<serial>:get-state|features, host:tport:serial / host:transport, shell: (v1:
stdout and stderr together, no exit status) and sync: (STAT, SEND, RECV, QUIT). Device paths
under /data/local/tmp and /sys/devices/system/cpu map into the scratch folder; `getprop`
answers from props and `taskset MASK PROGRAM ...` runs an ARM64 program under qemu. It binds
127.0.0.1 only and runs what it is sent: it is a test fixture, not a sandbox.
"""
from __future__ import annotations

import os
import shutil
import socket
import socketserver
import stat
import struct
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

# A Snapdragon 855's cores (kHz): 4 Cortex-A55, 3 Cortex-A76 and one prime A76.
SD855_KHZ = (1785600,) * 4 + (2419200,) * 3 + (2841600,)
DEFAULT_PROPS = {"ro.product.model": "qemu-aarch64 (emulated)",
                 "ro.product.cpu.abi": "arm64-v8a", "ro.soc.model": "emulated SM8150",
                 "ro.workbench.emulated": "1"}
MAPPED = ("/data/local/tmp", "/sys/devices/system/cpu")

_TASKSET = """#!/bin/sh
# taskset MASK PROGRAM ARGS...: the mask is not applied; an ARM64 program runs under qemu
shift
if head -c 20 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \\n' | grep -q '^7f454c46.*b700$'; then
  exec "$WB_QEMU" "$@"
fi
exec "$@"
"""


class FakeAdbServer:
    """An adb server on 127.0.0.1:<port> with devices {serial: state} sharing one emulated
    phone (props, max core frequencies), its files in a scratch folder."""

    def __init__(self, devices: dict[str, str] | None = None,
                 props: dict[str, str] | None = None,
                 max_khz: tuple[int, ...] = SD855_KHZ) -> None:
        self.devices = dict(devices or {"emulator-qemu": "device"})
        self.props = {**DEFAULT_PROPS, **(props or {})}
        self.max_khz = max_khz
        self.commands: list[str] = []       # every shell command received, for tests
        self.root = Path(tempfile.mkdtemp(prefix="wb_fake_phone_"))
        self._shims = self.root / ".bin"
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    def local(self, device_path: str) -> Path:
        """Where a device path lies in the scratch folder."""
        return Path(self._map(device_path))

    def _map(self, text: str) -> str:
        for p in MAPPED:
            text = text.replace(p, str(self.root) + p)
        return text

    def start(self) -> "FakeAdbServer":
        from workbench.codegen.arm64.toolchain import qemu
        self._qemu = qemu()
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        for i, khz in enumerate(self.max_khz):
            d = self.root / f"sys/devices/system/cpu/cpu{i}/cpufreq"
            d.mkdir(parents=True, exist_ok=True)
            (d / "cpuinfo_max_freq").write_text(f"{khz}\n")
        self._shims.mkdir(exist_ok=True)
        cases = "\n".join(f"  {_sh_quote(k)}) echo {_sh_quote(v)} ;;"
                          for k, v in self.props.items())
        (self._shims / "getprop").write_text(f'#!/bin/sh\ncase "$1" in\n{cases}\n  *) echo ;;'
                                             f'\nesac\n')
        (self._shims / "taskset").write_text(_TASKSET)
        for f in self._shims.iterdir():
            f.chmod(0o755)
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    server._serve(self.request)
                except (ConnectionError, OSError):
                    pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "FakeAdbServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- the protocol ------------------------------------------------------------------------
    def _serve(self, s: socket.socket) -> None:
        while True:
            cmd = _read_cmd(s)
            if cmd is None:
                return
            if cmd == "host:version":
                return _okay(s, "0029")            # 41: adbutils then uses host:tport
            if cmd in ("host:devices", "host:devices-l"):
                return _okay(s, "".join(f"{k}\t{v}\n" for k, v in self.devices.items()))
            if cmd.startswith("host-serial:"):
                serial, _, what = cmd[len("host-serial:"):].rpartition(":")
                if serial not in self.devices:
                    return _fail(s, f"device '{serial}' not found")
                if what == "get-state":
                    return _okay(s, self.devices[serial])
                if what == "features":
                    return _okay(s, "cmd,stat_v2,fixed_push_mkdir")
                return _fail(s, f"unsupported {what}")
            if cmd.startswith(("host:tport:serial:", "host:transport:")):
                serial = cmd.rsplit(":", 1)[1]
                state = self.devices.get(serial)
                if state != "device":
                    return _fail(s, f"device '{serial}' {'not found' if state is None else state}")
                s.sendall(b"OKAY" + (struct.pack("<Q", 1) if "tport" in cmd else b""))
                continue                            # the device service comes next
            if cmd.startswith("shell:"):
                s.sendall(b"OKAY")
                s.sendall(self._shell(cmd[len("shell:"):]))
                return
            if cmd == "sync:":
                s.sendall(b"OKAY")
                return self._sync(s)
            return _fail(s, f"unsupported service {cmd}")

    def _shell(self, cmd: str) -> bytes:
        self.commands.append(cmd)
        env = {**os.environ, "PATH": f"{self._shims}:{os.environ.get('PATH', '')}",
               "WB_QEMU": self._qemu}
        res = subprocess.run(["/bin/sh", "-c", self._map(cmd)], cwd=self.root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
        return res.stdout

    def _sync(self, s: socket.socket) -> None:
        while True:
            head = _read_exact(s, 8)
            if head is None:
                return
            op, n = head[:4], struct.unpack("<I", head[4:])[0]
            arg = (_read_exact(s, n) or b"").decode()
            if op == b"QUIT":
                return
            if op == b"STAT":
                p = self.local(arg)
                st = p.stat() if p.exists() else None
                s.sendall(b"STAT" + struct.pack("<III", st.st_mode if st else 0,
                                                st.st_size if st else 0,
                                                int(st.st_mtime) if st else 0))
            elif op == b"SEND":
                path, _, mode = arg.rpartition(",")
                data = bytearray()
                while True:
                    h = _read_exact(s, 8)
                    if h is None:
                        return
                    n = struct.unpack("<I", h[4:])[0]
                    if h[:4] == b"DONE":
                        break
                    data += _read_exact(s, n) or b""
                p = self.local(path)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(bytes(data))
                p.chmod(stat.S_IMODE(int(mode)) if mode.isdigit() else 0o644)
                s.sendall(b"OKAY" + struct.pack("<I", 0))
            elif op == b"RECV":
                p = self.local(arg)
                if not p.is_file():
                    msg = b"No such file or directory"
                    s.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                data = p.read_bytes()
                for i in range(0, len(data), 65536):
                    chunk = data[i:i + 65536]
                    s.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                s.sendall(b"DONE" + struct.pack("<I", 0))
            else:
                return


def _sh_quote(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


def _read_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_cmd(s: socket.socket) -> str | None:
    head = _read_exact(s, 4)
    if head is None:
        return None
    body = _read_exact(s, int(head, 16))
    return None if body is None else body.decode()


def _okay(s: socket.socket, text: str) -> None:
    b = text.encode()
    s.sendall(b"OKAY" + f"{len(b):04x}".encode() + b)


def _fail(s: socket.socket, text: str) -> None:
    b = text.encode()
    s.sendall(b"FAIL" + f"{len(b):04x}".encode() + b)
