"""The demo paper's Table 1 on this machine: three apps, unpruned, pruned, pruned + compiler.

For each app (super resolution: WDSR x2; coloring: ColorNet; style transfer: TransformerNet)
this trains the dense network, prunes it as the demo paper does (pattern + connectivity for
super resolution and coloring, column pruning for style transfer; ADMM then masked
retraining, `apps.prune`), measures the quality of both (PSNR on Y against bicubic on CSet5,
PSNR on ab on held-out photos, the style loss), renders the input, the dense output and the
pruned + compiled output side by side, and times every row of Table 1 in one process run
(`apps.speed`): PyTorch eager on the dense and on the masked weights, our compiler on both,
and every dense peer runtime that loads the network. The speedup is the paper's: unpruned
PyTorch eager / pruned + compiler.

Training and pruning checkpoint into `work_dir` (default runs/apps) and resume; a run made on
the GPU machine (`--stage train`) is timed here afterwards (`--stage time`) from its files.

    python -m workbench experiment apps              # full: writes results/apps/
    python -m workbench.experiments.apps [--quick] [--stage all|train|time] [--work runs/apps]
        [--apps wdsr colornet transformer_net] [--threads 1 2] [--no-peers]
        [--admm-epochs N] [--retrain-epochs N] [--prune-pairs N]

The published results/apps: dense networks trained on the H100 (30 epochs, 2048 crops of
CBSD68), super resolution and coloring pruned there too (15 ADMM + 15 retraining epochs),
style transfer pruned on this CPU when the GPU machine could not be had (6 + 6 epochs on 1024
crops: Settings.prune_budget), all timed here.
"""
from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.models.image_to_image import build_app_model
from workbench.provenance import atomic_write_text, current_command, provenance, write_table
from workbench.train import TrainConfig, load_checkpoint, save_checkpoint

MODULE = "python -m workbench.experiments.apps"
RESULTS = Path("results/apps")
WORK = Path("runs/apps")
APPS = ("wdsr", "colornet", "transformer_net")
TITLES = {"wdsr": "super resolution (WDSR x2)", "colornet": "coloring (ColorNet)",
          "transformer_net": "style transfer (TransformerNet)"}
# The paper's Table 1 (Galaxy S10, ms): unpruned, pruned, pruned + compiler, speedup.
PAPER = {"transformer_net": (283, 178, 67, 4.2), "colornet": (137, 85, 38, 3.6),
         "wdsr": (269, 192, 73, 3.7)}


@dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one run: model kwargs per app, training crops, epochs, rate,
    the timed input side, thread counts and repeats."""
    models: dict[str, dict[str, int]] = field(default_factory=lambda: {
        "wdsr": {"scale": 2}, "colornet": {}, "transformer_net": {}})
    patch: dict[str, int] = field(default_factory=lambda: {
        "wdsr": 48, "colornet": 64, "transformer_net": 96})
    pairs: int = 2048
    prune_pairs: int | None = None   # training crops of ADMM and retraining (None: pairs)
    epochs: int = 30
    admm_epochs: int = 15
    retrain_epochs: int = 15
    rate: dict[str, float] = field(default_factory=lambda: {
        "wdsr": 8.0, "colornet": 8.0, "transformer_net": 8.0})
    # the 1x1 convs' rate per app (apps.prune.app_config; none by default): WDSR's wide
    # activation is most of its FMAs, but 2x there cost 1.1 dB in a short run (the note)
    pointwise_rate: dict[str, float] = field(default_factory=dict)
    # per app (admm epochs, retrain epochs, crops) overriding the three above: the published
    # style transfer run was pruned on the CPU, with this shorter budget
    prune_budget: dict[str, tuple[int, int, int]] = field(default_factory=lambda: {
        "transformer_net": (6, 6, 1024)})
    time_side: int = 256           # input H = W (super resolution: its low-res input)
    threads: tuple[int, ...] = (1, 2)
    repeats: int = 9
    peers: bool = True
    train_sets: tuple[str, ...] = ("CBSD68", "CSun_Hays80")
    picture_side: int = 256


FULL = Settings()
QUICK = Settings(models={"wdsr": {"scale": 2, "channels": 8, "blocks": 1},
                         "colornet": {"width": 8, "global_dim": 16},
                         "transformer_net": {"width": 8, "blocks": 1}},
                 patch={"wdsr": 16, "colornet": 32, "transformer_net": 32}, pairs=32, epochs=1,
                 # tiny WDSR's one 3x3 conv besides the dense head: a low rate leaves it some
                 rate={"wdsr": 2.0, "colornet": 4.0, "transformer_net": 2.0},
                 admm_epochs=1, retrain_epochs=1, time_side=32, threads=(1,), repeats=3,
                 peers=False, train_sets=(), picture_side=64, pointwise_rate={"wdsr": 2.0},
                 prune_budget={})


def _train_photos(s: Settings) -> tuple[str, list[np.ndarray]]:
    """The training photos: the first of s.train_sets found (../shared/data or
    $WORKBENCH_DATA), else skimage's bundled photos less the held-out one."""
    from workbench.apps.images import bundled_split
    from workbench.apps.pairs import image_folder
    from workbench.data import DataError, load_photos
    for name in s.train_sets:
        try:
            return name, load_photos(image_folder(name), max_side=512)
        except DataError:
            continue
    return "bundled", bundled_split()[0]


def _cfg(app: str, epochs: int, s: Settings) -> TrainConfig:
    from workbench.apps.prune import APP_TRAIN
    return replace(APP_TRAIN[app], epochs=epochs)


class _App:
    """One app's data, loss and quality measure (apps.super_resolution / coloring /
    style_transfer), for training, pruning and the table."""

    def __init__(self, app: str, s: Settings, photos: list[np.ndarray], pairs: int) -> None:
        self.app = app
        if app == "wdsr":
            from workbench.apps.super_resolution import evaluate_sr, sr_data, sr_loss
            self.data = sr_data(photos, s.models[app].get("scale", 2), s.patch[app], pairs)
            self.loss = sr_loss
            self.quality = lambda m: {"psnr_y": evaluate_sr(m)["psnr"]}
        elif app == "colornet":
            from workbench.apps.coloring import color_data, color_loss, evaluate_coloring
            self.data = color_data(photos, s.patch[app], pairs)
            self.loss = color_loss("l1")
            self.quality = lambda m: {"psnr_ab": evaluate_coloring(m)["psnr_ab"]}
        elif app == "transformer_net":
            from workbench.apps.style_transfer import (ContentPairs, StyleLoss, evaluate_style,
                                                       style_image)
            self.data = ContentPairs(photos, s.patch[app], pairs)
            self.loss = StyleLoss(style_image())
            held = ContentPairs(_held_out(), s.patch[app], 16, seed=1)
            self.quality = lambda m: {"style_loss": evaluate_style(m, held, self.loss)["loss"]}
        else:
            raise ValueError(f"unknown app {app!r}; choose from {APPS}")


def _held_out() -> list[np.ndarray]:
    from workbench.apps.images import bundled_split
    return bundled_split()[1]


