"""Simulated record tables, shaped as ``results.load`` gives them, with planted effects and
planted traps for the findings' tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cl_regimes.findings import DEPTH, PAPER_METHODS

NESTED = tuple(DEPTH)
KEY = {"bn_stats": "always_update", "variant": "", "seed": 0, "profile": "sim"}
N_TRAINABLE = dict(zip(NESTED, [650, 8e6, 1.1e7, 1.2e7, 1.23e7, 1.24e7]))


def runs_table(acc, regimes=NESTED, methods=PAPER_METHODS, diag=None, T=5, classes=2):
    """Runs from acc (datasets, orders, regimes, methods); R holds acc off its diagonal and
    ``diag`` (same shape, default 0.95) on it."""
    acc = np.asarray(acc, float)
    diag = np.full(acc.shape, 0.95) if diag is None else np.broadcast_to(diag, acc.shape)
    d, o, r, m = (i.ravel() for i in np.indices(acc.shape))
    runs = pd.DataFrame(
        {
            "dataset": [f"d{i}" for i in d],
            "regime": np.asarray(regimes)[r],
            "method": np.asarray(methods)[m],
            "order": o,
            **KEY,
            "seeding": "independent",
            "classes_per_task": classes,
            "chance": 1 / classes,
            "acc": acc.ravel(),
        }
    )
    runs["R"] = [np.full((T, T), a) + np.eye(T) * (g - a) for a, g in zip(runs.acc, diag.ravel())]
    return runs


def tasks_table(u, forgetting, regimes=NESTED, methods=PAPER_METHODS, acc_learned=0.95):
    """Tasks from u and forgetting (datasets, methods, orders, regimes, positions); the last
    position's forgetting is nan, as in the records."""
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
            "order": o,
            **KEY,
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


def ranking_draw(rng, kind: str, orders: int = 11, noise: float = 0.02, shared: float = 0.0):
    """One dataset of ACC (1, orders, 6 nested regimes, 4 methods) under a planted case:

    - "null": the same ranking everywhere, plus noise;
    - "depth_noise": the same ranking, noise growing with depth (x1 to x6);
    - "ceiling": gaps shrink to nearly nothing in deep regimes near 1 (no sign change);
    - "gap_change": the lwf - si gap grows tenfold in deep regimes, same sign;
    - "ties": ewc and lwf tied in every regime;
    - "shared": the null with ``shared`` of the noise variance common to the methods of an
      order and regime;
    - "swap": ewc and lwf swap places (gap 0.05 -> -0.05) in the three deepest regimes.
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
        base[3:, :2] = [0.75, 0.80]
    own = rng.normal(0, noise, (1, orders, 6, 4)) * np.sqrt(1 - shared)
    common = rng.normal(0, noise, (1, orders, 6, 1)) * np.sqrt(shared)
    order_effect = rng.normal(0, 0.03, (1, orders, 1, 1))  # harder task sequences
    return base + (own + common) * scale + order_effect


# ---- findings 2 and 3 ----------------------------------------------------------------------

DEPTHS = np.arange(6)[None, None, None, :, None]


def depth_draw(rng, kind: str, orders: int = 11, positions: int = 5):
    """u and forgetting (1 dataset, 4 methods, orders, 6 regimes, positions) and the
    accuracy right after learning, under a planted case:

    - "null": neither depends on the regime (u per parameter flat);
    - "chance": flat in every regime that learns; head at chance forgets nothing;
    - "shared": the null with noise shared by the methods of an order and regime;
    - "one_method": only ewc trends;
    - "position": u and forgetting both grow with the task's position, no coupling;
    - "trend": u per parameter and forgetting grow with depth in every method;
    - "coupling": coupling of u with forgetting grows with depth (positive);
    - "negative_coupling": it grows in magnitude with a negative sign.
    """
    shape = (1, 4, orders, 6, positions)
    log_n = np.log([N_TRAINABLE[r] for r in NESTED])[None, None, None, :, None]
    levels = np.array([-3.0, -1.0, -2.0, 1.0])[None, :, None, None, None]
    noise_u, noise_f = rng.normal(0, 0.3, shape), rng.normal(0, 0.03, shape)
    if kind == "shared":
        noise_u = 0.3 * rng.normal(0, 1, (1, 1, orders, 6, positions)) + 0.1 * noise_u
        noise_f = 0.03 * rng.normal(0, 1, (1, 1, orders, 6, positions)) + 0.1 * noise_f
    log_u = levels + log_n + noise_u
    forgetting = 0.2 + noise_f
    learned = np.full(shape, 0.95)
    if kind == "chance":
        forgetting[..., 0, :] = np.abs(rng.normal(0, 0.003, forgetting[..., 0, :].shape))
        learned[..., 0, :] = 0.52
    elif kind in ("one_method", "trend"):
        methods = slice(0, 1) if kind == "one_method" else slice(None)
        log_u[:, methods] += 0.25 * DEPTHS
        forgetting[:, methods] += 0.02 * DEPTHS
    elif kind == "position":
        pos = np.arange(positions)
        log_u += 0.5 * pos
        forgetting += 0.05 * pos[::-1]
    elif kind in ("coupling", "negative_coupling"):
        sign = 1 if kind == "coupling" else -1
        forgetting += sign * 0.03 * (DEPTHS / 5) * 2 * noise_u / 0.3
    return np.exp(log_u), forgetting, learned
