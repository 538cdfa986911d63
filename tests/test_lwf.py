"""Learning without Forgetting: the distillation loss and which logits it reads."""

from __future__ import annotations

import math

import pytest
import torch

from cl_regimes.methods import lwf


def test_distillation_zero_at_equal_logits():
    s = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = lwf.distillation(s, s.detach(), 2.0)
    (grad,) = torch.autograd.grad(loss, s)
    assert abs(loss.item()) < 1e-7
    assert grad.abs().max().item() < 1e-7


def test_distillation_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    # temperature 2: teacher softmax of (1, 0) = (e/(e+1), 1/(e+1)), student (1/2, 1/2)
    p = math.e / (math.e + 1)
    expected = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    assert lwf.distillation(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # a batch is averaged over its samples
    both = lwf.distillation(torch.cat([student, teacher]), torch.cat([teacher, teacher]), 2.0)
    assert both.item() == pytest.approx(expected / 2, rel=1e-6)


def test_distillation_positive_when_logits_differ():
    gen = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    assert lwf.distillation(s, t, 2.0).item() > 1e-4
    # shifting every logit of a sample by a constant changes no distribution
    assert abs(lwf.distillation(s + 3.0, s, 2.0).item()) < 1e-6


@pytest.fixture
def lwf_after_two_tasks(smoke_trainer):
    """An LwF trainer whose first two tasks are done (no training needed for these checks)."""
    trainer = smoke_trainer("from_layer4", "lwf", **{"lwf.lam": 1.5})
    for task in trainer.tasks[:2]:
        trainer.method.after_task(task)
    return trainer


def slice_of(block: int, cpt: int = 2) -> slice:
    return slice(block * cpt, (block + 1) * cpt)


def test_penalty_reads_only_previous_tasks_slices(lwf_after_two_tasks):
    trainer = lwf_after_two_tasks
    method = trainer.method
    old, current, unseen = [t.block for t in trainer.tasks[:2]], trainer.tasks[2].block, [
        t.block for t in trainer.tasks[3:]]
    assert method.old_blocks == old
    x = trainer.inputs(trainer.tasks[2].train.x[:16])
    y = trainer.tasks[2].train.y[:16]
    with torch.no_grad():
        teacher = method.teacher(x)
    gen = torch.Generator().manual_seed(0)
    student = teacher + torch.randn(teacher.shape, generator=gen)
    base = method.penalty(x, student, y)
    expected = 1.5 * sum(lwf.distillation(student[:, slice_of(b)], teacher[:, slice_of(b)], 2.0)
                         for b in old)
    assert base.item() == pytest.approx(expected.item(), rel=1e-6)
    assert base.item() > 0
    for block in [current, *unseen]:
        changed = student.clone()
        changed[:, slice_of(block)] += 5 * torch.randn(16, 2, generator=gen)
        assert method.penalty(x, changed, y).item() == base.item(), f"block {block} entered"
    for block in old:
        changed = student.clone()
        changed[:, slice_of(block)] += 5 * torch.randn(16, 2, generator=gen)
        assert method.penalty(x, changed, y).item() != pytest.approx(base.item())
    # the student equal to the teacher on the old slices: no penalty
    matched = student.clone()
    for block in old:
        matched[:, slice_of(block)] = teacher[:, slice_of(block)]
    assert abs(method.penalty(x, matched, y).item()) < 1e-6


def test_penalty_gradient_reaches_only_old_slices(lwf_after_two_tasks):
    trainer = lwf_after_two_tasks
    x = trainer.inputs(trainer.tasks[2].train.x[:8])
    student = torch.randn(8, 10, generator=torch.Generator().manual_seed(2)).requires_grad_()
    (grad,) = torch.autograd.grad(trainer.method.penalty(x, student, None), student)
    for block in range(5):
        touched = bool(grad[:, slice_of(block)].abs().sum() > 0)
        assert touched == (block in trainer.method.old_blocks), block


def test_teacher_is_a_frozen_snapshot(lwf_after_two_tasks):
    trainer = lwf_after_two_tasks
    teacher = trainer.method.teacher
    assert teacher is not trainer.model and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    snapshot = [p.clone() for p in teacher.parameters()]
    with torch.no_grad():
        trainer.model.fc.weight.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(snapshot, teacher.parameters(), strict=True))


def test_no_penalty_before_a_teacher(smoke_trainer):
    assert smoke_trainer("head", "lwf").method.penalty(None, None, None) is None


def test_warmup_trains_the_head_only(smoke_trainer):
    trainer = smoke_trainer("from_layer4", "lwf")
    method = trainer.method
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    method.before_task(trainer.tasks[0])  # no teacher yet: no warm-up
    assert all(torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    method.after_task(trainer.tasks[0])
    method.before_task(trainer.tasks[1])
    for name, p in trainer.model.named_parameters():
        assert torch.equal(before[name], p) != name.startswith("fc."), name
