"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017) over the regime's trainable parameters."""

from __future__ import annotations

import numpy as np
import quadprog
import torch

from cl_regimes.methods.base import Method


def project(grad: torch.Tensor, memories: torch.Tensor, margin: float = 0.0,
            ridge: float = 1e-5) -> torch.Tensor:
    """The update closest to ``grad`` whose dot product with every row of ``memories``
    (one gradient per past task) is non-negative, from GEM's dual QP:

        min_v 1/2 v^T (G G^T + ridge I) v + (G g)^T v   s.t.  v >= margin;   g~ = g + G^T v.

    ``grad`` is returned unchanged when no constraint is violated.
    """
    dots = memories @ grad
    if bool((dots >= 0).all()):
        return grad
    gram = (memories @ memories.T).double().cpu().numpy()
    gram = (gram + gram.T) / 2 + ridge * np.eye(len(gram))
    k = len(gram)
    v = quadprog.solve_qp(gram, -dots.double().cpu().numpy(), np.eye(k), np.full(k, margin))[0]
    return grad + torch.from_numpy(v).to(grad) @ memories


class GEM(Method):
    """Keeps ``memories_per_task`` non-augmented samples per task; at every step,
    projects the update so that no past task's memory loss increases to first order."""

    def __init__(self, trainer, memories_per_task: int, margin: float, ridge: float):
        super().__init__(trainer)
        self.memories_per_task, self.margin, self.ridge = memories_per_task, margin, ridge
        self.memories: list[tuple[torch.Tensor, torch.Tensor]] = []

    def after_backward(self, update, task_grad):
        if not self.memories:
            return update
        grads = torch.stack([self.trainer.loss_gradient(x, y) for x, y in self.memories])
        return project(update, grads, self.margin, self.ridge)

    def after_task(self, task):
        self.memories.append(self.sample(task, self.memories_per_task))
