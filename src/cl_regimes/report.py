"""The book's tables and figures, from the tidy tables of ``results.load``.

Tables are numeric DataFrames (``style`` formats them for display, the numbers
stay numbers); figures are matplotlib figures. The statistics of the findings
live in ``findings.py``.
"""

from __future__ import annotations

import hashlib

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, display

from cl_regimes import findings, methods, models, profiles, regimes, results
from cl_regimes.config import SCENARIOS

METRICS = {
    "acc": "ACC",
    "bwt": "BWT",
    "forgetting": "forgetting",
    "forgetting_chaudhry": "forgetting (Chaudhry)",
}
UPDATES = {
    "g2": "g2",
    "r2": "r2",
    "cos": "cos",
    "u": "u",
    "orig_u": "u (original)",
    "drift": "drift",
}


def ordered(values, reference) -> list:
    """``values`` in the order of ``reference`` (methods, regimes), unknown ones last."""
    present = list(dict.fromkeys(values))
    return [v for v in reference if v in present] + [v for v in present if v not in reference]


def method_order(values) -> list:
    return ordered(values, methods.names())


def regime_order(values) -> list:
    return ordered(values, regimes.REGIMES)


def _is_text(column: pd.Series) -> bool:
    """Whether a column holds text: a missing value (None, NaN) is not text, so a column
    of numbers with gaps, or with no value at all, stays a numeric column."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    return any(not isinstance(v, (int, float, np.number)) for v in column.dropna())


def style(table: pd.DataFrame, digits: int = 3):
    """A Styler of a numeric table: integers with thousands separators, shares as
    percentages, other numbers with ``digits`` decimals (3 significant where smaller);
    padded cells, numbers right-aligned, no 0..N index (it means nothing)."""

    def number(v):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{v:,}"
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "–"
            return f"{v:.{digits}f}" if abs(v) >= 10**-digits or v == 0 else f"{v:.{digits}g}"
        return v

    # an id from the content, so that the same table renders the same HTML on every build
    uuid = hashlib.sha1(table.to_csv().encode()).hexdigest()[:10]
    styler = table.style.format(number).set_uuid(uuid)
    text = [c for c in table.columns if _is_text(table[c])]
    styler.set_table_styles(
        [
            {"selector": "th", "props": "padding: 0.25em 0.6em;"},
            {"selector": "thead th", "props": "white-space: normal;"},  # long labels wrap
            {
                "selector": "td",
                "props": "padding: 0.25em 0.6em; text-align: right; white-space: nowrap;",
            },
        ]
    ).set_table_styles(
        {c: [{"selector": "td", "props": "text-align: left; white-space: normal;"}] for c in text},
        overwrite=False,
    )
    if isinstance(table.index, pd.RangeIndex):
        styler.hide(axis="index")
    shares = [c for c in table.columns if "share" in str(c)]
    return styler.format("{:.2%}", subset=shares) if shares else styler


def show(output) -> None:
    """Display a figure or a table in the notebook, and free a figure."""
    display(output)
    if isinstance(output, plt.Figure):
        plt.close(output)


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


# ---- one regime ---------------------------------------------------------------------------


def trainable_table(regime: str, width: int) -> pd.DataFrame:
    """The regime's blocks: parameters and trainable parameters in the paper's network
    (width 64, 10 classes) and trainable ones at ``width``."""
    table = models.parameter_table(regime, 64, 10).set_index("block")
    table = table.rename(
        columns={"parameters": "parameters (width 64)", "trainable": "trainable (width 64)"}
    )
    if width != 64:
        own = models.parameter_table(regime, width, 10).set_index("block")
        table.insert(2, f"trainable (width {width})", own.trainable)
    return table


def by_method(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a per dataset, variant and method table in the methods' order; without the
    variant level where there are only the profile's own runs (it would be blank)."""
    order = method_order(table.index.get_level_values("method"))
    table = table.loc[sorted(table.index, key=lambda k: (k[0], k[1], order.index(k[2])))]
    return table.droplevel("variant") if set(table.index.get_level_values(1)) == {""} else table


