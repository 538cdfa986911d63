"""A regime card: one method's results stratified by fine-tuning regime, never pooled.

The method (a built-in one, or a plug-in: ``methods.load``) is swept under every regime
of a profile beside the methods it is ranked among (``COMPARED``: the paper's four and
the field's four replay methods), reusing the records that exist. The card gives, per
dataset and regime, its mean ACC and forgetting over orders with 95% t-intervals, its
rank among those methods and itself, and the rank-change test of finding 1 over them all,
restricted to the pairs that involve it. Cells at
chance are flagged and left out of the ranks and the test; a pair that cannot be tested
says why; the smallest crossing the test would have seen is given. ``plan`` checks every
input before anything trains; a card is named by everything that makes it, so that none
replaces another.

An outside method's records go to ``<results>/yours/``, beside the profiles' folders and
apart from them: the command and the notebook "Evaluate your method" read and write the
same records, and the book's chapters, which read ``<results>/<profile>/``, never count
them.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes import card_page, findings, methods, profiles, provenance, regimes, results, sweep
from cl_regimes.config import ConfigError
from cl_regimes.findings.common import PAPER_METHODS
from cl_regimes.results import Run

BOUNDS = {"acc": (0.0, 1.0), "forgetting": (-1.0, 1.0)}  # the values each metric can take
COMPARED = (*PAPER_METHODS, *profiles.REPLAY)  # the methods a card ranks its method among
OUTSIDE = "yours"  # the folder, under the results folder, of outside methods' records


@dataclass
class Plan:
    """A card's inputs, checked: its method's registered name, its two sweeps (the paper's
    methods with the profile's settings; the method with its own), each its runs and
    their results folder, the record path of every run it compares, its file name and
    the method's code (``provenance.method_source``; None for the library's)."""

    method: str
    profile: str
    scenario: str
    variant: str  # the method's settings that differ from the profile's ("" if none)
    label: str  # its runs' name in the card's tables: "ewc (ewc.lam=1.0)" beside the paper's
    sweeps: list[tuple[list[Run], Path]]
    stem: str
    source: dict | None = None

    @property
    def records(self) -> list[Path]:
        return [run.path(folder) for runs, folder in self.sweeps for run in runs]


@dataclass
class Card:
    """A written card: its files, the runs it compares, its table (``stratified``),
    finding 1's verdict and the pairs that involve the method (``rank_changes``)."""

    paths: dict[str, Path]
    runs: pd.DataFrame
    table: pd.DataFrame
    verdict: findings.Verdict
    pairs: pd.DataFrame


def plan(
    method: str,
    profile: str = "quick",
    results_dir="results",
    regimes_: list[str] | None = None,
    settings: list[str] | None = None,
    own_results=None,
    orders: list[int] | None = None,
) -> Plan:
    """Check everything a card needs before anything trains: the method, its ``settings``
    ("key=value": its own, and ``scenario=...`` for all), every run's configuration
    (ranges, the scenario each method applies to), the results folders and that an
    outside method's code can be read. ``method``'s records go to ``own_results``
    (default: ``<results_dir>/yours`` for an outside method, else ``results_dir``). The
    profile is resolved here, once: the sweeps below take its runs."""
    name = methods.load(method)
    source = provenance.method_source(name)
    prof = profiles.get_profile(profile)
    overrides = profiles.parse_overrides(settings)
    foreign = [k for k in overrides if not k.startswith(f"{name}.") and k != "scenario"]
    if foreign:
        raise ConfigError(
            f"card: --set takes {name}'s own settings ({name}.<setting>) and the scenario "
            f"only, not {', '.join(foreign)}: the methods it is compared with keep "
            "the profile's"
        )
    shared = {k: v for k, v in overrides.items() if k == "scenario"}  # every method's
    grid = dict(regimes=regimes_, orders=orders, variants=False)
    runs = [  # every value checked
        prof.grid(methods=list(chosen), overrides=values, **grid)
        for chosen, values in ((COMPARED, shared), ([name], overrides))
    ]
    own_results = own_results or Path(results_dir, OUTSIDE if source else "")
    folders = [Path(results_dir), Path(own_results)]
    for folder in folders:
        results.check_writable(folder)
    sweeps = list(zip(runs, folders))
    own, scenario = runs[1][0].variant, runs[1][0].config.scenario
    mine = results.variant_name({k: v for k, v in own.items() if k != "scenario"})
    chosen_regimes = [r for r in regimes.REGIMES if r in (regimes_ or ())]
    label = [
        name,
        mine,
        profile,
        scenario,
        "+".join(chosen_regimes) or "all-regimes",
        f"orders{'-'.join(map(str, sorted(orders)))}" if orders else "",
    ]
    return Plan(
        name,
        profile,
        scenario,
        results.variant_name(own) if own else "",
        f"{name} ({mine})" if name in COMPARED and mine else name,
        sweeps,
        "-".join(filter(None, label)),
        source,
    )


