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

The unit is the order: the gaps of an order's seeds are averaged first (they share its task
sequence), and the t-tests run over the orders. The detectable crossing is found by
simulation (``replicates``): the records' own gap residuals, orders resampled, a crossing
of growing size planted in one pair (ahead in one regime, behind in another, both drawn at
random), the whole test run on each simulated table.
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
    clean,
    excluded_in,
    holm,
    interval,
    role_in,
    scope,
    untestable,
)
from cl_regimes.findings.replicates import N_POWER, detectable, resampled

MARGIN = 0.005  # ACC gaps within +-0.5 points are ties
MIN_ORDERS = 3  # a paired t-test needs 2 degrees of freedom to say anything
SIZES = MARGIN + np.geomspace(1e-3, 0.5, 40)  # planted crossings (the gap on each side)
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
    """Every pair's ACC gaps, paired within each replicate and averaged over the seeds of
    each order, in every regime where neither method is at chance, per dataset. ->
    (gaps, excluded): gaps has columns dataset, regime, method_1, method_2, order and gap;
    excluded names what was left out (runs with a non-finite ACC or R, cells at chance or
    with no records) and why."""
    runs = scope(runs, variant, bn_stats)
    excluded: dict[str, str] = {}
    runs = clean(runs[runs.method.isin(methods)], ["acc"], excluded)
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
                gap = gap.groupby(level="order", sort=False).mean()
                frames.append(
                    pd.DataFrame(
                        {
                            "dataset": dataset,
                            "regime": regime,
                            "method_1": m1,
                            "method_2": m2,
                            "order": gap.index,
                            "gap": gap.to_numpy(),
                        }
                    )
                )
    columns = ["dataset", "regime", "method_1", "method_2", "order", "gap"]
    return pd.concat(frames) if frames else pd.DataFrame(columns=columns), excluded


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values along the last axis (nan: not a test)."""
    m = np.isfinite(p).sum(-1, keepdims=True)
    order = np.argsort(np.where(np.isfinite(p), p, np.inf), -1, kind="stable")
    ranked = np.take_along_axis(p, order, -1)
    steps = np.minimum(1.0, np.fmax.accumulate(ranked * (m - np.arange(p.shape[-1])), -1))
    out = np.empty_like(p)
    np.put_along_axis(out, order, steps, -1)
    return np.where(np.isfinite(p), out, np.nan)


def _test(values: np.ndarray, pairs: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """The test on gaps ``values`` [..., orders, gaps] (nan: missing), gap g belonging to
    pair ``pairs[g]``. Per gap (nan with fewer than MIN_ORDERS orders): mean, n, se, t and
    one-sided p of each side, p Bonferroni-adjusted over the pair's tested regimes; per pair
    (nan with fewer than 2 regimes): p (the larger side) and its Holm-adjusted p."""
    n = np.isfinite(values).sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, se = np.nanmean(values, -2), np.nanstd(values, -2, ddof=1) / np.sqrt(n)
        t = {
            side: np.where(
                se > 0, (sign * mean - margin) / se, np.sign(sign * mean - margin) * np.inf
            )
            for side, sign in (("ahead", 1), ("behind", -1))
        }
    tested = n >= MIN_ORDERS
    onehot = pairs[:, None] == np.arange(pairs.max() + 1)  # [gaps, pairs]
    regimes = tested.astype(float) @ onehot  # [..., pairs]
    out = {"gap": mean, "n_orders": n, "se": se, "tested": tested}
    pair_p = []
    for side, ts in t.items():
        p = np.where(tested, stats.t.sf(ts, np.maximum(n - 1, 1)), np.nan)
        p = np.minimum(1.0, p * (regimes @ onehot.T))
        out |= {f"t_{side}": ts, f"p_{side}": p}
        pair_p.append(np.where(onehot, np.where(np.isnan(p), np.inf, p)[..., None], np.inf).min(-2))
    out["pair_p"] = np.where(regimes >= 2, np.maximum(*pair_p), np.nan)
    out["pair_holm"] = _holm(out["pair_p"])
    return out


def _wide(gaps: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One dataset's gaps as orders x (method_1, method_2, regime), and each column's pair."""
    wide = gaps.pivot_table(
        index="order", columns=["method_1", "method_2", "regime"], values="gap", sort=False
    )
    return wide, pd.factorize(wide.columns.droplevel("regime"))[0]


