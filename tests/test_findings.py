"""The findings' tests on synthetic records with planted effects (and planted traps for the
rules they replace), and the original study's analyses on hand-computable examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cl_regimes import findings
from cl_regimes.config import ConfigError
from cl_regimes.findings import DEPTH, PAPER_METHODS

NESTED = tuple(DEPTH)
ALL_REGIMES = ("head", "bn_affine", *NESTED[1:])
FAST = {"n_permutations": 199, "n_boot": 100}
KEY = {"bn_stats": "always_update", "variant": "", "seed": 0}


def make_runs(acc, regimes, methods=PAPER_METHODS, chance=(), T=5, classes=2):
    """Runs table from acc (datasets, orders, regimes, methods); R has acc everywhere but
    its diagonal: 0.9, or 1 / classes for the regimes in ``chance``."""
    d, o, r, m = (i.ravel() for i in np.indices(acc.shape))
    runs = pd.DataFrame(
        {
            "dataset": [f"d{i}" for i in d],
            "regime": np.asarray(regimes)[r],
            "method": np.asarray(methods)[m],
            "order": o,
            **KEY,
            "classes_per_task": classes,
            "acc": acc.ravel(),
        }
    )
    diag = np.where(runs.regime.isin(chance), 1 / classes, 0.9)
    runs["R"] = [np.full((T, T), a) + np.eye(T) * (g - a) for a, g in zip(runs.acc, diag)]
    runs["forgetting"] = runs["bwt"] = 0.0
    return runs


def make_tasks(u, forgetting, regimes=NESTED, methods=PAPER_METHODS):
    """Tasks table from u and forgetting (datasets, methods, orders, regimes, tasks); the
    last task's forgetting is nan, as in the records."""
    forgetting = forgetting.copy()
    forgetting[..., -1] = np.nan
    d, m, o, r, p = (i.ravel() for i in np.indices(u.shape))
    return pd.DataFrame(
        {
            "dataset": [f"d{i}" for i in d],
            "regime": np.asarray(regimes)[r],
            "method": np.asarray(methods)[m],
            "order": o,
            **KEY,
            "position": p,
            "u": u.ravel(),
            "orig_u": u.ravel(),
            "forgetting": forgetting.ravel(),
        }
    )


def rate(verdicts, verdict="supported"):
    per_dataset = [v for v in verdicts if v.dataset != "pooled"]
    return np.mean([v.verdict == verdict for v in per_dataset])


# ---- chance and finding 1 ------------------------------------------------------------------


def ranking_draws(n, orders=5, noise=0.02, swap=()):
    """n datasets: methods' ACC 0.80, 0.76, 0.72, 0.68 plus noise in every regime; the first
    two methods swap places in the regimes of ``swap``."""
    rng = np.random.default_rng(1)
    base = np.tile([0.80, 0.76, 0.72, 0.68], (len(ALL_REGIMES), 1))
    for r in swap:
        base[ALL_REGIMES.index(r), :2] = [0.76, 0.80]
    acc = base + rng.normal(0, noise, (n, orders, *base.shape))
    return make_runs(acc, ALL_REGIMES)


def test_identical_rankings_plus_noise_not_supported():
    verdicts = findings.finding_ranking(ranking_draws(200), **FAST)
    not_supported = rate(verdicts, "not supported")
    assert not_supported >= 0.95, f"not supported in {not_supported:.1%} of 200 null draws"
    # today's rule (the bootstrap interval of tau between regimes lies below 1) is fooled
    old = np.mean([v.intervals["tau_between"][1] < 1 for v in verdicts[:-1]])
    assert old >= 0.95, f"today's rule supported in {old:.1%}"


def test_planted_swap_supported():
    verdicts = findings.finding_ranking(ranking_draws(200, swap=NESTED[3:]), **FAST)
    supported = rate(verdicts)
    assert supported >= 0.8, f"supported in {supported:.1%} of 200 draws with a planted swap"
    assert verdicts[-1].dataset == "pooled" and verdicts[-1].verdict == "supported"
    v = verdicts[0]
    assert v.effects["tau_gap"] == pytest.approx(v.effects["tau_within"] - v.effects["tau_between"])
    assert set(v.detail.columns) >= {"regime", "method", "mean_rank", "deviation"}


def test_ranking_needs_regimes_orders_and_methods():
    runs = ranking_draws(1)
    single = findings.finding_ranking(runs[runs.order == 0], **FAST)
    assert [v.verdict for v in single] == ["not testable"] * 2  # the dataset, and pooled
    three = findings.finding_ranking(runs, methods=PAPER_METHODS[:3], **FAST)[0]
    two = findings.finding_ranking(runs, methods=PAPER_METHODS[:2], **FAST)[0]
    assert three.verdict != "not testable" and two.verdict == "not testable"


