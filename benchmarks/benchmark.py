"""Benchmarks of cl_regimes against a conventional PyTorch pipeline, side by side in one process.

Run from the repository root (about 3 minutes on 2 idle CPU cores)::

    .venv/bin/python benchmarks/benchmark.py                       # sections 1-4
    .venv/bin/python benchmarks/benchmark.py --sections 2 3 --repeats 5
    .venv/bin/python benchmarks/benchmark.py --train-per-task 200 --run-repeats 1
    .venv/bin/python benchmarks/benchmark.py --set epochs=1 --threads 1
    .venv/bin/python benchmarks/benchmark.py --device cuda --paper-run   # on a GPU

It prints one row per measurement (median, min and max over repeats) and writes
everything, with the environment, to benchmarks/results.json (``--output``).
All sections use the ``quick`` profile (Fashion-MNIST, regime full, method
finetune, order 0) with the ``--set`` / ``--train-per-task`` / ``--epochs``
overrides. The contenders of a section run interleaved, repeat by repeat, and
every ratio is taken within a repeat before its median/min/max, so that noise
from other processes hits both sides alike. Ratios read as follows:

1. ``run``: a whole run, ``cl_regimes.train.run`` vs a conventional pipeline
   (torchvision FashionMNIST + PIL transforms + DataLoader with num_workers 0
   and 2, the same subsets, model, Adam + cosine schedule per task, masked loss,
   DataLoader evaluation after each task). ratio = conventional wall time /
   cl_regimes wall time (> 1: cl_regimes is faster). Dataset decoding is done
   once beforehand for both (cl_regimes caches its uint8 tensors per process).
2. ``input``: images per second delivered to the model: uint8 tensors ->
   ``data.augment`` -> ``data.Normalizer`` vs DataLoader + PIL transforms.
   ratio = cl_regimes images/s / DataLoader images/s.
3. ``fisher``: EWC's diagonal Fisher on 200 samples, ``methods.ewc.fisher_diagonal``
   (torch.func per-sample gradients) vs a loop of single-sample backward passes
   of the same quantity (checked to agree). ratio = loop time / fisher_diagonal time.
4. ``step``: one ``Trainer._step`` per method, relative to finetune (methods
   carry the state of two finished tasks), and finetune's step per regime,
   relative to ``full``. ratio = step time / reference step time (< 1: cheaper).
5. ``paper`` (CUDA only, ``--paper-run``): one ``paper``-profile run on
   Fashion-MNIST: images/s, the projected wall time of the whole paper grid
   (7 regimes x 6 methods x 11 orders x 5 datasets) and the model FLOP utilisation.
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

from cl_regimes import data, methods, metrics, profiles, regimes, sweep, train
from cl_regimes.config import RunConfig
from cl_regimes.methods.ewc import fisher_diagonal
from cl_regimes.models import ResNet18, masked_cross_entropy, task_logits

ROWS: list[dict] = []


# --- helpers ------------------------------------------------------------------------------------

def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def timeit(fns: dict, repeats: int, device: torch.device) -> dict[str, dict]:
    """Seconds per call of every fn, round-robin over ``repeats``: {name: median/min/max/runs}."""
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
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


def quick_config(args, method="finetune", regime="full") -> RunConfig:
    return profiles.resolve("quick", dataset="fashion_mnist", regime=regime, method=method,
                            order=0, overrides=args.overrides)


@functools.cache
def torchvision_fashion(train_split: bool, size: int):
    """torchvision's FashionMNIST in the library's data dir, with the usual PIL transforms."""
    mean, std = data.MNIST_STATS
    steps = [T.Resize(size), T.Grayscale(3)]
    if train_split:
        steps.append(T.RandomCrop(size, padding=size // 8))
    transform = T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])
    return tvd.FashionMNIST(str(data.default_data_dir()), train=train_split, transform=transform)


def loader(dataset, indices, batch_size: int, shuffle: bool, workers: int, device) -> DataLoader:
    return DataLoader(Subset(dataset, indices.tolist()), batch_size, shuffle=shuffle,
                      num_workers=workers, pin_memory=device.type == "cuda")


def task_indices(cfg) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) dataset indices per task of the order, drawn exactly as data.make_tasks."""
    ds = data.load(cfg.dataset, None, cfg.image_size)
    gen = torch.Generator().manual_seed(0)
    blocks = data.class_blocks(ds.num_classes, ds.num_tasks)
    return [tuple(data.subsample(split.y, blocks[b], n, gen)
                  for split, n in ((ds.train, cfg.train_per_task), (ds.test, cfg.test_per_task)))
            for b in data.task_orders(ds.num_tasks)[cfg.order]]


