"""Tuning: validation images held out of the training images, replicates of its own, the
choice of each cell's strength and the command that runs it all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from cl_regimes import data, profiles, tuning
from cl_regimes.config import TUNING_SEEDS, ConfigError


class Unreadable:
    """A split that fails the test if anything reads it."""

    def __getattr__(self, name):
        raise AssertionError(f"the test images were read ({name})")


def test_validation_images_are_held_out_of_the_training_images_never_the_test_images():
    ds = data.load("digits", image_size=16)
    blind = data.Dataset(ds.spec, ds.train, Unreadable())
    blocks = data.make_blocks(blind, 60, None, torch.device("cpu"), validation_per_task=40)
    pairs = data.block_indices(blind, 60, None, validation_per_task=40)
    for block, (train, held) in zip(blocks, pairs, strict=True):
        assert not set(train.tolist()) & set(held.tolist())  # disjoint
        assert torch.equal(block.test.x, ds.train.x[held])  # scored: training images
        assert torch.bincount(block.test.y, minlength=10)[block.classes].tolist() == [20, 20]
        assert torch.bincount(block.train.y, minlength=10)[block.classes].tolist() == [30, 30]
    with pytest.raises(AssertionError, match="test images were read"):
        data.make_blocks(blind, 60, None, torch.device("cpu"))


def test_without_validation_the_tasks_are_the_same_images_as_before():
    ds = data.load("digits", image_size=16)
    plain = data.block_indices(ds, 60, 20)
    gen = torch.Generator().manual_seed(0)  # the draws of the code before validation
    for task_classes, (train, test) in zip(data.class_blocks(10, 5), plain, strict=True):
        assert torch.equal(train, data.subsample(ds.train.y, task_classes, 60, gen))
        assert torch.equal(test, data.subsample(ds.test.y, task_classes, 20, gen))


def smoke(**overrides):
    return profiles.get_profile("smoke").config(
        dataset="digits", regime="head", method="ewc", **overrides
    )


def test_tuning_replicates_never_overlap_evaluation_ones():
    smoke(seed=TUNING_SEEDS, overrides={"validation_per_task": 40})
    for seed, overrides in ((0, {"validation_per_task": 40}), (TUNING_SEEDS, None)):
        with pytest.raises(ConfigError, match="never share a replicate"):
            smoke(seed=seed, overrides=overrides)
    medium = profiles.get_profile("medium")
    tuned = [r.config for r in tuning.plan(medium, methods=["ewc"], regimes=["full"])]
    evaluation = [r.config for r in medium.grid(methods=["ewc"], regimes=["full"], seeds=[0, 1])]
    assert {(c.order, c.seed) for c in tuned} == {(o, TUNING_SEEDS) for o in tuning.ORDERS}
    assert not {(c.order, c.seed) for c in tuned} & {(c.order, c.seed) for c in evaluation}
    assert {c.validation_per_task for c in tuned} == {500}  # medium's test images per task
    assert sorted({c.method_params["lam"] for c in tuned}) == [50.0, 500.0, 5000.0, 50000.0]


def table(accs: dict[float, list[float]], method="ewc", profile="medium") -> pd.DataFrame:
    """Tuning records of one cell: each candidate's validation ACC by order."""
    rows = [
        {
            "dataset": "fashion_mnist" if profile == "medium" else "digits",
            "scenario": "task_incremental",
            "regime": "full",
            "method": method,
            "profile": profile,
            "value": value,
            "order": order,
            "seed": TUNING_SEEDS,
            "acc": acc,
        }
        for value, values in accs.items()
        for order, acc in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_the_best_mean_validation_acc_is_chosen_and_the_papers_value_on_a_tie():
    (row,) = tuning.choices(table({50.0: [0.8, 0.7, 0.9], 5000.0: [0.7, 0.7, 0.7]})).itertuples()
    assert (row.paper, row.chosen, row.setting, row.edge) == (5000.0, 50.0, "lam", "lowest")
    inside = {5.0: [0.6], 50.0: [0.8], 5000.0: [0.7], 50000.0: [0.9]}
    assert tuning.choices(table(inside))[["edge", "next"]].values.tolist() == [["highest", 5e5]]
    inside[50000.0] = [0.5]
    assert tuning.choices(table(inside)).edge.tolist() == [""]  # 50 is inside the grid
    assert (row.chosen_acc, row.paper_acc) == pytest.approx((0.8, 0.7))
    (row,) = tuning.choices(table({50.0: [0.7], 5000.0: [0.7], 0.5: [0.6]})).itertuples()
    assert row.chosen == 5000.0  # a tie goes to the paper's value
    assert not row.complete  # 3 candidates of one replicate each
    full = {v: [0.7, 0.7, 0.7] for v in (50.0, 500.0, 5000.0, 50000.0)}
    assert tuning.choices(table(full)).complete.tolist() == [True]
    chosen = tuning.choices(
        pd.concat([table({1.0: [0.6], 10.0: [0.9]}, "si"), table({5000.0: [0.9]})])
    )
    evaluation = tuning.evaluation_plan(profiles.get_profile("medium"), chosen)
    configs = [r.config for r in evaluation]
    assert {(c.method, c.method_params["c"]) for c in configs} == {("si", 10.0)}
    assert len(configs) == 11 and {c.seed for c in configs} == {0}
    assert evaluation[0].variant == {"si.c": 10.0}


def test_a_gain_within_the_replicates_standard_error_keeps_the_papers_value():
    # 500 is best by 0.03 on average, but its paired differences (0.02, -0.02, 0.09) have a
    # standard error of 0.032: within the noise, so the paper's 5000 stays
    accs = {50.0: [0.6] * 3, 500.0: [0.80, 0.70, 0.90], 5000.0: [0.78, 0.72, 0.81]}
    (row,) = tuning.choices(table({**accs, 50000.0: [0.5] * 3})).itertuples()
    assert (row.chosen, row.edge) == (5000.0, "")
    assert row.se == pytest.approx(np.std([0.02, -0.02, 0.09], ddof=1) / np.sqrt(3))
    accs[500.0] = [0.85, 0.75, 0.90]  # differences 0.07, 0.03, 0.09: beyond the noise
    assert tuning.choices(table({**accs, 50000.0: [0.5] * 3})).chosen.tolist() == [500.0]
    # within the noise of the best, the candidate nearest the paper's value is chosen
    near = {0.5: [0.91, 0.90, 0.92], 5.0: [0.90, 0.91, 0.90], 50.0: [0.8] * 3}
    (row,) = tuning.choices(table({**near, 500.0: [0.7] * 3, 5000.0: [0.6] * 3})).itertuples()
    assert (row.chosen, row.edge) == (5.0, "")


def test_a_choice_at_an_edge_extends_the_search_until_it_is_interior():
    peak = 0.5  # EWC's best lambda, four factors of 10 below the grid's lowest (50)
    made = []

    def train(runs):  # validation ACC falls with the distance from the peak
        made.extend(
            {
                **{k: getattr(r.config, k) for k in tuning.CELL},
                "profile": "medium",
                "value": r.config.method_params["lam"],
                "order": r.config.order,
                "seed": r.config.seed,
                "acc": 0.9 - 0.1 * abs(np.log10(r.config.method_params["lam"] / peak)),
            }
            for r in runs
        )

    medium = profiles.get_profile("medium")
    runs = tuning.plan(medium, methods=["ewc"], regimes=["full"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tuning, "load", lambda folder: pd.DataFrame(made))
        (row,) = tuning.search(medium, runs, train, "unused").itertuples()
    assert (row.chosen, row.edge, row.complete) == (0.5, "", True)
    tried = pd.DataFrame(made).groupby("value").size()
    assert tried.to_dict() == {v: len(tuning.ORDERS) for v in (0.05, 0.5, 5, 50, 500, 5000, 50000)}
    assert {r["seed"] for r in made} == {TUNING_SEEDS}
    (first,) = tuning.choices(tuning.initial(pd.DataFrame(made))).itertuples()
    assert (first.chosen, first.edge, first.complete) == (50.0, "lowest", False)


def test_the_search_stops_where_the_settings_range_ends():
    row = {"dataset": "digits", "scenario": "task_incremental", "regime": "full"}
    row |= {"method": "ewc", "setting": "gamma", "chosen": 1.0}  # gamma: (0, 1]
    smoke = profiles.get_profile("smoke")
    assert tuning.next_value(smoke, row, "highest") is None
    assert tuning.next_value(smoke, row, "lowest") == 0.1
    (cell,) = tuning.choices(table({1e6: [0.9] * 3, 5.0: [0.1] * 3}, profile="smoke")).itertuples()
    assert (cell.edge, cell.next, cell.range_end) == ("highest", 1e7, False)


def test_only_methods_with_a_strength_are_tuned():
    with pytest.raises(ConfigError, match="method 'gem' has no strength to tune"):
        tuning.plan(profiles.get_profile("smoke"), methods=["gem"])


def test_tune_runs_the_candidates_chooses_and_evaluates_a_changed_choice(tmp_path):
    command = [sys.executable, "-m", "cl_regimes", "tune", "--profile", "smoke"]
    command += ["--regimes", "from_layer4", "--methods", "ewc", "--factors", "1", "1e-6"]
    command += ["--results", str(tmp_path / "results"), "--tuning", str(tmp_path / "tuning")]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    records = sorted((tmp_path / "tuning").rglob("*.json"))
    configs = [json.loads(p.read_text())["config"] for p in records]
    assert {c["seed"] for c in configs} == {TUNING_SEEDS}
    assert {c["validation_per_task"] for c in configs} == {
        tuning.validation_size(profiles.get_profile("smoke"), "digits")
    }
    (chosen,) = tuning.choices(tuning.load(tmp_path / "tuning")).itertuples()
    # two candidates: the choice was an edge, so the search went on until it was not
    assert len(records) == chosen.candidates * len(tuning.ORDERS) > 2 * len(tuning.ORDERS)
    assert chosen.edge == "" and pd.isna(chosen.next)
    assert f"{chosen.chosen:g}" in out.stdout
    evaluated = list((tmp_path / "results").rglob("*.json"))
    assert len(evaluated) == (chosen.chosen != chosen.paper)
    for path in evaluated:
        config = json.loads(path.read_text())["config"]
        assert (config["seed"], config["validation_per_task"]) == (0, None)
        assert config["method_params"]["lam"] == chosen.chosen


def test_tuned_runs_take_the_chosen_values_runs_and_label_them_primary():
    def run(method, variant, order, acc, scenario="task_incremental"):
        return dict(
            dataset="fashion_mnist",
            scenario=scenario,
            regime="full",
            method=method,
            variant=variant,
            order=order,
            acc=acc,
        )

    runs = pd.DataFrame(
        [run("ewc", "", o, 0.5) for o in range(3)]
        + [run("ewc", "ewc.lam=50.0", o, 0.7) for o in range(3)]
        + [run("si", "", o, 0.6) for o in range(3)]
        + [run("si", "si.c=10.0", o, 0.1) for o in range(3)]
        + [run("lwf", "scenario=class_incremental", 0, 0.3, "class_incremental")]
        + [run("lwf", "lwf.lam=0.1,scenario=class_incremental", 0, 0.4, "class_incremental")]
    )
    chosen = pd.DataFrame(
        [
            ("fashion_mnist", "task_incremental", "full", "ewc", "lam", 5000.0, 50.0),
            ("fashion_mnist", "task_incremental", "full", "si", "c", 100.0, 100.0),
            ("fashion_mnist", "class_incremental", "full", "lwf", "lam", 1.0, 0.1),
        ],
        columns=["dataset", "scenario", "regime", "method", "setting", "paper", "chosen"],
    )
    tuned = tuning.tuned_runs(runs, chosen)
    assert tuned.groupby("method").acc.mean().to_dict() == pytest.approx(
        {"ewc": 0.7, "si": 0.6, "lwf": 0.4}
    )
    assert set(tuned.variant) == {"", "scenario=class_incremental"}
    assert len(tuned) == 7


def test_cells_not_tuned_yet_are_missing_from_the_tuned_grid():
    def cells(*pairs):
        rows = [("fashion_mnist", "task_incremental", r, m) for r, m in pairs]
        return pd.DataFrame(rows, columns=tuning.CELL)

    primary = cells(("full", "gem"), ("full", "ewc"), ("head", "ewc"))
    lacking = tuning.missing(primary, cells(("full", "gem"), ("head", "ewc")))
    assert list(map(tuple, lacking.to_numpy())) == [tuple(primary.iloc[1])]
    assert tuning.missing(primary, primary).empty


def test_the_pairs_whose_order_tuning_reverses_with_their_gaps_and_intervals():
    def runs(accs: dict[str, list[float]], regime="full"):
        return pd.DataFrame(
            [
                {"dataset": "d", "scenario": "task_incremental", "regime": regime}
                | {"method": m, "order": o, "seed": s, "acc": acc + 0.01 * s}
                for m, values in accs.items()
                for o, acc in enumerate(values)
                for s in (0, 1)
            ]
        )

    gem = {"gem": [0.8] * 3}
    primary = pd.concat(
        [runs({"ewc": [0.65, 0.75, 0.85]} | gem), runs({"ewc": [0.5] * 3} | gem, "head")]
    )
    tuned = pd.concat(
        [runs({"ewc": [0.8, 0.9, 1.0]} | gem), runs({"ewc": [0.6] * 3} | gem, "head")]
    )
    (row,) = tuning.reversals(primary, tuned).itertuples()  # head keeps its order
    assert (row.regime, row.first, row.second) == ("full", "ewc", "gem")
    half = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)  # 3 orders, gaps' sd 0.1
    assert (row.gap_paper, row.lo_paper, row.hi_paper) == pytest.approx(
        (-0.05, -0.05 - half, -0.05 + half)
    )
    assert (row.gap_tuned, row.lo_tuned, row.hi_tuned) == pytest.approx(
        (0.1, 0.1 - half, 0.1 + half)
    )


def test_a_tuned_grid_compares_the_studys_methods_only(tmp_path):
    committed = Path(__file__).parents[1] / "records"
    cell = "fashion_mnist/full/{}/order00-seed{}.json"
    tuning_run = "tuning/quick/" + cell.format("ewc/validation_per_task=200", 1000)
    for path in (tuning_run, "scenarios/quick/" + cell.format("ewc", 0)):
        (tmp_path / path).parent.mkdir(parents=True)
        shutil.copy(committed / path, tmp_path / path)
    record = json.loads((committed / "scenarios/quick" / cell.format("ewc", 0)).read_text())
    record["config"]["method"] = "er"  # a method beside the study's in the same folder
    other = tmp_path / "scenarios/quick" / cell.format("er", 0)
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps(record))
    _, _, primary, _ = tuning.collect(tmp_path, "quick", "scenarios/quick")
    assert primary.method.tolist() == ["ewc"]
