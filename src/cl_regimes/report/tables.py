"""Numeric tables: per regime, per method, across regimes and scenarios, and where the
records come from. ``report.style`` formats them for the page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cl_regimes import models, profiles, results
from cl_regimes.config import SCENARIOS
from cl_regimes.report import METRICS, UPDATES, method_order, ordered, regime_order


def trainable_table(regime: str, width: int) -> pd.DataFrame:
    """The regime's blocks: parameters and trainable parameters in the paper's network
    (width 64, 10 classes) and trainable ones at ``width``."""
    table = models.parameter_table(regime, 64, 10).set_index("block")
    table = table.rename(
        columns={"parameters": "parameters (width 64)", "trainable": "trainable (width 64)"}
    )
    if width != 64:
        own = models.parameter_table(regime, width, 10).set_index("block")
        table.insert(2, f"trainable (width {width})", own.trainable)
    return table


def by_method(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a per dataset, variant and method table in the methods' order; without the
    variant level where there are only the profile's own runs (it would be blank)."""
    order = method_order(table.index.get_level_values("method"))
    table = table.loc[sorted(table.index, key=lambda k: (k[0], k[1], order.index(k[2])))]
    return table.droplevel("variant") if set(table.index.get_level_values(1)) == {""} else table


def method_table(runs: pd.DataFrame, metrics=tuple(METRICS)) -> pd.DataFrame:
    """Per dataset, variant and method: each metric's mean and std over orders (and seeds)."""
    keys = ["dataset", "variant", "method"]
    table = runs.groupby(keys)[list(metrics)].agg(["mean", "std"])
    table[("runs", "n")] = runs.groupby(keys).size()
    return by_method(table.rename(columns=METRICS, level=0))


def identical_variants(runs: pd.DataFrame) -> list[str]:
    """The variants whose every run has the same accuracy matrix as the profile's own run of
    the same dataset, method, order and seed (e.g. ``bn_stats=follow_regime`` under
    ``full``, where every BatchNorm trains anyway): their rows would repeat the profile's."""
    key = ["dataset", "method", "order", "seed"]
    own = {tuple(k): R for *k, R in runs[runs.variant == ""][[*key, "R"]].itertuples(False)}
    same = []
    for variant, group in runs[runs.variant != ""].groupby("variant"):
        pairs = [(own.get(tuple(k)), R) for *k, R in group[[*key, "R"]].itertuples(False)]
        if all(a is not None and np.array_equal(a, b) for a, b in pairs):
            same.append(variant)
    return same


def update_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, variant and method: means over tasks and orders of the update statistics
    (both definitions of u; see the protocol)."""
    keys = ["dataset", "variant", "method"]
    return by_method(tasks.groupby(keys)[list(UPDATES)].mean().rename(columns=UPDATES))


def regime_table(runs: pd.DataFrame, dataset: str, metric: str = "acc") -> pd.DataFrame:
    """Method x regime: the metric's mean over orders."""
    sub = runs[runs.dataset == dataset]
    table = sub.pivot_table(index="method", columns="regime", values=metric, aggfunc="mean")
    return table.loc[method_order(table.index), regime_order(table.columns)]


def ranks(table: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Each method's rank within each regime of a ``regime_table`` (1 = best; for
    forgetting, the lowest is best)."""
    return table.rank(ascending=metric.startswith("forgetting"), method="min").astype("Int64")


def variant_comparison(runs: pd.DataFrame, variant: str, metric: str = "acc") -> pd.DataFrame:
    """Per dataset, regime and method where ``variant`` has records: the metric's mean over
    orders in the profile's own runs and in the variant's, and their difference."""
    sub = runs[runs.variant.isin(["", variant])]
    table = sub.pivot_table(
        index=["dataset", "regime", "method"], columns="variant", values=metric, aggfunc="mean"
    )
    if variant not in table:
        return pd.DataFrame(columns=["profile", "variant", "difference"])
    table = table.dropna().rename(columns={"": "profile", variant: "variant"})
    return table.assign(difference=table["variant"] - table["profile"])


def survival_table(survival: list[pd.DataFrame]) -> pd.DataFrame:
    """``findings.survival``'s tables side by side: per variant (with the regimes it covers)
    and finding, the verdict and p-value from the profile's runs and from the variant's."""
    table = pd.concat(survival, ignore_index=True)
    table["runs of"] = table["runs of"].where(table["runs of"] == "profile", "variant")
    wide = table.pivot(
        index=["variant", "regimes", "finding"], columns="runs of", values=["verdict", "p_value"]
    )
    return wide.swaplevel(axis=1)[
        [(who, what) for who in ("profile", "variant") for what in ("verdict", "p_value")]
    ]


def by_scenario(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each scenario's own runs, as a profile's own runs (variant "") for the findings:
    those whose variant names nothing but their scenario (not a variant within it)."""
    return {
        s: runs[
            (runs.scenario == s) & runs.variant.isin(["", results.variant_name({"scenario": s})])
        ].assign(variant="")
        for s in ordered(runs.scenario, SCENARIOS)
    }


def provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """Where the records come from: runs per device, library commit, torch and precision,
    with the machines that made them (host names; records made before hosts were
    recorded count none) and their summed wall time in hours (a grouped run's is its
    share of its group's)."""
    keys = ["device", "commit", "torch", "precision"]
    return runs.groupby(keys, dropna=False).agg(
        runs=("acc", "size"),
        datasets=("dataset", lambda s: ", ".join(sorted(set(s)))),
        group_size=("group_size", "max"),
        machines=("host", "nunique"),
        hours=("wall_time_s", lambda s: s.sum() / 3600),
    )


def scale_table(loaded: dict) -> pd.DataFrame:
    """One row per profile with records (``{profile: (runs, tasks, folder)}``): its size
    (datasets, image side, network width, training images per task, orders) and how many
    of its grid's runs the records hold."""
    rows = []
    for name, (runs, _, folder) in loaded.items():
        prof = profiles.get_profile(name)
        values = prof.values(prof.datasets[0])
        grid = len(prof.datasets) * len(prof.regimes) * len(prof.grid_methods()) * len(prof.orders)
        rows.append(
            {
                "profile": name,
                "records": folder.parent.name + "/",
                "datasets": ", ".join(prof.datasets),
                "image side": values["image_size"],
                "width": values["width"],
                "images per task": values["train_per_task"] or "all",
                "orders": len(prof.orders),
                "runs": len(runs),
                "share of the grid": len(runs) / grid,
            }
        )
    return pd.DataFrame(rows)


def standing_table(standing: pd.DataFrame) -> pd.DataFrame:
    """``leaderboard.standing`` in the columns a reader scans: best and worst place with
    their regimes, the rival, and the swing with its interval and regimes."""

    def place(value, regime) -> str:
        return f"{value:g} ({regime})"

    return pd.DataFrame(
        {
            "best place": [place(*r) for r in zip(standing["best place"], standing["best in"])],
            "worst place": [place(*r) for r in zip(standing["worst place"], standing["worst in"])],
            "largest swing against": standing["largest swing against"],
            "swing in ACC gap [95%]": [
                f"{s:.3f} [{lo:.3f}, {hi:.3f}]"
                for s, lo, hi in zip(standing.swing, standing.swing_low, standing.swing_high)
            ],
            "leads most in / trails most in": standing["leads in"] + " / " + standing["trails in"],
        },
        index=standing.index,
    )
