"""Finding 2: deeper regimes give larger updates and more forgetting, in every method.

Per replicate (order, seed) and method: the Spearman rho of regime depth with the run's
value over the nested regimes; averaged over the seeds of each order, then over the orders,
and tested with sign flips over the orders, one-sided (``replicates``). A method's test
never mixes in another method's runs, and stays valid when the trend varies from order to
order. "In every method": the largest p over methods (intersection-union, valid under any
dependence between them), and only when every method can be tested; the note counts the
methods whose trend survives Holm's adjustment. Cells at chance are left out: a regime that
learns nothing forgets nothing, and would make a trend by itself.
"""

from __future__ import annotations

import functools

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
    both_ways,
    chance_excluded,
    clean,
    drop_missing,
    excluded_in,
    gate,
    holm,
    interval,
    role_in,
    scope,
    untestable,
)
from cl_regimes.findings.replicates import (
    N_FLIPS,
    N_POWER,
    boot_means,
    detectable,
    drawn,
    flips,
    min_orders,
    mixes,
    order_means,
    sign_flip,
)

PARTS = {  # part -> (what grows, how the run's value is made, its column)
    "u": (
        "larger updates (u summed over the trainable parameters)",
        "mean u over its tasks",
        "update",
    ),
    "u per parameter": (
        "larger updates per trainable parameter",
        "mean u / n_trainable",
        "update_per_param",
    ),
    "forgetting": ("more forgetting", "forgetting", "forgetting"),
}
BOTH = "u per parameter and forgetting"  # finding 2's primary verdict: both parts
SIZES = np.geomspace(0.02, 30, 60)  # planted changes over the regimes, in residual sds
RHOS = np.linspace(0.0, 0.95, 96)  # mean per-order rhos, the same in every method and part


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


def cells_of(frame, cells, methods, depth) -> dict:
    """Per (dataset, method): its nested regimes in depth order, without those at chance."""
    out = {}
    for (dataset, method), g in frame.groupby(["dataset", "method"], sort=False):
        if method in methods:
            regimes = sorted(set(g.regime), key=depth.get)
            out[dataset, method] = [r for r in regimes if (dataset, r, method) not in cells]
    return out


def _wide(frame: pd.DataFrame, column: str, regimes: dict) -> dict:
    """(dataset, method) -> its values over its complete replicates (rows indexed by
    dataset, order, seed; columns its regimes in depth order), for cells of >= 2 regimes."""
    wide = frame.pivot_table(
        index=["dataset", *REPLICATE], columns=["method", "regime"], values=column
    )
    out = {}
    for (d, m), names in regimes.items():
        if len(names) >= 2 and d in wide.index.get_level_values(0):
            values = wide.xs(d, drop_level=False).reindex(columns=[(m, r) for r in names]).dropna()
            if len(values):
                out[d, m] = values
    return out


def _rhos(values: np.ndarray) -> np.ndarray:
    """Spearman rho of position with values along the last axis (ties: mean ranks)."""
    r = values.shape[-1]
    c = np.arange(r) - (r - 1) / 2
    ranks = stats.rankdata(values, axis=-1) - (r + 1) / 2
    return ranks @ (c / (c**2).sum())


def methods_verdict(
    finding, part, dataset, role, texts, rows, level, excluded, methods, untested
) -> Verdict:
    """The intersection-union verdict over the methods' ``rows`` (method, trend, p, lo, hi,
    orders); "not testable" when a method of ``methods`` is in ``untested``."""
    if not rows or untested:
        note = f"{', '.join(untested) or 'no method'}: fewer than 2 regimes or too few orders"
        return untestable(finding, part, dataset, role, texts, level, excluded, note)
    detail = pd.DataFrame(
        rows, columns=["method", "rho", "p_value", "rho_lo", "rho_hi", "n_orders"]
    )
    detail.insert(0, "dataset", dataset)
    detail["p_holm"] = holm(detail.p_value.to_numpy())
    k = int((detail.p_value < level).sum())  # each method at the level: all are needed
    p = float(detail.p_value.max())
    claim, null, statistic = texts
    return Verdict(
        finding=finding,
        part=part,
        dataset=dataset,
        role=role,
        claim=claim,
        null=null,
        statistic=statistic,
        observed=float(detail.rho.min()),
        p_value=p,
        level=level,
        verdict="supported" if p < level else "not supported",
        n_orders=int(detail.n_orders.min()),
        effects={"rho_min": float(detail.rho.min()), "rho_mean": float(detail.rho.mean())},
        excluded=excluded,
        note=f"{'trend' if finding == 2 else 'strengthening'} at p < {level} in {k} of "
        f"{len(rows)} methods (each needed)",
        detail=detail,
    )