def pending(card: Plan, force: bool = False) -> list[Run]:
    """The runs the card still needs trained (with ``force``, every run of the method)."""
    return [
        run
        for k, (runs, folder) in enumerate(card.sweeps)
        for run, _ in sweep.pending(runs, folder, force and k == 1)[1]
    ]


def train(card: Plan, force: bool = False, **execution) -> pd.DataFrame:
    """Sweep what is missing (``force``: the method's runs anew, the paper methods' reused);
    the runs the card compares (``results.load``'s table), the method's named
    ``card.label``. An interrupt says what the card's sweeps together kept."""
    trained = 0
    for k, (runs, folder) in enumerate(card.sweeps):
        try:
            trained += len(
                sweep.sweep(runs, results_dir=folder, force=force and k == 1, **execution).trained
            )
        except sweep.SweepInterrupted as stop:
            later = sum(
                len(sweep.pending(r, f, force and j == 1)[1])
                for j, (r, f) in enumerate(card.sweeps)
                if j > k
            )
            raise sweep.SweepInterrupted(
                trained + stop.trained, stop.unfinished + later, stop.checkpoints
            ) from None
    paper, own = (results.load([r.path(f) for r in runs]) for runs, f in card.sweeps)
    return pd.concat([paper, own.assign(method=card.label)], ignore_index=True)


def _compared(runs: pd.DataFrame, method: str) -> tuple[str, ...]:
    """The compared methods that ``runs`` hold, and ``method``."""
    return tuple(m for m in dict.fromkeys((*COMPARED, method)) if m in set(runs.method))


def _chance(runs: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per dataset, regime and method: whether the cell is at chance (finding's rule,
    ``findings.chance_cells``), over the card's runs (each method's own variant). A table
    without ``R`` and ``chance`` (``results.load`` gives both) is not checked."""
    columns = ["dataset", "regime", "method", "diag_acc", "chance", "at_chance"]
    if not {"R", "chance"} <= set(runs):
        return pd.DataFrame(columns=columns).set_index(columns[:3])
    cells = findings.chance_cells(runs.assign(variant=""), methods=_compared(runs, method))
    return cells[columns].set_index(columns[:3])


def stratified(runs: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per dataset and regime (in depth order): the method's mean ACC and forgetting over
    orders with 95% t-intervals, the orders, whether it is at chance, and its ACC rank
    among the compared methods and itself that are above chance (1 = highest mean ACC;
    none when it is at chance: it learned too little for a rank to mean anything)."""
    chance = _chance(runs, method).at_chance
    rows = []
    for (dataset, regime), g in runs.groupby(["dataset", "regime"], sort=False):
        mine = g[g.method == method]
        if mine.empty:
            continue
        low = {m for m in g.method.unique() if chance.get((dataset, regime, m), False)}
        means = g[~g.method.isin(low)].groupby("method").acc.mean()
        row = {"dataset": dataset, "regime": regime, "orders": len(mine)}
        for metric in ("acc", "forgetting"):
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = _mean_ci(
                mine[metric], BOUNDS[metric]
            )
        row["at_chance"] = method in low
        row["rank"] = pd.NA if method in low else int(means.rank(ascending=False)[method])
        row["of"] = len(means)
        rows.append(row)
    table = pd.DataFrame(rows).astype({"rank": "Int64"})
    depth = {r: i for i, r in enumerate(regimes.REGIMES)}
    return table.sort_values(
        ["dataset", "regime"], key=lambda c: c.map(depth) if c.name == "regime" else c
    ).reset_index(drop=True)


def _mean_ci(values: pd.Series, bounds: tuple[float, float]) -> tuple[float, float, float]:
    """The mean and its 95% t-interval, cut to the values the metric can take."""
    v = values.to_numpy(float)
    if len(v) < 2:
        return float(v.mean()), np.nan, np.nan
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    low, high = bounds
    return float(v.mean()), float(max(low, v.mean() - half)), float(min(high, v.mean() + half))


