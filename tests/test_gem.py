"""GEM: the projection of the update, against the primal problem solved by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from cl_regimes.methods import gem


def problem(seed: int, d: int = 20, k: int = 3, dtype=torch.float64):
    """Random memories G (k x d) and a gradient g that violates at least one constraint."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(k, d, generator=gen, dtype=dtype)
    g = torch.randn(d, generator=gen, dtype=dtype) - 1.5 * G[0]
    assert (G @ g < 0).any()
    return g, G


def duals(g, G, projected) -> np.ndarray:
    """v from g~ = g + G^T v (G has full row rank)."""
    return np.linalg.lstsq(G.numpy().T, (projected - g).numpy(), rcond=None)[0]


@pytest.mark.parametrize("seed", range(5))
def test_tiny_ridge_satisfies_every_constraint(seed):
    # The dual is min 1/2 v^T (G G^T + eps I) v + (G g)^T v, v >= 0. Its KKT conditions
    # give (G G^T + eps I) v + G g = mu >= 0, i.e. G g~ = mu - eps v >= -eps v: with
    # eps = 1e-12 every constraint holds up to rounding.
    g, G = problem(seed)
    projected = gem.project(g, G, ridge=1e-12)
    assert (G @ projected >= -1e-6).all()
    v = duals(g, G, projected)
    assert (v >= -1e-9).all() and v.max() > 0


@pytest.mark.parametrize("seed", range(5))
def test_default_ridge_violation_is_bounded(seed):
    g, G = problem(seed)
    projected = gem.project(g, G)  # ridge 1e-5
    v = duals(g, G, projected)
    assert (G @ projected >= -1e-5 * v.max() - 1e-9).all()


@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force_primal(seed):
    g, G = problem(seed)
    gn, Gn = g.numpy(), G.numpy()
    best = minimize(
        lambda z: np.sum((z - gn) ** 2),
        np.zeros_like(gn),  # 0 is feasible
        jac=lambda z: 2 * (z - gn),
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda z: Gn @ z, "jac": lambda z: Gn}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert best.success, best.message
    assert (Gn @ best.x >= -1e-8).all()
    for ridge in (1e-12, 1e-5):
        projected = gem.project(g, G, ridge=ridge)
        np.testing.assert_allclose(projected.numpy(), best.x, atol=1e-4)


def test_unchanged_when_no_constraint_is_violated():
    gen = torch.Generator().manual_seed(7)
    G = torch.randn(3, 20, generator=gen)
    g = torch.linalg.pinv(G) @ torch.tensor([1.0, 0.5, 2.0])  # G g = (1, 0.5, 2)
    assert (G @ g > 0).all()
    kept = g.clone()
    out = gem.project(g, G)
    assert torch.equal(out, kept)
    # a zero dot product is no violation either
    orthogonal = torch.zeros(20)
    assert torch.equal(gem.project(orthogonal, G), orthogonal)


def test_float32_and_dtype_kept():
    g, G = problem(11, dtype=torch.float32)
    projected = gem.project(g, G, ridge=1e-12)
    assert projected.dtype == torch.float32 and projected.shape == g.shape
    assert (G @ projected >= -1e-4).all()


def test_margin_bounds_the_dual_variables():
    # as in GEM's code, the margin is a lower bound on the dual variables v
    g, G = problem(3)
    plain, pushed = gem.project(g, G), gem.project(g, G, margin=0.5)
    assert (duals(g, G, plain) >= -1e-9).all() and duals(g, G, plain).min() < 0.5
    assert (duals(g, G, pushed) >= 0.5 - 1e-9).all()


