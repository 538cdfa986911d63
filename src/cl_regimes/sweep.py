"""Sweeps: the runs of a profile's grid (``Profile.grid``), grouped, resuming from records.

The runs of one cell (same dataset, regime, method and settings; different
orders or seeds) train as groups of one grouped network (``train.Trainer``);
only unfinished runs are trained, each saved as its own record. The groups run
on an engine (``engines``): this machine, or a Ray cluster.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from cl_regimes import checkpoints, data, engines, models, provenance, results, scenarios
from cl_regimes.config import RunConfig
from cl_regimes.models import ResNet18, apply_regime, cross_entropy
from cl_regimes.results import Run

ACTIVATION_FLOATS = 25  # floats kept for the backward pass per sample, per width x pixel


def cells(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by cell: runs that differ only in order and seed."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        key = {k: v for k, v in run.config.to_dict().items() if k not in ("order", "seed")}
        out.setdefault(repr(key), []).append(run)
    return list(out.values())


def max_group_size(config: RunConfig, device: torch.device) -> int | None:
    """How many runs fit in one grouped network: on a GPU, half its free memory over a
    rough per-run activation estimate; None (no limit) on a CPU."""
    if device.type != "cuda":
        return None
    per_run = 4 * ACTIVATION_FLOATS * config.width * config.image_size**2 * config.batch_size
    return max(1, int(torch.cuda.mem_get_info(device)[0] / 2 // per_run))


def groups(runs: list[Run], group_size: int | None, device) -> list[list[Run]]:
    """The sweep's work units: each cell's runs in groups of ``group_size`` (None: as many
    as fit, which is all of a cell's runs on a CPU), the largest first, so that workers
    training several at once finish close together."""
    device = models.resolve_device(device)
    units = []
    for cell in cells(runs):
        size = group_size or max_group_size(cell[0].config, device) or len(cell)
        units += [cell[i : i + size] for i in range(0, len(cell), size)]
    return sorted(units, key=lambda u: -len(u) * sum(steps(u[0].config)) * pixel_work(u[0].config))


def pending(
    runs: list[Run], results_dir, force: bool = False
) -> tuple[list[Path], list[tuple[Run, Path]]]:
    """Every run's record path (in the order of ``runs``), and the runs to train with
    theirs: the unfinished ones (or every one, with ``force``)."""
    paths = [run.path(results_dir) for run in runs]
    sources = {m: provenance.method_source(m) for m in {r.config.method for r in runs}}
    return paths, [
        (r, p)
        for r, p in zip(runs, paths)
        if force or not results.is_done(p, r.config, sources[r.config.method])
    ]


@dataclass
class Summary:
    """What a sweep did: the grid's record paths (in plan order), the runs it trained,
    those already done, and those that failed, with their reasons."""

    paths: list[Path]
    trained: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (record path, reason)

    def __str__(self) -> str:
        lines = [
            f"runs in the grid: {len(self.paths)}; trained {len(self.trained)}, "
            f"already done {len(self.skipped)}, failed {len(self.failed)}"
        ]
        lines += [f"  failed: {path}: {reason}" for path, reason in self.failed]
        if self.trained:
            table = self.trained_table().to_string(index=False, float_format="{:.3f}".format)
            lines += ["trained:", table]
        return "\n".join(lines)

    def trained_table(self) -> pd.DataFrame:
        """Per cell of the runs it trained: how many, their mean ACC and forgetting, and the
        wall seconds per run."""
        runs = results.load(self.trained).assign(variant=lambda t: t.variant.replace("", "-"))
        cell = runs.groupby(["dataset", "regime", "method", "variant"], observed=True)
        return cell.agg(
            runs=("acc", "size"),
            acc=("acc", "mean"),
            forgetting=("forgetting", "mean"),
            wall_s=("wall_time_s", "mean"),
        ).reset_index()


class SweepFailed(RuntimeError):
    """Some runs of a sweep failed (the others finished); ``summary`` says which and why."""

    def __init__(self, summary: Summary):
        super().__init__(str(summary))
        self.summary = summary


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by an interrupt: the runs it trained and saved, those not finished,
    and the checkpoints that keep some of their finished tasks."""

    def __init__(self, trained: int, unfinished: int, checkpoints: int = 0):
        self.trained, self.unfinished, self.checkpoints = trained, unfinished, checkpoints
        kept = (
            f" (their cells' finished tasks are kept in {checkpoints} checkpoint(s))"
            if checkpoints
            else ""
        )
        super().__init__(
            f"interrupted: {trained} run(s) trained and saved, {unfinished} not finished{kept}; "
            "rerun the same command to resume"
        )


def sweep(
    runs: list[Run],
    *,
    results_dir="results",
    device="auto",
    data_dir=None,
    engine: str = "local",
    jobs: int = 1,
    group_size: int | None = None,
    address: str | None = None,
    cpus_per_task: int | None = None,
    runs_per_gpu: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> Summary:
    """Run every unfinished one of ``runs`` (e.g. ``Profile.grid``'s) on ``engine``; raise
    SweepFailed, after every other run finished, if any failed.

    Finished runs (a record with the same configuration) are skipped, so an
    interrupted sweep resumes where it stopped (a cell from its last finished task:
    ``checkpoints``); ``force`` recomputes them and replaces their records. With
    ``engine="local"``, ``jobs > 1``
    trains that many groups at once in worker processes, sharing the CPU threads;
    with ``engine="ray"`` every group is a Ray task (``engines.on_ray``) on the
    cluster at ``address`` (None: a local Ray instance), and ``results_dir`` must be
    a folder every node can reach.
    """
    engines.check(
        engine,
        address=address,
        cpus_per_task=cpus_per_task,
        runs_per_gpu=runs_per_gpu,
        device=device,
        jobs=jobs,
        results_dir=results_dir if engine == "ray" else None,
    )
    results.check_writable(results_dir)
    results_dir = Path(results_dir).resolve()  # the same path on every worker and node
    data_dir = data_dir and Path(data_dir).resolve()
    paths, todo = pending(runs, results_dir, force)
    where = {repr(r.config): p for r, p in todo}
    unfinished = set(where.values())
    summary = Summary(paths, skipped=[p for p in paths if p not in unfinished])
    # on Ray the driver's device says nothing of the workers': groups fill a GPU share
    units = groups(
        [r for r, _ in todo], group_size or runs_per_gpu, "cpu" if engine == "ray" else device
    )
    work = [
        engines.Unit(u, [where[repr(r.config)] for r in u], force, i) for i, u in enumerate(units)
    ]
    # progress in run-epochs (tasks x epochs of each run; fewer when runs stop early, so a
    # unit that ends tops its share up)
    planned = [run_epochs(u.runs) for u in work]
    reported: list[int | None] = [0] * len(work)

    def on_epoch(index: int, runs: int) -> None:
        if reported[index] is not None:  # None: its unit ended (a report that came late)
            reported[index] += runs
            bar.update(runs)

    if engine == "ray":
        outcomes = engines.on_ray(
            work,
            data_dir,
            address=address,
            cpus_per_task=cpus_per_task,
            runs_per_gpu=runs_per_gpu,
        )
    else:
        outcomes = engines.local(work, device, data_dir, jobs, on_epoch)
    bar = tqdm(  # once Ray is joined: a refusal to join is then the only line printed
        total=run_epochs(runs),
        initial=run_epochs([r for r in runs if repr(r.config) not in where]),
        desc=f"{'/'.join(dict.fromkeys(str(r.profile) for r in runs))} sweep ({engine})",
        unit="run-epoch",
        disable=not progress,
    )
    try:
        with bar:
            for outcome in outcomes:
                summary.trained += outcome.written
                summary.skipped += outcome.skipped
                if outcome.error:
                    done = set(outcome.written) | set(outcome.skipped)
                    failed = [(p, outcome.error) for p in outcome.unit.paths if p not in done]
                    summary.failed += failed
                    bar.set_postfix_str(f"{len(summary.failed)} failed")
                index = outcome.unit.index
                bar.update(max(0, planned[index] - reported[index]))
                reported[index] = None
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (cli): workers stopped by the engine
        outcomes.close()
        unfinished = len(todo) - len(summary.trained) - len(summary.failed)
        kept = checkpoints.kept({p.parent for _, p in todo})
        raise SweepInterrupted(len(summary.trained), unfinished, kept) from None
    if progress:
        print(summary)
    if summary.failed:
        raise SweepFailed(summary)
    return summary


def run_epochs(runs: list[Run]) -> int:
    """Tasks x epochs of every one of ``runs``: the most epochs they can train."""
    return sum(task_sizes(r.config)[0] * r.config.epochs for r in runs)


def task_sizes(config: RunConfig) -> tuple[int, int, int]:
    """(tasks, training images per task, test images per task) of a run."""
    spec, scenario = data.spec(config.dataset), scenarios.of(config)
    per = 1 if scenario.seeded_tasks else spec.num_tasks  # tasks of every class: every image
    n_train, n_test = (n // per for n in spec.sizes)
    return scenario.num_tasks, config.train_per_task or n_train, config.test_per_task or n_test


ESTIMATE = (  # measured against a real sweep: README.md, "Time"
    "a lower bound at this machine's present load: each regime's training and evaluation "
    "steps timed now; data loading, warm-up and methods' extra passes are not in it"
)
CALIBRATION_S = 0.5  # seconds of timed steps per calibration (at least 3 steps)


def step_seconds(config: RunConfig, runs: int, device: torch.device) -> float:
    """Median seconds of a training step of ``runs`` grouped runs under the run's regime
    (its trainable parameters only), on synthetic data of the run's shape."""
    classes = data.spec(config.dataset).num_classes
    model = ResNet18.stack([ResNet18(classes, config.width) for _ in range(runs)]).to(device)
    opt = torch.optim.Adam(apply_regime(model, config.regime), lr=config.lr)
    x = torch.randn(
        config.batch_size, 3 * runs, config.image_size, config.image_size, device=device
    )
    y = torch.randint(0, classes, (config.batch_size, runs), device=device)
    times = []
    while len(times) < 5 or (len(times) < 100 and sum(times[2:]) < CALIBRATION_S):
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=config.precision == "bf16"):
            loss = cross_entropy(model(x), y).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    timed = sorted(times[2:])  # the first two warm up
    return timed[len(timed) // 2]


def estimate(runs: list[Run], device="auto", group_size: int | None = None) -> float:
    """Projected seconds for ``runs``, grouped as a sweep groups them, from a short
    calibration of grouped steps of each regime on ``device`` and each run's ``steps``
    (what it leaves out: ``ESTIMATE``)."""
    device = models.resolve_device(device)
    calibrated: dict[tuple, float] = {}
    total = 0.0
    for unit in groups(runs, group_size, device):
        c = unit[0].config
        key = (c.dataset, c.regime, c.width, c.image_size, c.batch_size, c.precision, len(unit))
        if key not in calibrated:
            calibrated[key] = step_seconds(c, len(unit), device)
        total += sum(steps(c)) * calibrated[key]
    return total


def steps(config: RunConfig) -> tuple[float, float]:
    """(training steps, evaluation in steps) of one run, for ``estimate`` and for ordering
    a sweep's units: tasks x epochs x batches, scaled for the methods that do more work
    per task (joint trains on all seen tasks; LwF adds a teacher forward and the head
    warm-up; GEM a memory pass per past task; DER a forward per earlier extractor); an
    evaluation batch costs a third of a step."""
    tasks, n_train, n_test = task_sizes(config)
    p = config.method_params
    factor = {
        "joint": (tasks + 1) / 2,
        "lwf": 4 / 3 + p.get("warmup_epochs", 0) / max(config.epochs, 1) / 3,
        "gem": 1 + (tasks - 1) / 2 * p.get("memories_per_task", 0) / config.batch_size,
        "der": 1 + (tasks - 1) / 6,  # forwards through every earlier extractor too
    }.get(config.method, 1.0)
    training = tasks * config.epochs * math.ceil(n_train / config.batch_size) * factor
    grown = (tasks + 1) / 2 if config.method == "der" else 1  # DER: every extractor tested
    return training, tasks * tasks * math.ceil(n_test / config.eval_batch_size) / 3 * grown


def pixel_work(config: RunConfig) -> int:
    """A step's size in pixels x channels, to compare steps of different profiles or
    datasets when ordering work (not a time)."""
    return config.batch_size * config.width * config.image_size**2
