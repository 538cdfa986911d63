"""A regime card: one method's results stratified by fine-tuning regime, never pooled.

The method (a built-in one, or a plug-in: ``methods.load``) is swept under every regime
of a profile beside the paper's four methods, reusing the records that exist. The card
gives, per dataset and regime, its mean ACC and forgetting over orders with 95%
t-intervals, its rank among the paper's methods and itself, and the rank-change test of
finding 1 over those five methods, restricted to the pairs that involve it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes import findings, methods, profiles, regimes, results, sweep
from cl_regimes.config import ConfigError
from cl_regimes.findings.common import PAPER_METHODS

BOUNDS = {"acc": (0.0, 1.0), "forgetting": (-1.0, 1.0)}  # the values each metric can take


def _mean_ci(values: pd.Series, bounds: tuple[float, float]) -> tuple[float, float, float]:
    """The mean and its 95% t-interval, cut to the values the metric can take."""
    v = values.to_numpy(float)
    if len(v) < 2:
        return float(v.mean()), np.nan, np.nan
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    low, high = bounds
    return float(v.mean()), float(max(low, v.mean() - half)), float(min(high, v.mean() + half))


def stratified(runs: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per dataset and regime (in depth order): the method's mean ACC and forgetting over
    orders with 95% t-intervals, the orders, and its ACC rank among the paper's methods and
    itself (1 = highest mean ACC)."""
    rows = []
    depth = {r: i for i, r in enumerate(regimes.REGIMES)}
    for (dataset, regime), g in runs.groupby(["dataset", "regime"], sort=False):
        mine = g[g.method == method]
        if mine.empty:
            continue
        means = g.groupby("method").acc.mean()
        row = {"dataset": dataset, "regime": regime, "orders": len(mine)}
        for metric in ("acc", "forgetting"):
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = _mean_ci(
                mine[metric], BOUNDS[metric]
            )
        row["rank"] = int(means.rank(ascending=False, method="min")[method])
        row["of"] = len(means)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(
        ["dataset", "regime"], key=lambda c: c.map(depth) if c.name == "regime" else c
    ).reset_index(drop=True)


def rank_changes(runs: pd.DataFrame, method: str) -> tuple[findings.Verdict, pd.DataFrame]:
    """Finding 1's test over the paper's methods and ``method`` (pooled verdict), and one
    row per pair that involves it: its Holm p and whether, where, it crosses."""
    verdict = findings.finding_ranking(runs, methods=(*PAPER_METHODS, method))[-1]
    detail = verdict.detail
    if detail is None or detail.empty:
        return verdict, pd.DataFrame()
    mine = detail[(detail.method_1 == method) | (detail.method_2 == method)]
    pairs = mine.groupby(["dataset", "method_1", "method_2"], sort=False).agg(
        p_holm=("p_holm", "first"), crosses=("crosses", "first")
    )
    cross = findings.crossings(verdict)
    if not cross.empty:
        cross = cross.set_index(["dataset", "method_1", "method_2"])[["ahead_in", "behind_in"]]
        pairs = pairs.join(cross)
    return verdict, pairs.reset_index()


