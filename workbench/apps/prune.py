"""Prune the demo apps' networks: ADMM, hard projection, masked retraining through `training.fit`.

The structure is `workbench.pruning.pipeline.admm_prune`'s, with fit (any image-to-image loss)
in place of the classification train() and a `quality(model) -> dict` callable in place of
accuracy (PSNR for super resolution and coloring, the style loss for style transfer). Every
phase checkpoints into `work_dir` and a rerun resumes where it stopped:

    spec.json            what this work_dir prunes (app, rate, configs); another spec is refused
    dense.json           quality of the dense model (before anything changed it)
    admm.pt              fit()'s checkpoint of the ADMM phase (model, optimiser, schedule)
    admm_state_<e>.pt    ADMM's Z, U, rho, residuals after epoch e
    projected.pt         weights after the hard projection, masks, phases so far
    retrain.pt           fit()'s checkpoint of masked retraining
    final.pt             retrained weights, masks and the whole record (PruneResult.record())

Once final.pt is written the others go (keep_checkpoints=True keeps them). The schemes follow
the demo paper (report, section 4):

    transformer_net  column pruning of every conv but the first (the 9x9 reading the image;
                     the last 9x9, 32 -> 3 channels at full resolution, is a seventh of the
                     pruned network's time when left dense)
    colornet, wdsr   pattern + connectivity on the 3x3 convs, the first (image in) dense;
                     8 four-entry patterns distilled from the model's own 3x3 weights; rate
                     counts the 3x3 weights only. With pointwise_rate, the 1x1 convs too
                     (WDSR's wide activation: most of its FMAs) get connectivity over input
                     channels in groups of 16 filters (sparsifier.pointwise_config), which
                     the compiler's 1x1 GEMM skips; WDSR's 5x5 skip stays dense
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.apps.coloring import COLOR_TRAIN
from workbench.apps.style_transfer import STYLE_TRAIN
from workbench.apps.super_resolution import SR_TRAIN
from workbench.apps.training import LossFn, Pairs, fit, steps_per_epoch
from workbench.provenance import atomic_write_text
from workbench.pruning.admm import ADMM
from workbench.pruning.masks import MaskedRetraining
from workbench.pruning.patterns import PatternSet, candidate_patterns, select_patterns
from workbench.pruning.pipeline import PruneResult
from workbench.pruning.sparsifier import Group, pointwise_config, rate_config
from workbench.train import TrainConfig, load_checkpoint, save_checkpoint

Quality = Callable[[nn.Module], dict[str, Any]]

APP_ALIASES = {"super_resolution": "wdsr", "coloring": "colornet", "style_transfer": "transformer_net"}
APP_TRAIN = {"wdsr": SR_TRAIN, "colornet": COLOR_TRAIN, "transformer_net": STYLE_TRAIN}
NUM_PATTERNS = 8


def _model_name(name: str) -> str:
    """App or model name -> the model name of APP_MODELS ('coloring' -> 'colornet')."""
    model = APP_ALIASES.get(name, name)
    if model not in APP_TRAIN:
        raise ValueError(f"unknown app {name!r}; choose one of {sorted(APP_ALIASES)} "
                         f"or {sorted(APP_TRAIN)}")
    return model


def _convs(model: nn.Module, kernel: tuple[int, int] | None = None) -> list[str]:
    """Weight names of model's Conv2d layers in module order (only `kernel`-sized ones if given)."""
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
            and (kernel is None or tuple(m.kernel_size) == tuple(kernel))]


def app_patterns(model: nn.Module, num_patterns: int = NUM_PATTERNS) -> PatternSet:
    """num_patterns 4-entry 3x3 patterns (centre kept), the most frequent best fits of model's 3x3s."""
    params = dict(model.named_parameters())
    weights = [params[n].detach() for n in _convs(model, (3, 3))[1:]]
    return select_patterns(weights, num_patterns, candidate_patterns((3, 3), 4, keep_centre=True))


def app_config(name: str, model: nn.Module, rate: float, patterns: PatternSet | None = None,
               pointwise_rate: float | None = None) -> list[Group]:
    """The demo paper's pruning groups for app `name` at `rate` (weights before / after);
    pointwise_rate: the 1x1 convs too, that many times fewer (not for style transfer)."""
    model_name = _model_name(name)
    if model_name == "transformer_net":
        if pointwise_rate is not None:
            raise ValueError("style transfer is column pruned; it has no 1x1 convs to prune")
        names = _convs(model)[1:]
        if not names:
            raise ValueError(f"{type(model).__name__} has no convs after its first")
        return [{"tensor": n, "scheme": "column", "rate": float(rate)} for n in names]
    patterns = patterns if patterns is not None else app_patterns(model)
    config = rate_config(model, "pattern_connectivity", float(rate), patterns)
    if pointwise_rate is not None:
        config += pointwise_config(model, float(pointwise_rate))
    return config


