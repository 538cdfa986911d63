"""Findings 2 and 3: trends with depth over the nested regimes, tested within each method.

Each method is tested on its own runs, regimes permuted within each order (an order is a
block: its runs share the task sequence, and under shared seeding their weights and data).
A method's test never mixes in another method's runs, so noise shared across the methods
of an order cannot inflate it; the methods are then combined by intersection-union ("in
every method": the largest of their p-values, valid under any dependence) and counted with
Holm ("in k of M"). Cells at chance are left out: a regime that learns nothing forgets
nothing, and would make a trend by itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes.findings.common import (
    DEPTH,
    LEVEL,
    MIN_EXCESS,
    PAPER_METHODS,
    POOLED,
    REPLICATE,
    RUN_KEYS,
    Verdict,
    chance_excluded,
    drop_missing,
    excluded_in,
    gate,
    holm,
    interval,
    role_in,
    scope,
    untestable,
)

_CHUNK = 250  # permutations per vectorised batch (bounds memory)
PARTS = {  # part -> (what grows, how the run's value is made)
    "u": ("larger updates (u summed over the trainable parameters)", "mean u over its tasks"),
    "u per parameter": ("larger updates per trainable parameter", "mean u / n_trainable"),
    "forgetting": ("more forgetting", "forgetting"),
}


def run_updates(
    tasks: pd.DataFrame, update: str = "u", *, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """One row per run: ``update`` = mean over the run's tasks of ``tasks[update]``,
    ``update_per_param`` = that over the run's trainable parameters (nan without an
    ``n_trainable`` column) and ``forgetting`` = mean over its tasks but the last; nan where
    a value the mean needs is missing.

    Columns: dataset, regime, method, order, seed, update, update_per_param, forgetting."""
    tasks = scope(tasks, variant, bn_stats, level="task")
    last = tasks.position == tasks.groupby(RUN_KEYS).position.transform("max")
    per_run = (
        tasks.assign(
            n=tasks.n_trainable if "n_trainable" in tasks else np.nan,
            forgetting=tasks.forgetting.where(~last, 0.0),
        )
        .groupby(RUN_KEYS, sort=False)
        .agg(
            update=(update, lambda v: v.mean(skipna=False)),
            n=("n", "first"),
            forgetting=("forgetting", lambda v: v.sum(min_count=len(v)) / (len(v) - 1)),
        )
        .reset_index()
    )
    per_run.insert(6, "update_per_param", per_run["update"] / per_run.n.astype(float))
    return per_run.drop(columns="n")


def _blocks(frame: pd.DataFrame, column: str, regimes: dict) -> dict:
    """(dataset, method) -> its (orders, regimes) values over its complete orders, regimes
    in depth order; only for cells with at least ``2`` regimes."""
    wide = frame.pivot_table(
        index=["dataset", *REPLICATE], columns=["method", "regime"], values=column
    )
    out = {}
    for (d, m), names in regimes.items():
        if len(names) >= 2:
            values = wide.loc[d].reindex(columns=[(m, r) for r in names]).dropna()
            if len(values):
                out[d, m] = values.to_numpy(float)
    return out


def _rank_trend(groups, rng, n_permutations: int, n_boot: int):
    """Mean within-block Spearman rho of depth with the values, over blocks in ``groups``
    (arrays (blocks, regimes) with regimes in depth order); its permutation draws (values
    permuted within each block) and bootstrap draws (blocks resampled within each group)."""
    observed, perm, boot, total = 0.0, np.zeros(n_permutations), np.zeros(n_boot), 0
    for values in groups:
        n, r = values.shape
        c = np.arange(r) - (r - 1) / 2
        c = c / (c**2).sum()  # rho of one block = sum(c * centred ranks)
        ranks = stats.rankdata(values, axis=1) - (r + 1) / 2  # ties share their mean rank
        observed += float((ranks @ c).sum())
        for i in range(0, n_permutations, _CHUNK):
            m = min(_CHUNK, n_permutations - i)
            shuffled = np.take_along_axis(
                np.broadcast_to(ranks, (m, n, r)), rng.random((m, n, r)).argsort(-1), -1
            )
            perm[i : i + m] += (shuffled @ c).sum(1)
        boot += (ranks @ c)[rng.integers(0, n, (n_boot, n))].sum(1)
        total += n
    return observed / total, perm / total, boot / total


def _p_value(observed: float, permuted: np.ndarray) -> float:
    tol = 1e-12 * max(1.0, abs(observed))  # the identity permutation must count as >=
    return float((1 + np.sum(permuted >= observed - tol)) / (1 + len(permuted)))


def _methods_verdict(
    finding, part, dataset, role, texts, rows, n_orders, level, excluded, n_methods
) -> Verdict:
    """The intersection-union verdict over the methods' rows (method, rho, p, lo, hi)."""
    if not rows:
        return untestable(
            finding, part, dataset, role, texts, level, excluded, "no method has 2 regimes"
        )
    detail = pd.DataFrame(
        [r[:5] for r in rows], columns=["method", "rho", "p_value", "rho_lo", "rho_hi"]
    )
    detail.insert(0, "dataset", dataset)
    detail["p_holm"] = holm(detail.p_value.to_numpy())
    k = int((detail.p_holm < level).sum())
    p = float(detail.p_value.max())
    note = f"trend in {k} of {len(rows)} methods (Holm)"
    if len(rows) < n_methods:
        note += f"; {n_methods - len(rows)} of {n_methods} methods not testable"
    boot = np.array([r[5] for r in rows])
    return Verdict(
        finding,
        part,
        dataset,
        role,
        *texts,
        float(detail.rho.min()),
        p,
        level,
        "supported" if p < level else "not supported",
        n_orders,
        {"rho_min": float(detail.rho.min()), "rho_mean": float(detail.rho.mean())},
        {"rho_mean": interval(boot.mean(0))},
        excluded,
        note,
        detail,
    )


