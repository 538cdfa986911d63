"""What the book's notebooks show: each function displays tables, figures and
data-driven sentences, and glues the headline values for the prose to cite."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from cl_regimes import profiles, regimes, report, results
from cl_regimes.sweep import sweep


def _show(fig) -> None:
    display(fig)
    plt.close(fig)


def trainable_table(regime: str, profile: str) -> pd.DataFrame:
    """The regime's blocks with trainable parameter counts (paper's width and the profile's)."""
    width = profiles.get_profile(profile).settings["width"]
    paper = regimes.parameter_table(regime, 64, 10)
    total = paper.iloc[-1]
    glue(f"{regime}_trainable", f"{int(total.trainable):,}", display=False)
    glue(f"{regime}_share", f"{total['trainable share']:.2%}", display=False)
    table = paper.rename(columns={"parameters": "parameters (width 64)",
                                  "trainable": "trainable (width 64)"})
    if width != 64:
        own = regimes.parameter_table(regime, width, 10)
        table[f"trainable (width {width}, {profile})"] = own.trainable
    table["trainable share"] = table["trainable share"].map("{:.2%}".format)
    return table.set_index("block").map(lambda v: f"{v:,}" if isinstance(v, int) else v)


def run_regime(regime: str, *, profile: str, datasets=None, methods=None, orders=None,
               seeds=None, bn_stats=None, device="auto", results_dir="results"):
    """Run (or resume) the sweep of one regime; return its tidy run and task tables."""
    paths = sweep(profile, regimes=[regime], datasets=datasets, methods=methods, orders=orders,
                  seeds=seeds, bn_stats=bn_stats, device=device, results_dir=results_dir)
    return results.load(paths), results.load(paths, level="task")


def _regime_sentences(regime: str, dataset: str, runs: pd.DataFrame) -> str:
    mean = runs.groupby("method")[["acc", "forgetting"]].mean()
    best = mean.acc.idxmax()
    parts = [f"Under `{regime}` on {dataset}, **{best}** has the highest final average "
             f"accuracy (ACC {mean.acc[best]:.3f})."]
    if "finetune" in mean.index:
        ft = mean.loc["finetune"]
        others = mean.drop(index=["finetune", "joint"], errors="ignore")
        less = list(others.index[others.forgetting < ft.forgetting])
        parts.append(f"Plain fine-tuning forgets {ft.forgetting:.3f} on average "
                     f"(ACC {ft.acc:.3f}); "
                     + (f"{', '.join(less)} forget{'s' if len(less) == 1 else ''} less."
                        if less else
                        "none of the continual-learning methods forgets less."))
    if "joint" in mean.index:
        parts.append(f"Joint training, the upper reference, reaches ACC {mean.acc['joint']:.3f}.")
    diag = np.mean([np.diag(R).mean() for R in runs.R])
    parts.append(f"Right after training, tasks reach {diag:.3f} accuracy on average: "
                 + ("the regime can learn each task." if diag > 0.75 else
                    "the regime barely learns each task with this budget, so its forgetting "
                    "numbers say little."))
    return " ".join(parts)


HOW_TO_READ = """For each dataset: ACC (average final accuracy), BWT (backward transfer) and
forgetting (accuracy right after learning a task minus at the end; Chaudhry's variant
uses the best accuracy a task had before the last one), as mean ± std over task orders;
then the accuracy matrices R[i, j], the accuracy on the j-th task after training the
i-th, averaged over orders (the diagonal is plasticity, below it memory, above it
transfer to tasks not yet seen); then the update statistics that the paper's second and
third findings are about."""


def show_regime(regime: str, runs: pd.DataFrame, tasks: pd.DataFrame) -> None:
    """Per dataset: the method table, accuracy matrices, update statistics, and what they say."""
    if runs.empty:
        display(Markdown("No records for this regime yet: run the sweep above."))
        return
    display(Markdown(HOW_TO_READ))
    for dataset in sorted(runs.dataset.unique()):
        sub = runs[runs.dataset == dataset]
        display(Markdown(f"### {dataset}: {sub.order.nunique()} orders, "
                         f"{sub.method.nunique()} methods, bn_stats "
                         f"{', '.join(sorted(sub.bn_stats.unique()))}"))
        table = report.method_table(sub, dataset)
        display(table)
        text = _regime_sentences(regime, dataset, sub)
        display(Markdown(text))
        glue(f"{regime}_{dataset}_summary", text, display=False)
        mean = sub.groupby("method").acc.mean()
        glue(f"{regime}_{dataset}_best", mean.idxmax(), display=False)
        for method, value in mean.items():
            glue(f"{regime}_{dataset}_acc_{method}", round(float(value), 3), display=False)
        _show(report.heatmaps(sub, dataset, f"{regime} on {dataset}: accuracy matrices "
                                            "(mean over orders)"))
        display(Markdown("Update statistics per method (means over tasks and orders): "
                         "g2 = E‖P_S ∇L‖², r2 = E‖r‖² (what the method adds), "
                         "cos their cosine, u = E‖update‖², drift = ‖θ_t − θ_{t−1}‖."))
        display(report.update_table(tasks, dataset).style.format("{:.3g}"))
        _show(report.update_figure(tasks, dataset))


def load_profile(profile: str, results_dir="results"):
    """Every record of a profile: the run and task tables."""
    folder = Path(results_dir) / profile
    if not folder.is_dir():
        empty = results.load([])
        return empty, empty
    return results.load(folder), results.load(folder, level="task")


