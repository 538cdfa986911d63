"""Synaptic Intelligence: the path integral, the importance and the penalty."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from cl_regimes.methods.si import SI
from cl_regimes.models import flatten

ACTIVE = torch.ones(1, dtype=torch.bool)


def logistic_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = (x @ torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64) > 0).double()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def loss():
        return torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)

    params = [w, b]
    return SimpleNamespace(
        params=params, runs=1, flat=lambda ts, out=None: flatten(ts, 1, out)
    ), loss


def gradient_descent(si: SI, trainer, loss, steps: int, lr: float) -> list[float]:
    """Plain gradient descent driving SI's hooks as the trainer does."""
    losses = []
    for _ in range(steps):
        value = loss()
        losses.append(value.item())
        g = flatten(torch.autograd.grad(value, trainer.params), 1)
        update = si.direction(g.clone(), g, None, ACTIVE)
        with torch.no_grad():
            sizes = [p.numel() for p in trainer.params]
            for p, u in zip(trainer.params, update.split(sizes, 1), strict=True):
                p -= lr * u.view_as(p)
        si.after_step(g)
    losses.append(loss().item())
    return losses


def test_path_integral_on_a_convex_problem():
    trainer, loss = logistic_problem()
    si = SI(trainer, c=1.0, xi=0.1, clip=1e9)
    start = flatten(trainer.params, 1).detach().clone()
    losses = gradient_descent(si, trainer, loss, steps=300, lr=0.05)
    path = si.path.clone()
    drop = losses[0] - losses[-1]
    # gradient descent: every step contributes lr * g_i^2 >= 0 to each coordinate
    assert (path >= 0).all() and path.sum() > 0
    # the path integral is the loss drop, to first order in the step size (from above:
    # the loss is convex, so each step's drop is at most its linear estimate)
    assert drop > 0.1
    assert drop <= path.sum().item() <= 1.05 * drop
    si.after_task(None)
    end = flatten(trainer.params, 1).detach()
    omega = si.importance
    torch.testing.assert_close(omega, path / ((end - start) ** 2 + 0.1))
    assert (omega >= 0).all()
    assert torch.equal(si.path, torch.zeros_like(path))
    assert torch.equal(si.start, end) and torch.equal(si.anchor, end)


def test_penalty_after_consolidation():
    trainer, loss = logistic_problem(1)
    si = SI(trainer, c=3.0, xi=0.1, clip=1e9)
    assert si.penalty(None, None, None) is None
    gradient_descent(si, trainer, loss, steps=50, lr=0.1)
    si.after_task(None)
    assert si.penalty(None, None, None).item() == 0.0  # at the anchor
    with torch.no_grad():
        trainer.params[0] += torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    shift = torch.tensor([[0.1, -0.2, 0.3, 0.0]], dtype=torch.float64)
    expected = 3.0 * (si.importance * shift**2).sum().item()
    assert si.penalty(None, None, None).item() == pytest.approx(expected, rel=1e-12)
    # the closed-form gradient is autograd's of the penalty written out here
    theta = flatten(trainer.params, 1)
    (g,) = torch.autograd.grad(
        3.0 * (si.importance * (theta - si.anchor) ** 2).sum(), trainer.params[0]
    )
    si.penalty(None, None, None)
    torch.testing.assert_close(si.penalty_gradient()[0, :3], g)
    torch.testing.assert_close(g, 6.0 * si.importance[0, :3] * shift[0, :3])


def test_importance_accumulates_over_tasks():
    trainer, loss = logistic_problem(2)
    si = SI(trainer, c=1.0, xi=0.1, clip=1e9)
    gradient_descent(si, trainer, loss, steps=30, lr=0.1)
    si.after_task(None)
    first = si.importance.clone()
    gradient_descent(si, trainer, loss, steps=30, lr=0.1)
    path = si.path.clone()
    start = si.start.clone()
    si.after_task(None)
    delta = flatten(trainer.params, 1).detach() - start
    torch.testing.assert_close(si.importance, first + path / (delta**2 + 0.1))


def test_update_values_are_clipped():
    trainer, _ = logistic_problem()
    si = SI(trainer, c=1.0, xi=0.1, clip=0.5)
    update = torch.tensor([[2.0, -3.0, 0.25, -0.5]], dtype=torch.float64)
    assert si.direction(update, update, None, ACTIVE).tolist() == [[0.5, -0.5, 0.25, -0.5]]


def test_importance_over_trainable_parameters_only(smoke_trainer):
    trainer = smoke_trainer("head", "si")
    assert trainer.method.path.numel() == sum(p.numel() for p in trainer.params) == 650
    trainer = smoke_trainer("from_layer4", "si")
    n = sum(p.numel() for p in trainer.params)
    assert trainer.method.start.numel() == trainer.method.path.numel() == n
    assert n < sum(p.numel() for p in trainer.model.parameters())


@pytest.mark.parametrize("regime", ["head", "from_layer3"])
def test_si_smoke_run_is_finite(smoke_runs, regime):
    run = smoke_runs.get(regime, "si")
    method = run.trainer.method
    assert torch.isfinite(method.importance).all() and method.importance.abs().sum() > 0
    assert method.importance.numel() == sum(p.numel() for p in run.trainer.params)
    assert method.anchor is not None
    for task in run.outcome["tasks"]:
        assert all(math.isfinite(v) for v in task["train_loss"])
        assert all(math.isfinite(task[k]) for k in ("g2", "r2", "cos", "u", "drift"))
