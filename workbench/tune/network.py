"""The network description CoCo-Tune works on: layers in order, each tagged with its module.

A `GraphNet` is a list of `Node`s in execution order (each names the nodes it reads), the input
shape, and the declared modules: runs of consecutive layers that are pruned as a unit at one rate
(the report's "convolution modules"; ResNet basic blocks). It comes from a Caffe prototxt with the
`module` extension (`prototxt.py`) or from a PyTorch model whose modules are declared by name
(`from_module` below, through torch.fx). Everything downstream reads only this description: the
multiplexing-model generator, L1 filter pruning, model sizes.

Which convolutions a module prunes follows the report: the module's last layer stays unpruned so
the module keeps its output shape. Precisely, a convolution is prunable when every path from its
output, through channel-wise layers (batch norm, scale, ReLU, pooling) of the same module, ends in
a plain convolution of the same module, whose input channels then shrink with it. Convolutions
whose output leaves the module, is summed with a shortcut, or feeds a linear layer are kept.
"""
from __future__ import annotations

import keyword
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

INPUT = "<input>"  # the pseudo-node standing for the network's input tensor
OPS = ("conv", "bn", "scale", "relu", "maxpool", "avgpool", "gap", "add", "flatten", "linear",
       "identity")
CHANNELWISE = ("bn", "scale", "relu", "maxpool", "avgpool", "identity")
PARAMETRIC = ("conv", "bn", "scale", "linear")


class NetworkError(ValueError):
    """A network description is inconsistent or uses something CoCo-Tune cannot handle."""


def keep(channels: int, rate: float) -> int:
    """Filters kept when a fraction `rate` of `channels` filters is pruned (at least one)."""
    return max(1, channels - int(round(channels * rate)))


@dataclass
class Node:
    """One layer: its name, operation, the nodes it reads, parameters and module (None: none)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    module: str | None = None
    line: int | None = None    # line in the prototxt it came from, for error messages
    source: str | None = None  # qualified name in the source nn.Module, for its weights

    def where(self) -> str:
        """How error messages name this layer: 'layer "x" (line 12)'."""
        return f'layer "{self.name}"' + (f" (line {self.line})" if self.line else "")


@dataclass(frozen=True)
class Segment:
    """A run of consecutive nodes: one declared module or the layers between modules."""

    name: str
    is_module: bool
    nodes: tuple[str, ...]
    input: str   # the one tensor (node name or INPUT) entering the segment
    output: str  # the one node whose output leaves it


@dataclass(frozen=True)
class PrunableConv:
    """A convolution whose filters a module's rate prunes, and the layers that shrink with it."""

    conv: str
    module: str
    followers: tuple[str, ...]  # channel-wise layers carrying its filters (bn, scale, relu, pool)
    consumers: tuple[str, ...]  # convolutions whose input channels are its filters


