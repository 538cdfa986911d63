"""The findings' data checks: what is refused, what is left out and named, and what cannot
be tested (issue 29's silent cases), each on a small simulated table."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from cl_regimes import findings
from cl_regimes.config import ConfigError
from simulate import depth_draw, ranking_draw, runs_table, tasks_table

FAST = {"n_permutations": 199, "n_boot": 50, "n_power": 0}
RANK = {"n_boot": 50, "n_power": 0}


def swap_runs(seed=0, orders=11):
    return runs_table(ranking_draw(np.random.default_rng(seed), "swap", orders))


def trend_tasks(seed=0, orders=11, methods=None):
    u, forgetting, learned = depth_draw(np.random.default_rng(seed), "trend", orders, slope=0.6)
    tasks = tasks_table(u, forgetting, acc_learned=learned)
    return tasks if methods is None else tasks[tasks.method.isin(methods)]


@pytest.mark.parametrize("column", ["profile", "seeding", "bn_stats"])
def test_records_with_a_missing_setting_are_not_pooled(column):
    """nunique skips missing values: a table of one profile and records without one was
    pooled (finding 1 "supported" at 22 orders)."""
    runs = swap_runs()
    other = runs.assign(order=runs.order + 11, **{column: None})
    with pytest.raises(ConfigError, match=f"mix {column}"):
        findings.finding_ranking(pd.concat([runs, other], ignore_index=True), **RANK)


def test_in_every_method_needs_every_method():
    """One method's records (or a method with too few regimes) cannot show a trend "in
    every method"; it was "supported" (p = 0.03)."""
    tasks = trend_tasks(methods=["ewc"])
    for v in findings.finding_depth(tasks, **FAST) + findings.finding_coupling(tasks, **FAST):
        assert v.verdict == "not testable", (v.part, v.verdict)
        assert "lwf, si, gem" in v.note


@pytest.mark.parametrize("orders", [1, 2, 4])
def test_trends_need_enough_orders(orders):
    """Sign flips over fewer than 5 orders (6, two-sided) cannot reach p < 0.05; finding 2
    gave a verdict from one order."""
    tasks = trend_tasks(orders=orders)
    depth = findings.finding_depth(tasks, **FAST)
    assert all(v.verdict == "not testable" for v in depth)
    assert findings.finding_coupling(tasks, **FAST)[-1].verdict == "not testable"
    assert findings.finding_depth(trend_tasks(orders=5), **FAST)[-1].verdict != "not testable"


def test_nan_in_r_is_named_and_left_out():
    """A run with NaN in R was averaged by finding 1 and by the chance rule."""
    runs = swap_runs()
    runs.at[5, "R"] = np.where(np.eye(5, k=-2, dtype=bool), np.nan, runs.R[5])  # off diag
    name = "/".join(str(runs.loc[5, k]) for k in ("dataset", "regime", "method", "order", "seed"))
    v = findings.finding_ranking(runs, **RANK)[-1]
    assert v.excluded[name] == "non-finite acc or R"
    n = findings.chance_cells(runs).set_index(["regime", "method"]).n_runs
    assert n[runs.regime[5], runs.method[5]] == 10


def test_nan_in_a_tasks_learned_accuracy_is_named_and_left_out():
    tasks = trend_tasks()
    tasks.loc[3, "acc_learned"] = np.nan
    name = "/".join(str(tasks.loc[3, k]) for k in ("dataset", "regime", "method", "order", "seed"))
    for v in findings.finding_depth(tasks, **FAST) + findings.finding_coupling(tasks, **FAST):
        assert v.excluded.get(name) == "non-finite acc_learned", v.part
    n = findings.chance_cells(tasks).set_index(["regime", "method"]).n_runs
    assert n[tasks.regime[3], tasks.method[3]] == 10


def test_a_cell_with_no_records_is_named():
    runs = swap_runs()
    runs = runs[~((runs.regime == "full") & (runs.method == "gem"))]
    assert findings.finding_ranking(runs, **RANK)[-1].excluded["d0/full/gem"] == "no records"
    tasks = trend_tasks()
    tasks = tasks[~((tasks.regime == "head") & (tasks.method == "si"))]
    assert findings.finding_depth(tasks, **FAST)[-1].excluded["d0/head/si"] == "no records"


def test_a_pairs_p_is_its_larger_side_and_the_adjustment_keeps_order():
    """A pair crosses only if both sides are beyond the margin: its p is the larger of its
    two sides' flip p's; the step-down adjusted p is at least it and keeps its order."""
    d = findings.finding_ranking(swap_runs(), **RANK)[-1].detail
    pairs = d.groupby(["method_1", "method_2"]).first()
    assert np.allclose(pairs.p_value, np.maximum(pairs.p_ahead, pairs.p_behind))
    assert (pairs.p_adjusted >= pairs.p_value - 1e-12).all()
    ranked = pairs.sort_values("p_value")
    assert ranked.p_adjusted.is_monotonic_increasing
    assert pairs.crosses.sum() == 1 and pairs.loc[("ewc", "lwf")].crosses


