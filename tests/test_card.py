"""A regime card as an outside researcher meets it (issue 31): every input checked before a
run trains, cells at chance flagged and left out of the ranks, the reason a pair cannot be
tested, the test's detectable crossing, and card files that never replace another card."""

from __future__ import annotations

import ast
import linecache
import warnings
from pathlib import Path

import numpy as np
import pytest

from cl_regimes import card, card_page, cli, methods, results
from cl_regimes.config import ConfigError
from cl_regimes.methods.base import REGISTRY
from simulate import runs_table

SMOKE = ["--profile", "smoke", "--device", "cpu"]
TASK_ONLY = '''
from typing import Annotated

from cl_regimes.config import POSITIVE
from cl_regimes.methods import Method


class TaskOnly(Method):
    """Fine-tuning, for task-incremental runs only."""

    name = "task_only"
    scenarios = ("task_incremental",)

    def __init__(self, runs, scale: Annotated[float, POSITIVE] = 0.5):
        super().__init__(runs)
        self.scale = scale
'''


@pytest.fixture
def task_only(tmp_path, monkeypatch):
    """A plug-in outside the project that applies to the task-incremental scenario only."""
    (tmp_path / "task_only_mod.py").write_text(TASK_ONLY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(methods.PATHS_ENV, "")
    yield "task_only_mod:TaskOnly"
    REGISTRY.pop("task_only", None)


@pytest.mark.parametrize(
    "extra, message",
    [
        # each of these trained the paper's methods first, then failed
        (["--set", "task_only.scale=0"], "task_only.scale=0.0 is out of range; valid: > 0"),
        (["--scenario", "domain_incremental"], "does not apply to the domain_incremental"),
        (["--output", "FILE"], "card folder"),
        (["--output", "/proc/nope"], "card folder '/proc/nope' cannot be created"),
        # issue 38: said "No such file or directory" of a folder that exists
        (["--output", "/proc/1"], "card folder '/proc/1' exists but is not writable"),
    ],
)
def test_a_card_checks_every_input_before_anything_trains(
    task_only, tmp_path, capsys, extra, message
):
    (tmp_path / "FILE").write_text("not a folder")
    extra = [str(tmp_path / "FILE") if e == "FILE" else e for e in extra]
    results_dir = tmp_path / "results"
    code = cli.main(
        ["card", *SMOKE, "--method", task_only, "--results", str(results_dir), *extra]
        + ["--regimes", "head", "--output", str(tmp_path / "cards")] * ("--output" not in extra)
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not list(tmp_path.rglob("*.json"))  # nothing trained


def test_a_card_dry_run_lists_the_runs_it_needs_and_their_time(task_only, tmp_path, capsys):
    args = ["card", *SMOKE, "--method", task_only, "--results", str(tmp_path / "r")]
    assert cli.main([*args, "--regimes", "head", "full", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "runs to train" in out and "task_only" in out and "ewc" in out
    assert "18 runs, 0 already done" in out and " h (" in out  # 8 compared methods + 1
    assert not list(tmp_path.rglob("*.json"))


def test_card_force_recomputes_the_methods_runs_only(task_only, tmp_path, capsys, monkeypatch):
    """Issue 38: ``card --force`` was "unrecognized arguments"."""
    monkeypatch.setattr(card.sweep.results, "is_done", lambda *args: True)  # all recorded
    args = ["card", *SMOKE, "--method", task_only, "--results", str(tmp_path), "--regimes", "head"]
    assert cli.main([*args, "--dry-run"]) == 0
    assert "9 runs, 9 already done" in capsys.readouterr().out
    assert cli.main([*args, "--dry-run", "--force"]) == 0
    out = capsys.readouterr().out
    assert "9 runs, 8 already done" in out and "task_only" in out.split("9 runs")[0]


def test_the_chapter_and_the_command_keep_an_outside_methods_records_in_one_place(
    task_only, tmp_path
):
    """Issue 38: the notebook kept its records in ``results/yours``, the command beside the
    paper's methods, and neither reused the other's runs. Both now use ``card``'s layout:
    an outside method's under ``<results>/yours``, which no chapter reads."""
    plan = card.plan(task_only, "smoke", tmp_path, ["head"])
    assert [folder for _, folder in plan.sweeps] == [tmp_path, tmp_path / "yours"]
    assert plan.records[-1] == tmp_path / "yours/smoke/digits/head/task_only/order00-seed0.json"
    ewc = card.plan("ewc", "smoke", tmp_path, ["head"], ["ewc.lam=1"])  # the library's own
    assert [folder for _, folder in ewc.sweeps] == [tmp_path, tmp_path]
    chapter = Path(__file__).parents[1] / "notebooks" / "evaluate.py"
    calls = [
        node
        for node in ast.walk(ast.parse(chapter.read_text()))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "card.write"
    ]
    assert calls and all("own_results" not in {k.arg for k in c.keywords} for c in calls)


CELL = '''
from cl_regimes.methods import Method


class Cell(Method):
    """A method as the chapter "Evaluate your method" has one defined, in a notebook."""

    name = "notebook_cell"

    def direction(self, total, task_grad, penalty_grad, active):
        return {scale} * total
'''


@pytest.fixture
def notebook():
    """``define(source)`` runs ``source`` as IPython runs a notebook cell: its code in
    ``__main__``, its text in ``linecache`` only (there is no file); ``define(source,
    "<string>")`` as ``exec`` does, its text nowhere."""
    cells = []

    def define(source: str, filename: str | None = None) -> None:
        if filename is None:
            filename = f"/tmp/ipykernel_0/{len(cells)}.py"  # IPython's name of a cell
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        cells.append(filename)
        exec(compile(source, filename, "exec"), {"__name__": "__main__"})

    yield define
    for filename in cells:
        linecache.cache.pop(filename, None)
    REGISTRY.pop("notebook_cell", None)


def chapter_card(tmp_path, **kwargs) -> card.Card:
    """The card as the chapter makes it, at smoke under from_layer4, one order."""
    return card.write(
        "notebook_cell",
        "smoke",
        tmp_path / "results",
        output=tmp_path / "cards",
        regimes_=["from_layer4"],
        orders=[0],
        device="cpu",
        progress=False,
        **kwargs,
    )


def test_a_notebooks_method_is_retrained_when_its_code_changes(notebook, tmp_path):
    """Issue 38: a method defined in the chapter, its loss changed, rerun: "trained 0,
    already done 1", the old numbers and no warning (its record's digest was None)."""
    notebook(CELL.format(scale=0.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = chapter_card(tmp_path)
    # at one order, no numpy warning reached the notebook (nor the terminal) either
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    [path] = (tmp_path / "results" / "yours").rglob("*.json")
    first = results.read(path)["method_source"]
    assert first["files"] == ["__main__.Cell"] and len(first["sha256"]) == 64
    assert first["sha256"] in made.paths["markdown"].read_text()  # the card shows it

    plan = card.plan("notebook_cell", "smoke", tmp_path / "results", ["from_layer4"], orders=[0])
    commented = CELL.format(scale=0.5).replace('"""A method', '"""Edited: a method')
    notebook(commented.replace("        return", "        # damped\n        return"))
    assert card.pending(plan) == []  # a comment and a docstring are not code
    notebook(CELL.format(scale=0.25))  # the loss changed
    assert [run.config.method for run in card.pending(plan)] == ["notebook_cell"]
    chapter_card(tmp_path)
    assert results.read(path)["method_source"]["sha256"] != first["sha256"]
    records = {p: p.stat().st_ino for p in (tmp_path / "results").rglob("*.json")}
    chapter_card(tmp_path, force=True)  # the method's runs anew, the paper's reused
    assert [p for p in records if p.stat().st_ino != records[p]] == [path]

    notebook(CELL.format(scale=0.25), "<string>")  # its source cannot be read
    with pytest.raises(ConfigError, match="its source cannot be read"):
        card.plan("notebook_cell", "smoke", tmp_path / "results", ["from_layer4"])


def test_card_files_are_named_by_what_makes_the_card(task_only, tmp_path):
    """A card of another profile, scenario, regime set or setting never replaces one."""

    def stem(profile="smoke", regimes=None, settings=None):
        return card.plan(task_only, profile, tmp_path, regimes, settings).stem

    assert stem() == "task_only-smoke-task_incremental-all-regimes"
    stems = {
        stem(),
        stem("quick"),
        stem(regimes=["full", "head"]),
        stem(settings=["task_only.scale=0.25"]),
    }
    assert len(stems) == 4
    assert stem(regimes=["full", "head"]) == "task_only-smoke-task_incremental-head+full"


def chance_runs(orders=3):
    """Five methods ("mine" among them), one dataset: every cell at chance under head
    (diagonal accuracy 0.5 on two-class tasks), learning under from_layer4 and full."""
    acc = np.random.default_rng(0).uniform(0.6, 0.9, (1, orders, 3, 5))
    diag = np.broadcast_to([0.5, 0.95, 0.95], (1, orders, 5, 3)).transpose(0, 1, 3, 2)
    runs = runs_table(
        acc,
        regimes=("head", "from_layer4", "full"),
        methods=("ewc", "lwf", "si", "gem", "mine"),
        diag=diag,
    )
    runs.loc[runs.regime == "head", "acc"] = 0.5
    return runs.assign(forgetting=0.0, path=[f"r/{i}.json" for i in range(len(runs))])


def markdown(runs) -> str:
    table = card.stratified(runs, "mine")
    verdict, pairs = card.rank_changes(runs, "mine")
    plan = card.Plan("mine", "sim", "task_incremental", "", "mine", [], "mine")
    chance, ranks = card.chance_text(runs, "mine"), card.rank_text("mine", verdict, pairs)
    return card_page.markdown(plan, runs, table, chance, ranks, [])


def test_cells_at_chance_are_flagged_and_not_ranked():
    table = card.stratified(chance_runs(), "mine").set_index("regime")
    assert table.at_chance.to_dict() == {"head": True, "from_layer4": False, "full": False}
    assert table.loc["head", "rank"] is np.nan or str(table.loc["head", "rank"]) == "<NA>"
    assert table.loc["full", "of"] == 5
    text = markdown(chance_runs())
    assert "| digits" not in text and "| head | 3 |" in text
    assert "at chance: not ranked" in text
    assert "- d0 / head: ewc (0.50, chance 0.50)" in text and "\n## Rank changes" in text


def test_an_untestable_pair_says_why():
    """Three orders and two regimes above chance: testable. With head at chance and one
    order fewer, the card names both reasons instead of "too few orders or regimes"."""
    runs = chance_runs(orders=3)
    _, pairs = card.rank_changes(runs[runs.regime != "full"], "mine")
    assert (pairs.untested != "").all() and len(pairs) == 4
    reason = pairs.untested.iloc[0]
    assert "testable in 1 regime (from_layer4)" in reason
    assert "ewc and mine at chance in head" in reason
    _, pairs = card.rank_changes(chance_runs(orders=2), "mine")
    assert "2 paired orders in from_layer4" in pairs.untested.iloc[0]


def test_a_card_gives_the_detectable_crossing_of_its_test():
    runs = chance_runs(orders=3)
    text = markdown(runs)
    seen = card.rank_changes(runs, "mine")[0].seen()
    assert seen.startswith(("crossings larger than", "no crossings")), seen
    assert f"Detectable effect, at the noise and orders of these runs: {seen}." in text
    assert "not tested" not in text
    assert "Detectable effect: none, the test could not run" in markdown(chance_runs(orders=2))


def test_a_card_lists_its_records():
    text = markdown(chance_runs())
    assert "The 45 run records of this card" in text and "- `r/44.json`" in text


def smoke_card(tmp_path, method: str, setting: str) -> card.Card:
    """A card of ``method`` at smoke under ``head``, order 0: five runs."""
    return card.write(
        method,
        "smoke",
        tmp_path / "results",
        tmp_path / "cards",
        regimes_=["head"],
        settings=[setting],
        orders=[0],
        device="cpu",
        progress=False,
    )


def test_a_card_resolves_its_profile_once_and_passes_runs_down(tmp_path):
    """The profile's name is resolved at the card, the entry point, once: the sweep, its
    engine, the runner and the records below take runs, never the name (a call into
    ``profiles`` from any module but the card's fails this)."""
    import sys
    from pathlib import Path

    from cl_regimes import profiles

    entered = []

    def trace(frame, event, _arg):
        if event == "call" and frame.f_code.co_filename == profiles.__file__:
            caller = frame.f_back.f_code.co_filename
            if caller != profiles.__file__:
                entered.append((Path(caller).name, frame.f_code.co_name))

    sys.setprofile(trace)
    try:
        made = smoke_card(tmp_path, "finetune", "scenario=task_incremental")
    finally:
        sys.setprofile(None)
    assert len(made.runs) == 9  # the eight compared methods and the card's, trained
    assert set(profiles.REPLAY) <= set(made.pairs.method_1)  # ranked among the field's too
    assert {caller for caller, _ in entered} == {"card.py"}
    assert [name for _, name in entered].count("get_profile") == 1


def test_a_card_of_a_papers_method_with_its_own_settings_names_it_apart(tmp_path):
    """EWC with its own lambda beside the paper's EWC: two runs per order of one method,
    told apart by the card's label, not refused as duplicate records."""
    made = smoke_card(tmp_path, "ewc", "ewc.lam=1")
    label = "ewc (ewc.lam=1.0)"
    assert sorted(made.runs.method) == sorted([*card.COMPARED, label])
    assert ("ewc", label) in set(zip(made.pairs.method_1, made.pairs.method_2))  # compared
    assert made.paths["markdown"].read_text().startswith(f"# Regime card: `{label}`")
