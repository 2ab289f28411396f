"""Exploration of a promising subspace in the order the objective implies (report section 2.2).

For "the smallest network with accuracy >= full accuracy x (1 - alpha)" the order is by model
size, smallest first: candidates go out in batches of N (N workers, the report's #nodes), and the
exploration stops after the first batch in which some network meets the target; the answer is
the smallest of those. Both the block-trained way (CoCo-Tune) and the baseline (default
networks) run through this same loop; only the evaluation function differs.

Time to target (as in Wootz): a network is fine-tuned until it reaches the target or spends its
budget. An evaluation that returns a curve [(step, seconds, accuracy)] (pipeline.run_net_task)
is read per target by `at_target`: its cost is the seconds and steps up to its first evaluation
at or above the target, and its accuracy is the one measured there (the model one would stop
with); one that never gets there costs its whole budget, keeps its final accuracy and does not
meet the target. So one fine-tuning run per network serves every alpha. An evaluation without a
curve has a fixed cost, its 'seconds', and meets the target if its 'accuracy' does.

Time is counted the way N machines would spend it: each batch takes as long as its slowest
network (to the target), from the seconds each run measured (so one GPU running networks one
after another still reports what N nodes would take, and a cached result keeps its measured
time). The wall time of this call is reported too.

Resumption: `Cached(fn, store)` wraps an evaluation so that each finished network's result is
written as JSON (temporary file + os.replace) under the store's folder before it is returned,
and found there on the next run; a killed exploration re-runs only what had not finished.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.tune.executor import Executor, InProcessExecutor


class ResultStore:
    """One JSON file per finished task under `folder`, written atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """Where the result of task `key` lives."""
        if not key or any(c in key for c in "/\\") or key.startswith("."):
            raise ValueError(f"result key {key!r} must be a plain file name")
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored result of `key`, or None."""
        p = self.path(key)
        return json.loads(p.read_text()) if p.exists() else None

    def put(self, key: str, result: dict) -> None:
        """Store `result` for `key` (temp file, then rename)."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=1, sort_keys=True, default=float) + "\n")
        os.replace(tmp, p)

    def keys(self) -> list[str]:
        """Keys of all stored results."""
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.exists() else []


@dataclass(frozen=True)
class Cached:
    """fn(task) with its result stored under task.key; a stored result is returned as is
    (with 'reused': True) instead of being computed again. Pickles if fn does."""

    fn: Callable[[Any], dict]
    folder: str

    def __call__(self, task: Any) -> dict:
        store = ResultStore(self.folder)
        found = store.get(task.key)
        if found is not None:
            return {**found, "reused": True}
        result = {**self.fn(task), "key": task.key}
        store.put(task.key, result)
        return {**result, "reused": False}


@dataclass
class Exploration:
    """What one exploration did: networks evaluated in order, the answer and the time."""

    target: float
    workers: int
    evaluated: list[dict] = field(default_factory=list)
    chosen: dict | None = None
    time_s: float = 0.0     # N-node time: sum over batches of the slowest network's seconds
    wall_s: float = 0.0     # this call's wall time (cached results make it short)

    @property
    def configs(self) -> int:
        """Number of configurations evaluated (whole batches, as N nodes would)."""
        return len(self.evaluated)

    @property
    def met(self) -> bool:
        """Whether some network met the target."""
        return self.chosen is not None

    @property
    def computed(self) -> int:
        """Networks evaluated in this call rather than read back from the store."""
        return sum(not r.get("reused", False) for r in self.evaluated)


def at_target(result: dict, target: float) -> dict:
    """`result` as an exploration for accuracy `target` sees it: {**result, accuracy, seconds,
    steps, met} at its first curve point with accuracy >= target, else at its last point (the
    whole budget, met False); without a curve, its own accuracy and seconds."""
    curve = result.get("curve")
    if not curve:
        return {**result, "met": result["accuracy"] >= target}
    if any(len(p) != 3 for p in curve):
        raise ValueError("curve points must be (step, seconds, accuracy); is this result of an "
                         "older format (fixed-budget fine-tuning)?")
    hit = next((p for p in curve if p[2] >= target), None)
    step, seconds, acc = hit if hit is not None else curve[-1]
    return {**result, "accuracy": float(acc), "seconds": float(seconds), "steps": int(step),
            "met": hit is not None, "final_accuracy": result["accuracy"],
            "budget_seconds": result["seconds"]}


def explore(tasks: Sequence[Any], evaluate: Callable[[Any], dict], target: float,
            workers: int = 1, executor: Executor | None = None,
            size: Callable[[Any], float] = lambda t: t.size) -> Exploration:
    """Evaluate tasks smallest first, `workers` at a time, until one reaches `target` accuracy.

    evaluate(task) returns a dict with 'accuracy' and 'seconds', and optionally a 'curve' (read
    per target by at_target); tasks need .key and a size.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    executor = executor or InProcessExecutor()
    order = sorted(tasks, key=lambda t: (size(t), t.key))
    out = Exploration(target=target, workers=workers)
    t0 = time.perf_counter()
    for start in range(0, len(order), workers):
        batch = order[start:start + workers]
        results = executor.map(evaluate, batch)
        seen = [at_target(r, target) for r in results]
        for task, r in zip(batch, seen):
            out.evaluated.append({**r, "key": task.key, "size": size(task)})
        out.time_s += max(float(r["seconds"]) for r in seen)
        meeting = [e for e in out.evaluated[start:] if e["met"]]
        if meeting:
            out.chosen = min(meeting, key=lambda e: (e["size"], e["key"]))
            break
    out.wall_s = time.perf_counter() - t0
    return out
