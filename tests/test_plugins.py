"""A method of one's own, outside the project: by path (module:Class) or through the entry-point
group of an installed package; it runs, sweeps and gets a regime card with no project edit."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from cl_regimes import cli, methods, results
from cl_regimes.methods.base import REGISTRY

pytestmark = pytest.mark.slow

SOURCE = '''
from typing import Annotated

from cl_regimes.config import POSITIVE
from cl_regimes.methods import Method


class {cls}(Method):
    """Fine-tuning along a damped gradient."""

    name = "{name}"

    def __init__(self, runs, scale: Annotated[float, POSITIVE] = 0.5):
        super().__init__(runs)
        self.scale = scale

    def direction(self, total, task_grad, penalty_grad, active):
        return self.scale * total
'''
SMOKE = ["--profile", "smoke", "--device", "cpu"]
REGIMES = ["--regimes", "head", "from_layer4"]


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory):
    """One results folder for the module: the paper methods' runs are made once."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture
def by_path(tmp_path, monkeypatch):
    """A module outside the project, on the import path; the registry and the environment
    variable that carries it to worker processes are restored afterwards."""
    (tmp_path / "my_damped.py").write_text(SOURCE.format(cls="Damped", name="damped"))
    (tmp_path / "not_a_method.py").write_text("class Plain:\n    name = 'plain'\n")
    (tmp_path / "clash.py").write_text(SOURCE.format(cls="MyEWC", name="ewc"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for the sweep's spawned workers
    # set (to none) rather than deleted, so that monkeypatch restores its absence afterwards
    monkeypatch.setenv(methods.PATHS_ENV, "")
    yield tmp_path
    REGISTRY.pop("damped", None)
    for module in ("my_damped", "not_a_method", "clash"):  # so the next test imports its own
        sys.modules.pop(module, None)


def test_a_method_given_by_path_sweeps_and_gets_a_card(by_path, shared_results, tmp_path):
    out = tmp_path / "cards"
    base = [*SMOKE, "--results", str(shared_results)]
    assert (
        cli.main(
            ["card", *base, "--method", "my_damped:Damped", *REGIMES, "--output", str(out)]
            + ["--set", "damped.scale=0.25"]
        )
        == 0
    )
    # the card: stratified by regime, the method among the paper's four in each
    text = (out / "damped-damped.scale=0.25.md").read_text()
    assert "| digits | head | 1 |" in text and "| digits | from_layer4 | 1 |" in text
    assert "of 5 |" in text and "never pool" in text
    assert (out / "damped-damped.scale=0.25.html").read_text().count("<tr>") == 3
    assert (out / "damped-damped.scale=0.25-digits.png").stat().st_size > 10_000
    # a sweep in two worker processes, which import the method from the path it was given
    assert cli.main(["sweep", *base, *REGIMES, "--methods", "my_damped:Damped", "--jobs", "2"]) == 0
    runs = results.load(shared_results)
    damped = runs[runs.method == "damped"]
    assert sorted(zip(damped.regime, damped.variant)) == [
        ("from_layer4", ""),
        ("from_layer4", "damped.scale=0.25"),
        ("head", ""),
        ("head", "damped.scale=0.25"),
    ]
    record = results.read(damped.path.iloc[0])
    assert record["config"]["method"] == "damped" and "scale" in record["config"]["method_params"]


def test_a_card_in_another_scenario_compares_within_that_scenario(by_path, tmp_path):
    results_dir, out = tmp_path / "results", tmp_path / "cards"
    args = ["card", *SMOKE, "--results", str(results_dir), "--output", str(out), *REGIMES]
    assert cli.main([*args, "--method", "my_damped:Damped", "--scenario", "class_incremental"]) == 0
    text = (out / "damped-scenario=class_incremental.md").read_text()
    assert "scenario `class_incremental`" in text and "| digits | from_layer4 | 1 |" in text
    runs = results.load(results_dir)
    assert set(runs.scenario) == {"class_incremental"} and len(runs) == 2 * 5


@pytest.mark.parametrize(
    "method, expected",
    [
        ("no_such_module:Damped", "cannot import 'no_such_module'"),
        ("my_damped:Nothing", "'Nothing' is not a subclass of cl_regimes.methods.Method"),
        ("not_a_method:Plain", "'Plain' is not a subclass of cl_regimes.methods.Method"),
        ("clash:MyEWC", "is named 'ewc', which cl_regimes.methods.ewc.EWC already has"),
    ],
)
def test_a_method_that_cannot_load_is_one_line_and_exit_2(by_path, capsys, method, expected):
    args = ["run", *SMOKE, "--dataset", "digits", "--regime", "head", "--method", method]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_a_card_sets_only_the_methods_own_settings(by_path, capsys):
    args = ["card", *SMOKE, "--method", "my_damped:Damped", "--set", "epochs=2"]
    assert cli.main(args) == 2
    assert "takes damped's own settings" in capsys.readouterr().err


def test_a_method_from_an_installed_packages_entry_point(tmp_path, shared_results):
    """Installed with pip install -e (no project file edited), found by its entry point in
    a fresh process, and uninstalled afterwards."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "damped_ep.py").write_text(SOURCE.format(cls="DampedEP", name="damped_ep"))
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "cl-regimes-test-plugin"
            version = "0.1"

            [project.entry-points."cl_regimes.methods"]
            damped_ep = "damped_ep:DampedEP"

            [tool.setuptools]
            py-modules = ["damped_ep"]
            """
        )
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # without setuptools in the environment (Python >= 3.12 venvs), pip fetches it to build
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([*pip, "install", "--no-deps", *isolation, "-e", str(package)], check=True)
    try:
        env = {k: v for k, v in os.environ.items() if k != methods.PATHS_ENV}
        cmd = [sys.executable, "-m", "cl_regimes", "card", *SMOKE, *REGIMES]
        done = subprocess.run(
            [*cmd, "--method", "damped_ep", "--results", str(shared_results)]
            + ["--output", str(tmp_path / "cards")],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert "| digits | from_layer4 | 1 |" in (tmp_path / "cards" / "damped_ep.md").read_text()
    finally:
        subprocess.run([*pip, "uninstall", "-y", "cl-regimes-test-plugin"], check=True)
    runs = results.load(shared_results)
    assert set(runs[runs.method == "damped_ep"].regime) == {"head", "from_layer4"}
