"""What the findings' tests share: the verdict, the scope of one analysis, the checks on the
records, the chance rule and the multiplicity adjustment."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cl_regimes.config import ConfigError

PAPER_METHODS = ("ewc", "lwf", "si", "gem")  # finetune and joint are references
DEPTH = {
    "head": 0,
    "from_layer4": 1,
    "from_layer3": 2,
    "from_layer2": 3,
    "from_layer1": 4,
    "full": 5,
}  # the nested regimes; bn_affine is not nested and has no depth
MIN_EXCESS = 0.5  # a cell learns when it covers half the way from chance to perfect accuracy
BORDER = 0.1  # a cell within this of the chance threshold must not decide a verdict
LEVEL = 0.05
REPLICATE = ["order", "seed"]
RUN_KEYS = ["dataset", "regime", "method", *REPLICATE]
POOLED = "pooled"
SEEN = {  # finding or part -> what its ``detectable`` measures, in words
    1: ("crossings", "larger than"),  # the ACC gap on each side
    2: ("trends", "steeper than rho ="),  # the mean per-order Spearman rho, every method
    3: ("coupling changes", "from the shallowest to the deepest regime larger than"),
}


@dataclass
class Verdict:
    """One test of a finding (or of one part of it) in a dataset or pooled over datasets.

    ``role``: "primary" (pooled: the headline), "secondary" (one dataset; supported only when
    the pooled verdict is and its Holm-adjusted p is below the level, so that the primary and
    the per-dataset verdicts together keep the family-wise error at the level) or
    "exploratory" (not adjusted: another definition, or with the chance rule off)."""

    finding: int
    part: str  # what is tested: "ranking", "u", "u per parameter", "forgetting", "coupling"
    dataset: str  # a dataset, or "pooled"
    role: str
    claim: str
    null: str
    statistic: str
    observed: float
    p_value: float  # adjusted where role is "secondary"
    level: float
    verdict: str  # "supported", "not supported" or "not testable"
    n_orders: int
    effects: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # cell or record -> reason
    note: str = ""  # why not testable, or in how many methods
    detail: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    detectable: float = np.nan  # smallest effect found with 80% power (``SEEN`` says which)

    @property
    def supported(self) -> bool | None:
        return None if self.verdict == "not testable" else self.verdict == "supported"

    @property
    def p_text(self) -> str:
        """ "= 0.019", or "< 0.001" below what three decimals show."""
        if np.isnan(self.p_value):
            return "n/a"
        return "< 0.001" if self.p_value < 0.001 else f"= {self.p_value:.3f}"

    def seen(self) -> str:
        """What the test would have seen: "crossings larger than 0.031 would have been seen
        (80% power)", or that no effect in its range would have been."""
        if self.verdict == "not testable":
            return ""
        what = SEEN[self.finding]
        if np.isnan(self.detectable):
            return f"no {what[0]} in the simulated range would have been seen with 80% power"
        return f"{what[0]} {what[1]} {self.detectable:.3g} would have been seen (80% power)"

    def headline(self) -> str:
        """The verdict in one short sentence: claim, verdict, p-value, note and what the
        test would have seen."""
        text = f"Finding {self.finding} ({self.claim}): {self.verdict}"
        if not np.isnan(self.p_value):
            text += f", p {self.p_text}"
        text += f"; {self.note}" if self.note else ""
        return text + (f"; {self.seen()}." if self.seen() else ".")

    def sentence(self) -> str:
        """The headline plus the null, the statistic, the effects and the exclusions."""
        text = self.headline()
        if self.verdict != "not testable":
            effects = "; ".join(
                f"{k} {v:.3g}"
                + (
                    f" [{self.intervals[k][0]:.3g}, {self.intervals[k][1]:.3g}]"
                    if k in self.intervals
                    else ""
                )
                for k, v in self.effects.items()
            )
            text += (
                f" Null: {self.null}. Statistic: {self.statistic} = {self.observed:.3g} "
                f"({self.n_orders} orders, level {self.level}, {self.role})"
                + (f"; {effects} (95% intervals)" if effects else "")
                + "."
            )
        if self.excluded:
            text += f" Left out: {excluded_text(self.excluded)}."
        return text