def test_ranking_swaps_by_hand():
    acc = np.array([[[[0.9, 0.8, 0.7, 0.6], [0.8, 0.9, 0.7, 0.6]]]])
    swaps = findings.ranking_swaps(make_runs(acc, ["head", "full"]))
    assert len(swaps) == 1
    row = swaps.iloc[0]
    assert (row.regime_a, row.regime_b, row.method_1, row.method_2) == (
        "head",
        "full",
        "ewc",
        "lwf",
    )
    assert (row.gap_a, row.gap_b) == pytest.approx((0.1, -0.1))


def test_chance_regime_flagged_and_excluded():
    rng = np.random.default_rng(2)
    regimes = NESTED
    acc = 0.8 - 0.04 * np.arange(4) + rng.normal(0, 0.01, (20, 8, len(regimes), 4))
    acc[:, :, 0] = 0.5 + rng.normal(0, 0.02, (20, 8, 4))  # head learns nothing: noise ranks
    runs = make_runs(acc, regimes, chance=("head",))
    table = findings.chance_regimes(runs)
    assert list(table.columns) == ["dataset", "regime", "diag_acc", "chance", "n_runs", "at_chance"]
    assert table[table.at_chance].regime.unique().tolist() == ["head"]
    assert table.chance.eq(0.5).all() and table.n_runs.eq(32).all()
    verdicts = findings.finding_ranking(runs, **FAST)
    assert all("head" in v.excluded for v in verdicts[:-1])
    assert rate(verdicts, "not supported") >= 0.85
    kept = findings.finding_ranking(runs, margin=None, **FAST)  # the noise would be a finding
    assert rate(kept) >= 0.8
    assert "head" not in set(findings.ranking_swaps(runs).regime_a)


def test_one_setting_at_a_time():
    runs = ranking_draws(1)
    both = pd.concat([runs, runs.assign(bn_stats="follow_regime")])
    with pytest.raises(ConfigError, match="bn_stats"):
        findings.finding_ranking(both, **FAST)
    other = runs.assign(variant="lr=0.1", acc=0.5)  # another variant is left out
    a = findings.finding_ranking(pd.concat([runs, other]), bn_stats="always_update", **FAST)
    b = findings.finding_ranking(runs, **FAST)
    assert a[0].observed == b[0].observed and a[0].p_value == b[0].p_value


# ---- findings 2 and 3 ------------------------------------------------------------------------

SHAPE = (20, 4, 5, len(NESTED), 5)  # datasets, methods, orders, regimes, tasks
DEPTHS = np.arange(len(NESTED))[:, None]
LEVELS = np.array([-3.0, -1.0, -2.0, 1.0])[:, None, None, None]  # log u: ewc, lwf, si, gem


def old_depth_rule(per_run, column):
    """Today's rule: Spearman of depth with the value over all methods' runs pooled,
    supported when its bootstrap interval (runs resampled) lies above 0."""
    d, v = per_run.regime.map(DEPTH).to_numpy(), per_run[column].to_numpy()
    rng = np.random.default_rng(0)
    boot = [stats.spearmanr(d[i], v[i])[0] for i in rng.integers(0, len(d), (200, len(d)))]
    return np.nanquantile(boot, 0.025) > 0


def test_depth_trend_within_methods_supported():
    rng = np.random.default_rng(3)
    log_u = LEVELS + 0.5 * DEPTHS + rng.normal(0, 0.5, SHAPE[1:4])[..., None]
    u = np.exp(log_u + rng.normal(0, 0.3, SHAPE))
    forgetting = 0.02 * DEPTHS + rng.normal(0, 0.03, SHAPE)
    verdicts = findings.finding_depth(make_tasks(u, forgetting), **FAST)
    for claim in ("larger updates", "more forgetting"):
        chosen = [v for v in verdicts if claim in v.claim]
        assert rate(chosen) == 1.0 and chosen[-1].verdict == "supported"
        assert chosen[0].detail.rho.gt(0.5).all()


def level_trap(u, forgetting):
    """Method levels flat in depth, but ewc (lowest) only runs in shallow regimes and gem
    (highest) only in deep ones, so pooling methods makes a depth trend."""
    tasks = make_tasks(u, forgetting)
    deep = tasks.regime.map(DEPTH) >= 3
    return tasks[~((tasks.method == "ewc") & deep) & ~((tasks.method == "gem") & ~deep)]


