"""Synaptic Intelligence (Zenke et al. 2017) over the regime's trainable parameters."""

from __future__ import annotations

from typing import Annotated

import torch

from cl_regimes.config import NON_NEGATIVE, POSITIVE
from cl_regimes.methods.base import Method


class SI(Method):
    """Penalty c * sum Omega (theta - theta*)^2, where Omega accumulates, per task,
    the path integral w = sum -g * delta_theta (g: the unregularised gradient)
    divided by (total change)^2 + xi. Update values are clipped at ``clip``."""

    name = "si"
    needs_task_gradient = True

    def __init__(
        self,
        runs,
        c: Annotated[float, NON_NEGATIVE],
        xi: Annotated[float, POSITIVE],
        clip: Annotated[float, POSITIVE],
    ):
        super().__init__(runs)
        self.c, self.xi, self.clip = c, xi, clip
        self.start = runs.flat(runs.params).detach().clone()
        self.omega = torch.zeros_like(self.start)
        self.path = torch.zeros_like(self.start)
        self.before: torch.Tensor | None = None
        self.consolidated = False

    def penalty(self, x, logits, y):
        if not self.consolidated:
            return None
        theta = self.runs.flat(self.runs.params)
        return self.c * (self.omega * (theta - self.start).pow(2)).sum(1)

    def direction(self, total, task_grad, penalty_grad, active):
        self.before = self.runs.flat(self.runs.params).detach()
        return total.clamp(-self.clip, self.clip)

    def retention(self, task_grad, penalty_grad, update):
        return penalty_grad  # the penalty's gradient before clipping

    def after_step(self, task_grad):
        self.path -= task_grad * (self.runs.flat(self.runs.params).detach() - self.before)

    def after_task(self, tasks):
        theta = self.runs.flat(self.runs.params).detach()
        self.omega += self.path / ((theta - self.start).pow(2) + self.xi)
        self.path.zero_()
        self.start = theta
        self.consolidated = True