def role_in(role: str, dataset: str) -> str:
    """A verdict's role in ``dataset``: a primary test's per-dataset verdicts are secondary."""
    return "secondary" if role == "primary" and dataset != POOLED else role


def excluded_in(excluded: dict[str, str], dataset: str) -> dict[str, str]:
    """What was left out (named "<dataset>/...") of ``dataset``, or of all when pooled."""
    return {n: r for n, r in excluded.items() if dataset == POOLED or n.startswith(dataset + "/")}


def excluded_text(excluded: dict[str, str]) -> str:
    return "; ".join(f"{k} ({v})" for k, v in excluded.items())


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per verdict: effects as columns, intervals as ``<name>_lo/_hi``. With one
    dataset, its verdicts are the pooled ones: only those are listed."""
    datasets = {v.dataset for v in verdicts} - {POOLED}
    rows = []
    for v in verdicts:
        if (
            len(datasets) == 1
            and v.dataset != POOLED
            and any(w.dataset == POOLED and w.part == v.part for w in verdicts)
        ):
            continue
        row = {
            k: getattr(v, k)
            for k in (
                "finding",
                "part",
                "dataset",
                "role",
                "claim",
                "verdict",
                "p_value",
                "statistic",
                "observed",
                "n_orders",
                "detectable",
                "note",
            )
        }
        row |= v.effects
        for name, (lo, hi) in v.intervals.items():
            row |= {f"{name}_lo": lo, f"{name}_hi": hi}
        rows.append(row | {"detectable as": v.seen(), "left out": len(v.excluded)})
    return pd.DataFrame(rows)


def details(verdicts: list[Verdict]) -> pd.DataFrame:
    """The detail tables of ``verdicts`` stacked, with their part (empty if none has one)."""
    frames = [v.detail.assign(part=v.part) for v in verdicts if not v.detail.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["part"])


def untestable(finding, part, dataset, role, texts, level, excluded, note) -> Verdict:
    claim, null, statistic = texts
    return Verdict(
        finding=finding,
        part=part,
        dataset=dataset,
        role=role,
        claim=claim,
        null=null,
        statistic=statistic,
        observed=np.nan,
        p_value=np.nan,
        level=level,
        verdict="not testable",
        n_orders=0,
        excluded=excluded,
        note=note,
    )


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (valid under any dependence between the tests)."""
    p = np.asarray(p, float)
    adjusted = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    steps = p[order] * (len(order) - np.arange(len(order)))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def gate(verdicts: list[Verdict]) -> list[Verdict]:
    """Per-dataset verdicts after the pooled one (the last): Holm over datasets, and
    "supported" only where the pooled verdict is (serial gatekeeping keeps the family-wise
    error of all of them at the level)."""
    *per_dataset, pooled = verdicts
    tested = [v for v in per_dataset if v.verdict != "not testable"]
    for v, p in zip(tested, holm([v.p_value for v in tested])):
        v.p_value = float(p)
        v.verdict = "supported" if pooled.supported and p < v.level else "not supported"
        if pooled.verdict != "supported" and p < v.level:
            v.note = (v.note + "; " if v.note else "") + "gated: the pooled verdict is not"
    return verdicts