def check_indices(cfg) -> None:
    """The conventional pipeline trains and tests on exactly the library's images."""
    ds = data.load(cfg.dataset, None, cfg.image_size)
    order = data.task_orders(ds.num_tasks)[cfg.order]
    tasks = data.make_tasks(ds, order, cfg.train_per_task, cfg.test_per_task, torch.device("cpu"))
    for task, (tr, te) in zip(tasks, task_indices(cfg), strict=True):
        assert torch.equal(ds.train.x[tr], task.train.x) and torch.equal(ds.test.x[te], task.test.x)


def conventional_run(cfg, device: torch.device, workers: int) -> list[list[float]]:
    """The textbook pipeline for the run ``cfg``; returns its accuracy matrix R."""
    train.seed_everything(cfg.seed)
    model = ResNet18(10, cfg.width).to(device)
    params = regimes.apply(model, cfg.regime)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    cpt = data.load(cfg.dataset, None, cfg.image_size).classes_per_task
    indices = task_indices(cfg)
    tests = [loader(torchvision_fashion(False, cfg.image_size), te, cfg.eval_batch_size, False,
                    workers, device) for _, te in indices]
    R = []
    for tr, _ in indices:
        batches = loader(torchvision_fashion(True, cfg.image_size), tr, cfg.batch_size, True,
                         workers, device)
        opt = torch.optim.Adam(params, lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr_min)
        for _ in range(cfg.epochs):
            model.train()
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = masked_cross_entropy(model(x), y, cpt)
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
                    x, y = x.to(device), y.to(device)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = model(x)
                    correct += (task_logits(logits, y, cpt).argmax(1) == y % cpt).sum().item()
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
            w, metrics.acc(conventional_run(cfg, device, w)))
    times = timeit(fns, args.run_repeats, device)
    for name, t in times.items():
        row("run", f"{name} wall time", t["runs"], "s")
    for w in workers:
        row("run", f"ratio DataLoader w{w} / cl_regimes", ratios(times[f"DataLoader w{w}"],
                                                                times["cl_regimes"]), "x")
    accs["cl_regimes"] = metrics.acc(records[-1]["R"])
    print("note: final ACC (sanity; runs differ in randomness): "
          + ", ".join(f"{k}: {v:.3f}" for k, v in accs.items()))
    return {"times": times, "acc": {str(k): v for k, v in accs.items()}}


def section_input(args, device, workers) -> dict:
    cfg = quick_config(args)
    ds = data.load(cfg.dataset, None, cfg.image_size)
    n = min(args.pipeline_images, len(ds.train.y))
    x, y = ds.train.x[:n].to(device), ds.train.y[:n].to(device)
    normalize = data.Normalizer(ds, device)
    gen = torch.Generator(device).manual_seed(0)

    def tensors():  # what Trainer.fit does per epoch
        for idx in torch.randperm(n, device=device, generator=gen).split(cfg.batch_size):
            yield normalize(data.augment(x[idx], ds.flip, gen)), y[idx]

    def pil(w):
        for xb, yb in loader(torchvision_fashion(True, cfg.image_size), torch.arange(n),
                             cfg.batch_size, True, w, device):
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)

    def drain(batches):
        for _ in batches:
            pass

    fns = {"cl_regimes": lambda: drain(tensors())} | {
        f"DataLoader w{w}": functools.partial(lambda w: drain(pil(w)), w) for w in workers}
    times = timeit(fns, args.repeats, device)
    for name, t in times.items():
        row("input", f"{name} images/s", [n / s for s in t["runs"]], "img/s")
    for w in workers:
        row("input", f"ratio cl_regimes / DataLoader w{w}",
            ratios(times[f"DataLoader w{w}"], times["cl_regimes"]), "x")
    return {"images": n, "times": times}


def fisher_loop(model, params: list, x, y, classes_per_task: int) -> torch.Tensor:
    """sum_c p_c (d log p_c / d theta)^2, averaged over samples, one backward pass per class."""
    model.eval()
    fisher = torch.zeros(sum(p.numel() for p in params), device=x.device)
    for xi, yi in zip(x.split(1), y.split(1), strict=True):
        log_p = torch.log_softmax(task_logits(model(xi), yi, classes_per_task).float(), 1)[0]
        for c in range(classes_per_task):
            g = torch.autograd.grad(log_p[c], params, retain_graph=c < classes_per_task - 1)
            fisher += log_p[c].detach().exp() * methods.flatten(g).pow(2)
    return fisher / len(x)


