"""The GPU schedule of one convolution: the knobs of the CUDA conv kernel, kept apart from what
the layer computes, and the space the GPU tuner searches.

A thread block computes a tile_h x tile_w tile of output pixels for `groups` filter groups of
tile_f consecutive filters each (in execution order); the threads of one filter group each
hold px_y x px_x pixels of the tile for its tile_f filters. Input channels are staged cblock
at a time in shared memory, once for all groups x tile_f filters of the block; ksplit > 1
splits the channels over that many blocks per tile, which add their partial sums atomically
(small planes at batch 1 have too few tiles to fill the GPU otherwise). stages = 2 double-buffers
the staged tile: the next channel block is copied in (cp.async) while this one is computed.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

SMEM_LIMIT = 48 * 1024      # bytes of static shared memory a block may use without opt-in
MAX_THREADS = 1024


@dataclass(frozen=True)
class GpuSchedule:
    """Knobs of the CUDA conv kernel (see the module docstring)."""
    tile_f: int = 8
    tile_h: int = 8
    tile_w: int = 32
    px_y: int = 2
    px_x: int = 2
    cblock: int = 8
    ksplit: int = 1
    groups: int = 1
    stages: int = 1

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"GpuSchedule.{k} must be a positive int, got {v!r}")
        if self.stages not in (1, 2):
            raise ValueError(f"GpuSchedule.stages is 1 (one staged tile) or 2 (double-buffered), "
                             f"got {self.stages}")
        if self.tile_h % self.px_y or self.tile_w % self.px_x:
            raise ValueError(f"tile {self.tile_h}x{self.tile_w} is not a whole number of "
                             f"{self.px_y}x{self.px_x} thread tiles")

    @property
    def threads(self) -> int:
        """Threads per block."""
        return self.groups * self.group_threads

    @property
    def group_threads(self) -> int:
        """Threads of one filter group (a multiple of 32 keeps every warp on one group)."""
        return (self.tile_h // self.px_y) * (self.tile_w // self.px_x)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the LR and the tuning log)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GpuSchedule":
        """Inverse of to_dict; unknown keys are an error."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GpuSchedule knobs {sorted(unknown)}")
        return cls(**d)

    def with_(self, **kw: Any) -> "GpuSchedule":
        """A copy with some knobs changed."""
        return replace(self, **kw)


def default_gpu_schedule(out_channels_per_group: int, ho: int, wo: int, kh: int, kw: int,
                         cg: int, pointwise: bool) -> GpuSchedule:
    """The untuned schedule for a conv's shape: filter tiles within a group, thread tiles
    small for large kernels (their register window grows with them), channel splits when
    the planes are small."""
    tf = 1 if out_channels_per_group == 1 else min(8, out_channels_per_group)
    while out_channels_per_group % tf:
        tf -= 1
    py, px = (1, 1) if kh * kw > 25 else ((4, 2) if pointwise else (2, 2))
    th = 8 if ho >= 8 else ho
    tw = 32 if wo >= 24 else (16 if wo >= 12 else 8)
    th = max(py, th - th % py)
    tw = max(px, tw - tw % px)
    tiles = -(-ho // th) * -(-wo // tw)
    # up to 4 filter groups share a staged input tile (grouped convs: their own channels)
    fg = 1 if out_channels_per_group == 1 or cg == 1 else \
        max(1, min(4, out_channels_per_group // tf, 256 // ((th // py) * (tw // px))))
    # split the channels until about two blocks per SM of an H100 (132) are in flight
    blocks = tiles * -(-out_channels_per_group // (tf * fg))
    ks = 1
    while blocks * ks < 264 and cg // (ks * 2) >= 32:
        ks *= 2
    return GpuSchedule(tile_f=tf, tile_h=th, tile_w=tw, px_y=py, px_x=px,
                       cblock=8 if kh * kw > 1 else 16, ksplit=ks, groups=fg)


@dataclass(frozen=True)
class GpuScheduleSpace:
    """Named knobs with candidate values (their product, in order); len() and indexing."""
    knobs: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, **knobs: tuple[int, ...]) -> "GpuScheduleSpace":
        """GpuScheduleSpace.of(tile_f=(4, 8), ...): knobs not named keep their defaults."""
        return cls(tuple((k, tuple(v)) for k, v in knobs.items()))

    def __len__(self) -> int:
        n = 1
        for _, vals in self.knobs:
            n *= len(vals)
        return n

    def __getitem__(self, i: int) -> dict[str, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        out = {}
        for k, vals in reversed(self.knobs):
            i, j = divmod(i, len(vals))
            out[k] = vals[j]
        return dict(reversed(list(out.items())))

    def __iter__(self) -> Iterator[dict[str, int]]:
        names = [k for k, _ in self.knobs]
        for combo in itertools.product(*(v for _, v in self.knobs)):
            yield dict(zip(names, combo))


CONV_SPACE = GpuScheduleSpace.of(tile_f=(4, 8, 16), tile=(0, 1, 2, 3), thread=(0, 1, 2, 3),
                                 cblock=(4, 8, 16), ksplit=(1, 2, 4, 8), groups=(1, 2, 4, 8, 16),
                                 stages=(1, 2))
# tile and thread index these (tile_h, tile_w) and (px_y, px_x) choices
TILES = ((8, 32), (16, 16), (4, 64), (8, 16))
THREAD_TILES = ((1, 1), (2, 2), (4, 2), (2, 4))


def schedule_at(point: dict[str, int]) -> GpuSchedule:
    """The GpuSchedule of one CONV_SPACE point."""
    th, tw = TILES[point["tile"]]
    py, px = THREAD_TILES[point["thread"]]
    return GpuSchedule(tile_f=point["tile_f"], tile_h=th, tile_w=tw, px_y=py, px_x=px,
                       cblock=point["cblock"], ksplit=point["ksplit"], groups=point["groups"],
                       stages=point.get("stages", 1))
