"""A zoo model cut into its blocks (stem, each residual or inverted-residual block, head) and
its first k blocks as a model of their own: what the block profile (blocks_bench) times and the
peers' module specs ({"zoo": ..., "prefix": k}) build."""
from __future__ import annotations

from torch import nn


def model_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) blocks whose composition in order is model's forward: torchvision's
    MobileNetV2 (each features[i], then pool + flatten + classifier), ResNet (stem, each
    bottleneck or basic block, head) and VGG (each conv with its BN, ReLU and a following
    max-pool, then the head)."""
    from torchvision import models as tvm
    if isinstance(model, tvm.MobileNetV2):
        return [(f"features.{i}", m) for i, m in enumerate(model.features)] + \
            [("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), model.classifier))]
    if isinstance(model, tvm.ResNet):
        units = [("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool))]
        for i in range(1, 5):
            units += [(f"layer{i}.{j}", b) for j, b in enumerate(getattr(model, f"layer{i}"))]
        return units + [("head", nn.Sequential(model.avgpool, nn.Flatten(), model.fc))]
    if isinstance(model, tvm.VGG):
        units: list[tuple[str, nn.Module]] = []
        group: list[tuple[int, nn.Module]] = []
        for i, m in enumerate(model.features):
            if isinstance(m, nn.Conv2d) and group:
                units.append((f"features.{group[0][0]}", nn.Sequential(*(g for _, g in group))))
                group = []
            group.append((i, m))
        units.append((f"features.{group[0][0]}", nn.Sequential(*(g for _, g in group))))
        return units + [("head", nn.Sequential(model.avgpool, nn.Flatten(), model.classifier))]
    raise ValueError(f"model_units: no block structure known for {type(model).__name__} "
                     "(torchvision MobileNetV2, ResNet and VGG at ImageNet shape are)")


def prefix(model: nn.Module, k: int) -> nn.Module:
    """The first k blocks of model (model_units) as one nn.Sequential (1 <= k <= all), in eval
    mode; short of the whole model, a global average pool after them keeps the output small
    (runtimes copy their outputs differently: TFLite's 1.6 MB copy of MobileNet-V2's first
    block's output took 0.16 ms, more than the block, where ours hands its buffer over)."""
    units = model_units(model)
    if not 1 <= k <= len(units):
        raise ValueError(f"prefix: k must be in 1..{len(units)}, got {k}")
    tail = [nn.AdaptiveAvgPool2d(1)] if k < len(units) else []
    return nn.Sequential(*(m for _, m in units[:k]), *tail).eval()