def section_fisher(args, device) -> dict:
    trainer = train.Trainer(quick_config(args, method="ewc"), device)
    task = trainer.tasks[0]
    trainer.fit(task.train.x, task.train.y, trainer.params, 1)  # realistic weights and BN stats
    x, y = trainer.method.sample(task, args.fisher_samples)
    x = trainer.inputs(x)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    named = {names[id(p)]: p for p in trainer.params}
    cpt = trainer.classes_per_task
    compute = {"fisher_diagonal": lambda: fisher_diagonal(trainer.model, named, x, y, cpt),
               "loop": lambda: fisher_loop(trainer.model, trainer.params, x, y, cpt)}
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # CUDA convs in TF32 else
        vmap, loop = compute["fisher_diagonal"](), compute["loop"]()
    diff, scale = (vmap - loop).abs().max().item(), loop.abs().max().item()
    print(f"note: Fisher over {len(y)} samples, {len(loop):,} parameters, float32: "
          f"max |vmap - loop| = {diff:.3g} (max |F| = {scale:.3g})")
    assert diff <= 2e-3 * scale, diff  # summation order and cuDNN algorithms differ
    times = timeit(compute, args.repeats, device)
    for name, t in times.items():
        row("fisher", f"{name} ({len(y)} samples)", t["runs"], "s")
    row("fisher", "ratio loop / fisher_diagonal", ratios(times["loop"],
                                                         times["fisher_diagonal"]), "x")
    return {"samples": len(y), "max_abs_diff": diff, "max_fisher": scale, "times": times}


def step_runner(cfg, device, batches: int, history: bool):
    """A function running ``Trainer._step`` on fixed batches of the third task; with ``history``,
    tasks 0 and 1 are trained first (one epoch each, through the method's hooks as
    ``Trainer.run`` does) so that the method carries state."""
    t = train.Trainer(cfg, device)
    if history:
        for task in t.tasks[:2]:
            t.method.before_task(task)
            t.fit(*t.method.train_data(task), t.params, 1, t.method)
            t.method.after_task(task)
    t.method.before_task(t.tasks[2])
    x, y = t.method.train_data(t.tasks[2])
    gen = torch.Generator(t.device).manual_seed(1)
    picks = torch.randperm(len(y), device=t.device, generator=gen).split(cfg.batch_size)[:batches]
    fixed = [(t.inputs(data.augment(x[idx], t.flip, gen)), y[idx]) for idx in picks]
    opt = torch.optim.Adam(t.params, lr=cfg.lr, foreach=True)
    stats = metrics.UpdateStats(t.device) if cfg.track_updates else None
    regimes.set_train_mode(t.model, cfg.bn_stats, t.params)

    def steps():
        for xb, yb in fixed:
            t._step(xb, yb, t.params, opt, t.method, stats)

    steps()  # warm-up: Adam state, allocator, first GEM projection
    return steps


def section_step(args, device) -> dict:
    n = args.step_batches
    fns = {m: step_runner(quick_config(args, method=m), device, n, True)
           for m in profiles.METHOD_NAMES}
    for m in ("finetune", "lwf"):  # LwF's penalty needs a second backward pass for the stats
        untracked = dataclasses.replace(quick_config(args, method=m), track_updates=False)
        fns[f"{m}, track_updates off"] = step_runner(untracked, device, n, True)
    by_method = time_steps(fns, "finetune", "", args, device, n)
    fns = {r: step_runner(quick_config(args, regime=r), device, n, False)
           for r in profiles.REGIME_NAMES}
    by_regime = time_steps(fns, "full", "finetune under ", args, device, n)
    return {"batches": n, "methods": by_method, "regimes": by_regime}


def time_steps(fns: dict, reference: str, prefix: str, args, device, n: int) -> dict:
    """Time step runners of ``n`` batches; report ms per step and each ratio to ``reference``."""
    times = timeit(fns, args.repeats, device)
    for name, t in times.items():
        row("step", f"{prefix}{name} ms/step", [s / n * 1e3 for s in t["runs"]], "ms")
    for name, t in times.items():
        if name != reference:
            row("step", f"ratio {name} / {reference}", ratios(t, times[reference]), "x")
    return times


