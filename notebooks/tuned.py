# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tuned per regime: do the rankings change because of the regime, or of one value?
#
# The study fixes each method's strength in every regime: EWC's $\lambda = 5000$, SI's
# $c = 100$, LwF's $\lambda = 1$. A value right for the full network can be wrong for
# the head alone, where a penalty weighs on 650 parameters instead of 11 million. If
# rankings change between regimes only because of that, the regime changed nothing
# but the value's fit. This chapter tunes each method's strength per regime and
# scenario, on validation images and replicates of its own
# ({ref}`tuning`), and asks two questions of the tuned runs:
#
# - does a ranking change that the fixed values show survive tuning?
# - does tuning create one the fixed values hide?
#
# The paper's fixed values stay the replication; the tuned runs are a variant beside
# them, paired with them by order and seed. Every number below is recomputed from the
# committed records at each build ({doc}`../book/reproduce` gives the commands).

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # unused here: the chapter reads its committed records
results_dir = "../results"  # unused here
device = "auto"  # unused here: this chapter only reads records
group_size = None  # unused here
records_dir = "../records"  # committed records
# the grids tuned: label -> (profile, folder of its primary records under records_dir)
grids = {"medium": ("medium", "medium"), "scenarios": ("quick", "scenarios/quick")}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from cl_regimes import findings, report, tuning
from cl_regimes.report import figures, tables

grid = {}  # label -> (tuning runs, choices, primary runs, tuned runs)
for label, (grid_profile, folder) in grids.items():
    if (collected := tuning.collect(records_dir, grid_profile, folder)) is not None:
        grid[label] = collected
if not grid:
    display(
        Markdown(
            "**No tuning records are committed yet.** Make them with "
            "`python -m cl_regimes tune --profile medium --methods ewc si lwf "
            "--results records/tuned --tuning records/tuning` ({doc}`../book/reproduce`)."
        )
    )

# %%
if grid:
    coverage = pd.concat(
        {
            label: tuning.choices(table)
            .groupby(["scenario", "method"], observed=True)
            .agg(regimes=("regime", "size"), complete=("complete", "sum"))
            .reindex(report.method_order(table.method), level="method")
            for label, (table, *_) in grid.items()
        },
        names=["grid"],
    )
    display(
        Markdown(
            "What is tuned: the regimes of each method and scenario with tuning runs, and "
            f"those whose tuning is complete ({len(tuning.FACTORS)} candidates x "
            f"{len(tuning.ORDERS)} replicates, and a choice that is not at an edge of the "
            "candidates tried, or is where its setting's range ends). Only complete ones are "
            "compared below: the others' choices could still change as their runs arrive."
        )
    )
    report.show(report.style(coverage))

# %%
searched = {  # every cell's choice, and the one its first candidates gave
    label: (tuning.choices(table), tuning.choices(tuning.initial(table)))
    for label, (table, *_) in grid.items()
}
grid = {label: g for label, g in grid.items() if len(g[1])}  # grids with a final choice

# %% [markdown]
# ## The values chosen
#
# Each cell's chosen strength, as a factor of the paper's value (log scale: 0 is the
# paper's, -2 a hundred times weaker), by regime; one panel per grid and scenario. A
# row of zeros is a method whose fixed value is already the best on validation images
# in every regime.

# %%
panels = []
reach = max([2.0] + [np.abs(np.log10(c.chosen / c.paper)).max() for _, c, *_ in grid.values()])
for label, (_, chosen, *_) in grid.items():
    for scenario, sub in chosen.groupby("scenario", observed=True):
        factor = np.log10(sub.chosen / sub.paper)
        matrix = sub.assign(factor=factor).pivot_table(
            index="method", columns="regime", values="factor", observed=True
        )
        matrix = matrix.reindex(columns=report.regime_order(matrix.columns))
        panel = figures.heatmap(
            matrix.to_numpy(),
            f"{label}, {scenario}",
            list(matrix.index),
            columns=list(matrix.columns),
            vmin=-reach,
            vmax=reach,
            cmap="RdBu",
            fmt=lambda v: f"{v:+.0f}",
        )
        panels.append(panel)
