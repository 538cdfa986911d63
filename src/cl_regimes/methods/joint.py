"""Joint training on everything seen so far: the upper reference (not in the paper)."""

import torch

from cl_regimes.methods.base import Method


class Joint(Method):
    """At task t, trains on the union of tasks 0..t (each sample keeps its own task mask)."""

    def train_data(self, task):
        seen = self.trainer.tasks[: task.position + 1]
        return (torch.cat([t.train.x for t in seen]), torch.cat([t.train.y for t in seen]))
