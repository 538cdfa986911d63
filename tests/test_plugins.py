"""A method of one's own, outside the project: by path (module:Class) or through the entry-point
group of an installed package; it runs, sweeps and gets a regime card with no project edit."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from cl_regimes import cli, methods, profiles, results
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
    (tmp_path / "no_range.py").write_text(  # a setting without its valid values
        "from cl_regimes.methods import Method\n\n\nclass NoRange(Method):\n"
        "    name = 'no_range'\n\n    def __init__(self, runs, k: int = 3):\n"
        "        super().__init__(runs)\n"
    )
    (tmp_path / "two_methods.py").write_text(  # a second, test-only method beside it
        SOURCE.format(cls="Damped", name="damped2")
        + SOURCE.format(cls="TestOnly", name="test_only").split("\n\n\n", 1)[1]
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for the sweep's spawned workers
    # set (to none) rather than deleted, so that monkeypatch restores its absence afterwards
    monkeypatch.setenv(methods.PATHS_ENV, "")
    yield tmp_path
    for name in ("damped", "no_range", "damped2", "test_only"):
        REGISTRY.pop(name, None)
    for module in ("my_damped", "not_a_method", "clash", "no_range", "two_methods"):
        sys.modules.pop(module, None)  # so that the next test imports its own


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
    # its records apart from the profile's, which the book's chapters read (issue 38)
    assert len(list((shared_results / "yours" / "smoke").rglob("damped/*/*.json"))) == 2
    assert not list((shared_results / "smoke").rglob("damped"))
    # the card: stratified by regime, the method among the paper's four in each
    stem = "damped-damped.scale=0.25-smoke-task_incremental-head+from_layer4"
    text = (out / f"{stem}.md").read_text()
    assert "| digits | head | 1 |" in text and "| digits | from_layer4 | 1 |" in text
    assert "never pool" in text and "The 18 run records of this card" in text
    # head learns nothing on two-class digits tasks at smoke: flagged, not ranked
    assert "at chance: not ranked" in text and "- digits / head: " in text
    assert (out / f"{stem}.html").read_text().count("<tr>") == 3
    assert (out / f"{stem}-digits.png").stat().st_size > 10_000
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
    text = (out / "damped-smoke-class_incremental-head+from_layer4.md").read_text()
    assert "scenario `class_incremental`" in text and "| digits | from_layer4 | 1 |" in text
    runs = results.load(results_dir)
    assert set(runs.scenario) == {"class_incremental"} and len(runs) == 2 * 9


@pytest.mark.parametrize(
    "method, expected",
    [
        ("no_such_module:Damped", "cannot import 'no_such_module'"),
        ("not_a_method:Plain", "'Plain' is not a subclass of cl_regimes.methods.Method"),
        ("clash:MyEWC", "is named 'ewc', which cl_regimes.methods.ewc.EWC already has"),
        # issue 31: each of these was a traceback, or a line that misled
        ("my_damped:Nothing", "'my_damped' has no 'Nothing'; its methods: my_damped:Damped"),
        ("my_damped", "or a method of your own as module:Class (did you mean my_damped:Damped?)"),
        ("no_range:NoRange", "setting 'k' has no valid values; annotate it"),
    ],
)
def test_a_method_that_cannot_load_is_one_line_and_exit_2(by_path, capsys, method, expected):
    args = ["run", *SMOKE, "--dataset", "digits", "--regime", "head", "--method", method]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_only_the_named_class_of_a_module_is_registered(by_path):
    assert methods.load("two_methods:Damped") == "damped2"
    assert "damped2" in methods.names() and "test_only" not in methods.names()


def test_an_entry_points_key_names_its_method(by_path, monkeypatch):
    """The key (``myreplay = mycl.replay:Replay``) is what users type; records keep the
    class's name."""
    point = EntryPoint("my_key", "my_damped:Damped", methods.ENTRY_POINTS)
    monkeypatch.setattr(methods, "entry_points", lambda group: [point])
    monkeypatch.setattr(methods, "_discovered", False)
    monkeypatch.setattr(methods, "ALIASES", {})
    assert methods.load("my_key") == "damped" and methods.load("damped") == "damped"