display(figures.heatmap_grid(panels, "log10(chosen / paper's value), by method and regime"))

# %% [markdown]
# ## A search that finishes, and a gain beyond the noise
#
# A choice at the lowest or highest candidate says only that the best value is there or
# beyond it, so the search goes on by factors of 10 in that direction, on the same
# tuning replicates, until the choice is interior or the setting's range ends
# ({ref}`tuning`). And a candidate that beats the paper's value by less than the
# standard error of their paired difference over the replicates does not replace it.
# Per grid: how many choices sat at an edge of the first four candidates, how many
# still do (at a range end, or waiting for their next candidate), and the cells whose
# search went on:

# %%
for label, (chosen, first) in searched.items():
    edge, ends = chosen[chosen.edge != ""], chosen.range_end.sum()
    text = (
        f"**{label}**: {(first.edge != '').sum()} of {len(first)} choices were at an edge "
        f"of the first {len(tuning.FACTORS)} candidates; after the search {len(edge)} "
        f"{'is' if len(edge) == 1 else 'are'} at an edge ({ends} where the setting's range "
        f"ends, {len(edge) - ends} waiting for their next candidate's runs)."
    )
    display(Markdown(text))
    extended = first.merge(chosen, on=tuning.CELL, suffixes=("_first", ""))
    extended = extended[extended.candidates > extended.candidates_first]
    columns = ["paper", "chosen_first", "chosen", "candidates", "edge"]
    shown = extended.set_index(["scenario", "regime", "method"])[columns]
    report.show(report.style(shown, settings=["paper", "chosen_first", "chosen"]))

# %% [markdown]
# The cells where the best candidate beats the paper's value by less than the standard
# error of their paired difference over the three replicates (`se`): the paper's value
# is kept (or, where the best is farther, the candidate nearest the paper's value within
# that error).

# %%
for label, (chosen, _) in searched.items():
    best = chosen.best_acc > chosen.chosen_acc
    kept = chosen[best].assign(gain=lambda c: c.best_acc - c.paper_acc)
    display(
        Markdown(
            f"**{label}**: in {len(kept)} of {len(chosen)} cells a candidate scored higher "
            "than the one chosen, by less than the noise."
        )
    )
    columns = ["paper", "chosen", "paper_acc", "best_acc", "gain", "se"]
    shown = kept.set_index(["scenario", "regime", "method"])[columns]
    report.show(report.style(shown, settings=["paper", "chosen"]))

# %% [markdown]
# Every candidate's validation ACC (mean over the three tuning replicates), by regime:
# where the curves are flat the choice hardly matters; where they fall steeply, the
# paper's value sits on a cliff in that regime.

# %%
for label, (table, *_) in grid.items():
    scores = tuning.scores(table)
    for scenario, sub in scores.groupby("scenario", observed=True):
        methods = list(report.method_order(sub.method))
        fig, axes = plt.subplots(
            1, len(methods), figsize=(3.4 * len(methods), 3), sharey=True, constrained_layout=True
        )
        for ax, method in zip(np.atleast_1d(axes), methods):
            cell = sub[sub.method == method]
            for regime in report.regime_order(cell.regime):
                line = cell[cell.regime == regime].sort_values("value")
                ax.plot(line.value, line["mean"], marker="o", label=regime)
            ax.set(xscale="log", title=method, xlabel=tuning.STRENGTH[method])
        np.atleast_1d(axes)[0].set_ylabel("validation ACC")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right", frameon=False)
        fig.suptitle(f"{label}, {scenario}: validation ACC of each candidate", fontsize=10)
        report.show(fig)

# %% [markdown]
# ## Paper's values against tuned values
#
# Each method's mean ACC and forgetting over the evaluation orders with the paper's
# value and with the tuned one (the same runs where the choice is the paper's value).

