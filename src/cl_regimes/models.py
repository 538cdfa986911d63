"""ResNet-18 for 32x32 images (torchvision's layout and names), and task masking of logits."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool.

    ``width`` is the stem's channel count (64 in the paper); one linear head
    ``fc`` covers the classes of all tasks. Kaiming initialisation as torchvision.
    """

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        self.conv1 = _conv3x3(3, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        widths = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, cout in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            self.add_module(f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride),
                                                       BasicBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def task_logits(logits: torch.Tensor, labels: torch.Tensor, classes_per_task: int) -> torch.Tensor:
    """Each sample's logits restricted to its own task's classes: [B, classes_per_task].

    Tasks are contiguous class blocks, so a label's task is ``label // classes_per_task``
    and its index inside the block ``label % classes_per_task``.
    """
    blocks = logits.view(len(logits), -1, classes_per_task)
    return blocks[torch.arange(len(logits), device=logits.device), labels // classes_per_task]


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                         classes_per_task: int) -> torch.Tensor:
    """Task-incremental loss: cross-entropy over the sample's own task's classes."""
    return nn.functional.cross_entropy(task_logits(logits, labels, classes_per_task).float(),
                                       labels % classes_per_task)


@contextlib.contextmanager
def running_stats_frozen(model: nn.Module):
    """Forward passes inside leave every BatchNorm's running statistics untouched."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
