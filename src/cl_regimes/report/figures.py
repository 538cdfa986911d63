"""Figures: accuracy-matrix and Kendall-tau heatmaps (HTML tables, so their numbers keep
the page's font size), update statistics, depth trends and each method across regimes."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML

from cl_regimes import findings
from cl_regimes.report import METRICS, method_order, show
from cl_regimes.report.tables import by_scenario, regime_table


def heatmap(
    matrix, title: str, labels, *, vmin: float, vmax: float, cmap: str, fmt, columns=None
) -> str:
    """One matrix as an HTML table, each cell coloured by its value and printing it with
    ``fmt``: its numbers keep the page's font size (a figure's shrink with the page), and a
    browser can measure its cells. ``labels`` name the rows, and the columns unless
    ``columns`` does."""
    colours = plt.get_cmap(cmap)
    cell = "min-width: 2.3em; height: 2em; padding: 0 0.3em; text-align: center;"
    rows = []
    for i, row in enumerate(np.asarray(matrix, float)):
        tds = []
        for v in row:
            if np.isnan(v):
                tds.append(f'<td style="{cell}"></td>')
                continue
            r, g, b, _ = colours((v - vmin) / (vmax - vmin))
            ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.55 else "black"
            tds.append(
                f'<td style="{cell} background: {matplotlib.colors.to_hex((r, g, b))}; '
                f'color: {ink};">{fmt(v)}</td>'
            )
        rows.append(f'<tr><th style="padding: 0 0.4em;">{labels[i]}</th>{"".join(tds)}</tr>')
    head = "".join(f'<th style="text-align: center;">{c}</th>' for c in columns or labels)
    return (
        f'<table class="heatmap" style="border-collapse: collapse; margin: 0;">'
        f'<caption style="caption-side: top; text-align: center;">{title}</caption>'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def heatmap_grid(panels: list[str], caption: str) -> HTML:
    """Heatmaps side by side, wrapping into rows (a grid: 3 x 2 for six methods on a book
    page), with one caption below."""
    cells = "".join(f"<div>{p}</div>" for p in panels)
    return HTML(
        '<div class="heatmaps" style="overflow-x: auto;">'
        f'<div style="display: flex; flex-wrap: wrap; gap: 0.5em 1.5em;">{cells}</div>'
        f'<p style="font-size: 0.9em;">{caption}</p></div>'
    )


def mean_matrices(runs: pd.DataFrame, dataset: str) -> dict[str, np.ndarray]:
    """Per method, the accuracy matrix averaged over orders (by training position)."""
    sub = runs[runs.dataset == dataset]
    return {m: np.mean(np.stack(list(sub[sub.method == m].R)), 0) for m in method_order(sub.method)}


def heatmaps(runs: pd.DataFrame, dataset: str, title: str = "") -> HTML:
    """Accuracy-matrix heatmaps, one per method, R[i, j] averaged over orders."""
    panels = []
    for method, R in mean_matrices(runs, dataset).items():
        labels = range(1, len(R) + 1)
        panels.append(
            heatmap(R, method, labels, vmin=0, vmax=1, cmap="viridis", fmt=lambda v: f"{v:.2f}")
        )
    caption = (
        f"{title or dataset + ': accuracy matrices'} (mean over orders). Row i: after training "
        "the i-th task of the order; column j: tested on the j-th. Colour: accuracy from 0 "
        "(dark) to 1 (yellow)."
    )
    return heatmap_grid(panels, caption)


def update_figure(tasks: pd.DataFrame, dataset: str):
    """Per method: update magnitude u and drift per training position (mean over orders),
    and per-task forgetting against u."""
    sub = tasks[tasks.dataset == dataset]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3), constrained_layout=True)
    for method in method_order(sub.method):
        g = sub[sub.method == method]
        per_pos = g.groupby("position")[["u", "drift"]].mean()
        axes[0].plot(per_pos.index, per_pos.u, marker="o", label=method)
        axes[1].plot(per_pos.index, per_pos.drift, marker="o", label=method)
        axes[2].scatter(g.u, g.forgetting, s=12, label=method)
    axes[0].set(
        xlabel="training position", ylabel="u = E‖P_S ∇J‖²", yscale="log", title="update magnitude"
    )
    axes[1].set(xlabel="training position", ylabel="‖θ_t − θ_{t−1}‖", title="drift")
    axes[2].set(
        xlabel="u (log)",
        ylabel="forgetting of the task",
        xscale="log",
        title="update vs forgetting",
    )
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: update statistics", fontsize=10)
    return fig


def tau_figure(matrix: pd.DataFrame, title: str) -> HTML:
    """A regime x regime matrix of Kendall tau (e.g. ``findings.original_kendall``'s), as a
    heatmap."""
    panel = heatmap(
        matrix.to_numpy(float),
        "",
        list(matrix.index),
        vmin=-1,
        vmax=1,
        cmap="RdBu",
        fmt=lambda v: f"{v:+.2f}",
    )
    caption = f"{title}. Colour: Kendall τ of the methods' ACC ranking, from −1 (red) to +1 (blue)."
    return heatmap_grid([panel], caption)


def depth_figure(tasks: pd.DataFrame, dataset: str, update: str = "u"):
    """Per method against regime depth (nested regimes), as the findings test them: the
    run's mean update in total and per trainable parameter, its forgetting (mean and
    standard deviation over orders), and the position-adjusted coupling of log update
    with forgetting (``findings.coupling_table``), for the profile's own runs."""
    sub = tasks[(tasks.dataset == dataset) & tasks.regime.isin(list(findings.DEPTH))]
    per_run = findings.run_updates(sub, update)
    coupling = findings.coupling_table(sub, update)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3), constrained_layout=True)
    names = list(findings.DEPTH)
    panels = (
        (per_run, "update", "update in total", f"mean {update} (log)"),
        (per_run, "update_per_param", "update per parameter", f"{update} / parameters (log)"),
        (per_run, "forgetting", "forgetting", "forgetting"),
        (coupling, "coupling", "update–forgetting coupling", "position-adjusted r"),
    )
    for method in method_order(per_run.method):
        for ax, (frame, column, _, _) in zip(axes, panels):
            g = frame[frame.method == method].assign(depth=lambda f: f.regime.map(findings.DEPTH))
            s = g.groupby("depth")[column].agg(["mean", "std"])
            ax.errorbar(
                s.index, s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=2, label=method
            )
    for ax, (_, _, title, ylabel) in zip(axes, panels):
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set(title=title, ylabel=ylabel)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[3].axhline(0, color="grey", lw=0.8)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: depth trends within each method ({update})", fontsize=10)
    return fig


