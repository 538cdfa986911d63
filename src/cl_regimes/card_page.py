"""A regime card's page: Markdown, and one HTML file with its figures embedded, from the
parts ``card.write`` computed."""

from __future__ import annotations

import numpy as np


def markdown(card, runs, table, chance: str, ranks: str, png_names) -> str:
    """The card's page in Markdown: its table (``card.stratified``), the cells at chance
    and the rank changes (``card.chance_text``, ``card.rank_text``), its figures and the
    records it read."""
    label = card.method + (f" ({card.variant})" if card.variant else "")
    lines = [
        f"# Regime card: `{label}`",
        "",
        f"Profile `{card.profile}`, scenario `{card.scenario}`. Results are stratified by "
        "fine-tuning regime: compare methods within a regime, never across regimes, and "
        "never pool them into one number.",
        "",
        *code(card.source),
        "| dataset | regime | orders | ACC [95% CI] | forgetting [95% CI] | rank (ACC) |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def cell(r, metric):
        mean, lo, hi = (getattr(r, f"{metric}{s}") for s in ("", "_lo", "_hi"))
        return f"{mean:.3f}" + ("" if np.isnan(lo) else f" [{lo:.3f}, {hi:.3f}]")

    for r in table.itertuples():
        rank = "at chance: not ranked" if r.at_chance else f"{r.rank} of {r.of}"
        lines.append(
            f"| {r.dataset} | {r.regime} | {r.orders} | {cell(r, 'acc')} | "
            f"{cell(r, 'forgetting')} | {rank} |"
        )
    lines += ["", chance, "## Rank changes", "", ranks]
    lines += ["", *(f"![{name}]({name})" for name in png_names)]
    lines += [
        "",
        f"<details><summary>The {len(runs)} run records of this card</summary>",
        "",
        *(f"- `{p}`" for p in runs.path),
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def code(source: dict | None) -> list[str]:
    """The lines that name an outside method's code: its digest and what was hashed (its
    records are reused only while the digest is the same); none for the library's."""
    if not source:
        return []
    return [
        f"Method code: sha256 `{source['sha256']}` of "
        + ", ".join(f"`{f}`" for f in source["files"])
        + " (comments, docstrings and formatting left out; loaded as "
        f"`{source['path']}`). Its records are reused only while this digest is the same.",
        "",
    ]


def html(text: str, pngs) -> str:
    """The Markdown page as one HTML file, its figures embedded (``pngs``: (path, base64))."""
    import markdown_it

    body = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    for png, data in pngs:
        body = body.replace(f'src="{png.name}"', f'src="data:image/png;base64,{data}"')
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd}"
        "img{max-width:100%}"
    )
    return f"<!doctype html><meta charset=utf-8><style>{style}</style>\n{body}"