def method_table(runs: pd.DataFrame, metrics=tuple(METRICS)) -> pd.DataFrame:
    """Per dataset, variant and method: each metric's mean and std over orders (and seeds)."""
    keys = ["dataset", "variant", "method"]
    table = runs.groupby(keys)[list(metrics)].agg(["mean", "std"])
    table[("runs", "n")] = runs.groupby(keys).size()
    return by_method(table.rename(columns=METRICS, level=0))


def identical_variants(runs: pd.DataFrame) -> list[str]:
    """The variants whose every run has the same accuracy matrix as the profile's own run of
    the same dataset, method, order and seed (e.g. ``bn_stats=follow_regime`` under
    ``full``, where every BatchNorm trains anyway): their rows would repeat the profile's."""
    key = ["dataset", "method", "order", "seed"]
    own = {tuple(k): R for *k, R in runs[runs.variant == ""][[*key, "R"]].itertuples(False)}
    same = []
    for variant, group in runs[runs.variant != ""].groupby("variant"):
        pairs = [(own.get(tuple(k)), R) for *k, R in group[[*key, "R"]].itertuples(False)]
        if all(a is not None and np.array_equal(a, b) for a, b in pairs):
            same.append(variant)
    return same


def best_method(runs: pd.DataFrame, dataset: str, regime: str) -> tuple[str | None, str]:
    """The paper's method with the highest mean ACC on ``dataset`` (None if none ran), and a
    sentence that names it, with the references (finetune, joint) apart."""
    sub = runs[runs.dataset == dataset]
    acc = sub.groupby("method").acc.mean()
    is_reference = np.array([methods.get(m).reference for m in acc.index], dtype=bool)
    paper, references = acc[~is_reference], acc[is_reference]
    refs = ", ".join(f"{m} {references[m]:.3f}" for m in method_order(references.index))
    diagonal = np.mean([np.diag(R).mean() for R in sub.R])
    best = paper.idxmax() if len(paper) else None
    sentence = (
        f"On {dataset}, **{best}** has the highest ACC of the paper's methods under "
        f"`{regime}` ({paper[best]:.3f})"
        if best
        else f"On {dataset}, none of the paper's methods ran under `{regime}`"
    )
    sentence += f"; the references: {refs}." if refs else "."
    sentence += (
        f" Right after training, a task reaches {diagonal:.3f} accuracy on average (chance: "
        "1/classes of a task)."
    )
    return best, sentence


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


def update_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, variant and method: means over tasks and orders of the update statistics
    (both definitions of u; see the protocol)."""
    keys = ["dataset", "variant", "method"]
    return by_method(tasks.groupby(keys)[list(UPDATES)].mean().rename(columns=UPDATES))


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


# ---- across regimes -----------------------------------------------------------------------


def regime_table(runs: pd.DataFrame, dataset: str, metric: str = "acc") -> pd.DataFrame:
    """Method x regime: the metric's mean over orders."""
    sub = runs[runs.dataset == dataset]
    table = sub.pivot_table(index="method", columns="regime", values=metric, aggfunc="mean")
    return table.loc[method_order(table.index), regime_order(table.columns)]


