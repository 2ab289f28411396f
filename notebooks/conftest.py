"""Notebooks under nbval: skip, with the reason, those whose tools are missing here."""
from __future__ import annotations

import pytest

NEEDS_ARM64 = {"07_phone.ipynb"}   # cross compiles, runs under qemu-aarch64, asks llvm-mca


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every cell of a notebook that needs the ARM64 toolchain skips when part of it is missing
    (make arm64-tools installs it), naming what is missing; never a failing cell instead."""
    if not any(item.path.name in NEEDS_ARM64 for item in items):
        return
    from workbench.codegen.arm64.toolchain import missing_tools
    missing = missing_tools()
    if not missing:
        return
    skip = pytest.mark.skip(reason="needs the ARM64 toolchain (make arm64-tools): " +
                            "; ".join(f"{k}: {v}" for k, v in missing.items()))
    for item in items:
        if item.path.name in NEEDS_ARM64:
            item.add_marker(skip)
