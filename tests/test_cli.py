"""The command line: run as users run it (``python -m cl_regimes ...`` in a subprocess),
and bad input refused in one line (``cli.main``, in this process) before anything runs."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_regimes import cli, commands, methods, profiles, regimes, results, sweep
from cl_regimes.config import Choice, Range, RunConfig


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cl_regimes", *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def cli_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=300, env=ENV)


def smoke_run(
    results_dir, *extra: str, method: str = "finetune", regime: str = "head"
) -> list[str]:
    """The argv of a ``run`` at the smoke profile on the CPU."""
    return [
        "run",
        "--profile",
        "smoke",
        "--dataset",
        "digits",
        "--regime",
        regime,
        "--method",
        method,
        "--device",
        "cpu",
        "--results",
        str(results_dir),
        *extra,
    ]


def test_regimes_table():
    out = cli_run("regimes")
    assert out.returncode == 0, out.stderr
    for name in regimes.REGIMES:
        assert name in out.stdout
    assert "11,173,962" in out.stdout and "5,130" in out.stdout
    assert "Traceback" not in out.stderr


def test_run_writes_a_record(tmp_path):
    out = cli_run(*smoke_run(tmp_path, regime="from_layer3"))
    assert out.returncode == 0, out.stderr
    records = list(tmp_path.rglob("*.json"))
    assert [p.relative_to(tmp_path).parts for p in records] == [
        ("smoke", "digits", "from_layer3", "finetune", "order00-seed0.json")
    ]
    record = results.read(records[0])
    R = np.asarray(record["R"])
    assert R.shape == (5, 5) and ((R >= 0) & (R <= 1)).all()
    assert record["config"]["regime"] == "from_layer3" and record["profile"] == "smoke"
    assert "record written" in out.stdout and str(records[0]) in out.stdout
    assert not list(tmp_path.rglob("*.tmp"))


def test_variants_land_side_by_side_and_load_apart(tmp_path):
    args = smoke_run(tmp_path, method="ewc")
    assert cli_run(*args).returncode == 0
    own = next(tmp_path.rglob("*.json"))
    stamp = own.stat().st_mtime_ns
    for extra in (["--set", "ewc.lam=100"], ["--set", "ewc.lam=100", "epochs=2"]):
        out = cli_run(*args, *extra)
        assert out.returncode == 0, out.stderr
    assert own.stat().st_mtime_ns == stamp  # the profile's own record is untouched
    again = cli_run(*args, "--set", "ewc.lam=100")  # resumes: already done
    assert "already done" in again.stdout
    table = results.load(tmp_path).sort_values("variant")
    assert list(table["variant"]) == ["", "epochs=2,ewc.lam=100.0", "ewc.lam=100.0"]
    assert len(set(table["path"])) == 3
    lams = [results.read(p)["config"]["method_params"]["lam"] for p in table["path"]]
    assert lams == [5000.0, 100.0, 100.0]


BAD = {
    "regime": (["--regime", "nosuch"], "regime 'nosuch'", tuple(regimes.REGIMES)),
    "method": (["--method", "nosuch"], "method 'nosuch'", methods.names()),
    "dataset": (["--dataset", "nosuch"], "dataset 'nosuch'", ("digits", "mnist", "cifar100")),
    "profile": (["--profile", "nosuch"], "profile 'nosuch'", ("paper", "quick", "smoke")),
    "setting": (["--set", "nosuch=1"], "setting 'nosuch'", ("epochs", "ewc.lam")),
    "setting type": (["--set", "epochs=fast"], "epochs", ("int",)),
    # values out of range (issue: each of these tracebacked or trained nonsense)
    "batch_size": (["--set", "batch_size=0"], "batch_size=0", (">= 1",)),
    "train_per_task": (["--set", "train_per_task=0"], "train_per_task=0", ("None or >= 2",)),
    "lr": (["--set", "lr=-1.0"], "lr=-1.0", ("> 0",)),
    "width": (["--set", "width=0"], "width=0", (">= 1",)),
    "memories": (
        ["--method", "gem", "--set", "gem.memories_per_task=0"],
        "gem.memories_per_task=0",
        (">= 1",),
    ),
    "seed": (["--seed", "-3"], "seed=-3", ("in [0, 4294967295]",)),
    "results": (["--results", "/proc/nope"], "results folder '/proc/nope'", ("--results",)),
    # issue 38: "No such file or directory" of a folder that exists
    "unwritable": (
        ["--results", "/proc/1"],
        "'/proc/1' exists but is not writable",
        ("--results",),
    ),
    "epochs": (["--set", "epochs=0"], "epochs=0", (">= 1",)),
    "temperature": (
        ["--method", "lwf", "--set", "lwf.temperature=0.0"],
        "lwf.temperature=0.0",
        ("> 0",),
    ),
    "lambda": (["--method", "ewc", "--set", "ewc.lam=-5"], "ewc.lam=-5.0", (">= 0",)),
    # a setting of a method the command does not run was ignored without a word (issue 31)
    "unused": (["--method", "ewc", "--set", "si.c=1"], "setting si.c is method si's", ("ewc",)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(case, tmp_path, capsys):
    change, bad, valid = BAD[case]
    args = {
        "--profile": "smoke",
        "--dataset": "digits",
        "--regime": "head",
        "--method": "finetune",
        "--results": str(tmp_path),
        "--device": "cpu",
    }
    extra = []
    for flag, value in zip(change[::2], change[1::2]):
        if flag in args:
            args[flag] = value
        else:
            extra += [flag, value]
    code = cli.main(["run", *[a for kv in args.items() for a in kv], *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert bad in lines[0]
    assert all(v in lines[0] for v in valid), lines[0]
    assert not list(tmp_path.rglob("*.json"))


def declared_ranges() -> dict[str, Range | Choice]:
    ranges = {
        f.name: f.metadata["valid"] for f in dataclasses.fields(RunConfig) if "valid" in f.metadata
    }
    for name in methods.names():
        ranges |= {f"{name}.{k}": v for k, v in methods.get(name).parameters().items()}
    return ranges


def out_of_range(valid: Range | Choice):
    """A value of the right type outside ``valid`` (None when there is none)."""
    if isinstance(valid, Choice):
        kind = type(valid.values[0])
        if kind is str:
            return "nosuch"
        return max(valid.values) + 1 if kind is int else None
    if valid.low is not None:
        return valid.low if valid.low_open else valid.low - 1
    return valid.high + 1


@pytest.mark.parametrize(
    "key", [k for k, v in declared_ranges().items() if out_of_range(v) is not None]
)
def test_every_declared_range_is_checked_before_anything_runs(key, tmp_path, capsys):
    valid = declared_ranges()[key]
    bad = out_of_range(valid)
    method = key.split(".")[0] if "." in key else "finetune"
    if key == "seed":
        extra = ["--seed", str(bad)]
    else:
        default = profiles.PAPER_SETTINGS[key]
        bad = float(bad) if isinstance(default, float) else bad
        extra = ["--set", f"{key}={bad}"]
    code = cli.main(smoke_run(tmp_path, *extra, method=method))
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    # images per task: at least the classes of a task, which the dataset sets (2 for digits)
    per_task = ("train_per_task", "test_per_task", "validation_per_task")
    expected = "None or >= 2" if key in per_task else str(valid)
    assert f"{key}={bad!r}" in err and expected in err
    assert not list(tmp_path.rglob("*.json"))


def test_lr_min_above_lr_is_refused(capsys, tmp_path):
    code = cli.main(smoke_run(tmp_path, "--set", "lr_min=0.1", "lr=0.01"))
    assert code == 2 and "lr_min=0.1" in capsys.readouterr().err


def test_set_takes_several_pairs_and_repeats():
    args = cli.parser().parse_args(["sweep", "--set", "epochs=2", "ewc.lam=1", "--set", "lr=0.1"])
    assert profiles.parse_overrides(args.set) == {"epochs": 2, "ewc.lam": 1.0, "lr": 0.1}


def test_no_variants_sweeps_the_profiles_own_settings_only():
    def planned(*extra):
        args = cli.parser().parse_args(["sweep", "--profile", "quick", *extra])
        profile = profiles.get_profile(args.profile)
        return profile.grid(**commands.grid_of(args, profile))

    own = planned("--no-variants")
    assert len(own) == 7 * 6 * 3 and len(planned()) > len(own)
    assert {r.variant == {} for r in own} == {True}
    assert {profiles.get_profile("quick").variant(r.config) == {} for r in own} == {True}


BOOLEAN_SETTINGS = [k for k, v in profiles.PAPER_SETTINGS.items() if isinstance(v, bool)]


@pytest.mark.parametrize("key", BOOLEAN_SETTINGS)
@pytest.mark.parametrize(
    "text, value", [("true", True), ("TRUE", True), ("1", True), ("False", False), ("0", False)]
)
def test_booleans_as_users_type_them(key, text, value):
    assert profiles.parse_overrides([f"{key}={text}"]) == {key: value}


@pytest.mark.parametrize("key", BOOLEAN_SETTINGS)
def test_a_bad_boolean_is_one_line_naming_the_setting_and_the_valid_values(key, tmp_path, capsys):
    code = cli.main(smoke_run(tmp_path, "--set", f"{key}=yes"))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{key}='yes'" in err and "true, false, 1, 0" in err


def test_help_lists_every_setting_with_its_profile_values():
    text = cli.parser()._subparsers._group_actions[0].choices["run"].format_help()
    for key in profiles.PAPER_SETTINGS:
        assert key in text
    line = next(line for line in text.splitlines() if line.strip().startswith("epochs "))
    assert line.split()[1:5] == ["3", "3", "3", "1"]  # paper, quick, medium, smoke
    assert ">= 1" in line


@pytest.mark.parametrize("command", ["sweep", "book"])
def test_sweep_and_book_check_values_before_anything_runs(command, tmp_path, capsys):
    bad_set = ["--set", "epochs=0"] if command == "sweep" else []
    for extra, message in ((bad_set, "epochs=0"), ([], "results folder")):
        results_dir = tmp_path / "r" if extra else "/proc/nope"
        if command == "book" and extra == bad_set:
            continue  # book takes the profile's values only
        code = cli.main([command, "--profile", "smoke", "--results", str(results_dir), *extra])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not list(tmp_path.rglob("*.json"))


def test_records_load_without_torch(tmp_path):
    config = {
        "dataset": "digits",
        "regime": "head",
        "method": "ewc",
        "bn_stats": "always_update",
        "order": 0,
        "seed": 0,
    }
    record = {
        "schema": results.SCHEMA_VERSION,
        "profile": "smoke",
        "config": config,
        "variant": {"ewc.lam": 1.0},
        "order": [0, 1],
        "R": [[0.9, 0.5], [0.8, 0.9]],
        "tasks": [{"task": 0, "u": 1.0}, {"task": 1, "u": 2.0}],
        "classes_per_task": 2,
        "metrics": {"acc": 0.85},
        "environment": {"device": "cpu"},
    }
    results.save(record, tmp_path / "run.json")
    code = (
        "import sys; from cl_regimes import findings, results; "
        "runs, tasks = results.load(sys.argv[1]), results.load(sys.argv[1], level='task'); "
        "assert len(runs) == 1 and len(tasks) == 2 and runs.variant[0] == 'ewc.lam=1.0'; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_a_sweep_refuses_a_setting_none_of_its_methods_takes(tmp_path, capsys):
    args = ["sweep", "--profile", "smoke", "--results", str(tmp_path), "--methods", "ewc", "gem"]
    assert cli.main([*args, "--set", "si.c=1"]) == 2
    assert "(it runs ewc, gem); drop the setting or run si" in capsys.readouterr().err


def test_a_sweep_ends_with_a_table_of_what_it_trained(tmp_path, capsys):
    args = ["sweep", "--profile", "smoke", "--device", "cpu", "--results", str(tmp_path)]
    assert cli.main([*args, "--regimes", "head", "--methods", "finetune"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "acc" in line.split())
    assert header.split()[:4] == ["dataset", "regime", "method", "variant"]
    assert "forgetting" in header and "finetune" in out


def test_the_estimate_times_each_regimes_own_step(monkeypatch):
    """Shallow regimes skip most of the backward pass; the calibration trained every
    parameter, as under full, whatever the regime."""
    counted = []
    adam = torch.optim.Adam

    def counting(params, **kwargs):
        params = list(params)
        counted.append(sum(p.numel() for p in params))
        return adam(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", counting)
    for regime in ("head", "full"):
        config = profiles.get_profile("smoke").config(
            dataset="digits", regime=regime, method="finetune"
        )
        sweep.step_seconds(config, 1, torch.device("cpu"))
    assert counted[0] < counted[1] / 100


def record(regime: str, method: str) -> dict:
    config = {"dataset": "digits", "regime": regime, "method": method}
    config |= {"bn_stats": "always_update", "order": 0, "seed": 0}
    return {
        "schema": results.SCHEMA_VERSION,
        "profile": "smoke",
        "config": config,
        "variant": {},
        "order": [0, 1],
        "R": [[0.9, 0.5], [0.8, 0.9]],
        "tasks": [{"task": 0}, {"task": 1}],
        "classes_per_task": 2,
        "metrics": {"acc": 0.85},
        "environment": {"device": "cpu"},
    }


def test_load_orders_regimes_by_depth_and_methods_as_the_book(tmp_path):
    for regime, method in [("full", "si"), ("head", "si"), ("bn_affine", "finetune")]:
        results.save(record(regime, method), tmp_path / f"{regime}-{method}.json")
    runs = results.load(tmp_path)
    assert list(runs.sort_values("regime").regime) == ["head", "bn_affine", "full"]
    assert list(runs.groupby("method").size().index) == ["finetune", "si"]
    assert results.METHOD_ORDER == methods.names(plugins=False)


def test_load_of_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(results.ConfigError, match="no such folder or file: .*nonexistent"):
        results.load(tmp_path / "nonexistent")
    empty = results.load(tmp_path)
    assert empty.empty and empty.acc.mean() != empty.acc.mean()  # NaN, not AttributeError
    assert {"acc", "forgetting", "R", "path", "wall_time_s"} <= set(empty.columns)


def test_the_accuracy_matrix_survives_a_round_trip_through_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    results.save(record("head", "ewc"), tmp_path / "run.json")
    runs = results.load(tmp_path)
    runs.assign(R=runs.R.map(np.ndarray.tolist)).to_parquet(tmp_path / "runs.parquet")
    back = results.load(tmp_path / "runs.parquet")
    assert back.R[0].shape == (2, 2) and (back.R[0] == runs.R[0]).all()
    assert back.regime.cat.ordered and list(back.method) == ["ewc"]


def test_the_readme_quotes_the_measured_cost_of_medium():
    """The README said about 7 core-hours; book/reproduce.md measured 10.7 (issue 31)."""
    root = Path(__file__).resolve().parents[1]
    measured = re.search(r"462 runs, ([\d.]+) core-hours", (root / "book/reproduce.md").read_text())
    quoted = re.findall(r"([\d.]+) core-hours", (root / "README.md").read_text())
    assert measured and quoted and set(quoted) == {measured.group(1)}
