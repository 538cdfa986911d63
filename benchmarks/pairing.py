"""Pairing the two sides: each (method, order, seed) trains once per side, the two back to
back and the side that goes first alternating, so that load from other processes hits
both alike. A rerun of the same work on the same CPU keeps the pairs ``--output`` holds and
runs only those it lacks; the summary is rewritten after every pair.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch
from agreement import seed_of, summarise

WORK = (
    "regime",
    "image_size",
    "train_per_task",
    "test_per_task",
    "epochs",
    "batch_size",
    "gem_memories",
    "threads",
    "original_workers",
    "deterministic",
)


def earlier_runs(args) -> list[dict]:
    """The runs ``--output`` already holds of the same work on this CPU (a rerun with
    more orders or methods adds to them)."""
    if not args.output.exists():
        return []
    earlier = json.loads(args.output.read_text())
    same = all(earlier["settings"].get(k) == getattr(args, k) for k in WORK)
    return earlier["runs"] if same and earlier["machine"]["cpu"] == cpu_model() else []


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def missing(args, runs: list[dict]) -> list[tuple[str, int, int]]:
    """The (method, order, seed) of the command that ``runs`` lack."""
    done = {(r["method"], r["order"], seed_of(r)) for r in runs}
    return [
        (m, o, s)
        for m in args.methods
        for s in args.seeds
        for o in args.orders
        if (m, o, s) not in done
    ]


def back_to_back(sides: dict, swap: bool) -> dict:
    """Each side's result with its wall seconds, the sides run one after the other in name
    order (reversed with ``swap``: alternate it from pair to pair)."""
    results = {}
    for side in sorted(sides, reverse=swap):
        started = time.perf_counter()
        results[side] = sides[side]()
        results[side]["seconds"] = time.perf_counter() - started
    return results


def summary(args, commit: str, runs: list[dict]) -> dict:
    """What ``--output`` holds: the settings, the original's commit, the machine, every
    pair and the agreement per method."""
    return {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "original_commit": commit,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        },
        "runs": runs,
        "methods": summarise(runs, args.margin),
    }
