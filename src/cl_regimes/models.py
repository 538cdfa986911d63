"""ResNet-18 for small images, K runs side by side in one network, and regimes applied to it.

The network is torchvision's ResNet-18 (same layout and parameter names) with
a 3x3 stride-1 stem and no max-pool. With ``runs=K`` every convolution has
``groups=K``, every BatchNorm K times the channels and the head K blocks, so
that K independent networks (run k in channel group k) train as one: their
computations never mix, BatchNorm statistics are per run, and every tensor's
first dimension splits into K equal per-run rows (``per_run``).
"""

from __future__ import annotations

import contextlib
import math

import pandas as pd
import torch
from torch import nn

from cl_regimes import regimes
from cl_regimes.config import ConfigError, check_choice


def per_run(t: torch.Tensor, runs: int) -> torch.Tensor:
    """A parameter, gradient or buffer of the grouped network as [runs, -1] rows."""
    return t.reshape(runs, -1)


def flatten(tensors, runs: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Tensors (parameters or their gradients) as one flat vector per run: [runs, N].
    With ``out`` (a [runs, N] buffer reused step after step: no fresh allocation, whose
    page faults cost a CPU more than the copy), the values are copied there, detached."""
    if out is None:
        return torch.cat([per_run(t, runs) for t in tensors], 1)
    return torch.cat([per_run(t.detach(), runs) for t in tensors], 1, out=out)


def row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row dot products of [K, N] tensors -> [K], without an [K, N] temporary."""
    return torch.bmm(a[:, None, :], b[:, :, None]).view(-1)


def _conv(cin: int, cout: int, kernel: int, stride: int, runs: int) -> nn.Conv2d:
    return nn.Conv2d(
        cin * runs, cout * runs, kernel, stride=stride, padding=kernel // 2, bias=False, groups=runs
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, runs: int):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride, runs)
        self.bn1 = nn.BatchNorm2d(cout * runs)
        self.conv2 = _conv(cout, cout, 3, 1, runs)
        self.bn2 = nn.BatchNorm2d(cout * runs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                _conv(cin, cout, 1, stride, runs), nn.BatchNorm2d(cout * runs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class GroupedLinear(nn.Module):
    """K linear layers side by side: input [B, K * in] -> output [B, K, out]."""

    def __init__(self, cin: int, cout: int, runs: int):
        super().__init__()
        self.runs, self.cin, self.cout = runs, cin, cout
        self.weight = nn.Parameter(torch.empty(runs * cout, cin))
        self.bias = nn.Parameter(torch.empty(runs * cout))
        # nn.Linear's default initialisation (the original replaces torchvision's fc)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(cin), 1 / math.sqrt(cin))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(len(x), self.runs, self.cin)
        w = self.weight.view(self.runs, self.cout, self.cin)
        return torch.einsum("bki,koi->bko", x, w) + self.bias.view(self.runs, self.cout)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool; ``runs`` networks
    side by side. Input [B, runs * 3, S, S], output logits [B, runs, num_classes].

    Initialisation as the original study got it from torchvision's ``resnet18`` with
    the stem and the head replaced: Kaiming (fan_out) for every convolution but the
    stem, which keeps PyTorch's default convolution initialisation; BatchNorm ones
    and zeros; the head nn.Linear's default. Build grouped networks with ``stack``
    so that each run is initialised as a single network (fan-in and fan-out per run).
    """

    def __init__(self, num_classes: int, width: int = 64, runs: int = 1):
        super().__init__()
        self.num_classes, self.width, self.runs = num_classes, width, runs
        self.conv1 = _conv(3, width, 3, 1, runs)
        self.bn1 = nn.BatchNorm2d(width * runs)
        self.relu = nn.ReLU(inplace=True)
        cin = width
        for i, cout in enumerate([width, 2 * width, 4 * width, 8 * width], start=1):
            stride = 1 if i == 1 else 2
            self.add_module(
                f"layer{i}",
                nn.Sequential(BasicBlock(cin, cout, stride, runs), BasicBlock(cout, cout, 1, runs)),
            )
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = GroupedLinear(cin, num_classes, runs)
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and name != "conv1":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the head reads: [B, runs * 8 * width], run k's in block k."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    @classmethod
    def stack(cls, networks: list[ResNet18]) -> ResNet18:
        """Single-run networks side by side as one grouped network, run k = networks[k]."""
        first = networks[0]
        grouped = cls(first.num_classes, first.width, len(networks))
        states = [net.state_dict() for net in networks]
        with torch.no_grad():
            for name, t in grouped.state_dict().items():
                if t.ndim == 0:  # num_batches_tracked: one counter for all runs
                    t.copy_(states[0][name])
                else:
                    per_run(t, len(networks)).copy_(
                        torch.stack([s[name].reshape(-1) for s in states])
                    )
        return grouped


def upcast(t: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 values (under autocast) as float32; others as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of each run: the cross-entropy of its samples' scored logits [B, K, n]
    (``scenarios``) against their targets [B, K], averaged over the batch -> [K]."""
    losses = nn.functional.cross_entropy(
        upcast(logits).flatten(0, 1), target.flatten(), reduction="none"
    )
    return losses.view(target.shape).mean(0)


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def bn_momentum(model: nn.Module, momentum: float):
    """Forward passes inside update BatchNorm running statistics with ``momentum``
    (0: leave them untouched)."""
    norms = batchnorms(model)
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = momentum
    try:
        yield
    finally:
        for m, value in zip(norms, saved):
            m.momentum = value


def running_stats_frozen(model: nn.Module):
    """Forward passes inside leave every BatchNorm's running statistics untouched."""
    return bn_momentum(model, 0.0)


# ---- regimes applied to the network -----------------------------------------------------


def _named_parameters(model: nn.Module):
    for module_name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            name = f"{module_name}.{pname}" if module_name else pname
            yield name, isinstance(module, nn.modules.batchnorm._BatchNorm), p


def apply_regime(model: nn.Module, regime: str) -> list[nn.Parameter]:
    """Freeze everything outside the regime; return the trainable parameters in model order.

    Frozen parameters get ``requires_grad=False``, so no backward pass reaches
    layers below the shallowest trainable one.
    """
    reg = regimes.get(regime)
    trainable = []
    for name, is_bn, p in _named_parameters(model):
        p.requires_grad_(reg.is_trainable(name, is_bn))
        if p.requires_grad:
            trainable.append(p)
    return trainable


def set_train_mode(model: nn.Module, bn_stats: str, trainable: list[nn.Parameter]) -> None:
    """Training mode; with ``follow_regime``, BatchNorm layers whose weights are not among
    ``trainable`` stay in eval mode (their running statistics stay fixed), so frozen
    coordinates keep computing the same function."""
    check_choice("bn_stats", bn_stats, ("always_update", "follow_regime"))
    model.train()
    if bn_stats == "follow_regime":
        ids = {id(p) for p in trainable}
        for m in batchnorms(model):
            if id(m.weight) not in ids:
                m.eval()


def frozen_state(model: nn.Module, bn_stats: str) -> dict[str, torch.Tensor]:
    """A copy of what the regime must not change: frozen parameters and, with
    ``follow_regime``, the running statistics of frozen BatchNorm layers."""
    state = {
        name: p.detach().clone() for name, _, p in _named_parameters(model) if not p.requires_grad
    }
    if bn_stats == "follow_regime":
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.weight.requires_grad:
                state[f"{name}.running_mean"] = m.running_mean.clone()
                state[f"{name}.running_var"] = m.running_var.clone()
    return state


def moved(model: nn.Module, state: dict[str, torch.Tensor], runs: int) -> list[list[str]]:
    """Per run, the names in ``state`` whose current value is not bit-identical to the saved one."""
    current = dict(model.named_parameters()) | dict(model.named_buffers())
    return [
        [
            name
            for name, saved in state.items()
            if not torch.equal(per_run(current[name], runs)[k], per_run(saved, runs)[k])
        ]
        for k in range(runs)
    ]


def parameter_table(regime: str, width: int = 64, num_classes: int = 10) -> pd.DataFrame:
    """Per block of the network: parameters, trainable parameters under ``regime``, share."""
    reg = regimes.get(regime)
    rows = {b: [0, 0] for b in regimes.BLOCKS}
    for name, is_bn, p in _named_parameters(ResNet18(num_classes, width)):
        row = rows[name.split(".")[0]]
        row[0] += p.numel()
        row[1] += p.numel() if reg.is_trainable(name, is_bn) else 0
    labels = {"conv1": "stem conv1", "bn1": "stem bn1"}
    table = pd.DataFrame(
        [(labels.get(b, b), *rows[b]) for b in regimes.BLOCKS],
        columns=["block", "parameters", "trainable"],
    )
    table.loc[len(table)] = ["total", table.parameters.sum(), table.trainable.sum()]
    table["trainable share"] = table.trainable / table.parameters
    return table


def regime_summary(width: int = 64, num_classes: int = 10) -> pd.DataFrame:
    """One row per regime: what trains, how many parameters, which share of the network."""
    rows = []
    for name, reg in regimes.REGIMES.items():
        total = parameter_table(name, width, num_classes).iloc[-1]
        rows.append(
            {
                "regime": name,
                "trainable": reg.description,
                "paper name": reg.paper_name,
                "trainable parameters": int(total.trainable),
                "share": total.trainable / total.parameters,
            }
        )
    return pd.DataFrame(rows)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev
