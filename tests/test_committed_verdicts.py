"""The committed medium records' verdicts, as every change that is not meant to alter
them must leave them: each finding's (and part's) verdict, p-value, observed statistic,
orders and detectable effect, against ``data/medium_verdicts.json``.

``python tests/test_committed_verdicts.py`` rewrites that file, for a change that is meant
to move them (say so in its commit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cl_regimes import findings, results

RECORDS = Path(__file__).resolve().parents[1] / "records" / "medium"
EXPECTED = Path(__file__).with_name("data") / "medium_verdicts.json"
COLUMNS = ["finding", "part", "role", "verdict", "p_value", "observed", "n_orders", "detectable"]


def verdicts(folder: Path = RECORDS) -> list[dict]:
    """The verdict table the medium chapter shows: the primary verdicts, then every part
    of findings 2 and 3."""
    runs, tasks = results.load(folder), results.load(folder, level="task")
    main, main_tasks = runs[runs.variant == ""], tasks[tasks.variant == ""]
    table = findings.verdict_table(
        findings.primary(main, main_tasks)
        + findings.finding_depth(main_tasks)
        + findings.finding_coupling(main_tasks)
    )
    return table[COLUMNS].astype({"finding": str}).to_dict("records")


def test_the_committed_medium_records_give_the_same_verdicts():
    expected, got = json.loads(EXPECTED.read_text()), verdicts()
    assert [(r["finding"], r["part"], r["role"]) for r in got] == [
        (r["finding"], r["part"], r["role"]) for r in expected
    ]
    for want, have in zip(expected, got):
        assert have["verdict"] == want["verdict"], want
        assert have["n_orders"] == want["n_orders"], want
        for key in ("p_value", "observed", "detectable"):
            assert have[key] == pytest.approx(want[key], rel=1e-9, nan_ok=True), (key, want)


if __name__ == "__main__":
    EXPECTED.write_text(json.dumps(verdicts(), indent=1) + "\n")
    sys.exit(0)
