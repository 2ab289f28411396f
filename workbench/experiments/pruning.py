"""Pruning experiments (issue 3): Table 1 made quantitative, ADMM vs one-shot curves, characteristics.

    pattern_coverage       coverage of pattern sets of size K (4, 6, 8, 12) distilled from weights
    compression_curve      test accuracy at 4x, 8x, 12x, 16x: ADMM vs one-shot magnitude pruning
                           (pattern + connectivity), equal epoch budget
    scheme_comparison      Table 1: irregular, filter, column, connectivity, pattern and
                           pattern + connectivity at one common rate
    characteristics_table  model, patterns, conv compression, accuracy before/after (8x, ADMM);
                           saves the pruned models (kept weights fp16 + packed masks, ~5 MB)
    extended_retraining    more masked retraining of those saved models (no dense checkpoint
                           needed): what a longer budget buys

Each takes (quick, out_dir, ...). Quick mode: SmallCNN on sklearn digits, trained here, minutes on
two CPU cores. Full mode: CIFAR-10 with VGG-16 / ResNet-18 from a dense checkpoint (the npz that
`python -m workbench train` writes; default runs/cifar10/<model>.npz). The first 3x3 convolution
(the image reader) stays dense and the others are pruned so that all 3x3 conv weights together
shrink `rate` times.

Every pruning run is cached as out_dir/runs/<key>.json (key = a hash of everything that determines
it: model, dense weights, scheme, rate, method, settings, patterns), so a table is reassembled
from runs made earlier (on another machine, say) and only missing runs are computed. Checkpoints
go to work_dir (default runs/pruning/), so an interrupted run resumes. Command line:

    python -m workbench.experiments.pruning {coverage,curve,table1,characteristics,extend,all} [--quick]
        [--model vgg16 --dense runs/cifar10/vgg16.npz] [--rates 4 8] [--methods admm oneshot]
        [--rate 4.5] [--schemes ...] [--admm-epochs N --retrain-epochs N] [--save-models]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.data import Splits, load_cifar10, load_digits
from workbench.models import build_model
from workbench.provenance import (REPO_ROOT, RESULTS, provenance, write_figure, write_json,
                                  write_table)
from workbench.pruning import (ADMM, PatternSet, Sparsifier, admm_prune, candidate_patterns,
                               coverage, oneshot_prune, pattern_frequency, plot_residuals,
                               rate_config, save_pruned, select_patterns)
from workbench.pruning.sparsifier import linear_config, pointwise_config
from workbench.pruning.masks import MaskedRetraining, load_pruned_model
from workbench.train import TrainConfig, evaluate, load_checkpoint, train
from workbench.weights import load_state, read_meta

QUICK_OUT = RESULTS / "pruning" / "quick"
FULL_OUT = RESULTS / "pruning"
WORK = REPO_ROOT / "runs" / "pruning"
TABLE1_SCHEMES = ("irregular", "filter", "column", "connectivity", "pattern", "pattern_connectivity")
MODULE = "python -m workbench.experiments.pruning"


@dataclass(frozen=True)
class Settings:
    """Training budget and ADMM knobs of one pruning run (one-shot gets admm+retrain epochs)."""
    admm_epochs: int
    retrain_epochs: int
    batch_size: int
    lr_admm: float
    lr_retrain: float
    rho: float
    rho_growth: float
    rho_max: float
    tol: float = 1e-3
    updates_per_epoch: int = 1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    num_patterns: int = 8
    seed: int = 0
    device: str = "auto"

    def admm_train(self) -> TrainConfig:
        """ADMM's W-step: constant learning rate, so late Z/U steps still move W."""
        return TrainConfig(epochs=self.admm_epochs, batch_size=self.batch_size, lr=self.lr_admm,
                           weight_decay=self.weight_decay, schedule="constant",
                           label_smoothing=self.label_smoothing, seed=self.seed, device=self.device)

    def retrain(self, epochs: int) -> TrainConfig:
        """Masked retraining: cosine decay from lr_retrain."""
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr_retrain,
                           weight_decay=self.weight_decay, schedule="cosine",
                           label_smoothing=self.label_smoothing, seed=self.seed + 1,
                           device=self.device)