def test_method_levels_flat_in_depth_not_supported():
    rng = np.random.default_rng(4)
    u = np.exp(2 * LEVELS + rng.normal(0, 0.3, SHAPE))
    forgetting = 0.1 * (LEVELS + 3) + rng.normal(0, 0.03, SHAPE)
    tasks = level_trap(u, forgetting)
    verdicts = findings.finding_depth(tasks, **FAST)
    per_run = findings.run_updates(tasks)
    for claim, column in (("larger updates", "update"), ("more forgetting", "forgetting")):
        chosen = [v for v in verdicts if claim in v.claim]
        assert rate(chosen, "not supported") >= 0.85 and chosen[-1].verdict == "not supported"
        old = np.mean([old_depth_rule(g, column) for _, g in per_run.groupby("dataset")])
        assert old == 1.0, f"today's rule supported in {old:.0%} ({column})"


def test_coupling_strengthening_with_depth_supported():
    rng = np.random.default_rng(5)
    shape = (*SHAPE[:4], 10)
    z = rng.normal(0, 1, shape)
    u = np.exp(LEVELS + z)
    forgetting = 0.1 + 0.01 * DEPTHS * z + rng.normal(0, 0.03, shape)
    verdicts = findings.finding_coupling(make_tasks(u, forgetting), **FAST)
    assert rate(verdicts) >= 0.9 and verdicts[-1].verdict == "supported"


def test_method_differences_without_coupling_not_supported():
    """u and forgetting independent within every run; methods are apart in both, more so
    in deeper regimes, so correlations over pooled methods grow with depth."""
    rng = np.random.default_rng(6)
    shape = (*SHAPE[:4], 10)
    spread = DEPTHS / 5
    u = np.exp(2 * LEVELS * spread + rng.normal(0, 0.3, shape))
    forgetting = 0.1 + 0.05 * LEVELS * spread + rng.normal(0, 0.02, shape)
    tasks = make_tasks(u, forgetting)
    verdicts = findings.finding_coupling(tasks, **FAST)
    assert rate(verdicts, "not supported") >= 0.85 and verdicts[-1].verdict == "not supported"
    pooled = (
        tasks.dropna()
        .groupby(["dataset", "regime"])
        .apply(lambda g: stats.spearmanr(g.u, g.forgetting)[0], include_groups=False)
    )
    assert pooled.xs("full", level="regime").min() > 0.8  # what pooling methods would see


def test_constant_forgetting_counts_as_no_coupling():
    rng = np.random.default_rng(7)
    u = np.exp(rng.normal(0, 1, (1, 4, 3, len(NESTED), 6)))
    forgetting = rng.normal(0, 1, u.shape)
    forgetting[:, :, :, 0] = 0.0  # head: nothing is forgotten
    corr = findings.coupling_correlations(make_tasks(u, forgetting))
    assert corr[corr.regime == "head"].spearman.isna().all()
    assert corr[corr.regime != "head"].spearman.notna().all()
    v = findings.finding_coupling(make_tasks(u, forgetting), **FAST)[0]
    assert v.verdict != "not testable" and v.n_orders == 3


def test_coupling_correlations_match_scipy():
    rng = np.random.default_rng(8)
    u = np.exp(rng.normal(0, 1, (1, 4, 2, len(NESTED), 7))).round(1)  # ties included
    forgetting = rng.normal(0, 1, u.shape).round(1)
    corr = findings.coupling_correlations(make_tasks(u, forgetting))
    row = corr[(corr.method == "si") & (corr.regime == "from_layer3") & (corr.order == 1)]
    x, y = u[0, 2, 1, 2, :-1], forgetting[0, 2, 1, 2, :-1]
    assert row[["pearson", "spearman", "kendall"]].values[0] == pytest.approx(
        [stats.pearsonr(x, y)[0], stats.spearmanr(x, y)[0], stats.kendalltau(x, y)[0]]
    )
    assert row.n_tasks.item() == 6


def test_verdict_table_is_numeric():
    table = findings.verdict_table(findings.finding_ranking(ranking_draws(2), **FAST))
    assert table.dataset.tolist() == ["d0", "d1", "pooled"]
    assert table[["observed", "p_value", "tau_between_lo", "tau_gap_hi"]].dtypes.eq(float).all()


# ---- the original study's analyses -----------------------------------------------------------


