"""The replicate as the unit, and power by simulation.

Findings 2 and 3 compute one statistic per replicate (order, seed) and method, average it
over the seeds of each order (seeds of one order share its task sequence, so they are not
independent of each other) and test the mean over the orders by sign flips. Under a null
that makes each order's statistic symmetric about zero, flipping its sign leaves the
distribution of the mean unchanged, whatever each order's spread, and whether or not the
trend varies from order to order; permuting regimes within an order is valid only when it
does not vary at all.

Power is found by simulation under the test's own design: the records' own residuals
(each order's values less the mean over orders), orders resampled with replacement, a
planted effect of growing size, the same test; the smallest effect found in 80% of the
simulated tables is what the verdict could have seen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

POWER = 0.8
N_POWER = 200  # simulated tables per planted size
N_FLIPS = 199  # sign flips per simulated table
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


def resampled(n_units: int, rng, n_power: int) -> np.ndarray:
    """Indices of ``n_power`` tables of ``n_units`` orders drawn with replacement."""
    return rng.integers(0, n_units, (n_power, n_units))


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
