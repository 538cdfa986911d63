"""Accuracy-matrix metrics, correlations and ranking agreement, against values worked out
by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cl_regimes import metrics

# R[i, j]: accuracy on task j after training task i. Above the diagonal (tasks not yet
# learnt) the values are kept below every final accuracy, so that "best accuracy once
# learnt" and "best accuracy at any time before the last task" give the same Chaudhry value.
R = [
    [0.90, 0.10, 0.20, 0.30],
    [0.95, 0.80, 0.25, 0.35],
    [0.60, 0.85, 0.70, 0.40],
    [0.50, 0.60, 0.65, 0.99],
]


def test_acc():
    # (0.50 + 0.60 + 0.65 + 0.99) / 4
    assert metrics.acc(R) == pytest.approx(0.685)


def test_task_forgetting():
    # 0.90 - 0.50, 0.80 - 0.60, 0.70 - 0.65
    np.testing.assert_allclose(metrics.task_forgetting(R), [0.40, 0.20, 0.05])


def test_bwt_and_forgetting():
    # (0.40 + 0.20 + 0.05) / 3 = 0.65 / 3
    assert metrics.forgetting(R) == pytest.approx(0.2166666667)
    assert metrics.bwt(R) == pytest.approx(-0.2166666667)


def test_forgetting_chaudhry():
    # task 0: max(0.90, 0.95, 0.60) - 0.50 = 0.45
    # task 1: max(0.80, 0.85) - 0.60 = 0.25
    # task 2: 0.70 - 0.65 = 0.05            -> 0.75 / 3
    assert metrics.forgetting_chaudhry(R) == pytest.approx(0.25)


def test_summary_and_3x3():
    R3 = [[0.8, 0.0, 0.0], [0.6, 0.9, 0.0], [0.7, 0.3, 1.0]]
    # acc (0.7 + 0.3 + 1.0) / 3; forgetting ((0.8-0.7) + (0.9-0.3)) / 2 = 0.35
    # chaudhry: task 0 max(0.8, 0.6) - 0.7 = 0.1; task 1 0.9 - 0.3 = 0.6 -> 0.35
    assert metrics.summary(R3) == pytest.approx(
        {"acc": 2 / 3, "bwt": -0.35, "forgetting": 0.35, "forgetting_chaudhry": 0.35}
    )
    # learning a task later (row 1 beats row 0 for task 0) only moves the Chaudhry value
    R3[1][0] = 0.95
    assert metrics.forgetting(R3) == pytest.approx(0.35)
    assert metrics.forgetting_chaudhry(R3) == pytest.approx(0.425)  # (0.25 + 0.6) / 2


def test_correlations_of_monotone_data():
    x = np.arange(1.0, 8.0)
    assert metrics.correlations(x, 3 * x - 2) == pytest.approx(
        {"pearson": 1.0, "spearman": 1.0, "kendall": 1.0}
    )
    curved = metrics.correlations(x, np.exp(x))
    assert curved["spearman"] == pytest.approx(1.0) and curved["kendall"] == pytest.approx(1.0)
    assert curved["pearson"] < 0.99
    falling = metrics.correlations(x, -(x**3))
    assert falling == pytest.approx(
        {"pearson": falling["pearson"], "spearman": -1.0, "kendall": -1.0}
    )


def test_correlations_undefined():
    assert all(np.isnan(v) for v in metrics.correlations([1, 2, 3], [4, 4, 4]).values())
    assert all(np.isnan(v) for v in metrics.correlations([1, 2], [1, 2]).values())


def test_kendall_tau():
    a = [0.9, 0.5, 0.7, 0.1, 0.3]
    assert metrics.kendall_tau(a, a) == pytest.approx(1.0)
    assert metrics.kendall_tau(a, [-v for v in a]) == pytest.approx(-1.0)
    # one swapped adjacent pair of 4 items: (5 concordant - 1 discordant) / 6
    assert metrics.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    taus = metrics.pairwise_tau({"x": np.array(a), "y": np.array(a), "z": -np.array(a)})
    assert taus == pytest.approx({("x", "y"): 1.0, ("x", "z"): -1.0, ("y", "z"): -1.0})


def test_bootstrap_ci():
    sample = np.random.default_rng(0).normal(3.0, 1.0, 40)
    low, high = metrics.bootstrap_ci(sample)
    assert low < sample.mean() < high
    assert high - low < 1.5
    assert metrics.bootstrap_ci(sample) == (low, high)  # seeded
    wide = metrics.bootstrap_ci(sample, level=0.99)
    assert wide[0] <= low and wide[1] >= high
    assert metrics.bootstrap_ci(np.append(sample, np.nan)) == (low, high)  # nan dropped
    assert all(np.isnan(metrics.bootstrap_ci([np.nan])))
