"""Where ours loses time to a dense peer, block by block (the profile behind a missed target).

A zoo model at ImageNet shape is cut into its blocks (model_units): the stem, each bottleneck
or inverted-residual block, the head. The model's prefixes (its first k blocks, k = 1 .. all)
(each but the whole model ending in a global average pool, so that outputs are small) are timed
on the peer with dense weights and on ours with the pruned weights of `bench peers`
(model_pair), in the same protocol: each runtime in a fresh process of its own per round,
rounds round robin, the lowest median kept. A block's time is the difference of neighbouring
prefixes: the input copy cancels out, the pools nearly (the head's time is the whole model's
minus the last prefix with its pool, so it counts the classifier alone). On this VM a block's
difference is noisy (adjacent prefixes of ours, each compiled in its own process, came out of
order by up to 0.1 ms); the gap so far is steadier. Outputs in out_dir: blocks (one row per
block and thread count: both runtimes' ms, ours / peer, the difference, the gap so far),
prefixes (every measurement), blocks.png (both runtimes' time up to each block), blocks.json
(all of it, with machine and versions).

    python -m workbench.bench.blocks_bench [--model mobilenet_v2-224] [--peer tflite]
        [--threads N ...] [--rounds N (3)] [--quick] [--out results/codegen/blocks]
    (or python -m workbench bench blocks ...)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from workbench.bench.model_blocks import model_units, prefix
from workbench.bench.peers_bench import (BenchConfig, _descending, keep_fastest, measure_peers,
    model_pair, parse_models)
from workbench.provenance import REPO_ROOT, RESULTS


def block_rows(names: list[str], threads: int, got: dict[tuple[int, str], dict[str, Any]],
               peer: str) -> list[dict[str, Any]]:
    """One row per block at `threads` from the prefixes' rows (subject index, runtime) -> row:
    each runtime's block ms (its prefix minus the one before), ours / peer, ours - peer, and
    the prefixes up to the block (the gap so far: less noisy than a block's difference)."""
    rows = []
    prev = {peer: 0.0, "ours": 0.0}
    for i, name in enumerate(names):
        row: dict[str, Any] = {"block": name, "threads": threads}
        for who in (peer, "ours"):
            ms = got[i, who].get("ms", float("nan"))
            row[f"{who}_ms"] = ms - prev[who]
            row[f"{who}_prefix_ms"] = ms
            prev[who] = ms
        row["ratio"] = row["ours_ms"] / row[f"{peer}_ms"] if row[f"{peer}_ms"] > 0 else float("nan")
        row["diff_ms"] = row["ours_ms"] - row[f"{peer}_ms"]
        row["gap_so_far_ms"] = row["ours_prefix_ms"] - row[f"{peer}_prefix_ms"]
        rows.append(row)
    return rows


def plot_blocks(rows: list[dict[str, Any]], peer: str, label: str) -> Any:
    """Per thread count: the time of each prefix (up to and including the block) on the peer
    and on ours, lines; a block's own time is the rise at it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(len(threads), 1, figsize=(11, 3.2 * len(threads)), squeeze=False)
    for ax, t in zip(axes[:, 0], threads):
        rs = [r for r in rows if r["threads"] == t]
        x = np.arange(len(rs))
        ax.plot(x, [r[f"{peer}_prefix_ms"] for r in rs], "o-", label=f"{peer} (dense)")
        ax.plot(x, [r["ours_prefix_ms"] for r in rs], "s-", label="ours (pruned)")
        ax.set_xticks(x, [r["block"] for r in rs], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{label}, {t} thread(s): {peer} {rs[-1][f'{peer}_prefix_ms']:.2f} ms, ours "
                     f"{rs[-1]['ours_prefix_ms']:.2f} ms", fontsize=9)
        ax.set_ylabel("ms, model up to the block")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(model: str = "mobilenet_v2-224", peer: str = "tflite", threads: tuple[int, ...] = (1, 2),
        rounds: int = 3, quick: bool = False, out_dir: Path | str | None = None,
        tuning_log: str | None = None, progress: bool = True) -> dict[str, list]:
    """Time every prefix of model on peer (dense) and ours (pruned); write the tables and plot."""
    import pandas as pd

    from workbench.bench.codegen_bench import machine_info
    from workbench.bench.peers import Subject, all_peers
    from workbench.provenance import provenance, write_figure, write_json, write_table
    ((name, size),) = parse_models([model])
    if size < 64:
        raise ValueError(f"blocks_bench: {model}: only ImageNet-shape models (size >= 64) are "
                         "cut into blocks")
    # differences of prefixes need more repeats than whole models: up to 300 calls in a
    # second per prefix (30 left adjacent prefixes of ours 0.1 ms out of order)
    cfg = BenchConfig.quick_config() if quick else \
        BenchConfig(e2e_budget=1.0, min_reps=10, max_reps=300)
    cfg = replace(cfg, threads=tuple(threads), rounds=rounds)
    peers = {p.name: p for p in all_peers(cfg.trials, tuning_log or str(RESULTS / "codegen" /
                                                                         "tuning.jsonl"))}
    if peer not in peers or peer == "ours":
        raise ValueError(f"blocks_bench: unknown peer {peer!r}; choose one of "
                         f"{sorted(set(peers) - {'ours'})}")
    chosen = [peers[peer], peers["ours"]]
    out = Path(out_dir or RESULTS / "codegen" / "blocks")
    say = print if progress else (lambda *_: None)
    t0 = time.perf_counter()
    dense, pruned, note, specs = model_pair(name, size)
    names = [n for n, _ in model_units(dense)]
    if quick:
        names = names[:3]
    torch.manual_seed(1)
    x = torch.randn(1, 3, size, size)
    label = f"{name}-{size}"
    prefixes: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="workbench-blocks-") as tmp:
        # the peer runs the dense prefixes, ours the pruned ones: one subject list per weights,
        # measured in the same rounds (each runtime in its own process per round)
        subjects = {w: [Subject(prefix(m, k + 1), x, Path(tmp) / w / f"p{k + 1}",
                                {**specs[w], "prefix": k + 1}) for k in range(len(names))]
                    for w, m in (("dense", dense), ("pruned", pruned))}
        for t in _descending(cfg.threads):
            rounds_got: dict[tuple[int, str], list[dict[str, Any]]] = {}
            for rnd in range(cfg.rounds):      # round robin, as measure_rounds
                for w, runtime in (("dense", chosen[0]), ("pruned", chosen[1])):
                    for i, row in enumerate(measure_peers(runtime, subjects[w], t,
                                                          cfg.e2e_budget, cfg)):
                        rounds_got.setdefault((i, runtime.name), []).append(row)
                        say(f"{label} {names[i]} {t}t round {rnd + 1}/{cfg.rounds} "
                            f"{runtime.name:8s} {row.get('ms', float('nan')):9.3f} ms "
                            f"{row.get('note', '')}")
            got = {k: keep_fastest(v) for k, v in rounds_got.items()}
            prefixes += [{"model": label, "prefix": names[i], "blocks": i + 1, "threads": t,
                          "weights": "dense" if p == peer else "pruned", **row}
                         for (i, p), row in sorted(got.items())]
            blocks += [{"model": label, **r} for r in block_rows(names, t, got, peer)]
    versions = {r["peer"]: r["version"] for r in prefixes if r.get("version")}
    config = {"model": label, "peer": peer, "bench": asdict(cfg), "machine": machine_info(),
              "versions": versions, "pruned_weights": note,
              "seconds": time.perf_counter() - t0,
              "timing": "each prefix timed like bench peers end to end (median after warm-up, "
                        "process per runtime pinned to `threads` cores, lowest median of "
                        f"{cfg.rounds} round-robin round(s)); a block = its prefix minus the "
                        "one before"}
    cmd = (f"python -m workbench.bench.blocks_bench --model {label} --peer {peer} --threads "
           f"{' '.join(map(str, threads))} --rounds {rounds} {'--quick ' if quick else ''}"
           + (f"--tuning-log {tuning_log} " if tuning_log else "") + f"--out {out}")
    prov = provenance(cmd.replace(str(REPO_ROOT) + "/", ""), config)
    write_table(pd.DataFrame(blocks), out / "blocks", prov,
                f"{label}: ms per block, {peer} (dense) against ours (pruned)")
    write_table(pd.DataFrame(prefixes), out / "prefixes", prov,
                f"{label}: every prefix measured (ms)")
    write_figure(plot_blocks(blocks, peer, label), out / "blocks.png", prov)
    tables = {"blocks": blocks, "prefixes": prefixes}
    write_json({"provenance": prov, "tables": tables}, out / "blocks.json")
    say(f"done in {time.perf_counter() - t0:.0f} s -> {out}")
    return tables


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mobilenet_v2-224", help="zoo model-size (default "
                   "mobilenet_v2-224; resnet50-224, vgg16-224 also cut into blocks)")
    p.add_argument("--peer", default="tflite", help="the dense runtime to compare with "
                   "(default tflite, the fastest on MobileNet-V2 here)")
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2], metavar="N")
    p.add_argument("--rounds", type=int, default=3, metavar="N")
    p.add_argument("--quick", action="store_true", help="the first 3 blocks, short budgets")
    p.add_argument("--out", default=None, help="default results/codegen/blocks")
    p.add_argument("--tuning-log", default=None,
                   help="schedules to replay/extend (default results/codegen/tuning.jsonl)")
    args = p.parse_args(argv)
    if any(t < 1 for t in args.threads) or not args.threads:
        p.error("--threads: one or more counts >= 1")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    try:
        run(args.model, args.peer, tuple(args.threads), args.rounds, args.quick, args.out,
            args.tuning_log)
    except ValueError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
