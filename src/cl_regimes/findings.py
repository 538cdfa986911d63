"""Statistical verdicts on the paper's three findings, and the original study's analyses.

Inputs are the tidy tables of ``results.load``: ``runs`` (one row per run) and ``tasks``
(one row per task of a run). Every analysis runs within one variant and one ``bn_stats``
setting; a replicate is an (order, seed) pair, called an order below. Outputs are numbers:
:class:`Verdict` dataclasses and numeric DataFrames (no formatting, no plotting).

Each finding is a permutation test whose null makes the regime labels exchangeable within
blocks that share everything else (the order, and for findings 2-3 the method), so the test
cannot be passed by run-to-run noise (finding 1) or by level differences between methods
(findings 2-3). ``p = (1 + #{permuted >= observed}) / (1 + n_permutations)``; a finding is
"supported" when p < level. Effect sizes come with percentile bootstrap intervals over orders.

The ``original_*`` functions reproduce the original study's analyses as its scripts ran them,
to be shown beside the tests, not as tests.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from cl_regimes.config import ConfigError

DEPTH = {
    "head": 0,
    "from_layer4": 1,
    "from_layer3": 2,
    "from_layer2": 3,
    "from_layer1": 4,
    "full": 5,
}  # the nested regimes; bn_affine is not nested and has no depth
PAPER_METHODS = ("ewc", "lwf", "si", "gem")  # finetune and joint are references
ORIGINAL_REGIMES = ("head", "from_layer4", "from_layer3", "from_layer2", "from_layer1", "full")
CHANCE_MARGIN = 0.05  # absolute accuracy above 1 / classes_per_task that counts as learning
REPLICATE = ["order", "seed"]
RUN_KEYS = ["dataset", "regime", "method", *REPLICATE]
_CHUNK = 500  # permutations per vectorised batch (bounds memory)


@dataclass
class Verdict:
    """A finding's test in one dataset (or "pooled" over datasets) and its effect sizes."""

    finding: int
    dataset: str
    claim: str
    null: str
    statistic: str
    observed: float
    p_value: float
    n_permutations: int
    level: float
    verdict: str  # "supported", "not supported" or "not testable"
    n_orders: int
    effects: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # regime or method -> reason
    detail: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def supported(self) -> bool | None:
        return None if self.verdict == "not testable" else self.verdict == "supported"

    def headline(self) -> str:
        """The verdict in one short sentence: claim, verdict and p-value."""
        text = f"Finding {self.finding} ({self.claim}): {self.verdict}"
        return text + ("." if np.isnan(self.p_value) else f" (permutation p {self.p_text}).")

    @property
    def p_text(self) -> str:
        """ "= 0.019", or "< 0.001" below what three decimals show."""
        return "< 0.001" if self.p_value < 0.001 else f"= {self.p_value:.3f}"

    def sentence(self) -> str:
        """The verdict in words: claim, verdict, statistic, p-value, effects, exclusions."""
        text = f"Finding {self.finding} ({self.claim}; {self.dataset}): {self.verdict}."
        if self.verdict != "not testable":
            effects = "; ".join(
                f"{k} {v:.3f}"
                + (
                    f" [{self.intervals[k][0]:.3f}, {self.intervals[k][1]:.3f}]"
                    if k in self.intervals
                    else ""
                )
                for k, v in self.effects.items()
            )
            text += (
                f" Null: {self.null}. Statistic: {self.statistic} = {self.observed:.3f}, "
                f"permutation p {self.p_text} ({self.n_permutations} permutations, "
                f"{self.n_orders} orders, level {self.level})"
                + (f"; {effects} (95% bootstrap intervals)" if effects else "")
                + "."
            )
        if self.excluded:
            text += " Excluded: " + "; ".join(f"{k} ({v})" for k, v in self.excluded.items()) + "."
        return text


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """One numeric row per verdict: effects as columns, intervals as ``<name>_lo/_hi``."""
    rows = []
    for v in verdicts:
        row = {
            k: getattr(v, k)
            for k in (
                "finding",
                "dataset",
                "claim",
                "statistic",
                "observed",
                "p_value",
                "n_permutations",
                "level",
                "verdict",
                "n_orders",
            )
        }
        row |= v.effects
        for name, (lo, hi) in v.intervals.items():
            row |= {f"{name}_lo": lo, f"{name}_hi": hi}
        rows.append(row | {"excluded": ", ".join(v.excluded)})
    return pd.DataFrame(rows)


