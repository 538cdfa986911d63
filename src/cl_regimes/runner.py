"""Runs of one cell trained in groups of equal task sizes, each group a ``Trainer``,
and their records: provenance, checkpoints after every task, in the order asked for."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from cl_regimes import checkpoints, data, provenance, results, scenarios
from cl_regimes.config import RunConfig
from cl_regimes.results import Run
from cl_regimes.train import Trainer


def groups_of_equal_task_sizes(runs: list[Run], data_dir=None) -> list[list[Run]]:
    """Split runs of one cell into groups whose tasks have equal training-set sizes at every
    position (always one group when tasks are subsampled or classes are balanced), and
    one seed where the scenario's tasks depend on it (every task then holds every class)."""
    cfg, groups = runs[0].config, {}
    if scenarios.KINDS[cfg.scenario].seeded_tasks:
        for r in runs:
            groups.setdefault(r.config.seed, []).append(r)
        return list(groups.values())
    ds = data.load(cfg.dataset, data_dir, cfg.image_size)
    held = (cfg.validation_per_task or 0) // ds.spec.classes_per_task  # validation images
    counts = [max(n - held, 0) for n in torch.bincount(ds.train.y, minlength=ds.spec.num_classes)]
    per_class = cfg.train_per_task and cfg.train_per_task // ds.spec.classes_per_task
    blocks = data.class_blocks(ds.spec.num_classes, ds.spec.num_tasks)
    size = [sum(min(counts[c], per_class or counts[c]) for c in block) for block in blocks]
    orders = data.task_orders(ds.spec.num_tasks)
    for r in runs:
        groups.setdefault(tuple(size[b] for b in orders[r.config.order]), []).append(r)
    return list(groups.values())


def run_group(
    runs: list[Run | RunConfig],
    device="auto",
    data_dir=None,
    progress: bool = False,
    checkpoint_dir=None,
    on_group: Callable[[list[Run], list[dict]], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[dict]:
    """Seeded continual-learning runs of one cell, trained in groups -> their records, in
    the order of ``runs`` (a bare configuration is a run outside any profile, its record
    without a profile or variant). ``on_group(group, records)`` runs as each group finishes
    (to save its records); ``on_epoch`` is ``Trainer``'s. With ``checkpoint_dir``, each
    group checkpoints there after every task and resumes from its checkpoint, removed
    after ``on_group``."""
    runs = [r if isinstance(r, Run) else Run(r) for r in runs]
    records = {}
    source = provenance.method_source(runs[0].config.method)
    for group in groups_of_equal_task_sizes(runs, data_dir):
        configs = [r.config for r in group]
        started = time.perf_counter()
        trainer = Trainer(configs, device, data_dir, progress, on_epoch=on_epoch)
        checkpoint = checkpoint_dir and checkpoints.Checkpoint(
            checkpoint_dir, tuple(configs), source
        )
        outcomes = trainer.run(checkpoint)
        seconds = (time.perf_counter() - started) / len(group)
        env = {
            **provenance.environment(trainer.device, configs[0].precision, len(configs)),
            "group": [[c.order, c.seed] for c in configs],
            "images": provenance.images_digest(trainer.blocks),
            **provenance.initial_weights(configs[0]),
        }
        for slot, (run, outcome) in enumerate(zip(group, outcomes)):
            record = results.assemble(run, outcome, {**env, "slot": slot}, seconds)
            records[repr(run.config)] = {**record, "method_source": source} if source else record
        if on_group:
            on_group(group, [records[repr(r.config)] for r in group])
        if checkpoint:
            checkpoint.remove()
    return [records[repr(r.config)] for r in runs]


def run(one: Run | RunConfig, device="auto", data_dir=None, progress: bool = False) -> dict:
    """One seeded continual-learning run -> its record (a JSON-ready dict)."""
    return run_group([one], device, data_dir, progress)[0]
