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
    their p-value, note and detectable effect, and of u over the parameters every regime
    trains (the head's: ``u_head``; records made before it say so). ``options`` go to the
    tests (n_permutations, n_power...; not min_excess). The settings that move the chance
    threshold test at it as given (the border rule, ``common.both_ways``, still applies).

    Columns: setting, finding, part, verdict, p_value, detectable, note."""
    rows = []
    for name, (no_head, min_excess) in SETTINGS.items():
        r = runs[runs.regime != "head"] if no_head else runs
        t = tasks[tasks.regime != "head"] if no_head else tasks
        verdicts = [
            finding_ranking(r, min_excess=min_excess, **options)[-1],
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
            {"setting": name, "finding": 2, "part": COMMON_U, **_common_u(t, min_excess, options)}
        )
    return pd.DataFrame(rows)


def _common_u(tasks: pd.DataFrame, min_excess: float, options: dict) -> dict:
    """Finding 2's u part with u over the head's parameters (the same in every regime)."""
    if "u_head" not in tasks or tasks.u_head.isna().all():
        return {"verdict": "not in the records", "note": "records made before u_head"}
    missing = tasks.u_head.isna().mean()
    v = next(
        v
        for v in finding_depth(tasks, update="u_head", min_excess=min_excess, **options)
        if v.part == "u" and v.dataset == POOLED
    )
    note = v.note + (f"; u_head missing in {missing:.0%} of tasks" if missing else "")
    return {"verdict": v.verdict, "p_value": v.p_value, "detectable": v.detectable, "note": note}


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
