"""Caffe prototxt front end: the protobuf text format read by a small parser, nothing executed.

The report adds one construct to Caffe's format, `module`, marking the boundaries of the
convolution modules CoCo-Tune prunes at one rate each. Here a layer names its module with a
`module: "res2a"` field; the layers of one module must be consecutive, and modules are declared in
the order they first appear (see tests/tune/data/resnet8.prototxt):

    layer { name: "res2a_conv1" type: "Convolution" bottom: "conv1" top: "res2a_conv1"
            module: "res2a"
            convolution_param { num_output: 16 kernel_size: 3 pad: 1 bias_term: false } }

Supported layer types: Input (or top-level `input` + `input_shape`/`input_dim`), Convolution,
BatchNorm (no affine, as in Caffe) and Scale, ReLU, Pooling (MAX/AVE, global), Eltwise (SUM),
InnerProduct, Flatten, Dropout (identity); Softmax, SoftmaxWithLoss and Accuracy end the network
and are skipped. In-place layers (bottom == top) are fine. Any other type, a missing field or a
malformed token raises PrototxtError naming the line. Weights are not read (no caffemodel).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.tune.network import INPUT, GraphNet, NetworkError, Node, validate

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)(?![\w.]))
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<punct>[{}:;,<>])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
SKIPPED = ("Softmax", "SoftmaxWithLoss", "Accuracy")


class PrototxtError(ValueError):
    """A prototxt file is malformed or uses something unsupported; the message names the line."""


@dataclass
class Message:
    """A parsed text-format message: its fields in order as (name, value, line)."""

    fields: list[tuple[str, Any, int]] = field(default_factory=list)
    line: int = 0

    def all(self, name: str) -> list[Any]:
        """Every value of field `name` (a repeated field), in order."""
        return [v for n, v, _ in self.fields if n == name]

    def get(self, name: str, default: Any = None, kind: type | tuple[type, ...] | None = None) -> Any:
        """The single value of field `name` (default when absent), checked against `kind`."""
        hits = [(v, ln) for n, v, ln in self.fields if n == name]
        if not hits:
            return default
        if len(hits) > 1:
            raise PrototxtError(f"line {hits[1][1]}: field {name!r} given more than once")
        value, line = hits[0]
        if kind is not None and not (isinstance(value, kind) and not
                                     (isinstance(value, bool) and bool not in _tuple(kind))):
            raise PrototxtError(f"line {line}: field {name!r} should be {_kind_name(kind)}, "
                                f"got {value!r}")
        return value

    def line_of(self, name: str) -> int:
        """The line of the first field `name` (the message's own line if absent)."""
        return next((ln for n, _, ln in self.fields if n == name), self.line)


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "true/false",
                        Message: "a { ... } block"}.get(k, k.__name__) for k in _tuple(kind))


def tokenize(text: str) -> list[tuple[str, Any, int]]:
    """(kind, value, line) tokens of protobuf text; kinds: string, number, ident, punct."""
    tokens, line, pos = [], 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PrototxtError(f"line {line}: unexpected character {text[pos]!r}")
        kind, raw = m.lastgroup, m.group()
        if kind == "newline":
            line += 1
        elif kind == "string":
            tokens.append(("string", _unescape(raw[1:-1], line), line))
        elif kind == "number":
            tokens.append(("number", float(raw) if re.search(r"[.eEn]", raw) else int(raw), line))
        elif kind in ("ident", "punct"):
            tokens.append((kind, raw, line))
        pos = m.end()
    return tokens


def _unescape(body: str, line: int) -> str:
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPES:
                raise PrototxtError(f"line {line}: unsupported escape in string {body!r}")
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def parse(text: str) -> Message:
    """Parse protobuf text format into nested Messages (no schema; enums stay identifiers)."""
    tokens = tokenize(text)
    msg, pos = _message(tokens, 0, None)
    return msg


