"""LR passes fusing layers into one C kernel: residual adds, expansions, projections, 1x1 pairs.

A 1x1 expansion whose large output (FUSE_MIN_BYTES) only a 3x3 depthwise conv reads runs
fused with it (fuse_expansions), and a depthwise conv whose large output only a 1x1
projection reads runs fused with that (fuse_projections; c.fused): the map between
them is never written. MobileNet-V2-224 has three of the first kind (features.2-4: 3.77 ->
3.54 ms at 1 thread, 1.91 -> 1.78 at 2, in-process A/B) and one of the second (features.1:
another 1-2%, measured in a noisy stretch). A 1x1 expansion whose large output only another
1x1 reads runs fused with it (fuse_pointwise_pairs; c.fused_pointwise): WDSR's 8 blocks
(32 -> 192 -> 26 at 256x256) 117 -> 80 ms at 1 thread (the pair 11.2 -> 7.0 ms).
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from workbench.codegen.c.fused import channel_group
from workbench.codegen.c.fused_pointwise import pair_fits
from workbench.codegen.ir import is_depthwise_layer, is_pointwise_layer
from workbench.codegen.lr import LR, Layer
from workbench.codegen.schedule import Schedule

# A 1x1 expansion is fused with the depthwise conv reading its output, and a depthwise conv
# with the 1x1 projection reading its output (c.fused), where that output would take
# at least this many bytes per image: past the 1 MB L2 it went out to L3 and back
# (MobileNet-V2-224's blocks at 112x112 and 56x56; fusing the 28x28 ones too, which the
# blocked kernels run, lost: 3.81 -> 3.98 ms). $WORKBENCH_FUSE_MIN_BYTES overrides it (a
# huge value: never), for comparisons.
FUSE_MIN_BYTES = 1 << 20


def fuse_min_bytes() -> int:
    """The size (bytes per image) from which an expansion's output is fused away."""
    return int(os.environ.get("WORKBENCH_FUSE_MIN_BYTES", FUSE_MIN_BYTES))


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
    fuse_min_bytes(), fused with that conv (c.fused): one conv2d layer with the
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
    (c.fused): one conv2d layer with the projection's name, attributes and inputs but
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


def is_fused_pointwise(layer: Layer) -> bool:
    """True for a layer fuse_pointwise_pairs made (a 1x1 expansion and a 1x1 reduction)."""
    return layer.op == "conv2d" and "pointwise_expand" in layer.attrs


def _plain_pointwise(layer: Layer | None) -> bool:
    """A 1x1 conv, stride 1, one input (no fused residual), not already fused with anything."""
    return layer is not None and layer.op == "conv2d" and is_pointwise_layer(layer) and \
        tuple(layer.attrs["stride"]) == (1, 1) and len(layer.inputs) == 1 and \
        "fused" not in layer.attrs


def fuse_pointwise_pairs(lr: LR, vector: int) -> LR:
    """The layers with each 1x1 expansion whose output, of at least fuse_min_bytes(), only a
    1x1 reduction reads (both stride 1, no residual) fused with that reduction
    (c.fused_pointwise; WDSR's blocks): one conv2d layer with the reduction's name and
    attributes, the expansion's input (in_channels theirs), attrs["pointwise_expand"] =
    {"name", "channels", "act"} and the expansion's weights as params "expand_weight" (M, C)
    and "expand_bias". Pairs whose scratch tile would not fit (pair_fits) stay apart."""
    readers = _reader_counts(lr)
    shapes = lr.shapes()
    by_name = {layer.name: layer for layer in lr.layers}
    fused: dict[str, Layer] = {}
    gone: set[str] = set()
    for rd in lr.layers:
        if not _plain_pointwise(rd) or rd.name in gone:
            continue
        ex = by_name.get(rd.inputs[0])
        if ex is None or not _plain_pointwise(ex) or ex.name in fused or \
                readers.get(ex.name) != 1 or ex.name in lr.outputs or \
                len(shapes[ex.inputs[0]]) != 3 or \
                4 * int(np.prod(shapes[ex.name])) < fuse_min_bytes():
            continue
        m, c = int(ex.attrs["out_channels"]), int(ex.attrs["in_channels"])
        if not pair_fits(c, m, vector):
            continue
        attrs = {**rd.attrs, "in_channels": c, "fused": [ex.name, rd.name],
                 "pointwise_expand": {"name": ex.name, "channels": m,
                                      "act": ex.attrs.get("act", "none")}}
        o = int(rd.attrs["out_channels"])
        params = {"weight": rd.params["weight"],
                  "bias": rd.params.get("bias", np.zeros(o, np.float32)),
                  "expand_weight": np.asarray(ex.params["weight"], np.float32).reshape(m, c),
                  "expand_bias": ex.params.get("bias", np.zeros(m, np.float32))}
        fused[rd.name] = Layer(rd.name, "conv2d", [ex.inputs[0]], attrs, params, rd.schedule)
        gone.add(ex.name)
    layers = [fused.get(layer.name, layer) for layer in lr.layers if layer.name not in gone]
    return LR(dict(lr.inputs), layers, list(lr.outputs), dict(lr.meta))
