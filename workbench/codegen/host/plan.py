"""The C network plan: buffer layouts, generated kernels and the steps that run them.

A reader that cannot use its value's layout (a strided conv wants stride phases) gets its own
copy, made by a C kernel (render_relayout). A buffer slot is reused by later values of the
same layout once its value is dead, and slots share one arena wherever their live steps do
not meet (host.arena, greedy by size, as TFLite plans its arena); a bordered slot's border
is cleared before the step that makes it, since other slots' values were there.
MobileNet-V2-224's activations take 7.1 MB instead of 23.6 with a buffer per slot, and it
runs 8-12% faster: weights and activations together had overflowed the 32 MB L3 on every call.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.codegen.c.elementwise import render_clear_border
from workbench.codegen.host.arena import arena_floats, arena_offsets, assign_slots, border_clears
from workbench.codegen.host.build import build_c, host_vector_width
from workbench.codegen.host.driver import BoundCalls, Call
from workbench.codegen.host.fusion import (fuse_expansions, fuse_pointwise_pairs,
    fuse_projections, fuse_residual_adds, is_fused_expansion, is_fused_projection)
from workbench.codegen.host.layouts import (_accepts, _merge, _preferred, blocked_capable,
    blocked_max_pixels)
from workbench.codegen.host.parallel import default_threads
from workbench.codegen.host.steps import CStep, StepBuilder, _copier
from workbench.codegen.inputs import float32_input
from workbench.codegen.ir import Layout, aligned_floats, is_pointwise_layer
from workbench.codegen.lr import LR, Layer
from workbench.codegen.schedule import Schedule


@dataclass
class _FastRun:
    """CPlan.run's short way, for a plan whose every step is in one driver call that copies
    the input in and writes the one output into a new array: set the two addresses, make
    the call. The long way's Python around that call took 300-330 us per MobileNet-V2-224
    inference in a noisy stretch of the 2-core VM (its code and data evicted from cache by
    the kernels), this one 75-107 us; in a quieter one 120-142 against 29-84 us."""
    n: int                          # batch size, threads and buffers the call is bound to
    threads: int
    bufs: dict[str, np.ndarray]
    calls: BoundCalls
    names: list[str]                # the steps in the call
    x_pos: int                      # where the input's address goes in calls.args
    out_pos: list[int]              # where the output's address goes
    out_image: int                  # floats per image of the output
    out_shape: tuple[int, ...]

    def __call__(self, plan: "CPlan", x: np.ndarray) -> list[np.ndarray]:
        out = aligned_floats(self.n * self.out_image, zero=False)
        args = self.calls.args
        args[self.x_pos] = x.ctypes.data
        addr = out.ctypes.data
        for p in self.out_pos:
            args[p] = addr
        self.calls.run()
        # every step is in this call: times() reads them all from its stamps
        plan._timed = [(self.names, self.calls)]
        return [out.reshape(self.out_shape)]


class CPlan:
    """Layouts, buffers and steps of an LR compiled with the C emitter."""

    def __init__(self, lr: LR, schedule_for: Callable[[Layer], Schedule | None]) -> None:
        lr, fused_given = fuse_residual_adds(lr, schedule_for)
        self.vector = host_vector_width()
        lr = fuse_pointwise_pairs(fuse_projections(fuse_expansions(lr)), self.vector)
        self.lr = lr
        self.shapes = lr.shapes()
        self.readers: dict[str, list[Layer]] = {}
        for layer in lr.layers:
            for v in layer.inputs:
                self.readers.setdefault(v, []).append(layer)
        self.blocked = self._blocked_values()
        self.layouts = {v: self._choose(v) for v in self.shapes}
        self._residuals_in_output_layout()
        self._builder = StepBuilder(self.layouts, self.shapes, self.vector, self.blocked)
        self.steps = [self._builder.step(layer, fused_given[layer.name] if layer.name in
                                         fused_given else schedule_for(layer))
                      for layer in lr.layers]
        self._buffers: dict[int, dict[str, np.ndarray]] = {}
        self.arena: np.ndarray | None = None      # the slots' shared memory (buffers)
        self._clear_slots: dict[int, list[int]] = {}
        self._slot_memory: list[np.ndarray] = []
        self._clearers: dict[Layout, Any] = {}
        self._python_clears: dict[str, list[Call]] = {}   # _runs: per step run from Python
        self._times: dict[str, float] = {}      # the latest run's: steps run from Python
        self._timed: list[tuple[list[str], BoundCalls]] = []   # and driver calls (times())
        self._slots = self._assign_slots()
        # (buffers, threads) -> runs: BoundCalls of consecutive bindable steps, else a step
        self._bound: tuple[dict[str, np.ndarray], int, list[Any]] | None = None
        self._fast: _FastRun | None = None         # run()'s short path, set by its long one
        self._copy_in: Any = None                 # C copies of the input and outputs
        self._copy_out: dict[str, Any] = {}
        # outputs held in plain NCHW (or flat: a classifier's logits), each in a slot of its
        # own among the outputs: value -> slot, whose buffer is a new array on each call,
        # handed to the caller
        outs = [o for o in lr.outputs if self.layouts[o].dense and o not in lr.inputs]
        self._handed_out = {o: self._slots[o] for o in outs
                            if [self._slots[p] for p in lr.outputs].count(self._slots[o]) == 1}
        self._handed_images = {s: self.slot_layouts[s].image for s in self._handed_out.values()}

    # --- layouts -----------------------------------------------------------------------------
    def _blocked_values(self) -> set[str]:
        """The values held channel-blocked: (C, H, W) maps of at most blocked_max_pixels()
        pixels, C a multiple of the vector width, made by a conv with a blocked kernel (a
        depthwise one from an input of that kind too, so that its copy into blocks stays
        small; a 1x1 reads any plain input in place), not a network output, read only by
        blocked convs (their outputs blocked too) or a global average pool, and not a lone
        blocked conv. So a blocked stretch is two convs or more, with small copies in at most
        (MobileNet-V2: none but residuals)."""
        limit = blocked_max_pixels()
        made_by = {layer.name: layer for layer in self.lr.layers}

        def fits(v: str) -> bool:
            shape = self.shapes[v]
            return len(shape) == 3 and shape[1] * shape[2] <= limit and \
                shape[0] % self.vector == 0

        def fed(v: str) -> bool:
            # a depthwise conv's input is copied into blocks unless blocked: small ones only;
            # a 1x1 reads a plain input in place
            src = made_by[v].inputs[0]
            return fits(src) or (is_pointwise_layer(made_by[v]) and len(self.shapes[src]) == 3)

        vals = {v for v in self.shapes if v in made_by and blocked_capable(made_by[v]) and
                fits(v) and fed(v) and v not in self.lr.outputs}
        changed = True
        while changed:
            changed = False
            for v in sorted(vals):
                readers = self.readers.get(v, [])
                if not all(r.op == "global_avgpool" or (r.name in vals and blocked_capable(r))
                           for r in readers) or \
                        (made_by[v].inputs[0] not in vals and
                         not any(r.op == "conv2d" for r in readers)):
                    # read by a kernel without a blocked form, or a lone blocked conv
                    # between copies (ResNet-50's last 1x1 before the pool: its input and
                    # residual would both be copied in, for one layer)
                    vals.discard(v)
                    changed = True
        return vals

    def _choose(self, v: str) -> Layout:
        shape = self.shapes[v]
        if len(shape) != 3:
            return Layout(shape[0], 1, 1)
        blocked = v in self.blocked
        best: Layout | None = Layout(*shape, cb=self.vector) if blocked else None
        for r in self.readers.get(v, []):
            # a reader of the other kind (blocked or not) makes its own copy
            if r.op != "conv2d" or (is_pointwise_layer(r) and not is_fused_projection(r)) or \
                    is_fused_expansion(r) or (r.name in self.blocked) != blocked:
                continue
            pref = _preferred(r, shape, self.vector, blocked)
            if pref.phases != 1:
                continue  # producers write one phase; a phased reader makes its own copy
            best = pref if best is None else (_merge(best, pref) or best)
        return best or Layout(*shape)

    def _residuals_in_output_layout(self) -> None:
        """A fused GEMM reads its residual in its output's layout: give the residual value
        that layout where its other readers accept it, so no copy is made (ResNet-18's
        downsampling blocks add a 3x3 conv's plain output into a bordered one)."""
        wanted: dict[str, set[Layout]] = {}
        for layer in self.lr.layers:
            if layer.op == "conv2d" and len(layer.inputs) > 1:
                wanted.setdefault(layer.inputs[1], set()).add(self.layouts[layer.name])
        for v, lays in wanted.items():
            if len(lays) != 1 or len(self.shapes[v]) != 3:
                continue
            (lay,) = lays
            if lay == self.layouts[v] or lay.phases != 1 or lay.cb != self.layouts[v].cb:
                continue
            ok = all(_accepts(r, self.shapes[v], lay, self.vector, r.name in self.blocked)
                     for r in self.readers.get(v, [])
                     if r.op == "conv2d" and r.inputs[0] == v)
            if ok:
                self.layouts[v] = lay

    # --- buffers -----------------------------------------------------------------------------
    def _assign_slots(self) -> dict[str, int]:
        """A buffer slot per value (host.arena.assign_slots); records self.slot_layouts and
        each slot's live steps (self.slot_live) for the arena."""
        made = [(step.layer.name, step.layer.inputs, step.copies) for step in self.steps]
        slots, self.slot_layouts, self.slot_live = assign_slots(self.lr, made, self.layouts)
        return slots

    def _arena_offsets(self) -> dict[int, int]:
        """Slot -> offset in floats per image in the shared arena (host.arena)."""
        return arena_offsets(self.slot_layouts, self.slot_live, set(self._handed_out.values()))

    def buffers(self, n: int) -> dict[str, np.ndarray]:
        """Value name -> buffer (N, image) for batch n (allocated once per n): the arena's
        slots as views into it, the others allocated alone."""
        if n not in self._buffers:
            offsets = self._arena_offsets()
            arena = aligned_floats(n * arena_floats(self.slot_layouts, offsets))
            mem = [arena[n * offsets[s]:n * offsets[s] + n * lay.image].reshape(n, lay.image)
                   if s in offsets else lay.alloc(n) for s, lay in enumerate(self.slot_layouts)]
            self._buffers = {n: {v: mem[s] for v, s in self._slots.items()}}
            self.arena = arena
            self._clear_slots = border_clears(self.slot_layouts, self.slot_live, offsets)
            self._slot_memory = mem
        return self._buffers[n]

    def _clear_calls(self, i: int, n: int, threads: int) -> list[Call]:
        """The calls clearing the borders of the slots step i makes first (buffers(n))."""
        calls: list[Call] = []
        for s in self._clear_slots.get(i, []):
            lay = self.slot_layouts[s]
            if lay not in self._clearers:
                fn = build_c(render_clear_border(lay)).wb_clear
                fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
                self._clearers[lay] = fn
            calls.append((self._clearers[lay], (self._slot_memory[s].ctypes.data, n, threads)))
        return calls

    def allocated_bytes(self, n: int) -> int:
        """Bytes of activation buffers for batch n (the arena and the slots outside it)."""
        offsets = self._arena_offsets()
        return 4 * n * (arena_floats(self.slot_layouts, offsets) + sum(
            lay.image for s, lay in enumerate(self.slot_layouts) if s not in offsets))

    def _runs(self, bufs: dict[str, np.ndarray], n: int) -> list[Any]:
        """The steps as runs: (BoundCalls, names, handed-out slot -> positions of its
        address in the calls' args, position of the input's address or None) for
        consecutive steps whose calls bind to these buffers (one driver call each), else the
        CStep itself; cached per buffers and thread count (bound arguments hold both). When
        the first step binds, the first run copies the input in too (its prologue)."""
        threads = default_threads()
        if self._bound is not None and self._bound[0] is bufs and self._bound[1] == threads:
            return self._bound[2]
        runs: list[Any] = []
        pending: list[tuple[str, list[Call]]] = []
        (name,) = self.lr.inputs
        prologue: list[Call] = []
        if self.steps and self.steps[0].bind is not None and len(self.shapes[name]) == 3:
            # the input's address (0 here) is written into args on each call
            prologue = [(self._input_copier(), (0, bufs[name].ctypes.data, n, threads))]

        def flush() -> None:
            nonlocal prologue
            if pending:
                calls = BoundCalls([c for _, c in pending], prologue)
                # where the calls hold the address of a slot handed out as an output
                at = {s: np.flatnonzero(calls.args == bufs[v].ctypes.data)
                      for v, s in self._handed_out.items()}
                runs.append((calls, [nm for nm, _ in pending], at, 1 if prologue else None))
                pending.clear()
                prologue = []
        for i, step in enumerate(self.steps):
            clears = self._clear_calls(i, n, threads)
            if step.bind is not None:
                pending.append((step.layer.name, clears + step.bind(bufs, n)))
            else:
                flush()
                runs.append(step)
                self._python_clears[step.layer.name] = clears
        flush()
        self._bound = (bufs, threads, runs)
        return runs

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run all steps on x (N, C, H, W); returns the outputs as (N, ...) arrays (each
        step's seconds: times())."""
        fast = self._fast
        if fast is not None and x.dtype == np.float32 and x.flags.c_contiguous and \
                x.shape[0] == fast.n and self._buffers.get(fast.n) is fast.bufs and \
                default_threads() == fast.threads:
            return fast(self, x)
        return self._run(x)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        """run() the long way: any input, steps run from Python too; sets up the short way
        (_FastRun) where a single driver call does everything."""
        import time
        x = float32_input(x, "network")   # contiguous: its address goes to the C copy
        n = x.shape[0]
        bufs = self.buffers(n)
        runs = self._runs(bufs, n)
        # a plain output is written straight into a new array (no copy out): every value of
        # its slot gets that array for this call, in the bound calls too
        fresh = {s: aligned_floats(n * image, zero=False).reshape(n, image)
                 for s, image in self._handed_images.items()}
        copied_in = not isinstance(runs[0], CStep) and runs[0][3] is not None
        if fresh and not (copied_in and len(runs) == 1):
            # steps run from Python (or the input copy) find the new arrays in bufs
            bufs = {v: fresh.get(s, bufs[v]) for v, s in self._slots.items()}
        if copied_in:
            runs[0][0].args[runs[0][3]] = x.ctypes.data
        else:
            self._write_input(bufs, x)
        self._times = {}
        self._timed = []
        for r in runs:
            if isinstance(r, CStep):
                t0 = time.perf_counter()
                for fn, args in self._python_clears[r.layer.name]:
                    fn(*args)
                r.run(bufs, n)
                self._times[r.layer.name] = time.perf_counter() - t0
            else:
                calls, names, at, _ = r
                for s, pos in at.items():
                    calls.args[pos] = fresh[s].ctypes.data
                calls.run()
                self._timed.append((names, calls))
        out = self.lr.outputs[0] if len(self.lr.outputs) == 1 else None
        if copied_in and len(runs) == 1 and out in self._handed_out:
            calls, names, at, x_pos = runs[0]
            self._fast = _FastRun(n, default_threads(), self._buffers[n], calls, names, x_pos,
                                  [int(p) for p in at[self._handed_out[out]]],
                                  self._handed_images[self._handed_out[out]],
                                  (n, *self.shapes[out]))
        return [fresh[self._handed_out[o]].reshape(n, *self.shapes[o]) if o in self._handed_out
                else self._read_output(bufs, o, n) for o in self.lr.outputs]

    def times(self) -> dict[str, float]:
        """Seconds per step of the latest run, in execution order."""
        for names, calls in self._timed:
            self._times.update(zip(names, calls.times().tolist()))
        self._timed = []
        return {s.layer.name: self._times[s.layer.name] for s in self.steps
                if s.layer.name in self._times}

    # The network's input and outputs are copied by C kernels on every thread: NumPy's
    # one-thread strided copies of a 64 x 224 x 224 value (12.8 MB) into the bordered input
    # layout and out of the output took 0.76 and 0.50 ms of VGG-16's features.3 run alone at
    # 2 threads (2.44 ms of kernel).
    def _write_input(self, bufs: dict[str, np.ndarray], x: np.ndarray) -> None:
        """Store x (N, C, H, W) into the input value's buffer, in its layout."""
        (name,) = self.lr.inputs
        lay = self.layouts[name]
        if len(self.shapes[name]) != 3:
            lay.write(bufs[name], x)
            return
        self._input_copier()(x.ctypes.data, bufs[name].ctypes.data, x.shape[0],
                             default_threads())

    def _input_copier(self) -> Any:
        """The C copy of a plain (N, C, H, W) input into the input value's layout."""
        if self._copy_in is None:
            (name,) = self.lr.inputs
            self._copy_in = _copier(Layout(*self.shapes[name]), self.layouts[name])
        return self._copy_in

    def _read_output(self, bufs: dict[str, np.ndarray], v: str, n: int) -> np.ndarray:
        """A new (n, *shape) array holding output value v."""
        lay = self.layouts[v]
        if v in self._handed_out:
            return bufs[v].reshape(n, *self.shapes[v])
        if len(self.shapes[v]) != 3 or lay.phases != 1:
            return np.array(self._builder.view(bufs, v, n))
        if v not in self._copy_out:
            self._copy_out[v] = _copier(lay, Layout(*self.shapes[v]))
        out = np.empty((n, *self.shapes[v]), np.float32)
        self._copy_out[v](bufs[v].ctypes.data, out.ctypes.data, n, default_threads())
        return out


def plan_summary(plan: CPlan) -> list[dict[str, Any]]:
    """Per value: its layout and whether a reader copies it (for debugging and notebooks)."""
    return [{"value": v, "layout": plan.layouts[v], "slot": plan._slots.get(v)}
            for v in plan.shapes]
