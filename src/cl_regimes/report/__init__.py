"""The book's tables, figures and sentences, from the tidy tables of ``results.load``.

The package holds what every chapter shares: the metrics' and update statistics' labels,
the methods' and regimes' display order, ``style`` (a numeric table formatted for the
page, the numbers staying numbers) and ``show``. The kinds live in their own modules:
``tables`` (numeric DataFrames), ``figures`` (matplotlib figures and HTML heatmaps) and
``words`` (the chapters' sentences). The statistics of the findings live in
``findings``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from cl_regimes import methods, regimes

METRICS = {
    "acc": "ACC",
    "bwt": "BWT",
    "forgetting": "forgetting",
    "forgetting_chaudhry": "forgetting (Chaudhry)",
}
UPDATES = {
    "g2": "g2",
    "r2": "r2",
    "cos": "cos",
    "u": "u",
    "orig_u": "u (original)",
    "drift": "drift",
}


def ordered(values, reference) -> list:
    """``values`` in the order of ``reference`` (methods, regimes), unknown ones last."""
    present = list(dict.fromkeys(values))
    return [v for v in reference if v in present] + [v for v in present if v not in reference]


def method_order(values) -> list:
    return ordered(values, methods.names())


def regime_order(values) -> list:
    return ordered(values, regimes.REGIMES)


def _is_text(column: pd.Series) -> bool:
    """Whether a column holds text: a missing value (None, NaN) is not text, so a column
    of numbers with gaps, or with no value at all, stays a numeric column."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    return any(not isinstance(v, (int, float, np.number)) for v in column.dropna())


def _text_props(column: pd.Series) -> str:
    """A text column's cells: left-aligned and wrapping; a column of sentences (over 40
    characters) wide enough to read, not one word a line."""
    sentences = max((len(str(v)) for v in column.dropna()), default=0) > 40
    return "text-align: left; white-space: normal;" + (" min-width: 16em;" if sentences else "")


def style(table: pd.DataFrame, digits: int = 3, settings: Sequence[str] = ()):
    """A Styler of a numeric table: integers with thousands separators, shares as
    percentages, the ``settings`` columns (hyperparameter values) as written (5,000, 0.1),
    other numbers with ``digits`` decimals (3 significant where smaller); padded cells,
    numbers right-aligned, sentences in columns wide enough to read, no 0..N index (it
    means nothing)."""

    def number(v):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{v:,}"
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "–"
            return f"{v:.{digits}f}" if abs(v) >= 10**-digits or v == 0 else f"{v:.{digits}g}"
        return v

    # an id from the content, so that the same table renders the same HTML on every build
    uuid = hashlib.sha1(table.to_csv().encode()).hexdigest()[:10]
    styler = table.style.format(number).set_uuid(uuid)
    text = [c for c in table.columns if _is_text(table[c])]
    styler.set_table_styles(
        [
            {"selector": "th", "props": "padding: 0.25em 0.6em;"},
            {"selector": "thead th", "props": "white-space: normal;"},  # long labels wrap
            {
                "selector": "td",
                "props": "padding: 0.25em 0.6em; text-align: right; white-space: nowrap;",
            },
        ]
    ).set_table_styles(
        {c: [{"selector": "td", "props": _text_props(table[c])}] for c in text},
        overwrite=False,
    )
    if isinstance(table.index, pd.RangeIndex):
        styler.hide(axis="index")
    if settings:
        styler.format("{:,g}", subset=list(settings), na_rep="–")
    shares = [c for c in table.columns if "share" in str(c)]
    return styler.format("{:.2%}", subset=shares) if shares else styler


def show(output) -> None:
    """Display a figure or a table in the notebook, and free a figure."""
    display(output)
    if isinstance(output, plt.Figure):
        plt.close(output)
