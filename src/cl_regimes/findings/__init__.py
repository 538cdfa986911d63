"""Statistical verdicts on the paper's three findings, and the original study's analyses.

Inputs are the tidy tables of ``results.load``: ``runs`` (one row per run) and ``tasks``
(one row per task of a run). Every analysis runs within one variant and one ``bn_stats``
setting, and refuses records that mix profiles or seedings (a missing value counts as one)
or hold a run twice; runs with non-finite values (in R or a task's accuracy too) are left
out and named, and so are the cells with no records. A replicate is an (order, seed) pair;
the seeds of one order share its task sequence, so each test averages them within the order
and treats the orders as its independent units. Cells (dataset, regime, method) that learn
less than half the way from chance to perfect are left out of every test
(``common.chance_cells``), and no verdict turns on a cell near that threshold
(``common.both_ways``). Every verdict names its statistic and states the smallest effect it
would have seen with 80% power (``Verdict.detectable``), by simulation on the records' own
noise (``replicates``; ``noise.noise_table`` measures that noise).

One primary verdict per finding, pooled over datasets (``primary``):
1. ``ranking.finding_ranking``: some pair of methods crosses between regimes;
2. ``trends.finding_depth``: deeper regimes give larger updates per trainable parameter and
   more forgetting, in every method (both parts must hold);
3. ``coupling.finding_coupling``: the position-adjusted coupling of updates with forgetting
   strengthens with depth, in every method.
Per-dataset verdicts are secondary (Holm over datasets, gated by the pooled one); other
definitions and the chance rule switched off are exploratory. ``original`` reproduces the
original study's analyses as its scripts ran them, to be shown beside the tests.
"""

from __future__ import annotations

import inspect

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
from cl_regimes.findings.coupling import coupling_table, finding_coupling
from cl_regimes.findings.noise import noise_table
from cl_regimes.findings.original import (
    ORIGINAL_REGIMES,
    OriginalKendall,
    coupling_correlations,
    original_depth_u,
    original_kendall,
    original_update_forgetting,
)
from cl_regimes.findings.ranking import MARGIN, MIN_ORDERS, crossings, finding_ranking, gap_table
from cl_regimes.findings.robustness import robustness, what_moves
from cl_regimes.findings.trends import finding_depth, run_updates

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
    "noise_table",
    "original_depth_u",
    "original_kendall",
    "original_update_forgetting",
    "primary",
    "robustness",
    "what_moves",
    "run_updates",
    "survival",
    "verdict_table",
    "with_variant",
]


def primary(runs: pd.DataFrame, tasks: pd.DataFrame, **options) -> list[Verdict]:
    """The three headline verdicts, pooled over datasets. ``options`` go to every test
    (variant, bn_stats, level, n_permutations...; not n_boot or margin)."""
    return [
        finding_ranking(runs, **_only(options, finding_ranking))[-1],
        finding_depth(tasks, **options)[-1],
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
