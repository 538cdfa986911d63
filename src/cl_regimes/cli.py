"""Command line: ``python -m cl_regimes regimes | run | sweep | tune | card | verify | book``.

This module builds the parser (the commands themselves are in ``commands``). Every
setting is checked before any data loads; bad input gives one line on stderr naming what
was wrong and what is valid, and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys

from cl_regimes import commands, data, initialisation, methods, profiles, regimes
from cl_regimes.config import SCENARIOS, ConfigError, RunConfig


def settings_table() -> str:
    """Every setting with its value in each profile and its valid values, for --help."""
    valid = {
        f.name: f.metadata["valid"] for f in dataclasses.fields(RunConfig) if "valid" in f.metadata
    }
    for name in methods.names():
        valid |= {f"{name}.{k}": v for k, v in methods.get(name).parameters().items()}
    names = list(profiles.PROFILES)
    rows = [["setting", *names, "valid"]]
    for key in profiles.PAPER_SETTINGS:
        rows.append(
            [
                key,
                *(str(profiles.PROFILES[p].settings[key]) for p in names),
                str(valid.get(key, "")),
            ]
        )
    for key, default in profiles.plugin_settings().items():  # every profile: the default
        rows.append([key, *[str(default)] * len(names), str(valid[key])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    per_dataset = "; ".join(
        f"{p}: {d} {v}"
        for p, prof in profiles.PROFILES.items()
        for d, v in prof.per_dataset.items()
    )
    return (
        "settings (override with --set key=value ...):\n  "
        + "\n  ".join(lines)
        + (f"\nper-dataset values: {per_dataset}" if per_dataset else "")
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m cl_regimes", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("regimes", help="table of the regimes and their trainable parameters")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.set_defaults(func=commands.show_regimes)

    def common(p, grid: bool):
        p.add_argument("--profile", default="quick", help=", ".join(profiles.PROFILES))
        p.add_argument("--results", default="results", help="results folder (default results/)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        p.add_argument("--data-dir", default=None, help="datasets folder (default data/)")
        weights_option(p)
        p.add_argument(
            "--scenario",
            help=f"{', '.join(SCENARIOS)} (default: the profile's, task_incremental); "
            "the same as --set scenario=...",
        )
        p.add_argument(
            "--set",
            action="extend",
            nargs="+",
            metavar="KEY=VALUE",
            help="override profile settings, e.g. --set epochs=1 ewc.lam=100",
        )
        if grid:
            p.add_argument("--datasets", nargs="+", help=", ".join(data.DATASETS))
            p.add_argument("--regimes", nargs="+", help=", ".join(regimes.REGIMES))
            p.add_argument("--methods", nargs="+", help=method_help())
            p.add_argument("--orders", nargs="+", type=int)
            p.add_argument("--seeds", nargs="+", type=int)
            p.add_argument(
                "--no-variants",
                action="store_true",
                help="the profile's own settings only, not its variants",
            )
            p.add_argument(
                "--jobs", type=int, default=1, help="groups trained at once (--engine local)"
            )
            p.add_argument("--group-size", type=int, default=None, help=GROUP_HELP)
            engine_options(p)
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="print the number of runs and a projected wall time",
            )

    def command(name: str, help: str, grid: bool) -> argparse.ArgumentParser:
        """A subcommand that takes the settings (listed after its options)."""
        p = sub.add_parser(
            name,
            help=help,
            epilog=settings_table(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        common(p, grid)
        return p

    p = command("run", "one continual-learning run -> one record", grid=False)
    p.add_argument("--dataset", required=True, help=", ".join(data.DATASETS))
    p.add_argument("--regime", required=True, help=", ".join(regimes.REGIMES))
    p.add_argument("--method", required=True, help=method_help())
    p.add_argument("--order", type=int, default=0, help="0 (canonical) to 10")
    p.add_argument("--seed", type=int, default=0)
    force_option(p)
    p.set_defaults(func=commands.run_one)

    p = command("sweep", "every run of a profile's grid, grouped, resuming", grid=True)
    force_option(p)
    p.set_defaults(func=commands.run_sweep)

    p = command(
        "tune",
        "choose each method's strength per regime and scenario on validation images, then "
        "evaluate the chosen values that differ from the profile's (a variant)",
        grid=True,
    )
    p.add_argument(
        "--tuning", default="tuning", help="folder of the tuning records (default tuning/)"
    )
    p.add_argument(
        "--factors",
        nargs="+",
        type=float,
        default=None,
        help="candidates: the profile's value times each factor (default 0.01 0.1 1 10)",
    )
    force_option(p)
    p.set_defaults(func=commands.run_tuning)

    p = command("card", "a method's results stratified by regime (Markdown, HTML, PNG)", False)
    p.add_argument("--method", required=True, help=method_help())
    p.add_argument("--regimes", nargs="+", help="a subset of the regimes (default: every one)")
    p.add_argument("--orders", nargs="+", type=int, help="the task orders (default: the profile's)")
    p.add_argument("--output", default="cards", help="folder of the card (default cards/)")
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs it needs and a projected wall time"
    )
    p.add_argument("--jobs", type=int, default=1, help="groups trained at once")
    p.add_argument("--group-size", type=int, default=None, help=GROUP_HELP)
    engine_options(p)
    force_option(
        p,
        "recompute the method's runs and replace their records (default: reuse "
        "them; the compared methods' are always reused)",
    )
    p.set_defaults(func=commands.make_card)

    p = sub.add_parser(
        "verify",
        help="rerun records as they were trained and compare every number",
        description="Rerun each record's group (same runs in the same slots, same threads and "
        "precision) and report, per record, whether every number (R, metrics, per-task "
        "statistics) is identical; where not, the largest difference and the facts of this "
        "machine that differ from the record's. Exit code 1 if any record differs.",
    )
    p.add_argument("records", nargs="+", help="record files or folders of records")
    p.add_argument(
        "--isa",
        help="the CPU instruction set to rerun with: AVX512, AVX2, DEFAULT (default: the "
        "records', where they name it; else this CPU's)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    p.add_argument("--data-dir", default=None, help="datasets folder (default data/)")
    p.set_defaults(func=commands.verify_records)

    p = sub.add_parser("book", help="execute the notebooks (papermill) and build the book")
    p.add_argument("--profile", default="quick", help=", ".join(profiles.PROFILES))
    p.add_argument("--results", default="results")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="groups trained at once (--engine local) and notebooks executed at once",
    )
    p.add_argument("--group-size", type=int, default=None, help=GROUP_HELP)
    engine_options(p)
    weights_option(p)
    p.add_argument("--no-html", action="store_true", help="execute notebooks only")
    p.set_defaults(func=commands.build_book)
    return top


def weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        help="the ImageNet ResNet-18 weights for --set init=pretrained (torchvision's "
        f"{initialisation.WEIGHTS_FILE}; default ${initialisation.WEIGHTS_ENV}, else "
        "torchvision's cache: $TORCH_HOME/hub/checkpoints)",
    )


def force_option(
    p: argparse.ArgumentParser,
    help: str = "recompute the runs asked for and replace their records (default: reuse them)",
) -> None:
    p.add_argument("--force", action="store_true", help=help)


def engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        default="local",
        help="local (this machine; default) or ray (a Ray cluster, or a local Ray instance)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="HOST:PORT of a Ray cluster's head to join, or auto (default: start a local one)",
    )
    p.add_argument(
        "--cpus-per-task", type=int, default=None, help="CPUs of each Ray task (default 1)"
    )
    p.add_argument(
        "--runs-per-gpu",
        type=int,
        default=None,
        help="runs that share one GPU: each Ray task asks for (its runs / N) of a GPU "
        "(default: no GPU)",
    )


def method_help() -> str:
    return (
        f"{', '.join(methods.names())}, or a method of your own as module:Class "
        f"(or declared in the entry-point group {methods.ENTRY_POINTS})"
    )


GROUP_HELP = (
    "runs of one cell trained as one grouped network (default: as many as fit; "
    "all of a cell's orders on a CPU; --runs-per-gpu on Ray)"
)


def _load_named_methods(argv: list[str]) -> None:
    """Load the methods given by path (``--method(s) module:Class``) before the parser is
    built, so that ``--help`` lists their settings and a bad one is one line."""
    flag, given = None, []
    for arg in argv:
        if arg.startswith("-"):
            flag, _, value = arg.partition("=")
            given += [(flag, value)] if value else []
        elif flag:
            given.append((flag, arg))
            flag = flag if flag == "--methods" else None  # --method takes one value
    for flag, value in given:
        if flag in ("--method", "--methods") and ":" in value:
            methods.load(value)


def main(argv=None) -> int:
    try:
        _load_named_methods(sys.argv[1:] if argv is None else argv)
        args = parser().parse_args(argv)
        for name in ("jobs", "group_size", "cpus_per_task", "runs_per_gpu"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} {value} is out of range; valid: >= 1"
                )
        if getattr(args, "weights", None):  # for this process and its workers
            os.environ[initialisation.WEIGHTS_ENV] = args.weights
        if getattr(args, "scenario", None):
            args.set = [*(args.set or []), f"scenario={args.scenario}"]
        with _terminate_as_interrupt():
            return args.func(args) or 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a sweep's says what it kept
        print(str(err) or INTERRUPTED, file=sys.stderr)
        return 130


INTERRUPTED = "interrupted: finished records are kept; rerun the same command to resume"


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a job scheduler, `kill`) stops a command as Ctrl-C does."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
