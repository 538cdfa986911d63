"""Section 4, ``step``: one ``Trainer._step`` per method, relative to finetune (methods
carry the state of two finished tasks), and finetune's step per regime, relative to
``full``, on ``--step-batches`` fixed batches, interleaved over ``--repeats``.
ratio = step time / reference step time (< 1: cheaper). Section 5 scales its projection by
the methods' step costs when this section ran before it on the same device.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import harness
import torch
from timing import ratios, row, summarize, timeit

from cl_regimes import methods, models, regimes, train
from cl_regimes.steps import Hold, UpdateStats

NAME = "step"
OPTIONS = {
    "--step-batches": dict(type=int, default=8, help="fixed batches timed (sec. 4)"),
}
SHARED_OPTIONS = ("--repeats",)


def step_runner(cfg, device, batches: int, history: bool):
    """(a function running ``Trainer._step`` on fixed batches of the third task, the number
    of batches); with ``history``, tasks 0 and 1 are trained first (one epoch each,
    through the method's hooks as ``Trainer.run`` does) so that the method carries state."""
    t = train.Trainer([cfg], device)
    for position in (0, 1) if history else ():
        current = [tasks[position] for tasks in t.tasks]
        t.method.before_task(current)
        t.fit(
            *t.method.train_data([tasks[: position + 1] for tasks in t.tasks]),
            t.params,
            1,
            t.method,
        )
        t.method.after_task(current)
    t.method.before_task([tasks[2] for tasks in t.tasks])
    x, y = t.method.train_data([tasks[:3] for tasks in t.tasks])  # [1, n, C, S, S], [1, n]
    perms = {0: torch.randperm(y.shape[1], device=t.device, generator=t.generators[0])}
    count = min(batches, math.ceil(y.shape[1] / cfg.batch_size))
    fixed = [t._batch(x, y, perms, step) for step in range(count)]  # augmented as fit does
    opt = torch.optim.Adam(t.params, lr=cfg.lr, foreach=True)
    stats = UpdateStats(1, t.device) if cfg.track_updates else None
    hold = Hold(list(t.params), 1)
    active = ~hold.stopped
    models.set_train_mode(t.model, cfg.bn_stats, t.params)

    def steps():
        for xb, yb in fixed:
            t._step(xb, yb, t.params, opt, t.method, stats, active, hold)

    steps()  # warm-up: Adam state, allocator, first GEM projection
    return steps, count


def measure(args, device, details) -> dict:
    n = args.step_batches
    runners = {
        m: step_runner(harness.quick_config(args, method=m), device, n, True)
        for m in methods.names()
    }
    for m in ("finetune", "lwf"):  # LwF's penalty needs a second backward pass for the stats
        untracked = dataclasses.replace(harness.quick_config(args, method=m), track_updates=False)
        runners[f"{m}, track_updates off"] = step_runner(untracked, device, n, True)
    by_method = time_steps(runners, "finetune", "", args, device)
    runners = {
        r: step_runner(harness.quick_config(args, regime=r), device, n, False)
        for r in regimes.REGIMES
    }
    by_regime = time_steps(runners, "full", "finetune under ", args, device)
    return {"batches": n, "methods": by_method, "regimes": by_regime, "device": str(device)}


def time_steps(runners: dict, reference: str, prefix: str, args, device) -> dict:
    """Time step runners (fn, batches); report ms per step and each ratio to ``reference``."""
    timed = timeit({name: fn for name, (fn, _) in runners.items()}, args.repeats, device)
    per_step = {name: [s / runners[name][1] for s in t["runs"]] for name, t in timed.items()}
    times = {name: {**summarize(runs), "runs": runs} for name, runs in per_step.items()}
    for name, t in times.items():
        row("step", f"{prefix}{name} ms/step", [s * 1e3 for s in t["runs"]], "ms")
    for name, t in times.items():
        if name != reference:
            row("step", f"ratio {name} / {reference}", ratios(t, times[reference]), "x")
    return times


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
