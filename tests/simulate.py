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


def ranking_draw(
    rng,
    kind: str,
    orders: int = 11,
    noise: float = 0.02,
    shared: float = 0.0,
    seeds: int = 1,
    size: float = 0.05,
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
    - "cross": ewc ahead of lwf by ``size`` in from_layer3 and behind it by ``size`` in
      from_layer2, tied elsewhere.
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
    elif kind == "cross":
        base[:, 1] = base[:, 0]
        base[2:4, 1] += [-size, size]
    n = orders * seeds
    own = rng.normal(0, noise, (1, n, 6, 4)) * np.sqrt(1 - shared)
    common = rng.normal(0, noise, (1, n, 6, 1)) * np.sqrt(shared)
    order_effect = np.repeat(rng.normal(0, 0.03, (1, orders, 1, 1)), seeds, 1)  # harder orders
    return base + (own + common) * scale + order_effect


# ---- findings 2 and 3 ----------------------------------------------------------------------

DEPTHS = np.arange(6)[None, None, None, :, None]
RUN_SD = {"u": 0.3 / np.sqrt(5), "f": 0.03 / 2}  # the noise of a run's mean over its tasks


def depth_draw(
    rng,
    kind: str,
    orders: int = 11,
    positions: int = 5,
    *,
    seeds: int = 1,
    datasets: int = 1,
    slope: float = 0.26,
    coupling: tuple[float, float] = (0.0, 0.9),
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
      ``slope`` run sds per depth step (0.26: a mean per-order Spearman rho of 0.4);
    - "random_slope": each order and method has its own trend, drawn around no mean trend
      (sd 1 run sd per depth step), in u, forgetting and the coupling;
    - "coupling": the correlation of log u with forgetting goes linearly with depth from
      ``coupling[0]`` (head) to ``coupling[1]`` (full); negative values for a negative one.
    """
    shape = (datasets, 4, orders * seeds, 6, positions)
    per_order = (datasets, 4, orders, 1, 1)

    def by_order(a):
        return np.repeat(a, seeds, 2)

    log_n = np.log([N_TRAINABLE[r] for r in NESTED])[None, None, None, :, None]
    levels = np.array([-3.0, -1.0, -2.0, 1.0])[None, :, None, None, None]
    if kind == "heavy":
        noise_u, noise_f = 0.3 * rng.standard_t(1.5, shape), 0.03 * rng.standard_t(1.5, shape)
    else:
        noise_u, noise_f = rng.normal(0, 0.3, shape), rng.normal(0, 0.03, shape)
    if kind == "shared":
        common = rng.normal(0, 1, (datasets, 1, orders * seeds, 6, positions))
        noise_u, noise_f = 0.3 * common + 0.1 * noise_u, 0.03 * common + 0.1 * noise_f
    log_u = levels + log_n + noise_u
    forgetting = 0.2 + noise_f
    learned = np.full(shape, 0.95)
    if kind == "chance":
        forgetting[..., 0, :] = np.abs(rng.normal(0, 0.003, forgetting[..., 0, :].shape))
        learned[..., 0, :] = 0.52
    elif kind in ("one_method", "trend"):
        methods = slice(0, 1) if kind == "one_method" else slice(None)
        log_u[:, methods] += slope * RUN_SD["u"] * DEPTHS
        forgetting[:, methods] += slope * RUN_SD["f"] * DEPTHS
    elif kind == "random_slope":
        log_u += by_order(rng.normal(0, RUN_SD["u"], per_order)) * DEPTHS
        forgetting += by_order(rng.normal(0, RUN_SD["f"], per_order)) * DEPTHS
        strength = by_order(rng.normal(0, 0.3, per_order)) * DEPTHS / 5
        forgetting += 0.03 * strength / np.sqrt(1 - np.minimum(strength**2, 0.9)) * noise_u / 0.3
    elif kind == "position":
        pos = np.arange(positions)
        log_u += 0.5 * pos
        forgetting += 0.05 * pos[::-1]
    elif kind == "coupling":
        rho = coupling[0] + (coupling[1] - coupling[0]) * DEPTHS / 5
        forgetting += 0.03 * rho / np.sqrt(1 - rho**2) * noise_u / 0.3
    return np.exp(log_u), forgetting, learned
