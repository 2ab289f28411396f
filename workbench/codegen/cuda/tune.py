"""The GPU tuner: per conv layer, walk CONV_SPACE best-first from the default schedule on the
card (tune_layer), log every measurement, replay the pick.

Each candidate runs as a CUDA graph of back-to-back launches (cuda.driver.time_graph: so
Python's launch cost, some 10 us a kernel, is not what is timed; many batch-1 layers take
less), and the candidates of a layer are timed in turns, each turn's median kept. Records are JSON lines keyed by
(layer signature with batch size, target: architecture and card name); the tuner's choice
is marked "pick" and replayed without measuring. The log lives in
$WORKBENCH_CACHE/gpu_tuning.jsonl unless another path is given; a log worth keeping is
copied into results/.
"""
from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.build import cache_dir, debug
from workbench.codegen.cuda.conv import check_schedule, conv_geometry, fit_schedule
from workbench.codegen.cuda.driver import time_graph
from workbench.codegen.cuda.schedule import (CONV_SPACE, THREAD_TILES, TILES, GpuSchedule,
                                             default_gpu_schedule, schedule_at)
from workbench.codegen.lr import LR, Layer
from workbench.codegen.schedule import layer_signature as conv_signature
from workbench.provenance import append_jsonl, read_jsonl

GPU_LOG_VERSION = 1


def layer_signature(layer: Layer, in_shape: tuple[int, ...], batch: int) -> str:
    """What a GPU schedule depends on: the host tuner's signature (shapes, geometry,
    patterns, kept fraction) and the batch size."""
    return f"{conv_signature(layer, in_shape)}:n{batch}"


def gpu_target() -> str:
    """The card a schedule was measured on, e.g. 'cuda:sm_90:NVIDIA H100 80GB HBM3'."""
    import torch
    from workbench.codegen.cuda.driver import device_arch
    return f"cuda:{device_arch()}:{torch.cuda.get_device_name()}"


class GpuTuningLog:
    """Append-only JSONL of GPU measurements (default $WORKBENCH_CACHE/gpu_tuning.jsonl)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else cache_dir() / "gpu_tuning.jsonl"

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (a torn last line from an interrupted run is skipped)."""
        return read_jsonl(self.path)

    def append(self, rec: dict[str, Any]) -> None:
        """Add one record (one line, flushed: an interrupted run keeps what it measured)."""
        append_jsonl(self.path, rec)

    def best(self, signature: str, target: str) -> GpuSchedule | None:
        """The last pick for (signature, target) under GPU_LOG_VERSION, else None."""
        picks = [r for r in self.records() if r.get("signature") == signature and
                 r.get("target") == target and r.get("version") == GPU_LOG_VERSION and
                 r.get("pick")]
        return GpuSchedule.from_dict(picks[-1]["schedule"]) if picks else None


def _fits(g: Any, s: GpuSchedule) -> bool:
    if s.tile_h > g.ho * 2 or s.tile_w > g.wo * 2:
        return False   # a tile far past the plane only idles threads
    try:
        check_schedule(g, s)
    except ValueError:
        return False
    return True


def neighbours(g: Any, s: GpuSchedule) -> list[GpuSchedule]:
    """The schedules one knob away from s (each knob's other CONV_SPACE values) that can run
    conv g."""
    values = dict(CONV_SPACE.knobs)
    out = [s.with_(**{knob: v}) for knob in ("groups", "tile_f", "cblock", "ksplit", "stages")
           for v in values[knob]]
    out += [s.with_(tile_h=th, tile_w=tw) for th, tw in TILES]
    out += [s.with_(px_y=py, px_x=px) for py, px in THREAD_TILES]
    if g.groups > 1:      # grouped convs: one filter group per block, tile_f dividing og
        out = [c for c in out if c.groups == 1 and g.og % c.tile_f == 0]
    return [c for c in dict.fromkeys(out) if c != s and _fits(g, c)]


def default_schedule(layer: Layer, in_shape: tuple[int, ...]) -> GpuSchedule:
    """The untuned schedule of conv `layer` on a (C, H, W) input (as CudaNetwork builds it)."""
    g = conv_geometry(layer, in_shape)
    return fit_schedule(g, default_gpu_schedule(g.og, g.ho, g.wo, g.kh, g.kw, g.cg,
                                                (g.kh, g.kw) == (1, 1)))


def random_points(g: Any, k: int, seen: set[GpuSchedule], seed: int = 0) -> list[GpuSchedule]:
    """k CONV_SPACE points not in seen that can run conv g, in a seeded random order."""
    idx = list(range(len(CONV_SPACE)))
    random.Random(seed).shuffle(idx)
    out: list[GpuSchedule] = []
    for i in idx:
        if len(out) >= k:
            break
        s = schedule_at(CONV_SPACE[i])
        if g.groups > 1:
            s = s.with_(tile_f=min(s.tile_f, g.og), groups=1)
            if g.og % s.tile_f:
                continue
        if s not in seen and _fits(g, s):
            seen.add(s)
            out.append(s)
    return out


