"""Exploratory: do the verdicts move without `head`, at another chance threshold, or with
another definition of u? Not adjusted and not verdicts; the primary definitions stay as
book/protocol.md declares them."""

from __future__ import annotations

import pandas as pd

from cl_regimes.findings.common import MIN_EXCESS, POOLED
from cl_regimes.findings.coupling import finding_coupling
from cl_regimes.findings.ranking import finding_ranking
from cl_regimes.findings.trends import finding_depth

SETTINGS = {  # name -> (leave head out, chance threshold)
    "as declared": (False, MIN_EXCESS),
    "without head": (True, MIN_EXCESS),
    "chance threshold 0.4": (False, 0.4),
    "chance threshold 0.6": (False, 0.6),
}
COMMON_U = "u over the parameters every regime trains"


def robustness(runs: pd.DataFrame, tasks: pd.DataFrame, **options) -> pd.DataFrame:
    """Per setting (``SETTINGS``), the pooled verdicts of finding 1, of each part of finding
    2 (u in total, per trainable parameter, forgetting, and both) and of finding 3, with
    their p-value, note and detectable effect; u over the parameters every regime trains is
    not in the records, and says so. ``options`` go to the tests (n_permutations,
    n_power...; not min_excess).

    Columns: setting, finding, part, verdict, p_value, detectable, note."""
    rows = []
    for name, (no_head, min_excess) in SETTINGS.items():
        r = runs[runs.regime != "head"] if no_head else runs
        t = tasks[tasks.regime != "head"] if no_head else tasks
        ranking_options = {k: v for k, v in options.items() if k != "n_permutations"}
        verdicts = [
            finding_ranking(r, min_excess=min_excess, **ranking_options)[-1],
            *finding_depth(t, min_excess=min_excess, **options),
            finding_coupling(t, min_excess=min_excess, **options)[-1],
        ]
        rows += [
            {
                "setting": name,
                "finding": v.finding,
                "part": v.part,
                "verdict": v.verdict,
                "p_value": v.p_value,
                "detectable": v.detectable,
                "note": v.note,
            }
            for v in verdicts
            if v.dataset == POOLED
        ]
        rows.append(
            {"setting": name, "finding": 2, "part": COMMON_U, "verdict": "not in the records"}
        )
    return pd.DataFrame(rows)


def what_moves(table: pd.DataFrame) -> str:
    """In words, the verdicts of ``robustness``'s table that differ from the declared
    analysis's, setting by setting (the exploratory panel's conclusion)."""
    declared = table[table.setting == "as declared"].set_index(["finding", "part"]).verdict
    moved = []
    for (setting, finding, part), verdict in (
        table[table.setting != "as declared"].set_index(["setting", "finding", "part"]).verdict
    ).items():
        before = declared.get((finding, part))
        if before is not None and verdict != before:
            what = f"finding {finding}" + (f" ({part})" if part else "")
            moved.append(f"{setting}, {what} is {verdict} ({before} as declared)")
    if not moved:
        return "No verdict moves: each holds without `head` and at both other chance thresholds."
    return "What moves: " + "; ".join(moved) + ". Every other verdict holds."
