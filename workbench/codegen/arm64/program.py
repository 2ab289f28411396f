"""A C plan as a program: the kernels, the calls in order and the memory they touch, as data.

The host runs a C network plan (host.plan.CPlan) as bound calls: function addresses and
argument addresses in one array for a generated driver. A bundle for another machine needs
the same calls with every address replaced by what it points to: a constant (weights, pattern
tables: written to the weights file), an activation buffer (allocated by the bundle), the
input, or nothing; and every function replaced by its generated source. export_plan builds
the plan for the target's vector width, binds it with a placeholder thread count, and maps
each argument back. An address it cannot map is an error, never a guess.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.frontend import to_lr
from workbench.codegen.host.build import target_vector_width
from workbench.codegen.host.driver import call_kinds
from workbench.codegen.host.network import CompiledNetwork
from workbench.codegen.host.parallel import thread_placeholder
from workbench.codegen.host.plan import _copier
from workbench.codegen.ir import Layout, aligned_floats
from workbench.codegen.lr import LRError

# No real argument (a size, a count, an address) equals it: marks the thread-count arguments.
THREADS = 0x7EADBEEF


class ExportError(LRError):
    """The plan cannot become a stand-alone program (a step that runs in Python, memory the
    exporter cannot trace); the message names the step."""


@dataclass(frozen=True)
class Arg:
    """One argument of a call. kind: "const" (index into consts, byte offset), "buffer"
    (index into buffer_bytes, byte offset), "input", "int" (value), "threads", "null"."""
    kind: str
    index: int = 0
    offset: int = 0
    value: int = 0


@dataclass
class Program:
    """Kernels (symbol, C source), calls (kernel index, args) grouped into named steps
    (name, first call, end call), constant arrays, activation buffer sizes (bytes), the
    input's and output's shapes (batch first) and where the plain output lies."""
    kernels: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[int, list[Arg]]] = field(default_factory=list)
    steps: list[tuple[str, int, int]] = field(default_factory=list)
    consts: list[np.ndarray] = field(default_factory=list)
    buffer_bytes: list[int] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    output: Arg = Arg("null")
    vector: int = 4

    def fingerprint(self) -> int:
        """64-bit hash of everything but the constants' values: a weights file made for
        another program (other shapes, kernels or call order) is refused by it."""
        h = hashlib.sha256()
        for sym, src in self.kernels:
            h.update(sym.encode() + b"\0" + src.encode() + b"\0")
        h.update(json.dumps([[k, [a.__dict__ for a in args]] for k, args in self.calls]).encode())
        h.update(json.dumps([self.steps, [c.nbytes for c in self.consts], self.buffer_bytes,
                             self.input_shape, self.output_shape, self.output.__dict__]).encode())
        return int.from_bytes(h.digest()[:8], "little")


class _Dl_info(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def kernel_of(fn: Any) -> tuple[str, str]:
    """(symbol, C source) of a ctypes function from a library build_c made: dladdr names the
    library k_<hash>.so, whose source build_c keeps beside it as k_<hash>.c."""
    libdl = ctypes.CDLL(ctypes.util.find_library("dl") or None)
    info = _Dl_info()
    addr = ctypes.cast(fn, ctypes.c_void_p).value
    if not addr or not libdl.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) or \
            not info.dli_fname or not info.dli_sname:
        raise ExportError(f"export: cannot find the library of kernel function {fn!r}")
    so = Path(info.dli_fname.decode())
    src = so.with_suffix(".c")
    if not src.exists():
        raise ExportError(f"export: kernel {info.dli_sname.decode()} has no source at {src}")
    return info.dli_sname.decode(), src.read_text()


def _base(a: np.ndarray) -> np.ndarray:
    """The ndarray that owns a's memory (through views)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def reachable_arrays(roots: list[Any], limit: int = 200_000) -> list[np.ndarray]:
    """Every ndarray reachable from roots through containers, closures and the attributes
    of workbench objects (the constants a plan's bound calls point into)."""
    seen: set[int] = set()
    out: list[np.ndarray] = []
    todo = list(roots)
    while todo and len(seen) < limit:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            out.append(o)
        elif isinstance(o, dict):
            todo += list(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            todo += list(o)
        elif isinstance(o, types.FunctionType):
            todo += [c.cell_contents for c in (o.__closure__ or ()) if _filled(c)]
            todo += list(o.__defaults__ or ())
        elif isinstance(o, types.MethodType):
            todo.append(o.__self__)
        elif type(o).__module__.startswith("workbench"):
            todo += list(getattr(o, "__dict__", {}).values())
            todo += [getattr(o, s) for s in getattr(type(o), "__slots__", ()) if hasattr(o, s)]
    return out


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


class _Memory:
    """Address -> Arg: the plan's buffers (explicit) first, then the constants found."""

    def __init__(self, buffers: list[np.ndarray], consts: list[np.ndarray]) -> None:
        self.ranges: list[tuple[int, int, str, int]] = []
        self.consts: list[np.ndarray] = []
        self.const_index: dict[int, int] = {}
        self.buffers = buffers
        for i, b in enumerate(buffers):
            self.ranges.append((b.ctypes.data, b.ctypes.data + b.nbytes, "buffer", i))
        covered = list(self.ranges)
        for a in consts:
            base = _base(a)
            start = base.ctypes.data
            if id(base) in self.const_index or base.nbytes == 0 or any(
                    s <= start < e for s, e, _, _ in covered):
                continue
            self.const_index[id(base)] = len(self.consts)
            self.ranges.append((start, start + base.nbytes, "const", len(self.consts)))
            self.consts.append(base)

    def arg(self, addr: int, where: str) -> Arg:
        for s, e, kind, i in self.ranges:
            if s <= addr < e:
                return Arg(kind, i, addr - s)
        raise ExportError(f"export: {where} points to memory that is neither an activation "
                          f"buffer nor a constant the exporter found")


def export_plan(model_or_lr: Any, input_shape: tuple[int, int, int] | None = None,
                batch: int = 1, vector: int = 4, schedules: dict[str, Any] | None = None
                ) -> Program:
    """The C plan of a model (nn.Module traced at input_shape, an LR or its path), laid out
    for vector-float registers (4: NEON), as a Program for batch images (schedules: per
    layer name, as compile() takes them)."""
    with target_vector_width(vector), thread_placeholder(THREADS):
        net = CompiledNetwork(to_lr(model_or_lr, input_shape), emitter="c", schedules=schedules)
        plan = net.plan
        if plan is None:
            raise ExportError("export: the network has no C plan")
        bufs = plan.buffers(batch)
        unbound = [s.layer for s in plan.steps if s.bind is None]
        if unbound:
            raise ExportError("export: these steps run in Python, not as generated C: " +
                              ", ".join(f"{lay.name!r} ({lay.op})" for lay in unbound))
        (name,) = plan.lr.inputs
        steps: list[tuple[str, list[Any]]] = []
        steps.append(("(input)", [(plan._input_copier(), (0, bufs[name].ctypes.data, batch,
                                                          THREADS))]))
        for i, step in enumerate(plan.steps):
            steps.append((step.layer.name, plan._clear_calls(i, batch, THREADS) +
                          step.bind(bufs, batch)))
        (out,) = plan.lr.outputs
        out_calls, out_plain = _output(plan, bufs, out, batch)
        if out_calls:
            steps.append(("(output)", out_calls))
        buffers = [plan.arena] if plan.arena is not None and plan.arena.size else []
        buffers += [m for m in plan._slot_memory if not any(
            _base(m) is _base(b) for b in buffers)]
        buffers += [out_plain] if out_calls else []
        mem = _Memory(buffers, reachable_arrays([plan.steps, plan]))
        prog = Program(input_shape=(batch, *plan.shapes[name]),
                       output_shape=(batch, *plan.shapes[out]), vector=vector,
                       buffer_bytes=[b.nbytes for b in buffers])
        symbols: dict[int, int] = {}
        for sname, calls in steps:
            first = len(prog.calls)
            for fn, args in calls:
                addr = ctypes.cast(fn, ctypes.c_void_p).value or 0
                if addr not in symbols:
                    symbols[addr] = len(prog.kernels)
                    prog.kernels.append(kernel_of(fn))
                kinds = _kinds(fn)
                prog.calls.append((symbols[addr], [
                    _arg(v, k, mem, sname, j, first_input=(sname == "(input)" and j == 0))
                    for j, (v, k) in enumerate(zip(args, kinds))]))
            prog.steps.append((sname, first, len(prog.calls)))
        prog.output = mem.arg((out_plain if out_calls else bufs[out]).ctypes.data,
                              "the output")
        # only the constants some call reads go to the weights file, in order of first use
        used: dict[int, int] = {}
        for _, args in prog.calls:
            for a in args:
                if a.kind == "const":
                    used.setdefault(a.index, len(used))
        prog.calls = [(k, [Arg("const", used[a.index], a.offset) if a.kind == "const" else a
                           for a in args]) for k, args in prog.calls]
        prog.consts = [mem.consts[i] for i in used]
        return prog


def _kinds(fn: Any) -> str:
    return call_kinds(fn)


def _arg(v: int | None, kind: str, mem: _Memory, step: str, j: int, first_input: bool) -> Arg:
    where = f"argument {j} of a call of step {step!r}"
    if kind == "i":
        return Arg("threads") if v == THREADS else Arg("int", value=int(v or 0))
    if first_input:
        return Arg("input")
    if v is None or v == 0:
        return Arg("null")
    return mem.arg(int(v), where)


def _output(plan: Any, bufs: dict[str, np.ndarray], out: str, n: int
            ) -> tuple[list[Any], np.ndarray]:
    """Calls copying output value out into a plain (n, *shape) array (none where its buffer
    already is one), and that array."""
    lay, shape = plan.layouts[out], plan.shapes[out]
    plain = Layout(*shape) if len(shape) == 3 else None
    if plain is None or lay == plain:
        if lay.image != int(np.prod(shape)):
            raise ExportError(f"export: output {out!r} is {lay}, not a plain array")
        return [], bufs[out]
    if lay.phases != 1:
        raise ExportError(f"export: output {out!r} is held in {lay.phases} stride phases")
    y = aligned_floats(n * plain.image).reshape(n, plain.image)
    return [(_copier(lay, plain), (bufs[out].ctypes.data, y.ctypes.data, n, THREADS))], y
