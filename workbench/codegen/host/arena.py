"""A C plan's memory: buffer slots reused by values of one layout, and one shared arena.

A dead value's slot is reused by a later value of the same layout (same zero border, so
nothing needs clearing), and slots whose live steps do not meet share the arena (greedy by
size, as TFLite's arena planner). A bordered slot in the arena has its border cleared before
the step that makes it first, since other slots' values were there since the last call.
"""
from __future__ import annotations

from collections.abc import Sequence

from workbench.codegen.ir import SLACK, Layout, round_up
from workbench.codegen.lr import LR

# Bordered (one-phase) buffers share the arena too, their borders cleared before each call's
# producer writes them (render_clear_border), not only the buffers without borders.
ARENA_BORDERED = True


def assign_slots(lr: LR, made: Sequence[tuple[str, Sequence[str], Sequence[str]]],
                 layouts: dict[str, Layout]) -> tuple[dict[str, int], list[Layout], list[list[int]]]:
    """(value -> slot, slot -> layout, slot -> live steps [first write, last read]) for the
    steps `made` (per step: the value it makes, its inputs, the copies it makes first); -1
    is the input copy, len(made) the outputs' read-out."""
    last: dict[str, int] = {}
    for i, (_, inputs, _) in enumerate(made):
        for v in inputs:
            last[v] = i
    for o in lr.outputs:
        last[o] = len(made)
    free: dict[Layout, list[int]] = {}
    slots: dict[str, int] = {}
    slot_layouts: list[Layout] = []
    slot_live: list[list[int]] = []

    def take(v: str, i: int) -> None:
        lay = layouts[v]
        if free.get(lay):
            slots[v] = free[lay].pop()
        else:
            slots[v] = len(slot_layouts)
            slot_layouts.append(lay)
            slot_live.append([i, i])
        live = slot_live[slots[v]]
        live[1] = max(live[1], last.get(v, i))
    for v in lr.inputs:
        take(v, -1)
    for i, (name, inputs, copies) in enumerate(made):
        for p in copies:
            take(p, i)
        take(name, i)
        for v in [*inputs, *copies]:
            if last.get(v, i) <= i:
                free.setdefault(layouts[v], []).append(slots[v])
    return slots, slot_layouts, slot_live


def slot_floats(lay: Layout) -> int:
    """Floats per image a slot of this layout takes in the arena: its image to a whole vector,
    and SLACK (a whole-vector store of a last partial vector lands there, not in a live
    neighbour, as in a buffer of its own)."""
    return round_up(lay.image, 16) + SLACK


def arena_offsets(slot_layouts: list[Layout], slot_live: list[list[int]],
                  outside: set[int]) -> dict[int, int]:
    """Slot -> offset in floats per image in the shared arena: slots live at disjoint steps
    share memory. In it: the slots whose every float is a pixel (nothing to keep zero), and
    with ARENA_BORDERED the one-phase bordered ones made by a step. Outside it: the slots in
    `outside` (handed-out outputs), stride-phased slots and a bordered input."""
    sizes = {s: slot_floats(lay) for s, lay in enumerate(slot_layouts)
             if s not in outside and (lay.tight or ARENA_BORDERED and lay.phases == 1
                                      and slot_live[s][0] >= 0)}
    placed: list[tuple[int, int, int]] = []   # (offset, end, slot)
    offsets: dict[int, int] = {}
    for s in sorted(sizes, key=lambda s: (-sizes[s], s)):
        first, last = slot_live[s]
        busy = sorted((o, e) for o, e, t in placed
                      if slot_live[t][0] <= last and first <= slot_live[t][1])
        at = 0
        for o, e in busy:
            if at + sizes[s] <= o:
                break
            at = max(at, e)
        offsets[s] = at
        placed.append((at, at + sizes[s], s))
    return offsets


def arena_floats(slot_layouts: list[Layout], offsets: dict[int, int]) -> int:
    """Floats per image of the arena holding the slots at these offsets."""
    return max((o + slot_floats(slot_layouts[s]) for s, o in offsets.items()), default=0)


def border_clears(slot_layouts: list[Layout], slot_live: list[list[int]],
                  offsets: dict[int, int]) -> dict[int, list[int]]:
    """Step -> the bordered arena slots whose borders it clears before running: those it
    makes first (other slots' values may have been there since the last call)."""
    out: dict[int, list[int]] = {}
    for s in sorted(offsets):
        if not slot_layouts[s].tight:
            out.setdefault(slot_live[s][0], []).append(s)
    return out
