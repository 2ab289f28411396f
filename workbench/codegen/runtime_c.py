"""The C network plan: buffer layouts, generated kernels and the steps that run them.

Every value gets one buffer layout, chosen for its readers: the zero-bordered, row-aligned
layout its stride-1 convolutions read (so the producing kernel writes straight into it and
no padding copy is made), else plain NCHW. A reader that cannot use that layout (a strided
conv wants stride phases) gets its own copy, made by a C kernel (render_relayout).
A buffer slot is reused by later values of the same layout once its value is dead, and
slots share one arena wherever their live steps do not meet (greedy by size, as TFLite
plans its arena); a bordered slot's border is cleared before the step that makes it, since
other slots' values were there. MobileNet-V2-224's activations take 7.1 MB instead of 23.6
with a buffer per slot, and it runs 8-12% faster: weights and activations together had
overflowed the 32 MB L3 on every call.

Values on small planes (at most BLOCKED_MAX_PIXELS pixels) that only 1x1 and depthwise convs
make and read are held channel-blocked instead (Layout.cb, render_blocked): those convs then
run render_blocked's kernels, which use every vector lane whatever the plane size.

A 1x1 expansion whose large output (FUSE_MIN_BYTES) only a 3x3 depthwise conv reads runs
fused with it (fuse_expansions), and a depthwise conv whose large output only a 1x1
projection reads runs fused with that (fuse_projections; render_fused): the map between
them is never written. MobileNet-V2-224 has three of the first kind (features.2-4: 3.77 ->
3.54 ms at 1 thread, 1.91 -> 1.78 at 2, in-process A/B) and one of the second (features.1:
another 1-2%, measured in a noisy stretch).
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.codegen.build import build_c, build_numba, debug, host_vector_width
from workbench.codegen.inputs import float32_input
from workbench.codegen.driver import BoundCalls, Call
from workbench.codegen.ir import SLACK, Layout, aligned_floats, conv_ir, conv_src_layout, \
    is_depthwise_layer, is_pointwise_layer, pointwise_src_layout, round_up
from workbench.codegen.kernel import CompiledLayer
from workbench.codegen.lr import LR, Layer, LRError
from workbench.codegen.parallel import default_threads, run_jobs
from workbench.codegen.render_blocked import depthwise_src_need, pack_depthwise_weights, \
    pack_gemm_weights, render_blocked_depthwise, render_blocked_gemm, \
    render_blocked_global_avgpool, render_blocked_relayout
from workbench.codegen.render_c import render_linear
from workbench.codegen.render_elementwise import render_add, render_global_avgpool, \
    render_clear_border, render_maxpool, render_relayout
from workbench.codegen.render_fused import channel_group, fused_geometry, pack_fused_weights, \
    pack_projection_weights, render_depthwise_project, render_expand_depthwise
from workbench.codegen.render_numba import render_numba
from workbench.codegen.schedule import Schedule


# Planes of at most this many pixels may be held channel-blocked (MobileNet-V2's 28x28,
# 14x14 and 7x7 blocks; its 56x56 and larger blocks already match the peers in NCHW).
# $WORKBENCH_BLOCKED_PIXELS overrides it (0: never), for comparisons.
BLOCKED_MAX_PIXELS = 28 * 28
# Bordered (one-phase) buffers share the arena too, their borders cleared before each call's
# producer writes them (render_clear_border), not only the buffers without borders.
ARENA_BORDERED = True


# A 1x1 expansion is fused with the depthwise conv reading its output, and a depthwise conv
# with the 1x1 projection reading its output (render_fused), where that output would take
# at least this many bytes per image: past the 1 MB L2 it went out to L3 and back
# (MobileNet-V2-224's blocks at 112x112 and 56x56; fusing the 28x28 ones too, which the
# blocked kernels run, lost: 3.81 -> 3.98 ms). $WORKBENCH_FUSE_MIN_BYTES overrides it (a
# huge value: never), for comparisons.
FUSE_MIN_BYTES = 1 << 20


def fuse_min_bytes() -> int:
    """The size (bytes per image) from which an expansion's output is fused away."""
    return int(os.environ.get("WORKBENCH_FUSE_MIN_BYTES", FUSE_MIN_BYTES))


def blocked_max_pixels() -> int:
    """The plane size (pixels) up to which values may be held channel-blocked."""
    return int(os.environ.get("WORKBENCH_BLOCKED_PIXELS", BLOCKED_MAX_PIXELS))


def blocked_capable(layer: Layer) -> bool:
    """True for the convs render_blocked has a kernel for: 1x1 stride 1, depthwise undilated."""
    if layer.op != "conv2d" or is_fused_projection(layer):
        return False
    a = layer.attrs
    if is_pointwise_layer(layer):
        return tuple(a["stride"]) == (1, 1)
    return is_depthwise_layer(layer) and tuple(a["dilation"]) == (1, 1)


def _preferred(layer: Layer, shape: tuple[int, ...], vector: int, blocked: bool = False
               ) -> Layout:
    if is_fused_projection(layer):
        layer = fused_depthwise(layer)    # it reads its input as its depthwise conv does
    c, h, w = shape
    if blocked:
        if is_pointwise_layer(layer):
            return Layout(c, h, w, cb=vector)
        rows, cols = depthwise_src_need(layer, h, w)
        ph, pw = (int(t) for t in layer.attrs["padding"])
        return Layout(c, h, w, ph, pw, rows=rows, row=cols, cb=vector)
    if is_pointwise_layer(layer):
        return pointwise_src_layout(layer, h, w)
    return conv_src_layout(layer, h, w, vector)


def _accepts(layer: Layer, shape: tuple[int, ...], layout: Layout, vector: int,
             blocked: bool = False) -> bool:
    if is_fused_projection(layer):
        layer = fused_depthwise(layer)
    if blocked:
        # the blocked GEMM reads blocked or plain inputs in place, the depthwise blocked ones
        if layout.cb not in (1, vector) or layout.phases != 1:
            return False
        if is_pointwise_layer(layer):
            return True
        if layout.cb != vector:
            return False
        rows, cols = depthwise_src_need(layer, shape[1], shape[2])
        ph, pw = (int(t) for t in layer.attrs["padding"])
        return layout.top >= ph and layout.left >= pw and \
            layout.plane_rows - (layout.top - ph) >= rows and \
            layout.row_stride - (layout.left - pw) >= cols
    try:
        conv_ir(layer, shape, vector, src=layout)
    except LRError:
        return False
    return True


