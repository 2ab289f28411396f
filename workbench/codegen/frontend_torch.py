"""PyTorch front end: trace an nn.Module with torch.fx into an LR.

Reads weights as they are (a pruned model's zeros say which kernels and patterns remain), keeps
batch norm and activations as their own layers, then runs the graph passes (BN folding,
ReLU/ReLU6 fusion). Arithmetic with a constant (a buffer such as WDSR's RGB mean, or a number)
becomes a per-channel scale and shift, i.e. a depthwise 1x1 conv, as an unfused batch norm
does. Anything it does not know raises UnsupportedOpError naming the op and the node it sits at.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from workbench.codegen.lr import LR, Layer, LRError, conv_layer
from workbench.codegen.passes import optimize


class UnsupportedOpError(LRError):
    """The model uses an op the LR cannot express; the message names the op and the node."""


def _np(t: Any) -> np.ndarray:
    return t.detach().to("cpu").float().numpy().copy()


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(t) for t in v]


class _Builder:
    """Walks an fx graph in order and appends LR layers; `alias` maps skipped nodes to values."""

    def __init__(self, gm: Any) -> None:
        self.gm = gm
        self.layers: list[Layer] = []
        self.alias: dict[str, str] = {}
        self.shape_nodes: set[str] = set()
        self.consts: dict[str, Any] = {}   # get_attr node -> its tensor (a buffer, a parameter)
        self.prev = "input"

    def val(self, arg: Any, node: Any) -> str:
        import torch.fx as fx
        if not isinstance(arg, fx.Node):
            raise UnsupportedOpError(f"node {node.name!r} ({self.where(node)}): expected a tensor "
                                     f"argument, got constant {arg!r}")
        if arg.name in self.consts:
            raise self.unsupported(node, f"parameter access {arg.target!r} outside a layer "
                                         f"(only + - * / by a per-channel constant)")
        return self.alias.get(arg.name, arg.name)

    def where(self, node: Any) -> str:
        mod = f"module {node.target!r}, " if node.op == "call_module" else ""
        return f"{mod}after {self.prev!r}"

    def unsupported(self, node: Any, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"unsupported op {what} at graph node {node.name!r} "
                                  f"({self.where(node)}); the LR covers conv2d, batch and "
                                  f"instance norm, relu/relu6/tanh/sigmoid, max/avg/adaptive "
                                  f"pooling, flatten, linear, add, arithmetic by a per-channel "
                                  f"constant, pixel shuffle, nearest upsampling, concat along "
                                  f"channels, broadcast of a (N, C) feature to a map, dropout "
                                  f"and identity")

    def add(self, node: Any, op: str, inputs: list[str], attrs: dict[str, Any],
            params: dict[str, np.ndarray] | None = None) -> None:
        attrs = dict(attrs)
        attrs["source"] = str(node.target) if node.op == "call_module" else node.name
        self.layers.append(Layer(node.name, op, inputs, attrs, params or {}))
        self.prev = node.name

    def skip(self, node: Any, src: str) -> None:
        self.alias[node.name] = src

    def out_shape(self, node: Any) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def in_shape(self, node: Any) -> tuple[int, ...] | None:
        return self.out_shape(node.args[0]) if node.args else None

    # --- one method per kind of node -------------------------------------------------------
    def module(self, node: Any) -> None:
        from torch import nn
        m = self.gm.get_submodule(node.target)
        x = self.val(node.args[0], node) if node.args else None
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
                raise self.unsupported(node, f"Conv2d(padding={m.padding!r}, "
                                             f"padding_mode={m.padding_mode!r})")
            pad = (0, 0) if isinstance(m.padding, str) else m.padding
            layer = conv_layer(_np(m.weight), None if m.bias is None else _np(m.bias),
                               m.stride, pad, m.dilation, m.groups, name=node.name, inputs=[x])
            layer.attrs["source"] = str(node.target)
            self.layers.append(layer)
            self.prev = node.name
        elif isinstance(m, nn.BatchNorm2d):
            if m.running_mean is None:
                raise self.unsupported(node, "BatchNorm2d without running statistics")
            c = m.num_features
            gamma = _np(m.weight) if m.weight is not None else np.ones(c, np.float32)
            beta = _np(m.bias) if m.bias is not None else np.zeros(c, np.float32)
            self.add(node, "batchnorm", [x], {"eps": float(m.eps)},
                     {"mean": _np(m.running_mean), "var": _np(m.running_var),
                      "gamma": gamma, "beta": beta})
        elif isinstance(m, nn.InstanceNorm2d):
            self.instance_norm(node, x, m)
        elif isinstance(m, nn.PixelShuffle):
            self.add(node, "pixel_shuffle", [x], {"upscale": int(m.upscale_factor)})
        elif isinstance(m, nn.Upsample):
            self.upsample(node, x, m.mode, m.align_corners)
        elif isinstance(m, (nn.Tanh, nn.Sigmoid)):
            self.add(node, "act", [x], {"act": type(m).__name__.lower()})
        elif isinstance(m, nn.ReLU):
            self.add(node, "act", [x], {"act": "relu"})
        elif isinstance(m, nn.ReLU6) or (isinstance(m, nn.Hardtanh) and
                                         (m.min_val, m.max_val) == (0.0, 6.0)):
            self.add(node, "act", [x], {"act": "relu6"})
        elif isinstance(m, nn.MaxPool2d):
            if _pair(m.dilation) != [1, 1] or m.return_indices:
                raise self.unsupported(node, "MaxPool2d with dilation or indices")
            self.add(node, "maxpool2d", [x], {"kernel": _pair(m.kernel_size),
                                              "stride": _pair(m.stride or m.kernel_size),
                                              "padding": _pair(m.padding),
                                              "ceil_mode": bool(m.ceil_mode)})
        elif isinstance(m, nn.AvgPool2d):
            if m.divisor_override is not None:
                raise self.unsupported(node, "AvgPool2d with divisor_override")
            self.avgpool(node, x, m.kernel_size, m.stride or m.kernel_size, m.padding,
                         m.ceil_mode, m.count_include_pad)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive(node, x, m.output_size)
        elif isinstance(m, nn.Linear):
            self.add(node, "linear", [x], {"in_features": m.in_features,
                                           "out_features": m.out_features, "act": "none"},
                     {"weight": _np(m.weight), **({} if m.bias is None else {"bias": _np(m.bias)})})
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise self.unsupported(node, f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})")
            self.flatten(node, x)
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            self.skip(node, x)
        else:
            raise self.unsupported(node, f"module {type(m).__name__}")

    def instance_norm(self, node: Any, x: str, m: Any) -> None:
        """Instance norm: statistics of each image's channel planes, or (tracked running
        statistics, eval mode) the running ones, which is a batch norm."""
        c = m.num_features
        gamma = _np(m.weight) if m.affine else np.ones(c, np.float32)
        beta = _np(m.bias) if m.affine else np.zeros(c, np.float32)
        if m.track_running_stats and m.running_mean is not None:
            self.add(node, "batchnorm", [x], {"eps": float(m.eps)},
                     {"mean": _np(m.running_mean), "var": _np(m.running_var),
                      "gamma": gamma, "beta": beta})
        else:
            self.add(node, "instance_norm", [x], {"eps": float(m.eps), "act": "none"},
                     {"gamma": gamma, "beta": beta})

    def upsample(self, node: Any, x: str, mode: str, align_corners: Any) -> None:
        """Nearest upsampling by whole factors (read off the traced shapes)."""
        shape_in, shape_out = self.in_shape(node), self.out_shape(node)
        if mode not in ("nearest", "nearest-exact") or align_corners:
            raise self.unsupported(node, f"upsampling mode {mode!r} (nearest only)")
        if shape_in is None or shape_out is None or len(shape_in) != 4 or \
                any(o % i for o, i in zip(shape_out[2:], shape_in[2:])):
            raise self.unsupported(node, f"upsampling from {shape_in} to {shape_out} (whole "
                                         f"factors of a 4-D map only)")
        # for whole factors, "nearest" and "nearest-exact" both read input row y // s
        scale = [int(o // i) for o, i in zip(shape_out[2:], shape_in[2:])]
        self.add(node, "upsample", [x], {"scale": scale, "mode": "nearest"})

    def broadcast(self, node: Any, x: str) -> None:
        """A (N, C) or (N, C, 1, 1) value seen as a (N, C, H, W) map (H, W traced)."""
        shape_in, shape_out = self.in_shape(node), self.out_shape(node)
        if shape_in is None or shape_out is None or len(shape_out) != 4 or \
                shape_out[1] != shape_in[1] or not (len(shape_in) == 2 or
                                                    tuple(shape_in[2:]) == (1, 1)):
            raise self.unsupported(node, f"{node.target} from {shape_in} to {shape_out} "
                                         f"(only (N, C) or (N, C, 1, 1) to (N, C, H, W))")
        self.add(node, "broadcast", [x], {"height": int(shape_out[2]),
                                          "width": int(shape_out[3])})

    def arithmetic(self, node: Any, kind: str) -> None:
        """x + c, x - c, c - x, x * c, x / c for a constant c (a number, or a tensor of one
        value per channel): a depthwise 1x1 conv y = scale x + shift; two tensors: add."""
        import torch
        import torch.fx as fx
        a, b = node.args[:2]
        const = lambda v: not isinstance(v, fx.Node) or v.name in self.consts  # noqa: E731
        if not const(a) and not const(b):
            if kind != "add" or node.kwargs.get("alpha", 1) != 1:
                raise self.unsupported(node, f"{kind} of two tensors (only add)")
            self.add(node, "add", [self.val(a, node), self.val(b, node)], {"act": "none"})
            return
        if const(a) and const(b):
            raise self.unsupported(node, f"{kind} of two constants")
        if node.kwargs.get("alpha", 1) != 1:
            raise self.unsupported(node, f"{kind} with alpha")
        x, c, c_first = (b, a, True) if const(a) else (a, b, False)
        shape = self.out_shape(x)
        if shape is None or len(shape) != 4 or self.out_shape(node) != shape:
            raise self.unsupported(node, f"{kind} by a constant on a value of shape {shape} "
                                         f"(only (N, C, H, W) maps, the constant broadcast "
                                         f"per channel)")
        ch = shape[1]
        t = self.consts[c.name] if isinstance(c, fx.Node) else torch.tensor(float(c))
        t = t.detach().to("cpu", torch.float64)
        try:
            vals = torch.broadcast_to(t.reshape((1,) * max(0, 4 - t.dim()) + tuple(t.shape)),
                                      (1, ch, 1, 1)).reshape(ch).numpy()
        except RuntimeError as e:
            raise self.unsupported(node, f"{kind} by a constant of shape {tuple(t.shape)} on "
                                         f"{ch} channels (one value per channel only)") from e
        one = np.ones(ch)
        if kind == "add":
            scale, shift = one, vals
        elif kind == "sub":
            scale, shift = (-one, vals) if c_first else (one, -vals)
        elif kind == "mul":
            scale, shift = vals, 0 * one
        elif kind == "div" and not c_first:
            scale, shift = 1.0 / vals, 0 * one
        else:
            raise self.unsupported(node, "a constant divided by a tensor")
        layer = conv_layer(scale.astype(np.float32).reshape(ch, 1, 1, 1),
                           shift.astype(np.float32), groups=ch, name=node.name,
                           inputs=[self.val(x, node)])
        layer.attrs["source"] = node.name
        self.layers.append(layer)
        self.prev = node.name

    def avgpool(self, node: Any, x: str, k: Any, s: Any, p: Any, ceil: bool, cip: bool) -> None:
        self.add(node, "avgpool2d", [x], {"kernel": _pair(k), "stride": _pair(s),
                                          "padding": _pair(p), "ceil_mode": bool(ceil),
                                          "count_include_pad": bool(cip)})

    def adaptive(self, node: Any, x: str, size: Any) -> None:
        shape = self.in_shape(node)
        if shape is None:
            raise self.unsupported(node, "adaptive_avg_pool2d with unknown input shape")
        h, w = shape[-2:]
        oh, ow = [h if v is None else v for v in (size if isinstance(size, (tuple, list))
                                                  else (size, size))]
        if (oh, ow) == (1, 1):
            self.add(node, "global_avgpool", [x], {})
        elif (oh, ow) == (h, w):
            self.skip(node, x)
        elif h % oh == 0 and w % ow == 0:
            self.avgpool(node, x, (h // oh, w // ow), (h // oh, w // ow), 0, False, True)
        else:
            raise self.unsupported(node, f"adaptive_avg_pool2d from {h}x{w} to {oh}x{ow} "
                                         f"(not a whole divisor)")

    def flatten(self, node: Any, x: str) -> None:
        shape = self.in_shape(node)
        if shape is not None and len(shape) == 2:
            self.skip(node, x)  # already (N, features)
        else:
            self.add(node, "flatten", [x], {})

    def function(self, node: Any) -> None:
        import torch
        import torch.nn.functional as F
        t = node.target
        args = node.args
        kw = node.kwargs
        name = node.target if isinstance(t, str) else getattr(t, "__name__", str(t))
        if (node.op == "call_method" and t == "size") or (t is getattr and len(args) > 1 and
                                                          args[1] == "shape"):
            self.shape_nodes.add(node.name)
            return
        if t is operator.getitem and getattr(args[0], "name", None) in self.shape_nodes:
            self.shape_nodes.add(node.name)   # a dimension of a shape: read off the trace
            return
        torch_ops = {torch.add: "add", torch.sub: "sub", torch.mul: "mul", torch.div: "div"}
        kind = (_ARITHMETIC_METHODS.get(t) if node.op == "call_method" else
                _ARITHMETIC.get(t) or torch_ops.get(t))
        if kind is not None:
            if len(args) != 2:
                raise self.unsupported(node, f"{name} with {len(args)} operands")
            self.arithmetic(node, kind)
        elif t is operator.getitem:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            full = slice(None, None, None)
            if index in ((full, full, None, None), (Ellipsis, None, None)):
                self.broadcast(node, self.val(args[0], node))
            else:
                raise self.unsupported(node, f"indexing with {index!r}")
        elif node.op == "call_method" and t in ("expand", "expand_as", "unsqueeze"):
            self.broadcast(node, self.val(args[0], node))
        elif t in (torch.cat, torch.concat):
            parts = args[0]
            dim = args[1] if len(args) > 1 else kw.get("dim", 0)
            shape = self.out_shape(node)
            if shape is None or len(shape) != 4 or int(dim) % 4 != 1:
                raise self.unsupported(node, f"cat along dim {dim} (channels of 4-D maps only)")
            self.add(node, "concat", [self.val(p, node) for p in parts], {})
        elif t in (torch.pixel_shuffle, F.pixel_shuffle):
            r = args[1] if len(args) > 1 else kw["upscale_factor"]
            self.add(node, "pixel_shuffle", [self.val(args[0], node)], {"upscale": int(r)})
        elif t is F.interpolate:
            self.upsample(node, self.val(args[0], node), kw.get("mode", "nearest"),
                          kw.get("align_corners"))
        elif t in (torch.tanh, torch.sigmoid, F.tanh, F.sigmoid) or (
                node.op == "call_method" and t in ("tanh", "sigmoid")):
            act = t if isinstance(t, str) else t.__name__
            self.add(node, "act", [self.val(args[0], node)], {"act": act})
        elif t in (torch.relu, F.relu, torch.relu_) or (node.op == "call_method"
                                                        and t in ("relu", "relu_")):
            self.add(node, "act", [self.val(args[0], node)], {"act": "relu"})
        elif t is F.relu6 or (t is F.hardtanh and tuple(args[1:3]) == (0.0, 6.0)):
            self.add(node, "act", [self.val(args[0], node)], {"act": "relu6"})
        elif t is torch.flatten or (node.op == "call_method" and t == "flatten"):
            start = args[1] if len(args) > 1 else kw.get("start_dim", 0 if t is torch.flatten else 0)
            end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
            if start != 1 or end != -1:
                raise self.unsupported(node, f"flatten(start_dim={start}, end_dim={end})")
            self.flatten(node, self.val(args[0], node))
        elif node.op == "call_method" and t in ("view", "reshape"):
            out = self.out_shape(node)
            if out is not None and len(out) == 4 and tuple(out[2:]) == (1, 1) and \
                    len(self.in_shape(node) or ()) == 2:
                self.broadcast(node, self.val(args[0], node))   # (N, C) -> (N, C, 1, 1)
                return
            if out is None or len(out) != 2:
                raise self.unsupported(node, f"{t} to a shape other than (N, features)")
            self.flatten(node, self.val(args[0], node))
        elif t is F.adaptive_avg_pool2d:
            self.adaptive(node, self.val(args[0], node), args[1] if len(args) > 1
                          else kw["output_size"])
        elif t is F.dropout or (node.op == "call_method" and t == "contiguous"):
            self.skip(node, self.val(args[0], node))
        elif node.op == "call_method" and t == "mean":
            dims = args[1] if len(args) > 1 else kw.get("dim")
            keep = args[2] if len(args) > 2 else kw.get("keepdim", False)
            if not isinstance(dims, (tuple, list)) or sorted(int(d) % 4 for d in dims) != [2, 3]:
                raise self.unsupported(node, f"mean over dims {dims}")
            x = self.val(args[0], node)
            if keep:
                self.add(node, "global_avgpool", [x], {})
            else:
                self.layers.append(Layer(node.name + "_pool", "global_avgpool", [x],
                                         {"source": node.name}))
                self.add(node, "flatten", [node.name + "_pool"], {})
        else:
            raise self.unsupported(node, f"{node.op} {name!s}")


_ARITHMETIC = {operator.add: "add", operator.iadd: "add", operator.sub: "sub",
               operator.isub: "sub", operator.mul: "mul", operator.imul: "mul",
               operator.truediv: "div", operator.itruediv: "div"}
_ARITHMETIC_METHODS = {"add": "add", "add_": "add", "sub": "sub", "sub_": "sub", "mul": "mul",
                       "mul_": "mul", "div": "div", "div_": "div"}


def _attr(gm: Any, target: str) -> Any:
    """The tensor a get_attr node reads (a dotted path of attributes)."""
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def from_torch(model: Any, input_shape: tuple[int, int, int] = (3, 224, 224),
               passes: bool = True) -> LR:
    """LR of model (eval mode) for inputs (C, H, W); BN folded and activations fused if passes."""
    import torch
    import torch.fx as fx
    from torch.fx.passes.shape_prop import ShapeProp

    was_training = model.training
    model.eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # tracing fails in many types; name the model and the cause
        model.train(was_training)
        raise UnsupportedOpError(f"torch.fx could not trace {type(model).__name__} (data-"
                                 f"dependent control flow?): {type(e).__name__}: {e}") from e
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except Exception as e:
        cause = e.__cause__ or e
        raise LRError(f"{type(model).__name__} does not run on inputs (1, "
                      f"{', '.join(map(str, input_shape))}): {type(cause).__name__}: "
                      f"{str(cause).splitlines()[0]}") from e
    finally:
        model.train(was_training)
    b = _Builder(gm)
    inputs: dict[str, list[int]] = {}
    outputs: list[str] = []
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if inputs:
                raise UnsupportedOpError(f"model has more than one input ({node.name!r}); the "
                                         f"LR runtime takes one image batch")
            inputs[node.name] = list(input_shape)
            b.prev = node.name
        elif node.op == "get_attr":
            # a constant: arithmetic with it becomes a scale and shift; any other use fails
            b.consts[node.name] = _attr(gm, node.target)
        elif node.op == "call_module":
            b.module(node)
        elif node.op in ("call_function", "call_method"):
            b.function(node)
        elif node.op == "output":
            res = node.args[0]
            res = res if isinstance(res, (tuple, list)) else [res]
            outputs = [b.val(r, node) for r in res]
    for layer in b.layers:
        for i in layer.inputs:
            if i in b.shape_nodes:
                raise UnsupportedOpError(f"layer {layer.name!r} uses a tensor size as data")
    lr = LR(inputs, b.layers, outputs, {"model": type(model).__name__, "front_end": "torch.fx"})
    lr.validate()
    return optimize(lr) if passes else lr
