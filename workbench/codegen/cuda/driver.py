"""Loading compiled kernels and launching them through the CUDA driver API (cuda-bindings), on
torch's current stream and torch's CUDA context, with torch tensors as arguments (no copies).

Launching on torch's current stream is what lets a whole network be captured into one CUDA
graph by torch.cuda.graph: every launch made inside the capture is recorded.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from workbench.codegen.cuda.nvrtc import compile_cuda


class CudaError(RuntimeError):
    """A CUDA driver call failed."""


def _check(result: tuple[Any, ...], what: str) -> Any:
    from cuda.bindings import driver
    err, *rest = result
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        raise CudaError(f"{what}: {name.decode() if isinstance(name, bytes) else name}")
    return rest[0] if len(rest) == 1 else rest


def gpu_missing() -> str | None:
    """None if a CUDA GPU is usable from torch here, else why not (a test's skip reason)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False)"
    try:
        import cuda.bindings.driver  # noqa: F401
    except ImportError as e:
        return f"cuda-bindings is not installed ({e})"
    return None


@lru_cache(maxsize=None)
def device_arch(index: int = 0) -> str:
    """The CUBIN architecture of GPU `index`, e.g. 'sm_90' for an H100."""
    import torch
    major, minor = torch.cuda.get_device_capability(index)
    return f"sm_{major}{minor}"


@lru_cache(maxsize=1)
def _context() -> None:
    """Make torch's primary context current for the driver API in this process."""
    import torch
    from cuda.bindings import driver
    torch.cuda.init()
    torch.empty(1, device="cuda")   # the runtime creates (and makes current) its context
    _check(driver.cuInit(0), "cuInit")
    ctx = _check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
    if int(ctx) == 0:
        dev = _check(driver.cuDeviceGet(torch.cuda.current_device()), "cuDeviceGet")
        ctx = _check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
        _check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")


@dataclass
class Kernel:
    """One loaded __global__ function: call launch(grid, block, args) on torch's stream."""
    name: str
    fn: Any
    module: Any

    def launch(self, grid: tuple[int, int, int], block: tuple[int, int, int],
               args: list[Any], smem: int = 0) -> None:
        """Launch on torch.cuda.current_stream(): args are torch tensors (passed as device
        pointers), Python ints (int32) or floats (float32)."""
        import torch
        from cuda.bindings import driver
        vals = []
        for a in args:
            if isinstance(a, torch.Tensor):
                vals.append(ctypes.c_void_p(a.data_ptr()))
            elif isinstance(a, bool) or not isinstance(a, (int, float)):
                raise TypeError(f"kernel {self.name}: argument {a!r} is not a tensor, int or float")
            elif isinstance(a, int):
                vals.append(ctypes.c_int(a))
            else:
                vals.append(ctypes.c_float(a))
        ptrs = (ctypes.c_void_p * max(len(vals), 1))(*[ctypes.addressof(v) for v in vals])
        stream = torch.cuda.current_stream().cuda_stream
        _check(driver.cuLaunchKernel(self.fn, *grid, *block, smem, stream,
                                     ctypes.addressof(ptrs), 0), f"launch {self.name}")


def load_kernel(src: str, name: str, arch: str | None = None) -> Kernel:
    """Compile src (CUBIN for this GPU's architecture, cached) and load __global__ `name`."""
    from cuda.bindings import driver
    _context()
    image = compile_cuda(src, arch or device_arch())
    module = _check(driver.cuModuleLoadData(image), f"load module of {name}")
    fn = _check(driver.cuModuleGetFunction(module, name.encode()), f"find {name}")
    return Kernel(name, fn, module)


def time_graph(fn: Callable[[], None], reps: int = 20, turns: int = 5) -> float:
    """Median ms of one fn() call: fn captured reps times in one CUDA graph, replayed turns
    times, each replay timed with CUDA events."""
    import torch
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    g.replay()
    times = []
    for _ in range(turns):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / reps)
    return float(np.median(times))