def _summaries(gaps: pd.DataFrame, margin: float, level: float):
    """One dataset's test as frames: per gap (tested ones) its mean, t-interval, orders, the
    Bonferroni p of each side; per pair its p, Holm p, Holm step, crossing and sizes."""
    wide, pairs = _wide(gaps)
    r = _test(wide.to_numpy(), pairs, margin)
    half = stats.t.ppf(0.975, np.maximum(r["n_orders"] - 1, 1)) * r["se"]
    summary = pd.DataFrame(list(wide.columns), columns=["method_1", "method_2", "regime"])
    summary = summary.assign(
        gap=r["gap"],
        n_orders=r["n_orders"],
        gap_lo=r["gap"] - half,
        gap_hi=r["gap"] + half,
        t_ahead=r["t_ahead"],
        t_behind=r["t_behind"],
        p_ahead=r["p_ahead"],
        p_behind=r["p_behind"],
    )[r["tested"]]
    keys = ["method_1", "method_2"]
    pair_frame = summary.groupby(keys, sort=False).agg(
        t_ahead=("t_ahead", "max"),
        t_behind=("t_behind", "max"),
        largest=("gap", "max"),
        smallest=("gap", "min"),
    )
    names = wide.columns.droplevel("regime").unique()
    p = pd.DataFrame({"p_value": r["pair_p"], "p_holm": r["pair_holm"]}, index=names).dropna()
    pair_frame = pair_frame.join(p, how="inner")
    pair_frame["step"] = len(pair_frame) - pair_frame.p_value.rank(method="first") + 1
    pair_frame["crosses"] = pair_frame.p_holm < level
    pair_frame["crossing_size"] = np.minimum(pair_frame.largest, -pair_frame.smallest)
    return summary.reset_index(drop=True), pair_frame.reset_index()


def _calls(summary: pd.DataFrame, pairs: pd.DataFrame, level: float, margin: float):
    """Each gap's call at its pair's Holm step: "ahead", "behind", "tie" (interval within
    the margin) or ""."""
    step = summary.merge(pairs[["method_1", "method_2", "step"]], how="left").step.to_numpy()
    call = np.where(
        summary.p_ahead * step < level,
        "ahead",
        np.where(summary.p_behind * step < level, "behind", ""),
    )
    tie = (summary.gap_lo > -margin) & (summary.gap_hi < margin)
    return np.where(tie & (call == ""), "tie", call)


