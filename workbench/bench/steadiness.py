"""How steady can a timing be on this machine? Ours beside two fixed probes, interleaved.

Issue 24 asks every timing of ours for p90 / p10 <= 1.15. A spread comes from the code (page
faults, thread wake-ups, allocation) or from the machine (other tenants' memory traffic,
frequency changes). To tell them apart this times, call by call in one pinned process, our
compiled network and two single-threaded probes whose work never changes: a compute-bound
one (arithmetic on an array held in L1) and a memory-bound one (a 32 MB copy, DRAM-bound).
If the memory
probe spreads as much as ours and their times move together (correlation across calls), the
spread is the machine's, not ours. Writes OUT/steadiness.{csv,md}:

    python -m workbench bench steadiness [--models vgg16_features-224 ...] [--seconds 60]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.provenance import REPO_ROOT, current_command, provenance


def probes() -> dict[str, Callable[[], None]]:
    """The two fixed-work probes, single-threaded (a BLAS call would leave threads spinning
    into the next subject's time): 2,000 rounds of a multiply and an add over 4,096 floats held
    in L1, and a 32 MB copy."""
    rng = np.random.default_rng(0)
    a = rng.random(4096, dtype=np.float32)
    acc = np.zeros_like(a)
    src = rng.random(8 << 20, dtype=np.float32)
    dst = np.empty_like(src)

    def compute() -> None:
        for _ in range(2000):
            np.multiply(a, 1.0001, out=acc)
            np.add(acc, a, out=acc)

    return {"compute_probe": compute, "memory_probe": lambda: np.copyto(dst, src)}


def interleaved(subjects: dict[str, Callable[[], Any]], seconds: float, min_calls: int = 20,
                warmup: int = 3) -> dict[str, np.ndarray]:
    """name -> ms of each call: every subject once per round, rounds until `seconds` pass
    (at least min_calls rounds), after `warmup` rounds not kept."""
    for _ in range(warmup):
        for fn in subjects.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in subjects}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(next(iter(out.values()))) < min_calls:
        for name, fn in subjects.items():
            t = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t) * 1e3)
    return {k: np.asarray(v) for k, v in out.items()}


def spread_rows(label: str, threads: int, ms: dict[str, np.ndarray], ours: str = "ours"
                ) -> list[dict[str, Any]]:
    """One row per subject: median, p10, p90, p90/p10 and the correlation of its call times
    with ours (1 for ours itself)."""
    rows = []
    for name, v in ms.items():
        p10, p90 = np.percentile(v, [10, 90])
        corr = float(np.corrcoef(v, ms[ours])[0, 1]) if len(v) > 2 else float("nan")
        rows.append({"model": label, "threads": threads, "subject": name, "calls": len(v),
                     "ms": float(np.median(v)), "p10_ms": float(p10), "p90_ms": float(p90),
                     "p90_over_p10": float(p90 / p10), "corr_with_ours": corr})
    return rows


def measure(label: str, threads: int, seconds: float, log: Path, trials: int = 12
            ) -> list[dict[str, Any]]:
    """Ours pruned (peers_bench.model_pair) on `label` ('vgg16_features-224'), built as the
    peers benchmark builds it (schedules replayed from `log`, tuned where it has none),
    beside the probes, in this process pinned to `threads` cores."""
    import tempfile

    import torch

    from workbench.bench.peers import Ours, Subject
    from workbench.bench.peers_bench import model_pair
    from workbench.bench.pinning import pinned
    name, size = label.rsplit("-", 1)
    _, pruned, _, _ = model_pair(name, int(size))
    x = torch.randn(1, 3, int(size), int(size))
    with pinned(threads), tempfile.TemporaryDirectory() as work:
        run = Ours(trials, log).build(Subject(pruned.eval(), x, Path(work)), threads).fn
        xn = x.numpy()
        ms = interleaved({"ours": lambda: run(xn), **probes()}, seconds)
    return spread_rows(label, threads, ms)


def main(argv: list[str] | None = None) -> int:
    """python -m workbench bench steadiness ..."""
    import pandas as pd

    from workbench.provenance import write_table
    p = argparse.ArgumentParser(prog="python -m workbench bench steadiness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["vgg16_features-224", "vgg16-224"])
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    p.add_argument("--seconds", type=float, default=60.0, help="per model and thread count")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "codegen"))
    p.add_argument("--tuning-log", default=str(REPO_ROOT / "results" / "codegen" / "tuning.jsonl"),
                   help="schedules to replay (the peers benchmark's)")
    a = p.parse_args(argv)
    rows = []
    for label in a.models:
        for t in a.threads:
            new = {r["subject"]: r for r in measure(label, t, a.seconds, Path(a.tuning_log))}
            rows += new.values()
            mem = new["memory_probe"]
            print(f"{label} {t} thread(s): ours p90/p10 {new['ours']['p90_over_p10']:.3f}, memory "
                  f"probe {mem['p90_over_p10']:.3f} (corr {mem['corr_with_ours']:.2f})")
    prov = provenance(current_command(), {"models": a.models, "threads": a.threads,
                                          "seconds": a.seconds})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame(rows), out / "steadiness", prov,
                "Spread of ours beside fixed-work probes, interleaved call by call (ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
