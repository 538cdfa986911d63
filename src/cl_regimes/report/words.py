"""The chapters' sentences: the best method of a regime, how much of a grid the records
hold, and where each finding holds across scales."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cl_regimes import findings, methods, profiles
from cl_regimes.report import method_order


def best_method(runs: pd.DataFrame, dataset: str, regime: str) -> tuple[str | None, str]:
    """The paper's method with the highest mean ACC on ``dataset`` (None if none ran), and a
    sentence that names it, with the references (finetune, joint) apart."""
    sub = runs[runs.dataset == dataset]
    acc = sub.groupby("method").acc.mean()
    is_reference = np.array([methods.get(m).reference for m in acc.index], dtype=bool)
    paper, references = acc[~is_reference], acc[is_reference]
    refs = ", ".join(f"{m} {references[m]:.3f}" for m in method_order(references.index))
    diagonal = np.mean([np.diag(R).mean() for R in sub.R])
    best = paper.idxmax() if len(paper) else None
    sentence = (
        f"On {dataset}, **{best}** has the highest ACC of the paper's methods under "
        f"`{regime}` ({paper[best]:.3f})"
        if best
        else f"On {dataset}, none of the paper's methods ran under `{regime}`"
    )
    sentence += f"; the references: {refs}." if refs else "."
    sentence += (
        f" Right after training, a task reaches {diagonal:.3f} accuracy on average (chance: "
        "1/classes of a task)."
    )
    return best, sentence


def coverage(prof: profiles.Profile, n_records: int, main: pd.DataFrame) -> str:
    """A sentence on how much of the profile's grid the records ``main`` (its own settings)
    hold, on the replicates of other seeds they add, and on the runs of methods outside
    the grid (DER's committed records)."""
    grid = len(prof.grid(variants=False))
    outside = main[~main.method.isin(prof.grid_methods())]  # methods run when named (DER)
    main = main[main.method.isin(prof.grid_methods())]
    in_grid = int(main.seed.isin(prof.seeds).sum())
    text = (
        f"{n_records} run records of profile `{prof.name}`; the findings use the {len(main)} "
        f"made with the profile's own settings: {in_grid} of the {grid} runs of its grid"
    )
    if len(outside):
        names = ", ".join(f"`{m}`" for m in sorted(set(outside.method.astype(str))))
        text += f" (and {len(outside)} runs of {names}, run only when named, in the tables)"
    extra = main[~main.seed.isin(prof.seeds)]
    if len(extra):
        cells = extra.groupby(["regime", "method"], observed=True).ngroups
        text += (
            f", and {len(extra)} runs of seed(s) {', '.join(map(str, sorted(set(extra.seed))))} "
            f"in {cells} (regime, method) cells: more replicates of the same orders (the tests "
            "average each order's seeds)"
        )
    text += "."
    if in_grid < grid:
        text += (
            " The grid is not complete yet (its sweep resumes where it stopped): the verdicts "
            "below are provisional and test only the regimes and methods the records cover."
        )
    return text


def _where(held: list[str], order: list[str]) -> str:
    """Where something holds among the profiles ``order`` (smallest first), in words."""
    if len(held) == len(order):
        return "at every scale with records"
    if not held:
        return "at no scale with records"
    if held == order[order.index(held[0]) :]:
        return f"from `{held[0]}` on"
    if held == order[: len(held)]:
        return f"up to `{held[-1]}`, not beyond"
    return "at " + ", ".join(f"`{p}`" for p in held) + " only"


def scale_summary(calls: pd.DataFrame, sizes: pd.DataFrame, scales) -> list[str]:
    """In words, per finding (``calls``: finding x profile verdicts), where it holds: at
    every scale, from one scale on, up to one, at some only, or at none; then which
    profiles are provisional (``sizes``: ``scale_table``)."""
    order = [p for p in scales if p in calls.columns]
    lines = []
    for finding, row in calls.iterrows():
        where = _where([p for p in order if row[p] == "supported"], order)
        detail = ", ".join(f"`{p}`: {row[p]}" for p in order)
        lines.append(f"- Finding {finding} holds {where} ({detail}).")
    share = sizes.set_index("profile")["share of the grid"]
    partial = [p for p in order if share[p] < 1]
    if partial:
        lines.append(
            "Provisional: "
            + ", ".join(f"`{p}` holds {share[p]:.0%} of its grid" for p in partial)
            + "; its verdicts test only the regimes and methods its records cover."
        )
    return lines


def trend_summary(trends: pd.DataFrame, scales, level: float = findings.LEVEL) -> list[str]:
    """In words, per part of findings 2 and 3 (``trends``: ``findings.details`` rows with a
    ``profile`` column), in how many methods the trend with depth holds at each scale (its
    interval above zero and its Holm-adjusted test rejecting), where it falls instead
    (interval below zero), and where it holds in every method."""
    order = [p for p in scales if p in set(trends.profile)]
    lines = []
    for part, rows in trends.groupby("part", sort=False):
        counts, held = [], []
        for name in order:
            g = rows[rows.profile == name]
            if g.empty:
                counts.append(f"`{name}` not testable")
                continue
            up = g[(g.rho_lo > 0) & (g.p_holm < level)].method.tolist()
            down = g[g.rho_hi < 0].method.tolist()
            text = f"`{name}` {len(up)} of {len(g)}"
            if 0 < len(up) < len(g):
                text += f" ({', '.join(up)})"
            if down:
                text += f", falling in {', '.join(down)}"
            counts.append(text)
            if len(up) == len(g):
                held.append(name)
        lines.append(
            f"- {part}: methods whose trend with depth holds: {'; '.join(counts)}. In "
            f"every method: {_where(held, order)}."
        )
    return lines


def crossing_summary(rows: pd.DataFrame) -> str:
    """In words, finding 1 across scales (``rows``: profile, largest_crossing and its
    interval, detectable_crossing, pairs that cross): which pairs cross, and whether the
    largest crossing could be told from noise at each scale."""
    parts = []
    for r in rows.itertuples():
        if pd.isna(r.largest_crossing) or pd.isna(r.detectable_crossing):
            parts.append(f"`{r.profile}` cannot test it")
            continue
        seen = "above" if r.largest_crossing >= r.detectable_crossing else "below"
        parts.append(
            f"at `{r.profile}` the largest crossing, {r.largest_crossing:.3f} "
            f"[{r.largest_lo:.3f}, {r.largest_hi:.3f}], is {seen} the "
            f"{r.detectable_crossing:.3f} the test could detect"
        )
    crossing = rows[rows["pairs that cross"] != "none"].profile.tolist()
    pairs = (
        "pairs cross at " + ", ".join(f"`{p}`" for p in crossing)
        if crossing
        else "no pair of methods crosses at any scale"
    )
    return f"- Finding 1: {pairs}; " + "; ".join(parts) + "."
