"""Side by side with Mammoth: the replay methods of this library against their reference code.

Mammoth (github.com/aimagelab/mammoth, by DER++'s authors) is not part of this repository
and needs packages this project does not; `fetch` or clone it, and make an environment
that sees this project's venv and adds Mammoth's own requirements:

    git clone https://github.com/aimagelab/mammoth /path/to/mammoth
    python3 -m venv /tmp/mammoth-env
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \
        > /tmp/mammoth-env/lib/python3.11/site-packages/project.pth
    /tmp/mammoth-env/bin/pip install kornia timm==0.9.8 onedrivedownloader ftfy regex \
        pyyaml open_clip_torch
    /tmp/mammoth-env/bin/python benchmarks/compare_mammoth.py /path/to/mammoth [--deterministic]

Each (method, order, seed) trains once per side, on the same images and task order, from
the same initial weights (our run's own, copied into Mammoth's network), with the same
optimiser (Adam and the cosine schedule of each task, restarted at each task) and the
same task-incremental loss: Mammoth's ``observe`` of ``er``, ``agem_r``, ``derpp`` and
``er_ace`` runs unchanged, given the library's task-masked cross-entropy as its ``loss``
(Mammoth trains class-incrementally and masks at test only) and the library's network.
Its ``Buffer``, reservoir sampling and replay draws are its own (numpy's generator,
seeded per run). Its ``ContinualModel`` is built without a Mammoth dataset (its
``datasets`` package, which loads every dataset and downloads CLIP weights at import,
is replaced by an empty module) and with its optimiser replaced by ours; ER-ACE runs
without its cosine classifier (the study's linear head on both sides).

``--deterministic`` takes the randomness out: no crops, one step per epoch on the whole
task, a memory holding every image offered and replayed whole, float64. The two codes
must then agree to rounding unless they compute different things. Otherwise the
sides' ACC and forgetting are compared over orders, paired, by two one-sided tests
within a margin fixed before the run (``agreement.py``, as ``compare_original.py``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from agreement import summarise, table
from pairing import cpu_model

from cl_regimes import data, inputs, metrics, profiles, train

MODELS = {  # ours -> Mammoth's module and class
    "er": ("models.er", "Er"),
    "agem": ("models.agem_r", "AGemr"),
    "derpp": ("models.derpp", "Derpp"),
    "er_ace": ("models.er_ace", "ErACE"),
}


def import_mammoth(root: Path) -> dict:
    """Mammoth's four model classes and its Buffer, importable without its datasets."""
    sys.path.insert(0, str(root))
    sys.argv = sys.argv[:1]  # Mammoth parses sys.argv at import in places
    empty = types.ModuleType("datasets")  # its real one imports (and downloads) every dataset
    empty.__path__ = [str(root / "datasets")]
    empty.get_dataset = None
    empty.get_dataset_names = empty.get_dataset_config_names = lambda *a, **k: []
    sys.modules["datasets"] = empty
    continual = importlib.import_module("models.utils.continual_model")
    continual.ContinualModel.get_optimizer = lambda self: None  # ours is set per task
    return {m: getattr(importlib.import_module(mod), cls) for m, (mod, cls) in MODELS.items()}


def config_of(args, method: str, order: int, seed: int):
    overrides = {
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_per_task": args.train_per_task,
        "test_per_task": args.test_per_task,
        f"{method}.memory_size": args.memory,
        f"{method}.replay_batch_size": args.replay_batch,
    }
    return profiles.get_profile("quick").config(
        dataset="fashion_mnist",
        regime=args.regime,
        method=method,
        order=order,
        seed=seed,
        overrides=overrides,
    )


def scored(logits, labels, classes_per_task: int):
    """Task-incremental scoring: each sample's logits over its task's classes (contiguous
    blocks) and the position of its label among them."""
    first = labels - labels % classes_per_task
    index = first[:, None] + torch.arange(classes_per_task, device=labels.device)
    return logits.gather(1, index), labels % classes_per_task


def task_loss(classes_per_task: int):
    """The library's task-incremental loss, for Mammoth's ``loss``."""
    return lambda logits, labels: F.cross_entropy(*scored(logits, labels, classes_per_task))


class Single(torch.nn.Module):
    """The library's grouped network of one run as Mammoth's backbone: raw pixel values
    [B, C, S, S] (0-255, as Mammoth's buffer keeps them) -> logits [B, classes]."""

    def __init__(self, model, normalise):
        super().__init__()
        self.model, self.normalise = model, normalise

    def forward(self, x):
        return self.model(self.normalise(x[:, None]))[:, 0]