QUICK = Settings(admm_epochs=10, retrain_epochs=10, batch_size=64, lr_admm=0.01, lr_retrain=0.01,
                 rho=0.1, rho_growth=1.3, rho_max=100.0, updates_per_epoch=2, device="cpu")
# Full mode: 45k CIFAR-10 training images per epoch. On one H100 an epoch takes about 2.1 s
# (ResNet-18) / 1.7 s (VGG-16), an ADMM epoch 3.1 s / 2.2 s, so one run is 1.5-2 minutes. rho
# was tuned on CIFAR-10 subsets (H100): from an 80% ResNet-18 on 10k images, ADMM beat one-shot
# at 8x and 16x for every setting tried, rho 0.01 -> 10 best; from the 94.35% ResNet-18 on 11k
# images, ADMM and one-shot at 8x were within noise of each other (2k test images) for every rho,
# lr and epoch split tried, and these settings gave the closest ADMM convergence (primal 0.025).
FULL = Settings(admm_epochs=20, retrain_epochs=20, batch_size=256, lr_admm=0.01, lr_retrain=0.02,
                rho=0.01, rho_growth=1.3, rho_max=10.0, updates_per_epoch=2, label_smoothing=0.1)
QUICK_DENSE = TrainConfig(epochs=15, batch_size=64, lr=0.05, device="cpu", seed=0)


@dataclass
class Dense:
    """A trained dense model with its data, and what identifies it in run keys."""
    name: str
    model: nn.Module
    splits: Splits
    identity: str
    spec: dict[str, Any]

    def fresh(self) -> nn.Module:
        """A copy of the dense model (runs prune in place)."""
        m = build_model(self.name, **self.spec)
        m.load_state_dict(self.model.state_dict())
        return m


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _state_sha(model: nn.Module) -> str:
    """Hash of a model's weights: runs are cached by what they start from."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_dense(quick: bool, model: str, dense: str | Path | None = None,
               data_path: str | None = None, work_dir: Path = WORK,
               progress: bool = True) -> Dense:
    """Quick: SmallCNN trained on digits here (cached). Full: `model` on CIFAR-10 from `dense`."""
    if quick:
        splits = load_digits()
        spec = {"num_classes": 10, "input_size": 8, "in_channels": 1}
        torch.manual_seed(QUICK_DENSE.seed)  # the initial weights, not only training, are seeded
        net = build_model("small_cnn", **spec)
        ckpt = Path(work_dir) / "quick" / "dense_small_cnn.pt"
        train(net, splits.train, splits.val, QUICK_DENSE, checkpoint=ckpt, progress=progress,
              desc="dense small_cnn")
        return Dense("small_cnn", net.cpu(), splits, "digits-" + _state_sha(net), spec)
    path = Path(dense) if dense is not None else REPO_ROOT / "runs" / "cifar10" / f"{model}.npz"
    if not path.exists():
        raise FileNotFoundError(f"no dense checkpoint {path}; train one with `python -m workbench "
                                f"train --model {model} --out runs/cifar10/{model}.pt` or pass --dense")
    if path.suffix == ".npz":
        meta = read_meta(path)["meta"]
        if meta.get("model", model) != model:
            raise ValueError(f"{path} holds a {meta['model']}, not a {model}")
        state = load_state(path)
    else:
        state = load_checkpoint(path)["model"]
    spec = {"num_classes": 10, "input_size": 32, "in_channels": 3}
    net = build_model(model, **spec)
    net.load_state_dict(state)
    return Dense(model, net, load_cifar10(data_path), f"{model}-{_sha(path)}", spec)


def dense_patterns(dense: Dense, num_patterns: int, k: int = 4) -> PatternSet:
    """num_patterns k-entry patterns (centre kept) distilled from the model's 3x3 conv weights."""
    weights = [m.weight.detach() for m in dense.model.modules()
               if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (3, 3)]
    return select_patterns(weights, num_patterns, candidate_patterns((3, 3), k, keep_centre=True))


