"""Dense baselines: train a zoo model on a data set, save portable weights and a record of the run.

`python -m workbench train --model resnet18 --data cifar10 --out runs/resnet18.pt` trains (resuming
from runs/resnet18.pt if it exists), then writes runs/resnet18.npz (fp16 weights, shards of at most
15 MB, see workbench.weights) and runs/resnet18.json (test accuracy, history, config, provenance).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from workbench.data import load_cifar10, load_digits
from workbench.models import build_model
from workbench.provenance import current_command, provenance, write_json
from workbench.train import TrainConfig, evaluate, train
from workbench.weights import save_state


def load_data(dataset: str, data_path: str | None = None, train_subset: int | None = None):
    """Splits of 'digits' or 'cifar10' (from data_path or the data folders)."""
    if dataset == "digits":
        return load_digits()
    if dataset == "cifar10":
        return load_cifar10(data_path, train_subset=train_subset)
    raise ValueError(f"unknown data set {dataset!r}; choose 'digits' or 'cifar10'")


def model_for(name: str, splits) -> torch.nn.Module:
    """A fresh zoo model shaped for the data set's images and classes."""
    c, h, _ = splits.input_shape
    return build_model(name, splits.num_classes, input_size=h, in_channels=c)


def train_baseline(model: str, dataset: str, out: Path, epochs: int = 40, batch_size: int = 256,
                   lr: float = 0.1, weight_decay: float = 5e-4, label_smoothing: float = 0.1,
                   seed: int = 0, device: str = "auto", data_path: str | None = None,
                   train_subset: int | None = None, progress: bool = True) -> dict:
    """Train a dense model (resumable via `out`), save fp16 weights + a JSON record; returns it."""
    splits = load_data(dataset, data_path, train_subset)
    net = model_for(model, splits)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      label_smoothing=label_smoothing, seed=seed, device=device)
    out = Path(out)
    history = train(net, splits.train, splits.val, cfg, checkpoint=out, progress=progress,
                    desc=f"{model}/{dataset}")
    test = evaluate(net, splits.test, cfg.device)
    config = {"model": model, "dataset": dataset, "train_subset": train_subset, **asdict(cfg)}
    record = {"model": model, "dataset": dataset, "test_accuracy": test["accuracy"],
              "test_loss": test["loss"], "epochs": epochs, "history": history,
              "provenance": provenance(current_command(), config)}
    files = save_state(out.with_suffix(".npz"), net.state_dict(), half=True,
                       meta={"model": model, "dataset": dataset, "num_classes": splits.num_classes,
                             "input_shape": list(splits.input_shape),
                             "test_accuracy": test["accuracy"]})
    record["weights"] = [f.name for f in files]
    write_json(record, out.with_suffix(".json"))
    print(f"{model} on {dataset}: test accuracy {100 * test['accuracy']:.2f}% "
          f"after {epochs} epochs; weights in {', '.join(str(f) for f in files)}")
    return record


def collect_baselines(quick: bool = False, out_dir: Path = Path("results/baselines"),
                      runs_dir: Path = Path("runs/cifar10")) -> "Any":
    """Table and training curves of the dense runs recorded in runs_dir/*.json (from `train`).

    Each row names the command that trained it and the machine it ran on; the JSON records are
    copied next to the table so the curves can be redrawn without the weights. quick: train the
    small CNN on digits for 3 epochs into out_dir/runs first and collect that (CI, no CIFAR-10).
    """
    import json

    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    from workbench.provenance import write_figure, write_table

    if quick:
        runs_dir = Path(out_dir) / "runs"
        train_baseline("small_cnn", "digits", runs_dir / "small_cnn.pt", epochs=3, batch_size=64,
                       lr=0.05, label_smoothing=0.0, device="cpu", progress=False)
    records = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        rec = json.loads(path.read_text())
        if "test_accuracy" in rec and "history" in rec:
            records.append(rec)
            write_json(rec, Path(out_dir) / path.name)
    if not records:
        raise FileNotFoundError(f"no training records (*.json written by `python -m workbench "
                                f"train`) in {runs_dir}")
    rows = []
    for r in records:
        m = r["provenance"]["machine"]
        best = max(h.get("val_acc", 0.0) for h in r["history"])
        rows.append({"model": r["model"], "dataset": r["dataset"], "epochs": r["epochs"],
                     "test_top1_%": 100 * r["test_accuracy"], "best_val_%": 100 * best,
                     "train_min": sum(h["seconds"] for h in r["history"]) / 60,
                     "machine": m.get("gpu", m["cpu"]), "command": r["provenance"]["command"],
                     "git": r["provenance"]["git"]})
    df = pd.DataFrame(rows)
    prov = provenance(current_command(), {"runs_dir": str(runs_dir)})
    write_table(df, Path(out_dir) / "dense", prov, title="Dense baselines (test top-1)", floatfmt=".2f")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in records:
        ep = [h["epoch"] + 1 for h in r["history"]]
        ax.plot(ep, [100 * h["val_acc"] for h in r["history"]], label=f"{r['model']} (val)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_ylim(50, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    write_figure(fig, Path(out_dir) / "dense_curves.png", prov)
    plt.close(fig)
    return df
