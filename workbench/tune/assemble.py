"""Assembly of block-trained networks and global fine-tuning (report section 2.2, Figure 10 c-d).

Assembly only initialises a pruned network: every module starts from its L1-pruned full weights
(the default network), then the modules covered by the network's tuning blocks (its composite
vector) take the pre-trained blocks' weights. Fine-tuning is a lean loop over batches built on the
training device (workbench.data.BatchLoader: data as tensors there, crops and flips there too),
SGD with Nesterov momentum and a cosine schedule, bf16 autocast on CUDA; it records the
validation accuracy before the first step, after the last and, if asked, several times per epoch,
so curves can be plotted. Time is measured for the training steps and the final evaluation only;
the extra evaluations for curves are not counted.
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
    """Global fine-tuning budget and optimiser; evals_per_epoch > 0 records a curve."""
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    evals_per_epoch: int = 0
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


def finetune(model: nn.Module, train_data: ArrayDataset, val_data: ArrayDataset,
             cfg: FinetuneConfig) -> dict:
    """Fine-tune `model` in place; returns {init_acc, final_acc, curve [(step, acc)], steps,
    train_seconds, eval_seconds, seconds (= train + final eval), config}."""
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    val = BatchLoader(val_data, cfg.eval_batch_size, device=dev)

    def acc() -> float:
        return evaluate(model, val, dev, amp=cfg.amp)["accuracy"]

    curve = [(0, acc())]
    loader = BatchLoader(train_data, cfg.batch_size, shuffle=True, device=dev, seed=cfg.seed,
                         drop_last=len(train_data) >= 2 * cfg.batch_size)
    steps_per_epoch = len(loader)
    total = max(1, cfg.epochs * steps_per_epoch)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": rest, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    marks = set()
    if cfg.evals_per_epoch > 0:
        marks = {max(1, round(steps_per_epoch * (i + 1) / cfg.evals_per_epoch)) + e * steps_per_epoch
                 for e in range(cfg.epochs) for i in range(cfg.evals_per_epoch)}
    crit = nn.CrossEntropyLoss()
    step, train_seconds = 0, 0.0
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
            if step in marks and step != total:
                _sync(dev)
                train_seconds += time.perf_counter() - t0
                curve.append((step, acc()))
                model.train()
                t0 = time.perf_counter()
        _sync(dev)
        train_seconds += time.perf_counter() - t0
    t0 = time.perf_counter()
    final = acc()
    eval_seconds = time.perf_counter() - t0
    curve.append((step, final))
    return {"init_acc": curve[0][1], "final_acc": final, "curve": curve, "steps": step,
            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "seconds": train_seconds + eval_seconds, "config": asdict(cfg)}
