"""Side by side with the original study's code: the same work, both codes, several orders.

The original (github.com/PaulTiberiu/Trainable_Depth_CL, commit 4257301) is not part of
this repository; get it with

    git clone https://github.com/PaulTiberiu/Trainable_Depth_CL /path/to/original
    git -C /path/to/original checkout 4257301

and run, from this repository's root,

    .venv/bin/python benchmarks/compare_original.py /path/to/original

Both sides train Fashion-MNIST under one regime with every paper method, on the same
images: the stratified subset ``data.block_indices`` draws is handed to the original as
``torch.utils.data.Subset`` objects of its own datasets (its ``load_datasets()``), and the
original's task orders are checked to be ours. The original is configured through its
module constants only (device, epochs, batch size, data folder, GEM's memory, data-loader
workers, and, at an image size other than its 32, its Fashion-MNIST transforms rebuilt
with that size); its training functions run unchanged, in this process, with the same
torch threads. Each (method, order, seed) trains once per side, the two interleaved (the
side that goes first alternates), each timed by wall clock. A rerun of the same work on
the same CPU keeps the runs ``--output`` holds and adds the orders, seeds and methods it
lacks. Seeds replicate an order: they give a run its own initial weights and data stream
on our side, and the seed the original's torch generator starts from on its side.

``--deterministic`` takes the randomness out of the work, so that the two codes must
agree to rounding unless they compute different things: both sides start from the same
weights (the original's own initialisation, loaded into ours through ``Trainer``'s
``initial``; on its side its ``build_model`` returns those weights), take one step per
epoch on the whole task (batch size = images per task, so shuffling cannot matter),
without random crops, on the same normalised tensors (handed to the original as
``TensorDataset``s), with every task image in GEM's memory and EWC's Fisher sample. What
is left is floating-point rounding, which the steps can amplify.

Reported per method: each side's mean ACC and forgetting over runs with a 95%
t-interval; the paired difference (original - ours, paired by order and seed) with its 90%
interval, "equivalent" when that interval lies inside +-margin (two one-sided tests at
5%, the margin fixed before the run), "different" when the 95% interval excludes 0,
"inconclusive" otherwise; and the ratio of the two sides' summed wall times
(original / ours: above 1, this library is faster). The table is printed and written,
with every run and the machine, to ``--output``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch.utils.data import Subset, TensorDataset
from tqdm.auto import tqdm

from cl_regimes import data, metrics, profiles, train

ORIGINAL_URL = "https://github.com/PaulTiberiu/Trainable_Depth_CL"
ORIGINAL_COMMIT = "4257301"
# our regime -> the original's name for it (it has no head-only or BN-affine runs in its grid)
REGIME_NAMES = {
    "full": "full_finetune",
    "from_layer1": "last_6_blocks",
    "from_layer2": "last_3_blocks",
    "from_layer3": "last_2_blocks",
    "from_layer4": "last_block",
    "head": "head_only",
    "bn_affine": "bn_affine_only",
}
METHODS = ("ewc", "lwf", "si", "gem")
DATASET = "fashion_mnist"


def fail(message: str) -> None:
    print(f"compare_original: {message}", file=sys.stderr)
    sys.exit(2)


def check_original(path: Path) -> str:
    """The original's commit (or "unknown" outside a git clone); exit 2 if it is not there."""
    missing = [
        f for f in ("utils/tools.py", *(f"{m}.py" for m in METHODS)) if not (path / f).is_file()
    ]
    if missing:
        fail(
            f"{path} is not a clone of the original study's code "
            f"(missing {', '.join(missing)}); "
            f"get it with: git clone {ORIGINAL_URL} {path} && "
            f"git -C {path} checkout {ORIGINAL_COMMIT}"
        )
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    commit = done.stdout.strip() if done.returncode == 0 else "unknown"
    if commit != "unknown" and not commit.startswith(ORIGINAL_COMMIT):
        print(f"warning: the original is at {commit[:7]}, not {ORIGINAL_COMMIT}", file=sys.stderr)
    return commit