@dataclass
class GraphNet:
    """Layers in execution order, the input shape (C, H, W) and the declared modules in order."""

    name: str
    input_shape: tuple[int, int, int]
    nodes: list[Node]
    modules: tuple[str, ...]

    def node(self, name: str) -> Node:
        """The node called `name`."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def output(self) -> str:
        """The node whose output is the network's output (the last one)."""
        return self.nodes[-1].name

    def idents(self) -> dict[str, str]:
        """Node name -> a unique Python identifier ([A-Za-z0-9_], used as layer key and in source)."""
        return _identifiers([n.name for n in self.nodes])

    def module_idents(self) -> dict[str, str]:
        """Module name -> a unique Python identifier."""
        return _identifiers(list(self.modules))

    def users(self) -> dict[str, list[str]]:
        """Node name (or INPUT) -> names of the nodes that read it, in order."""
        out: dict[str, list[str]] = {INPUT: [], **{n.name: [] for n in self.nodes}}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out

    def segments(self) -> list[Segment]:
        """The nodes cut into modules and the runs between them; each has one input, one output."""
        runs: list[tuple[str | None, list[Node]]] = []
        for n in self.nodes:
            if runs and runs[-1][0] == n.module:
                runs[-1][1].append(n)
            else:
                runs.append((n.module, [n]))
        seen: set[str] = set()
        users = self.users()
        segs = []
        for k, (mod, nodes) in enumerate(runs):
            if mod is not None:
                if mod in seen:
                    raise NetworkError(f'module "{mod}" is not contiguous: {nodes[0].where()} '
                                       "comes after layers of other modules")
                seen.add(mod)
            names = {n.name for n in nodes}
            entering = sorted({i for n in nodes for i in n.inputs if i not in names})
            leaving = [n.name for n in nodes
                       if n.name == self.output or any(u not in names for u in users[n.name])]
            label = f'module "{mod}"' if mod is not None else f"the layers from {nodes[0].where()}"
            if len(entering) != 1 or len(leaving) != 1:
                raise NetworkError(f"{label} must read one tensor and produce one tensor for the "
                                   f"rest of the network; it reads {entering} and produces {leaving}")
            segs.append(Segment(mod if mod is not None else f"seg{k}", mod is not None,
                                tuple(n.name for n in nodes), entering[0], leaving[0]))
        missing = [m for m in self.modules if m not in seen]
        if missing:
            raise NetworkError(f"declared modules without layers: {missing}")
        return segs

    def prunable(self) -> dict[str, list[PrunableConv]]:
        """Module -> its prunable convolutions (see the module docstring for the rule)."""
        users = self.users()
        by_name = {n.name: n for n in self.nodes}
        out: dict[str, list[PrunableConv]] = {m: [] for m in self.modules}
        for n in self.nodes:
            if n.op != "conv" or n.module is None or n.params["groups"] != 1:
                continue
            followers: list[str] = []
            consumers: list[str] = []
            frontier, ok = [n.name], True
            while frontier and ok:
                cur = frontier.pop()
                if cur == self.output:
                    ok = False
                for u in users[cur]:
                    un = by_name[u]
                    if un.module != n.module:
                        ok = False
                    elif un.op == "conv" and un.params["groups"] == 1:
                        consumers.append(u)
                    elif un.op in CHANNELWISE:
                        followers.append(u)
                        frontier.append(u)
                    else:
                        ok = False
            if ok and consumers:
                out[n.module].append(PrunableConv(n.name, n.module, tuple(followers),
                                                  tuple(consumers)))
        return out

    def widths(self, rates: dict[str, float] | None = None) -> dict[str, dict[str, int]]:
        """Node -> its channel counts ({'in', 'out'} for conv/linear, {'channels'} for bn/scale)
        after pruning each module m by rates[m] (missing modules unpruned)."""
        rates = rates or {}
        unknown = set(rates) - set(self.modules)
        if unknown:
            raise NetworkError(f"rates given for undeclared modules {sorted(unknown)}; "
                               f"modules are {list(self.modules)}")
        w: dict[str, dict[str, int]] = {}
        for n in self.nodes:
            p = n.params
            if n.op in ("conv", "linear"):
                w[n.name] = {"in": p["in_channels"], "out": p["out_channels"]}
            elif n.op in ("bn", "scale"):
                w[n.name] = {"channels": p["channels"]}
        for mod, convs in self.prunable().items():
            r = rates.get(mod, 0.0)
            for pc in convs:
                k = keep(w[pc.conv]["out"], r)
                w[pc.conv]["out"] = k
                for f in pc.followers:
                    if f in w:
                        w[f]["channels"] = k
                for c in pc.consumers:
                    w[c]["in"] = k
        return w

    def param_count(self, rates: dict[str, float] | None = None) -> int:
        """Number of parameters (weights and biases; not BN running statistics) after pruning."""
        w = self.widths(rates)
        total = 0
        for n in self.nodes:
            p = n.params
            if n.op == "conv":
                kh, kw = p["kernel"]
                total += w[n.name]["out"] * (w[n.name]["in"] // p["groups"]) * kh * kw
                total += w[n.name]["out"] if p["bias"] else 0
            elif n.op == "linear":
                total += w[n.name]["out"] * w[n.name]["in"] + (w[n.name]["out"] if p["bias"] else 0)
            elif n.op == "bn":
                total += 2 * w[n.name]["channels"] if p["affine"] else 0
            elif n.op == "scale":
                total += w[n.name]["channels"] * (2 if p["bias"] else 1)
        return total


def _identifiers(names: list[str]) -> dict[str, str]:
    """Each name -> a distinct Python identifier made of its word characters."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = re.sub(r"\W", "_", name, flags=re.ASCII) or "layer"
        if not base.isidentifier() or keyword.iskeyword(base) or base.startswith("__"):
            base = "l_" + base
        ident, k = base, 2
        while ident in used:
            ident, k = f"{base}_{k}", k + 1
        used.add(ident)
        out[name] = ident
    return out


def validate(net: GraphNet) -> GraphNet:
    """Check names, ops, references, channel agreement and module structure; returns net."""
    seen: set[str] = set()
    channels: dict[str, int | None] = {INPUT: net.input_shape[0]}
    declared = set(net.modules)
    if len(declared) != len(net.modules):
        raise NetworkError(f"a module is declared twice: {list(net.modules)}")
    if not net.nodes:
        raise NetworkError(f"network {net.name!r} has no layers")
    for n in net.nodes:
        if n.name == INPUT or n.name in seen:
            raise NetworkError(f"{n.where()}: the name is used twice or reserved")
        if n.op not in OPS:
            raise NetworkError(f"{n.where()}: unknown operation {n.op!r}")
        if n.module is not None and n.module not in declared:
            raise NetworkError(f"{n.where()}: module {n.module!r} is not declared")
        for i in n.inputs:
            if i not in channels:
                raise NetworkError(f"{n.where()} reads {i!r}, which no earlier layer produces")
        c_in = [channels[i] for i in n.inputs]
        p = n.params
        if n.op == "add":
            if len(set(c_in)) != 1:
                raise NetworkError(f"{n.where()} sums tensors of {c_in} channels")
        elif len(n.inputs) != 1:
            raise NetworkError(f"{n.where()}: {n.op} reads one tensor, got {len(n.inputs)}")
        if n.op in ("conv", "linear"):
            p.setdefault("in_channels", c_in[0])
            if c_in[0] is not None and p["in_channels"] != c_in[0]:
                raise NetworkError(f"{n.where()} expects {p['in_channels']} input channels, "
                                   f"gets {c_in[0]}")
            channels[n.name] = p["out_channels"]
        elif n.op in ("bn", "scale"):
            p.setdefault("channels", c_in[0])
            if p["channels"] != c_in[0]:
                raise NetworkError(f"{n.where()} has {p['channels']} channels, gets {c_in[0]}")
            channels[n.name] = c_in[0]
        else:
            channels[n.name] = c_in[0]
        seen.add(n.name)
    net.segments()  # raises on non-contiguous modules or modules with several inputs/outputs
    return net


class ChannelAffine(nn.Module):
    """Caffe's Scale layer: x (N, C, H, W) * weight[c] (+ bias[c])."""

    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.weight.view(1, -1, 1, 1)
        return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y


def make_layer(node: Node, width: dict[str, int] | None) -> nn.Module | None:
    """The torch module of a parametric or pooling node at the given widths (None: a pure op)."""
    p = node.params
    if node.op == "conv":
        return nn.Conv2d(width["in"], width["out"], tuple(p["kernel"]), stride=tuple(p["stride"]),
                         padding=tuple(p["padding"]), groups=p["groups"], bias=p["bias"])
    if node.op == "bn":
        return nn.BatchNorm2d(width["channels"], eps=p["eps"], affine=p["affine"])
    if node.op == "scale":
        return ChannelAffine(width["channels"], p["bias"])
    if node.op == "linear":
        return nn.Linear(width["in"], width["out"], bias=p["bias"])
    if node.op == "maxpool":
        return nn.MaxPool2d(tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]),
                            ceil_mode=p.get("ceil", False))
    if node.op == "avgpool":
        return nn.AvgPool2d(tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]),
                            ceil_mode=p.get("ceil", False))
    return None


