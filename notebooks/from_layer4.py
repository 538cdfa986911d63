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
# # `from_layer4`: the last block ("last block" in the paper)
#
# `layer4` and the head train; the stem, `layer1`, `layer2` and `layer3` stay
# frozen. This is the paper's shallowest regime.
#
# **What the theory predicts.** Every step is the projected step
# theta <- theta - eta * P_S grad J, with J = L_task + lambda * Omega. `layer4` holds three quarters of ResNet-18's parameters but computes on the
# smallest feature maps, on top of a frozen random feature extractor. The
# projected step restricts both plasticity and stability to these coordinates:
# the regulariser can only protect old tasks through `layer4`, and the new task
# can only adapt there. The paper's second finding predicts the smallest update
# magnitudes and the least forgetting of its four regimes here.
#
# The trainable blocks, with parameter counts for the paper's ResNet-18
# (width 64, 10 classes) and for the network of the profile run here:

# %% tags=["remove-cell"]
from cl_regimes import chapters

REGIME = "from_layer4"

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
# In the paper's network this regime trains {glue:text}`from_layer4_trainable`
# parameters, {glue:text}`from_layer4_share` of the total.
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
