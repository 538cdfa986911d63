"""Every method under every regime: one smoke run each, checked for what must always hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cl_regimes import methods, models, regimes
from cl_regimes.config import ConfigError

STATS = (
    "g2",
    "r2",
    "cos",
    "u",
    "drift",
    "steps",
    "orig_norm_g",
    "orig_norm_r",
    "orig_cos",
    "orig_u",
)
METHOD_NAMES = methods.names()
REGIME_NAMES = tuple(regimes.REGIMES)


@pytest.mark.parametrize("regime", REGIME_NAMES)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_method_under_regime(smoke_runs, method, regime):
    run = smoke_runs.get(regime, method)
    trainable = run.trainable_names
    assert trainable
    for name, p in run.trainer.model.named_parameters():
        assert p.requires_grad == (name in trainable)
        if name not in trainable and method != "der":
            assert torch.equal(run.before[name], run.after[name]), f"frozen {name} moved"
    if method == "der":  # its network grows (tests/test_der.py); the first extractor's
        rule = regimes.get(regime)  # coordinates outside the regime never moved
        first = models._named_parameters(run.trainer.model.extractors[0])
        for name in [f"extractors.0.{n}" for n, bn, _ in first if not rule.is_trainable(n, bn)]:
            assert torch.equal(run.before[name], run.after[name]), f"frozen {name} moved"

    R = np.asarray(run.outcome["R"])
    assert R.shape == (5, 5) and np.isfinite(R).all()
    assert ((R >= 0) & (R <= 1)).all()

    tasks = run.outcome["tasks"]
    assert len(tasks) == 5
    for task in tasks:
        assert all(math.isfinite(v) for v in task["train_loss"]) and task["train_loss"]
        assert set(STATS) <= set(task)
        assert all(math.isfinite(task[k]) for k in STATS)
        assert task["steps"] > 0
        assert task["g2"] > 0 and task["r2"] >= 0 and task["u"] >= 0 and task["drift"] >= 0
        assert -1 - 1e-9 <= task["cos"] <= 1 + 1e-9
        assert -1 - 1e-9 <= task["cos_step"] <= 1 + 1e-9
        g2, r2, cos = task["g2"], task["r2"], task["cos"]
        assert task["u"] == pytest.approx(g2 + r2 + 2 * cos * math.sqrt(g2 * r2), rel=1e-6)
        # the original's statistics: mean norms (not squares), u >= 0, E||g|| <= sqrt(g2)
        assert task["orig_norm_g"] <= math.sqrt(g2) * (1 + 1e-9) and task["orig_u"] >= 0
        assert -1 - 1e-9 <= task["orig_cos"] <= 1 + 1e-9

    if method in ("finetune", "joint"):  # nothing is added to the task gradient
        assert all(t["r2"] == 0 for t in tasks)
        assert all(
            t["orig_norm_r"] == 0 and t["orig_u"] == pytest.approx(t["g2"], rel=1e-6) for t in tasks
        )
    if method in ("ewc", "lwf"):  # the penalty acts from the second task on
        assert tasks[0]["r2"] == 0
        if method == "ewc" and regime == "head":
            # the Fisher of a task lives on its own rows of the head, which later tasks
            # never move (their masked loss does not reach them): the penalty stays at 0
            assert all(t["r2"] == 0 for t in tasks)
        else:
            assert all(t["r2"] > 0 for t in tasks[1:])
    if method == "joint":  # task t trains on t + 1 tasks' data
        assert [t["steps"] for t in tasks] == sorted(t["steps"] for t in tasks)
        assert tasks[-1]["steps"] > 3 * tasks[0]["steps"]
    else:
        assert max(t["steps"] for t in tasks) <= 2 * min(t["steps"] for t in tasks)


def test_make_rejects_unknown_parameters():
    valid = {"lam": 1.0, "gamma": 1.0, "fisher_samples": 8}
    with pytest.raises(ConfigError, match="nosuch") as err:
        methods.make("ewc", None, {**valid, "nosuch": 2})
    assert "lam" in str(err.value) and "fisher_samples" in str(err.value)
    with pytest.raises(ConfigError, match="gamma"):
        methods.make("ewc", None, {"lam": 1.0, "fisher_samples": 8})
    with pytest.raises(ConfigError, match="nosuch"):
        methods.make("finetune", None, {"nosuch": 1})
    with pytest.raises(ConfigError, match="unknown method 'nosuch'"):
        methods.make("nosuch", None, {})


def test_parameter_names():
    def names(method):
        return tuple(methods.get(method).parameters())

    assert names("ewc") == ("lam", "gamma", "fisher_samples")
    assert names("gem") == ("memories_per_task", "margin", "ridge", "memory_bn")
    assert names("lwf") == (
        "lam",
        "temperature",
        "warmup_epochs",
        "warmup_outputs",
        "student_forwards",
    )
    assert names("finetune") == names("joint") == ()
    assert names("der") == ("alpha", "old_bn")
    assert names("er") == names("agem") == names("er_ace") == ("memory_size", "replay_batch_size")
    assert names("derpp") == ("memory_size", "replay_batch_size", "alpha", "beta")
    assert METHOD_NAMES == (
        "finetune",
        "joint",
        "agem",
        "der",
        "derpp",
        "er",
        "er_ace",
        "ewc",
        "gem",
        "lwf",
        "si",
    )
