"""Statistical verdicts on the paper's three findings, and the original study's analyses.

Inputs are the tidy tables of ``results.load``: ``runs`` (one row per run) and ``tasks``
(one row per task of a run). Every analysis runs within one variant and one ``bn_stats``
setting, and refuses records that mix profiles or seedings or hold a run twice; runs with
non-finite values are left out and named. A replicate is an (order, seed) pair, called an
order. Cells (dataset, regime, method) that learn less than half the way from chance to
perfect are left out of every test (``common.chance_cells``).

One primary verdict per finding, pooled over datasets (``primary``):
1. ``ranking.finding_ranking``: some pair of methods crosses between regimes;
2. ``trends.finding_depth``: deeper regimes give larger updates per trainable parameter and
   more forgetting, in every method (both parts must hold);
3. ``trends.finding_coupling``: the position-adjusted coupling of updates with forgetting
   strengthens with depth, in every method.
Per-dataset verdicts are secondary (Holm over datasets, gated by the pooled one); other
definitions and the chance rule switched off are exploratory. ``original`` reproduces the
original study's analyses as its scripts ran them, to be shown beside the tests.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

from cl_regimes.findings.common import (
    DEPTH,
    LEVEL,
    MIN_EXCESS,
    PAPER_METHODS,
    POOLED,
    Verdict,
    chance_cells,
    details,
    excluded_text,
    verdict_table,
)
from cl_regimes.findings.original import (
    ORIGINAL_REGIMES,
    OriginalKendall,
    coupling_correlations,
    original_depth_u,
    original_kendall,
    original_update_forgetting,
)
from cl_regimes.findings.ranking import MARGIN, MIN_ORDERS, crossings, finding_ranking, gap_table
from cl_regimes.findings.trends import coupling_table, finding_coupling, finding_depth, run_updates

__all__ = [
    "DEPTH",
    "LEVEL",
    "MARGIN",
    "MIN_EXCESS",
    "MIN_ORDERS",
    "ORIGINAL_REGIMES",
    "PAPER_METHODS",
    "POOLED",
    "OriginalKendall",
    "Verdict",
    "chance_cells",
    "coupling_correlations",
    "coupling_table",
    "crossings",
    "details",
    "excluded_text",
    "finding_coupling",
    "finding_depth",
    "finding_ranking",
    "gap_table",
    "original_depth_u",
    "original_kendall",
    "original_update_forgetting",
    "primary",
    "run_updates",
    "survival",
    "verdict_table",
    "with_variant",
]


def conjunction(parts: list[Verdict]) -> Verdict:
    """Finding 2's primary verdict: both of its pooled parts (u per parameter, forgetting)
    must hold; p is the larger of theirs (intersection-union)."""
    first = parts[0]
    testable = all(v.verdict != "not testable" for v in parts)
    p = max(v.p_value for v in parts) if testable else np.nan
    verdict = (
        "not testable" if not testable else ("supported" if p < first.level else "not supported")
    )
    return Verdict(
        2,
        " and ".join(v.part for v in parts),
        POOLED,
        "primary",
        "deeper regimes give larger updates per trainable parameter and more forgetting, "
        "in every method",
        " or ".join(v.null for v in parts),
        "the larger p of the two parts",
        p,
        p,
        first.level,
        verdict,
        max(v.n_orders for v in parts),
        {f"{v.part}: rho_min": v.effects.get("rho_min", np.nan) for v in parts},
        {},
        {k: r for v in parts for k, r in v.excluded.items()},
        "; ".join(f"{v.part}: {v.verdict}" + (f" ({v.note})" if v.note else "") for v in parts),
        details(parts),
    )


def primary(runs: pd.DataFrame, tasks: pd.DataFrame, **options) -> list[Verdict]:
    """The three headline verdicts, pooled over datasets. ``options`` go to every test
    (variant, bn_stats, level, n_permutations...; not n_boot or margin)."""
    depth = finding_depth(tasks, **options)
    pooled = {v.part: v for v in depth if v.dataset == POOLED}
    return [
        finding_ranking(runs, **_only(options, finding_ranking))[-1],
        conjunction([pooled["u per parameter"], pooled["forgetting"]]),
        finding_coupling(tasks, **options)[-1],
    ]


def _only(options: dict, function) -> dict:
    """The ``options`` that ``function`` takes."""
    return {k: v for k, v in options.items() if k in inspect.signature(function).parameters}


def with_variant(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The profile's own records with those of ``variant`` in their place where it has
    some (same dataset, regime and method), labelled as the profile's (variant "")."""
    keys = ["dataset", "regime", "method"]
    own, other = frame[frame.variant == ""], frame[frame.variant == variant]
    replaced = own.set_index(keys).index.isin(other.set_index(keys).index)
    return pd.concat([own[~replaced], other.assign(variant="")], ignore_index=True)


def survival(runs: pd.DataFrame, tasks: pd.DataFrame, variant: str, **options) -> pd.DataFrame:
    """The primary verdicts of the three findings over the regimes ``variant`` has records
    in, from the profile's own runs and from the runs of ``variant`` in their place
    (exploratory: not adjusted for the number of variants).

    Columns: variant, regimes, runs of ("profile" or the variant), finding, claim, p_value,
    verdict. ``options`` go to the tests (n_permutations, level...)."""
    covered = list(pd.unique(runs[runs.variant == variant].regime))
    rows = []
    for label, r, t in (
        ("profile", runs, tasks),
        (variant, with_variant(runs, variant), with_variant(tasks, variant)),
    ):
        r, t = (
            r[(r.variant == "") & r.regime.isin(covered)],
            t[(t.variant == "") & t.regime.isin(covered)],
        )
        verdicts = primary(r, t, **options)
        rows += [
            {
                "variant": variant,
                "regimes": ", ".join(covered),
                "runs of": label,
                "finding": v.finding,
                "claim": v.claim,
                "p_value": v.p_value,
                "verdict": v.verdict,
            }
            for v in verdicts
        ]
    return pd.DataFrame(rows)
