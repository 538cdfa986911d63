"""The command line, run as users run it: ``python -m cl_regimes ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cl_regimes import results
from cl_regimes.profiles import METHOD_NAMES, REGIME_NAMES


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cl_regimes", *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=300, env=ENV)


def test_regimes_table():
    out = cli("regimes")
    assert out.returncode == 0, out.stderr
    for name in REGIME_NAMES:
        assert name in out.stdout
    assert "11,173,962" in out.stdout and "5,130" in out.stdout
    assert "Traceback" not in out.stderr


def test_run_writes_a_record(tmp_path):
    out = cli("run", "--profile", "smoke", "--dataset", "digits", "--regime", "from_layer3",
              "--method", "finetune", "--device", "cpu", "--results", str(tmp_path))
    assert out.returncode == 0, out.stderr
    records = list(tmp_path.rglob("*.json"))
    assert [p.relative_to(tmp_path).parts for p in records] == [
        ("smoke", "digits", "always_update", "from_layer3", "finetune", "order00-seed0.json")]
    record = results.read(records[0])
    R = np.asarray(record["R"])
    assert R.shape == (5, 5) and ((R >= 0) & (R <= 1)).all()
    assert record["config"]["regime"] == "from_layer3" and record["profile"] == "smoke"
    assert "record written" in out.stdout and str(records[0]) in out.stdout
    assert not list(tmp_path.rglob("*.tmp"))


BAD = {
    "regime": (["--regime", "nosuch"], "regime 'nosuch'", REGIME_NAMES),
    "method": (["--method", "nosuch"], "method 'nosuch'", METHOD_NAMES),
    "dataset": (["--dataset", "nosuch"], "dataset 'nosuch'", ("digits", "mnist", "cifar100")),
    "profile": (["--profile", "nosuch"], "profile 'nosuch'", ("paper", "quick", "smoke")),
    "setting": (["--set", "nosuch=1"], "setting 'nosuch'", ("epochs", "ewc.lam")),
    "setting type": (["--set", "epochs=fast"], "epochs", ("int",)),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad invocation, launched at once (each spends its time importing torch)."""
    folder = tmp_path_factory.mktemp("bad")
    procs = {}
    for case, (change, _, _) in BAD.items():
        args = {"--profile": "smoke", "--dataset": "digits", "--regime": "head",
                "--method": "finetune", "--results": str(folder), "--device": "cpu"}
        extra = []
        if change[0] in args:
            args[change[0]] = change[1]
        else:
            extra = change
        procs[case] = subprocess.Popen(command("run", *[a for kv in args.items() for a in kv],
                                               *extra), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=ENV)
    done = {}
    for case, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[case] = (proc.returncode, stdout, stderr)
    return folder, done


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(bad_runs, case):
    folder, done = bad_runs
    _, bad, valid = BAD[case]
    returncode, _, stderr = done[case]
    assert returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert bad in lines[0]
    assert all(v in lines[0] for v in valid), lines[0]
    assert not list(folder.rglob("*.json"))
