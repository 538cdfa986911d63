"""Runs of one cell trained in groups of equal task sizes, each group a ``Trainer``,
and their records: provenance, checkpoints after every task, in the order asked for."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from cl_regimes import checkpoints, data, profiles, provenance, results, scenarios
from cl_regimes.config import RunConfig
from cl_regimes.train import Trainer


def groups_of_equal_task_sizes(configs: list[RunConfig], data_dir=None) -> list[list[RunConfig]]:
    """Split runs of one cell into groups whose tasks have equal training-set sizes at every
    position (always one group when tasks are subsampled or classes are balanced), and
    one seed where the scenario's tasks depend on it (every task then holds every class)."""
    cfg, groups = configs[0], {}
    if scenarios.KINDS[cfg.scenario].seeded_tasks:
        for c in configs:
            groups.setdefault(c.seed, []).append(c)
        return list(groups.values())
    ds = data.load(cfg.dataset, data_dir, cfg.image_size)
    held = (cfg.validation_per_task or 0) // ds.spec.classes_per_task  # validation images
    counts = [max(n - held, 0) for n in torch.bincount(ds.train.y, minlength=ds.spec.num_classes)]
    per_class = cfg.train_per_task and cfg.train_per_task // ds.spec.classes_per_task
    blocks = data.class_blocks(ds.spec.num_classes, ds.spec.num_tasks)
    size = [sum(min(counts[c], per_class or counts[c]) for c in block) for block in blocks]
    orders = data.task_orders(ds.spec.num_tasks)
    for c in configs:
        groups.setdefault(tuple(size[b] for b in orders[c.order]), []).append(c)
    return list(groups.values())


def run_group(
    configs: list[RunConfig],
    device="auto",
    data_dir=None,
    progress: bool = False,
    profile: str | None = None,
    checkpoint_dir=None,
    on_group: Callable[[list[RunConfig], list[dict]], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[dict]:
    """Seeded continual-learning runs of one cell, trained in groups -> their records, in
    the order of ``configs``. ``on_group(group, records)`` runs as each group finishes
    (to save its records); ``on_epoch`` is ``Trainer``'s. With ``checkpoint_dir``, each
    group checkpoints there after every task and resumes from its checkpoint, removed
    after ``on_group``."""
    records = {}
    source = provenance.method_source(configs[0].method)
    for group in groups_of_equal_task_sizes(configs, data_dir):
        started = time.perf_counter()
        trainer = Trainer(group, device, data_dir, progress, on_epoch=on_epoch)
        checkpoint = checkpoint_dir and checkpoints.path_for(checkpoint_dir, group, source)
        outcomes = trainer.run(checkpoint)
        seconds = (time.perf_counter() - started) / len(group)
        env = {
            **provenance.environment(trainer.device, group[0].precision, len(group)),
            "group": [[c.order, c.seed] for c in group],
            "images": provenance.images_digest(trainer.blocks),
            **provenance.initial_weights(group[0]),
        }
        for slot, (config, outcome) in enumerate(zip(group, outcomes)):
            record = results.assemble(
                config,
                outcome,
                {**env, "slot": slot},
                seconds,
                profile,
                profiles.variant(profile, config) if profile else {},
            )
            records[repr(config)] = {**record, "method_source": source} if source else record
        if on_group:
            on_group(group, [records[repr(c)] for c in group])
        if checkpoint:
            checkpoint.unlink(missing_ok=True)
    return [records[repr(c)] for c in configs]


def run(
    config: RunConfig,
    device="auto",
    data_dir=None,
    progress: bool = False,
    profile: str | None = None,
) -> dict:
    """One seeded continual-learning run -> its record (a JSON-ready dict)."""
    return run_group([config], device, data_dir, progress, profile)[0]
