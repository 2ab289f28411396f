"""The host network: CompiledNetwork runs an LR's layers as generated kernels, with times.

Each LR layer becomes a step; values are NCHW float32 numpy arrays, freed after their last
reader. Convolutions and pooling run generated kernels; with library=True (the default on the
host) dense 1x1 convolutions and linear layers call PyTorch's BLAS instead, as the issue
allows for the host; library=False generates code for them too (as phones will need). With
the C emitter the whole network is one host.plan.CPlan.
"""
from __future__ import annotations

import contextlib
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.codegen.host.build import build_numba
from workbench.codegen.host.image_ops import activation, image_op
from workbench.codegen.host.kernel import CompiledLayer
from workbench.codegen.host.parallel import default_threads, run_jobs
from workbench.codegen.host.plan import CPlan
from workbench.codegen.host.render_numba import render_numba
from workbench.codegen.inputs import float32_input, is_torch
from workbench.codegen.ir import is_pointwise_layer
from workbench.codegen.lr import LR, Layer, LRError, conv_layer
from workbench.codegen.passes import optimize
from workbench.codegen.schedule import Schedule


_act = activation


def _split_mm(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """y[n] = w @ x[n] for w (O, C), x (N, C, M), y (N, O, M) float32, output rows split over
    our threads; each piece is one single-threaded torch GEMM (no OpenMP team left spinning
    against the generated kernels' threads)."""
    import torch
    wt, xt, yt = torch.from_numpy(w), torch.from_numpy(x), torch.from_numpy(y)
    o = w.shape[0]

    def part(t: int, n: int) -> None:
        lo, hi = o * t // n, o * (t + 1) // n
        for i in range(x.shape[0]):
            if hi > lo:
                torch.mm(wt[lo:hi], xt[i], out=yt[i, lo:hi])
    run_jobs(part, (), default_threads(), w.shape[0] * x.shape[1] * x.shape[2] * x.shape[0])


@contextlib.contextmanager
def _torch_one_thread() -> Iterator[None]:
    """Library calls run single-threaded inside our own thread split; restore torch after."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class Step:
    """One layer ready to run: fn(list of input arrays) -> output array."""
    layer: Layer
    fn: Callable[[list[np.ndarray]], np.ndarray]
    kind: str            # "generated", "library" or "view"
    fmas: int            # useful multiply-adds per image
    compiled: CompiledLayer | None = None


def _is_dense_pointwise(layer: Layer) -> bool:
    a = layer.attrs
    kp = layer.kernel_patterns
    return (tuple(a["kernel"]) == (1, 1) and a["groups"] == 1 and tuple(a["padding"]) == (0, 0)
            and kp.kept_kernels >= 0.5 * kp.total_kernels)


def _linear_as_conv(layer: Layer) -> Layer:
    """linear (F_in -> F_out) as a 1x1 conv on a (F_in, 1, 1) image, for generated code."""
    w = layer.params["weight"]
    conv = conv_layer(w.reshape(*w.shape, 1, 1), layer.params.get("bias"), act=layer.attrs["act"],
                      name=layer.name, inputs=layer.inputs)
    return conv


def _conv_fmas(layer: Layer, out_hw: int) -> int:
    return layer.kernel_patterns.kept_weights * out_hw


class CompiledNetwork:
    """A compiled LR: call it on (N, C, H, W) float32 numpy or torch; see profile(), memory().

    last_times: seconds per layer of the latest call, in execution order.
    """

    def __init__(self, lr: LR, emitter: str = "numba", library: bool = True,
                 schedules: dict[str, Schedule] | None = None) -> None:
        self.lr = optimize(lr) if any(l.op in ("batchnorm", "act") for l in lr.layers) else lr
        self.lr.validate()
        self.emitter = emitter
        self.shapes = self.lr.shapes()
        (shape,) = self.lr.inputs.values()
        self._input_shape = tuple(int(d) for d in shape)
        self.schedules = schedules or {}
        self.plan: CPlan | None = None
        if emitter == "c":
            self.plan = CPlan(self.lr, self._schedule)
            self.steps: list[Any] = self.plan.steps
        elif emitter == "numba":
            self.steps = [self._step(layer, library) for layer in self.lr.layers]
        else:
            raise ValueError(f"unknown emitter {emitter!r}; choose 'numba' or 'c'")
        self._last_times: dict[str, float] = {}
        # The last reader of each value: after it runs, the value can be freed.
        last: dict[str, int] = {}
        for i, layer in enumerate(self.lr.layers):
            for v in layer.inputs:
                last[v] = i
        self._free_after = {i: [v for v, j in last.items() if j == i and v not in self.lr.outputs]
                            for i in range(len(self.steps))}

    @property
    def last_times(self) -> dict[str, float]:
        """Seconds per layer of the latest call, in execution order (read from the C
        driver's clock stamps on demand, so a call pays nothing for them)."""
        return self.plan.times() if self.plan is not None else self._last_times

    # --- building ----------------------------------------------------------------------------
    def _schedule(self, layer: Layer) -> Schedule | None:
        """The layer's schedule: given to compile(), else tuned into the LR, else None (the
        emitter's default for the layer's shape)."""
        if layer.name in self.schedules:
            return self.schedules[layer.name]
        return Schedule.from_dict(layer.schedule) if layer.schedule else None

    def _step(self, layer: Layer, library: bool) -> Step:
        op, a = layer.op, layer.attrs
        out = self.shapes[layer.name]
        if op == "conv2d":
            hw = out[1] * out[2]
            if library and _is_dense_pointwise(layer):
                return Step(layer, self._pointwise(layer), "library", _conv_fmas(layer, hw))
            kern = CompiledLayer(layer, self.emitter, self._schedule(layer))
            return Step(layer, lambda xs: kern(xs[0]), "generated", _conv_fmas(layer, hw), kern)
        if op == "linear":
            fmas = int(a["in_features"]) * int(a["out_features"])
            if library:
                w = np.ascontiguousarray(layer.params["weight"])
                b = layer.params.get("bias")

                def linear(xs: list[np.ndarray]) -> np.ndarray:
                    x = np.ascontiguousarray(xs[0])
                    y = np.empty((1, w.shape[0], x.shape[0]), np.float32)
                    _split_mm(w, np.ascontiguousarray(x.T)[None], y)
                    y = np.ascontiguousarray(y[0].T)
                    if b is not None:
                        y += b
                    return _act(y, a["act"])
                return Step(layer, linear, "library", fmas)
            kern = CompiledLayer(_linear_as_conv(layer), self.emitter, self._schedule(layer))
            return Step(layer, lambda xs: kern(xs[0][:, :, None, None])[:, :, 0, 0],
                        "generated", fmas, kern)
        if op in ("maxpool2d", "avgpool2d"):
            fn = build_numba(render_numba(layer, Schedule()))

            def pool(xs: list[np.ndarray]) -> np.ndarray:
                x = np.ascontiguousarray(xs[0])
                y = np.empty((x.shape[0], *out), np.float32)
                run_jobs(fn, (x, y), default_threads(), x.size)
                return y
            return Step(layer, pool, "generated", 0)
        if op == "add":
            def add(xs: list[np.ndarray]) -> np.ndarray:
                return _act(np.add(xs[0], xs[1]), a["act"])
            return Step(layer, add, "library", 0)
        if op == "global_avgpool":
            return Step(layer, lambda xs: xs[0].mean(axis=(2, 3), keepdims=True, dtype=np.float32),
                        "library", 0)
        if op == "flatten":
            return Step(layer, lambda xs: xs[0].reshape(xs[0].shape[0], -1), "view", 0)
        if op == "act":
            return Step(layer, lambda xs: _act(xs[0].copy(), a["act"]), "library", 0)
        if op in ("pixel_shuffle", "upsample", "concat", "broadcast", "instance_norm"):
            return Step(layer, lambda xs: image_op(layer, xs), "library", 0)
        raise LRError(f"layer {layer.name!r}: op {op!r} has no runtime step")

    def _pointwise(self, layer: Layer) -> Callable[[list[np.ndarray]], np.ndarray]:
        a = layer.attrs
        w = np.ascontiguousarray(layer.params["weight"][:, :, 0, 0])
        b = layer.params.get("bias")
        sh, sw = a["stride"]
        o = int(a["out_channels"])

        def pointwise(xs: list[np.ndarray]) -> np.ndarray:
            x = xs[0][:, :, ::sh, ::sw] if (sh, sw) != (1, 1) else xs[0]
            n, c, h, wd = x.shape
            y = np.empty((n, o, h * wd), np.float32)
            _split_mm(w, np.ascontiguousarray(x).reshape(n, c, h * wd), y)
            if b is not None:
                y += b[:, None]
            return _act(y, a["act"]).reshape(n, o, h, wd)
        return pointwise

    # --- running -----------------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        """Run the network: x (N, C, H, W) float32 numpy or torch -> output (float32), same
        kind; other float dtypes are converted, others refused (workbench.codegen.inputs)."""
        if self.plan is not None and type(x) is np.ndarray and x.ndim == 4 and \
                x.shape[1:] == self._input_shape:
            # the C plan on a numpy array: straight to it (Python here costs per inference)
            outs = self.plan.run(x)
            return outs[0] if len(outs) == 1 else tuple(outs)
        torch_in = is_torch(x)
        xa = float32_input(x, "network")
        (name, shape), = self.lr.inputs.items()
        if xa.ndim != 4 or tuple(xa.shape[1:]) != tuple(shape):
            raise ValueError(f"expected input (N, {', '.join(map(str, shape))}), got {xa.shape}")
        vals: dict[str, np.ndarray] = {name: xa}
        if self.plan is not None:
            outs = self.plan.run(vals[name])
            if torch_in:
                import torch
                outs = [torch.from_numpy(o) for o in outs]
            return outs[0] if len(outs) == 1 else tuple(outs)
        times: dict[str, float] = {}
        with _torch_one_thread():
            for i, step in enumerate(self.steps):
                t0 = time.perf_counter()
                vals[step.layer.name] = step.fn([vals[v] for v in step.layer.inputs])
                times[step.layer.name] = time.perf_counter() - t0
                for v in self._free_after[i]:
                    vals.pop(v, None)
        self._last_times = times
        outs = [vals[o] for o in self.lr.outputs]
        if torch_in:
            import torch
            outs = [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def profile(self, x: Any, warmup: int = 2, repeats: int = 10) -> list[dict[str, Any]]:
        """Median time per layer over repeats calls (after warmup): one row per layer."""
        for _ in range(warmup):
            self(x)
        runs = []
        for _ in range(repeats):
            self(x)
            runs.append(self.last_times)
        n = int(np.asarray(x.shape)[0])
        rows = []
        for step in self.steps:
            ms = float(np.median([r[step.layer.name] for r in runs])) * 1e3
            rows.append({"layer": step.layer.name, "op": step.layer.op,
                         "source": step.layer.attrs.get("source", step.layer.name),
                         "kind": step.kind, "out_shape": list(self.shapes[step.layer.name]),
                         "ms": ms, "useful_gflops": 2 * step.fmas * n / (ms * 1e6) if ms else 0.0})
        return rows

    def memory(self, batch: int = 1, measure_with: Any = None) -> dict[str, int]:
        """Bytes: weights as stored (packed), the activation peak at batch size (values live
        at once plus a conv's scratch; for the C plan, its reused layout buffers), and, if
        measure_with (an input) is given, the peak of new allocations during one call of it
        (tracemalloc; buffers kept from an earlier call of that batch size are not new)."""
        wbytes = 0
        for step in self.steps:
            if step.compiled is not None:
                k = step.compiled
                packed = k._block_sparse().nbytes() if (self.plan is not None and
                                                        is_pointwise_layer(k.lr)) \
                    else k.fkw.nbytes(index_bytes=4)
                wbytes += packed + k._bias.nbytes
            else:
                wbytes += sum(v.nbytes for v in step.layer.params.values()
                              if v.dtype == np.float32)
        size = {k: 4 * batch * int(np.prod(v)) for k, v in self.shapes.items()}
        live = {k: size[k] for k in self.lr.inputs}
        peak = sum(live.values())
        for i, step in enumerate(self.steps):
            live[step.layer.name] = size[step.layer.name]
            scratch = 0
            if step.compiled is not None:
                # the conv's padded input copy and its row-padded accumulator
                c, h, w = self.shapes[step.layer.inputs[0]]
                ph, pw = step.layer.attrs["padding"]
                o, ho = self.shapes[step.layer.name][:2] if len(self.shapes[step.layer.name]) == 3 \
                    else (self.shapes[step.layer.name][0], 1)
                scratch = 4 * batch * (w + 2 * pw) * (c * (h + 2 * ph + 1) + o * ho)
            peak = max(peak, sum(live.values()) + scratch)
            for v in self._free_after[i]:
                live.pop(v, None)
        if self.plan is not None:
            # every activation lives in one of the plan's reused buffers
            peak = self.plan.allocated_bytes(batch)
        report = {"weights_bytes": int(wbytes), "activations_peak_bytes": int(peak)}
        if measure_with is not None:
            tracemalloc.start()
            try:
                self(measure_with)
                report["measured_peak_bytes"] = int(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        return report
