"""Model zoo: every model builds at CIFAR and ImageNet shape and gives (N, num_classes)."""
import pytest
import torch

from workbench.models import build_model, model_names


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet50", "mobilenet_v2"])
def test_cifar_shape(name):
    m = build_model(name, num_classes=7, input_size=32).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet50", "mobilenet_v2"])
def test_imagenet_shape(name):
    m = build_model(name, num_classes=1000, input_size=224).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_cifar_variants_keep_resolution_early():
    r = build_model("resnet18", input_size=32)
    assert r.conv1.kernel_size == (3, 3) and r.conv1.stride == (1, 1)
    mb = build_model("mobilenet_v2", input_size=32)
    assert mb.features[0][0].stride == (1, 1)


def test_parameter_counts_match_the_literature():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(build_model("resnet50", 1000, 224)) / 1e6 - 25.56) < 0.01
    assert abs(count(build_model("resnet18", 10, 32)) / 1e6 - 11.17) < 0.01


def test_small_cnn_digits():
    m = build_model("small_cnn", 10, input_size=8, in_channels=1)
    assert m(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_bad_names_and_sizes_are_explained():
    with pytest.raises(ValueError, match="unknown model 'vgg17'"):
        build_model("vgg17")
    with pytest.raises(ValueError, match="input_size must be 32"):
        build_model("vgg16", input_size=48)
    assert model_names() == ["mobilenet_v2", "resnet18", "resnet20", "resnet50", "resnet56",
                             "small_cnn", "vgg16"]
