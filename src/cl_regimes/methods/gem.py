"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017) over the regime's trainable parameters."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import quadprog
import torch

from cl_regimes.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Choice
from cl_regimes.methods.base import Method


def project(
    grad: torch.Tensor, memories: torch.Tensor, margin: float = 0.0, ridge: float = 1e-5
) -> torch.Tensor:
    """The update closest to ``grad`` whose dot product with every row of ``memories``
    (one gradient per past task) is non-negative, from GEM's dual QP:

        min_v 1/2 v^T (G G^T + ridge I) v + (G g)^T v   s.t.  v >= margin;   g~ = g + G^T v.

    G G^T and G g are formed in float64, as the original does. Raises ValueError when
    quadprog fails.
    """
    G, g = memories.double(), grad.double()
    gram = (G @ G.T).cpu().numpy()
    gram = (gram + gram.T) / 2 + ridge * np.eye(len(gram))
    k = len(gram)
    dots = (G @ g).cpu().numpy()
    v = quadprog.solve_qp(gram, -dots, np.eye(k), np.full(k, margin))[0]
    return grad + torch.from_numpy(v).to(grad) @ memories


class GEM(Method):
    """Keeps ``memories_per_task`` non-augmented samples per task; at every step, projects
    each run's update so that no past task's memory loss increases to first order.

    Memory gradients are computed before the step's forward pass, in training mode;
    with ``memory_bn="update"`` those passes update BatchNorm running statistics too,
    as in the original (``"frozen"``: they leave them untouched). When the QP fails,
    the plain gradient is used, as in the original, and the failure is counted.
    """

    name = "gem"

    def __init__(
        self,
        runs,
        memories_per_task: Annotated[int, AT_LEAST_ONE],
        margin: Annotated[float, NON_NEGATIVE],
        ridge: Annotated[float, POSITIVE],
        memory_bn: Annotated[str, Choice(("update", "frozen"))],
    ):
        super().__init__(runs)
        self.memories_per_task, self.margin, self.ridge = memories_per_task, margin, ridge
        self.memory_bn = memory_bn
        self.memories: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.grads: torch.Tensor | None = None  # [past tasks, K, N], one per memory
        self.violated = torch.zeros(runs.runs, dtype=torch.bool)
        self.counts = np.zeros((runs.runs, 2), dtype=int)  # violations, QP fallbacks

    def before_step(self):
        for t, (x, y) in enumerate(self.memories):  # into a buffer reused every step
            self.runs.task_gradients(x, y, self.memory_bn == "update", out=self.grads[t])

    def direction(self, total, task_grad, penalty_grad, active):
        if not self.memories:
            return total
        dots = torch.einsum("tkn,kn->kt", self.grads, total)
        self.violated = ((dots < 0).any(1) & active).cpu()
        if not self.violated.any():
            return total
        update = total.clone()
        for k in self.violated.nonzero().flatten().tolist():
            self.counts[k, 0] += 1
            try:
                update[k] = project(total[k], self.grads[:, k], self.margin, self.ridge)
            except ValueError:
                self.counts[k, 1] += 1
        return update

    def retention(self, task_grad, penalty_grad, update):
        # the original read the projected gradient on steps with a violated constraint
        if not self.memories:
            return None
        return update * self.violated.to(update.device)[:, None]

    def after_task(self, tasks):
        self.memories.append(self.runs.sample(tasks, self.memories_per_task))
        n = sum(p.numel() for p in self.runs.params) // self.runs.runs
        self.grads = self.runs.params[0].new_empty(len(self.memories), self.runs.runs, n)

    def task_stats(self):
        stats = [{"violations": int(v), "qp_fallbacks": int(f)} for v, f in self.counts]
        self.counts[:] = 0
        return stats
