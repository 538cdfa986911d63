"""Synaptic Intelligence (Zenke et al. 2017) over the regime's trainable parameters."""

from __future__ import annotations

from typing import Annotated

import torch

from cl_regimes.config import NON_NEGATIVE, POSITIVE
from cl_regimes.methods.quadratic import QuadraticPenalty


class SI(QuadraticPenalty):
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
        self.scale, self.xi, self.clip = c, xi, clip
        self.start = runs.flat(runs.params).detach().clone()  # theta at the task's start
        self.path = torch.zeros_like(self.start)
        self.before = torch.empty_like(self.start)  # theta before the step
        self.change = torch.empty_like(self.start)  # its change over the step
        self.clipped = torch.empty_like(self.start)

    def direction(self, total, task_grad, penalty_grad, active):
        self.runs.flat(self.runs.params, out=self.before)
        return torch.clamp(total, -self.clip, self.clip, out=self.clipped)

    def retention(self, task_grad, penalty_grad, update):
        return penalty_grad  # the penalty's gradient before clipping

    def after_step(self, task_grad):
        change = self.runs.flat(self.runs.params, out=self.change).sub_(self.before)
        self.path.addcmul_(task_grad, change, value=-1)

    def after_task(self, tasks):
        theta = self.runs.flat(self.runs.params).detach()
        omega = self.path / ((theta - self.start).pow(2) + self.xi)
        self.importance = omega if self.importance is None else self.importance + omega
        self.path.zero_()
        self.start = self.anchor = theta
