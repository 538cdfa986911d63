"""Run records on disk: atomic writes, clear errors, resuming sweeps, tidy tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_regimes import profiles, results, sweep
from cl_regimes.config import ConfigError

METHODS = ["finetune", "ewc"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A small sweep (regime head, finetune and EWC), then a resumed one after deleting
    the EWC record: returns (folder, paths, first R of each path, mtimes before/after)."""
    root = tmp_path_factory.mktemp("results")
    grid = profiles.get_profile("smoke").grid(regimes=["head"], methods=METHODS)
    paths = sweep.sweep(grid, results_dir=root, device="cpu", progress=False).paths
    first = {p: results.read(p) for p in paths}
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    deleted = paths[1]
    deleted.unlink()
    again = sweep.sweep(grid, results_dir=root, device="cpu", progress=False)
    return {
        "root": root,
        "paths": paths,
        "again": again,
        "first": first,
        "mtimes": mtimes,
        "deleted": deleted,
    }


@pytest.fixture
def record(swept):
    return swept["first"][swept["paths"][0]]


def test_sweep_writes_one_record_per_run(swept):
    root, paths = swept["root"], swept["paths"]
    assert len(paths) == 2 and all(p.exists() for p in paths)
    assert paths == swept["again"].paths
    assert [p.relative_to(root).parts for p in paths] == [
        ("smoke", "digits", "head", m, "order00-seed0.json") for m in METHODS
    ]
    for p, m in zip(paths, METHODS, strict=True):
        assert swept["first"][p]["config"]["method"] == m
        assert swept["first"][p]["profile"] == "smoke"
    assert not list(root.rglob("*.tmp"))


def test_sweep_resumes_only_missing_runs(swept):
    kept = swept["paths"][0]
    again = swept["again"]
    assert (again.trained, again.skipped, again.failed) == ([swept["deleted"]], [kept], [])
    assert kept.stat().st_mtime_ns == swept["mtimes"][kept]  # not rewritten
    assert results.read(kept) == swept["first"][kept]
    redone = results.read(swept["deleted"])
    assert redone["R"] == swept["first"][swept["deleted"]]["R"]  # seeded: the same numbers
    assert redone["created"] >= swept["first"][swept["deleted"]]["created"]


def test_sweep_refuses_a_record_of_another_configuration(swept, tmp_path):
    target = tmp_path / swept["paths"][0].relative_to(swept["root"])
    target.parent.mkdir(parents=True)
    stale = json.loads(swept["paths"][0].read_text())
    stale["config"]["lr"] = 0.5
    target.write_text(json.dumps(stale))
    with pytest.raises(results.RecordError, match="lr"):
        sweep.sweep(
            profiles.get_profile("smoke").grid(regimes=["head"], methods=["finetune"]),
            results_dir=tmp_path,
            device="cpu",
            progress=False,
        )
    assert json.loads(target.read_text()) == stale  # never overwritten


def test_plan_covers_the_grid():
    smoke = profiles.get_profile("smoke")
    configs = [r.config for r in smoke.grid(regimes=["head", "full"], orders=[0, 3], seeds=[0, 1])]
    assert len(configs) == 2 * 6 * 2 * 2
    assert {(c.regime, c.order, c.seed) for c in configs} == {
        (r, o, s) for r in ("head", "full") for o in (0, 3) for s in (0, 1)
    }
    assert len(smoke.grid()) == 7 * 6


def test_round_trip(record, tmp_path):
    path = results.save(record, tmp_path / "a" / "b" / "run.json")
    assert path == tmp_path / "a" / "b" / "run.json"
    assert results.read(path) == record
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no .tmp left


