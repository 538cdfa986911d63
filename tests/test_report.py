"""The book's tables: what a reader sees of them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cl_regimes import profiles, report
from cl_regimes.report import figures, tables, words


def runs(**variants) -> pd.DataFrame:
    """Two orders of finetune, joint, ewc and gem on one dataset, ACC = R's last row's mean;
    ``variants`` maps a variant to the shift of its accuracy matrices (0: identical)."""
    rows = []
    for variant, shift in {"": 0.0, **variants}.items():
        for order in (0, 1):
            for i, method in enumerate(("finetune", "joint", "ewc", "gem")):
                R = np.full((2, 2), 0.5 + 0.1 * i + 0.01 * order + shift)
                rows.append(
                    dict(dataset="d", variant=variant, method=method, order=order, seed=0, R=R)
                )
    table = pd.DataFrame(rows)
    return table.assign(acc=[R[-1].mean() for R in table.R])


def test_identical_variants_are_those_with_the_same_matrices_in_every_run():
    assert tables.identical_variants(runs(same=0.0, other=0.05)) == ["same"]
    partial = runs(same=0.0)
    partial = partial[~((partial.variant == "") & (partial.method == "gem"))]
    assert tables.identical_variants(partial) == []  # a variant run without its own run


def test_best_method_is_the_papers_with_the_references_apart():
    best, sentence = words.best_method(runs(), "d", "head")
    assert best == "gem"  # joint's ACC is higher, but it is a reference
    assert "**gem** has the highest ACC of the paper's methods under `head`" in sentence
    assert "references: finetune 0.505, joint 0.605" in sentence


def test_style_pads_right_aligns_and_hides_a_meaningless_index():
    html = report.style(pd.DataFrame({"name": ["a", "b"], "x": [1.5, 2.25]})).to_html()
    assert "padding: 0.25em 0.6em" in html and "text-align: right" in html
    assert "text-align: left" in html  # the text column
    assert 'class="row_heading' not in html  # no 0..N index
    named = report.style(pd.DataFrame({"x": [1.5]}, index=["a"])).to_html()
    assert 'class="row_heading' in named


def test_style_gives_sentences_a_column_wide_enough_to_read():
    sentence = "crossings larger than 0.0786 would have been seen (80% power)"
    table = pd.DataFrame({"name": ["a", "b"], "note": [sentence, None], "x": [1.0, 2.0]})
    html = report.style(table).to_html()
    assert re.findall(r"td\.(col\d)[^}]*min-width", html) == ["col1"]


def test_style_keeps_numbers_with_gaps_right_aligned():
    """A column of numbers and missing values (object dtype: None among floats), or of
    missing values only, is numeric: its cells, "–" included, align right."""
    table = pd.DataFrame(
        {"name": ["a", "b"], "gaps": [0.5, None], "none": [None, None]}, dtype=object
    )
    html = report.style(table).to_html()
    left = re.findall(r"td\.(col\d)[^}]*text-align: left", html)
    assert left == ["col0"], left


def test_style_shows_hyperparameter_values_as_written():
    table = pd.DataFrame({"chosen": [5000.0, 0.1, None], "acc": [0.5, 1.0, 0.25]})
    cells = re.findall(r">([^<>]+)</td>", report.style(table, settings=["chosen"]).to_html())
    assert cells == ["5,000", "0.500", "0.1", "1.000", "–", "0.250"]


def test_heatmap_prints_every_value_in_a_cell_of_its_colour():
    html = figures.heatmap(
        np.array([[0.0, 1.0]]),
        "m",
        [1, 2],
        vmin=0,
        vmax=1,
        cmap="viridis",
        fmt=lambda v: f"{v:.2f}",
    )
    assert html.count("<td") == 2 and ">0.00</td>" in html and ">1.00</td>" in html
    assert "background: #440154" in html and "background: #fde725" in html  # viridis' ends


def test_method_table_has_a_variant_level_only_where_there_are_variants():
    assert tables.method_table(runs(), ["acc"]).index.names == ["dataset", "method"]
    table = tables.method_table(runs(other=0.05), ["acc"])
    assert table.index.names == ["dataset", "variant", "method"]
    assert list(table.index.get_level_values("method")[:4]) == ["finetune", "joint", "ewc", "gem"]


def test_scale_summary_says_where_each_finding_holds():
    calls = pd.DataFrame(
        {
            "smoke": ["not supported", "supported", "not supported", "supported"],
            "quick": ["supported", "supported", "not supported", "not supported"],
            "medium": ["supported", "supported", "not supported", "supported"],
        },
        index=pd.Index([1, 2, 3, 4], name="finding"),
    )
    sizes = pd.DataFrame(
        {"profile": ["smoke", "quick", "medium"], "share of the grid": [1, 1, 0.1]}
    )
    lines = words.scale_summary(calls, sizes, ("smoke", "quick", "medium", "paper"))
    assert lines[0].startswith("- Finding 1 holds from `quick` on (`smoke`: not supported")
    assert lines[1].startswith("- Finding 2 holds at every scale with records")
    assert lines[2].startswith("- Finding 3 holds at no scale with records")
    assert lines[3].startswith("- Finding 4 holds at `smoke`, `medium` only")
    assert lines[4] == (
        "Provisional: `medium` holds 10% of its grid; its verdicts test only the regimes "
        "and methods its records cover."
    )


def test_scale_summary_says_when_a_finding_vanishes():
    calls = pd.DataFrame(
        {"quick": ["supported"], "medium": ["not supported"]},
        index=pd.Index([2], name="finding"),
    )
    sizes = pd.DataFrame({"profile": ["quick", "medium"], "share of the grid": [1, 1]})
    [line] = words.scale_summary(calls, sizes, ("smoke", "quick", "medium"))
    assert line.startswith("- Finding 2 holds up to `quick`, not beyond")


def trend_rows(profile, part, rhos, p_holm=0.01, half_width=0.1):
    return pd.DataFrame(
        {
            "profile": profile,
            "part": part,
            "method": ["ewc", "lwf", "si", "gem"][: len(rhos)],
            "rho": rhos,
            "rho_lo": [r - half_width for r in rhos],
            "rho_hi": [r + half_width for r in rhos],
            "p_holm": p_holm,
        }
    )


def test_trend_summary_counts_the_methods_a_trend_holds_in_at_each_scale():
    trends = pd.concat(
        [
            trend_rows("quick", "forgetting", [0.05, 0.0, 0.1, -0.5]),
            trend_rows("medium", "forgetting", [0.4, 0.5, 0.5, -0.1]),
            trend_rows("quick", "u per parameter", [0.9, 0.9, 0.9, 0.9]),
            trend_rows("medium", "u per parameter", [0.9, 0.9, 0.9, 0.9], p_holm=0.2),
        ]
    )
    forgetting, per_parameter = words.trend_summary(trends, ("smoke", "quick", "medium"))
    assert forgetting == (
        "- forgetting: methods whose trend with depth holds: `quick` 0 of 4, falling in "
        "gem; `medium` 3 of 4 (ewc, lwf, si). In every method: at no scale with records."
    )
    # intervals above zero are not enough: the Holm-adjusted test must reject too
    assert per_parameter.endswith(
        "`quick` 4 of 4; `medium` 0 of 4. In every method: up to `quick`, not beyond."
    )


def test_crossing_summary_sets_the_largest_crossing_against_the_detectable_one():
    rows = pd.DataFrame(
        {
            "profile": ["smoke", "quick", "medium"],
            "largest_crossing": [None, 0.04, 0.1],
            "detectable_crossing": [None, 0.7, 0.08],
            "largest_lo": [None, 0.03, 0.06],
            "largest_hi": [None, 0.13, 0.14],
            "pairs that cross": ["none", "none", "ewc vs si: ahead in full, behind in head"],
        }
    )
    assert words.crossing_summary(rows) == (
        "- Finding 1: pairs cross at `medium`; `smoke` cannot test it; at `quick` the "
        "largest crossing, 0.040 [0.030, 0.130], is below the 0.700 the test could "
        "detect; at `medium` the largest crossing, 0.100 [0.060, 0.140], is above the "
        "0.080 the test could detect."
    )


def test_coverage_counts_the_grid_and_the_extra_seeds():
    def runs(seeds: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"seed": seeds, "regime": "full", "method": "ewc"})

    text = words.coverage(profiles.get_profile("medium"), 50, runs([0] * 44))
    assert "44 of the 462 runs of its grid. The grid is not complete" in text
    smoke = profiles.get_profile("smoke")
    assert words.coverage(smoke, 42, runs([0] * 42)).endswith("42 of the 42 runs of its grid.")
    extra = words.coverage(smoke, 53, runs([0] * 42 + [1] * 11))
    assert "42 of the 42 runs of its grid, and 11 runs of seed(s) 1 in 1 (regime" in extra
    assert "not complete" not in extra


def test_trend_figure_draws_a_bound_that_misses_its_estimate_by_rounding():
    rho = 1 / 3
    trends = pd.DataFrame(
        dict(
            part="u",
            profile="quick",
            method=["ewc", "si"],
            rho=[rho, 0.5],
            rho_lo=[rho - 0.2, 0.1],
            rho_hi=[rho * (1 - 1e-15), 0.9],  # the draws' quantile: one ulp below
        )
    )
    fig = figures.trend_figure(trends, ["quick"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["ewc", "si"]


def test_card_intervals_stay_within_what_a_metric_can_take():
    from cl_regimes import card

    runs = pd.DataFrame(
        dict(
            dataset="d",
            regime="full",
            method=["mine"] * 3 + ["ewc"] * 3,
            acc=[0.99, 0.6, 1.0, 0.5, 0.5, 0.5],
            forgetting=[-0.9, -0.2, -0.95, 0.1, 0.1, 0.1],
        )
    )
    (row,) = card.stratified(runs, "mine").itertuples()
    assert 0.0 < row.acc_lo < row.acc < row.acc_hi == 1.0
    assert row.forgetting_lo == -1.0 < row.forgetting < row.forgetting_hi < 1.0
    assert (row.rank, row.of) == (1, 2)


def test_a_scenarios_runs_leave_out_the_variants_within_it():
    runs = pd.DataFrame(
        {
            "scenario": ["task_incremental", "class_incremental", "class_incremental"],
            "variant": [
                "",
                "scenario=class_incremental",
                "ewc.lam=50.0,scenario=class_incremental",
            ],
            "acc": [0.9, 0.3, 0.4],
        }
    )
    parts = tables.by_scenario(runs)
    assert {s: p.acc.tolist() for s, p in parts.items()} == {
        "task_incremental": [0.9],
        "class_incremental": [0.3],
    }
    assert set(pd.concat(parts.values()).variant) == {""}


def test_survival_table_puts_each_variants_verdicts_beside_the_profiles():
    def survival(variant, verdicts):
        return pd.DataFrame(
            [
                {"variant": variant, "regimes": "head, full", "runs of": who, "finding": f}
                | {"claim": "...", "p_value": p, "verdict": v}
                for who, rows in (("profile", verdicts[0]), (variant, verdicts[1]))
                for f, (v, p) in enumerate(rows, 1)
            ]
        )

    no, yes = ("not supported", 0.5), ("supported", 0.01)
    table = tables.survival_table(
        [survival("a=1", ([no, no], [no, yes])), survival("b=2", ([no, no], [no, no]))]
    )
    assert list(table.columns) == [
        ("profile", "verdict"),
        ("profile", "p_value"),
        ("variant", "verdict"),
        ("variant", "p_value"),
    ]
    assert table.loc[("a=1", "head, full", 2), ("variant", "verdict")] == "supported"
    assert table.loc[("a=1", "head, full", 2), ("profile", "p_value")] == 0.5
    assert len(table) == 4  # two variants x two findings
