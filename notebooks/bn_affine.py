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
# # `bn_affine`: BatchNorm scales and shifts, plus the head
#
# Every BatchNorm layer's weight and bias train, together with the head; the
# convolutions stay at their random initial values. The original study defines
# the BatchNorm-only regime without the head and does not run it; here the head
# trains too, so that each task can still read out its classes.
#
# **What the theory predicts.** Every step is the projected step
# theta <- theta - eta * P_S grad J, with J = L_task + lambda * Omega. This is a tiny subspace (about 0.1% of the network) spread over *all* depths:
# each step rescales and shifts every channel of every layer. Such affine-only
# training is known to be surprisingly expressive. Because the subspace touches
# the early layers that every task shares, a step for the new task moves
# features the old tasks rely on, so unlike `head` it can forget, though with
# updates of small norm. The interplay of the penalty and the task gradient,
# <P_S grad L, P_S grad Omega>, now lives in a space of channel gains.
#
# The trainable blocks, with parameter counts for the paper's ResNet-18
# (width 64, 10 classes) and for the network of the profile run here:

# %% tags=["remove-cell"]
from cl_regimes import chapters

REGIME = "bn_affine"

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
# In the paper's network this regime trains {glue:text}`bn_affine_trainable`
# parameters, {glue:text}`bn_affine_share` of the total.
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
