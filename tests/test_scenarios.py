"""The scenarios: what each one changes (the outputs that score a sample, the tasks'
images), and that every method and regime trains under each."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from cl_regimes import config, data, methods, models, profiles, regimes, results, scenarios, train
from conftest import make_smoke_config
from test_data import write_cifar100, write_mnist_like

DIGITS = data.spec("digits")
OTHERS = ("class_incremental", "domain_incremental")


def test_the_scenarios_are_the_values_of_the_setting():
    assert tuple(scenarios.KINDS) == config.SCENARIOS


def test_task_incremental_scores_each_sample_over_its_own_tasks_classes():
    logits = torch.randn(4, 2, 10)
    labels = torch.tensor([[0, 9], [3, 2], [5, 5], [8, 1]])
    losses = models.cross_entropy(
        *scenarios.get("task_incremental", DIGITS).score(logits, labels, None)
    )
    for k in range(2):
        blocks = torch.stack(
            [logits[i, k, c // 2 * 2 : c // 2 * 2 + 2] for i, c in enumerate(labels[:, k].tolist())]
        )
        expected = nn.functional.cross_entropy(blocks, labels[:, k] % 2)
        assert losses[k].item() == pytest.approx(expected.item(), rel=1e-6)


def test_class_incremental_scores_the_classes_met_so_far_and_misses_the_others():
    seen = torch.tensor([[2, 3, 6, 7], [0, 1, 2, 3]])  # two runs, two tasks each
    index, target = scenarios.get("class_incremental", DIGITS).outputs(
        torch.tensor([[6, 3], [3, 9]]), seen
    )
    assert torch.equal(index, seen[None].expand(2, -1, -1))
    assert target.tolist() == [[2, 3], [1, -1]]  # 9 is not among run 1's classes


@pytest.fixture(scope="module")
def class_incremental(tmp_path_factory):
    """A smoke run of finetune, class-incrementally, and its saved record."""
    cfg = make_smoke_config("from_layer4", "finetune", scenario="class_incremental")
    trainer = train.Trainer([cfg], device="cpu")
    outcome = trainer.run()[0]
    path = tmp_path_factory.mktemp("cil") / "run.json"
    results.save(results.assemble(results.Run(cfg, "smoke"), outcome, {}, 0.0), path)
    return trainer, outcome, path


def test_class_incremental_head_grows_over_the_classes(class_incremental):
    trainer, outcome, path = class_incremental
    assert [t["scored_classes"] for t in outcome["tasks"]] == [2, 4, 6, 8, 10]
    R = np.asarray(outcome["R"])
    assert (np.triu(R, 1) == 0).all()  # a task's classes are never predicted before it
    chance = results.load(path).chance[0]
    assert chance == pytest.approx(np.mean([1 / 2, 1 / 4, 1 / 6, 1 / 8, 1 / 10]))


def test_class_incremental_has_no_task_mask_at_test(class_incremental):
    """Scored over the classes of the first i tasks, with no task mask, as the trainer
    evaluates after task i (here with the final weights)."""
    trainer, outcome, _ = class_incremental
    model, tasks = trainer.model.eval(), trainer.tasks[0]
    assert outcome["R"][-1] == pytest.approx(trainer.evaluate()[0].tolist())
    for i in range(5):
        seen = sorted(c for t in tasks[: i + 1] for c in t.classes)
        trainer.seen = torch.tensor([seen])
        by_hand, masked = [], []
        with torch.no_grad():
            for block in trainer.blocks:
                logits = model(trainer.inputs(block.test.x[:, None]))
                scored, _ = trainer.score(logits, block.test.y[:, None])
                assert scored.shape[-1] == 2 * (i + 1)
                y, logits = block.test.y, logits[:, 0]
                predicted = torch.tensor(seen)[logits[:, seen].argmax(1)]
                by_hand.append((predicted == y).float().mean().item())
                own = logits.view(len(y), -1, 2)[torch.arange(len(y)), y // 2]
                masked.append((own.argmax(1) == y % 2).float().mean().item())
        assert trainer.evaluate()[0].tolist() == pytest.approx(by_hand, abs=1e-6)
        assert by_hand != pytest.approx(masked, abs=0.05)  # what a task mask would give


def test_domain_incremental_tasks_hold_every_class_under_a_permutation_per_task_and_seed():
    ds = data.load("digits", image_size=16)
    kind = scenarios.get("domain_incremental", DIGITS)
    blocks = kind.blocks(ds, 270, None, torch.device("cpu"), seed=0)
    assert kind.augment is False
    assert all(b.classes == list(range(10)) for b in blocks)
    assert all(set(b.train.y.tolist()) == set(range(10)) for b in blocks)
    permutations = scenarios.pixel_permutations(5, 16, seed=0)
    assert torch.equal(permutations, scenarios.pixel_permutations(5, 16, seed=0))
    assert len({tuple(p.tolist()) for p in permutations}) == 5
    assert not torch.equal(permutations, scenarios.pixel_permutations(5, 16, seed=1))
    originals = {bytes(x.numpy()) for x in ds.test.x}
    for block, pixels in zip(blocks, permutations):
        flat = block.test.x.flatten(2)
        assert not torch.equal(block.test.x, ds.test.x)
        restored = torch.empty_like(flat)
        restored[..., pixels] = flat
        assert {bytes(x.view(1, 16, 16).numpy()) for x in restored} <= originals
    again = kind.blocks(ds, 270, None, torch.device("cpu"), seed=1)
    assert not torch.equal(again[0].test.x, blocks[0].test.x)


def test_the_first_permuted_task_keeps_its_images_where_asked(smoke_config):
    ds = data.load("digits", image_size=16)
    cfg = smoke_config("head", "finetune", scenario="domain_incremental")
    assert cfg.permuted_first == "permuted"  # as the committed records ran
    for first in ("permuted", "identity"):
        kind = scenarios.of(
            smoke_config("head", "finetune", permuted_first=first, scenario=cfg.scenario)
        )
        blocks = kind.blocks(ds, 270, 100, torch.device("cpu"), seed=0)
        plain = data.make_blocks(ds, 270, 100, torch.device("cpu"), [list(range(10))] * 5)
        assert torch.equal(blocks[0].test.x, plain[0].test.x) == (first == "identity")
        assert not torch.equal(blocks[1].test.x, plain[1].test.x)
    with pytest.raises(config.ConfigError, match="permuted_first='first'.*permuted, identity"):
        smoke_config("head", "finetune", permuted_first="first")


def test_domain_incremental_trains_on_the_permuted_images_as_they_are(smoke_config):
    config = smoke_config("head", "finetune", scenario="domain_incremental")
    trainer = train.Trainer([config], device="cpu")
    x, y = (torch.stack([trainer.tasks[0][0].train.__dict__[k]]) for k in ("x", "y"))
    perm = {0: torch.arange(y.shape[1])}
    batch, labels, raw = trainer._batch(x, y, perm, 0)
    size = trainer.cfg.batch_size
    assert torch.equal(batch, trainer.inputs(x[:, :size].transpose(0, 1)))  # no crop, no flip
    assert torch.equal(labels, y[:, :size].T)
    assert torch.equal(raw, x[:, :size].transpose(0, 1))


@pytest.mark.parametrize(
    "method, scenario",
    [
        (m, s)
        for s in OTHERS
        for m in methods.names(plugins=False)
        if s in methods.get(m).scenarios  # DER: task-incremental only (tests/test_der.py)
    ],
)
def test_every_method_trains_under_the_scenario(smoke_runs, method, scenario):
    run = smoke_runs.get("from_layer4", method, scenario=scenario)
    R = np.asarray(run.outcome["R"])
    assert R.shape == (5, 5) and np.isfinite(R).all()
    chance = 1 / run.outcome["tasks"][0]["scored_classes"]
    assert R[:, 0].max() > chance + 0.1  # it learns (ER-ACE's first task is finetune's)


@pytest.mark.parametrize("scenario", OTHERS)
@pytest.mark.parametrize("regime", [r for r in regimes.REGIMES if r != "from_layer4"])
def test_every_regime_trains_under_the_scenario(smoke_runs, regime, scenario):
    run = smoke_runs.get(regime, "finetune", scenario=scenario)
    R = np.asarray(run.outcome["R"])
    assert R.shape == (5, 5) and np.isfinite(R).all()


TINY = dict(
    image_size=8,
    width=2,
    batch_size=8,
    train_per_task=None,
    test_per_task=None,
    eval_batch_size=64,
    **{"ewc.fisher_samples": 4, "gem.memories_per_task": 4},
)


def tiny_run(tmp_path, dataset, method, scenario):
    cfg = profiles.get_profile("smoke").config(
        dataset=dataset,
        regime="head",
        method=method,
        overrides={**TINY, "scenario": scenario},
    )
    data.load.cache_clear()
    try:
        return train.Trainer([cfg], device="cpu", data_dir=tmp_path).run()[0]
    finally:
        data.load.cache_clear()


@pytest.mark.parametrize("scenario", ["task_incremental", "class_incremental"])
def test_split_cifar100_from_torchvisions_files(tmp_path, monkeypatch, scenario):
    write_cifar100(tmp_path, monkeypatch, n_train=200, n_test=100)  # 2 and 1 image per class
    outcome = tiny_run(tmp_path, "cifar100", "ewc", scenario)
    assert np.asarray(outcome["R"]).shape == (10, 10)
    assert [t["classes"] for t in outcome["tasks"]][3] == list(range(30, 40))
    scored = [t["scored_classes"] for t in outcome["tasks"]]
    assert scored == ([10] * 10 if scenario == "task_incremental" else list(range(10, 101, 10)))


def test_permuted_mnist_from_torchvisions_files(tmp_path):
    write_mnist_like(tmp_path, "MNIST", n_train=100, n_test=50)
    outcome = tiny_run(tmp_path, "mnist", "lwf", "domain_incremental")
    assert np.asarray(outcome["R"]).shape == (5, 5)  # the smoke profile's task count
    assert all(t["classes"] == list(range(10)) for t in outcome["tasks"])
    assert {t["scored_classes"] for t in outcome["tasks"]} == {10}


def test_a_method_for_other_scenarios_is_refused_in_one_line(tmp_path):
    (tmp_path / "taskonly.py").write_text(
        textwrap.dedent(
            """
            from cl_regimes.methods import Method

            class TaskOnly(Method):
                name = "task_only"
                scenarios = ("task_incremental",)
            """
        )
    )
    base = [sys.executable, "-m", "cl_regimes", "run", "--profile", "smoke", "--dataset"]
    base += ["digits", "--regime", "head", "--results", str(tmp_path / "results")]
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for method, scenario, message in [
        (
            "taskonly:TaskOnly",
            "class_incremental",
            "error: method 'task_only' does not apply to the class_incremental scenario; "
            "valid for it: task_incremental",
        ),
        (
            "ewc",
            "open_world",
            "error: setting scenario='open_world' is out of range; valid: one of "
            "task_incremental, class_incremental, domain_incremental",
        ),
    ]:
        out = subprocess.run(
            [*base, "--method", method, "--scenario", scenario],
            capture_output=True,
            text=True,
            env=env,
        )
        assert (out.returncode, out.stderr) == (2, message + "\n")
        assert not (tmp_path / "results").exists()


def test_records_made_before_scenarios_are_task_incremental(tmp_path, smoke_config):
    cfg = smoke_config("head", "finetune")
    stored = cfg.to_dict()
    del stored["scenario"]
    record = {
        "schema": results.SCHEMA_VERSION,
        "config": stored,
        "variant": {},
        "order": [0, 1],
        "R": [[0.9, 0.5], [0.8, 0.9]],
        "tasks": [{"task": 0}, {"task": 1}],
        "classes_per_task": 2,
        "metrics": {"acc": 0.85},
        "environment": {},
    }
    path = results.save(record, tmp_path / "run.json")
    assert results.is_done(path, cfg)
    table = results.load(path)
    assert (table.scenario[0], table.chance[0]) == ("task_incremental", 0.5)


def test_permuted_images_are_zero_padded_to_32_not_resized():
    images = np.random.default_rng(0).integers(1, 256, (3, 28, 28), dtype=np.uint8)
    padded = data.resize(images, 32, pad=True)
    assert padded.shape == (3, 1, 32, 32)
    assert torch.equal(padded[:, 0, 2:30, 2:30], torch.from_numpy(images))
    border = padded.clone()
    border[..., 2:30, 2:30] = 0
    assert not border.any()
    assert not torch.equal(data.resize(images, 32)[:, 0, 2:30, 2:30], torch.from_numpy(images))
    square = images[:, :16, :16]  # a power-of-two side: resized as it is
    assert torch.equal(data.resize(square, 8, pad=True), data.resize(square, 8))


@pytest.mark.parametrize("images", ["pad", "resize"])
def test_permuted_mnist_has_its_task_count_and_padded_images(tmp_path, images):
    written = write_mnist_like(tmp_path, "MNIST", n_train=100, n_test=50)
    cfg = profiles.get_profile("smoke").config(
        dataset="mnist",
        regime="head",
        method="finetune",
        overrides={
            **TINY,
            "image_size": 32,
            "scenario": "domain_incremental",
            "permuted_tasks": 7,
            "permuted_images": images,
        },
    )
    data.load.cache_clear()
    try:
        trainer = train.Trainer([cfg], device="cpu", data_dir=tmp_path)
    finally:
        data.load.cache_clear()
    assert len(trainer.blocks) == 7 and sorted(trainer.orders[0]) == list(range(7))
    expected = data.resize(written["t10k"][0], 32, pad=True).flatten(1).sort(1).values
    for block in trainer.blocks:  # a permutation keeps each image's pixel values
        pixels = block.test.x.flatten(1).sort(1).values
        assert torch.equal(pixels, expected) == (images == "pad")


def test_permuted_mnist_runs_as_the_field_does_by_default():
    cfg = profiles.get_profile("quick").config(
        dataset="fashion_mnist",
        regime="full",
        method="ewc",
        overrides={"scenario": "domain_incremental"},
    )
    assert (cfg.permuted_tasks, cfg.permuted_images) == (10, "pad")
    assert scenarios.of(cfg).num_tasks == 10 and scenarios.of(cfg).pad


def saved_record(tmp_path, config: dict):
    """A one-task record of ``config`` saved in ``tmp_path``; its path."""
    record = {
        "schema": results.SCHEMA_VERSION,
        "config": config,
        "variant": {},
        "order": [0],
        "R": [[0.9]],
        "tasks": [{"task": 0}],
        "metrics": {"acc": 0.9},
        "environment": {},
    }
    return results.save(record, tmp_path / "run.json")


@pytest.mark.parametrize("scenario", config.SCENARIOS)
def test_records_made_before_the_scenario_settings_read_as_their_code_ran(
    tmp_path, smoke_config, scenario
):
    cfg = smoke_config("head", "lwf", scenario=scenario)
    stored = cfg.to_dict()
    for key in ("permuted_tasks", "permuted_images", "permuted_first"):
        del stored[key]
    del stored["method_params"]["warmup_outputs"]
    path = saved_record(tmp_path, stored)
    read = results.read(path)["config"]
    old = scenario != "task_incremental"  # its warm-up trained every scored output
    assert read["method_params"]["warmup_outputs"] == ("scored" if old else "new")
    domain = scenario == "domain_incremental"
    assert (read["permuted_tasks"], read["permuted_images"]) == (
        (5, "resize") if domain else (10, "pad")
    )
    assert read["permuted_first"] == "permuted"  # every task was permuted


@pytest.mark.parametrize("scenario", config.SCENARIOS)
def test_a_setting_the_scenario_does_not_read_does_not_make_another_run(
    tmp_path, smoke_config, scenario
):
    cfg = smoke_config("head", "finetune", scenario=scenario, permuted_tasks=5)
    other = smoke_config("head", "finetune", scenario=scenario, permuted_tasks=10)
    path = saved_record(tmp_path, other.to_dict())
    if scenario == "domain_incremental":  # the task count is the run's
        with pytest.raises(results.RecordError, match="permuted_tasks"):
            results.is_done(path, cfg)
    else:
        assert results.is_done(path, cfg)