def _texts(finding: int, outcome: str, value: str) -> tuple[str, str, str]:
    if finding == 3:
        return (
            "the update-forgetting relationship strengthens with depth in every method",
            "within each method, the runs' (u, forgetting) pairs do not depend on the regime "
            "(regimes exchangeable within each order)",
            "smallest over methods of the Pearson r of depth with |coupling|, the correlation "
            "of log u with forgetting after removing the task position's effect",
        )
    return (
        f"deeper regimes give {outcome} in every method",
        f"within each method, the run's {value} does not depend on the regime "
        "(regimes exchangeable within each order)",
        f"smallest over methods of the mean within-order Spearman rho(depth, run {value})",
    )


def _families(frame: pd.DataFrame):
    """(dataset name, rows) for each dataset, then pooled over all of them."""
    yield from frame.groupby("dataset", sort=False)
    yield POOLED, frame


def _cells(frame, cells, methods, depth):
    """Per method: its nested regimes in depth order, dataset by dataset, without those at
    chance."""
    out = {}
    for (dataset, method), g in frame.groupby(["dataset", "method"], sort=False):
        if method in methods:
            regimes = sorted(set(g.regime), key=depth.get)
            out[dataset, method] = [r for r in regimes if (dataset, r, method) not in cells]
    return out


