"""The replicate as the unit, and power by simulation.

Findings 2 and 3 compute one statistic per replicate (order, seed) and method, average it
over the seeds of each order (seeds of one order share its task sequence, so they are not
independent of each other) and test the mean over the orders by sign flips. Under a null
that makes each order's statistic symmetric about zero, flipping its sign leaves the
distribution of the mean unchanged, whatever each order's spread, and whether or not the
trend varies from order to order; permuting regimes within an order is valid only when it
does not vary at all.

Power is found by simulation under the test's own design and the records' own noise: as
many simulated orders as the records have, each a Gaussian combination of the orders'
residuals (their values less the mean over orders, an order's seeds averaged, so that what
they share stays shared: ``drawn``), a planted effect of growing size, the same test; the
smallest effect found in 80% of the simulated tables is what the verdict could have seen.
Orders drawn with replacement, as this module did before, leave about 7 of 11 distinct and
understate the power; the residuals with random signs keep each table's variance fixed
and overstate it (a reported size is then found in 70%, not 80%, of fresh tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

POWER = 0.8
N_POWER = 200  # simulated tables per planted size
N_FLIPS = 199  # sign flips per simulated table
N_POWER_FLIPS = 499  # for finding 1: 199 flips barely reach an adjusted p of 0.05 over pairs
BISECTIONS = 4  # halvings of the bracket around 80% power
UNIT = ["dataset", "order"]  # an order of a dataset: its seeds are averaged


def order_means(stat: pd.Series) -> pd.Series:
    """Per-replicate statistics (indexed by dataset, order and seed, at least) -> their
    mean per order of each dataset."""
    return stat.groupby(level=UNIT, sort=False).mean()


def min_orders(level: float, two_sided: bool = False) -> int:
    """The fewest orders whose sign flips can give a p-value below ``level``."""
    n = 1
    while (2.0 if two_sided else 1.0) / 2**n >= level:
        n += 1
    return n


def flips(rng, n_draws: int, n: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], (n_draws, n))


def sign_flip(values, signs: np.ndarray, two_sided: bool = False) -> np.ndarray:
    """p of the sum of ``values`` [..., orders] (nan: no such order) being as large (or,
    two-sided, as large in size) under the sign flips ``signs`` [draws, orders]; the
    observed sum counts as one draw."""
    v = np.nan_to_num(np.asarray(values, float))
    observed, flipped = v.sum(-1), v @ signs.T
    if two_sided:
        observed, flipped = np.abs(observed), np.abs(flipped)
    tol = 1e-12 * np.maximum(1.0, np.abs(observed))
    return (1 + (flipped >= (observed - tol)[..., None]).sum(-1)) / (1 + len(signs))


def boot_means(units: np.ndarray, rng, n_boot: int) -> np.ndarray:
    """Bootstrap draws of the mean of ``units`` (orders resampled)."""
    return units[rng.integers(0, len(units), (n_boot, len(units)))].mean(1)


def mixes(rng, n_tables: int, n: int, centred: int = 0) -> np.ndarray:
    """Gaussian weights [tables, orders, orders] that make each simulated order a random
    combination of the records' ``n`` order residuals (``drawn``). ``centred``: the number
    of replicates the values were already centred over, per cell (findings 2 and 3), which
    took 1/centred of their variance; the weights give it back."""
    scale = np.sqrt(centred / (centred - 1)) if centred > 1 else 1.0
    return rng.normal(0, scale / np.sqrt(max(n - 1, 1)), (n_tables, n, n))


def drawn(units: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Simulated tables of the orders' values ``units`` [..., orders, k] (nan: missing):
    the mean over orders plus, per simulated order, a Gaussian combination (``weights``
    [tables, orders, orders]) of the orders' residuals, so that the k values of an order
    keep the records' covariance (what an order's seeds share included: they were
    averaged) and every table's own variance varies as a fresh sample's would. ->
    [..., tables, orders, k], nan where the records have none."""
    missing = ~np.isfinite(units)
    mean = np.nanmean(units, -2, keepdims=True)
    residuals = np.where(missing, 0.0, units - mean)
    tables = mean[..., None, :, :] + np.einsum("toj,...jk->...tok", weights, residuals)
    return np.where(missing[..., None, :, :], np.nan, tables)


def detectable(effects: np.ndarray, detected: np.ndarray) -> float:
    """The smallest effect found with 80% power: ``detected`` [sizes, tables] says which
    simulated tables the test found the planted effect in, ``effects`` [sizes] the effect
    each planted size makes in the verdict's own measure; linear between sizes, nan if no
    size reaches the power."""
    power = detected.mean(-1)
    hit = np.flatnonzero(power >= POWER)
    if not len(hit):
        return np.nan
    i = hit[0]
    if i == 0:
        return float(effects[0])
    w = (POWER - power[i - 1]) / (power[i] - power[i - 1])
    return float(effects[i - 1] + w * (effects[i] - effects[i - 1]))


def search(sizes, evaluate) -> float:
    """The smallest planted effect found in 80% of the simulated tables: ``evaluate(size)``
    -> (found: bool per table, the effect that size makes in the verdict's own measure).
    ``sizes`` (increasing) are tried until one reaches the power, then the bracket is
    halved BISECTIONS times (the same tables at every size); linear between its ends. nan
    if no size reaches the power."""
    below = None
    for size in sizes:
        found, effect = evaluate(size)
        above = (size, found.mean(), effect)
        if above[1] >= POWER:
            break
        below = above
    else:
        return np.nan
    if below is None:
        return float(above[2])
    for _ in range(BISECTIONS):
        middle = (below[0] + above[0]) / 2
        found, effect = evaluate(middle)
        point = (middle, found.mean(), effect)
        below, above = (below, point) if point[1] >= POWER else (point, above)
    w = (POWER - below[1]) / (above[1] - below[1])
    return float(below[2] + w * (above[2] - below[2]))
