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

Each section is a module, ``benchmarks/<name>.py``, whose docstring says what it times
and what its ratio means; it also runs alone, with the options it reads
(``python benchmarks/fisher.py --repeats 5``):

1. ``run``: a whole run, ``train.run`` vs torchvision + PIL transforms + DataLoader.
2. ``input``: images per second delivered to the model, the same two ways.
3. ``fisher``: EWC's diagonal Fisher, per-sample gradients vs a loop of backward passes.
4. ``step``: one training step per method and per regime.
5. ``paper`` (CUDA only; ``--sections 5`` or ``--paper-run``): one paper-profile run,
   its model FLOP utilisation and the paper grid projected one run at a time.
6. ``group``: a cell's runs trained as one grouped network vs one at a time.
7. ``engines``: a smoke sweep on the local process pool vs a local Ray instance.

``--rehearse`` runs the CUDA-only parts (5, ``--group-sizes``) on a CPU, with
``--paper-set`` shrinking the paper runs: a check of the script, not a measurement.
"""

from __future__ import annotations

import importlib

import harness

# imported by name: a module called ``input`` would otherwise shadow the builtin here
NAMES = ("run", "input", "fisher", "step", "paper", "group", "engines")
SECTIONS = [importlib.import_module(name) for name in NAMES]  # section n is SECTIONS[n - 1]
OPTIONS = {
    "--sections": dict(
        nargs="+",
        type=int,
        default=[1, 2, 3, 4],
        choices=range(1, len(SECTIONS) + 1),
        help="5 runs on CUDA only (see --rehearse)",
    ),
    "--paper-run": dict(action="store_true", help="same as adding 5 to --sections"),
}


def parse_args(argv=None):
    args = harness.parse(__doc__, SECTIONS, argv, first=OPTIONS)
    if args.paper_run:
        args.sections = [*args.sections, 5]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    harness.run([SECTIONS[n - 1] for n in sorted(set(args.sections))], args)


if __name__ == "__main__":
    main()
