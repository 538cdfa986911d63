"""Learning without Forgetting (Li & Hoiem 2017) with a shared, task-masked head."""

from __future__ import annotations

import copy
from typing import Annotated

import torch
import torch.nn.functional as F

from cl_regimes.config import NON_NEGATIVE, POSITIVE, Choice, Range
from cl_regimes.methods.base import Method
from cl_regimes.models import batchnorms, upcast

EPS_PROB, EPS_LOG = 1e-7, 1e-8  # the original's clamps


def _powered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    p = F.softmax(upcast(logits), -1).clamp_min(EPS_PROB).pow(1 / temperature)
    return p / p.sum(-1, keepdim=True)


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-sample distillation loss over the last dimension, as the original computes it
    (Li & Hoiem's "power" formulation): softmax, clamp at 1e-7, power 1/T, renormalise,
    then the cross-entropy of the student's distribution against the teacher's.
    Up to the clamps the distributions are softmax(z / T), and the loss is
    KL(teacher || student) plus the teacher's entropy."""
    with torch.no_grad():
        target = _powered(teacher, temperature)
    return -(target * torch.log(_powered(student, temperature) + EPS_LOG)).sum(-1)


class LwF(Method):
    """Distils every previous task's logit slice (its classes' outputs: the whole head in
    the domain-incremental scenario) from a snapshot taken after each task, averaging
    the distillation losses over the old tasks.

    Before each new task (from the second on) the head alone is warmed up on it for
    ``warmup_epochs`` at the constant learning rate, without early stopping. With
    ``warmup_outputs="new"`` (Li & Hoiem's and the original's) it trains the outputs of
    the task's new classes alone, scored among themselves: the old classes' rows do not
    move class-incrementally, and domain-incrementally, where every task shares every
    output, there is no warm-up. ``"scored"`` warms up every output the scenario scores
    (the same in the task-incremental scenario). With
    ``student_forwards=2`` BatchNorm running statistics take two updates per step, as
    in the original, whose distillation term ran its own forward pass of the student
    (on the same batch and parameters, so the same batch statistics: two updates with
    momentum m are one with 1 - (1 - m)^2).
    """

    name = "lwf"
    stop_on_total_loss = True

    def __init__(
        self,
        runs,
        lam: Annotated[float, NON_NEGATIVE],
        temperature: Annotated[float, POSITIVE],
        warmup_epochs: Annotated[int, Range(0)],
        warmup_outputs: Annotated[str, Choice(("new", "scored"))],
        student_forwards: Annotated[int, Choice((1, 2))],
    ):
        super().__init__(runs)
        self.lam, self.temperature = lam, temperature
        self.warmup_epochs, self.warmup_outputs = warmup_epochs, warmup_outputs
        self.student_forwards = student_forwards
        self.teacher = None
        self.old_classes: list[list[list[int]]] = []  # per old task, each run's classes
        self.momenta: list[float] | None = None

    def before_task(self, tasks):
        if self.teacher is None:
            return
        if self.warmup_epochs > 0:
            self.warm_up(tasks)
        if self.student_forwards == 2:
            norms = batchnorms(self.runs.model)
            self.momenta = [m.momentum for m in norms]
            for m in norms:
                m.momentum = 1 - (1 - m.momentum) ** 2

    def warm_up(self, tasks):
        r, outputs = self.runs, None
        if self.warmup_outputs == "new":
            new = [
                sorted(set(t.classes).difference(*(old[k] for old in self.old_classes)))
                for k, t in enumerate(tasks)
            ]
            if not new[0]:
                return
            outputs = torch.tensor(new, device=tasks[0].train.y.device)
        r.fit(
            torch.stack([t.train.x for t in tasks]),
            torch.stack([t.train.y for t in tasks]),
            list(r.model.fc.parameters()),
            self.warmup_epochs,
            schedule=False,
            early_stopping=False,
            outputs=outputs,
        )

    def penalty(self, x, logits, y):
        if self.teacher is None:
            return None
        with torch.no_grad():
            target = self.teacher(x)
        b, k, _ = logits.shape
        old = torch.tensor(self.old_classes, device=logits.device).transpose(0, 1)
        index = old.flatten(1)[None].expand(b, -1, -1)  # [B, K, old tasks * classes]

        def slices(z):  # each old task's outputs [B, K, old tasks, classes]
            return z.gather(2, index).view(b, k, *old.shape[1:])

        losses = distillation(slices(logits), slices(target), self.temperature)
        return self.lam * losses.mean((0, 2))

    def retention(self, task_grad, penalty_grad, update):
        # read after both backward passes: the accumulated gradient g + penalty gradient
        return None if penalty_grad is None else task_grad + penalty_grad

    def after_task(self, tasks):
        if self.momenta is not None:
            for m, momentum in zip(batchnorms(self.runs.model), self.momenta):
                m.momentum = momentum
            self.momenta = None
        self.teacher = copy.deepcopy(self.runs.model).eval().requires_grad_(False)
        self.old_classes.append([t.classes for t in tasks])
