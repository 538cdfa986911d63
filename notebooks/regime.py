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
# # One fine-tuning regime
#
# Every regime chapter is this notebook (`notebooks/regime.py`), executed with its
# parameter `regime` set to the chapter's regime; what trains and what the theory
# predicts comes from `book/regimes/<regime>.md`. To look at another regime, open it in
# Jupyter (`make lab`) and change `regime` in the parameters cell, the first code cell.

# %% tags=["parameters", "remove-cell"]
regime = "head"  # head | bn_affine | from_layer4 | from_layer3 | from_layer2 | from_layer1 | full
profile = "quick"  # smoke | quick | paper
datasets = None  # None: the profile's datasets
methods = None  # None: every method
orders = [0]  # None: all the profile's orders
seeds = None  # None: the profile's seeds
group_size = None  # runs trained as one grouped network (None: as many as fit)
device = "auto"  # auto | cpu | cuda
results_dir = "../results"

# %%
from IPython.display import Markdown, display
from myst_nb import glue

from cl_regimes import profiles, regimes, report, results, sweep
from cl_regimes.report import figures, tables, words

display(Markdown(regimes.chapter_text(regime)[1]))
grid = profiles.get_profile(profile)  # its settings and the runs of its grid

# %% [markdown]
# The trainable blocks, with parameter counts for the paper's ResNet-18 (width 64,
# 10 classes) and for the network of the profile run here:

# %%
trainable = tables.trainable_table(regime, grid.settings["width"])
glue("trainable", f"{trainable.loc['total', 'trainable (width 64)']:,}", display=False)
glue("share", f"{trainable.loc['total', 'trainable share']:.2%}", display=False)
report.style(trainable)

# %% [markdown]
# In the paper's network this regime trains {glue:text}`trainable` parameters,
# {glue:text}`share` of the total.
#
# ## Runs
#
# Each method trains the tasks one after the other under this regime. Finished runs
# are read from their records; missing ones run now, all task orders of a method
# together as one grouped network. Where the profile asks for them, its variants
# (other values of the original code's quirks) run too.

# %%
runs = grid.grid(regimes=[regime], datasets=datasets, methods=methods, orders=orders, seeds=seeds)
paths = sweep.sweep(
    runs,
    group_size=group_size,
    device=device,
    results_dir=results_dir,
).paths
runs, tasks = results.load(paths), results.load(paths, level="task")
main = runs[runs.variant == ""]

# %%
same = tables.identical_variants(runs)  # variants whose rows would repeat the profile's
runs, tasks = runs[~runs.variant.isin(same)], tasks[~tasks.variant.isin(same)]
if same:
    names = ", ".join(f"`{v}`" for v in same)
    display(Markdown(f"The runs of {names} are identical to the profile's own here."))

# %% [markdown]
# ## Results
#
# Each metric's mean and standard deviation over task orders, per method (and per
# variant of the settings, where there are any); how to read them: {ref}`reading`.

# %%
metrics = list(report.METRICS)  # e.g. ["acc"] for ACC alone
report.style(tables.method_table(runs, metrics))

# %%
for dataset in main.dataset.unique():
    best, sentence = words.best_method(main, dataset, regime)
    glue(f"{dataset}_best", best, display=False)
    display(Markdown(sentence))

# %% [markdown]
# The accuracy matrices, averaged over orders:

# %%
for dataset in main.dataset.unique():
    display(figures.heatmaps(main, dataset, f"{regime} on {dataset}"))

# %% [markdown]
# Update statistics, means over tasks and orders ({ref}`update-statistics`):

# %%
report.style(tables.update_table(tasks))

# %%
for dataset in main.dataset.unique():
    report.show(figures.update_figure(tasks[tasks.variant == ""], dataset))
