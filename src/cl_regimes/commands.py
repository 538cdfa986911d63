"""The commands of ``python -m cl_regimes``, one function each, taking the parsed
arguments (``cli`` builds the parser and turns errors into one line and an exit code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from cl_regimes import methods, models, profiles
from cl_regimes.config import ConfigError


def show_regimes(args) -> None:
    from cl_regimes.models import regime_summary

    table = regime_summary(args.width, args.classes)
    table["trainable parameters"] = table["trainable parameters"].map("{:,}".format)
    table["share"] = table["share"].map("{:.2%}".format)
    print(f"ResNet-18 of width {args.width}, head over {args.classes} classes")
    print(table.to_string(index=False))


def run_one(args) -> None:
    from cl_regimes import provenance, results, runner

    method = methods.load(args.method)  # a plug-in first: --set may name its settings
    run = profiles.get_profile(args.profile).run(
        dataset=args.dataset,
        regime=args.regime,
        method=method,
        order=args.order,
        seed=args.seed,
        overrides=profiles.parse_overrides(args.set, methods_=[method]),
    )
    results.check_writable(args.results)
    path = run.path(args.results)
    if not args.force and results.is_done(path, run.config, provenance.method_source(method)):
        print(f"already done (same configuration; --force recomputes it): {path}")
    else:
        record = runner.run(run, args.device, args.data_dir, progress=True)
        results.save(record, path, replace=path.exists())
        print(f"record written: {path}")
    record = results.read(path)
    print(f"order {record['order']}; R[i, j] = accuracy on task j after training task i:")
    print(np.array2string(np.asarray(record["R"]), precision=3, suppress_small=True))
    print(
        "  ".join(f"{k} {v:.4f}" for k, v in record["metrics"].items()),
        f" ({record['wall_time_s']:.1f} s)",
    )


def grid_of(args, profile: profiles.Profile) -> dict:
    """``Profile.grid``'s arguments from the command's."""
    chosen = [methods.load(m) for m in args.methods] if args.methods else None  # before --set
    used = chosen or profile.grid_methods()
    return dict(
        datasets=args.datasets,
        regimes=args.regimes,
        methods=chosen,
        orders=args.orders,
        seeds=args.seeds,
        overrides=profiles.parse_overrides(args.set, methods_=used),
        variants=not args.no_variants,
    )


def run_sweep(args) -> int | None:
    from cl_regimes import sweep

    profile = profiles.get_profile(args.profile)
    runs = profile.grid(**grid_of(args, profile))
    if args.dry_run:
        return projection(args, len(runs), [r for r, _ in sweep.pending(runs, args.results)[1]])
    try:
        sweep.sweep(runs, data_dir=args.data_dir, force=args.force, **execution_of(args))
    except sweep.SweepFailed as err:
        return failed(err)
    print(f"records under {Path(args.results).resolve() / args.profile}")


def run_tuning(args) -> int | None:
    from cl_regimes import sweep, tuning

    profile = profiles.get_profile(args.profile)
    grid = grid_of(args, profile)
    runs = tuning.plan(
        profile,
        datasets=grid["datasets"],
        regimes=grid["regimes"],
        methods=grid["methods"],
        overrides=grid["overrides"],
        factors=args.factors,
    )
    if args.dry_run:
        todo = sweep.pending(runs, args.tuning)[1]
        return projection(args, len(runs), [r for r, _ in todo])
    execution = execution_of(args)
    try:
        chosen = tuning.search(
            profile,
            runs,
            lambda todo: sweep.sweep(
                todo,
                data_dir=args.data_dir,
                force=args.force,
                **{**execution, "results_dir": args.tuning},
            ),
            Path(args.tuning) / args.profile,
            grid["overrides"],
        )
        print(chosen.to_string(index=False))
        evaluation = tuning.evaluation_plan(profile, chosen, orders=args.orders, seeds=args.seeds)
        if evaluation:
            sweep.sweep(evaluation, data_dir=args.data_dir, **execution)
    except sweep.SweepFailed as err:
        return failed(err)
    print(f"tuning records under {Path(args.tuning).resolve() / args.profile}")


def projection(args, total: int, todo: list) -> None:
    """What a dry run prints: the runs still to train (``todo``), per method and regime,
    and their projected time on this machine."""
    import pandas as pd

    from cl_regimes import engines, sweep

    engines.check(device=args.device, results_dir=args.results, jobs=args.jobs, **engine_of(args))
    device = models.resolve_device(args.device)
    size = args.group_size or args.runs_per_gpu
    if todo:
        cells = pd.DataFrame(
            [(r.config.method, r.config.regime) for r in todo], columns=["method", "regime"]
        )
        print("runs to train:\n" + cells.value_counts(sort=False).unstack(fill_value=0).to_string())
    hours = sweep.estimate(todo, device, size) / 3600
    units = sweep.groups(todo, size, device)
    print(
        f"{total} runs, {total - len(todo)} already done; the rest in {len(units)} groups, "
        f"projected on {device}: {hours:.2f} h ({sweep.ESTIMATE})"
    )


def engine_of(args) -> dict:
    return dict(
        engine=args.engine,
        address=args.address,
        cpus_per_task=args.cpus_per_task,
        runs_per_gpu=args.runs_per_gpu,
    )


def execution_of(args) -> dict:
    """Where and how the runs of `sweep` and `book` train."""
    return dict(
        results_dir=args.results,
        device=args.device,
        jobs=args.jobs,
        group_size=args.group_size,
        **engine_of(args),
    )


def build_book(args) -> int | None:
    from cl_regimes import book, sweep

    try:  # the book's sweep checks every value before anything runs
        book.build(args.profile, html=not args.no_html, **execution_of(args))
    except sweep.SweepFailed as err:
        return failed(err)
    except book.NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def verify_records(args) -> int:
    import pandas as pd
    import torch

    from cl_regimes import verify

    missing = [r for r in args.records if not Path(r).exists()]
    if missing:
        raise ConfigError(f"no such record or folder: {', '.join(missing)}")
    isa = args.isa or verify.recorded_isa(args.records)
    if isa and isa.upper() != torch.backends.cpu.get_cpu_capability():
        wanted = verify.isa_environment(isa)
        if any(os.environ.get(k) != v for k, v in wanted.items()):  # torch is loaded: anew
            print(f"rerunning with the {isa.upper()} instruction set ({wanted})")
            argv = [*args.records, "--device", args.device, "--isa", isa]
            argv += ["--data-dir", args.data_dir] if args.data_dir else []
            command = [sys.executable, "-m", "cl_regimes", "verify", *argv]
            return subprocess.run(command, env={**os.environ, **wanted}).returncode
    checks = verify.verify(args.records, args.device, args.data_dir)
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(verify.table(checks).to_string(index=False))
    same = sum(c.identical for c in checks)
    print(f"{same} of {len(checks)} records identical")
    if hint := verify.isa_hint(checks):
        print(hint)
    return 0 if same == len(checks) else 1


def make_card(args) -> int | None:
    from cl_regimes import card, sweep

    execution = execution_of(args)
    del execution["results_dir"]
    if args.dry_run:
        plan = card.plan(
            args.method, args.profile, args.results, args.regimes, args.set, orders=args.orders
        )
        return projection(args, len(plan.records), card.pending(plan, args.force))
    try:
        made = card.write(
            args.method,
            args.profile,
            args.results,
            args.output,
            args.regimes,
            args.set,
            args.orders,
            force=args.force,
            data_dir=args.data_dir,
            **execution,
        )
    except sweep.SweepFailed as err:
        return failed(err)
    columns = ["dataset", "regime", "orders", "acc", "forgetting", "at_chance", "rank", "of"]
    print(made.table[columns].to_string(index=False, float_format="{:.3f}".format))
    print(made.verdict.headline())
    for kind, path in made.paths.items():
        print(f"{kind}: {path}")


def failed(err) -> int:
    print(
        f"error: {len(err.summary.failed)} of the sweep's runs failed (listed above)",
        file=sys.stderr,
    )
    return 1