def test_original_kendall_by_hand():
    rows = []
    accs = {
        0: {"head": [4, 3, 2, 1], "full": [4, 3, 1, 2]},  # tau = (5 - 1) / 6
        1: {"head": [1, 2, 3, 4], "full": [1, 2, 3, 4]},  # tau = 1
        2: {"head": [1, 1, 1, 1], "full": [1, 2, 3, 4]},
    }  # constant: nan, order dropped
    for order, by_regime in accs.items():
        for regime, values in by_regime.items():
            rows += [(regime, m, order, a) for m, a in zip(PAPER_METHODS, values)]
        rows += [
            ("from_layer4", "ewc", order, 5.0),
            ("bn_affine", "ewc", order, 0.0),
            ("bn_affine", "lwf", order, 1.0),
            ("head", "finetune", order, 9.0),
        ]
    runs = pd.DataFrame(rows, columns=["regime", "method", "order", "acc"]).assign(
        dataset="mnist", **KEY
    )
    out = findings.original_kendall(runs)
    assert out.per_order.tau.tolist()[:2] == pytest.approx([2 / 3, 1.0])
    assert np.isnan(out.per_order.tau[2])
    s = out.summary.iloc[0]
    assert (s.mean_tau, s.std_tau, s.n_orders, s.n_nan_orders) == pytest.approx(
        (5 / 6, 1 / 6, 2, 1)
    )  # np.std with ddof=0 of (2/3, 1)
    m = out.matrices["mnist"]
    assert list(m.index) == ["head", "full"]  # from_layer4 has one method: no pair
    assert m.loc["head", "full"] == pytest.approx(5 / 6) and m.loc["full", "full"] == 1


def test_original_update_forgetting_and_depth_u_by_hand():
    u = np.zeros((1, 4, 2, len(NESTED), 5))
    forgetting = np.zeros(u.shape)
    u[..., :] = [1.0, 2.0, 3.0, 4.0, 100.0]  # the last task is left out
    forgetting[..., :] = [0.1, 0.3, 0.2, 0.4, 0.0]
    u[0, 0, 1] *= 3  # ewc, order 1: per-run mean 7.5 instead of 2.5
    forgetting[0, 1, 1, :, :4] = 0.2  # lwf, order 1: constant, nan correlations dropped
    tasks = make_tasks(u, forgetting)
    out = findings.original_update_forgetting(tasks)
    assert "head" not in set(out.regime) and len(out) == 5 * 5
    assert list(out.method.unique()) == [*PAPER_METHODS, "all"]
    x, y = [1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4]
    expected = [stats.pearsonr(x, y)[0], stats.spearmanr(x, y)[0], stats.kendalltau(x, y)[0]]
    for method in ("lwf", "all"):
        row = out[(out.method == method) & (out.regime == "full")]
        assert row[["pearson", "spearman", "kendall"]].values[0] == pytest.approx(expected)
    assert out[out.method == "all"].n_runs.eq(8).all()
    depth_u = findings.original_depth_u(tasks)
    ewc = depth_u[(depth_u.method == "ewc") & (depth_u.regime == "from_layer4")].iloc[0]
    assert (ewc.mean_u, ewc.std_u, ewc.n_runs) == pytest.approx((5.0, 2.5, 2))  # ddof=0


# ---- the original code's quirks --------------------------------------------------------------


def test_survival_puts_a_variants_runs_in_place_of_the_profiles():
    regimes = ("from_layer4", "full")
    rng = np.random.default_rng(3)
    # two regimes: the smallest p of the ranking test is 2 / 2**orders, so 10 orders
    same = np.tile([0.80, 0.76, 0.72, 0.68], (1, 10, 2, 1)) + rng.normal(0, 0.01, (1, 10, 2, 4))
    swapped = same.copy()
    swapped[:, :, 1, :2] = swapped[:, :, 1, 1::-1]  # the variant swaps two methods under full
    own, variant = make_runs(same, regimes), make_runs(swapped, regimes).assign(variant="x=1")
    u = np.tile(np.arange(1.0, 3.0)[None, None, None, :, None], (1, 4, 10, 1, 5))
    tasks = make_tasks(u, rng.random(u.shape), regimes)
    tasks = pd.concat([tasks, tasks.assign(variant="x=1")], ignore_index=True)
    table = findings.survival(pd.concat([own, variant], ignore_index=True), tasks, "x=1", **FAST)
    assert list(table["runs of"].unique()) == ["profile", "x=1"]
    assert set(table.regimes) == {"from_layer4, full"}
    ranking = table[table.finding == 1].set_index("runs of").verdict
    assert ranking["profile"] == "not supported" and ranking["x=1"] == "supported"
    replaced = findings.with_variant(pd.concat([own, variant]), "x=1")
    assert len(replaced) == len(own) and set(replaced.variant) == {""}