def ranks(table: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Each method's rank within each regime of a ``regime_table`` (1 = best; for
    forgetting, the lowest is best)."""
    return table.rank(ascending=metric.startswith("forgetting"), method="min").astype("Int64")


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


def variant_comparison(runs: pd.DataFrame, variant: str, metric: str = "acc") -> pd.DataFrame:
    """Per dataset, regime and method where ``variant`` has records: the metric's mean over
    orders in the profile's own runs and in the variant's, and their difference."""
    sub = runs[runs.variant.isin(["", variant])]
    table = sub.pivot_table(
        index=["dataset", "regime", "method"], columns="variant", values=metric, aggfunc="mean"
    )
    if variant not in table:
        return pd.DataFrame(columns=["profile", "variant", "difference"])
    table = table.dropna().rename(columns={"": "profile", variant: "variant"})
    return table.assign(difference=table["variant"] - table["profile"])


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


def by_scenario(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each scenario's own runs, as a profile's own runs (variant "") for the findings:
    those whose variant names nothing but their scenario (not a variant within it)."""
    return {
        s: runs[
            (runs.scenario == s) & runs.variant.isin(["", results.variant_name({"scenario": s})])
        ].assign(variant="")
        for s in ordered(runs.scenario, SCENARIOS)
    }


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


def provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """Where the records come from: runs per device, library commit, torch and precision,
    with the machines that made them (host names; records made before hosts were
    recorded count none) and their summed wall time in hours (a grouped run's is its
    share of its group's)."""
    keys = ["device", "commit", "torch", "precision"]
    return runs.groupby(keys, dropna=False).agg(
        runs=("acc", "size"),
        datasets=("dataset", lambda s: ", ".join(sorted(set(s)))),
        group_size=("group_size", "max"),
        machines=("host", "nunique"),
        hours=("wall_time_s", lambda s: s.sum() / 3600),
    )


def scale_table(loaded: dict) -> pd.DataFrame:
    """One row per profile with records (``{profile: (runs, tasks, folder)}``): its size
    (datasets, image side, network width, training images per task, orders) and how many
    of its grid's runs the records hold."""
    rows = []
    for name, (runs, _, folder) in loaded.items():
        prof = profiles.get_profile(name)
        values = profiles.settings_of(name, prof.datasets[0])
        grid = len(prof.datasets) * len(prof.regimes) * len(prof.grid_methods()) * len(prof.orders)
        rows.append(
            {
                "profile": name,
                "records": folder.parent.name + "/",
                "datasets": ", ".join(prof.datasets),
                "image side": values["image_size"],
                "width": values["width"],
                "images per task": values["train_per_task"] or "all",
                "orders": len(prof.orders),
                "runs": len(runs),
                "share of the grid": len(runs) / grid,
            }
        )
    return pd.DataFrame(rows)


def coverage(profile: str, n_records: int, main: pd.DataFrame) -> str:
    """A sentence on how much of the profile's grid the records ``main`` (its own settings)
    hold, on the replicates of other seeds they add, and on the runs of methods outside
    the grid (DER's committed records)."""
    from cl_regimes import profiles, sweep

    prof = profiles.get_profile(profile)
    grid = len(sweep.plan(profile, variants=False))
    outside = main[~main.method.isin(prof.grid_methods())]  # methods run when named (DER)
    main = main[main.method.isin(prof.grid_methods())]
    in_grid = int(main.seed.isin(prof.seeds).sum())
    text = (
        f"{n_records} run records of profile `{profile}`; the findings use the {len(main)} "
        f"made with the profile's own settings: {in_grid} of the {grid} runs of its grid"
    )
    if len(outside):
        names = ", ".join(f"`{m}`" for m in sorted(set(outside.method.astype(str))))
        text += f" (and {len(outside)} runs of {names}, run only when named, in the tables)"
    extra = main[~main.seed.isin(prof.seeds)]
    if len(extra):
        cells = extra.groupby(["regime", "method"], observed=True).ngroups
        text += (
            f", and {len(extra)} runs of seed(s) {', '.join(map(str, sorted(set(extra.seed))))} "
            f"in {cells} (regime, method) cells: more replicates of the same orders (the tests "
            "average each order's seeds)"
        )
    text += "."
    if in_grid < grid:
        text += (
            " The grid is not complete yet (its sweep resumes where it stopped): the verdicts "
            "below are provisional and test only the regimes and methods the records cover."
        )
    return text


