"""Masks of a pruned model: keep them during retraining, count what they keep, save and load them.

Masked retraining plugs into workbench.train.train:

    with MaskedRetraining(model, masks) as keep:
        train(model, data.train, data.val, cfg, after_step=keep)

Inside the block each masked parameter's gradient is multiplied by its mask (so momentum and
Adam moments of pruned weights stay zero), and `keep(model)` re-zeroes the pruned weights after
every optimiser step (weight decay and numerical drift cannot revive them).

Saved format (`save_pruned`): a workbench.weights file (`<stem>.npz`, read without pickle; split
into `<stem>.partN.npz` shards of at most 15 MB raw only for very large models). Each masked
tensor is stored as its kept values only, `kept/<name>` (1-D, row-major order of W[mask]), and
its mask as packed bits, `bits/<name>` (np.packbits of the flattened bool mask, uint8); every
other state-dict tensor is stored under its own name. Floating tensors are fp16 by default. The
JSON metadata holds "pruned": {"format": "workbench-pruned", "version": 1,
"masks": {name: shape}, "model": {"name", "num_classes", "input_size", "in_channels"} (optional),
plus caller metadata}. An 8x-pruned VGG-16 is about 5 MB. `load_pruned` returns (state dict,
masks, metadata) with pruned weights exactly zero; `load_pruned_model` also rebuilds the model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.weights import load_state, read_meta, save_state

FORMAT = "workbench-pruned"
VERSION = 1


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights of `model` in place: W *= mask for every named mask."""
    params = dict(model.named_parameters())
    missing = [n for n in masks if n not in params]
    if missing:
        raise KeyError(f"masks name parameters the model does not have: {missing[:5]}")
    for name, m in masks.items():
        p = params[name]
        if tuple(m.shape) != tuple(p.shape):
            raise ValueError(f"mask of {name} has shape {tuple(m.shape)}, weight {tuple(p.shape)}")
        p.mul_(m.to(device=p.device, dtype=p.dtype))


class MaskedRetraining:
    """Context manager that masks gradients (via tensor hooks) and, called, re-applies masks.

    Use as `after_step` of train(); the hooks are removed on exit. Masks move to each parameter's
    device lazily, so the model may be moved to the GPU inside the block.
    """

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.masks = masks

    def _mask_for(self, p: torch.Tensor, name: str) -> torch.Tensor:
        m = self.masks[name]
        if m.device != p.device or m.dtype != p.dtype:
            m = self.masks[name] = m.to(device=p.device, dtype=p.dtype)
        return m

    def __enter__(self) -> "MaskedRetraining":
        params = dict(self.model.named_parameters())
        apply_masks(self.model, self.masks)
        self.masks = {n: m.to(params[n].dtype) for n, m in self.masks.items()}
        self.handles_ = [params[n].register_hook(lambda g, n=n: g * self._mask_for(g, n))
                         for n in self.masks]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles_:
            h.remove()
        self.handles_ = []

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        """Re-zero pruned weights (train's after_step)."""
        params = dict(model.named_parameters())
        for name in self.masks:
            p = params[name]
            p.mul_(self._mask_for(p, name))


def mask_stats(masks: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Per tensor: shape, kept and total weights, kept and total kernels (4-D), density."""
    rows = []
    for name, m in masks.items():
        m = m.bool()
        row = {"tensor": name, "shape": "x".join(map(str, m.shape)), "kept": int(m.sum()),
               "total": m.numel(), "density": float(m.float().mean())}
        if m.ndim == 4:
            kernels = m.flatten(2).any(2)
            row.update(kept_kernels=int(kernels.sum()), total_kernels=kernels.numel())
        rows.append(row)
    return rows


def compression(masks: dict[str, torch.Tensor]) -> float:
    """Weights before / after over all masked tensors (e.g. 8.0 = 8x fewer weights)."""
    kept = sum(int(m.bool().sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return total / kept if kept else float("inf")


def save_pruned(path: str | Path, model: nn.Module, masks: dict[str, torch.Tensor],
                meta: dict[str, Any] | None = None, half: bool = True) -> list[Path]:
    """Save kept weights (fp16 by default), packed-bit masks and the other tensors; returns files."""
    state: dict[str, torch.Tensor] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    clash = [k for k in state if k.startswith(("kept/", "bits/"))]
    if clash:
        raise ValueError(f"state dict keys clash with the reserved prefixes: {clash[:3]}")
    shapes = {}
    for name, m in masks.items():
        if name not in state:
            raise KeyError(f"mask {name!r} names no tensor of the model's state dict")
        m = m.detach().bool().cpu()
        if tuple(m.shape) != tuple(state[name].shape):
            raise ValueError(f"mask of {name} has shape {tuple(m.shape)}, "
                             f"tensor {tuple(state[name].shape)}")
        w = state.pop(name)
        state["kept/" + name] = w[m]
        state["bits/" + name] = torch.from_numpy(np.packbits(m.flatten().numpy()))
        shapes[name] = list(m.shape)
    info = {"format": FORMAT, "version": VERSION, "masks": shapes, **(meta or {})}
    return save_state(path, state, half=half, meta={"pruned": info})


def load_pruned(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(state dict, masks, metadata) of a save_pruned file; masked weights are exactly zero."""
    info = read_meta(path)["meta"].get("pruned")
    if not info or info.get("format") != FORMAT or info.get("version") != VERSION:
        raise ValueError(f"{path} is not a {FORMAT} v{VERSION} file (metadata: {info})")
    state = load_state(path)
    masks = {}
    for name, shape in info["masks"].items():
        n = int(np.prod(shape))
        bits = np.unpackbits(state.pop("bits/" + name).numpy(), count=n).astype(bool)
        m = torch.from_numpy(bits).reshape(shape)
        kept = state.pop("kept/" + name)
        if kept.numel() != int(m.sum()):
            raise ValueError(f"{path}: {name} has {kept.numel()} kept values for a mask "
                             f"of {int(m.sum())}")
        w = torch.zeros(shape, dtype=kept.dtype)
        w[m] = kept
        state[name], masks[name] = w, m
    return state, masks, info


def load_pruned_model(path: str | Path) -> tuple[nn.Module, dict[str, torch.Tensor], dict]:
    """Rebuild the zoo model named in the metadata, load the weights; returns (model, masks, meta)."""
    from workbench.models import build_model

    state, masks, info = load_pruned(path)
    spec = info.get("model")
    if not spec:
        raise ValueError(f"{path} does not name its model; build it and use load_pruned")
    model = build_model(spec["name"], spec["num_classes"], spec["input_size"], spec["in_channels"])
    model.load_state_dict(state)
    return model, masks, info
