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

from cl_regimes import book, regimes, results
from cl_regimes.config import ConfigError
from conftest import make_smoke_config

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
    return [
        "".join(out["data"]["text/html"])
        for cell in json.loads(notebook.read_text())["cells"]
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {})
    ]


def copy_notebook(name: str, folder: Path) -> Path:
    target = folder / f"{name}.py"
    shutil.copy(NOTEBOOKS / f"{name}.py", target)
    return target


@pytest.fixture(scope="module")
def executed_full(tmp_path_factory):
    """The `full` chapter: notebooks/regime.py executed by papermill with regime="full" at
    the smoke profile (two methods), as the book executes it."""
    folder = tmp_path_factory.mktemp("full")
    chapter = next(c for c in book.chapters() if c.name == "full")
    source = copy_notebook(chapter.source.stem, folder)
    params = chapter.parameters | {
        "profile": "smoke",
        "results_dir": str(folder / "results"),
        "device": "cpu",
        "orders": None,
        "methods": ["finetune", "ewc"],
    }
    return folder, book.execute(source, params, folder / "full.ipynb", chapter.title)


def test_regime_notebook_runs_at_smoke_profile_and_glues_its_values(executed_full):
    folder, out = executed_full
    values = glued(out)
    assert values["trainable"].strip("'") == "11,173,962"
    assert values["share"].strip("'") == "100.00%"
    assert values["digits_best"].strip("'") == "ewc"  # finetune is a reference, not a contender
    assert len(list((folder / "results").rglob("*.json"))) == 2
    text = out.read_text()
    assert "Traceback" not in text and "image/png" in text and 'class=\\"heatmap\\"' in text
    assert "has the highest ACC of the paper's methods under `full`" in text
    assert "references: finetune" in text


def test_a_regime_page_has_its_title_and_its_text(executed_full):
    _, out = executed_full
    cells = json.loads(out.read_text())["cells"]
    title, text = regimes.chapter_text("full")
    assert "".join(cells[0]["source"]).startswith(title + "\n")
    shown = [o.get("data", {}).get("text/markdown") for c in cells for o in c.get("outputs", [])]
    assert any(m and "".join(m) == text for m in shown)


def test_regime_chapters_come_from_one_source_with_their_own_text():
    pages = {c.name: c for c in book.chapters()}
    assert {pages[n].source for n in regimes.REGIMES} == {NOTEBOOKS / "regime.py"}
    for name in regimes.REGIMES:
        assert pages[name].parameters == {"regime": name}
        assert pages[name].output == NOTEBOOKS / f"{name}.ipynb"
        assert pages[name].title.startswith(f"# `{name}`: ")
        assert "$" in regimes.chapter_text(name)[1]  # what the theory predicts, with its math


def cells(name: str):
    import jupytext

    return jupytext.read(NOTEBOOKS / f"{name}.py").cells


@pytest.mark.parametrize("name", sorted({c.source.stem for c in book.chapters()}))
def test_every_code_cell_is_visible_and_none_prints_a_chapter(name):
    code = [c for c in cells(name) if c.cell_type == "code"]
    hidden = [
        c
        for c in code
        if {"remove-cell", "remove-input", "hide-input"} & set(c.metadata.get("tags", []))
    ]
    # only the defaults cell that papermill's injected parameters override is hidden
    assert [set(c.metadata["tags"]) for c in hidden] == [{"parameters", "remove-cell"}]
    assert "parameters" in code[0].metadata["tags"]
    for c in code:
        assert "chapters" not in c.source and "show_regime" not in c.source
        assert len(c.source.splitlines()) <= 25, "one table or figure per cell"