def train_and_prune(app: str, s: Settings, work: Path, progress: bool = True
                    ) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """(dense, pruned, record) of app: trained and pruned in work/app (resumed from its
    checkpoints); record holds the training set, quality per phase and kept weights."""
    from workbench.apps.prune import prune_app
    from workbench.apps.training import fit
    d = work / app
    d.mkdir(parents=True, exist_ok=True)
    set_name, photos = _train_photos(s)
    ctx = _App(app, s, photos, s.pairs)
    torch.manual_seed(0)
    dense = build_app_model(app, **s.models[app])
    final = d / "dense_final.pt"
    cfg = _cfg(app, s.epochs, s)
    if final.exists():
        state = load_checkpoint(final)
        if state["config"] != asdict(cfg) or state["model_kwargs"] != s.models[app]:
            raise ValueError(f"{final} holds a model trained with other settings; delete "
                             f"{d} or run with the settings that made it")
        dense.load_state_dict(state["model"])
        history = state["history"]
    else:
        history = fit(dense, ctx.data, ctx.loss, cfg, checkpoint=d / "dense.pt",
                      progress=progress, desc=f"{app} dense")
        # the weights alone (dense.pt also holds the optimiser state: 3x the size)
        save_checkpoint(final, {"model": {k: v.cpu().contiguous() for k, v in
                                          dense.state_dict().items()},
                                "history": history, "config": asdict(cfg),
                                "model_kwargs": dict(s.models[app])})
        (d / "dense.pt").unlink(missing_ok=True)
    dense.cpu().eval()
    pruned = copy.deepcopy(dense)
    admm_epochs, retrain_epochs, prune_pairs = s.prune_budget.get(
        app, (s.admm_epochs, s.retrain_epochs, s.prune_pairs or s.pairs))
    prune_data = ctx.data if prune_pairs == s.pairs else _App(app, s, photos, prune_pairs).data
    result = prune_app(app, pruned, s.rate[app], prune_data, ctx.loss, ctx.quality, d / "prune",
                       admm_cfg=_cfg(app, admm_epochs, s),
                       retrain_cfg=replace(_cfg(app, retrain_epochs, s), seed=1),
                       pointwise_rate=s.pointwise_rate.get(app), progress=progress)
    pruned.cpu().eval()
    kept = sum(int(m.sum()) for m in result.masks.values())
    total = sum(m.numel() for m in result.masks.values())
    record = {"app": app, "train_set": set_name, "rate": s.rate[app],
              "prune_epochs": [admm_epochs, retrain_epochs], "prune_pairs": prune_pairs,
              "pointwise_rate": s.pointwise_rate.get(app),
              "dense_epochs": len(history), "dense_final_loss": history[-1]["train_loss"]
              if history else None,
              "pruned_weights_kept": kept, "pruned_weights_total": total,
              "phases": result.phases,
              # measured now (the phases' numbers are as the pruning run measured them)
              "quality": {"dense": ctx.quality(dense), "pruned": ctx.quality(pruned)}}
    return dense, pruned, record


