"""L1-norm filter pruning of whole modules (Li et al. 2017, as the report uses it).

A module pruned at rate r keeps, in each of its prunable convolutions (`GraphNet.prunable`), the
keep(C, r) filters with the largest L1 norms, in their original order; the channel-wise layers
after it (batch norm, scale) keep the same channels and the convolution reading it keeps the same
input channels. The module's last convolution and its shortcut stay whole, so the module's output
shape does not change. The result is a smaller dense network whose weights are copied from the
full model: the report's "default network", the starting point of the baseline.
"""
from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

from workbench.tune.network import GraphNet, keep

RATES = (0.3, 0.5, 0.7)  # the report's Gamma


def filter_importance(weight: torch.Tensor) -> torch.Tensor:
    """weight (O, I, kh, kw) -> (O,) L1 norm of each filter."""
    return weight.detach().abs().sum(dim=(1, 2, 3))


def kept_filters(weight: torch.Tensor, rate: float) -> torch.Tensor:
    """Indices (ascending) of the keep(O, rate) filters of weight (O, I, kh, kw) with largest L1."""
    k = keep(weight.shape[0], rate)
    # stable sort so ties keep the lower index: the same filters on every run
    order = torch.sort(filter_importance(weight), descending=True, stable=True).indices
    return torch.sort(order[:k]).values


def l1_prune(net: GraphNet, state: dict[str, torch.Tensor], rates: dict[str, float],
             prefix: str = "layers.") -> dict[str, torch.Tensor]:
    """The full model's state dict (keys prefix + '<ident>.<param>') pruned at `rates`
    ({module: rate}); the keys stay the same, the pruned tensors shrink."""
    ident = net.idents()
    out = {k: v.clone() for k, v in state.items()}
    selections: list[tuple[str, int, torch.Tensor]] = []  # (layer ident, dim, kept indices)
    for module, convs in net.prunable().items():
        rate = rates.get(module, 0.0)
        if rate == 0.0:
            continue
        for pc in convs:
            # importance from the full weights, before any slicing of this or other layers
            idx = kept_filters(state[f"{prefix}{ident[pc.conv]}.weight"], rate)
            selections.append((ident[pc.conv], 0, idx))
            selections += [(ident[f], 0, idx) for f in pc.followers]
            selections += [(ident[c], 1, idx) for c in pc.consumers]
    for layer, dim, idx in selections:
        for key in [k for k in state if k.startswith(f"{prefix}{layer}.")]:
            t = out[key]
            if key.endswith("num_batches_tracked") or (dim == 1 and t.ndim < 2):
                continue  # a conv's bias belongs to its outputs, not its inputs
            out[key] = t.index_select(dim, idx.to(t.device)).clone()
    return out


def pruned_network(mux: ModuleType, net: GraphNet, state: dict[str, torch.Tensor],
                   rates: dict[str, float]) -> nn.Module:
    """The default network: MultiplexNet('finetune') at `rates` with L1-pruned full weights."""
    model = mux.MultiplexNet("finetune", {"rates": rates})
    model.load_state_dict(l1_prune(net, state, rates))
    return model
