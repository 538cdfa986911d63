"""The continual loop: seeding, the accuracy matrix, the run record, devices."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from cl_regimes import data, metrics, models, results, runner, train
from cl_regimes.config import ConfigError


@pytest.fixture(scope="module")
def records(smoke_runs):
    """Records of one configuration: seed 0 twice (the session's run and a fresh one),
    and seed 1."""
    cached = smoke_runs.get("from_layer4", "finetune")
    config = cached.config
    return {
        "a": runner.run(results.Run(config, "smoke"), "cpu"),
        "cached": cached.outcome,
        "other": runner.run(config.__class__(**{**config.to_dict(), "seed": 1}), "cpu"),
    }


def test_same_seed_same_R(records):
    assert records["a"]["R"] == records["cached"]["R"]
    assert [t["train_loss"] for t in records["a"]["tasks"]] == [
        t["train_loss"] for t in records["cached"]["tasks"]
    ]
    assert [t["drift"] for t in records["a"]["tasks"]] == [
        t["drift"] for t in records["cached"]["tasks"]
    ]


def test_other_seed_other_R(records):
    assert records["other"]["config"]["seed"] == 1
    assert records["a"]["R"] != records["other"]["R"]


@pytest.mark.parametrize("seeding", ["independent", "shared"])
def test_seeding_across_methods_and_regimes(smoke_config, seeding):
    """Independent: every run its own initial weights and data stream, repeatable; shared:
    the same for every method and regime of an order and seed."""
    a, b, c = (
        smoke_config(regime, method, seeding=seeding)
        for regime, method in (("full", "finetune"), ("full", "ewc"), ("head", "finetune"))
    )
    assert a.stream_seed == smoke_config("full", "finetune", seeding=seeding).stream_seed
    other = smoke_config("full", "finetune", order=1, seeding=seeding)
    assert (a.stream_seed == other.stream_seed) == (seeding == "shared" and a.seed == other.seed)
    weights = [train.Trainer([cfg], "cpu").model.fc.weight for cfg in (a, b, c)]
    same = [torch.equal(weights[0], w) for w in weights[1:]]
    assert same == [seeding == "shared"] * 2


def test_initial_weights(smoke_config):
    """``initial`` starts each run of a group from the given single-run weights (the
    comparison with the original study starts both codes from its initialisation)."""
    a, b = smoke_config("full", "si"), smoke_config("full", "si", order=1)
    own = [train.Trainer([cfg], "cpu").model.state_dict() for cfg in (a, b)]
    swapped = train.Trainer([a, b], "cpu", initial=own[::-1])
    for name, t in swapped.model.state_dict().items():
        if t.ndim:
            assert torch.equal(models.per_run(t, 2)[0], own[1][name].reshape(-1)), name
            assert torch.equal(models.per_run(t, 2)[1], own[0][name].reshape(-1)), name
    start = swapped.method.start  # methods built after the weights are in place (SI's anchor)
    assert torch.equal(start, models.flatten(swapped.params, 2))
    with pytest.raises(ConfigError, match="initial: 1 state dicts for 2 runs"):
        train.Trainer([a, b], "cpu", initial=own[:1])


def test_R_is_T_by_T_in_unit_interval(records):
    R = np.asarray(records["a"]["R"])
    assert R.shape == (5, 5)
    assert ((R >= 0) & (R <= 1)).all()
    # trained tasks beat chance (2 classes per task) on digits
    assert np.diag(R).mean() > 0.6


def test_record_contents(records):
    rec = records["a"]
    assert rec["schema"] == results.SCHEMA_VERSION and rec["profile"] == "smoke"
    assert rec["variant"] == {} and rec["classes_per_task"] == 2
    assert rec["config"]["regime"] == "from_layer4" and rec["config"]["method"] == "finetune"
    assert rec["config"]["method_params"] == {}
    assert rec["order"] == [0, 1, 2, 3, 4]
    assert rec["environment"]["torch"] == torch.__version__
    assert rec["environment"]["device"] == "cpu" and rec["environment"]["precision"] == "fp32"
    assert rec["environment"]["group_size"] == 1 and "commit" in rec["environment"]
    assert rec["metrics"] == pytest.approx(metrics.summary(rec["R"]))
    assert set(rec["metrics"]) == {"acc", "bwt", "forgetting", "forgetting_chaudhry"}
    assert rec["wall_time_s"] > 0
    assert [t["task"] for t in rec["tasks"]] == rec["order"]
    assert [t["classes"] for t in rec["tasks"]] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    for task in rec["tasks"]:
        assert task["epochs_run"] == len(task["train_loss"]) == 1
        assert all(math.isfinite(v) for v in task["train_loss"])
    json.dumps(rec)  # JSON-ready


def test_order_permutes_tasks(smoke_runs):
    run = smoke_runs.get("head", "finetune", order=2)
    assert run.outcome["order"] == data.task_orders(5)[2]
    assert [t["task"] for t in run.outcome["tasks"]] == data.task_orders(5)[2]


def test_drift_bounds_the_net_change(smoke_runs):
    run = smoke_runs.get("from_layer3", "finetune")
    drifts = [t["drift"] for t in run.outcome["tasks"]]
    assert all(d > 0 for d in drifts)
    names = run.trainable_names
    net = torch.cat([(run.after[n] - run.before[n]).flatten() for n in sorted(names)]).norm()
    # sum of per-task steps >= the distance between the first and the last point
    assert sum(drifts) >= net.item() * (1 - 1e-6)


def test_zero_learning_rate_means_zero_drift(smoke_runs):
    # head regime, frozen BatchNorm statistics, a learning rate below float32's resolution
    # of the weights: nothing may change
    run = smoke_runs.get("head", "finetune", bn_stats="follow_regime", lr=1e-30, lr_min=0.0)
    assert [t["drift"] for t in run.outcome["tasks"]] == [0.0] * 5
    R = np.asarray(run.outcome["R"])
    assert (R == R[0]).all()  # the same network is evaluated after every task
    for name in run.before:
        assert torch.equal(run.before[name], run.after[name]) or name.endswith(
            "num_batches_tracked"
        )


def test_first_task_drift_is_the_distance_travelled(smoke_trainer):
    trainer = smoke_trainer("head", "finetune")
    start = models.flatten(trainer.params, 1).detach().clone()
    trainer.tasks = [tasks[:1] for tasks in trainer.tasks]
    (out,) = trainer.run()
    moved = (models.flatten(trainer.params, 1).detach() - start).norm().item()
    assert out["tasks"][0]["drift"] == pytest.approx(moved, rel=1e-6)
    assert len(out["R"]) == 1


@pytest.mark.parametrize("device", ["tpu", "nonsense", "cuda:x"])
def test_invalid_device(smoke_config, device):
    with pytest.raises(ConfigError, match="device"):
        train.Trainer([smoke_config("head", "finetune")], device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(smoke_config):
    with pytest.raises(ConfigError, match="no CUDA"):
        runner.run(smoke_config("head", "finetune"), device="cuda")


def test_auto_device_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert models.resolve_device("auto").type == expected


def test_bad_precision(smoke_config):
    config = smoke_config("head", "finetune")
    with pytest.raises(ConfigError, match="precision='fp8'.*fp32, bf16"):
        config.__class__(**{**config.to_dict(), "precision": "fp8"})