def apply_op(node: Node, layer: nn.Module | None, xs: list[torch.Tensor]) -> torch.Tensor:
    """Run one node on its input tensors."""
    if node.op == "add":
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
    x = xs[0]
    if node.op == "relu":
        return torch.relu(x)
    if node.op == "gap":
        return x.mean((2, 3), keepdim=True)
    if node.op == "flatten":
        return torch.flatten(x, 1)
    if node.op == "identity":
        return x
    if node.op == "linear":
        return layer(torch.flatten(x, 1))
    return layer(x)


class GraphModel(nn.Module):
    """A GraphNet run by interpretation, pruned by `rates`: x (N, C, H, W) -> output.

    Its layers live in `self.layers[ident]`, the same keys the generated multiplexing model uses,
    so state dicts move between the two unchanged.
    """

    def __init__(self, net: GraphNet, rates: dict[str, float] | None = None) -> None:
        super().__init__()
        self.net = net
        self.ident = net.idents()
        widths = net.widths(rates)
        self.layers = nn.ModuleDict()
        for n in net.nodes:
            layer = make_layer(n, widths.get(n.name))
            if layer is not None:
                self.layers[self.ident[n.name]] = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {INPUT: x}
        for n in self.net.nodes:
            layer = self.layers[self.ident[n.name]] if self.ident[n.name] in self.layers else None
            values[n.name] = apply_op(n, layer, [values[i] for i in n.inputs])
        return values[self.net.output]


