"""ADMM pruning (extended ADMM of PCONV): the Z-step is the scheme's Euclidean projection.

The problem  min_W loss(W)  subject to  W_l in S_l  (one constraint set per pruned tensor) is split
as  loss(W) + sum_l g_l(Z_l)  with  W_l = Z_l,  g_l the indicator of S_l, and solved in scaled form:

    W-step   a few SGD/Adam steps on  loss(W) + rho/2 sum_l ||W_l - Z_l + U_l||^2   (`penalty`)
    Z-step   Z_l <- project_l(W_l + U_l)                                          (`step`)
    U-step   U_l <- U_l + W_l - Z_l

The primal residual ||W - Z|| says how far the weights are from the constraint sets, the dual
residual rho ||Z - Z_prev|| how much the chosen supports (patterns, kept kernels) still move; both
are logged (absolute and relative to ||W||) at every Z-step. rho grows geometrically
(rho <- min(rho_max, rho * rho_growth)) so the weights are pulled ever harder to their sets; U is
the dual divided by rho, so it is rescaled by rho_old / rho_new whenever rho changes. `finalize`
is the hard projection W <- project(W) that fixes the masks for masked retraining.

Use: `admm = ADMM(config, defaults, rho=...).prepare(model)`; pass `admm.penalty` as train()'s
`extra_loss` and call `admm.step()` every few hundred optimiser steps (pipeline.admm_prune does
this once per epoch, with checkpoints); stop when `admm.converged` or at the budget.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from workbench.pruning.sparsifier import Group, Sparsifier


class ADMM(Sparsifier):
    """ADMM over the config's tensors: state Z_, U_ (by tensor name), rho_, residual history_."""

    def __init__(self, config: Sequence[Group], defaults: Group | None = None, rho: float = 1e-2,
                 rho_growth: float = 1.5, rho_max: float = 1.0, tol: float = 1e-3) -> None:
        super().__init__(config, defaults)
        self.rho = rho
        self.rho_growth = rho_growth
        self.rho_max = rho_max
        self.tol = tol

    def prepare(self, model: nn.Module) -> "ADMM":
        """Resolve the config; Z_ starts at the projection of the trained weights, U_ at zero."""
        if not (self.rho > 0 and self.rho_growth >= 1 and self.rho_max >= self.rho and self.tol >= 0):
            raise ValueError(f"need rho > 0, rho_growth >= 1, rho_max >= rho, tol >= 0; got "
                             f"rho={self.rho}, rho_growth={self.rho_growth}, "
                             f"rho_max={self.rho_max}, tol={self.tol}")
        super().prepare(model)
        with torch.no_grad():
            self.Z_ = {n: self.schemes_[n].project(p.detach())[0].clone()
                       for n, p in self.params().items()}
        self.U_ = {n: torch.zeros_like(z) for n, z in self.Z_.items()}
        self.rho_ = float(self.rho)
        self.history_: list[dict[str, float]] = []
        return self

    def _on_device(self, params: dict[str, nn.Parameter]) -> None:
        """Keep Z_ and U_ next to their weights (train() may have moved the model to the GPU)."""
        for n, p in params.items():
            if self.Z_[n].device != p.device:
                self.Z_[n] = self.Z_[n].to(p.device)
                self.U_[n] = self.U_[n].to(p.device)

    def penalty(self, model: nn.Module | None = None) -> torch.Tensor:
        """rho/2 sum ||W - Z + U||^2 (a scalar with gradient; train()'s extra_loss)."""
        params = self.params()
        self._on_device(params)
        total = sum(((p - self.Z_[n] + self.U_[n]).square().sum() for n, p in params.items()))
        return 0.5 * self.rho_ * total

    @torch.no_grad()
    def step(self) -> dict[str, float]:
        """Z-step, U-step, rho update; returns (and logs) the residuals of this iteration."""
        params = self.params()
        self._on_device(params)
        primal2 = dual2 = w2 = 0.0
        for n, p in params.items():
            w = p.detach().float()
            z_new = self.schemes_[n].project(w + self.U_[n])[0]
            self.U_[n] += w - z_new
            dual2 += float((z_new - self.Z_[n]).square().sum())
            primal2 += float((w - z_new).square().sum())
            w2 += float(w.square().sum())
            self.Z_[n] = z_new
        rho = self.rho_
        w_norm = math.sqrt(w2) or 1.0
        rec = {"iteration": len(self.history_), "rho": rho, "primal": math.sqrt(primal2),
               "dual": rho * math.sqrt(dual2), "primal_rel": math.sqrt(primal2) / w_norm,
               "dual_rel": math.sqrt(dual2) / w_norm}
        self.history_.append(rec)
        new_rho = min(self.rho_max, rho * self.rho_growth)
        if new_rho != rho:
            for u in self.U_.values():
                u.mul_(rho / new_rho)
            self.rho_ = new_rho
        return rec

    @property
    def converged(self) -> bool:
        """Both relative residuals of the last iteration are at most tol."""
        if not self.history_:
            return False
        last = self.history_[-1]
        return last["primal_rel"] <= self.tol and last["dual_rel"] <= self.tol

    def finalize(self) -> dict[str, torch.Tensor]:
        """Hard projection W <- project(W) of every tensor; returns the masks."""
        return self.project_model()

    def state_dict(self) -> dict[str, Any]:
        """Z_, U_, rho_ and history_ (tensors and plain values: loads with weights_only=True)."""
        return {"Z": {n: z.detach().cpu() for n, z in self.Z_.items()},
                "U": {n: u.detach().cpu() for n, u in self.U_.items()},
                "rho": self.rho_, "history": list(self.history_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict saved (after prepare on the same model and config)."""
        if set(state["Z"]) != set(self.Z_):
            raise ValueError(f"ADMM state is for tensors {sorted(state['Z'])[:4]}..., this config "
                             f"prunes {sorted(self.Z_)[:4]}...")
        self.Z_ = {n: z.clone() for n, z in state["Z"].items()}
        self.U_ = {n: u.clone() for n, u in state["U"].items()}
        self.rho_ = float(state["rho"])
        self.history_ = list(state["history"])


def plot_residuals(history: Sequence[dict[str, float]], ax: Any = None, relative: bool = True) -> Any:
    """Primal and dual residuals (log scale) and rho per ADMM iteration; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    it = [h["iteration"] for h in history]
    key = "_rel" if relative else ""
    ax.semilogy(it, [h["primal" + key] for h in history], "o-", label="primal ||W - Z||")
    ax.semilogy(it, [h["dual" + key] for h in history], "s-",
                label="dual ||Z - Z_prev||" if relative else "dual rho ||Z - Z_prev||")
    ax.set_xlabel("ADMM iteration (Z-step)")
    ax.set_ylabel("residual / ||W||" if relative else "residual")
    ax2 = ax.twinx()
    ax2.semilogy(it, [h["rho"] for h in history], "k:", label="rho")
    ax2.set_ylabel("rho")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="best")
    return ax