def finding_depth(
    tasks: pd.DataFrame,
    *,
    update: str = "u",
    methods=PAPER_METHODS,
    depth=DEPTH,
    min_excess: float | None = MIN_EXCESS,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = LEVEL,
    n_permutations: int = 2000,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 2, in three parts: "u" (``update`` summed over the trainable parameters; it
    grows with their number by construction, so it is exploratory), "u per parameter" and
    "forgetting"; per dataset (secondary, gated) then pooled (primary) for each part.

    Within each method: the mean over orders of the within-order Spearman rho of depth with
    the run's value, one-sided permutation p (regimes permuted within each order of that
    method). "In every method": the largest p over methods (intersection-union); the note
    counts the methods with a Holm-adjusted trend. Detail: per method rho, its bootstrap
    interval over orders, p and Holm p."""
    per_run = run_updates(tasks, update, variant=variant, bn_stats=bn_stats)
    per_run = per_run[per_run.method.isin(methods) & per_run.regime.isin(list(depth))]
    nested = tasks[tasks.regime.isin(list(depth))]
    cells, excluded = chance_excluded(nested, min_excess, methods, variant, bn_stats)
    columns = {"u": "update", "u per parameter": "update_per_param", "forgetting": "forgetting"}
    verdicts = []
    for part, column in columns.items():
        left_out = dict(excluded)
        if per_run[column].isna().all():
            note = "no runs of the methods tested"
            if len(per_run) and part == "u per parameter":
                note = "no n_trainable in the records"
            texts = _texts(2, *PARTS[part])
            verdicts.append(untestable(2, part, POOLED, "primary", texts, level, left_out, note))
            continue
        values = drop_missing(per_run, [column], left_out)
        role = "exploratory" if part == "u" or min_excess is None else "primary"
        family = _trend_family(
            values,
            column,
            2,
            part,
            role,
            _texts(2, *PARTS[part]),
            cells,
            methods,
            depth,
            level,
            n_permutations,
            n_boot,
            seed,
            left_out,
        )
        verdicts += gate(family) if role == "primary" else family
    return verdicts


def _trend_family(
    values,
    column,
    finding,
    part,
    role,
    texts,
    cells,
    methods,
    depth,
    level,
    n_permutations,
    n_boot,
    seed,
    excluded,
) -> list[Verdict]:
    blocks = _blocks(values, column, _cells(values, cells, methods, depth))
    verdicts = []
    for k, (dataset, sub) in enumerate(_families(values)):
        this_role = role_in(role, dataset)
        rng = np.random.default_rng([seed, k])
        rows, n_orders = [], 0
        for m in methods:
            groups = [blocks[d, m] for d in pd.unique(sub.dataset) if (d, m) in blocks]
            if not groups:
                continue
            rho, perm, boot = _rank_trend(groups, rng, n_permutations, n_boot)
            n_orders = max(n_orders, sum(len(g) for g in groups))
            rows.append((m, rho, _p_value(rho, perm), *interval(boot), boot))
        mine = excluded_in(excluded, dataset)
        verdicts.append(
            _methods_verdict(
                finding,
                part,
                dataset,
                this_role,
                texts,
                rows,
                n_orders,
                level,
                mine,
                len(methods),
            )
        )
    return verdicts


# ---- finding 3 -------------------------------------------------------------------------------


def _position_cubes(t: pd.DataFrame, regimes: dict, fewest: int) -> dict:
    """(dataset, method) -> (regimes, x, f): arrays (orders, regimes, positions) of log
    update (``x``) and forgetting (``f``) over the complete orders (at least 2), for the
    cells with at least ``fewest`` regimes."""
    wide = t.pivot_table(
        index=["dataset", *REPLICATE], columns=["method", "regime", "position"], values=["x", "f"]
    )
    out = {}
    for (d, m), names in regimes.items():
        positions = sorted(set(t.position[(t.dataset == d) & (t.method == m)]))
        if len(names) < fewest:
            continue
        cols = pd.MultiIndex.from_product([["x", "f"], [m], names, positions])
        table = wide.loc[d].reindex(columns=cols).dropna()
        if len(table) >= 2:
            cube = table.to_numpy(float).reshape(len(table), 2, len(names), len(positions))
            out[d, m] = (names, cube[:, 0], cube[:, 1])
    return out


def _coupling(x: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums over orders and positions of the position-centred cross products: x [..., O, R,
    P] and f alike -> (sxf, sxx, sff), each [..., R]."""
    x = x - x.mean(-3, keepdims=True)
    f = f - f.mean(-3, keepdims=True)
    return tuple((a * b).sum((-3, -1)) for a, b in ((x, f), (x, x), (f, f)))


def _trend_of_strength(sums, depths) -> np.ndarray:
    """Pearson r of depth with |coupling| over regimes, from summed cross products [..., R]."""
    sxf, sxx, sff = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        strength = np.abs(sxf / np.sqrt(sxx * sff))
    d = depths - depths.mean()
    s = strength - strength.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s * d).sum(-1) / np.sqrt((s**2).sum(-1) * (d**2).sum())


def coupling_table(
    tasks: pd.DataFrame,
    update: str = "u",
    *,
    methods=PAPER_METHODS,
    depth=DEPTH,
    variant: str = "",
    bn_stats: str | None = None,
) -> pd.DataFrame:
    """Per dataset, method and regime: the correlation of log ``update`` with forgetting
    over the runs' tasks (last dropped), after centring both within (regime, position)
    across orders, which removes what the task's position does to both.

    Columns: dataset, method, regime, coupling, n_orders."""
    t = _prepared(tasks, update, variant, bn_stats, methods, depth, {})
    rows = []
    for (dataset, m), (regimes, x, f) in _position_cubes(
        t, _cells(t, set(), methods, depth), 1
    ).items():
        sxf, sxx, sff = _coupling(x, f)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows += [(dataset, m, r, c, len(x)) for r, c in zip(regimes, sxf / np.sqrt(sxx * sff))]
    return pd.DataFrame(rows, columns=["dataset", "method", "regime", "coupling", "n_orders"])


