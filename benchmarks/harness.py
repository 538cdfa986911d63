"""What every benchmark section shares: the options, the ``quick`` work they time, running
sections in order and writing results.json after each, so that a section runs the same
alone (``python benchmarks/<section>.py``) or among others (``benchmarks/benchmark.py``).

A section is a module with ``NAME`` (its rows' and results' key), ``OPTIONS`` (its own
options: {flag: argparse keywords}), ``SHARED_OPTIONS`` (flags of ``SHARED`` it reads) and
``measure(args, device, details)``, which prints its rows and returns its details (None
when it does not run on this device); ``details`` holds the earlier sections' results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from timing import HEADER, ROWS, format_row

from cl_regimes import data, models, profiles
from cl_regimes.config import RunConfig

SHARED = {  # options read by more than one section, added once
    "--repeats": dict(type=int, default=3, help="repeats of sections 2-4"),
    "--run-repeats": dict(type=int, default=2, help="repeats of sections 1, 6 and 7"),
    "--workers": dict(
        nargs="+", type=int, default=[0, 2], help="DataLoader num_workers values to compare"
    ),
    "--paper-set": dict(
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a paper-profile setting of sections 5 and 6 (incl. projections)",
    ),
    "--rehearse": dict(
        action="store_true",
        help="run the CUDA-only parts (5, --group-sizes) on a CPU too, to check "
        "the script with --paper-set shrinking the runs; not for numbers",
    ),
}


def quick_config(args, method="finetune", regime="full", order=0) -> RunConfig:
    """The quick profile's Fashion-MNIST run with the command's --set overrides."""
    return profiles.get_profile("quick").config(
        dataset="fashion_mnist",
        regime=regime,
        method=method,
        order=order,
        overrides=args.overrides,
    )


def parse(doc: str, sections: list, argv=None, first: dict | None = None) -> argparse.Namespace:
    """The options of ``sections`` (after ``first``, the caller's own) parsed from ``argv``;
    every KEY=VALUE list also parsed into typed settings (``args.overrides`` for --set)."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstrings (benchmarks/<section>.py) for what each ratio means.",
    )
    for flag, options in (first or {}).items():
        p.add_argument(flag, **options)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a quick-profile setting, e.g. train_per_task=200",
    )
    p.add_argument("--train-per-task", type=int, help="shortcut for --set train_per_task=N")
    p.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    used = {flag for s in sections for flag in s.SHARED_OPTIONS}
    for flag, options in SHARED.items():
        if flag in used:
            p.add_argument(flag, **options)
    for section in sections:
        for flag, options in section.OPTIONS.items():
            p.add_argument(flag, **options)
    p.add_argument("--output", default=str(Path(__file__).with_name("results.json")))
    args = p.parse_args(argv)
    extra = [
        f"{k}={v}"
        for k, v in (("train_per_task", args.train_per_task), ("epochs", args.epochs))
        if v is not None
    ]
    args.overrides = profiles.parse_overrides(args.set + extra)
    given = vars(args)
    for name in ("paper", "group"):  # sections 5 and 6's paper-profile settings
        if f"{name}_set" in given:
            given[f"{name}_overrides"] = profiles.parse_overrides(given[f"{name}_set"])
    return args


def run(sections: list, args) -> None:
    """Run ``sections`` in order on the command's device; print and write what they measure."""
    torch.set_num_threads(args.threads)
    device = models.resolve_device(args.device)
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
    print(HEADER + "\n" + "-" * len(HEADER))
    started, details = time.perf_counter(), {}
    out = Path(args.output)
    for section in sections:
        result = section.measure(args, device, details)
        if result is not None:
            details[section.NAME] = result
            write(out, env, args, details)  # after every section: a timeout keeps what was done
    env["load_average_after"] = os.getloadavg()
    env["total_s"] = time.perf_counter() - started
    print("-" * len(HEADER) + "\n" + HEADER)
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


def main(section, argv=None) -> None:
    """One section on its own: ``python benchmarks/<section>.py [options]``."""
    run([section], parse(section.__doc__, [section], argv))