def test_a_broken_installed_plugin_fails_only_the_runs_that_ask_for_it(monkeypatch, capsys):
    """A package whose module is gone (uninstalled half-way, or not yet on a worker's path)
    leaves the library's own methods usable; asked for, it is its one-line error."""
    point = EntryPoint("gone", "no_such_module:Gone", methods.ENTRY_POINTS)
    monkeypatch.setattr(methods, "entry_points", lambda group: [point])
    monkeypatch.setattr(methods, "_discovered", False)
    monkeypatch.setattr(methods, "BROKEN", {})
    assert methods.load("ewc") == "ewc"
    args = ["run", *SMOKE, "--dataset", "digits", "--regime", "head", "--method", "gone"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "entry point 'gone'" in err and "no_such_module" in err and err.count("\n") == 1


def test_help_lists_a_plugins_settings_with_their_ranges(by_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--method", "my_damped:Damped", "--help"])
    line = next(x for x in capsys.readouterr().out.splitlines() if "damped.scale" in x)
    assert line.split() == ["damped.scale", *["0.5"] * len(profiles.PROFILES), ">", "0"]


def test_a_card_sets_only_the_methods_own_settings(by_path, capsys):
    args = ["card", *SMOKE, "--method", "my_damped:Damped", "--set", "epochs=2"]
    assert cli.main(args) == 2
    assert "takes damped's own settings" in capsys.readouterr().err


def pyproject(name: str, entry_points: dict[str, str], kind: str) -> str:
    """A package's pyproject.toml: its methods' entry points, and what setuptools installs
    (``kind``: ``py-modules`` or ``packages``), the first entry point's top-level module."""
    module = next(iter(entry_points.values())).split(".")[0].partition(":")[0]
    points = "".join(f'{key} = "{value}"\n' for key, value in entry_points.items())
    return (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'\n[project]\nname = "{name}"\nversion = "0.1"\n'
        f'\n[project.entry-points."cl_regimes.methods"]\n{points}'
        f'\n[tool.setuptools]\n{kind} = ["{module}"]\n'
    )


def pip_install(package, site) -> None:
    """Install ``package`` with pip into the folder ``site`` (on the path only of the
    processes given it)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # without setuptools in the environment (Python >= 3.12 venvs), pip fetches it to build
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run(
        [*pip, "install", "--no-deps", *isolation, "--target", site, package], check=True
    )


def test_a_method_from_an_installed_packages_entry_point(tmp_path, shared_results):
    """Installed with pip (no project file edited), found by its entry point in a fresh
    process."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "damped_ep.py").write_text(SOURCE.format(cls="DampedEP", name="damped_ep"))
    (package / "pyproject.toml").write_text(
        pyproject("cl-regimes-test-plugin", {"damped_ep": "damped_ep:DampedEP"}, "py-modules")
    )
    # installed into a folder of its own, on the path of the processes it is meant for
    # only: tests running beside this one never see it come and go
    site = tmp_path / "site"
    pip_install(package, site)
    env = {k: v for k, v in os.environ.items() if k != methods.PATHS_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "cl_regimes", "card", *SMOKE, *REGIMES]
    done = subprocess.run(
        [*cmd, "--method", "damped_ep", "--results", str(shared_results)]
        + ["--output", str(tmp_path / "cards")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    card = tmp_path / "cards" / "damped_ep-smoke-task_incremental-head+from_layer4.md"
    assert "| digits | from_layer4 | 1 |" in card.read_text()
    runs = results.load(shared_results)
    assert set(runs[runs.method == "damped_ep"].regime) == {"head", "from_layer4"}


PACKAGE = {  # a plug-in package of two modules, and a method byte-identical to my_damped's
    "nu_pkg/__init__.py": '"""Methods of my own."""\n',
    "nu_pkg/helper.py": "SCALE = 0.5\n",
    "nu_pkg/scaled.py": (
        "from cl_regimes.methods import Method\n\nfrom .helper import SCALE\n\n\n"
        "class Scaled(Method):\n    name = 'scaled'\n\n"
        "    def direction(self, total, task_grad, penalty_grad, active):\n"
        "        return SCALE * total\n"
    ),
    "nu_pkg/damped.py": SOURCE.format(cls="Damped", name="damped_dev"),
    "pyproject.toml": pyproject(
        "cl-regimes-test-package",
        {"scaled": "nu_pkg.scaled:Scaled", "damped_dev": "nu_pkg.damped:Damped"},
        "packages",
    ),
}


def test_a_method_is_the_code_it_runs_wherever_it_is_loaded_from(tmp_path):
    """Issue 38: a constant changed in a helper module the plug-in imports was "already
    done"; a comment edited retrained; byte-identical code installed and run by its entry
    point retrained the records made by path; an installed copy beside a development copy
    was refused as a name clash."""
    source, dev, site = tmp_path / "source", tmp_path / "dev", tmp_path / "site"
    for name, text in PACKAGE.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    dev.mkdir()
    (dev / "damped_dev.py").write_text(PACKAGE["nu_pkg/damped.py"])
    env = {k: v for k, v in os.environ.items() if k != methods.PATHS_ENV}

    def run(method: str, *path) -> str:
        """``run``'s output, in a fresh process with ``path`` as its PYTHONPATH."""
        command = [sys.executable, "-m", "cl_regimes", "run", *SMOKE, "--dataset", "digits"]
        command += ["--regime", "head", "--results", str(tmp_path / "results")]
        done = subprocess.run(
            [*command, "--method", method],
            capture_output=True,
            text=True,
            env={**env, "PYTHONPATH": os.pathsep.join(map(str, path))},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[0]

    assert run("nu_pkg.scaled:Scaled", source).startswith("record written")
    helper, scaled = source / "nu_pkg" / "helper.py", source / "nu_pkg" / "scaled.py"
    helper.write_text('"""The damping."""\n\nSCALE = (\n    0.5  # of the gradient\n)\n')
    scaled.write_text(scaled.read_text().replace("    def", "    # damped\n    def"))
    assert run("nu_pkg.scaled:Scaled", source).startswith("already done")  # the same code
    helper.write_text("SCALE = 1.0\n")
    assert run("nu_pkg.scaled:Scaled", source).startswith("record written")
    [record] = (tmp_path / "results").rglob("scaled/*.json")
    hashed = results.read(record)["method_source"]
    assert hashed["files"] == ["nu_pkg/helper.py", "nu_pkg/scaled.py"]

    pip_install(source, site)
    assert run("scaled", site).startswith("already done")  # by its entry point
    assert results.read(record)["method_source"] == hashed  # not replaced
    assert run("damped_dev:Damped", dev).startswith("record written")
    assert run("damped_dev", site).startswith("already done")  # as nu_pkg.damped:Damped
    assert run("damped_dev:Damped", site, dev).startswith("already done")  # no clash
