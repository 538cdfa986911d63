"""The network: the original's initialisation, K runs side by side, task masking."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cl_regimes import models
from cl_regimes.models import ResNet18


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return ResNet18(10, 64)


def test_stem_keeps_pytorchs_default_convolution_initialisation(network):
    # the original replaces torchvision's stem after torchvision's Kaiming initialisation:
    # nn.Conv2d's default, kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = network.conv1.weight
    fan_in = 3 * 3 * 3
    assert w.abs().max().item() <= 1 / math.sqrt(fan_in)
    assert w.std().item() == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.08)


def test_other_convolutions_are_kaiming_fan_out(network):
    for name, m in network.named_modules():
        if isinstance(m, nn.Conv2d) and name != "conv1":
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1), name
    bns = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all((m.weight == 1).all() and (m.bias == 0).all() for m in bns)


def test_head_is_nn_linears_default(network):
    bound = 1 / math.sqrt(512)
    assert network.fc.weight.shape == (10, 512) and network.fc.bias.shape == (10,)
    assert network.fc.weight.abs().max().item() <= bound
    assert network.fc.bias.abs().max().item() <= bound
    assert network.fc.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_stacked_runs_compute_what_each_network_computes():
    torch.manual_seed(1)
    nets = [ResNet18(10, 4) for _ in range(3)]
    grouped = ResNet18.stack(nets)
    x = torch.randn(5, 3, 3, 16, 16)
    for mode in ("train", "eval"):
        for net in (*nets, grouped):
            net.train(mode == "train")
        out = grouped(x.flatten(1, 2))
        assert out.shape == (5, 3, 10)
        for k, net in enumerate(nets):
            torch.testing.assert_close(out[:, k], net(x[:, k])[:, 0], rtol=1e-4, atol=1e-5)
    # and their BatchNorm statistics stayed their own
    for k, net in enumerate(nets):
        torch.testing.assert_close(
            models.per_run(grouped.bn1.running_mean, 3)[k], net.bn1.running_mean
        )
