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
# # `head`: a linear probe on random features
#
# Only the shared linear head `fc` trains; every convolution and every BatchNorm
# parameter keeps its random (Kaiming) initial value. The original study defines
# this regime but does not run it.
#
# **What the theory predicts.** Every step is the projected step
# theta <- theta - eta * P_S grad J, with J = L_task + lambda * Omega. With a task-masked head, the gradient of task *t*'s loss reaches only the rows
# of `fc` that belong to task *t*'s classes. The trainable subspace of one task
# is orthogonal to every other task's, so the projected step cannot touch what
# earlier tasks use: with frozen BatchNorm statistics (`bn_stats=follow_regime`)
# forgetting is exactly zero, and every method reduces to fine-tuning (EWC's and
# SI's penalties and GEM's constraints act on coordinates the new task never
# moves). Under `bn_stats=always_update` the frozen body still changes its
# function through BatchNorm's running statistics, so whatever forgetting
# appears here is caused by those statistics alone. Plasticity is the price:
# random features limit what a linear probe can learn.
#
# The trainable blocks, with parameter counts for the paper's ResNet-18
# (width 64, 10 classes) and for the network of the profile run here:

# %% tags=["remove-cell"]
from cl_regimes import chapters

REGIME = "head"

# %% tags=["parameters"]
profile = "quick"  # smoke | quick | paper
datasets = None  # None: the profile's datasets
methods = None  # None: all six methods
orders = [0]  # None: all the profile's orders
seeds = None  # None: the profile's seeds
bn_stats = None  # None: the profile's setting(s)
device = "auto"  # auto | cpu | cuda
results_dir = "../results"

# %% tags=["remove-input"]
chapters.trainable_table(REGIME, profile)

# %% [markdown]
# In the paper's network this regime trains {glue:text}`head_trainable`
# parameters, {glue:text}`head_share` of the total.
#
# ## Runs and results
#
# Each method trains the tasks one after the other under this regime (finished
# runs are read from their records, missing ones run now); then, per dataset,
# the results and what they say.

# %%
runs, tasks = chapters.run_regime(REGIME, profile=profile, datasets=datasets, methods=methods,
                                  orders=orders, seeds=seeds, bn_stats=bn_stats, device=device,
                                  results_dir=results_dir)
chapters.show_regime(REGIME, runs, tasks)
