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
# # Across regimes: do the rankings hold?
#
# This chapter reads every run record of the profile, whatever the regime notebooks
# left, and recomputes all of its tables, statistics and figures on every build. It
# tests the paper's three findings:
#
# 1. the ranking of continual-learning methods is not preserved across regimes;
# 2. deeper regimes give larger update magnitudes and more forgetting;
# 3. deeper regimes give a stronger relationship between update magnitude and
#    forgetting.
#
# Depth orders the nested regimes `head` < `from_layer4` < `from_layer3` <
# `from_layer2` < `from_layer1` < `full`; `bn_affine` is not nested and enters the
# rankings but not the depth trends. The findings use the paper's four methods (online
# EWC, LwF, SI, GEM) and the profile's own settings; `finetune` and `joint` are shown
# for reference, and the runs of other settings (the profile's variants) are compared
# at the end. Each finding is tested as a permutation test against the null that noise
# alone explains what is seen ({ref}`statistics`), and shown beside the original
# study's own analyses, labelled as such.

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # smoke | quick | paper
results_dir = "../results"
device = "auto"  # unused here: this chapter only reads records
group_size = None  # unused here

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from cl_regimes import findings, report, results

folder = Path(results_dir) / profile
runs, tasks = results.load(folder), results.load(folder, level="task")
main, main_tasks = runs[runs.variant == ""], tasks[tasks.variant == ""]
glue("profile", profile, display=False)
glue("n_runs", len(main), display=False)
display(
    Markdown(
        f"{len(runs)} run records of profile `{profile}`; the findings use the "
        f"{len(main)} made with the profile's own settings."
    )
)

# %% [markdown]
# ## Regimes where nothing learns
#
# A regime in which the methods do not beat chance on the task they have just trained
# cannot rank them: its "ranking" is noise. Such a regime is flagged (mean accuracy
# right after training within 0.05 of chance) and left out of the ranking test.

# %%
chance = findings.chance_regimes(main)
at_chance = ", ".join(f"`{r.regime}` on {r.dataset}" for r in chance[chance.at_chance].itertuples())
display(Markdown(f"Regimes at chance, left out of the ranking test: {at_chance or 'none'}."))
report.style(chance)

# %% [markdown]
# ## Methods across regimes
#
# Each method's mean over orders under each regime, and its rank within the regime
# (1 = highest ACC, or lowest forgetting). A method whose rank changes from column to
# column is the first finding in miniature. Change `metric` to see another one.

# %%
metric = "acc"  # acc | bwt | forgetting | forgetting_chaudhry
for dataset in main.dataset.unique():
    table = report.regime_table(main, dataset, metric)
    display(Markdown(f"**{dataset}: {report.METRICS[metric]}**"))
    display(report.style(pd.concat({"mean": table, "rank": report.ranks(table, metric)}, axis=1)))

# %% [markdown]
# ## Finding 1: do the rankings change across regimes?
#
# The test asks whether the methods' ranks by ACC differ between regimes more than the
# run-to-run noise between task orders explains (a method x regime interaction, with
# orders as blocks). Beside it, two Kendall τ: between regimes (same order) and within
# a regime between orders, the noise ceiling; a ranking that changes across regimes
# shows as τ between below τ within.

# %%
ranking = findings.finding_ranking(main)
for verdict in ranking:
    display(Markdown(verdict.sentence()))
glue("finding1", ranking[-1].headline(), display=False)
report.style(findings.verdict_table(ranking).drop(columns=["claim", "statistic"]))

# %% [markdown]
# Which methods swap places, and by how much ACC (gap in each regime, mean over orders):

# %%
report.style(findings.ranking_swaps(main))

# %% [markdown]
# ### As in the original: Kendall τ between regimes
#
# The original study's analysis: per order, Kendall τ between the rankings of the four
# methods in every pair of its six nested regimes, averaged over pairs, then mean ±
# standard deviation over orders. It has no null: noise alone gives τ < 1.

# %%
original = findings.original_kendall(main)
display(report.style(original.summary))
for dataset, matrix in original.matrices.items():
    report.show(
        report.tau_figure(
            matrix, f"{dataset}: Kendall τ between regimes, mean over orders (as in the original)"
        )
    )

