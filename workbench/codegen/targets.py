"""compile(model_or_lr, target=...) -> the network built for one target (host, arm64, cuda).

Each target lives in its own folder (host/, arm64/, cuda/) and is named only here: a new
target adds its folder and one branch below.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.codegen.arm64.bundle import Bundle, build_cached_bundle
from workbench.codegen.frontend import to_lr
from workbench.codegen.host.network import CompiledNetwork
from workbench.codegen.schedule import Schedule

if TYPE_CHECKING:   # the CUDA target is imported only when asked for
    from workbench.codegen.cuda.network import CudaNetwork
    from workbench.codegen.cuda.schedule import GpuSchedule

TARGETS = ("host", "arm64", "cuda")


def compile(model_or_lr: Any, target: str = "host", emitter: str = "numba",
            input_shape: tuple[int, int, int] | None = None, library: bool = True,
            schedules: dict[str, Schedule] | dict[str, GpuSchedule] | None = None
            ) -> CompiledNetwork | Bundle | CudaNetwork:
    """Compile an nn.Module (traced at input_shape (C, H, W), default (3, 224, 224)), an LR, or
    a path to a saved LR (.json) or ONNX file (.onnx) into a CompiledNetwork for target
    "host", or for target "arm64" into a phone bundle (workbench.codegen.arm64.bundle.Bundle,
    in the cache; calling it runs it under qemu-aarch64), the C emitter's plan for NEON, or
    for target "cuda" into a workbench.codegen.cuda.network.CudaNetwork (schedules: layer
    name -> cuda.schedule.GpuSchedule), which runs on torch CUDA tensors."""
    if target == "host":
        return CompiledNetwork(to_lr(model_or_lr, input_shape), emitter, library, schedules)
    if target == "arm64":   # always the C emitter's kernels
        return build_cached_bundle(model_or_lr, input_shape, schedules)
    if target == "cuda":
        from workbench.codegen.cuda.network import CudaNetwork
        return CudaNetwork(to_lr(model_or_lr, input_shape), schedules)
    raise ValueError(f"unknown target {target!r}; the compiler builds for {TARGETS}")