# ---- PyTorch models with declared modules (torch.fx) -------------------------------------------

class _Tracer(torch.fx.Tracer):
    """Keeps the declared modules as single calls, so each is traced on its own afterwards."""

    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def from_module(model: nn.Module, modules: list[str], input_shape: tuple[int, int, int],
                name: str | None = None) -> GraphNet:
    """Describe `model` (traced with torch.fx) with `modules` (qualified submodule names, e.g.
    ResNet basic blocks 'layer1.0') as the prunable modules; input_shape is (C, H, W)."""
    subs = dict(model.named_modules())
    for m in modules:
        if m not in subs or m == "":
            raise NetworkError(f"declared module {m!r} is not a submodule of "
                               f"{type(model).__name__}")
    nested = [(a, b) for a in modules for b in modules if a != b and b.startswith(a + ".")]
    if nested:
        raise NetworkError(f"declared modules may not nest: {nested[0][1]!r} is inside {nested[0][0]!r}")
    tracer = _Tracer(set(modules))
    graph = tracer.trace(model)
    nodes: list[Node] = []
    _convert(graph, model, "", None, {}, nodes, set(modules))
    return validate(GraphNet(name or type(model).__name__, tuple(input_shape), nodes,
                             tuple(modules)))


def _convert(graph: torch.fx.Graph, root: nn.Module, prefix: str, module: str | None,
             env: dict[str, str], out: list[Node], leaves: set[str]) -> str:
    """Append graph's nodes to `out` (names prefixed); returns the node producing its output."""
    subs = dict(root.named_modules())
    result = INPUT
    for fx in graph.nodes:
        if fx.op == "placeholder":
            env[fx.name] = env.get(INPUT, INPUT)  # a traced submodule reads its caller's tensor
            continue
        if fx.op == "output":
            result = env[fx.args[0].name]
            continue
        args = [a for a in fx.args if isinstance(a, torch.fx.Node)]
        inputs = tuple(env[a.name] for a in args)
        if fx.op == "call_module" and fx.target in leaves:
            sub = subs[fx.target]
            sub_graph = torch.fx.Tracer().trace(sub)
            env[fx.name] = _convert(sub_graph, sub, fx.target + ".", fx.target,
                                    {INPUT: inputs[0]}, out, set())
            continue
        qual = prefix + (fx.target if fx.op == "call_module" else fx.name)
        if fx.op == "call_module":
            op, params = _module_op(subs[fx.target], qual)
        elif fx.op in ("call_function", "call_method"):
            op, params = _function_op(fx, qual)
        else:
            raise NetworkError(f"{qual}: unsupported fx node kind {fx.op!r}")
        out.append(Node(qual, op, inputs, params, module,
                        source=qual if fx.op == "call_module" else None))
        env[fx.name] = qual
    return result