def rank_changes(runs: pd.DataFrame, method: str) -> tuple[findings.Verdict, pd.DataFrame]:
    """Finding 1's test over the compared methods and ``method`` (pooled verdict), and one
    row per pair that involves it: its Holm p and whether, where, it crosses; or, for a
    pair that could not be tested, why (``untested``)."""
    runs = runs.assign(variant="")  # the card chose each method's variant
    chosen = _compared(runs, method)
    with warnings.catch_warnings():  # a gap of fewer than 2 orders has no spread: untested
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        verdict = findings.finding_ranking(runs, methods=chosen)[-1]
    columns = ["dataset", "method_1", "method_2", "p_holm", "crosses", "ahead_in", "behind_in"]
    tested = pd.DataFrame(columns=columns)
    if not verdict.detail.empty:
        detail = verdict.detail
        mine = detail[(detail.method_1 == method) | (detail.method_2 == method)]
        tested = mine.groupby(["dataset", "method_1", "method_2"], sort=False).agg(
            p_holm=("p_holm", "first"), crosses=("crosses", "first")
        )
        cross = findings.crossings(verdict).set_index(["dataset", "method_1", "method_2"])
        tested = tested.join(cross[["ahead_in", "behind_in"]]).fillna(
            {"ahead_in": "", "behind_in": ""}
        )
        tested = tested.reset_index()
    chance = _chance(runs, method).at_chance
    done = set(zip(tested.dataset, tested.method_1)) | set(zip(tested.dataset, tested.method_2))
    untested = [
        {"dataset": d, "method_1": other, "method_2": method, "untested": reason}
        for d in pd.unique(runs.dataset)
        for other in chosen
        if other != method and (d, other) not in done
        for reason in [_why_untested(runs[runs.dataset == d], chance, d, other, method)]
    ]
    pairs = pd.concat([tested.assign(untested=""), pd.DataFrame(untested)], ignore_index=True)
    return verdict, pairs.reindex(columns=[*columns, "untested"])


def _why_untested(runs, chance, dataset, other, method) -> str:
    """Why the pair (``other``, ``method``) has no test in ``dataset``: finding 1 needs it
    above chance, with ``MIN_ORDERS`` paired orders, in two regimes."""
    testable, reasons = [], []
    for regime in regimes.REGIMES:
        both = runs[(runs.regime == regime) & runs.method.isin([other, method])]
        if both.method.nunique() < 2:
            continue
        low = [m for m in (other, method) if chance.get((dataset, regime, m), False)]
        paired = both.groupby(["order", "seed"]).method.nunique().eq(2).sum()
        if low:
            reasons.append(f"{' and '.join(low)} at chance in {regime}")
        elif paired < findings.MIN_ORDERS:
            reasons.append(f"{paired} paired orders in {regime}")
        else:
            testable.append(regime)
    if len(testable) >= 2:
        return ""
    return (
        f"testable in {len(testable)} regime{'s' * (len(testable) != 1)}"
        f"{f' ({testable[0]})' if testable else ''}, needs 2 with both above chance and "
        f"{findings.MIN_ORDERS} orders: " + "; ".join(reasons)
    )


