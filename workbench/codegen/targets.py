"""compile(model_or_lr, target=...) -> the network built for one target (host, arm64).

Each target lives in its own folder (host/, arm64/) and is named only here: a new target
adds its folder and one branch below.
"""
from __future__ import annotations

from typing import Any

from workbench.codegen.arm64.bundle import Bundle, build_cached_bundle
from workbench.codegen.frontend import to_lr
from workbench.codegen.host.network import CompiledNetwork
from workbench.codegen.schedule import Schedule

TARGETS = ("host", "arm64")


def compile(model_or_lr: Any, target: str = "host", emitter: str = "numba",
            input_shape: tuple[int, int, int] | None = None, library: bool = True,
            schedules: dict[str, Schedule] | None = None) -> CompiledNetwork | Bundle:
    """Compile an nn.Module (traced at input_shape (C, H, W), default (3, 224, 224)), an LR, or
    a path to a saved LR (.json) or ONNX file (.onnx) into a CompiledNetwork for target
    "host", or for target "arm64" into a phone bundle (workbench.codegen.arm64.bundle.Bundle,
    in the cache; calling it runs it under qemu-aarch64), the C emitter's plan for NEON."""
    if target == "host":
        return CompiledNetwork(to_lr(model_or_lr, input_shape), emitter, library, schedules)
    if target == "arm64":   # always the C emitter's kernels
        return build_cached_bundle(model_or_lr, input_shape, schedules)
    raise ValueError(f"unknown target {target!r}; the compiler builds for {TARGETS}")
