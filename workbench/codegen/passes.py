"""Graph passes on the LR: fold batch norm into convolutions, fuse ReLU / ReLU6, reorder filters.

Each pass takes an LR and returns a new one; layers it does not touch are shared, not copied.
"""
from __future__ import annotations

import numpy as np

from workbench.codegen.lr import FUSED_ACTS, LR, Layer, conv_layer

FUSABLE = ("conv2d", "linear", "add", "instance_norm")


def _consumers(lr: LR) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for layer in lr.layers:
        for i in layer.inputs:
            users.setdefault(i, []).append(layer.name)
    for o in lr.outputs:
        users.setdefault(o, []).append("<output>")
    return users


def _drop(lr: LR, gone: dict[str, str]) -> LR:
    """lr without the layers in gone (name -> value that replaces it), inputs renamed."""
    def res(v: str) -> str:
        while v in gone:
            v = gone[v]
        return v
    layers = []
    for layer in lr.layers:
        if layer.name in gone:
            continue
        if any(i in gone for i in layer.inputs):
            layer = Layer(layer.name, layer.op, [res(i) for i in layer.inputs], layer.attrs,
                          layer.params, layer.schedule)
        layers.append(layer)
    return LR(dict(lr.inputs), layers, [res(o) for o in lr.outputs], dict(lr.meta), lr.version)


def fold_batchnorm(lr: LR) -> LR:
    """Fold each batch norm into the conv / linear before it (if it is that layer's only
    reader); any other batch norm becomes a depthwise 1x1 conv (per-channel scale and shift)."""
    users = _consumers(lr)
    by_name = {layer.name: layer for layer in lr.layers}
    gone: dict[str, str] = {}
    new: dict[str, Layer] = {}
    for layer in lr.layers:
        if layer.op != "batchnorm":
            continue
        p = layer.params
        scale = (p["gamma"] / np.sqrt(p["var"].astype(np.float64) + layer.attrs["eps"]))
        shift = p["beta"] - p["mean"] * scale
        src = layer.inputs[0]
        prod = new.get(src, by_name.get(src))
        if (prod is not None and prod.op in ("conv2d", "linear") and users[src] == [layer.name]
                and prod.attrs.get("act", "none") == "none"):
            w = prod.params["weight"].astype(np.float64)
            w = w * scale.reshape(-1, *([1] * (w.ndim - 1)))
            b = prod.params.get("bias", np.zeros(w.shape[0])).astype(np.float64) * scale + shift
            if prod.op == "conv2d":
                a = prod.attrs
                folded = conv_layer(w.astype(np.float32), b.astype(np.float32), a["stride"],
                                    a["padding"], a["dilation"], a["groups"], a["act"],
                                    prod.name, prod.inputs)
                folded.attrs["source"] = a.get("source", prod.name)
            else:
                folded = Layer(prod.name, "linear", prod.inputs, dict(prod.attrs),
                               {"weight": w.astype(np.float32), "bias": b.astype(np.float32)})
            new[prod.name] = folded
            gone[layer.name] = prod.name
        else:
            c = scale.shape[0]
            dw = conv_layer(scale.astype(np.float32).reshape(c, 1, 1, 1),
                            shift.astype(np.float32), groups=c, name=layer.name,
                            inputs=layer.inputs)
            dw.attrs["source"] = layer.attrs.get("source", layer.name)
            new[layer.name] = dw
    out = LR(dict(lr.inputs), [new.get(layer.name, layer) for layer in lr.layers],
             list(lr.outputs), dict(lr.meta), lr.version)
    return _drop(out, gone)


def fuse_activations(lr: LR) -> LR:
    """Merge each ReLU / ReLU6 into the conv, linear, add or instance norm that feeds only it
    (tanh and sigmoid stay act layers: FUSED_ACTS)."""
    users = _consumers(lr)
    by_name = {layer.name: layer for layer in lr.layers}
    gone: dict[str, str] = {}
    fused: dict[str, Layer] = {}
    for layer in lr.layers:
        if layer.op != "act" or layer.attrs["act"] not in FUSED_ACTS:
            continue
        src = layer.inputs[0]
        prod = fused.get(src, by_name.get(src))
        if (prod is not None and prod.op in FUSABLE and users[src] == [layer.name]
                and prod.attrs.get("act", "none") == "none"):
            fused[prod.name] = Layer(prod.name, prod.op, prod.inputs,
                                     {**prod.attrs, "act": layer.attrs["act"]}, prod.params,
                                     prod.schedule)
            gone[layer.name] = prod.name
    out = LR(dict(lr.inputs), [fused.get(layer.name, layer) for layer in lr.layers],
             list(lr.outputs), dict(lr.meta), lr.version)
    return _drop(out, gone)


def optimize(lr: LR, reorder_filters: bool = True) -> LR:
    """The default pass pipeline: fold batch norm, fuse activations, reorder filters."""
    from workbench.codegen.reorder import reorder
    out = fuse_activations(fold_batchnorm(lr))
    if reorder_filters:
        out = reorder(out)
    out.validate()
    return out
