"""The leaderboard's tables on made-up runs whose ranking is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cl_regimes import leaderboard
from cl_regimes.report import tables

REGIMES = ("head", "from_layer4", "full")
MEANS = {  # ACC by regime: er and ewc swap places between head and full
    "finetune": (0.60, 0.60, 0.60),
    "ewc": (0.80, 0.75, 0.65),
    "er": (0.65, 0.72, 0.80),
    "gem": (0.70, 0.70, 0.70),
}


def runs(orders: int = 11, noise: float = 0.005, seed: int = 0, drop=()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"regime": r, "method": m, "order": o, "seed": 0, "acc": mean[i] + noise * rng.normal()}
        for m, mean in MEANS.items()
        for i, r in enumerate(REGIMES)
        for o in range(orders)
        if (r, m) not in drop
    ]
    return pd.DataFrame(rows)


def test_ranks_places_and_intervals_follow_the_planted_means():
    table = leaderboard.rank_table(runs())
    assert table.loc[("head", "ewc"), "place"] == 1 and table.loc[("full", "er"), "place"] == 1
    assert table.loc[("head", "finetune"), "place"] == 4
    assert table.loc[("full", "ewc"), "rank"] == pytest.approx(3)
    low, high = table.loc[("head", "er"), ["acc_low", "acc_high"]]
    assert low < 0.65 < high and high - low < 0.01


def test_standing_names_the_swing_and_its_regimes():
    standing = leaderboard.standing(runs()).loc["er"]
    assert (standing["best in"], standing["worst in"]) == ("full", "head")
    assert standing["largest swing against"] == "ewc"
    assert (standing["leads in"], standing["trails in"]) == ("full", "head")
    assert standing["swing"] == pytest.approx(0.30, abs=0.01)
    assert standing["swing_low"] < 0.30 < standing["swing_high"]


def test_the_regime_that_stands_for_the_others():
    proxies = leaderboard.proxy_regimes(runs())
    assert proxies.index[0] == "from_layer4"  # between head's order and full's
    assert proxies.loc["head", "mean tau with the other regimes"] < proxies.iloc[0, 0]


def test_incomplete_regimes_and_replicates_are_left_out_and_named():
    made = runs(drop={("full", "er")})
    lost = (made.regime == "head") & (made.method == "gem") & (made.order == 10)
    table, left = leaderboard.complete(made[~lost])
    assert set(table.regime) == {"head", "from_layer4"}
    assert left["regime full"] == "no runs of er"
    assert "1 (order, seed) pairs" in left["replicates"]  # order 10 lost gem in head
    assert table.groupby(["order", "seed"]).size().eq(2 * 4).all()


def test_a_swing_is_never_against_the_reference():
    made = runs()
    made.loc[(made.method == "finetune") & (made.regime == "from_layer4"), "acc"] += 0.35
    standing = leaderboard.standing(made)
    assert standing.at["ewc", "largest swing against"] == "er"  # finetune's swing is larger
    assert standing.at["finetune", "largest swing against"] != "finetune"


def test_a_method_with_no_runs_is_named_not_dropped_silently():
    _, left = leaderboard.complete(runs(), ["finetune", "ewc", "er", "gem", "derpp"])
    assert left["methods"] == "no runs of derpp in any regime"
    assert leaderboard.expected_methods("domain_incremental")[-1] == "si"
    assert "er_ace" not in leaderboard.expected_methods("domain_incremental")


def test_regimes_lacking_the_same_methods_are_named_together_and_standing_reads_in_a_line():
    _, left = leaderboard.complete(runs(drop={("full", "er"), ("from_layer4", "er")}))
    assert left == {"regimes from_layer4, full": "no runs of er"}
    table = tables.standing_table(leaderboard.standing(runs()))
    assert table.at["er", "best place"] == "1 (full)"
    assert table.at["er", "leads most in / trails most in"] == "full / head"


def test_tables_keep_the_regimes_in_depth_order():
    table = leaderboard.rank_table(runs())
    assert list(table["acc"].unstack("regime").columns) == list(REGIMES)