_POOL: tuple[Any, str] | None = None     # (process pool, the cache folder it was spawned with)


def compile_all(srcs: list[str], arch: str) -> None:
    """Build every source into the NVRTC cache on a pool of processes (NVRTC holds the
    interpreter lock while it compiles, so threads would not overlap: 0.4 s a candidate,
    24 candidates a layer, 53 layers in ResNet-50). The pool is spawned once per process and
    only compiles: it never touches the GPU."""
    import atexit
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from workbench.codegen.cuda.nvrtc import compile_cuda
    global _POOL
    workers = min(16, os.cpu_count() or 1)
    if workers < 2 or len(srcs) < 2:
        for src in srcs:
            compile_cuda(src, arch)
        return
    root = str(cache_dir())
    if _POOL is None or _POOL[1] != root:     # workers read $WORKBENCH_CACHE when spawned
        if _POOL is not None:
            _POOL[0].shutdown()
        _POOL = (ProcessPoolExecutor(workers, multiprocessing.get_context("spawn")), root)
        atexit.register(_POOL[0].shutdown)   # before the interpreter tears its modules down
    list(_POOL[0].map(compile_cuda, srcs, [arch] * len(srcs)))


def _layer_runners(layer: Layer, in_shape: tuple[int, ...], batch: int,
                   scheds: list[GpuSchedule]) -> list[Callable[[], None]]:
    """One timed call per schedule: the layer alone as a CudaNetwork (CUBINs built first by
    compile_all)."""
    import torch
    from workbench.codegen.cuda.driver import device_arch
    from workbench.codegen.cuda.network import CudaNetwork
    name = layer.inputs[0]
    lr = LR({name: list(in_shape)}, [layer], [layer.name])
    nets = [CudaNetwork(lr, {layer.name: s}) for s in scheds]
    compile_all([src for net in nets for src in net.sources().values()], device_arch())
    x = torch.randn(batch, *in_shape, device="cuda")
    out = []
    for net in nets:
        net._prepare()
        out.append(lambda net=net: net._run(x) and None)
    return out


def tune_layer(layer: Layer, in_shape: tuple[int, ...], batch: int = 1, trials: int = 24,
               log: GpuTuningLog | None = None, retune: bool = False, rounds: int = 2
               ) -> GpuSchedule:
    """The fastest of `trials` schedules for conv `layer` at batch size `batch` (replayed from
    the log when it holds a pick for this layer and card, unless retune).

    A best-first walk: time the default and its neighbours, then the unseen neighbours of the
    fastest schedule not yet expanded, until `trials` are timed (seeded random points fill
    the budget once no timed schedule has unseen neighbours). Knobs interact (more filter
    groups per block may pay only with a double-buffered tile), which one step from the
    default alone misses."""
    log = log or GpuTuningLog()
    sig, target = layer_signature(layer, in_shape, batch), gpu_target()
    if not retune:
        hit = log.best(sig, target)
        if hit is not None:
            return hit
    g = conv_geometry(layer, in_shape)
    first = default_schedule(layer, in_shape)
    timed: dict[GpuSchedule, float] = {}
    expanded: set[GpuSchedule] = set()
    batch_ = [first, *neighbours(g, first)][:trials]
    expanded.add(first)
    while batch_:
        runners = _layer_runners(layer, in_shape, batch, batch_)
        ms = np.full((rounds, len(batch_)), np.inf)
        for r in range(rounds):
            for i, run in enumerate(runners):
                ms[r, i] = time_graph(run)
        timed.update(zip(batch_, ms.min(axis=0).tolist()))
        left = trials - len(timed)
        if left <= 0:
            break
        batch_ = []
        for s in sorted(timed, key=timed.__getitem__):
            if s not in expanded:
                expanded.add(s)
                batch_ = [c for c in neighbours(g, s) if c not in timed][:left]
                if batch_:
                    break
        if not batch_:
            batch_ = random_points(g, left, set(timed), seed=len(timed))
    pick = min(timed, key=timed.get)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for s, t in timed.items():
        log.append({"signature": sig, "target": target, "version": GPU_LOG_VERSION,
                    "schedule": s.to_dict(), "ms": float(t), "pick": s == pick,
                    "default": s == first, "time": stamp, "layer": layer.name})
    if debug():
        print(f"{layer.name}: {pick} {timed[pick]:.4f} ms (default {timed[first]:.4f} ms)")
    return pick


def tune_network(lr: LR, batch: int = 1, trials: int = 24, log: GpuTuningLog | None = None,
                 retune: bool = False, progress: Callable[[Iterable[Any]], Iterable[Any]] | None
                 = None) -> dict[str, GpuSchedule]:
    """layer name -> tuned GpuSchedule for every conv of lr (after the default passes)."""
    from workbench.codegen.passes import optimize
    lr = optimize(lr)
    shapes = lr.shapes()
    convs = [layer for layer in lr.layers if layer.op == "conv2d"]
    out = {}
    for layer in (progress or (lambda it: it))(convs):
        out[layer.name] = tune_layer(layer, shapes[layer.inputs[0]], batch, trials, log, retune)
    return out
