"""Learning without Forgetting: the distillation loss, which logits it reads, its average over
old tasks, the head warm-up and the BatchNorm updates of the original's second forward pass."""

from __future__ import annotations

import math

import pytest
import torch

from cl_regimes import train
from cl_regimes.methods import lwf


def test_distillation_zero_gradient_at_equal_logits():
    s = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = lwf.distillation(s, s.detach(), 2.0).mean()
    (grad,) = torch.autograd.grad(loss, s)
    assert grad.abs().max().item() < 1e-7


def test_distillation_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    # softmax, power 1/T, renormalised = softmax(z / T): teacher (e/(e+1), 1/(e+1)) at T = 2,
    # student (1/2, 1/2); the loss is the cross-entropy -sum t log s (log clamped by 1e-8)
    p = math.e / (math.e + 1)
    expected = -(p * math.log(0.5 + 1e-8) + (1 - p) * math.log(0.5 + 1e-8))
    assert lwf.distillation(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # = KL(teacher || student) + the teacher's entropy
    kl = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert expected == pytest.approx(kl + entropy, rel=1e-6)


def test_distillation_clamps_like_the_original():
    # a teacher certain of class 0: its softmax of class 1 is clamped at 1e-7 before the power
    teacher = torch.tensor([[40.0, 0.0]])
    student = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([1.0, 1e-7]).pow(0.5)
    t = t / t.sum()
    expected = -(t * torch.log(torch.tensor([0.5, 0.5]) + 1e-8)).sum()
    assert lwf.distillation(student, teacher, 2.0).item() == pytest.approx(expected.item())


@pytest.fixture
def lwf_after_two_tasks(smoke_trainer):
    """An LwF trainer whose first two tasks are done (no training needed for these checks)."""
    trainer = smoke_trainer("from_layer4", "lwf", **{"lwf.lam": 1.5})
    for task in trainer.tasks[0][:2]:
        trainer.method.after_task([task])
    return trainer


def slice_of(block: int, cpt: int = 2) -> slice:
    return slice(block * cpt, (block + 1) * cpt)


def test_penalty_is_lambda_times_the_mean_over_old_tasks(lwf_after_two_tasks):
    trainer = lwf_after_two_tasks
    method = trainer.method
    (tasks,) = trainer.tasks
    old, current, unseen = (
        [t.block for t in tasks[:2]],
        tasks[2].block,
        [t.block for t in tasks[3:]],
    )
    assert method.old_classes == [[t.classes] for t in tasks[:2]]
    x = trainer.inputs(tasks[2].train.x[:16, None])
    with torch.no_grad():
        teacher = method.teacher(x)[:, 0]
    gen = torch.Generator().manual_seed(0)
    student = teacher + torch.randn(teacher.shape, generator=gen)
    (base,) = method.penalty(x, student[:, None], None)
    per_task = [
        lwf.distillation(student[:, slice_of(b)], teacher[:, slice_of(b)], 2.0).mean() for b in old
    ]
    assert base.item() == pytest.approx(1.5 * (sum(per_task) / len(per_task)).item(), rel=1e-6)
    assert per_task[0].item() != pytest.approx(per_task[1].item())
    for block in [current, *unseen]:
        changed = student.clone()
        changed[:, slice_of(block)] += 5 * torch.randn(16, 2, generator=gen)
        assert method.penalty(x, changed[:, None], None).item() == base.item(), block
    for block in old:
        changed = student.clone()
        changed[:, slice_of(block)] += 5 * torch.randn(16, 2, generator=gen)
        assert method.penalty(x, changed[:, None], None).item() != pytest.approx(base.item())


def test_penalty_gradient_reaches_only_old_slices(lwf_after_two_tasks):
    trainer = lwf_after_two_tasks
    x = trainer.inputs(trainer.tasks[0][2].train.x[:8, None])
    student = torch.randn(8, 1, 10, generator=torch.Generator().manual_seed(2)).requires_grad_()
    (grad,) = torch.autograd.grad(trainer.method.penalty(x, student, None).sum(), student)
    old = [classes[0] // 2 for (classes,) in trainer.method.old_classes]
    for block in range(5):
        touched = bool(grad[:, 0, slice_of(block)].abs().sum() > 0)
        assert touched == (block in old), block


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


def test_warmup_trains_the_head_at_a_constant_rate_for_its_epochs(smoke_trainer, monkeypatch):
    trainer = smoke_trainer("from_layer4", "lwf", **{"lwf.warmup_epochs": 3})
    method = trainer.method
    (tasks,) = trainer.tasks
    calls = []
    fit = trainer.fit

    def spy(x, y, params, epochs, method=None, schedule=True, early_stopping=True, **kw):
        rates = []
        step = torch.optim.Adam.step

        def record(opt, *args, **kwargs):
            rates.append(opt.param_groups[0]["lr"])
            return step(opt, *args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(torch.optim.Adam, "step", record)
            out = fit(x, y, params, epochs, method, schedule, early_stopping, **kw)
        calls.append(
            {
                "params": params,
                "epochs": [o["epochs_run"] for o in out],
                "rates": set(rates),
                "steps": len(rates),
                "schedule": schedule,
                "early_stopping": early_stopping,
            }
        )
        return out

    object.__setattr__(method.runs, "fit", spy)  # the method's view of the trainer
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    method.before_task([tasks[0]])  # no teacher yet: no warm-up
    assert not calls
    method.after_task([tasks[0]])
    method.before_task([tasks[1]])
    (call,) = calls
    assert call["params"] == list(trainer.model.fc.parameters())
    assert call["epochs"] == [3] and call["rates"] == {trainer.cfg.lr}
    assert call["schedule"] is False and call["early_stopping"] is False
    assert call["steps"] == 3 * math.ceil(len(tasks[1].train.y) / trainer.cfg.batch_size)
    for name, p in trainer.model.named_parameters():
        assert torch.equal(before[name], p) != name.startswith("fc."), name
    method.after_task([tasks[1]])


def test_early_stopping_sees_the_penalty(smoke_trainer):
    # EWC and LwF stop on loss + penalty, the others on the task loss
    from cl_regimes import methods

    assert methods.get("lwf").stop_on_total_loss and methods.get("ewc").stop_on_total_loss
    assert not any(methods.get(m).stop_on_total_loss for m in ("si", "gem", "finetune", "joint"))
    trainer = smoke_trainer("from_layer4", "lwf", **{"lwf.lam": 1e4, "lwf.warmup_epochs": 0})
    (tasks,) = trainer.tasks
    trainer.method.after_task([tasks[0]])
    x, y = tasks[1].train.x[None], tasks[1].train.y[None]
    (out,) = trainer.fit(x, y, trainer.params, 1, trainer.method)
    # with a huge lambda the monitored loss is far above any cross-entropy of 2 classes
    assert out["train_loss"][0] > 10 * math.log(2)


def test_second_student_forward_doubles_the_batchnorm_update(smoke_trainer):
    def statistics_after_one_lwf_step(forwards):
        trainer = smoke_trainer(
            "from_layer4", "lwf", **{"lwf.student_forwards": forwards, "lwf.warmup_epochs": 0}
        )
        (tasks,) = trainer.tasks
        trainer.method.after_task([tasks[0]])
        trainer.method.before_task([tasks[1]])
        bn = trainer.model.layer1[0].bn1
        before = bn.running_mean.clone()
        x = tasks[1].train.x[None, :32]
        xb, _, _ = trainer._batch(x, tasks[1].train.y[None, :32], {0: torch.arange(32)}, 0)
        trainer.model.train()
        with torch.no_grad():
            trainer.model(xb)
        return before, bn.running_mean.clone(), bn.momentum

    before, one, momentum_one = statistics_after_one_lwf_step(1)
    _, two, momentum_two = statistics_after_one_lwf_step(2)
    assert momentum_one == 0.1 and momentum_two == pytest.approx(1 - 0.9**2)
    # two updates with the same batch statistic s: r <- 0.81 r + 0.19 s
    s = before + (one - before) / 0.1
    torch.testing.assert_close(two, 0.81 * before + 0.19 * s, rtol=1e-5, atol=1e-6)


def test_momentum_restored_after_the_task(smoke_runs):
    run = smoke_runs.get("from_layer4", "lwf")
    from cl_regimes.models import batchnorms

    assert all(m.momentum == 0.1 for m in batchnorms(run.trainer.model))
    assert isinstance(run.trainer, train.Trainer)


OUTPUTS = ("new", "scored")  # the settings of lwf.warmup_outputs


def warmed_up_head(smoke_trainer, scenario: str, outputs: str):
    """The head before and after LwF's warm-up for the second task, and the two tasks."""
    trainer = smoke_trainer(
        "from_layer4", "lwf", scenario=scenario, **{"lwf.warmup_outputs": outputs}
    )
    (tasks,) = trainer.tasks
    for position in range(2):
        met = sorted({c for t in tasks[: position + 1] for c in t.classes})
        trainer.seen = torch.tensor([met])
        if position == 0:
            trainer.method.before_task([tasks[0]])
            trainer.method.after_task([tasks[0]])
    head = trainer.model.fc
    before = torch.cat([head.weight, head.bias[:, None]], 1).detach().clone()
    trainer.method.before_task([tasks[1]])
    return before, torch.cat([head.weight, head.bias[:, None]], 1).detach(), tasks


@pytest.mark.parametrize("outputs", OUTPUTS)
def test_class_incremental_warmup_trains_the_new_classes_outputs_alone(smoke_trainer, outputs):
    before, after, tasks = warmed_up_head(smoke_trainer, "class_incremental", outputs)
    moved = (before != after).any(1)
    assert moved[tasks[1].classes].all()
    assert moved[tasks[0].classes].any() == (outputs == "scored")  # the old classes' rows
    assert not moved[[c for t in tasks[2:] for c in t.classes]].any()


@pytest.mark.parametrize("outputs", OUTPUTS)
def test_domain_incremental_has_no_warmup_of_its_shared_head(smoke_trainer, outputs):
    before, after, _ = warmed_up_head(smoke_trainer, "domain_incremental", outputs)
    assert torch.equal(before, after) == (outputs == "new")


def test_task_incremental_warmup_is_the_same_either_way(smoke_trainer):
    new, scored = (warmed_up_head(smoke_trainer, "task_incremental", o)[1] for o in OUTPUTS)
    assert torch.equal(new, scored)
