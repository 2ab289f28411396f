"""Prune a trained model end to end: ADMM or one-shot, hard projection, masked retraining.

    admm_prune     dense -> ADMM (loss + penalty, Z/U steps once per epoch or every k steps)
                   -> hard projection -> masked retraining
    oneshot_prune  dense -> magnitude projection -> masked retraining (give it the ADMM and
                   retraining epochs together for an equal-budget baseline)

Every phase checkpoints into `work_dir` and a rerun resumes where it stopped:

    dense.json           accuracy of the dense model (before anything changed it)
    admm.pt              train()'s checkpoint of the ADMM phase (model, optimiser, schedule)
    admm_state_<e>.pt    ADMM's Z, U, rho, residuals and projected accuracy after epoch e
    projected.pt         weights after the hard projection, masks, phases so far
    retrain.pt           train()'s checkpoint of masked retraining
    final.pt             retrained weights, masks and the whole record

All are torch files of tensors and plain values (load with weights_only=True). Once final.pt is
written the others are deleted (keep_checkpoints=True keeps them). A work_dir must be used with
one configuration only: train() refuses to resume a checkpoint of another config.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.provenance import atomic_write_text
from workbench.pruning.admm import ADMM
from workbench.pruning.masks import MaskedRetraining, compression, mask_stats
from workbench.pruning.sparsifier import Sparsifier
from workbench.train import (TrainConfig, evaluate, load_checkpoint, resolve_device,
                             save_checkpoint, train)


@dataclass
class PruneResult:
    """Outcome of one pruning run: accuracy per phase, residuals, histories, masks, compression."""
    method: str
    phases: list[dict[str, Any]]
    masks: dict[str, torch.Tensor]
    admm_history: list[dict[str, float]] = field(default_factory=list)
    admm_epochs: list[dict[str, Any]] = field(default_factory=list)
    admm_train_history: list[dict[str, Any]] = field(default_factory=list)
    retrain_history: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        """Weights before / after over the pruned tensors."""
        return compression(self.masks)

    def accuracy(self, phase: str, split: str = "test") -> float:
        """Accuracy (fraction) of `split` ('val' or 'test') after `phase`."""
        for p in self.phases:
            if p["phase"] == phase:
                return p[f"{split}_acc"]
        raise KeyError(f"no phase {phase!r}; have {[p['phase'] for p in self.phases]}")

    def record(self) -> dict[str, Any]:
        """Everything but the masks, as plain values (JSON-ready)."""
        d = {k: v for k, v in asdict(self).items() if k != "masks"}
        d.update(compression=self.compression, layers=mask_stats(self.masks))
        return d


def _evaluate(model: nn.Module, phase: str, val: Any, test: Any, device: str) -> dict[str, Any]:
    v = evaluate(model, val, device)
    t = evaluate(model, test, device)
    return {"phase": phase, "val_acc": v["accuracy"], "val_loss": v["loss"],
            "test_acc": t["accuracy"], "test_loss": t["loss"]}


def _dense_phase(model: nn.Module, val: Any, test: Any, device: str, work: Path) -> dict:
    path = work / "dense.json"
    if path.exists():
        return json.loads(path.read_text())
    rec = _evaluate(model, "dense", val, test, device)
    atomic_write_text(path, json.dumps(rec))
    return rec


def _steps_per_epoch(train_data: Any, batch_size: int) -> int:
    return -(-len(train_data) // batch_size) if isinstance(train_data, torch.utils.data.Dataset) \
        else len(train_data)


class _Converged(Exception):
    """Raised from train()'s after_step to end the ADMM phase at the residual tolerance."""


def _run_admm_phase(model: nn.Module, admm: ADMM, train_data: Any, val_data: Any, cfg: TrainConfig,
                    work: Path, update_every: int | None, eval_projected: bool,
                    progress: bool) -> tuple[list[dict], list[dict]]:
    """Train with the ADMM penalty, Z/U steps as scheduled; returns (train history, epoch log)."""
    spe = _steps_per_epoch(train_data, cfg.batch_size)
    every = update_every or spe
    ckpt = work / "admm.pt"
    start_epoch, epoch_log = 0, []
    if ckpt.exists():
        start_epoch = int(load_checkpoint(ckpt)["epoch"]) + 1
        state = torch.load(work / f"admm_state_{start_epoch - 1}.pt", weights_only=True)
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
            rec["projected_val_acc"] = _projected_accuracy(m, admm, val_data, cfg.device)
        epoch_log.append(rec)
        # Saved before train() writes admm.pt for this epoch; the previous epoch's file is kept
        # so an interruption between the two writes still resumes consistently.
        save_checkpoint(work / f"admm_state_{epoch}.pt",
                        {"admm": admm.state_dict(), "epochs": epoch_log})
        old = work / f"admm_state_{epoch - 2}.pt"
        if old.exists():
            old.unlink()
        if admm.converged:
            raise _Converged

    try:
        history = train(model, train_data, val_data, cfg, checkpoint=ckpt, extra_loss=admm.penalty,
                        after_step=after_step, progress=progress, desc="admm")
    except _Converged:
        history = load_checkpoint(ckpt)["history"] if ckpt.exists() else []
    return history, epoch_log