def _merge(a: Layout, b: Layout) -> Layout | None:
    """One stride-1 layout both readers accept: the larger border and rows (None if phased
    or blocked differently)."""
    if a.phases != 1 or b.phases != 1 or a.cb != b.cb:
        return None
    return Layout(a.c, a.h, a.w, max(a.top, b.top), max(a.left, b.left), 1, 1,
                  rows=max(a.plane_rows + (max(a.top, b.top) - a.top),
                           b.plane_rows + (max(a.top, b.top) - b.top)),
                  row=max(a.row_stride + (max(a.left, b.left) - a.left),
                          b.row_stride + (max(a.left, b.left) - b.left)), cb=a.cb)


def _reader_counts(lr: LR) -> dict[str, int]:
    """Value -> how many layer inputs read it."""
    readers: dict[str, int] = {}
    for layer in lr.layers:
        for v in layer.inputs:
            readers[v] = readers.get(v, 0) + 1
    return readers


def _fusable_depthwise(layer: Layer) -> bool:
    """A depthwise conv render_fused runs: 3x3, padding 1, undilated, stride 1 or 2."""
    a = layer.attrs
    return layer.op == "conv2d" and is_depthwise_layer(layer) and \
        tuple(a["kernel"]) == (3, 3) and tuple(a["padding"]) == (1, 1) and \
        tuple(a["dilation"]) == (1, 1) and tuple(a["stride"]) in ((1, 1), (2, 2))


def fuse_residual_adds(lr: LR, schedule_for: Callable[[Layer], Schedule | None]
                       ) -> tuple[LR, dict[str, Schedule | None]]:
    """The layers the C plan runs: each add whose operand is made by a 1x1 conv on the GEMM
    kernel with no activation, read by nothing else, becomes that conv with the add's name,
    the other operand as a residual input and the add's activation (the GEMM adds the
    residual to its accumulators before the store: ResNet-50 and MobileNet-V2 skip a pass
    over every block's output). Returns the layers as an LR and each fused layer's schedule."""
    readers = _reader_counts(lr)
    by_name = {layer.name: layer for layer in lr.layers}
    fused: dict[str, Layer] = {}         # add name -> the fused conv
    given: dict[str, Schedule | None] = {}
    gone: set[str] = set()               # convs folded into an add
    for add in lr.layers:
        if add.op != "add" or len(add.inputs) != 2 or add.inputs[0] == add.inputs[1]:
            continue
        for k, v in enumerate(add.inputs):
            conv = by_name.get(v)
            if conv is None or conv.op != "conv2d" or not is_pointwise_layer(conv) or \
                    conv.attrs.get("act", "none") != "none" or readers.get(v) != 1 or \
                    v in lr.outputs:
                continue
            sched = schedule_for(conv)
            if sched is not None and sched.kernel != "gemm":
                continue
            attrs = {**conv.attrs, "act": add.attrs.get("act", "none"),
                     "fused": [conv.name, add.name]}
            attrs.setdefault("source", conv.name)
            fused[add.name] = Layer(add.name, "conv2d", [conv.inputs[0], add.inputs[1 - k]],
                                    attrs, conv.params, conv.schedule)
            given[add.name] = sched
            gone.add(conv.name)
            break
    layers = [fused.get(layer.name, layer) for layer in lr.layers if layer.name not in gone]
    return LR(dict(lr.inputs), layers, list(lr.outputs), dict(lr.meta)), given


def is_fused_expansion(layer: Layer) -> bool:
    """True for a layer fuse_expansions made (a 1x1 expansion and a depthwise conv)."""
    return layer.op == "conv2d" and "expand" in layer.attrs


def fuse_expansions(lr: LR) -> LR:
    """The layers with each 1x1 expansion (stride 1, no residual) whose output only a 3x3
    depthwise conv reads (stride 1 or 2, padding 1), and would take at least
    fuse_min_bytes(), fused with that conv (render_fused): one conv2d layer with the
    depthwise conv's name and attributes, the expansion's input (in_channels theirs),
    attrs["expand"] = {"channels", "act"} and the expansion's weights as params
    "expand_weight" (M, C) and "expand_bias"."""
    readers = _reader_counts(lr)
    shapes = lr.shapes()
    by_name = {layer.name: layer for layer in lr.layers}
    fused: dict[str, Layer] = {}
    gone: set[str] = set()
    for dw in lr.layers:
        if not _fusable_depthwise(dw):
            continue
        a = dw.attrs
        ex = by_name.get(dw.inputs[0])
        if ex is None or ex.op != "conv2d" or not is_pointwise_layer(ex) or \
                tuple(ex.attrs["stride"]) != (1, 1) or len(ex.inputs) != 1 or \
                readers.get(ex.name) != 1 or ex.name in lr.outputs or \
                len(shapes[ex.inputs[0]]) != 3 or \
                4 * int(np.prod(shapes[ex.name])) < fuse_min_bytes() or \
                not channel_group(int(a["out_channels"])):
            continue
        m, c = int(ex.attrs["out_channels"]), int(ex.attrs["in_channels"])
        attrs = {**a, "in_channels": c, "fused": [ex.name, dw.name],
                 "expand": {"channels": m, "act": ex.attrs.get("act", "none")}}
        params = {"weight": dw.params["weight"],
                  "bias": dw.params.get("bias", np.zeros(m, np.float32)),
                  "expand_weight": np.asarray(ex.params["weight"], np.float32).reshape(m, c),
                  "expand_bias": ex.params.get("bias", np.zeros(m, np.float32))}
        fused[dw.name] = Layer(dw.name, "conv2d", [ex.inputs[0]], attrs, params, dw.schedule)
        gone.add(ex.name)
    layers = [fused.get(layer.name, layer) for layer in lr.layers if layer.name not in gone]
    return LR(dict(lr.inputs), layers, list(lr.outputs), dict(lr.meta))


def is_fused_projection(layer: Layer) -> bool:
    """True for a layer fuse_projections made (a depthwise conv and a 1x1 projection)."""
    return layer.op == "conv2d" and "depthwise" in layer.attrs


def fused_depthwise(layer: Layer) -> Layer:
    """The depthwise conv inside a fused projection layer, as a layer of its own."""
    d = layer.attrs["depthwise"]
    m = int(layer.attrs["in_channels"])
    return Layer(d["name"], "conv2d", layer.inputs[:1],
                 {"in_channels": m, "out_channels": m, "kernel": [3, 3], "stride": d["stride"],
                  "padding": [1, 1], "dilation": [1, 1], "groups": m, "act": d["act"]},
                 {"weight": layer.params["dw_weight"], "bias": layer.params["dw_bias"]})


