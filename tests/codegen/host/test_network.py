"""compile(): whole networks against PyTorch, per-layer times, memory, save/load, library off."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.codegen import LR
from workbench.codegen.frontend_torch import from_torch
from workbench.codegen.host.network import CompiledNetwork
from workbench.codegen.targets import compile

from ..helpers import PATTERNS8, pattern_pruned, rel_err
from ..test_frontend_torch import _randomise_bn

pytestmark = pytest.mark.needs_numba


def _pattern_prune(model: nn.Module, seed: int = 0) -> nn.Module:
    """PatDNN-style masks on every 3x3 dense conv (8 patterns, 30% of kernels kept)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1:
                mask = pattern_pruned(rng, m.out_channels, m.in_channels, 0.3, PATTERNS8) != 0
                m.weight.mul_(torch.from_numpy(mask))
    return model


def _check(model: nn.Module, shape: tuple[int, int, int], batch: int = 2, **kw) -> None:
    model = _randomise_bn(model)
    net = compile(model, input_shape=shape, **kw)
    x = torch.randn(batch, *shape)
    y = net(x)
    ref = model(x).detach()
    assert isinstance(y, torch.Tensor) and y.shape == ref.shape
    assert rel_err(y.numpy(), ref.numpy()) < 1e-4


def test_tiny_cnn_end_to_end(tiny_cnn: nn.Module) -> None:
    _check(_pattern_prune(tiny_cnn), (3, 8, 8))


def test_generated_code_only(tiny_cnn: nn.Module) -> None:
    _check(_pattern_prune(tiny_cnn), (3, 8, 8), library=False)


def test_per_layer_time_and_memory(tiny_cnn: nn.Module) -> None:
    net = compile(_pattern_prune(tiny_cnn), input_shape=(3, 8, 8))
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    y = net(x)
    assert isinstance(y, np.ndarray) and y.shape == (1, 10)
    assert list(net.last_times) == [l.name for l in net.lr.layers]
    rows = net.profile(x, warmup=1, repeats=2)
    assert [r["layer"] for r in rows] == list(net.last_times)
    assert all(r["ms"] >= 0 for r in rows)
    mem = net.memory(batch=1, measure_with=x)
    assert mem["weights_bytes"] > 0 and mem["activations_peak_bytes"] >= 4 * 3 * 8 * 8
    assert mem["measured_peak_bytes"] > 0
    with pytest.raises(ValueError, match=r"expected input \(N, 3, 8, 8\)"):
        net(np.zeros((1, 3, 9, 9), np.float32))


def test_saved_lr_compiles_to_the_same_network(tiny_cnn: nn.Module, tmp_path: Path) -> None:
    model = _randomise_bn(_pattern_prune(tiny_cnn))
    path, _ = from_torch(model, (3, 8, 8)).save(tmp_path / "tiny.json")
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(compile(path)(x), compile(LR.load(path))(x))
    assert rel_err(compile(path)(x), model(torch.from_numpy(x)).detach().numpy()) < 1e-4


def test_small_cnn_zoo_model() -> None:
    from workbench.models import build_model
    _check(_pattern_prune(build_model("small_cnn", 10, 8).eval()), (3, 8, 8))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_cifar_networks(name: str) -> None:
    from workbench.models import build_model
    _check(_pattern_prune(build_model(name, 10, 32).eval()), (3, 32, 32), batch=1)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("vgg16", 32), ("resnet50", 32), ("vgg16", 224),
                                       ("resnet50", 224), ("mobilenet_v2", 224)])
def test_zoo_networks(name: str, size: int) -> None:
    from workbench.models import build_model
    _check(_pattern_prune(build_model(name, 10, size).eval()), (3, size, size), batch=1)


@pytest.mark.needs_cc
@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "mobilenet_v2"])
def test_c_emitter_networks(name: str) -> None:
    from workbench.models import build_model
    size = 8 if name == "small_cnn" else 32
    _check(_pattern_prune(build_model(name, 10, size).eval()), (3, size, size),
           emitter="c")


@pytest.mark.needs_cc
@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("vgg16", 32), ("resnet50", 32), ("vgg16", 224),
                                       ("resnet50", 224), ("mobilenet_v2", 224)])