@torch.no_grad()
def _projected_accuracy(model: nn.Module, admm: ADMM, val_data: Any, device: str) -> float:
    """Validation accuracy of the hard-projected weights; the model is restored afterwards."""
    saved = {n: p.detach().clone() for n, p in admm.params().items()}
    for n, p in admm.params().items():
        p.copy_(admm.schemes_[n].project(p.detach())[0])
    acc = evaluate(model, val_data, device)["accuracy"]
    for n, p in admm.params().items():
        p.copy_(saved[n])
    return acc


def _retrain_phase(model: nn.Module, masks: dict[str, torch.Tensor], train_data: Any,
                   val_data: Any, cfg: TrainConfig, work: Path, progress: bool) -> list[dict]:
    if cfg.epochs == 0:
        return []
    with MaskedRetraining(model, masks) as keep:
        return train(model, train_data, val_data, cfg, checkpoint=work / "retrain.pt",
                     after_step=keep, progress=progress, desc="retrain")


def _finish(model: nn.Module, result: PruneResult, train_data: Any, val_data: Any, test_data: Any,
            retrain: TrainConfig, work: Path, progress: bool, keep: bool) -> PruneResult:
    """Masked retraining from projected.pt's state, then final.pt (and, unless keep, nothing else)."""
    t0 = time.perf_counter()
    result.retrain_history = _retrain_phase(model, result.masks, train_data, val_data, retrain,
                                            work, progress)
    result.seconds["retrain"] = time.perf_counter() - t0
    result.phases.append(_evaluate(model, "retrained", val_data, test_data, retrain.device))
    save_checkpoint(work / "final.pt", {"model": model.state_dict(),
                                        "masks": {n: m.cpu() for n, m in result.masks.items()},
                                        "record": result.record()})
    if not keep:
        # final.pt holds everything a rerun needs; the phase checkpoints (optimiser state, Z and
        # U) are several times the model's size.
        for f in [work / "admm.pt", work / "projected.pt", work / "retrain.pt",
                  *work.glob("admm_state_*.pt")]:
            f.unlink(missing_ok=True)
    return result


def _resume(model: nn.Module, path: Path) -> PruneResult:
    """Load weights and the record of a phase checkpoint (projected.pt or final.pt)."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    rec = state["record"]
    keep = {"method", "phases", "admm_history", "admm_epochs", "admm_train_history",
            "retrain_history", "seconds"}
    return PruneResult(masks={n: m.bool() for n, m in state["masks"].items()},
                       **{k: v for k, v in rec.items() if k in keep})


def admm_prune(model: nn.Module, admm: ADMM, train_data: Any, val_data: Any, test_data: Any,
               admm_cfg: TrainConfig, retrain_cfg: TrainConfig, work_dir: str | Path,
               update_every: int | None = None, eval_projected: bool = True,
               progress: bool = True, keep_checkpoints: bool = False) -> PruneResult:
    """ADMM for admm_cfg.epochs (or until admm.tol), hard projection, masked retraining; resumable."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if (work / "final.pt").exists():
        return _resume(model, work / "final.pt")
    if (work / "projected.pt").exists():
        result = _resume(model, work / "projected.pt")
    else:
        dense = _dense_phase(model, val_data, test_data, admm_cfg.device, work)
        admm.prepare(model)
        t0 = time.perf_counter()
        hist, epochs = _run_admm_phase(model, admm, train_data, val_data, admm_cfg, work,
                                       update_every, eval_projected, progress)
        seconds = {"admm": time.perf_counter() - t0}
        phases = [dense, _evaluate(model, "admm", val_data, test_data, admm_cfg.device)]
        masks = admm.finalize()
        phases.append(_evaluate(model, "projected", val_data, test_data, admm_cfg.device))
        result = PruneResult("admm", phases, masks, admm.history_, epochs, hist, seconds=seconds)
        save_checkpoint(work / "projected.pt", {"model": model.state_dict(),
                                                "masks": {n: m.cpu() for n, m in masks.items()},
                                                "record": result.record()})
    model.to(resolve_device(retrain_cfg.device))
    return _finish(model, result, train_data, val_data, test_data, retrain_cfg, work, progress,
                   keep_checkpoints)


def oneshot_prune(model: nn.Module, sparsifier: Sparsifier, train_data: Any, val_data: Any,
                  test_data: Any, retrain_cfg: TrainConfig, work_dir: str | Path,
                  progress: bool = True, keep_checkpoints: bool = False) -> PruneResult:
    """Magnitude projection of the trained weights, then masked retraining; resumable."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if (work / "final.pt").exists():
        return _resume(model, work / "final.pt")
    if (work / "projected.pt").exists():
        result = _resume(model, work / "projected.pt")
    else:
        dense = _dense_phase(model, val_data, test_data, retrain_cfg.device, work)
        masks = sparsifier.prepare(model).step()
        phases = [dense, _evaluate(model, "projected", val_data, test_data, retrain_cfg.device)]
        result = PruneResult("oneshot", phases, masks)
        save_checkpoint(work / "projected.pt", {"model": model.state_dict(),
                                                "masks": {n: m.cpu() for n, m in masks.items()},
                                                "record": result.record()})
    return _finish(model, result, train_data, val_data, test_data, retrain_cfg, work, progress,
                   keep_checkpoints)
