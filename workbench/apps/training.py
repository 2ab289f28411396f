"""Image-to-image training: `fit` a model on (input, target) pairs with any loss; `evaluate` means.

`workbench.train.train` is the classification loop (cross-entropy, accuracy); the apps need the
same loop with their own loss (L1 for super resolution and coloring, style + content for style
transfer), so `fit` reuses its pieces (TrainConfig, make_optimizer, make_scheduler, seeding,
atomic weights_only checkpoints) and keeps its contract:

- seeded: cfg.seed seeds torch and numpy; a Dataset is shuffled by a generator seeded with
  (cfg.seed, epoch), so every epoch's batches are fixed by the seed, and a run resumed from its
  checkpoint sees the same batches as one that never stopped;
- cfg.device = 'auto' trains on CUDA when present (bf16 autocast when cfg.amp; the loss is taken
  in float32); `evaluate` and `predict` always run in float32, since PSNR differences of a tenth
  of a dB are below bf16's resolution;
- with `checkpoint`, the model, optimiser, schedule, RNG state and history are saved after every
  epoch, and a checkpoint written under another TrainConfig is refused.

Data is a Dataset of (input, target) tensor pairs, or a re-iterable of (input, target) batches
with a length (a list of batches; a loader with `set_epoch(e)` is told the epoch).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from workbench.train import (TrainConfig, load_checkpoint, make_optimizer, make_scheduler,
                             resolve_device, save_checkpoint, seed_everything)

Batch = tuple[torch.Tensor, torch.Tensor]
Pairs = Dataset | Iterable[Batch]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]    # (output, target) -> scalar
Metric = Callable[[torch.Tensor, torch.Tensor], float | torch.Tensor]  # batch mean of one number


def epoch_batches(data: Pairs, batch_size: int, shuffle: bool, seed: int, epoch: int) -> Iterable[Batch]:
    """The batches of one epoch: a Dataset in an order seeded by (seed, epoch); iterables as they are."""
    if isinstance(data, Dataset):
        # A fresh generator per epoch, so the order depends on (seed, epoch) only and not on how
        # many epochs this process has already run (train._set_epoch reseeds from initial_seed(),
        # which manual_seed itself moves, so its DataLoader orders drift from epoch 2 on).
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen)
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    return data


def steps_per_epoch(data: Pairs, batch_size: int) -> int:
    """Optimiser steps in one epoch over data (ceil(len / batch_size) for a Dataset)."""
    if isinstance(data, Dataset):
        return -(-len(data) // batch_size)
    if not hasattr(data, "__len__"):
        raise TypeError(f"data of type {type(data).__name__} has no length; pass a Dataset or a "
                        "list of (input, target) batches (the schedule needs the steps per epoch)")
    return len(data)


def _check_checkpoint(state: dict, cfg: TrainConfig, path: Path) -> None:
    """ValueError unless the checkpoint at path was written by fit under the same config."""
    if state.get("config") != asdict(cfg):
        raise ValueError(f"{path} was written by another configuration ({state.get('config')}); "
                         f"this run has {asdict(cfg)}; delete it or pass the same config")
    missing = {"model", "optimizer", "scheduler", "rng", "epoch", "history"} - set(state)
    if missing:
        raise ValueError(f"{path} is not a fit() checkpoint: it lacks {sorted(missing)}")


def fit(model: nn.Module, data: Pairs, loss_fn: LossFn, cfg: TrainConfig,
        checkpoint: str | Path | None = None,
        extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
        after_step: Callable[[nn.Module], None] | None = None, progress: bool = True,
        desc: str = "fit") -> list[dict]:
    """Train model in place for cfg.epochs on (input, target) pairs; returns the per-epoch history.

    loss_fn(model(input), target) is the data loss (an nn.Module loss moves to the device with
    the model); extra_loss(model) is added to it (ADMM's penalty) and after_step(model) runs after
    every optimiser step (masked retraining). History rows: epoch, train_loss (mean data loss),
    extra_loss (mean, when given), lr, seconds.
    """
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(dev)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its fastest
    steps = steps_per_epoch(data, cfg.batch_size)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, steps)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=dev)
        _check_checkpoint(state, cfg, Path(checkpoint))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())
        if dev.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        history, start = state["history"], state["epoch"] + 1
    amp = cfg.amp and dev.type == "cuda"
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=not progress, unit="epoch",
               initial=start, total=cfg.epochs)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        # Sums stay on the device: a .item() per step would stall the GPU.
        loss_sum = torch.zeros((), device=dev)
        extra_sum = torch.zeros((), device=dev)
        seen = 0
        for x, y in epoch_batches(data, cfg.batch_size, True, cfg.seed, epoch):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", torch.bfloat16, enabled=amp):
                out = model(x)
            loss = loss_fn(out.float(), y)
            total = loss
            if extra_loss is not None:
                extra = extra_loss(model)
                total = loss + extra
                extra_sum += extra.detach() * len(x)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step(model)
            loss_sum += loss.detach() * len(x)
            seen += len(x)
        rec = {"epoch": epoch, "train_loss": loss_sum.item() / max(seen, 1),
               "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        if extra_loss is not None:
            rec["extra_loss"] = extra_sum.item() / max(seen, 1)
        history.append(rec)
        bar.set_postfix(loss=f"{rec['train_loss']:.4g}")
        if checkpoint is not None:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                     "epoch": epoch, "history": history, "config": asdict(cfg)}
            if dev.type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state()
            save_checkpoint(checkpoint, state)
    return history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: str | torch.device = "auto") -> torch.Tensor:
    """model(x) in eval mode, float32, no gradient, on `device`; the result is on x's device."""
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    try:
        return model(x.to(dev)).float().to(x.device)
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, data: Pairs, metrics: dict[str, Metric],
             device: str | torch.device = "auto", batch_size: int = 16) -> dict[str, float]:
    """Mean of each metric(model(input), target) over data, weighted by batch size (float32, eval)."""
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    for m in metrics.values():
        if isinstance(m, nn.Module):
            m.to(dev)
    sums = dict.fromkeys(metrics, 0.0)
    seen = 0
    try:
        for x, y in epoch_batches(data, batch_size, False, 0, 0):
            x, y = x.to(dev), y.to(dev)
            out = model(x).float()
            for name, metric in metrics.items():
                sums[name] += float(metric(out, y)) * len(x)
            seen += len(x)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the data set is empty")
    return {name: s / seen for name, s in sums.items()}
