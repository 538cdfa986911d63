"""Simulated record tables, shaped as ``results.load`` gives them, with planted effects and
planted traps for the findings' tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cl_regimes.findings import DEPTH, PAPER_METHODS

NESTED = tuple(DEPTH)
KEY = {"bn_stats": "always_update", "variant": "", "seed": 0, "profile": "sim"}
N_TRAINABLE = dict(zip(NESTED, [650, 8e6, 1.1e7, 1.2e7, 1.23e7, 1.24e7]))


def runs_table(acc, regimes=NESTED, methods=PAPER_METHODS, diag=None, T=5, classes=2, seeds=1):
    """Runs from acc (datasets, replicates, regimes, methods); R holds acc off its diagonal
    and ``diag`` (same shape, default 0.95) on it. Replicate i is order i // ``seeds``, seed
    i % ``seeds``."""
    acc = np.asarray(acc, float)
    diag = np.full(acc.shape, 0.95) if diag is None else np.broadcast_to(diag, acc.shape)
    d, o, r, m = (i.ravel() for i in np.indices(acc.shape))
    runs = pd.DataFrame(
        {
            "dataset": [f"d{i}" for i in d],
            "regime": np.asarray(regimes)[r],
            "method": np.asarray(methods)[m],
            **KEY,
            "order": o // seeds,
            "seed": o % seeds,
            "seeding": "independent",
            "classes_per_task": classes,
            "chance": 1 / classes,
            "acc": acc.ravel(),
        }
    )
    runs["R"] = [np.full((T, T), a) + np.eye(T) * (g - a) for a, g in zip(runs.acc, diag.ravel())]
    return runs


def tasks_table(u, forgetting, regimes=NESTED, methods=PAPER_METHODS, acc_learned=0.95, seeds=1):
    """Tasks from u and forgetting (datasets, methods, replicates, regimes, positions); the
    last position's forgetting is nan, as in the records. Replicate i is order i //
    ``seeds``, seed i % ``seeds``."""
    forgetting = np.array(forgetting, float)
    forgetting[..., -1] = np.nan
    learned = np.broadcast_to(acc_learned, u.shape)
    d, m, o, r, p = (i.ravel() for i in np.indices(u.shape))
    reg = np.asarray(regimes)[r]
    return pd.DataFrame(
        {
            "dataset": [f"d{i}" for i in d],
            "regime": reg,
            "method": np.asarray(methods)[m],
            **KEY,
            "order": o // seeds,
            "seed": o % seeds,
            "seeding": "independent",
            "classes_per_task": 2,
            "chance": 0.5,
            "n_trainable": [N_TRAINABLE[x] for x in reg],
            "position": p,
            "u": u.ravel(),
            "orig_u": u.ravel(),
            "forgetting": forgetting.ravel(),
            "acc_learned": learned.ravel(),
        }
    )


# ---- finding 1 --------------------------------------------------------------------------------

BASE = np.array([0.80, 0.75, 0.70, 0.65])  # ewc, lwf, si, gem


# the medium records' noise (records/medium; benchmarks/findings_power.py prints records vs
# simulation): a run's ACC residual sd per nested regime, and the shares of its variance that
# are an order-by-method effect common to the regimes, an order-by-regime-by-method effect
# (both shared by the order's seeds) and the run's own noise
MEDIUM_ACC_SD = np.array([0.035, 0.033, 0.037, 0.042, 0.050, 0.053])
MEDIUM_ACC_SHARES = (0.12, 0.06, 0.82)


def ranking_draw(
    rng,
    kind: str,
    orders: int = 11,
    noise: float = 0.02,
    shared: float = 0.0,
    seeds: int = 1,
    size: float = 0.05,
    medium: float = 0.0,
):
    """One dataset of ACC (1, orders x seeds, 6 nested regimes, 4 methods) under a planted
    case (the seeds of an order share its order effect):

    - "null": the same ranking everywhere, plus noise;
    - "depth_noise": the same ranking, noise growing with depth (x1 to x6);
    - "ceiling": gaps shrink to nearly nothing in deep regimes near 1 (no sign change);
    - "gap_change": the lwf - si gap grows tenfold in deep regimes, same sign;
    - "ties": ewc and lwf tied in every regime;
    - "shared": the null with ``shared`` of the noise variance common to the methods of an
      order and regime;
    - "swap": ewc and lwf swap places (gap ``size`` -> -``size``) in the three deepest
      regimes;
    - "scattered": ewc ahead of lwf by ``size`` in three regimes drawn at random, behind by
      it in the other three;
    - "cross": ewc ahead of lwf by ``size`` in from_layer3 and behind it by ``size`` in
      from_layer2, tied elsewhere;
    - "boundary": lwf ahead of ewc by 0.1 in five regimes and behind it by exactly the
      margin (0.005) in head: the least favourable null.

    ``medium`` > 0: the medium records' noise times ``medium`` in place of ``noise``
    (MEDIUM_ACC_SD, MEDIUM_ACC_SHARES: order-by-method effects shared by an order's seeds).
    """
    base = np.tile(BASE, (6, 1))
    scale = np.ones((6, 1))
    if kind == "depth_noise":
        scale = np.arange(1, 7)[:, None].astype(float)
    elif kind == "ceiling":
        base[3:] = 0.99 - np.array([0.0, 0.001, 0.002, 0.003])
        scale[3:] = 0.1
    elif kind == "gap_change":
        base[3:, 2:] = [0.70, 0.40]
    elif kind == "ties":
        base[:, 1] = base[:, 0]
    elif kind == "swap":
        base[:3, 1] = base[:3, 0] - size
        base[3:, 1] = base[3:, 0] + size
    elif kind == "scattered":
        ahead = rng.permutation(6)[:3]
        base[:, 1] = base[:, 0] + size
        base[ahead, 1] -= 2 * size
    elif kind == "cross":
        base[:, 1] = base[:, 0]
        base[2:4, 1] += [-size, size]
    elif kind == "boundary":
        base[:, 1] = base[:, 0] + 0.1
        base[0, 1] = base[0, 0] - 0.005
    n = orders * seeds
    order_effect = np.repeat(rng.normal(0, 0.03, (1, orders, 1, 1)), seeds, 1)  # harder orders
    if medium:
        sd = medium * MEDIUM_ACC_SD[:, None]
        a, b, e = (np.sqrt(share) * sd for share in MEDIUM_ACC_SHARES)
        per_order = a * rng.normal(0, 1, (1, orders, 1, 4)) + b * rng.normal(
            0, 1, (1, orders, 6, 4)
        )
        return (
            base
            + (np.repeat(per_order, seeds, 1) + e * rng.normal(0, 1, (1, n, 6, 4))) * scale
            + order_effect
        )
    own = rng.normal(0, noise, (1, n, 6, 4)) * np.sqrt(1 - shared)
    common = rng.normal(0, noise, (1, n, 6, 1)) * np.sqrt(shared)
    return base + (own + common) * scale + order_effect


# ---- findings 2 and 3 ----------------------------------------------------------------------

DEPTHS = np.arange(6)[None, None, None, :, None]
RUN_SD = {"u": 0.3 / np.sqrt(5), "f": 0.03 / 2}  # the noise of a run's mean over its tasks
# the medium records' noise of a task's log u per parameter and forgetting, its scale per
# nested regime (relative to the mean), and the correlation of an order's two seeds' runs
MEDIUM_SD = {"u": 0.45, "f": 0.09}
MEDIUM_SCALE = {
    "u": np.array([0.21, 0.45, 0.69, 0.79, 1.55, 2.37]),
    "f": np.array([0.46, 0.87, 0.96, 1.10, 1.27, 1.35]),
}
MEDIUM_SEED_CORR = {"u": 0.2, "f": 0.33}


def depth_draw(
    rng,
    kind: str,
    orders: int = 11,
    positions: int = 5,
    *,
    seeds: int = 1,
    datasets: int = 1,
    slope: float | tuple[float, float] = 0.26,
    coupling: tuple[float, float] = (0.0, 0.9),
    medium: bool = False,
):
    """u and forgetting (datasets, 4 methods, orders x seeds, 6 regimes, positions) and the
    accuracy right after learning, under a planted case (seeds of an order share what is
    drawn per order):

    - "null": neither depends on the regime (u per parameter flat);
    - "chance": flat in every regime that learns; head at chance forgets nothing;
    - "shared": the null with noise shared by the methods of an order and regime;
    - "heavy": the null with heavy-tailed noise (Student t, 1.5 degrees of freedom);
    - "one_method": only ewc trends (by ``slope`` run sds per depth step);
    - "position": u and forgetting both grow with the task's position, no coupling;
    - "trend": log u per parameter and forgetting grow with depth in every method, by
      ``slope`` run sds per depth step (0.26: a mean per-order Spearman rho of 0.4), or by
      (u's, forgetting's);
    - "random_slope": each order and method has its own trend, drawn around no mean trend
      (sd 1 run sd per depth step), in u, forgetting and the coupling;
    - "coupling": the correlation of log u with forgetting goes linearly with depth from
      ``coupling[0]`` (head) to ``coupling[1]`` (full); negative values for a negative one;
    - "border": the null, but head's excess over chance is drawn between 0.45 and 0.55 (one
      value for all its cells, so that it straddles the threshold 0.5 from draw to draw) and
      it forgets in proportion to what it learned; "border_cells": one value per cell.

    ``medium``: the medium records' noise structure (MEDIUM_*): the noise of each regime
    scaled as the records', heavy-tailed log u, and a run-level effect shared by an order's
    seeds (their run means correlate about MEDIUM_SEED_CORR).
    """
    shape = (datasets, 4, orders * seeds, 6, positions)
    per_order = (datasets, 4, orders, 1, 1)

    def by_order(a):
        return np.repeat(a, seeds, 2)

    log_n = np.log([N_TRAINABLE[r] for r in NESTED])[None, None, None, :, None]
    levels = np.array([-3.0, -1.0, -2.0, 1.0])[None, :, None, None, None]
    if kind == "heavy":
        noise_u, noise_f = 0.3 * rng.standard_t(1.5, shape), 0.03 * rng.standard_t(1.5, shape)
    elif medium:
        noise_u, noise_f = (rng.normal(0, MEDIUM_SD[k], shape) for k in ("u", "f"))
    else:
        noise_u, noise_f = rng.normal(0, 0.3, shape), rng.normal(0, 0.03, shape)
    if kind == "shared":
        common = rng.normal(0, 1, (datasets, 1, orders * seeds, 6, positions))
        noise_u, noise_f = 0.3 * common + 0.1 * noise_u, 0.03 * common + 0.1 * noise_f
    standard_u = noise_u / (MEDIUM_SD["u"] if medium else 0.3)  # the coupling is planted on it
    run_sd = RUN_SD
    if medium:
        run_sd = {k: MEDIUM_SD[k] / np.sqrt(positions - (k == "f")) for k in ("u", "f")}
        for noise, k in ((noise_u, "u"), (noise_f, "f")):
            shared_sd = run_sd[k] * np.sqrt(MEDIUM_SEED_CORR[k] / (1 - MEDIUM_SEED_CORR[k]))
            noise += by_order(rng.normal(0, shared_sd, (datasets, 4, orders, 6, 1)))
            noise *= MEDIUM_SCALE[k][:, None]
        noise_u -= 0.5 * noise_u.var((0, 1, 2, 4), keepdims=True)  # flat mean of u itself
    log_u = levels + log_n + noise_u
    forgetting = 0.2 + noise_f
    learned = np.full(shape, 0.95)
    if kind == "chance":
        forgetting[..., 0, :] = np.abs(rng.normal(0, 0.003, forgetting[..., 0, :].shape))
        learned[..., 0, :] = 0.52
    elif kind in ("one_method", "trend"):
        methods = slice(0, 1) if kind == "one_method" else slice(None)
        slope_u, slope_f = np.broadcast_to(slope, 2)
        log_u[:, methods] += slope_u * run_sd["u"] * DEPTHS
        forgetting[:, methods] += slope_f * run_sd["f"] * DEPTHS
    elif kind == "random_slope":
        log_u += by_order(rng.normal(0, run_sd["u"], per_order)) * DEPTHS
        forgetting += by_order(rng.normal(0, run_sd["f"], per_order)) * DEPTHS
        strength = by_order(rng.normal(0, 0.3, per_order)) * DEPTHS / 5
        sd_f = MEDIUM_SD["f"] if medium else 0.03
        forgetting += sd_f * strength / np.sqrt(1 - np.minimum(strength**2, 0.9)) * standard_u
    elif kind == "position":
        pos = np.arange(positions)
        log_u += 0.5 * pos
        forgetting += 0.05 * pos[::-1]
    elif kind == "coupling":
        rho = coupling[0] + (coupling[1] - coupling[0]) * DEPTHS / 5
        scale = MEDIUM_SCALE["f"][:, None] * MEDIUM_SD["f"] if medium else 0.03
        forgetting += scale * rho / np.sqrt(1 - rho**2) * standard_u
    elif kind in ("border", "border_cells"):
        cells = (datasets, 1 if kind == "border" else 4, 1, 1, 1)
        excess = rng.uniform(0.45, 0.55, cells)
        learned[..., 0, :] = 0.5 + 0.5 * excess[..., 0, :]
        forgetting[..., 0, :] *= excess[..., 0, :] / 0.9  # the others learn 0.9 of the way
    return np.exp(log_u), forgetting, learned
