"""The CUDA network: CudaNetwork runs an LR's layers as generated CUDA kernels on torch CUDA
tensors, eagerly or as one captured CUDA graph.

Building it renders every kernel's source and packs every weight (no GPU needed: sources()
and ptx() serve CI); the first call on a GPU compiles CUBINs for the card through NVRTC,
uploads the weights and allocates each intermediate value once per batch size. Values are
NCHW float32 CUDA tensors; the caller's input is read in place and outputs are fresh
tensors (graph mode returns its static output: the next replay overwrites it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.codegen.cuda.conv import (ConvGeometry, GpuWeights, check_schedule, conv_geometry,
                                         effective_ksplit, fit_schedule, launch_dims, pack_gpu, render_conv)
from workbench.codegen.cuda.driver import Kernel, load_kernel
from workbench.codegen.cuda.nvrtc import compile_cuda
from workbench.codegen.cuda.pointwise import is_pointwise, pack_pointwise, render_pointwise
from workbench.codegen.cuda.ops import (THREADS, grid_for, render_act, render_add,
                                        render_global_avgpool, render_linear, render_pool)
from workbench.codegen.cuda.schedule import GpuSchedule, default_gpu_schedule
from workbench.codegen.lr import LR, Layer, LRError
from workbench.codegen.passes import optimize

# ops every network of the zoo needs; the apps' image ops have no CUDA kernels yet
SUPPORTED = ("conv2d", "linear", "add", "maxpool2d", "avgpool2d", "global_avgpool", "flatten",
             "act")


@dataclass
class CudaStep:
    """One layer: its kernel sources (name -> CUDA C), the weights it uploads, and run()."""
    layer: Layer
    sources: dict[str, str]
    arrays: dict[str, np.ndarray]
    run: Callable[["CudaStep", list[Any], Any, int], None]
    fmas: int = 0
    schedule: GpuSchedule | None = None
    geometry: ConvGeometry | None = None
    kernels: dict[str, Kernel] = field(default_factory=dict)
    tensors: dict[str, Any] = field(default_factory=dict)


def conv_fmas(layer: Layer, g: ConvGeometry) -> int:
    """Useful multiply-adds per image of a conv (kept weights x output pixels)."""
    return int((np.asarray(layer.params["weight"]) != 0).sum()) * g.ho * g.wo


def conv_step(layer: Layer, in_shape: tuple[int, ...], sched: GpuSchedule | None) -> CudaStep:
    """The step of one conv: packed weights, its kernel (and the act pass of a split sum)."""
    g = conv_geometry(layer, in_shape)
    s = sched or fit_schedule(g, default_gpu_schedule(g.og, g.ho, g.wo, g.kh, g.kw, g.cg,
                                                      (g.kh, g.kw) == (1, 1)))
    check_schedule(g, s)
    if is_pointwise(g):
        pw = pack_pointwise(layer, s.tile_f, s.cblock)
        sources = {"wb_conv": render_pointwise(g, s)}
        arrays = {"ptr": pw.blk_ptr, "idx": pw.chan if pw.chan.size else np.zeros(1, np.int32),
                  "wts": pw.wts if pw.wts.size else np.zeros((1, s.tile_f), np.float32),
                  "order": pw.order, "bias": pw.bias}
    else:
        wts: GpuWeights = pack_gpu(layer, s.tile_f)
        sources = {"wb_conv": render_conv(g, s, wts.patterns)}
        arrays = {"ptr": wts.chan_ptr, "idx": wts.code if wts.code.size else np.zeros(1, np.int32),
                  "wts": wts.wts if wts.wts.size else np.zeros((1, 4), np.float32),
                  "order": wts.order, "bias": wts.bias}
    split = effective_ksplit(g, s) > 1
    if split and g.act != "none":
        sources["wb_act"] = render_act(g.act, g.o * g.ho * g.wo)

    def run(step: CudaStep, xs: list[Any], y: Any, n: int) -> None:
        t, k = step.tensors, step.kernels
        if split:
            y.zero_()
        grid, block = launch_dims(g, s, n)
        k["wb_conv"].launch(grid, block, [xs[0], y, t["ptr"], t["idx"], t["wts"],
                                          t["order"], t["bias"]])
        if "wb_act" in k:
            k["wb_act"].launch((grid_for(n * g.o * g.ho * g.wo), 1, 1), (THREADS, 1, 1),
                               [y, y, n])
    return CudaStep(layer, sources, arrays, run, conv_fmas(layer, g), s, g)


def _elementwise(layer: Layer, sources: dict[str, str], per_image: int,
                 args: Callable[[list[Any], Any, int], list[Any]],
                 items: Callable[[int], int] | None = None) -> CudaStep:
    (kname,) = sources

    def run(step: CudaStep, xs: list[Any], y: Any, n: int) -> None:
        total = items(n) if items else n * per_image
        step.kernels[kname].launch((grid_for(total), 1, 1), (THREADS, 1, 1),
                                   args(xs, y, n))
    return CudaStep(layer, sources, {}, run)


def layer_step(layer: Layer, shapes: dict[str, tuple[int, ...]],
               schedules: dict[str, GpuSchedule]) -> CudaStep | None:
    """The step of one layer (None for a view: flatten), or LRError naming an op the CUDA
    target has no kernel for."""
    op, a = layer.op, layer.attrs
    out = shapes[layer.name]
    size = int(np.prod(out))
    ins = [shapes[v] for v in layer.inputs]
    if op == "conv2d":
        return conv_step(layer, ins[0], schedules.get(layer.name))
    if op == "linear":
        c, o = int(a["in_features"]), int(a["out_features"])
        src = {"wb_linear": render_linear(c, o, a["act"])}
        bias = np.asarray(layer.params.get("bias", np.zeros(o)), np.float32)

        def run(step: CudaStep, xs: list[Any], y: Any, n: int) -> None:
            step.kernels["wb_linear"].launch((grid_for(o * 32), 1, 1), (THREADS, 1, 1),
                                             [xs[0], step.tensors["w"], step.tensors["bias"], y, n])
        return CudaStep(layer, src, {"w": np.asarray(layer.params["weight"], np.float32),
                                     "bias": bias}, run, c * o)
    if op in ("maxpool2d", "avgpool2d"):
        c, h, w = ins[0]
        return _elementwise(layer, {"wb_pool": render_pool(layer, c, h, w, out[1], out[2])},
                            size, lambda xs, y, n: [xs[0], y, n])
    if op == "global_avgpool":
        c, h, w = ins[0]
        return _elementwise(layer, {"wb_gap": render_global_avgpool(h * w)}, c,
                            lambda xs, y, n: [xs[0], y, n * c], items=lambda n: n * c * 32)
    if op == "add":
        return _elementwise(layer, {"wb_add": render_add(a["act"], size)}, size,
                            lambda xs, y, n: [xs[0], xs[1], y, n])
    if op == "act":
        return _elementwise(layer, {"wb_act": render_act(a["act"], size)}, size,
                            lambda xs, y, n: [xs[0], y, n])
    if op == "flatten":
        return None
    raise LRError(f"layer {layer.name!r}: op {op!r} has no CUDA kernel (the CUDA target "
                  f"runs {', '.join(SUPPORTED)})")


class CudaNetwork:
    """An LR compiled for the GPU: net(x) on an (N, C, H, W) float32 CUDA tensor.

    schedules: layer name -> GpuSchedule (a tuned one), else each conv's default."""

    def __init__(self, lr: LR, schedules: dict[str, GpuSchedule] | None = None) -> None:
        self.lr = optimize(lr)
        self.lr.validate()
        self.shapes = self.lr.shapes()
        (shape,) = self.lr.inputs.values()
        self.input_shape = tuple(int(d) for d in shape)
        self.schedules = dict(schedules or {})
        self.steps: list[tuple[Layer, CudaStep | None]] = [
            (layer, layer_step(layer, self.shapes, self.schedules)) for layer in self.lr.layers]
        self._ready = False
        self._buffers: dict[int, dict[str, Any]] = {}
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}

    # --- without a GPU ------------------------------------------------------------------------
    def sources(self) -> dict[str, str]:
        """'layer/kernel' -> CUDA source of every kernel of the network."""
        return {f"{layer.name}/{k}": src for layer, st in self.steps if st
                for k, src in st.sources.items()}

    def ptx(self, arch: str = "compute_90") -> dict[str, bytes]:
        """'layer/kernel' -> PTX of every kernel (NVRTC; no GPU needed)."""
        return {k: compile_cuda(src, arch) for k, src in self.sources().items()}

    def weights_bytes(self) -> int:
        """Bytes of weights the GPU holds (packed convs, dense linears, biases)."""
        return int(sum(a.nbytes for _, st in self.steps if st for a in st.arrays.values()))

    # --- on the GPU ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        import torch
        if self._ready:
            return
        for _, st in self.steps:
            if st is None:
                continue
            st.kernels = {k: load_kernel(src, k) for k, src in st.sources.items()}
            st.tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).cuda()
                          for k, v in st.arrays.items()}
        self._ready = True

    def _buffers_for(self, n: int) -> dict[str, Any]:
        import torch
        if n not in self._buffers:
            self._buffers[n] = {layer.name: torch.empty((n, *self.shapes[layer.name]),
                                                        device="cuda", dtype=torch.float32)
                                for layer, st in self.steps if st is not None}
        return self._buffers[n]

    def _check_input(self, x: Any) -> None:
        import torch
        if not isinstance(x, torch.Tensor) or not x.is_cuda or x.dtype != torch.float32:
            raise TypeError("the CUDA network takes a float32 CUDA tensor")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected input (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")

    def _run(self, x: Any, events: list[Any] | None = None) -> list[Any]:
        """Launch every step on torch's current stream; the outputs (buffers, not copies)."""
        n = int(x.shape[0])
        bufs = self._buffers_for(n)
        (name,) = self.lr.inputs
        vals: dict[str, Any] = {name: x.contiguous()}
        for layer, st in self.steps:
            ins = [vals[v] for v in layer.inputs]
            if st is None:   # flatten: a view
                vals[layer.name] = ins[0].reshape(n, -1)
                continue
            y = bufs[layer.name]
            st.run(st, ins, y, n)
            vals[layer.name] = y
            if events is not None:
                import torch
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                events.append(ev)
        return [vals[o] for o in self.lr.outputs]

    def __call__(self, x: Any) -> Any:
        """Run eagerly: x (N, C, H, W) float32 CUDA tensor -> output(s), fresh tensors."""
        self._check_input(x)
        self._prepare()
        outs = [o.clone() for o in self._run(x)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def graph(self, x: Any) -> Any:
        """Run as one CUDA graph (captured on the first call per batch size): x is copied into
        the graph's input; the output is the graph's own tensor, overwritten by the next call."""
        import torch
        self._check_input(x)
        self._prepare()
        n = int(x.shape[0])
        if n not in self._graphs:
            static = torch.zeros_like(x)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._run(static)          # warm up: loads, allocations, first launches
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                outs = self._run(static)
            self._graphs[n] = (g, static, outs)
        g, static, outs = self._graphs[n]
        static.copy_(x)
        g.replay()
        return outs[0] if len(outs) == 1 else tuple(outs)

    def profile(self, x: Any, warmup: int = 3, repeats: int = 20) -> list[dict[str, Any]]:
        """Median CUDA-event time per layer (ms) over repeats eager runs after warmup (Python's
        launch cost included: see layer_times for times without it)."""
        import torch
        self._check_input(x)
        self._prepare()
        for _ in range(warmup):
            self._run(x)
        runs = []
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            events: list[Any] = []
            self._run(x, events)
            torch.cuda.synchronize()
            marks = [start, *events]
            runs.append([a.elapsed_time(b) for a, b in zip(marks, marks[1:])])
        ms = np.median(np.asarray(runs), axis=0)
        timed = [(layer, st) for layer, st in self.steps if st is not None]
        return [self._row(layer, st, float(t), int(x.shape[0])) for (layer, st), t in zip(timed, ms)]

    def layer_times(self, x: Any) -> list[dict[str, Any]]:
        """Per layer, the median ms of its kernels alone, captured 20 times in one CUDA graph
        (cuda.driver.time_graph: no launch cost, so the rows add up to about net.graph(x))."""
        from workbench.codegen.cuda.driver import time_graph
        self._check_input(x)
        self._prepare()
        n = int(x.shape[0])
        self._run(x)                     # fills every intermediate buffer with real values
        bufs = self._buffers_for(n)
        (name,) = self.lr.inputs
        vals: dict[str, Any] = {name: x.contiguous(), **bufs}
        rows = []
        for layer, st in self.steps:
            ins = [vals[v] for v in layer.inputs]
            if st is None:
                vals[layer.name] = ins[0].reshape(n, -1)
                continue
            y = bufs[layer.name]
            t = time_graph(lambda st=st, ins=ins, y=y: st.run(st, ins, y, n))
            rows.append(self._row(layer, st, t, n))
        return rows

    def _row(self, layer: Layer, st: CudaStep, ms: float, n: int) -> dict[str, Any]:
        return {"layer": layer.name, "op": layer.op, "ms": ms,
                "out_shape": "x".join(map(str, self.shapes[layer.name])),
                "schedule": st.schedule.to_dict() if st.schedule else None,
                "useful_gflops": 2 * st.fmas * n / (ms * 1e6) if ms > 0 else 0.0}
