"""Finding 1: does a pair of methods change order between regimes?

The claim is about crossings, so the test is one: for a pair of methods (i, j) and a
regime r, the gap is ACC(i) - ACC(j), paired within each order (runs of one order share
the task sequence, and under shared seeding the initial weights and data too). The pair
crosses when its gap is above +margin in one regime and below -margin in another; a gap
within the margin is a tie, not a crossing. Null per pair: its gap is at most +margin in
every regime, or at least -margin in every regime. Each gap gets one-sided paired t-tests
(each with its own variance, so noise that differs between regimes, methods or datasets
does not count as a crossing); the pair's p-value is the larger of its two sides
(intersection-union), each side the smallest p over regimes times their number
(Bonferroni); Holm over pairs. Neither noise levels, gaps that shrink near the ceiling
without changing sign, nor ties can reject this null; only a sign change larger than the
margin on both sides can.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes.findings.common import (
    LEVEL,
    MIN_EXCESS,
    PAPER_METHODS,
    POOLED,
    REPLICATE,
    Verdict,
    chance_excluded,
    drop_missing,
    excluded_in,
    holm,
    interval,
    role_in,
    scope,
    untestable,
)

MARGIN = 0.005  # ACC gaps within +-0.5 points are ties
MIN_ORDERS = 3  # a paired t-test needs 2 degrees of freedom to say anything
POWER = 0.8
UNTESTABLE = f"needs {MIN_ORDERS} orders and 2 regimes with a pair of methods above chance"

TEXTS = (
    "a pair of the paper's methods changes order between regimes",  # claim, null, statistic
    "no pair changes order: for every pair of methods, its ACC gap is at most +margin in "
    "every regime, or at least -margin in every regime",
    "per pair, min(largest t of a gap above +margin, largest t of a gap below -margin) over "
    "regimes; max over pairs",
)


def gap_table(
    runs: pd.DataFrame,
    *,
    methods=PAPER_METHODS,
    margin: float = MARGIN,
    min_excess: float | None = MIN_EXCESS,
    variant: str = "",
    bn_stats: str | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every pair's paired ACC gaps, per order, in every regime where neither method is at
    chance, per dataset. -> (gaps, excluded): gaps has columns dataset, regime, method_1, method_2,
    replicate (a tuple) and gap; excluded names what was left out and why."""
    runs = scope(runs, variant, bn_stats)
    runs = runs[runs.method.isin(methods)]
    excluded: dict[str, str] = {}
    runs = drop_missing(runs, ["acc"], excluded)
    cells, reasons = chance_excluded(runs, min_excess, methods)
    excluded |= reasons
    keep = np.array(
        [(d, r, m) not in cells for d, r, m in zip(runs.dataset, runs.regime, runs.method)], bool
    )
    runs = runs[keep]
    frames = []
    for dataset, sub in runs.groupby("dataset", sort=False):
        table = sub.pivot_table(index=REPLICATE, columns=["regime", "method"], values="acc")
        for regime in pd.unique(sub.regime):
            present = [m for m in methods if (regime, m) in table.columns]
            for m1, m2 in itertools.combinations(present, 2):
                gap = (table[(regime, m1)] - table[(regime, m2)]).dropna()
                frames.append(
                    pd.DataFrame(
                        {
                            "dataset": dataset,
                            "regime": regime,
                            "method_1": m1,
                            "method_2": m2,
                            "replicate": [(dataset, *k) for k in gap.index],
                            "gap": gap.to_numpy(),
                        }
                    )
                )
    columns = ["dataset", "regime", "method_1", "method_2", "replicate", "gap"]
    return pd.concat(frames) if frames else pd.DataFrame(columns=columns), excluded