class Original:
    """The original's modules, imported from its clone and configured by their constants."""

    def __init__(self, path: Path, args, data_dir: Path, log):
        self.log = log
        sys.path.insert(0, str(path))
        workdir = tempfile.mkdtemp(prefix="original-")  # it writes results/ where it runs
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            with contextlib.redirect_stdout(log):
                self.tools = importlib.import_module("utils.tools")
                self.modules = {m: importlib.import_module(m) for m in args.methods}
        finally:
            os.chdir(cwd)
        constants = {
            "DEVICE": "cpu",
            "PIN_MEMORY": False,
            "NUM_WORKERS": args.original_workers,
            "EPOCHS_PER_TASK": args.epochs,
            "BATCH_SIZE": args.batch_size,
            "DATA_ROOT": str(data_dir),
            "GEM_MEMORY_STRENGTH": args.gem_memories,
        }
        if args.deterministic:  # every task image in EWC's Fisher sample, as on our side
            constants["FISHER_N"] = args.train_per_task
        if args.image_size != 32:
            constants.update(self._transforms(args.image_size))
        for module in (self.tools, *self.modules.values()):
            for name, value in constants.items():
                if hasattr(module, name):
                    setattr(module, name, value)
        if "gem" in self.modules:  # GEM's memory images go through its own alias
            self.modules["gem"].mnist_store_transform = constants.get(
                "mnist_test_transform", self.tools.mnist_test_transform
            )
        ours = data.task_orders(data.spec(DATASET).num_tasks)
        theirs = [entry["order"] for entry in self.tools.TASK_ORDERS]
        if theirs != ours:
            fail(f"the original's task orders {theirs} differ from ours {ours}")

    def _transforms(self, size: int) -> dict:
        """The original's Fashion-MNIST pipelines at another size (crop padding size/8)."""
        from torchvision import transforms as T

        mean, std = (0.1307,) * 3, (0.3081,) * 3
        head = [T.Resize(size), T.Grayscale(num_output_channels=3)]
        tail = [T.ToTensor(), T.Normalize(mean, std)]
        return {
            "mnist_train_transform": T.Compose(
                [*head, T.RandomCrop(size, padding=size // 8), *tail]
            ),
            "mnist_test_transform": T.Compose([*head, *tail]),
        }

    def datasets(self, method: str, indices, fixed=None) -> list[list]:
        """The method's datasets as its own ``load_datasets()`` lists them ([train
        (augmented), (non-augmented train,) test]), each a list over tasks: its datasets
        cut to our subset, or with ``fixed`` ([(train, test)] per task) those instead."""
        with contextlib.redirect_stdout(self.log):
            loaded = self.modules[method].load_datasets()
        test = loaded[-1]
        if fixed is not None:
            return [[task[ds is test] for task in fixed] for ds in loaded]
        return [[Subset(ds, idx[ds is test].tolist()) for idx in indices] for ds in loaded]

    def initial(self, stream_seed: int) -> dict[str, torch.Tensor]:
        """The weights the original's ``build_model`` gives after seeding with ``stream_seed``."""
        train.seed_everything(stream_seed)
        return self.tools.build_model().state_dict()

    def _built_from(self, state, pretrained=False):
        model = self.tools.build_model(pretrained)
        model.load_state_dict(state)
        return model

    def run(
        self, method: str, regime: str, order: int, tasks, stream_seed: int, initial=None
    ) -> dict:
        """One run of the original's own training function; from ``initial`` weights when
        given (its ``build_model`` then loads them), else from its own initialisation."""
        train.seed_everything(stream_seed)  # the original seeds nothing: reruns repeat
        module = self.modules[method]
        module.build_model = (
            self.tools.build_model
            if initial is None
            else functools.partial(self._built_from, initial)
        )
        with contextlib.redirect_stdout(self.log):
            out = getattr(module, f"run_experiment_{method}")(
                REGIME_NAMES[regime], self.tools.TASK_ORDERS[order], *tasks
            )
        seen = out["acc_matrix"]  # per position trained: {task: accuracy} of the tasks so far
        tasks_in_order = self.tools.TASK_ORDERS[order]["order"]
        return {
            "acc": out["avg_acc"],
            "forgetting": out["avg_forgetting"],
            "R": [[row[tasks_in_order[j]] for j in range(i + 1)] for i, row in enumerate(seen)],
        }


def config_of(args, method: str, order: int, seed: int):
    """Our paper-profile run on the comparison's work."""
    overrides = {
        "width": 64,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_per_task": args.train_per_task,
        "test_per_task": args.test_per_task,
        "gem.memories_per_task": args.gem_memories,
    }
    if args.deterministic:  # every task image in the Fisher sample, as the original's FISHER_N
        overrides["ewc.fisher_samples"] = args.train_per_task
    return profiles.resolve(
        "paper",
        dataset=DATASET,
        regime=args.regime,
        method=method,
        order=order,
        seed=seed,
        overrides=overrides,
    )


def run_ours(config, initial=None) -> dict:
    """One run of this library; from ``initial`` weights without random crops when given."""
    trainer = train.Trainer([config], "cpu", initial=None if initial is None else [initial])
    trainer.scenario.augment = initial is None  # the deterministic work has no crops
    R = trainer.run()[0]["R"]
    return {
        "acc": metrics.acc(R),
        "forgetting": metrics.forgetting(R),
        "R": [row[: i + 1] for i, row in enumerate(R)],  # the tasks trained so far, as theirs
    }


def fixed_tasks(ds, indices) -> list[tuple[TensorDataset, TensorDataset]]:
    """Per task, (train, test) of the normalised network inputs our side computes, as
    datasets the original's loaders read: both sides see the same tensors."""
    normalise = data.Normalizer(ds.spec, torch.device("cpu"))

    def split(images, labels):
        return TensorDataset(normalise(images[:, None]), labels)

    return [
        (split(ds.train.x[tr], ds.train.y[tr]), split(ds.test.x[te], ds.test.y[te]))
        for tr, te in indices
    ]


def interval(values, level: float) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return (float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return (float(v.mean() - half), float(v.mean() + half))


def agreement(original, ours, margin: float) -> dict:
    """Paired (by order and seed) difference original - ours: TOST equivalence within +-margin."""
    d = np.asarray(original) - np.asarray(ours)
    low90, high90 = interval(d, 0.90)
    low95, high95 = interval(d, 0.95)
    if -margin < low90 and high90 < margin:
        verdict = "equivalent"
    elif high95 < 0 or low95 > 0:
        verdict = "different"
    else:
        verdict = "inconclusive"
    return {"difference": float(d.mean()), "ci90": [low90, high90], "verdict": verdict}


R_TOLERANCE = 1e-9  # accuracies are counts over test images: equal or apart by 1/n


def R_gap(run: dict) -> float | None:
    """The largest difference between the two sides' accuracies on the tasks trained so
    far, over every position of the run (None for runs recorded without R)."""
    if "R" not in run["ours"]:
        return None
    return max(
        abs(a - b)
        for mine, theirs in zip(run["ours"]["R"], run["original"]["R"])
        for a, b in zip(mine, theirs)
    )


def summarise(runs: list[dict], margin: float) -> list[dict]:
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        pairs = sorted(
            (r for r in runs if r["method"] == method), key=lambda r: (r["order"], seed_of(r))
        )
        row = {
            "method": method,
            "orders": len({r["order"] for r in pairs}),
            "pairs": len(pairs),
        }
        for metric in ("acc", "forgetting"):
            for side in ("original", "ours"):
                values = [r[side][metric] for r in pairs]
                row[f"{side}_{metric}"] = float(np.mean(values))
                row[f"{side}_{metric}_ci95"] = interval(values, 0.95)
            row[f"{metric}_agreement"] = agreement(
                [r["original"][metric] for r in pairs], [r["ours"][metric] for r in pairs], margin
            )
        gaps = [g for g in map(R_gap, pairs) if g is not None]
        row["R_compared"] = len(gaps)
        row["R_identical"] = sum(g <= R_TOLERANCE for g in gaps)
        row["R_max_difference"] = max(gaps, default=None)
        row["original_seconds"] = sum(r["original"]["seconds"] for r in pairs)
        row["ours_seconds"] = sum(r["ours"]["seconds"] for r in pairs)
        row["time_ratio"] = row["original_seconds"] / row["ours_seconds"]
        per_order = [r["original"]["seconds"] / r["ours"]["seconds"] for r in pairs]
        row["time_ratio_range"] = [min(per_order), max(per_order)]
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    def cell(row, side, metric):
        low, high = row[f"{side}_{metric}_ci95"]
        return f"{row[f'{side}_{metric}']:.3f} [{low:.3f}, {high:.3f}]"

    def agree(row, metric):
        a = row[f"{metric}_agreement"]
        return f"{a['difference']:+.3f} [{a['ci90'][0]:+.3f}, {a['ci90'][1]:+.3f}] {a['verdict']}"

    def equal(row):
        if not row["R_compared"]:
            return "-"
        return f"{row['R_identical']}/{row['R_compared']} ({row['R_max_difference']:.3f})"

    lines = [
        "| method | orders | pairs | ACC original | ACC ours | ACC difference (90% CI) "
        "| forgetting original | forgetting ours | forgetting difference (90% CI) "
        "| runs with equal accuracies (largest gap) "
        "| wall s original / ours | time ratio (per order) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['orders']} | {r['pairs']} | {cell(r, 'original', 'acc')} | "
            f"{cell(r, 'ours', 'acc')} | {agree(r, 'acc')} | {cell(r, 'original', 'forgetting')} | "
            f"{cell(r, 'ours', 'forgetting')} | {agree(r, 'forgetting')} | {equal(r)} | "
            f"{r['original_seconds']:.0f} / {r['ours_seconds']:.0f} | {r['time_ratio']:.2f} "
            f"({r['time_ratio_range'][0]:.2f}-{r['time_ratio_range'][1]:.2f}) |"
        )
    return "\n".join(lines)


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


def seed_of(run: dict) -> int:
    return run.get("seed", 0)  # runs written before seeds were replicated are seed 0


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original", type=Path, help="a clone of the original study's code")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--regime", default="full", choices=list(REGIME_NAMES))
    parser.add_argument("--orders", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="replicates of each order"
    )
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--train-per-task", type=int, default=500)
    parser.add_argument("--test-per-task", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--gem-memories", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--original-workers",
        type=int,
        default=0,
        help="the original's DataLoader workers (its default is 4)",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="the same initial weights, whole-task batches, no crops: the codes must agree "
        "to rounding (sets the batch size and GEM's memory to --train-per-task)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="equivalence margin on ACC and forgetting, stated before the run",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the JSON of runs and summary (default: benchmarks/compare_original.json, "
        "or compare_original_deterministic.json with --deterministic)",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=Path("benchmarks/compare_original.log"),
        help="where the original's printing goes",
    )
    args = parser.parse_args(argv)
    if args.output is None:  # the two kinds of work keep their runs apart
        suffix = "_deterministic" if args.deterministic else ""
        args.output = Path(f"benchmarks/compare_original{suffix}.json")
    bad = [o for o in args.orders if o not in range(profiles.NUM_ORDERS)]
    if bad:
        fail(f"orders {bad} out of range; valid: 0-{profiles.NUM_ORDERS - 1}")
    if any(s < 0 for s in args.seeds):
        fail(f"seeds {args.seeds} must be >= 0")
    if args.image_size < 8 or args.train_per_task < 2 or args.test_per_task < 2:
        fail("--image-size must be >= 8 and --train/test-per-task >= 2 (one image per class)")
    commit = check_original(args.original.resolve())
    if args.deterministic:
        args.batch_size = args.gem_memories = args.train_per_task
        torch.set_default_dtype(torch.float64)  # rounding in float32 flips Adam's steps

    torch.set_num_threads(args.threads)
    ds = data.load(DATASET, None, args.image_size)  # also unpacks Fashion-MNIST for the original
    indices = data.block_indices(ds, args.train_per_task, args.test_per_task)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "w") as log:
        original = Original(args.original.resolve(), args, data.default_data_dir(), log)
        fixed = fixed_tasks(ds, indices) if args.deterministic else None
        tasks = {m: original.datasets(m, indices, fixed) for m in args.methods}
        runs = earlier_runs(args)
        done = {(r["method"], r["order"], seed_of(r)) for r in runs}
        work = [
            (m, o, s)
            for m in args.methods
            for s in args.seeds
            for o in args.orders
            if (m, o, s) not in done
        ]
        for i, (method, order, seed) in enumerate(tqdm(work, desc="original vs ours")):
            config = config_of(args, method, order, seed)
            initial = original.initial(config.stream_seed) if args.deterministic else None
            sides = {
                "original": functools.partial(
                    original.run,
                    method,
                    args.regime,
                    order,
                    tasks[method],
                    config.stream_seed,
                    initial,
                ),
                "ours": functools.partial(run_ours, config, initial),
            }
            row = {"method": method, "order": order, "seed": seed}
            for side in sorted(sides, reverse=i % 2 == 1):  # alternate who goes first
                started = time.perf_counter()
                row[side] = sides[side]()
                row[side]["seconds"] = time.perf_counter() - started
            runs.append(row)
            summary = {
                "settings": {
                    k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                },
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
            args.output.write_text(json.dumps(summary, indent=1))
    print(
        f"{cpu_model()}, {args.threads} threads, torch {torch.__version__}; "
        f"regime {args.regime}, margin +-{args.margin}"
    )
    print(table(summary["methods"]))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