def _prepared(tasks, update, variant, bn_stats, methods, depth, excluded) -> pd.DataFrame:
    t = scope(tasks, variant, bn_stats, level="task")
    t = t[t.method.isin(methods) & t.regime.isin(list(depth))]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.log(pd.to_numeric(t[update], errors="coerce").where(lambda v: v > 0))
    t = t.assign(x=x, f=t.forgetting)
    last = t.position == t.groupby(RUN_KEYS).position.transform("max")
    return drop_missing(t[~last], ["x", "f"], excluded)


def finding_coupling(
    tasks: pd.DataFrame,
    *,
    update: str = "u",
    methods=PAPER_METHODS,
    depth=DEPTH,
    min_excess: float | None = MIN_EXCESS,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = LEVEL,
    n_permutations: int = 2000,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 3 per dataset (secondary, gated) and pooled (primary, last).

    Per method and regime, the coupling is the correlation of log ``update`` with
    forgetting after removing the task position's effect (``coupling_table``); its strength
    is |coupling|, either sign. Within each method: Pearson r of depth with the strength
    over its regimes (pooled: sums over datasets), one-sided (strength grows with depth),
    permutation p with the runs' regime labels permuted within each order (a run's u and
    forgetting move together). Combined over methods as finding 2. Detail: per method r,
    its bootstrap interval over orders, p and Holm p."""
    nested = tasks[tasks.regime.isin(list(depth))]
    cells, excluded = chance_excluded(nested, min_excess, methods, variant, bn_stats)
    t = _prepared(tasks, update, variant, bn_stats, methods, depth, excluded)
    cubes_of = _position_cubes(t, _cells(t, cells, methods, depth), 3)
    role = "primary" if min_excess is not None else "exploratory"
    texts = _texts(3, "", "")
    verdicts = []
    for k, (dataset, sub) in enumerate(_families(t)):
        this_role = role_in(role, dataset)
        rng = np.random.default_rng([seed, k])
        rows, n_orders = [], 0
        for m in methods:
            cubes = {d: cubes_of[d, m] for d in pd.unique(sub.dataset) if (d, m) in cubes_of}
            if not cubes:
                continue
            union = sorted({r for names, _, _ in cubes.values() for r in names}, key=depth.get)
            depths = np.array([depth[r] for r in union], float)
            observed = float(_trend_of_strength(_summed(cubes, union, None, None), depths)[0])
            perm = np.concatenate(
                [
                    _trend_of_strength(
                        _summed(cubes, union, rng, min(_CHUNK, n_permutations - i)), depths
                    )
                    for i in range(0, n_permutations, _CHUNK)
                ]
            )
            boot = _trend_of_strength(_summed(cubes, union, rng, n_boot, bootstrap=True), depths)
            n_orders = max(n_orders, sum(len(x) for _, x, _ in cubes.values()))
            rows.append((m, observed, _p_value(observed, perm), *interval(boot), boot))
        mine = excluded_in(excluded, dataset)
        verdicts.append(
            _methods_verdict(
                3, "coupling", dataset, this_role, texts, rows, n_orders, level, mine, len(methods)
            )
        )
    return gate(verdicts) if role == "primary" else verdicts


def _summed(cubes, union, rng, draws, bootstrap=False):
    """Cross-product sums [draws, regimes of ``union``] over datasets: as observed (rng None),
    with the regimes permuted within each order, or with orders resampled."""
    total = None
    for names, x, f in cubes.values():
        o, r, _ = x.shape
        if rng is None:
            xs, fs = x[None], f[None]
        elif bootstrap:
            idx = rng.integers(0, o, (draws, o))
            xs, fs = x[idx], f[idx]
        else:
            perm = rng.random((draws, o, r)).argsort(-1)
            rows = np.arange(o)[None, :, None]
            xs, fs = x[rows, perm], f[rows, perm]
        sums = _coupling(xs, fs)
        place = [union.index(n) for n in names]
        full = [np.zeros((len(s), len(union))) for s in sums]
        for a, s in zip(full, sums):
            a[:, place] = s
        total = full if total is None else [a + b for a, b in zip(total, full)]
    return tuple(total)
