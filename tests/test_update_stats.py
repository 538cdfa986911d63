"""Update statistics in both definitions: the book's and the original study's, by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cl_regimes import models
from cl_regimes.methods import gem, lwf
from cl_regimes.steps import Hold, UpdateStats


def test_book_statistics_by_hand():
    stats = UpdateStats(1, torch.device("cpu"))
    on = torch.ones(1, dtype=torch.bool)
    # step 1: g = (3, 0, 4), r = (0, 2, 0): |g|^2 25, |r|^2 4, <g, r> 0
    stats.add(torch.tensor([[3.0, 0.0, 4.0]]), torch.tensor([[3.0, 2.0, 4.0]]), None, on)
    # step 2: g = (1, 1, 0), r = (1, 1, 0): |g|^2 2, |r|^2 2, <g, r> 2 (cosine 1)
    stats.add(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[2.0, 2.0, 0.0]]), None, on)
    (out,) = stats.summary()
    assert out["steps"] == 2
    assert out["g2"] == pytest.approx(13.5)  # (25 + 2) / 2
    assert out["r2"] == pytest.approx(3.0)  # (4 + 2) / 2
    assert out["cos"] == pytest.approx(0.15713484026)  # mean <g,r> 1 / sqrt(13.5 * 3)
    assert out["cos_step"] == pytest.approx(0.5)  # (0 + 1) / 2
    assert out["u"] == pytest.approx(18.5)  # (|(3,2,4)|^2 29 + |(2,2,0)|^2 8) / 2
    assert out["u"] == pytest.approx(
        out["g2"] + out["r2"] + 2 * out["cos"] * math.sqrt(out["g2"] * out["r2"]), rel=1e-12
    )
    assert out["u_head"] == out["u"]  # by default the head is every column
    stats = UpdateStats(1, torch.device("cpu"), torch.tensor([2]))
    stats.add(torch.tensor([[3.0, 0.0, 4.0]]), torch.tensor([[3.0, 2.0, 4.0]]), None, on)
    stats.add(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[2.0, 2.0, 0.0]]), None, on)
    assert stats.summary()[0]["u_head"] == pytest.approx(8.0)  # (4^2 + 0^2) / 2


@pytest.mark.parametrize("regime", ["head", "from_layer4", "full"])
def test_the_head_columns_are_the_heads_parameters_in_every_regime(smoke_trainer, regime):
    trainer = smoke_trainer(regime, "ewc")
    columns = trainer.head_columns(trainer.params)
    flat = models.flatten(trainer.params, 1)
    fc = models.flatten(list(trainer.model.fc.parameters()), 1)
    assert torch.equal(flat[:, columns], fc)


def test_original_statistics_by_hand_per_run():
    stats = UpdateStats(2, torch.device("cpu"))
    g = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    q = torch.tensor([[0.0, 2.0], [0.0, 0.0]])  # run 1 has no retention gradient (norm 0)
    stats.add(g, g, q, torch.ones(2, dtype=torch.bool))
    # a second step for run 0 only: run 1 is inactive (stopped) and must not count
    stats.add(
        torch.tensor([[0.0, 1.0], [9.0, 9.0]]),
        torch.zeros(2, 2),
        torch.tensor([[0.0, -1.0], [9.0, 9.0]]),
        torch.tensor([True, False]),
    )
    first, second = stats.summary()
    assert first["steps"] == 2 and second["steps"] == 1
    # run 0: |g| 5 and 1, |q| 2 and 1, cos 0.8 and -1
    assert first["orig_norm_g"] == pytest.approx(3.0)
    assert first["orig_norm_r"] == pytest.approx(1.5)
    assert first["orig_cos"] == pytest.approx(-0.1)
    # per step g^2 + q^2 + 2 cos |g||q|: 25 + 4 + 16 = 45, then 1 + 1 - 2 = 0
    assert first["orig_u"] == pytest.approx(22.5)
    # run 1: no retention gradient: cos 0 and u = |g|^2, as the original's code gives
    assert (second["orig_norm_r"], second["orig_cos"], second["orig_u"]) == (0.0, 0.0, 1.0)


def hand_statistics(trainer, method_name, x, y):
    """g, the penalty gradient, the update and the original's retention vector q of one
    step, computed here with autograd from the method's state (not by the trainer)."""
    model, params, method = trainer.model, trainer.params, trainer.method
    cpt = 2
    flat = lambda ts: models.flatten(ts, 1)[0]  # noqa: E731
    logits = model(x)[:, 0]
    loss = F.cross_entropy(
        torch.stack(
            [
                logits[i, (c // cpt) * cpt : (c // cpt + 1) * cpt]
                for i, c in enumerate(y[:, 0].tolist())
            ]
        ),
        y[:, 0] % cpt,
    )
    g = flat(torch.autograd.grad(loss, params, retain_graph=True))
    theta = flat(params)
    if method_name == "ewc":
        penalty = (  # scale = lam / 2
            method.scale * (method.gamma * method.fisher[0] * (theta - method.anchor[0]) ** 2).sum()
        )
    elif method_name == "si":
        penalty = method.scale * (method.importance[0] * (theta - method.start[0]) ** 2).sum()  # c
    elif method_name == "lwf":
        with torch.no_grad():
            target = method.teacher(x)[:, 0]
        ((first, *_),) = method.old_classes[0]
        s = slice(first, first + cpt)
        penalty = (
            method.lam * lwf.distillation(logits[:, s], target[:, s], method.temperature).mean()
        )
    else:
        penalty = None
    p = None if penalty is None else flat(torch.autograd.grad(penalty, params))
    if method_name == "gem":
        ((mx, my),) = method.memories
        mem_logits = model(trainer.inputs(mx))[:, 0]
        (block,) = {c // cpt for c in my[:, 0].tolist()}
        mem_loss = F.cross_entropy(mem_logits[:, block * cpt : (block + 1) * cpt], my[:, 0] % cpt)
        memory = flat(torch.autograd.grad(mem_loss, params))[None]
        violated = bool((memory @ g < 0).any())
        update = gem.project(g, memory) if violated else g
        q = update if violated else torch.zeros_like(g)
        return g, update, q
    if method_name == "si":
        return g, (g + p).clamp(-method.clip, method.clip), p
    return g, g + p, g + p  # EWC, LwF: read after both backward passes


@pytest.mark.parametrize("method_name", ["ewc", "lwf", "si", "gem"])
def test_original_statistics_of_one_step_on_a_small_network(smoke_trainer, method_name):
    trainer = smoke_trainer("from_layer4", method_name, **{"lwf.warmup_epochs": 0})
    (tasks,) = trainer.tasks
    x0, y0 = tasks[0].train.x[None], tasks[0].train.y[None]
    trainer.fit(x0, y0, trainer.params, 1, trainer.method)  # the first task, then its state
    trainer.method.after_task([tasks[0]])
    trainer.method.before_task([tasks[1]])
    models.set_train_mode(trainer.model, "always_update", trainer.params)
    x1, y1 = tasks[1].train.x[None], tasks[1].train.y[None]
    perm = {0: torch.arange(len(tasks[1].train.y))}
    opt = torch.optim.Adam(trainer.params, lr=trainer.cfg.lr)
    active = torch.ones(1, dtype=torch.bool)
    # one step off the anchor, so that the penalties' gradients are not zero
    trainer._step(
        *trainer._batch(x1, y1, perm, 0),
        trainer.params,
        opt,
        trainer.method,
        None,
        active,
        Hold(trainer.params, 1),
    )
    xb, yb, raw = trainer._batch(x1, y1, perm, 1)
    g, update, q = hand_statistics(trainer, method_name, xb, yb)
    stats = UpdateStats(1, torch.device("cpu"), trainer.head_columns(trainer.params))
    trainer._step(
        xb, yb, raw, trainer.params, opt, trainer.method, stats, active, Hold(trainer.params, 1)
    )
    (out,) = stats.summary()
    head = sum(p.numel() for p in trainer.model.fc.parameters())  # the last parameters
    assert out["u_head"] == pytest.approx(update[-head:].norm().item() ** 2, rel=1e-3)
    norm_g, norm_q = g.norm().item(), q.norm().item()
    cos = (g @ q).item() / (norm_g * norm_q) if norm_q > 0 else 0.0
    assert out["steps"] == 1
    assert out["orig_norm_g"] == pytest.approx(norm_g, rel=1e-4)
    assert out["orig_norm_r"] == pytest.approx(norm_q, rel=1e-4, abs=1e-9)
    assert out["orig_cos"] == pytest.approx(cos, rel=1e-3, abs=1e-6)
    expected_u = norm_g**2 + norm_q**2 + 2 * cos * norm_g * norm_q
    assert out["orig_u"] == pytest.approx(expected_u, rel=1e-3)
    # the book's definition from the same step
    assert out["u"] == pytest.approx(update.norm().item() ** 2, rel=1e-3)
    assert out["g2"] == pytest.approx(norm_g**2, rel=1e-4)
    if method_name in ("ewc", "lwf"):
        assert norm_q > norm_g * 0.5  # q = g + p holds g
    assert norm_q > 0, "the step must exercise the retention gradient"