def _power(gaps: pd.DataFrame, margin: float, level: float, n_power: int, rng) -> float:
    """The crossing (the gap on each side) the test finds with 80% power on one dataset's
    gap residuals: orders resampled, one pair drawn at random made to cross, ahead by the
    size in one of its regimes and behind by it in another (also drawn), every other gap 0."""
    wide, pairs = _wide(gaps)
    values = wide.to_numpy()
    residuals = values - np.nanmean(values, 0)
    r = _test(values, pairs, margin)
    candidates = [p for p in range(pairs.max() + 1) if np.isfinite(r["pair_p"][p])]
    if not candidates:
        return np.nan
    pair = rng.choice(candidates, n_power)
    planted = np.zeros((n_power, values.shape[1]))
    for k, p in enumerate(pair):
        ahead, behind = rng.choice(np.flatnonzero((pairs == p) & r["tested"]), 2, replace=False)
        planted[k, ahead], planted[k, behind] = 1.0, -1.0
    tables = residuals[resampled(len(values), rng, n_power)]  # [tables, orders, gaps]
    tables = tables[None] + SIZES[:, None, None, None] * planted[None, :, None, :]
    holm_p = _test(tables, pairs, margin)["pair_holm"]  # [sizes, tables, pairs]
    return detectable(SIZES, np.take_along_axis(holm_p, pair[None, :, None], -1)[..., 0] < level)


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
    n_power: int = N_POWER,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 1 per dataset (secondary: Holm over datasets) and pooled (primary, last: a
    crossing in some dataset).

    Supported when some pair of methods crosses (see the module's docstring): its gap above
    +``margin`` in one regime and below -``margin`` in another, with the family-wise error
    over pairs and regimes at ``level``. Cells (regime, method) at chance are left out
    (``min_excess=None`` keeps them). Effects: the number of crossing pairs, the largest
    crossing (the smaller side of a pair's largest and most negative gap, with a bootstrap
    interval over orders) and the detectable crossing (also ``detectable``: found with 80%
    power in ``n_power`` simulated tables; 0 skips it). Detail: one row per gap with its
    mean, 95% t-interval, orders, Bonferroni p-values of each side, the pair's Holm p and
    the gap's call."""
    gaps, excluded = gap_table(
        runs,
        methods=methods,
        margin=margin,
        min_excess=min_excess,
        variant=variant,
        bn_stats=bn_stats,
    )
    role = "primary" if min_excess is not None else "exploratory"
    claim, null, statistic = TEXTS
    verdicts = []
    for k, dataset in enumerate(pd.unique(gaps.dataset)):
        mine = excluded_in(excluded, dataset)
        this_role = role_in(role, dataset)
        sub = gaps[gaps.dataset == dataset]
        summary, pairs = _summaries(sub, margin, level)
        if pairs.empty:
            verdicts.append(
                untestable(1, "ranking", dataset, this_role, TEXTS, level, mine, UNTESTABLE)
            )
            continue
        summary = summary.merge(pairs[["method_1", "method_2", "p_holm", "crosses"]])
        summary["call"] = _calls(summary, pairs, level, margin)
        rng = np.random.default_rng([seed, k])
        boot = _bootstrap_crossing(sub, pairs, n_boot, rng)
        seen = _power(sub, margin, level, n_power, rng) if n_power else np.nan
        n_cross = int(pairs.crosses.sum())
        verdicts.append(
            Verdict(
                finding=1,
                part="ranking",
                dataset=dataset,
                role=this_role,
                claim=claim,
                null=null,
                statistic=statistic,
                observed=float(np.minimum(pairs.t_ahead, pairs.t_behind).max()),
                p_value=float(pairs.p_holm.min()),
                level=level,
                verdict="",
                n_orders=int(summary.n_orders.max()),
                effects={
                    "crossing_pairs": n_cross,
                    "largest_crossing": float(pairs.crossing_size.max()),
                    "detectable_crossing": seen,
                },
                intervals={"largest_crossing": interval(boot)},
                excluded=mine,
                note=f"{n_cross} of {len(pairs)} pairs cross" if n_cross else "",
                detail=summary.drop(columns=["t_ahead", "t_behind"]).assign(dataset=dataset),
                detectable=seen,
            )
        )
    return [*verdicts, _union(verdicts, role, level, excluded)]


def _union(verdicts: list[Verdict], role: str, level: float, excluded) -> Verdict:
    """Holm over the datasets' verdicts (set in place), and the pooled one: a crossing in
    some dataset, p the smallest adjusted p (the family-wise error over datasets, pairs and
    regimes stays at ``level``); detectable: the best dataset's."""
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
    claim, null, statistic = TEXTS
    return Verdict(
        finding=1,
        part="ranking",
        dataset=POOLED,
        role=role,
        claim=claim,
        null=null,
        statistic=statistic,
        observed=max(v.observed for v in tested),
        p_value=best.p_value,
        level=level,
        verdict=best.verdict,
        n_orders=sum(v.n_orders for v in tested),
        effects={
            "crossing_pairs": crossing,
            "largest_crossing": best.effects["largest_crossing"],
            "detectable_crossing": best.effects["detectable_crossing"],
        },
        intervals={"largest_crossing": best.intervals["largest_crossing"]},
        excluded=excluded,
        note=f"{crossing} crossing pairs in {', '.join(where)}" if where else "",
        detail=pd.concat([v.detail for v in tested], ignore_index=True),
        detectable=min(v.detectable for v in tested),
    )


def _bootstrap_crossing(gaps, pairs, n_boot, rng) -> np.ndarray:
    """Bootstrap draws (orders resampled) of the largest crossing of ``pairs``."""
    table = gaps.pivot_table(
        index="order", columns=["method_1", "method_2", "regime"], values="gap"
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
