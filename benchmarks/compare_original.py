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
import functools
import json
from pathlib import Path

import pairing
import torch
from agreement import table
from original_code import DATASET, METHODS, REGIME_NAMES, Original, check_original, fail
from runners import config_of, fixed_tasks, original_initial, run_original, run_ours
from tqdm.auto import tqdm

from cl_regimes import data, profiles


def parse_args(argv=None) -> argparse.Namespace:
    """The command's options, checked; ``--output`` defaults by the kind of work."""
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
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
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
        runs = pairing.earlier_runs(args)
        work = pairing.missing(args, runs)
        for i, (method, order, seed) in enumerate(tqdm(work, desc="original vs ours")):
            config = config_of(args, method, order, seed)
            initial = original_initial(original, config.stream_seed) if args.deterministic else None
            sides = {
                "original": functools.partial(
                    run_original,
                    original,
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
            runs.append({**row, **pairing.back_to_back(sides, swap=i % 2 == 1)})
            args.output.write_text(json.dumps(pairing.summary(args, commit, runs), indent=1))
    summary = pairing.summary(args, commit, runs)  # also when every pair was done already
    print(
        f"{pairing.cpu_model()}, {args.threads} threads, torch {torch.__version__}; "
        f"regime {args.regime}, margin +-{args.margin}"
    )
    print(table(summary["methods"]))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