def across_regimes_figure(runs: pd.DataFrame, dataset: str, metric: str = "acc", chosen=None):
    """Each method's metric (mean over orders) across the regimes of a dataset."""
    sub = runs[(runs.dataset == dataset) & runs.method.isin(chosen or runs.method.unique())]
    table = regime_table(sub, dataset, metric).T
    fig, ax = plt.subplots(figsize=(7, 3.2), constrained_layout=True)
    table.plot(ax=ax, marker="o")
    ax.set(
        xlabel="regime",
        ylabel=METRICS[metric],
        title=f"{dataset}: {METRICS[metric]} across regimes (mean over orders)",
    )
    ax.set_xticks(range(len(table)), table.index, rotation=20)
    return fig


def scenario_figure(runs: pd.DataFrame, dataset: str, metric: str = "acc"):
    """Each method's metric (mean over orders) across the regimes, one panel per scenario."""
    parts = by_scenario(runs[runs.dataset == dataset])
    fig, axes = plt.subplots(
        1, len(parts), figsize=(3.6 * len(parts), 3.2), sharey=True, constrained_layout=True
    )
    for ax, (scenario, sub) in zip(np.atleast_1d(axes), parts.items()):
        table = regime_table(sub, dataset, metric).T
        table.plot(ax=ax, marker="o", legend=False)
        ax.set(title=scenario, xlabel="regime", ylabel=METRICS[metric])
        ax.set_xticks(range(len(table)), table.index, rotation=20)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right", frameon=False)
    fig.suptitle(f"{dataset}: {METRICS[metric]} by regime in each scenario", fontsize=10)
    return fig


