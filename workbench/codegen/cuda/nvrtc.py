"""CUDA C source -> PTX or CUBIN through NVRTC (the `nvidia-cuda-nvrtc` and `cuda-bindings`
wheels the CUDA build of torch installs): no system CUDA toolkit and no GPU needed to compile.

Builds are cached by source hash in $WORKBENCH_CACHE/cuda. PTX ("compute_90") is what CI
checks on machines without a GPU; on the GPU the runtime asks for a CUBIN of the card's exact
architecture ("sm_90"), so the driver never JIT-compiles PTX (and a PTX newer than the
driver could never be loaded).
"""
from __future__ import annotations

import os
from functools import lru_cache

from workbench.codegen.build import cache_dir, debug, source_hash

# -fmad=true is NVRTC's default (a*b+c contracts to an FMA, as the C emitter's
# -ffp-contract=fast); no fast-math: division, expf and tanhf keep full precision.
_FLAGS = ("-std=c++17", "--restrict")


class CudaCompileError(RuntimeError):
    """NVRTC is missing, or it rejected generated CUDA source (message has its log)."""


@lru_cache(maxsize=1)
def nvrtc_missing() -> str | None:
    """None if NVRTC can be used here, else why not (for a test's skip reason)."""
    try:
        from cuda.bindings import nvrtc
    except ImportError as e:
        return f"cuda-bindings is not installed ({e}); the CUDA build of torch brings it"
    try:
        err, _, _ = nvrtc.nvrtcVersion()
    except Exception as e:   # the wheel is there but libnvrtc.so is not
        return f"libnvrtc could not be loaded: {e}"
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return f"nvrtcVersion failed: {err}"
    return None


def nvrtc_version() -> str:
    """NVRTC's version as 'major.minor'."""
    from cuda.bindings import nvrtc
    _, major, minor = nvrtc.nvrtcVersion()
    return f"{major}.{minor}"


def _check(err: object, what: str, log: str = "") -> None:
    from cuda.bindings import nvrtc
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CudaCompileError(f"NVRTC {what} failed ({err})" + (f":\n{log}" if log else ""))


def compile_cuda(src: str, arch: str = "compute_90", name: str = "kernel.cu") -> bytes:
    """Compile src to PTX (arch "compute_XY") or a CUBIN (arch "sm_XY"); cached by hash.

    Raises CudaCompileError with NVRTC's log when the source does not compile."""
    if not (arch.startswith("compute_") or arch.startswith("sm_")):
        raise ValueError(f"arch {arch!r}: want 'compute_XY' (PTX) or 'sm_XY' (CUBIN)")
    why = nvrtc_missing()
    if why:
        raise CudaCompileError(why)
    ext = "ptx" if arch.startswith("compute_") else "cubin"
    path = cache_dir("cuda") / f"{source_hash(src, arch, nvrtc_version(), *_FLAGS)}.{ext}"
    if path.exists():
        return path.read_bytes()
    if debug():
        print(src)
    from cuda.bindings import nvrtc
    err, prog = nvrtc.nvrtcCreateProgram(src.encode(), name.encode(), 0, [], [])
    _check(err, "create")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), *(f.encode() for f in _FLAGS)]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            _check(err, "compile", log.decode(errors="replace").rstrip("\0 ") +
                   "\n--- source ---\n" + _numbered(src))
        if ext == "ptx":
            err, size = nvrtc.nvrtcGetPTXSize(prog)
            _check(err, "PTX size")
            out = b" " * size
            (err,) = nvrtc.nvrtcGetPTX(prog, out)
        else:
            err, size = nvrtc.nvrtcGetCUBINSize(prog)
            _check(err, "CUBIN size")
            out = b" " * size
            (err,) = nvrtc.nvrtcGetCUBIN(prog, out)
        _check(err, f"get {ext}")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(out)
    os.replace(tmp, path)
    return out


def _numbered(src: str) -> str:
    return "\n".join(f"{i + 1:4d}  {line}" for i, line in enumerate(src.splitlines()))
