"""The original study's analyses, as its scripts ran them: descriptive, shown beside the
tests, over its own regime set (the five regimes its training scripts run; ``head`` is
commented out there)."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes.findings.common import PAPER_METHODS, REPLICATE, RUN_KEYS, scope

ORIGINAL_REGIMES = ("from_layer4", "from_layer3", "from_layer2", "from_layer1", "full")
# compute_kendall.py's ALGORITHM_FILES: the four methods, and DER where its results exist
KENDALL_METHODS = (*PAPER_METHODS, "der")


def _signs(x: np.ndarray) -> np.ndarray:
    """Signs of x[..., i] - x[..., j] over the pairs i < j of the last axis."""
    i, j = np.triu_indices(x.shape[-1], 1)
    return np.sign(x[..., i] - x[..., j])


def _tau_b(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Kendall tau-b from pair signs (broadcast): (concordant - discordant) over the root of
    the untied pair counts; nan when a side is constant."""
    den = np.sqrt((s1 * s1).sum(-1) * (s2 * s2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (s1 * s2).sum(-1) / den, np.nan)


def _rowwise_correlations(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson, Spearman and Kendall tau-b of each row of x with the same row of y (nan
    where a row is constant, as scipy)."""
    constant = (np.ptp(x, 1) == 0) | (np.ptp(y, 1) == 0) | (x.shape[1] < 2)

    def pearson(a, b):
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
        return np.where(constant, np.nan, np.clip(r, -1, 1))

    return {
        "pearson": pearson(x, y),
        "spearman": pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)),
        "kendall": np.where(constant, np.nan, _tau_b(_signs(x), _signs(y))),
    }


def coupling_correlations(
    tasks: pd.DataFrame, update: str = "u", *, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """Per run: Pearson, Spearman and Kendall correlation of the per-task ``update`` (raw)
    with the per-task forgetting, over its tasks but the last (forgetting is nan there).

    Columns: dataset, regime, method, order, seed, n_tasks, pearson, spearman, kendall."""
    t = scope(tasks, variant, bn_stats, level="task").dropna(subset=["forgetting", update])
    t = t.sort_values([*RUN_KEYS, "position"])
    t = t.assign(n_tasks=t.groupby(RUN_KEYS).position.transform("size"))
    frames = []
    for n, g in t.groupby("n_tasks"):
        x, y = (g[c].to_numpy(float).reshape(-1, n) for c in (update, "forgetting"))
        frames.append(g[[*RUN_KEYS, "n_tasks"]].iloc[::n].assign(**_rowwise_correlations(x, y)))
    columns = [*RUN_KEYS, "n_tasks", "pearson", "spearman", "kendall"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


@dataclass
class OriginalKendall:
    """per_order: dataset, order, seed, tau (mean over regime pairs; nan if any pair is);
    summary: dataset, mean_tau, std_tau (np.std, ddof=0), n_orders (non-nan), n_nan_orders;
    matrices: dataset -> regime x regime tau averaged over orders (nanmean; diagonal 1)."""

    per_order: pd.DataFrame
    summary: pd.DataFrame
    matrices: dict[str, pd.DataFrame]


def original_kendall(
    runs: pd.DataFrame,
    *,
    regimes=ORIGINAL_REGIMES,
    variant: str = "",
    bn_stats: str | None = None,
) -> OriginalKendall:
    """As in the original: per order, Kendall tau-b of the methods' ACC (the paper's four,
    and DER where it has records) between every pair of ``regimes`` (the original's five
    by default; its scripts do not run ``head``) with >= 2 common methods, averaged with
    np.mean; then mean and np.std over the orders whose mean is not nan. Descriptive:
    noise alone gives tau < 1."""
    runs = scope(runs, variant, bn_stats)
    runs = runs[runs.regime.isin(regimes) & runs.method.isin(KENDALL_METHODS)]
    orders, pairs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (dataset, order, seed), g in runs.groupby(["dataset", *REPLICATE], sort=False):
            acc = g.pivot_table(index="regime", columns="method", values="acc")
            taus = []
            for a, b in itertools.combinations([r for r in regimes if r in acc.index], 2):
                common = acc.loc[[a, b]].dropna(axis=1)
                if common.shape[1] >= 2:
                    taus.append(stats.kendalltau(common.loc[a], common.loc[b])[0])
                    pairs.append((dataset, a, b, taus[-1]))
            orders.append((dataset, order, seed, np.mean(taus) if taus else np.nan))
    per_order = pd.DataFrame(orders, columns=["dataset", "order", "seed", "tau"])
    summary = [
        (
            d,
            *((np.mean(v), np.std(v)) if len(v) else (np.nan, np.nan)),
            len(v),
            int(g.tau.isna().sum()),
        )
        for d, g in per_order.groupby("dataset", sort=False)
        for v in [g.tau.dropna().to_numpy()]
    ]
    pairs = pd.DataFrame(pairs, columns=["dataset", "a", "b", "tau"])
    matrices = {}
    for dataset, g in pairs.groupby("dataset", sort=False):
        names = [r for r in regimes if r in set(g.a) | set(g.b)]
        m = pd.DataFrame(np.where(np.eye(len(names)), 1.0, np.nan), index=names, columns=names)
        for (a, b), tau in g.groupby(["a", "b"]).tau.mean().items():  # pandas mean: nanmean
            m.loc[a, b] = m.loc[b, a] = tau
        matrices[dataset] = m
    return OriginalKendall(
        per_order,
        pd.DataFrame(
            summary, columns=["dataset", "mean_tau", "std_tau", "n_orders", "n_nan_orders"]
        ),
        matrices,
    )


def _original_order(df: pd.DataFrame, methods) -> pd.DataFrame:
    rank = {
        **{m: i for i, m in enumerate(methods)},
        **{r: i for i, r in enumerate(ORIGINAL_REGIMES)},
    }
    return df.sort_values(
        ["dataset", "method", "regime"],
        kind="stable",
        key=lambda s: s if s.name == "dataset" else s.map(rank),
    ).reset_index(drop=True)


def original_update_forgetting(
    tasks: pd.DataFrame, *, methods=PAPER_METHODS, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """As in the original: per run in its five regimes, from_layer4 ... full, Pearson, Spearman
    and Kendall of the raw per-task orig_u with per-task forgetting over the first T-1 tasks;
    nan correlations dropped; mean over orders per (dataset, method, regime), and over all
    (method, order) values per regime as method "all".

    Columns: dataset, method, regime, pearson, spearman, kendall, n_runs."""
    corr = coupling_correlations(tasks, "orig_u", variant=variant, bn_stats=bn_stats)
    corr = corr[corr.regime.isin(ORIGINAL_REGIMES) & corr.method.isin(methods)]
    agg = {c: (c, "mean") for c in ("pearson", "spearman", "kendall")}  # mean skips nan
    out = (
        pd.concat([corr, corr.assign(method="all")])
        .groupby(["dataset", "method", "regime"])
        .agg(**agg, n_runs=("n_tasks", "size"))
        .reset_index()
    )
    return _original_order(out, [*methods, "all"])


def original_depth_u(
    tasks: pd.DataFrame, *, methods=PAPER_METHODS, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """As in the original: per run in from_layer4 ... full, the mean of orig_u over the first
    T-1 tasks; then mean and np.std (ddof=0) over orders.

    Columns: dataset, method, regime, mean_u, std_u, n_runs."""
    t = scope(tasks, variant, bn_stats, level="task")
    t = t[t.regime.isin(ORIGINAL_REGIMES) & t.method.isin(methods)]
    t = t[t.position < t.groupby(RUN_KEYS).position.transform("max")]
    per_run = t.groupby(RUN_KEYS).orig_u.mean().reset_index()
    out = (
        per_run.groupby(["dataset", "method", "regime"])
        .orig_u.agg(mean_u="mean", std_u=lambda v: np.std(v.to_numpy()), n_runs="size")
        .reset_index()
    )
    return _original_order(out, methods)
