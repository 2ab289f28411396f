"""The apps' steps in NumPy, for the Numba emitter's network (the C plan runs c.image_ops):
pixel shuffle, nearest upsampling, concat, broadcast, instance norm and the activations.

Each takes the layer and its input arrays (N, C, H, W) (a broadcast's input may be (N, C))
and returns a new float32 array.
"""
from __future__ import annotations

import numpy as np

from workbench.codegen.lr import Layer, LRError


def activation(y: np.ndarray, act: str) -> np.ndarray:
    """y with act applied in place (relu and relu6 keep NaN, as PyTorch does); returns y."""
    if act == "relu":
        np.maximum(y, 0.0, out=y)
    elif act == "relu6":
        np.clip(y, 0.0, 6.0, out=y)
    elif act == "tanh":
        np.tanh(y, out=y)
    elif act == "sigmoid":
        with np.errstate(over="ignore"):   # e^-y overflows to inf for y < -88: 1 / inf = 0
            np.divide(1.0, 1.0 + np.exp(-y), out=y)
    elif act not in ("none", ""):
        raise LRError(f"activation {act!r} has no NumPy form")
    return y


def image_op(layer: Layer, xs: list[np.ndarray]) -> np.ndarray:
    """Output of an app op layer (pixel_shuffle, upsample, concat, broadcast, instance_norm)."""
    a, x = layer.attrs, xs[0]
    if layer.op == "pixel_shuffle":
        r = int(a["upscale"])
        n, c, h, w = x.shape
        return np.ascontiguousarray(x.reshape(n, c // (r * r), r, r, h, w)
                                    .transpose(0, 1, 4, 2, 5, 3)).reshape(n, c // (r * r),
                                                                          h * r, w * r)
    if layer.op == "upsample":
        sh, sw = (int(s) for s in a["scale"])
        return np.repeat(np.repeat(x, sh, axis=2), sw, axis=3)
    if layer.op == "concat":
        return np.concatenate(xs, axis=1)
    if layer.op == "broadcast":
        v = x.reshape(x.shape[0], x.shape[1], 1, 1)
        return np.ascontiguousarray(np.broadcast_to(v, (*v.shape[:2], int(a["height"]),
                                                        int(a["width"]))))
    if layer.op == "instance_norm":
        g = layer.params["gamma"].reshape(1, -1, 1, 1)
        b = layer.params["beta"].reshape(1, -1, 1, 1)
        with np.errstate(invalid="ignore"):    # inf - inf in a plane: NaN, as in PyTorch
            mean = x.mean(axis=(2, 3), keepdims=True, dtype=np.float64)
            var = ((x - mean) ** 2).mean(axis=(2, 3), keepdims=True)
            y = ((x - mean) / np.sqrt(var + float(a["eps"])) * g + b).astype(np.float32)
        return activation(y, a["act"])
    raise LRError(f"layer {layer.name!r}: op {layer.op!r} is not an app op")
