"""The built book as a reader sees it: every chapter opened in headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by selenium; nothing is downloaded) at a
1400 px window, measured, and saved as a screenshot under ``_build/screenshots/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cl_regimes import book

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1400, 1000
pytestmark = pytest.mark.book

CHAPTERS = sorted(p.stem for p in (HTML / "notebooks").glob("*.html"))
# a committed profile whose records cannot test finding 1 yet has a one-paragraph page
PLACEHOLDERS = {
    c.name for c in book.chapters() if c.name in book.COMMITTED and not book.is_ready(book.ROOT, c)
}
# the chapters that show heatmaps: the regime chapters and the cross-regime ones
HEATMAPS = {c.name for c in book.chapters() if c.source.stem in (book.REGIME, book.CROSS)}
# a POSIX absolute path (/x/y), not a relative one (../x, results/x) nor a URL's (//host/x)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.-]+/)+[\w.-]*")
RAW_TEX = re.compile(r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$|\\\(|\\\[")
# a number; a lone "–" (a missing value) is not one: it takes its column's alignment,
# left in a column of text such as "+0.04 [-0.01, +0.09] ahead"
NUMBER = re.compile(r"^[+−-]?(\d[\d,]*)?\.?\d+(e[+−-]?\d+)?%?$")

MEASURE = """
const container = el => el.closest('.cell_output, article') || document.body;
const scrolls = (el, stop) => {
  for (let a = el.parentElement; a && a !== stop.parentElement; a = a.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return a;
  }
  return null;
};
const tables = [...document.querySelectorAll('article table')];
const px = v => parseFloat(v) || 0;
const cells = [...document.querySelectorAll('article table:not(.heatmap) td')];
return {
  text: document.body.innerText,
  clipped: tables.filter(t => {
    const box = container(t).getBoundingClientRect(), own = t.getBoundingClientRect();
    const scroller = scrolls(t, container(t));
    const fits = own.left >= box.left - 1 && own.right <= box.right + 1;
    return !fits && !(scroller && scroller.getBoundingClientRect().right <= box.right + 1);
  }).map(t => t.innerText.slice(0, 60)),
  numbers: cells.map(td => {
    const s = getComputedStyle(td);
    return [td.innerText.trim(), px(s.paddingLeft), px(s.paddingRight), s.textAlign];
  }),
  heatmap_cells: [...document.querySelectorAll('table.heatmap td')].map(td => {
    const r = td.getBoundingClientRect();
    return [r.width, r.height];
  }),
  math: document.querySelectorAll('article .math').length,
  typeset: [...document.querySelectorAll('article .math')].filter(
    m => m.querySelector('mjx-container')).length,
};
"""
TYPESET = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const mathjax = window.MathJax && MathJax.startup && MathJax.startup.promise;
  if (document.readyState !== 'complete') setTimeout(poll, 100);
  else if (!document.querySelector('.math')) done('no math');
  else if (mathjax) mathjax.then(() => done('typeset'), () => done('failed'));
  else if (Date.now() - start > 20000) done('no MathJax');
  else setTimeout(poll, 100);
})();
"""
LOADED = """
const done = arguments[arguments.length - 1];
window.scrollTo(0, 0);
Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(() => done());
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (HTML / "index.html").exists():
        if os.environ.get("CL_REGIMES_REQUIRE_BOOK"):
            pytest.fail(f"no built book at {HTML}: `make book` failed or did not run")
        pytest.skip("the book is not built (run `make book`)")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("apt-get install chromium chromium-driver (Debian's, as .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def measured(browser):
    """Per chapter, what the page shows once loaded and typeset; a full-page screenshot."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cache = {}

    def measure(chapter: str) -> dict:
        if chapter not in cache:
            browser.get((HTML / "notebooks" / f"{chapter}.html").as_uri())
            mathjax = browser.execute_async_script(TYPESET)
            cache[chapter] = browser.execute_script(MEASURE) | {"mathjax": mathjax}
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(WIDTH, height)  # the whole page, as wide as measured
            browser.execute_async_script(LOADED)
            browser.save_screenshot(SCREENSHOTS / f"{chapter}.png")
            browser.set_window_size(WIDTH, HEIGHT)
        return cache[chapter]

    return measure


def test_every_chapter_is_checked():
    assert {"head", "full", "cross_regime", "leaderboard"} <= set(CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_table_is_clipped(measured, chapter):
    """A table wider than its cell output (or the article) scrolls in a box within it."""
    assert measured(chapter)["clipped"] == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_numeric_cells_are_padded_and_right_aligned(measured, chapter):
    if chapter in PLACEHOLDERS:
        pytest.skip("a placeholder page: its records cannot test finding 1 yet")
    numbers = [n for n in measured(chapter)["numbers"] if NUMBER.match(n[0])]
    assert numbers, "no numeric table cell"
    cramped = [n for n in numbers if min(n[1], n[2]) < 4]
    assert not cramped, f"{len(cramped)} of {len(numbers)} cells padded < 4 px, e.g. {cramped[0]}"
    left = [n for n in numbers if n[3] != "right"]
    assert not left, (
        f"{len(left)} of {len(numbers)} numeric cells not right-aligned, e.g. {left[:3]}"
    )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_heatmap_cells_are_legible(measured, chapter):
    """Every chapter's heatmaps are tables with cells of at least 24 px at a 1400 px window."""
    cells = measured(chapter)["heatmap_cells"]
    if chapter in HEATMAPS - PLACEHOLDERS:
        assert cells, "no heatmap whose cells can be measured"
    assert not cells or min(min(c) for c in cells) >= 24


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_math_is_typeset(measured, chapter):
    if chapter in PLACEHOLDERS:
        pytest.skip("a placeholder page: its records cannot test finding 1 yet")
    page = measured(chapter)
    assert page["mathjax"] == "typeset"
    assert page["typeset"] == page["math"], "math that MathJax left untypeset"
    assert not RAW_TEX.search(page["text"]), RAW_TEX.search(page["text"]).group()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_absolute_path(measured, chapter):
    text = measured(chapter)["text"]
    assert str(ROOT) not in text
    assert not ABSOLUTE_PATH.search(text), ABSOLUTE_PATH.search(text).group()
