"""adb helpers on adbutils (a pure-Python adb client): list phones, push a bundle to a
per-run folder under /data/local/tmp, run it pinned to the big cores, pull output and times.

    client = connect()                       # the adb server (adb start-server)
    for p in devices(client): print(p)       # model, ABI, SoC, cores, frequencies
    y, times = run_bundle(phone(client), bundle, x, threads=4, reps=20)

Every argument that reaches the device's shell is quoted (shlex.quote); a phone that is not
arm64-v8a, unauthorized or offline, and a missing adb server are refused with a message
saying what to do. workbench.phone.fake_server serves the same protocol for tests.
"""
from __future__ import annotations

import json
import shlex
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.arm64.bundle import EXECUTABLE, WEIGHTS, Bundle, BundleRunError
from workbench.codegen.inputs import float32_input, is_torch

RUN_ROOT = "/data/local/tmp"
RC_MARK = "__wb_exit_status="


class PhoneError(RuntimeError):
    """No adb server, no usable phone, or a phone that cannot run the bundle; says why."""


@dataclass(frozen=True)
class PhoneInfo:
    """A phone as adb describes it: serial, state ("device", "unauthorized", "offline"), and
    for a usable one its model, ABI, SoC, max frequency per core (kHz) and emulation flag."""
    serial: str
    state: str
    model: str = ""
    abi: str = ""
    soc: str = ""
    max_khz: tuple[int, ...] = ()
    emulated: bool = False

    @property
    def cores(self) -> int:
        return len(self.max_khz)

    @property
    def big_cores(self) -> tuple[int, ...]:
        """The cores of the highest max frequency class and the next (the prime and big
        cores of a big.LITTLE SoC); all cores where every core runs at one frequency."""
        if not self.max_khz:
            return ()
        classes = sorted(set(self.max_khz), reverse=True)
        top = set(classes[:2]) if len(classes) > 2 else set(classes[:1])
        return tuple(i for i, f in enumerate(self.max_khz) if f in top)

    def describe(self) -> dict[str, Any]:
        """A plain dict for results tables."""
        return {"serial": self.serial, "state": self.state, "model": self.model,
                "abi": self.abi, "soc": self.soc, "cores": self.cores,
                "max_mhz": [f // 1000 for f in self.max_khz],
                "big_cores": list(self.big_cores), "emulated": self.emulated}


def connect(host: str = "127.0.0.1", port: int = 5037) -> Any:
    """An adbutils client of the adb server at host:port; PhoneError if none answers."""
    import socket

    import adbutils
    # asked first with a plain socket: adbutils itself would start an adb daemon from the
    # binary it ships when none answers, and a user who named a server wants that one
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise PhoneError(f"no adb server at {host}:{port} ({e}): start it with "
                         f"`adb start-server` (Debian: apt-get install adb)") from e
    client = adbutils.AdbClient(host=host, port=port, socket_timeout=30)
    try:
        client.server_version()
    except (OSError, adbutils.AdbError) as e:
        raise PhoneError(f"no adb server at {host}:{port} ({e}): start it with "
                         f"`adb start-server` (Debian: apt-get install adb)") from e
    return client


def shell(device: Any, args: list[str], timeout: float = 600) -> tuple[int, str]:
    """(exit status, output) of args run in the device's shell, each argument quoted."""
    cmd = " ".join(shlex.quote(a) for a in args)
    out = device.shell(f"{cmd}; echo {RC_MARK}$?", timeout=timeout)
    body, _, rc = out.rpartition(RC_MARK)
    if not rc.strip().isdigit():
        raise PhoneError(f"{device.serial}: no exit status from {args[0]!r}: {out[-300:]}")
    return int(rc.strip()), body


def _getprop(device: Any, name: str) -> str:
    return shell(device, ["getprop", name])[1].strip()


def describe(device: Any, state: str = "device") -> PhoneInfo:
    """The PhoneInfo of a connected phone (adbutils device)."""
    soc = _getprop(device, "ro.soc.model") or _getprop(device, "ro.board.platform")
    _, freqs = shell(device, ["sh", "-c", "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/"
                              "cpuinfo_max_freq; do echo \"$f $(cat \"$f\")\"; done"])
    per_core: dict[int, int] = {}
    for line in freqs.splitlines():
        path, _, khz = line.strip().rpartition(" ")
        core = path.split("/cpu/cpu")[-1].split("/")[0] if "/cpu/cpu" in path else ""
        if core.isdigit() and khz.isdigit():
            per_core[int(core)] = int(khz)
    return PhoneInfo(device.serial, state, _getprop(device, "ro.product.model"),
                     _getprop(device, "ro.product.cpu.abi"), soc,
                     tuple(per_core[c] for c in sorted(per_core)),
                     _getprop(device, "ro.workbench.emulated") == "1")


def devices(client: Any) -> list[PhoneInfo]:
    """Every phone the adb server knows, usable ones described, others with their state."""
    out = []
    for d in client.list():
        if d.state == "device":
            out.append(describe(client.device(d.serial)))
        else:
            out.append(PhoneInfo(d.serial, d.state))
    return out


def phone(client: Any, serial: str | None = None) -> Any:
    """The adbutils device of serial (or the only phone), checked: online, authorized,
    arm64-v8a; PhoneError saying what to do otherwise."""
    known = {d.serial: d.state for d in client.list()}
    if serial is None:
        if not known:
            raise PhoneError("no phone attached: connect one by USB with USB debugging on "
                             "(Settings > Developer options), then `adb devices`")
        if len(known) > 1:
            raise PhoneError(f"several phones attached ({', '.join(sorted(known))}): name one "
                             f"(--serial / WORKBENCH_ADB_SERIAL)")
        (serial,) = known
    state = known.get(serial)
    if state is None:
        raise PhoneError(f"no phone {serial!r} attached (adb sees: {sorted(known) or 'none'})")
    if state == "unauthorized":
        raise PhoneError(f"{serial} is unauthorized: unlock it and accept the 'Allow USB "
                         f"debugging' prompt, then retry")
    if state != "device":
        raise PhoneError(f"{serial} is {state}: reconnect the cable or run `adb reconnect`")
    device = client.device(serial)
    abi = _getprop(device, "ro.product.cpu.abi")
    if abi != "arm64-v8a":
        raise PhoneError(f"{serial} reports ABI {abi!r}; the bundle is arm64-v8a (64-bit ARM)")
    return device


def run_bundle(device: Any, bundle: Bundle, x: Any, threads: int = 1, reps: int = 10,
               pin: bool = True) -> tuple[Any, dict[str, Any]]:
    """Push bundle and x to a new folder under /data/local/tmp, run it (pinned to the big
    cores with taskset when pin), pull the output and the JSON times, remove the folder:
    (output like x, times)."""
    xa = float32_input(x, "bundle")
    if tuple(xa.shape) != bundle.input_shape:
        raise ValueError(f"the bundle takes input {bundle.input_shape}, got {xa.shape}")
    folder = f"{RUN_ROOT}/wb-{uuid.uuid4().hex[:12]}"
    rc, out = shell(device, ["mkdir", "-p", folder])
    if rc != 0:
        raise PhoneError(f"{device.serial}: cannot make {folder}: {out.strip()}")
    try:
        device.sync.push(bundle.executable, f"{folder}/{EXECUTABLE}", 0o755)
        device.sync.push(bundle.weights, f"{folder}/{WEIGHTS}", 0o644)
        device.sync.push(xa.astype("<f4").tobytes(), f"{folder}/input.bin", 0o644)
        cmd = bundle.command(f"{folder}/input.bin", f"{folder}/output.bin", reps, threads, folder)
        if pin:
            cores = describe(device).big_cores
            if cores:
                cmd = ["taskset", format(sum(1 << c for c in cores), "x"), *cmd]
        rc, out = shell(device, cmd, timeout=3600)
        if rc != 0:
            raise BundleRunError(f"{EXECUTABLE} on {device.serial} exited {rc}: "
                                 f"{out.strip()[-2000:]}")
        with tempfile.TemporaryDirectory(prefix="wb_pull_") as tmp:
            local = Path(tmp) / "output.bin"
            device.sync.pull(f"{folder}/output.bin", str(local))
            y = np.fromfile(local, "<f4").reshape(bundle.output_shape)
        times = json.loads(out.strip().splitlines()[-1])
    finally:
        shell(device, ["rm", "-rf", folder])
    if is_torch(x):
        import torch
        return torch.from_numpy(y), times
    return y, times