def explorer(runs: pd.DataFrame):
    """Controls (dataset, metric, methods) that redraw ``across_regimes_figure`` when run
    live; the rendered book keeps the state saved at execution (draw a static figure too)."""
    import ipywidgets as widgets

    datasets = sorted(runs.dataset.unique())
    names = method_order(runs.method)
    dataset = widgets.Dropdown(options=datasets, description="dataset")
    metric = widgets.Dropdown(options=list(METRICS), description="metric")
    chosen = widgets.SelectMultiple(options=names, value=tuple(names), description="methods")
    out = widgets.Output()

    def update(_change):  # runs on user input only: nothing is drawn at execution time
        with out:
            out.clear_output(wait=True)
            if chosen.value:
                show(across_regimes_figure(runs, dataset.value, metric.value, list(chosen.value)))

    for control in (dataset, metric, chosen):
        control.observe(update, names="value")
    return widgets.VBox([widgets.HBox([dataset, metric, chosen]), out])


def trend_figure(trends: pd.DataFrame, names: list[str]):
    """Each method's depth trend with its bootstrap interval, one panel per part of
    findings 2 and 3, one colour per profile (``trends``: findings.details rows with a
    ``profile`` column)."""
    parts = [p for p in ("u", "u per parameter", "forgetting", "coupling") if p in set(trends.part)]
    fig, axes = plt.subplots(
        1,
        max(1, len(parts)),
        figsize=(3.4 * max(1, len(parts)), 3),
        sharey=True,
        constrained_layout=True,
        squeeze=False,
    )
    shown = method_order(trends.method) if len(trends) else []
    for ax, part in zip(axes[0], parts):
        for i, name in enumerate(names):
            g = trends[(trends.part == part) & (trends.profile == name)].set_index("method")
            g = g.reindex(shown)
            y = np.arange(len(shown)) + (i - (len(names) - 1) / 2) * 0.15
            # A bootstrap bound can miss the estimate by a rounding error (different
            # summation orders): bars have no negative length.
            bars = np.clip([g.rho - g.rho_lo, g.rho_hi - g.rho], 0, None)
            ax.errorbar(
                g.rho,
                y,
                xerr=bars,
                fmt="o",
                capsize=2,
                label=name,
            )
        ax.axvline(0, color="grey", lw=0.8)
        ax.set(title=part, xlabel="trend with depth", xlim=(-1.05, 1.05))
        ax.set_yticks(range(len(shown)), shown)
    axes[0][0].legend(fontsize=7, title="profile", title_fontsize=7)
    fig.suptitle("Depth trends per method at each scale (95% bootstrap intervals)", fontsize=10)
    return fig


def rank_figure(boards: dict[str, pd.DataFrame], replay=()):
    """The leaderboard as a picture: per board (a panel: one scenario and profile), each
    method's mean rank by regime (1 = highest ACC within a replicate) with its 95%
    interval over orders; the methods in ``replay`` drawn solid, the others dashed."""
    fig, axes = plt.subplots(
        1, len(boards), figsize=(4.2 * len(boards), 3.6), sharey=True, constrained_layout=True
    )
    n = max(len(t.index.unique("method")) for t in boards.values())
    for ax, (title, table) in zip(np.atleast_1d(axes), boards.items()):
        regs = list(table.index.unique("regime"))
        for i, method in enumerate(method_order(table.index.unique("method"))):
            rows = table.xs(method, level="method").reindex(regs)
            x = np.arange(len(regs)) + (i - n / 2) * 0.03  # a small offset: overlaps stay legible
            ax.errorbar(
                x,
                rows["rank"],
                yerr=[rows["rank"] - rows["rank_low"], rows["rank_high"] - rows["rank"]],
                marker="o",
                ms=4,
                capsize=2,
                lw=1.4,
                ls="-" if method in replay else "--",
                color=plt.get_cmap("tab10")(i % 10),
                label=method,
            )
        ax.set_xticks(range(len(regs)), regs, rotation=25)
        ax.set(title=title, xlabel="regime (deeper to the right)")
        ax.grid(axis="y", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("mean rank (1 = best ACC)")
    first.set_ylim(n + 0.5, 0.5)
    first.set_yticks(range(1, n + 1))
    fig.legend(*first.get_legend_handles_labels(), loc="outside right", frameon=False)
    return fig
