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
    both_ways,
    chance_excluded,
    clean,
    excluded_in,
    holm,
    interval,
    role_in,
    scope,
    untestable,
)
from cl_regimes.findings.replicates import N_POWER, N_POWER_FLIPS, drawn, flips, mixes, search

MARGIN = 0.005  # ACC gaps within +-0.5 points are ties
MIN_ORDERS = 3  # a gap's variance needs 2 degrees of freedom to say anything
MODERATION = 0.75  # share of a gap's variance taken from its pair's mean over regimes
ENUMERATED = 8  # pairs up to which every choice of null sides is enumerated
_CHOICES = {k: np.array(list(itertools.product([0, 1], repeat=k))) for k in range(1, 9)}
SIZES = MARGIN + np.geomspace(4e-3, 0.5, 9)  # planted crossings (the gap on each side)
UNTESTABLE = f"needs {MIN_ORDERS} orders and 2 regimes with a pair of methods above chance"

TEXTS = (
    "a pair of the paper's methods changes order between regimes",  # claim, null, statistic
    "no pair changes order: for every pair of methods, its ACC gap is at most +margin in "
    "every regime, or at least -margin in every regime",
    "largest crossing (ACC gap)",
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


def _test(values: np.ndarray, pairs: np.ndarray, margin: float, signs: np.ndarray) -> dict:
    """The test on gaps ``values`` [..., orders, gaps] (nan: missing), gap g belonging to
    pair ``pairs[g]``, with the sign flips ``signs`` [flips, orders]. Per gap (tested with
    at least MIN_ORDERS orders): mean, n, se (moderated) and the t of each side; per pair
    (nan with fewer than 2 tested regimes): each side's flip p, the pair's p (the larger
    side) and its adjusted p (``_adjusted``)."""
    n = np.isfinite(values).sum(-2)
    tested = n >= MIN_ORDERS
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(np.where(np.isfinite(values), values, np.nan), -2)
        resid = np.nan_to_num(values - mean[..., None, :])
        ss = (resid**2).sum(-2)
        onehot = (pairs[:, None] == np.arange(pairs.max() + 1)).astype(float)  # [gaps, pairs]
        counts = tested.astype(float) @ onehot
        flipped = np.einsum("fo,...og->...fg", signs, resid) / n[..., None, :]

        def t_of(m, ss, n, tested):
            """Each gap's t with its variance moderated towards its pair's mean variance."""
            s2 = np.where(tested, np.maximum(ss - n * m**2, 0) / (n - 1), 0.0)
            pool = (s2 @ onehot) / np.maximum(tested.astype(float) @ onehot, 1)
            scale = (1 - MODERATION) * s2 + MODERATION * (pool @ onehot.T)
            return m / np.sqrt(scale / n)

        t_null = t_of(
            flipped, ss[..., None, :], n[..., None, :], tested[..., None, :]
        )  # [..., flips, gaps]
        out = {"gap": mean, "n_orders": n, "tested": tested}
        out["se"] = np.abs(
            mean / np.where(mean == 0, np.nan, t_of(mean, ss + n * mean**2, n, tested))
        )
        p_sides = []
        for side, sign in (("ahead", 1), ("behind", -1)):
            shifted = sign * mean - margin
            t = np.where(
                out["se"] > 0, shifted / out["se"], np.sign(shifted) * np.inf
            )  # the margin moves the observed gap, not the noise
            t = np.where(tested, t, np.nan)
            out[f"t_{side}"] = t
            stat = _side(t, onehot)
            null = _side(np.where(tested[..., None, :], sign * t_null, np.nan), onehot)
            p_sides.append((1 + (null >= stat[..., None, :]).sum(-2)) / (1 + len(signs)))
            out[f"p_{side}_null"] = _ranks(null)
    out["p_ahead"], out["p_behind"] = p_sides
    out["pair_p"] = np.where(counts >= 2, np.maximum(*p_sides), np.nan)
    return out


def _side(t: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """A pair's statistic on one side: the sum of its gaps' squared positive t (a gap on
    the other side adds nothing, so only gaps beyond the margin on this side count)."""
    return np.nan_to_num(np.maximum(t, 0) ** 2, posinf=1e300) @ onehot


def _ranks(null: np.ndarray) -> np.ndarray:
    """Each flip's own p among the flips [..., flips, pairs]: like an observed p, one plus
    the flips at least as large, over one plus their number."""
    flips = null.shape[-2]
    return (2 + flips - stats.rankdata(null, "min", axis=-2)) / (1 + flips)


def _adjusted(p: np.ndarray, null: np.ndarray, until: float = 1.0) -> np.ndarray:
    """Step-down (Westfall-Young) adjusted p of the pairs' p ``p`` [..., pairs] from the
    flips' own side p's ``null`` [..., flips, pairs, 2]: at each step, the share of flips
    whose smallest p over the pairs not yet rejected is as small, for the least favourable
    choice of which side of each pair is null (every choice for up to ENUMERATED pairs, else
    Holm's bound). Steps stop once the adjusted p reaches ``until`` (later ones keep it)."""
    out = np.full(p.shape, np.nan)
    for index in np.ndindex(p.shape[:-1]):
        q, flips = p[index], null[index]
        ok = np.flatnonzero(np.isfinite(q))
        order = ok[np.argsort(q[ok], kind="stable")]
        steps = []
        for i, k in enumerate(order):
            rest = order[i:]
            if steps and steps[-1] >= until:
                steps.append(steps[-1])
            elif len(rest) > ENUMERATED:
                steps.append(min(1.0, q[k] * len(rest)))
            else:
                choices = _CHOICES[len(rest)]
                smallest = flips[:, rest][:, np.arange(len(rest)), choices].min(-1)
                worst = (smallest <= q[k] * (1 + 1e-9)).sum(0).max()
                steps.append(float((1 + worst) / (1 + len(flips))))
        out[index + (order,)] = np.minimum(1.0, np.maximum.accumulate(steps))
    return out


def _wide(gaps: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One dataset's gaps as orders x (method_1, method_2, regime), and each column's pair."""
    wide = gaps.pivot_table(
        index="order", columns=["method_1", "method_2", "regime"], values="gap", sort=False
    )
    return wide, pd.factorize(wide.columns.droplevel("regime"))[0]


def _summaries(gaps: pd.DataFrame, margin: float, level: float, signs: np.ndarray):
    """One dataset's test as frames: per gap (tested ones) its mean, t-interval, orders and
    t of each side; per pair its side p's, p, adjusted p, crossing and sizes."""
    wide, pairs = _wide(gaps)
    values = wide.to_numpy()
    r = _test(values, pairs, margin, signs)
    r["pair_adjusted"] = _adjusted(
        r["pair_p"], np.stack([r["p_ahead_null"], r["p_behind_null"]], -1)
    )
    n = r["n_orders"]
    half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * np.nanstd(values, 0, ddof=1) / np.sqrt(n)
    summary = pd.DataFrame(list(wide.columns), columns=["method_1", "method_2", "regime"])
    summary = summary.assign(
        gap=r["gap"],
        n_orders=n,
        gap_lo=r["gap"] - half,
        gap_hi=r["gap"] + half,
        t_ahead=r["t_ahead"],
        t_behind=r["t_behind"],
    )[r["tested"]]
    keys = ["method_1", "method_2"]
    pair_frame = summary.groupby(keys, sort=False).agg(
        largest=("gap", "max"), smallest=("gap", "min")
    )
    names = wide.columns.droplevel("regime").unique()
    p = pd.DataFrame(
        {
            "p_ahead": r["p_ahead"],
            "p_behind": r["p_behind"],
            "p_value": r["pair_p"],
            "p_adjusted": r["pair_adjusted"],
        },
        index=names,
    ).dropna()
    pair_frame = pair_frame.join(p, how="inner")
    pair_frame["crosses"] = pair_frame.p_adjusted < level
    pair_frame["crossing_size"] = np.minimum(pair_frame.largest, -pair_frame.smallest)
    return summary.reset_index(drop=True), pair_frame.reset_index()


def _calls(summary: pd.DataFrame, margin: float) -> np.ndarray:
    """Each gap's call: in a crossing pair, "ahead" or "behind" where the gap is beyond the
    margin on that side (the gaps its statistic rests on); "tie" where its 95% interval is
    within the margin; else ""."""
    crossing = summary.crosses.to_numpy(bool)
    call = np.where(
        crossing & (summary.t_ahead > 0),
        "ahead",
        np.where(crossing & (summary.t_behind > 0), "behind", ""),
    )
    tie = (summary.gap_lo > -margin) & (summary.gap_hi < margin)
    return np.where(tie & (call == ""), "tie", call)


def _power(gaps: pd.DataFrame, margin: float, level: float, n_power: int, rng) -> float:
    """The crossing (the gap on each side) the test finds with 80% power on one dataset's
    own noise: tables of its gap residuals' covariance (``replicates.drawn``), one pair
    drawn at random made to cross, ahead by the size in one of its regimes and behind by it
    in another (also drawn), every other gap 0."""
    wide, pairs = _wide(gaps)
    values = wide.to_numpy()
    n = np.isfinite(values).sum(0)
    residuals = values - np.nanmean(values, 0)
    tested = n >= MIN_ORDERS
    candidates = [p for p in range(pairs.max() + 1) if ((pairs == p) & tested).sum() >= 2]
    if not candidates:
        return np.nan
    pair = rng.choice(candidates, n_power)
    planted = np.zeros((n_power, values.shape[1]))
    for k, p in enumerate(pair):
        ahead, behind = rng.choice(np.flatnonzero((pairs == p) & tested), 2, replace=False)
        planted[k, ahead], planted[k, behind] = 1.0, -1.0
    tables = drawn(residuals, mixes(rng, n_power, len(values)))
    signs = flips(rng, N_POWER_FLIPS, len(values))

    def power(size):
        r = _test(tables + size * planted[:, None, :], pairs, margin, signs)
        p = np.take_along_axis(r["pair_p"], pair[:, None], -1)[:, 0]
        found = p < level  # a pair whose own p misses the level cannot pass the adjustment
        null = np.stack([r["p_ahead_null"], r["p_behind_null"]], -1)[found]
        adjusted = _adjusted(r["pair_p"][found], null, until=level)
        found[found] = np.take_along_axis(adjusted, pair[found][:, None], -1)[:, 0] < level
        return found, size

    return search(SIZES, power)


def crossings(verdict: Verdict) -> pd.DataFrame:
    """The pairs that cross in a finding-1 verdict: where each is ahead and behind, with the
    mean gaps there. Columns: dataset, method_1, method_2, ahead_in, behind_in, p_adjusted."""
    columns = ["dataset", "method_1", "method_2", "ahead_in", "behind_in", "p_adjusted"]
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

        rows.append((dataset, m1, m2, where("ahead"), where("behind"), float(g.p_adjusted.iloc[0])))
    return pd.DataFrame(rows, columns=columns)


@both_ways
def finding_ranking(
    runs: pd.DataFrame,
    *,
    methods=PAPER_METHODS,
    margin: float = MARGIN,
    min_excess: float | None = MIN_EXCESS,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = LEVEL,
    n_permutations: int = 2000,
    n_boot: int = 2000,
    n_power: int = N_POWER,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 1 per dataset (secondary: Holm over datasets) and pooled (primary, last: a
    crossing in some dataset).

    Supported when some pair of methods crosses (see the module's docstring): its gap above
    +``margin`` in one regime and below -``margin`` in another, with the family-wise error
    over pairs and regimes at ``level`` (``n_permutations`` sign flips of the orders). Cells
    (regime, method) at chance are left out (``min_excess=None`` keeps them); a verdict must
    hold with and without the cells near the threshold (``common.both_ways``). ``observed``
    and the effects: the number of crossing pairs, the largest crossing (the smaller side of
    a pair's largest and most negative gap, with a bootstrap interval over orders) and the
    detectable crossing (also ``detectable``: found with 80% power in ``n_power`` simulated
    tables; 0 skips it). Detail: one row per gap with its mean, 95% t-interval, orders, t
    of each side, the pair's side p's, p and adjusted p (``p_holm``: the same, the name
    card.py reads) and the gap's call."""
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
        rng = np.random.default_rng([seed, k])
        signs = flips(rng, n_permutations, sub.order.nunique())
        summary, pairs = _summaries(sub, margin, level, signs)
        if pairs.empty:
            verdicts.append(
                untestable(1, "ranking", dataset, this_role, TEXTS, level, mine, UNTESTABLE)
            )
            continue
        columns = ["method_1", "method_2", "p_ahead", "p_behind", "p_value", "p_adjusted"]
        summary = summary.merge(pairs[[*columns, "crosses"]])
        summary["call"] = _calls(summary, margin)
        summary["p_holm"] = summary.p_adjusted
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
                observed=float(pairs.crossing_size.max()),
                p_value=float(pairs.p_adjusted.min()),
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
                detail=summary.assign(dataset=dataset),
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
