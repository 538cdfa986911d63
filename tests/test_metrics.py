"""Accuracy-matrix metrics, against values worked out by hand."""

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
