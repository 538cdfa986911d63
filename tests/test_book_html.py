"""Checks of the built HTML book (``make book`` first; ``make test-book`` runs these)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cl_regimes import book

HTML = Path(__file__).resolve().parents[1] / "_build" / "html"
pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    if not (HTML / "index.html").exists():
        if os.environ.get("CL_REGIMES_REQUIRE_BOOK"):
            pytest.fail(f"no built book at {HTML}: `make book` failed or did not run")
        pytest.skip("the book is not built (run `make book`)")
    return {c.name: (HTML / "notebooks" / f"{c.name}.html").read_text() for c in book.chapters()}


CHAPTERS = (
    "head",
    "bn_affine",
    "from_layer4",
    "from_layer3",
    "from_layer2",
    "from_layer1",
    "full",
    "cross_regime",
)


def test_every_chapter_was_built(pages):
    assert set(CHAPTERS) <= set(pages)  # the fixture read every chapter's page
    scale = pages["scale"]
    assert scale.count("<table") >= 3 and re.search(r"<img[^>]+\.png", scale)
    assert "Traceback" not in scale
    assert (HTML / "book" / "intro.html").exists()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_tables_and_figures_and_no_error(pages, chapter):
    page = pages[chapter]
    assert page.count("<table") >= 3, "tables missing"
    assert re.search(r"<img[^>]+\.png", page), "figures missing"
    assert 'class="heatmap"' in page, "heatmaps missing"
    assert "Traceback" not in page and "Error" not in re.sub(r"<[^>]+>", "", page)
    assert "&lt;Figure size" not in page and "<Figure size" not in page


@pytest.mark.parametrize("chapter", ["tuned", "scenarios", "leaderboard", "evaluate"])
def test_the_chapters_beyond_the_study_show_tables_figures_and_a_verdict(pages, chapter):
    page = pages[chapter]
    assert page.count("<table") >= 2 and re.search(r"<img[^>]+\.png", page)
    assert re.search(r"supported|not testable", page)
    assert "Traceback" not in page and "&lt;Figure size" not in page


def test_intro_cites_the_findings(pages):
    intro = (HTML / "book" / "intro.html").read_text()
    for n in (1, 2, 3):
        assert re.search(rf"Finding {n} \([^)]*\): (supported|not supported|not testable)", intro)


def test_math_uses_the_local_mathjax_copy(pages):
    """The math typesets offline, also opened from disk: MathJax is loaded from the copy inside
    _build/html (sphinx-mathjax-offline), never from a CDN."""
    intro = (HTML / "book" / "intro.html").read_text()
    assert 'class="math' in intro, "the display equation of the introduction is missing"
    scripts = re.findall(r'<script[^>]*\ssrc="([^"?]*mathjax[^"?]*)', intro, flags=re.IGNORECASE)
    assert scripts == ["../_static/mathjax/tex-chtml.js"]  # (Sphinx may add a ?v= query)
    assert (HTML / "book" / scripts[0]).resolve().is_file()
    assert list((HTML / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    for page in HTML.rglob("*.html"):
        remote = re.search(r"https?://[^\"'\s]*mathjax", page.read_text(), flags=re.IGNORECASE)
        assert remote is None, f"{page.relative_to(HTML)} loads MathJax from {remote.group()}"


def test_no_table_shows_a_meaningless_row_index(pages):
    """A table's row labels say something: never pandas' default 0, 1, 2 ..."""
    for page in HTML.rglob("*.html"):
        for table in re.findall(r"<table.*?</table>", page.read_text(), flags=re.S):
            levels = re.findall(
                r'<th[^>]*class="row_heading (level\d+)[^"]*"[^>]*>\s*(.*?)\s*</th>', table
            )
            for level in {lv for lv, _ in levels}:
                heads = [h for lv, h in levels if lv == level]
                assert len(heads) < 2 or not counts_from_zero(heads), (page.name, level)
            heads = re.findall(r"<tr[^>]*>\s*<th>\s*(\d+)\s*</th>", table)
            assert len(heads) < 2 or not counts_from_zero(heads), page.name


def counts_from_zero(heads: list[str]) -> bool:
    """0, 1, 2 ..., or several such runs one after another (pandas' default index of
    tables concatenated without ignore_index)."""
    if not all(h.isdigit() for h in heads) or heads[0] != "0":
        return False
    return all(int(b) in (int(a) + 1, 0) for a, b in zip(heads, heads[1:]))