def _summaries(gaps: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Per gap: mean, t-interval, n, and the one-sided p-values of above +margin
    (``p_ahead``) and below -margin (``p_behind``)."""
    g = gaps.groupby(["dataset", "regime", "method_1", "method_2"], sort=False).gap
    out = g.agg(gap="mean", sd="std", n_orders="size").reset_index()
    out = out[out.n_orders >= MIN_ORDERS].reset_index(drop=True)
    se, df = out.sd / np.sqrt(out.n_orders), out.n_orders - 1
    half = stats.t.ppf(0.975, df) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ahead = np.where(se > 0, (out.gap - margin) / se, np.sign(out.gap - margin) * np.inf)
        t_behind = np.where(se > 0, (-out.gap - margin) / se, np.sign(-out.gap - margin) * np.inf)
    return out.assign(
        gap_lo=out.gap - half,
        gap_hi=out.gap + half,
        t_ahead=t_ahead,
        t_behind=t_behind,
        p_ahead=stats.t.sf(t_ahead, df),
        p_behind=stats.t.sf(t_behind, df),
    ).drop(columns="sd")


def _pairs(summary: pd.DataFrame, level: float) -> pd.DataFrame:
    """Per pair of one family: Bonferroni over its regimes on each side, the
    intersection-union p (the larger side), Holm over the pairs, and each gap's call at
    the pair's Holm step: "ahead", "behind", "tie" (interval within the margin) or ""."""
    keys = ["method_1", "method_2"]
    n_regimes = summary.groupby(keys).regime.transform("size")
    summary = summary.assign(
        p_ahead=np.minimum(1, summary.p_ahead * n_regimes),
        p_behind=np.minimum(1, summary.p_behind * n_regimes),
    )
    pairs = summary.groupby(keys, sort=False).agg(
        p_ahead=("p_ahead", "min"),
        p_behind=("p_behind", "min"),
        t_ahead=("t_ahead", "max"),
        t_behind=("t_behind", "max"),
        n_regimes=("regime", "size"),
        largest=("gap", "max"),
        smallest=("gap", "min"),
    )
    pairs = pairs[pairs.n_regimes >= 2]
    pairs["p_value"] = np.maximum(pairs.p_ahead, pairs.p_behind)
    pairs["p_holm"] = holm(pairs.p_value.to_numpy())
    ranks = pairs.p_value.rank(method="first").to_numpy()
    pairs["step"] = len(pairs) - ranks + 1  # Holm's multiplier of the pair
    pairs["crosses"] = pairs.p_holm < level
    pairs["crossing_size"] = np.minimum(pairs.largest, -pairs.smallest)
    return pairs.reset_index()


def _calls(summary: pd.DataFrame, pairs: pd.DataFrame, level: float, margin: float):
    step = summary.merge(pairs[["method_1", "method_2", "step"]], how="left").step
    n = summary.groupby(["method_1", "method_2"]).regime.transform("size")
    call = np.where(
        summary.p_ahead * n * step < level,
        "ahead",
        np.where(summary.p_behind * n * step < level, "behind", ""),
    )
    tie = (summary.gap_lo > -margin) & (summary.gap_hi < margin)
    return np.where(tie & (call == ""), "tie", call)


def _detectable_gap(summary: pd.DataFrame, n_pairs: int, level: float, margin: float) -> float:
    """The crossing (gap on each side) the test finds with 80% power at the family's median
    noise and order count: margin + (t_crit + t_power) * sd / sqrt(n)."""
    n = int(summary.n_orders.median())
    sd = float(np.median((summary.gap_hi - summary.gap_lo) / (2 * stats.t.ppf(0.975, n - 1))))
    regimes = summary.regime.nunique()
    crit = stats.t.isf(level / (n_pairs * regimes), n - 1)
    return margin + (crit + stats.t.ppf(POWER, n - 1)) * sd


def crossings(verdict: Verdict) -> pd.DataFrame:
    """The pairs that cross in a finding-1 verdict: where each is ahead and behind, with the
    mean gaps there. Columns: dataset, method_1, method_2, ahead_in, behind_in, p_holm."""
    columns = ["dataset", "method_1", "method_2", "ahead_in", "behind_in", "p_holm"]
    d = verdict.detail
    if d.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (dataset, m1, m2), g in d[d.crosses].groupby(
        ["dataset", "method_1", "method_2"], sort=False
    ):

        def where(call, g=g):
            return ", ".join(
                f"{r} ({x:+.3f})" for r, x, c in zip(g.regime, g.gap, g.call) if c == call
            )

        rows.append((dataset, m1, m2, where("ahead"), where("behind"), float(g.p_holm.iloc[0])))
    return pd.DataFrame(rows, columns=columns)


def finding_ranking(
    runs: pd.DataFrame,
    *,
    methods=PAPER_METHODS,
    margin: float = MARGIN,
    min_excess: float | None = MIN_EXCESS,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 1 per dataset (secondary: Holm over datasets) and pooled (primary, last: a
    crossing in some dataset).

    Supported when some pair of methods crosses (see the module's docstring): its gap above
    +``margin`` in one regime and below -``margin`` in another, with the family-wise error
    over pairs and regimes at ``level``. Cells (regime, method) at chance are left out
    (``min_excess=None`` keeps them). Effects: the number of crossing pairs, the largest
    crossing (the smaller side of a pair's largest and most negative gap, with a bootstrap
    interval over orders) and the detectable crossing (80% power at the observed noise).
    Detail: one row per gap with its mean, 95% t-interval, orders, Bonferroni p-values of
    each side, the pair's Holm p and the gap's call."""
    gaps, excluded = gap_table(
        runs,
        methods=methods,
        margin=margin,
        min_excess=min_excess,
        variant=variant,
        bn_stats=bn_stats,
    )
    role = "primary" if min_excess is not None else "exploratory"
    verdicts = []
    for k, dataset in enumerate(pd.unique(gaps.dataset)):
        mine = excluded_in(excluded, dataset)
        this_role = role_in(role, dataset)
        sub = gaps[gaps.dataset == dataset]
        summary = _summaries(sub, margin)
        pairs = _pairs(summary, level) if len(summary) else pd.DataFrame()
        if pairs.empty:
            verdicts.append(
                untestable(1, "ranking", dataset, this_role, TEXTS, level, mine, UNTESTABLE)
            )
            continue
        summary = summary.merge(pairs[["method_1", "method_2", "p_holm", "crosses"]])
        summary["call"] = _calls(summary, pairs, level, margin)
        boot = _bootstrap_crossing(sub, pairs, n_boot, np.random.default_rng([seed, k]))
        n_cross = int(pairs.crosses.sum())
        verdicts.append(
            Verdict(
                1,
                "ranking",
                dataset,
                this_role,
                *TEXTS,
                float(np.minimum(pairs.t_ahead, pairs.t_behind).max()),
                float(pairs.p_holm.min()),
                level,
                "",
                int(summary.n_orders.max()),
                {
                    "crossing_pairs": n_cross,
                    "largest_crossing": float(pairs.crossing_size.max()),
                    "detectable_crossing": _detectable_gap(summary, len(pairs), level, margin),
                },
                {"largest_crossing": interval(boot)},
                mine,
                f"{n_cross} of {len(pairs)} pairs cross" if n_cross else "",
                summary.drop(columns=["t_ahead", "t_behind"]),
            )
        )
    return [*verdicts, _union(verdicts, role, level, excluded)]


def _union(verdicts: list[Verdict], role: str, level: float, excluded) -> Verdict:
    """Holm over the datasets' verdicts (set in place), and the pooled one: a crossing in
    some dataset, p the smallest adjusted p (the family-wise error over datasets, pairs and
    regimes stays at ``level``)."""
    tested = [v for v in verdicts if v.verdict != "not testable"]
    if not tested:
        return untestable(1, "ranking", POOLED, role, TEXTS, level, excluded, UNTESTABLE)
    for v, p in zip(tested, holm([v.p_value for v in tested])):
        v.p_value = float(p)
        v.verdict = "supported" if p < level else "not supported"
        v.note = v.note if p < level else ""
    best = min(tested, key=lambda v: v.p_value)
    crossing = sum(v.effects["crossing_pairs"] for v in tested if v.supported)
    where = [v.dataset for v in tested if v.supported]
    return Verdict(
        1,
        "ranking",
        POOLED,
        role,
        *TEXTS,
        max(v.observed for v in tested),
        best.p_value,
        level,
        best.verdict,
        sum(v.n_orders for v in tested),
        {
            "crossing_pairs": crossing,
            "largest_crossing": best.effects["largest_crossing"],
            "detectable_crossing": best.effects["detectable_crossing"],
        },
        {"largest_crossing": best.intervals["largest_crossing"]},
        excluded,
        f"{crossing} crossing pairs in {', '.join(where)}" if where else "",
        pd.concat([v.detail for v in tested], ignore_index=True),
    )


def _bootstrap_crossing(gaps, pairs, n_boot, rng) -> np.ndarray:
    """Bootstrap draws (orders resampled) of the largest crossing of ``pairs``."""
    table = gaps.pivot_table(
        index="replicate", columns=["method_1", "method_2", "regime"], values="gap"
    )
    table = table[
        [c for c in table.columns if (c[0], c[1]) in set(zip(pairs.method_1, pairs.method_2))]
    ]
    values = table.to_numpy()
    idx = rng.integers(0, len(values), (n_boot, len(values)))
    with np.errstate(invalid="ignore"):
        means = np.nanmean(values[idx], 1)  # (draws, gaps)
    out = np.full(n_boot, -np.inf)
    for pair in set(zip(table.columns.get_level_values(0), table.columns.get_level_values(1))):
        cols = [i for i, c in enumerate(table.columns) if c[:2] == pair]
        m = means[:, cols]
        out = np.maximum(out, np.minimum(np.nanmax(m, 1), -np.nanmin(m, 1)))
    return out
