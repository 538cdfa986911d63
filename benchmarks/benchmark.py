"""Benchmarks of cl_regimes against a conventional PyTorch pipeline, side by side in one process.

Run from the repository root (sections 1-4: minutes on 2 idle CPU cores; section 6: longer)::

    .venv/bin/python benchmarks/benchmark.py                       # sections 1-4
    .venv/bin/python benchmarks/benchmark.py --sections 2 3 --repeats 5
    .venv/bin/python benchmarks/benchmark.py --train-per-task 200 --run-repeats 1
    .venv/bin/python benchmarks/benchmark.py --set epochs=1 --threads 1
    .venv/bin/python benchmarks/benchmark.py --sections 6 --group-methods finetune ewc
    .venv/bin/python benchmarks/benchmark.py --sections 7                 # local pool vs Ray
    .venv/bin/python benchmarks/benchmark.py --device cuda --sections 3 4 5   # on a GPU
    .venv/bin/python benchmarks/benchmark.py --device cuda --sections 6 --group-sizes 1 4 11 22

It prints one row per measurement (median, min and max over repeats) and writes
everything, with the environment, to benchmarks/results.json (``--output``; rewritten
after every section). Sections 1-4 and 6's cells use the ``quick`` profile
(Fashion-MNIST; sections 1-4 with regime full, method finetune, order 0) with the
``--set`` / ``--train-per-task`` / ``--epochs`` overrides. A single run is a group of
one (K = 1), so its tensors carry a runs dimension of 1. The contenders of a section
run interleaved, repeat by repeat, and every ratio is taken within a repeat before
its median/min/max, so that noise from other processes hits both sides alike.
Ratios read as follows:

1. ``run``: a whole run, ``cl_regimes.train.run`` vs a conventional pipeline
   (torchvision FashionMNIST + PIL transforms + DataLoader with num_workers 0
   and 2, the same subsets, model, Adam + cosine schedule per task, masked loss,
   DataLoader evaluation after each task; no early stopping). ratio = conventional
   wall time / cl_regimes wall time (> 1: cl_regimes is faster). Dataset decoding
   is done once beforehand for both (cl_regimes caches its uint8 tensors per process).
2. ``input``: images per second delivered to the model: ``Trainer._batch`` (uint8
   tensors -> ``data.augment`` -> ``data.Normalizer``) vs DataLoader + PIL transforms.
   ratio = cl_regimes images/s / DataLoader images/s.
3. ``fisher``: EWC's diagonal Fisher on 200 samples, ``methods.ewc.fisher_diagonal``
   (torch.func per-sample gradients) vs a loop of single-sample backward passes
   of the same quantity (checked to agree). ratio = loop time / fisher_diagonal time.
4. ``step``: one ``Trainer._step`` per method, relative to finetune (methods
   carry the state of two finished tasks), and finetune's step per regime,
   relative to ``full``. ratio = step time / reference step time (< 1: cheaper).
5. ``paper`` (CUDA only; ``--sections 5`` or ``--paper-run``): one ``paper``-profile run
   (float32) on Fashion-MNIST: images/s, the model FLOP utilisation and the projected
   wall time of the whole paper grid (7 regimes x 6 methods x 11 orders x 5 datasets)
   trained one run at a time.
6. ``group``: the runs of one cell (the quick profile's 3 orders) trained as one
   grouped network (``train.run_group(configs)``) vs one at a time
   (``train.run_group([c])`` for each), per cell of ``--group-methods`` x
   ``--group-regimes`` and summed over those cells ("sweep"): wall time and training
   images/s. ratio = one-at-a-time time / grouped time (> 1: grouping is faster).
   On CUDA, ``--group-sizes`` also measures images/s of groups of K paper-profile runs
   on Fashion-MNIST (regime full, finetune; orders 0-10, then seed 1) and projects the
   paper grids with ``sweep.estimate`` at the best K.
   Training images = sum over runs and tasks of epochs run x the task's training
   images (joint: the union of the tasks so far); LwF's head warm-up, GEM's memory
   passes, EWC's Fisher samples and evaluation are not counted.

7. ``engines``: a sweep of 12 smoke-profile runs (regimes full and head x every
   method) on the local engine (two worker processes of one thread each) vs a local
   Ray instance (one-CPU tasks), each into a fresh folder, interleaved over
   ``--run-repeats``; the Ray time includes starting and stopping the instance,
   which is also timed alone (``ray.init`` + ``ray.shutdown``). ratio = Ray wall
   time / local wall time (> 1: Ray is slower).

``--rehearse`` runs the CUDA-only parts (5, ``--group-sizes``) on a CPU, with
``--paper-set`` shrinking the paper runs: a check of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torchvision.datasets as tvd
import torchvision.transforms as T
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode

from cl_regimes import data, methods, metrics, models, profiles, regimes, scenarios, sweep, train
from cl_regimes.config import RunConfig
from cl_regimes.methods.ewc import fisher_diagonal
from cl_regimes.models import ResNet18, cross_entropy, flatten

ROWS: list[dict] = []
PEAK_TFLOPS = {"bf16": 989.0, "fp32": 494.7}  # H100/H200 dense; fp32 convs run in TF32


# --- helpers ------------------------------------------------------------------------------------


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fns: dict, repeats: int, device: torch.device) -> dict[str, dict]:
    """Seconds per call of every fn, round-robin over ``repeats``: {name: median/min/max/runs}."""
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            runs[name].append(time.perf_counter() - start)
    return {name: {**summarize(r), "runs": r} for name, r in runs.items()}


def ratios(a: dict, b: dict) -> list[float]:
    """Per-repeat ratios a / b of two timeit results."""
    return [x / y for x, y in zip(a["runs"], b["runs"], strict=True)]


def row(section: str, what: str, values: list[float], unit: str) -> None:
    ROWS.append({"section": section, "what": what, "unit": unit, **summarize(values)})
    print(format_row(ROWS[-1]), flush=True)


def format_row(r: dict) -> str:
    nums = "".join(f"{r[k]:>11.4g}" for k in ("median", "min", "max"))
    return f"{r['section']:<8}{r['what']:<46}{nums}  {r['unit']}"


def quick_config(args, method="finetune", regime="full", order=0) -> RunConfig:
    return profiles.resolve(
        "quick",
        dataset="fashion_mnist",
        regime=regime,
        method=method,
        order=order,
        overrides=args.overrides,
    )


def paper_config(args, order=0, seed=0, extra: dict | None = None) -> RunConfig:
    return profiles.resolve(
        "paper",
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
    train.run_group(small, device)


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


def record_images(records: list[dict]) -> int:
    return sum(
        train_images(RunConfig.from_dict(r["config"]), [t["epochs_run"] for t in r["tasks"]])
        for r in records
    )


@functools.cache
def torchvision_fashion(train_split: bool, size: int):
    """torchvision's FashionMNIST in the library's data dir, with the usual PIL transforms."""
    mean, std = data.MNIST_STATS["mean"], data.MNIST_STATS["std"]
    steps = [T.Resize(size), T.Grayscale(3)]
    if train_split:
        steps.append(T.RandomCrop(size, padding=size // 8))
    transform = T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])
    return tvd.FashionMNIST(str(data.default_data_dir()), train=train_split, transform=transform)


def loader(dataset, indices, batch_size: int, shuffle: bool, workers: int, device) -> DataLoader:
    return DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def task_indices(cfg) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) dataset indices per task of the order, drawn exactly as data.make_blocks
    draws them (block by block, train then test), then put in the run's order."""
    ds = data.load(cfg.dataset, None, cfg.image_size)
    gen = torch.Generator().manual_seed(0)
    blocks = [
        tuple(
            data.subsample(split.y, classes, n, gen)
            for split, n in ((ds.train, cfg.train_per_task), (ds.test, cfg.test_per_task))
        )
        for classes in data.class_blocks(ds.spec.num_classes, ds.spec.num_tasks)
    ]
    return [blocks[b] for b in data.task_orders(ds.spec.num_tasks)[cfg.order]]


