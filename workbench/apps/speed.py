"""How fast an app network runs: the demo paper's Table 1 rows, timed in one process run.

For one app at one input size and thread count: PyTorch eager on the dense and on the pruned
(masked, so still dense compute) weights, our compiler (the C plan) on both, and every dense
peer runtime of `workbench.bench.peers` that can load the network (through ONNX), each checked
against PyTorch before it is timed. Times are medians after warm-up (bench.timing.measure),
with p10 and p90.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.bench.timing import measure, threads

# The runtimes of the table, in its order: (variant, runtime) -> the paper's row name.
ROWS = {("unpruned", "torch"): "unpruned (PyTorch eager)",
        ("unpruned", "ours"): "unpruned + our compiler",
        ("pruned", "torch"): "pruned (PyTorch eager, masked)",
        ("pruned", "ours"): "pruned + our compiler"}
# Peers skipped here: ours and the CSR baseline are not dense peers; torch eager is a row.
NOT_PEERS = ("ours", "csr", "torch_eager")


def _torch_runner(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run


def _ours(model: nn.Module, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    from workbench.codegen import compile
    return compile(model, emitter="c", input_shape=tuple(shape))


def _rel(y: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(np.asarray(y) - ref).max()) / scale


def _row(app: str, variant: str, runtime: str, label: str, t: int, timing: Any, err: float,
         note: str = "") -> dict[str, Any]:
    return {"app": app, "variant": variant, "runtime": runtime, "row": label, "threads": t,
            "ms": timing.ms if timing else float("nan"),
            "p10_ms": timing.p10 * 1e3 if timing else float("nan"),
            "p90_ms": timing.p90 * 1e3 if timing else float("nan"),
            "rel_err": err, "note": note}


def time_app(app: str, dense: nn.Module, pruned: nn.Module, x: torch.Tensor,
             spec: dict[str, Any] | None = None, thread_counts: tuple[int, ...] = (1, 2), warmup: int = 2, repeats: int = 7,
             peers: tuple[str, ...] | None = None, progress: Callable[[str], None] | None = None
             ) -> list[dict[str, Any]]:
    """Table rows (dicts) for app's dense and pruned networks on input x (1, C, H, W): each of
    ROWS and each available dense peer (all of bench.peers' but NOT_PEERS, or `peers` by
    name) per thread count (spec, {"app": {"name", **kwargs}}, lets the peers that run in
    a worker process rebuild the dense network there); a peer that cannot load or run the network gets a row with the
    reason in `note` and no time. rel_err is against PyTorch on the same weights."""
    from workbench.bench.peers import PeerUnavailable, Subject, all_peers
    dense, pruned = dense.eval(), pruned.eval()
    xn = x.numpy()
    shape = tuple(x.shape[1:])
    refs = {"unpruned": _torch_runner(dense)(xn), "pruned": _torch_runner(pruned)(xn)}
    say = progress or (lambda s: None)
    say(f"{app}: compiling dense and pruned")
    ours = {"unpruned": _ours(dense, shape), "pruned": _ours(pruned, shape)}
    chosen = [p for p in all_peers() if p.name not in NOT_PEERS and
              (peers is None or p.name in peers)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"wb-{app}-") as tmp:
        subject = Subject(dense, x, Path(tmp), spec)
        for t in thread_counts:
            with threads(t):
                for (variant, runtime), label in ROWS.items():
                    say(f"{app}: {label}, {t} thread(s)")
                    fn = _torch_runner(dense if variant == "unpruned" else pruned) \
                        if runtime == "torch" else ours[variant]
                    err = _rel(fn(xn), refs[variant])
                    rows.append(_row(app, variant, runtime, label, t,
                                     measure(lambda: fn(xn), warmup, repeats), err))
                for peer in chosen:
                    label = f"unpruned ({peer.label})"
                    why = peer.missing()
                    if why is not None:
                        rows.append(_row(app, "unpruned", peer.name, label, t, None,
                                         float("nan"), why))
                        continue
                    say(f"{app}: {peer.label}, {t} thread(s)")
                    try:
                        runner = peer.build(subject, t)
                        try:
                            err = _rel(runner(xn), refs["unpruned"])
                            if not err < 1e-3:
                                raise PeerUnavailable(f"output differs from PyTorch "
                                                      f"(relative error {err:.2g})")
                            timing = runner.time(xn, warmup, repeats)
                        finally:
                            runner.close()
                        rows.append(_row(app, "unpruned", peer.name, label, t, timing, err))
                    except Exception as e:  # a peer's failure is a table note, not a crash
                        first = (str(e).strip().splitlines() or [""])[0][:160]
                        rows.append(_row(app, "unpruned", peer.name, label, t, None,
                                         float("nan"), f"{type(e).__name__}: {first}"))
    return rows