# %%
compared = {}
for label, (_, _, primary, tuned) in grid.items():
    keys = ["scenario", "regime", "method"]
    paper = primary[primary.method.isin(tuning.STRENGTH)]
    both = pd.concat(
        {
            "paper": paper.groupby(keys, observed=True)[["acc", "forgetting"]].mean(),
            "tuned": tuned.groupby(keys, observed=True)[["acc", "forgetting"]].mean(),
        },
        axis=1,
    ).dropna()
    both[("tuned - paper", "acc")] = both["tuned", "acc"] - both["paper", "acc"]
    compared[label] = both
    display(Markdown(f"**{label}**"))
    report.show(report.style(both))

# %% [markdown]
# ## Rankings and finding 1, under both
#
# Each method's ACC rank within each regime (1 = highest mean ACC), with the paper's
# values and with the tuned ones, where every tuned cell of the scenario is evaluated:

# %%
for label, (_, _, primary, tuned) in grid.items():
    for scenario in primary.scenario.unique():
        own, mine = (r[r.scenario == scenario] for r in (primary, tuned))
        if not tuning.missing(own, mine).empty:
            continue
        ranked = {
            name: tables.ranks(tables.regime_table(runs, own.dataset.iloc[0]))
            for name, runs in (("paper's values", own), ("tuned", mine))
        }
        display(Markdown(f"**{label}, {scenario}**"))
        report.show(report.style(pd.concat(ranked, axis=1)))

# %% [markdown]
# Finding 1's rank-change test ({ref}`statistics`) on the paper's values and on the
# tuned ones: the same orders, methods and regimes, with `finetune` and `joint` where
# the grid has them (their values are not tuned). Beside each verdict: the largest
# crossing seen (ACC) and the crossing the test would find with 80% power.

# %%
verdicts, names, untuned = [], [], {}
for label, (_, _, primary, tuned) in grid.items():
    for scenario in primary.scenario.unique():
        own = primary[primary.scenario == scenario]
        lacking = tuning.missing(own, tuned[tuned.scenario == scenario])
        tunable = own[own.method.isin(tuning.STRENGTH)].groupby(tuning.CELL).ngroups
        untuned[label, scenario] = (len(lacking), tunable)
        for name, runs in (("paper's values", primary), ("tuned", tuned)):
            sub = runs[runs.scenario == scenario].assign(variant="")
            if sub.method.nunique() >= 2 and (name != "tuned" or lacking.empty):
                verdicts.append(findings.finding_ranking(sub)[-1])
                names.append((label, scenario, name))
if verdicts:
    table = findings.verdict_table(verdicts).set_index(
        pd.MultiIndex.from_tuples(names, names=["grid", "scenario", "values"])
    )
    shown = ["verdict", "p_value", "n_orders", "largest_crossing", "largest_crossing_lo"]
    shown += ["largest_crossing_hi", "detectable_crossing"]
    report.show(report.style(table[shown]))

# %% [markdown]
# In words, grid by grid and scenario:

# %%
by_name = dict(zip(names, verdicts))
lines = []
for label, scenario in dict.fromkeys((g, s) for g, s, _ in names):
    paper, tuned_v = (by_name.get((label, scenario, n)) for n in ("paper's values", "tuned"))
    lacking, cells = untuned[label, scenario]
    if paper is None or tuned_v is None:
        what = f"{lacking} of its {cells} tuned cells are not tuned or evaluated yet"
    elif "not testable" in {paper.verdict, tuned_v.verdict}:
        what = "finding 1 is not testable under both (see the table)"
    elif paper.supported and tuned_v.supported:
        what = "the ranking change survives tuning"
    elif paper.supported:
        what = "the ranking change does not survive tuning: it was one value's fit"
    elif tuned_v.supported:
        what = "tuning creates a ranking change the fixed values hide"
    else:
        what = (
            "neither shows a ranking change; "
            f"with the paper's values {paper.seen()}, tuned {tuned_v.seen()}"
        )
    lines.append(f"- **{label}, {scenario}**: {what}.")
