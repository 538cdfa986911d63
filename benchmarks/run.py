"""Section 1, ``run``: a whole run, ``cl_regimes.train.run`` vs a conventional pipeline
(torchvision FashionMNIST + PIL transforms + DataLoader with num_workers 0 and 2, the same
subsets, model, Adam + cosine schedule per task, masked loss, DataLoader evaluation after
each task; no early stopping), interleaved over ``--run-repeats``. ratio = conventional
wall time / cl_regimes wall time (> 1: cl_regimes is faster). Dataset decoding is done
once beforehand for both (cl_regimes caches its uint8 tensors per process).
"""

from __future__ import annotations

import sys

import conventional
import harness
from timing import row, timeit

from cl_regimes import metrics, runner

NAME = "run"
OPTIONS: dict = {}
SHARED_OPTIONS = ("--run-repeats", "--workers")


def measure(args, device, details) -> dict:
    workers = conventional.working_workers(tuple(args.workers), device)
    cfg = harness.quick_config(args)
    conventional.check_indices(cfg)
    records, accs = [], {}
    fns = {"cl_regimes": lambda: records.append(runner.run(cfg, device))}
    for w in workers:
        fns[f"DataLoader w{w}"] = lambda w=w: accs.__setitem__(
            w, metrics.acc(conventional.run(cfg, device, w))
        )
    times = timeit(fns, args.run_repeats, device)
    for name, t in times.items():
        row("run", f"{name} wall time", t["runs"], "s")
    conventional.ratio_rows("run", "ratio DataLoader w{w} / cl_regimes", times, workers)
    accs["cl_regimes"] = metrics.acc(records[-1]["R"])
    print(
        "note: final ACC (sanity; runs differ in randomness): "
        + ", ".join(f"{k}: {v:.3f}" for k, v in accs.items())
    )
    return {"times": times, "acc": {str(k): v for k, v in accs.items()}}


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
