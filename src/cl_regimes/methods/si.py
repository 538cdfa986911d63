"""Synaptic Intelligence (Zenke et al. 2017) over the regime's trainable parameters."""

from __future__ import annotations

import torch

from cl_regimes.methods.base import Method, flatten


class SI(Method):
    """Penalty c * sum Omega (theta - theta*)^2, where Omega accumulates, per task,
    the path integral w = sum -g * delta_theta (g: the unregularised gradient)
    divided by (total change)^2 + xi. Update values are clipped at ``clip``."""

    needs_task_gradient = True

    def __init__(self, trainer, c: float, xi: float, clip: float):
        super().__init__(trainer)
        self.c, self.xi, self.clip = c, xi, clip
        self.start = flatten(trainer.params).detach().clone()
        self.omega = torch.zeros_like(self.start)
        self.path = torch.zeros_like(self.start)
        self.before: torch.Tensor | None = None
        self.consolidated = False

    def penalty(self, x, logits, y):
        if not self.consolidated:
            return None
        return self.c * (self.omega * (flatten(self.trainer.params) - self.start).pow(2)).sum()

    def after_backward(self, update, task_grad):
        self.before = flatten(self.trainer.params).detach().clone()
        return update.clamp(-self.clip, self.clip)

    def after_step(self, task_grad):
        self.path -= task_grad * (flatten(self.trainer.params).detach() - self.before)

    def after_task(self, task):
        theta = flatten(self.trainer.params).detach().clone()
        self.omega += self.path / ((theta - self.start).pow(2) + self.xi)
        self.path.zero_()
        self.start = theta
        self.consolidated = True
