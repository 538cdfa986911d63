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
# # `full`: every parameter ("full finetune" in the paper)
#
# Every parameter trains: P_S is the identity and the step is plain SGD on
# J = L_task + lambda * Omega.
#
# **What the theory predicts.** Every step is the projected step
# theta <- theta - eta * P_S grad J, with J = L_task + lambda * Omega. This is the setting in which the methods were designed and in which they are
# usually compared. Both the task gradient and the penalty gradient act on the
# whole network, so their interaction is the least constrained and the paper
# expects the largest updates and the most forgetting here, with the update
# magnitude predicting forgetting most strongly.
#
# The trainable blocks, with parameter counts for the paper's ResNet-18
# (width 64, 10 classes) and for the network of the profile run here:

# %% tags=["remove-cell"]
from cl_regimes import chapters

REGIME = "full"

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
# In the paper's network this regime trains {glue:text}`full_trainable`
# parameters, {glue:text}`full_share` of the total.
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