def test_c_emitter_zoo_networks(name: str, size: int) -> None:
    from workbench.models import build_model
    _check(_pattern_prune(build_model(name, 10, size).eval()), (3, size, size), batch=1,
           emitter="c")


@pytest.mark.needs_cc
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_c_emitter_networks_on_the_taps_kernel(name: str) -> None:
    """Every conv on the taps kernel (stride 2 and 1x1 layers keep their own kernels): the
    runtime's bordered layouts and shared buffers hold the partial sums between blocks."""
    from workbench.codegen import Schedule
    from workbench.models import build_model
    model = _randomise_bn(_pattern_prune(build_model(name, 10, 32).eval()))
    lr = from_torch(model, (3, 32, 32))
    taps = {l.name: Schedule(kernel="taps", cblock=8, tile_h=3, tile_w=3)
            for l in lr.layers if l.op == "conv2d"}
    net = compile(lr, emitter="c", schedules=taps)
    x = torch.randn(1, 3, 32, 32)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-4


@pytest.mark.needs_cc
@pytest.mark.parametrize("tile_h,tile_w,threads", [(16, 1, 2), (1, 3, 1)])
def test_c_emitter_mobilenet_on_the_depthwise_kernel(tile_h: int, tile_w: int, threads: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every depthwise conv on the depthwise kernel with non-default tiles, at 64x64 (planes
    of 32 .. 2 pixels: whole-plane stores where rows are narrower than a vector), batch 2;
    nothing channel-blocked (the blocked kernels would take the small planes)."""
    from workbench.codegen import Schedule
    monkeypatch.setenv("WORKBENCH_BLOCKED_PIXELS", "0")
    from workbench.codegen.ir import is_depthwise_layer
    from workbench.models import build_model
    model = _randomise_bn(_pattern_prune(build_model("mobilenet_v2", 10, 64).eval()))
    lr = from_torch(model, (3, 64, 64))
    dw = {l.name: Schedule(kernel="depthwise", tile_h=tile_h, tile_w=tile_w, threads=threads)
          for l in lr.layers if l.op == "conv2d" and is_depthwise_layer(l)}
    assert len(dw) == 17
    net = compile(lr, emitter="c", schedules=dw)
    assert all("depthwise kernel" in s.compiled.source for s in net.steps
               if s.layer.name in dw)
    x = torch.randn(2, 3, 64, 64)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-4


class _Residual(nn.Module):
    """A bottleneck: stem -> 1x1 -> 3x3 -> 1x1 (no activation) + stem -> relu; with `side`, a
    3x3 conv of the stem added on top (the stem is then read by a 3x3 conv: a bordered
    layout, not the output's plain one)."""

    def __init__(self, side: bool) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.reduce = nn.Conv2d(8, 4, 1)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.proj = nn.Conv2d(4, 8, 1)
        self.side = nn.Conv2d(8, 8, 3, padding=1) if side else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        y = torch.relu(self.proj(torch.relu(self.mid(torch.relu(self.reduce(s))))) + s)
        return y + self.side(s) if self.side is not None else y


@pytest.mark.needs_cc
@pytest.mark.parametrize("side", [False, True])
def test_c_plan_fuses_residual_adds_into_the_gemm(side: bool) -> None:
    model = _Residual(side).eval()
    net = compile(model, input_shape=(3, 9, 11), emitter="c")
    fused = [s for s in net.plan.steps if s.layer.attrs.get("fused")]
    assert len(fused) == 1 and fused[0].layer.op == "conv2d"
    assert fused[0].layer.attrs["act"] == "relu" and len(fused[0].layer.inputs) == 2
    # the stem read by 3x3 convs has a bordered layout: the residual is copied into the
    # output's layout first
    assert bool(fused[0].copies) == side
    assert "residual add fused" in fused[0].compiled.source
    x = torch.randn(2, 3, 9, 11)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-5
    # the add left in the plan (side) is not fused: a 3x3 conv's output is one operand
    assert sum(s.layer.op == "add" for s in net.plan.steps) == int(side)


@pytest.mark.needs_cc
def test_c_plan_keeps_the_add_where_the_1x1_is_not_on_the_gemm() -> None:
    from workbench.codegen import Schedule
    model = _Residual(False).eval()
    lr = from_torch(model, (3, 9, 11))
    proj = next(l.name for l in lr.layers if l.op == "conv2d" and
                l.attrs.get("source", l.name).endswith("proj"))
    net = compile(lr, emitter="c", schedules={proj: Schedule(kernel="pattern")})
    assert not any(s.layer.attrs.get("fused") for s in net.plan.steps)
    x = torch.randn(1, 3, 9, 11)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-5


class _Narrow(nn.Module):
    """Stride-2 3x3 from 14x14 to 7x7, a 7x7 3x3, a 1x1 with the residual add: every output
    row 7 wide, every plane 49 pixels (narrow_vector's case on a 16-float host)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.proj = nn.Conv2d(16, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.down(x))
        return torch.relu(self.proj(torch.relu(self.mid(y))) + y)


@pytest.mark.needs_cc
@pytest.mark.parametrize("kernel", ["pattern", "taps", "pblock"])
def test_c_plan_runs_8_float_kernels_in_16_float_layouts(monkeypatch: pytest.MonkeyPatch,
                                                        kernel: str) -> None:
    from workbench.codegen import Schedule
    from workbench.codegen.schedule import gemm_default_schedule
    monkeypatch.setenv("WORKBENCH_VECTOR", "16")
    model = _pattern_prune(_Narrow()).eval()
    lr = from_torch(model, (8, 14, 14))
    convs = {l.attrs["source"]: l.name for l in lr.layers if l.op == "conv2d"}
    three = Schedule(kernel=kernel, tile_h=2, tile_w=2, cblock=8 if kernel != "pattern" else 0,
                     vector=8)
    sched = {convs["down"]: three.with_(kernel="taps" if kernel == "pblock" else kernel),
             convs["mid"]: three, convs["proj"]: gemm_default_schedule(16).with_(vector=8)}
    net = compile(lr, emitter="c", schedules=sched)
    assert net.plan.vector == 16
    kernels = [s.compiled for s in net.plan.steps if s.compiled]
    assert len(kernels) == 3 and all("#define VW 8\n" in k.source for k in kernels)
    x = torch.randn(2, 8, 14, 14)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-5


@pytest.mark.needs_cc
def test_c_plan_runs_bound_steps_through_the_driver() -> None:
    from workbench.codegen.host.driver import BoundCalls
    from workbench.codegen.host.plan import CStep
    from workbench.models import build_model
    model = _randomise_bn(_pattern_prune(build_model("resnet18", 10, 32).eval()))
    net = compile(model, input_shape=(3, 32, 32), emitter="c")
    plan = net.plan
    # the residuals of the downsampling blocks are held in the fused GEMM's output layout:
    # only the stride-2 phase splits are copies
    assert all(c.endswith("\0in") for s in plan.steps for c in s.copies)
    for batch in (2, 1):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        y = net(x)
        runs = plan._runs(plan.buffers(batch), batch)
        driven = [r for r in runs if not isinstance(r, CStep)]
        # every step binds (convs with their stride-2 phase splits, adds, pools, flatten and
        # the linear layer): the whole network is one driver call
        assert len(runs) == len(driven) == 1 and isinstance(driven[0][0], BoundCalls)
        python = [r.layer.op for r in runs if isinstance(r, CStep)]
        assert python == [], python
        assert list(net.last_times) == [s.layer.name for s in plan.steps]
        assert all(t >= 0 for t in net.last_times.values())
        # the same steps called one by one from Python give the same bits (each after the
        # clearing of the borders it writes into: other values were in the arena there)
        bufs = plan.buffers(batch)
        plan.layouts[net.lr.layers[0].inputs[0]].write(bufs[net.lr.layers[0].inputs[0]], x)
        for i, step in enumerate(plan.steps):
            for fn, args in plan._clear_calls(i, batch, 1):
                fn(*args)
            step.run(bufs, batch)
        (out,) = net.lr.outputs
        np.testing.assert_array_equal(y, plan._builder.view(bufs, out, batch))
        assert rel_err(y, model(torch.from_numpy(x)).detach().numpy()) < 1e-4


@pytest.mark.needs_cc
@pytest.mark.parametrize("stride", [1, 2])
def test_c_plan_copies_the_input_in_and_hands_out_plain_outputs(stride: int) -> None:
    # the input is copied into the first conv's layout by a C kernel (bordered at stride 1;
    # plain at stride 2, where the conv's step splits it into phases); the plain output is written straight into a new array per
    # call, also where its slot held an earlier value of the same layout (the 3x3's output)
    torch.manual_seed(stride)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, stride, 1), nn.ReLU(), nn.Conv2d(8, 16, 1),
                          nn.ReLU(), nn.Conv2d(16, 8, 1)).eval()
    net = compile(model, input_shape=(8, 12, 12), emitter="c")
    plan = net.plan
    (x_name,), (out,) = plan.lr.inputs, plan.lr.outputs
    first = plan.lr.layers[0].name
    assert plan.layouts[x_name].dense == (stride == 2)
    assert plan._slots[out] == plan._slots[first] and out in plan._handed_out
    xs = [torch.randn(2, 8, 12, 12) for _ in range(3)]
    ys = [net(x) for x in xs]
    for x, y in zip(xs, ys):
        assert rel_err(y.numpy(), model(x).detach().numpy()) < 1e-5
    assert not np.shares_memory(ys[0].numpy(), ys[1].numpy())
    assert not any(np.shares_memory(y.numpy(), b) for y in ys for b in plan.buffers(2).values())


class _InvertedResidual(nn.Module):
    """MobileNet-V2's block: 1x1 expand, 3x3 depthwise, 1x1 project (+ input at stride 1)."""

    def __init__(self, c: int, o: int, stride: int) -> None:
        super().__init__()
        e = 6 * c
        self.body = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU6(),
                                  nn.Conv2d(e, e, 3, stride, 1, groups=e, bias=False),
                                  nn.BatchNorm2d(e), nn.ReLU6(),
                                  nn.Conv2d(e, o, 1, bias=False), nn.BatchNorm2d(o))
        self.skip = stride == 1 and c == o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.skip else self.body(x)


@pytest.mark.needs_cc
def test_c_plan_holds_small_mobilenet_blocks_channel_blocked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the stem's output (made by a 3x3 dense conv) stays plain: the first block's expansion
    # reads it in place, its fused projection gets it copied into blocks as the residual;
    # every value after it is blocked, down to the global pool
    torch.manual_seed(0)
    model = _small_mobilenet()
    x = torch.randn(2, 3, 13, 11)
    ref = model(x).detach().numpy()
    net = compile(model, input_shape=(3, 13, 11), emitter="c")
    plan = net.plan
    convs = [lay for lay in plan.lr.layers if lay.op == "conv2d"]
    assert {lay.name for lay in convs[1:]} <= plan.blocked
    assert convs[0].name not in plan.blocked
    assert all(plan.layouts[v].cb == plan.vector for v in plan.blocked)
    assert [len(s.copies) for s in plan.steps if s.copies] == [1]
    assert rel_err(net(x).numpy(), ref) < 1e-4
    # three calls in a row, the driver's bound calls: still right
    assert rel_err(net(x).numpy(), ref) < 1e-4
    monkeypatch.setenv("WORKBENCH_BLOCKED_PIXELS", "0")
    plain = compile(model, input_shape=(3, 13, 11), emitter="c")
    assert not plain.plan.blocked
    assert rel_err(plain(x).numpy(), ref) < 1e-4


@pytest.mark.needs_cc
@pytest.mark.parametrize("batch", [1, 2])
def test_c_plan_fuses_large_expansions_with_their_depthwise_convs(
        monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    # with the size limit at 0 every block's expansion is fused with its depthwise conv
    # (stride 1 and 2, with and without a residual after it); the fused step carries the
    # depthwise conv's name, and the small planes are then no longer blocked
    torch.manual_seed(0)
    model = _small_mobilenet().eval()
    x = torch.randn(batch, 3, 13, 11)
    ref = model(x).detach().numpy()
    monkeypatch.setenv("WORKBENCH_FUSE_MIN_BYTES", "0")
    net = compile(model, input_shape=(3, 13, 11), emitter="c")
    fused = [s.layer for s in net.plan.steps if "expand" in s.layer.attrs]
    assert len(fused) == 3
    names = {lay.name for lay in net.lr.layers}
    assert all(set(lay.attrs["fused"]) <= names and lay.name == lay.attrs["fused"][1]
               for lay in fused)
    for _ in range(2):        # the long way, then the short one
        assert rel_err(net(x).numpy(), ref) < 1e-4
    assert set(net.last_times) == {s.layer.name for s in net.plan.steps}
    # the default limit (1 MB per image) leaves these small maps alone
    monkeypatch.delenv("WORKBENCH_FUSE_MIN_BYTES")
    unfused = compile(model, input_shape=(3, 13, 11), emitter="c")
    assert not any("expand" in s.layer.attrs for s in unfused.plan.steps)
    assert len(unfused.plan.steps) == len(net.plan.steps) + 3


class _DepthwiseProject(nn.Module):
    """MobileNet-V2's first block (no expansion): 3x3 depthwise, 1x1 project (+ input)."""

    def __init__(self, c: int, o: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU6(),
                                  nn.Conv2d(c, o, 1, bias=False), nn.BatchNorm2d(o))
        self.skip = stride == 1 and c == o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.skip else self.body(x)


@pytest.mark.needs_cc
@pytest.mark.parametrize("batch", [1, 2])
def test_c_plan_fuses_large_depthwise_convs_with_their_projections(
        monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    # blocks without an expansion: the depthwise conv runs fused with the 1x1 projection
    # (stride 1 with the residual add fused too, reading the stem's bordered output, and
    # stride 2); the fused step carries the projection's name (the add's, where fused)
    torch.manual_seed(0)
    model = _randomise_bn(nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU6(), _DepthwiseProject(16, 16, 1),
        _DepthwiseProject(16, 24, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(24, 10))).eval()
    x = torch.randn(batch, 3, 13, 11)
    ref = model(x).detach().numpy()
    monkeypatch.setenv("WORKBENCH_FUSE_MIN_BYTES", "0")
    net = compile(model, input_shape=(3, 13, 11), emitter="c")
    fused = [s.layer for s in net.plan.steps if "depthwise" in s.layer.attrs]
    assert len(fused) == 2 and len(net.plan.steps) == 6   # stem, 2 fused, pool, flatten, fc
    assert len(fused[0].inputs) == 2          # the first block's residual
    names = {lay.name for lay in net.lr.layers}
    assert all(set(lay.attrs["fused"]) <= names and lay.name == lay.attrs["fused"][-1]
               for lay in fused)
    for _ in range(2):
        assert rel_err(net(x).numpy(), ref) < 1e-4
    monkeypatch.delenv("WORKBENCH_FUSE_MIN_BYTES")
    unfused = compile(model, input_shape=(3, 13, 11), emitter="c")
    assert not any("depthwise" in s.layer.attrs for s in unfused.plan.steps)
    assert rel_err(unfused(x).numpy(), ref) < 1e-4


@pytest.mark.needs_cc
def test_c_plan_keeps_values_read_by_dense_convs_and_lone_1x1s_plain() -> None:
    # the first 1x1's output feeds a 3x3 dense conv (no blocked kernel); the last 1x1 would
    # be a lone blocked conv before the pool, its input copied in for one layer: nothing is
    # blocked (ResNet-50 stays as it was)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1),
                          nn.ReLU(), nn.Conv2d(32, 32, 1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten()).eval()
    net = compile(model, input_shape=(16, 8, 8), emitter="c")
    assert not net.plan.blocked
    x = torch.randn(1, 16, 8, 8)
    assert rel_err(net(x).numpy(), model(x).detach().numpy()) < 1e-4


def _small_mobilenet() -> nn.Module:
    return _randomise_bn(nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU6(), _InvertedResidual(16, 16, 1),
        _InvertedResidual(16, 32, 2), _InvertedResidual(32, 32, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)))


def _compiled_small_mobilenet() -> tuple[nn.Module, CompiledNetwork]:
    """(_small_mobilenet in eval mode, seeded, and its C-compiled network on 3 x 13 x 11)."""
    torch.manual_seed(0)
    model = _small_mobilenet().eval()
    return model, compile(model, input_shape=(3, 13, 11), emitter="c")


@pytest.mark.needs_cc
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("make", [_small_mobilenet, lambda: _Residual(side=True).eval()],
                         ids=["mobilenet", "bottleneck"])
def test_c_plan_shares_one_arena_between_slots_live_at_different_steps(
        make: Callable[[], nn.Module], batch: int) -> None:
    # slots without borders share memory where their live steps do not meet; garbage left
    # in the arena by other slots (NaN here) must not reach the result
    torch.manual_seed(0)
    model = make()
    x = torch.randn(batch, 3, 13, 11)
    ref = model(x).detach().numpy()
    net = compile(model, input_shape=(3, 13, 11), emitter="c")
    plan = net.plan
    bufs = plan.buffers(batch)
    span = {s: (bufs[v].ctypes.data, bufs[v].ctypes.data + bufs[v].nbytes)
            for v, s in plan._slots.items()}
    shared = plan._arena_offsets()
    assert len(shared) >= 2
    if make is _small_mobilenet:   # its blocked values are tight, and die one after another
        assert plan.allocated_bytes(batch) < sum(4 * batch * lay.image
                                                 for lay in plan.slot_layouts)
    for s, (lo, hi) in span.items():
        for t, (lo2, hi2) in span.items():
            live_together = plan.slot_live[s][0] <= plan.slot_live[t][1] and \
                plan.slot_live[t][0] <= plan.slot_live[s][1]
            if s != t and (live_together or s not in shared or t not in shared):
                assert hi <= lo2 or hi2 <= lo, (s, t)
    assert plan.arena is not None
    plan.arena[:] = np.nan
    assert rel_err(net(x).numpy(), ref) < 1e-4
    assert rel_err(net(x).numpy(), ref) < 1e-4


@pytest.mark.needs_cc
def test_c_plan_copies_the_input_in_the_driver_call_and_hands_out_flat_outputs() -> None:
    # one driver call per network call: the input copy is its untimed prologue; the logits
    # are written straight into a new array per call, which later calls leave alone
    model, net = _compiled_small_mobilenet()
    plan = net.plan
    xs = [torch.randn(1, 3, 13, 11) for _ in range(2)]
    ys = [net(x).numpy() for x in xs]
    runs = plan._runs(plan.buffers(1), 1)
    assert len(runs) == 1 and runs[0][3] == 1
    (out,) = net.lr.outputs
    assert out in plan._handed_out
    for x, y in zip(xs, ys):
        assert rel_err(y, model(x).detach().numpy()) < 1e-4
    assert list(net.last_times) == [s.layer.name for s in plan.steps]


@pytest.mark.needs_cc
def test_c_plan_short_run_matches_the_long_one() -> None:
    # after a first call on numpy arrays, run() only sets two addresses and makes the driver
    # call; other batch sizes, dtypes and strides go the long way and re-arm it
    model, net = _compiled_small_mobilenet()
    plan = net.plan
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 3, 13, 11)).astype(np.float32) for n in (1, 1, 1, 2, 1)]
    refs = [model(torch.from_numpy(x)).detach().numpy() for x in xs]
    assert plan._fast is None
    ys = [net(xs[0])]
    assert plan._fast is not None and plan._fast.n == 1
    short = plan._fast
    ys.append(net(xs[1]))                          # the short way
    assert plan._fast is short and list(net.last_times) == [s.layer.name for s in plan.steps]
    ys.append(net(xs[2].astype(np.float64)))        # the long way (a copy), same batch
    ys.append(net(xs[3]))                           # batch 2: long, re-armed for 2
    assert plan._fast.n == 2
    ys.append(net(np.asfortranarray(xs[4])))        # not C-contiguous: long
    assert plan._fast.n == 1
    # checked after every call: each call's output is its own array, later calls leave it
    for y, ref in zip(ys, refs):
        assert rel_err(y, ref) < 1e-4
    assert len({y.ctypes.data for y in ys}) == len(ys)


@pytest.mark.needs_cc
def test_c_emitter_mobilenet_fused_kernels_skip_pruned_channels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MobileNet-V2 with its 1x1s pruned as the benchmark prunes them (half the input channels
    per 16 filters) and every expansion / projection fused (a 1-byte fusion threshold): the
    fused kernels visit only kept channels and the network still matches PyTorch."""
    from workbench.bench.codegen_bench import prune_model
    from workbench.codegen.host.fusion import is_fused_expansion, is_fused_projection
    from workbench.models import build_model
    monkeypatch.setenv("WORKBENCH_FUSE_MIN_BYTES", "1")
    model = _randomise_bn(prune_model(build_model("mobilenet_v2", 10, 32).eval()))
    net = compile(model, input_shape=(3, 32, 32), emitter="c")
    assert any(is_fused_expansion(s.layer) for s in net.steps)
    assert any(is_fused_projection(s.layer) for s in net.steps)
    x = torch.randn(1, 3, 32, 32)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-4
