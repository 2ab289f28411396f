"""Build rendered host source into callables, cached by a hash of the source.

Numba sources become files in the cache folder (so Numba's own on-disk cache keeps the
machine code); C sources become shared libraries built with -march=native.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from workbench.codegen.build import CompilerError, _write_once, cache_dir, source_hash

_MODULES: dict[str, ModuleType] = {}


def build_numba(src: str, entry: str = "kernel") -> Callable:
    """The function `entry` defined by Numba source src (module cached by source hash)."""
    import numba

    key = source_hash(src, numba.__version__)
    mod = _MODULES.get(key)
    if mod is None:
        path = cache_dir("numba") / f"nb_{key}.py"
        _write_once(path, src)
        name = f"workbench_generated_nb_{key}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        _MODULES[key] = mod
    if not hasattr(mod, entry):
        raise ValueError(f"generated module has no function {entry!r}")
    return getattr(mod, entry)


_LIBS: dict[str, ctypes.CDLL] = {}


C_FLAGS = ("-O3", "-march=native", "-std=gnu11", "-ffp-contract=fast", "-fopenmp", "-fPIC",
           "-shared")


def c_compiler() -> str:
    """The C compiler: $CC, else cc / gcc / clang on PATH; CompilerError if there is none."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise CompilerError("no C compiler found: install gcc or clang (apt-get install gcc), "
                            "or set CC; the Numba emitter needs none (emitter='numba')")
    return cc


# Set by target_vector_width: the width of the target a plan is built for (4: ARM64 NEON).
_TARGET_WIDTH: list[int] = []


@contextlib.contextmanager
def target_vector_width(vw: int) -> Iterator[None]:
    """Within it, host_vector_width() returns vw: plans and kernels are laid out and rendered
    for another target's vectors (the host still builds them, GCC splitting or joining)."""
    _TARGET_WIDTH.append(vw)
    try:
        yield
    finally:
        _TARGET_WIDTH.pop()


def host_vector_width() -> int:
    """Floats per SIMD register of this CPU: 16 (AVX-512), 8 (AVX2), 4 (SSE / NEON).

    $WORKBENCH_VECTOR overrides it (e.g. 8 to try AVX2 code on an AVX-512 machine), and
    target_vector_width overrides both.
    """
    if _TARGET_WIDTH:
        return _TARGET_WIDTH[-1]
    if os.environ.get("WORKBENCH_VECTOR"):
        return int(os.environ["WORKBENCH_VECTOR"])
    return register_width()


def register_width() -> int:
    """Floats per SIMD register of this CPU, whatever $WORKBENCH_VECTOR says (code for wider
    vectors still builds: GCC splits each into registers of this width)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if " avx512f" in flags:
        return 16
    if " avx2" in flags:
        return 8
    return 4


def cpu_id() -> str:
    """This CPU's vendor, family and model numbers from /proc/cpuinfo ("AuthenticAMD-26-2" for
    Zen 5), else platform.processor(): VMs often name the CPU only "AMD EPYC", and the best
    schedule differs between generations of one ISA (Zen 4 splits a 16-float FMA in two,
    Zen 5 does not)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first processor's block is enough
    except OSError:
        pass
    if "vendor_id" in fields and "cpu family" in fields and "model" in fields:
        return f"{fields['vendor_id']}-{fields['cpu family']}-{fields['model']}"
    return (platform.processor() or platform.machine() or "unknown").replace(":", "-")


def last_level_cache_bytes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """Bytes of this CPU's largest (last-level) cache from sysfs, else 32 MiB."""
    best = 0
    for d in sorted(root.glob("index*")):
        try:
            size = (d / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:].upper(), 1)
        digits = size.rstrip("KMGkmg")
        if digits.isdigit():
            best = max(best, int(digits) * scale)
    return best or 32 << 20


def _compiler_id(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return cc


def build_c(src: str, flags: tuple[str, ...] = C_FLAGS) -> ctypes.CDLL:
    """Compile C source into a shared library (cached by source + flags + compiler) and load it."""
    cc = c_compiler()
    key = source_hash(src, " ".join(flags), _compiler_id(cc))
    lib = _LIBS.get(key)
    if lib is not None:
        return lib
    d = cache_dir("c")
    so = d / f"k_{key}.so"
    if not so.exists():
        c_path = d / f"k_{key}.c"
        _write_once(c_path, src)
        tmp = d / f".k_{key}.{os.getpid()}.so"
        # An argument list, never a shell string: only our own hashed paths reach the compiler.
        res = subprocess.run([cc, *flags, "-o", str(tmp), str(c_path)], capture_output=True,
                             text=True, timeout=600)
        if res.returncode != 0:
            raise CompilerError(f"{cc} failed on {c_path} (exit {res.returncode}):\n"
                                f"{res.stderr[-4000:]}")
        os.replace(tmp, so)
    lib = ctypes.CDLL(str(so))
    _LIBS[key] = lib
    return lib
