"""torch.fx front end and graph passes: ops covered, BN folded, activations fused, errors named."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from workbench.codegen.frontend_torch import UnsupportedOpError, from_torch
from workbench.codegen.lr import LRError
from workbench.codegen.passes import fold_batchnorm, fuse_activations


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so folding them is actually tested."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def _run_reference(lr, x: np.ndarray) -> np.ndarray:
    """Evaluate an LR with torch ops (no generated code): checks the front end alone."""
    import torch.nn.functional as F
    vals = {next(iter(lr.inputs)): torch.from_numpy(x)}
    for l in lr.layers:
        a, p = l.attrs, {k: torch.from_numpy(np.array(v)) for k, v in l.params.items()}
        xs = [vals[i] for i in l.inputs]
        if l.op == "conv2d":
            y = F.conv2d(xs[0], p["weight"], p.get("bias"), a["stride"], a["padding"],
                         a["dilation"], a["groups"])
        elif l.op == "linear":
            y = F.linear(xs[0], p["weight"], p.get("bias"))
        elif l.op == "add":
            y = xs[0] + xs[1]
        elif l.op == "maxpool2d":
            y = F.max_pool2d(xs[0], a["kernel"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"])
        elif l.op == "global_avgpool":
            y = xs[0].mean((2, 3), keepdim=True)
        elif l.op == "flatten":
            y = xs[0].flatten(1)
        elif l.op == "act":
            y = xs[0]
        else:
            raise AssertionError(l.op)
        act = a.get("act", "none")
        vals[l.name] = y.relu() if act == "relu" else y.clamp(0, 6) if act == "relu6" else y
    return vals[lr.outputs[0]].numpy()


def test_tiny_cnn_is_folded_and_fused(tiny_cnn: nn.Module) -> None:
    model = _randomise_bn(tiny_cnn)
    lr = from_torch(model, (3, 8, 8))
    assert [l.op for l in lr.layers] == ["conv2d", "conv2d", "flatten", "linear"]
    assert [l.attrs.get("act") for l in lr.layers] == ["relu", "relu", None, "none"]
    assert lr.layers[0].attrs["source"] == "conv1"
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    ref = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(_run_reference(lr, x), ref, rtol=1e-4, atol=1e-5)


def test_torchvision_ops_are_covered() -> None:
    from torchvision.models import mobilenet_v2, resnet18
    for model, ops in ((resnet18(num_classes=10), {"maxpool2d", "add", "global_avgpool"}),
                       (mobilenet_v2(num_classes=10), {"add", "global_avgpool"})):
        lr = from_torch(_randomise_bn(model), (3, 64, 64))
        assert ops <= {l.op for l in lr.layers}
        assert not {"batchnorm", "act"} & {l.op for l in lr.layers}
        x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
        ref = model(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(_run_reference(lr, x), ref, rtol=1e-3, atol=1e-4)


def test_pruned_zeros_survive_folding() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight[:, :, 0, 0] = 0.0
        conv.weight[1] = 0.0
    model = _randomise_bn(nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU6()))
    lr = from_torch(model, (4, 6, 6))
    (layer,) = lr.layers
    assert layer.attrs["act"] == "relu6"
    kp = layer.kernel_patterns
    assert kp.kept_kernels == 12 and kp.num_patterns == 1 and not kp.patterns[0, 0]


class _Softplus(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.conv(x))


def test_unsupported_op_is_named_with_its_place() -> None:
    with pytest.raises(UnsupportedOpError, match=r"softplus.*node 'softplus'.*after 'conv'"):
        from_torch(_Softplus(), (3, 8, 8))
    model = nn.Sequential(OrderedDict(c=nn.Conv2d(3, 3, 1), up=nn.Upsample(scale_factor=2,
                                                                          mode="bicubic")))
    with pytest.raises(UnsupportedOpError, match=r"mode 'bicubic'.*graph node 'up'"):
        from_torch(model, (3, 8, 8))


def test_wrong_input_shape_is_named() -> None:
    with pytest.raises(LRError, match=r"does not run on inputs \(1, 1, 8, 8\)"):
        from_torch(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 8, 8))


def test_shared_conv_output_keeps_batchnorm_and_relu_apart() -> None:
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + torch.relu(y)

    model = _randomise_bn(Fork())
    raw = from_torch(model, (3, 6, 6), passes=False)
    lr = fuse_activations(fold_batchnorm(raw))
    ops = [l.op for l in lr.layers]
    # BN could not fold (conv output has two readers): it became a depthwise 1x1 conv.
    assert ops.count("conv2d") == 2 and "act" in ops and "batchnorm" not in ops
    x = np.random.default_rng(2).standard_normal((1, 3, 6, 6)).astype(np.float32)
    ref = model(torch.from_numpy(x)).detach().numpy()
    assert next(l for l in lr.layers if l.op == "act").attrs["act"] == "relu"
    np.testing.assert_allclose(_run_reference(lr, x), ref, rtol=1e-4, atol=1e-5)
