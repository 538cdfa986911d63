"""Accuracy-matrix metrics, correlations and ranking agreement (torch-free).

R[i, j] is the test accuracy on the j-th task of the order after training the
i-th; T is the number of tasks and the last row is R[T-1] (0-based here).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats


def acc(R) -> float:
    """Average accuracy over all tasks after the last one."""
    R = np.asarray(R)
    return float(R[-1].mean())


def bwt(R) -> float:
    """Backward transfer: mean_{j<T} (R[T, j] - R[j, j])."""
    R = np.asarray(R)
    return float(np.mean(R[-1, :-1] - np.diag(R)[:-1]))


def task_forgetting(R) -> np.ndarray:
    """Per-task forgetting as in the paper, R[j, j] - R[T, j], for every task but the last."""
    R = np.asarray(R)
    return np.diag(R)[:-1] - R[-1, :-1]


def forgetting(R) -> float:
    """Forgetting as in the paper: mean_{j<T} (R[j, j] - R[T, j]) = -BWT."""
    return float(task_forgetting(R).mean())


def forgetting_chaudhry(R) -> float:
    """Forgetting as in Chaudhry et al. (2018): mean_{j<T} (max_{j<=l<T} R[l, j] - R[T, j]),
    the best accuracy a task had once learnt, before the last task, minus its final one."""
    R = np.asarray(R)
    T = len(R)
    return float(np.mean([R[j : T - 1, j].max() - R[-1, j] for j in range(T - 1)]))


def summary(R) -> dict[str, float]:
    return {
        "acc": acc(R),
        "bwt": bwt(R),
        "forgetting": forgetting(R),
        "forgetting_chaudhry": forgetting_chaudhry(R),
    }


def correlations(x, y) -> dict[str, float]:
    """Pearson, Spearman and Kendall correlation of two samples (nan if either is constant)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": np.nan, "spearman": np.nan, "kendall": np.nan}
    return {
        "pearson": float(stats.pearsonr(x, y)[0]),
        "spearman": float(stats.spearmanr(x, y)[0]),
        "kendall": float(stats.kendalltau(x, y)[0]),
    }


def kendall_tau(a, b) -> float:
    """Kendall tau-b between two score vectors over the same items (1: same ranking)."""
    return float(stats.kendalltau(a, b)[0])


def pairwise_tau(scores: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """Kendall tau between every pair of rankings, e.g. regime -> methods' ACC."""
    return {(a, b): kendall_tau(scores[a], scores[b]) for a, b in itertools.combinations(scores, 2)}


def bootstrap_ci(
    sample, statistic=np.mean, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``sample`` resampled with
    replacement: values (nan dropped) or the rows of a DataFrame. Draws where the
    statistic is undefined (nan) are left out."""
    if isinstance(sample, pd.DataFrame):
        take = sample.iloc.__getitem__
    else:
        sample = np.asarray(sample, float)
        sample = sample[~np.isnan(sample)]
        take = sample.__getitem__
    if len(sample) == 0:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    n = len(sample)
    draws = np.asarray([statistic(take(rng.integers(0, n, n))) for _ in range(n_boot)], float)
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0:
        return (np.nan, np.nan)
    return tuple(float(q) for q in np.quantile(draws, [(1 - level) / 2, (1 + level) / 2]))
