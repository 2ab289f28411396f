"""Schedules: the tuning knobs of one layer, kept apart from what the layer computes.

A Schedule is one point (a frozen value, JSON-able); a ScheduleSpace is the set of candidates
the tuner walks, declared as data: named knobs with candidate values, len() and indexing.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.codegen.lr import Layer

PARALLEL_AXES = ("rows", "filters")
LOOP_ORDERS = ("filter_cols", "cols_filter")
KERNELS = ("pattern", "taps", "depthwise", "direct", "gemm", "pblock", "dense", "rowblock", "csr",
           "column")


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
    sums go through the output buffer between blocks); "depthwise" (groups == C == O) = one
    channel plane per job, tile_h x tile_w accumulators, each input row loaded once per tile;
    "direct" (dense convs with few input channels, the 7x7 stem) = tile_o filters x tile_h x
    tile_w accumulators sharing every input vector; "gemm" (1x1 convs) = packed GEMM, tile_o
    filters x tile_w vectors of pixels per register tile, tile_h pixel tiles packed per job,
    unroll_k unrolls the channel loop (c.gemm.render_pointwise_gemm); "pattern" on a 1x1
    conv is the older in-place block-sparse GEMM (c.pointwise.render_pointwise); "pblock" = the
    pattern kernel's per-pattern bodies (tile_h, tile_w, lre) inside input-channel blocks of
    cblock, every filter in turn per block, as the taps kernel (c.pblock); "column" (one
    group, stride 1 or phase-split input) = an implicit GEMM over the kept im2col columns,
    tile_o filters x tile_h rows x tile_w vectors of accumulators sharing every input
    vector (c.column; for column-pruned layers, whose filters keep the same taps).
    Linear layers: "dense", "rowblock" (tile_o rows per block) or "csr" force that weight
    format (linear_storage); any other kernel lets the compiler pick the smallest.
    pack ("gemm"): 1 = each job copies its pixels of every input channel into packed panels,
    0 = the register tiles read the input in place where it is plain and vector-aligned
    (c.gemm.gemm_can_read_in_place; elsewhere the kernel packs as for 1).
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
    pack: int = 1

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
        if self.pack not in (0, 1):
            raise ValueError(f"Schedule.pack must be 0 or 1, got {self.pack}")
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
    vector registers (AVX2), 24 with 32 (AVX-512, NEON). row_vectors (vectors per output row)
    no longer matters: the 1x1 GEMM kernel tiles the whole output plane."""
    if pointwise:
        return gemm_default_schedule(vector)
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


def pblock_tiles(vector: int) -> tuple[tuple[int, int], ...]:
    """(tile_h, tile_w) register tiles of the pblock kernel: at most 10 accumulators with 16
    vector registers (AVX2: the 4 tap weights and a loaded row vector need the rest; 12
    accumulators spill), up to 20 with 32."""
    if vector == 8:
        return ((4, 2), (5, 2), (3, 3), (2, 4), (6, 1))
    return ((4, 4), (5, 3), (3, 5), (6, 2), (4, 3))


def pblock_space(vector: int) -> UnionSpace:
    """Candidate schedules of the pblock kernel (c.pblock): its register tiles, rows
    shared across taps with unaligned loads or register shifts (lre 1, 2), channel blocks of
    32 or 64, groups of 64 filters or all (tile_o, capped at O) per job, either loop order."""
    return UnionSpace(tuple(
        ScheduleSpace.of(Schedule(kernel="pblock", tile_h=th, tile_w=tw), lre=(1, 2),
                         cblock=(32, 64), tile_o=(64, 512),
                         loop_order=("filter_cols", "cols_filter"))
        for th, tw in pblock_tiles(vector)))


def depthwise_default_schedule(vector: int) -> Schedule:
    """An untuned depthwise schedule: tiles of 2 rows x 2 vectors (the depthwise kernel keeps
    only the rows in flight in registers, so tile_h mostly sets the input rows re-read)."""
    return Schedule(tile_h=2, tile_w=2, kernel="depthwise")


def depthwise_space(vector: int) -> ScheduleSpace:
    """Candidate schedules of the depthwise kernel: output rows per tile (input rows re-read
    per tile: kh - 1) and vectors per row of the tile."""
    return ScheduleSpace.of(Schedule(kernel="depthwise"), tile_h=(1, 2, 4, 8, 16),
                            tile_w=(1, 2, 3, 4) if vector == 8 else (1, 2, 3))


def direct_space(vector: int) -> ScheduleSpace:
    """Candidate schedules of the direct kernel: tile_o filters x tile_w vectors (x tile_h
    rows) of accumulators, about 4-12 of AVX2's 16 registers (more with 32)."""
    return ScheduleSpace.of(Schedule(kernel="direct", tile_h=1), tile_o=(3, 4, 5, 6, 8),
                            tile_w=(1, 2) if vector == 8 else (1, 2, 3))


