"""The hooks a continual-learning method plugs into the trainer.

One step of training task t, as the trainer runs it::

    loss    = task loss on the batch (logits masked to each sample's task)
    penalty = method.penalty(x, logits, y)             # lambda * Omega, or None
    g       = grad of loss      (trainable parameters only, one flat vector)
    update  = g + grad of penalty
    update  = method.after_backward(update, g)         # GEM projects, SI clips
    optimiser step along update;  method.after_step(g)

around which ``before_task``, ``train_data`` and ``after_task`` run once per task.
"""

from __future__ import annotations

import torch


def flatten(tensors) -> torch.Tensor:
    """Concatenate tensors (parameters or their gradients) into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


class Method:
    """Plain sequential training; subclasses override the hooks they need."""

    needs_task_gradient = False  # the trainer must compute g apart from the penalty's gradient

    def __init__(self, trainer):
        self.trainer = trainer

    def before_task(self, task) -> None:
        pass

    def train_data(self, task) -> tuple[torch.Tensor, torch.Tensor]:
        """The (uint8 images, labels) to train ``task`` on."""
        return task.train.x, task.train.y

    def penalty(self, x, logits, y) -> torch.Tensor | None:
        """lambda * Omega for this batch (None: no penalty)."""
        return None

    def after_backward(self, update: torch.Tensor, task_grad: torch.Tensor | None) -> torch.Tensor:
        """The direction the optimiser will follow, given the summed gradient."""
        return update

    def after_step(self, task_grad: torch.Tensor | None) -> None:
        pass

    def after_task(self, task) -> None:
        pass

    def sample(self, task, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` random non-augmented training images of ``task`` (seeded by the run)."""
        x, y = task.train.x, task.train.y
        idx = torch.randperm(len(y), device=y.device, generator=self.trainer.generator)[:count]
        return x[idx], y[idx]
