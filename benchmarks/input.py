"""Section 2, ``input``: images per second delivered to the model, ``Trainer._batch``
(uint8 tensors -> ``inputs.augment`` -> ``inputs.Normalizer``) vs DataLoader + PIL transforms,
interleaved over ``--repeats``. ratio = cl_regimes images/s / DataLoader images/s.
"""

from __future__ import annotations

import functools
import math
import sys

import conventional
import harness
import torch
from timing import row, timeit

from cl_regimes import data, train

NAME = "input"
OPTIONS = {
    "--pipeline-images": dict(type=int, default=8192, help="images per pass (sec. 2)"),
}
SHARED_OPTIONS = ("--repeats", "--workers")


def measure(args, device, details) -> dict:
    workers = conventional.working_workers(tuple(args.workers), device)
    cfg = harness.quick_config(args)
    trainer = train.Trainer([cfg], device)
    ds = data.load(cfg.dataset, None, cfg.image_size)
    n = min(args.pipeline_images, len(ds.train.y))
    x, y = ds.train.x[:n].to(device)[None], ds.train.y[:n].to(device)[None]  # one run: [1, n]
    steps = math.ceil(n / cfg.batch_size)

    def tensors():  # what Trainer.fit does per epoch: a permutation, then _batch per step
        perms = {0: torch.randperm(n, device=device, generator=trainer.generators[0])}
        for step in range(steps):
            yield trainer._batch(x, y, perms, step)

    def pil(w):
        for xb, yb in conventional.loader(
            conventional.torchvision_fashion(True, cfg.image_size),
            torch.arange(n),
            cfg.batch_size,
            True,
            w,
            device,
        ):
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)

    def drain(batches):
        for _ in batches:
            pass

    fns = {"cl_regimes": lambda: drain(tensors())} | {
        f"DataLoader w{w}": functools.partial(lambda w: drain(pil(w)), w) for w in workers
    }
    times = timeit(fns, args.repeats, device)
    for name, t in times.items():
        row("input", f"{name} images/s", [n / s for s in t["runs"]], "img/s")
    conventional.ratio_rows("input", "ratio cl_regimes / DataLoader w{w}", times, workers)
    return {"images": n, "times": times}


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
