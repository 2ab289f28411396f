"""L1 filter pruning keeps the largest filters and the module's output shape."""
import torch

from workbench.models.resnet_cifar import ResNetCifar
from workbench.tune.filter_pruning import filter_importance, kept_filters, l1_prune
from workbench.tune.network import from_module, state_from_module


def test_kept_filters_are_the_largest_in_order():
    w = torch.zeros(5, 2, 3, 3)
    for i, s in enumerate([3.0, 1.0, 5.0, 2.0, 4.0]):
        w[i] = s
    assert filter_importance(w).tolist() == [54.0, 18.0, 90.0, 36.0, 72.0]
    assert kept_filters(w, 0.5).tolist() == [0, 2, 4]  # keep(5, 0.5) = 3 filters


def test_l1_prune_slices_conv_bn_and_next_input():
    m = ResNetCifar(8, 10, in_channels=1, widths=(4, 8, 8))
    net = from_module(m, m.block_names(), (1, 8, 8))
    full = state_from_module(net, m)
    pruned = l1_prune(net, full, {"layer2.0": 0.5})
    w = full["layers.layer2_0_conv1.weight"]
    idx = kept_filters(w, 0.5)
    assert pruned["layers.layer2_0_conv1.weight"].shape == (4, 4, 3, 3)
    torch.testing.assert_close(pruned["layers.layer2_0_conv1.weight"], w[idx])
    torch.testing.assert_close(pruned["layers.layer2_0_bn1.running_mean"],
                               full["layers.layer2_0_bn1.running_mean"][idx])
    torch.testing.assert_close(pruned["layers.layer2_0_conv2.weight"],
                               full["layers.layer2_0_conv2.weight"][:, idx])
    # the last conv's filters, the shortcut and other modules are untouched
    assert pruned["layers.layer2_0_conv2.weight"].shape[0] == 8
    for k in full:
        if not k.startswith(("layers.layer2_0_conv1", "layers.layer2_0_bn1", "layers.layer2_0_conv2")):
            torch.testing.assert_close(pruned[k], full[k])
