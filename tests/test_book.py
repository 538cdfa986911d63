"""The book's machinery: papermill execution, glue, regeneration, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cl_regimes import book, results
from cl_regimes.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
pytestmark = pytest.mark.slow


def glued(notebook: Path) -> dict[str, str]:
    """The glued values of an executed notebook: key -> text/plain."""
    values = {}
    for cell in json.loads(notebook.read_text())["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = out["data"]
                values[name] = next(v for k, v in data.items() if k.endswith("text/plain"))
    return values


def html_outputs(notebook: Path) -> list[str]:
    """Every text/html output (the tables) of an executed notebook."""
    return ["".join(out["data"]["text/html"])
            for cell in json.loads(notebook.read_text())["cells"]
            for out in cell.get("outputs", []) if "text/html" in out.get("data", {})]


def copy_notebook(name: str, folder: Path) -> Path:
    target = folder / f"{name}.py"
    shutil.copy(NOTEBOOKS / f"{name}.py", target)
    return target


def test_regime_notebook_runs_at_smoke_profile_and_glues_its_values(tmp_path):
    source = copy_notebook("full", tmp_path)
    out = book.execute(source, {"profile": "smoke", "results_dir": str(tmp_path / "results"),
                                "device": "cpu", "orders": None,
                                "methods": ["finetune", "ewc"]})
    values = glued(out)
    assert values["full_trainable"].strip("'") == "11,173,962"
    assert values["full_share"].strip("'") == "100.00%"
    assert values["full_digits_best"].strip("'") in {"finetune", "ewc"}
    for method in ("finetune", "ewc"):
        assert 0.0 <= float(values[f"full_digits_acc_{method}"]) <= 1.0
    assert "Plain fine-tuning forgets" in values["full_digits_summary"]
    assert len(list((tmp_path / "results").rglob("*.json"))) == 2
    text = out.read_text()
    assert "Traceback" not in text and "image/png" in text


def test_unknown_papermill_parameter_is_an_error_naming_it(tmp_path):
    source = copy_notebook("head", tmp_path)
    with pytest.raises(ConfigError, match="no parameter nosuch.*its parameters: profile"):
        book.execute(source, {"profile": "smoke", "nosuch": 1})


def test_a_failing_notebook_names_the_notebook_and_the_cell(tmp_path):
    source = tmp_path / "broken.py"
    source.write_text('# %% tags=["parameters"]\nx = 1\n\n# %%\nraise ValueError("boom")\n')
    with pytest.raises(book.NotebookError, match=r"broken.py failed in cell \d+: ValueError: boom"):
        book.execute(source, {"x": 2})


QUIET_NOTEBOOK = """# %% tags=["parameters"]
x = 1

# %%
import os
import time

os.write(2, b"kernel stderr still reaches the terminal\\n")
kernel = get_ipython().kernel
reply = kernel.shell_handlers["kernel_info_request"]


async def slow_reply(*args):  # papermill's last request: a loaded machine answers it slowly
    await reply(*args)
    time.sleep(1)


kernel.shell_handlers["kernel_info_request"] = slow_reply
"""


def test_executing_a_notebook_leaves_no_kernel_noise_on_the_terminal(tmp_path, capfd):
    """No "running over TCP without encryption" warning at kernel start and no "KeyboardInterrupt
    caught in kernel" at shutdown (the notebook keeps its kernel busy in its last reply, where
    jupyter_client's shutdown SIGINT used to land); what the kernel writes to stderr still shows."""
    source = tmp_path / "quiet.py"
    source.write_text(QUIET_NOTEBOOK)
    book.execute(source, {"x": 2})
    err = capfd.readouterr().err
    assert "kernel stderr still reaches the terminal" in err
    assert "without encryption" not in err
    assert "KeyboardInterrupt" not in err
    assert "[IPKernelApp]" not in err


def test_jupytext_sync_after_execution_keeps_the_source(tmp_path):
    """The executed .ipynb must not be newer than its .py: ``jupytext --sync`` (the pre-commit
    hook) would then copy papermill's injected parameters and metadata into the .py."""
    source = tmp_path / "paired.py"
    source.write_text('# ---\n# jupyter:\n#   jupytext:\n#     formats: ipynb,py:percent\n# ---\n\n'
                      '# %% tags=["parameters"]\nx = 1\n\n# %%\nprint(x)\n')
    time.sleep(0.05)
    book.execute(source, {"x": 2})
    before = source.read_text()
    sync = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(source)],
                          capture_output=True, text=True)
    assert sync.returncode == 0, sync.stderr
    after = source.read_text()
    assert "injected-parameters" not in after and "papermill" not in after
    assert after.split("# %%", 1)[1] == before.split("# %%", 1)[1]


def test_toc_lists_every_regime_notebook_then_the_cross_regime_one():
    names = [p.stem for p in book.toc_notebooks(ROOT)]
    assert names == ["head", "bn_affine", "from_layer4", "from_layer3", "from_layer2",
                     "from_layer1", "full", "cross_regime"]
    assert all(p.exists() for p in book.toc_notebooks(ROOT))


def sweep_cli(results_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cl_regimes", "sweep", "--profile", "smoke", "--device", "cpu",
         "--results", str(results_dir), *args], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def test_cross_regime_tables_are_regenerated_from_the_records(tmp_path):
    grid = ("--methods", "finetune", "ewc")
    assert sweep_cli(tmp_path / "results", "--regimes", "head", "full", *grid).wait() == 0
    params = {"profile": "smoke", "results_dir": str(tmp_path / "results")}
    source = copy_notebook("cross_regime", tmp_path)
    first = html_outputs(book.execute(source, params, tmp_path / "first.ipynb"))
    second = html_outputs(book.execute(source, params, tmp_path / "second.ipynb"))
    assert first and first == second
    assert sweep_cli(tmp_path / "results", "--regimes", "from_layer4", "--methods",
                     "finetune", "ewc").wait() == 0
    third = html_outputs(book.execute(source, params, tmp_path / "third.ipynb"))
    assert third != first
    assert "from_layer4" in "".join(third) and "from_layer4" not in "".join(first)


def test_a_sweep_killed_mid_run_resumes_with_only_the_unfinished_run(tmp_path):
    grid = ("--regimes", "from_layer4", "--methods", "finetune", "ewc", "si", "joint")
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    proc = sweep_cli(interrupted, *grid)
    deadline = time.time() + 300
    while len(list(interrupted.rglob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in interrupted.rglob("*.json")}
    assert 2 <= len(finished) < 4, "the kill must land mid-sweep"
    assert sweep_cli(interrupted, *grid).wait() == 0
    after = sorted(interrupted.rglob("*.json"))
    assert len(after) == 4
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "finished runs redone"
    assert not list(interrupted.rglob("*.tmp")), "a temporary file was left behind"
    assert sweep_cli(reference, *grid).wait() == 0
    got, want = results.load(interrupted), results.load(reference)
    assert list(got.method) == list(want.method)
    for a, b in zip(got.R, want.R):
        np.testing.assert_array_equal(a, b)
