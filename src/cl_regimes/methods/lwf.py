"""Learning without Forgetting (Li & Hoiem 2017) with a shared, task-masked head."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from cl_regimes.methods.base import Method


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, mean over the batch."""
    return F.kl_div(F.log_softmax(student.float() / temperature, 1),
                    F.log_softmax(teacher.float() / temperature, 1),
                    reduction="batchmean", log_target=True)


class LwF(Method):
    """Distils every previous task's logit slice from a snapshot taken after each task.

    Before each new task (from the second on), the head alone is warmed up on
    the new task for ``warmup_epochs``, as in the original LwF.
    """

    def __init__(self, trainer, lam: float, temperature: float, warmup_epochs: int):
        super().__init__(trainer)
        self.lam, self.temperature, self.warmup_epochs = lam, temperature, warmup_epochs
        self.teacher = None
        self.old_blocks: list[int] = []

    def before_task(self, task):
        if self.teacher is not None and self.warmup_epochs > 0:
            t = self.trainer
            t.fit(*self.train_data(task), t.head_params, self.warmup_epochs)

    def penalty(self, x, logits, y):
        if self.teacher is None:
            return None
        with torch.no_grad():
            target = self.teacher(x)
        cpt = self.trainer.classes_per_task
        return self.lam * sum(
            distillation(logits[:, b * cpt:(b + 1) * cpt], target[:, b * cpt:(b + 1) * cpt],
                         self.temperature) for b in self.old_blocks)

    def after_task(self, task):
        self.teacher = copy.deepcopy(self.trainer.model).eval().requires_grad_(False)
        self.old_blocks.append(task.block)
