"""Where a sweep's work units run: on this machine (``local``) or on a Ray cluster (``ray``).

A work unit is a group of runs of one cell, trained as one grouped network
(``runner.run_group``) by ``train_unit``, which saves each run's record and
reports what it did. Both engines run the same function and yield its
``Outcome`` as units finish, so a sweep handles them alike:

- ``local``: one unit at a time in this process, or ``jobs`` at once in worker
  processes sharing the CPU threads;
- ``ray``: each unit is a Ray task declaring its resources (``num_cpus``;
  ``num_gpus`` as the unit's share of a GPU, so that Ray packs several units on
  one GPU), retried when its worker dies. Records go to a path every node can
  reach.

A unit that raises is reported with its reason and never stops the others. A
retried unit first skips the runs whose records already exist, and a record is
never overwritten (``results.save``), so each is written by exactly one task.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from cl_regimes import results
from cl_regimes.config import ConfigError, check_choice
from cl_regimes.results import Run

ENGINES = ("local", "ray")
MAX_RETRIES = 3  # a Ray task whose worker dies runs again, at most this many times
TRACKER_QUIET = "ignore:resource_tracker:UserWarning"
PROBE_TIMEOUT_S = 60.0  # joining a Ray cluster takes seconds; a port that is not one, forever
LOCAL_START_ATTEMPTS = 3  # a local Ray instance that times out starting (a busy machine)


@dataclass
class Unit:
    """Runs of one cell trained together, and where each one's record goes."""

    runs: list[Run]
    paths: list[Path]
    force: bool = False  # recompute (and replace) runs whose records exist
    index: int = 0  # its place in the sweep's list of units (for progress reports)


@dataclass
class Outcome:
    """What a unit did: records written, records found already there, or why it failed."""

    unit: Unit
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    error: str | None = None


def node_name() -> str:
    """The Ray node this code runs on (its node id), else the host name."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def train_unit(
    unit: Unit,
    device: str,
    data_dir,
    threads: int | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> Outcome:
    """Train the unit's unfinished runs as one group and save each run's record;
    ``on_epoch(runs)`` after every epoch of its training (in a pool worker: reported to
    the parent through the pool's progress queue)."""
    from cl_regimes import provenance, runner

    if threads:
        import torch

        torch.set_num_threads(threads)
    outcome = Outcome(unit)
    try:
        source = provenance.method_source(unit.runs[0].config.method)
        todo = [
            (r, p)
            for r, p in zip(unit.runs, unit.paths)
            if unit.force or not results.is_done(p, r.config, source)
        ]
        replace = {p for _, p in todo if p.exists()}  # forced, or its method's source changed
        unfinished = {p for _, p in todo}
        outcome.skipped = [p for p in unit.paths if p not in unfinished]
        where = {repr(r.config): p for r, p in todo}
        node = node_name()

        def save(group: list[Run], records: list[dict]) -> None:
            for run, record in zip(group, records):
                path = where[repr(run.config)]
                record["environment"]["node"] = node
                try:
                    outcome.written.append(results.save(record, path, path in replace))
                except results.RecordExists:  # another task finished it meanwhile
                    results.is_done(path, run.config, source)  # raises unless this run's
                    outcome.skipped.append(path)

        if todo:
            runner.run_group(
                [r for r, _ in todo],
                device,
                data_dir,
                checkpoint_dir=todo[0][1].parent,
                on_group=save,
                on_epoch=on_epoch or _worker_progress(unit),
            )
    except Exception as err:  # reported with the unit's runs; the other units go on
        where = traceback.extract_tb(err.__traceback__)[-1]
        message = f"{type(err).__name__}: {err}".rstrip(": ")
        outcome.error = f"{message} ({Path(where.filename).name}:{where.lineno})"
    return outcome


def local(
    units: list[Unit],
    device: str,
    data_dir,
    jobs: int = 1,
    on_epoch: Callable[[int, int], None] | None = None,
) -> Iterator[Outcome]:
    """Units in this process (``jobs`` = 1) or in ``jobs`` worker processes, each with its
    share of the CPU threads; outcomes as units finish, and ``on_epoch(index, runs)`` (the
    unit's ``index``) after every epoch a unit trains."""
    if jobs <= 1:
        for unit in units:
            report = on_epoch and functools.partial(on_epoch, unit.index)
            yield train_unit(unit, device, data_dir, on_epoch=report)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # workers stopped by an interrupt leave the pool's semaphores to multiprocessing's
    # resource tracker, which cleans them up with a warning: the interrupt's message is
    # the one line to show (the tracker takes its warning options from this process's)
    if TRACKER_QUIET not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_QUIET)
    context = get_context("spawn")
    progress = context.Queue()
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker, initargs=(os.getpid(), progress)
    )
    try:
        pending = {pool.submit(train_unit, unit, device, data_dir, threads): unit for unit in units}
        while pending:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while not progress.empty():
                index, runs = progress.get()
                if on_epoch:
                    on_epoch(index, runs)
            for future in done:
                unit = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as err:  # a worker process died
                    yield Outcome(unit, error=f"BrokenProcessPool: {err}")
    except BaseException:  # interrupted (or closed early): stop the workers now, not after
        for process in list(pool._processes.values()):  # their units (no public API in 3.11)
            process.terminate()
        pool.shutdown(cancel_futures=True)  # returns at once: its workers are gone
        raise
    pool.shutdown()


