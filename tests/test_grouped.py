"""Many runs in one network: a group of K runs against the same K runs trained one by one.

Float32 results of two implementations of the same computation drift apart: Adam
turns the last-bit differences of near-zero gradient entries into full-size steps
of either sign, so trajectories decorrelate over a run (two separate float32 runs
that differ only in the number of CPU threads differ by up to 0.3 in single entries
of R at the smoke profile). So in float32 the tests compare what is defined to
rounding (initial weights, the first step's update direction); the whole runs are
compared in float64, where the group must reproduce the separate runs exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cl_regimes import methods, models, profiles, runner, steps, sweep, train
from cl_regimes.results import Run
from conftest import make_smoke_config

ORDERS = (0, 1, 2)


def configs(method: str, regime: str = "from_layer2", seeding: str = "shared", **overrides):
    """Three runs of a cell. Shared seeding by default: seeds 0, 1, 2 are draws whose float32
    first steps agree to rounding; some draws amplify rounding to 1e-3 there (float64 runs
    agree exactly whatever the draw)."""
    return [
        make_smoke_config(regime, method, order=o, seed=o, seeding=seeding, **overrides)
        for o in ORDERS
    ]


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("seeding", ["shared", "independent"])
def test_identical_initial_weights_per_run(seeding):
    group = train.Trainer(configs("finetune", seeding=seeding), device="cpu")
    for k, config in enumerate(configs("finetune", seeding=seeding)):
        alone = train.Trainer([config], device="cpu")
        for name, t in group.model.state_dict().items():
            if t.ndim:
                assert torch.equal(
                    models.per_run(t, 3)[k], alone.model.state_dict()[name].reshape(-1)
                ), name


def first_update(trainer) -> torch.Tensor:
    """The update direction of the run(s)' first step (what the optimiser receives)."""
    seen = []
    direction = trainer.method.direction

    def spy(total, task_grad, penalty_grad, active):
        update = direction(total, task_grad, penalty_grad, active)
        seen.append(update.clone())
        return update

    trainer.method.direction = spy
    x, y = trainer.method.train_data([tasks[:1] for tasks in trainer.tasks])
    trainer.fit(x, y, trainer.params, 1, trainer.method)
    return seen[0]


@pytest.mark.parametrize("method", methods.names())
def test_first_step_updates_equal_to_rounding(method):
    group = first_update(train.Trainer(configs(method), device="cpu"))
    for k, config in enumerate(configs(method)):
        (alone,) = first_update(train.Trainer([config], device="cpu"))
        assert ((group[k] - alone).norm() / alone.norm()).item() < 1e-5


SMALL = {
    "image_size": 8,
    "train_per_task": 64,
    "test_per_task": 40,
    "epochs": 2,
    "gem.memories_per_task": 16,
    "ewc.fisher_samples": 16,
}  # float64 convolutions are slow


