"""VGG-16's classifier, dense and pruned, in our GEMVs and PyTorch's: time, bytes, bandwidth.

At batch 1 a linear layer reads every weight once, so it is memory-bound and VGG-16-224's
classifier (25088 -> 4096 -> 4096 -> 1000, 124 M fp32 weights, 494 MB) is most of a pruned
VGG-16's time. This times each of its layers, with random weights (the speed does not depend
on what they learned): dense in PyTorch (F.linear, its BLAS) and in ours; pruned 8x by 16-row
blocks (pruning.schemes.Block) and irregularly, in PyTorch (a sparse CSR weight, torch.addmv)
and in ours (the rowblock and CSR formats of codegen.linear_storage, as the compiler picks
them). The class layer stays dense in the pruned classifier, as linear_config leaves it, and
runs there as each runtime's dense call. Each runtime is timed round robin (rounds),
pinned to `threads` cores; the lowest median of the rounds is kept with its p10 and p90.
Bytes are what a call streams (weights, indices, input, output); GB/s = bytes / median.

    python -m workbench bench linear [--threads 1 2] [--rounds 3] [--quick] [--out results/codegen]
"""
from __future__ import annotations

import argparse
import gc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.bench.pinning import pinned
from workbench.bench.timing import Timing, measure
from workbench.codegen.host.build import host_vector_width
from workbench.codegen.host.linear import LinearKernel
from workbench.codegen.schedule import Schedule
from workbench.pruning.schemes import Block, Irregular

VGG16_CLASSIFIER = ((25088, 4096), (4096, 4096), (4096, 1000))
RATE = 8.0


def _runners(c: int, o: int, rng: np.random.Generator, last: bool
             ) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (one batch-1 call, bytes it streams) for the layer (c -> o)."""
    w = (rng.standard_normal((o, c), np.float32) * np.float32(1 / np.sqrt(c)))
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((1, c)).astype(np.float32)
    io = (c + o) * 4
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    vw = host_vector_width()
    out = np.empty((1, o), np.float32)
    dense = LinearKernel(w, b, "relu", vw, Schedule(kernel="dense"))
    run: dict[str, tuple[Callable[[], object], int]] = {
        "torch dense": (lambda: F.linear(xt, wt, bt), w.nbytes + io),
        "ours dense": (lambda: dense(x, out), dense.store.nbytes + io)}
    for scheme, proj in (("block", Block(1 / RATE, 16, 1)), ("irregular", Irregular(1 / RATE))):
        if last:    # the class layer stays dense: each runtime's dense call
            run[f"torch {scheme}"] = run["torch dense"]
            run[f"ours {scheme}"] = run["ours dense"]
            continue
        wp = proj.project(w)[0]
        kern = LinearKernel(wp, b, "relu", vw)      # the compiler's choice of format
        assert kern.store.kind == ("rowblock" if scheme == "block" else "csr"), kern.store.kind
        with warnings.catch_warnings():     # "sparse CSR support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            csr = torch.from_numpy(wp).to_sparse_csr()
        nnz = int(np.count_nonzero(wp))
        # torch's CSR: fp32 values, int64 column indices and row pointers
        torch_bytes = nnz * 12 + (o + 1) * 8 + io
        run[f"torch {scheme}"] = (lambda csr=csr: torch.addmv(bt, csr, xt[0]), torch_bytes)
        run[f"ours {scheme}"] = (lambda k=kern: k(x, out), kern.store.nbytes + io)
    return run


def run(threads: tuple[int, ...] = (1, 2), rounds: int = 3, quick: bool = False,
        out_dir: Path | str = "results/codegen",
        layers: tuple[tuple[int, int], ...] | None = None) -> list[dict[str, Any]]:
    """Rows (layer, threads, runtime): median, p10, p90 ms, bytes, GB/s, and the classifier
    (sum of its layers) against torch dense; written to out_dir/linear.{csv,md,json}. layers
    (in, out) replace VGG-16's (quick: smaller ones)."""
    import pandas as pd

    from workbench.bench.codegen_bench import machine_info
    from workbench.provenance import provenance, write_json, write_table
    layers = layers or (((512, 4096), (4096, 4096), (4096, 1000)) if quick else VGG16_CLASSIFIER)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    for i, (c, o) in enumerate(layers):
        run_of = _runners(c, o, rng, last=i == len(layers) - 1)
        for n in threads:
            # the class layer's "pruned" runtimes are the dense calls: each call timed once
            calls = {id(fn): fn for fn, _ in run_of.values()}
            best: dict[int, Timing] = {}
            with pinned(n):
                for _ in range(rounds):      # round robin: drift hits every runtime alike
                    for key, fn in calls.items():
                        t = measure(fn, warmup=3, repeats=11 if quick else 21, min_seconds=0.3)
                        if key not in best or t.median < best[key].median:
                            best[key] = t
            for name, (fn, _) in run_of.items():
                t = best[id(fn)]
                nbytes = run_of[name][1]
                rows.append({"layer": f"fc{i + 1} {c}->{o}", "threads": n, "runtime": name,
                             "median_ms": t.ms, "p10_ms": t.p10 * 1e3, "p90_ms": t.p90 * 1e3,
                             "p90_over_p10": t.p90 / t.p10, "mbytes": nbytes / 1e6,
                             "gb_per_s": nbytes / t.median / 1e9})
        del run_of
        gc.collect()
    df = pd.DataFrame(rows)
    # the whole classifier: the sum of its layers per runtime and thread count
    total = df.groupby(["threads", "runtime"], as_index=False)[["median_ms", "mbytes"]].sum()
    total.insert(0, "layer", "classifier")
    df = pd.concat([df, total], ignore_index=True)
    for n in threads:
        base = df[(df.threads == n) & (df.runtime == "torch dense")].set_index("layer").median_ms
        sel = df.threads == n
        df.loc[sel, "vs_torch_dense"] = df[sel].layer.map(base) / df[sel].median_ms
    out = Path(out_dir)
    cmd = (f"python -m workbench bench linear --threads {' '.join(map(str, threads))} "
           f"--rounds {rounds}{' --quick' if quick else ''} --out {out_dir}")
    prov = provenance(cmd, {"threads": list(threads), "rounds": rounds, "quick": quick, "rate": RATE,
                       "block": [16, 1], "machine": machine_info(),
                       "timing": "lowest median of the rounds after warm-up, batch 1 fp32, "
                                 "process pinned to `threads` cores"})
    write_table(df, out / "linear", prov,
                title="VGG-16 classifier GEMVs: dense and pruned 8x, PyTorch and ours")
    write_json({"provenance": prov, "rows": df.to_dict("records")}, out / "linear.json")
    return df.to_dict("records")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench bench linear", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small layers (tests, a first look)")
    p.add_argument("--out", default="results/codegen")
    a = p.parse_args(argv)
    for r in run(tuple(a.threads), a.rounds, a.quick, a.out):
        if r["layer"] == "classifier":
            print(f"{r['threads']} thr  {r['runtime']:28s} {r['median_ms']:8.2f} ms  "
                  f"{r['mbytes']:7.1f} MB  {r['vs_torch_dense']:.2f}x torch dense")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
