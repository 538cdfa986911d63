"""Section 3, ``fisher``: EWC's diagonal Fisher on ``--fisher-samples`` samples,
``methods.ewc.fisher_diagonal`` (torch.func per-sample gradients) vs a loop of single-sample
backward passes of the same quantity (checked to agree), interleaved over ``--repeats``.
ratio = loop time / fisher_diagonal time.
"""

from __future__ import annotations

import sys

import harness
import torch
from timing import ratios, row, timeit

from cl_regimes import train
from cl_regimes.methods.ewc import fisher_diagonal
from cl_regimes.models import flatten

NAME = "fisher"
OPTIONS = {"--fisher-samples": dict(type=int, default=200)}
SHARED_OPTIONS = ("--repeats",)


def fisher_loop(model, params: list, x, y, score) -> torch.Tensor:
    """sum_c p_c (d log p_c / d theta)^2 of a single-run network, averaged over samples,
    one backward pass per class: [1, N] (x [n, 3, S, S], y [n, 1])."""
    model.eval()
    fisher = torch.zeros(1, sum(p.numel() for p in params), device=x.device)
    for xi, yi in zip(x.split(1), y.split(1), strict=True):
        log_p = torch.log_softmax(score(model(xi), yi)[0].float(), -1)[0, 0]
        for c in range(len(log_p)):
            g = torch.autograd.grad(log_p[c], params, retain_graph=c < len(log_p) - 1)
            fisher += log_p[c].detach().exp() * flatten(g, 1).pow(2)
    return fisher / len(x)


def measure(args, device, details) -> dict:
    trainer = train.Trainer([harness.quick_config(args, method="ewc")], device)
    first = [tasks[0] for tasks in trainer.tasks]
    x, y = trainer.method.train_data([[t] for t in first])
    trainer.fit(x, y, trainer.params, 1)  # realistic weights and BN stats
    x, y = trainer.method.runs.sample(first, args.fisher_samples)  # [n, 1, C, S, S], [n, 1]
    x = trainer.inputs(x)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    named = {names[id(p)]: p for p in trainer.params}
    compute = {
        "fisher_diagonal": lambda: fisher_diagonal(trainer.model, named, x, y, trainer.score),
        "loop": lambda: fisher_loop(trainer.model, trainer.params, x, y, trainer.score),
    }
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # CUDA convs in TF32 else
        vmap, loop = compute["fisher_diagonal"](), compute["loop"]()
    diff, scale = (vmap - loop).abs().max().item(), loop.abs().max().item()
    print(
        f"note: Fisher over {len(y)} samples, {loop.shape[1]:,} parameters, float32: "
        f"max |vmap - loop| = {diff:.3g} (max |F| = {scale:.3g})"
    )
    assert diff <= 2e-3 * scale, diff  # summation order and cuDNN algorithms differ
    times = timeit(compute, args.repeats, device)
    for name, t in times.items():
        row("fisher", f"{name} ({len(y)} samples)", t["runs"], "s")
    row(
        "fisher",
        "ratio loop / fisher_diagonal",
        ratios(times["loop"], times["fisher_diagonal"]),
        "x",
    )
    return {"samples": len(y), "max_abs_diff": diff, "max_fisher": scale, "times": times}


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
