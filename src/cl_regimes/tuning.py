"""Each method's strength chosen per regime and scenario, on validation images and
replicates of its own.

A tuning run is an ordinary run with ``validation_per_task`` of each task's training
images held out and scored in place of its test images (``data.block_indices``), on
the tuning replicates: the orders ``ORDERS`` with the seed ``TUNING_SEEDS``, which no
evaluation run may use (``RunConfig``). A method's candidates are the profile's value
of its strength (``STRENGTH``: EWC's lambda, SI's c, LwF's lambda; GEM's memory is its
cost, kept fixed) times ``FACTORS``. In each (dataset, scenario, regime, method) the
chosen value is the one nearest the profile's (in factors of 10) among the candidates
whose mean validation ACC over the replicates is within one standard error of the best
one's (the standard error of their paired difference): a gain smaller than the
replicates' own noise keeps the profile's value. A choice at the lowest or highest
candidate tried has not finished its search: the next factor of 10 beyond it is tried on
the same replicates (``search``), until the choice is interior or the setting's valid
range ends. A chosen value that is not the profile's is then evaluated as a variant of
the primary grid (its orders and seeds), so the paper's fixed values stay the
replication and the tuned ones sit beside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes import data, profiles, results
from cl_regimes.config import SCENARIOS, TUNING_SEEDS, ConfigError
from cl_regimes.profiles import Profile
from cl_regimes.results import Run

STRENGTH = {"ewc": "lam", "lwf": "lam", "si": "c"}
FACTORS = (0.01, 0.1, 1.0, 10.0)  # log-spaced around the paper's value, mostly below it
ORDERS = (0, 1, 2)
STUDY = ("finetune", "joint", "ewc", "lwf", "si", "gem")  # the grid a tuned chapter compares
CELL = ["dataset", "scenario", "regime", "method"]


def check_methods(methods) -> tuple[str, ...]:
    for m in methods:
        if m not in STRENGTH:
            raise ConfigError(f"method {m!r} has no strength to tune; valid: {', '.join(STRENGTH)}")
    return tuple(methods)


def validation_size(profile: Profile, dataset: str) -> int:
    """Validation images per task: as many as a run is evaluated on (the profile's test
    images per task, else a task's whole test set)."""
    spec = data.spec(dataset)
    return profile.values(dataset)["test_per_task"] or (spec.sizes[1] // spec.num_tasks)


def profile_value(profile: Profile, dataset: str, method: str) -> float:
    """The profile's value of a method's strength (the paper's, in ``paper``)."""
    return profile.values(dataset)[f"{method}.{STRENGTH[method]}"]


def candidates(profile: Profile, dataset: str, method: str, factors=FACTORS) -> list[float]:
    base = profile_value(profile, dataset, method)
    return [float(f"{base * f:.6g}") for f in factors]


def plan(
    profile: Profile,
    *,
    datasets=None,
    regimes=None,
    methods=None,
    overrides: dict | None = None,
    factors=None,
) -> list[Run]:
    """The tuning runs: every candidate of every cell, on the tuning replicates."""
    runs, factors = [], factors or FACTORS
    for dataset in datasets or profile.datasets:
        for method in check_methods(methods or STRENGTH):
            for value in candidates(profile, dataset, method, factors):
                runs += replicates(profile, dataset, regimes, method, value, overrides)
    return runs


def replicates(profile: Profile, dataset, regimes, method, value, overrides=None) -> list[Run]:
    """The tuning runs of one candidate ``value`` of a method's strength."""
    return profile.grid(
        datasets=[dataset],
        regimes=regimes,
        methods=[method],
        orders=ORDERS,
        seeds=[TUNING_SEEDS],
        overrides={
            **(overrides or {}),
            f"{method}.{STRENGTH[method]}": value,
            "validation_per_task": validation_size(profile, dataset),
        },
        variants=False,
    )


def load(folder) -> pd.DataFrame:
    """The tuning records under ``folder``: one row per run with its cell, its strength's
    ``value`` and validation ``acc``."""
    rows = []
    for _, record in results.records(folder):
        cfg = record["config"]
        if cfg.get("validation_per_task") is None or cfg["method"] not in STRENGTH:
            continue
        rows.append(
            {
                **{k: cfg[k] for k in CELL},
                "profile": record.get("profile"),
                "value": cfg["method_params"][STRENGTH[cfg["method"]]],
                "order": cfg["order"],
                "seed": cfg["seed"],
                "acc": record["metrics"]["acc"],
            }
        )
    return pd.DataFrame(rows, columns=[*CELL, "profile", "value", "order", "seed", "acc"])


def initial(table: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``table`` (``load``) at their cell's first candidates (``FACTORS``),
    before any search went beyond them."""
    first = [
        value in candidates(profiles.get_profile(p), dataset, method)
        for value, p, dataset, method in table[
            ["value", "profile", "dataset", "method"]
        ].itertuples(index=False)
    ]
    return table[first]


def scores(table: pd.DataFrame) -> pd.DataFrame:
    """Every candidate's mean and standard deviation of validation ACC over replicates."""
    return (
        table.groupby([*CELL, "profile", "value"], observed=True)["acc"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )


def paired_se(acc: pd.DataFrame, value) -> pd.Series:
    """The standard error of each candidate's paired difference to ``value`` over the
    replicates both have (``acc``: replicates x candidates); 0 with one replicate."""
    diff = acc.sub(acc[value], axis=0)
    return (diff.std() / np.sqrt(diff.count())).fillna(0.0)


def choose(acc: pd.DataFrame, paper: float) -> float:
    """The chosen value of one cell (``acc``: validation ACC, replicates x candidates):
    the candidate nearest ``paper`` (in factors of 10; the higher mean between two as
    near) whose mean is below the best's by at most the standard error of their paired
    difference."""
    means = acc.mean()
    best = means.idxmax()
    gap = acc.rsub(acc[best], axis=0).mean()
    near = means.index[gap <= paired_se(acc, best)]
    return float(
        min(near, key=lambda v: (abs(np.log10(v / paper)) if v > 0 else np.inf, -means[v]))
    )


def next_value(profile: Profile, row: dict, edge: str) -> float | None:
    """The candidate beyond a choice at the grid's ``edge`` ("lowest": a tenth of it,
    "highest": ten times it), or None where that is outside the setting's valid range."""
    value = float(f"{row['chosen'] * (0.1 if edge == 'lowest' else 10.0):.6g}")
    try:
        profile.config(
            dataset=row["dataset"],
            regime=row["regime"],
            method=row["method"],
            overrides={"scenario": row["scenario"], f"{row['method']}.{row['setting']}": value},
        )
    except ConfigError:
        return None
    return value


def choices(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the profile's value, the chosen one (``choose``), both scores, the best
    candidate's and ``se``, the standard error of its paired difference to the profile's
    value over the replicates (a gain below it keeps the profile's value), the candidates
    scored and the fewest replicates of one; ``edge``: "lowest" or "highest" where the
    choice is the grid's end, ``next``: the candidate beyond it (None where the setting's
    range ends there: ``range_end``); and ``complete``: every candidate has all
    replicates, ``FACTORS`` are all tried and the choice is not at an edge but where the
    range ends (else the choice is provisional)."""
    rows = []
    for key, runs in table.groupby([*CELL, "profile"], observed=True):
        cell_d = dict(zip([*CELL, "profile"], key))
        own = profiles.get_profile(cell_d["profile"])  # the profile its records name
        paper = profile_value(own, cell_d["dataset"], cell_d["method"])
        acc = runs.pivot_table(index=["order", "seed"], columns="value", values="acc")
        chosen = choose(acc, paper)
        at = runs.groupby("value")["acc"].agg(["mean", "count"])
        edge = {at.index.min(): "lowest", at.index.max(): "highest"}.get(chosen, "")
        row = {**cell_d, "setting": STRENGTH[cell_d["method"]], "paper": paper, "chosen": chosen}
        beyond = next_value(own, row, edge) if edge else None
        tried = set(candidates(own, cell_d["dataset"], cell_d["method"])) <= set(at.index)
        rows.append(
            {
                **row,
                "paper_acc": at["mean"].get(paper, float("nan")),
                "chosen_acc": at["mean"][chosen],
                "best_acc": at["mean"].max(),
                "se": paired_se(acc, paper)[at["mean"].idxmax()] if paper in acc else np.nan,
                "candidates": len(at),
                "replicates": int(at["count"].min()),
                "edge": edge,
                "next": beyond,
                "range_end": bool(edge) and beyond is None,
                "complete": tried
                and at["count"].min() >= len(ORDERS)
                and (not edge or beyond is None),
            }
        )
    return pd.DataFrame(rows)


def extension(profile: Profile, chosen: pd.DataFrame, overrides: dict | None = None) -> list[Run]:
    """The tuning runs of the next candidate of every cell whose choice is at an edge of
    its candidates, on the same replicates (``plan``'s ``overrides``)."""
    runs = []
    for row in chosen[chosen.next.notna()].itertuples():
        cell = {**(overrides or {}), "scenario": row.scenario}
        runs += replicates(profile, row.dataset, [row.regime], row.method, row.next, cell)
    return runs


def search(profile: Profile, runs: list[Run], train, folder, overrides=None) -> pd.DataFrame:
    """Train ``runs`` (``train(runs)``, records under ``folder``), then the next candidate
    of every cell whose choice is at an edge, again until none is: the choices of the
    cells of ``runs``."""
    cells = {tuple(getattr(r.config, k) for k in CELL) for r in runs}
    while True:
        train(runs)
        chosen = choices(load(folder))
        chosen = chosen[[tuple(r) in cells for r in chosen[CELL].itertuples(index=False)]]
        if not (runs := extension(profile, chosen, overrides)):
            return chosen


def evaluation_plan(
    profile: Profile, chosen: pd.DataFrame, *, orders=None, seeds=None
) -> list[Run]:
    """The evaluation runs of every chosen value that is not the profile's, on the
    profile's orders and seeds (or those given)."""
    runs = []
    for row in chosen[chosen.chosen != chosen.paper].itertuples():
        runs += profile.grid(
            datasets=[row.dataset],
            regimes=[row.regime],
            methods=[row.method],
            orders=orders,
            seeds=seeds,
            overrides={"scenario": row.scenario, f"{row.method}.{row.setting}": row.chosen},
            variants=False,
        )
    return runs


def tuned_runs(runs: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``runs`` (a ``results.load`` table) under the chosen values: per tuned
    cell, the primary runs where the choice is the profile's value, else the runs of the
    variant with the chosen value, labelled as primary (``variant`` as the primary's) so
    that the findings read them as the grid's. Cells without a choice, or whose chosen
    runs are missing, are left out."""
    parts = []
    for row in chosen.itertuples():
        cell = runs[
            (runs.dataset == row.dataset)
            & (runs.scenario == row.scenario)
            & (runs.regime == row.regime)
            & (runs.method == row.method)
        ]
        primary = _variant(row, {})
        wanted = primary if row.chosen == row.paper else _variant(row, {_key(row): row.chosen})
        parts.append(cell[cell.variant == wanted].assign(variant=primary))
    return pd.concat(parts, ignore_index=True) if parts else runs.iloc[:0]


def _key(row) -> str:
    return f"{row.method}.{row.setting}"


def _variant(row, settings: dict) -> str:
    """The variant name of a cell's runs with ``settings`` (a scenario other than the
    task-incremental one is part of it)."""
    if row.scenario != "task_incremental":
        settings = {**settings, "scenario": row.scenario}
    return results.variant_name(settings)


def missing(primary: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """The cells of ``primary`` that ``tuned`` lacks: their tuning is not complete, or
    their changed choice not evaluated yet."""
    have = set(map(tuple, tuned[CELL].drop_duplicates().to_numpy()))
    cells = primary[CELL].drop_duplicates()
    return cells[[tuple(c) not in have for c in cells.to_numpy()]]


def reversals(primary: pd.DataFrame, tuned: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The pairs of methods whose order by mean ACC tuning reverses, per dataset, scenario
    and regime: each pair's gap (first minus second, mean over orders of the order's mean
    over seeds) and its ``level`` t-interval over the orders, with the paper's values and
    with the tuned ones (runs as ``collect`` gives them)."""
    keys, rows = ["dataset", "scenario", "regime"], []
    for name, runs in (("paper", primary), ("tuned", tuned)):
        by_order = runs.groupby([*keys, "method", "order"], observed=True).acc.mean()
        wide = by_order.unstack("method")
        for key, cell in wide.groupby(keys, observed=True):
            methods = list(cell.dropna(axis=1, how="all").columns)
            for i, a in enumerate(methods):
                for b in methods[i + 1 :]:
                    gap = (cell[a] - cell[b]).dropna()
                    half = stats.t.ppf((1 + level) / 2, len(gap) - 1) * stats.sem(gap)
                    mean = gap.mean()
                    rows.append((*key, a, b, name, mean, mean - half, mean + half))
    gaps = pd.DataFrame(rows, columns=[*keys, "first", "second", "values", "gap", "lo", "hi"])
    wide = gaps.pivot_table(
        index=[*keys, "first", "second"], columns="values", values=["gap", "lo", "hi"]
    ).dropna()
    wide.columns = [f"{stat}_{name}" for stat, name in wide.columns]
    flipped = np.sign(wide.gap_paper) * np.sign(wide.gap_tuned) < 0
    columns = ["gap_paper", "lo_paper", "hi_paper", "gap_tuned", "lo_tuned", "hi_tuned"]
    return wide.loc[flipped, columns].reset_index()


def collect(records, profile: str, folder: str):
    """A tuned grid's committed records, or None without tuning records: (tuning runs,
    complete cells' choices, primary runs, tuned runs: the complete cells' under their
    choices, and the methods without a strength to tune as they ran, so that both sets
    hold the same methods: the study's, ``STUDY``, whatever else ``folder`` holds).
    ``records / "tuning" / profile`` holds the tuning runs, ``records / "tuned" /
    profile`` the evaluation runs of changed choices, and ``records / folder`` the
    primary runs (each scenario's own, not its variants), restricted to the seeds the
    tuned runs have."""
    records = Path(records)
    table = load(records / "tuning" / profile) if (records / "tuning" / profile).is_dir() else None
    if table is None or table.empty or not (records / folder).is_dir():
        return None
    primary = results.load(records / folder)
    own = ["", *(results.variant_name({"scenario": s}) for s in SCENARIOS)]
    primary = primary[primary.variant.isin(own) & primary.method.isin(STUDY)]
    table = table[table.scenario.isin(primary.scenario.unique())]
    chosen = choices(table).query("complete")
    both = primary
    if (records / "tuned" / profile).is_dir():
        changed = results.load(records / "tuned" / profile)
        primary = primary[primary.seed.isin(changed.seed.unique())]
        both = pd.concat([primary, changed], ignore_index=True)
    fixed = primary[~primary.method.isin(STRENGTH)]  # GEM's memory is its cost; references
    return table, chosen, primary, pd.concat([tuned_runs(both, chosen), fixed], ignore_index=True)