def _check_spec(work: Path, spec: dict[str, Any]) -> None:
    """Write spec.json on the first run; ValueError if work_dir holds another spec's run."""
    path = work / "spec.json"
    spec = json.loads(json.dumps(spec))       # tuples -> lists, so it compares with the file
    if not path.exists():
        atomic_write_text(path, json.dumps(spec, indent=1))
        return
    old = json.loads(path.read_text())
    if old != spec:
        diff = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
        raise ValueError(f"{work} holds a run of another pruning spec (differs in {diff}); "
                         "use another work_dir or delete it")


def _dense_phase(model: nn.Module, quality: Quality, work: Path) -> dict[str, Any]:
    """Quality of the dense model, computed once and kept in dense.json."""
    path = work / "dense.json"
    if path.exists():
        return json.loads(path.read_text())
    rec = {"phase": "dense", **quality(model)}
    atomic_write_text(path, json.dumps(rec))
    return rec


class _Converged(Exception):
    """Raised from fit()'s after_step to end the ADMM phase at the residual tolerance."""


@torch.no_grad()
def _projected_quality(model: nn.Module, admm: ADMM, quality: Quality) -> dict[str, Any]:
    """quality of the hard-projected weights; the model's weights are restored afterwards."""
    saved = {n: p.detach().clone() for n, p in admm.params().items()}
    for n, p in admm.params().items():
        p.copy_(admm.schemes_[n].project(p.detach())[0])
    try:
        return quality(model)
    finally:
        for n, p in admm.params().items():
            p.copy_(saved[n])


def _admm_phase(model: nn.Module, admm: ADMM, data: Pairs, loss_fn: LossFn, quality: Quality,
                cfg: TrainConfig, work: Path, update_every: int | None, eval_projected: bool,
                progress: bool) -> tuple[list[dict], list[dict]]:
    """fit with the ADMM penalty, Z/U steps every update_every steps (default once an epoch)."""
    spe = steps_per_epoch(data, cfg.batch_size)
    every = update_every or spe
    ckpt = work / "admm.pt"
    start_epoch, epoch_log = 0, []
    if ckpt.exists():
        start_epoch = int(load_checkpoint(ckpt)["epoch"]) + 1
        state = load_checkpoint(work / f"admm_state_{start_epoch - 1}.pt")
        admm.load_state_dict(state["admm"])
        epoch_log = state["epochs"]
    step = start_epoch * spe

    def after_step(m: nn.Module) -> None:
        nonlocal step
        step += 1
        if step % every == 0:
            admm.step()
        if step % spe:
            return
        epoch = step // spe - 1
        rec: dict[str, Any] = {"epoch": epoch, "iterations": len(admm.history_)}
        if eval_projected:
            rec["projected"] = _projected_quality(m, admm, quality)
        epoch_log.append(rec)
        # Written before fit() writes admm.pt for this epoch; the previous epoch's file is kept,
        # so an interruption between the two writes still resumes consistently.
        save_checkpoint(work / f"admm_state_{epoch}.pt", {"admm": admm.state_dict(), "epochs": epoch_log})
        (work / f"admm_state_{epoch - 2}.pt").unlink(missing_ok=True)
        if admm.converged:
            raise _Converged

    try:
        history = fit(model, data, loss_fn, cfg, checkpoint=ckpt, extra_loss=admm.penalty,
                      after_step=after_step, progress=progress, desc="admm")
    except _Converged:
        history = load_checkpoint(ckpt)["history"] if ckpt.exists() else []
    return history, epoch_log


def _weights(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, int]:
    """Kept and total weights over every conv/linear weight of model (dense tensors count whole)."""
    params = {n: p for n, p in model.named_parameters() if p.ndim > 1}
    kept = sum(int(masks[n].sum()) if n in masks else p.numel() for n, p in params.items())
    return {"weights_total": sum(p.numel() for p in params.values()), "weights_kept": kept}


def _save(path: Path, model: nn.Module, result: PruneResult, extra: dict[str, Any]) -> None:
    """A phase checkpoint: weights, masks, the record so far."""
    # CPU tensors: a run made on the GPU machine loads anywhere
    save_checkpoint(path, {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "masks": {n: m.cpu() for n, m in result.masks.items()},
                           "record": {**result.record(), **extra}})


