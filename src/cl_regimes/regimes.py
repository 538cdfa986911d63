"""Fine-tuning regimes as named trainable subspaces of the ResNet-18.

A regime fixes which coordinates S of the parameter vector move; every SGD
step is then the projected step theta <- theta - eta * P_S grad J. Frozen
parameters have ``requires_grad=False`` (so no backward pass reaches layers
below the shallowest trainable one), and with ``bn_stats="follow_regime"``
frozen BatchNorm layers also stay in eval mode, so frozen coordinates keep
computing the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from cl_regimes.config import check_choice
from cl_regimes.models import ResNet18
from cl_regimes.profiles import BN_STATS, REGIME_NAMES

BLOCKS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")
BLOCK_LABELS = {"conv1": "stem conv1", "bn1": "stem bn1"}


@dataclass(frozen=True)
class Regime:
    name: str
    blocks: tuple[str, ...]  # top-level modules that train entirely
    paper_name: str | None  # how the original study calls it (None: not run there)
    description: str
    depth: int | None  # position in the nested family head < ... < full (None: not nested)
    bn_affine: bool = False  # also every BatchNorm's weight and bias

    def is_trainable(self, name: str, module: nn.Module) -> bool:
        """Whether parameter ``name`` of ``module`` lies in the trainable subspace."""
        return name.split(".")[0] in self.blocks or (
            self.bn_affine and isinstance(module, nn.modules.batchnorm._BatchNorm))


REGIMES = {r.name: r for r in (
    Regime("head", ("fc",), None, "the linear head only: a linear probe on random features", 0),
    Regime("bn_affine", ("fc",), None,
           "every BatchNorm's scale and shift, plus the head", None, bn_affine=True),
    Regime("from_layer4", ("layer4", "fc"), "last block", "layer4 and the head", 1),
    Regime("from_layer3", ("layer3", "layer4", "fc"), "last 2 blocks",
           "layer3, layer4 and the head", 2),
    Regime("from_layer2", ("layer2", "layer3", "layer4", "fc"), "last 3 blocks",
           "layer2 to layer4 and the head", 3),
    Regime("from_layer1", ("layer1", "layer2", "layer3", "layer4", "fc"), "last 6 blocks",
           "layer1 to layer4 and the head (the stem stays frozen)", 4),
    Regime("full", BLOCKS, "full finetune", "every parameter", 5),
)}
assert tuple(REGIMES) == REGIME_NAMES


def get(name: str) -> Regime:
    check_choice("regime", name, REGIME_NAMES)
    return REGIMES[name]


def _named_parameters(model: nn.Module):
    for module_name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            yield f"{module_name}.{pname}" if module_name else pname, module, p


def apply(model: nn.Module, regime: str) -> list[nn.Parameter]:
    """Freeze everything outside the regime; return the trainable parameters in model order."""
    reg = get(regime)
    trainable = []
    for name, module, p in _named_parameters(model):
        p.requires_grad_(reg.is_trainable(name, module))
        if p.requires_grad:
            trainable.append(p)
    return trainable


def set_train_mode(model: nn.Module, bn_stats: str, trainable: list[nn.Parameter]) -> None:
    """Training mode; with ``follow_regime``, BatchNorm layers whose weights are not among
    ``trainable`` stay in eval mode (their running statistics stay fixed)."""
    check_choice("bn_stats", bn_stats, BN_STATS)
    model.train()
    if bn_stats == "follow_regime":
        ids = {id(p) for p in trainable}
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m.weight) not in ids:
                m.eval()


def frozen_state(model: nn.Module, bn_stats: str) -> dict[str, torch.Tensor]:
    """A copy of what the regime must not change: frozen parameters and, with
    ``follow_regime``, the running statistics of frozen BatchNorm layers."""
    state = {name: p.detach().clone() for name, _, p in _named_parameters(model)
             if not p.requires_grad}
    if bn_stats == "follow_regime":
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.weight.requires_grad:
                state[f"{name}.running_mean"] = m.running_mean.clone()
                state[f"{name}.running_var"] = m.running_var.clone()
    return state


def moved(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Names in ``state`` whose current value is not bit-identical to the saved one."""
    current = dict(model.named_parameters()) | dict(model.named_buffers())
    return [name for name, value in state.items() if not torch.equal(current[name], value)]


def parameter_table(regime: str, width: int = 64, num_classes: int = 10) -> pd.DataFrame:
    """Per block of the network: parameters, trainable parameters under ``regime``, share."""
    model = ResNet18(num_classes, width)
    reg = get(regime)
    rows = {b: [0, 0] for b in BLOCKS}
    for name, module, p in _named_parameters(model):
        row = rows[name.split(".")[0]]
        row[0] += p.numel()
        row[1] += p.numel() if reg.is_trainable(name, module) else 0
    table = pd.DataFrame([(BLOCK_LABELS.get(b, b), *rows[b]) for b in BLOCKS],
                         columns=["block", "parameters", "trainable"])
    table.loc[len(table)] = ["total", table.parameters.sum(), table.trainable.sum()]
    table["trainable share"] = table.trainable / table.parameters
    return table


def summary(width: int = 64, num_classes: int = 10) -> pd.DataFrame:
    """One row per regime: what trains, how many parameters, which share of the network."""
    rows = []
    for name, reg in REGIMES.items():
        total = parameter_table(name, width, num_classes).iloc[-1]
        rows.append({"regime": name, "trainable": reg.description,
                     "paper name": reg.paper_name or "-",
                     "trainable parameters": int(total.trainable),
                     "share": total.trainable / total.parameters})
    return pd.DataFrame(rows)
