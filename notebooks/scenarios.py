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
# # Scenarios: do the findings hold outside task-incremental learning?
#
# The study, and every other chapter of this book, is task-incremental: a test image
# comes with its task, and is scored over that task's two classes. The field uses two
# other scenarios as well, and this chapter asks whether the rankings still change
# between regimes in them:
#
# - **class-incremental**: the same class blocks, but an image is scored over every
#   class its run has met so far: one head that grows task by task, and no task
#   identity at test. Chance falls from $1/2$ to $1/10$ as the head grows.
# - **domain-incremental**: every task holds all ten classes, its images under a pixel
#   permutation fixed per task (Permuted-Fashion-MNIST); one head over the ten classes.
#   No crops in training: a crop would move the permuted pixels.
#
# The records are committed (`records/scenarios/`) and every table, test and figure
# is recomputed from them at each build; {doc}`../book/reproduce` gives the commands.
#
# **The grid, and what it leaves out.** The `quick` profile's settings (16x16,
# width 8, 500 images per task) with the paper's 11 task orders, in three regimes,
# `from_layer4`, `from_layer2` and `full`, with the paper's four methods and `finetune`
# as the reference: 3 scenarios x 3 regimes x 5 methods x 11 orders = 495 runs. Eleven
# orders, not the three of the `quick` book, because the rank-change test pairs the
# orders: with three, no p-value can fall below $1/8$ and it could never reject. Left
# out: `head` and `bn_affine` (at this scale `head` learns little even
# task-incrementally), `from_layer3` and `from_layer1`, `joint`, the variants, and every
# larger scale. Three regimes still give the test little power: a crossing it does not
# find is not evidence that there is none.

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # unused here: the chapter reads its committed records
results_dir = "../results"  # unused here
records_dir = "../records/scenarios"  # committed records of the scenario grid
scenario_profile = "quick"  # the profile they were made with
device = "auto"  # unused here: this chapter only reads records
group_size = None  # unused here

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from cl_regimes import findings, report, results
from cl_regimes.report import figures, tables

runs = results.load(Path(records_dir) / scenario_profile)
scenarios = tables.by_scenario(runs)
display(Markdown("Runs per scenario (rows) and regime (columns):"))
report.style(
    runs.pivot_table(index="scenario", columns="regime", values="acc", aggfunc="size")
    .reindex(index=list(scenarios), columns=report.regime_order(runs.regime))
    .astype("Int64")
)

# %%
permuted = runs[runs.scenario == "domain_incremental"]
if len(permuted):  # what these records ran: the settings changed on 2026-12-03
    tasks = sorted({len(R) for R in permuted.R})
    fits = {results.read(path)["config"]["permuted_images"] for path in permuted.path}
    fit = {"pad": "zero-padded (28 to 32 pixels) before resizing", "resize": "resized"}
    display(
        Markdown(
            f"The domain-incremental records hold {' or '.join(map(str, tasks))} tasks, their "
            f"images {' or '.join(fit[f] for f in sorted(fits))}."
        )
    )

# %% [markdown]
# ## Accuracy in each scenario
#
# Each method's mean ACC over orders, by regime, one panel per scenario:

# %%
for dataset in runs.dataset.unique():
    report.show(figures.scenario_figure(runs, dataset))

# %% [markdown]
# ## Cells where nothing learns
#
# The chance rule of the other chapters: a cell's excess $(a - c) / (1 - c)$ of its mean
# accuracy $a$ on a task right after training it over chance $c$, one over the classes
# that score the task's images then: $1/2$ task-incrementally, $1/2$ down to $1/10$ as the
# head grows class-incrementally, $1/10$ domain-incrementally. A cell below half the way
# from chance to perfect is left out of that scenario's tests.

# %%
cells = pd.concat([findings.chance_cells(sub).assign(scenario=s) for s, sub in scenarios.items()])
excess = cells.pivot_table(index=["scenario", "regime"], columns="method", values="excess")
rows = [(s, r) for s in scenarios for r in report.regime_order(cells.regime)]
report.style(excess.reindex(rows))

# %% [markdown]
# ## Rankings by regime, within each scenario
#
# Each method's rank by mean ACC within each regime (1 = highest), one table per
# scenario. Compare the rows within a table: between tables the problem differs.

# %%
for scenario, sub in scenarios.items():
    for dataset in sub.dataset.unique():
        table = tables.regime_table(sub, dataset)
        display(Markdown(f"**{scenario}** ({dataset}): mean ACC, and rank within each regime"))
        display(report.style(pd.concat({"mean": table, "rank": tables.ranks(table)}, axis=1)))

# %% [markdown]
# ## Finding 1 within each scenario
#
# The rank-change test of finding 1 ({ref}`statistics`), applied to each scenario's
# runs on their own: does some pair of the paper's methods change order between
# regimes, beyond the tie margin, with the family-wise error held at 0.05? Beside each
# verdict: the largest crossing seen (the smaller of a pair's two opposite gaps, with its
# 95% interval) and `detectable_crossing`, the crossing the test finds with 80% power.

# %%
verdicts = {s: findings.finding_ranking(sub)[-1] for s, sub in scenarios.items()}
table = findings.verdict_table(list(verdicts.values())).set_index(
    pd.Index(verdicts, name="scenario")
)
report.style(table.drop(columns=["finding", "part", "dataset", "role", "claim", "note"]))

# %% [markdown]
# The pairs that cross, in each scenario where one does:

# %%
for scenario, verdict in verdicts.items():
    crossing = findings.crossings(verdict)
    display(Markdown(f"**{scenario}**: " + ("no pair crosses." if crossing.empty else "")))
    if not crossing.empty:
        display(report.style(crossing))

# %%
held = [s for s, v in verdicts.items() if v.verdict == "supported"]
display(
    Markdown(
        "Finding 1 (rankings change between regimes) is supported in "
        + (", ".join(f"`{s}`" for s in held) if held else "no scenario")
        + f" of the {len(verdicts)} at this scale."
    )
)
