"""Tables, figures and the statistics of the paper's three findings, from run records.

Everything here is a function of the tidy tables of ``results.load`` (``runs``:
one row per run; ``tasks``: one row per task of a run), so every notebook
regenerates its numbers from whatever records exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cl_regimes import metrics
from cl_regimes.profiles import METHOD_NAMES, PAPER_METHODS, REGIME_NAMES
from cl_regimes.regimes import REGIMES

METRICS = {"acc": "ACC", "bwt": "BWT", "forgetting": "forgetting",
           "forgetting_chaudhry": "forgetting (Chaudhry)"}
NESTED = [r for r in REGIME_NAMES if REGIMES[r].depth is not None]


def _ordered(values, reference) -> list:
    return [v for v in reference if v in set(values)]


def mean_std(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else (
        f"{values.mean():.3f}" if len(values) else "–")


def method_table(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per method: ACC, BWT and forgetting as mean ± std over orders (and seeds)."""
    sub = runs[runs.dataset == dataset]
    rows = {m: {label: mean_std(g[key]) for key, label in METRICS.items()} | {"runs": len(g)}
            for m, g in sub.groupby("method")}
    return pd.DataFrame.from_dict(rows, orient="index").loc[_ordered(rows, METHOD_NAMES)]


def mean_matrices(runs: pd.DataFrame, dataset: str) -> dict[str, np.ndarray]:
    """Per method, the accuracy matrix averaged over orders (by training position)."""
    sub = runs[runs.dataset == dataset]
    return {m: np.mean(np.stack(list(sub[sub.method == m].R)), 0)
            for m in _ordered(sub.method.unique(), METHOD_NAMES)}