def _message(tokens: list, pos: int, close: tuple[str, int] | None) -> tuple[Message, int]:
    """Fields until `close` (the '}' or '>' expected, with the line that opened it) or the end."""
    msg = Message(line=close[1] if close else 1)
    while pos < len(tokens):
        kind, value, line = tokens[pos]
        if close is not None and kind == "punct" and value == close[0]:
            return msg, pos + 1
        if kind != "ident":
            raise PrototxtError(f"line {line}: expected a field name, got {value!r}")
        name, pos = value, pos + 1
        colon = pos < len(tokens) and tokens[pos][:2] == ("punct", ":")
        pos += colon
        if pos >= len(tokens):
            raise PrototxtError(f"line {line}: field {name!r} has no value")
        kind, value, vline = tokens[pos]
        if kind == "punct" and value in "{<":
            sub, pos = _message(tokens, pos + 1, ("}" if value == "{" else ">", vline))
            msg.fields.append((name, sub, line))
        elif not colon:
            raise PrototxtError(f"line {vline}: expected ':' or '{{' after {name!r}")
        elif kind == "ident":
            msg.fields.append((name, {"true": True, "false": False}.get(value, value), line))
            pos += 1
        elif kind in ("string", "number"):
            pos += 1
            while kind == "string" and pos < len(tokens) and tokens[pos][0] == "string":
                value += tokens[pos][1]  # adjacent strings concatenate, as in protobuf
                pos += 1
            msg.fields.append((name, value, line))
        else:
            raise PrototxtError(f"line {vline}: field {name!r} has no value (got {value!r})")
        if pos < len(tokens) and tokens[pos][0] == "punct" and tokens[pos][1] in ";,":
            pos += 1
    if close is not None:
        raise PrototxtError(f"line {close[1]}: block opened here is never closed")
    return msg, pos


def _pair(p: Message, name: str, h: str, w: str, default: int | None, layer: str) -> list[int]:
    """A Caffe (h, w) parameter given as `name` (one or two values) or as `h` and `w`."""
    vals = p.all(name)
    for v in vals:
        if not isinstance(v, int) or isinstance(v, bool):
            raise PrototxtError(f"line {p.line_of(name)}: {layer}: {name} should be an integer")
    if p.get(h) is not None or p.get(w) is not None:
        return [p.get(h, kind=int), p.get(w, kind=int)]
    if len(vals) == 1:
        return [vals[0], vals[0]]
    if len(vals) == 2:
        return list(vals)
    if not vals and default is not None:
        return [default, default]
    raise PrototxtError(f"line {p.line}: {layer}: needs {name} (one or two integers)")


def _shape(m: Message, where: str) -> tuple[int, int, int]:
    """(C, H, W) from a BlobShape message (dims N, C, H, W)."""
    dims = m.all("dim")
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims):
        raise PrototxtError(f"line {m.line}: {where} needs four positive dims (N C H W), got {dims}")
    return tuple(dims[1:])


def _layer_node(layer: Message, name: str, kind: str, bottoms: list[str]) -> tuple[str, dict]:
    """(op, params) of one Caffe layer."""
    line = layer.line
    if kind == "Convolution":
        p = layer.get("convolution_param", kind=Message)
        if p is None:
            raise PrototxtError(f"line {line}: convolution {name!r} needs convolution_param")
        num = p.get("num_output", kind=int)
        if num is None or num < 1:
            raise PrototxtError(f"line {p.line}: convolution {name!r} needs num_output >= 1")
        if p.all("dilation") and any(d != 1 for d in p.all("dilation")):
            raise PrototxtError(f"line {p.line_of('dilation')}: dilated convolutions are not supported")
        return "conv", {"out_channels": num,
                        "kernel": _pair(p, "kernel_size", "kernel_h", "kernel_w", None, name),
                        "stride": _pair(p, "stride", "stride_h", "stride_w", 1, name),
                        "padding": _pair(p, "pad", "pad_h", "pad_w", 0, name),
                        "groups": p.get("group", 1, kind=int),
                        "bias": p.get("bias_term", True, kind=bool)}
    if kind == "BatchNorm":
        p = layer.get("batch_norm_param", Message(line=line), kind=Message)
        return "bn", {"eps": float(p.get("eps", 1e-5, kind=(int, float))), "affine": False}
    if kind == "Scale":
        p = layer.get("scale_param", Message(line=line), kind=Message)
        return "scale", {"bias": p.get("bias_term", False, kind=bool)}
    if kind == "ReLU":
        return "relu", {}
    if kind == "Pooling":
        p = layer.get("pooling_param", Message(line=line), kind=Message)
        pool = p.get("pool", "MAX", kind=str)
        if pool not in ("MAX", "AVE"):
            raise PrototxtError(f"line {p.line_of('pool')}: pooling {pool!r} is not supported "
                                "(MAX or AVE)")
        if p.get("global_pooling", False, kind=bool):
            if pool != "AVE":
                raise PrototxtError(f"line {p.line_of('pool')}: global MAX pooling is not supported")
            return "gap", {}
        # Caffe rounds pooled sizes up (ceil mode).
        return ("maxpool" if pool == "MAX" else "avgpool",
                {"kernel": _pair(p, "kernel_size", "kernel_h", "kernel_w", None, name),
                 "stride": _pair(p, "stride", "stride_h", "stride_w", 1, name),
                 "padding": _pair(p, "pad", "pad_h", "pad_w", 0, name), "ceil": True})
    if kind == "Eltwise":
        p = layer.get("eltwise_param", Message(line=line), kind=Message)
        if p.get("operation", "SUM", kind=str) != "SUM" or p.all("coeff"):
            raise PrototxtError(f"line {p.line}: only Eltwise SUM without coefficients is supported")
        if len(bottoms) < 2:
            raise PrototxtError(f"line {line}: Eltwise {name!r} needs two or more bottoms")
        return "add", {}
    if kind == "InnerProduct":
        p = layer.get("inner_product_param", kind=Message)
        if p is None or p.get("num_output", kind=int) is None:
            raise PrototxtError(f"line {line}: InnerProduct {name!r} needs inner_product_param "
                                "{ num_output: ... }")
        return "linear", {"out_channels": p.get("num_output", kind=int),
                          "bias": p.get("bias_term", True, kind=bool)}
    if kind == "Flatten":
        return "flatten", {}
    if kind == "Dropout":
        return "identity", {}
    raise PrototxtError(f"line {line}: layer {name!r} has unsupported type {kind!r}")