Extra = tuple[tuple[str, float], ...]  # (("linear", 8.0), ("pointwise", 2.0)): groups beyond 3x3s
EXTRA_KINDS = ("linear", "pointwise")


def extra_config(model: nn.Module, extra: Extra) -> list[dict[str, Any]]:
    """Groups for the layers beyond the 3x3 convs: "linear" prunes every FC layer, the class
    layer included (16-row blocks), "pointwise" every dense 1x1 conv (filter groups of 16)."""
    config: list[dict[str, Any]] = []
    for kind, rate in extra:
        if kind == "linear":
            groups = linear_config(model, "block", rate, dense_last=False)
        elif kind == "pointwise":
            groups = pointwise_config(model, rate)
        else:
            raise ValueError(f"extra group kind must be one of {EXTRA_KINDS}, got {kind!r}")
        if not groups:
            raise ValueError(f"{type(model).__name__} has no {kind} layers to prune")
        config += groups
    return config


def _run_key(dense: Dense, method: str, scheme: str, rate: float, settings: Settings,
             patterns: PatternSet | None, extra: Extra = ()) -> str:
    spec = {"dense": dense.identity, "method": method, "scheme": scheme, "rate": rate,
            "settings": asdict(replace(settings, device="any")),
            "patterns": None if patterns is None else patterns.patterns}
    if extra:  # only then, so runs of 3x3s alone keep the keys they were cached under
        spec["extra"] = [list(e) for e in extra]
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    extras = "".join(f"-{kind}{r:g}x" for kind, r in extra)
    return f"{dense.name}-{method}-{scheme}-{rate:g}x{extras}-{digest}"


