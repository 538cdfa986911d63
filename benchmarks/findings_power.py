"""Size and power of the findings' tests on simulated tables (tests/simulate.py), at 11
orders and at 11 orders x 2 seeds: the rate of "supported" per case, and the rate at which
each method's own test rejects under random slopes. Run by hand (minutes):

    .venv/bin/python benchmarks/findings_power.py [draws]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cl_regimes import findings  # noqa: E402
from simulate import depth_draw, ranking_draw, runs_table, tasks_table  # noqa: E402

FAST = {"n_permutations": 199, "n_boot": 50, "n_power": 0}
RANKING = [("null", {}), ("depth_noise", {}), ("ceiling", {}), ("ties", {}), ("shared", {})]
RANKING += [("cross", {"size": 0.04}), ("swap", {"size": 0.03}), ("cross", {"size": 0.03})]
DEPTH = [(k, {}) for k in ("null", "chance", "shared", "heavy", "one_method", "position")]
DEPTH += [("random_slope", {}), ("null", {"datasets": 5}), ("trend", {"slope": 0.26})]
COUPLING = [(k, {}) for k in ("null", "shared", "heavy", "position", "random_slope")]
COUPLING += [("coupling", {"coupling": c}) for c in ((0.0, 0.6), (0.0, -0.6), (0.1, 0.5))]


def rate(draw, draws, seed=0):
    rng = np.random.default_rng(seed)
    hits, method_hits, method_tests = 0, 0, 0
    for _ in range(draws):
        *parts, v = draw(rng)
        hits += v.verdict == "supported"
        for part in parts or ([v] if v.finding == 3 else []):  # each method's own test
            method_hits += int((part.detail.p_value < 0.05).sum())
            method_tests += len(part.detail)
    return hits / draws, (method_hits / method_tests if method_tests else np.nan)


def main(draws: int) -> None:
    print("| finding | case | seeds | rate supported | rate per method |")
    print("|---|---|---|---|---|")
    for seeds in (2, 1):
        for kind, opts in RANKING:

            def f1(rng, kind=kind, opts=opts, seeds=seeds):
                acc = ranking_draw(
                    rng, kind, 11, seeds=seeds, shared=0.5 * (kind == "shared"), **opts
                )
                runs = runs_table(acc, seeds=seeds)
                return findings.finding_ranking(runs, n_boot=50, n_power=0)[-1:]

            print(f"| 1 | {kind} {opts} | {seeds} | {rate(f1, draws)[0]:.3f} | |")
        for finding, cases in ((2, DEPTH), (3, COUPLING)):
            for kind, opts in cases:

                def f(rng, kind=kind, opts=opts, finding=finding, seeds=seeds):
                    u, fo, learned = depth_draw(rng, kind, 11, seeds=seeds, **opts)
                    tasks = tasks_table(u, fo, acc_learned=learned, seeds=seeds)
                    test = findings.finding_depth if finding == 2 else findings.finding_coupling
                    verdicts = test(tasks, **FAST)
                    return [v for v in verdicts if v.dataset == "pooled" and v.role == "primary"]

                both, per_method = rate(f, draws)
                print(f"| {finding} | {kind} {opts} | {seeds} | {both:.3f} | {per_method:.3f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