# %% [markdown]
# ## Findings 2 and 3: update magnitude, forgetting and depth
#
# Within each method (so that methods whose updates differ by orders of magnitude
# cannot make a trend), the Spearman correlation of regime depth with the run's mean
# update $u$, with its forgetting, and with its update-forgetting correlation; combined
# as the mean over methods and tested against regimes permuted within each method and
# order.

# %%
depth = findings.finding_depth(main_tasks)
coupling = findings.finding_coupling(main_tasks)
for verdict in depth + coupling:
    display(Markdown(verdict.sentence()))
updates, forgetting = (v for v in depth if v.dataset == "pooled")
glue("finding2_u", updates.headline(), display=False)
glue("finding2_forgetting", forgetting.headline(), display=False)
glue("finding3", coupling[-1].headline(), display=False)
report.style(findings.verdict_table(depth + coupling).drop(columns=["statistic"]))

# %% [markdown]
# Per method, the depth trend and its bootstrap interval over orders:

# %%
report.style(
    pd.concat(
        [
            v.detail.assign(finding=v.finding, claim=v.claim)
            for v in depth + coupling
            if v.dataset != "pooled"
        ]
    )
)

# %%
for dataset in main_tasks.dataset.unique():
    report.show(report.depth_figure(main_tasks, dataset))

# %% [markdown]
# ### As in the original
#
# The original study's analyses, with its definition of the update statistic
# (`orig_u`, {ref}`update-statistics`): per method and regime, the mean of per-task
# `orig_u` over orders, and the Pearson, Spearman and Kendall correlations of per-task
# `orig_u` with per-task forgetting, averaged over orders.

# %%
report.style(findings.original_depth_u(main_tasks))

# %%
report.style(findings.original_update_forgetting(main_tasks))

# %% [markdown]
# ## Do the findings survive the original code's quirks?
#
# The `paper` profile reproduces the original code, quirks included ({doc}`../book/protocol`).
# Where records exist for the other value of a quirk, the findings are recomputed with
# those runs in place of the profile's own, over the regimes and methods they cover.
# The update statistic's definition needs no other runs: the findings with the book's
# $u$ and with the original's are side by side first. Over few regimes and orders the
# tests have little power: with two regimes and $n$ orders the ranking test's smallest
# possible p-value is $2/2^n$ (0.25 with the `quick` profile's three orders), so there
# a variant can show a direction, not a significant change.

# %%
definitions = pd.concat(
    {
        update: findings.verdict_table(
            findings.finding_depth(main_tasks, update=update)
            + findings.finding_coupling(main_tasks, update=update)
        )
        for update in ("u", "orig_u")
    },
    names=["update statistic"],
)
report.style(definitions[["dataset", "claim", "observed", "p_value", "verdict"]])

# %%
variants = sorted(set(runs.variant) - {""})
display(
    Markdown(
        "Findings over the regimes each variant covers, with the profile's runs "
        "and with the variant's in their place:"
        if variants
        else "No records of other settings in this profile."
    )
)
if variants:
    display(report.style(pd.concat([findings.survival(runs, tasks, v) for v in variants])))

# %%
for variant in sorted(set(runs.variant) - {""}):
    display(Markdown(f"**{variant}**: ACC and forgetting, profile vs variant (mean over orders)"))
    display(
        report.style(
            pd.concat(
                {m: report.variant_comparison(runs, variant, m) for m in ("acc", "forgetting")},
                axis=1,
            )
        )
    )

# %% [markdown]
# ## Explore
#
# Every method's ACC across regimes. Running this notebook live (Jupyter) adds
# controls below the figure to pick the dataset, the metric and the methods; the
# rendered book shows the static figure.

# %%
for dataset in main.dataset.unique():
    report.show(report.across_regimes_figure(main, dataset))
report.explorer(main)

# %% [markdown]
# ## Provenance
#
# Where the records come from (device, library commit, torch, precision):

# %%
report.style(report.provenance(runs))
