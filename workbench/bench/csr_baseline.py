"""The sparse baseline a user could write without a compiler: pruned convs and linears as
im2col + CSR sparse matmuls (torch.sparse_csr on MKL), everything else PyTorch eager."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.bench.subject import Peer, PeerUnavailable, Runner, Subject


class CSRConv2d(nn.Module):
    """A conv as im2col + CSR sparse matmul (torch.sparse, MKL): x (N, C, H, W) -> (N, O, H', W')."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        w = conv.weight.detach()
        with warnings.catch_warnings():   # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            self.w = w.reshape(w.shape[0], -1).to_sparse_csr()
        self.bias = None if conv.bias is None else conv.bias.detach()[:, None]
        self.kernel, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, wd = x.shape
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel[0] - 1) - 1) \
            // self.stride[0] + 1
        wo = (wd + 2 * self.padding[1] - self.dilation[1] * (self.kernel[1] - 1) - 1) \
            // self.stride[1] + 1
        cols = F.unfold(x, self.kernel, self.dilation, self.padding, self.stride)  # (N, C*k*k, L)
        ys = []
        for i in range(n):
            y = self.w @ cols[i]
            ys.append(y if self.bias is None else y + self.bias)
        return torch.stack(ys).reshape(n, -1, ho, wo)


class CSRLinear(nn.Module):
    """A linear layer as a CSR sparse matmul (torch.sparse, MKL): x (N, C) -> (N, O)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():   # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            self.w = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach()[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.w @ x.T
        return (y if self.bias is None else y + self.bias).T


def csr_model(model: nn.Module, max_density: float = 0.5) -> tuple[nn.Module, int]:
    """A copy of model whose dense-group convs and linears with at most max_density nonzero
    weights run as CSRConv2d / CSRLinear; returns (model, number of convs replaced)."""
    out = copy.deepcopy(model)
    count = 0
    for name, m in list(out.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Conv2d) and child.groups == 1 and \
                    float((child.weight != 0).float().mean()) <= max_density:
                setattr(m, child_name, CSRConv2d(child))
                count += 1
            elif isinstance(child, nn.Linear) and \
                    float((child.weight != 0).float().mean()) <= max_density:
                setattr(m, child_name, CSRLinear(child))
    return out, count


class CSRBaseline(Peer):
    """The sparse baseline a user could write: pruned convs as im2col + CSR matmul
    (torch.sparse_csr on MKL), everything else PyTorch eager. Runs pruned weights only."""
    name, label = "csr", "CSR (im2col + torch.sparse)"

    def version(self) -> str:
        return f"torch {torch.__version__} sparse_csr"

    def build(self, subject: Subject, threads: int) -> Runner:
        model, n = csr_model(subject.model.eval())
        if n == 0:
            raise PeerUnavailable("no conv with <= 50% nonzero weights: the CSR baseline runs "
                                  "pruned weights only")
        model.eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        return Runner(run, self.version())
