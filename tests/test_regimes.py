"""Regimes as trainable subspaces: parameter counts, and what a real run may and may not move."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from cl_regimes import models, regimes
from cl_regimes.models import ResNet18

REGIME_NAMES = tuple(regimes.REGIMES)
NESTED = ("head", "from_layer4", "from_layer3", "from_layer2", "from_layer1", "full")


def counts(width: int = 64, classes: int = 10) -> dict[str, int]:
    table = models.regime_summary(width, classes)
    return dict(zip(table["regime"], table["trainable parameters"], strict=True))


def test_summary_counts():
    n = counts()
    assert list(n) == list(REGIME_NAMES)
    assert n["full"] == 11_173_962  # torchvision's ResNet-18 with a 3x3 stem, 10 classes
    assert n["head"] == 5_130  # 512 * 10 + 10
    assert all(n[a] < n[b] for a, b in itertools.pairwise(NESTED))
    assert n["head"] < n["bn_affine"] < n["from_layer4"]
    model = ResNet18(10, 64)
    bn = sum(
        p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    assert n["bn_affine"] == n["head"] + bn
    assert sum(p.numel() for p in model.parameters()) == n["full"]
    share = dict(
        zip(models.regime_summary()["regime"], models.regime_summary()["share"], strict=True)
    )
    assert share["full"] == 1.0 and share["head"] == pytest.approx(5130 / 11_173_962)


def test_summary_other_width():
    n = counts(8, 10)
    assert n["head"] == 8 * 8 * 10 + 10
    assert list(models.regime_summary()["paper name"][[0, 2, 6]]) == [
        "head only",
        "last block",
        "full finetune",
    ]
    assert n["full"] == sum(p.numel() for p in ResNet18(10, 8).parameters())


@pytest.mark.parametrize("regime", REGIME_NAMES)
def test_apply_marks_exactly_the_regime(regime):
    model = ResNet18(10, 8)
    trainable = models.apply_regime(model, regime)
    reg = regimes.get(regime)
    assert [id(p) for p in trainable] == [id(p) for p in model.parameters() if p.requires_grad]
    for name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            top = name.split(".")[0] if name else pname
            expected = top in reg.blocks or (reg.bn_affine and isinstance(module, nn.BatchNorm2d))
            assert p.requires_grad == expected, f"{name}.{pname}"
    assert model.fc.weight.requires_grad  # the head trains in every regime


@pytest.mark.parametrize("regime", REGIME_NAMES)
def test_finetune_run_moves_exactly_the_trainable_parameters(smoke_runs, regime):
    run = smoke_runs.get(regime, "finetune")
    before, after, trainable = run.before, run.after, run.trainable_names
    names = [n for n, _ in run.trainer.model.named_parameters()]
    assert trainable and set(trainable) <= set(names)
    for name in names:
        if name in trainable:
            assert not torch.equal(before[name], after[name]), f"{name} did not train"
        else:
            assert torch.equal(before[name], after[name]), f"frozen {name} moved"


def regimes_moved(model, saved) -> list[str]:
    (names,) = models.moved(model, saved, 1)
    return names


def frozen_bn_buffers(run) -> list[str]:
    return [
        f"{name}.{buf}"
        for name, m in run.trainer.model.named_modules()
        if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad
        for buf in ("running_mean", "running_var")
    ]


def test_bn_stats_follow_regime_keeps_frozen_statistics(smoke_runs):
    run = smoke_runs.get("from_layer4", "finetune", bn_stats="follow_regime")
    buffers = frozen_bn_buffers(run)
    assert any(b.startswith("layer3.") for b in buffers) and not any(
        b.startswith("layer4.") for b in buffers
    )
    for name in buffers:
        assert torch.equal(run.before[name], run.after[name]), name
    # BatchNorm layers of the trainable block still update theirs
    assert not torch.equal(
        run.before["layer4.0.bn1.running_mean"], run.after["layer4.0.bn1.running_mean"]
    )


def test_bn_stats_always_update_changes_frozen_statistics(smoke_runs):
    run = smoke_runs.get("from_layer4", "finetune", bn_stats="always_update")
    for name in frozen_bn_buffers(run):
        assert not torch.equal(run.before[name], run.after[name]), name


def test_set_train_mode():
    model = ResNet18(10, 8)
    params = models.apply_regime(model, "from_layer3")
    models.set_train_mode(model, "follow_regime", params)
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert all(m.training == n.startswith(("layer3", "layer4")) for n, m in bns.items())
    models.set_train_mode(model, "always_update", params)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("bn_stats", ["always_update", "follow_regime"])
def test_moved_detects_a_changed_frozen_coordinate(bn_stats):
    model = ResNet18(10, 8)
    models.apply_regime(model, "from_layer2")
    saved = models.frozen_state(model, bn_stats)
    assert "conv1.weight" in saved and "layer1.0.conv1.weight" in saved
    assert "layer2.0.conv1.weight" not in saved and "fc.weight" not in saved
    assert ("bn1.running_mean" in saved) == (bn_stats == "follow_regime")
    assert regimes_moved(model, saved) == []
    with torch.no_grad():
        model.fc.weight.add_(1.0)  # trainable: moving it is allowed
        model.layer2[0].conv1.weight.add_(1.0)
    assert regimes_moved(model, saved) == []
    w = model.layer1[1].conv2.weight
    with torch.no_grad():  # the smallest possible change of one frozen coordinate
        w.view(-1)[7] = torch.nextafter(w.view(-1)[7], torch.tensor(1.0))
    assert regimes_moved(model, saved) == ["layer1.1.conv2.weight"]
    if bn_stats == "follow_regime":
        model.bn1.running_var[0] += 1e-3
        assert regimes_moved(model, saved) == ["layer1.1.conv2.weight", "bn1.running_var"]
