"""Smallest-first exploration: stopping rule, batch counting, atomic results and resumption."""
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from workbench.tune.explore import Cached, ResultStore, at_target, explore


@dataclass(frozen=True)
class Toy:
    key: str
    size: int
    acc: float
    log: str  # a file each real evaluation appends its key to


def evaluate_toy(t: Toy) -> dict:
    """Accuracy given by the task; one line in t.log per real evaluation; 'interrupt' raises."""
    if t.key == "interrupt":
        raise KeyboardInterrupt
    with open(t.log, "a") as f:
        f.write(t.key + "\n")
    return {"accuracy": t.acc, "seconds": float(t.size)}


def toys(log: Path) -> list[Toy]:
    accs = [0.5, 0.6, 0.7, 0.95, 0.8, 0.99]
    return [Toy(f"n{i}", i + 1, a, str(log)) for i, a in enumerate(accs)][::-1]  # unsorted


def test_smallest_first_and_batches(tmp_path):
    tasks = toys(tmp_path / "log")
    e = explore(tasks, evaluate_toy, target=0.9, workers=1)
    assert [r["key"] for r in e.evaluated] == ["n0", "n1", "n2", "n3"]
    assert e.chosen["key"] == "n3" and e.time_s == 1 + 2 + 3 + 4
    e2 = explore(tasks, evaluate_toy, target=0.9, workers=4)
    assert e2.configs == 4 and e2.time_s == 4  # one batch of four: the slowest counts
    e3 = explore(tasks, evaluate_toy, target=0.9, workers=3)
    assert e3.configs == 6 and e3.chosen["key"] == "n3" and e3.time_s == 3 + 6
    never = explore(tasks, evaluate_toy, target=1.1, workers=2)
    assert not never.met and never.configs == 6


def test_resume_reruns_only_unfinished(tmp_path):
    log = tmp_path / "log"
    tasks = toys(log)
    k = 2
    broken = tasks + [Toy("interrupt", k + 0.5, 0.0, str(log))]  # sorts right after n(k-1)
    fn = Cached(evaluate_toy, str(tmp_path / "nets"))
    with pytest.raises(KeyboardInterrupt):
        explore(broken, fn, target=0.9, workers=1)
    assert log.read_text().split() == ["n0", "n1"]
    assert ResultStore(tmp_path / "nets").keys() == ["n0", "n1"]
    assert not list((tmp_path / "nets").glob(".*tmp*"))  # nothing half-written left
    e = explore(tasks, fn, target=0.9, workers=1)
    assert log.read_text().split() == ["n0", "n1", "n2", "n3"]  # n0, n1 not evaluated again
    assert e.computed == 2 and e.chosen["key"] == "n3"
    stored = json.loads((tmp_path / "nets" / "n3.json").read_text())
    assert stored["accuracy"] == 0.95 and stored["key"] == "n3"


def test_store_rejects_path_keys(tmp_path):
    with pytest.raises(ValueError, match="plain file name"):
        ResultStore(tmp_path).path("../x")


@dataclass(frozen=True)
class Curved:
    key: str
    size: int
    accs: tuple[float, ...]  # accuracy at each evaluation; evaluation i after 10*i steps, i s


def evaluate_curved(t: Curved) -> dict:
    """A whole-budget run: an evaluation every 10 steps and every second (the first at 0)."""
    curve = [[10 * i, float(i), a] for i, a in enumerate(t.accs)]
    return {"accuracy": t.accs[-1], "seconds": curve[-1][1], "steps": curve[-1][0],
            "curve": curve}


def test_at_target_reads_cost_off_the_curve():
    r = evaluate_curved(Curved("a", 1, (0.2, 0.5, 0.91, 0.89, 0.95)))
    hit = at_target(r, 0.9)  # first reached at the 2nd evaluation after the start
    assert hit["met"] and (hit["steps"], hit["seconds"], hit["accuracy"]) == (20, 2.0, 0.91)
    assert hit["final_accuracy"] == 0.95 and hit["budget_seconds"] == 4.0
    never = at_target(r, 0.96)  # never reached: the whole budget, final accuracy, not met
    assert not never["met"] and (never["steps"], never["seconds"], never["accuracy"]) == (40, 4.0, 0.95)
    assert at_target(r, 0.1)["seconds"] == 0.0  # met before any step: only the first evaluation
    assert at_target({"accuracy": 0.8, "seconds": 3.0}, 0.9) == {"accuracy": 0.8, "seconds": 3.0,
                                                                 "met": False}
    with pytest.raises(ValueError, match="older format"):
        at_target({"accuracy": 0.8, "seconds": 3.0, "curve": [[0, 0.1], [10, 0.8]]}, 0.5)


def test_explore_costs_time_to_target():
    tasks = [Curved("small", 1, (0.1, 0.5, 0.8, 0.85, 0.88)),   # never reaches 0.9
             Curved("mid", 2, (0.7, 0.85, 0.92, 0.93, 0.94)),   # reaches it at evaluation 2
             Curved("big", 3, (0.9, 0.95, 0.96, 0.96, 0.97))]   # meets it before any step
    e = explore(tasks, evaluate_curved, target=0.9, workers=1)
    assert [r["key"] for r in e.evaluated] == ["small", "mid"] and e.chosen["key"] == "mid"
    assert e.time_s == 4.0 + 2.0  # the whole budget of 'small', two evaluations' worth of 'mid'
    assert e.chosen["accuracy"] == 0.92 and e.chosen["steps"] == 20  # the model one stops with
    assert [r["met"] for r in e.evaluated] == [False, True]
    pair = explore(tasks, evaluate_curved, target=0.9, workers=2)
    assert pair.time_s == 4.0 and pair.configs == 2  # the batch lasts as long as its slowest
    easy = explore(tasks, evaluate_curved, target=0.8, workers=1)  # one run serves every target
    assert easy.chosen["key"] == "small" and easy.time_s == 2.0