_PROGRESS = None  # in a pool worker: the queue its units report their epochs to


def _worker(parent: int, progress) -> None:
    """A pool worker leaves interrupts to its parent (which stops it), exits when its
    parent is gone, so that no orphan trains on and writes records, and reports its
    units' epochs to ``progress``."""
    global _PROGRESS
    _PROGRESS = progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_progress(unit: Unit) -> Callable[[int], None] | None:
    """In a pool worker, ``on_epoch`` putting (the unit's index, runs) on its queue."""
    if _PROGRESS is None:
        return None
    return lambda runs: _PROGRESS.put((unit.index, runs))


def check_address(address: str | None) -> None:
    """Raise ConfigError unless ``address`` is None, "auto" or a reachable HOST:PORT."""
    if address in (None, "auto"):
        return
    valid = "HOST:PORT of the cluster's head (what `ray start --head` prints), or auto"
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not a Ray cluster address; valid: {valid}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError(
            f"cannot reach a Ray cluster at --address {address} ({err.strerror or err}); "
            "start one with `ray start --head`, or leave out --address for a local instance"
        ) from None


def probe(address: str) -> None:
    """Raise ConfigError unless a Ray driver can join ``address`` within PROBE_TIMEOUT_S:
    tried in a subprocess, since ``ray.init`` waits without end on a port that accepts
    connections but is not a Ray cluster's."""
    code = "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); ray.shutdown()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, address],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"nothing at --address {address} answered as a Ray cluster within "
            f"{PROBE_TIMEOUT_S:g} s; give the address `ray start --head` printed"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError(f"cannot join the Ray cluster at --address {address}: {last}")