def test_save_replaces_atomically(record, tmp_path):
    path = results.save(record, tmp_path / "run.json")
    with pytest.raises(TypeError):  # not JSON-serialisable: nothing may be written
        results.save({**record, "bad": object()}, path)
    assert results.read(path) == record
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_save_never_overwrites_a_record(record, tmp_path):
    path = results.save(record, tmp_path / "run.json")
    with pytest.raises(results.RecordError, match="never overwritten"):
        results.save({**record, "R": [[0.0] * 5] * 5}, path)
    assert results.read(path) == record
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_save_leaves_no_tmp_when_writing_fails(record, tmp_path, monkeypatch):
    path = results.save(record, tmp_path / "run.json")
    real_write = Path.write_text

    def disk_full(self, text, *args, **kwargs):  # writes half, then fails
        real_write(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    changed = {**record, "R": [[0.0] * 5] * 5}
    with pytest.raises(OSError):
        results.save(changed, path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert results.read(path) == record


@pytest.mark.parametrize(
    "damage", ["truncated", "empty", "list", "missing R", "missing config", "not square", "schema"]
)
def test_corrupt_record(record, tmp_path, damage):
    path = tmp_path / "order00-seed0.json"
    text = json.dumps(record)
    broken = dict(record)
    if damage == "truncated":
        text = text[: len(text) // 2]
    elif damage == "empty":
        text = ""
    elif damage == "list":
        text = "[1, 2]"
    elif damage.startswith("missing"):
        del broken[damage.split()[1]]
        text = json.dumps(broken)
    elif damage == "not square":
        broken["R"] = record["R"][:-1]
        text = json.dumps(broken)
    else:
        broken["schema"] = 99
        text = json.dumps(broken)
    path.write_text(text)
    with pytest.raises(results.RecordError) as err:
        results.read(path)
    assert str(path) in str(err.value)
    if damage.startswith("missing"):
        assert damage.split()[1] in str(err.value)
    assert isinstance(err.value, ConfigError)


def test_missing_file_is_a_record_error(tmp_path):
    with pytest.raises(results.RecordError, match="nothere.json"):
        results.read(tmp_path / "nothere.json")


def test_is_done(swept, smoke_config, tmp_path):
    path = swept["paths"][0]
    config = smoke_config("head", "finetune")
    assert results.Run(config, "smoke").path(swept["root"]) == path
    assert results.is_done(path, config)
    assert not results.is_done(tmp_path / "absent.json", config)
    other = smoke_config("head", "finetune", seed=0, epochs=2)
    with pytest.raises(results.RecordError) as err:
        results.is_done(path, other)
    assert "'epochs'" in str(err.value) and str(path) in str(err.value)
    assert "'lr'" not in str(err.value)  # only the differing keys are named
    method = smoke_config("head", "finetune").__class__(
        **{**config.to_dict(), "method_params": {"x": 1}}
    )
    with pytest.raises(results.RecordError, match="method_params"):
        results.is_done(path, method)


def test_load_runs(swept):
    table = results.load(swept["root"])
    assert len(table) == 2
    expected = {
        *results.RUN_COLUMNS,
        "classes_per_task",
        "acc",
        "bwt",
        "forgetting",
        "forgetting_chaudhry",
        "wall_time_s",
        "R",
        "path",
    }
    assert expected <= set(table.columns)
    assert list(table["method"]) == ["ewc", "finetune"]  # sorted by path
    row = table.set_index("method").loc["finetune"]
    rec = swept["first"][swept["paths"][0]]
    assert row["acc"] == pytest.approx(rec["metrics"]["acc"])
    assert np.array_equal(row["R"], np.asarray(rec["R"]))
    assert (row["profile"], row["dataset"], row["regime"], row["order"], row["seed"]) == (
        "smoke",
        "digits",
        "head",
        0,
        0,
    )
    assert (row["variant"], row["bn_stats"], row["classes_per_task"]) == ("", "always_update", 2)


def test_load_tasks(swept):
    table = results.load(swept["root"], level="task")
    assert len(table) == 2 * 5
    expected = {
        *results.RUN_COLUMNS,
        "position",
        "task",
        "g2",
        "r2",
        "cos",
        "u",
        "drift",
        "steps",
        "acc_learned",
        "acc_final",
        "forgetting",
        "orig_u",
        "orig_norm_g",
        "orig_norm_r",
        "orig_cos",
    }
    assert expected <= set(table.columns)
    assert "train_loss" not in table.columns and "classes" not in table.columns
    rec = swept["first"][swept["paths"][0]]
    R = np.asarray(rec["R"])
    rows = table[table["method"] == "finetune"].sort_values("position")
    assert list(rows["position"]) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(rows["acc_learned"], np.diag(R))
    np.testing.assert_allclose(rows["acc_final"], R[-1])
    np.testing.assert_allclose(rows["forgetting"].iloc[:4], np.diag(R)[:4] - R[-1, :4])
    assert np.isnan(rows["forgetting"].iloc[4])
    np.testing.assert_allclose(rows["drift"], [t["drift"] for t in rec["tasks"]])


def test_load_empty_and_bad_level(tmp_path, swept):
    empty = results.load(tmp_path)
    assert isinstance(empty, pd.DataFrame) and empty.empty
    assert list(empty.columns) == list(results.LEVEL_COLUMNS["run"])  # as a full table's
    with pytest.raises(ConfigError, match="unknown level 'epoch'"):
        results.load(swept["root"], level="epoch")
    # a single file, or a list of them
    assert len(results.load(swept["paths"][0])) == 1
    assert len(results.load(swept["paths"], level="task")) == 10


def test_variant_names():
    assert results.variant_name({"ewc.lam": 100.0}) == "ewc.lam=100.0"
    assert results.variant_name({"gem.memory_bn": "frozen", "bn_stats": "follow_regime"}) == (
        "bn_stats=follow_regime,gem.memory_bn=frozen"
    )
    long = results.variant_name({f"setting{i}": i for i in range(20)})
    assert long.startswith("variant-") and len(long) == 20
    assert results.variant_name({"x": "a/b"}).startswith("variant-")  # never a path


def test_variants_of_a_run_live_side_by_side(smoke_config):
    smoke = profiles.get_profile("smoke")
    run = smoke.run(dataset="digits", regime="head", method="ewc", overrides={"ewc.lam": 100.0})
    assert run.variant == smoke.variant(run.config) == {"ewc.lam": 100.0}
    own = smoke.run(dataset="digits", regime="head", method="ewc").path("r")
    other = run.path("r")
    assert own.parent == other.parent.parent and own.name == other.name
    assert other.parent.name == "ewc.lam=100.0"
    assert profiles.get_profile("smoke").variant(
        smoke_config("head", "gem", bn_stats="follow_regime")
    ) == {"bn_stats": "follow_regime"}


def test_unwritable_results_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for folder in (blocker / "sub", "/proc/nope"):
        with pytest.raises(ConfigError, match="results folder .* cannot be created or written"):
            results.check_writable(folder)
    results.check_writable(tmp_path / "new" / "deep")
    assert (tmp_path / "new" / "deep").is_dir() and not list((tmp_path / "new").rglob(".*"))


def test_paper_means_float32_and_the_original_settings():

    ids = {"dataset": "fashion_mnist", "regime": "full", "method": "gem"}
    plain = profiles.get_profile("paper").config(**ids)
    explicit = profiles.get_profile("paper").config(**ids, overrides={"precision": "fp32"})
    assert plain == explicit and profiles.get_profile("paper").variant(explicit) == {}
    assert plain.precision == "fp32" and plain.bn_stats == "always_update"
    assert plain.method_params["memory_bn"] == "update"
    lwf = profiles.get_profile("paper").config(**{**ids, "method": "lwf"}).method_params
    assert lwf == {
        "lam": 1.0,
        "temperature": 2.0,
        "warmup_epochs": 3,
        "warmup_outputs": "new",
        "student_forwards": 2,
    }
    bf16 = profiles.get_profile("paper").config(**ids, overrides={"precision": "bf16"})
    assert profiles.get_profile("paper").variant(bf16) == {"precision": "bf16"}
    cifar = profiles.get_profile("paper").config(**{**ids, "dataset": "cifar100", "method": "lwf"})
    assert cifar.epochs == 20 and cifar.method_params["warmup_epochs"] == 10
