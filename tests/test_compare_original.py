"""The side-by-side script's statistics (benchmarks/agreement.py, used by
benchmarks/compare_original.py): its verdicts on made-up pairs of runs; running the script
needs a clone of the original study's code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "agreement.py"
spec = importlib.util.spec_from_file_location("agreement", SCRIPT)
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def pairs(original, ours, R=None):
    """Runs of one method, one per order (seed 0), with the given ACC on each side."""
    return [
        {
            "method": "si",
            "order": k,
            "original": {"acc": a, "forgetting": 0.1, "seconds": 2.0, **(R or {})},
            "ours": {"acc": b, "forgetting": 0.1, "seconds": 1.0, **(R or {})},
        }
        for k, (a, b) in enumerate(zip(original, ours))
    ]


def test_equal_sides_are_equivalent():
    row = compare.summarise(pairs([0.8, 0.7, 0.9], [0.8, 0.7, 0.9]), margin=0.05)[0]
    assert row["acc_agreement"]["verdict"] == "equivalent"
    assert row["time_ratio"] == pytest.approx(2.0)


def test_a_consistent_gap_is_a_difference_not_equivalence():
    """A gap of 0.1 in every order, with a little noise: outside the margin and not 0."""
    rng = np.random.default_rng(0)
    ours = rng.uniform(0.6, 0.9, 8)
    row = compare.summarise(pairs(ours + 0.1 + rng.normal(0, 0.01, 8), ours), 0.05)[0]
    assert row["acc_agreement"]["verdict"] == "different"


def test_noise_wider_than_the_margin_is_inconclusive():
    """No gap, but paired noise of sd 0.1 over 3 orders: neither equal nor different."""
    row = compare.summarise(pairs([0.9, 0.6, 0.8], [0.8, 0.75, 0.75]), 0.05)[0]
    assert row["acc_agreement"]["verdict"] == "inconclusive"


def test_seeds_pair_with_their_own_order():
    """Two seeds of one order are two pairs, matched by (order, seed)."""
    runs = pairs([0.8, 0.6], [0.8, 0.6])
    runs[1]["order"], runs[1]["seed"] = 0, 1
    row = compare.summarise(runs, 0.05)[0]
    assert (row["orders"], row["pairs"]) == (1, 2)
    assert row["acc_agreement"]["difference"] == 0


def test_R_gap_counts_runs_equal_at_every_position():
    same = {"R": [[0.5], [0.75, 1.0]]}
    runs = pairs([0.8, 0.8], [0.8, 0.8], same)
    runs[1]["ours"] = {**runs[1]["ours"], "R": [[0.5], [0.75, 0.975]]}
    row = compare.summarise(runs, 0.05)[0]
    assert (row["R_compared"], row["R_identical"]) == (2, 1)
    assert row["R_max_difference"] == pytest.approx(0.025)
    assert "1/2 (0.025)" in compare.table([row])
    older = compare.summarise(pairs([0.8], [0.8]), 0.05)[0]  # recorded without R
    assert older["R_compared"] == 0 and "| - |" in compare.table([older])
