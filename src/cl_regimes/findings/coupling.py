"""Finding 3: the update-forgetting relationship strengthens with depth, in every method.

Both u and forgetting depend on the task's position in the order, so log u (``x``) and
forgetting (``f``) are centred within (regime, position) across the replicates of a dataset
and method; the coupling of a regime is their correlation over all its replicates and
positions. It is the mean over replicates of each replicate's share,
beta = sum_p x f / sqrt(Sxx Sff), Sxx and Sff the regime's mean sums over replicates.

Per replicate: its change, the least-squares slope of beta on depth times the depth span
(the change of the coupling from the shallowest to the deepest regime), and its level, the
mean beta over regimes; both averaged over the seeds of each order. The coupling
strengthens when it moves away from zero with depth: its change and its level are both
nonzero and of one sign. Each gets a two-sided sign-flip test over the orders; the method's
p is the larger of the two (intersection-union), 1 when their signs differ. A coupling that
goes from +0.3 to -0.3 has no level and is not called a strengthening; one that varies in
slope from order to order around no mean change is a null the flips keep.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cl_regimes.findings.common import (
    DEPTH,
    LEVEL,
    MIN_EXCESS,
    PAPER_METHODS,
    REPLICATE,
    RUN_KEYS,
    Verdict,
    both_ways,
    chance_excluded,
    clean,
    drop_missing,
    excluded_in,
    gate,
    interval,
    role_in,
    scope,
)
from cl_regimes.findings.replicates import (
    N_FLIPS,
    N_POWER,
    detectable,
    drawn,
    flips,
    min_orders,
    mixes,
    order_means,
    sign_flip,
)
from cl_regimes.findings.trends import cells_of, families, methods_verdict

CHANGES = np.linspace(0.0, 0.98, 50)  # planted couplings of the deepest regime (0 shallowest)
TEXTS = (
    "the update-forgetting relationship strengthens with depth in every method",
    "in some method, the position-adjusted coupling of log u with forgetting has no mean "
    "change with depth over the orders, no mean level, or a change of the other sign than "
    "its level",
    "smallest strengthening of the coupling over methods (its mean change from the "
    "shallowest to the deepest regime, signed by its level)",
)


def _prepared(tasks, update, methods, depth, excluded) -> pd.DataFrame:
    """The tasks but the last of each run, with x = log ``update`` and f = forgetting; runs
    with a non-finite one are left out and named in ``excluded``."""
    t = tasks[tasks.method.isin(methods) & tasks.regime.isin(list(depth))]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.log(pd.to_numeric(t[update], errors="coerce").where(lambda v: v > 0))
    t = t.assign(x=x, f=t.forgetting)
    last = t.position == t.groupby(RUN_KEYS).position.transform("max")
    return drop_missing(t[~last], ["x", "f"], excluded)


def _position_cubes(t: pd.DataFrame, regimes: dict, fewest: int) -> dict:
    """(dataset, method) -> (regimes, x, f, replicates): x and f arrays (replicates,
    regimes, positions) over the complete replicates (at least 2), for the cells with at
    least ``fewest`` regimes; replicates indexes them by dataset, order and seed."""
    wide = t.pivot_table(
        index=["dataset", *REPLICATE], columns=["method", "regime", "position"], values=["x", "f"]
    )
    out = {}
    for (d, m), names in regimes.items():
        positions = sorted(set(t.position[(t.dataset == d) & (t.method == m)]))
        if len(names) < fewest:
            continue
        cols = pd.MultiIndex.from_product([["x", "f"], [m], names, positions])
        table = wide.xs(d, drop_level=False).reindex(columns=cols).dropna()
        if len(table) >= 2:
            cube = table.to_numpy(float).reshape(len(table), 2, len(names), len(positions))
            out[d, m] = (names, cube[:, 0], cube[:, 1], table.index)
    return out


def _sums(x, f):
    """Position-centred x and f (replicates, regimes, positions) -> per replicate and
    regime the cross-product sums (sxf, sxx, sff)."""
    x, f = x - x.mean(0), f - f.mean(0)
    return (x * f).sum(-1), (x * x).sum(-1), (f * f).sum(-1)


def _betas(sxf, sxx, sff) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxf / np.sqrt(sxx.mean(-2, keepdims=True) * sff.mean(-2, keepdims=True))


def coupling_table(
    tasks: pd.DataFrame,
    update: str = "u",
    *,
    methods=PAPER_METHODS,
    depth=DEPTH,
    variant: str = "",
    bn_stats: str | None = None,
) -> pd.DataFrame:
    """Per dataset, method and regime: the correlation of log ``update`` with forgetting
    over the runs' tasks (last dropped), after centring both within (regime, position)
    across replicates, which removes what the task's position does to both.

    Columns: dataset, method, regime, coupling, n_orders."""
    t = _prepared(scope(tasks, variant, bn_stats, level="task"), update, methods, depth, {})
    rows = []
    for (dataset, m), (regimes, x, f, _) in _position_cubes(
        t, cells_of(t, set(), methods, depth), 1
    ).items():
        coupling = _betas(*_sums(x, f)).mean(0)
        rows += [(dataset, m, r, c, len(x)) for r, c in zip(regimes, coupling)]
    return pd.DataFrame(rows, columns=["dataset", "method", "regime", "coupling", "n_orders"])


def _weights(regimes, depth) -> np.ndarray:
    """Least-squares slope weights on depth, times the depth span: beta @ w is the change
    of the fitted coupling from the shallowest to the deepest regime."""
    d = np.array([depth[r] for r in regimes], float)
    c = d - d.mean()
    return c / (c**2).sum() * (d.max() - d.min())


def _orders(cube, depth, planted=None) -> pd.DataFrame:
    """Per order (seeds averaged): the change and level of one cube's coupling, as
    observed or, with ``planted`` couplings (sizes), on its residual noise with the
    coupling of each regime set to grow linearly from 0 to the size: columns
    (change or level, size)."""
    names, x, f, index = cube
    sxf, sxx, sff = _sums(x, f)
    if planted is None:
        beta = _betas(sxf, sxx, sff)[None]
    else:  # f = e + k x, e uncorrelated with x in each regime, so the coupling is rho
        b = sxf.sum(0) / sxx.sum(0)
        sxe, see = sxf - b * sxx, sff - 2 * b * sxf + b * b * sxx
        d = np.array([depth[r] for r in names], float)
        rho = planted[:, None] * (d - d.min()) / (d.max() - d.min())  # (sizes, regimes)
        k = rho * np.sqrt(see.mean(0) / sxx.mean(0) / (1 - rho**2))
        beta = _betas(sxe + k[:, None] * sxx, sxx, see + k[:, None] ** 2 * sxx)
    change, level = beta @ _weights(names, depth), beta.mean(-1)  # (sizes, replicates)
    frame = pd.DataFrame(np.concatenate([change, level]).T, index=index)
    frame.columns = pd.MultiIndex.from_product([["change", "level"], range(len(beta))])
    return order_means(frame)


def _p(change: np.ndarray, level: np.ndarray, signs) -> np.ndarray:
    """The strengthening's p over orders (last axis): the larger two-sided p of the change
    and of the level, 1 where their means differ in sign."""
    p = np.maximum(sign_flip(change, signs, True), sign_flip(level, signs, True))
    agree = np.sign(np.nansum(change, -1)) == np.sign(np.nansum(level, -1))
    return np.where(agree, p, 1.0)


def _power(tests: list[list], depth, level, n_power, rng) -> float:
    """The change of coupling (0 in the shallowest regime to it in the deepest) found in
    every method of ``tests`` (each a list of cubes) with 80% power, the orders' values
    drawn jointly (``replicates.drawn``)."""
    per_test = [pd.concat([_orders(c, depth, CHANGES) for c in cubes]) for cubes in tests]
    orders = pd.Index(sorted({k for t in per_test for k in t.index}))
    signs, weights = (
        flips(rng, N_FLIPS, len(orders)),
        mixes(rng, n_power, len(orders), min(len(c[3]) for cubes in tests for c in cubes)),
    )
    detected = np.ones((len(CHANGES), n_power), bool)
    for units in per_test:
        units = units.reindex(orders)
        change, mean = (
            drawn(units[c].to_numpy().T[..., None], weights)[..., 0] for c in ("change", "level")
        )
        detected &= _p(change, mean, signs) < level
    return detectable(CHANGES, detected)


@both_ways
def finding_coupling(
    tasks: pd.DataFrame,
    *,
    update: str = "u",
    methods=PAPER_METHODS,
    depth=DEPTH,
    min_excess: float | None = MIN_EXCESS,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = LEVEL,
    n_permutations: int = 2000,
    n_boot: int = 1000,
    n_power: int = N_POWER,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 3 per dataset (secondary, gated) and pooled (primary, last); the test is in
    the module's docstring, over the regimes of each method not at chance (at least 3).

    Detail per method: ``rho``, the strengthening (the mean change of the coupling from the
    shallowest to the deepest regime, signed by its level: positive when it moves away from
    zero), its bootstrap interval over orders, p and Holm p.
    ``detectable``: the change of coupling from 0 in the shallowest regime found in every
    method with 80% power (``n_power`` simulated tables; 0 skips it)."""
    excluded: dict[str, str] = {}
    tasks = scope(tasks, variant, bn_stats, level="task")
    tasks = clean(tasks[tasks.method.isin(methods)], [], excluded)
    nested = tasks[tasks.regime.isin(list(depth))]
    cells, reasons = chance_excluded(nested, min_excess, methods)
    excluded |= reasons
    t = _prepared(tasks, update, methods, depth, excluded)
    cubes_of = _position_cubes(t, cells_of(t, cells, methods, depth), 3)
    role = "primary" if min_excess is not None else "exploratory"
    verdicts = []
    for k, (dataset, names) in enumerate(families(t)):
        rng = np.random.default_rng([seed, k])
        rows, untested, tests = [], [], []
        for m in methods:
            cubes = [cubes_of[d, m] for d in names if (d, m) in cubes_of]
            units = pd.concat([_orders(c, depth) for c in cubes]) if cubes else pd.DataFrame()
            if len(units) < min_orders(level, two_sided=True):
                untested.append(m)
                continue
            change, mean = units[("change", 0)].to_numpy(), units[("level", 0)].to_numpy()
            p = float(_p(change, mean, flips(rng, n_permutations, len(units))))
            sign = np.sign(mean.mean()) or 1.0
            boot = rng.integers(0, len(units), (n_boot, len(units)))
            lo, hi = interval(sign * change[boot].mean(1))
            rows.append((m, float(sign * change.mean()), p, lo, hi, len(units)))
            tests.append(cubes)
        v = methods_verdict(
            3,
            "coupling",
            dataset,
            role_in(role, dataset),
            TEXTS,
            rows,
            level,
            excluded_in(excluded, dataset),
            methods,
            untested,
        )
        if n_power and v.verdict != "not testable":
            v.detectable = _power(tests, depth, level, n_power, rng)
        verdicts.append(v)
    return gate(verdicts) if role == "primary" else verdicts
