"""Schedules: the tuning knobs of one layer, kept apart from what the layer computes.

A Schedule is one point (a frozen value, JSON-able); a ScheduleSpace is the set of candidates
the tuner walks, declared as data: named knobs with candidate values, len() and indexing.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

PARALLEL_AXES = ("rows", "filters")
LOOP_ORDERS = ("filter_cols", "cols_filter")
KERNELS = ("pattern", "taps")


@dataclass(frozen=True)
class Schedule:
    """Knobs of one layer's kernel.

    tile_h: output rows per task; tile_w: output columns per register tile, in vectors (C);
    unroll_k: kernels of one pattern handled per pass over a tile; tile_o: output channels per
    task (dense / 1x1 / linear); vector: floats per SIMD vector (16 AVX-512, 8 AVX2, 4 NEON);
    (0 = the target's own width); lre: load redundancy elimination (C), 0 = every tap loads
    its own vector, 1 = each input row of a tile loaded once per kernel and shared by all
    output rows and taps, 2 = as 1 with the column shifts done in registers;
    parallel: what the threads split ("rows": row tiles, "filters": output channels);
    loop_order (C): "filter_cols" = a job is one filter across all column tiles of its row
    tile, "cols_filter" = a job is one (column tile, filter), filters innermost, so the input
    columns of a tile stay in cache across filters; prefetch (C): 1 = prefetch the next
    kernel's input rows; threads: 0 = all.
    kernel (C, stride-1 convs): "pattern" = one straight-line body per pattern (the knobs
    above), "taps" = one body for every kernel, reading a table of per-tap input offsets
    (unaligned loads feeding the FMAs), input channels walked in blocks of cblock (0 = all)
    for every filter in turn, so a block's input rows stay in L1 across filters (partial
    sums go through the output buffer between blocks).
    """
    tile_h: int = 4
    tile_w: int = 2
    unroll_k: int = 1
    tile_o: int = 4
    vector: int = 0
    lre: int = 2
    parallel: str = "rows"
    loop_order: str = "filter_cols"
    prefetch: int = 0
    threads: int = 0
    kernel: str = "pattern"
    cblock: int = 0

    def __post_init__(self) -> None:
        for f in ("tile_h", "tile_w", "unroll_k", "tile_o"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"Schedule.{f} must be >= 1, got {getattr(self, f)}")
        if self.parallel not in PARALLEL_AXES:
            raise ValueError(f"Schedule.parallel {self.parallel!r} not in {PARALLEL_AXES}")
        if self.loop_order not in LOOP_ORDERS:
            raise ValueError(f"Schedule.loop_order {self.loop_order!r} not in {LOOP_ORDERS}")
        if self.vector not in (0, 1, 4, 8, 16):
            raise ValueError(f"Schedule.vector must be 0 (target width), 1, 4, 8 or 16, got "
                             f"{self.vector}")
        if self.lre not in (0, 1, 2):
            raise ValueError(f"Schedule.lre must be 0, 1 or 2, got {self.lre}")
        if self.prefetch not in (0, 1):
            raise ValueError(f"Schedule.prefetch must be 0 or 1, got {self.prefetch}")
        if self.kernel not in KERNELS:
            raise ValueError(f"Schedule.kernel {self.kernel!r} not in {KERNELS}")
        if self.cblock < 0:
            raise ValueError(f"Schedule.cblock must be >= 0, got {self.cblock}")
        if self.threads < 0:
            raise ValueError(f"Schedule.threads must be >= 0, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (LR files, tuning logs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Schedule":
        """Inverse of to_dict; unknown keys raise, missing keys take defaults."""
        if not d:
            return cls()
        names = {f.name for f in fields(cls)}
        extra = set(d) - names
        if extra:
            raise ValueError(f"unknown schedule knobs {sorted(extra)}; known: {sorted(names)}")
        return cls(**d)

    def with_(self, **kw: Any) -> "Schedule":
        """A copy with some knobs changed."""
        return replace(self, **kw)


def default_schedule(emitter: str) -> Schedule:
    """A sensible untuned schedule for an emitter ("numba" or "c")."""
    if emitter == "numba":
        # rows per job: long flattened runs vectorise well; unroll 1 keeps compiles short
        return Schedule(tile_h=16, unroll_k=1)
    return Schedule()


def taps_default_schedule(vector: int, row_floats: int) -> Schedule:
    """An untuned taps-kernel schedule: 9 accumulators (3 rows x 3 vectors) with 16 vector
    registers, 12 with 32; channel blocks sized so that a block's input rows (tile rows + 2
    halo rows of row_floats floats each) take about 20 KiB of a 32 KiB L1."""
    th, tw = (3, 3) if vector == 8 else (3, 4)
    per_channel = (th + 2) * max(1, row_floats) * 4
    cblock = max(4, min(64, 20 * 1024 // per_channel))
    return Schedule(tile_h=th, tile_w=tw, kernel="taps", cblock=cblock)


def c_default_schedule(vector: int, pointwise: bool, row_vectors: int) -> Schedule:
    """An untuned C schedule sized to the register file: about 12 accumulators with 16
    vector registers (AVX2), 24 with 32 (AVX-512, NEON)."""
    budget = 12 if vector == 8 else 24
    if pointwise:
        tv = max(1, min(3, row_vectors))
        return Schedule(tile_w=tv, tile_o=max(2, min(budget // tv, 24)))
    return Schedule(tile_h=4, tile_w=2 if vector == 8 else 4)


@dataclass(frozen=True)
class ScheduleSpace:
    """Named knobs with candidate values; the product of them, over a base Schedule."""
    knobs: tuple[tuple[str, tuple[Any, ...]], ...]
    base: Schedule = Schedule()

    @classmethod
    def of(cls, base: Schedule | None = None, **knobs: Any) -> "ScheduleSpace":
        """ScheduleSpace.of(tile_h=(2, 4), unroll_k=(1, 2)) -> 4 configs."""
        names = {f.name for f in fields(Schedule)}
        for k in knobs:
            if k not in names:
                raise ValueError(f"unknown schedule knob {k!r}; known: {sorted(names)}")
        return cls(tuple((k, tuple(v)) for k, v in knobs.items()), base or Schedule())

    def __len__(self) -> int:
        n = 1
        for _, vals in self.knobs:
            n *= len(vals)
        return n

    def __getitem__(self, i: int) -> Schedule:
        if not -len(self) <= i < len(self):
            raise IndexError(f"config {i} out of a space of {len(self)}")
        i %= len(self)
        point = {}
        for name, vals in reversed(self.knobs):
            i, r = divmod(i, len(vals))
            point[name] = vals[r]
        return self.base.with_(**point)

    def __iter__(self):
        names = [k for k, _ in self.knobs]
        for combo in itertools.product(*(v for _, v in self.knobs)):
            yield self.base.with_(**dict(zip(names, combo)))


@dataclass(frozen=True)
class UnionSpace:
    """Several ScheduleSpaces (e.g. one per kernel kind, each with its own knobs) seen as
    one: len() is the sum, index i walks them in order."""
    parts: tuple[ScheduleSpace, ...]

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, i: int) -> Schedule:
        if not -len(self) <= i < len(self):
            raise IndexError(f"config {i} out of a space of {len(self)}")
        i %= len(self)
        for p in self.parts:
            if i < len(p):
                return p[i]
            i -= len(p)
        raise AssertionError("unreachable")

    def __iter__(self):  # noqa: D105
        for p in self.parts:
            yield from p
