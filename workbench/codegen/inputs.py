"""What compiled layers and networks accept as input: numpy arrays or torch tensors of floats.

Kernels compute in float32. A float32 input is used as it is; a float input of another width
(float16, bfloat16, float64, longdouble) is converted to float32, as torch's `.float()` does
(a float64 value beyond float32's range becomes +-Inf, which then shows in the output). An
integer, bool or complex input is refused: what its numbers mean (0-255 pixels? class ids?)
is the caller's decision, and a silent cast would hide it.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def float32_input(x: Any, what: str) -> np.ndarray:
    """x (numpy array, torch tensor or nested sequence) as a C-contiguous float32 numpy array;
    TypeError naming its dtype unless it holds real floats. what: "network", "layer", ..."""
    if is_torch(x):
        t = x.detach()
        if not (t.is_floating_point() and not t.is_complex()):
            raise TypeError(_refusal(what, str(t.dtype).replace("torch.", "")))
        return np.ascontiguousarray(t.to("cpu", dtype=_torch_float32()).numpy())
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise TypeError(_refusal(what, str(a.dtype)))
    with np.errstate(over="ignore"):   # past float32's range is +-Inf, as documented
        return np.ascontiguousarray(a, dtype=np.float32)


def _torch_float32() -> Any:
    import torch
    return torch.float32


def _refusal(what: str, dtype: str) -> str:
    return (f"the compiled {what} takes float inputs (float32, or float16 / bfloat16 / float64, "
            f"converted to float32), got dtype {dtype}: convert it yourself, e.g. "
            f"x.astype(np.float32) / x.float(), scaled as the model was trained (an image of "
            f"uint8 pixels usually / 255)")
