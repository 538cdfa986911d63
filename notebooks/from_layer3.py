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
# # `from_layer3`: the last two stages ("last 2 blocks" in the paper)
#
# `layer3`, `layer4` and the head train; the stem, `layer1` and `layer2` stay
# frozen.
#
# **What the theory predicts.** Every step is the projected step
# theta <- theta - eta * P_S grad J, with J = L_task + lambda * Omega. Adding `layer3` grows the trainable subspace from about 75% to about 94% of
# the parameters and lets the new task reshape mid-level features. Under the
# projected-step view, P_S grad L gains the coordinates of `layer3`, so the
# update norm grows, and so does the room for interference with old tasks:
# the paper expects more forgetting than under `from_layer4`, and a stronger
# link between how far a task moves the parameters and how much the earlier
# tasks lose.
#
# The trainable blocks, with parameter counts for the paper's ResNet-18
# (width 64, 10 classes) and for the network of the profile run here:

# %% tags=["remove-cell"]
from cl_regimes import chapters

REGIME = "from_layer3"

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
# In the paper's network this regime trains {glue:text}`from_layer3_trainable`
# parameters, {glue:text}`from_layer3_share` of the total.
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
