"""Timing of contenders, interleaved repeat by repeat, and the table of rows every section
prints and ``harness`` writes: one place, so that every section measures and reports alike."""

from __future__ import annotations

import statistics
import time

import torch

ROWS: list[dict] = []  # every row printed so far, for the closing table and results.json
HEADER = f"{'section':<8}{'measurement':<46}{'median':>11}{'min':>11}{'max':>11}  unit"


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fns: dict, repeats: int, device: torch.device) -> dict[str, dict]:
    """Seconds per call of every fn, round-robin over ``repeats``: {name: median/min/max/runs}."""
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            runs[name].append(time.perf_counter() - start)
    return {name: {**summarize(r), "runs": r} for name, r in runs.items()}


def ratios(a: dict, b: dict) -> list[float]:
    """Per-repeat ratios a / b of two timeit results."""
    return [x / y for x, y in zip(a["runs"], b["runs"], strict=True)]


def row(section: str, what: str, values: list[float], unit: str) -> None:
    ROWS.append({"section": section, "what": what, "unit": unit, **summarize(values)})
    print(format_row(ROWS[-1]), flush=True)


def format_row(r: dict) -> str:
    nums = "".join(f"{r[k]:>11.4g}" for k in ("median", "min", "max"))
    return f"{r['section']:<8}{r['what']:<46}{nums}  {r['unit']}"
