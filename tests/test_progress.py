"""A sweep's progress moves per epoch, not per group: every epoch a unit trains is
reported as it ends, from this process or from a pool worker."""

from __future__ import annotations

import pytest

from cl_regimes import engines, profiles, sweep

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_epoch_is_reported_as_it_ends(jobs, tmp_path):
    runs = profiles.get_profile("smoke").grid(
        regimes=["head", "full"], methods=["finetune"], orders=[0, 1]
    )
    units = [
        engines.Unit(u, [tmp_path / f"{i}-{k}.json" for k in range(len(u))], index=i)
        for i, u in enumerate(sweep.groups(runs, None, "cpu"))
    ]
    reports = []
    for outcome in engines.local(units, "cpu", None, jobs, on_epoch=lambda *r: reports.append(r)):
        assert outcome.error is None
        reports.append(("done", outcome.unit.index))
    tasks, epochs = 5, 1  # smoke: five tasks of one epoch, two runs per unit
    for unit in units:
        i = reports.index(("done", unit.index))
        before = [runs for index, runs in reports[:i] if index == unit.index]
        if jobs == 1:
            assert before == [2] * tasks * epochs
        else:  # from a worker, through a queue: all but the last may come late
            assert len(before) >= tasks * epochs - 1 and set(before) == {2}
