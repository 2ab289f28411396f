"""What each layer of a C plan runs: the step (kernel, bound call, copies) made per layer.

StepBuilder turns an LR layer and its schedule into a CStep given the plan's layouts: the
conv kernels (compile_layer, the blocked and fused kernels of c/), the linear, pooling and
elementwise kernels, and the relayout copies a reader needs first.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.codegen.build import debug
from workbench.codegen.c.blocked import (pack_depthwise_weights, pack_gemm_weights,
    render_blocked_depthwise, render_blocked_gemm, render_blocked_global_avgpool,
    render_blocked_relayout)
from workbench.codegen.c.elementwise import (render_add, render_global_avgpool, render_maxpool,
    render_relayout)
from workbench.codegen.c.image_ops import (render_broadcast, render_concat,
    render_instance_norm, render_pixel_shuffle, render_unary, render_upsample)
from workbench.codegen.c.fused import (channel_group, fused_geometry, pack_fused_weights,
    pack_projection_weights, render_depthwise_project, render_expand_depthwise)
from workbench.codegen.c.fused_pointwise import (pack_pair_weights, pair_geometry,
    render_pointwise_pair)
from workbench.codegen.host.build import build_c, build_numba
from workbench.codegen.host.driver import Call
from workbench.codegen.host.image_ops import activation
from workbench.codegen.host.fusion import (fused_depthwise, is_fused_expansion,
    is_fused_pointwise, is_fused_projection)
from workbench.codegen.host.kernel import CompiledLayer
from workbench.codegen.host.layouts import _accepts, _preferred
from workbench.codegen.host.linear import LinearKernel
from workbench.codegen.host.parallel import default_threads, run_jobs
from workbench.codegen.host.render_numba import render_numba
from workbench.codegen.ir import Layout, conv_ir, is_pointwise_layer
from workbench.codegen.lr import Layer, LRError
from workbench.codegen.schedule import Schedule


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


class StepBuilder:
    """Makes the CStep of each layer of a plan whose values have these layouts (shapes:
    value -> (C, H, W) or (F,); blocked: the layers running channel-blocked kernels)."""

    def __init__(self, layouts: dict[str, Layout], shapes: dict[str, tuple[int, ...]],
                 vector: int, blocked: set[str]) -> None:
        self.layouts, self.shapes, self.vector, self.blocked = layouts, shapes, vector, blocked

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

    def view(self, bufs: dict[str, np.ndarray], v: str, n: int) -> np.ndarray:
        lay = self.layouts[v]
        if len(self.shapes[v]) == 1:
            return bufs[v].reshape(n, -1)[:, :self.shapes[v][0]]
        return lay.read(bufs[v], n)

    def step(self, layer: Layer, given: Schedule | None) -> CStep:
        op, a = layer.op, layer.attrs
        sched = given or Schedule()
        out = self.shapes[layer.name]
        if op == "conv2d" and layer.name in self.blocked:
            return self._blocked_conv_step(layer)
        if is_fused_expansion(layer):
            return self._fused_expansion_step(layer)
        if is_fused_projection(layer):
            return self._fused_projection_step(layer)
        if is_fused_pointwise(layer):
            return self._fused_pointwise_step(layer)
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
            return self._linear_step(layer, sched)
        if op == "maxpool2d" and self._one_phase(layer.inputs[0], layer.name):
            lays = [self.layouts[v] for v in (layer.inputs[0], layer.name)]
            return self._elementwise_step(layer, render_maxpool(layer, *lays), "wb_maxpool")
        if op in ("maxpool2d", "avgpool2d"):
            fn = build_numba(render_numba(layer, sched))

            def pool(bufs: dict[str, np.ndarray], n: int) -> None:
                x = self.view(bufs, layer.inputs[0], n)
                y = self.view(bufs, layer.name, n)
                run_jobs(fn, (x, y), default_threads(), x.size)
            return CStep(layer, pool, "generated", 0)
        if op == "add" and self._one_phase(*layer.inputs, layer.name):
            lays = [self.layouts[v] for v in (*layer.inputs, layer.name)]
            return self._elementwise_step(layer, render_add(*lays, a["act"]), "wb_add")
        if op == "add":
            def add(bufs: dict[str, np.ndarray], n: int) -> None:
                y = self.view(bufs, layer.name, n)
                np.add(self.view(bufs, layer.inputs[0], n), self.view(bufs, layer.inputs[1], n),
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
                y = self.view(bufs, layer.name, n)
                y[...] = self.view(bufs, layer.inputs[0], n).mean(axis=(2, 3), keepdims=True)
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
                x = self.view(bufs, layer.inputs[0], n)
                bufs[layer.name].reshape(n, -1)[:, :x[0].size] = x.reshape(n, -1)
            return CStep(layer, flatten, "library", 0)
        if op in ("pixel_shuffle", "upsample", "concat", "instance_norm", "broadcast") or \
                (op == "act" and self._one_phase(layer.inputs[0], layer.name)):
            return self._image_op_step(layer)
        if op == "act":
            def act(bufs: dict[str, np.ndarray], n: int) -> None:
                y = self.view(bufs, layer.name, n)
                y[...] = self.view(bufs, layer.inputs[0], n)
                _act_inplace(y, a["act"])
            return CStep(layer, act, "library", 0)
        raise LRError(f"layer {layer.name!r}: op {op!r} has no C runtime step")

    def _blocked_conv_step(self, layer: Layer) -> CStep:
        """A conv writing a channel-blocked value (c.blocked): a 1x1 reads a plain or
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
        """A fused expansion + depthwise conv (c.fused), reading its input in place: it
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
        fn.argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int, ctypes.c_int]
        consts = pack_fused_weights(p["expand_weight"], p["expand_bias"], p["weight"], p["bias"],
                                    geo.to)

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            return [(fn, (bufs[v].ctypes.data, bufs[layer.name].ctypes.data,
                          *(k.ctypes.data for k in consts), n, default_threads()))]

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            for f, args in bind(bufs, n):
                f(*args)
        out = self.shapes[layer.name]
        visited = int(consts[1][-1])    # cptr's end: (channel, group) pairs the expansion visits
        fmas = visited * geo.to * h * w + dw.kernel_patterns.kept_weights * out[1] * out[2]
        return CStep(layer, run, "generated", fmas, bind=bind)

    def _fused_projection_step(self, layer: Layer) -> CStep:
        """A depthwise conv fused with its 1x1 projection (c.fused): the input read as
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
        fn.argtypes = [ctypes.c_void_p] * 9 + [ctypes.c_int, ctypes.c_int]
        p = layer.params
        to = channel_group(o)
        wpk, cptr, clist = pack_projection_weights(
            np.asarray(p["weight"], np.float32).reshape(o, c), to)
        consts = (np.ascontiguousarray(np.asarray(p["dw_weight"]).reshape(c, 9), np.float32),
                  np.ascontiguousarray(p["dw_bias"], np.float32), wpk, cptr, clist,
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
        fmas = (9 * c + int(cptr[-1]) * to) * out[1] * out[2]
        st = CStep(layer, run, "generated", fmas, bind=bind)
        ins.record(st, self.layouts)
        return st

    def _fused_pointwise_step(self, layer: Layer) -> CStep:
        """A 1x1 expansion fused with its 1x1 reduction (c.fused_pointwise), reading its input
        in place (plain and one-phase: a value is held blocked or phased only for readers
        with such kernels, which this one is not) and writing the output's layout."""
        a, p = layer.attrs, layer.params
        v = layer.inputs[0]
        c, h, w = self.shapes[v]
        m, o = int(a["pointwise_expand"]["channels"]), int(a["out_channels"])
        src_lay, dst_lay = self.layouts[v], self.layouts[layer.name]
        if src_lay.phases != 1 or src_lay.cb != 1:
            raise LRError(f"layer {layer.name!r}: a fused 1x1 pair reads a plain one-phase "
                          f"input, not {src_lay}")
        geo = pair_geometry(c, m, o, h, w, self.vector)
        source = render_pointwise_pair(geo, src_lay, dst_lay, a["pointwise_expand"]["act"],
                                       a["act"])
        if debug():
            print(f"# workbench: C kernel for fused 1x1 pair {layer.name}\n{source}")
        fn = build_c(source).wb_pwpair
        fn.argtypes = [ctypes.c_void_p] * 10 + [ctypes.c_int, ctypes.c_int]
        consts = pack_pair_weights(p["expand_weight"], p["expand_bias"], p["weight"], p["bias"],
                                   geo)

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            # consts by reference: the closure keeps them alive (the arm64 exporter finds
            # them through it)
            return [(fn, (bufs[v].ctypes.data, bufs[layer.name].ctypes.data,
                          *(k.ctypes.data for k in consts), n, default_threads()))]

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            for f, args in bind(bufs, n):
                f(*args)
        # (channel, tile) pairs each half visits: cptr's ends
        fmas = (int(consts[1][-1]) * geo.to1 + int(consts[5][-1]) * geo.to2) * h * w
        return CStep(layer, run, "generated", fmas, bind=bind)

    def _relayout(self, v: str, to: Layout) -> Any:
        """The C kernel copying value v from its layout into `to` (render_relayout)."""
        if self.layouts[v].phases != 1:
            raise LRError(f"value {v!r} is held in stride phases ({self.layouts[v]}); only "
                          f"one-phase values are copied into another layout")
        return _copier(self.layouts[v], to)

    def _linear_step(self, layer: Layer, sched: Schedule) -> CStep:
        """A linear layer as a generated GEMV over its weight in the format with the fewest
        bytes (linear_storage.linear_format), or the one sched.kernel names."""
        a = layer.attrs
        cin = int(a["in_features"])
        # sched.threads 0 stays 0: default_threads() is read per call, as for every step
        kern = LinearKernel(layer.params["weight"], layer.params.get("bias"), a["act"],
                            self.vector, sched)
        src_v = layer.inputs[0]

        def linear(bufs: dict[str, np.ndarray], n: int) -> None:
            kern(self.view(bufs, src_v, n).reshape(n, cin), bufs[layer.name])

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            return [(kern.fn, kern.args(bufs[src_v].ctypes.data, bufs[layer.name].ctypes.data, n))]
        # the kernel reads x as (N, cin) rows: bound (run by the driver) where the input
        # buffer is exactly that (a flattened or 1-D value), else copied per call
        flat_in = len(self.shapes[src_v]) == 1 and self.layouts[src_v].image == cin
        return CStep(layer, linear, "generated", kern.kept, bind=bind if flat_in else None)

    def _image_op_step(self, layer: Layer) -> CStep:
        """The apps' steps (c.image_ops) on one-phase, unblocked layouts (their values are
        never blocked or phased: only convs read those)."""
        a = layer.attrs
        lays = [self.layouts[v] for v in (*layer.inputs, layer.name)]
        if any(lay.phases != 1 or lay.cb != 1 for lay in lays):
            raise LRError(f"layer {layer.name!r} ({layer.op}): its values are held in "
                          f"{lays}; its kernel reads and writes one-phase plain layouts")
        src, dst = lays[0], lays[-1]
        if layer.op == "pixel_shuffle":
            return self._elementwise_step(layer, render_pixel_shuffle(src, dst, int(a["upscale"])),
                                          "wb_shuffle")
        if layer.op == "upsample":
            sh, sw = (int(s) for s in a["scale"])
            return self._elementwise_step(layer, render_upsample(src, dst, sh, sw), "wb_upsample")
        if layer.op == "concat":
            return self._elementwise_step(layer, render_concat(lays[:-1], dst), "wb_concat")
        if layer.op == "broadcast":
            return self._elementwise_step(layer, render_broadcast(src, dst), "wb_broadcast")
        if layer.op == "instance_norm":
            consts = tuple(np.ascontiguousarray(layer.params[k], np.float32)
                           for k in ("gamma", "beta"))
            return self._elementwise_step(layer, render_instance_norm(src, dst, float(a["eps"]),
                                                                      a["act"]),
                                          "wb_inorm", consts)
        return self._elementwise_step(layer, render_unary(src, dst, a["act"]), "wb_unary")

    def _elementwise_step(self, layer: Layer, source: str, symbol: str,
                          consts: tuple[np.ndarray, ...] = ()) -> CStep:
        """A step running a generated kernel `symbol(in..., out, consts..., n, threads)` on
        the buffers of layer's inputs and output (addresses cached across calls)."""
        names = (*layer.inputs, layer.name)
        fn = getattr(build_c(source), symbol)
        fn.argtypes = [ctypes.c_void_p] * (len(names) + len(consts)) + [ctypes.c_int, ctypes.c_int]
        addr = _Addresses()
        caddr = tuple(k.ctypes.data for k in consts)

        def run(bufs: dict[str, np.ndarray], n: int) -> None:
            fn(*(addr(i, bufs[v]) for i, v in enumerate(names)), *caddr, n, default_threads())

        def bind(bufs: dict[str, np.ndarray], n: int) -> list[Call]:
            # consts by reference: the closure keeps them alive (and the arm64 exporter
            # finds them through it)
            return [(fn, (*(bufs[v].ctypes.data for v in names),
                          *(k.ctypes.data for k in consts), n, default_threads()))]
        return CStep(layer, run, "generated", 0, bind=bind)

    def _one_phase(self, *values: str) -> bool:
        """True if every value is a (C, H, W) map held in one phase (the elementwise C
        kernels' layouts)."""
        return all(len(self.shapes[v]) == 3 and self.layouts[v].phases == 1 and
                   self.layouts[v].cb == 1 for v in values)


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


def _copier(src: Layout, dst: Layout) -> Any:
    """wb_relayout(x, y, n, threads) copying an (n, C, H, W) value from one-phase layout src
    into dst (render_relayout), as a ctypes function taking addresses."""
    blocked = src.cb > 1 or dst.cb > 1
    fn = build_c(render_blocked_relayout(src, dst) if blocked else
                 render_relayout(src, dst)).wb_relayout
    fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_int]
    return fn


def _act_inplace(y: np.ndarray, act: str) -> None:
    activation(y, act)
