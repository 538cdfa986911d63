"""The findings' data checks: what is refused, what is left out and named, and what cannot
be tested (issue 29's silent cases), each on a small simulated table."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

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


def test_detail_p_values_are_bonferroni_adjusted_over_regimes():
    """The detail's p of each side is the one-sided t-test's times the pair's regimes (its
    docstring said so; it was the raw p)."""
    d = findings.finding_ranking(swap_runs(), **RANK)[-1].detail
    se = (d.gap_hi - d.gap) / stats.t.ppf(0.975, d.n_orders - 1)
    raw = stats.t.sf((d.gap - findings.MARGIN) / se, d.n_orders - 1)
    assert np.allclose(d.p_ahead, np.minimum(1, 6 * raw))


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
