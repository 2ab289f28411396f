"""ONNX front end: exported PyTorch models run the same; unknown ops and bad files are named."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.codegen.frontend_onnx import from_onnx
from workbench.codegen.frontend_torch import UnsupportedOpError
from workbench.codegen.lr import LRError

from .test_frontend_torch import _randomise_bn, _run_reference

onnx = pytest.importorskip("onnx")


def _export(model: nn.Module, shape: tuple[int, ...]) -> "onnx.ModelProto":
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, torch.zeros(1, *shape), buf, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def test_exported_resnet_block_matches_torch() -> None:
    from torchvision.models import resnet18
    model = _randomise_bn(resnet18(num_classes=10))
    lr = from_onnx(_export(model, (3, 32, 32)))
    assert {"conv2d", "add", "maxpool2d", "global_avgpool", "linear"} <= {l.op for l in lr.layers}
    assert any(l.attrs.get("act") == "relu" for l in lr.layers if l.op == "add")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    ref = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(_run_reference(lr, x), ref, rtol=1e-3, atol=1e-4)


def test_relu6_clip_and_file_path(tmp_path: Path) -> None:
    model = _randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                                        nn.ReLU6(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)))
    path = tmp_path / "m.onnx"
    onnx.save(_export(model, (3, 5, 5)), str(path))
    lr = from_onnx(path)
    assert [l.op for l in lr.layers] == ["conv2d", "flatten", "linear"]
    assert lr.layers[0].attrs["act"] == "relu6"
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(_run_reference(lr, x), model(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_unsupported_op_is_named() -> None:
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    graph = h.make_graph(
        [h.make_node("Conv", ["x", "w"], ["c"], name="conv0"),
         h.make_node("Sigmoid", ["c"], ["y"], name="sig")], "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])], [w])
    with pytest.raises(UnsupportedOpError, match=r"unsupported op Sigmoid at graph node 1 'sig'"):
        from_onnx(h.make_model(graph))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(LRError, match="not a readable ONNX file"):
        from_onnx(bad)
