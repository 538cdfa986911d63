"""Dynamically Expandable Representation (Yan et al. 2021), as the original study ran it.

Each task adds a feature extractor: a fresh ResNet-18 without its head, initialised as
a run's network is (``init``: random, or the ImageNet weights). The regime decides what
trains in the new extractor only; every earlier extractor is frozen. One classifier
reads all extractors' features side by side: at each task it grows by zero columns for
the new extractor's features (its old columns and bias copied) and trains whole, and
evaluation uses it, masked to the task's classes. An auxiliary classifier, new at each
task, reads the new extractor's features alone and is trained on the task's classes:
the loss is CE(classifier) + alpha * CE(auxiliary), and early stopping watches both.
The original's auxiliary classifier has one output per class of the task; this one has
one per class of the dataset, scored like the classifier (masked to the task's), so
that only the task's rows train: the same function, initialisation and gradients.

Under the task mask no gradient reaches an old task's rows of the classifier, so an old
task's logits can move only through its extractors' BatchNorm running statistics:
``old_bn`` says whether those follow ``bn_stats`` (the original's ``model.train()`` on
the whole network: under ``always_update`` they keep updating on the new tasks'
batches) or stay frozen (earlier extractors in eval mode, as Yan et al.'s code does).

Task-incremental only: the original ran nothing else, and DER in class-incremental
learning needs what it did not have (an auxiliary output for the old classes, and Yan
et al.'s second stage, the classifier re-trained on a class-balanced memory). Grouped
runs work as for every method: each extractor is a grouped network, run k's part drawn
from run k's own seeds.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from cl_regimes.config import NON_NEGATIVE, Choice
from cl_regimes.methods.base import Method
from cl_regimes.models import GroupedLinear, ResNet18, cross_entropy

EXTRACTOR_KEY = "extractors."


class Expandable(nn.Module):
    """K runs' DER networks side by side: ``extractors`` (grouped ResNet-18s without their
    heads), ``fc`` over their features concatenated per run, and ``aux`` over the newest
    extractor's. ``make(index)`` gives extractor ``index`` and its auxiliary classifier."""

    def __init__(self, first: ResNet18, aux: GroupedLinear, frozen_bn: bool, make):
        super().__init__()
        self.runs, self.dim = first.runs, first.fc.cin
        self.extractors = nn.ModuleList([first])
        self.fc = first.fc  # the classifier starts as the first network's head
        first.fc = nn.Identity()
        self.aux = aux
        self.frozen_bn, self.make = frozen_bn, make
        self.newest: torch.Tensor | None = None  # the last forward's newest features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        features = [e.features(x).view(b, self.runs, self.dim) for e in self.extractors]
        self.newest = features[-1]  # [B, K, dim]
        return self.fc(torch.cat(features, -1).flatten(1))

    def aux_logits(self) -> torch.Tensor:
        """The auxiliary classifier's logits [B, K, classes] of the last forward."""
        return self.aux(self.newest.flatten(1))

    def train(self, mode: bool = True):
        """Training mode; earlier extractors stay in eval mode with ``frozen_bn``."""
        super().train(mode)
        if mode and self.frozen_bn:
            for extractor in self.extractors[:-1]:
                extractor.eval()
        return self

    def expand(self) -> None:
        """Freeze every extractor, add the next one, give the classifier zero columns for
        its features (old columns and bias copied), and a fresh auxiliary classifier."""
        extractor, self.aux = self.make(len(self.extractors))
        for earlier in self.extractors:
            earlier.requires_grad_(False)
        self.extractors.append(extractor)
        old = self.fc
        grown = GroupedLinear(len(self.extractors) * self.dim, old.cout, self.runs)
        grown = grown.to(old.weight)
        with torch.no_grad():
            grown.weight.zero_()
            weights = grown.weight.view(self.runs, old.cout, -1)
            weights[..., : old.cin] = old.weight.view(self.runs, old.cout, old.cin)
            grown.bias.copy_(old.bias)
        self.fc = grown

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        """First grow to the extractors ``state`` holds (a checkpoint's), then load it."""
        key = EXTRACTOR_KEY
        held = [int(k[len(key) :].split(".")[0]) for k in state if k.startswith(key)]
        while len(self.extractors) < max(held) + 1:
            self.expand()
        return super().load_state_dict(state, strict, assign)


class DER(Method):
    """A new extractor per task, earlier ones frozen, the regime on the new one; one
    classifier over every extractor's features and an auxiliary one on the new task
    (weight ``alpha``); ``old_bn``: ``follow_bn_stats`` (the original) or ``frozen``."""

    name = "der"
    stop_on_total_loss = True  # the original stops on the epoch's CE + alpha * aux
    scenarios = ("task_incremental",)
    in_grid = False  # an arm of the original outside the paper's analyses: --methods der

    def __init__(
        self,
        runs,
        alpha: Annotated[float, NON_NEGATIVE],
        old_bn: Annotated[str, Choice(("follow_bn_stats", "frozen"))],
    ):
        super().__init__(runs)
        self.alpha, self.old_bn = alpha, old_bn
        first = runs.model  # the regime is applied to it: its mask is every extractor's
        self.mask = {n: p.requires_grad for n, p in first.named_parameters()}
        self.net = Expandable(first, self._aux(0), old_bn == "frozen", self._make)

    def _aux(self, index: int) -> GroupedLinear:
        """The auxiliary classifier of task ``index``: the head of a fresh network drawn for
        it (nn.Linear's default initialisation, from each run's own seed and ``index``;
        the runs' data streams are left as they are, so that they stay shared with the
        other methods under ``seeding=shared``)."""
        return self.runs.network(f"der.aux{index}").fc

    def _make(self, index: int) -> tuple[ResNet18, GroupedLinear]:
        """Extractor ``index``: a fresh network (its own seed per run and index), its head
        dropped, the regime's mask applied; and the task's auxiliary classifier."""
        extractor = self.runs.network(f"der.extractor{index}")
        extractor.fc = nn.Identity()
        for n, p in extractor.named_parameters():
            p.requires_grad_(self.mask[n])
        return extractor, self._aux(index)

    def network(self) -> nn.Module:
        return self.net

    def grow(self, position: int) -> list[nn.Parameter]:
        while len(self.net.extractors) <= position:
            self.net.expand()
        return [p for p in self.net.parameters() if p.requires_grad]

    def penalty(self, x, logits, y) -> torch.Tensor:
        return self.alpha * cross_entropy(*self.runs.score(self.net.aux_logits(), y))

    def retention(self, task_grad, penalty_grad, update):
        # read after both backward passes: the accumulated gradient g + alpha * aux gradient
        return task_grad + penalty_grad
