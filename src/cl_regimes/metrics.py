"""Accuracy-matrix metrics of one run (torch-free).

R[i, j] is the test accuracy on the j-th task of the order after training the
i-th; T is the number of tasks and the last row is R[T-1] (0-based here).
"""

from __future__ import annotations

import numpy as np


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