def figure(runs: pd.DataFrame, method: str, dataset: str):
    """ACC and forgetting by regime: the method with its 95% intervals (hollow where it is
    at chance), the compared methods' means as thin lines."""
    sub = runs[runs.dataset == dataset]
    order = [r for r in regimes.REGIMES if r in set(sub.regime)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    mine = stratified(sub, method).set_index("regime").reindex(order)
    for ax, metric in zip(axes, ("acc", "forgetting")):
        for other in [m for m in COMPARED if m in set(sub.method) and m != method]:
            means = sub[sub.method == other].groupby("regime")[metric].mean().reindex(order)
            ax.plot(order, means.to_numpy(), lw=1, alpha=0.6, label=other)
        err = np.abs(mine[[f"{metric}_lo", f"{metric}_hi"]].to_numpy().T - mine[metric].to_numpy())
        ax.errorbar(
            order, mine[metric], yerr=np.nan_to_num(err), color="k", lw=2.5, capsize=3, label=method
        )
        low = mine[mine.at_chance.astype(bool)]
        ax.plot(low.index, low[metric], "o", mfc="white", mec="k", label="at chance")
        ax.set_title(f"{dataset}: {'ACC' if metric == 'acc' else 'forgetting'}")
        ax.tick_params(axis="x", rotation=45)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside right", frameon=False)
    return fig


def chance_text(runs: pd.DataFrame, method: str) -> str:
    """The cells at chance, per dataset and regime, in Markdown ("" if none)."""
    low = _chance(runs, method).query("at_chance").reset_index()
    if low.empty:
        return ""
    lines = [
        f"**At chance** (accuracy on each task right after training it less than "
        f"{findings.MIN_EXCESS:.0%} of the way from chance to 1; left out of the ranks and "
        "of the rank-change test):",
        "",
    ]
    for (dataset, regime), g in low.groupby(["dataset", "regime"], sort=False, observed=True):
        cells = (
            f"{m} ({a:.2f}, chance {c:.2f})" for m, a, c in zip(g.method, g.diag_acc, g.chance)
        )
        lines.append(f"- {dataset} / {regime}: {', '.join(cells)}")
    return "\n".join(lines) + "\n"


def rank_text(method: str, verdict: findings.Verdict, pairs: pd.DataFrame) -> str:
    """Finding 1's verdict, the effect it would have detected, and the pairs that involve
    ``method`` (tested, or why not), in Markdown."""
    lines = [
        f"Finding 1's test over the compared methods and `{method}`: {verdict.verdict}"
        + ("" if np.isnan(verdict.p_value) else f" (p = {verdict.p_value:.3g})")
        + f". Null: {verdict.null}.",
        "",
        f"Detectable effect, at the noise and orders of these runs: {verdict.seen()}."
        if verdict.seen()
        else f"Detectable effect: none, the test could not run ({verdict.note}).",
        "",
    ]
    tested, untested = pairs[pairs.untested == ""], pairs[pairs.untested != ""]
    if len(tested):
        lines += [
            "| dataset | pair | Holm p (over pairs) | crosses | ahead in | behind in |",
            "|---|---|---:|---|---|---|",
        ]
        for r in tested.itertuples():
            lines.append(
                f"| {r.dataset} | {r.method_1} vs {r.method_2} | {r.p_holm:.3g} | "
                f"{'yes' if r.crosses else 'no'} | {r.ahead_in} | {r.behind_in} |"
            )
        lines.append("")
    lines += [
        f"- not tested, {r.dataset} {r.method_1} vs {r.method_2}: {r.untested}"
        for r in untested.itertuples()
    ]
    return "\n".join(lines) + "\n"


def write(
    method: str,
    profile: str = "quick",
    results_dir="results",
    output="cards",
    regimes_: list[str] | None = None,
    settings: list[str] | None = None,
    orders: list[int] | None = None,
    own_results=None,
    force: bool = False,
    **execution,
) -> Card:
    """``plan`` (and check ``output``) before anything trains, ``train`` (``force``: the
    method's runs anew), then write ``<output>/<stem>.md``, ``.html`` and one PNG per
    dataset, the stem naming the method, its settings, the profile, scenario, regimes and
    orders (``Plan.stem``)."""
    card = plan(method, profile, results_dir, regimes_, settings, own_results, orders)
    results.check_writable(output, "card folder", "--output")
    out = Path(output)
    runs = train(card, force, **execution)
    table = stratified(runs, card.label)
    verdict, pairs = rank_changes(runs, card.label)
    paths, pngs = {}, []
    for dataset in pd.unique(table.dataset):
        fig = figure(runs, card.label, dataset)
        png = out / f"{card.stem}-{dataset}.png"
        fig.savefig(png, dpi=120)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120)
        plt.close(fig)
        pngs.append((png, base64.b64encode(buffer.getvalue()).decode()))
    chance, ranks = chance_text(runs, card.label), rank_text(card.label, verdict, pairs)
    text = card_page.markdown(card, runs, table, chance, ranks, [p.name for p, _ in pngs])
    paths["markdown"] = out / f"{card.stem}.md"
    paths["markdown"].write_text(text)
    paths["html"] = out / f"{card.stem}.html"
    paths["html"].write_text(card_page.html(text, pngs))
    paths |= {f"figure ({p.stem})": p for p, _ in pngs}
    return Card(paths, runs, table, verdict, pairs)
