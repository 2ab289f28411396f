"""Sequitur's speed against input length (10^4 .. 10^6 symbols): linear time, in pure Python.

Two seeded inputs, timed from the list of symbols to the finished grammar (input generation is
not timed; the garbage collector stays on, as a user would have it):

* networks: the CoCo-Tune use. Random pruned networks of 50 layers (as many as ResNet-50 has),
  each layer's pruning rate one of 0/30/50%, kept from the layer before with probability 0.7 so
  that configurations share long runs, as networks of one promising subspace do. Symbols are
  (layer, rate) tuples; the networks are mined as separate sequences (a separator between two).
* random: one string of letters drawn uniformly from 26, little structure and a large grammar,
  the hard case for the digram table.

Each point is the median of several runs. Writes speed.csv, speed.md and speed.png to out_dir,
each with the command that regenerates it, the machine and the git hash.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.provenance import REPO_ROOT, RESULTS, provenance, write_figure, write_table
from workbench.sequitur import Grammar

SIZES_FULL = (10_000, 30_000, 100_000, 300_000, 1_000_000)
SIZES_QUICK = (10_000, 30_000, 100_000)
LAYERS = 50
RATES = (0, 30, 50)
KEEP_RATE = 0.7
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
if TYPE_CHECKING:
    from matplotlib.figure import Figure

BUDGET_S = 10.0  # the target: a million symbols in under 10 s


def networks_input(n: int, seed: int = 0) -> list[list[tuple[int, int]]]:
    """Random pruned networks, (layer, rate %) symbols, n in all (the last one cut short)."""
    rng = random.Random(seed)
    nets: list[list[tuple[int, int]]] = []
    left = n
    while left > 0:
        rate = rng.choice(RATES)
        net = []
        for layer in range(min(LAYERS, left)):
            if rng.random() >= KEEP_RATE:
                rate = rng.choice(RATES)
            net.append((layer, rate))
        nets.append(net)
        left -= len(net)
    return nets


def random_input(n: int, seed: int = 0) -> list[str]:
    """n letters drawn uniformly from a-z."""
    rng = random.Random(seed)
    return rng.choices(ALPHABET, k=n)


def build(kind: str, data: Sequence[Any]) -> Grammar:
    """Mine the input the way its kind is used: networks as separate sequences."""
    if kind == "networks":
        return Grammar.from_sequences(data)
    return Grammar.from_sequence(data)


def make_input(kind: str, n: int, seed: int) -> Sequence[Hashable] | list[list[tuple[int, int]]]:
    """The seeded input of one kind and length."""
    if kind == "networks":
        return networks_input(n, seed)
    if kind == "random":
        return random_input(n, seed)
    raise ValueError(f"unknown input kind {kind!r}; use 'networks' or 'random'")


def time_mining(kind: str, n: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Median and min seconds to mine n symbols of one kind, with the grammar's size."""
    data = make_input(kind, n, seed)
    times = []
    g: Grammar | None = None
    for _ in range(repeats):
        g = None
        gc.collect()  # start every run from the same heap, not with the last grammar's garbage
        t0 = time.perf_counter()
        g = build(kind, data)
        times.append(time.perf_counter() - t0)
    if g is None or g.length != n:
        raise RuntimeError(f"mined {g.length if g else 0} symbols, expected {n}")
    median = statistics.median(times)
    return {"input": kind, "symbols": n, "repeats": repeats, "median_s": median,
            "min_s": min(times), "us_per_symbol": 1e6 * median / n, "rules": g.n_rules,
            "grammar_size": g.size}


def command(quick: bool, out_dir: Path) -> str:
    """The shell command that regenerates these artifacts."""
    out = Path(out_dir).resolve()
    try:
        shown = os.path.relpath(out, REPO_ROOT) if out.is_relative_to(REPO_ROOT) else str(out)
    except ValueError:
        shown = str(out)
    return (f"python -m workbench.experiments.sequitur_speed{' --quick' if quick else ''}"
            f" --out {shown}")


def loglog_slope(df: pd.DataFrame) -> dict[str, float]:
    """Per input, the least-squares slope of log(time) on log(length): 1 means linear."""
    return {kind: float(np.polyfit(np.log(part["symbols"]), np.log(part["median_s"]), 1)[0])
            for kind, part in df.groupby("input", sort=False) if len(part) > 1}


def plot(df: pd.DataFrame, cmd: str, git: str) -> Figure:
    """Log-log time against length per input, a linear reference and the 10 s budget."""
    from matplotlib.figure import Figure  # no pyplot: nothing global, nothing shown

    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    for kind, part in df.groupby("input", sort=False):
        ax.loglog(part["symbols"], part["median_s"], "o-", label=f"{kind} (median)")
    n = np.array(sorted(df["symbols"].unique()), dtype=float)
    per_symbol = float(np.median(df["median_s"] / df["symbols"]))
    ax.loglog(n, per_symbol * n, "k--", lw=1, label=f"linear: {1e6 * per_symbol:.1f} us/symbol")
    ax.axhline(BUDGET_S, color="tab:red", lw=0.8, ls=":", label="10 s budget")
    ax.set_xlabel("symbols mined")
    ax.set_ylabel("seconds")
    ax.set_title("Sequitur (pure Python): time against input length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.text(0.01, 0.005, f"{cmd}  (git {git})", fontsize=6, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def run(quick: bool = False, out_dir: Path = RESULTS / "sequitur", *,
        sizes: Sequence[int] | None = None, repeats: int | None = None,
        seed: int = 0) -> pd.DataFrame:
    """Time Sequitur on 10^4..10^6 symbols (quick: ..10^5); write speed.csv/.md/.png to out_dir."""
    out_dir = Path(out_dir)
    sizes = tuple(sizes or (SIZES_QUICK if quick else SIZES_FULL))
    if any(int(n) < 1 for n in sizes):
        raise ValueError(f"sizes must be positive symbol counts, got {sizes}")
    time_mining("networks", min(sizes), 1, seed)  # warm-up: imports, code paths, allocator
    rows = []
    for kind in ("networks", "random"):
        for n in sizes:
            reps = repeats or (5 if n <= 100_000 else 3)
            rows.append(time_mining(kind, int(n), reps, seed))
            print(f"{kind:>8} {n:>9,} symbols: {rows[-1]['median_s']:.3f} s "
                  f"({rows[-1]['us_per_symbol']:.2f} us/symbol)", flush=True)
    df = pd.DataFrame(rows)
    cmd = command(quick, out_dir)
    config = {"quick": quick, "sizes": list(sizes), "repeats": repeats or "5 (<=1e5), 3 above",
              "seed": seed, "layers": LAYERS, "rates": list(RATES), "keep_rate": KEEP_RATE,
              "alphabet": len(ALPHABET), "gc": "enabled", "python": sys.version.split()[0]}
    prov = provenance(cmd, config)
    slopes = loglog_slope(df)
    title = ("Sequitur speed: median seconds to mine n symbols; log-log slope "
             + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()))
    write_table(df, out_dir / "speed", prov, title=title)
    write_figure(plot(df, cmd, prov["git"]), out_dir / "speed.png", prov)
    return df


def main(argv: list[str] | None = None) -> int:
    """Command line: --quick for sizes up to 10^5, --out for the output folder."""
    p = argparse.ArgumentParser(prog="python -m workbench.experiments.sequitur_speed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="sizes up to 10^5 only")
    p.add_argument("--out", default=str(RESULTS / "sequitur"), help="output folder")
    args = p.parse_args(argv)
    run(quick=args.quick, out_dir=Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
