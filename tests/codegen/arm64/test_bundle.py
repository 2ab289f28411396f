"""ARM64 bundles under qemu-aarch64 against PyTorch: random layers, whole CIFAR networks, and
every way a weights file, an input or the command line can be wrong."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.codegen import compile
from workbench.codegen.arm64.bundle import Bundle, BundleRunError, build_bundle
from workbench.codegen.arm64.program import ExportError, export_plan
from workbench.codegen.arm64.toolchain import qemu
from workbench.models import build_model

from ..helpers import PATTERNS8, pattern_pruned, rel_err
from ..test_frontend_torch import _randomise_bn
from ..host.test_network import _pattern_prune

pytestmark = [pytest.mark.needs_cc, pytest.mark.needs_arm64]


def _conv(rng: np.random.Generator, c: int, o: int, k: int, stride: int, padding: int,
          groups: int, prune: str) -> nn.Conv2d:
    conv = nn.Conv2d(c, o, k, stride, padding, groups=groups)
    with torch.no_grad():
        if prune == "pattern" and k == 3 and groups == 1:
            conv.weight.copy_(torch.from_numpy(pattern_pruned(rng, o, c, 0.4, PATTERNS8)))
        elif prune == "connectivity":
            conv.weight.mul_(torch.from_numpy(rng.random((o, c // groups, 1, 1)) < 0.5))
    return conv


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=st.integers(1, 9), o=st.integers(1, 12), h=st.integers(3, 13), w=st.integers(3, 15),
       shape=st.sampled_from(["dense", "dense", "pointwise", "depthwise"]),
       k=st.sampled_from([3, 3, 5]), stride=st.sampled_from([1, 2]), padding=st.integers(0, 2),
       prune=st.sampled_from(["none", "pattern", "connectivity"]),
       act=st.sampled_from([nn.Identity, nn.ReLU, nn.ReLU6]), batch=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_random_layers_under_qemu_match_pytorch(c: int, o: int, h: int, w: int, shape: str,
                                                k: int, stride: int, padding: int, prune: str,
                                                act: type, batch: int, seed: int,
                                                tmp_path_factory: pytest.TempPathFactory
                                                ) -> None:
    rng = np.random.default_rng(seed)
    k, padding = (1, 0) if shape == "pointwise" else (k, min(padding, k // 2))
    groups, o = (c, c) if shape == "depthwise" else (1, o)
    assume(min(h + 2 * padding - k, w + 2 * padding - k) >= 0)
    model = nn.Sequential(_conv(rng, c, o, k, stride, padding, groups, prune), act()).eval()
    bundle = build_bundle(model, tmp_path_factory.mktemp("layer"), (c, h, w), batch=batch)
    x = torch.from_numpy(rng.standard_normal((batch, c, h, w)).astype(np.float32))
    y, times = bundle.run_emulated(x)
    assert rel_err(y.numpy(), model(x).detach().numpy()) < 1e-4
    assert times["reps"] == 1 and [s["name"] for s in times["steps"]] == list(bundle.steps)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet50", "mobilenet_v2"])
def test_whole_cifar_networks_under_qemu_match_pytorch(name: str) -> None:
    torch.manual_seed(0)
    model = _randomise_bn(_pattern_prune(build_model(name, num_classes=10, input_size=32)))
    bundle = compile(model.eval(), target="arm64", input_shape=(3, 32, 32))
    x = torch.randn(1, 3, 32, 32)
    ref = model(x).detach().numpy()
    assert rel_err(bundle(x).numpy(), ref) < 1e-4
    if name == "mobilenet_v2":   # the same output on 4 threads (OpenMP under the emulator)
        y4, times = bundle.run_emulated(x.numpy(), reps=2, threads=4)
        assert rel_err(y4, ref) < 1e-4 and times["threads"] == 4 and len(times["total_ms"]) == 2


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Bundle]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 5)).eval()
    return model, build_bundle(model, tmp_path_factory.mktemp("small"), (3, 8, 8))


def _run(bundle: Bundle, tmp: Path, weights: Path | None = None, input_bytes: bytes | None = None,
         extra: list[str] | None = None) -> subprocess.CompletedProcess:
    inp = tmp / "in.bin"
    inp.write_bytes(input_bytes if input_bytes is not None else bytes(4 * 3 * 8 * 8))
    cmd = bundle.command(str(inp), str(tmp / "out.bin"), 1, 1)
    if weights is not None:
        cmd[1] = str(weights)
    if extra is not None:
        cmd = cmd[:4] + extra
    return subprocess.run([qemu(), *cmd], capture_output=True, text=True, timeout=120)


def test_the_bundle_is_one_static_executable_and_a_weights_file(
        small_bundle: tuple[nn.Module, Bundle]) -> None:
    model, bundle = small_bundle
    assert sorted(p.name for p in bundle.folder.iterdir()) == [
        "bundle.json", "wb_bundle", "weights.bin"]
    head = bundle.executable.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[18] == 183          # EM_AARCH64
    if shutil.which("file"):
        desc = subprocess.run(["file", str(bundle.executable)], capture_output=True,
                              text=True).stdout
        assert "statically linked" in desc or "static-pie" in desc
    x = torch.randn(1, 3, 8, 8)
    assert rel_err(bundle(x).numpy(), model(x).detach().numpy()) < 1e-4
    assert Bundle.load(bundle.folder) == bundle


@pytest.mark.parametrize("damage,message", [
    (lambda b: b"XXXXXXXX" + b[8:], "bad magic"),
    (lambda b: b[:8] + b"\x02" + b[9:], "version 2"),
    (lambda b: b[:16] + bytes([b[16] ^ 1]) + b[17:], "another program"),
    (lambda b: b[:-100], "bytes, expected"),
    (lambda b: b[:-9] + bytes([b[-9] ^ 0x10]) + b[-8:], "checksum mismatch"),
    (lambda b: b[:10], "bad magic")])
def test_a_damaged_or_foreign_weights_file_is_refused(small_bundle: tuple[nn.Module, Bundle],
                                                      tmp_path: Path, damage, message: str
                                                      ) -> None:
    _, bundle = small_bundle
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage(bundle.weights.read_bytes()))
    res = _run(bundle, tmp_path, weights=bad)
    assert res.returncode == 3 and message in res.stderr
    assert not (tmp_path / "out.bin").exists()


def test_a_wrong_input_or_command_line_is_refused(small_bundle: tuple[nn.Module, Bundle],
                                                  tmp_path: Path) -> None:
    _, bundle = small_bundle
    res = _run(bundle, tmp_path, input_bytes=bytes(10))
    assert res.returncode == 4 and "the input is 192 floats" in res.stderr
    assert _run(bundle, tmp_path, extra=["0"]).returncode == 2
    assert "THREADS" in _run(bundle, tmp_path, extra=["1", "x"]).stderr
    assert _run(bundle, tmp_path, weights=tmp_path / "missing.bin").returncode == 5
    with pytest.raises(ValueError, match="takes input"):
        bundle.run_emulated(np.zeros((2, 3, 8, 8), np.float32))


def test_weights_of_another_model_are_refused(small_bundle: tuple[nn.Module, Bundle],
                                              tmp_path: Path) -> None:
    _, bundle = small_bundle
    other = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU()).eval()
    foreign = build_bundle(other, tmp_path / "other", (3, 8, 8))
    res = _run(bundle, tmp_path, weights=foreign.weights)
    assert res.returncode == 3 and "another program" in res.stderr
    # through the Python side: the bundle's own error, with the bundle's message
    copy = tmp_path / "copy"
    shutil.copytree(bundle.folder, copy)
    shutil.copy(foreign.weights, copy / "weights.bin")
    with pytest.raises(BundleRunError, match="exited 3.*another program"):
        Bundle.load(copy).run_emulated(np.zeros((1, 3, 8, 8), np.float32))


def test_a_step_that_runs_in_python_is_refused_by_name() -> None:
    # a non-global average pool runs as a Numba kernel in the C plan: no C for the bundle
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AvgPool2d(3, 1, 1)).eval()
    with pytest.raises(ExportError, match=r"run in Python.*avgpool2d"):
        export_plan(model, (3, 8, 8))


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
def test_nan_and_inf_land_where_pytorch_puts_them_on_arm64(act: type,
                                                           tmp_path: Path) -> None:
    # the NEON build of the same C: ReLU keeps a NaN, a max pool window holding one is NaN
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act(), nn.MaxPool2d(2)).eval()
    x = torch.randn(1, 3, 8, 8)
    x[0, 1, 3, 3], x[0, 2, 6, 1], x[0, 0, 0, 7] = float("nan"), float("inf"), float("-inf")
    y = build_bundle(model, tmp_path, (3, 8, 8))(x)
    ref = model(x).detach()
    assert int(ref.isnan().sum()) > 0
    assert torch.equal(y.isnan(), ref.isnan()) and torch.equal(y.isinf(), ref.isinf())
    assert torch.allclose(y.nan_to_num(), ref.nan_to_num(), atol=1e-5)


@pytest.mark.parametrize("scheme,format_", [("block", "rowblock format"), ("irregular", "csr format")])
def test_pruned_classifiers_run_in_their_sparse_format_under_qemu(
        scheme: str, format_: str, tmp_path: Path) -> None:
    from ..c.test_linear import _classifier
    model = _classifier(scheme)
    prog = export_plan(model, (3, 4, 4), batch=2)
    headers = [src.splitlines()[0] for sym, src in prog.kernels if sym == "wb_linear"]
    assert [format_ in h for h in headers] == [True, True, False]    # the head stays dense
    assert "dense format" in headers[2]
    bundle = build_bundle(model, tmp_path, (3, 4, 4), batch=2)
    x = torch.randn(2, 3, 4, 4)
    assert rel_err(bundle(x).numpy(), model(x).detach().numpy()) < 1e-4


@pytest.mark.parametrize("name,shape", [("wdsr", (3, 9, 7)), ("colornet", (1, 16, 8)),
                                        ("transformer_net", (3, 8, 12))])
def test_the_demo_apps_run_under_qemu_and_match_pytorch(name: str, shape: tuple[int, ...],
                                                        tmp_path: Path) -> None:
    # pixel shuffle, upsampling, instance norm, concat, broadcast, tanh, sigmoid as NEON C
    from workbench.models.image_to_image import build_app_model
    torch.manual_seed(5)
    small = {"wdsr": {"channels": 8, "blocks": 1}, "colornet": {"width": 8, "global_dim": 8},
             "transformer_net": {"width": 8, "blocks": 1}}[name]
    model = build_app_model(name, **small).eval()
    bundle = build_bundle(model, tmp_path, shape)
    x = torch.rand(1, *shape)
    y, _ = bundle.run_emulated(x)
    assert rel_err(y.numpy(), model(x).detach().numpy()) < 1e-4


@pytest.mark.parametrize("stride", [1, 2])
def test_a_column_pruned_layer_runs_the_column_kernel_under_qemu(stride: int,
                                                                 tmp_path: Path) -> None:
    from ..helpers import column_pruned
    rng = np.random.default_rng(stride)
    conv = nn.Conv2d(8, 6, 3, stride, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(column_pruned(rng, 6, 8, 3, 0.3, empty_channel=True)))
    model = nn.Sequential(conv, nn.ReLU()).eval()
    prog = export_plan(model, (8, 9, 13), batch=2)
    assert any("column kernel" in src.splitlines()[0] for _, src in prog.kernels)
    bundle = build_bundle(model, tmp_path, (8, 9, 13), batch=2)
    x = torch.randn(2, 8, 9, 13)
    assert rel_err(bundle(x).numpy(), model(x).detach().numpy()) < 1e-5
