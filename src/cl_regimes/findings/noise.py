"""The noise structure of a table of records, in the numbers a power simulation must
reproduce: how large the ACC gaps' noise is, how much of it an order's seeds share, how it
correlates across regimes, and its tails; the same for a run's log u per parameter and its
forgetting. benchmarks/findings_power.py prints them for the records and for its simulated
tables side by side (book/protocol.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes.findings.common import DEPTH, PAPER_METHODS, REPLICATE, scope
from cl_regimes.findings.trends import run_updates


def _cells(wide: pd.DataFrame) -> list[np.ndarray]:
    """Each column of ``wide`` (rows order, seed) as an orders x seeds array, complete
    orders only."""
    out = []
    for column in wide.columns:
        cell = wide[column].unstack("seed").dropna().to_numpy(float)
        if cell.shape[0] >= 3 and cell.shape[1] >= 1:
            out.append(cell)
    return out


def _summary(cells: list[np.ndarray]) -> dict[str, float]:
    """Over cells (orders x seeds): the median sd of a replicate's residual, the mean
    correlation of an order's first two seeds, and the excess kurtosis of the residuals
    (each cell scaled to unit sd)."""
    residuals = [c - c.mean() for c in cells]
    two = [r for r in residuals if r.shape[1] >= 2 and r[:, 0].std() > 0 and r[:, 1].std() > 0]
    scaled = np.concatenate([(r / r.std()).ravel() for r in residuals if r.std() > 0])
    return {
        "replicate sd": float(np.median([r.std(ddof=1) for r in residuals])),
        "seed correlation": float(np.mean([np.corrcoef(r[:, 0], r[:, 1])[0, 1] for r in two]))
        if two
        else np.nan,
        "excess kurtosis": float(stats.kurtosis(scaled)),
    }


def noise_table(runs: pd.DataFrame, tasks: pd.DataFrame, methods=PAPER_METHODS) -> pd.DataFrame:
    """Per quantity (the ACC gap of a pair of ``methods`` in a regime; a run's log u per
    trainable parameter and its forgetting, per nested regime and method): the median sd of
    a replicate's residual (its value less the cell's mean), the mean seed-to-seed
    correlation within an order, the excess kurtosis, and for the gaps the mean correlation
    of an order's mean gaps between regimes (the order-by-method effect they share).

    Columns: quantity, statistic, value."""
    runs = scope(runs)
    runs = runs[runs.method.isin(methods) & runs.regime.isin(list(DEPTH))]
    acc = runs.pivot_table(index=REPLICATE, columns=["regime", "method"], values="acc")
    gaps = pd.DataFrame(
        {
            (r, a, b): acc[(r, a)] - acc[(r, b)]
            for r in acc.columns.get_level_values(0).unique()
            for a, b in itertools.combinations(methods, 2)
            if (r, a) in acc and (r, b) in acc
        }
    )
    rows = {"ACC gap": _summary(_cells(gaps))}
    means = gaps.groupby(level="order").mean()
    between = [
        np.corrcoef(means[(r1, a, b)], means[(r2, a, b)])[0, 1]
        for a, b in itertools.combinations(methods, 2)
        for r1, r2 in itertools.combinations(list(DEPTH), 2)
        if (r1, a, b) in means and (r2, a, b) in means
    ]
    rows["ACC gap"]["correlation between regimes"] = float(np.nanmean(between))
    per_run = run_updates(scope(tasks, level="task"))
    per_run = per_run[per_run.method.isin(methods) & per_run.regime.isin(list(DEPTH))]
    per_run = per_run.assign(log_u=np.log(per_run.update_per_param.where(lambda v: v > 0)))
    for name, column in (("log u per parameter", "log_u"), ("forgetting", "forgetting")):
        wide = per_run.pivot_table(index=REPLICATE, columns=["regime", "method"], values=column)
        rows[name] = _summary(_cells(wide))
    return pd.DataFrame(
        [(q, k, v) for q, values in rows.items() for k, v in values.items()],
        columns=["quantity", "statistic", "value"],
    )
