"""A sweep stops cleanly: Ctrl-C (SIGINT to its process group) or SIGTERM stops it and its
workers within seconds, with one line and exit code 130, leaving only whole records; the
same command then resumes it. Workers whose parent is killed outright exit too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from cl_regimes import card, cli, results, sweep

pytestmark = pytest.mark.slow

GRID = ["--profile", "smoke", "--device", "cpu", "--no-variants", "--orders", "0", "1"]
GRID += ["--regimes", "head", "full", "--methods", "finetune", "si"]
RUNS = 8  # enough that a loaded machine cannot finish them all before the signal lands


def start_sweep(folder, jobs: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "cl_regimes", "sweep", *GRID, "--results", str(folder)]
    return subprocess.Popen(
        [*command, "--jobs", str(jobs)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a command
    )


def wait_for_a_record(folder, sweep: subprocess.Popen, timeout: float = 300) -> None:
    start = time.monotonic()
    while not list(folder.rglob("*.json")):
        assert sweep.poll() is None, "the sweep ended before any record was written"
        assert time.monotonic() - start < timeout
        time.sleep(0.2)


def workers_of(sweep: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(sweep.pid).children(recursive=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_stops_at_once_and_resumes(tmp_path, signum):
    sweep = start_sweep(tmp_path)
    wait_for_a_record(tmp_path, sweep)
    workers = workers_of(sweep)
    assert len(workers) >= 2
    stopped = time.monotonic()
    os.killpg(sweep.pid, signum)  # what Ctrl-C does: the signal to the whole group
    stderr = sweep.communicate(timeout=30)[1]
    assert time.monotonic() - stopped < 20  # 2 s on a 2-core machine with a sweep beside it
    assert sweep.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "rerun the same command to resume" in last
    assert "Traceback" not in stderr and "Warning" not in stderr
    psutil.wait_procs(workers, timeout=5)
    assert not [w for w in workers if w.is_running()]
    kept = sorted(tmp_path.rglob("*.json"))
    assert len(results.records(tmp_path)) == len(kept)  # whole records only
    assert len(kept) < RUNS
    time.sleep(2)
    assert sorted(tmp_path.rglob("*.json")) == kept  # nothing trains on behind it
    if signum == signal.SIGINT:
        again = start_sweep(tmp_path)
        assert again.wait(timeout=600) == 0
        assert len(results.records(tmp_path)) == RUNS


def test_workers_exit_when_their_sweep_is_killed(tmp_path):
    sweep = start_sweep(tmp_path)
    wait_for_a_record(tmp_path, sweep)
    workers = workers_of(sweep)
    sweep.kill()  # SIGKILL to the sweep alone: it cannot stop its workers
    sweep.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


@pytest.mark.parametrize(
    "stopped_in, expected",
    [  # the 8 compared methods x 2 regimes, then ewc's own 2 runs; smoke has one order
        (0, "interrupted: 3 run(s) trained and saved, 15 not finished; rerun"),
        (
            1,
            "interrupted: 17 run(s) trained and saved, 1 not finished (their cells' finished "
            "tasks are kept in 1 checkpoint(s)); rerun",
        ),
    ],
)
def test_an_interrupted_card_counts_every_sweep(
    tmp_path, monkeypatch, capsys, stopped_in, expected
):
    """Issue 38: Ctrl-C in a card counted only the sweep it stopped, and spoke of
    checkpoints when none were kept."""
    sweeps = []

    def interrupted(runs, results_dir, **execution):
        sweeps.append(runs)
        if len(sweeps) - 1 == stopped_in:
            raise sweep.SweepInterrupted(*((3, 13) if stopped_in == 0 else (1, 1, 1)))
        return sweep.Summary([], trained=[results_dir] * len(runs))

    monkeypatch.setattr(card.sweep, "sweep", interrupted)
    args = ["card", "--profile", "smoke", "--method", "ewc", "--set", "ewc.lam=1"]
    args += ["--regimes", "head", "full", "--results", str(tmp_path), "--output", str(tmp_path)]
    assert cli.main(args) == 130
    assert [len(runs) for runs in sweeps] == [16, 2][: stopped_in + 1]
    assert capsys.readouterr().err.startswith(expected)
