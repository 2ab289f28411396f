"""Training and evaluation: seeded, tqdm progress, resumable checkpoints, CUDA when present.

Checkpoints hold only tensors and plain Python values, so they load with
`torch.load(path, weights_only=True)`; they are written to a temporary file and renamed, so an
interrupted run never leaves half a checkpoint. `train(..., checkpoint=path)` resumes from `path`
when it exists and continues with the same batches it would have seen uninterrupted.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from workbench.data import make_loader

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule, batch size, seed, device ('auto' picks CUDA if present)."""
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"        # "sgd" (Nesterov) or "adam"
    schedule: str = "onecycle"    # "onecycle", "cosine" or "constant"
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True              # bf16 autocast, on CUDA only
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be 'onecycle', 'cosine' or 'constant', got {self.schedule!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"need epochs >= 0, batch_size >= 1, lr > 0: {self}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a dict, ignoring keys this class does not have."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy."""
    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or Adam; no weight decay on biases and norm weights (1-D)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-step learning-rate schedule over cfg.epochs epochs."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=0.15, div_factor=10.0,
                                                   final_div_factor=100.0)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _loader(data: Dataset | Batches, batch_size: int, shuffle: bool, device: torch.device,
            seed: int) -> Batches:
    """A batch iterable for `data`: datasets get a seeded loader, iterables pass through."""
    if isinstance(data, Dataset):
        return make_loader(data, batch_size, shuffle=shuffle, device=device, seed=seed)
    return data


def _set_epoch(loader: Batches, epoch: int) -> None:
    """Make the loader's shuffle/augmentation depend on the epoch (BatchLoader, DataLoader)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    elif isinstance(loader, torch.utils.data.DataLoader) and loader.generator is not None:
        # seed + epoch from the seed the loader was made with: manual_seed changes
        # initial_seed(), so reading it back each epoch would drift (s, s+1, s+3, ...) and a
        # resumed run (fresh loader) would see other batches than an uninterrupted one
        if not hasattr(loader, "_wb_base_seed"):
            loader._wb_base_seed = loader.generator.initial_seed()
        loader.generator.manual_seed(loader._wb_base_seed + epoch)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset | Batches, device: str | torch.device = "auto",
             batch_size: int = 1000, amp: bool = True) -> dict[str, float]:
    """Mean cross-entropy loss and top-1 accuracy (fraction in [0, 1]) of model on data."""
    dev = resolve_device(device)
    model = model.to(dev)
    was_training = model.training
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in _loader(data, batch_size, False, dev, 0):
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with torch.autocast("cuda", torch.bfloat16, enabled=amp and dev.type == "cuda"):
            out = model(x)
        loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    if total == 0:
        raise ValueError("evaluate: the data set is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total}


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save `state` (tensors and plain values only) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with weights_only=True (no arbitrary unpickling)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def train(model: nn.Module, train_data: Dataset | Batches, val_data: Dataset | Batches | None,
          cfg: TrainConfig, checkpoint: str | Path | None = None,
          extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
          after_step: Callable[[nn.Module], None] | None = None,
          progress: bool = True, desc: str = "train") -> list[dict]:
    """Train `model` in place for cfg.epochs; returns the per-epoch history (losses, accuracies, lr).

    extra_loss(model) is added to the data loss (ADMM's proximal term uses it); after_step(model)
    runs after every optimiser step (masked retraining re-applies its masks there). With
    `checkpoint`, the state is saved after every epoch and a run resumes from it.
    """
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest
    loader = _loader(train_data, cfg.batch_size, True, dev, cfg.seed)
    steps = len(loader)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, steps)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=dev)
        if state.get("config") != asdict(cfg):
            raise ValueError(f"{checkpoint} was written by another configuration "
                             f"({state.get('config')}); delete it or pass the same config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history, start = state["history"], state["epoch"] + 1
    crit = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=not progress, unit="epoch",
               initial=start, total=cfg.epochs)
    for epoch in bar:
        model.train()
        _set_epoch(loader, epoch)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", torch.bfloat16, enabled=cfg.amp and dev.type == "cuda"):
                out = model(x)
                loss = crit(out.float(), y)
            total = loss + extra_loss(model) if extra_loss is not None else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step(model)
            # Accumulate on the device: a .item() per step would stall the GPU.
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
        rec = {"epoch": epoch, "train_loss": loss_sum.item() / max(seen, 1),
               "train_acc": correct.item() / max(seen, 1), "lr": opt.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        if val_data is not None:
            ev = evaluate(model, val_data, dev, cfg.eval_batch_size, cfg.amp)
            rec.update(val_loss=ev["loss"], val_acc=ev["accuracy"])
        history.append(rec)
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", val_acc=f"{rec.get('val_acc', float('nan')):.3f}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                "epoch": epoch, "history": history, "config": asdict(cfg)})
    return history