def fuse_projections(lr: LR) -> LR:
    """The layers with each 3x3 depthwise conv (stride 1 or 2, padding 1, not already fused
    with its expansion) whose output, of at least fuse_min_bytes(), only a 1x1
    projection reads (stride 1, residual fused or not) fused with that projection
    (render_fused): one conv2d layer with the projection's name, attributes and inputs but
    the depthwise conv's input and stride, attrs["depthwise"] = {"name", "stride", "act"},
    the depthwise weights as params "dw_weight" (M, 1, 3, 3) and "dw_bias"."""
    readers = _reader_counts(lr)
    shapes = lr.shapes()
    by_name = {layer.name: layer for layer in lr.layers}
    fused: dict[str, Layer] = {}
    gone: set[str] = set()
    for pw in lr.layers:
        if pw.op != "conv2d" or not is_pointwise_layer(pw) or is_fused_expansion(pw) or \
                tuple(pw.attrs["stride"]) != (1, 1) or \
                not channel_group(int(pw.attrs["out_channels"])):
            continue
        dw = by_name.get(pw.inputs[0])
        if dw is None or not _fusable_depthwise(dw) or is_fused_expansion(dw) or \
                readers.get(dw.name) != 1 or dw.name in lr.outputs or \
                4 * int(np.prod(shapes[dw.name])) < fuse_min_bytes():
            continue
        m = int(dw.attrs["out_channels"])
        attrs = {**pw.attrs, "stride": list(dw.attrs["stride"]),
                 "fused": [dw.name, *pw.attrs.get("fused", [pw.name])],
                 "depthwise": {"name": dw.name, "stride": list(dw.attrs["stride"]),
                               "act": dw.attrs.get("act", "none")}}
        params = {**pw.params, "dw_weight": dw.params["weight"],
                  "dw_bias": dw.params.get("bias", np.zeros(m, np.float32))}
        fused[pw.name] = Layer(pw.name, "conv2d", [dw.inputs[0], *pw.inputs[1:]], attrs, params,
                               pw.schedule)
        gone.add(dw.name)
    layers = [fused.get(layer.name, layer) for layer in lr.layers if layer.name not in gone]
    return LR(dict(lr.inputs), layers, list(lr.outputs), dict(lr.meta))


@dataclass
class CStep:
    """One layer's work: run(bufs, n) reads and writes the buffers of its values."""
    layer: Layer
    run: Callable[[dict[str, np.ndarray], int], None]
    kind: str
    fmas: int
    compiled: CompiledLayer | None = None
    copies: list[str] = field(default_factory=list)   # values it relayouts first
    # its C calls with the addresses of given buffers (for the driver); None for steps that
    # do Python work (flatten of a phased value, a linear layer copying a non-flat input, the
    # Numba and NumPy fallbacks)
    bind: Callable[[dict[str, np.ndarray], int], list[Call]] | None = None


@dataclass
class _ConvInputs:
    """Where a conv step reads its input and fused residual: in place, or from a private
    copy in the layout its kernel wants, made first by a relayout kernel."""
    src_v: str
    src_lay: Layout
    res_v: str | None
    res_lay: Layout | None        # the output's layout when there is a residual
    copy_in: Any                  # relayout kernels, None where read in place
    copy_res: Any
    private: str                  # names of the private copies' buffers
    res_private: str

    def bind(self, bufs: dict[str, np.ndarray], n: int, threads: int
             ) -> tuple[list[Call], np.ndarray, np.ndarray | None]:
        """(the copy calls, the input buffer, the residual buffer or None) for these buffers."""
        calls: list[Call] = []
        src = bufs[self.src_v]
        if self.copy_in is not None:
            src = bufs[self.private]
            calls.append((self.copy_in, (bufs[self.src_v].ctypes.data, src.ctypes.data, n,
                                         threads)))
        res = bufs[self.res_v] if self.res_v is not None else None
        if self.copy_res is not None and self.res_v is not None:
            res = bufs[self.res_private]
            calls.append((self.copy_res, (bufs[self.res_v].ctypes.data, res.ctypes.data, n,
                                          threads)))
        return calls, src, res

    def record(self, step: CStep, layouts: dict[str, Layout]) -> None:
        """List the private copies on the step and give them their layouts (for the slots)."""
        if self.copy_in is not None:
            step.copies.append(self.private)
            layouts[self.private] = self.src_lay
        if self.copy_res is not None and self.res_lay is not None:
            step.copies.append(self.res_private)
            layouts[self.res_private] = self.res_lay


@dataclass
class _FastRun:
    """CPlan.run's short way, for a plan whose every step is in one driver call that copies
    the input in and writes the one output into a new array: set the two addresses, make
    the call. The long way's Python around that call took 300-330 us per MobileNet-V2-224
    inference in a noisy stretch of the 2-core VM (its code and data evicted from cache by
    the kernels), this one 75-107 us; in a quieter one 120-142 against 29-84 us."""
    n: int                          # batch size, threads and buffers the call is bound to
    threads: int
    bufs: dict[str, np.ndarray]
    calls: BoundCalls
    names: list[str]                # the steps in the call
    x_pos: int                      # where the input's address goes in calls.args
    out_pos: list[int]              # where the output's address goes
    out_image: int                  # floats per image of the output
    out_shape: tuple[int, ...]

    def __call__(self, plan: "CPlan", x: np.ndarray) -> list[np.ndarray]:
        out = aligned_floats(self.n * self.out_image, zero=False)
        args = self.calls.args
        args[self.x_pos] = x.ctypes.data
        addr = out.ctypes.data
        for p in self.out_pos:
            args[p] = addr
        self.calls.run()
        # every step is in this call: times() reads them all from its stamps
        plan._timed = [(self.names, self.calls)]
        return [out.reshape(self.out_shape)]


