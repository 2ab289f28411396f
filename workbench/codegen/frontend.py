"""One entry for every front end: to_lr(model, LR, saved LR or ONNX path) -> LR."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.codegen.lr import LR


def to_lr(model_or_lr: Any, input_shape: tuple[int, int, int] | None = None) -> LR:
    """An LR as given, loaded from a saved LR (.json) or ONNX file (.onnx), or traced from an
    nn.Module at input_shape (C, H, W), default (3, 224, 224)."""
    if isinstance(model_or_lr, LR):
        return model_or_lr
    if isinstance(model_or_lr, (str, Path)):
        path = Path(model_or_lr)
        if path.suffix == ".onnx":
            from workbench.codegen.frontend_onnx import from_onnx  # onnx only when used
            return from_onnx(path)
        return LR.load(path)
    from workbench.codegen.frontend_torch import from_torch  # torch only when used
    return from_torch(model_or_lr, input_shape or (3, 224, 224))