def heatmaps(runs: pd.DataFrame, dataset: str, title: str = ""):
    """Accuracy-matrix heatmaps, one panel per method, R[i, j] averaged over orders."""
    mats = mean_matrices(runs, dataset)
    fig, axes = plt.subplots(1, len(mats), figsize=(2.3 * len(mats) + 0.8, 2.7),
                             squeeze=False, constrained_layout=True)
    for ax, (method, R) in zip(axes[0], mats.items()):
        im = ax.imshow(R, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(R):
            ax.text(j, i, "1" if round(v, 2) >= 1 else f"{v:.2f}"[1:], ha="center", va="center",
                    fontsize=6, color="white" if v < 0.6 else "black")
        ax.set_title(method, fontsize=9)
        ax.set_xticks(range(len(R)))
        ax.set_yticks(range(len(R)))
        ax.set_xlabel("task j (tested)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("after training task i", fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="accuracy")
    fig.suptitle(title or f"{dataset}: accuracy matrices (mean over orders)", fontsize=10)
    return fig


def update_table(tasks: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per method, means over tasks and orders of the update statistics."""
    sub = tasks[tasks.dataset == dataset]
    cols = ["g2", "r2", "cos", "u", "drift"]
    table = sub.groupby("method")[cols].mean()
    return table.loc[_ordered(table.index, METHOD_NAMES)]


def update_figure(tasks: pd.DataFrame, dataset: str):
    """Per method: update magnitude u and drift per training position (mean over orders),
    and per-task forgetting against u."""
    sub = tasks[tasks.dataset == dataset]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3), constrained_layout=True)
    for method in _ordered(sub.method.unique(), METHOD_NAMES):
        g = sub[sub.method == method]
        per_pos = g.groupby("position")[["u", "drift"]].mean()
        axes[0].plot(per_pos.index, per_pos.u, marker="o", label=method)
        axes[1].plot(per_pos.index, per_pos.drift, marker="o", label=method)
        axes[2].scatter(g.u, g.forgetting, s=12, label=method)
    axes[0].set(xlabel="training position", ylabel="u = E‖P_S ∇J‖²", yscale="log",
                title="update magnitude")
    axes[1].set(xlabel="training position", ylabel="‖θ_t − θ_{t−1}‖", title="drift")
    axes[2].set(xlabel="u (log)", ylabel="forgetting of the task", xscale="log",
                title="update vs forgetting")
    axes[0].legend(fontsize=7)
    return fig


# ---- across regimes -------------------------------------------------------------------


def regime_table(runs: pd.DataFrame, dataset: str, metric: str = "acc") -> pd.DataFrame:
    """Method x regime: mean over orders, with the method's rank within the regime
    (1 = best; for forgetting, lowest is best)."""
    sub = runs[runs.dataset == dataset]
    means = sub.pivot_table(index="method", columns="regime", values=metric, aggfunc="mean")
    means = means.loc[_ordered(means.index, METHOD_NAMES), _ordered(means.columns, REGIME_NAMES)]
    ranks = means.rank(ascending=metric.startswith("forgetting"), method="min")
    return means.round(3).astype(str) + " (" + ranks.astype("Int64").astype(str) + ")"


def order_taus(runs: pd.DataFrame, methods=PAPER_METHODS) -> pd.DataFrame:
    """Kendall tau between the methods' ACC of every pair of regimes, per dataset and order."""
    rows = []
    sub = runs[runs.method.isin(methods)]
    for (dataset, order, seed), g in sub.groupby(["dataset", "order", "seed"]):
        acc = g.pivot_table(index="regime", columns="method", values="acc")
        acc = acc.dropna()
        scores = {r: acc.loc[r].to_numpy() for r in _ordered(acc.index, REGIME_NAMES)}
        for (a, b), tau in metrics.pairwise_tau(scores).items():
            rows.append({"dataset": dataset, "order": order, "seed": seed, "regime_a": a,
                         "regime_b": b, "tau": tau})
    return pd.DataFrame(rows, columns=["dataset", "order", "seed", "regime_a", "regime_b", "tau"])


def tau_matrix(taus: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Regime x regime: Kendall tau mean ± std over orders [bootstrap 95% interval of the mean]."""
    sub = taus[taus.dataset == dataset]
    names = _ordered(set(sub.regime_a) | set(sub.regime_b), REGIME_NAMES)
    table = pd.DataFrame("1", index=names, columns=names)
    for (a, b), g in sub.groupby(["regime_a", "regime_b"]):
        lo, hi = metrics.bootstrap_ci(g.tau)
        table.loc[a, b] = table.loc[b, a] = f"{mean_std(g.tau.dropna())} [{lo:.2f}, {hi:.2f}]"
    return table


def tau_figure(taus: pd.DataFrame, dataset: str):
    sub = taus[taus.dataset == dataset]
    names = _ordered(set(sub.regime_a) | set(sub.regime_b), REGIME_NAMES)
    mean = pd.DataFrame(1.0, index=names, columns=names)
    for (a, b), g in sub.groupby(["regime_a", "regime_b"]):
        mean.loc[a, b] = mean.loc[b, a] = g.tau.mean()
    fig, ax = plt.subplots(figsize=(5.2, 4.2), constrained_layout=True)
    im = ax.imshow(mean.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu")
    for (i, j), v in np.ndenumerate(mean.to_numpy(float)):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    fig.colorbar(im, label="Kendall τ of the methods' ACC ranking")
    ax.set_title(f"{dataset}: ranking agreement between regimes (mean over orders)", fontsize=9)
    return fig


@dataclass
class Finding:
    number: int
    claim: str
    statistic: str
    value: float
    interval: tuple[float, float]
    supported: bool | None
    rule: str

    @property
    def verdict(self) -> str:
        return {True: "supported", False: "not supported", None: "not testable here"}[
            self.supported]

    def sentence(self) -> str:
        lo, hi = self.interval
        return (f"Finding {self.number} ({self.claim}): {self.verdict}. {self.statistic} = "
                f"{self.value:.2f}, 95% bootstrap interval [{lo:.2f}, {hi:.2f}]; {self.rule}.")


def _depth(df: pd.DataFrame) -> pd.Series:
    return df.regime.map(lambda r: REGIMES[r].depth)


def finding_ranking(taus: pd.DataFrame) -> Finding:
    """1: the ranking of methods is not preserved across regimes."""
    per_order = taus.groupby(["dataset", "order", "seed"]).tau.mean().dropna()
    value = per_order.mean() if len(per_order) else np.nan
    lo, hi = metrics.bootstrap_ci(per_order)
    return Finding(1, "method rankings change across regimes",
                   "mean Kendall τ between regimes' rankings of the paper's methods by ACC "
                   f"(over {len(per_order)} dataset-order pairs)", value, (lo, hi),
                   None if len(per_order) < 2 else bool(hi < 1),
                   "supported when the whole interval lies below 1 (rankings identical)")


def run_updates(runs: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Runs of the paper's methods in nested regimes with their depth and mean update u."""
    keys = ["dataset", "regime", "method", "bn_stats", "order", "seed"]
    u = tasks.groupby(keys).u.mean().rename("u").reset_index()
    out = runs.merge(u, on=keys)
    out = out[out.method.isin(PAPER_METHODS) & out.regime.isin(NESTED)].copy()
    out["depth"] = _depth(out)
    return out


def _spearman(x, y) -> float:
    return metrics.correlations(x, y)["spearman"]


def finding_depth(runs: pd.DataFrame, tasks: pd.DataFrame) -> list[Finding]:
    """2: deeper regimes give larger update magnitudes and more forgetting."""
    df = run_updates(runs, tasks)
    out = []
    for column, claim in (("u", "deeper regimes give larger updates"),
                          ("forgetting", "deeper regimes forget more")):
        value = _spearman(df.depth, df[column])
        lo, hi = metrics.bootstrap_ci(df, lambda f, c=column: _spearman(f.depth, f[c]),
                                      n_boot=1000)
        out.append(Finding(2, claim, f"Spearman ρ of regime depth with the run's {column} "
                           f"({len(df)} runs of the paper's methods)", value, (lo, hi),
                           None if np.isnan(value) else bool(lo > 0),
                           "supported when the whole interval lies above 0"))
    return out


def update_forgetting_correlations(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per nested regime, dataset and order: correlations of per-task u with per-task
    forgetting over the paper's methods' tasks (the last task dropped)."""
    sub = tasks[tasks.method.isin(PAPER_METHODS) & tasks.regime.isin(NESTED)]
    sub = sub.dropna(subset=["forgetting"])
    rows = []
    for (regime, dataset, bn, order, seed), g in sub.groupby(
            ["regime", "dataset", "bn_stats", "order", "seed"]):
        rows.append({"regime": regime, "depth": REGIMES[regime].depth, "dataset": dataset,
                     "bn_stats": bn, "order": order, "seed": seed, "points": len(g),
                     **metrics.correlations(np.log(g.u.clip(lower=1e-30)), g.forgetting)})
    return pd.DataFrame(rows)


def correlation_table(corr: pd.DataFrame) -> pd.DataFrame:
    """Per regime: each correlation's mean ± std over datasets and orders."""
    table = corr.groupby("regime")[["pearson", "spearman", "kendall"]].agg(
        lambda s: mean_std(s.dropna()))
    return table.loc[_ordered(table.index, REGIME_NAMES)]


def finding_coupling(corr: pd.DataFrame) -> Finding:
    """3: deeper regimes give a stronger update-magnitude vs forgetting relationship."""
    def trend(frame):
        per_regime = frame.groupby("depth").spearman.mean()
        return _spearman(per_regime.index, per_regime.to_numpy())

    units = corr[["dataset", "order", "seed"]].drop_duplicates().reset_index(drop=True)

    def resampled(unit_rows):
        return trend(corr.merge(unit_rows, on=["dataset", "order", "seed"]))

    value = trend(corr) if len(corr) else np.nan
    lo, hi = (metrics.bootstrap_ci(units, resampled, n_boot=500) if len(units) > 1
              else (np.nan, np.nan))
    return Finding(3, "the update-forgetting relationship strengthens with depth",
                   "Spearman ρ of regime depth with the regime's mean update-forgetting "
                   f"Spearman correlation ({len(units)} dataset-order units)", value, (lo, hi),
                   None if np.isnan(value) or np.isnan(lo) else bool(lo > 0),
                   "supported when the whole interval (orders resampled) lies above 0")


def depth_figure(runs: pd.DataFrame, tasks: pd.DataFrame, corr: pd.DataFrame):
    """Update magnitude, forgetting and their correlation against regime depth."""
    df = run_updates(runs, tasks)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), constrained_layout=True)
    labels = [r for r in NESTED]
    for method in _ordered(df.method.unique(), METHOD_NAMES):
        g = df[df.method == method].groupby("depth")[["u", "forgetting"]].mean()
        axes[0].plot(g.index, g.u, marker="o", label=method)
        axes[1].plot(g.index, g.forgetting, marker="o", label=method)
    c = corr.groupby("depth").spearman.agg(["mean", "std"])
    axes[2].errorbar(c.index, c["mean"], yerr=c["std"].fillna(0), marker="o", capsize=3)
    axes[2].axhline(0, color="grey", lw=0.8)
    for ax, title, ylabel in zip(axes, ("update magnitude", "forgetting",
                                        "update–forgetting coupling"),
                                 ("mean u (log)", "forgetting", "Spearman(u, forgetting)")):
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set(title=title, ylabel=ylabel)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    return fig


def bn_stats_table(runs: pd.DataFrame, dataset: str, metric: str = "acc") -> pd.DataFrame | None:
    """Regime x bn_stats means over methods and orders, where both settings have records."""
    sub = runs[runs.dataset == dataset]
    if sub.bn_stats.nunique() < 2:
        return None
    table = sub.pivot_table(index=["regime", "method"], columns="bn_stats", values=metric)
    table = table.dropna()
    table["difference"] = table["follow_regime"] - table["always_update"]
    return table.round(3)
