"""Section 6, ``group``: the runs of one cell (the quick profile's 3 orders) trained as one
grouped network (``runner.run_group(configs)``) vs one at a time (``runner.run_group([c])``
for each), per cell of ``--group-methods`` x ``--group-regimes`` and summed over those
cells ("sweep"): wall time and training images/s, interleaved over ``--run-repeats``.
ratio = one-at-a-time time / grouped time (> 1: grouping is faster).
On CUDA (or ``--rehearse``), ``--group-sizes`` also measures images/s of groups of K
paper-profile runs on Fashion-MNIST (regime full, finetune; orders 0-10, then seed 1) and
projects the paper grids with ``sweep.estimate`` at the best K.
Training images = sum over runs and tasks of epochs run x the task's training images
(joint: the union of the tasks so far); LwF's head warm-up, GEM's memory passes, EWC's
Fisher samples and evaluation are not counted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import harness
import paper
from timing import ratios, row, summarize, sync, timeit

from cl_regimes import methods, profiles, regimes, runner, sweep
from cl_regimes.config import RunConfig


def positive(text: str) -> int:
    """A group size: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


NAME = "group"
OPTIONS = {
    "--group-methods": dict(
        nargs="+",
        default=list(methods.names()),
        choices=methods.names(),
        help="methods of section 6's cells (default: all)",
    ),
    "--group-regimes": dict(
        nargs="+",
        default=["full", "head"],
        choices=list(regimes.REGIMES),
        help="regimes of section 6's cells",
    ),
    "--group-sizes": dict(
        nargs="+",
        type=positive,
        default=[],
        metavar="K",
        help="section 6 on CUDA: paper-profile groups of K runs, e.g. 1 4 11 22",
    ),
    "--group-set": dict(
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a paper-profile setting of the --group-sizes runs only",
    ),
}
SHARED_OPTIONS = ("--run-repeats", "--paper-set", "--rehearse")


def record_images(records: list[dict]) -> int:
    """Training images of ``records`` together, as ``paper.train_images`` counts them."""
    return sum(
        paper.train_images(RunConfig.from_dict(r["config"]), [t["epochs_run"] for t in r["tasks"]])
        for r in records
    )


def measure(args, device, details) -> dict:
    out = {}
    if args.group_sizes:  # first: on a GPU the most important number, in case of a timeout
        if device.type == "cuda" or args.rehearse:
            out["group_sizes"] = group_sizes(args, device)
        else:
            print("note: --group-sizes measured on CUDA only (--device cuda); skipped")
    orders = profiles.get_profile("quick").orders
    paper.warm_up([harness.quick_config(args, order=o) for o in orders], device)
    cells = {}
    for regime in args.group_regimes:
        for method in args.group_methods:
            cell = cells[f"{regime} {method}"] = time_cell(
                [harness.quick_config(args, method, regime, o) for o in orders], args, device
            )
            group_rows(f"{regime} {method}", len(orders), cell["times"], cell["images"])
    total = {
        name: {"runs": [sum(rs) for rs in zip(*(c["times"][name]["runs"] for c in cells.values()))]}
        for name in ("grouped", "one at a time")
    }
    total = {name: {**summarize(t["runs"]), **t} for name, t in total.items()}
    images = {name: sum(c["images"][name] for c in cells.values()) for name in total}
    group_rows(f"sweep of {len(cells)} cells", len(orders), total, images)
    return {**out, "cells": cells, "sweep": {"images": images, "times": total}}


def time_cell(configs: list[RunConfig], args, device) -> dict:
    """One cell's runs as one group vs one at a time, interleaved over --run-repeats."""
    got: dict[str, list[dict]] = {}

    def grouped():
        got["grouped"] = runner.run_group(configs, device)

    def one_at_a_time():
        got["one at a time"] = [r for c in configs for r in runner.run_group([c], device)]

    times = timeit({"grouped": grouped, "one at a time": one_at_a_time}, args.run_repeats, device)
    return {
        "runs": len(configs),
        "times": times,
        "images": {name: record_images(records) for name, records in got.items()},
    }


def group_rows(what: str, runs: int, times: dict, images: dict) -> None:
    grouped, alone = times["grouped"]["runs"], times["one at a time"]["runs"]
    row("group", f"{what}: K={runs} grouped wall time", grouped, "s")
    row("group", f"{what}: one at a time wall time", alone, "s")
    row(
        "group",
        f"{what}: K={runs} grouped images/s",
        [images["grouped"] / s for s in grouped],
        "img/s",
    )
    row(
        "group",
        f"{what}: one at a time images/s",
        [images["one at a time"] / s for s in alone],
        "img/s",
    )
    row(
        "group",
        f"ratio {what}: one at a time / grouped",
        ratios(times["one at a time"], times["grouped"]),
        "x",
    )


def group_sizes(args, device) -> dict:
    """images/s of K paper-profile runs of the Fashion-MNIST cell (full, finetune) trained
    as one group, per K in --group-sizes; the paper grids projected at the best K."""
    orders = range(profiles.NUM_ORDERS)
    seeds = range(math.ceil(max(args.group_sizes) / len(orders)))
    configs = [paper.paper_config(args, o, s, args.group_overrides) for s in seeds for o in orders]
    measured = {}
    for k in sorted(set(args.group_sizes)):
        group = configs[:k]
        paper.warm_up(group, device)
        sync(device)
        start = time.perf_counter()
        records = runner.run_group(group, device)
        sync(device)
        wall = time.perf_counter() - start
        images = record_images(records)
        measured[k] = {"wall_s": wall, "images": images, "images_per_s": images / wall}
        row("group", f"paper fashion_mnist, K={k} grouped wall time", [wall], "s")
        row("group", f"paper fashion_mnist, K={k} grouped images/s", [images / wall], "img/s")
    best = max(measured, key=lambda k: measured[k]["images_per_s"])
    cell = len(orders) * len(profiles.get_profile("paper").seeds)  # sweep.groups caps at it
    print(
        f"note: projections of the paper grid below: sweep.estimate (calibrated steps, every "
        f"regime timed as full: an upper bound) with groups of the best K={best}"
        + (f", capped at a cell's {cell} runs" if best > cell else "")
    )
    projected = {}
    for name, datasets in (("Fashion-MNIST", ["fashion_mnist"]), ("whole", None)):
        grid = profiles.get_profile("paper").grid(datasets=datasets, overrides=args.paper_overrides)
        hours = sweep.estimate(grid, device, best) / 3600
        projected[name] = {"runs": len(grid), "hours": hours, "group_size": min(best, cell)}
        row("group", f"projected {name} grid: {len(grid)} runs, K={min(best, cell)}", [hours], "h")
    return {
        "measured": measured,
        "best": best,
        "projected": projected,
        "config": configs[0].to_dict(),
    }


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
