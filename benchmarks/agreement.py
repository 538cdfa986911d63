"""The statistics of agreement between the original's runs and ours, per method, and their
table: each side's mean with a 95% t-interval, the paired difference (original - ours,
paired by order and seed) with its verdict (two one-sided tests at 5% within a margin
fixed before the run), how many runs gave equal accuracies, and the ratio of wall times.
Torch-free, so that tests can check the verdicts on made-up runs.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def interval(values, level: float) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return (float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return (float(v.mean() - half), float(v.mean() + half))


def agreement(original, ours, margin: float) -> dict:
    """Paired (by order and seed) difference original - ours: TOST equivalence within +-margin."""
    d = np.asarray(original) - np.asarray(ours)
    low90, high90 = interval(d, 0.90)
    low95, high95 = interval(d, 0.95)
    if -margin < low90 and high90 < margin:
        verdict = "equivalent"
    elif high95 < 0 or low95 > 0:
        verdict = "different"
    else:
        verdict = "inconclusive"
    return {"difference": float(d.mean()), "ci90": [low90, high90], "verdict": verdict}


R_TOLERANCE = 1e-9  # accuracies are counts over test images: equal or apart by 1/n


def R_gap(run: dict) -> float | None:
    """The largest difference between the two sides' accuracies on the tasks trained so
    far, over every position of the run (None for runs recorded without R)."""
    if "R" not in run["ours"]:
        return None
    return max(
        abs(a - b)
        for mine, theirs in zip(run["ours"]["R"], run["original"]["R"])
        for a, b in zip(mine, theirs)
    )


def summarise(runs: list[dict], margin: float) -> list[dict]:
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        pairs = sorted(
            (r for r in runs if r["method"] == method), key=lambda r: (r["order"], seed_of(r))
        )
        row = {
            "method": method,
            "orders": len({r["order"] for r in pairs}),
            "pairs": len(pairs),
        }
        for metric in ("acc", "forgetting"):
            for side in ("original", "ours"):
                values = [r[side][metric] for r in pairs]
                row[f"{side}_{metric}"] = float(np.mean(values))
                row[f"{side}_{metric}_ci95"] = interval(values, 0.95)
            row[f"{metric}_agreement"] = agreement(
                [r["original"][metric] for r in pairs], [r["ours"][metric] for r in pairs], margin
            )
        gaps = [g for g in map(R_gap, pairs) if g is not None]
        row["R_compared"] = len(gaps)
        row["R_identical"] = sum(g <= R_TOLERANCE for g in gaps)
        row["R_max_difference"] = max(gaps, default=None)
        row["original_seconds"] = sum(r["original"]["seconds"] for r in pairs)
        row["ours_seconds"] = sum(r["ours"]["seconds"] for r in pairs)
        row["time_ratio"] = row["original_seconds"] / row["ours_seconds"]
        per_order = [r["original"]["seconds"] / r["ours"]["seconds"] for r in pairs]
        row["time_ratio_range"] = [min(per_order), max(per_order)]
        rows.append(row)
    return rows


def table(rows: list[dict], other: str = "original") -> str:
    """The agreement table; ``other`` names the side compared with ours (stored as
    "original")."""

    def cell(row, side, metric):
        low, high = row[f"{side}_{metric}_ci95"]
        return f"{row[f'{side}_{metric}']:.3f} [{low:.3f}, {high:.3f}]"

    def agree(row, metric):
        a = row[f"{metric}_agreement"]
        return f"{a['difference']:+.3f} [{a['ci90'][0]:+.3f}, {a['ci90'][1]:+.3f}] {a['verdict']}"

    def equal(row):
        if not row["R_compared"]:
            return "-"
        return f"{row['R_identical']}/{row['R_compared']} ({row['R_max_difference']:.3f})"

    lines = [
        f"| method | orders | pairs | ACC {other} | ACC ours | ACC difference (90% CI) "
        f"| forgetting {other} | forgetting ours | forgetting difference (90% CI) "
        "| runs with equal accuracies (largest gap) "
        f"| wall s {other} / ours | time ratio (per order) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['orders']} | {r['pairs']} | {cell(r, 'original', 'acc')} | "
            f"{cell(r, 'ours', 'acc')} | {agree(r, 'acc')} | {cell(r, 'original', 'forgetting')} | "
            f"{cell(r, 'ours', 'forgetting')} | {agree(r, 'forgetting')} | {equal(r)} | "
            f"{r['original_seconds']:.0f} / {r['ours_seconds']:.0f} | {r['time_ratio']:.2f} "
            f"({r['time_ratio_range'][0]:.2f}-{r['time_ratio_range'][1]:.2f}) |"
        )
    return "\n".join(lines)


def seed_of(run: dict) -> int:
    return run.get("seed", 0)  # runs written before seeds were replicated are seed 0
