"""Sweeps: every run of a profile's grid (or a part of it), resuming from finished records."""

from __future__ import annotations

import itertools
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cl_regimes import data, profiles, results, train
from cl_regimes.config import RunConfig
from cl_regimes.models import ResNet18, masked_cross_entropy


def plan(profile: str, *, datasets=None, regimes=None, methods=None, orders=None, seeds=None,
         bn_stats=None, overrides: dict | None = None) -> list[RunConfig]:
    """The configurations of a sweep: the profile's grid, restricted where asked."""
    prof = profiles.get_profile(profile)
    grid = itertools.product(datasets or prof.datasets, bn_stats or prof.bn_stats,
                             regimes or prof.regimes, methods or prof.methods,
                             orders if orders is not None else prof.orders, seeds or prof.seeds)
    return [profiles.resolve(profile, dataset=d, regime=r, method=m, order=o, seed=s,
                             bn_stats=b, overrides=overrides)
            for d, b, r, m, o, s in grid]


def _run_and_save(config: RunConfig, path: Path, profile: str, device, data_dir) -> Path:
    return results.save(train.run(config, device, data_dir, profile=profile), path)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def sweep(profile: str, *, results_dir="results", device="auto", data_dir=None, jobs: int = 1,
          progress: bool = True, **grid) -> list[Path]:
    """Run every unfinished run of the grid; return the paths of all its records.

    Finished runs (a record with the same configuration) are skipped, so an
    interrupted sweep resumes where it stopped. ``jobs > 1`` runs that many at
    once in worker processes, the CPU threads shared among them.
    """
    configs = plan(profile, **grid)
    paths = [results.record_path(results_dir, profile, c) for c in configs]
    todo = [(c, p) for c, p in zip(configs, paths) if not results.is_done(p, c)]
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc=f"{profile} sweep",
               disable=not progress)
    with bar:
        if jobs <= 1:
            for config, path in todo:
                bar.set_postfix_str(f"{config.regime} {config.method} order {config.order}")
                _run_and_save(config, path, profile, device, data_dir)
                bar.update()
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(threads,)) as pool:
                futures = [pool.submit(_run_and_save, c, p, profile, device, data_dir)
                           for c, p in todo]
                for future in futures:
                    future.result()
                    bar.update()
    return paths


def task_sizes(config: RunConfig) -> tuple[int, int, int]:
    """(tasks, training images per task, test images per task) of a run."""
    tasks = 10 if config.dataset == "cifar100" else 5
    n_train, n_test = (n // tasks for n in data.SIZES[config.dataset])
    return tasks, config.train_per_task or n_train, config.test_per_task or n_test


def _step_seconds(config: RunConfig, device: torch.device) -> float:
    """Median seconds of a full-network training step on synthetic data of the run's shape."""
    steps = 10 if device.type == "cuda" else 3
    model = ResNet18(100 if config.dataset == "cifar100" else 10, config.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    x = torch.randn(config.batch_size, 3, config.image_size, config.image_size, device=device)
    y = torch.randint(0, 10, (config.batch_size,), device=device)
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            loss = masked_cross_entropy(model(x), y, 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times[2:])[steps // 2]


def estimate(configs: list[RunConfig], device="auto") -> float:
    """Projected seconds for ``configs`` from a short calibration on ``device``.

    Steps per run are counted from the profile (tasks x epochs x batches), scaled
    for the methods that do more work per task (joint trains on all seen tasks;
    LwF adds a teacher forward and the head warm-up; GEM a memory pass per past
    task), plus evaluation at a third of a step's cost per batch. Every regime is
    timed as ``full``: shallow regimes skip part of the backward pass, so this is
    an upper bound.
    """
    device = train.resolve_device(device)
    calibrated: dict[tuple, float] = {}
    total = 0.0
    for c in configs:
        key = (c.dataset == "cifar100", c.width, c.image_size, c.batch_size)
        if key not in calibrated:
            calibrated[key] = _step_seconds(c, device)
        tasks, n_train, n_test = task_sizes(c)
        p = c.method_params
        factor = {"joint": (tasks + 1) / 2,
                  "lwf": 4 / 3 + p.get("warmup_epochs", 0) / max(c.epochs, 1) / 3,
                  "gem": 1 + (tasks - 1) / 2 * p.get("memories_per_task", 0) / c.batch_size
                  }.get(c.method, 1.0)
        steps = tasks * c.epochs * math.ceil(n_train / c.batch_size) * factor
        evals = tasks * tasks * math.ceil(n_test / c.eval_batch_size) / 3
        total += (steps + evals) * calibrated[key]
    return total