def load_main(profile: str, results_dir="results"):
    """All records of a profile, and those of the bn_stats setting the findings use
    (the paper's, always_update, where it has records): (all_runs, all_tasks, runs, tasks)."""
    all_runs, all_tasks = load_profile(profile, results_dir)
    present = set(all_runs.bn_stats)
    setting = "always_update" if "always_update" in present or not present else min(present)
    runs, tasks = (t[t.bn_stats == setting] for t in (all_runs, all_tasks))
    glue("n_runs", len(runs), display=False)
    glue("profile", profile, display=False)
    display(Markdown(f"{len(all_runs)} run records of profile `{profile}`; the findings use "
                     f"the {len(runs)} with `bn_stats={setting}`."))
    return all_runs, all_tasks, runs, tasks


def show_tables(runs: pd.DataFrame) -> None:
    """Per dataset, method x regime tables of ACC and forgetting with ranks."""
    for dataset in sorted(runs.dataset.unique()):
        for metric in ("acc", "forgetting"):
            display(Markdown(f"**{dataset}: {report.METRICS[metric]}** per method and regime, "
                             "mean over orders (rank within the regime)"))
            display(report.regime_table(runs, dataset, metric))


def show_findings(runs: pd.DataFrame, tasks: pd.DataFrame) -> list[report.Finding]:
    """The three findings with their statistics; glued as finding1, finding2_u, ..."""
    taus = report.order_taus(runs)
    corr = report.update_forgetting_correlations(tasks)
    findings = [report.finding_ranking(taus), *report.finding_depth(runs, tasks),
                report.finding_coupling(corr)]
    keys = ["finding1", "finding2_u", "finding2_forgetting", "finding3"]
    for key, finding in zip(keys, findings):
        glue(key, finding.sentence(), display=False)
        glue(f"{key}_verdict", finding.verdict, display=False)
        glue(f"{key}_value", round(float(finding.value), 3), display=False)
    display(Markdown("\n".join(f"- {f.sentence()}" for f in findings)))
    return findings


def show_ranking(runs: pd.DataFrame) -> None:
    """Kendall tau between regimes, per dataset: table with intervals, and heatmap."""
    taus = report.order_taus(runs)
    glue("tau_mean", round(float(taus.tau.mean()), 3), display=False)
    for dataset in sorted(taus.dataset.unique()):
        display(Markdown(f"**{dataset}**: Kendall τ mean ± std over orders "
                         "[bootstrap 95% interval of the mean]"))
        display(report.tau_matrix(taus, dataset))
        _show(report.tau_figure(taus, dataset))


def show_depth(runs: pd.DataFrame, tasks: pd.DataFrame) -> None:
    corr = report.update_forgetting_correlations(tasks)
    display(Markdown("Correlation of per-task update magnitude (log u) with per-task "
                     "forgetting, per regime (mean ± std over datasets and orders; the "
                     "paper's four methods pooled, the last task dropped)"))
    display(report.correlation_table(corr))
    _show(report.depth_figure(runs, tasks, corr))


def show_bn_stats(runs: pd.DataFrame) -> None:
    """ACC with frozen BatchNorm statistics following the regime vs always updated."""
    shown = False
    for dataset in sorted(runs.dataset.unique()):
        table = report.bn_stats_table(runs, dataset)
        if table is not None:
            display(Markdown(f"**{dataset}**: ACC under both `bn_stats` settings"))
            display(table)
            shown = True
    if not shown:
        display(Markdown("Only one `bn_stats` setting has records in this profile; run a "
                         "sweep with `--bn-stats follow_regime` to compare."))


def explorer(runs: pd.DataFrame) -> None:
    """A static figure of every method across regimes, then a live explorer (ipywidgets)."""
    import ipywidgets as widgets

    def plot(dataset, metric, methods):
        sub = runs[(runs.dataset == dataset) & runs.method.isin(methods)]
        mean = sub.pivot_table(index="regime", columns="method", values=metric)
        mean = mean.loc[report._ordered(mean.index, profiles.REGIME_NAMES)]
        fig, ax = plt.subplots(figsize=(7, 3.2), constrained_layout=True)
        mean.plot(ax=ax, marker="o")
        ax.set(xlabel="regime", ylabel=report.METRICS[metric],
               title=f"{dataset}: {report.METRICS[metric]} across regimes (mean over orders)")
        ax.set_xticks(range(len(mean)), mean.index, rotation=20)
        return fig

    datasets = sorted(runs.dataset.unique())
    methods = [m for m in profiles.METHOD_NAMES if m in set(runs.method)]
    _show(plot(datasets[0], "acc", methods))
    dataset = widgets.Dropdown(options=datasets, description="dataset")
    metric = widgets.Dropdown(options=list(report.METRICS), description="metric")
    chosen = widgets.SelectMultiple(options=methods, value=tuple(methods), description="methods")
    out = widgets.Output()

    def update(_change):  # runs on user input only: nothing is drawn at execution time
        with out:
            out.clear_output(wait=True)
            if chosen.value:
                _show(plot(dataset.value, metric.value, list(chosen.value)))

    for control in (dataset, metric, chosen):
        control.observe(update, names="value")
    display(widgets.VBox([widgets.HBox([dataset, metric, chosen]), out]))
