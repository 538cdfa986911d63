"""Command line: ``python -m cl_regimes regimes | run | sweep | book``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from cl_regimes import profiles
from cl_regimes.config import ConfigError


def _regimes(args) -> None:
    from cl_regimes import regimes

    table = regimes.summary(args.width, args.classes)
    table["trainable parameters"] = table["trainable parameters"].map("{:,}".format)
    table["share"] = table["share"].map("{:.2%}".format)
    print(f"ResNet-18 of width {args.width}, head over {args.classes} classes")
    print(table.to_string(index=False))


def _run(args) -> None:
    config = profiles.resolve(args.profile, dataset=args.dataset, regime=args.regime,
                              method=args.method, order=args.order, seed=args.seed,
                              bn_stats=args.bn_stats, overrides=profiles.parse_overrides(args.set))
    from cl_regimes import results, train  # after validation: bad input fails fast

    path = results.record_path(args.results, args.profile, config)
    if results.is_done(path, config):
        print(f"already done (same configuration): {path}")
    else:
        results.save(train.run(config, args.device, args.data_dir, progress=True,
                               profile=args.profile), path)
        print(f"record written: {path}")
    record = results.read(path)
    print(f"order {record['order']}; R[i, j] = accuracy on task j after training task i:")
    print(np.array2string(np.asarray(record["R"]), precision=3, suppress_small=True))
    print("  ".join(f"{k} {v:.4f}" for k, v in record["metrics"].items()),
          f" ({record['wall_time_s']:.1f} s)")


def _grid(args) -> dict:
    return dict(datasets=args.datasets, regimes=args.regimes, methods=args.methods,
                orders=args.orders, seeds=args.seeds, bn_stats=args.bn_stats,
                overrides=profiles.parse_overrides(args.set))


def _sweep(args) -> None:
    from cl_regimes import results, sweep

    if args.dry_run:
        configs = sweep.plan(args.profile, **_grid(args))
        todo = [c for c in configs
                if not results.is_done(results.record_path(args.results, args.profile, c), c)]
        hours = sweep.estimate(todo, args.device) / 3600
        print(f"{len(configs)} runs in the grid, {len(configs) - len(todo)} already done; "
              f"projected wall time of the rest on {train_device(args.device)}: {hours:.2f} h "
              "(one run at a time; an upper bound: every regime timed as full)")
        return
    paths = sweep.sweep(args.profile, results_dir=args.results, device=args.device,
                        data_dir=args.data_dir, jobs=args.jobs, **_grid(args))
    print(f"{len(paths)} records under {args.results}/{args.profile}")


def train_device(device: str) -> str:
    from cl_regimes.train import resolve_device

    return str(resolve_device(device))


def _book(args) -> None:
    from cl_regimes import book

    try:
        book.build(args.profile, results_dir=args.results, jobs=args.jobs, device=args.device,
                   html=not args.no_html)
    except book.NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m cl_regimes", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("regimes", help="table of the regimes and their trainable parameters")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.set_defaults(func=_regimes)

    def common(p, grid: bool):
        p.add_argument("--profile", default="quick", help=", ".join(profiles.PROFILES))
        p.add_argument("--results", default="results", help="results folder (default results/)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        p.add_argument("--data-dir", default=None, help="datasets folder (default data/)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a profile setting, e.g. epochs=1 or ewc.lam=100")
        many = {"nargs": "+"} if grid else {}
        p.add_argument("--bn-stats", dest="bn_stats", default=None if grid else "always_update",
                       **many)
        if grid:
            p.add_argument("--datasets", nargs="+")
            p.add_argument("--regimes", nargs="+")
            p.add_argument("--methods", nargs="+")
            p.add_argument("--orders", nargs="+", type=int)
            p.add_argument("--seeds", nargs="+", type=int)
            p.add_argument("--jobs", type=int, default=1, help="runs at once")
            p.add_argument("--dry-run", action="store_true",
                           help="print the number of runs and a projected wall time")

    p = sub.add_parser("run", help="one continual-learning run -> one record")
    common(p, grid=False)
    p.add_argument("--dataset", required=True, help=", ".join(profiles.DATASETS))
    p.add_argument("--regime", required=True, help=", ".join(profiles.REGIME_NAMES))
    p.add_argument("--method", required=True, help=", ".join(profiles.METHOD_NAMES))
    p.add_argument("--order", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)

    p = sub.add_parser("sweep", help="every run of a profile's grid, resuming")
    common(p, grid=True)
    p.set_defaults(func=_sweep)

    p = sub.add_parser("book", help="execute the notebooks (papermill) and build the book")
    p.add_argument("--profile", default="quick", help=", ".join(profiles.PROFILES))
    p.add_argument("--results", default="results")
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    p.add_argument("--no-html", action="store_true", help="execute notebooks only")
    p.set_defaults(func=_book)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