def interval(draws) -> tuple[float, float]:
    draws = np.asarray(draws, float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return (np.nan, np.nan)
    return tuple(float(q) for q in np.quantile(draws, [0.025, 0.975]))


# ---- scope and hygiene -----------------------------------------------------------------------


def scope(
    df: pd.DataFrame, variant: str = "", bn_stats: str | None = None, *, level: str = "run"
) -> pd.DataFrame:
    """The rows of one variant and one bn_stats setting (the only one present if None),
    checked: one profile, one seeding, no run (or task of a run) twice."""
    if "variant" in df:
        df = df[df.variant.fillna("") == variant]
    for column, chosen in (("bn_stats", bn_stats), ("seeding", None), ("profile", None)):
        if column not in df:
            continue
        if chosen is not None:
            df = df[df[column] == chosen]
        elif df[column].nunique(dropna=False) > 1:  # a missing value is one more value
            hint = "pass bn_stats= to analyse" if column == "bn_stats" else "analyse"
            values = sorted(map(str, df[column].fillna("<missing>").unique()))
            raise ConfigError(f"records mix {column} {values}; {hint} one at a time")
    keys = [k for k in RUN_KEYS if k in df] + (["position"] if level == "task" else [])
    twice = df[df.duplicated(keys, keep=False)]
    if len(twice):
        names = twice.path if "path" in twice else twice[keys].astype(str).agg("/".join, axis=1)
        raise ConfigError(
            f"{len(twice)} records share a run identity ({', '.join(keys)}): "
            f"{', '.join(map(str, names.iloc[:4]))}; remove the duplicates"
        )
    return df


def drop_missing(df: pd.DataFrame, columns, excluded: dict[str, str]) -> pd.DataFrame:
    """``df`` without the rows whose ``columns`` are not finite; each is named in
    ``excluded`` (whole runs: a run with one bad task is left out entirely)."""
    values = df[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values).all(1)
    if not bad.any():
        return df
    keys = [k for k in RUN_KEYS if k in df]
    runs = df.loc[bad, keys].drop_duplicates()
    for row in runs.itertuples(index=False):
        name = "/".join(str(getattr(row, k)) for k in keys)
        excluded[name] = f"non-finite {' or '.join(columns)}"
    hit = df.set_index(keys).index.isin(runs.set_index(keys).index)
    return df[~hit]


# ---- chance ----------------------------------------------------------------------------------


def learned(table: pd.DataFrame) -> pd.Series:
    """Per row, the accuracy on a task right after training it: a runs table's mean of
    diag(R), nan unless all of R is finite (ACC and forgetting come from R); a tasks
    table's ``acc_learned``."""
    if "acc_learned" in table:
        return pd.to_numeric(table.acc_learned, errors="coerce")
    return pd.Series(
        [
            float(np.mean(np.diag(R))) if np.isfinite(R).all() else np.nan
            for R in map(np.asarray, table.R)
        ],
        index=table.index,
        dtype=float,
    )


def clean(table: pd.DataFrame, columns, excluded: dict[str, str]) -> pd.DataFrame:
    """``table`` without the runs whose ``columns`` or learned accuracy (``learned``: R, or
    acc_learned) are not finite, or (a tasks table) whose task rows are incomplete, each
    named in ``excluded``; the runs missing from a replicate that others of their dataset
    have are named too (a test over replicates leaves that replicate out)."""
    if "position" in table:
        table = whole_runs(table, excluded)
    if "R" in table or "acc_learned" in table:
        name = "acc_learned" if "acc_learned" in table else "R"
        bad = table.assign(**{name: learned(table)})
        table = table.loc[drop_missing(bad, [*columns, name], excluded).index]
    else:
        table = drop_missing(table, columns, excluded)
    missing_runs(table, excluded)
    return table


def whole_runs(tasks: pd.DataFrame, excluded: dict[str, str]) -> pd.DataFrame:
    """The tasks of the runs that have a row for each of their dataset's tasks (positions
    0 .. T-1, T the most common count among its runs); the others are named and left out (a
    run's mean over fewer tasks, or over a shorter sequence, is not the same quantity)."""
    keys = [k for k in RUN_KEYS if k in tasks]
    runs = tasks.groupby(keys, sort=False).position.agg(["count", "max", "nunique"])
    runs = runs.reset_index()
    usual = runs.groupby("dataset")["max"].agg(lambda v: v.mode().max()) + 1
    wanted = runs.dataset.map(usual)
    bad = (runs["max"] + 1 != wanted) | (runs["count"] != wanted) | (runs["nunique"] != wanted)
    bad |= tasks.groupby(keys, sort=False).position.min().to_numpy() != 0
    for row in runs[bad].itertuples(index=False):
        name = "/".join(str(getattr(row, k)) for k in keys)
        excluded[name] = (
            f"{row.nunique} task rows up to position {row.max} where the dataset's runs "
            f"have {usual[row.dataset]} tasks"
        )
    drop = runs[bad].set_index(keys).index
    return tasks[~tasks.set_index(keys).index.isin(drop)]


def missing_runs(table: pd.DataFrame, excluded: dict[str, str]) -> None:
    """Name in ``excluded`` each run that a (dataset, regime, method) cell lacks for a
    replicate (order, seed) that other cells of its dataset have."""
    keys = [k for k in RUN_KEYS if k in table]
    if not {"order", "seed"} <= set(keys):
        return
    have = table[keys].drop_duplicates()
    for dataset, sub in have.groupby("dataset", sort=False):
        replicates = sub[REPLICATE].drop_duplicates()
        for (regime, method), cell in sub.groupby(["regime", "method"], sort=False):
            present = set(zip(cell.order, cell.seed))
            for o, sd in zip(replicates.order, replicates.seed):
                name = f"{dataset}/{regime}/{method}/{o}/{sd}"
                if (o, sd) not in present and name not in excluded:
                    excluded[name] = "no record, though other cells have this replicate"


def chance_cells(
    table: pd.DataFrame,
    min_excess: float = MIN_EXCESS,
    *,
    methods=PAPER_METHODS,
    variant: str = "",
    bn_stats: str | None = None,
) -> pd.DataFrame:
    """Per dataset, regime and method: ``diag_acc``, the mean accuracy on each task right
    after training it (from a runs table's R or a tasks table's ``acc_learned``; runs with a
    non-finite value there are left out, ``n_runs`` counts the others), and its ``excess``
    over chance as a share of the way to perfect, (diag_acc - chance) / (1 - chance),
    chance being 1 / the classes a task's samples are scored over (its classes,
    task-incrementally; all those met so far, class-incrementally). ``at_chance`` when
    excess < ``min_excess``: such a cell has learned too little for its rank, its
    forgetting or its updates to mean anything (it forgets nothing because it learned
    nothing), so the tests leave it out.

    Columns: dataset, regime, method, diag_acc, chance, excess, n_runs, at_chance."""
    df = scope(table, variant, bn_stats, level="task" if "position" in table else "run")
    df = df[df.method.isin(methods)]
    if "chance" not in df or not ("R" in df or "acc_learned" in df):
        raise ConfigError(
            "the chance rule needs chance and R (runs) or acc_learned (tasks), "
            "as results.load gives them; pass min_excess=None to keep every cell"
        )
    diag = (
        df.assign(diag=learned(df))
        .groupby(RUN_KEYS, sort=False)
        .agg(diag=("diag", lambda v: v.mean(skipna=False)), chance=("chance", "mean"))
        .reset_index()
        .dropna(subset=["diag"])
    )
    out = (
        diag.groupby(["dataset", "regime", "method"], sort=False)
        .agg(diag_acc=("diag", "mean"), chance=("chance", "mean"), n_runs=("diag", "size"))
        .reset_index()
    )
    out["excess"] = (out.diag_acc - out.chance) / (1 - out.chance)
    out["at_chance"] = out.excess < (-np.inf if min_excess is None else min_excess)
    return out[
        ["dataset", "regime", "method", "diag_acc", "chance", "excess", "n_runs", "at_chance"]
    ]


def missing_cells(table: pd.DataFrame, methods) -> dict[str, str]:
    """The (dataset, regime, method) cells of a dataset's regimes with no runs of a method
    tested, by name: a test over the others must say what it could not test."""
    have = set(zip(table.dataset, table.regime, table.method))
    return {
        f"{d}/{r}/{m}": "no records"
        for d, regimes in table.groupby("dataset", sort=False).regime
        for r in pd.unique(regimes)
        for m in methods
        if (d, r, m) not in have
    }


def chance_excluded(
    table, min_excess, methods, variant: str = "", bn_stats: str | None = None
) -> tuple[set, dict[str, str]]:
    """The (dataset, regime, method) cells at chance, and their reasons by name, with the
    cells that have no records named too."""
    missing = missing_cells(table, methods) if len(table) else {}
    if min_excess is None or table.empty:
        return set(), missing
    cells = chance_cells(table, min_excess, methods=methods, variant=variant, bn_stats=bn_stats)
    cells = cells[cells.at_chance]
    reasons = {
        f"{c.dataset}/{c.regime}/{c.method}": f"at chance: diagonal accuracy {c.diag_acc:.3f}, "
        f"{c.excess:.2f} of the way from chance {c.chance:.2f} to 1 (< {min_excess})"
        for c in cells.itertuples()
    }
    return set(zip(cells.dataset, cells.regime, cells.method)), missing | reasons


def both_ways(test):
    """``test(table, **options)`` made not to turn on the chance border: where some cell's
    excess is within BORDER of the threshold (``min_excess``), the test runs with the
    threshold below those cells (they are in) and above them (they are out), and each
    verdict is the less supported of the two (supported only if both are; the larger p),
    saying so in its note and naming the cells."""

    @functools.wraps(test)
    def checked(table, **options):
        bound = inspect.signature(test).bind(table, **options)
        bound.apply_defaults()
        chosen = bound.arguments

        def analyse(threshold):
            return test(table, **(options | {"min_excess": threshold}))

        return _both_ways(
            analyse,
            table,
            chosen["min_excess"],
            chosen["methods"],
            chosen["variant"],
            chosen["bn_stats"],
        )

    return checked


def _both_ways(analyse, table, min_excess, methods, variant, bn_stats) -> list[Verdict]:
    if min_excess is None or table.empty:
        return analyse(min_excess)
    cells = chance_cells(table, min_excess, methods=methods, variant=variant, bn_stats=bn_stats)
    near = cells[(cells.excess - min_excess).abs() < BORDER]
    if near.empty:
        return analyse(min_excess)
    names = {
        f"{c.dataset}/{c.regime}/{c.method}": f"near the chance threshold: {c.excess:.2f} of the "
        f"way from chance (within {BORDER} of {min_excess}); verdicts must hold with and "
        "without it"
        for c in near.itertuples()
    }
    inside, outside = analyse(min_excess - BORDER), analyse(min_excess + BORDER)
    others = {(v.dataset, v.part): v for v in outside}
    rank = {"not testable": 0, "not supported": 1, "supported": 2}
    out = []
    for v in inside:
        w = others.get((v.dataset, v.part), v)
        keep, other = sorted(
            (v, w), key=lambda x: (rank[x.verdict], -np.nan_to_num(x.p_value, nan=1.0))
        )
        if not np.isnan(other.p_value) and not np.isnan(keep.p_value):
            keep.p_value = max(keep.p_value, other.p_value)
        where = "in" if keep is v else "out"
        keep.note = "; ".join(
            x
            for x in (
                keep.note,
                f"{len(names)} cells near the chance threshold: "
                + (
                    "the verdict holds with and without them"
                    if keep.verdict == other.verdict
                    else f"{other.verdict} only with them {'out' if where == 'in' else 'in'}"
                ),
            )
            if x
        )
        keep.excluded = {k: r for k, r in keep.excluded.items() if k not in names} | {
            k: r for k, r in names.items() if excluded_in({k: r}, keep.dataset)
        }
        out.append(keep)
    return out
