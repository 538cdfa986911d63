"""Joint training on everything seen so far: the upper reference (not in the paper)."""

import torch

from cl_regimes.methods.base import Method


class Joint(Method):
    """At task t, trains on the union of tasks 0..t (each sample keeps its own task mask)."""

    name = "joint"
    reference = True

    def train_data(self, seen):
        return (
            torch.stack([torch.cat([t.train.x for t in tasks]) for tasks in seen]),
            torch.stack([torch.cat([t.train.y for t in tasks]) for tasks in seen]),
        )
