"""Assembly of block-trained networks and global fine-tuning (report section 2.2, Figure 10 c-d).

Assembly only initialises a pruned network: every module starts from its L1-pruned full weights
(the default network), then the modules covered by the network's tuning blocks (its composite
vector) take the pre-trained blocks' weights. Fine-tuning is a lean loop over batches built on the
training device (workbench.data.BatchLoader: data as tensors there, crops and flips there too),
SGD with Nesterov momentum and a cosine schedule over the whole budget, bf16 autocast on CUDA.

Time to target (as in Wootz, where each network trains until it reaches the accuracy target): the
budget `epochs` is a cap, and the validation accuracy is measured before the first step and
`evals_per_epoch` times per epoch (the last at the end of the budget). Each point of the curve is
(step, seconds, accuracy), seconds counted from the start of fine-tuning *including* every
evaluation so far (the initial one too): evaluating is part of the real procedure, since a run that
stops at the target has to measure it. A run that stops at its first evaluation at or above a
target would have made exactly the same steps up to there (the schedule depends on the budget
only), so one run over the whole budget gives the cost for every target (explore.at_target).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from types import ModuleType

import torch
from torch import nn

from workbench.data import ArrayDataset, BatchLoader
from workbench.train import evaluate, resolve_device, seed_everything
from workbench.tune.filter_pruning import l1_prune
from workbench.tune.network import GraphNet
from workbench.tune.pretrain import BlockSpec


@dataclass(frozen=True)
class FinetuneConfig:
    """Global fine-tuning: budget cap (epochs), optimiser, and evaluations per epoch (>= 1)."""
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    evals_per_epoch: int = 4
    eval_batch_size: int = 1000


def assemble(mux: ModuleType, net: GraphNet, full: dict[str, torch.Tensor],
             rates: dict[str, float],
             blocks: list[tuple[BlockSpec, dict[str, torch.Tensor]]] = ()) -> nn.Module:
    """MultiplexNet('finetune') at `rates`: L1-pruned full weights, overwritten by the given
    pre-trained blocks (spec, state with keys '<ident>.<param>'); no blocks = default network."""
    state = l1_prune(net, full, rates)
    for spec, block_state in blocks:
        for module, rate in spec:
            if abs(rates.get(module, 0.0) - rate) > 1e-9:
                raise ValueError(f"block {spec} prunes {module!r} at {rate}, the network at "
                                 f"{rates.get(module, 0.0)}")
        for k, v in block_state.items():
            if "layers." + k not in state or state["layers." + k].shape != v.shape:
                raise ValueError(f"block {spec}: {k} does not fit the network")
            state["layers." + k] = v
    model = mux.MultiplexNet("finetune", {"rates": rates})
    model.load_state_dict(state)
    return model


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def eval_steps(steps_per_epoch: int, epochs: int, evals_per_epoch: int) -> list[int]:
    """Steps after which to evaluate: evals_per_epoch evenly spaced per epoch, the last = total."""
    if evals_per_epoch < 1:
        raise ValueError(f"evals_per_epoch must be >= 1 (time to target needs a curve), "
                         f"got {evals_per_epoch}")
    k = min(evals_per_epoch, steps_per_epoch)
    return sorted({e * steps_per_epoch + max(1, round(steps_per_epoch * (i + 1) / k))
                   for e in range(epochs) for i in range(k)})


def finetune(model: nn.Module, train_data: ArrayDataset, val_data: ArrayDataset,
             cfg: FinetuneConfig) -> dict:
    """Fine-tune `model` in place for the whole budget; returns {init_acc, final_acc,
    curve [(step, seconds incl. evaluations, accuracy)], steps, steps_per_epoch, train_seconds,
    eval_seconds, seconds (= the last point's), config}."""
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    val = BatchLoader(val_data, cfg.eval_batch_size, device=dev)
    loader = BatchLoader(train_data, cfg.batch_size, shuffle=True, device=dev, seed=cfg.seed,
                         drop_last=len(train_data) >= 2 * cfg.batch_size)
    steps_per_epoch = len(loader)
    marks = set(eval_steps(steps_per_epoch, cfg.epochs, cfg.evals_per_epoch))
    total = max(1, cfg.epochs * steps_per_epoch)
    timing = {"train": 0.0, "eval": 0.0}
    curve: list[tuple[int, float, float]] = []

    def measure(step: int) -> None:
        _sync(dev)
        t0 = time.perf_counter()
        acc = evaluate(model, val, dev, amp=cfg.amp)["accuracy"]
        timing["eval"] += time.perf_counter() - t0
        curve.append((step, timing["train"] + timing["eval"], acc))
        model.train()

    measure(0)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": rest, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    crit = nn.CrossEntropyLoss()
    step = 0
    for epoch in range(cfg.epochs):
        loader.set_epoch(epoch)
        model.train()
        _sync(dev)
        t0 = time.perf_counter()
        for x, y in loader:
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", torch.bfloat16, enabled=cfg.amp and dev.type == "cuda"):
                loss = crit(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step in marks:
                _sync(dev)
                timing["train"] += time.perf_counter() - t0
                measure(step)
                t0 = time.perf_counter()
        _sync(dev)
        timing["train"] += time.perf_counter() - t0
    if curve[-1][0] != step:  # an empty budget (epochs = 0) still ends with a measurement
        measure(step)
    return {"init_acc": curve[0][2], "final_acc": curve[-1][2], "curve": curve, "steps": step,
            "steps_per_epoch": steps_per_epoch, "train_seconds": timing["train"],
            "eval_seconds": timing["eval"], "seconds": curve[-1][1], "config": asdict(cfg)}
