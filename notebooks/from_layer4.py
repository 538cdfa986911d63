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
# frozen. This is the paper's shallowest regime but `head`.
#
# **What the theory predicts.** Every step is the projected step
# $\theta \leftarrow \theta - \eta P_S \nabla J$ (see {doc}`../book/intro`). `layer4`
# holds three quarters of ResNet-18's parameters but computes on the smallest feature
# maps, on top of a frozen random feature extractor. The projected step restricts
# both plasticity and stability to these coordinates: the regulariser can only
# protect old tasks through `layer4`, and the new task can only adapt there. The
# paper's second finding predicts smaller updates and less forgetting here than in
# the deeper regimes.

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # smoke | quick | paper
datasets = None  # None: the profile's datasets
methods = None  # None: every method
orders = [0]  # None: all the profile's orders
seeds = None  # None: the profile's seeds
group_size = None  # runs trained as one grouped network (None: as many as fit)
device = "auto"  # auto | cpu | cuda
results_dir = "../results"

# %%
import numpy as np
from IPython.display import Markdown, display
from myst_nb import glue

from cl_regimes import profiles, report, results, sweep

REGIME = "from_layer4"

# %% [markdown]
# The trainable blocks, with parameter counts for the paper's ResNet-18 (width 64,
# 10 classes) and for the network of the profile run here:

# %%
trainable = report.trainable_table(REGIME, profiles.get_profile(profile).settings["width"])
glue(f"{REGIME}_trainable", f"{trainable.loc['total', 'trainable (width 64)']:,}", display=False)
glue(f"{REGIME}_share", f"{trainable.loc['total', 'trainable share']:.2%}", display=False)
report.style(trainable)

# %% [markdown]
# In the paper's network this regime trains {glue:text}`from_layer4_trainable`
# parameters, {glue:text}`from_layer4_share` of the total.
#
# ## Runs
#
# Each method trains the tasks one after the other under this regime. Finished runs
# are read from their records; missing ones run now, all task orders of a method
# together as one grouped network. Where the profile asks for them, its variants
# (other values of the original code's quirks) run too.

# %%
paths = sweep.sweep(
    profile,
    regimes=[REGIME],
    datasets=datasets,
    methods=methods,
    orders=orders,
    seeds=seeds,
    group_size=group_size,
    device=device,
    results_dir=results_dir,
).paths
runs, tasks = results.load(paths), results.load(paths, level="task")
main = runs[runs.variant == ""]

# %% [markdown]
# ## Results
#
# Each metric's mean and standard deviation over task orders, per method (and per
# variant of the settings, where there are any); how to read them: {ref}`reading`.

# %%
metrics = list(report.METRICS)  # e.g. ["acc"] for ACC alone
report.style(report.method_table(runs, metrics))

# %%
acc = main.groupby(["dataset", "method"]).acc.mean()
diagonal = main.assign(d=[np.diag(R).mean() for R in main.R]).groupby("dataset").d.mean()
for dataset, best in acc.groupby("dataset").idxmax().items():
    glue(f"{REGIME}_{dataset}_best", best[1], display=False)
    display(
        Markdown(
            f"On {dataset}, **{best[1]}** has the highest ACC under `{REGIME}` "
            f"({acc[best]:.3f}); right after training, a task reaches "
            f"{diagonal[dataset]:.3f} accuracy on average (chance: 1/classes of a "
            "task)."
        )
    )

# %% [markdown]
# The accuracy matrices, averaged over orders (row $i$: after training the $i$-th task
# of the order; column $j$: tested on the $j$-th):

# %%
for dataset in main.dataset.unique():
    report.show(report.heatmaps(main, dataset, f"{REGIME} on {dataset}: accuracy matrices"))

# %% [markdown]
# Update statistics, means over tasks and orders ({ref}`update-statistics`):

# %%
report.style(report.update_table(tasks))

# %%
for dataset in main.dataset.unique():
    report.show(report.update_figure(tasks[tasks.variant == ""], dataset))
