"""compile_layer: one pruned conv layer -> LR layer -> generated kernel you can call.

    kernel = compile_layer(conv, emitter="numba")
    y = kernel(x)          # x (N, C, H, W) float32 -> (N, O, Ho, Wo), as F.conv2d
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from workbench.codegen.build import debug
from workbench.codegen.c.pblock import uses_pblock
from workbench.codegen.c.pointwise import pointwise_rows
from workbench.codegen.c.render import default_kernel, kernel_kind, render_c
from workbench.codegen.c.taps import tap_offsets, uses_taps
from workbench.codegen.host.build import build_c, build_numba, host_vector_width
from workbench.codegen.host.parallel import default_threads, run_jobs
from workbench.codegen.host.render_numba import render_numba
from workbench.codegen.inputs import float32_input, is_torch
from workbench.codegen.ir import ConvIR, Layout, conv_ir, is_pointwise_layer
from workbench.codegen.lr import Layer, LRError, conv_layer
from workbench.codegen.schedule import (Schedule, c_default_schedule, column_default_schedule,
    default_schedule, depthwise_default_schedule, direct_default_schedule)
from workbench.codegen.storage import (FKW, BlockSparse, TapPack, pack, pack_block_sparse,
    pack_blocked, pack_columns, pack_direct, pack_taps)

EMITTERS = ("numba", "c")


def _conv_args(conv: Any) -> dict[str, Any]:
    """Weight, bias and geometry of a torch.nn.Conv2d (its masked weight if pruned)."""
    import torch

    if not isinstance(conv, torch.nn.Conv2d):
        raise TypeError(f"compile_layer takes a torch.nn.Conv2d or a weight array, got "
                        f"{type(conv).__name__}")
    if conv.padding_mode != "zeros":
        raise LRError(f"Conv2d padding_mode {conv.padding_mode!r} is not supported (zeros only)")
    pad = conv.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        elif all(k % 2 == 1 for k in conv.kernel_size) and tuple(conv.stride) == (1, 1):
            pad = tuple(d * (k - 1) // 2 for d, k in zip(conv.dilation, conv.kernel_size))
        else:
            raise LRError(f"Conv2d padding='same' with kernel {conv.kernel_size} and stride "
                          f"{conv.stride} is asymmetric; not supported")
    with torch.no_grad():
        w = conv.weight.detach().to(torch.float32).cpu().numpy()
        b = None if conv.bias is None else conv.bias.detach().to(torch.float32).cpu().numpy()
    return {"weight": w, "bias": b, "stride": tuple(conv.stride), "padding": tuple(pad),
            "dilation": tuple(conv.dilation), "groups": int(conv.groups)}


class CompiledLayer:
    """A generated kernel for one conv layer: call it on (N, C, H, W) float32 arrays.

    Attributes: lr (the LR Layer), source (rendered text of the latest build), schedule,
    emitter, fkw (packed weights), num_patterns, kept_kernels, total_kernels. The C emitter
    specialises on the input's height and width, so it builds on the first call per input
    shape (or at once if input_shape (C, H, W) is given). One call at a time per object: it
    keeps its input and scratch buffers between calls.
    """

    def __init__(self, layer: Layer, emitter: str = "numba", schedule: Schedule | None = None,
                 input_shape: tuple[int, int, int] | None = None) -> None:
        if emitter not in EMITTERS:
            raise ValueError(f"unknown emitter {emitter!r}; choose one of {EMITTERS}")
        if layer.op != "conv2d":
            raise LRError(f"compile_layer compiles conv2d layers, got {layer.op!r}")
        self.lr = layer
        self.emitter = emitter
        self._explicit = schedule is not None
        self.schedule = schedule or default_schedule(emitter)
        kp = layer.kernel_patterns
        self.num_patterns = kp.num_patterns
        self.kept_kernels = kp.kept_kernels
        self.total_kernels = kp.total_kernels
        self.kept_weights = kp.kept_weights
        order = layer.params.get("filter_order")
        self.fkw: FKW = pack(layer.params["weight"], kp, order)
        a = layer.attrs
        o = int(a["out_channels"])
        self._bias = layer.params.get("bias", np.zeros(o, np.float32)).astype(np.float32)
        self._pad = tuple(int(v) for v in a["padding"])
        self._stride = tuple(int(v) for v in a["stride"])
        self._in_channels = int(a["in_channels"])
        self._bufs: dict[tuple[int, ...], tuple] = {}
        self._c: dict[tuple, tuple[ConvIR, Any]] = {}
        self._taps: dict[tuple, TapPack] = {}
        self._bs: BlockSparse | None = None
        self._pb: FKW | None = None   # the pblock kernel's (block, pattern) packing
        # depthwise / direct / column kernels' weights (by layout; column also by tile_o)
        self._dense_w: dict[tuple, np.ndarray] = {}
        self._addrs: dict[str, tuple[np.ndarray, int]] = {}
        self.source = ""
        if emitter == "numba":
            self.source = render_numba(layer, self.schedule)
            self._fn = build_numba(self.source)
            self._announce()
            # Compile now on a tiny input, so the first real call is not a compile.
            kh, kw = layer.attrs["kernel"]
            dh, dw = layer.attrs["dilation"]
            self(np.zeros((1, self._in_channels, dh * (kh - 1) + 1, dw * (kw - 1) + 1),
                          np.float32))
            self._bufs = {}
        elif input_shape is not None:
            self._c_kernel(int(input_shape[1]), int(input_shape[2]))

    def _announce(self) -> None:
        if debug():
            a = self.lr.attrs
            print(f"# workbench: {self.emitter} kernel for conv2d {a['out_channels']}x"
                  f"{a['in_channels']}, schedule {self.schedule.to_dict()}\n{self.source}")

    def _c_kernel(self, h: int, w: int, src: Layout | None = None,
                  dst: Layout | None = None, res: Layout | None = None) -> tuple[ConvIR, Any]:
        """Build (once per input size and layouts) the C kernel for (C, h, w) inputs; res:
        the layout of a residual added before the activation (1x1 GEMM kernels only)."""
        got = self._c.get((h, w, src, dst, res))
        if got is None:
            vec = self.schedule.vector or host_vector_width()
            ir = conv_ir(self.lr, (self._in_channels, h, w), vec, src, dst, res)
            if not self._explicit and not self._c:
                pw = is_pointwise_layer(self.lr)
                self.schedule = c_default_schedule(vec, pw, -(-pointwise_rows(ir)[1] // vec)
                                                   if pw else 0)
                special = default_kernel(ir)
                if special:
                    self.schedule = {"depthwise": depthwise_default_schedule,
                                     "direct": direct_default_schedule,
                                     "column": column_default_schedule}[special](vec)
            self.source = render_c(ir, self.schedule)
            lib = build_c(self.source)
            if is_pointwise_layer(self.lr):
                fn = lib.wb_pointwise
                fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int, ctypes.c_int] + \
                    ([ctypes.c_void_p] if res is not None else [])
            else:
                fn = lib.wb_conv
                fn.argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int, ctypes.c_int]
            fn.restype = ctypes.c_int
            if uses_taps(ir, self.schedule):
                # the taps kernel's offsets depend on the input layout: packed per layout
                self._taps[(h, w, src, dst)] = pack_taps(self.fkw, tap_offsets(ir), ir.src.chan,
                                                         ir.cg, int(self.schedule.cblock))
            if uses_pblock(ir, self.schedule) and self._pb is None:
                self._pb = pack_blocked(self.fkw, ir.cg, int(self.schedule.cblock))
            kind = kernel_kind(ir, self.schedule)
            if kind == "column":
                # the offsets are literals in the source: one packing serves every layout
                key = ("column", int(self.schedule.tile_o))
                if key not in self._dense_w:
                    self._dense_w[key] = pack_columns(
                        self.lr.params["weight"], self.lr.kernel_patterns.kept_columns(),
                        max(1, min(int(self.schedule.tile_o), ir.o)))
                self._dense_w[(h, w, src, dst)] = self._dense_w[key]
            if kind in ("depthwise", "direct"):
                wt = np.asarray(self.lr.params["weight"], np.float32)
                self._dense_w[(h, w, src, dst)] = np.ascontiguousarray(
                    wt.reshape(wt.shape[0], -1)) if kind == "depthwise" else \
                    pack_direct(wt, int(self.schedule.tile_o))
            got = self._c[(h, w, src, dst, res)] = (ir, fn)
            self._announce()
        return got

    def output_shape(self, n: int, h: int, w: int) -> tuple[int, int, int, int]:
        """(N, O, Ho, Wo) for an (N, C, H, W) input."""
        a = self.lr.attrs
        (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["stride"], a["dilation"]
        ph, pw = self._pad
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"input {h}x{w} is smaller than the kernel")
        return n, int(a["out_channels"]), ho, wo

    def _buffers(self, x: np.ndarray, ho: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Input in the Numba kernel's phase layout (N, C, sh * sw, (Hq + 1) * Wq) and the
        accumulator (N, O, Ho * Wq); Hq, Wq = padded height / width over the stride."""
        ph, pw = self._pad
        sh, sw = self._stride
        n, c, h, w = x.shape
        hp, wp = h + 2 * ph, w + 2 * pw
        hq, wq = -(-hp // sh), -(-wp // sw)
        key = x.shape
        bufs = self._bufs.get(key)
        if bufs is None:
            # Kept between calls: only the interior is rewritten, the zero border stays. The
            # spare row lets a flattened tile read past its last row without a bounds branch.
            xq = np.zeros((n, c, sh * sw, hq + 1, wq), dtype=np.float32)
            xp = np.zeros((n, c, hp, wp), np.float32) if (sh, sw) != (1, 1) else None
            acc = np.empty((n, int(self.lr.attrs["out_channels"]), ho * wq), dtype=np.float32)
            bufs = (xq, xp, acc)
            self._bufs = {key: bufs}
        xq, xp, acc = bufs
        if xp is None:
            xq[:, :, 0, ph:ph + h, pw:pw + w] = x
        else:
            xp[:, :, ph:ph + h, pw:pw + w] = x
            for py in range(sh):
                for px in range(sw):
                    plane = xp[:, :, py::sh, px::sw]
                    xq[:, :, py * sw + px, :plane.shape[2], :plane.shape[3]] = plane
        return xq.reshape(n, c, sh * sw, -1), acc, wq

    def run_c(self, src: np.ndarray, dst: np.ndarray, n: int, h: int, w: int,
              src_layout: Layout | None = None, dst_layout: Layout | None = None,
              res: np.ndarray | None = None, res_layout: Layout | None = None) -> None:
        """Run the C kernel on buffers already in its layouts (used by the runtime); res: a
        residual (in res_layout, which is dst_layout) added before the activation."""
        fn, args = self.c_call(src, dst, n, h, w, src_layout, dst_layout, res, res_layout)
        fn(*args)

    def c_call(self, src: np.ndarray, dst: np.ndarray, n: int, h: int, w: int,
               src_layout: Layout | None = None, dst_layout: Layout | None = None,
               res: np.ndarray | None = None, res_layout: Layout | None = None
               ) -> tuple[Any, tuple[int | None, ...]]:
        """(ctypes function, its arguments) of run_c's call: addresses and ints only, so a
        caller may keep them while the buffers live (host.plan's C driver does)."""
        ir, fn = self._c_kernel(h, w, src_layout, dst_layout, res_layout)
        threads = self.schedule.threads or default_threads()
        a = self._addr
        if is_pointwise_layer(self.lr):
            b = self._block_sparse()
            extra = (a("res", res),) if res_layout is not None else ()
            return fn, (a("src", src), a("dst", dst), a("cptr", b.cptr), a("clist", b.clist),
                        a("wpk", b.wpk), a("bias", self._bias), a("order", b.order), n, threads,
                        *extra)
        f = self._pb if self._pb is not None else self.fkw
        dw = self._dense_w.get((h, w, src_layout, dst_layout))
        if dw is not None:
            # only the buffers and the dense weights are read; addresses are cached (each
            # .ctypes.data costs ~1.5 us, as much as a 7x7 depthwise layer's whole kernel)
            return fn, (a("src", src), a("dst", dst), None, None, None, a("w", dw),
                        a("bias", self._bias), None, n, threads)
        tp = self._taps.get((h, w, src_layout, dst_layout))
        if tp is not None:
            return fn, (a("src", src), a("dst", dst), a("kptr", tp.kptr), a("cidx", tp.off),
                        a("wptr", f.wptr), a("wts", tp.wts), a("bias", self._bias),
                        a("order", f.order), n, threads)
        return fn, (a("src", src), a("dst", dst), a("kptr", f.kptr), a("cidx", f.cidx),
                    a("wptr", f.wptr), a("wts", f.wts), a("bias", self._bias), a("order", f.order),
                    n, threads)

    def _addr(self, slot: str, a: np.ndarray) -> int:
        """a's data address, remembered for the array last passed in this argument slot (one
        array per slot is kept alive, so buffers of an old batch size are released)."""
        hit = self._addrs.get(slot)
        if hit is None or hit[0] is not a:
            hit = self._addrs[slot] = (a, a.ctypes.data)
        return hit[1]

    def _block_sparse(self) -> BlockSparse:
        """The weight packed for the pointwise GEMM (built once)."""
        if self._bs is None:
            w = self.lr.params["weight"]
            self._bs = pack_block_sparse(w.reshape(w.shape[0], -1), int(self.schedule.tile_o),
                                         self.lr.params.get("filter_order"))
        return self._bs

    def __call__(self, x: Any) -> Any:
        """y = conv(x): x (N, C, H, W) float32 numpy or torch -> (N, O, Ho, Wo), same kind;
        other float dtypes are converted, others refused (workbench.codegen.inputs)."""
        torch_in = is_torch(x)
        xa = float32_input(x, "layer")
        if xa.ndim != 4 or xa.shape[1] != self._in_channels:
            raise ValueError(f"expected input (N, {self._in_channels}, H, W), got {xa.shape}")
        n, _, h, w = xa.shape
        shape = self.output_shape(n, h, w)
        out = np.empty(shape, np.float32)
        if self.emitter == "c":
            ir, _ = self._c_kernel(h, w)
            key = ("c", *xa.shape)
            src = self._bufs.get(key)
            if src is None:
                src = self._bufs[key] = ir.src.alloc(n)
            ir.src.write(src, xa)
            self.run_c(src, out, n, h, w)
        else:
            xp, acc, wq = self._buffers(xa, shape[2])
            f = self.fkw
            threads = self.schedule.threads or default_threads()
            fmas = self.kept_weights * shape[0] * shape[2] * shape[3]
            run_jobs(self._fn, (xp, f.kptr, f.cidx, f.wptr, f.wts, self._bias, f.order, acc,
                                out, wq), threads, fmas)
        if torch_in:
            import torch
            return torch.from_numpy(out)
        return out

    def __repr__(self) -> str:
        a = self.lr.attrs
        return (f"CompiledLayer({self.emitter}, conv {a['out_channels']}x{a['in_channels']}"
                f"x{a['kernel'][0]}x{a['kernel'][1]}, {self.num_patterns} patterns, "
                f"{self.kept_kernels}/{self.total_kernels} kernels kept)")


def compile_layer(conv: Any = None, emitter: str = "numba", *, weight: Any = None,
                  bias: Any = None, stride: int | tuple = 1, padding: int | tuple = 0,
                  dilation: int | tuple = 1, groups: int = 1, act: str = "none",
                  schedule: Schedule | None = None, name: str = "conv",
                  input_shape: tuple[int, int, int] | None = None) -> CompiledLayer:
    """Compile a pruned conv: a torch.nn.Conv2d, or weight (O, C/groups, kh, kw) + geometry.

    The zeros of the weight say which kernels are removed and each kept kernel's pattern.
    """
    if conv is not None and weight is not None:
        raise TypeError("pass either a Conv2d / weight positionally or weight=, not both")
    if conv is not None and not hasattr(conv, "weight"):
        weight, conv = conv, None  # a bare weight array passed positionally
    if conv is not None:
        args = _conv_args(conv)
    elif weight is not None:
        if hasattr(weight, "detach"):
            weight = weight.detach().cpu().numpy()
        if hasattr(bias, "detach"):
            bias = bias.detach().cpu().numpy()
        args = {"weight": np.asarray(weight, np.float32), "bias": bias, "stride": stride,
                "padding": padding, "dilation": dilation, "groups": groups}
    else:
        raise TypeError("compile_layer needs a Conv2d or weight=")
    layer = conv_layer(act=act, name=name, **args)
    return CompiledLayer(layer, emitter, schedule, input_shape)