def section_paper(args, device, step_details: dict | None) -> dict:
    cfg = profiles.resolve("paper", dataset="fashion_mnist", regime="full", method="finetune",
                           order=0, overrides=args.paper_overrides)
    warm = dataclasses.replace(cfg, train_per_task=1024, test_per_task=1024, epochs=1)
    train.run(warm, device)  # CUDA context, cuDNN and allocator warm-up
    record = train.run(cfg, device)
    wall = record["wall_time_s"]
    indices = task_indices(cfg)
    trained = sum(len(tr) * t["epochs_run"]
                  for (tr, _), t in zip(indices, record["tasks"], strict=True))
    evaluated = len(indices) * sum(len(te) for _, te in indices)
    model = ResNet18(10, cfg.width).to(device)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device))
    forward = counter.get_total_flops() / cfg.batch_size
    flops = 3 * forward * trained + forward * evaluated
    mfu = flops / wall / (args.peak_tflops * 1e12)
    # The grid's work in images trained: tasks x images per task x epochs over every run
    grid_images = sum(math.prod(sweep.task_sizes(c)[:2]) * c.epochs for c in sweep.plan("paper"))
    method_factor = 1.0
    if step_details and str(device) == step_details.get("device"):
        m = step_details["methods"]
        method_factor = statistics.mean(m[k]["median"] / m["finetune"]["median"]
                                        for k in profiles.METHOD_NAMES)
    grid = grid_images / (trained / wall) * method_factor
    row("paper", "paper run (fashion_mnist, finetune) wall", [wall], "s")
    row("paper", "training images/s (incl. evaluation)", [trained / wall], "img/s")
    row("paper", f"model FLOP utilisation (peak {args.peak_tflops:g} TFLOPS)", [mfu * 100], "%")
    row("paper", f"projected paper grid (methods x{method_factor:.2f})", [grid / 3600], "h")
    return {"config": cfg.to_dict(), "wall_s": wall, "trained_images": trained,
            "forward_flops_per_image": forward, "mfu": mfu, "method_factor": method_factor,
            "projected_grid_h": grid / 3600, "acc": metrics.acc(record["R"])}


# --- main ---------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring for what each ratio means.")
    p.add_argument("--sections", nargs="+", type=int, default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    p.add_argument("--paper-run", action="store_true",
                   help="section 5: one paper-profile run on CUDA, MFU and grid projection")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=3, help="repeats of sections 2-4")
    p.add_argument("--run-repeats", type=int, default=2, help="repeats of section 1")
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2],
                   help="DataLoader num_workers values to compare")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a quick-profile setting, e.g. train_per_task=200")
    p.add_argument("--train-per-task", type=int, help="shortcut for --set train_per_task=N")
    p.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    p.add_argument("--pipeline-images", type=int, default=8192, help="images per pass (sec. 2)")
    p.add_argument("--fisher-samples", type=int, default=200)
    p.add_argument("--step-batches", type=int, default=8, help="fixed batches timed (sec. 4)")
    p.add_argument("--paper-set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a paper-profile setting of section 5")
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="assumed peak for MFU (989: dense bf16, H100/H200)")
    p.add_argument("--output", default=str(Path(__file__).with_name("results.json")))
    args = p.parse_args(argv)
    extra = [f"{k}={v}" for k, v in (("train_per_task", args.train_per_task),
                                     ("epochs", args.epochs)) if v is not None]
    args.overrides = profiles.parse_overrides(args.set + extra)
    args.paper_overrides = profiles.parse_overrides(args.paper_set)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = train.resolve_device(args.device)
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "load_average_before": os.getloadavg()}
    print(f"torch {env['torch']}, device {env['device_name']}, {env['threads']} threads, "
          f"load average {env['load_average_before'][0]:.2f} on {env['cpu_count']} cores")
    if device.type == "cpu" and env["load_average_before"][0] > 0.5 * env["cpu_count"]:
        print("warning: other processes keep the CPUs busy: timings are noisy, and torch's "
              "OpenMP threads slow down sharply when they compete for cores (try --threads 1)")
    print(f"config: {quick_config(args)}")
    data.load("fashion_mnist", None, quick_config(args).image_size)  # raw files, tensor cache
    workers = working_workers(args, device) if {1, 2} & set(args.sections) else []
    header = f"{'section':<8}{'measurement':<46}{'median':>11}{'min':>11}{'max':>11}  unit"
    print(header + "\n" + "-" * len(header))
    started, details = time.perf_counter(), {}
    sections = {1: ("run", lambda: section_run(args, device, workers)),
                2: ("input", lambda: section_input(args, device, workers)),
                3: ("fisher", lambda: section_fisher(args, device)),
                4: ("step", lambda: section_step(args, device))}
    for number in sorted(set(args.sections)):
        name, fn = sections[number]
        details[name] = fn()
    if "step" in details:
        details["step"]["device"] = str(device)
    if not torch.cuda.is_available():
        print("note: section 5 (paper run, MFU, grid projection) skipped: no CUDA device")
    elif not args.paper_run:
        print("note: section 5 (paper run on CUDA) not asked for: add --paper-run")
    else:
        details["paper"] = section_paper(args, torch.device("cuda"), details.get("step"))
    env["load_average_after"] = os.getloadavg()
    env["total_s"] = time.perf_counter() - started
    print("-" * len(header) + "\n" + header)
    print("\n".join(format_row(r) for r in ROWS))
    print(f"total {env['total_s']:.0f} s; load average after {env['load_average_after'][0]:.2f}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "args": vars(args),
                               "config": quick_config(args).to_dict(), "rows": ROWS,
                               "details": details}, indent=1, default=str))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
