"""Averaged GEM (Chaudhry et al. 2019) over the regime's trainable parameters."""

from __future__ import annotations

import numpy as np
import torch

from cl_regimes.methods.memory import Replay
from cl_regimes.models import row_dot


class AGEM(Replay):
    """At every step, after the batch's own gradient g, the gradient of the task loss on a
    replay batch (not augmented, in training mode, so BatchNorm statistics follow it, as
    in Mammoth's ``agem_r``) is the reference g_ref; an update g with <g, g_ref> < 0 is
    replaced by its projection g - <g, g_ref> / ||g_ref||^2 g_ref, which no longer
    increases the replayed loss to first order. The memory is the replay methods'
    reservoir (Mammoth's ``agem_r``; its ``agem`` keeps a batch per task)."""

    name = "agem"
    augment_replay = False

    def __init__(self, runs, memory_size, replay_batch_size):
        super().__init__(runs, memory_size, replay_batch_size)
        self.reference: torch.Tensor | None = None  # [K, N], reused every step
        self.violated = torch.zeros(runs.runs, dtype=torch.bool)
        self.violations = np.zeros(runs.runs, dtype=int)

    def direction(self, total, task_grad, penalty_grad, active):
        if not self.memory.held():
            return total
        images, labels = self.replayed()
        ref = self.reference = self.runs.task_gradients(images, labels, True, out=self.reference)
        dot = row_dot(total, ref)
        violated = (dot < 0) & active
        self.violated = violated.cpu()
        self.violations += self.violated.numpy()
        scale = torch.where(violated, dot / row_dot(ref, ref).clamp_min(1e-30), 0.0)
        return total - scale[:, None] * ref

    def retention(self, task_grad, penalty_grad, update):
        # as GEM's: the projected gradient on steps with a violated constraint
        if self.reference is None:
            return None
        return update * self.violated.to(update.device)[:, None]

    def task_stats(self):
        stats = [{"violations": int(v)} for v in self.violations]
        self.violations[:] = 0
        return stats
