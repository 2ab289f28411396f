"""Prune a model from a config: per-layer groups merged over defaults; prepare(model), step(), finalize().

A group is a dict naming tensors and how to prune them, following torch.ao.pruning's
BaseSparsifier:

    {"tensor": "features.3.weight", "scheme": "pattern_connectivity", "rate": 8.0, "patterns": ps}

- "tensor": a parameter name, or an fnmatch glob ("layer*.conv*.weight") matching one or more;
- "scheme": a Scheme object (used as is) or a scheme name for make_scheme, sized by "rate"
  (weights before / after) or "keep" (fraction), with "patterns" for the pattern schemes.

Groups are merged over `defaults` ({**defaults, **group}); a later group naming an already matched
tensor overrides it. `conv_config(model)` makes one group per 3x3 convolution, which is the usual
PCONV config, and `rate_config(model, scheme, rate)` sizes every 3x3 conv so that all of them
together shrink `rate` times (keeping the first one dense by default); `linear_config` does the
fully connected layers (block or irregular; PatDNN's VGG-16 prunes its classifier too) and
`pointwise_config` the 1x1 convs (connectivity in groups of filters the GEMM keeps together). One-shot pruning is
`Sparsifier(config).prepare(model).step()`: it projects each
tensor in place and returns the masks; `prune_model` does exactly that. ADMM (admm.py) is the
same class with another step(). Masked retraining is in masks.py.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from workbench.pruning.patterns import PatternSet
from workbench.pruning.schemes import Scheme, make_scheme

Group = dict[str, Any]


def conv_config(model: nn.Module, kernel: tuple[int, int] = (3, 3), **group: Any) -> list[Group]:
    """One group {"tensor": name, **group} per Conv2d weight of `model` with that kernel size."""
    return [{"tensor": f"{name}.weight", **group} for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == tuple(kernel)]


def linear_config(model: nn.Module, scheme: str | Scheme = "block", rate: float = 8.0,
                  dense_last: bool = True) -> list[Group]:
    """One group per nn.Linear weight of model, each `rate` times fewer weights by `scheme`
    ("block": 16-row blocks, "irregular", or a Scheme such as Block(keep, rows, cols)); with
    dense_last the last one (the class scores: few weights) stays dense."""
    names = [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if dense_last:
        names = names[:-1]
    if isinstance(scheme, str):
        return [{"tensor": n, "scheme": scheme, "rate": float(rate)} for n in names]
    return [{"tensor": n, "scheme": scheme} for n in names]


def pointwise_config(model: nn.Module, rate: float = 2.0, rows: int = 16) -> list[Group]:
    """One group per dense 1x1 conv weight of model: connectivity over input channels in
    groups of `rows` filters (pruning.schemes.Block(1 / rate, rows, 1)), so that the 1x1 GEMM,
    which computes `tile_o` filters at a time (4 or 8 divide 16), skips the channels a whole
    group dropped and stays a blocked GEMM over the rest. ResNet-50's 1x1s are most of its
    time once its 3x3s are pattern-pruned."""
    from workbench.pruning.schemes import Block
    scheme = Block(1.0 / float(rate), rows, 1)
    return [{"tensor": f"{name}.weight", "scheme": scheme} for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1) and m.groups == 1]


def rate_config(model: nn.Module, scheme: str, rate: float, patterns: PatternSet | None = None,
                kernel: tuple[int, int] = (3, 3), dense_first: bool = True) -> list[Group]:
    """Groups that make all `kernel` conv weights `rate` times fewer (weights before / after).

    With dense_first the first such conv (the one reading the image: few weights, many uses)
    stays dense and the others are pruned at r' = (N - n0) / (N / rate - n0) so the total over
    all N weights, n0 of them in the first conv, still shrinks `rate` times. "pattern" has a
    fixed rate (kh*kw / entries) and ignores `rate`.
    """
    config = conv_config(model, kernel)
    if not config:
        raise ValueError(f"{type(model).__name__} has no {kernel[0]}x{kernel[1]} convolutions")
    params = dict(model.named_parameters())
    sizes = [params[g["tensor"]].numel() for g in config]
    total, n0 = sum(sizes), sizes[0]
    if dense_first and len(config) > 1:
        config = config[1:]
        if scheme != "pattern" and total / rate <= n0:
            raise ValueError(f"rate {rate} cannot leave the first conv ({n0} weights) dense: "
                             f"only {total / rate:.0f} of {total} weights may remain")
        rate = (total - n0) / (total / rate - n0) if scheme != "pattern" else rate
    if scheme == "pattern":
        if patterns is None:
            raise ValueError("pattern needs a PatternSet (patterns=...)")
        return [{**g, "scheme": patterns.with_keep_kernels(None)} for g in config]
    return [{**g, "scheme": scheme, "rate": rate, "patterns": patterns} for g in config]


def _scheme_of(group: Group) -> Scheme:
    """The group's Scheme: the object it names, or make_scheme(name, rate/keep, patterns)."""
    scheme = group.get("scheme")
    if scheme is None:
        raise ValueError(f"group {group.get('tensor')!r} names no scheme")
    if isinstance(scheme, Scheme):
        return scheme
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a Scheme or a name, got {type(scheme).__name__}")
    return make_scheme(scheme, rate=group.get("rate"), keep=group.get("keep"),
                       patterns=group.get("patterns"))


