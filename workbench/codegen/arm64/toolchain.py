"""The ARM64 toolchain: a cross C compiler (GNU or the Android NDK's clang) and qemu-aarch64.

With the GNU cross compiler (Debian `gcc-aarch64-linux-gnu`) bundles link statically, so one
executable runs on an Android phone's arm64 kernel and on ARM64 Linux boards alike, with no
NDK. With $ANDROID_NDK_HOME set, the NDK's clang builds an Android arm64-v8a PIE instead.
Code is for ARMv8-A (NEON is part of it, so every arm64 phone runs it), tuned for the
Cortex-A76, the big core of the phones in the papers; $WORKBENCH_ARM64_CPU overrides the
tuning (a -mtune value). `make arm64-tools` installs the GNU compiler and qemu-user.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from workbench.codegen.build import CompilerError, cache_dir, source_hash

ANDROID_API = 28
INSTALL_HINT = ("`make arm64-tools` (apt-get install gcc-aarch64-linux-gnu qemu-user), or set "
                "ANDROID_NDK_HOME to an Android NDK")


class ToolchainError(CompilerError):
    """No ARM64 compiler or emulator here; the message says how to get one."""


def cross_compiler() -> tuple[str, tuple[str, ...]]:
    """(compiler path, its target-specific flags): the NDK's clang where $ANDROID_NDK_HOME is
    set, else aarch64-linux-gnu-gcc on PATH (static linking)."""
    ndk = os.environ.get("ANDROID_NDK_HOME")
    if ndk:
        clang = (Path(ndk) / "toolchains" / "llvm" / "prebuilt" / "linux-x86_64" / "bin" /
                 f"aarch64-linux-android{ANDROID_API}-clang")
        if not clang.exists():
            raise ToolchainError(f"ANDROID_NDK_HOME={ndk} has no {clang.name} (NDK r21 or "
                                 f"later expected)")
        return str(clang), ("-fPIE", "-pie", "-static-openmp")
    gcc = shutil.which("aarch64-linux-gnu-gcc")
    if gcc is None:
        raise ToolchainError(f"no ARM64 C compiler (aarch64-linux-gnu-gcc): {INSTALL_HINT}")
    return gcc, ("-static",)


def common_flags() -> tuple[str, ...]:
    """Flags of every ARM64 compile: the host C flags' meaning, for ARMv8-A NEON."""
    tune = os.environ.get("WORKBENCH_ARM64_CPU", "cortex-a76")
    if not tune.replace("-", "").replace(".", "").isalnum():
        raise ToolchainError(f"WORKBENCH_ARM64_CPU={tune!r} is not a CPU name")
    return ("-O3", "-march=armv8-a", f"-mtune={tune}", "-std=gnu11", "-ffp-contract=fast",
            "-fopenmp")


def qemu() -> str:
    """The user-mode ARM64 emulator; ToolchainError if there is none."""
    q = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if q is None:
        raise ToolchainError(f"no qemu-aarch64 to check ARM64 builds: {INSTALL_HINT}")
    return q


def llvm_mca() -> str:
    """llvm-mca (LLVM 14 or later), for static kernel estimates; ToolchainError if none."""
    mca = shutil.which("llvm-mca") or shutil.which("llvm-mca-14")
    if mca is None:
        raise ToolchainError("no llvm-mca to estimate ARM64 kernels: `make arm64-tools` "
                             "(apt-get install llvm)")
    return mca


def missing_tools() -> dict[str, str]:
    """What of the ARM64 toolchain is missing here: tool -> why and how to get it (empty when a
    cross compiler, qemu-aarch64 and llvm-mca are all present). The tests and the phone
    notebook use it to skip, saying why, what they cannot do."""
    missing: dict[str, str] = {}
    for tool, probe in (("cross compiler", cross_compiler), ("qemu-aarch64", qemu),
                        ("llvm-mca", llvm_mca)):
        try:
            probe()
        except ToolchainError as e:
            missing[tool] = str(e)
    return missing


def run_tool(cmd: list[str], what: str) -> str:
    """stdout of a compiler or tool run (an argument list, never a shell string);
    CompilerError with its stderr when it fails."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise CompilerError(f"{what} failed (exit {res.returncode}):\n{res.stderr[-4000:]}")
    return res.stdout


def compile_object(src: str, rename: dict[str, str]) -> Path:
    """src compiled for ARM64 into an object file (cached by source, renames, compiler and
    flags); rename maps a symbol to the name it is linked under (-D, whole identifiers)."""
    cc, target = cross_compiler()
    flags = [*common_flags(), *(f"-D{a}={b}" for a, b in sorted(rename.items())), "-c"]
    if "-fPIE" in target:
        flags.append("-fPIE")
    key = source_hash(src, " ".join(flags), cc)
    d = cache_dir("arm64")
    obj = d / f"o_{key}.o"
    if not obj.exists():
        c_path = d / f"o_{key}.c"
        c_path.write_text(src)
        tmp = d / f".o_{key}.{os.getpid()}.o"
        run_tool([cc, *flags, "-o", str(tmp), str(c_path)], f"{Path(cc).name} on {c_path}")
        tmp.replace(obj)
    return obj


def link(objects: list[Path], out: Path) -> None:
    """Link the objects into the executable out (static with GNU, PIE with the NDK)."""
    cc, target = cross_compiler()
    tmp = out.with_name(out.name + ".tmp")
    run_tool([cc, *common_flags(), *target, "-o", str(tmp), *map(str, objects), "-lm"],
         f"linking {out.name}")
    tmp.replace(out)