def run_mammoth(cls, args, config, tasks, initial, seed, deterministic) -> dict:
    """One run of Mammoth's method on the library's tasks (uint8 images)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    spec = data.spec(config.dataset)
    net = Single(initial, inputs.Normalizer(spec, torch.device("cpu")))
    namespace = argparse.Namespace(
        buffer_size=args.memory,
        minibatch_size=args.replay_batch,
        label_perc=1,
        alpha=config.method_params.get("alpha"),
        beta=config.method_params.get("beta"),
        task_free=False,
        use_custom_classifier=False,
    )
    dataset = types.SimpleNamespace(
        N_CLASSES=spec.num_classes,
        N_TASKS=len(tasks),
        SETTING="task-il",
        N_CLASSES_PER_TASK=spec.classes_per_task,
    )
    model = cls(net, task_loss(spec.classes_per_task), namespace, None, dataset=dataset)
    model.device = torch.device("cpu")
    model.buffer.device = "cpu"
    gen = torch.Generator().manual_seed(seed)

    def crop(image):  # Mammoth applies a buffer's transform image by image
        return crop_batch(image[None], spec.flip, gen)[0]

    model.transform = None if deterministic else crop
    dtype = torch.get_default_dtype()
    R = []
    for position, task in enumerate(tasks):
        model._current_task = position
        model.opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            model.opt, config.epochs, eta_min=config.lr_min
        )
        x, y = task.train.x, task.train.y
        for _ in range(config.epochs):
            net.train()
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), config.batch_size):
                pick = order[start : start + config.batch_size]
                raw = x[pick]
                seen = raw if deterministic else crop_batch(raw, spec.flip, gen)
                model.observe(seen.to(dtype), y[pick], raw.to(dtype))
            schedule.step()
        net.eval()
        with torch.no_grad():
            R.append([accuracy(net, t, spec.classes_per_task) for t in tasks])
    return {"acc": metrics.acc(R), "forgetting": metrics.forgetting(R), "R": truncated(R)}


def crop_batch(images, flip: bool, gen: torch.Generator):
    """The library's random crops (and flips) of a uint8 batch [N, C, S, S], drawn from ``gen``."""
    draws = inputs.draw_augmentation(len(images), images.shape[-1], flip, gen)
    return inputs.augment(images, *draws)


def accuracy(net, task, classes_per_task) -> float:
    logits = net(task.test.x.to(torch.get_default_dtype()))
    logits, target = scored(logits, task.test.y, classes_per_task)
    return float((logits.argmax(1) == target).double().mean())


def truncated(R) -> list:
    return [list(row[: i + 1]) for i, row in enumerate(R)]


def run_ours(trainer, deterministic) -> dict:
    trainer.scenario.augment = not deterministic
    R = trainer.run()[0]["R"]
    return {"acc": metrics.acc(R), "forgetting": metrics.forgetting(R), "R": truncated(R)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mammoth", type=Path, help="a clone of Mammoth")
    parser.add_argument("--methods", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--regime", default="full")
    parser.add_argument("--orders", nargs="+", type=int, default=list(range(6)))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--train-per-task", type=int, default=500)
    parser.add_argument("--test-per-task", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--memory", type=int, default=160)
    parser.add_argument("--replay-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--margin", type=float, default=0.05, help="stated before the run")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--mammoth-commit", help="the commit of the clone, for the record")
    args = parser.parse_args(argv)
    if args.deterministic:  # whole-task steps; every image offered held and replayed whole
        args.batch_size = args.train_per_task
        args.memory = args.replay_batch = args.train_per_task * args.epochs * 5
    suffix = "_deterministic" if args.deterministic else ""
    output = args.output or Path(f"benchmarks/evidence/compare_mammoth{suffix}.json")
    args.output = output.resolve()  # Mammoth changes the working folder when imported
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    classes = import_mammoth(args.mammoth.resolve())
    if args.deterministic:
        torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    runs = []
    for method in args.methods:
        for seed in args.seeds:
            for order in args.orders:
                config = config_of(args, method, order, seed)
                trainer = train.Trainer([config], "cpu")
                start = copy.deepcopy(trainer.model)
                row = {"method": method, "order": order, "seed": seed}
                began = time.perf_counter()
                row["original"] = run_mammoth(
                    classes[method],
                    args,
                    config,
                    trainer.tasks[0],
                    start,
                    config.stream_seed,
                    args.deterministic,
                )
                row["original"]["seconds"] = time.perf_counter() - began
                began = time.perf_counter()
                row["ours"] = run_ours(trainer, args.deterministic)
                row["ours"]["seconds"] = time.perf_counter() - began
                runs.append(row)
                print(method, order, seed, row["original"]["acc"], row["ours"]["acc"], flush=True)
    summary = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "mammoth_commit": args.mammoth_commit,
        "machine": {"cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__},
        "runs": runs,
        "methods": summarise(runs, args.margin),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=1))
    print(table(summary["methods"], other="Mammoth"))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
