"""Size, power and calibration of the findings' tests on simulated tables with the medium
records' own noise structure (tests/simulate.py, ``medium``), at the committed design: 11
orders x 2 seeds (an order's seeds share its order-by-method effects). Run by hand, one
section at a time (each prints a markdown table; minutes to an hour on one core):

    .venv/bin/python benchmarks/findings_power.py noise|rates|replicates|calibration [draws]

- noise: records/medium vs the simulation (``findings.noise.noise_table``);
- rates: the rate of "supported" under each null and planted effect, at the records' noise
  and, for finding 1, at about half of it;
- replicates: how many orders (x 2 seeds) finding 1 needs to find a 0.03 swap in 80% of
  tables at the records' noise;
- calibration: each finding's ``detectable`` on 10 simulated tables (their median and
  spread), and the rate at which the test finds that effect when it is planted.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cl_regimes import findings, results  # noqa: E402
from cl_regimes.findings.noise import noise_table  # noqa: E402
from simulate import depth_draw, ranking_draw, runs_table, tasks_table  # noqa: E402

ORDERS, SEEDS = 11, 2
FAST = {"n_permutations": 199, "n_boot": 50, "n_power": 0}
RANKING_NULLS = ["null", "depth_noise", "ceiling", "gap_change", "ties", "shared", "boundary"]
RANKING_EFFECTS = [("swap", 0.03), ("scattered", 0.03), ("scattered", 0.05), ("cross", 0.05)]
DEPTH_NULLS = ["null", "chance", "shared", "heavy", "one_method", "position", "random_slope"]
DEPTH_NULLS += ["border", "border_cells"]
COUPLING_NULLS = ["null", "shared", "heavy", "position", "random_slope", "border"]
COUPLINGS = [(0.0, 0.6), (0.0, -0.6), (0.1, 0.5)]
TREND_RHO = 0.4  # the moderate trend: a mean per-order Spearman rho of 0.4 in every method


def ranking_verdict(rng, kind, *, size=0.05, medium=1.0, orders=ORDERS, pair=None, **options):
    """Finding 1's pooled verdict on one simulated table; ``pair``: plant a crossing of
    ``size`` between ewc and lwf in two regimes drawn at random (one per side)."""
    shared = 0.5 if kind == "shared" else 0.0
    acc = ranking_draw(rng, kind, orders, seeds=SEEDS, shared=shared, size=size, medium=medium)
    if pair:
        ahead, behind = rng.choice(6, 2, replace=False)
        acc[..., 1] = acc[..., 0] + (acc[..., 1] - acc[..., 1].mean((0, 1)))  # tied
        acc[:, :, ahead, 1] -= size
        acc[:, :, behind, 1] += size
    runs = runs_table(acc, seeds=SEEDS)
    return findings.finding_ranking(runs, **({"n_boot": 50, "n_power": 0} | options))[-1]


def depth_verdicts(rng, kind, finding, *, options=FAST, datasets=1, **draw):
    """The pooled primary verdicts of finding 2 (each part and both) or 3 on one table."""
    u, forgetting, learned = depth_draw(
        rng, kind, ORDERS, seeds=SEEDS, datasets=datasets, medium=True, **draw
    )
    tasks = tasks_table(u, forgetting, acc_learned=learned, seeds=SEEDS)
    test = findings.finding_depth if finding == 2 else findings.finding_coupling
    return [v for v in test(tasks, **options) if v.dataset == "pooled" and v.role == "primary"]


def rate(verdict_of, draws, seed=0) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([verdict_of(rng).verdict == "supported" for _ in range(draws)]))


def trend_slope(rho: float = TREND_RHO, draws: int = 20) -> tuple[float, float]:
    """The planted slopes (run sds per depth step) of log u per parameter and of forgetting
    whose mean per-order rho over methods is ``rho`` in each part, in the medium simulation
    (interpolated on a grid): a trend of ``rho`` in every method and both parts."""
    slopes, rhos = np.linspace(0.0, 1.5, 11), {"u per parameter": [], "forgetting": []}
    rng = np.random.default_rng(7)
    for slope in slopes:
        values = {part: [] for part in rhos}
        for _ in range(draws):
            for v in depth_verdicts(rng, "trend", 2, slope=slope):
                if v.part in values:
                    values[v.part].append(v.detail.rho.mean())
        for part in rhos:
            rhos[part].append(np.mean(values[part]))
    return tuple(float(np.interp(rho, rhos[part], slopes)) for part in rhos)


def noise(draws: int) -> None:
    runs, tasks = (
        results.load(ROOT / "records/medium"),
        results.load(ROOT / "records/medium", level="task"),
    )
    table = noise_table(runs[runs.variant == ""], tasks[tasks.variant == ""])
    rng, simulated = np.random.default_rng(0), []
    for _ in range(draws):
        acc = ranking_draw(rng, "null", ORDERS, seeds=SEEDS, medium=1.0)
        u, forgetting, learned = depth_draw(rng, "null", ORDERS, seeds=SEEDS, medium=True)
        sim_tasks = tasks_table(u, forgetting, acc_learned=learned, seeds=SEEDS)
        simulated.append(noise_table(runs_table(acc, seeds=SEEDS), sim_tasks).value.to_numpy())
    table["simulated (median)"] = np.median(simulated, 0)
    print(
        table.rename(columns={"value": "records/medium"}).to_markdown(index=False, floatfmt=".3f")
    )


def rates(draws: int) -> None:
    print(f"| finding | case | rate supported ({draws} draws, 11 orders x 2 seeds) |")
    print("|---|---|---|")
    for medium in (1.0, 0.55):
        label = "" if medium == 1.0 else f", noise x{medium}"
        kinds = [(k, 0.05) for k in RANKING_NULLS] if medium == 1.0 else []
        for kind, size in kinds + RANKING_EFFECTS:
            r = rate(
                lambda rng, k=kind, s=size, m=medium: ranking_verdict(rng, k, size=s, medium=m),
                draws,
            )
            name = f"{kind} {size}" if kind in dict(RANKING_EFFECTS) else kind
            print(f"| 1 | {name}{label} | {r:.3f} |", flush=True)
    slope = trend_slope()
    cases = [(k, {}, 2) for k in DEPTH_NULLS] + [("null", {"datasets": 5}, 2)]
    cases += [("trend", {"slope": slope}, 2)]
    cases += [(k, {}, 3) for k in COUPLING_NULLS]
    cases += [("coupling", {"coupling": c}, 3) for c in COUPLINGS]
    for kind, draw, finding in cases:
        rng, hits = np.random.default_rng(1), {}
        for _ in range(draws):
            for v in depth_verdicts(rng, kind, finding, **draw):
                hits[v.part] = hits.get(v.part, 0) + (v.verdict == "supported") / draws
        name = f"{kind} {draw.get('coupling', '')}" if finding == 3 else kind
        name += f" (rho {TREND_RHO} in each part)" if kind == "trend" else ""
        name += " (5 datasets)" if draw.get("datasets") else ""
        parts = "; ".join(f"{p} {r:.3f}" for p, r in hits.items())
        print(f"| {finding} | {name} | {parts} |", flush=True)


def replicates(draws: int) -> None:
    print(f"| orders (x 2 seeds) | 0.03 swap, three regimes per side ({draws} draws) |")
    print("|---|---|")
    for orders in (11, 16, 22, 33):
        r = rate(lambda rng, o=orders: ranking_verdict(rng, "swap", size=0.03, orders=o), draws)
        print(f"| {orders} | {r:.3f} |", flush=True)


def calibration(draws: int, tables: int = 8) -> None:
    """Each finding's detectable on ``tables`` null tables, then planted at their median."""
    print(f"| finding | detectable: median [min, max] of {tables} tables | sd / median | planted |")
    print("|---|---|---|---|")

    def row(name, seen, r):
        spread = f"{np.median(seen):.3f} [{min(seen):.3f}, {max(seen):.3f}]"
        cv = np.std(seen) / np.median(seen)
        print(f"| {name} | {spread} | {cv:.0%} | {r:.3f} ({draws} draws) |", flush=True)

    rng = np.random.default_rng(3)
    seen = [ranking_verdict(rng, "null", n_power=200).detectable for _ in range(tables)]
    d = float(np.median(seen))
    row(
        "1: crossing, one regime per side",
        seen,
        rate(lambda g: ranking_verdict(g, "null", size=d, pair=True), draws),
    )
    options = FAST | {"n_power": 200}
    seen = [depth_verdicts(rng, "null", 2, options=options)[-1].detectable for _ in range(tables)]
    slope = trend_slope(float(np.median(seen)))
    row(
        "2: rho in every method, both parts",
        seen,
        rate(lambda g: depth_verdicts(g, "trend", 2, slope=slope)[-1], draws),
    )
    seen = [depth_verdicts(rng, "null", 3, options=options)[-1].detectable for _ in range(tables)]
    d = float(np.median(seen))
    row(
        "3: change of coupling",
        seen,
        rate(lambda g: depth_verdicts(g, "coupling", 3, coupling=(0.0, d))[-1], draws),
    )


if __name__ == "__main__":
    section = sys.argv[1] if len(sys.argv) > 1 else "rates"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    {"noise": noise, "rates": rates, "replicates": replicates, "calibration": calibration}[section](
        n
    )
