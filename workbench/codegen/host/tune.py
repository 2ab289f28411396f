"""Auto-tuning: measure schedules per layer, log every measurement, replay the best.

The search space of a layer is data (a ScheduleSpace); the tuner is a plain loop over a
seeded sample of it, each candidate timed after a cache eviction (C kernels; CacheEvictor),
as a layer runs inside a network that streams more than the cache holds. Each measurement
is one JSON line in a log keyed by (layer signature, target, threads), the target naming the
CPU it ran on (target_id); a later run reads the log and re-applies the fastest entry
without measuring. The log lives in $WORKBENCH_CACHE/tuning.jsonl unless another path is
given. Records carry the version of the schedule space (LOG_VERSION): replaying a key
measured only under another version raises TuningLogError, since its best was chosen
without the newer candidates.
"""
from __future__ import annotations

import ctypes
import datetime as _dt
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.build import cache_dir, debug
from workbench.provenance import append_jsonl, read_jsonl
from workbench.codegen.c.gemm import gemm_can_read_in_place
from workbench.codegen.host.build import build_c, cpu_id, host_vector_width, last_level_cache_bytes
from workbench.codegen.host.kernel import CompiledLayer
from workbench.codegen.host.parallel import default_threads
from workbench.codegen.ir import (conv_ir, is_column_pruned, is_depthwise_layer,
    is_direct_candidate, is_pointwise_layer, reads_plain_stride2)
from workbench.codegen.lr import LR, Layer, out_shape
from workbench.codegen.schedule import (Schedule, ScheduleSpace, UnionSpace, c_default_schedule,
    column_default_schedule, column_space, default_schedule, depthwise_default_schedule,
    depthwise_space, direct_default_schedule, direct_space, gemm_space, layer_signature, pblock_space,
    taps_default_schedule)

# 2: the C space gained the taps kernel (Schedule.kernel, cblock); version-1 records (no
# "version" field) hold bests chosen without it
# 3: 1x1 layers search the packed GEMM kernel (Schedule.kernel "gemm") instead of the
# in-place block-sparse one; depthwise layers search the depthwise kernel (kernel
# "depthwise"), dense convs with <= 4 input channels the direct kernel too (kernel "direct")
# 4: stride-1 3x3 layers search the pblock kernel too (per-pattern bodies in channel blocks,
# kernel "pblock", render_pblock)
# 5: stride-2 convs other than depthwise and direct candidates read stride phases instead of
# the plain buffer (ir.reads_plain_stride2), and search the taps and pblock kernels too; at
# 1 thread, schedules that differ only in how threads split the work are sampled once; 1x1
# layers sample twice as many
# 6: targets name the CPU (target_id); 3x3 layers with at most 8 output rows also try one
# row tile per plane (_whole_plane)
# 7: every candidate is timed after a cache eviction (CacheEvictor), not hot; stride-2
# convs read tighter phase planes (ir.conv_src_layout)
# 8: a layer's candidates are timed in turns (_time_kernels), the tuner's choice is marked
# "pick"; 1x1 layers whose plain input the GEMM kernel can read in place also time the best
# schedule found in turns with its Schedule.pack = 0 twin (_in_place_variant)
LOG_VERSION = 8


class TuningLogError(RuntimeError):
    """A tuning log that cannot be replayed as it is (records of another LOG_VERSION)."""


def target_id(emitter: str) -> str:
    """The code generator, ISA, vector width and CPU (build.cpu_id) a schedule was measured for,
    e.g. "c:x86_64:v16:AuthenticAMD-26-2". Records of the same ISA on another CPU generation
    are not replayed: Zen 4 splits 16-float FMAs in two, and there the tuner chose 8-float
    vectors for ResNet-50's 512 -> 2048 GEMM on 7x7 (1.03 ms vs 1.15 at 16 floats); Zen 5
    does not, and there 16 floats win (0.50 ms vs 0.87). Older records carry no CPU
    ("c:x86_64:v16") and stay in the log, never replayed."""
    vec = host_vector_width() if emitter == "c" else 0
    return f"{emitter}:{platform.machine()}:v{vec}:{cpu_id()}"


