"""DER (methods/der.py): one extractor more per task, earlier ones and their BatchNorm
statistics fixed, the regime on the newest only, an auxiliary head that trains only the
new task's classes, a classifier that grows without changing what it computed, and the
scenarios it refuses."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cl_regimes import (
    checkpoints,
    cli,
    findings,
    models,
    profiles,
    regimes,
    results,
    runner,
    train,
)
from cl_regimes.report import words
from conftest import make_smoke_config

TINY = {"image_size": 8, "train_per_task": 40, "test_per_task": 20, "batch_size": 16}
HEADS = {"fc.weight", "fc.bias", "aux.weight", "aux.bias"}


def der_trainer(regime: str = "from_layer3", runs: int = 1, **overrides) -> train.Trainer:
    configs = [
        make_smoke_config(regime, "der", order=o, seed=o, **TINY, **overrides) for o in range(runs)
    ]
    return train.Trainer(configs, device="cpu")


def snapshots_after_each_task(trainer: train.Trainer) -> list[dict]:
    """Train every task; per task, a copy of every parameter and buffer at its end."""
    seen, after_task = [], trainer.method.after_task

    def spy(tasks):
        after_task(tasks)
        seen.append({n: t.detach().clone() for n, t in trainer.model.state_dict().items()})

    trainer.method.after_task = spy
    trainer.run()
    return seen


def extractor_state(state: dict, index: int) -> dict:
    prefix = f"extractors.{index}."
    return {n: t for n, t in state.items() if n.startswith(prefix)}


def test_one_extractor_more_per_task():
    trainer = der_trainer()
    states = snapshots_after_each_task(trainer)
    counts = [len({n.split(".")[1] for n in s if n.startswith("extractors.")}) for s in states]
    assert counts == [1, 2, 3, 4, 5]
    dim = trainer.model.dim
    assert [s["fc.weight"].shape[1] for s in states] == [dim * t for t in (1, 2, 3, 4, 5)]
    assert len(trainer.model.extractors) == 5
    first, second = (extractor_state(states[-1], i) for i in (0, 1))
    conv = "layer1.0.conv1.weight"  # a fresh draw per task, not a copy of the previous one
    assert not torch.equal(first[f"extractors.0.{conv}"], second[f"extractors.1.{conv}"])


@pytest.mark.parametrize(
    "bn_stats, old_bn",
    [("always_update", "frozen"), ("follow_regime", "follow_bn_stats")],
)
def test_earlier_extractors_and_their_batchnorm_statistics_do_not_move(bn_stats, old_bn):
    states = snapshots_after_each_task(
        der_trainer("full", bn_stats=bn_stats, **{"der.old_bn": old_bn})
    )
    for i in range(4):  # extractor i is trained in task i, then never again
        trained, final = extractor_state(states[i], i), extractor_state(states[-1], i)
        moved = [n for n in trained if not torch.equal(trained[n], final[n])]
        assert not moved, f"extractor {i}: {moved[:4]}"


def test_under_the_originals_setting_only_their_batchnorm_statistics_move():
    """bn_stats=always_update with old_bn=follow_bn_stats (the original's model.train()):
    earlier extractors' weights stay, their running statistics follow the new batches."""
    states = snapshots_after_each_task(der_trainer("full"))
    trained, final = extractor_state(states[0], 0), extractor_state(states[-1], 0)
    moved = {n.rsplit(".", 1)[1] for n in trained if not torch.equal(trained[n], final[n])}
    assert moved == {"running_mean", "running_var", "num_batches_tracked"}


@pytest.mark.parametrize("regime", ["head", "bn_affine", "from_layer4", "from_layer1", "full"])
def test_the_regime_applies_to_the_newest_extractor_only(regime):
    trainer = der_trainer(regime)
    rule = regimes.get(regime)
    layout = [(n, is_bn) for n, is_bn, _ in models._named_parameters(trainer.model.extractors[0])]
    for position in range(3):
        params = trainer.method.grow(position)
        trainable = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
        assert [id(p) for p in params] == [id(p) for p in trainable.values()]
        wanted = {f"extractors.{position}.{n}" for n, bn in layout if rule.is_trainable(n, bn)}
        assert set(trainable) == wanted | HEADS, sorted(set(trainable) ^ (wanted | HEADS))[:6]


def test_the_auxiliary_head_trains_only_the_new_tasks_classes():
    trainer = der_trainer("from_layer4")
    net, seen = trainer.model, []
    grow = trainer.method.grow

    def spy(position):
        params = grow(position)
        seen.append((trainer.tasks[0][position].classes, net.aux, net.aux.weight.detach().clone()))
        return params

    trainer.method.grow = spy
    trainer.run()
    auxes = [aux for _, aux, _ in seen]
    assert len({id(a) for a in auxes}) == 5  # a fresh one per task
    for classes, aux, start in seen:
        changed = (aux.weight.detach() != start).any(1).nonzero().flatten().tolist()
        assert changed == classes, (changed, classes)


def test_the_auxiliary_loss_reaches_neither_the_classifier_nor_other_rows():
    trainer = der_trainer("from_layer4", runs=2)
    trainer.method.grow(1)
    net = trainer.model
    x = torch.stack([tasks[1].train.x[:8] for tasks in trainer.tasks], 1)
    y = torch.stack([tasks[1].train.y[:8] for tasks in trainer.tasks], 1)
    x = trainer.inputs(x)
    penalty = trainer.method.penalty(x, net(x), y)
    fc, aux = torch.autograd.grad(penalty.sum(), [net.fc.weight, net.aux.weight], allow_unused=True)
    assert fc is None
    for k, tasks in enumerate(trainer.tasks):
        rows = aux.view(2, -1, net.dim)[k].abs().sum(1).nonzero().flatten().tolist()
        assert rows == tasks[1].classes


def test_growing_keeps_what_the_classifier_computed():
    trainer = der_trainer("full", runs=2)
    trainer.method.grow(0)
    x = trainer.inputs(trainer.tasks[0][0].test.x[:16, None].expand(-1, 2, -1, -1, -1))
    trainer.model.eval()
    before = trainer.model(x)
    trainer.method.grow(1)
    trainer.model.eval()
    torch.testing.assert_close(trainer.model(x), before, rtol=1e-6, atol=1e-6)


def test_grouped_runs_grow_the_extractors_of_their_single_runs():
    group = der_trainer("head", runs=2)
    group.method.grow(1)
    for k in range(2):
        alone = train.Trainer([group.configs[k]], device="cpu")
        alone.method.grow(1)
        for name, t in alone.model.state_dict().items():
            if t.ndim:
                grouped = models.per_run(group.model.state_dict()[name], 2)[k]
                assert torch.equal(grouped, t.reshape(-1)), name


def test_a_resumed_der_cell_gives_the_numbers_of_an_uninterrupted_one(tmp_path, monkeypatch):
    configs = [make_smoke_config("from_layer4", "der", order=o, **TINY) for o in (0, 1)]
    uninterrupted = runner.run_group(configs, "cpu")
    evaluate, calls = train.Trainer.evaluate, []

    def stop(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(self)

    with monkeypatch.context() as patch:
        patch.setattr(train.Trainer, "evaluate", stop)
        with pytest.raises(KeyboardInterrupt):
            runner.run_group(configs, "cpu", checkpoint_dir=tmp_path)
    assert checkpoints.Checkpoint(tmp_path, tuple(configs)).path.exists()
    resumed = runner.run_group(configs, "cpu", checkpoint_dir=tmp_path)
    for a, b in zip(uninterrupted, resumed):
        assert a["R"] == b["R"] and a["tasks"] == b["tasks"]


@pytest.mark.parametrize("scenario", ["class_incremental", "domain_incremental"])
def test_other_scenarios_are_refused_in_one_line(scenario, tmp_path, capsys):
    argv = ["run", "--profile", "smoke", "--dataset", "digits", "--regime", "head"]
    code = cli.main([*argv, "--method", "der", "--scenario", scenario, "--results", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"does not apply to the {scenario} scenario; valid for it: task_incremental" in err[0]


def test_der_runs_when_named_not_in_a_profiles_grid():
    assert "der" not in profiles.get_profile("quick").grid_methods()
    plan = profiles.get_profile("quick").grid(methods=["der"], variants=False)
    assert len(plan) == len(regimes.REGIMES) * 3 and {r.config.method for r in plan} == {"der"}


def test_a_build_reads_committed_der_records_beside_its_own(tmp_path):
    """The cross-regime chapter's sources: the build's records, and committed records only
    of cells the build has none of, so that no run is read twice."""
    built, committed = tmp_path / "results" / "quick", tmp_path / "records" / "der" / "quick"
    for folder, method in ((built, "ewc"), (committed, "der"), (committed, "ewc")):
        cell = folder / "fashion_mnist" / "full" / method
        cell.mkdir(parents=True)
        (cell / "order00-seed0.json").write_text("{}")
    sources = results.with_committed(built, committed)
    assert sources == [built, committed / "fashion_mnist/full/der/order00-seed0.json"]
    assert results.with_committed(built, tmp_path / "none") == [built]
    assert results.with_committed(built, built) == [built]
    main = pd.DataFrame({"seed": 0, "regime": "full", "method": ["ewc"] * 4 + ["der"] * 2})
    text = words.coverage(profiles.get_profile("quick"), 6, main)
    assert "4 of the 126 runs of its grid (and 2 runs of `der`, run only when named" in text


def test_the_originals_kendall_takes_der_where_it_has_records():
    acc = {"from_layer4": [1, 2, 3, 4, 0], "full": [1, 2, 3, 4, 9]}  # DER ranks last, then first
    rows = [
        (regime, method, a)
        for regime, values in acc.items()
        for method, a in zip(("ewc", "lwf", "si", "gem", "der"), values)
    ]
    runs = pd.DataFrame(rows, columns=["regime", "method", "acc"]).assign(
        dataset="fashion_mnist", order=0, seed=0, variant="", bn_stats="always_update"
    )
    tau = findings.original_kendall(runs).per_order.tau[0]
    assert tau == pytest.approx(0.2)  # five methods: (6 - 4) / 10; the four alone give 1
    four = findings.original_kendall(runs[runs.method != "der"]).per_order.tau[0]
    assert four == pytest.approx(1.0)