class CPlan:
    """Layouts, buffers and steps of an LR compiled with the C emitter."""

    def __init__(self, lr: LR, schedule_for: Callable[[Layer], Schedule | None]) -> None:
        lr, fused_given = fuse_residual_adds(lr, schedule_for)
        lr = fuse_projections(fuse_expansions(lr))
        self.lr = lr
        self.shapes = lr.shapes()
        self.vector = host_vector_width()
        self.readers: dict[str, list[Layer]] = {}
        for layer in lr.layers:
            for v in layer.inputs:
                self.readers.setdefault(v, []).append(layer)
        self.blocked = self._blocked_values()
        self.layouts = {v: self._choose(v) for v in self.shapes}
        self._residuals_in_output_layout()
        self.steps = [self._step(layer, fused_given[layer.name] if layer.name in fused_given
                                 else schedule_for(layer)) for layer in lr.layers]
        self._buffers: dict[int, dict[str, np.ndarray]] = {}
        self.arena: np.ndarray | None = None      # the slots' shared memory (buffers)
        self._clear_slots: dict[int, list[int]] = {}
        self._slot_memory: list[np.ndarray] = []
        self._clearers: dict[Layout, Any] = {}
        self._python_clears: dict[str, list[Call]] = {}   # _runs: per step run from Python
        self._times: dict[str, float] = {}      # the latest run's: steps run from Python
        self._timed: list[tuple[list[str], BoundCalls]] = []   # and driver calls (times())
        self._slots = self._assign_slots()
        # (buffers, threads) -> runs: BoundCalls of consecutive bindable steps, else a step
        self._bound: tuple[dict[str, np.ndarray], int, list[Any]] | None = None
        self._fast: _FastRun | None = None         # run()'s short path, set by its long one
        self._copy_in: Any = None                 # C copies of the input and outputs
        self._copy_out: dict[str, Any] = {}
        # outputs held in plain NCHW (or flat: a classifier's logits), each in a slot of its
        # own among the outputs: value -> slot, whose buffer is a new array on each call,
        # handed to the caller
        outs = [o for o in lr.outputs if self.layouts[o].dense and o not in lr.inputs]
        self._handed_out = {o: self._slots[o] for o in outs
                            if [self._slots[p] for p in lr.outputs].count(self._slots[o]) == 1}
        self._handed_images = {s: self.slot_layouts[s].image for s in self._handed_out.values()}

    # --- layouts -----------------------------------------------------------------------------
    def _blocked_values(self) -> set[str]:
        """The values held channel-blocked: (C, H, W) maps of at most blocked_max_pixels()
        pixels, C a multiple of the vector width, made by a conv with a blocked kernel (a
        depthwise one from an input of that kind too, so that its copy into blocks stays
        small; a 1x1 reads any plain input in place), not a network output, read only by
        blocked convs (their outputs blocked too) or a global average pool, and not a lone
        blocked conv. So a blocked stretch is two convs or more, with small copies in at most
        (MobileNet-V2: none but residuals)."""
        limit = blocked_max_pixels()
        made_by = {layer.name: layer for layer in self.lr.layers}

        def fits(v: str) -> bool:
            shape = self.shapes[v]
            return len(shape) == 3 and shape[1] * shape[2] <= limit and \
                shape[0] % self.vector == 0

        def fed(v: str) -> bool:
            # a depthwise conv's input is copied into blocks unless blocked: small ones only;
            # a 1x1 reads a plain input in place
            src = made_by[v].inputs[0]
            return fits(src) or (is_pointwise_layer(made_by[v]) and len(self.shapes[src]) == 3)

        vals = {v for v in self.shapes if v in made_by and blocked_capable(made_by[v]) and
                fits(v) and fed(v) and v not in self.lr.outputs}
        changed = True
        while changed:
            changed = False
            for v in sorted(vals):
                readers = self.readers.get(v, [])
                if not all(r.op == "global_avgpool" or (r.name in vals and blocked_capable(r))
                           for r in readers) or \
                        (made_by[v].inputs[0] not in vals and
                         not any(r.op == "conv2d" for r in readers)):
                    # read by a kernel without a blocked form, or a lone blocked conv
                    # between copies (ResNet-50's last 1x1 before the pool: its input and
                    # residual would both be copied in, for one layer)
                    vals.discard(v)
                    changed = True
        return vals

    def _choose(self, v: str) -> Layout:
        shape = self.shapes[v]
        if len(shape) != 3:
            return Layout(shape[0], 1, 1)
        blocked = v in self.blocked
        best: Layout | None = Layout(*shape, cb=self.vector) if blocked else None
        for r in self.readers.get(v, []):
            # a reader of the other kind (blocked or not) makes its own copy
            if r.op != "conv2d" or (is_pointwise_layer(r) and not is_fused_projection(r)) or \
                    is_fused_expansion(r) or (r.name in self.blocked) != blocked:
                continue
            pref = _preferred(r, shape, self.vector, blocked)
            if pref.phases != 1:
                continue  # producers write one phase; a phased reader makes its own copy
            best = pref if best is None else (_merge(best, pref) or best)
        return best or Layout(*shape)

    def _residuals_in_output_layout(self) -> None:
        """A fused GEMM reads its residual in its output's layout: give the residual value
        that layout where its other readers accept it, so no copy is made (ResNet-18's
        downsampling blocks add a 3x3 conv's plain output into a bordered one)."""
        wanted: dict[str, set[Layout]] = {}
        for layer in self.lr.layers:
            if layer.op == "conv2d" and len(layer.inputs) > 1:
                wanted.setdefault(layer.inputs[1], set()).add(self.layouts[layer.name])
        for v, lays in wanted.items():
            if len(lays) != 1 or len(self.shapes[v]) != 3:
                continue
            (lay,) = lays
            if lay == self.layouts[v] or lay.phases != 1 or lay.cb != self.layouts[v].cb:
                continue
            ok = all(_accepts(r, self.shapes[v], lay, self.vector, r.name in self.blocked)
                     for r in self.readers.get(v, [])
                     if r.op == "conv2d" and r.inputs[0] == v)
            if ok:
                self.layouts[v] = lay

    def _input_layout(self, layer: Layer) -> tuple[Layout, bool]:
        """(layout the conv reads, True if it needs its own copy of the input)."""
        v = layer.inputs[0]
        lay = self.layouts[v]
        blocked = layer.name in self.blocked
        if _accepts(layer, self.shapes[v], lay, self.vector, blocked):
            return lay, False
        return _preferred(layer, self.shapes[v], self.vector, blocked), True

    def _conv_inputs(self, layer: Layer) -> _ConvInputs:
        """How the conv reads its input and fused residual (read in the output's layout):
        in place, or copied first by a C kernel on all threads (stride phases, a border, into
        or out of channel blocks)."""
        src_v = layer.inputs[0]
        src_lay, copy = self._input_layout(layer)
        dst_lay = self.layouts[layer.name]
        res_v = layer.inputs[1] if len(layer.inputs) > 1 else None
        res_copy = res_v is not None and self.layouts[res_v] != dst_lay
        return _ConvInputs(src_v, src_lay, res_v, dst_lay if res_v else None,
                           self._relayout(src_v, src_lay) if copy else None,
                           self._relayout(res_v, dst_lay) if res_copy and res_v else None,
                           f"{layer.name}\0in", f"{layer.name}\0res")

    # --- steps -------------------------------------------------------------------------------
    def _view(self, bufs: dict[str, np.ndarray], v: str, n: int) -> np.ndarray:
        lay = self.layouts[v]
        if len(self.shapes[v]) == 1:
            return bufs[v].reshape(n, -1)[:, :self.shapes[v][0]]
        return lay.read(bufs[v], n)

    def _step(self, layer: Layer, given: Schedule | None) -> CStep:
        op, a = layer.op, layer.attrs
        sched = given or Schedule()
        out = self.shapes[layer.name]
        if op == "conv2d" and layer.name in self.blocked:
            return self._blocked_conv_step(layer)
        if is_fused_expansion(layer):
            return self._fused_expansion_step(layer)
        if is_fused_projection(layer):
            return self._fused_projection_step(layer)
        if op == "conv2d":
            ins = self._conv_inputs(layer)
            c, h, w = self.shapes[ins.src_v]
            dst_lay = self.layouts[layer.name]
            kern = CompiledLayer(layer, "c", given)
            # build now, not in the first timed call
            kern._c_kernel(h, w, ins.src_lay, dst_lay, ins.res_lay)

            def conv(bufs: dict[str, np.ndarray], n: int) -> None:
                for f, args in bind(bufs, n):
                    f(*args)

            def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
                calls, src, res = ins.bind(bufs, n, default_threads())
                calls.append(kern.c_call(src, bufs[layer.name], n, h, w, ins.src_lay, dst_lay,
                                         res, ins.res_lay))
                return calls
            st = CStep(layer, conv, "generated", layer.kernel_patterns.kept_weights * out[1] * out[2],
                       kern, bind=bind)
            ins.record(st, self.layouts)
            return st
        if op == "linear":
            cin, cout = int(a["in_features"]), int(a["out_features"])
            fn = build_c(render_linear(cin, cout, a["act"], self.vector, sched)).wb_linear
            fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int, ctypes.c_int]
            wt = np.ascontiguousarray(layer.params["weight"], np.float32)
            b = np.ascontiguousarray(layer.params.get("bias", np.zeros(cout, np.float32)),
                                     np.float32)
            src_v = layer.inputs[0]

            def linear(bufs: dict[str, np.ndarray], n: int) -> None:
                x = np.ascontiguousarray(self._view(bufs, src_v, n))
                y = bufs[layer.name]
                fn(x.ctypes.data, y.ctypes.data, wt.ctypes.data, b.ctypes.data, n,
                   sched.threads or default_threads())

            def bind_linear(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
                return [(fn, (bufs[src_v].ctypes.data, bufs[layer.name].ctypes.data,
                              wt.ctypes.data, b.ctypes.data, n,
                              sched.threads or default_threads()))]
            # the kernel reads x as (N, cin) rows: bound (run by the driver) where the input
            # buffer is exactly that (a flattened or 1-D value), else copied per call
            flat_in = len(self.shapes[src_v]) == 1 and self.layouts[src_v].image == cin
            return CStep(layer, linear, "generated", cin * cout,
                         bind=bind_linear if flat_in else None)
        if op == "maxpool2d" and self._one_phase(layer.inputs[0], layer.name):
            lays = [self.layouts[v] for v in (layer.inputs[0], layer.name)]
            return self._elementwise_step(layer, render_maxpool(layer, *lays), "wb_maxpool")
        if op in ("maxpool2d", "avgpool2d"):
            fn = build_numba(render_numba(layer, sched))

            def pool(bufs: dict[str, np.ndarray], n: int) -> None:
                x = self._view(bufs, layer.inputs[0], n)
                y = self._view(bufs, layer.name, n)
                run_jobs(fn, (x, y), default_threads(), x.size)
            return CStep(layer, pool, "generated", 0)
        if op == "add" and self._one_phase(*layer.inputs, layer.name):
            lays = [self.layouts[v] for v in (*layer.inputs, layer.name)]
            return self._elementwise_step(layer, render_add(*lays, a["act"]), "wb_add")
        if op == "add":
            def add(bufs: dict[str, np.ndarray], n: int) -> None:
                y = self._view(bufs, layer.name, n)
                np.add(self._view(bufs, layer.inputs[0], n), self._view(bufs, layer.inputs[1], n),
                       out=y)
                _act_inplace(y, a["act"])
            return CStep(layer, add, "library", 0)
        if op == "global_avgpool" and self.layouts[layer.inputs[0]].cb > 1:
            lays = [self.layouts[v] for v in (layer.inputs[0], layer.name)]
            return self._elementwise_step(layer, render_blocked_global_avgpool(*lays), "wb_gap")
        if op == "global_avgpool" and self._one_phase(layer.inputs[0], layer.name):
            lays = [self.layouts[v] for v in (layer.inputs[0], layer.name)]
            return self._elementwise_step(layer, render_global_avgpool(*lays), "wb_gap")
        if op == "global_avgpool":
            def gap(bufs: dict[str, np.ndarray], n: int) -> None:
                y = self._view(bufs, layer.name, n)
                y[...] = self._view(bufs, layer.inputs[0], n).mean(axis=(2, 3), keepdims=True)
            return CStep(layer, gap, "library", 0)
        if op == "flatten" and self._one_phase(layer.inputs[0]):
            # a copy into plain NCHW order, which is the flattened order (render_relayout)
            plain = Layout(*self.shapes[layer.inputs[0]])
            if self.layouts[layer.name].image != plain.image:
                raise LRError(f"layer {layer.name!r}: flatten of {plain} into "
                              f"{self.layouts[layer.name]}")
            return self._elementwise_step(
                layer, render_relayout(self.layouts[layer.inputs[0]], plain), "wb_relayout")
        if op == "flatten":
            def flatten(bufs: dict[str, np.ndarray], n: int) -> None:
                x = self._view(bufs, layer.inputs[0], n)
                bufs[layer.name].reshape(n, -1)[:, :x[0].size] = x.reshape(n, -1)
            return CStep(layer, flatten, "library", 0)
        if op == "act":
            def act(bufs: dict[str, np.ndarray], n: int) -> None:
                y = self._view(bufs, layer.name, n)
                y[...] = self._view(bufs, layer.inputs[0], n)
                _act_inplace(y, a["act"])
            return CStep(layer, act, "library", 0)
        raise LRError(f"layer {layer.name!r}: op {op!r} has no C runtime step")

    def _blocked_conv_step(self, layer: Layer) -> CStep:
        """A conv writing a channel-blocked value (render_blocked): a 1x1 reads a plain or
        blocked input in place; a depthwise input held otherwise (or with too small a border)
        is copied in first, likewise a fused residual."""
        ins = self._conv_inputs(layer)
        dst_lay = self.layouts[layer.name]
        c, o = int(layer.attrs["in_channels"]), int(layer.attrs["out_channels"])
        weight = np.asarray(layer.params["weight"], np.float32)
        bias = np.asarray(layer.params.get("bias", np.zeros(o, np.float32)), np.float32)
        if is_pointwise_layer(layer):
            fn = build_c(render_blocked_gemm(layer, ins.src_lay, dst_lay, ins.res_lay)).wb_bgemm
            fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int, ctypes.c_int]
            wpk = pack_gemm_weights(weight.reshape(o, c), self.vector)
            bpad = np.zeros(wpk.shape[0] * wpk.shape[2], np.float32)   # whole groups
            bpad[:o] = bias
            consts: tuple[np.ndarray, ...] = (wpk, bpad)
        else:
            fn = build_c(render_blocked_depthwise(layer, ins.src_lay, dst_lay)).wb_bdw
            fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int, ctypes.c_int]
            consts = (pack_depthwise_weights(weight, self.vector), bias)

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            threads = default_threads()
            calls, src, res = ins.bind(bufs, n, threads)
            addrs = [src.ctypes.data, bufs[layer.name].ctypes.data,
                     *(k.ctypes.data for k in consts)]
            if res is not None:
                addrs.append(res.ctypes.data)
            elif is_pointwise_layer(layer):
                addrs.append(None)      # the GEMM's residual argument, unused
            calls.append((fn, (*addrs, n, threads)))
            return calls

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            for f, args in bind(bufs, n):
                f(*args)
        out = self.shapes[layer.name]
        st = CStep(layer, run, "generated", layer.kernel_patterns.kept_weights * out[1] * out[2],
                   bind=bind)
        ins.record(st, self.layouts)
        return st

    def _fused_expansion_step(self, layer: Layer) -> CStep:
        """A fused expansion + depthwise conv (render_fused), reading its input in place: it
        is plain and one-phase (producers write one phase, and a value is held channel-blocked
        only when all its readers have blocked kernels, which this one has not)."""
        a, p = layer.attrs, layer.params
        v = layer.inputs[0]
        c, h, w = self.shapes[v]
        m = int(a["expand"]["channels"])
        src_lay = self.layouts[v]
        if src_lay.phases != 1 or src_lay.cb != 1:
            raise LRError(f"layer {layer.name!r}: a fused expansion reads a plain one-phase "
                          f"input, not {src_lay}")
        dst_lay = self.layouts[layer.name]
        # the depthwise conv alone, for the tap code's geometry (its input: the ring rows)
        dw = Layer(layer.name, "conv2d", [v], {**a, "in_channels": m},
                   {"weight": p["weight"], "bias": p["bias"]})
        ir = conv_ir(dw, (m, h, w), self.vector, dst=dst_lay)
        geo = fused_geometry(c, m, h, w, int(a["stride"][0]), src_lay, self.vector)
        source = render_expand_depthwise(ir, geo, src_lay, a["expand"]["act"])
        if debug():
            print(f"# workbench: C kernel for fused expansion + depthwise {layer.name}\n{source}")
        fn = build_c(source).wb_exdw
        fn.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int, ctypes.c_int]
        consts = pack_fused_weights(p["expand_weight"], p["expand_bias"], p["weight"], p["bias"],
                                    geo.to)

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            return [(fn, (bufs[v].ctypes.data, bufs[layer.name].ctypes.data,
                          *(k.ctypes.data for k in consts), n, default_threads()))]

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            for f, args in bind(bufs, n):
                f(*args)
        out = self.shapes[layer.name]
        fmas = m * c * h * w + dw.kernel_patterns.kept_weights * out[1] * out[2]
        return CStep(layer, run, "generated", fmas, bind=bind)

    def _fused_projection_step(self, layer: Layer) -> CStep:
        """A depthwise conv fused with its 1x1 projection (render_fused): the input read as
        the depthwise conv reads it, the residual in the output's layout, in place or copied
        first (_conv_inputs)."""
        ins = self._conv_inputs(layer)
        dw = fused_depthwise(layer)
        c, h, w = self.shapes[ins.src_v]
        o = int(layer.attrs["out_channels"])
        dst_lay = self.layouts[layer.name]
        ir = conv_ir(dw, (c, h, w), self.vector, src=ins.src_lay)
        source = render_depthwise_project(ir, o, dst_lay, ins.res_lay, layer.attrs["act"])
        if debug():
            print(f"# workbench: C kernel for fused depthwise + projection {layer.name}\n{source}")
        fn = build_c(source).wb_dwpj
        fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int, ctypes.c_int]
        p = layer.params
        consts = (np.ascontiguousarray(np.asarray(p["dw_weight"]).reshape(c, 9), np.float32),
                  np.ascontiguousarray(p["dw_bias"], np.float32),
                  pack_projection_weights(np.asarray(p["weight"], np.float32).reshape(o, c),
                                          channel_group(o)),
                  np.ascontiguousarray(p.get("bias", np.zeros(o, np.float32)), np.float32))

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            threads = default_threads()
            calls, src, res = ins.bind(bufs, n, threads)
            calls.append((fn, (src.ctypes.data, bufs[layer.name].ctypes.data,
                               *(k.ctypes.data for k in consts),
                               None if res is None else res.ctypes.data, n, threads)))
            return calls

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            for f, args in bind(bufs, n):
                f(*args)
        out = self.shapes[layer.name]
        fmas = (9 * c + o * c) * out[1] * out[2]
        st = CStep(layer, run, "generated", fmas, bind=bind)
        ins.record(st, self.layouts)
        return st

    def _relayout(self, v: str, to: Layout) -> Any:
        """The C kernel copying value v from its layout into `to` (render_relayout)."""
        if self.layouts[v].phases != 1:
            raise LRError(f"value {v!r} is held in stride phases ({self.layouts[v]}); only "
                          f"one-phase values are copied into another layout")
        return _copier(self.layouts[v], to)

    def _elementwise_step(self, layer: Layer, source: str, symbol: str) -> CStep:
        """A step running a render_elementwise kernel `symbol(in..., out, n, threads)` on the
        buffers of layer's inputs and output (addresses cached across calls)."""
        names = (*layer.inputs, layer.name)
        fn = getattr(build_c(source), symbol)
        fn.argtypes = [ctypes.c_void_p] * len(names) + [ctypes.c_int, ctypes.c_int]
        addr = _Addresses()

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            fn(*(addr(i, bufs[v]) for i, v in enumerate(names)), n, default_threads())

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            return [(fn, (*(bufs[v].ctypes.data for v in names), n, default_threads()))]
        return CStep(layer, run, "generated", 0, bind=bind)

    def _one_phase(self, *values: str) -> bool:
        """True if every value is a (C, H, W) map held in one phase (the elementwise C
        kernels' layouts)."""
        return all(len(self.shapes[v]) == 3 and self.layouts[v].phases == 1 and
                   self.layouts[v].cb == 1 for v in values)

    # --- buffers -----------------------------------------------------------------------------
    def _assign_slots(self) -> dict[str, int]:
        """A buffer slot per value; a dead value's slot is reused by a later value of the same
        layout (same zero border, so nothing needs clearing). Records each slot's live steps
        (self.slot_live: first write, last read; -1 is the input copy, len(layers) the
        outputs' read-out) for the arena."""
        last: dict[str, int] = {}
        for i, layer in enumerate(self.lr.layers):
            for v in layer.inputs:
                last[v] = i
        for o in self.lr.outputs:
            last[o] = len(self.lr.layers)
        free: dict[Layout, list[int]] = {}
        slots: dict[str, int] = {}
        self.slot_layouts: list[Layout] = []
        self.slot_live: list[list[int]] = []

        def take(v: str, i: int) -> None:
            lay = self.layouts[v]
            if free.get(lay):
                slots[v] = free[lay].pop()
            else:
                slots[v] = len(self.slot_layouts)
                self.slot_layouts.append(lay)
                self.slot_live.append([i, i])
            live = self.slot_live[slots[v]]
            live[1] = max(live[1], last.get(v, i))
        for v in self.lr.inputs:
            take(v, -1)
        for i, step in enumerate(self.steps):
            for p in step.copies:
                take(p, i)
            take(step.layer.name, i)
            dead = [v for v in [*step.layer.inputs, *step.copies] if last.get(v, i) <= i]
            for v in dead:
                free.setdefault(self.layouts[v], []).append(slots[v])
        return slots

    def _arena_offsets(self) -> dict[int, int]:
        """Slot -> offset in floats per image in the shared arena: slots live at disjoint
        steps share memory (greedy by size, as TFLite's arena planner). In it: the slots
        whose every float is a pixel (nothing to keep zero), and with ARENA_BORDERED the
        one-phase bordered ones made by a step (their borders are cleared before it runs:
        _clears). Outside it: handed-out outputs, stride-phased slots and a bordered input."""
        handed = set(self._handed_out.values())
        # each slot keeps SLACK floats after its image, as a buffer of its own does: a
        # whole-vector store of a last partial vector lands there, not in a live neighbour
        sizes = {s: self._arena_size(s) for s, lay in enumerate(self.slot_layouts)
                 if s not in handed and (lay.tight or ARENA_BORDERED and lay.phases == 1
                                         and self.slot_live[s][0] >= 0)}
        placed: list[tuple[int, int, int]] = []   # (offset, end, slot)
        offsets: dict[int, int] = {}
        for s in sorted(sizes, key=lambda s: (-sizes[s], s)):
            first, last = self.slot_live[s]
            busy = sorted((o, e) for o, e, t in placed
                          if self.slot_live[t][0] <= last and first <= self.slot_live[t][1])
            at = 0
            for o, e in busy:
                if at + sizes[s] <= o:
                    break
                at = max(at, e)
            offsets[s] = at
            placed.append((at, at + sizes[s], s))
        return offsets

    def _arena_size(self, s: int) -> int:
        """Floats per image slot s takes in the arena: its image to a whole vector, and
        SLACK."""
        return round_up(self.slot_layouts[s].image, 16) + SLACK

    def _arena_floats(self, offsets: dict[int, int]) -> int:
        """Floats per image of the arena holding the slots at these offsets."""
        return max((o + self._arena_size(s) for s, o in offsets.items()), default=0)

    def _clears(self, offsets: dict[int, int]) -> dict[int, list[int]]:
        """Step -> the bordered arena slots whose borders it clears before running: those
        it makes first (other slots' values may have been there since the last call)."""
        out: dict[int, list[int]] = {}
        for s in sorted(offsets):
            if not self.slot_layouts[s].tight:
                out.setdefault(self.slot_live[s][0], []).append(s)
        return out

    def buffers(self, n: int) -> dict[str, np.ndarray]:
        """Value name -> buffer (N, image) for batch n (allocated once per n): the arena's
        slots as views into it, the others allocated alone."""
        if n not in self._buffers:
            offsets = self._arena_offsets()
            arena = aligned_floats(n * self._arena_floats(offsets))
            mem = [arena[n * offsets[s]:n * offsets[s] + n * lay.image].reshape(n, lay.image)
                   if s in offsets else lay.alloc(n) for s, lay in enumerate(self.slot_layouts)]
            self._buffers = {n: {v: mem[s] for v, s in self._slots.items()}}
            self.arena = arena
            self._clear_slots = self._clears(offsets)
            self._slot_memory = mem
        return self._buffers[n]

    def _clear_calls(self, i: int, n: int, threads: int) -> list[Call]:
        """The calls clearing the borders of the slots step i makes first (buffers(n))."""
        calls: list[Call] = []
        for s in self._clear_slots.get(i, []):
            lay = self.slot_layouts[s]
            if lay not in self._clearers:
                fn = build_c(render_clear_border(lay)).wb_clear
                fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
                self._clearers[lay] = fn
            calls.append((self._clearers[lay], (self._slot_memory[s].ctypes.data, n, threads)))
        return calls

    def allocated_bytes(self, n: int) -> int:
        """Bytes of activation buffers for batch n (the arena and the slots outside it)."""
        offsets = self._arena_offsets()
        return 4 * n * (self._arena_floats(offsets) + sum(
            lay.image for s, lay in enumerate(self.slot_layouts) if s not in offsets))

    def _runs(self, bufs: dict[str, np.ndarray], n: int) -> list[Any]:
        """The steps as runs: (BoundCalls, names, handed-out slot -> positions of its
        address in the calls' args, position of the input's address or None) for
        consecutive steps whose calls bind to these buffers (one driver call each), else the
        CStep itself; cached per buffers and thread count (bound arguments hold both). When
        the first step binds, the first run copies the input in too (its prologue)."""
        threads = default_threads()
        if self._bound is not None and self._bound[0] is bufs and self._bound[1] == threads:
            return self._bound[2]
        runs: list[Any] = []
        pending: list[tuple[str, list[Call]]] = []
        (name,) = self.lr.inputs
        prologue: list[Call] = []
        if self.steps and self.steps[0].bind is not None and len(self.shapes[name]) == 3:
            # the input's address (0 here) is written into args on each call
            prologue = [(self._input_copier(), (0, bufs[name].ctypes.data, n, threads))]

        def flush() -> None:
            nonlocal prologue
            if pending:
                calls = BoundCalls([c for _, c in pending], prologue)
                # where the calls hold the address of a slot handed out as an output
                at = {s: np.flatnonzero(calls.args == bufs[v].ctypes.data)
                      for v, s in self._handed_out.items()}
                runs.append((calls, [nm for nm, _ in pending], at, 1 if prologue else None))
                pending.clear()
                prologue = []
        for i, step in enumerate(self.steps):
            clears = self._clear_calls(i, n, threads)
            if step.bind is not None:
                pending.append((step.layer.name, clears + step.bind(bufs, n)))
            else:
                flush()
                runs.append(step)
                self._python_clears[step.layer.name] = clears
        flush()
        self._bound = (bufs, threads, runs)
        return runs

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run all steps on x (N, C, H, W); returns the outputs as (N, ...) arrays (each
        step's seconds: times())."""
        fast = self._fast
        if fast is not None and x.dtype == np.float32 and x.flags.c_contiguous and \
                x.shape[0] == fast.n and self._buffers.get(fast.n) is fast.bufs and \
                default_threads() == fast.threads:
            return fast(self, x)
        return self._run(x)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        """run() the long way: any input, steps run from Python too; sets up the short way
        (_FastRun) where a single driver call does everything."""
        import time
        x = float32_input(x, "network")   # contiguous: its address goes to the C copy
        n = x.shape[0]
        bufs = self.buffers(n)
        runs = self._runs(bufs, n)
        # a plain output is written straight into a new array (no copy out): every value of
        # its slot gets that array for this call, in the bound calls too
        fresh = {s: aligned_floats(n * image, zero=False).reshape(n, image)
                 for s, image in self._handed_images.items()}
        copied_in = not isinstance(runs[0], CStep) and runs[0][3] is not None
        if fresh and not (copied_in and len(runs) == 1):
            # steps run from Python (or the input copy) find the new arrays in bufs
            bufs = {v: fresh.get(s, bufs[v]) for v, s in self._slots.items()}
        if copied_in:
            runs[0][0].args[runs[0][3]] = x.ctypes.data
        else:
            self._write_input(bufs, x)
        self._times = {}
        self._timed = []
        for r in runs:
            if isinstance(r, CStep):
                t0 = time.perf_counter()
                for fn, args in self._python_clears[r.layer.name]:
                    fn(*args)
                r.run(bufs, n)
                self._times[r.layer.name] = time.perf_counter() - t0
            else:
                calls, names, at, _ = r
                for s, pos in at.items():
                    calls.args[pos] = fresh[s].ctypes.data
                calls.run()
                self._timed.append((names, calls))
        out = self.lr.outputs[0] if len(self.lr.outputs) == 1 else None
        if copied_in and len(runs) == 1 and out in self._handed_out:
            calls, names, at, x_pos = runs[0]
            self._fast = _FastRun(n, default_threads(), self._buffers[n], calls, names, x_pos,
                                  [int(p) for p in at[self._handed_out[out]]],
                                  self._handed_images[self._handed_out[out]],
                                  (n, *self.shapes[out]))
        return [fresh[self._handed_out[o]].reshape(n, *self.shapes[o]) if o in self._handed_out
                else self._read_output(bufs, o, n) for o in self.lr.outputs]

    def times(self) -> dict[str, float]:
        """Seconds per step of the latest run, in execution order."""
        for names, calls in self._timed:
            self._times.update(zip(names, calls.times().tolist()))
        self._timed = []
        return {s.layer.name: self._times[s.layer.name] for s in self.steps
                if s.layer.name in self._times}

    # The network's input and outputs are copied by C kernels on every thread: NumPy's
    # one-thread strided copies of a 64 x 224 x 224 value (12.8 MB) into the bordered input
    # layout and out of the output took 0.76 and 0.50 ms of VGG-16's features.3 run alone at
    # 2 threads (2.44 ms of kernel).
    def _write_input(self, bufs: dict[str, np.ndarray], x: np.ndarray) -> None:
        """Store x (N, C, H, W) into the input value's buffer, in its layout."""
        (name,) = self.lr.inputs
        lay = self.layouts[name]
        if len(self.shapes[name]) != 3:
            lay.write(bufs[name], x)
            return
        self._input_copier()(x.ctypes.data, bufs[name].ctypes.data, x.shape[0],
                             default_threads())

    def _input_copier(self) -> Any:
        """The C copy of a plain (N, C, H, W) input into the input value's layout."""
        if self._copy_in is None:
            (name,) = self.lr.inputs
            self._copy_in = _copier(Layout(*self.shapes[name]), self.layouts[name])
        return self._copy_in

    def _read_output(self, bufs: dict[str, np.ndarray], v: str, n: int) -> np.ndarray:
        """A new (n, *shape) array holding output value v."""
        lay = self.layouts[v]
        if v in self._handed_out:
            return bufs[v].reshape(n, *self.shapes[v])
        if len(self.shapes[v]) != 3 or lay.phases != 1:
            return np.array(self._view(bufs, v, n))
        if v not in self._copy_out:
            self._copy_out[v] = _copier(lay, Layout(*self.shapes[v]))
        out = np.empty((n, *self.shapes[v]), np.float32)
        self._copy_out[v](bufs[v].ctypes.data, out.ctypes.data, n, default_threads())
        return out


def _copier(src: Layout, dst: Layout) -> Any:
    """wb_relayout(x, y, n, threads) copying an (n, C, H, W) value from one-phase layout src
    into dst (render_relayout), as a ctypes function taking addresses."""
    blocked = src.cb > 1 or dst.cb > 1
    fn = build_c(render_blocked_relayout(src, dst) if blocked else
                 render_relayout(src, dst)).wb_relayout
    fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_int]
    return fn


class _Addresses:
    """Data addresses of the arrays last passed in each argument slot (each .ctypes.data
    costs ~1.5 us, a good part of a small elementwise step)."""

    def __init__(self) -> None:
        self._hits: dict[int, tuple[np.ndarray, int]] = {}

    def __call__(self, slot: int, a: np.ndarray) -> int:
        hit = self._hits.get(slot)
        if hit is None or hit[0] is not a:
            hit = self._hits[slot] = (a, a.ctypes.data)
        return hit[1]


def _act_inplace(y: np.ndarray, act: str) -> None:
    if act == "relu":
        np.maximum(y, 0.0, out=y)
    elif act == "relu6":
        np.clip(y, 0.0, 6.0, out=y)


def plan_summary(plan: CPlan) -> list[dict[str, Any]]:
    """Per value: its layout and whether a reader copies it (for debugging and notebooks)."""
    return [{"value": v, "layout": plan.layouts[v], "slot": plan._slots.get(v)}
            for v in plan.shapes]