def narrow_vector(layer: Layer, in_shape: tuple[int, int, int], vector: int) -> int | None:
    """8 where a 16-float host would fill 8-float vectors better with this layer's output
    (rows of a 3x3 conv, whole planes of a 1x1 GEMM), else None. A 7-wide output row uses 7
    of 16 lanes: on Zen 4, ResNet-50's 7x7 3x3 layers ran 1.08 -> 0.71 ms and its 7x7 GEMMs
    ~10% faster in 8-float vectors, which keep AVX-512's 32 registers (AVX-512VL). The tuner
    measures both widths: on Zen 5 (full-width 16-float FMAs) the GEMMs go back to 16."""
    if vector != 16 or is_depthwise_layer(layer):
        return None
    _, ho, wo = out_shape(layer, [in_shape])
    lanes = ho * wo if is_pointwise_layer(layer) else wo

    def filled(v: int) -> float:
        return lanes / (-(-lanes // v) * v)
    return 8 if filled(8) > filled(16) else None


def _also_narrow(space: ScheduleSpace | UnionSpace, narrow: int | None
                 ) -> ScheduleSpace | UnionSpace:
    """space, plus every schedule of it again with Schedule.vector = narrow (if any)."""
    if narrow is None:
        return space
    parts = getattr(space, "parts", (space,))
    return UnionSpace((*parts, *(ScheduleSpace(p.knobs, p.base.with_(vector=narrow))
                                 for p in parts)))


def _whole_plane(rows: tuple[int, ...], ho: int) -> tuple[int, ...]:
    """rows, plus ho itself where the output has at most 8 rows: one row tile per plane, so
    each filter's weights are read once per image (on Zen 4, ResNet-50's 14 -> 7 stride-2
    layer, 1.3 MB of weights against a 1 MB L2, took 3.1 ms in the network and 1.6 ms alone
    in 2 tiles; on Zen 5 one 7-row tile and two tiles time alike, 0.790 vs 0.795 ms)."""
    return rows + (ho,) if 0 < ho <= 8 and ho not in rows else rows


def conv_space(layer: Layer, emitter: str, vector: int | None = None,
               in_shape: tuple[int, int, int] | None = None) -> ScheduleSpace | UnionSpace:
    """The candidate schedules of a conv layer for an emitter (see Schedule for the knobs):
    for C convolutions the pattern kernel's knobs, plus the taps kernel's where it applies
    (not on a plain stride-2 buffer, which needs lane gathers) and the direct
    kernel's for dense convs with few input channels, and on stride 1 the pblock kernel's,
    and the column kernel's for column-pruned layers (ir.is_column_pruned); depthwise layers search
    only the depthwise kernel. Given in_shape, on a 16-float host
    every candidate also in 8-float vectors where the output fills them better
    (narrow_vector)."""
    if emitter == "numba":
        return ScheduleSpace.of(default_schedule("numba"), tile_h=(4, 8, 16, 32), unroll_k=(1, 2))
    vec = vector or host_vector_width()
    narrow = narrow_vector(layer, in_shape, vec) if in_shape is not None else None
    widths = (1, 2, 3) if vec == 8 else (1, 2, 4)
    if is_pointwise_layer(layer):
        # the packed GEMM kernel only: the in-place one (kernel "pattern" on a 1x1) stays for
        # explicit schedules; timed alone with hot caches it still wins some layers at 2
        # threads, but in the networks (cold inputs, padded output layouts) it lost overall
        return _also_narrow(gemm_space(vec), narrow)
    if is_depthwise_layer(layer):
        return depthwise_space(vec)
    ho = out_shape(layer, [in_shape])[1] if in_shape is not None else 0
    pattern = ScheduleSpace.of(Schedule(), tile_h=_whole_plane((2, 3, 4, 6), ho),
                               tile_w=widths, lre=(1, 2),
                               loop_order=("filter_cols", "cols_filter"))
    if is_direct_candidate(layer):
        pattern = UnionSpace((pattern, direct_space(vec)))
    if tuple(layer.attrs["stride"]) == (2, 2) and reads_plain_stride2(layer):
        return _also_narrow(pattern, narrow)
    # taps kernel: th x tw accumulators within 16 (AVX2) / 32 registers, L1 channel blocks
    taps = ScheduleSpace.of(Schedule(kernel="taps"), tile_h=_whole_plane((2, 3, 4), ho),
                            tile_w=(2, 3, 4) if vec == 8 else (2, 4, 6),
                            cblock=(8, 16, 32), loop_order=("filter_cols", "cols_filter"))
    column = column_space(vec).parts if is_column_pruned(layer) else ()
    return _also_narrow(UnionSpace((*getattr(pattern, "parts", (pattern,)), taps,
                                    *pblock_space(vec).parts, *column)), narrow)



@dataclass
class TuningLog:
    """Append-only JSONL of measurements; best() replays the tuner's pick per key (the
    record marked "pick"), else the fastest."""
    path: Path

    @classmethod
    def default(cls) -> "TuningLog":
        """$WORKBENCH_CACHE/tuning.jsonl."""
        return cls(cache_dir() / "tuning.jsonl")

    def append(self, record: dict[str, Any]) -> None:
        """Add one measurement (one line, flushed at once so a crash loses nothing)."""
        append_jsonl(self.path, record)

    def records(self) -> list[dict[str, Any]]:
        """Every readable record (a torn last line from an interrupted run is skipped)."""
        return read_jsonl(self.path)

    def best(self, signature: str, target: str, threads: int,
             needs_vector: int | None = None, needs_kernel: str | None = None
             ) -> Schedule | None:
        """The schedule the tuner last picked for (signature, target, threads) under
        LOG_VERSION (else the fastest logged), or None; TuningLogError if the key was measured only under another version. needs_vector:
        None too unless some record ran that many floats per vector (a log written before
        conv_space added those candidates has none); needs_kernel: likewise unless some record
        ran that Schedule.kernel (conv_space added the column kernel's candidates after version
        8, without a new version: no other layer's space changed)."""
        hits = [r for r in self.records() if r.get("signature") == signature and
                r.get("target") == target and r.get("threads") == threads]
        current = [r for r in hits if r.get("version", 1) == LOG_VERSION]
        if hits and not current:
            old = sorted({r.get("version", 1) for r in hits})
            raise TuningLogError(
                f"tuning log {self.path} has {signature} at {threads} thread(s) measured only "
                f"with schedule-space version(s) {old}, this code searches version "
                f"{LOG_VERSION} (2 added the taps kernel, 3 the 1x1 GEMM, depthwise and direct "
                f"kernels, 4 the pblock kernel, 5 phase-split stride-2 inputs, 6 whole-plane "
                f"row tiles and the CPU in the target, 7 timing after a cache eviction, 8 "
                f"timing in turns and GEMMs reading in place): delete the log or tune into a new one "
                f"(retune=True appends version-{LOG_VERSION} records)")
        hits = current
        if not hits or (needs_vector is not None and
                        not any(r["schedule"].get("vector") == needs_vector for r in hits)):
            return None
        if needs_kernel is not None and not any(r["schedule"].get("kernel") == needs_kernel
                                                for r in hits):
            return None
        picks = [r for r in hits if r.get("pick")]
        if picks:
            # the tuner's last choice: times of different rounds are not compared (a shared
            # machine drifts between them)
            return Schedule.from_dict(picks[-1]["schedule"])
        return Schedule.from_dict(min(hits, key=lambda r: r["ms"])["schedule"])


_EVICT_SOURCE = r"""
void wb_evict(float *buf, long n, int threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (long i = 0; i < n; i += 16) buf[i] += 1.0f;   /* one write per 64-byte line */
}
"""


class CacheEvictor:
    """Dirties a buffer of twice the last-level cache on `threads` threads, so that what a
    kernel reads next comes from DRAM and its writes first push dirty lines out: the state a
    layer meets inside ResNet-50 or VGG-16, which stream 60+ MB per image through a 32 MB L3.
    Timed hot, the pblock kernel won ResNet-50's 14x14 3x3 layers (0.166 vs 0.230 ms at 2
    threads on Zen 5) and lost them in the network (0.294 vs 0.205); timed after an eviction
    the order was the network's (0.286 vs 0.216)."""

    def __init__(self) -> None:
        self.buf = np.zeros(2 * last_level_cache_bytes() // 4, np.float32)
        self._fn = build_c(_EVICT_SOURCE).wb_evict
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int]

    def __call__(self, threads: int) -> None:
        """Evict (about 2 ms for 64 MB on one Zen 5 core)."""
        self._fn(self.buf.ctypes.data, self.buf.size, max(1, threads))


_EVICTOR: CacheEvictor | None = None


def _evictor() -> CacheEvictor:
    global _EVICTOR
    if _EVICTOR is None:
        _EVICTOR = CacheEvictor()
    return _EVICTOR


def _time_kernel(kern: CompiledLayer, in_shape: tuple[int, int, int], repeats: int,
                 cold: bool = False) -> float:
    """Median seconds of one call of the kernel on random data (its own buffers, no copies);
    cold: caches evicted before every call (CacheEvictor; C kernels only)."""
    return _time_kernels([kern], in_shape, repeats, cold)[0]


def _time_kernels(kerns: list[CompiledLayer], in_shape: tuple[int, int, int], repeats: int,
                  cold: bool = False) -> list[float]:
    """Median seconds of one call of each kernel, timed in turn: `repeats` rounds, each
    calling every kernel once (after a cache eviction each when cold), so that a slow spell
    of a shared machine lands on every candidate alike. On this VM one candidate timed a
    minute after another drifted by up to 40% (ResNet-50's 256 -> 64 GEMM on 56x56 at 2
    threads: read in place 0.478 ms against 0.331 packed when timed one after the other;
    0.346 against 0.396 when timed in turns)."""
    c, h, w = in_shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    calls = []
    for kern in kerns:
        if kern.emitter == "c":
            ir, _ = kern._c_kernel(h, w)
            src, dst = ir.src.alloc(1), ir.dst.alloc(1)
            ir.src.write(src, x)
            calls.append(lambda k=kern, s=src, d=dst: k.run_c(s, d, 1, h, w))
        else:
            calls.append(lambda k=kern: k(x))
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in kerns]
    for _ in range(repeats):
        for kern, call, ts in zip(kerns, calls, times):
            if cold and kern.emitter == "c":
                _evictor()(kern.schedule.threads or default_threads())
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
    return [float(np.median(ts)) for ts in times]


def tune_layer(layer: Layer, in_shape: tuple[int, int, int], emitter: str = "c",
               trials: int = 12, space: ScheduleSpace | None = None,
               log: TuningLog | None = None, threads: int | None = None, repeats: int = 7,
               seed: int = 0, retune: bool = False) -> Schedule:
    """The fastest schedule of a conv layer: replayed from the log, else measured.

    Measures the untuned default plus `trials - 1` schedules sampled (seeded) from space
    (twice as many for 1x1 layers with the C emitter: their GEMM kernels build in a fraction
    of a second, most of ResNet-50's and MobileNet-V2's time is theirs, and the worst GEMM
    tiles take twice as long as the best; twice again where conv_space adds 8-float vectors),
    each median of `repeats` calls at `threads` threads, all timed in turns (_time_kernels;
    C kernels after a cache eviction each); then, for a 1x1 layer whose input allows it, the
    fastest again in turns with its twin reading the input in place (_in_place_variant).
    Logs every measurement and marks the pick.
    """
    log = log or TuningLog.default()
    threads = threads or default_threads()
    sig, target = layer_signature(layer, in_shape), target_id(emitter)
    narrow = narrow_vector(layer, in_shape, host_vector_width()) if emitter == "c" else None
    if not retune:
        # a layer logged before its 8-float (or column-kernel) candidates existed is measured again
        hit = log.best(sig, target, threads, needs_vector=narrow if space is None else None,
                       needs_kernel="column" if space is None and emitter == "c" and
                       is_column_pruned(layer) else None)
        if hit is not None:
            if debug():
                print(f"# workbench tune: replay {sig} -> {hit.to_dict()}")
            return hit
    space = space or conv_space(layer, emitter, in_shape=in_shape)
    firsts = []
    if emitter == "c":
        vec = host_vector_width()
        rows = -(-in_shape[2] // vec)
        firsts.append(c_default_schedule(vec, is_pointwise_layer(layer), rows))
        if not is_pointwise_layer(layer) and any(s.kernel == "taps" for s in space):
            pw = int(layer.attrs["padding"][1])
            firsts.append(taps_default_schedule(vec, in_shape[2] + 2 * pw))
        if is_depthwise_layer(layer):
            firsts = [depthwise_default_schedule(vec)]
        elif is_direct_candidate(layer):
            firsts.append(direct_default_schedule(vec))
        if any(sch.kernel == "column" for sch in space):
            firsts.append(column_default_schedule(vec))
        if narrow is not None and any(sch.vector == narrow for sch in space):
            # the space doubled: so do the trials, the defaults measured in both widths
            firsts += [f.with_(vector=narrow) for f in firsts]
            trials *= 2
    else:
        firsts.append(default_schedule(emitter))
    pool = list(space)
    if threads == 1:
        # how threads split the work means nothing on one thread: sample distinct schedules
        pool = list(dict.fromkeys(sch.with_(parallel="rows") for sch in pool))
    if emitter == "c" and is_pointwise_layer(layer):
        trials *= 2
    picks = random.Random(seed).sample(range(len(pool)),
                                       min(len(pool), max(0, trials - len(firsts))))
    candidates = firsts + [pool[i] for i in picks if pool[i] not in firsts]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def measure(scheds: list[Schedule]) -> list[float]:
        kerns = [CompiledLayer(layer, emitter, sch.with_(threads=threads),
                               in_shape if emitter == "c" else None) for sch in scheds]
        return _time_kernels(kerns, in_shape, repeats, cold=emitter == "c")

    def record(scheds: list[Schedule], ts: list[float], pick: int | None) -> None:
        # the tuner's choice is marked: TuningLog.best replays it
        for i, (sch, t) in enumerate(zip(scheds, ts)):
            log.append({"signature": sig, "target": target, "threads": threads,
                        "schedule": sch.with_(threads=0).to_dict(), "ms": t * 1e3,
                        "version": LOG_VERSION, "utc": stamp, "pid": os.getpid(),
                        **({"pick": True} if i == pick else {})})

    times = measure(candidates)
    win = int(np.argmin(times))
    best = candidates[win].with_(threads=0)
    follow = _in_place_variant(layer, in_shape, best) if emitter == "c" else None
    if follow is not None and follow not in candidates:
        # a second round: the best and its in-place twin in turns, the faster is the pick
        record(candidates, times, None)
        pair = [best, follow]
        pair_times = measure(pair)
        win = int(np.argmin(pair_times))
        record(pair, pair_times, win)
        best = pair[win]
    else:
        record(candidates, times, win)
    if debug():
        print(f"# workbench tune: {sig}: best {best.to_dict()}")
    return best


def _in_place_variant(layer: Layer, in_shape: tuple[int, int, int], best: Schedule
                     ) -> Schedule | None:
    """best with Schedule.pack = 0 where best is a GEMM schedule that packs and the layer's
    plain input can be read in place (c.gemm.gemm_can_read_in_place), else None. Timed
    after the search rather than as a knob of it: it doubles no space, and whether reading in
    place pays depends on the tile (ResNet-50 in the network, 1 thread: 56x56 GEMMs 5-12%
    faster, two others 4-7% slower)."""
    if best.kernel != "gemm" or best.pack == 0 or not is_pointwise_layer(layer):
        return None
    ir = conv_ir(layer, in_shape, best.vector or host_vector_width())
    return best.with_(pack=0) if gemm_can_read_in_place(ir) else None


def tune_network(lr: LR, emitter: str = "c", trials: int = 12, log: TuningLog | None = None,
                 threads: int | None = None, retune: bool = False) -> LR:
    """lr with every conv layer's schedule tuned (layers with one signature tuned once)."""
    shapes = lr.shapes()
    done: dict[str, Schedule] = {}
    layers = []
    for layer in lr.layers:
        if layer.op == "conv2d":
            in_shape = tuple(shapes[layer.inputs[0]])
            sig = layer_signature(layer, in_shape)
            if sig not in done:
                done[sig] = tune_layer(layer, in_shape, emitter, trials, log=log,
                                       threads=threads, retune=retune)
            layer = Layer(layer.name, layer.op, layer.inputs, layer.attrs, layer.params,
                          done[sig].to_dict())
        layers.append(layer)
    return LR(dict(lr.inputs), layers, list(lr.outputs), dict(lr.meta), lr.version)
