"""Adding a method is one new file under methods/ and one line of values in profiles.py."""

from __future__ import annotations

import importlib.util

import pytest

from cl_regimes import cli, methods, profiles, results
from cl_regimes.methods.base import REGISTRY

TOY = '''"""A toy method: plain fine-tuning along a scaled gradient."""

from typing import Annotated

from cl_regimes.config import POSITIVE
from cl_regimes.methods.base import Method


class Toy(Method):
    name = "toy"

    def __init__(self, runs, scale: Annotated[float, POSITIVE]):
        super().__init__(runs)
        self.scale = scale

    def direction(self, total, task_grad, penalty_grad, active):
        return self.scale * total
'''


@pytest.fixture
def toy_method(tmp_path, monkeypatch):
    path = tmp_path / "toy.py"  # the one new file
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_method", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    for settings in (profiles.PAPER_SETTINGS, *(p.settings for p in profiles.PROFILES.values())):
        monkeypatch.setitem(settings, "toy.scale", 0.5)  # the one line of values
    yield
    REGISTRY.pop("toy")


def test_a_new_method_runs_through_run_and_sweep(toy_method, tmp_path, capsys):
    assert "toy" in methods.names() and list(methods.get("toy").parameters()) == ["scale"]
    base = ["--profile", "smoke", "--device", "cpu", "--results", str(tmp_path / "r")]
    assert (
        cli.main(["run", *base, "--dataset", "digits", "--regime", "head", "--method", "toy"]) == 0
    )
    assert cli.main(["sweep", *base, "--regimes", "head", "from_layer4", "--methods", "toy"]) == 0
    table = results.load(tmp_path / "r")
    assert sorted(table.regime) == ["from_layer4", "head"] and set(table.method) == {"toy"}
    record = results.read(table.path.iloc[0])
    assert record["config"]["method_params"] == {"scale": 0.5}
    # its parameter is checked like every other
    assert (
        cli.main(
            [
                "run",
                *base,
                "--dataset",
                "digits",
                "--regime",
                "head",
                "--method",
                "toy",
                "--set",
                "toy.scale=0.0",
            ]
        )
        == 2
    )
    assert "toy.scale=0.0 is out of range; valid: > 0" in capsys.readouterr().err
