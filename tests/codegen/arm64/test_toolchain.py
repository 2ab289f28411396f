"""The ARM64 toolchain probes: what is missing is named with how to get it, never guessed."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.codegen.arm64.toolchain import (ToolchainError, common_flags, cross_compiler,
    missing_tools)


def test_with_nothing_on_path_every_tool_is_missing_with_how_to_get_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    missing = missing_tools()
    assert set(missing) == {"cross compiler", "qemu-aarch64", "llvm-mca"}
    assert all("make arm64-tools" in why for why in missing.values())
    with pytest.raises(ToolchainError, match="aarch64-linux-gnu-gcc"):
        cross_compiler()


def test_an_ndk_without_its_clang_is_refused_by_name(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("ANDROID_NDK_HOME", str(tmp_path))
    assert "aarch64-linux-android28-clang" in missing_tools()["cross compiler"]


def test_an_ndk_clang_builds_android_pies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clang = tmp_path / "toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android28-clang"
    clang.parent.mkdir(parents=True)
    clang.write_text("#!/bin/sh\n")
    monkeypatch.setenv("ANDROID_NDK_HOME", str(tmp_path))
    cc, flags = cross_compiler()
    assert cc == str(clang) and "-pie" in flags and "-static" not in flags
    assert "cross compiler" not in missing_tools()


def test_the_tuning_cpu_is_checked_before_it_reaches_a_command_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_ARM64_CPU", "cortex-a55")
    assert "-mtune=cortex-a55" in common_flags()
    monkeypatch.setenv("WORKBENCH_ARM64_CPU", "a76; rm -rf /")
    with pytest.raises(ToolchainError, match="not a CPU name"):
        common_flags()

