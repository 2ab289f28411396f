"""Schedules and tuning spaces, tested by counting."""
from __future__ import annotations

import pytest

from workbench.codegen.schedule import Schedule, ScheduleSpace


def test_space_size_and_indexing() -> None:
    space = ScheduleSpace.of(tile_h=(2, 4, 8), unroll_k=(1, 2), threads=(1, 2))
    assert len(space) == 12
    configs = list(space)
    assert len(set(configs)) == 12
    assert [space[i] for i in range(12)] == configs
    assert space[-1] == configs[-1]
    with pytest.raises(IndexError):
        space[12]


def test_schedule_round_trips_and_rejects_nonsense() -> None:
    s = Schedule(tile_h=3, parallel="rows")
    assert Schedule.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="tile_h"):
        Schedule(tile_h=0)
    with pytest.raises(ValueError, match="unknown schedule knob"):
        Schedule.from_dict({"tile_q": 1})
    with pytest.raises(ValueError, match="unknown schedule knob"):
        ScheduleSpace.of(tile_q=(1,))