def run_pruning(dense: Dense, method: str, scheme: str, rate: float, settings: Settings,
                patterns: PatternSet | None, out_dir: Path, work_dir: Path = WORK,
                save_model: bool = False, progress: bool = True,
                cached_only: bool = False, extra: Extra = ()) -> dict[str, Any]:
    """One pruning run (cached in out_dir/runs/<key>.json); returns its record.

    cached_only: raise FileNotFoundError instead of computing a missing run (assembling tables
    on a machine without a GPU from runs made on one). extra: groups pruned beside the 3x3
    convs, trained in the same ADMM run (see extra_config).
    """
    key = _run_key(dense, method, scheme, rate, settings, patterns, extra)
    path = Path(out_dir) / "runs" / f"{key}.json"
    model_file = Path(out_dir) / "models" / f"{key}.npz"
    if path.exists() and (not save_model or model_file.exists()):
        return json.loads(path.read_text())
    if cached_only:
        missing = path if not path.exists() else model_file
        raise FileNotFoundError(f"{missing} is missing and cached_only is set: run it first "
                                f"({method} {scheme} {rate:g}x on {dense.name})")
    model = dense.fresh()
    config = rate_config(model, scheme, rate, patterns) + extra_config(model, extra)
    work = Path(work_dir) / key
    s, retrain = settings, settings.retrain
    if method == "admm":
        admm = ADMM(config, rho=s.rho, rho_growth=s.rho_growth, rho_max=s.rho_max, tol=s.tol)
        spe = math.ceil(len(dense.splits.train) / s.batch_size)
        result = admm_prune(model, admm, dense.splits.train, dense.splits.val, dense.splits.test,
                            s.admm_train(), retrain(s.retrain_epochs), work,
                            update_every=max(1, spe // s.updates_per_epoch), progress=progress)
    elif method == "oneshot":
        # Equal budget: the epochs ADMM spends before retraining go to retraining here.
        result = oneshot_prune(model, Sparsifier(config), dense.splits.train, dense.splits.val,
                               dense.splits.test, retrain(s.admm_epochs + s.retrain_epochs), work,
                               progress=progress)
    else:
        raise ValueError(f"method must be 'admm' or 'oneshot', got {method!r}")
    record = {"key": key, "model": dense.name, "dense": dense.identity, "method": method,
              "scheme": scheme, "rate": rate, "settings": asdict(s),
              "patterns": None if patterns is None else [list(p) for p in patterns.patterns],
              "conv_compression": _conv_compression(model, result.masks),
              **({"extra": [list(e) for e in extra],
                  "extra_compression": _extra_compression(model, result.masks, extra)}
                 if extra else {}),
              **result.record(),
              "provenance": provenance(f"{MODULE} (run {key})", {"key": key})}
    if save_model:
        save_pruned(model_file, model.cpu(), result.masks, meta={
            "model": {"name": dense.name, **dense.spec}, "key": key, "scheme": scheme,
            "rate": rate, "test_accuracy": result.accuracy("retrained")})
    write_json(record, path)
    return record


def _conv_compression(model: nn.Module, masks: dict[str, torch.Tensor]) -> float:
    """All 3x3 conv weights before / after (unpruned 3x3 convs count as fully kept)."""
    total = kept = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (3, 3):
            total += m.weight.numel()
            mask = masks.get(f"{name}.weight")
            kept += m.weight.numel() if mask is None else int(mask.sum())
    return total / kept


def _extra_compression(model: nn.Module, masks: dict[str, torch.Tensor],
                       extra: Extra) -> dict[str, float]:
    """Per extra kind: its layers' weights before / after."""
    params = dict(model.named_parameters())
    out = {}
    for kind, rate in extra:
        names = [g["tensor"] for g in extra_config(model, ((kind, rate),))]
        total = sum(params[n].numel() for n in names)
        kept = sum(int(masks[n].sum()) if n in masks else params[n].numel() for n in names)
        out[kind] = total / max(kept, 1)
    return out


def _models(quick: bool, models: tuple[str, ...] | None) -> tuple[str, ...]:
    return ("small_cnn",) if quick else (models or ("vgg16", "resnet18"))


def _dense_for(quick: bool, model: str, dense: dict[str, str] | None, data_path: str | None,
               work_dir: Path, progress: bool) -> Dense:
    return load_dense(quick, model, (dense or {}).get(model), data_path, work_dir, progress)


def _command(name: str, quick: bool, settings: Settings | None = None,
             dense: dict[str, str] | None = None, **args: Any) -> str:
    """The command line that regenerates a table (custom settings beyond epochs are flagged)."""
    parts = [MODULE, name] + (["--quick"] if quick else [])
    if dense:
        args = {**args, "model": tuple(dense), "dense": tuple(dense.values())}
    base = QUICK if quick else FULL
    if settings is not None:
        if settings.admm_epochs != base.admm_epochs:
            args["admm_epochs"] = settings.admm_epochs
        if settings.retrain_epochs != base.retrain_epochs:
            args["retrain_epochs"] = settings.retrain_epochs
        if replace(settings, admm_epochs=base.admm_epochs, retrain_epochs=base.retrain_epochs,
                   device=base.device) != base:
            parts.insert(0, "(from Python, settings in Config)")
    for k, v in args.items():
        if v is None:
            continue
        flag = "--" + k.replace("_", "-")
        vals = v if isinstance(v, (list, tuple)) else [v]
        parts += [flag, *[str(x) for x in vals]]
    return " ".join(parts)


def _setup(quick: bool, out_dir: Path | None, settings: Settings | None) -> tuple[Path, Settings]:
    out = Path(out_dir) if out_dir is not None else (QUICK_OUT if quick else FULL_OUT)
    return out, settings or (QUICK if quick else FULL)


def pattern_coverage(quick: bool = False, out_dir: Path | None = None,
                     models: tuple[str, ...] | None = None, dense: dict[str, str] | None = None,
                     sizes: tuple[int, ...] = (4, 6, 8, 12), random_sets: int = 20,
                     data_path: str | None = None, work_dir: Path = WORK,
                     progress: bool = True) -> pd.DataFrame:
    """Coverage of distilled sets of each size (and of random sets of that size), per model."""
    out, _ = _setup(quick, out_dir, None)
    rows = []
    for name in _models(quick, models):
        d = _dense_for(quick, name, dense, data_path, work_dir, progress)
        weights = [m.weight.detach() for m in d.model.modules()
                   if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (3, 3)]
        cands = candidate_patterns((3, 3), 4, keep_centre=True)
        rng = np.random.default_rng(0)
        freq = pattern_frequency(weights, cands)
        order = np.lexsort((np.arange(len(freq)), -freq))  # select_patterns' order
        for k in sizes:
            ps = select_patterns(weights, k, cands)
            # Baseline: sets of the same size drawn at random from the candidates.
            rand = [coverage(weights, PatternSet(patterns=cands[rng.choice(len(cands), k, False)]))
                    for _ in range(random_sets)]
            rows.append({"model": name, "patterns": k, "candidates": len(cands),
                         "coverage": coverage(weights, ps),
                         "random_sets_coverage": float(np.mean(rand)),
                         "best_fit_share": float(freq[order[:k]].sum() / freq.sum()),
                         "pattern_taps": " ".join("".join(map(str, p)) for p in ps.patterns)})
    df = pd.DataFrame(rows)
    prov = provenance(_command("coverage", quick, dense=dense, model=models),
                      {"sizes": sizes, "random_sets": random_sets})
    write_table(df, out / "pattern_coverage", prov, "Coverage of distilled 4-entry pattern sets "
                "(share of squared weight magnitude kept vs. each kernel's free best 4 taps; "
                f"random: mean of {random_sets} random sets of the same size; best_fit_share: "
                "kernels whose best candidate is in the set)")
    return df


def compression_curve(quick: bool = False, out_dir: Path | None = None,
                      models: tuple[str, ...] | None = None, dense: dict[str, str] | None = None,
                      rates: tuple[float, ...] = (4, 8, 12, 16),
                      methods: tuple[str, ...] = ("admm", "oneshot"),
                      settings: Settings | None = None, data_path: str | None = None,
                      work_dir: Path = WORK, save_models: bool = False,
                      progress: bool = True, cached_only: bool = False) -> pd.DataFrame:
    """Test accuracy vs. conv compression, ADMM vs. one-shot, pattern (8) + connectivity."""
    out, s = _setup(quick, out_dir, settings)
    rows = []
    for name in _models(quick, models):
        d = _dense_for(quick, name, dense, data_path, work_dir, progress)
        ps = dense_patterns(d, s.num_patterns)
        for rate in rates:
            for method in methods:
                r = run_pruning(d, method, "pattern_connectivity", float(rate), s, ps, out,
                                work_dir, save_models, progress, cached_only)
                rows.append(_row(r))
    df = pd.DataFrame(rows)
    cmd = _command("curve", quick, s, dense, model=models, rates=rates, methods=methods)
    prov = provenance(cmd, {"settings": asdict(s), "rates": rates, "methods": methods})
    write_table(df, out / "compression_curve", prov,
                "Accuracy vs. compression: ADMM vs. one-shot magnitude pruning (equal epochs)")
    write_figure(plot_curve(df), out / "compression_curve.png", prov)
    return df


def _row(r: dict[str, Any]) -> dict[str, Any]:
    acc = {p["phase"]: p["test_acc"] for p in r["phases"]}
    return {"model": r["model"], "method": r["method"], "scheme": r["scheme"], "rate": r["rate"],
            "conv_compression": r["conv_compression"], "dense_acc": acc["dense"],
            "projected_acc": acc["projected"], "final_acc": acc["retrained"],
            "acc_drop": acc["dense"] - acc["retrained"], "run": r["key"]}


def plot_curve(df: pd.DataFrame) -> Any:
    """Final test accuracy (%) vs. conv compression per model, one line per method."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = df[df["model"] == name].sort_values("conv_compression")
        for method, g in sub.groupby("method"):
            ax.plot(g["conv_compression"], 100 * g["final_acc"], "o-", label=method)
        ax.axhline(100 * sub["dense_acc"].iloc[0], color="k", ls="--", lw=1, label="dense")
        ax.set(title=name, xlabel="3x3 conv weights: dense / pruned (x)", ylabel="test accuracy (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scheme_comparison(quick: bool = False, out_dir: Path | None = None,
                      models: tuple[str, ...] | None = None, dense: dict[str, str] | None = None,
                      rate: float = 4.5, schemes: tuple[str, ...] = TABLE1_SCHEMES,
                      method: str = "admm", settings: Settings | None = None,
                      data_path: str | None = None, work_dir: Path = WORK,
                      save_models: bool = False, progress: bool = True,
                      cached_only: bool = False) -> pd.DataFrame:
    """Table 1 with numbers: accuracy of each scheme at one rate (pattern alone: 9/rate taps)."""
    out, s = _setup(quick, out_dir, settings)
    rows = []
    for name in _models(quick, models):
        d = _dense_for(quick, name, dense, data_path, work_dir, progress)
        for scheme in schemes:
            # Pattern pruning alone reaches a rate only through its pattern size: 9 / rate taps.
            k = 4 if scheme != "pattern" else max(1, round(9 / rate))
            ps = dense_patterns(d, min(s.num_patterns, len(candidate_patterns((3, 3), k))), k) \
                if scheme.startswith("pattern") else None
            r = run_pruning(d, method, scheme, float(rate), s, ps, out, work_dir, save_models,
                            progress, cached_only)
            rows.append({**_row(r), "pattern_taps": str(k) if ps is not None else "-"})
    df = pd.DataFrame(rows)
    cmd = _command("table1", quick, s, dense, model=models, rate=rate, schemes=schemes,
                   method=method)
    prov = provenance(cmd, {"settings": asdict(s), "rate": rate, "schemes": schemes,
                            "method": method})
    write_table(df, out / "scheme_comparison", prov,
                f"Table 1 made quantitative: pruning schemes at {rate:g}x fewer 3x3 conv weights "
                f"({method} + masked retraining)")
    return df


def characteristics_table(quick: bool = False, out_dir: Path | None = None,
                          models: tuple[str, ...] | None = None,
                          dense: dict[str, str] | None = None, rate: float = 8.0,
                          settings: Settings | None = None, data_path: str | None = None,
                          work_dir: Path = WORK, progress: bool = True,
                          cached_only: bool = False) -> pd.DataFrame:
    """Model, patterns, conv compression, accuracy before/after (ADMM, pattern + connectivity)."""
    out, s = _setup(quick, out_dir, settings)
    rows = []
    for name in _models(quick, models):
        d = _dense_for(quick, name, dense, data_path, work_dir, progress)
        ps = dense_patterns(d, s.num_patterns)
        r = run_pruning(d, "admm", "pattern_connectivity", float(rate), s, ps, out, work_dir,
                        save_model=True, progress=progress, cached_only=cached_only)
        acc = {p["phase"]: p["test_acc"] for p in r["phases"]}
        rows.append({"model": name, "patterns": ps.num_patterns, "pattern_taps": ps.entries,
                     "conv_compression": r["conv_compression"],
                     "pruned_layers_compression": r["compression"],
                     "acc_before": acc["dense"], "acc_after": acc["retrained"],
                     "acc_drop": acc["dense"] - acc["retrained"],
                     "admm_iterations": len(r["admm_history"]),
                     "model_file": f"models/{r['key']}.npz"})
        fig = plot_residuals(r["admm_history"]).figure
        write_figure(fig, out / f"admm_residuals_{name}.png",
                     provenance(_command("characteristics", quick, s, model=(name,), rate=rate),
                                {"run": r["key"]}))
    df = pd.DataFrame(rows)
    cmd = _command("characteristics", quick, s, dense, model=models, rate=rate)
    write_table(df, out / "characteristics", provenance(cmd, {"settings": asdict(s), "rate": rate}),
                f"Pattern ({s.num_patterns} patterns) + connectivity pruning at {rate:g}x, ADMM")
    return df


def _saved_models(out: Path, rate: float) -> list[Path]:
    """The pruned models characteristics_table saved at `rate` (ADMM, pattern + connectivity)."""
    return sorted((out / "models").glob(f"*-admm-pattern_connectivity-{rate:g}x-??????????.npz"))


def extended_retraining(quick: bool = False, out_dir: Path | None = None,
                        model_files: tuple[str, ...] | None = None, rate: float = 8.0,
                        epochs: int | None = None, lr: float | None = None,
                        data_path: str | None = None, work_dir: Path = WORK,
                        progress: bool = True, device: str = "auto") -> pd.DataFrame:
    """More masked retraining (same masks, cosine from lr) of the saved rate-x models: what a
    longer budget buys against the dense accuracy recorded in each model's run.

    Needs no dense checkpoint: it starts from models/<key>.npz and reads the dense accuracy from
    runs/<key>.json. Writes extended_retraining.{csv,md} and models/<key>-ext<epochs>.npz.
    """
    out, s = _setup(quick, out_dir, None)
    epochs = epochs if epochs is not None else (5 if quick else 60)
    lr = lr if lr is not None else s.lr_retrain
    files = [Path(f) for f in model_files] if model_files else _saved_models(out, rate)
    if not files:
        raise FileNotFoundError(f"no saved {rate:g}x models in {out / 'models'}: run "
                                f"`{MODULE} characteristics` first")
    rows = []
    for f in files:
        model, masks, info = load_pruned_model(f)
        key = info["key"]
        run = json.loads((out / "runs" / f"{key}.json").read_text())
        acc = {ph["phase"]: ph["test_acc"] for ph in run["phases"]}
        splits = load_digits() if info["model"]["name"] == "small_cnn" else load_cifar10(data_path)
        start = evaluate(model, splits.test, device=device)["accuracy"]
        cfg = replace(s.retrain(epochs), lr=lr, seed=s.seed + 2, device=device)
        with MaskedRetraining(model, masks) as keep:
            history = train(model, splits.train, splits.val, cfg,
                            checkpoint=Path(work_dir) / f"{key}-ext{epochs}" / "retrain.pt",
                            after_step=keep, progress=progress, desc=f"extend {key}")
        end = evaluate(model, splits.test, device=device)["accuracy"]
        target = out / "models" / f"{key}-ext{epochs}.npz"
        save_pruned(target, model.cpu(), masks, meta={**info, "extended_epochs": epochs,
                                                      "test_accuracy": end})
        rows.append({"model": info["model"]["name"], "rate": rate,
                     "conv_compression": run["conv_compression"],
                     "first_epochs": _run_epochs(run), "extra_epochs": epochs, "extra_lr": lr,
                     "acc_dense": acc["dense"], "acc_first": start, "acc_extended": end,
                     "drop_first": acc["dense"] - start, "drop_extended": acc["dense"] - end,
                     "best_val_extended": max(h.get("val_acc", 0.0) for h in history)
                     if history else float("nan"),
                     "model_file": f"models/{target.name}"})
    df = pd.DataFrame(rows)
    cmd = " ".join([MODULE, "extend"] + (["--quick"] if quick else [])
                   + ["--rate", f"{rate:g}", "--epochs", str(epochs), "--lr", f"{lr:g}"])
    write_table(df, out / "extended_retraining",
                provenance(cmd, {"epochs": epochs, "lr": lr, "rate": rate,
                                 "models": [f.name for f in files], "device": str(device)}),
                f"{rate:g}x pattern + connectivity models: {epochs} more epochs of masked retraining")
    return df


def _run_epochs(run: dict[str, Any]) -> int:
    """ADMM + retraining epochs a pruning run spent (its settings)."""
    return int(run["settings"]["admm_epochs"]) + int(run["settings"]["retrain_epochs"])


def run_all(quick: bool = False, out_dir: Path | None = None, **kw: Any) -> None:
    """Every table and figure of this module (runs shared between them are computed once)."""
    pattern_coverage(quick, out_dir, **{k: v for k, v in kw.items()
                                        if k not in ("settings", "cached_only")})
    characteristics_table(quick, out_dir, **kw)
    compression_curve(quick, out_dir, **kw)
    scheme_comparison(quick, out_dir, **kw)


def main(argv: list[str] | None = None) -> int:
    """Command line: one sub-command per table (see the module docstring)."""
    p = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["coverage", "curve", "table1", "characteristics", "extend",
                                    "all"])
    p.add_argument("--quick", action="store_true", help="digits + SmallCNN on CPU, minutes")
    p.add_argument("--out", default=None, help="output folder (default results/pruning[/quick])")
    p.add_argument("--model", nargs="+", default=None, help="vgg16 resnet18 (full mode)")
    p.add_argument("--dense", nargs="+", default=None,
                   help="dense checkpoint per --model, same order (default runs/cifar10/<model>.npz)")
    p.add_argument("--data-path", default=None, help="CIFAR-10 .npz (default: data folders)")
    p.add_argument("--rates", nargs="+", type=float, default=None)
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--methods", nargs="+", default=None, choices=["admm", "oneshot"])
    p.add_argument("--method", default="admm", choices=["admm", "oneshot"], help="table1's method")
    p.add_argument("--schemes", nargs="+", default=None, choices=list(TABLE1_SCHEMES) + ["channel"])
    p.add_argument("--save-models", action="store_true", help="also save every run's pruned model")
    p.add_argument("--admm-epochs", type=int, default=None, help="override the mode's budget")
    p.add_argument("--retrain-epochs", type=int, default=None, help="override the mode's budget")
    p.add_argument("--work-dir", default=str(WORK), help="checkpoints (resumable)")
    p.add_argument("--cached-only", action="store_true",
                   help="only assemble tables from runs already in <out>/runs; never train")
    p.add_argument("--epochs", type=int, default=None, help="extend: extra retraining epochs")
    p.add_argument("--lr", type=float, default=None, help="extend: peak learning rate (cosine)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    models = tuple(a.model) if a.model else None
    if a.dense and (not models or len(a.dense) != len(models)):
        p.error("--dense needs one path per --model")
    kw: dict[str, Any] = {"models": models, "data_path": a.data_path, "work_dir": Path(a.work_dir),
                          "progress": not a.no_progress,
                          "dense": dict(zip(models, a.dense)) if a.dense else None}
    out = Path(a.out) if a.out else None
    if a.admm_epochs is not None or a.retrain_epochs is not None:
        base = QUICK if a.quick else FULL
        kw["settings"] = replace(base, admm_epochs=base.admm_epochs if a.admm_epochs is None
                                 else a.admm_epochs, retrain_epochs=base.retrain_epochs
                                 if a.retrain_epochs is None else a.retrain_epochs)
    if a.quick:
        torch.set_num_threads(1)  # tiny convolutions: a second thread only adds contention
    if a.what == "extend":
        extended_retraining(a.quick, out, rate=a.rate or 8.0, epochs=a.epochs, lr=a.lr,
                            data_path=a.data_path, work_dir=Path(a.work_dir),
                            progress=not a.no_progress)
        return 0
    if a.what == "coverage":
        kw.pop("settings", None)
        pattern_coverage(a.quick, out, **kw)
        return 0
    kw["cached_only"] = a.cached_only
    if a.what == "all":
        run_all(a.quick, out, **kw)
    if a.what == "curve":
        compression_curve(a.quick, out, rates=tuple(a.rates or (4, 8, 12, 16)),
                          methods=tuple(a.methods or ("admm", "oneshot")),
                          save_models=a.save_models, **kw)
    elif a.what == "table1":
        scheme_comparison(a.quick, out, rate=a.rate or 4.5, method=a.method,
                          schemes=tuple(a.schemes or TABLE1_SCHEMES), save_models=a.save_models,
                          **kw)
    elif a.what == "characteristics":
        characteristics_table(a.quick, out, rate=a.rate or 8.0, **kw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
