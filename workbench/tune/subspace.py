"""Promising subspaces (sets of pruning configurations) and their tuning blocks.

A configuration gives every declared module one rate, as a tuple in module order. The report
forms promising subspaces "through random sampling of the entire pruning space ... whose sizes
follow a close-to-uniform distribution": `sample_subspace` draws a pool of random configurations
and picks, for n evenly spaced target sizes between the smallest and the largest in the pool,
the nearest unused one. `sample_grouped` makes the report's "collection-2" (one rate for a run of
modules, e.g. a ResNet stage). A user-given list works everywhere a sampled one does.

Each configuration becomes a sequence of (module, rate) symbols; `tuning_blocks` mines them with
workbench.sequitur (hierarchical blocks) or takes one block per pruned module (the report's
baseline definition for Tables 3-4, and Table 5's point of comparison).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from workbench.sequitur import TuningBlocks, cover, find_blocks
from workbench.tune.filter_pruning import RATES
from workbench.tune.network import GraphNet

Config = tuple[float, ...]
Symbol = tuple[str, float]


def rates_of(net: GraphNet, config: Config) -> dict[str, float]:
    """{module: rate} of a configuration (a tuple in module order)."""
    if len(config) != len(net.modules):
        raise ValueError(f"a configuration has one rate per module ({len(net.modules)}), "
                         f"got {len(config)}")
    return dict(zip(net.modules, (float(r) for r in config)))


def symbols(net: GraphNet, config: Config) -> list[Symbol]:
    """The configuration as the (module, rate) symbol sequence Sequitur mines."""
    return list(rates_of(net, config).items())


def config_name(config: Config) -> str:
    """A short readable key, e.g. '3-5-7-0' for rates (0.3, 0.5, 0.7, 0.0)."""
    return "-".join(str(int(round(r * 10))) if r * 10 == int(round(r * 10)) else f"{r:g}"
                    for r in config)


def sample_subspace(net: GraphNet, n: int, rates: Sequence[float] = RATES, seed: int = 0,
                    pool: int | None = None) -> list[Config]:
    """n distinct configurations with close-to-uniform model sizes, smallest first."""
    k = len(net.modules)
    total = len(rates) ** k
    if n > total:
        raise ValueError(f"asked for {n} configurations; only {total} exist")
    rng = np.random.default_rng(seed)
    pool = pool or max(20 * n, 200)
    if total <= pool:
        cands = list(itertools.product(rates, repeat=k))
    else:
        seen: set[Config] = set()
        while len(seen) < pool:
            seen.add(tuple(float(rates[i]) for i in rng.integers(len(rates), size=k)))
        cands = sorted(seen)
    sizes = np.array([net.param_count(rates_of(net, c)) for c in cands], dtype=float)
    targets = np.linspace(sizes.min(), sizes.max(), n)
    free = np.ones(len(cands), dtype=bool)
    picked = []
    for t in targets:
        gap = np.where(free, np.abs(sizes - t), np.inf)
        i = int(np.argmin(gap))
        free[i] = False
        picked.append(i)
    picked.sort(key=lambda i: (sizes[i], cands[i]))
    return [tuple(float(r) for r in cands[i]) for i in picked]


def sample_grouped(net: GraphNet, n: int, groups: Sequence[Sequence[str]],
                   rates: Sequence[float] = RATES, seed: int = 0) -> list[Config]:
    """n distinct configurations with one rate per group of modules ("collection-2")."""
    flat = [m for g in groups for m in g]
    if sorted(flat) != sorted(net.modules):
        raise ValueError(f"groups must cover every module once; got {groups}")
    options = list(itertools.product(rates, repeat=len(groups)))
    if n > len(options):
        raise ValueError(f"asked for {n} configurations; {len(groups)} groups give {len(options)}")
    rng = np.random.default_rng(seed)
    chosen = [options[i] for i in rng.choice(len(options), size=n, replace=False)]
    out = []
    for choice in chosen:
        rate = {m: float(r) for g, r in zip(groups, choice) for m in g}
        out.append(tuple(rate[m] for m in net.modules))
    return sorted(out, key=lambda c: (net.param_count(rates_of(net, c)), c))


def tuning_blocks(net: GraphNet, configs: Sequence[Config], method: str = "sequitur") -> TuningBlocks:
    """Tuning blocks over (module, rate) symbols: 'sequitur' (hierarchical) or 'per_module'.

    Unpruned modules (rate 0) are never blocks: their full weights need no pre-training.
    """
    seqs = [symbols(net, c) for c in configs]
    if method == "sequitur":
        found = find_blocks(seqs)
        keep = [b for b in found.blocks if any(r > 0 for _, r in b)]
        return found if len(keep) == len(found.blocks) else cover(seqs, keep)
    if method == "per_module":
        singles = sorted({s for seq in seqs for s in seq if s[1] > 0},
                         key=lambda s: (net.modules.index(s[0]), s[1]))
        return cover(seqs, [(s,) for s in singles])
    raise ValueError(f"method must be 'sequitur' or 'per_module', got {method!r}")


def placed_blocks(blocks: TuningBlocks, network: int) -> list[int]:
    """Indices of the blocks network `network` is assembled from, in order."""
    return [b for _, b in sorted(blocks.composites[network].placements)]
