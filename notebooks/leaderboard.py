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
# # Leaderboard: the field's methods by regime
#
# The study ranks four methods of 2016-17. Benchmarks today rank replay methods, and
# report one regime: the whole network trained. This chapter ranks both families under
# every regime and asks what a benchmark that fixes the regime would miss.
#
# | method | what it does | reference |
# |---|---|---|
# | `finetune` | trains on each task in turn (the floor) | |
# | `ewc` | online EWC: a quadratic penalty weighted by the diagonal Fisher | Schwarz et al. 2018 |
# | `lwf` | distils the old tasks' outputs from a snapshot | Li & Hoiem 2017 |
# | `si` | a quadratic penalty weighted by each weight's path integral | Zenke et al. 2017 |
# | `gem` | projects each update so that no old task's memory loss rises | Lopez-Paz, Ranzato 2017 |
# | `er` | joins each batch with one from a reservoir memory | Chaudhry et al. 2019 |
# | `agem` | projects each update against the gradient of a replay batch | Chaudhry et al. 2019 |
# | `derpp` | replays stored logits (MSE) and labels (cross-entropy) | Buzzega et al. 2020 |
# | `er_ace` | replay; the incoming batch scored over its own classes | Caccia et al. 2022 |
#
# The four replay methods share one memory size per profile, GEM's total (its memories
# per task times the tasks: 160 images at `quick` and `medium`, 1000 at `paper`), and
# replay batches as large as the training batches; each was checked against Mammoth's
# code (`benchmarks/compare_mammoth.py`: identical accuracies where both sides can be made
# deterministic, `benchmarks/README.md`). `joint` (trained on every task seen) is left
# out: it is an upper reference, not a continual-learning method.
#
# **How to read it.** Within a replicate (a task order and seed) and a regime the methods
# are ranked by ACC, 1 the highest; a method's rank in a regime is the mean over
# replicates, with a 95% bootstrap interval over orders. Only replicates that every
# method ran in every regime shown count, so each rank is over the same task
# sequences. The records are committed and every number is recomputed at each build;
# regimes whose runs are still training are named below the picture.

# %% tags=["parameters", "remove-cell"]
profile = "quick"  # unused here: the chapter reads committed records
results_dir = "../results"  # unused here
records_dir = "../records"  # committed records: medium/ and scenarios/quick/
device = "auto"  # unused here
group_size = None  # unused here

# %%
from pathlib import Path

from IPython.display import Markdown, display

from cl_regimes import findings, leaderboard, profiles, report, results
from cl_regimes.report import figures, tables

SOURCES = {  # board -> (records, scenario)
    "medium, task-incremental": ("medium", "task_incremental"),
    "quick, task-incremental": ("scenarios/quick", "task_incremental"),
    "quick, class-incremental": ("scenarios/quick", "class_incremental"),
    "quick, domain-incremental": ("scenarios/quick", "domain_incremental"),
}
loaded = {path: results.load(Path(records_dir) / path) for path in {p for p, _ in SOURCES.values()}}
boards, left_out = {}, {}
for name, (path, scenario) in SOURCES.items():
    runs = tables.by_scenario(loaded[path]).get(scenario, loaded[path].iloc[:0])
    runs = runs[runs.seed == 0]  # seed 0: every method has it
    runs, left_out[name] = leaderboard.complete(runs, leaderboard.expected_methods(scenario))
    if runs.regime.nunique() >= 2:
        boards[name] = runs
ranked = {name: leaderboard.rank_table(runs) for name, runs in boards.items()}

# %% [markdown]
# ## The picture

# %%
if ranked:
    report.show(figures.rank_figure(ranked, replay=profiles.REPLAY))
lines = [
    f"- **{name}**: " + "; ".join(f"{k}: {v}" for k, v in left.items())
    for name, left in left_out.items()
    if left
]
display(
    Markdown(
        "Solid lines: the replay methods; dashed: the study's four and `finetune`. "
        + (
            "Left out while their runs train:\n\n" + "\n".join(lines)
            if lines
            else "Every regime of every board is complete."
        )
    )
)

# %% [markdown]
# ## How much a method's standing depends on the regime
#
# For each method: its best and worst place (the rank of its mean ACC among the methods
# in a regime), and the other method (not `finetune`) against which its standing swings
# most: its ACC gap to that method where it leads most, minus the gap where it trails
# most. That swing is the largest of several, picked on the same records, so it
# overstates the true one a little; its interval is for the pair of regimes picked and
# does not correct for the picking. Finding 1's test below does.

# %%
for name, runs in boards.items():
    display(Markdown(f"**{name}** ({runs.order.nunique()} orders)"))
    report.show(report.style(tables.standing_table(leaderboard.standing(runs))))

# %% [markdown]
# ## Finding 1 over every method
#
# The rank-change test of finding 1 ({ref}`statistics`), over all the methods ranked here
# rather than the paper's four: does some pair change order between regimes, beyond the
# tie margin, with the family-wise error held at 0.05? Beside the verdict, the crossing
# it would have found with 80% power, and the pairs that cross.

# %%
for name, runs in boards.items():
    verdict = findings.finding_ranking(runs, methods=leaderboard.ranked_methods(runs))[-1]
    said = f" (p = {verdict.p_value:.3g}); {verdict.seen()}" if verdict.seen() else ""
    display(Markdown(f"**{name}**: {verdict.verdict}{said}. {verdict.note}"))
    crossing = findings.crossings(verdict)
    if not crossing.empty:
        report.show(report.style(crossing))

# %% [markdown]
# ## One regime for a benchmark
#
# A benchmark that can afford one regime should run the one whose ranking of the methods
# agrees best with the others': Kendall's $\tau$ between a regime's methods' ACC and each
# other regime's, within a replicate, averaged over the other regimes and the replicates.

# %%
for name, runs in boards.items():
    proxies = leaderboard.proxy_regimes(runs)
    best = proxies.index[0]
    display(
        Markdown(
            f"**{name}**: `{best}` agrees best with the other regimes (mean τ "
            f"{proxies.iloc[0, 0]:.2f} [{proxies.iloc[0, 1]:.2f}, {proxies.iloc[0, 2]:.2f}]); "
            f"`full`, the benchmarks' usual choice, {proxies.loc['full'].iloc[0]:.2f}."
            if "full" in proxies.index
            else f"**{name}**: `{best}` agrees best with the other regimes."
        )
    )
    report.show(report.style(proxies))

# %% [markdown]
# ## The tables
#
# Each method's mean ACC and its place within each regime, per board.

# %%
for name, table in ranked.items():
    display(Markdown(f"**{name}**: mean ACC (rows: methods; columns: regimes)"))
    report.show(
        report.style(
            table["acc"].unstack("regime").loc[report.method_order(table.index.unique("method"))]
        )
    )
    display(Markdown(f"**{name}**: place (1 = highest mean ACC in the regime)"))
    report.show(
        report.style(
            table["place"].unstack("regime").loc[report.method_order(table.index.unique("method"))],
            digits=1,
        )
    )
