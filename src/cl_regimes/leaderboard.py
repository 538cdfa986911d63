"""The leaderboard: each continual-learning method's standing in each regime.

Over the tidy runs table of ``results.load``, within one scenario and dataset. Methods
are compared on the replicates (order, seed) that every one of them ran in every regime
compared (``complete``), so that each rank is over the same task sequences. Within a
replicate and regime, methods are ranked by ACC (1 = highest, ties share their mean
rank). Intervals are 95% percentile bootstraps over orders, an order's seeds resampled
together (they share its task sequence).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes import methods as registry
from cl_regimes import regimes as regime_list
from cl_regimes.findings.common import PAPER_METHODS
from cl_regimes.profiles import REPLAY

REFERENCE = "finetune"  # ranked beside the methods: the floor every method should clear
UNRANKED = ("joint",)  # trains on every task seen: an upper reference, not a CL method
REPLICATE = ["order", "seed"]
BOOTSTRAP = 2000


def ranked_methods(runs: pd.DataFrame) -> list[str]:
    """The methods of ``runs`` the leaderboard ranks, in the book's order."""
    present = set(runs.method.astype(str))
    return [m for m in registry.names() if m in present and m not in UNRANKED]


def expected_methods(scenario: str) -> list[str]:
    """The methods a board of ``scenario`` ranks: the reference, the paper's four and the
    replay methods, those that apply to the scenario, in the book's order."""
    chosen = {REFERENCE, *PAPER_METHODS, *REPLAY}
    return [m for m in registry.names() if m in chosen and scenario in registry.get(m).scenarios]


def complete(runs: pd.DataFrame, methods=None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The runs of ``methods`` (default: every ranked one) in the regimes where all of
    them ran, on the replicates all of them share there; and what was left out, why."""
    methods = list(methods or ranked_methods(runs))
    runs = runs[runs.method.astype(str).isin(methods)]
    left: dict[str, str] = {}
    ran = set(runs.method.astype(str))
    absent = [m for m in methods if m not in ran]
    if absent:
        left["methods"] = f"no runs of {', '.join(absent)} in any regime"
        methods = [m for m in methods if m not in absent]
    kept, lacking = [], {}
    for regime in regime_list.REGIMES:
        ran = set(runs.method[runs.regime.astype(str) == regime].astype(str))
        if not ran:
            continue
        missing = ", ".join(m for m in methods if m not in ran)
        if missing:
            lacking.setdefault(missing, []).append(regime)
        else:
            kept.append(regime)
    for missing, where in lacking.items():
        left[f"regime{'s' * (len(where) > 1)} {', '.join(where)}"] = f"no runs of {missing}"
    runs = runs[runs.regime.astype(str).isin(kept)]
    counts = runs.groupby(REPLICATE, observed=True).size()
    full = counts[counts == len(kept) * len(methods)].index
    partial = len(counts) - len(full)
    if partial:
        left["replicates"] = f"{partial} (order, seed) pairs lack some method or regime"
    keep = pd.MultiIndex.from_frame(runs[REPLICATE]).isin(full)
    return runs[keep].copy(), left


def _wide(runs: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """ACC by (regime, order, seed) rows and method columns."""
    table = runs.assign(method=runs.method.astype(str), regime=runs.regime.astype(str))
    return table.pivot_table(index=["regime", *REPLICATE], columns="method", values=metric)


def _regimes(wide: pd.DataFrame) -> list[str]:
    present = set(wide.index.get_level_values("regime"))
    return [r for r in regime_list.REGIMES if r in present]


def _boot(per_replicate: pd.DataFrame, seed: int) -> np.ndarray:
    """Bootstrap means [draws, columns] of a (order, seed)-indexed table: orders drawn with
    replacement, each order its seeds' mean."""
    per_order = per_replicate.groupby(level="order").mean().to_numpy()
    draws = np.random.default_rng(seed).integers(0, len(per_order), (BOOTSTRAP, len(per_order)))
    return per_order[draws].mean(1)


def _interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.percentile(draws, 2.5, axis=0), np.percentile(draws, 97.5, axis=0)


def rank_table(runs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per (regime, method): mean ACC and mean rank over replicates with their intervals,
    and ``place``, the rank of the method's mean ACC in the regime."""
    wide = _wide(runs)
    ranks = wide.rank(axis=1, ascending=False)
    parts = []
    for regime in _regimes(wide):
        acc, rank = wide.xs(regime), ranks.xs(regime)
        (acc_low, acc_high), (rank_low, rank_high) = (
            _interval(_boot(t, seed)) for t in (acc, rank)
        )
        part = pd.DataFrame(
            {
                "acc": acc.mean(),
                "acc_low": acc_low,
                "acc_high": acc_high,
                "rank": rank.mean(),
                "rank_low": rank_low,
                "rank_high": rank_high,
                "place": acc.mean().rank(ascending=False),
            }
        )
        parts.append(part.assign(regime=regime))
    table = pd.concat(parts).rename_axis("method").reset_index()
    depth = pd.CategoricalDtype(_regimes(wide), ordered=True)  # tables in depth order
    return table.astype({"regime": depth}).set_index(["regime", "method"])


def standing(runs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per method, how much its standing depends on the regime: its best and worst place
    (and where), and its largest swing against another method (not the reference, whose
    own swings say little about a method): the gap in ACC to that method in the regime
    where it leads most minus the gap where it trails most (paired by replicate), with
    its interval for those two regimes."""
    wide = _wide(runs)
    means = wide.groupby(level="regime").mean().reindex(_regimes(wide))
    place = means.rank(axis=1, ascending=False)  # rank_table's place, without its intervals
    rows = []
    for method in wide.columns:
        best, worst = place[method].idxmin(), place[method].idxmax()
        rivals = means.drop(columns=[method, REFERENCE], errors="ignore")
        gaps = means[[method]].to_numpy() - rivals
        swings = gaps.max() - gaps.min()
        other = swings.idxmax()
        ahead, behind = gaps[other].idxmax(), gaps[other].idxmin()
        paired = wide[method] - wide[other]
        low, high = _interval(_boot((paired.xs(ahead) - paired.xs(behind)).to_frame(), seed))
        rows.append(
            {
                "method": method,
                "best place": place.at[best, method],
                "best in": best,
                "worst place": place.at[worst, method],
                "worst in": worst,
                "largest swing against": other,
                "gap where it leads most": gaps.at[ahead, other],
                "leads in": ahead,
                "gap where it trails most": gaps.at[behind, other],
                "trails in": behind,
                "swing": swings[other],
                "swing_low": low[0],
                "swing_high": high[0],
            }
        )
    return pd.DataFrame(rows).set_index("method")


def proxy_regimes(runs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per regime: how well its ranking of the methods stands for the others' (for a
    benchmark that can run one regime only): Kendall's tau between its methods' ACC and
    each other regime's within a replicate, averaged over the other regimes and the
    replicates, with its interval."""
    wide = _wide(runs)
    regs = _regimes(wide)
    replicates = wide.xs(regs[0]).index
    taus = pd.DataFrame(index=replicates, columns=regs, dtype=float)
    for r in regs:
        others = [o for o in regs if o != r]
        taus[r] = [
            np.nanmean(
                [
                    stats.kendalltau(wide.loc[(r, *rep)], wide.loc[(o, *rep)]).statistic
                    for o in others
                ]
            )
            for rep in replicates
        ]
    low, high = _interval(_boot(taus, seed))
    table = pd.DataFrame({"mean tau with the other regimes": taus.mean(), "low": low, "high": high})
    return table.rename_axis("regime").sort_values(
        "mean tau with the other regimes", ascending=False
    )