def _pair(v: Any) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def _module_op(m: nn.Module, qual: str) -> tuple[str, dict[str, Any]]:
    """(op, params) of a leaf nn.Module."""
    if isinstance(m, nn.Conv2d):
        if m.dilation != (1, 1) or not isinstance(m.padding, tuple):
            raise NetworkError(f"{qual}: dilated or string-padded convolutions are not supported")
        return "conv", {"in_channels": m.in_channels, "out_channels": m.out_channels,
                        "kernel": list(m.kernel_size), "stride": list(m.stride),
                        "padding": list(m.padding), "groups": m.groups, "bias": m.bias is not None}
    if isinstance(m, nn.BatchNorm2d):
        return "bn", {"channels": m.num_features, "eps": m.eps, "affine": m.affine}
    if isinstance(m, nn.ReLU):
        return "relu", {}
    if isinstance(m, nn.Linear):
        return "linear", {"in_channels": m.in_features, "out_channels": m.out_features,
                          "bias": m.bias is not None}
    if isinstance(m, nn.AdaptiveAvgPool2d) and _pair(m.output_size) == [1, 1]:
        return "gap", {}
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        if isinstance(m, nn.MaxPool2d) and (_pair(m.dilation) != [1, 1] or m.ceil_mode):
            raise NetworkError(f"{qual}: dilated or ceil-mode max pooling is not supported")
        return ("maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool",
                {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size),
                 "padding": _pair(m.padding)})
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return "identity", {}
    if isinstance(m, nn.Flatten) and m.start_dim == 1:
        return "flatten", {}
    raise NetworkError(f"{qual}: layer type {type(m).__name__} is not supported "
                       f"(supported: Conv2d, BatchNorm2d, ReLU, Linear, pools, Identity, Flatten)")


def _function_op(fx: torch.fx.Node, qual: str) -> tuple[str, dict[str, Any]]:
    """(op, params) of a call_function / call_method node."""
    t = fx.target
    if t in (operator.add, torch.add, "add") and len(fx.args) == 2 and not fx.kwargs:
        return "add", {}
    if t in (torch.relu, nn.functional.relu, "relu"):
        return "relu", {}
    if t in (torch.flatten, "flatten"):
        start = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("start_dim", 0)
        end = fx.args[2] if len(fx.args) > 2 else fx.kwargs.get("end_dim", -1)
        if (start, end) == (1, -1):
            return "flatten", {}
    raise NetworkError(f"{qual}: operation {getattr(t, '__name__', t)!r} is not supported "
                       "(supported: +, relu, flatten(x, 1))")


def state_from_module(net: GraphNet, model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of `model` under the GraphModel / multiplexing keys 'layers.<ident>.<param>'."""
    src = model.state_dict()
    ident = net.idents()
    out = {}
    for n in net.nodes:
        if n.op not in PARAMETRIC:
            continue
        if n.source is None:
            raise NetworkError(f"{n.where()} has no source module to take weights from")
        for key in make_layer(n, net.widths().get(n.name)).state_dict():
            out[f"layers.{ident[n.name]}.{key}"] = src[f"{n.source}.{key}"].detach().clone()
    return out


def net_to_dict(net: GraphNet) -> dict[str, Any]:
    """A GraphNet as plain JSON-ready data."""
    return {"name": net.name, "input_shape": list(net.input_shape), "modules": list(net.modules),
            "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "params": n.params,
                       "module": n.module, "line": n.line, "source": n.source} for n in net.nodes]}


def net_from_dict(d: dict[str, Any]) -> GraphNet:
    """The inverse of net_to_dict (validated)."""
    nodes = [Node(n["name"], n["op"], tuple(n["inputs"]), dict(n["params"]), n["module"],
                  n.get("line"), n.get("source")) for n in d["nodes"]]
    return validate(GraphNet(d["name"], tuple(d["input_shape"]), nodes, tuple(d["modules"])))
