"""The quadratic penalty EWC and SI share, with its gradient in closed form."""

from __future__ import annotations

import torch

from cl_regimes.methods.base import Method
from cl_regimes.models import row_dot


class QuadraticPenalty(Method):
    """Penalty ``scale * sum importance * (theta - anchor)^2`` of each run, and its gradient
    ``2 * scale * importance * (theta - anchor)``, from one pass over the parameters
    (no autograd graph through an [K, N] vector, no fresh [K, N] allocation per step).
    Subclasses set ``scale`` and, after a task, ``importance`` and ``anchor`` ([K, N])."""

    scale: float

    def __init__(self, runs):
        super().__init__(runs)
        self.importance: torch.Tensor | None = None  # None: no penalty yet
        self.anchor: torch.Tensor | None = None
        self.offset: torch.Tensor | None = None  # theta - anchor, then the gradient
        self.weighted: torch.Tensor | None = None

    @torch.no_grad()
    def penalty(self, x, logits, y):
        if self.importance is None:
            return None
        if self.offset is None:
            self.offset, self.weighted = (
                torch.empty_like(self.anchor),
                torch.empty_like(self.anchor),
            )
        offset = self.runs.flat(self.runs.params, out=self.offset).sub_(self.anchor)
        weighted = torch.mul(self.importance, offset, out=self.weighted)
        return self.scale * row_dot(weighted, offset)

    def penalty_gradient(self):
        return self.weighted.mul_(2 * self.scale)
