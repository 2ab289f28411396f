"""Teacher-student pre-training of tuning blocks (report section 2.2, Figure 10 a-b).

The trained full model is the teacher. The multiplexing model in 'pretrain' mode runs it, frozen
and in eval mode, and beside it every pruned tuning block: each block reads the teacher's input
to its first module and is trained to reproduce the teacher's output of its last module. All
blocks learn in the same pass over the data (one teacher forward feeds them all); activations are
computed per batch and dropped, never stored. Each block starts from its L1-pruned full weights.

The loss of a block is its mean squared error divided by the mean square of the teacher's
activation, so blocks deep and shallow get comparable step sizes; blocks share no parameters, so
summing the losses trains each one on its own loss.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from workbench.data import ArrayDataset, BatchLoader
from workbench.train import load_checkpoint, resolve_device, save_checkpoint, seed_everything
from workbench.tune.filter_pruning import l1_prune
from workbench.tune.network import GraphNet

BlockSpec = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training budget: epochs over the training set, Adam with a cosine schedule."""
    epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    device: str = "auto"
    amp: bool = True   # bf16 autocast, on CUDA only
    seed: int = 0


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def block_model(mux: ModuleType, net: GraphNet, teacher: dict[str, torch.Tensor],
                blocks: list[BlockSpec]) -> nn.Module:
    """MultiplexNet('pretrain') with the teacher's weights and each block's L1-pruned weights."""
    model = mux.MultiplexNet("pretrain", {"blocks": blocks})
    model.layers.load_state_dict({k[len("layers."):]: v for k, v in teacher.items()})
    for i, spec in enumerate(blocks):
        pruned = l1_prune(net, teacher, dict(spec))
        own = model.blocks[i].state_dict()
        model.blocks[i].load_state_dict({k: pruned["layers." + k] for k in own})
    return model


def pretrain_blocks(mux: ModuleType, net: GraphNet, teacher: dict[str, torch.Tensor],
                    blocks: list[BlockSpec], train_data: ArrayDataset, cfg: PretrainConfig,
                    checkpoint: str | Path | None = None) -> tuple[list[dict[str, torch.Tensor]], dict]:
    """Pre-train all `blocks` concurrently; returns each block's state dict (keys
    '<ident>.<param>', CPU) and a record {seconds, loss: per epoch per block, config}."""
    if not blocks:  # nothing recurs: no block to pre-train, no time spent
        return [], {"seconds": 0.0, "loss": [], "config": asdict(cfg), "blocks": []}
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model = block_model(mux, net, teacher, blocks).to(dev)
    params = list(model.blocks.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    loader = BatchLoader(train_data, cfg.batch_size, shuffle=True, device=dev, seed=cfg.seed,
                         drop_last=len(train_data) >= 2 * cfg.batch_size)
    total = max(1, cfg.epochs * len(loader))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    losses: list[list[float]] = []
    seconds, start = 0.0, 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=dev)
        if state["config"] != asdict(cfg) or state["blocks"] != [list(map(list, b)) for b in blocks]:
            raise ValueError(f"{checkpoint} was written for other blocks or settings; delete it")
        model.blocks.load_state_dict(state["blocks_state"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        losses, seconds, start = state["losses"], state["seconds"], state["epoch"] + 1
    for epoch in range(start, cfg.epochs):
        model.train()
        model.layers.eval()  # the teacher's batch norm keeps its running statistics
        loader.set_epoch(epoch)
        _sync(dev)
        t0 = time.perf_counter()
        sums = torch.zeros(len(blocks), device=dev)
        for x, _ in loader:
            with torch.autocast("cuda", torch.bfloat16, enabled=cfg.amp and dev.type == "cuda"):
                _, pairs = model(x)
            per_block = torch.stack([
                nn.functional.mse_loss(s.float(), t.float()) / t.float().pow(2).mean().clamp_min(1e-8)
                for s, t in pairs])
            opt.zero_grad(set_to_none=True)
            per_block.sum().backward()
            opt.step()
            sched.step()
            sums += per_block.detach()
        _sync(dev)
        seconds += time.perf_counter() - t0
        losses.append((sums / max(1, len(loader))).tolist())
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "blocks_state": model.blocks.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "epoch": epoch, "losses": losses,
                "seconds": seconds, "config": asdict(cfg),
                "blocks": [list(map(list, b)) for b in blocks]})
    states = [{k: v.detach().cpu().clone() for k, v in b.state_dict().items()} for b in model.blocks]
    return states, {"seconds": seconds, "loss": losses, "config": asdict(cfg),
                    "blocks": [list(map(list, b)) for b in blocks]}
