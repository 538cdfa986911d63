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
# # Evaluate your method
#
# The study's conclusion is a rule for the field: compare continual-learning methods
# within a fine-tuning regime, never across regimes, and report results stratified by
# regime. This chapter applies the rule to a method that is not part of the library,
# defined in the next cell, exactly as you would apply it to yours. It trains the method
# under several regimes beside the paper's four methods and the field's four replay
# methods (reusing their records where they exist), then shows its **regime card**: per
# regime, its ACC and forgetting with intervals and its rank among those eight methods,
# and the rank changes that involve it.
#
# From a terminal, the same card for a method in your own module or package:
#
# ```bash
# python -m cl_regimes card --method mypkg.module:MyMethod --profile quick
# python -m cl_regimes card --method mypkg.module:MyMethod --scenario class_incremental
# ```
#
# writes `cards/<method>-<profile>-<scenario>-<regimes>.md`, `.html` and a PNG;
# `--set mymethod.param=value` sets its settings, `--dry-run` lists the runs it needs
# and a projected time. An installed package can declare its method in the entry-point
# group `cl_regimes.methods` instead; the README shows how.

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # smoke | quick | paper
results_dir = "../results"
device = "auto"
group_size = None
regimes = ["head", "from_layer4", "from_layer2", "full"]  # the card's (None: every one)
orders = None  # the task orders (None: the profile's)

# %%
from typing import Annotated

import torch
from IPython.display import Markdown

from cl_regimes import card, report
from cl_regimes.config import NON_NEGATIVE
from cl_regimes.methods import Method

# %% [markdown]
# ## A method of one's own
#
# A method subclasses `Method` and overrides the hooks it needs (`penalty`,
# `direction`, `after_task`, ...; `help(Method)` lists them). Its settings are its
# constructor's arguments after `runs`, each annotated with its valid values and given
# a default. This one pulls the trainable weights $\theta$ towards $\theta^*$, where the
# previous task left them, with the penalty
# $\frac{\lambda}{2} \lVert \theta - \theta^* \rVert^2$: online EWC with every
# parameter equally important.


# %%
class AnchorL2(Method):
    """Fine-tuning with the penalty lam / 2 * ||theta - theta*||^2 over the trainable
    parameters, theta* their values at the end of the previous task."""

    name = "anchor_l2"
    stop_on_total_loss = True  # early stopping watches the loss plus the penalty

    def __init__(self, runs, lam: Annotated[float, NON_NEGATIVE] = 1.0):
        super().__init__(runs)
        self.lam = lam
        self.anchor: torch.Tensor | None = None

    def penalty(self, x, logits, y):
        if self.anchor is None:
            return None
        return self.lam / 2 * (self.runs.flat(self.runs.params) - self.anchor).pow(2).sum(1)

    def after_task(self, tasks):
        self.anchor = self.runs.flat(self.runs.params).detach().clone()


# %% [markdown]
# ## Its card
#
# `card.write` checks every input first (the method's settings, the scenario it applies
# to, the folders), sweeps what is missing (the method under every chosen regime and
# order of the profile, and the eight compared methods where their records are missing)
# and writes the card. A method from outside the library keeps its records in
# `results/yours/`, where `python -m cl_regimes card` keeps them too, so that each reuses
# the other's runs, and the other chapters, which read the profile's folder, never count
# them. They are reused only while the method's code is the same: edit the class and
# rerun, and its runs train anew (the card gives the digest of the code it ran).

# %%
made = card.write(
    "anchor_l2",
    profile,
    results_dir,
    output=f"{results_dir}/cards",
    regimes_=regimes,
    orders=orders,
    device=device,
    group_size=group_size,
)
print(f"{len(made.runs)} runs: {made.runs.groupby('method', observed=True).size().to_dict()}")

# %% [markdown]
# Per regime: the method's mean ACC and forgetting over orders with 95% t-intervals, and
# its rank by mean ACC among the eight compared methods and itself (1 = highest). Read
# each row on its own: a regime is a different problem, so a number in one row is not
# comparable with a number in another. A cell **at chance** learned too little for its
# rank to mean anything (it forgets nothing because it learned nothing): it is flagged,
# not ranked, and left out of the test below.

# %%
report.style(made.table.drop(columns=["dataset"]))

# %%
Markdown(card.chance_text(made.runs, "anchor_l2") or "No cell is at chance.")

# %%
for dataset in made.runs.dataset.unique():
    report.show(card.figure(made.runs, "anchor_l2", dataset))

# %% [markdown]
# ## Does its rank change between regimes?
#
# Finding 1's test over the eight compared methods and this one ({ref}`statistics`),
# restricted here to the pairs that involve it: a pair crosses when the method is clearly
# ahead of the other in one regime and clearly behind in another. The test pairs the
# orders, so with the `quick` profile's three it has little power: the card says which
# crossing it would have detected, and why a pair could not be tested. A card of the 11
# orders of `medium` or `paper` (`--profile`) detects smaller ones.

# %%
Markdown(card.rank_text("anchor_l2", made.verdict, made.pairs))
