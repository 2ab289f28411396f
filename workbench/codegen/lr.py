"""The layerwise representation (LR): a plain, versioned graph of layers, saved as JSON + npz.

A layer says what to compute (op, attributes, dense weights) and, for convolutions, which
kernels survive and which pattern each one has (read off the weights' zeros), the filter
order chosen by the reorder pass and the tuned schedule. It is never pickled.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.patterns import KernelPatterns, analyse

LR_FORMAT = "cocopie-lr"
LR_VERSION = 1

# op -> attributes it must carry; the runtime and the emitters dispatch on op.
OPS: dict[str, tuple[str, ...]] = {
    "conv2d": ("in_channels", "out_channels", "kernel", "stride", "padding", "dilation", "groups",
               "act"),
    "linear": ("in_features", "out_features", "act"),
    "add": ("act",),
    "maxpool2d": ("kernel", "stride", "padding", "ceil_mode"),
    "avgpool2d": ("kernel", "stride", "padding", "ceil_mode", "count_include_pad"),
    "global_avgpool": (),
    "batchnorm": ("eps",),
    "flatten": (),
    "act": ("act",),
    # the image-to-image apps' ops (models.image_to_image), on (C, H, W) maps
    "pixel_shuffle": ("upscale",),            # (C r^2, H, W) -> (C, r H, r W)
    "upsample": ("scale", "mode"),            # nearest: (C, H, W) -> (C, sh H, sw W)
    "instance_norm": ("eps", "act"),          # per image and channel; gamma, beta params
    "concat": (),                             # along channels
    "broadcast": ("height", "width"),         # (C,) or (C, 1, 1) -> (C, height, width)
}
ACTS = ("none", "relu", "relu6", "tanh", "sigmoid")
# The activations a conv, linear, add or instance norm carries fused (every C kernel has
# them); tanh and sigmoid run as act layers of their own.
FUSED_ACTS = ("none", "relu", "relu6")


class LRError(ValueError):
    """An LR that is malformed, corrupted, or of another version."""


@dataclass
class Layer:
    """One node: op with attributes, input value names, parameters (weights), optional schedule.

    params for conv2d: weight (O, C/groups, kh, kw) float32, optional bias (O,), and after
    analysis patterns (P, kh*kw) bool, kernel_pattern (O, C/groups) int32, filter_order (O,).
    """
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None

    def validate(self) -> None:
        """Raise LRError if op is unknown or required attributes / weights are missing."""
        if self.op not in OPS:
            raise LRError(f"layer {self.name!r}: unknown op {self.op!r}; known: {sorted(OPS)}")
        missing = [a for a in OPS[self.op] if a not in self.attrs]
        if missing:
            raise LRError(f"layer {self.name!r} ({self.op}) lacks attributes {missing}")
        if self.attrs.get("act", "none") not in ACTS:
            raise LRError(f"layer {self.name!r}: activation {self.attrs['act']!r} not in {ACTS}")
        if self.op != "act" and self.attrs.get("act", "none") not in FUSED_ACTS:
            raise LRError(f"layer {self.name!r} ({self.op}): activation "
                          f"{self.attrs['act']!r} is not one a {self.op} carries fused "
                          f"{FUSED_ACTS}; make it an act layer of its own")
        if self.op == "instance_norm" and not {"gamma", "beta"} <= set(self.params):
            raise LRError(f"layer {self.name!r} (instance_norm) needs gamma and beta params")
        if self.op == "upsample" and self.attrs["mode"] != "nearest":
            raise LRError(f"layer {self.name!r}: upsample mode {self.attrs['mode']!r}; the LR "
                          f"has nearest only")
        if self.op in ("conv2d", "linear") and "weight" not in self.params:
            raise LRError(f"layer {self.name!r} ({self.op}) has no weight")
        if self.op == "conv2d":
            a = self.attrs
            if a["groups"] < 1 or a["out_channels"] % a["groups"] or a["in_channels"] % a["groups"]:
                raise LRError(f"layer {self.name!r}: groups {a['groups']} must divide both "
                              f"{a['in_channels']} input and {a['out_channels']} output channels")
            want = (a["out_channels"], a["in_channels"] // a["groups"], *a["kernel"])
            if tuple(self.params["weight"].shape) != tuple(want):
                raise LRError(f"layer {self.name!r}: weight shape {self.params['weight'].shape} "
                              f"!= {want} from its attributes")

    @property
    def kernel_patterns(self) -> KernelPatterns:
        """Pattern table and per-kernel pattern ids of a conv layer (computed if absent)."""
        if self.op != "conv2d":
            raise LRError(f"layer {self.name!r} is {self.op}, not conv2d: it has no patterns")
        if "patterns" not in self.params:
            kp = analyse(self.params["weight"])
            self.params["patterns"] = kp.patterns
            self.params["kernel_pattern"] = kp.kernel_pattern
        return KernelPatterns(self.params["patterns"].astype(bool),
                              self.params["kernel_pattern"].astype(np.int32),
                              tuple(self.attrs["kernel"]))


def _pool_size(n: int, k: int, s: int, p: int, ceil: bool, d: int = 1) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1  # the last window must start inside the input or left padding (torch rule)
    return out


def out_shape(layer: Layer, ins: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Per-image output shape of layer given its input shapes."""
    a = layer.attrs
    op = layer.op
    if op in ("conv2d", "maxpool2d", "avgpool2d"):
        c, h, w = ins[0]
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
        d = a.get("dilation", [1, 1])
        ceil = bool(a.get("ceil_mode", False))
        ho, wo = _pool_size(h, kh, sh, ph, ceil, d[0]), _pool_size(w, kw, sw, pw, ceil, d[1])
        if ho < 1 or wo < 1:
            raise ValueError(f"output would be {ho}x{wo}")
        if op == "conv2d":
            if c != a["in_channels"]:
                raise ValueError(f"{c} input channels, layer expects {a['in_channels']}")
            return (int(a["out_channels"]), ho, wo)
        return (c, ho, wo)
    if op == "linear":
        if ins[0] != (a["in_features"],):
            raise ValueError(f"input {ins[0]}, layer expects ({a['in_features']},)")
        return (int(a["out_features"]),)
    if op == "add":
        if ins[0] != ins[1]:
            raise ValueError(f"operand shapes differ: {ins[0]} vs {ins[1]}")
        return ins[0]
    if op == "global_avgpool":
        return (ins[0][0], 1, 1)
    if op == "flatten":
        return (int(np.prod(ins[0])),)
    if op in ("act", "batchnorm"):
        return ins[0]
    if op == "instance_norm":
        if len(ins[0]) != 3:
            raise ValueError(f"instance norm of a {ins[0]} value, not a (C, H, W) map")
        if ins[0][0] != len(layer.params["gamma"]):
            raise ValueError(f"{ins[0][0]} channels, gamma has {len(layer.params['gamma'])}")
        return ins[0]
    if op == "pixel_shuffle":
        r = int(a["upscale"])
        if len(ins[0]) != 3 or r < 1 or ins[0][0] % (r * r):
            raise ValueError(f"pixel shuffle by {r} of {ins[0]}: channels not a multiple of {r * r}")
        c, h, w = ins[0]
        return (c // (r * r), h * r, w * r)
    if op == "upsample":
        (sh, sw), (c, h, w) = a["scale"], ins[0]
        if int(sh) < 1 or int(sw) < 1:
            raise ValueError(f"upsample scale {a['scale']} is not whole and positive")
        return (c, h * int(sh), w * int(sw))
    if op == "concat":
        if any(len(s) != 3 or s[1:] != ins[0][1:] for s in ins) or len(ins) < 2:
            raise ValueError(f"concat of {ins}: needs two or more maps of one H x W")
        return (sum(s[0] for s in ins), *ins[0][1:])
    if op == "broadcast":
        if not (len(ins[0]) == 1 or (len(ins[0]) == 3 and ins[0][1:] == (1, 1))):
            raise ValueError(f"broadcast of {ins[0]}: needs a (C,) or (C, 1, 1) value")
        return (ins[0][0], int(a["height"]), int(a["width"]))
    raise ValueError(f"unknown op {op!r}")


def conv_layer(weight: np.ndarray, bias: np.ndarray | None = None, stride: int | tuple = 1,
               padding: int | tuple = 0, dilation: int | tuple = 1, groups: int = 1,
               act: str = "none", name: str = "conv", inputs: list[str] | None = None) -> Layer:
    """A conv2d Layer from W: (O, C/groups, kh, kw) float32 and bias (O,); patterns analysed."""
    w = np.ascontiguousarray(weight, dtype=np.float32)
    if w.ndim != 4:
        raise LRError(f"layer {name!r}: conv weight must be 4-D (O, C/groups, kh, kw), got {w.shape}")
    pair = lambda v: [int(v), int(v)] if np.isscalar(v) else [int(t) for t in v]  # noqa: E731
    attrs = {"in_channels": int(w.shape[1] * groups), "out_channels": int(w.shape[0]),
             "kernel": [int(w.shape[2]), int(w.shape[3])], "stride": pair(stride),
             "padding": pair(padding), "dilation": pair(dilation), "groups": int(groups), "act": act}
    params = {"weight": w}
    if bias is not None:
        b = np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        if b.shape != (w.shape[0],):
            raise LRError(f"layer {name!r}: bias shape {b.shape} != ({w.shape[0]},)")
        params["bias"] = b
    layer = Layer(name, "conv2d", list(inputs or ["input"]), attrs, params)
    layer.validate()
    layer.kernel_patterns  # noqa: B018  (fills patterns / kernel_pattern)
    return layer


@dataclass
class LR:
    """A network: named inputs with (C, H, W) shapes, layers in execution order, output names."""
    inputs: dict[str, list[int]]
    layers: list[Layer]
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = LR_VERSION

    def validate(self) -> None:
        """Raise LRError on unknown ops, dangling inputs or duplicate names."""
        known = set(self.inputs)
        for layer in self.layers:
            layer.validate()
            for i in layer.inputs:
                if i not in known:
                    raise LRError(f"layer {layer.name!r} reads {i!r}, which no earlier layer makes")
            if layer.name in known:
                raise LRError(f"duplicate value name {layer.name!r}")
            known.add(layer.name)
        for o in self.outputs:
            if o not in known:
                raise LRError(f"output {o!r} is not produced by any layer")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every value per image: (C, H, W) or (features,); LRError if they clash."""
        shapes = {k: tuple(int(d) for d in v) for k, v in self.inputs.items()}
        for layer in self.layers:
            ins = [shapes[i] for i in layer.inputs]
            try:
                shapes[layer.name] = out_shape(layer, ins)
            except (KeyError, IndexError, ValueError) as e:
                raise LRError(f"layer {layer.name!r} ({layer.op}) cannot take inputs {ins}: "
                              f"{e}") from e
        return shapes

    def layer(self, name: str) -> Layer:
        """The layer called name."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write path (.json, the graph) and its .npz (the arrays); returns both paths."""
        self.validate()
        path = Path(path)
        if path.suffix != ".json":
            path = path.with_suffix(path.suffix + ".json") if path.suffix else path.with_suffix(".json")
        npz_path = path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {}
        layers = []
        for i, layer in enumerate(self.layers):
            keys = {}
            for k, v in layer.params.items():
                key = f"l{i}_{k}"
                arrays[key] = np.asarray(v)
                keys[k] = key
            layers.append({"name": layer.name, "op": layer.op, "inputs": layer.inputs,
                           "attrs": layer.attrs, "params": keys, "schedule": layer.schedule})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        doc = {"format": LR_FORMAT, "version": self.version, "inputs": self.inputs,
               "outputs": self.outputs, "meta": self.meta, "layers": layers,
               "arrays": {"file": npz_path.name, "sha256": hashlib.sha256(blob).hexdigest()}}
        path.parent.mkdir(parents=True, exist_ok=True)
        # Arrays first, then the JSON that points at them, each via rename: no half-written LR.
        _atomic_write(npz_path, blob)
        _atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
        return path, npz_path

    @classmethod
    def load(cls, path: str | Path) -> "LR":
        """Read an LR written by save; LRError if it is of another version or corrupted."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LRError(f"{path}: not a readable LR JSON file ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != LR_FORMAT:
            raise LRError(f"{path}: not a {LR_FORMAT} file")
        if doc.get("version") != LR_VERSION:
            raise LRError(f"{path}: LR version {doc.get('version')!r}, this workbench reads "
                          f"version {LR_VERSION} only; re-export it from the model")
        npz_path = path.with_name(doc["arrays"]["file"])
        try:
            blob = npz_path.read_bytes()
        except OSError as e:
            raise LRError(f"{path}: its arrays file {npz_path} is missing ({e})") from e
        if hashlib.sha256(blob).hexdigest() != doc["arrays"]["sha256"]:
            raise LRError(f"{npz_path}: checksum mismatch, the arrays file is corrupted or "
                          f"belongs to another LR")
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            layers = [Layer(d["name"], d["op"], list(d["inputs"]), dict(d["attrs"]),
                            {k: arrays[v] for k, v in d["params"].items()}, d.get("schedule"))
                      for d in doc["layers"]]
            lr = cls({k: list(v) for k, v in doc["inputs"].items()}, layers, list(doc["outputs"]),
                     dict(doc.get("meta", {})), doc["version"])
        except (KeyError, TypeError, ValueError) as e:
            raise LRError(f"{path}: malformed LR ({type(e).__name__}: {e})") from e
        lr.validate()
        return lr


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