def _texts(outcome: str, value: str) -> tuple[str, str, str]:
    return (
        f"deeper regimes give {outcome} in every method",
        f"in some method, the mean over orders of the within-order trend of the run's {value} "
        "with depth is zero or negative (each order's trend symmetric about it)",
        "smallest mean per-order Spearman rho(depth, run value) over methods",
    )


def families(frame: pd.DataFrame):
    """(dataset name, its dataset names) for each dataset, then pooled over all of them."""
    names = list(pd.unique(frame.dataset))
    yield from ((d, [d]) for d in names)
    yield POOLED, names


def _units(frames: list[pd.DataFrame], sizes=None) -> pd.DataFrame:
    """Per order (of any dataset, seeds averaged): the per-replicate rho of each frame
    (rows replicates, columns regimes), as observed (one column) or with a linear trend of
    each of ``sizes`` added to its residuals (one column per size)."""
    out = []
    for f in frames:
        v = f.to_numpy()
        if sizes is None:
            rho = _rhos(v)[:, None]
        else:
            e = v - v.mean(0)
            ramp = np.arange(v.shape[1]) / (v.shape[1] - 1) * (e.std() or 1.0)
            rho = _rhos(e + sizes[:, None, None] * ramp).T
        out.append(order_means(pd.DataFrame(rho, index=f.index)))
    return pd.concat(out)


def _power(tests: list[tuple[list[pd.DataFrame], bool]], level, n_power, rng) -> float:
    """The mean per-order rho at which the test finds the trend in every one of ``tests``
    (a method's frames, and whether its values are updates, planted in logs) with 80% power,
    when each of them has that rho: each frame's residuals plus a linear trend over its
    regimes, as steep as that frame needs for the rho, the orders' values drawn jointly
    (``replicates.drawn``)."""
    orders = pd.Index(sorted({k[:2] for frames, _ in tests for f in frames for k in f.index}))
    signs, weights = (
        flips(rng, N_FLIPS, len(orders)),
        mixes(rng, n_power, len(orders), min(len(f) for frames, _ in tests for f in frames)),
    )
    detected = np.ones((len(RHOS), n_power), bool)
    for frames, logs in tests:
        units = _units([np.log(f) if logs and (f > 0).all().all() else f for f in frames], SIZES)
        means = units.reindex(orders).to_numpy().T  # (sizes, orders), nan: no such order
        found = sign_flip(drawn(means[..., None], weights)[..., 0], signs) < level
        rho = np.maximum.accumulate(np.nanmean(means, 1))
        at = np.searchsorted(rho, RHOS)  # the first size whose trend is that steep
        detected &= np.where(
            (at < len(SIZES))[:, None], found[np.minimum(at, len(SIZES) - 1)], False
        )
    return detectable(RHOS, detected)


def _parts_noted(test):
    """``test`` with its primary verdict's note made from its parts as they end up (after
    ``both_ways`` chose each)."""

    @functools.wraps(test)
    def noted(tasks, **options):
        verdicts = test(tasks, **options)
        verdicts[-1].note = _parts_note(_parts(verdicts))
        return verdicts

    return noted


