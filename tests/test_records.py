"""Records anyone can rerun: ``verify`` reruns a record as it was trained and finds any
number that differs; an outside method's edited source is retrained; ``--force`` recomputes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from cl_regimes import cli, methods, provenance, results, verify
from cl_regimes.methods.base import REGISTRY

pytestmark = pytest.mark.slow

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-variants", "--orders", "0", "1"]


def sweep(folder, *args) -> int:
    return cli.main(["sweep", *SMOKE, "--results", str(folder), *args])


def test_verify_finds_the_number_that_was_changed(tmp_path, capsys):
    assert sweep(tmp_path, "--regimes", "from_layer4", "--methods", "si") == 0
    first, second = sorted(tmp_path.rglob("*.json"))
    record = json.loads(first.read_text())
    assert record["environment"]["group"] == [[0, 0], [1, 0]]
    assert record["environment"]["slot"] == 0 and len(record["environment"]["images"]) == 64
    assert set(record["environment"]["packages"]) >= {"torch", "numpy", "pillow"}
    capsys.readouterr()
    assert cli.main(["verify", str(tmp_path)]) == 0
    assert "2 of 2 records identical" in capsys.readouterr().out

    record["tasks"][2]["g2"] += 1e-3
    first.write_text(json.dumps(record))
    checks = verify.verify([tmp_path], progress=False)
    by_path = {c.path: c for c in checks}
    assert by_path[first].differing == ["tasks[2].g2"]
    assert by_path[first].max_diff == pytest.approx(1e-3)
    assert by_path[second].identical and not by_path[second].facts
    assert cli.main(["verify", str(first)]) == 1


def test_verify_names_the_facts_that_differ():
    recorded = {"threads": 1, "cpu_capability": "AVX2", "images": "a"}
    now = {"threads": 1, "cpu_capability": "AVX512", "images": "a"}
    then, current = verify.facts(recorded), verify.facts(now)
    assert {k for k in then if then[k] != current[k]} == {"cpu_capability"}
    assert verify.compare(
        {"R": [[1.0]], "metrics": {}, "tasks": []}, {"R": [[1.0]], "metrics": {}, "tasks": []}
    ) == ([], 0.0)
    old = {"R": [[1.0]], "metrics": {"acc": 1.0}, "tasks": [{"u": 2.0}]}
    new = {"R": [[1.0]], "metrics": {"acc": 1.0}, "tasks": [{"u": 2.0, "u_head": 1.0}]}
    assert verify.compare(old, new) == ([], 0.0)  # a statistic added since: not compared
    assert verify.compare(new, old) == (["tasks[0].u_head"], math.inf)


def test_verify_names_the_isa_to_pass(tmp_path, monkeypatch, capsys):
    """Issue 38: a committed AVX2 record verified on an AVX-512 machine without ``--isa``
    gave "0 of 1 identical" and no hint; a record made before records named their
    instruction set says nothing of it either."""
    records = Path(__file__).parents[1] / "records" / "medium"
    [committed] = records.glob("*/full/si/order00-seed0.json")
    record = json.loads(committed.read_text())
    assert "cpu_capability" not in record["environment"]
    path = tmp_path / committed.name
    path.write_text(committed.read_text())
    differs = verify.Check(path, [[0, 0]], 0, False, ["R[0][0]"], 0.01)
    differs.facts = {"cpu_capability": (None, "AVX512")}
    monkeypatch.setattr(verify, "verify", lambda *args: [differs])
    isas = ("AVX512", "AVX2", "DEFAULT")
    monkeypatch.setattr(provenance, "cpu_isas", lambda: isas, raising=False)
    assert cli.main(["verify", str(path)]) == 1
    assert "rerun them with --isa AVX2 or --isa DEFAULT" in capsys.readouterr().out

    differs.facts = {"cpu_capability": ("AVX2", "AVX512")}  # named, e.g. --isa AVX512 given
    assert verify.isa_hint([differs]).endswith("rerun them with --isa AVX2")
    monkeypatch.setattr(provenance, "cpu_isas", lambda: ("AVX512", "DEFAULT"))
    assert verify.isa_hint([differs]) == ""  # this CPU cannot run AVX2's kernels
    same = verify.Check(path, [[0, 0]], 0, False, facts={"cpu_capability": ("AVX2", "AVX512")})
    assert verify.isa_hint([same]) == ""  # identical: nothing to explain


def test_verify_refuses_a_missing_path(tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path / "nothing")]) == 2
    assert "no such record or folder" in capsys.readouterr().err


PLUGIN = '''
from cl_regimes.methods import Method


class Plain(Method):
    """Fine-tuning, from outside the library."""

    name = "plain_outside"
    {extra}
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A method in a module outside the project, whose source the test edits."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "outside.py").write_text(PLUGIN.format(extra=""))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setenv(methods.PATHS_ENV, "")
    yield folder / "outside.py"
    REGISTRY.pop("plain_outside", None)
    sys.modules.pop("outside", None)


def test_an_edited_outside_method_is_retrained(plugin, tmp_path, capsys):
    results_dir = tmp_path / "results"
    grid = ["--regimes", "head", "--methods", "outside:Plain", "--orders", "0"]
    assert sweep(results_dir, *grid) == 0
    [path] = results_dir.rglob("*.json")
    before = results.read(path)
    assert before["method_source"]["path"] == "outside:Plain"
    assert sweep(results_dir, *grid) == 0
    assert "trained 0, already done 1" in capsys.readouterr().out

    plugin.write_text(PLUGIN.format(extra="reference = False  # edited"))
    assert sweep(results_dir, *grid) == 0
    assert "trained 1, already done 0" in capsys.readouterr().out
    after = results.read(path)
    assert after["method_source"]["sha256"] != before["method_source"]["sha256"]


def test_force_recomputes_the_runs_asked_for(tmp_path, capsys):
    grid = ["--regimes", "head", "--methods", "finetune", "--orders", "0"]
    assert sweep(tmp_path, *grid) == 0
    [path] = tmp_path.rglob("*.json")
    path.write_text(path.read_text().replace('"created": "', '"created": "old '))
    assert sweep(tmp_path, *grid) == 0
    assert "old " in path.read_text()
    capsys.readouterr()
    assert sweep(tmp_path, *grid, "--force") == 0
    assert "trained 1, already done 0" in capsys.readouterr().out
    assert "old " not in path.read_text()