def test_a_table_cell_reruns_alone_with_a_changed_parameter(executed_full):
    import nbformat
    from nbclient import NotebookClient

    _, out = executed_full
    notebook = nbformat.read(out, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    table = next(c for c in code if "tables.method_table" in c.source)
    load = next(c for c in code if "results.load(" in c.source)
    imports = next(c for c in code if "from cl_regimes import" in c.source)
    injected = next(c for c in code if "injected-parameters" in c.metadata.get("tags", []))
    before = "".join(table.outputs[0]["data"]["text/html"])
    assert "BWT" in before and "ACC" in before
    rerun = nbformat.v4.new_notebook(metadata=notebook.metadata)
    changed = nbformat.v4.new_code_cell(
        table.source.replace("metrics = list(report.METRICS)", 'metrics = ["acc"]')
    )
    rerun.cells = [nbformat.v4.new_code_cell(c.source) for c in (code[0], injected, imports, load)]
    rerun.cells.append(changed)
    NotebookClient(
        rerun,
        kernel_name="python3",
        kernel_manager_class=book.QuietKernelManager,
        resources={"metadata": {"path": str(out.parent)}},
    ).execute()
    after = "".join(rerun.cells[-1].outputs[0]["data"]["text/html"])
    assert after != before and "ACC" in after and "BWT" not in after


def test_unknown_papermill_parameter_is_an_error_naming_it(tmp_path):
    source = copy_notebook("regime", tmp_path)
    with pytest.raises(ConfigError, match="no parameter nosuch.*its parameters: regime, profile"):
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
    source.write_text(
        "# ---\n# jupyter:\n#   jupytext:\n#     formats: ipynb,py:percent\n# ---\n\n"
        '# %% tags=["parameters"]\nx = 1\n\n# %%\nprint(x)\n'
    )
    time.sleep(0.05)
    book.execute(source, {"x": 2})
    before = source.read_text()
    sync = subprocess.run(
        [sys.executable, "-m", "jupytext", "--sync", str(source)], capture_output=True, text=True
    )
    assert sync.returncode == 0, sync.stderr
    after = source.read_text()
    assert "injected-parameters" not in after and "papermill" not in after
    assert after.split("# %%", 1)[1] == before.split("# %%", 1)[1]


def test_toc_lists_every_regime_chapter_then_the_record_readers():
    pages = book.chapters(ROOT)
    assert [c.name for c in pages] == [
        *regimes.REGIMES,
        *book.COMMITTED,  # the evidence first, then this build's own check
        "cross_regime",
        "scale",
        "tuned",
        "scenarios",
        "leaderboard",
        "evaluate",
    ]
    assert all(c.source.exists() for c in pages)
    medium = pages[len(regimes.REGIMES)]
    assert medium.source == NOTEBOOKS / "cross_regime.py"
    assert medium.parameters == {"profile": "medium", "results_dir": "../records"}


def sweep_cli(results_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cl_regimes",
            "sweep",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--results",
            str(results_dir),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_cross_regime_tables_are_regenerated_from_the_records(tmp_path):
    grid = ("--methods", "finetune", "ewc")
    assert sweep_cli(tmp_path / "results", "--regimes", "head", "full", *grid).wait() == 0
    params = {"profile": "smoke", "results_dir": str(tmp_path / "results")}
    source = copy_notebook("cross_regime", tmp_path)
    first = html_outputs(book.execute(source, params, tmp_path / "first.ipynb"))
    second = html_outputs(book.execute(source, params, tmp_path / "second.ipynb"))
    assert first and first == second
    assert (
        sweep_cli(
            tmp_path / "results", "--regimes", "from_layer4", "--methods", "finetune", "ewc"
        ).wait()
        == 0
    )
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


def test_a_committed_profile_gets_a_placeholder_until_it_can_test_finding_1(tmp_path):
    (tmp_path / "notebooks").mkdir()
    parameters = {"profile": "medium", "results_dir": "../records"}
    chapter = book.Chapter(
        "cross_regime_medium", tmp_path / "notebooks" / "cross_regime.py", parameters, "# Medium"
    )
    folder = tmp_path / "records" / "medium" / "fashion_mnist"

    def page_text():
        book._placeholder(tmp_path, chapter)
        return "".join(json.loads(chapter.output.read_text())["cells"][0]["source"])

    def add(regime, *names, accuracy=0.9):  # 0.9: above chance (1/2), 0.55: at chance
        for method in names:
            outcome = {"order": list(range(5)), "R": np.full((5, 5), accuracy).tolist()}
            outcome |= {"tasks": [{"task": t} for t in range(5)], "classes_per_task": 2}
            config = make_smoke_config(regime, method)
            record = results.assemble(results.Run(config, "medium"), outcome, {}, 0.0)
            results.save(record, folder / regime / method / "order00-seed0.json")

    assert not book.is_ready(tmp_path, chapter)
    text = page_text()
    assert text.startswith("# Medium\n") and "No records" in text and "reproduce" in text
    add("head", "gem", "ewc", "finetune")  # not a regime of the original's analysis
    add("full", "ewc", "joint", "finetune")  # references are not the paper's methods
    add("from_layer4", "gem", "lwf")
    add("from_layer4", "ewc", accuracy=0.55)  # shared with full, but at chance
    assert not book.is_ready(tmp_path, chapter)
    assert (
        "9 of the 462 runs of the `medium` profile are committed so far (`head`: finetune, "
        "ewc, gem; `from_layer4`: ewc, gem, lwf; `full`: finetune, joint, ewc)"
    ) in page_text()
    add("full", "gem")
    assert not book.is_ready(tmp_path, chapter)  # gem is the one method they share
    add("full", "lwf")
    assert book.is_ready(tmp_path, chapter)
