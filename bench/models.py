"""Model registry. Each builder takes (in_channels, image_size, num_classes) and returns an nn.Module."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from bench.policy import DevicePolicy
from bench.registry import Registry

model_registry = Registry("model")


def build_model(name: str, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return model_registry.get(name).fn(in_channels, image_size, num_classes)


@dataclass(frozen=True)
class ModelFactory:
    """Builds freshly initialised models of one architecture (`ctx.new_model()`) on the policy's
    device, in its memory format, like the batches."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int
    policy: DevicePolicy

    def __call__(self) -> nn.Module:
        model = build_model(self.name, self.in_channels, self.image_size, self.num_classes)
        return self.policy.module_format(model.to(self.policy.torch_device))


def _perceptron(in_channels: int, image_size: int, num_classes: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@model_registry.register("mlp")
def mlp(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Two-layer perceptron (256 hidden units): the fastest model, for tiny data and tests."""
    return _perceptron(in_channels, image_size, num_classes, 256)


@model_registry.register("mlp-wide")
def mlp_wide(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Two-layer perceptron with 1,024 hidden units: enough capacity to memorise a small pool, so
    that its training examples are told from held-out ones (the default suite's net)."""
    return _perceptron(in_channels, image_size, num_classes, 1024)


def _two_conv_wide_head(in_channels, image_size, num_classes, width, hidden):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (image_size // 4) ** 2, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@model_registry.register("cnn")
def cnn(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """conv32-pool-conv64-pool-fc256-fc: a small CNN whose wide head memorises (strong MIA signal)."""
    return _two_conv_wide_head(in_channels, image_size, num_classes, width=32, hidden=256)


@model_registry.register("cnn-small")
def cnn_small(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """conv16-pool-conv32-pool-fc128-fc: the `cnn` shape at a quarter of the cost, for 2-core CPUs."""
    return _two_conv_wide_head(in_channels, image_size, num_classes, width=16, hidden=128)


@model_registry.register("resnet18")
def resnet18_cifar(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool), as in SalUn and l1-sparse."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@model_registry.register("resnet18-tv")
def resnet18_torchvision(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet 7x7 stem + max-pool), as the NeurIPS 2023 kit uses on 32x32."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model
