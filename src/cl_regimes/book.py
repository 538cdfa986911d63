"""Build the book: a sweep -> Jupytext -> papermill (with a profile's parameters) -> Jupyter Book.

The profile's grid is swept first (on this machine or a Ray cluster), then the
regime notebook runs once per regime, into that regime's page (``jobs`` at once,
each in its own process with its share of the CPU threads), and shows its
records, then the cross-regime notebook reads every record, then
``jupyter-book build --all``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import yaml
import zmq
from jupyter_client.manager import AsyncKernelManager
from tqdm.auto import tqdm
from traitlets import default

from cl_regimes import regimes
from cl_regimes.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CROSS = "cross_regime"
COMMITTED = {  # pages of the cross-regime notebook on a committed profile's records
    "cross_regime_medium": (
        "medium",
        "# Across regimes: the evidence (medium profile, 11 orders x 2 seeds)",
    ),
}
ALSO_SWEPT = ("smoke",)  # swept by every build (seconds), for the scale chapter
REGIME = "regime"  # notebooks/regime.py: every regime chapter, one run per regime
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


class NotebookError(RuntimeError):
    """A notebook failed while papermill executed it."""


class QuietKernelManager(AsyncKernelManager):
    """The notebooks' kernel manager, without two routine kernel log lines on the terminal.

    - It provisions CurveZMQ keys (the python3 kernelspec declares support): without them
      ipykernel warns at every start that it "is running over TCP without encryption".
    - It does not send SIGINT to the kernel it shuts down. papermill shuts a kernel down only
      once it is idle, right after the reply to its last kernel_info request; on a loaded machine
      jupyter_client's shutdown SIGINT could land while the kernel was still in that handler,
      which logs "KeyboardInterrupt caught in kernel". An explicit ``interrupt_kernel()``
      (nbclient's, on a timeout) still interrupts.
    """

    @default("transport_encryption")
    def _default_transport_encryption(self) -> str:
        return "auto" if zmq.has("curve") else "disabled"

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


@dataclass(frozen=True)
class Chapter:
    """A notebook page of the book: ``notebooks/<name>.ipynb``, executed from ``source``
    with ``parameters`` (the regime chapters: notebooks/regime.py with ``regime=<name>``)
    and, where ``title`` is set, that title in place of the source's first heading."""

    name: str
    source: Path
    parameters: dict = field(default_factory=dict)
    title: str | None = None

    @property
    def output(self) -> Path:
        return self.source.with_name(f"{self.name}.ipynb")


def chapters(root: Path = ROOT) -> list[Chapter]:
    """The notebook pages named in ``_toc.yml``, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith("notebooks/"):
                name = node["file"].removeprefix("notebooks/")
                if name in regimes.REGIMES:
                    title, _ = regimes.chapter_text(name)
                    source = root / "notebooks" / f"{REGIME}.py"
                    found.append(Chapter(name, source, {"regime": name}, title))
                elif name in COMMITTED:
                    profile, title = COMMITTED[name]
                    records = os.path.relpath(root / "records", root / "notebooks")
                    parameters = {"profile": profile, "results_dir": records}
                    found.append(
                        Chapter(name, root / "notebooks" / f"{CROSS}.py", parameters, title)
                    )
                else:
                    found.append(Chapter(name, root / "notebooks" / f"{name}.py"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return found


def execute(
    source: Path, parameters: dict, output: Path | None = None, title: str | None = None
) -> Path:
    """Convert ``source`` (.py) to .ipynb with Jupytext (by default its paired .ipynb) and
    execute it there with papermill; ``title`` replaces the first heading.

    A parameter the notebook does not define is an error (papermill only warns).
    """
    import jupytext
    import papermill

    source = Path(source)
    output = Path(output or source.with_suffix(".ipynb"))
    notebook = jupytext.read(source)
    notebook.metadata.setdefault("kernelspec", KERNELSPEC)
    if title:
        heading = next(c for c in notebook.cells if c.cell_type == "markdown")
        heading.source = re.sub(r"^# .*", lambda _: title, heading.source, count=1)
    jupytext.write(notebook, output)
    known = papermill.inspect_notebook(str(output))
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ConfigError(
            f"notebook {source.name} has no parameter {', '.join(unknown)}; "
            f"its parameters: {', '.join(known)}"
        )
    try:
        papermill.execute_notebook(
            str(output),
            str(output),
            parameters=parameters,
            kernel_name=KERNELSPEC["name"],
            cwd=str(source.parent),
            progress_bar=False,
            kernel_manager_class=QuietKernelManager,
        )
    except papermill.PapermillExecutionError as err:
        page = source.name if output.stem == source.stem else f"{source.name} ({output.stem})"
        raise NotebookError(
            f"{page} failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        ) from None
    finally:
        _keep_source_newest(output, source)
    return output


def _keep_source_newest(ipynb: Path, source: Path) -> None:
    """Give the executed .ipynb the timestamp of its paired .py, so that ``jupytext --sync``
    (the pre-commit hook) and Jupytext in Jupyter take the inputs from the .py instead of
    copying papermill's injected parameters and metadata from the newer .ipynb into it."""
    if ipynb.exists():
        stat = source.stat()
        os.utime(ipynb, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _execute_in_worker(chapter: Chapter, parameters: dict, jobs: int) -> Path:
    """Run in a fresh process so that its kernel inherits this slot's share of threads."""
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return execute(chapter.source, parameters, chapter.output, chapter.title)


def execute_all(
    profile: str,
    results_dir,
    jobs: int = 1,
    device: str = "auto",
    group_size: int | None = None,
    root: Path = ROOT,
) -> None:
    """Execute every chapter, ``jobs`` at once, the longest first (the cross-regime, scale
    and evaluation chapters; the sweep made every record they read). ``results_dir`` is
    passed relative to the notebooks' folder, so that no absolute path of this machine
    shows in the book."""
    pages = chapters(root)
    params = {
        "profile": profile,
        "results_dir": os.path.relpath(os.path.abspath(results_dir), root / "notebooks"),
        "device": device,
        "group_size": group_size,
    }
    longest_first = sorted(pages, key=lambda c: c.source.stem == REGIME)
    with tqdm(total=len(pages), desc=f"notebooks ({profile})") as bar:
        with ProcessPoolExecutor(max(1, jobs), mp_context=get_context("spawn")) as pool:
            futures = {}
            for chapter in longest_first:
                if chapter.name in COMMITTED and not is_ready(root, chapter):
                    _placeholder(root, chapter)
                    bar.update()
                    continue
                values = params | chapter.parameters
                if chapter.source.stem == REGIME:
                    values |= {"orders": None}
                futures[pool.submit(_execute_in_worker, chapter, values, max(1, jobs))] = chapter
            for future in as_completed(futures):
                future.result()
                bar.set_postfix_str(futures[future].name)
                bar.update()


MIN_SHARED = 2  # a committed chapter ranks methods across regimes: two regimes share two


def committed_records(root: Path, chapter: Chapter) -> list[Path]:
    """The records of a committed chapter's profile (``<profile>/<dataset>/<regime>/...``)."""
    folder = root / "notebooks" / chapter.parameters["results_dir"] / chapter.parameters["profile"]
    return sorted(folder.glob("*/*/*/*.json"))


def committed_regimes(root: Path, chapter: Chapter) -> dict[str, set[str]]:
    """The regimes its committed records cover, in depth order, each with its methods."""
    found: dict[str, set[str]] = {}
    for p in committed_records(root, chapter):
        found.setdefault(p.parts[-3], set()).add(p.parts[-2])
    return {r: found[r] for r in sorted(found, key=list(regimes.REGIMES).index)}


def is_ready(root: Path, chapter: Chapter) -> bool:
    """Whether a committed profile's records can show its chapter: two of the original
    study's regimes (those of its ranking analysis) that share two of the paper's
    methods, each above chance in both (what finding 1's test needs)."""
    from itertools import combinations

    from cl_regimes import findings, results

    records = committed_records(root, chapter)
    if not records:
        return False
    runs = results.load(records)
    cells = findings.chance_cells(runs[runs.variant == ""])
    cells = cells[~cells.at_chance & cells.regime.isin(findings.ORIGINAL_REGIMES)]
    learned = cells.groupby(["dataset", "regime"]).method.agg(set)
    return any(
        len(a & b) >= MIN_SHARED
        for _, per_regime in learned.groupby(level="dataset")
        for a, b in combinations(per_regime, 2)
    )


def _placeholder(root: Path, chapter: Chapter) -> None:
    """The page of a committed profile whose records are not ready yet: its title, how
    far its sweep has come, and how to make the records."""
    import nbformat

    from cl_regimes import methods, profiles

    profile = chapter.parameters["profile"]
    records = committed_records(root, chapter)
    covered = "; ".join(
        f"`{regime}`: " + ", ".join(n for n in methods.names(plugins=False) if n in names)
        for regime, names in committed_regimes(root, chapter).items()
    )
    grid = len(profiles.get_profile(profile).grid(variants=False))
    so_far = (
        f"{len(records)} of the {grid} runs of the `{profile}` profile are committed so far "
        f"({covered}); its chapter appears once two of the original study's regimes "
        f"(`from_layer4` to `full`) share {MIN_SHARED} of the paper's methods above chance."
        if records
        else f"No records of the `{profile}` profile are committed yet."
    )
    text = f"{so_far} {{doc}}`../book/reproduce` says how to make them."
    cell = nbformat.v4.new_markdown_cell(f"{chapter.title}\n\n{text}")
    nbformat.write(
        nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": KERNELSPEC}), chapter.output
    )


def build_html(root: Path = ROOT) -> Path:
    """``jupyter-book build --all -W --keep-going``; returns the index page."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        "--all",
        "-W",
        "--keep-going",
        str(root),
    ]
    if subprocess.run(cmd).returncode != 0:
        raise NotebookError("jupyter-book build failed (see its output above)")
    return root / "_build" / "html" / "index.html"


def build(
    profile: str,
    results_dir="results",
    jobs: int = 1,
    device: str = "auto",
    group_size: int | None = None,
    html: bool = True,
    engine: str = "local",
    **engine_options,
) -> None:
    """Sweep the profile's grid (and the smoke profile's, for the scale chapter) on
    ``engine`` (``jobs`` groups at once locally; on Ray, ``engine_options`` say where and
    with which resources), then execute the notebooks on the records and build the HTML
    book."""
    from cl_regimes import profiles, sweep

    for name in dict.fromkeys((*ALSO_SWEPT, profile)):
        sweep.sweep(
            profiles.get_profile(name).grid(),
            results_dir=results_dir,
            device=device,
            engine=engine,
            jobs=jobs if engine == "local" else 1,
            group_size=group_size,
            **engine_options,
        )
    execute_all(profile, results_dir, jobs, device, group_size)
    if html:
        print(f"book: {build_html()}")