def direct_default_schedule(vector: int) -> Schedule:
    """An untuned direct-kernel schedule: 5 filters x 2 vectors (10 accumulators) with 16
    vector registers, 8 x 2 with 32 (the fastest on ResNet-50's stem with AVX2)."""
    return Schedule(tile_h=1, tile_w=2, tile_o=5 if vector == 8 else 8, kernel="direct")


def gemm_tiles(vector: int) -> tuple[tuple[int, int], ...]:
    """(tile_o, tile_w) register tiles of the 1x1 GEMM kernel that fit the register file:
    tile_o * tile_w accumulators + tile_w input vectors + 1 broadcast weight within 16 vector
    registers (AVX2), 32 (AVX-512, NEON)."""
    if vector == 8:
        return ((8, 1), (4, 2), (5, 2), (6, 2), (3, 3), (4, 3))
    return ((12, 1), (8, 2), (12, 2), (6, 3), (8, 3), (4, 4), (5, 4), (6, 4))


def gemm_space(vector: int) -> UnionSpace:
    """Candidate schedules of the 1x1 GEMM kernel (kernel "gemm"): the register tiles of
    gemm_tiles, channel loop unrolled 1 or 2 times, 4 or 16 pixel tiles packed per job
    (tile_h; c.gemm.gemm_group caps it by the panels' size), threads splitting those groups
    ("rows") or each group's filter blocks ("filters")."""
    by_w: dict[int, list[int]] = {}
    for to, tw in gemm_tiles(vector):
        by_w.setdefault(tw, []).append(to)
    return UnionSpace(tuple(
        ScheduleSpace.of(Schedule(kernel="gemm", tile_w=tw), tile_o=tuple(tos), unroll_k=(1, 2),
                         tile_h=(4, 16), parallel=("rows", "filters"))
        for tw, tos in sorted(by_w.items())))


def gemm_default_schedule(vector: int) -> Schedule:
    """An untuned 1x1 GEMM schedule: 6 filters x 2 vectors (12 accumulators) with 16 vector
    registers, 8 x 3 with 32; 8 pixel tiles per job (long runs per channel for the
    prefetchers when the input and output are not in cache)."""
    return Schedule(kernel="gemm", tile_o=6, tile_w=2, unroll_k=2, tile_h=8) if vector == 8 \
        else Schedule(kernel="gemm", tile_o=8, tile_w=3, unroll_k=2, tile_h=8)


def column_tiles(vector: int) -> tuple[tuple[int, int, int], ...]:
    """(tile_o, tile_w, tile_h) register tiles of the column kernel: tile_o * tile_w *
    tile_h accumulators, the tile_w * tile_h input vectors of a column and a broadcast weight
    within 16 vector registers (AVX2), 32 (AVX-512, NEON)."""
    if vector == 8:
        return ((4, 3, 1), (3, 2, 2), (6, 2, 1), (4, 1, 3), (2, 3, 2))
    return ((4, 3, 2), (8, 3, 1), (6, 2, 2), (4, 4, 1), (4, 2, 3), (5, 2, 2))


def column_space(vector: int) -> UnionSpace:
    """Candidate schedules of the column kernel (c.column): its register tiles, filter groups
    walked per column tile or as jobs, the next column tile's input prefetched or not."""
    return UnionSpace(tuple(
        ScheduleSpace.of(Schedule(kernel="column", tile_o=to, tile_w=tw, tile_h=th),
                         loop_order=("cols_filter", "filter_cols"), prefetch=(1, 0))
        for to, tw, th in column_tiles(vector)))


def column_default_schedule(vector: int) -> Schedule:
    """An untuned column-kernel schedule: 4 filters x 2 rows x 3 vectors (24 accumulators)
    with 32 vector registers, 4 x 1 x 3 with 16; every filter group on a column tile in turn
    (cols_filter), which read its input from L1, and the next tile's input prefetched: on
    Zen 5 at 1 thread, 128 -> 128 3x3 on 64x64 column-pruned 8x took 0.7 ms (pattern kernel
    2.0), 64 -> 32 on 256x256 2.0 (4.4), 32 -> 3 9x9 on 256x256 0.9-1.4 (2.8)."""
    th = 1 if vector == 8 else 2
    return Schedule(kernel="column", tile_o=4, tile_w=3, tile_h=th, loop_order="cols_filter",
                    prefetch=1)


def layer_signature(layer: Layer, in_shape: tuple[int, ...]) -> str:
    """What a schedule depends on: op, shapes, geometry, pattern count, kept fraction."""
    a = layer.attrs
    kp = layer.kernel_patterns
    kept = kp.kept_weights / max(1, kp.total_kernels * kp.kernel_shape[0] * kp.kernel_shape[1])
    return (f"conv2d:c{a['in_channels']}:o{a['out_channels']}:k{a['kernel'][0]}x{a['kernel'][1]}"
            f":s{a['stride'][0]}x{a['stride'][1]}:p{a['padding'][0]}x{a['padding'][1]}"
            f":d{a['dilation'][0]}x{a['dilation'][1]}:g{a['groups']}:in{in_shape[1]}x{in_shape[2]}"
            f":P{kp.num_patterns}:kept{kept:.2f}:{a['act']}")
