"""Build the book: a sweep -> Jupytext -> papermill (with a profile's parameters) -> Jupyter Book.

The profile's grid is swept first (on this machine or a Ray cluster), then the
regime notebooks run (``jobs`` at once, each in its own process with its share
of the CPU threads) and show their records, then the cross-regime notebook
reads every record, then ``jupyter-book build --all``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml
import zmq
from jupyter_client.manager import AsyncKernelManager
from tqdm.auto import tqdm
from traitlets import default

from cl_regimes.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CROSS = "cross_regime"
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


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks named in ``_toc.yml``, as their Jupytext .py sources, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith("notebooks/"):
                files.append(root / (node["file"] + ".py"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return files


def execute(source: Path, parameters: dict, output: Path | None = None) -> Path:
    """Pair ``source`` (.py) to .ipynb with Jupytext and execute it with papermill.

    A parameter the notebook does not define is an error (papermill only warns).
    """
    import jupytext
    import papermill

    source = Path(source)
    ipynb = source.with_suffix(".ipynb")
    notebook = jupytext.read(source)
    notebook.metadata.setdefault("kernelspec", KERNELSPEC)
    jupytext.write(notebook, ipynb)
    known = papermill.inspect_notebook(str(ipynb))
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ConfigError(
            f"notebook {source.name} has no parameter {', '.join(unknown)}; "
            f"its parameters: {', '.join(known)}"
        )
    output = Path(output or ipynb)
    try:
        papermill.execute_notebook(
            str(ipynb),
            str(output),
            parameters=parameters,
            kernel_name=KERNELSPEC["name"],
            cwd=str(source.parent),
            progress_bar=False,
            kernel_manager_class=QuietKernelManager,
        )
    except papermill.PapermillExecutionError as err:
        raise NotebookError(
            f"{source.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        ) from None
    finally:
        _keep_source_newest(ipynb, source)
    return output


def _keep_source_newest(ipynb: Path, source: Path) -> None:
    """Give the executed .ipynb the timestamp of its paired .py, so that ``jupytext --sync``
    (the pre-commit hook) and Jupytext in Jupyter take the inputs from the .py instead of
    copying papermill's injected parameters and metadata from the newer .ipynb into it."""
    if ipynb.exists():
        stat = source.stat()
        os.utime(ipynb, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _execute_in_worker(source: Path, parameters: dict, jobs: int) -> Path:
    """Run in a fresh process so that its kernel inherits this slot's share of threads."""
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return execute(source, parameters)


def execute_all(
    profile: str,
    results_dir,
    jobs: int = 1,
    device: str = "auto",
    group_size: int | None = None,
    root: Path = ROOT,
) -> None:
    notebooks = toc_notebooks(root)
    params = {
        "profile": profile,
        "results_dir": str(Path(results_dir).resolve()),
        "device": device,
        "group_size": group_size,
    }
    regime_nbs = [nb for nb in notebooks if nb.stem != CROSS]
    with tqdm(total=len(notebooks), desc=f"notebooks ({profile})") as bar:
        with ProcessPoolExecutor(max(1, jobs), mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_execute_in_worker, nb, params | {"orders": None}, max(1, jobs)): nb
                for nb in regime_nbs
            }
            for future in futures:
                bar.set_postfix_str(futures[future].stem)
                future.result()
                bar.update()
        for nb in notebooks:
            if nb.stem == CROSS:
                execute(nb, params)
                bar.update()


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
    """Sweep the profile's grid on ``engine`` (``jobs`` groups at once locally; on Ray,
    ``engine_options`` say where and with which resources), then execute the notebooks
    on its records and build the HTML book."""
    from cl_regimes import sweep

    sweep.sweep(
        profile,
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