@pytest.mark.parametrize("method", methods.names())
def test_whole_runs_equal_in_float64(float64, method):
    group = train.Trainer(configs(method, **SMALL), device="cpu").run()
    for k, config in enumerate(configs(method, **SMALL)):
        (alone,) = train.Trainer([config], device="cpu").run()
        assert group[k]["order"] == alone["order"]
        np.testing.assert_array_equal(group[k]["R"], alone["R"])
        for a, b in zip(group[k]["tasks"], alone["tasks"], strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
            assert a["u"] == pytest.approx(b["u"], rel=1e-9)
            assert a["orig_u"] == pytest.approx(b["orig_u"], rel=1e-9)
            assert a.get("violations") == b.get("violations")


def test_frozen_coordinates_per_run():
    trainer = train.Trainer(configs("ewc", "from_layer4"), device="cpu")
    frozen = models.frozen_state(trainer.model, "always_update")
    trainer.run()
    assert models.moved(trainer.model, frozen, 3) == [[], [], []]
    with torch.no_grad():  # one coordinate of run 2's frozen stem
        trainer.model.conv1.weight.unflatten(0, (3, -1))[2, 0, 0, 0, 0] += 1e-3
    assert models.moved(trainer.model, frozen, 3) == [[], [], ["conv1.weight"]]


class RisingPenalty(methods.Method):
    """No gradient, but run 1's monitored loss rises at every step: it stops early."""

    stop_on_total_loss = True

    def __init__(self, runs):
        super().__init__(runs)
        self.steps = 0

    def penalty(self, x, logits, y):
        self.steps += 1
        zero = 0 * logits.sum()
        return torch.stack([zero, zero + self.steps, zero])


def test_a_stopped_run_stays_where_it_stopped(monkeypatch):
    trainer = train.Trainer(configs("finetune", "full", patience=1), device="cpu")
    norms = [t for m in models.batchnorms(trainer.model) for t in (m.running_mean, m.running_var)]
    tensors = trainer.params + norms
    at_stop = {}
    stop = steps.Hold.stop

    def spy(hold, k):
        stop(hold, k)
        at_stop[k] = [t.detach().clone() for t in tensors]

    monkeypatch.setattr(steps.Hold, "stop", spy)
    start = [t.detach().clone() for t in tensors]
    x, y = trainer.method.train_data([tasks[:1] for tasks in trainer.tasks])
    out = trainer.fit(x, y, trainer.params, 4, RisingPenalty(trainer.method.runs))
    assert [o["epochs_run"] for o in out] == [4, 2, 4]
    assert list(at_stop) == [1]
    for now, then, before in zip(tensors, at_stop[1], start, strict=True):
        rows = now.detach().unflatten(0, (3, -1))
        assert torch.equal(rows[1], then.unflatten(0, (3, -1))[1])  # bit-identical since
        assert not torch.equal(rows[0], before.unflatten(0, (3, -1))[0]) or now.ndim == 1
    assert out[1]["steps"] < out[0]["steps"]  # its statistics stop counting too


def test_groups_of_equal_task_sizes():
    # digits' classes hold 139 to 146 training images: every order has its own sizes
    unequal = configs("finetune", train_per_task=None)
    assert len(runner.groups_of_equal_task_sizes(list(map(Run, unequal)))) == 3
    assert len(runner.groups_of_equal_task_sizes(list(map(Run, configs("finetune"))))) == 1
    with pytest.raises(profiles.ConfigError, match="equal sizes"):
        train.Trainer(unequal, device="cpu")
    records = runner.run_group(unequal, "cpu")
    assert [r["config"]["order"] for r in records] == list(ORDERS)
    assert all(r["environment"]["group_size"] == 1 for r in records)


def test_a_group_mixes_orders_and_seeds_only():
    mixed = [*configs("finetune")[:2], configs("finetune", epochs=2)[2]]
    with pytest.raises(profiles.ConfigError, match="order and seed only"):
        train.Trainer(mixed, device="cpu")


def test_sweep_units_are_whole_cells_largest_first():
    """On a CPU a cell's runs form one unit; units come largest first (joint and GEM,
    whose steps do more work, before finetune), so parallel workers end together; of
    capped cells, the full groups before the remainders."""
    plan = profiles.get_profile("quick").grid(
        regimes=["full", "head"], methods=["finetune", "joint", "gem"]
    )
    units = [[r.config for r in u] for u in sweep.groups(plan, None, "cpu")]
    assert sorted(repr(r.config) for r in plan) == sorted(repr(c) for u in units for c in u)
    assert {len({(c.regime, c.method, repr(c.bn_stats)) for c in u}) for u in units} == {1}
    work = [len(u) * sum(sweep.steps(u[0])) for u in units]
    assert work == sorted(work, reverse=True) and work[0] > work[-1]
    order = [u[0].method for u in units]
    assert set(order[-order.count("finetune") :]) == {"finetune"}
    capped = [len(u) for u in sweep.groups(plan, 2, "cpu") if u[0].config.method == "finetune"]
    assert capped == [2, 2, 2, 1, 1, 1]