display(Markdown("\n".join(lines) or "No grid has both verdicts yet."))

# %% [markdown]
# What the test can and cannot see. A verdict speaks of crossings as large as its
# detectable one (the table above); smaller changes pass unseen. Here are all the pairs
# of methods whose order by mean ACC tuning reverses within a regime: their gap (first
# method minus second, over the evaluation orders) with the paper's values and tuned,
# each with its 95% interval over the orders. A reversal whose intervals both cover 0 is
# within the noise of the orders.

# %%
for label, (_, _, primary, tuned) in grid.items():
    flips = tuning.reversals(primary, tuned)
    complete = [
        s
        for s in primary.scenario.unique()
        if tuning.missing(primary[primary.scenario == s], tuned[tuned.scenario == s]).empty
    ]
    flips = flips[flips.scenario.isin(complete)]
    clear = ((flips.lo_tuned > 0) | (flips.hi_tuned < 0)).sum()
    display(
        Markdown(
            f"**{label}**: {len(flips)} pairs reversed in the scenarios whose tuned cells are "
            f"all evaluated ({', '.join(complete) or 'none'}); in {clear} of them the tuned "
            "gap's interval excludes 0."
        )
    )
    shown = flips.drop(columns="dataset").set_index(["scenario", "regime", "first", "second"])
    report.show(report.style(shown))

# %% [markdown]
# ## Does EWC learn domain-incrementally?
#
# With $\lambda = 5000$, EWC stopped learning Permuted-Fashion-MNIST: its accuracy on
# each task right after training it fell task after task, and its training loss on the
# later tasks stayed near its start. That is a statement about $\lambda$ unless no value
# lets it learn. The mean of each run's accuracy on a task right after training it (the
# diagonal of $R$), by regime, with finetune's for reference:


# %%
def learned(runs: pd.DataFrame) -> pd.Series:
    diagonal = runs.R.map(lambda R: float(np.mean(np.diag(R))))
    return runs.assign(learned=diagonal).groupby("regime", observed=True).learned.mean()


domain, learning = "domain_incremental", []
for _, chosen, primary, tuned in grid.values():
    if domain not in set(primary.scenario):
        continue
    own = primary[primary.scenario == domain]
    ewc_tuned = tuned[(tuned.scenario == domain) & (tuned.method == "ewc")]
    table = pd.DataFrame(
        {
            "finetune": learned(own[own.method == "finetune"]),
            "EWC, paper's λ": learned(own[own.method == "ewc"]),
            "EWC, tuned λ": learned(ewc_tuned),
            "tuned λ": chosen[(chosen.scenario == domain) & (chosen.method == "ewc")]
            .set_index("regime")
            .chosen,
        }
    ).reindex(report.regime_order(own.regime))
    edge = chosen[(chosen.scenario == domain) & (chosen.method == "ewc")].edge == "lowest"
    learning.append((table, edge.any()))
    report.show(report.style(table, settings=["tuned λ"]))

# %%
for table, at_lowest in learning:
    gap = (table["finetune"] - table["EWC, tuned λ"]).dropna()
    if gap.empty:
        continue
    fixed = (table["finetune"] - table["EWC, paper's λ"]).max()
    lowest = table.loc[gap.index, "tuned λ"].min()
    text = (
        f"With its tuned λ (down to {lowest:g}), EWC learns again: each new task "
        f"ends at most {gap.max():.3f} below finetune's accuracy on it in every regime, "
        f"against up to {fixed:.3f} below with λ = 5000."
    )
    if gap.max() >= 0.05:  # what is left of the gap, and whether the grid could close it
        text += (
            " It still learns less than finetune; its choice is the lowest candidate, "
            "where λ's range ends, so a weaker penalty may close the rest."
            if at_lowest
            else " It still learns less than finetune, and a weaker penalty than the "
            "chosen one scored lower on validation images."
        )
    display(Markdown(text))
