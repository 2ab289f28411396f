"""Shared fixtures: tiny CNNs, seeds, and skips for missing tools (with the reason)."""
from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch
from torch import nn


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _c_compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _arm64_missing() -> str | None:
    """Why ARM64 builds cannot be checked here, or None."""
    from workbench.codegen.arm64.toolchain import missing_tools
    missing = missing_tools()
    missing.pop("llvm-mca", None)   # only the estimate tests need it; they skip on their own
    return "; ".join(missing.values()) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests whose tool is missing, saying which tool; never skip silently."""
    skip_cc = pytest.mark.skip(reason="needs a C compiler (cc/gcc/clang on PATH); none found")
    skip_numba = pytest.mark.skip(reason="needs numba; `pip install numba` (make test installs it)")
    arm64 = _arm64_missing() if any("needs_arm64" in i.keywords for i in items) else None
    nvrtc = gpu = None
    if any("needs_nvrtc" in i.keywords or "needs_gpu" in i.keywords for i in items):
        from workbench.codegen.cuda.driver import gpu_missing
        from workbench.codegen.cuda.nvrtc import nvrtc_missing
        nvrtc, gpu = nvrtc_missing(), gpu_missing()
    for item in items:
        if "needs_nvrtc" in item.keywords and nvrtc is not None:
            item.add_marker(pytest.mark.skip(reason=f"needs_nvrtc: {nvrtc}"))
        if "needs_gpu" in item.keywords and (gpu or nvrtc) is not None:
            item.add_marker(pytest.mark.skip(reason=f"needs_gpu: {gpu or nvrtc}"))
        if "needs_arm64" in item.keywords and arm64 is not None:
            item.add_marker(pytest.mark.skip(reason=f"needs_arm64: {arm64}"))
        if "needs_cc" in item.keywords and _c_compiler() is None:
            item.add_marker(skip_cc)
        if "needs_numba" in item.keywords and not _has_module("numba"):
            item.add_marker(skip_numba)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Fixed seeds and one torch thread, so tests are repeatable and do not fight over 2 cores."""
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)


class TinyCNN(nn.Module):
    """Two 3x3 convolutions, one of stride 2, and a linear head: x (N, 3, 8, 8) -> (N, 10)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(2 * width * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


@pytest.fixture
def tiny_cnn() -> TinyCNN:
    """A fresh TinyCNN with seeded weights."""
    torch.manual_seed(0)
    return TinyCNN().eval()