def start_local(ray, attempts: int = LOCAL_START_ATTEMPTS) -> None:
    """Start a local Ray instance without its dashboard (processes this machine's sweep
    does not need). Ray gives a node 30 s to start, which a machine busy with other
    work can exceed: then it tries again, up to ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(include_dashboard=False, logging_level="WARNING")
            return
        except Exception as err:  # Ray raises a bare Exception for this
            ray.shutdown()
            if "timed out during startup" not in str(err) or attempt == attempts:
                raise
            print(f"Ray: the local instance did not start in time (attempt {attempt}); again")


def connect(address: str | None, cpus_per_task: int, gpus_per_task: float) -> bool:
    """Join the cluster at ``address`` (checked by ``check``), or start a local Ray
    instance when it is None, and check that some node can hold a task; True if this
    call connected (and so should disconnect)."""
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        probe(address)
        try:
            ray.init(address=address, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ConfigError(
                f"cannot join the Ray cluster at --address {address}: {err}"
            ) from None
    else:
        start_local(ray)
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    cpus, gpus = (max(n.get(k, 0) for n in nodes) for k in ("CPU", "GPU"))
    print(
        f"Ray: {'cluster at ' + address if address else 'a local instance'}, "
        f"{len(nodes)} node(s), {sum(n.get('CPU', 0) for n in nodes):g} CPUs, "
        f"{sum(n.get('GPU', 0) for n in nodes):g} GPUs"
    )
    if cpus < cpus_per_task or gpus < gpus_per_task:
        ray.shutdown()
        raise ConfigError(
            f"no node of the Ray cluster can run a task of {cpus_per_task} CPUs and "
            f"{gpus_per_task:g} GPU (the largest node has {cpus:g} CPUs, {gpus:g} GPUs); "
            "lower --cpus-per-task, or leave out --runs-per-gpu on a cluster without GPUs"
        )
    return True


def on_ray(
    units: list[Unit],
    data_dir,
    *,
    address: str | None = None,
    cpus_per_task: int | None = None,
    runs_per_gpu: int | None = None,
) -> Iterator[Outcome]:
    """Submit each unit as a Ray task of ``cpus_per_task`` CPUs and, with ``runs_per_gpu``,
    a GPU share of (its runs / runs_per_gpu), at most one GPU. Connects now; the
    iterator yields outcomes as tasks finish, then disconnects."""
    import ray

    cpus = cpus_per_task or 1
    gpus = [min(1.0, len(u.runs) / runs_per_gpu) if runs_per_gpu else 0 for u in units]
    started = connect(address, cpus, max(gpus, default=0))
    task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(train_unit)
    pending = {
        task.options(num_cpus=cpus, num_gpus=g).remote(
            unit, "cuda" if g else "cpu", data_dir, cpus
        ): unit
        for unit, g in zip(units, gpus)
    }
    return _as_finished(pending, disconnect=started)


def _as_finished(pending: dict, disconnect: bool) -> Iterator[Outcome]:
    import ray

    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ref)
            try:
                yield ray.get(ref)
            except ray.exceptions.RayError as err:  # e.g. its worker died MAX_RETRIES + 1 times
                yield Outcome(unit, error=f"{type(err).__name__}: {str(err).splitlines()[0]}")
    except BaseException:  # interrupted: the tasks still running stop too
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if disconnect:
            ray.shutdown()


def check(
    engine: str,
    *,
    address=None,
    cpus_per_task=None,
    runs_per_gpu=None,
    device="auto",
    jobs=1,
    results_dir=None,
) -> None:
    """Raise ConfigError for an engine, or options, that cannot run: an unknown engine,
    Ray options with the local engine, local ones with Ray, an unreachable cluster, or a
    results folder that Ray's nodes cannot share."""
    check_choice("engine", engine, ENGINES)
    if engine == "local":
        ray_only = (
            ("--address", address),
            ("--cpus-per-task", cpus_per_task),
            ("--runs-per-gpu", runs_per_gpu),
        )
        for flag, value in ray_only:
            if value is not None:
                raise ConfigError(f"{flag} is an option of --engine ray (asked: --engine local)")
        return
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--engine ray needs Ray: pip install 'ray>=2.52' (or -e '.[ray]')")
    if jobs != 1:
        raise ConfigError("--jobs is an option of --engine local; Ray places tasks by resources")
    if device != "auto":
        raise ConfigError(
            f"--device {device} with --engine ray: Ray gives tasks GPUs with "
            "--runs-per-gpu N and CPUs otherwise; leave --device at auto"
        )
    if results_dir is not None and not Path(results_dir).is_dir():
        raise ConfigError(
            f"--results {results_dir} does not exist; with --engine ray it must be an existing "
            "folder that every node can reach (a shared filesystem path)"
        )
    check_address(address)
