"""Experience replay (Chaudhry et al. 2019; Rolnick et al. 2019) with a reservoir memory."""

from __future__ import annotations

import torch

from cl_regimes.methods.memory import Replay
from cl_regimes.models import cross_entropy


class ER(Replay):
    """Each step's batch of B is joined by M replayed samples in one forward pass (so
    BatchNorm sees both) and trained on the joined batch's mean cross-entropy (Mammoth's
    ``er``): the task loss L on the B plus the penalty M / (B + M) (L_replay - L), which
    is what replay adds to the task loss's gradient."""

    name = "er"
    stop_on_total_loss = True  # it minimises the joined batch's loss

    def join(self, x, y):
        self.batch = len(y)
        if not self.memory.held():
            return x, y
        images, labels = self.replayed()
        return torch.cat([x, self.runs.inputs(images)]), torch.cat([y, labels])

    def penalty(self, x, logits, y):
        b = self.batch
        if len(y) == b:
            return None
        task, replay = (
            cross_entropy(*self.runs.score(logits[part], y[part]))
            for part in (slice(None, b), slice(b, None))
        )
        return (replay - task) * (len(y) - b) / len(y)