class Sparsifier:
    """One-shot pruning of the config's tensors: step() projects each onto its scheme."""

    def __init__(self, config: Sequence[Group], defaults: Group | None = None) -> None:
        self.config = config
        self.defaults = defaults

    def prepare(self, model: nn.Module) -> "Sparsifier":
        """Resolve groups to parameters, check each scheme fits its tensor; returns self."""
        params = dict(model.named_parameters())
        resolved: dict[str, Scheme] = {}
        if not self.config:
            raise ValueError("the pruning config has no groups")
        for raw in self.config:
            group = {**(self.defaults or {}), **raw}
            pattern = group.get("tensor")
            if not isinstance(pattern, str):
                raise ValueError(f"every group needs a 'tensor' name or glob, got {raw!r}")
            names = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
            if not names:
                raise KeyError(f"no parameter of {type(model).__name__} matches {pattern!r}; "
                               f"it has e.g. {list(params)[:5]}")
            scheme = _scheme_of(group)
            for n in names:
                # Applying once surfaces a scheme that does not fit (e.g. a 3x3 PatternSet on a
                # 1x1 conv) here, with the tensor's name, rather than deep inside training.
                try:
                    scheme.mask(params[n].detach())
                except ValueError as e:
                    raise type(e)(f"{n}: {e}") from e
                resolved[n] = scheme
        self.model_ = model
        self.schemes_ = resolved
        self.masks_: dict[str, torch.Tensor] = {}
        return self

    def params(self) -> dict[str, nn.Parameter]:
        """The pruned parameters by name."""
        named = dict(self.model_.named_parameters())
        return {n: named[n] for n in self.schemes_}

    @torch.no_grad()
    def project_model(self) -> dict[str, torch.Tensor]:
        """Project every configured tensor in place onto its scheme; returns and stores the masks."""
        for name, p in self.params().items():
            w, m = self.schemes_[name].project(p.detach())
            p.copy_(w)
            self.masks_[name] = m
        return self.masks_

    def step(self) -> dict[str, torch.Tensor]:
        """One-shot pruning: magnitude projection of each tensor; returns the masks."""
        return self.project_model()

    def finalize(self) -> dict[str, torch.Tensor]:
        """The masks of the last step (projects first if step() was never called)."""
        return self.masks_ if self.masks_ else self.project_model()


def prune_model(model: nn.Module, config: Sequence[Group],
                defaults: Group | None = None) -> dict[str, torch.Tensor]:
    """One-shot prune `model` in place from a config; returns {tensor name: bool mask}."""
    return Sparsifier(config, defaults).prepare(model).step()
