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
# This chapter reads every run record of the profile, whatever the regime
# notebooks left, and recomputes all of its tables, statistics and figures on
# every build. It tests the paper's three findings:
#
# 1. the ranking of continual-learning methods is not preserved across regimes;
# 2. deeper regimes give larger update magnitudes and more forgetting;
# 3. deeper regimes give a stronger relationship between update magnitude and
#    forgetting.
#
# Depth orders the nested regimes `head` < `from_layer4` < `from_layer3` <
# `from_layer2` < `from_layer1` < `full`; `bn_affine` is not nested in that
# family and enters the rankings but not the depth trends. The findings use
# the paper's four methods (online EWC, LwF, SI, GEM) and the paper's
# `bn_stats=always_update`; `finetune` and `joint` are shown for reference.

# %% tags=["remove-cell"]
from cl_regimes import chapters

# %% tags=["parameters"]
profile = "quick"  # smoke | quick | paper
results_dir = "../results"
device = "auto"  # unused here: this chapter only reads records

# %% tags=["remove-input"]
all_runs, all_tasks, runs, tasks = chapters.load_main(profile, results_dir)

# %% [markdown]
# ## The three findings
#
# Each statement below is computed from the records; the interval is a 95%
# percentile bootstrap (over dataset-order pairs for finding 1, over runs for
# finding 2, over orders for finding 3).

# %% tags=["remove-input"]
findings = chapters.show_findings(runs, tasks)

# %% [markdown]
# ## Methods across regimes
#
# The tables give each method's mean over orders under each regime, with its
# rank within the regime in parentheses (1 = highest ACC, or lowest
# forgetting). A method whose rank changes from column to column is the first
# finding in miniature.

# %% tags=["remove-input"]
chapters.show_tables(runs)

# %% [markdown]
# ## Finding 1: ranking agreement
#
# For every task order, the paper's four methods are ranked by ACC within each
# regime, and Kendall's τ compares the rankings of every pair of regimes
# (1: the same ranking, -1: reversed). The matrix shows the mean ± std over
# orders and the bootstrap interval of the mean.

# %% tags=["remove-input"]
chapters.show_ranking(runs)

# %% [markdown]
# ## Findings 2 and 3: update magnitude, forgetting and depth
#
# Left: each method's mean update magnitude u = E‖P_S ∇J‖² (log scale) per
# regime; middle: its forgetting; right: per regime, the Spearman correlation
# between how large a task's updates were and how much that task was
# forgotten by the end (mean ± std over orders). Finding 2 asks whether the
# first two curves rise with depth, finding 3 whether the third does.

# %% tags=["remove-input"]
chapters.show_depth(runs, tasks)

# %% [markdown]
# ## BatchNorm statistics: following the regime or always updated
#
# The original code put the whole network in training mode, so frozen
# BatchNorm layers kept updating their running statistics
# (`bn_stats=always_update`). With `follow_regime` they stay fixed and frozen
# coordinates compute exactly the same function: the projector semantics.

# %% tags=["remove-input"]
chapters.show_bn_stats(all_runs)

# %% [markdown]
# ## Explore
#
# The figure shows every method's ACC across regimes. Running this notebook
# live (Jupyter) adds controls below it to pick the dataset, the metric and
# the methods; the rendered book shows the static figure.

# %% tags=["remove-input"]
chapters.explorer(runs)
