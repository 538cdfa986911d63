"""ER-ACE (Caccia et al. 2022): experience replay with the asymmetric cross-entropy."""

from __future__ import annotations

import torch

from cl_regimes.methods.memory import Replay


class ERACE(Replay):
    """From the second task on, the incoming batch is scored over its own task's classes
    alone (so it does not push the old classes' logits down), the replayed batch (its own
    forward pass) over every class met so far, and the two losses are summed (Mammoth's
    ``er_ace`` without its cosine classifier: the study's shared linear head). In the
    task-incremental scenario both are the task's classes: ER-ACE is then ER with the
    replayed batch in a forward pass of its own."""

    name = "er_ace"
    scenarios = ("task_incremental", "class_incremental")  # Mammoth's; domain: no classes apart
    stop_on_total_loss = True

    def __init__(self, runs, memory_size, replay_batch_size):
        super().__init__(runs, memory_size, replay_batch_size)
        self.replaying = False  # from the second task on (Mammoth's, not task-free)

    def incoming_outputs(self, tasks):
        return torch.tensor([sorted(t.classes) for t in tasks], device=tasks[0].train.y.device)

    def penalty(self, x, logits, y):
        return self.replay_loss() if self.replaying else None

    def after_task(self, tasks):
        self.replaying = True