def _where(held: list[str], order: list[str]) -> str:
    """Where something holds among the profiles ``order`` (smallest first), in words."""
    if len(held) == len(order):
        return "at every scale with records"
    if not held:
        return "at no scale with records"
    if held == order[order.index(held[0]) :]:
        return f"from `{held[0]}` on"
    if held == order[: len(held)]:
        return f"up to `{held[-1]}`, not beyond"
    return "at " + ", ".join(f"`{p}`" for p in held) + " only"


def scale_summary(calls: pd.DataFrame, sizes: pd.DataFrame, scales) -> list[str]:
    """In words, per finding (``calls``: finding x profile verdicts), where it holds: at
    every scale, from one scale on, up to one, at some only, or at none; then which
    profiles are provisional (``sizes``: ``scale_table``)."""
    order = [p for p in scales if p in calls.columns]
    lines = []
    for finding, row in calls.iterrows():
        where = _where([p for p in order if row[p] == "supported"], order)
        detail = ", ".join(f"`{p}`: {row[p]}" for p in order)
        lines.append(f"- Finding {finding} holds {where} ({detail}).")
    share = sizes.set_index("profile")["share of the grid"]
    partial = [p for p in order if share[p] < 1]
    if partial:
        lines.append(
            "Provisional: "
            + ", ".join(f"`{p}` holds {share[p]:.0%} of its grid" for p in partial)
            + "; its verdicts test only the regimes and methods its records cover."
        )
    return lines


def trend_summary(trends: pd.DataFrame, scales, level: float = findings.LEVEL) -> list[str]:
    """In words, per part of findings 2 and 3 (``trends``: ``findings.details`` rows with a
    ``profile`` column), in how many methods the trend with depth holds at each scale (its
    interval above zero and its Holm-adjusted test rejecting), where it falls instead
    (interval below zero), and where it holds in every method."""
    order = [p for p in scales if p in set(trends.profile)]
    lines = []
    for part, rows in trends.groupby("part", sort=False):
        counts, held = [], []
        for name in order:
            g = rows[rows.profile == name]
            if g.empty:
                counts.append(f"`{name}` not testable")
                continue
            up = g[(g.rho_lo > 0) & (g.p_holm < level)].method.tolist()
            down = g[g.rho_hi < 0].method.tolist()
            text = f"`{name}` {len(up)} of {len(g)}"
            if 0 < len(up) < len(g):
                text += f" ({', '.join(up)})"
            if down:
                text += f", falling in {', '.join(down)}"
            counts.append(text)
            if len(up) == len(g):
                held.append(name)
        lines.append(
            f"- {part}: methods whose trend with depth holds: {'; '.join(counts)}. In "
            f"every method: {_where(held, order)}."
        )
    return lines


def crossing_summary(rows: pd.DataFrame) -> str:
    """In words, finding 1 across scales (``rows``: profile, largest_crossing and its
    interval, detectable_crossing, pairs that cross): which pairs cross, and whether the
    largest crossing could be told from noise at each scale."""
    parts = []
    for r in rows.itertuples():
        if pd.isna(r.largest_crossing) or pd.isna(r.detectable_crossing):
            parts.append(f"`{r.profile}` cannot test it")
            continue
        seen = "above" if r.largest_crossing >= r.detectable_crossing else "below"
        parts.append(
            f"at `{r.profile}` the largest crossing, {r.largest_crossing:.3f} "
            f"[{r.largest_lo:.3f}, {r.largest_hi:.3f}], is {seen} the "
            f"{r.detectable_crossing:.3f} the test could detect"
        )
    crossing = rows[rows["pairs that cross"] != "none"].profile.tolist()
    pairs = (
        "pairs cross at " + ", ".join(f"`{p}`" for p in crossing)
        if crossing
        else "no pair of methods crosses at any scale"
    )
    return f"- Finding 1: {pairs}; " + "; ".join(parts) + "."


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
