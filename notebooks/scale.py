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
# # Scale: do the verdicts hold beyond the miniature?
#
# The `quick` book trains a width-8 ResNet-18 on 16x16 Fashion-MNIST with 500 images per
# task and three task orders: its verdicts could say more about the miniature than about
# the paper's setting. This chapter puts the primary verdicts and their effect sizes
# side by side for every profile whose records exist: `smoke` (scikit-learn's digits,
# seconds), `quick`, `medium` (committed records, trained in the background on two CPU
# cores) and `paper` (the original protocol, on a GPU, where records exist). Nothing here
# is trained: every number is recomputed from the records at each build.

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # unused here: the chapter reads every profile's records
results_dir = "../results"  # records this build made (smoke, quick)
records_dir = "../records"  # committed records (medium, paper)
device = "auto"  # unused here: this chapter only reads records
group_size = None  # unused here

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from cl_regimes import findings, report, results
from cl_regimes.report import figures, tables, words

SCALES = ("smoke", "quick", "medium", "paper")
loaded = {}
for name in SCALES:
    for folder in (Path(records_dir) / name, Path(results_dir) / name):
        if folder.is_dir() and any(folder.rglob("*.json")):
            runs, tasks = results.load(folder), results.load(folder, level="task")
            loaded[name] = (runs[runs.variant == ""], tasks[tasks.variant == ""], folder)
            break
report.style(tables.scale_table(loaded))

# %% [markdown]
# ## The primary verdicts at each scale
#
# One verdict per finding and profile, pooled over the profile's datasets
# ({ref}`statistics`).

# %%
verdicts = {name: findings.primary(runs, tasks) for name, (runs, tasks, _) in loaded.items()}
table = pd.DataFrame(
    [
        {"profile": name, "finding": v.finding, "verdict": v.verdict, "p_value": v.p_value}
        | {"statistic": v.statistic, "observed": v.observed}
        | {"detectable": v.detectable, "would have seen": v.seen(), "note": v.note}
        for name, vs in verdicts.items()
        for v in vs
    ]
)
report.style(table.pivot(index="finding", columns="profile", values="verdict")[list(loaded)])

# %% [markdown]
# Each verdict's statistic by name, and what it would have seen with 80% power, found by
# simulating its test on that scale's own noise and number of orders (the crossing on
# each side for finding 1, the mean per-order Spearman ρ in every method for finding 2,
# the change of coupling from the shallowest to the deepest regime for finding 3):

# %%
report.style(
    table[["profile", "finding", "verdict", "p_value", "statistic", "observed", "would have seen"]]
)

# %% [markdown]
# ## Finding 1: which pairs cross, and by how much
#
# The largest crossing (the smaller side of a pair's largest and most negative ACC gap,
# with its bootstrap interval over orders) against the crossing the test could detect
# with 80% power at that scale's noise and number of orders. A crossing smaller than the
# detectable one cannot be told from noise at that scale.

# %%
rows = []
for name, (v, *_) in verdicts.items():
    cross = findings.crossings(v)
    rows.append(
        {
            "profile": name,
            "verdict": v.verdict,
            **{k: v.effects.get(k) for k in ("largest_crossing", "detectable_crossing")},
            **dict(
                zip(("largest_lo", "largest_hi"), v.intervals.get("largest_crossing", (None,) * 2))
            ),
            "pairs that cross": "; ".join(
                f"{r.method_1} vs {r.method_2}: ahead in {r.ahead_in}, behind in {r.behind_in}"
                for r in cross.itertuples()
            )
            or "none",
        }
    )
crossings = pd.DataFrame(rows)
report.style(crossings)

# %% [markdown]
# ## Findings 2 and 3: the trends per method
#
# Each method's trend with depth and its bootstrap interval over orders, at each scale:
# Spearman ρ of depth with the run's total $u$ (which grows with the number of trainable
# parameters by construction), with $u$ per trainable parameter and with forgetting
# (finding 2), and the position-adjusted coupling's change from the shallowest to the
# deepest regime, signed by its level (finding 3). A trend holds "in every method" only
# when every method's interval lies above zero and its test rejects.

# %%
trends = pd.concat(
    {
        name: findings.details(
            [
                v
                for v in findings.finding_depth(tasks) + findings.finding_coupling(tasks)
                if v.dataset == "pooled"
            ]
        )
        for name, (_, tasks, _) in loaded.items()
    },
    names=["profile"],
).reset_index(level=0)
report.show(figures.trend_figure(trends, list(loaded)))

# %%
report.style(
    trends.reindex(columns=["profile", "part", "method", "rho", "rho_lo", "rho_hi", "p_holm"])
)

# %% [markdown]
# ## What holds, what moves
#
# In words, from the verdicts and trends above (regenerated at each build): first each
# finding's verdict, then what moves beneath it: the crossings of finding 1 against what
# each scale could detect, and in how many methods each trend of findings 2 and 3 holds.

# %%
calls = table.pivot(index="finding", columns="profile", values="verdict")
lines = words.scale_summary(calls, tables.scale_table(loaded), SCALES)
lines += [words.crossing_summary(crossings), *words.trend_summary(trends, SCALES)]
for line in lines:
    display(Markdown(line))
missing = [p for p in SCALES if p not in loaded]
if missing:
    display(Markdown("No records yet for " + ", ".join(f"`{p}`" for p in missing) + "."))

# %% [markdown]
# What the `paper` run would settle. Between `quick` and `medium` only the number of
# images per task and of orders grows; the network stays a width-8 ResNet-18 on 16x16
# images. The `paper` profile changes what these two cannot: the width (64, eight times
# more channels), the image side (32) and all ~6,000 training images per class, where
# every regime learns its tasks far above chance and the spread over orders is smaller.
# Its 11 orders give the rank-change test the power the table of detectable crossings
# above calls for. A verdict that holds at `medium` but not at `paper` would be a property
# of the small network; one that appears only at `paper` would be out of reach of any CPU
# run here.

# %% [markdown]
# ## Provenance
#
# Where each profile's records come from (device, library commit, torch, precision, the
# group size, the machines and the summed wall time):

# %%
report.style(
    pd.concat(
        {name: tables.provenance(runs) for name, (runs, *_) in loaded.items()}, names=["profile"]
    ).reset_index()
)
