"""Section 7, ``engines``: a sweep of 12 smoke-profile runs (regimes full and head x every
method) on the local engine (two worker processes of one thread each) vs a local Ray
instance (one-CPU tasks), each into a fresh folder, interleaved over ``--run-repeats``; the
Ray time includes starting and stopping the instance, which is also timed alone
(``ray.init`` + ``ray.shutdown``). ratio = Ray wall time / local wall time (> 1: Ray is
slower).
"""

from __future__ import annotations

import sys
import tempfile

import harness
import torch
from timing import ratios, row, timeit

from cl_regimes import methods, profiles, sweep

NAME = "engines"
OPTIONS: dict = {}
SHARED_OPTIONS = ("--run-repeats",)


def measure(args, device, details) -> dict:
    import ray  # an optional extra: only this section needs it

    smoke = profiles.get_profile("smoke")
    grid = smoke.grid(regimes=["full", "head"], methods=list(methods.names()))

    def swept(engine: str, **options):
        with tempfile.TemporaryDirectory() as folder:
            return sweep.sweep(grid, results_dir=folder, engine=engine, progress=False, **options)

    def start_and_stop():
        ray.init(logging_level="ERROR")
        ray.shutdown()

    runs = len(swept("local", device="cpu", jobs=2).trained)  # warm: imports, data, caches
    times = timeit(
        {
            "local": lambda: swept("local", device="cpu", jobs=2),
            "ray": lambda: swept("ray"),
            "ray start-up": start_and_stop,
        },
        args.run_repeats,
        torch.device("cpu"),
    )
    row("engines", f"{runs}-run smoke sweep, local pool (2 workers)", times["local"]["runs"], "s")
    row("engines", f"{runs}-run smoke sweep, local Ray instance", times["ray"]["runs"], "s")
    row("engines", "Ray start-up: ray.init + ray.shutdown", times["ray start-up"]["runs"], "s")
    row("engines", "ratio Ray / local pool", ratios(times["ray"], times["local"]), "x")
    return {"runs": runs, "times": times}


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
