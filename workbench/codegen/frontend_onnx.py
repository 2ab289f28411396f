"""ONNX front end: read an .onnx file (or ModelProto) into an LR, then run the graph passes.

Covers the ops PyTorch exports for VGG, ResNet and MobileNet-V2: Conv, BatchNormalization,
Relu, Clip(0, 6), MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape to (N, -1), Gemm,
MatMul, Add, Identity and Dropout. Needs the `onnx` package (pip install onnx).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.frontend_torch import UnsupportedOpError
from workbench.codegen.lr import LR, Layer, LRError, conv_layer
from workbench.codegen.passes import optimize


def _attrs(node: Any) -> dict[str, Any]:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(pads: list[int], where: str) -> list[int]:
    """ONNX pads (top, left, bottom, right) -> [ph, pw]; asymmetric padding is refused."""
    if not pads:
        return [0, 0]
    t, l, b, r = pads
    if (t, l) != (b, r):
        raise UnsupportedOpError(f"asymmetric padding {pads} at {where}")
    return [int(t), int(l)]


def from_onnx(model: Any, passes: bool = True) -> LR:
    """LR of an ONNX model (path or ModelProto) with one (N, C, H, W) input."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ImportError("reading ONNX needs the onnx package: pip install onnx") from e
    if isinstance(model, (str, Path)):
        try:
            model = onnx.load(str(model))
        except Exception as e:  # protobuf raises DecodeError, OSError...
            raise LRError(f"{model}: not a readable ONNX file ({type(e).__name__}: {e})") from e
    g = model.graph
    inits = {t.name: np.array(numpy_helper.to_array(t)) for t in g.initializer}
    consts: dict[str, np.ndarray] = dict(inits)
    graph_inputs = [i for i in g.input if i.name not in inits]
    if len(graph_inputs) != 1:
        raise UnsupportedOpError(f"ONNX graph has {len(graph_inputs)} data inputs; the LR "
                                 f"runtime takes one image batch")
    dims = [d.dim_value for d in graph_inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise UnsupportedOpError(f"ONNX input {graph_inputs[0].name!r} has shape {dims}; "
                                 f"need (N, C, H, W) with fixed C, H, W")
    inputs = {graph_inputs[0].name: [int(d) for d in dims[1:]]}
    layers: list[Layer] = []
    alias: dict[str, str] = {}

    def val(name: str) -> str:
        return alias.get(name, name)

    for idx, node in enumerate(g.node):
        op = node.op_type
        a = _attrs(node)
        out = node.output[0]
        where = f"node {idx} {node.name or out!r} ({op})"
        src = {"source": node.name or out}
        ins = [n for n in node.input if n]
        if op == "Constant":
            consts[out] = numpy_helper.to_array(a["value"])
            continue
        data = [val(n) for n in ins if n not in consts]
        if op == "Conv":
            w = consts[ins[1]]
            b = consts[ins[2]] if len(ins) > 2 else None
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnsupportedOpError(f"auto_pad={a['auto_pad']!r} at {where}")
            layer = conv_layer(w, b, a.get("strides", [1, 1]), _sym_pads(a.get("pads", []), where),
                               a.get("dilations", [1, 1]), int(a.get("group", 1)), name=out,
                               inputs=data)
            layer.attrs.update(src)
            layers.append(layer)
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (consts[n] for n in ins[1:5])
            layers.append(Layer(out, "batchnorm", data, {"eps": float(a.get("epsilon", 1e-5)),
                                                          **src},
                                {"gamma": gamma, "beta": beta, "mean": mean, "var": var}))
        elif op == "Relu":
            layers.append(Layer(out, "act", data, {"act": "relu", **src}))
        elif op == "Clip":
            lo = consts[ins[1]].item() if len(ins) > 1 else a.get("min")
            hi = consts[ins[2]].item() if len(ins) > 2 else a.get("max")
            if (lo, hi) != (0.0, 6.0):
                raise UnsupportedOpError(f"Clip({lo}, {hi}) at {where}; only ReLU6 = Clip(0, 6)")
            layers.append(Layer(out, "act", data, {"act": "relu6", **src}))
        elif op in ("MaxPool", "AveragePool"):
            k = [int(v) for v in a["kernel_shape"]]
            attrs = {"kernel": k, "stride": [int(v) for v in a.get("strides", k)],
                     "padding": _sym_pads(a.get("pads", []), where),
                     "ceil_mode": bool(a.get("ceil_mode", 0)), **src}
            if op == "MaxPool":
                layers.append(Layer(out, "maxpool2d", data, attrs))
            else:
                attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
                layers.append(Layer(out, "avgpool2d", data, attrs))
        elif op == "GlobalAveragePool":
            layers.append(Layer(out, "global_avgpool", data, dict(src)))
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and int(a.get("axis", 1)) != 1:
                raise UnsupportedOpError(f"Flatten(axis={a['axis']}) at {where}")
            if op == "Reshape":
                shape = consts.get(ins[1])
                if shape is None or len(shape) != 2:
                    raise UnsupportedOpError(f"Reshape to {shape} at {where}; only (N, -1)")
            layers.append(Layer(out, "flatten", data, dict(src)))
        elif op in ("Gemm", "MatMul"):
            w = consts[ins[1]]
            if op == "Gemm":
                if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0 or \
                        int(a.get("transA", 0)):
                    raise UnsupportedOpError(f"Gemm with alpha/beta/transA at {where}")
                w = w if int(a.get("transB", 0)) else w.T
            else:
                w = w.T
            params = {"weight": np.ascontiguousarray(w, np.float32)}
            if op == "Gemm" and len(ins) > 2:
                params["bias"] = consts[ins[2]].astype(np.float32).reshape(-1)
            layers.append(Layer(out, "linear", data, {"in_features": int(w.shape[1]),
                                                      "out_features": int(w.shape[0]),
                                                      "act": "none", **src}, params))
        elif op == "Add":
            if len(data) == 1 and layers and layers[-1].name == data[0] and \
                    layers[-1].op == "linear" and "bias" not in layers[-1].params:
                layers[-1].params["bias"] = consts[[n for n in ins if n in consts][0]].reshape(-1)
                alias[out] = data[0]  # MatMul + Add of a constant = linear with bias
                continue
            if len(data) != 2:
                raise UnsupportedOpError(f"Add of a constant at {where}")
            layers.append(Layer(out, "add", data, {"act": "none", **src}))
        elif op in ("Identity", "Dropout"):
            if ins[0] in consts:
                consts[out] = consts[ins[0]]  # exporters alias shared weights this way
            else:
                alias[out] = data[0]
        else:
            raise UnsupportedOpError(f"unsupported op {op} at graph {where}; the LR covers "
                                     f"Conv, BatchNormalization, Relu, Clip(0,6), MaxPool, "
                                     f"AveragePool, GlobalAveragePool, Flatten, Reshape, Gemm, "
                                     f"MatMul, Add, Identity, Dropout")
    outputs = [val(o.name) for o in g.output]
    lr = LR(inputs, layers, outputs, {"front_end": "onnx", "producer": model.producer_name})
    lr.validate()
    return optimize(lr) if passes else lr