def _resume(model: nn.Module, path: Path) -> PruneResult:
    """Load weights and the record of projected.pt or final.pt."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    rec = state["record"]
    keep = {"method", "phases", "admm_history", "admm_epochs", "admm_train_history",
            "retrain_history", "seconds"}
    return PruneResult(masks={n: m.bool() for n, m in state["masks"].items()},
                       **{k: v for k, v in rec.items() if k in keep})


def admm_prune_app(model: nn.Module, admm: ADMM, data: Pairs, loss_fn: LossFn, quality: Quality,
                   admm_cfg: TrainConfig, retrain_cfg: TrainConfig, work_dir: str | Path,
                   spec: dict[str, Any] | None = None, update_every: int | None = None,
                   eval_projected: bool = False, progress: bool = True,
                   keep_checkpoints: bool = False) -> PruneResult:
    """ADMM for admm_cfg.epochs (or to admm.tol), hard projection, masked retraining; resumable.

    quality(model) -> {name: number} is recorded for the dense, admm, projected and retrained
    phases (result.phases). spec (JSON-able) names the run; work_dir refuses another spec.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    spec = {**(spec or {}), "admm_cfg": asdict(admm_cfg), "retrain_cfg": asdict(retrain_cfg),
            "update_every": update_every}
    _check_spec(work, spec)
    if (work / "final.pt").exists():
        return _resume(model, work / "final.pt")
    if (work / "projected.pt").exists():
        result = _resume(model, work / "projected.pt")
    else:
        dense = _dense_phase(model, quality, work)
        admm.prepare(model)
        t0 = time.perf_counter()
        hist, epochs = _admm_phase(model, admm, data, loss_fn, quality, admm_cfg, work,
                                   update_every, eval_projected, progress)
        seconds = {"admm": time.perf_counter() - t0}
        phases = [dense, {"phase": "admm", **quality(model)}]
        masks = admm.finalize()
        phases.append({"phase": "projected", **quality(model)})
        result = PruneResult("admm", phases, masks, admm.history_, epochs, hist, seconds=seconds)
        _save(work / "projected.pt", model, result, {"spec": spec})
    t0 = time.perf_counter()
    if retrain_cfg.epochs:
        with MaskedRetraining(model, result.masks) as keep:
            result.retrain_history = fit(model, data, loss_fn, retrain_cfg,
                                         checkpoint=work / "retrain.pt", after_step=keep,
                                         progress=progress, desc="retrain")
    result.seconds["retrain"] = time.perf_counter() - t0
    result.phases.append({"phase": "retrained", **quality(model)})
    _save(work / "final.pt", model, result, {"spec": spec, **_weights(model, result.masks)})
    if not keep_checkpoints:
        # final.pt holds all a rerun needs; optimiser state and Z, U are several model sizes.
        for f in [work / "admm.pt", work / "projected.pt", work / "retrain.pt",
                  *work.glob("admm_state_*.pt")]:
            f.unlink(missing_ok=True)
    return result


def prune_app(name: str, model: nn.Module, rate: float, data: Pairs, loss_fn: LossFn,
              quality: Quality, work_dir: str | Path, admm_cfg: TrainConfig | None = None,
              retrain_cfg: TrainConfig | None = None, rho: float = 1e-3, rho_growth: float = 1.5,
              rho_max: float = 1.0, patterns: PatternSet | None = None,
              pointwise_rate: float | None = None, **kwargs: Any) -> PruneResult:
    """Prune app `name`'s trained model `rate` times with app_config; admm_prune_app's result.

    The ADMM and retraining configs default to the app's training config (retraining at half its
    learning rate, another seed); kwargs go to admm_prune_app (update_every, progress, ...).
    """
    model_name = _model_name(name)
    admm_cfg = admm_cfg if admm_cfg is not None else APP_TRAIN[model_name]
    if retrain_cfg is None:
        retrain_cfg = replace(admm_cfg, lr=admm_cfg.lr / 2, seed=admm_cfg.seed + 1)
    config = app_config(model_name, model, rate, patterns, pointwise_rate)
    # rho defaults 10x below ADMM's: the apps' L1 and relative style losses are ~0.01-1, an
    # order of magnitude below a classifier's cross-entropy, and the penalty must not swamp them.
    admm = ADMM(config, rho=rho, rho_growth=rho_growth, rho_max=rho_max)
    spec = {"app": model_name, "rate": float(rate), "rho": rho, "rho_growth": rho_growth,
            "rho_max": rho_max, "tensors": [g["tensor"] for g in config],
            "schemes": sorted({_scheme_name(g) for g in config}),
            # The patterns come from the dense weights: another dense model is another run.
            "patterns": _taps(config[0].get("patterns"))}
    if pointwise_rate is not None:      # absent otherwise: runs made before it stay valid
        spec["pointwise_rate"] = float(pointwise_rate)
    return admm_prune_app(model, admm, data, loss_fn, quality, admm_cfg, retrain_cfg, work_dir,
                          spec=spec, **kwargs)


def _taps(patterns: PatternSet | None) -> list[list[int]] | None:
    """A PatternSet's patterns as lists of taps (JSON-able), or None."""
    return None if patterns is None else [list(p) for p in patterns.patterns]


def _scheme_name(group: Group) -> str:
    """The scheme name of a config group (a name, or a Scheme object's .name)."""
    s = group["scheme"]
    return s if isinstance(s, str) else s.name