def test_missing_runs_task_rows_and_task_counts_are_named():
    """A run missing from a replicate the others have, a run with a task row missing and a
    3-task run among 5-task ones were averaged or dropped silently."""
    runs = swap_runs()
    runs = runs.drop(
        index=runs[(runs.regime == "full") & (runs.method == "si") & (runs.order == 4)].index
    )
    v = findings.finding_ranking(runs, **RANK)[-1]
    assert "no record" in v.excluded["d0/full/si/4/0"]
    tasks = trend_tasks()
    run = (tasks.regime == "from_layer3") & (tasks.method == "lwf")
    short = tasks.drop(index=tasks[run & (tasks.order == 2) & (tasks.position == 1)].index)
    in_run = (short.regime == "from_layer3") & (short.method == "lwf")
    three = short[~(in_run & (short.order == 5) & (short.position >= 3))]
    for v in findings.finding_depth(three, **FAST) + findings.finding_coupling(three, **FAST):
        assert "task rows" in v.excluded["d0/from_layer3/lwf/2/0"], v.part
        assert "have 5 tasks" in v.excluded["d0/from_layer3/lwf/5/0"], v.part


def test_each_verdict_names_its_statistic_and_never_shows_a_p_as_it():
    """The table's ``observed`` was a t for finding 1, a p for finding 2's primary verdict
    and unnamed for finding 3."""
    tasks = trend_tasks()
    verdicts = findings.primary(swap_runs(), tasks, n_permutations=199, n_power=0)
    table = findings.verdict_table(verdicts).set_index("finding")
    assert table.loc[1, "statistic"] == "largest crossing (ACC gap)"
    assert table.loc[1, "observed"] == pytest.approx(verdicts[0].effects["largest_crossing"])
    assert "rho" in table.loc[2, "statistic"] and "coupling" in table.loc[3, "statistic"]
    both = verdicts[1]
    assert both.observed == pytest.approx(min(both.effects.values()))
    assert both.observed != both.p_value


def test_the_method_count_agrees_with_the_verdict():
    """At 6 orders every method's sign-flip p is 1/64: "in every method" is supported, and
    the note said "trend in 0 of 4 methods (Holm)"."""
    v = next(
        v
        for v in findings.finding_depth(trend_tasks(orders=6), **FAST)
        if v.part == "forgetting" and v.dataset == "pooled"
    )
    assert v.verdict == "supported" and "in 4 of 4 methods" in v.note


def test_seeds_of_an_order_are_averaged():
    """Two seeds per order: finding 1 tests over the orders, not the replicates."""
    acc = ranking_draw(np.random.default_rng(3), "swap", 6, seeds=2)
    v = findings.finding_ranking(runs_table(acc, seeds=2), **RANK)[-1]
    assert v.detail.n_orders.max() == 6
    tasks = trend_tasks()
    two = tasks.assign(seed=tasks.order % 2, order=tasks.order // 2)
    assert findings.finding_depth(two, **FAST)[-1].n_orders == 6


def test_the_robustness_panel_says_which_verdicts_move():
    panel = pd.DataFrame(
        [
            ("as declared", 1, "", "not supported"),
            ("without head", 1, "", "supported"),
            ("as declared", 2, "u per parameter", "not supported"),
            ("without head", 2, "u per parameter", "supported"),
            ("chance threshold 0.6", 2, "u per parameter", "not supported"),
        ],
        columns=["setting", "finding", "part", "verdict"],
    )
    text = findings.what_moves(panel)
    assert "without head, finding 2 (u per parameter) is supported" in text
    assert "without head, finding 1 is supported (not supported as declared)" in text
    assert "0.6" not in text
    same = panel[panel.setting != "without head"]
    assert findings.what_moves(same).startswith("No verdict moves")


def test_the_panel_tests_u_over_the_head_where_the_records_have_it():
    robustness = importlib.import_module("cl_regimes.findings.robustness")  # not the function
    tasks = trend_tasks()
    assert robustness._common_u(tasks, 0.5, FAST)["verdict"] == "not in the records"
    rising = robustness._common_u(tasks.assign(u_head=tasks.u), 0.5, FAST)
    assert rising["verdict"] == "supported" and rising["p_value"] < 0.05
    rng = np.random.default_rng(1)
    flat = tasks.assign(u_head=rng.lognormal(size=len(tasks)))  # no trend with depth
    assert robustness._common_u(flat, 0.5, FAST)["verdict"] != "supported"
