"""The adb helpers through the real adbutils client: against the loopback fake server (an
emulated phone running the pushed bundle under qemu), and a real phone when
WORKBENCH_ADB_SERIAL names one."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.codegen.arm64.bundle import Bundle, build_bundle
from workbench.phone.adb import PhoneError, connect, devices, phone, run_bundle, shell
from workbench.phone.commands import main as phone_main
from workbench.phone.fake_server import FakeAdbServer

pytestmark = [pytest.mark.needs_cc, pytest.mark.needs_arm64]


@pytest.fixture(scope="module")
def model_and_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Bundle]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 5)).eval()
    return model, build_bundle(model, tmp_path_factory.mktemp("b"), (3, 8, 8))


@pytest.fixture
def server() -> FakeAdbServer:
    with FakeAdbServer({"emulator-qemu": "device", "R58M-locked": "unauthorized",
                        "usb-flaky": "offline"}) as s:
        yield s


def test_devices_are_described_and_unusable_ones_listed_with_their_state(
        server: FakeAdbServer) -> None:
    infos = {p.serial: p for p in devices(connect(port=server.port))}
    ok = infos["emulator-qemu"]
    assert ok.abi == "arm64-v8a" and ok.cores == 8 and ok.emulated
    assert ok.big_cores == (4, 5, 6, 7) and ok.describe()["max_mhz"][-1] == 2841
    assert infos["R58M-locked"].state == "unauthorized" and infos["usb-flaky"].state == "offline"


@pytest.mark.parametrize("serial,message", [("R58M-locked", "accept the 'Allow USB debugging'"),
                                            ("usb-flaky", "adb reconnect"),
                                            ("nope", "no phone 'nope'"),
                                            (None, "several phones")])
def test_unusable_phones_are_refused_saying_what_to_do(server: FakeAdbServer, serial: str | None,
                                                       message: str) -> None:
    with pytest.raises(PhoneError, match=message):
        phone(connect(port=server.port), serial)


def test_a_phone_of_another_abi_and_a_missing_server_are_refused() -> None:
    with FakeAdbServer(props={"ro.product.cpu.abi": "armeabi-v7a"}) as s:
        with pytest.raises(PhoneError, match="ABI 'armeabi-v7a'"):
            phone(connect(port=s.port))
    with pytest.raises(PhoneError, match="no adb server.*adb start-server"):
        connect(port=_free_port())


def _free_port() -> int:
    import socket
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def test_push_run_pull_matches_pytorch_pinned_and_cleans_up(
        server: FakeAdbServer, model_and_bundle: tuple[nn.Module, Bundle]) -> None:
    model, bundle = model_and_bundle
    device = phone(connect(port=server.port), "emulator-qemu")
    x = torch.randn(1, 3, 8, 8)
    y, times = run_bundle(device, bundle, x, threads=4, reps=3)
    assert float((y - model(x).detach()).abs().max()) < 1e-5
    assert times["threads"] == 4 and len(times["total_ms"]) == 3
    run = [c for c in server.commands if "wb_bundle" in c]
    assert len(run) == 1 and run[0].startswith("taskset f0 /data/local/tmp/wb-")
    assert list(server.local("/data/local/tmp").iterdir()) == []      # the run folder is gone


def test_shell_arguments_are_quoted(server: FakeAdbServer) -> None:
    device = phone(connect(port=server.port), "emulator-qemu")
    hostile = "a b; touch pwned $(touch pwned2) `touch pwned3` 'q' \"d\" & | > x"
    rc, out = shell(device, ["echo", hostile])
    assert rc == 0 and out.strip() == hostile
    assert not [p for p in server.root.iterdir() if p.name.startswith(("pwned", "x"))]
    assert shell(device, ["sh", "-c", "exit 7"])[0] == 7


def test_a_failing_bundle_reports_its_message(server: FakeAdbServer,
                                              model_and_bundle: tuple[nn.Module, Bundle],
                                              tmp_path: Path) -> None:
    _, bundle = model_and_bundle
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in bundle.folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "wb_bundle").chmod(0o755)
    (broken / "weights.bin").write_bytes(b"garbage")
    device = phone(connect(port=server.port), "emulator-qemu")
    with pytest.raises(RuntimeError, match="exited 3.*bad magic"):
        run_bundle(device, Bundle.load(broken), np.zeros((1, 3, 8, 8), np.float32))


def test_command_line_devices_run_and_bench_refuses_emulated_results(
        server: FakeAdbServer, model_and_bundle: tuple[nn.Module, Bundle],
        capsys: pytest.CaptureFixture) -> None:
    _, bundle = model_and_bundle
    port = ["--port", str(server.port), "--serial", "emulator-qemu"]
    assert phone_main(port + ["devices"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["serial"] == "emulator-qemu"
    assert phone_main(port + ["run", str(bundle.folder), "--reps", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["reps"] == 2
    assert phone_main(port + ["bench"]) == 1
    assert "emulated" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("WORKBENCH_ADB_SERIAL"),
                    reason="no real phone: set WORKBENCH_ADB_SERIAL to one `adb devices` lists")
def test_on_a_real_phone(model_and_bundle: tuple[nn.Module, Bundle]) -> None:
    model, bundle = model_and_bundle
    device = phone(connect(), os.environ["WORKBENCH_ADB_SERIAL"])
    x = torch.randn(1, 3, 8, 8)
    y, times = run_bundle(device, bundle, x, threads=1, reps=5)
    assert float((y - model(x).detach()).abs().max()) < 1e-5 and times["median_ms"] > 0