def check_indices(cfg) -> None:
    """The conventional pipeline trains and tests on exactly the library's images."""
    ds = data.load(cfg.dataset, None, cfg.image_size)
    blocks = data.make_blocks(ds, cfg.train_per_task, cfg.test_per_task, torch.device("cpu"))
    tasks = data.tasks_in_order(blocks, data.task_orders(ds.spec.num_tasks)[cfg.order])
    for task, (tr, te) in zip(tasks, task_indices(cfg), strict=True):
        assert torch.equal(ds.train.x[tr], task.train.x) and torch.equal(ds.test.x[te], task.test.x)


def conventional_run(cfg, device: torch.device, workers: int) -> list[list[float]]:
    """The textbook pipeline for the run ``cfg``; returns its accuracy matrix R."""
    train.seed_everything(cfg.seed)
    spec = data.spec(cfg.dataset)
    model = ResNet18(spec.num_classes, cfg.width).to(device)  # one run: logits [B, 1, classes]
    params = models.apply_regime(model, cfg.regime)
    bf16 = cfg.precision == "bf16"
    til = scenarios.get("task_incremental", spec)
    indices = task_indices(cfg)
    tests = [
        loader(
            torchvision_fashion(False, cfg.image_size),
            te,
            cfg.eval_batch_size,
            False,
            workers,
            device,
        )
        for _, te in indices
    ]
    R = []
    for tr, _ in indices:
        batches = loader(
            torchvision_fashion(True, cfg.image_size), tr, cfg.batch_size, True, workers, device
        )
        opt = torch.optim.Adam(params, lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr_min)
        for _ in range(cfg.epochs):
            models.set_train_mode(model, cfg.bn_stats, params)
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = cross_entropy(*til.score(model(x), y[:, None], None)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            schedule.step()
        model.eval()
        row_acc = []
        with torch.no_grad():
            for test in tests:
                correct = total = 0
                for x, y in test:
                    x, y = x.to(device), y[:, None].to(device)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = model(x)
                    scored, target = til.score(logits, y, None)
                    correct += (scored.argmax(-1) == target).sum().item()
                    total += len(y)
                row_acc.append(correct / total)
        R.append(row_acc)
    return R


def working_workers(args, device) -> list[int]:
    """The requested num_workers values that DataLoader accepts here."""
    ok = []
    for w in args.workers:
        try:
            next(iter(loader(torchvision_fashion(True, 16), torch.arange(64), 32, True, w, device)))
            ok.append(w)
        except Exception as err:  # e.g. no shared memory in a container
            print(f"note: DataLoader with num_workers={w} fails here ({err!r}); skipped")
    return ok


# --- sections -----------------------------------------------------------------------------------


def section_run(args, device, workers) -> dict:
    cfg = quick_config(args)
    check_indices(cfg)
    records, accs = [], {}
    fns = {"cl_regimes": lambda: records.append(train.run(cfg, device))}
    for w in workers:
        fns[f"DataLoader w{w}"] = lambda w=w: accs.__setitem__(
            w, metrics.acc(conventional_run(cfg, device, w))
        )
    times = timeit(fns, args.run_repeats, device)
    for name, t in times.items():
        row("run", f"{name} wall time", t["runs"], "s")
    for w in workers:
        row(
            "run",
            f"ratio DataLoader w{w} / cl_regimes",
            ratios(times[f"DataLoader w{w}"], times["cl_regimes"]),
            "x",
        )
    accs["cl_regimes"] = metrics.acc(records[-1]["R"])
    print(
        "note: final ACC (sanity; runs differ in randomness): "
        + ", ".join(f"{k}: {v:.3f}" for k, v in accs.items())
    )
    return {"times": times, "acc": {str(k): v for k, v in accs.items()}}


def section_input(args, device, workers) -> dict:
    cfg = quick_config(args)
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
        for xb, yb in loader(
            torchvision_fashion(True, cfg.image_size),
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
    for w in workers:
        row(
            "input",
            f"ratio cl_regimes / DataLoader w{w}",
            ratios(times[f"DataLoader w{w}"], times["cl_regimes"]),
            "x",
        )
    return {"images": n, "times": times}


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


def section_fisher(args, device) -> dict:
    trainer = train.Trainer([quick_config(args, method="ewc")], device)
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
    stats = train.UpdateStats(1, t.device) if cfg.track_updates else None
    hold = train.Hold(list(t.params), 1)
    active = ~hold.stopped
    models.set_train_mode(t.model, cfg.bn_stats, t.params)

    def steps():
        for xb, yb in fixed:
            t._step(xb, yb, t.params, opt, t.method, stats, active, hold)

    steps()  # warm-up: Adam state, allocator, first GEM projection
    return steps, count


def section_step(args, device) -> dict:
    n = args.step_batches
    runners = {
        m: step_runner(quick_config(args, method=m), device, n, True) for m in methods.names()
    }
    for m in ("finetune", "lwf"):  # LwF's penalty needs a second backward pass for the stats
        untracked = dataclasses.replace(quick_config(args, method=m), track_updates=False)
        runners[f"{m}, track_updates off"] = step_runner(untracked, device, n, True)
    by_method = time_steps(runners, "finetune", "", args, device)
    runners = {
        r: step_runner(quick_config(args, regime=r), device, n, False) for r in regimes.REGIMES
    }
    by_regime = time_steps(runners, "full", "finetune under ", args, device)
    return {"batches": n, "methods": by_method, "regimes": by_regime}


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


def section_paper(args, device, step_details: dict | None) -> dict:
    cfg = paper_config(args)
    warm_up([cfg], device)
    record = train.run(cfg, device)
    wall = record["wall_time_s"]
    tasks = sweep.task_sizes(cfg)[0]
    trained = train_images(cfg, [t["epochs_run"] for t in record["tasks"]])
    evaluated = tasks * sum(len(te) for _, te in task_indices(cfg))  # every task after each
    model = ResNet18(data.spec(cfg.dataset).num_classes, cfg.width).to(device)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device))
    forward = counter.get_total_flops() / cfg.batch_size
    flops = 3 * forward * trained + forward * evaluated
    peak = args.peak_tflops or PEAK_TFLOPS[cfg.precision]
    mfu = flops / wall / (peak * 1e12)
    # The grid's work in images trained: tasks x images per task x epochs over every run
    grid_images = sum(
        math.prod(sweep.task_sizes(c)[:2]) * c.epochs
        for c in sweep.plan("paper", overrides=args.paper_overrides)
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


def section_group(args, device) -> dict:
    out = {}
    if args.group_sizes:  # first: on a GPU the most important number, in case of a timeout
        if device.type == "cuda" or args.rehearse:
            out["group_sizes"] = group_sizes(args, device)
        else:
            print("note: --group-sizes measured on CUDA only (--device cuda); skipped")
    orders = profiles.get_profile("quick").orders
    warm_up([quick_config(args, order=o) for o in orders], device)
    cells = {}
    for regime in args.group_regimes:
        for method in args.group_methods:
            cell = cells[f"{regime} {method}"] = time_cell(
                [quick_config(args, method, regime, o) for o in orders], args, device
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
        got["grouped"] = train.run_group(configs, device)

    def one_at_a_time():
        got["one at a time"] = [r for c in configs for r in train.run_group([c], device)]

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
    configs = [paper_config(args, o, s, args.group_overrides) for s in seeds for o in orders]
    measured = {}
    for k in sorted(set(args.group_sizes)):
        group = configs[:k]
        warm_up(group, device)
        sync(device)
        start = time.perf_counter()
        records = train.run_group(group, device)
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
        grid = sweep.plan("paper", datasets=datasets, overrides=args.paper_overrides)
        hours = sweep.estimate(grid, device, best) / 3600
        projected[name] = {"runs": len(grid), "hours": hours, "group_size": min(best, cell)}
        row("group", f"projected {name} grid: {len(grid)} runs, K={min(best, cell)}", [hours], "h")
    return {
        "measured": measured,
        "best": best,
        "projected": projected,
        "config": configs[0].to_dict(),
    }


def section_engines(args) -> dict:
    import tempfile

    import ray

    grid = dict(regimes=["full", "head"], methods=list(methods.names()))

    def swept(engine: str, **options):
        with tempfile.TemporaryDirectory() as folder:
            return sweep.sweep(
                "smoke", results_dir=folder, engine=engine, progress=False, **grid, **options
            )

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


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for what each ratio means.",
    )
    p.add_argument(
        "--sections",
        nargs="+",
        type=int,
        default=[1, 2, 3, 4],
        choices=[1, 2, 3, 4, 5, 6, 7],
        help="5 runs on CUDA only (see --rehearse)",
    )
    p.add_argument("--paper-run", action="store_true", help="same as adding 5 to --sections")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=3, help="repeats of sections 2-4")
    p.add_argument("--run-repeats", type=int, default=2, help="repeats of sections 1 and 6")
    p.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[0, 2],
        help="DataLoader num_workers values to compare",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a quick-profile setting, e.g. train_per_task=200",
    )
    p.add_argument("--train-per-task", type=int, help="shortcut for --set train_per_task=N")
    p.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    p.add_argument("--pipeline-images", type=int, default=8192, help="images per pass (sec. 2)")
    p.add_argument("--fisher-samples", type=int, default=200)
    p.add_argument("--step-batches", type=int, default=8, help="fixed batches timed (sec. 4)")
    p.add_argument(
        "--group-methods",
        nargs="+",
        default=list(methods.names()),
        choices=methods.names(),
        help="methods of section 6's cells (default: all)",
    )
    p.add_argument(
        "--group-regimes",
        nargs="+",
        default=["full", "head"],
        choices=list(regimes.REGIMES),
        help="regimes of section 6's cells",
    )
    p.add_argument(
        "--group-sizes",
        nargs="+",
        type=int,
        default=[],
        metavar="K",
        help="section 6 on CUDA: paper-profile groups of K runs, e.g. 1 4 11 22",
    )
    p.add_argument(
        "--group-set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a paper-profile setting of the --group-sizes runs only",
    )
    p.add_argument(
        "--paper-set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a paper-profile setting of sections 5 and 6 (incl. projections)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="assumed peak for MFU (default by precision: 989 dense bf16, 494.7 "
        "dense TF32, H100/H200; fp32 convolutions run in TF32 on CUDA)",
    )
    p.add_argument(
        "--rehearse",
        action="store_true",
        help="run the CUDA-only parts (5, --group-sizes) on a CPU too, to check "
        "the script with --paper-set shrinking the runs; not for numbers",
    )
    p.add_argument("--output", default=str(Path(__file__).with_name("results.json")))
    args = p.parse_args(argv)
    if any(k < 1 for k in args.group_sizes):
        p.error("--group-sizes must be >= 1")
    if args.paper_run:
        args.sections = [*args.sections, 5]
    extra = [
        f"{k}={v}"
        for k, v in (("train_per_task", args.train_per_task), ("epochs", args.epochs))
        if v is not None
    ]
    args.overrides = profiles.parse_overrides(args.set + extra)
    args.paper_overrides = profiles.parse_overrides(args.paper_set)
    args.group_overrides = profiles.parse_overrides(args.group_set)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = train.resolve_device(args.device)
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "load_average_before": os.getloadavg(),
    }
    print(
        f"torch {env['torch']}, device {env['device_name']}, {env['threads']} threads, "
        f"load average {env['load_average_before'][0]:.2f} on {env['cpu_count']} cores"
    )
    if device.type == "cpu" and env["load_average_before"][0] > 0.5 * env["cpu_count"]:
        print(
            "warning: other processes keep the CPUs busy: timings are noisy, and torch's "
            "OpenMP threads slow down sharply when they compete for cores (try --threads 1)"
        )
    print(f"config: {quick_config(args)}")
    data.load("fashion_mnist", None, quick_config(args).image_size)  # raw files, tensor cache
    workers = working_workers(args, device) if {1, 2} & set(args.sections) else []
    header = f"{'section':<8}{'measurement':<46}{'median':>11}{'min':>11}{'max':>11}  unit"
    print(header + "\n" + "-" * len(header))
    started, details = time.perf_counter(), {}
    out = Path(args.output)
    sections = {
        1: ("run", lambda: section_run(args, device, workers)),
        2: ("input", lambda: section_input(args, device, workers)),
        3: ("fisher", lambda: section_fisher(args, device)),
        4: ("step", lambda: section_step(args, device)),
        5: ("paper", lambda: section_paper(args, device, details.get("step"))),
        6: ("group", lambda: section_group(args, device)),
        7: ("engines", lambda: section_engines(args)),
    }
    for number in sorted(set(args.sections)):
        name, fn = sections[number]
        if number == 5 and device.type != "cuda" and not args.rehearse:
            print(
                "note: section 5 (paper run, MFU, grid projection) runs on CUDA only "
                "(--device cuda); skipped"
            )
            continue
        details[name] = fn()
        if name == "step":
            details["step"]["device"] = str(device)
        write(out, env, args, details)  # after every section: a timeout keeps what was done
    env["load_average_after"] = os.getloadavg()
    env["total_s"] = time.perf_counter() - started
    print("-" * len(header) + "\n" + header)
    print("\n".join(format_row(r) for r in ROWS))
    print(f"total {env['total_s']:.0f} s; load average after {env['load_average_after'][0]:.2f}")
    write(out, env, args, details)
    print(f"written: {out}")


def write(out: Path, env: dict, args, details: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "environment": env,
                "args": vars(args),
                "config": quick_config(args).to_dict(),
                "rows": ROWS,
                "details": details,
            },
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