def _picture_input(app: str, side: int) -> np.ndarray:
    """The held-out photo, cropped to side x side (super resolution: its low-res version)."""
    photo = _held_out()[0]
    h, w = photo.shape[:2]
    y0, x0 = (h - min(h, side)) // 2, (w - min(w, side)) // 2
    crop = photo[y0:y0 + side, x0:x0 + side]
    return crop[: crop.shape[0] // 8 * 8, : crop.shape[1] // 8 * 8]


def pictures(app: str, dense: nn.Module, pruned: nn.Module, side: int) -> dict[str, np.ndarray]:
    """{input, dense, pruned + compiled} as (H, W, 3) uint8: the compiled output is our C
    plan's, run on the pruned weights."""
    from workbench.apps.images import from_batch, to_batch
    from workbench.apps.quality import merge_lab, split_lab
    from workbench.apps.pairs import downscale
    from workbench.codegen import compile
    rgb, _ = to_batch(_picture_input(app, side))
    if app == "wdsr":
        x = downscale(rgb, int(getattr(dense, "scale", 2)))
        show_in = torch.nn.functional.interpolate(x, scale_factor=dense.scale, mode="nearest")
    elif app == "colornet":
        x, _ = split_lab(rgb)
        show_in = merge_lab(x, torch.zeros(1, 2, *x.shape[2:]))
    else:
        x, show_in = rgb, rgb
    with torch.no_grad():
        y_dense = dense(x)
    net = compile(pruned, emitter="c", input_shape=tuple(x.shape[1:]))
    y_ours = torch.from_numpy(net(x.numpy()))
    if app == "colornet":
        y_dense, y_ours = merge_lab(x, y_dense), merge_lab(x, y_ours)
    out = {"input": show_in, "dense (PyTorch)": y_dense, "pruned + compiled (ours)": y_ours}
    return {k: from_batch(v.clamp(0, 1), True) for k, v in out.items()}


def _table1(rows: list[dict[str, Any]], records: dict[str, dict[str, Any]]) -> Any:
    """Wide Table 1: one row per app and thread count (times in ms, speedups, quality)."""
    import pandas as pd
    df = pd.DataFrame(rows)
    out = []
    for (app, t), g in df.groupby(["app", "threads"], sort=False):
        ms = {(r.variant, r.runtime): r.ms for r in g.itertuples()}
        peers = g[(g.variant == "unpruned") & ~g.runtime.isin(["torch", "ours"]) & g.ms.notna()]
        best = peers.loc[peers.ms.idxmin()] if len(peers) else None
        q = records[app]["quality"]
        metric = next(iter(q["dense"]))
        base = ms[("unpruned", "torch")]
        fast = ms[("pruned", "ours")]
        out.append({
            "app": TITLES[app], "threads": int(t),
            "unpruned ms": base, "unpruned + compiler ms": ms[("unpruned", "ours")],
            "pruned ms": ms[("pruned", "torch")], "pruned + compiler ms": fast,
            "speedup": base / fast,
            "best dense peer": best.row.removeprefix("unpruned (").removesuffix(")")
            if best is not None else "none ran",
            "peer ms": best.ms if best is not None else float("nan"),
            "vs peer": best.ms / fast if best is not None else float("nan"),
            "rate": records[app]["rate"], "1x1 rate": records[app].get("pointwise_rate") or "-",
            "quality": metric,
            "dense": q["dense"][metric], "pruned": q["pruned"][metric],
            "paper speedup": PAPER[app][3]})
    return pd.DataFrame(out)


def _bar_chart(table: Any, path: Path, prov: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.provenance import write_figure
    cols = ["unpruned ms", "unpruned + compiler ms", "pruned ms", "pruned + compiler ms",
            "peer ms"]
    apps = list(dict.fromkeys(table["app"]))
    threads = sorted(set(table["threads"]))
    # one panel per app (columns) and thread count (rows)
    fig, axes = plt.subplots(len(threads), len(apps), figsize=(4.2 * len(apps),
                                                               3.2 * len(threads)), squeeze=False)
    for _, r in table.iterrows():
        ax = axes[threads.index(r["threads"])][apps.index(r["app"])]
        vals = [r[c] for c in cols]
        labels = ["unpruned", "unpruned\n+ ours", "pruned", "pruned\n+ ours",
                  f"peer\n({r['best dense peer']})"]
        ax.bar(range(len(vals)), vals, color=["#999", "#69c", "#c96", "#c33", "#6a6"])
        ax.set_xticks(range(len(vals)), labels, fontsize=7)
        ax.set_title(f"{r['app']}, {r['threads']} thr: {r['speedup']:.1f}x", fontsize=9)
        ax.set_ylabel("ms per image")
    fig.tight_layout()
    write_figure(fig, path, prov)
    plt.close(fig)


def _picture_figure(pics: dict[str, dict[str, np.ndarray]], path: Path,
                    prov: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.provenance import write_figure
    fig, axes = plt.subplots(len(pics), 3, figsize=(9, 3.1 * len(pics)), squeeze=False)
    for row, (app, imgs) in zip(axes, pics.items()):
        for ax, (name, img) in zip(row, imgs.items()):
            ax.imshow(img)
            ax.set_title(f"{TITLES[app].split(' (')[0]}: {name}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    write_figure(fig, path, prov)
    plt.close(fig)


def run(quick: bool = False, out_dir: Path | None = None, work_dir: Path | None = None,
        apps: tuple[str, ...] = APPS, stage: str = "all", settings: Settings | None = None,
        progress: bool = True) -> Path:
    """Train, prune and time each app; write table1.{csv,md}, timings.csv, quality.json,
    table1.png and pictures.png into out_dir (default results/apps); returns out_dir.
    stage "train" stops after training and pruning (for the GPU machine)."""
    s = settings or (QUICK if quick else FULL)
    out = Path(out_dir) if out_dir is not None else RESULTS
    work = Path(work_dir) if work_dir is not None else (WORK / "quick" if quick else WORK)
    if stage not in ("all", "train", "time"):
        raise ValueError(f"stage must be all, train or time, got {stage!r}")
    from workbench.apps.speed import time_app
    rows: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}
    pics: dict[str, dict[str, np.ndarray]] = {}
    for app in apps:
        dense, pruned, records[app] = train_and_prune(app, s, work, progress)
        if stage == "train":
            continue
        pics[app] = pictures(app, dense, pruned, s.picture_side)
        side = s.time_side
        x = torch.rand(1, 1 if app == "colornet" else 3, side, side,
                       generator=torch.Generator().manual_seed(0))
        rows += time_app(app, dense, pruned, x, spec={"app": {"name": app, **s.models[app]}},
                         thread_counts=s.threads, repeats=s.repeats,
                         peers=None if s.peers else (),
                         progress=print if progress else None)
    if stage == "train":
        return work
    import pandas as pd
    prov = provenance(current_command() if not quick else f"{MODULE} --quick",
                      {"settings": asdict(s), "apps": list(apps)})
    out.mkdir(parents=True, exist_ok=True)
    table = _table1(rows, records)
    write_table(table, out / "table1", prov, title="Table 1 (demo paper) on this machine: "
                "ms per image, batch 1; speedup = unpruned PyTorch / pruned + our compiler",
                floatfmt=".3g")
    write_table(pd.DataFrame(rows), out / "timings", prov, title="Every timing of Table 1 "
                "(median, p10, p90 of repeated calls after warm-up)", floatfmt=".4g")
    atomic_write_text(out / "quality.json", json.dumps({"provenance": prov, "apps": records},
                                                       indent=1, default=str))
    _bar_chart(table, out / "table1.png", prov)
    _picture_figure(pics, out / "pictures.png", prov)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=MODULE, description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--stage", default="all", choices=("all", "train", "time"))
    p.add_argument("--work", type=Path, default=None, help="checkpoints (default runs/apps)")
    p.add_argument("--out", type=Path, default=None, help="tables (default results/apps)")
    p.add_argument("--apps", nargs="+", default=list(APPS), choices=APPS)
    p.add_argument("--threads", nargs="+", type=int, default=None)
    p.add_argument("--no-peers", action="store_true", help="time PyTorch and ours only")
    p.add_argument("--admm-epochs", type=int, default=None)
    p.add_argument("--retrain-epochs", type=int, default=None)
    p.add_argument("--prune-pairs", type=int, default=None,
                   help="training crops of the pruning phases (default: as many as training)")
    a = p.parse_args(argv)
    s = QUICK if a.quick else FULL
    if a.threads:
        s = replace(s, threads=tuple(a.threads))
    if a.no_peers:
        s = replace(s, peers=False)
    for knob in ("admm_epochs", "retrain_epochs", "prune_pairs"):
        if getattr(a, knob) is not None:
            s = replace(s, **{knob: getattr(a, knob)})
    if a.stage == "time":
        # training is resumed from its checkpoints; with none, it would train here
        for app in a.apps:
            if not ((a.work or WORK) / app / "prune" / "final.pt").exists():
                print(f"note: no finished run of {app} in {a.work or WORK}; training it here")
    print(run(a.quick, a.out, a.work, tuple(a.apps), "all" if a.stage == "time" else a.stage, s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
