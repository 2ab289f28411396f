"""Exploration of a promising subspace in the order the objective implies (report section 2.2).

For "the smallest network with accuracy >= full accuracy x (1 - alpha)" the order is by model
size, smallest first: candidates go out in batches of N (N workers, the report's #nodes), and the
exploration stops after the first batch in which some network meets the target; the answer is
the smallest of those. Both the block-trained way (CoCo-Tune) and the baseline (default
networks) run through this same loop; only the evaluation function differs.

Time is counted the way N machines would spend it: each batch takes as long as its slowest
network, from the seconds each evaluation measured (so one GPU running networks one after
another still reports what N nodes would take, and a cached result keeps its measured time).
The wall time of this call is reported too.

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


def explore(tasks: Sequence[Any], evaluate: Callable[[Any], dict], target: float,
            workers: int = 1, executor: Executor | None = None,
            size: Callable[[Any], float] = lambda t: t.size) -> Exploration:
    """Evaluate tasks smallest first, `workers` at a time, until one reaches `target` accuracy.

    evaluate(task) returns a dict with 'accuracy' and 'seconds'; tasks need .key and a size.
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
        for task, r in zip(batch, results):
            out.evaluated.append({**r, "key": task.key, "size": size(task)})
        out.time_s += max(float(r["seconds"]) for r in results)
        meeting = [e for e in out.evaluated[start:] if e["accuracy"] >= target]
        if meeting:
            out.chosen = min(meeting, key=lambda e: (e["size"], e["key"]))
            break
    out.wall_s = time.perf_counter() - t0
    return out