@_parts_noted
@both_ways
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
    n_power: int = N_POWER,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 2, in three parts: "u" (``update`` summed over the trainable parameters; it
    grows with their number by construction, so it is exploratory), "u per parameter" and
    "forgetting"; per dataset (secondary, gated) then pooled (primary) for each part; last,
    the pooled primary verdict of both parts, "u per parameter and forgetting"
    (intersection-union).

    Within each method: the mean over orders of the per-order Spearman rho of depth with the
    run's value (seeds of an order averaged), one-sided sign-flip p over the orders
    (``n_permutations`` flips). Detail: per method rho, its bootstrap interval over orders,
    p and Holm p. ``detectable``: the mean per-order rho found in every method with 80%
    power (``n_power`` simulated tables; 0 skips it)."""
    excluded: dict[str, str] = {}
    tasks = scope(tasks, variant, bn_stats, level="task")
    tasks = clean(tasks[tasks.method.isin(methods)], [], excluded)
    per_run = run_updates(tasks, update)
    per_run = per_run[per_run.regime.isin(list(depth))]
    cells, reasons = chance_excluded(tasks[tasks.regime.isin(list(depth))], min_excess, methods)
    excluded |= reasons
    verdicts, power_cells = [], {}
    for part, (outcome, value, column) in PARTS.items():
        left_out = dict(excluded)
        texts = _texts(outcome, value)
        if per_run[column].isna().all():
            note = "no runs of the methods tested"
            if len(per_run) and part == "u per parameter":
                note = "no n_trainable in the records"
            verdicts.append(untestable(2, part, POOLED, "primary", texts, level, left_out, note))
            continue
        values = drop_missing(per_run, [column], left_out)
        wide = _wide(values, column, cells_of(values, cells, methods, depth))
        role = "exploratory" if part == "u" or min_excess is None else "primary"
        family = []
        for k, (dataset, names) in enumerate(families(values)):
            rng = np.random.default_rng([seed, k])
            cell_list = [(m, [wide[d, m] for d in names if (d, m) in wide]) for m in methods]
            rows, untested = [], []
            for m, frames in cell_list:
                units = _units(frames)[0].to_numpy() if frames else np.array([])
                if len(units) < min_orders(level):
                    untested.append(m)
                    continue
                p = float(sign_flip(units, flips(rng, n_permutations, len(units))))
                boot = boot_means(units, rng, n_boot)
                rows.append((m, float(units.mean()), p, *interval(boot), len(units)))
            v = methods_verdict(
                2,
                part,
                dataset,
                role_in(role, dataset),
                texts,
                rows,
                level,
                excluded_in(left_out, dataset),
                methods,
                untested,
            )
            tested = [(frames, part != "forgetting") for _, frames in cell_list]
            if n_power and v.verdict != "not testable":
                v.detectable = _power(tested, level, n_power, rng)
                power_cells[dataset, part] = tested
            family.append(v)
        verdicts += gate(family) if role == "primary" else family
    return verdicts + [_both(verdicts, power_cells, level, n_power, seed)]


def _both(verdicts, power_cells, level, n_power, seed) -> Verdict:
    """Finding 2's primary verdict: both pooled parts (u per parameter, forgetting) must
    hold; p is the larger of theirs (intersection-union); detectable: the rho found in
    every method and both parts with 80% power."""
    parts = _parts(verdicts)
    testable = all(v.verdict != "not testable" for v in parts)
    p = max(v.p_value for v in parts) if testable else np.nan
    both = Verdict(
        finding=2,
        part=BOTH,
        dataset=POOLED,
        role=parts[0].role,
        claim="deeper regimes give larger updates per trainable parameter and more "
        "forgetting, in every method",
        null=" or ".join(v.null for v in parts),
        statistic="smallest mean per-order Spearman rho over methods and both parts",
        observed=min(v.observed for v in parts) if testable else np.nan,
        p_value=p,
        level=level,
        verdict="not testable" if not testable else ("supported" if p < level else "not supported"),
        n_orders=min(v.n_orders for v in parts),
        effects={f"{v.part}: rho_min": v.effects.get("rho_min", np.nan) for v in parts},
        excluded={k: r for v in parts for k, r in v.excluded.items()},
        note=_parts_note(parts),
    )
    if testable and n_power:
        cells = [c for p in BOTH.split(" and ") for c in power_cells[POOLED, p]]
        both.detectable = _power(cells, level, n_power, np.random.default_rng([seed, 99]))
    return both


def _parts(verdicts: list[Verdict]) -> list[Verdict]:
    """The pooled verdicts of the two parts finding 2's primary verdict needs."""
    return [
        next(v for v in verdicts if v.part == p and v.dataset == POOLED)
        for p in BOTH.split(" and ")
    ]


def _parts_note(parts: list[Verdict]) -> str:
    return "; ".join(f"{v.part}: {v.verdict}" + (f" ({v.note})" if v.note else "") for v in parts)
