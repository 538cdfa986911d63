"""Section 5, ``paper`` (CUDA only, or ``--rehearse``): one ``paper``-profile run (float32)
on Fashion-MNIST: images/s, the model FLOP utilisation and the projected wall time of the
whole paper grid (7 regimes x 6 methods x 11 orders x 5 datasets) trained one run at a
time. Also the paper-profile work that section 6's groups share: configs, a warm-up group
and the count of training images.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys

import conventional
import harness
import torch
from timing import row
from torch.utils.flop_counter import FlopCounterMode

from cl_regimes import data, methods, metrics, profiles, runner, sweep
from cl_regimes.config import RunConfig
from cl_regimes.models import ResNet18

NAME = "paper"
PEAK_TFLOPS = {"bf16": 989.0, "fp32": 494.7}  # H100/H200 dense; fp32 convs run in TF32
OPTIONS = {
    "--peak-tflops": dict(
        type=float,
        default=None,
        help="assumed peak for MFU (default by precision: 989 dense bf16, 494.7 "
        "dense TF32, H100/H200; fp32 convolutions run in TF32 on CUDA)",
    ),
}
SHARED_OPTIONS = ("--paper-set", "--rehearse")


def paper_config(args, order=0, seed=0, extra: dict | None = None) -> RunConfig:
    """The paper profile's Fashion-MNIST run (full, finetune) with --paper-set and ``extra``."""
    return profiles.get_profile("paper").config(
        dataset="fashion_mnist",
        regime="full",
        method="finetune",
        order=order,
        seed=seed,
        overrides={**args.paper_overrides, **(extra or {})},
    )


def warm_up(configs: list[RunConfig], device) -> None:
    """A short group of the same shape first: CUDA context, cuDNN algorithms, allocator."""
    small = [
        dataclasses.replace(
            c,
            train_per_task=min(c.train_per_task or 1024, 1024),
            test_per_task=min(c.test_per_task or 1024, 1024),
            epochs=1,
        )
        for c in configs
    ]
    runner.run_group(small, device)


def train_images(config: RunConfig, epochs_run: list[int]) -> int:
    """Training images a run went through: per task, its epochs x its training images
    (joint: the union of the tasks so far). LwF's head warm-up, GEM's memory passes,
    EWC's Fisher samples and evaluation are not counted."""
    cpt = data.spec(config.dataset).classes_per_task
    _, per_task, _ = sweep.task_sizes(config)
    if config.train_per_task:  # data.subsample keeps per_task // cpt images of each class
        per_task = per_task // cpt * cpt
    return sum(
        e * per_task * (i + 1 if config.method == "joint" else 1) for i, e in enumerate(epochs_run)
    )


def measure(args, device, details) -> dict | None:
    if device.type != "cuda" and not args.rehearse:
        print(
            "note: section 5 (paper run, MFU, grid projection) runs on CUDA only "
            "(--device cuda); skipped"
        )
        return None
    step_details = details.get("step")
    cfg = paper_config(args)
    warm_up([cfg], device)
    record = runner.run(cfg, device)
    wall = record["wall_time_s"]
    tasks = sweep.task_sizes(cfg)[0]
    trained = train_images(cfg, [t["epochs_run"] for t in record["tasks"]])
    # every task is evaluated after each
    evaluated = tasks * sum(len(te) for _, te in conventional.task_indices(cfg))
    model = ResNet18(data.spec(cfg.dataset).num_classes, cfg.width).to(device)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device))
    forward = counter.get_total_flops() / cfg.batch_size
    flops = 3 * forward * trained + forward * evaluated
    peak = args.peak_tflops or PEAK_TFLOPS[cfg.precision]
    mfu = flops / wall / (peak * 1e12)
    # The grid's work in images trained: tasks x images per task x epochs over every run
    grid_images = sum(
        math.prod(sweep.task_sizes(r.config)[:2]) * r.config.epochs
        for r in profiles.get_profile("paper").grid(overrides=args.paper_overrides)
    )
    method_factor = 1.0
    if step_details and str(device) == step_details.get("device"):
        m = step_details["methods"]
        method_factor = statistics.mean(
            m[k]["median"] / m["finetune"]["median"] for k in methods.names()
        )
    grid = grid_images / (trained / wall) * method_factor
    row("paper", f"paper run (fashion_mnist, finetune, {cfg.precision}) wall", [wall], "s")
    row("paper", "training images/s (incl. evaluation)", [trained / wall], "img/s")
    row("paper", f"model FLOP utilisation (peak {peak:g} TFLOPS)", [mfu * 100], "%")
    row("paper", f"projected grid, 1 run at a time (x{method_factor:.2f})", [grid / 3600], "h")
    return {
        "config": cfg.to_dict(),
        "wall_s": wall,
        "trained_images": trained,
        "forward_flops_per_image": forward,
        "peak_tflops": peak,
        "mfu": mfu,
        "method_factor": method_factor,
        "projected_grid_one_at_a_time_h": grid / 3600,
        "acc": metrics.acc(record["R"]),
    }


if __name__ == "__main__":
    harness.main(sys.modules[__name__])