def test_memories_over_trainable_parameters(smoke_runs):
    run = smoke_runs.get("head", "gem")
    trainer, method = run.trainer, run.trainer.method
    (tasks,) = trainer.tasks
    assert len(method.memories) == len(tasks)
    for (x, y), task in zip(method.memories, tasks, strict=True):
        assert y.shape == (method.memories_per_task, 1) == (32, 1)
        assert set(y.flatten().tolist()) <= set(task.classes)
        # memories are non-augmented training images of their task
        rows = {bytes(img.numpy()) for img in task.train.x}
        assert all(bytes(img.numpy()) in rows for img in x[:, 0])
    trainer.model.train()
    buffers = {n: b.clone() for n, b in trainer.model.named_buffers() if "running" in n}
    (grad,) = trainer.task_gradients(*method.memories[0], update_bn=False)
    assert grad.numel() == 8 * 8 * 10 + 10 == sum(p.numel() for p in trainer.params)
    assert all(torch.equal(b, dict(trainer.model.named_buffers())[n]) for n, b in buffers.items())
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_gem_projection_active_in_a_run(smoke_runs):
    run = smoke_runs.get("from_layer4", "gem")
    tasks = run.outcome["tasks"]
    assert tasks[0]["r2"] == 0.0 and tasks[0]["violations"] == 0  # no memory yet
    assert any(t["r2"] > 0 for t in tasks[1:])  # some steps were projected
    assert sum(t["violations"] for t in tasks) > 0
    assert all(t["qp_fallbacks"] == 0 for t in tasks)


def frozen_bn_statistics(trainer) -> dict[str, torch.Tensor]:
    return {
        n: b.clone()
        for n, b in trainer.model.named_buffers()
        if n.startswith("layer1.") and "running" in n
    }


@pytest.mark.parametrize(
    ("memory_bn", "bn_stats", "moves"),
    [
        ("update", "always_update", True),
        ("frozen", "always_update", False),
        ("update", "follow_regime", False),
        ("frozen", "follow_regime", False),
    ],
)
def test_memory_passes_and_batchnorm_statistics(smoke_trainer, memory_bn, bn_stats, moves):
    # layer1 is frozen under from_layer4: its statistics move only by forward passes
    trainer = smoke_trainer("from_layer4", "gem", bn_stats=bn_stats, **{"gem.memory_bn": memory_bn})
    method = trainer.method
    method.after_task([trainer.tasks[0][0]])
    from cl_regimes import models

    models.set_train_mode(trainer.model, bn_stats, trainer.params)
    before = frozen_bn_statistics(trainer)
    method.before_step()  # the memory passes, before the step's own forward pass
    after = frozen_bn_statistics(trainer)
    assert any(not torch.equal(before[n], after[n]) for n in before) == moves


def test_failed_qp_falls_back_to_the_plain_gradient_and_is_counted(smoke_trainer, monkeypatch):
    trainer = smoke_trainer("head", "gem")
    method = trainer.method
    method.after_task([trainer.tasks[0][0]])
    method.grads = -torch.ones(1, 1, 650)  # every update with a positive sum violates it
    total = torch.ones(1, 650)

    def failing(*args):
        raise ValueError("constraints are inconsistent, no solution")

    monkeypatch.setattr(gem.quadprog, "solve_qp", failing)
    update = method.direction(total, total, None, torch.ones(1, dtype=torch.bool))
    assert torch.equal(update, total)
    # the original read the (unprojected) gradient as its retention gradient on that step
    assert torch.equal(method.retention(total, None, update), total)
    assert method.task_stats() == [{"violations": 1, "qp_fallbacks": 1}]
    assert method.task_stats() == [{"violations": 0, "qp_fallbacks": 0}]  # reset per task


def test_qp_fallbacks_reach_the_record(monkeypatch):
    from cl_regimes import profiles, runner

    def failing(*args):
        raise ValueError("constraints are inconsistent, no solution")

    monkeypatch.setattr(gem.quadprog, "solve_qp", failing)
    config = profiles.get_profile("smoke").config(
        dataset="digits", regime="from_layer4", method="gem"
    )
    record = runner.run(config, "cpu")
    tasks = record["tasks"]
    assert tasks[0]["qp_fallbacks"] == 0
    assert sum(t["qp_fallbacks"] for t in tasks) == sum(t["violations"] for t in tasks) > 0
    assert all(t["r2"] == 0 for t in tasks)  # every fallback kept the plain gradient


def test_projection_forms_its_products_in_float64():
    """m . g = 1e8 - 1 - 1e8 = -1 needs a projection; in float32 the -1 is lost (the
    product rounds to 0), so only products formed in float64, as the original's, see it."""
    g = torch.tensor([1e8, -1.0, -1e8])
    projected = gem.project(g, torch.ones(1, 3), ridge=1e-5)
    assert projected[1].item() == pytest.approx(-1 + 1 / (3 + 1e-5), rel=1e-6)