def figure(runs: pd.DataFrame, method: str, dataset: str):
    """ACC and forgetting by regime: the method with its 95% intervals, the paper's methods'
    means as thin lines."""
    sub = runs[runs.dataset == dataset]
    order = [r for r in regimes.REGIMES if r in set(sub.regime)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    for ax, metric in zip(axes, ("acc", "forgetting")):
        for other in [m for m in PAPER_METHODS if m in set(sub.method) and m != method]:
            means = sub[sub.method == other].groupby("regime")[metric].mean().reindex(order)
            ax.plot(order, means, lw=1, alpha=0.6, label=other)
        mine = stratified(sub, method).set_index("regime").reindex(order)
        err = np.abs(mine[[f"{metric}_lo", f"{metric}_hi"]].to_numpy().T - mine[metric].to_numpy())
        ax.errorbar(
            order, mine[metric], yerr=np.nan_to_num(err), color="k", lw=2.5, capsize=3, label=method
        )
        ax.set_title(f"{dataset}: {'ACC' if metric == 'acc' else 'forgetting'}")
        ax.tick_params(axis="x", rotation=45)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside right", frameon=False)
    return fig


def _variant(profile: str, method: str, overrides: dict) -> str:
    """The variant name of ``method``'s runs with ``overrides`` ("" for the profile's)."""
    prof = profiles.get_profile(profile)
    example = profiles.resolve(
        profile,
        dataset=prof.datasets[0],
        regime=prof.regimes[0],
        method=method,
        overrides=overrides,
    )
    return results.variant_name(profiles.variant(profile, example))


def _markdown(method, profile, scenario, table, verdict, pairs, png_names) -> str:
    lines = [
        f"# Regime card: `{method}`",
        "",
        f"Profile `{profile}`, scenario `{scenario}`. Results are stratified by fine-tuning "
        "regime: compare methods within a regime, never across regimes, and never pool them "
        "into one number.",
        "",
        "| dataset | regime | orders | ACC [95% CI] | forgetting [95% CI] | rank (ACC) |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def cell(r, metric):
        mean, lo, hi = (getattr(r, f"{metric}{s}") for s in ("", "_lo", "_hi"))
        return f"{mean:.3f}" + ("" if np.isnan(lo) else f" [{lo:.3f}, {hi:.3f}]")

    for r in table.itertuples():
        lines.append(
            f"| {r.dataset} | {r.regime} | {r.orders} | {cell(r, 'acc')} | "
            f"{cell(r, 'forgetting')} | {r.rank} of {r.of} |"
        )
    lines += [
        "",
        "## Rank changes",
        "",
        f"Finding 1's test over the paper's methods and `{method}`: {verdict.verdict}"
        + ("" if np.isnan(verdict.p_value) else f" (p = {verdict.p_value:.3g})")
        + f". Null: {verdict.null}.",
        "",
    ]
    if pairs.empty:
        lines.append("No pair involving it could be tested (too few orders or regimes).")
    else:
        lines += [
            "| dataset | pair | Holm p (over pairs) | crosses | ahead in | behind in |",
            "|---|---|---:|---|---|---|",
        ]
        for r in pairs.itertuples():
            lines.append(
                f"| {r.dataset} | {r.method_1} vs {r.method_2} | {r.p_holm:.3g} | "
                f"{'yes' if r.crosses else 'no'} | {getattr(r, 'ahead_in', '') or ''} | "
                f"{getattr(r, 'behind_in', '') or ''} |"
            )
    lines += ["", *(f"![{name}]({name})" for name in png_names)]
    return "\n".join(lines) + "\n"


def evaluate(
    method: str,
    profile: str = "quick",
    results_dir="results",
    regimes_: list[str] | None = None,
    settings: list[str] | None = None,
    own_results=None,
    **execution,
) -> tuple[pd.DataFrame, str]:
    """Sweep what is missing (the paper's methods with the profile's settings, ``method``
    with its own ``settings``, "key=value"; ``scenario=...`` applies to all); return the
    runs a card compares (the paper's methods' and ``method``'s) and ``method``'s variant
    name ("" with the profile's settings). ``method``'s records go to ``own_results``
    (default: ``results_dir``, beside the paper methods')."""
    own_results = own_results or results_dir
    name = methods.load(method)
    overrides = profiles.parse_overrides(settings)
    foreign = [k for k in overrides if not k.startswith(f"{name}.") and k != "scenario"]
    if foreign:
        raise ConfigError(
            f"card: --set takes {name}'s own settings ({name}.<setting>) and the scenario "
            f"only, not {', '.join(foreign)}: the paper's methods it is compared with keep "
            "the profile's"
        )
    shared = {k: v for k, v in overrides.items() if k == "scenario"}  # every method's
    variants = {}
    for chosen, values, folder in (
        (PAPER_METHODS, shared, results_dir),
        ([name], overrides, own_results),
    ):
        sweep.sweep(
            profile,
            results_dir=folder,
            regimes=regimes_,
            methods=chosen,
            overrides=values,
            variants=False,
            **execution,
        )
        variants[chosen[0]] = _variant(profile, chosen[0], values)
    folders = dict.fromkeys(map(str, (results_dir, own_results)))
    runs = results.load([Path(f) / profile for f in folders])
    runs = runs[
        (runs.method.isin(PAPER_METHODS) & (runs.variant == variants[PAPER_METHODS[0]]))
        | ((runs.method == name) & (runs.variant == variants[name]))
    ]
    if regimes_:
        runs = runs[runs.regime.isin(regimes_)]
    return runs, variants[name]


def write(
    method: str,
    profile: str = "quick",
    results_dir="results",
    output="cards",
    regimes_: list[str] | None = None,
    settings: list[str] | None = None,
    **execution,
) -> dict[str, Path]:
    """``evaluate``, then write ``<output>/<method>[-<variant>].md``, ``.html`` and one
    PNG per dataset; returns their paths."""
    runs, variant = evaluate(method, profile, results_dir, regimes_, settings, **execution)
    name = methods.load(method)
    table = stratified(runs, name)
    verdict, pairs = rank_changes(runs, name)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    stem = name + (f"-{variant}" if variant else "")
    paths, pngs = {}, []
    for dataset in pd.unique(table.dataset):
        fig = figure(runs, name, dataset)
        png = out / f"{stem}-{dataset}.png"
        fig.savefig(png, dpi=120)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120)
        plt.close(fig)
        pngs.append((png, base64.b64encode(buffer.getvalue()).decode()))
    label = name + (f" ({variant})" if variant else "")
    scenario = runs.scenario.iloc[0]
    text = _markdown(label, profile, scenario, table, verdict, pairs, [p.name for p, _ in pngs])
    paths["markdown"] = out / f"{stem}.md"
    paths["markdown"].write_text(text)
    paths["html"] = out / f"{stem}.html"
    paths["html"].write_text(_html(text, pngs))
    paths |= {f"figure ({p.stem})": p for p, _ in pngs}
    return paths


def _html(markdown: str, pngs) -> str:
    import markdown_it

    body = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)
    for png, data in pngs:
        body = body.replace(f'src="{png.name}"', f'src="data:image/png;base64,{data}"')
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd}"
        "img{max-width:100%}"
    )
    return f"<!doctype html><meta charset=utf-8><style>{style}</style>\n{body}"