# ---- shared machinery ------------------------------------------------------------------------


def _scope(df: pd.DataFrame, variant: str = "", bn_stats: str | None = None) -> pd.DataFrame:
    """The rows of one variant and one bn_stats setting (the only one present if None)."""
    if "variant" in df:
        df = df[df.variant.fillna("") == variant]
    if bn_stats is not None:
        df = df[df.bn_stats == bn_stats]
    elif df.bn_stats.nunique() > 1:
        raise ConfigError(
            f"records hold bn_stats {sorted(df.bn_stats.unique())}; pass "
            "bn_stats= to analyse one setting at a time"
        )
    return df


def _p_value(observed: float, permuted: np.ndarray) -> float:
    tol = 1e-12 * max(1.0, abs(observed))  # the identity permutation must count as >=
    return float((1 + np.sum(permuted >= observed - tol)) / (1 + len(permuted)))


def _interval(draws: np.ndarray) -> tuple[float, float]:
    draws = np.asarray(draws, float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return (np.nan, np.nan)
    return tuple(float(q) for q in np.quantile(draws, [0.025, 0.975]))


def _permuted(rng, n: int, blocks: int, size: int, statistic) -> np.ndarray:
    """``statistic(perms)`` over ``n`` draws of independent permutations of ``size`` labels
    within each of ``blocks`` blocks; perms has shape (draws, blocks, size)."""
    out = [
        statistic(rng.random((min(_CHUNK, n - i), blocks, size)).argsort(-1))
        for i in range(0, n, _CHUNK)
    ]
    return np.concatenate(out) if out else np.empty(0)


def _signs(x: np.ndarray) -> np.ndarray:
    """Signs of x[..., i] - x[..., j] over the pairs i < j of the last axis."""
    i, j = np.triu_indices(x.shape[-1], 1)
    return np.sign(x[..., i] - x[..., j])


def _tau_b(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Kendall tau-b from pair signs (broadcast): (concordant - discordant) over the root of
    the untied pair counts; nan when a side is constant."""
    den = np.sqrt((s1 * s1).sum(-1) * (s2 * s2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (s1 * s2).sum(-1) / den, np.nan)


def _tested(
    finding,
    dataset,
    texts,
    observed,
    permuted,
    n_orders,
    level,
    effects,
    intervals,
    excluded,
    detail,
) -> Verdict:
    """A verdict from an observed statistic and its permutation draws (one-sided: large)."""
    p = _p_value(observed, permuted)
    return Verdict(
        finding,
        dataset,
        *texts,
        float(observed),
        p,
        len(permuted),
        level,
        "supported" if p < level else "not supported",
        n_orders,
        effects,
        intervals,
        excluded,
        detail,
    )


def _untestable(finding, dataset, texts, level, excluded) -> Verdict:
    return Verdict(
        finding, dataset, *texts, np.nan, np.nan, 0, level, "not testable", 0, excluded=excluded
    )


# ---- chance ----------------------------------------------------------------------------------


def chance_regimes(
    runs: pd.DataFrame,
    margin: float = CHANCE_MARGIN,
    *,
    methods=PAPER_METHODS,
    variant: str = "",
    bn_stats: str | None = None,
) -> pd.DataFrame:
    """Per dataset and regime: mean over the methods' runs of mean(diag R), the accuracy on
    each task right after training it; ``at_chance`` when it is within ``margin`` (absolute)
    of 1 / classes_per_task. An absolute margin, not a significance test: with many runs a
    test calls 0.51 on binary tasks "above chance", yet such rankings are still noise.

    Columns: dataset, regime, diag_acc, chance, n_runs, at_chance."""
    df = _scope(runs, variant, bn_stats)
    df = df[df.method.isin(methods)]
    df = df.assign(
        diag_acc=[float(np.mean(np.diag(np.asarray(R)))) for R in df.R],
        chance=1.0 / df.classes_per_task.astype(float),
    )
    out = df.groupby(["dataset", "regime"], sort=False).agg(
        diag_acc=("diag_acc", "mean"), chance=("chance", "mean"), n_runs=("acc", "size")
    )
    out = out.reset_index()
    return out.assign(at_chance=out.diag_acc <= out.chance + margin)


def _chance_excluded(runs, margin, methods) -> dict[str, dict[str, str]]:
    """dataset -> {regime: reason} for the regimes at chance (none if margin is None)."""
    if margin is None or runs.empty:
        return {}
    table = chance_regimes(runs, margin, methods=methods)
    return {
        d: {
            r.regime: f"at chance: mean diagonal accuracy {r.diag_acc:.3f} within "
            f"{margin} of chance {r.chance:.3f}"
            for r in g[g.at_chance].itertuples()
        }
        for d, g in table.groupby("dataset", sort=False)
    }


# ---- finding 1 -------------------------------------------------------------------------------

TEXTS_1 = (
    "the ranking of the methods by ACC changes across regimes",  # claim, null, statistic
    "every non-chance regime has the same expected ranking of the methods: within an "
    "order the regime labels are exchangeable, and regime differences are run noise",
    "sum over regimes and methods of the squared deviation of the regime's mean rank "
    "(over orders) from the method's mean rank over all regimes",
)


def _acc_array(sub: pd.DataFrame, regimes, methods):
    """ACC as an (orders, regimes, methods) array over the orders complete in every cell."""
    table = sub.pivot_table(index=REPLICATE, columns=["regime", "method"], values="acc")
    table = table.reindex(columns=pd.MultiIndex.from_product([regimes, methods])).dropna()
    return table.to_numpy().reshape(len(table), len(regimes), len(methods))


def _interaction(ranks: np.ndarray, rng, n_permutations: int):
    """Observed and permuted interaction statistic of ranks (orders, regimes, methods),
    regime labels permuted independently within each order."""
    c = ranks - ranks.mean((0, 1))  # the common mean ranks do not change under permutation
    rows = np.arange(len(c))[None, :, None]
    permuted = _permuted(
        rng, n_permutations, *c.shape[:2], lambda p: (c[rows, p].mean(1) ** 2).sum((1, 2))
    )
    return float((c.mean(0) ** 2).sum()), permuted


def _agreement(acc: np.ndarray, idx: np.ndarray):
    """Kendall tau between regimes in the same order (b, per order) and between orders in the
    same regime (W, order x order), with their bootstrap draws over orders ``idx``."""
    s = _signs(acc)  # (orders, regimes, pairs of methods)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        iu = np.triu_indices(s.shape[1], 1)
        b = np.nanmean(_tau_b(s[:, :, None], s[:, None, :])[:, iu[0], iu[1]], 1)
        W = np.nanmean(_tau_b(s[:, None], s[None, :]), -1)
        n = len(acc)
        upper = np.triu(np.ones((n, n), bool), 1)
        Wb = W[idx[:, :, None], idx[:, None, :]]
        valid = upper & (idx[:, :, None] != idx[:, None, :]) & np.isfinite(Wb)
        within = np.where(valid, Wb, 0).sum((1, 2)) / valid.sum((1, 2))
        return (np.nanmean(b), np.nanmean(W[upper]), np.nanmean(b[idx], 1), within)


def finding_ranking(
    runs: pd.DataFrame,
    *,
    methods=PAPER_METHODS,
    margin: float | None = CHANCE_MARGIN,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = 0.05,
    n_permutations: int = 2000,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 1 as a method x regime interaction test, per dataset and pooled.

    Within each order and regime the methods are ranked by ACC; the statistic (STAT_1) is 0
    when every regime has the same mean ranks. Its null distribution permutes the regime
    labels within each order (orders are blocks: they share the task sequence), which keeps
    the methods' main effect and tests only regime-specific rankings. Pooled: the sum of the
    per-dataset statistics, permutations independent per dataset. Regimes at chance (see
    ``chance_regimes``; ``margin=None`` keeps them) are excluded: their expected ranking is
    flat, which the test would report as a change of ranking that says nothing about methods.
    (Likewise a regime whose rankings are only noisier has mean ranks pulled to the middle,
    and counts as a change: the test is about expected ranks, not about noise levels.)

    Effects: tau_between (mean Kendall tau between regimes' rankings in the same order),
    tau_within (the noise ceiling: between orders in the same regime) and tau_gap = within -
    between, with bootstrap intervals over orders. Detail: dataset, regime, method, mean_acc,
    mean_rank (1 = best), common_rank (mean over regimes), deviation."""
    runs = _scope(runs, variant, bn_stats)
    runs = runs[runs.method.isin(methods)]
    chance = _chance_excluded(runs, margin, methods)
    verdicts, parts = [], []
    for k, (dataset, sub) in enumerate(runs.groupby("dataset", sort=False)):
        excluded = dict(chance.get(dataset, {}))
        regimes = [r for r in pd.unique(sub.regime) if r not in excluded]
        cells = set(zip(sub.regime, sub.method))
        kept = [m for m in methods if all((r, m) in cells for r in regimes)]
        excluded |= {m: "no runs in some regime" for m in sorted(set(sub.method) - set(kept))}
        acc = _acc_array(sub, regimes, kept)
        if len(regimes) < 2 or len(acc) < 2 or len(kept) < 3:
            verdicts.append(_untestable(1, dataset, TEXTS_1, level, excluded))
            continue
        rng = np.random.default_rng([seed, k])
        ranks = stats.rankdata(-acc, axis=-1)
        observed, permuted = _interaction(ranks, rng, n_permutations)
        idx = rng.integers(0, len(acc), (n_boot, len(acc)))
        between, within, boot_b, boot_w = _agreement(acc, idx)
        mean_rank, common = ranks.mean(0), np.tile(ranks.mean((0, 1)), len(regimes))
        detail = pd.DataFrame(
            {
                "dataset": dataset,
                "regime": np.repeat(regimes, len(kept)),
                "method": np.tile(kept, len(regimes)),
                "mean_acc": acc.mean(0).ravel(),
                "mean_rank": mean_rank.ravel(),
                "common_rank": common,
                "deviation": mean_rank.ravel() - common,
            }
        )
        part = (observed, permuted, between, within, boot_b, boot_w, len(acc))
        parts.append(part)
        verdicts.append(_ranking_verdict(dataset, *part, level, excluded, detail))
    if parts:  # sums of statistics, means of effects (datasets weigh the same)
        obs, perm, *effects, n = zip(*parts)
        verdicts.append(
            _ranking_verdict(
                "pooled",
                sum(obs),
                np.sum(perm, 0),
                *(np.mean(e, 0) for e in effects),
                sum(n),
                level,
                {f"{v.dataset}/{k}": r for v in verdicts for k, r in v.excluded.items()},
                pd.concat([v.detail for v in verdicts if len(v.detail)], ignore_index=True),
            )
        )
    else:
        verdicts.append(_untestable(1, "pooled", TEXTS_1, level, {}))
    return verdicts


def _ranking_verdict(
    dataset, observed, permuted, between, within, boot_b, boot_w, n, level, excluded, detail
) -> Verdict:
    effects = {
        "tau_between": float(between),
        "tau_within": float(within),
        "tau_gap": float(within - between),
    }
    intervals = {
        "tau_between": _interval(boot_b),
        "tau_within": _interval(boot_w),
        "tau_gap": _interval(boot_w - boot_b),
    }
    return _tested(
        1, dataset, TEXTS_1, observed, permuted, n, level, effects, intervals, excluded, detail
    )


def ranking_swaps(
    runs: pd.DataFrame,
    *,
    methods=PAPER_METHODS,
    margin: float | None = CHANCE_MARGIN,
    variant: str = "",
    bn_stats: str | None = None,
) -> pd.DataFrame:
    """Per pair of (non-chance) regimes of a dataset, the pairs of methods whose order by mean
    ACC over orders differs: method_1 is ahead in regime_a (gap_a = ACC(method_1) -
    ACC(method_2) > 0) and behind in regime_b (gap_b < 0).

    Columns: dataset, regime_a, regime_b, method_1, method_2, gap_a, gap_b."""
    runs = _scope(runs, variant, bn_stats)
    runs = runs[runs.method.isin(methods)]
    chance = _chance_excluded(runs, margin, methods)
    rows = []
    for dataset, sub in runs.groupby("dataset", sort=False):
        means = sub.pivot_table(index="regime", columns="method", values="acc")
        means = means.drop(index=list(chance.get(dataset, {})))
        means = means.loc[[r for r in pd.unique(sub.regime) if r in means.index]]
        for a, b in itertools.combinations(means.index, 2):
            for m1, m2 in itertools.permutations(means.columns, 2):
                gap_a = means.at[a, m1] - means.at[a, m2]
                gap_b = means.at[b, m1] - means.at[b, m2]
                if gap_a > 0 and gap_b < 0:
                    rows.append((dataset, a, b, m1, m2, gap_a, gap_b))
    return pd.DataFrame(
        rows, columns=["dataset", "regime_a", "regime_b", "method_1", "method_2", "gap_a", "gap_b"]
    )


# ---- findings 2 and 3: depth trends within each method ---------------------------------------


def _spearman_trend(values: np.ndarray, depths, rng, n_permutations: int, idx: np.ndarray):
    """Spearman rho of depth with values (orders, regimes) over all cells; its permutation
    draws (regimes permuted within each order) and bootstrap draws (orders resampled)."""
    n, d = values.shape
    rd = stats.rankdata(depths) - (d + 1) / 2
    rv = stats.rankdata(values).reshape(n, d)
    rv -= rv.mean()
    den = np.sqrt((rv**2).sum() * n * (rd**2).sum())
    if den == 0:
        return np.nan, np.full(n_permutations, np.nan), np.full(len(idx), np.nan)
    rows = np.arange(n)[None, :, None]
    permuted = _permuted(rng, n_permutations, n, d, lambda p: (rv[rows, p] * rd).sum((1, 2)))
    boot = stats.rankdata(values[idx].reshape(len(idx), -1), axis=1)
    boot -= boot.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (boot * np.tile(rd, n)).sum(1) / np.sqrt((boot**2).sum(1) * n * (rd**2).sum())
    return float((rv * rd).sum() / den), permuted / den, boot


def _depth_test(
    values: pd.DataFrame,
    column: str,
    finding: int,
    texts,
    depth,
    methods,
    level,
    n_permutations,
    n_boot,
    seed,
) -> list[Verdict]:
    """Per dataset: each method's Spearman rho of depth with ``column`` over its runs in the
    nested regimes; statistic = mean rho over methods, one-sided permutation p (regimes
    permuted within (method, order) blocks). Pooled: mean over datasets of that statistic."""
    values = values[values.method.isin(methods) & values.regime.isin(list(depth))]
    verdicts, parts = [], []
    for k, (dataset, sub) in enumerate(values.groupby("dataset", sort=False)):
        rng = np.random.default_rng([seed, k])
        table = sub.pivot_table(index=REPLICATE, columns=["method", "regime"], values=column)
        blocks, excluded = {}, {}
        for m in methods:
            regimes = sorted(set(sub.regime[sub.method == m]), key=depth.get)
            if len(regimes) < 2:
                excluded[m] = "runs in fewer than 2 nested regimes"
                continue
            blocks[m] = regimes
        if not blocks:
            verdicts.append(_untestable(finding, dataset, texts, level, excluded))
            continue
        cols = [(m, r) for m, regimes in blocks.items() for r in regimes]
        table = table.reindex(columns=pd.MultiIndex.from_tuples(cols)).dropna()
        n = len(table)
        idx = rng.integers(0, max(n, 1), (n_boot, n))
        rows = []
        for m, regimes in blocks.items():
            if n * len(regimes) < 3:
                excluded[m] = "fewer than 3 complete runs"
                continue
            rho, perm, boot = _spearman_trend(
                table[m][regimes].to_numpy(), [depth[r] for r in regimes], rng, n_permutations, idx
            )
            if np.isnan(rho):
                excluded[m] = f"constant {column}"
                continue
            rows.append((m, rho, perm, boot, len(regimes)))
        if not rows:
            verdicts.append(_untestable(finding, dataset, texts, level, excluded))
            continue
        detail = pd.DataFrame(
            [
                (dataset, m, rho, *_interval(boot), _p_value(rho, perm), d, n)
                for m, rho, perm, boot, d in rows
            ],
            columns=[
                "dataset",
                "method",
                "rho",
                "rho_lo",
                "rho_hi",
                "p_value",
                "n_regimes",
                "n_orders",
            ],
        )
        observed = float(detail.rho.mean())
        permuted = np.mean([r[2] for r in rows], 0)
        boot = np.nanmean([r[3] for r in rows], 0)
        parts.append((observed, permuted, boot, n, detail))
        verdicts.append(
            _tested(
                finding,
                dataset,
                texts,
                observed,
                permuted,
                n,
                level,
                {"rho_mean": observed},
                {"rho_mean": _interval(boot)},
                excluded,
                detail,
            )
        )
    if parts:
        obs, perm, boot, n, det = zip(*parts)
        excluded = {f"{v.dataset}/{k}": r for v in verdicts for k, r in v.excluded.items()}
        observed, boot = float(np.mean(obs)), np.mean(boot, 0)
        verdicts.append(
            _tested(
                finding,
                "pooled",
                texts,
                observed,
                np.mean(perm, 0),
                sum(n),
                level,
                {"rho_mean": observed},
                {"rho_mean": _interval(boot)},
                excluded,
                pd.concat(det, ignore_index=True),
            )
        )
    else:
        verdicts.append(_untestable(finding, "pooled", texts, level, {}))
    return verdicts


def run_updates(
    tasks: pd.DataFrame, update: str = "u", *, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """One row per run: ``update`` = mean over the run's tasks of ``tasks[update]`` and
    ``forgetting`` = mean over its tasks but the last (the run's forgetting).

    Columns: dataset, regime, method, order, seed, update, forgetting."""
    tasks = _scope(tasks, variant, bn_stats)
    return (
        tasks.groupby(RUN_KEYS, sort=False)
        .agg(update=(update, "mean"), forgetting=("forgetting", "mean"))
        .reset_index()
    )


def finding_depth(
    tasks: pd.DataFrame,
    *,
    update: str = "u",
    methods=PAPER_METHODS,
    depth=DEPTH,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = 0.05,
    n_permutations: int = 2000,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 2, per dataset and pooled, for the run's mean update and its forgetting.

    Within each method: Spearman rho of regime depth with the run's value over that method's
    runs in the nested regimes (orders as replicates). Combined: mean rho over methods, so
    that level differences between methods (orders of magnitude in u) cannot make a trend.
    One-sided permutation test (trend > 0), regimes permuted within (method, order) blocks.
    Rank-based, so log or raw u give the same numbers. Orders missing a (method, regime)
    cell are dropped. Detail: dataset, method, rho, rho_lo, rho_hi, p_value, n_regimes,
    n_orders."""
    per_run = run_updates(tasks, update, variant=variant, bn_stats=bn_stats)
    common = (depth, methods, level, n_permutations, n_boot, seed)
    return [
        *_depth_test(per_run, "update", 2, _texts_2("larger updates", f"mean {update}"), *common),
        *_depth_test(per_run, "forgetting", 2, _texts_2("more forgetting", "forgetting"), *common),
    ]


def _texts_2(outcome: str, value: str) -> tuple[str, str, str]:
    return (
        f"deeper regimes give {outcome} within each method",
        f"within every method, the run's {value} does not depend on the regime "
        "(regimes exchangeable given method and order)",
        f"mean over methods of Spearman rho(depth, run {value})",
    )


def _rowwise_correlations(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson, Spearman and Kendall tau-b of each row of x with the same row of y (nan
    where a row is constant, as scipy)."""
    constant = (np.ptp(x, 1) == 0) | (np.ptp(y, 1) == 0) | (x.shape[1] < 2)

    def pearson(a, b):
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
        return np.where(constant, np.nan, np.clip(r, -1, 1))

    return {
        "pearson": pearson(x, y),
        "spearman": pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)),
        "kendall": np.where(constant, np.nan, _tau_b(_signs(x), _signs(y))),
    }


def coupling_correlations(
    tasks: pd.DataFrame, update: str = "u", *, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """Per run: Pearson, Spearman and Kendall correlation of the per-task ``update`` (raw)
    with the per-task forgetting, over its tasks but the last (forgetting is nan there).

    Columns: dataset, regime, method, order, seed, n_tasks, pearson, spearman, kendall."""
    t = _scope(tasks, variant, bn_stats).dropna(subset=["forgetting", update])
    t = t.sort_values([*RUN_KEYS, "position"])
    t = t.assign(n_tasks=t.groupby(RUN_KEYS).position.transform("size"))
    frames = []
    for n, g in t.groupby("n_tasks"):
        x, y = (g[c].to_numpy(float).reshape(-1, n) for c in (update, "forgetting"))
        frames.append(g[[*RUN_KEYS, "n_tasks"]].iloc[::n].assign(**_rowwise_correlations(x, y)))
    columns = [*RUN_KEYS, "n_tasks", "pearson", "spearman", "kendall"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def finding_coupling(
    tasks: pd.DataFrame,
    *,
    update: str = "u",
    correlation: str = "spearman",
    methods=PAPER_METHODS,
    depth=DEPTH,
    variant: str = "",
    bn_stats: str | None = None,
    level: float = 0.05,
    n_permutations: int = 2000,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Verdict]:
    """Finding 3, per dataset and pooled: the run's correlation (default Spearman, which is
    the same for log or raw u) of per-task update with per-task forgetting, tested for a
    depth trend within each method exactly as finding 2 (mean rho over methods, regimes
    permuted within (method, order) blocks, one-sided). A run whose forgetting or update is
    constant has no relationship: its correlation counts as 0. Runs with fewer than 3 tasks
    before the last are dropped. Detail as in finding 2."""
    corr = coupling_correlations(tasks, update, variant=variant, bn_stats=bn_stats)
    corr = corr[corr.n_tasks >= 3].fillna({correlation: 0.0})
    texts = (
        "the update-forgetting relationship strengthens with depth within each method",
        "within every method, the run's update-forgetting correlation does not depend on "
        "the regime (regimes exchangeable given method and order)",
        f"mean over methods of Spearman rho(depth, run {correlation} correlation of "
        f"{update} with forgetting)",
    )
    return _depth_test(
        corr, correlation, 3, texts, depth, methods, level, n_permutations, n_boot, seed
    )


# ---- the original code's quirks ---------------------------------------------------------


def with_variant(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The profile's own records with those of ``variant`` in their place where it has
    some (same dataset, regime and method), labelled as the profile's (variant "")."""
    keys = ["dataset", "regime", "method"]
    own, other = frame[frame.variant == ""], frame[frame.variant == variant]
    replaced = own.set_index(keys).index.isin(other.set_index(keys).index)
    return pd.concat([own[~replaced], other.assign(variant="")], ignore_index=True)


def survival(runs: pd.DataFrame, tasks: pd.DataFrame, variant: str, **options) -> pd.DataFrame:
    """The pooled verdicts of the three findings over the regimes ``variant`` has records in,
    from the profile's own runs and from the runs of ``variant`` in their place.

    Columns: variant, regimes, runs of ("profile" or the variant), finding, claim, p_value,
    verdict. ``options`` go to the tests (n_permutations, level...)."""
    covered = list(pd.unique(runs[runs.variant == variant].regime))
    rows = []
    for label, r, t in (
        ("profile", runs, tasks),
        (variant, with_variant(runs, variant), with_variant(tasks, variant)),
    ):
        r, t = (
            r[(r.variant == "") & r.regime.isin(covered)],
            t[(t.variant == "") & t.regime.isin(covered)],
        )
        verdicts = (
            finding_ranking(r, **options)
            + finding_depth(t, **options)
            + finding_coupling(t, **options)
        )
        rows += [
            {
                "variant": variant,
                "regimes": ", ".join(covered),
                "runs of": label,
                "finding": v.finding,
                "claim": v.claim,
                "p_value": v.p_value,
                "verdict": v.verdict,
            }
            for v in verdicts
            if v.dataset == "pooled"
        ]
    return pd.DataFrame(rows)


# ---- the original study's analyses, as its scripts ran them -----------------------------------


@dataclass
class OriginalKendall:
    """per_order: dataset, order, seed, tau (mean over regime pairs; nan if any pair is);
    summary: dataset, mean_tau, std_tau (np.std, ddof=0), n_orders (non-nan), n_nan_orders;
    matrices: dataset -> regime x regime tau averaged over orders (nanmean; diagonal 1)."""

    per_order: pd.DataFrame
    summary: pd.DataFrame
    matrices: dict[str, pd.DataFrame]


def original_kendall(
    runs: pd.DataFrame, *, variant: str = "", bn_stats: str | None = None
) -> OriginalKendall:
    """As in the original: per order, Kendall tau-b of the methods' ACC between every pair of
    regimes with >= 2 common methods, averaged with np.mean; then mean and np.std over the
    orders whose mean is not nan."""
    runs = _scope(runs, variant, bn_stats)
    runs = runs[runs.regime.isin(ORIGINAL_REGIMES) & runs.method.isin(PAPER_METHODS)]
    orders, pairs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (dataset, order, seed), g in runs.groupby(["dataset", *REPLICATE], sort=False):
            acc = g.pivot_table(index="regime", columns="method", values="acc")
            taus = []
            for a, b in itertools.combinations([r for r in ORIGINAL_REGIMES if r in acc.index], 2):
                common = acc.loc[[a, b]].dropna(axis=1)
                if common.shape[1] >= 2:
                    taus.append(stats.kendalltau(common.loc[a], common.loc[b])[0])
                    pairs.append((dataset, a, b, taus[-1]))
            orders.append((dataset, order, seed, np.mean(taus) if taus else np.nan))
    per_order = pd.DataFrame(orders, columns=["dataset", "order", "seed", "tau"])
    summary = [
        (d, np.mean(v), np.std(v), len(v), int(g.tau.isna().sum()))
        for d, g in per_order.groupby("dataset", sort=False)
        for v in [g.tau.dropna().to_numpy()]
    ]
    pairs = pd.DataFrame(pairs, columns=["dataset", "a", "b", "tau"])
    matrices = {}
    for dataset, g in pairs.groupby("dataset", sort=False):
        names = [r for r in ORIGINAL_REGIMES if r in set(g.a) | set(g.b)]
        m = pd.DataFrame(np.where(np.eye(len(names)), 1.0, np.nan), index=names, columns=names)
        for (a, b), tau in g.groupby(["a", "b"]).tau.mean().items():  # pandas mean: nanmean
            m.loc[a, b] = m.loc[b, a] = tau
        matrices[dataset] = m
    return OriginalKendall(
        per_order,
        pd.DataFrame(
            summary, columns=["dataset", "mean_tau", "std_tau", "n_orders", "n_nan_orders"]
        ),
        matrices,
    )


def _original_order(df: pd.DataFrame, methods) -> pd.DataFrame:
    rank = {
        **{m: i for i, m in enumerate(methods)},
        **{r: i for i, r in enumerate(ORIGINAL_REGIMES)},
    }
    return df.sort_values(
        ["dataset", "method", "regime"],
        kind="stable",
        key=lambda s: s if s.name == "dataset" else s.map(rank),
    ).reset_index(drop=True)


def original_update_forgetting(
    tasks: pd.DataFrame, *, methods=PAPER_METHODS, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """As in the original: per run in from_layer4 ... full (head omitted), Pearson, Spearman
    and Kendall of the raw per-task orig_u with per-task forgetting over the first T-1 tasks;
    nan correlations dropped; mean over orders per (dataset, method, regime), and over all
    (method, order) values per regime as method "all".

    Columns: dataset, method, regime, pearson, spearman, kendall, n_runs."""
    corr = coupling_correlations(tasks, "orig_u", variant=variant, bn_stats=bn_stats)
    corr = corr[corr.regime.isin(ORIGINAL_REGIMES[1:]) & corr.method.isin(methods)]
    agg = {c: (c, "mean") for c in ("pearson", "spearman", "kendall")}  # mean skips nan
    out = (
        pd.concat([corr, corr.assign(method="all")])
        .groupby(["dataset", "method", "regime"])
        .agg(**agg, n_runs=("n_tasks", "size"))
        .reset_index()
    )
    return _original_order(out, [*methods, "all"])


def original_depth_u(
    tasks: pd.DataFrame, *, methods=PAPER_METHODS, variant: str = "", bn_stats: str | None = None
) -> pd.DataFrame:
    """As in the original: per run in from_layer4 ... full, the mean of orig_u over the first
    T-1 tasks; then mean and np.std (ddof=0) over orders.

    Columns: dataset, method, regime, mean_u, std_u, n_runs."""
    t = _scope(tasks, variant, bn_stats)
    t = t[t.regime.isin(ORIGINAL_REGIMES[1:]) & t.method.isin(methods)]
    t = t[t.position < t.groupby(RUN_KEYS).position.transform("max")]
    per_run = t.groupby(RUN_KEYS).orig_u.mean().reset_index()
    out = (
        per_run.groupby(["dataset", "method", "regime"])
        .orig_u.agg(mean_u="mean", std_u=lambda v: np.std(v.to_numpy()), n_runs="size")
        .reset_index()
    )
    return _original_order(out, methods)
