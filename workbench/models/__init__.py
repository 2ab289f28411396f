"""Model zoo: VGG-16, ResNet-18/50, MobileNet-V2 at ImageNet and CIFAR shape, and a small CNN."""
from workbench.models.registry import build_model, model_names
from workbench.models.small_cnn import SmallCNN

__all__ = ["build_model", "model_names", "SmallCNN"]