def from_prototxt(text: str, source: str = "<prototxt>") -> GraphNet:
    """A GraphNet from prototxt text (see the module docstring); errors name `source` and line."""
    try:
        return _build(parse(text))
    except (PrototxtError, NetworkError) as e:
        raise PrototxtError(f"{source}: {e}") from None


def load_prototxt(path: str | Path) -> GraphNet:
    """Read and parse a prototxt file."""
    path = Path(path)
    return from_prototxt(path.read_text(), str(path))


def _build(top: Message) -> GraphNet:
    blobs: dict[str, str] = {}  # blob name -> the node (or INPUT) that last wrote it
    shape = None
    for inp in top.all("input"):
        if shape is not None or not isinstance(inp, str):
            raise PrototxtError(f"line {top.line_of('input')}: one string `input` is supported")
        if top.get("input_shape") is not None:
            shape = _shape(top.get("input_shape", kind=Message), "input_shape")
        elif top.all("input_dim"):
            shape = _shape(Message([("dim", d, top.line_of("input_dim"))
                                    for d in top.all("input_dim")], top.line_of("input_dim")),
                           "input_dim")
        else:
            raise PrototxtError(f"line {top.line_of('input')}: `input` needs input_shape or input_dim")
        blobs[inp] = INPUT
    if top.all("layers"):
        raise PrototxtError(f"line {top.line_of('layers')}: the old V1 `layers` format is not "
                            "supported; use `layer`")
    nodes: list[Node] = []
    modules: list[str] = []
    for layer in top.all("layer"):
        if not isinstance(layer, Message):
            raise PrototxtError(f"line {top.line_of('layer')}: `layer` should be a {{ ... }} block")
        name = layer.get("name", kind=str)
        kind = layer.get("type", kind=str)
        if name is None or kind is None:
            raise PrototxtError(f"line {layer.line}: a layer needs a name and a type")
        bottoms, tops = layer.all("bottom"), layer.all("top")
        if kind == "Input":
            p = layer.get("input_param", kind=Message)
            if shape is not None or p is None or len(tops) != 1 or not p.all("shape"):
                raise PrototxtError(f"line {layer.line}: one Input layer with one top and "
                                    "input_param { shape { dim: ... } } is supported")
            shape = _shape(p.all("shape")[0], f"Input {name!r}")
            blobs[tops[0]] = INPUT
            continue
        if kind in SKIPPED:
            continue
        if len(tops) != 1:
            raise PrototxtError(f"line {layer.line}: layer {name!r} needs exactly one top")
        for b in bottoms:
            if not isinstance(b, str) or b not in blobs:
                raise PrototxtError(f"line {layer.line_of('bottom')}: layer {name!r} reads blob "
                                    f"{b!r}, which no earlier layer writes")
        if not bottoms:
            raise PrototxtError(f"line {layer.line}: layer {name!r} has no bottom")
        op, params = _layer_node(layer, name, kind, bottoms)
        module = layer.get("module", kind=str)
        if module is not None and module not in modules:
            modules.append(module)
        nodes.append(Node(name, op, tuple(blobs[b] for b in bottoms), params, module, layer.line))
        blobs[tops[0]] = name
    if shape is None:
        raise PrototxtError("line 1: no input shape (an Input layer or `input` + `input_shape`)")
    name = top.get("name", "prototxt", kind=str)
    return validate(GraphNet(name, shape, nodes, tuple(modules)))
