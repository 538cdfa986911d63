"""Sweeps: every run of a profile's grid (or a part of it), resuming from finished records."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cl_regimes import profiles, results, train
from cl_regimes.config import RunConfig


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
