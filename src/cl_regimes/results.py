"""Run records on disk: one JSON file per run, written atomically, loaded into tidy tables.

Layout: ``<results>/<profile>/<dataset>/<bn_stats>/<regime>/<method>/order<K>-seed<S>.json``.
A record whose file exists with the same configuration is finished (a sweep
skips it); one with a different configuration is refused, never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cl_regimes import metrics
from cl_regimes.config import ConfigError, RunConfig
from cl_regimes.train import SCHEMA_VERSION

RECORD_KEYS = ("schema", "config", "order", "R", "tasks", "metrics", "environment")
RUN_COLUMNS = ("profile", "dataset", "regime", "method", "bn_stats", "order", "seed")


class RecordError(ConfigError):
    """A run record that cannot be used: corrupt, or made with another configuration."""


def record_path(results_dir, profile: str, config: RunConfig) -> Path:
    c = config
    return (Path(results_dir) / profile / c.dataset / c.bn_stats / c.regime / c.method
            / f"order{c.order:02d}-seed{c.seed}.json")


def save(record: dict, path) -> Path:
    """Write ``record`` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, path)
    except BaseException:  # a failed or interrupted write leaves no partial file behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def read(path) -> dict:
    """Load and check one record; a clear RecordError names the file if it is unusable."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"corrupt run record {path}: {err}; delete it to recompute") from None
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise RecordError(f"corrupt run record {path}: missing {missing}; delete it to recompute")
    if record["schema"] != SCHEMA_VERSION:
        raise RecordError(f"run record {path} has schema {record['schema']}, this library "
                          f"reads {SCHEMA_VERSION}; delete it to recompute")
    R = np.asarray(record["R"], dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or len(record["tasks"]) != len(R):
        raise RecordError(f"corrupt run record {path}: R is not a T x T matrix with T tasks")
    return record


def is_done(path, config: RunConfig) -> bool:
    """True if ``path`` holds a finished run of ``config``; refuses one of another config."""
    path = Path(path)
    if not path.exists():
        return False
    stored = read(path)["config"]
    wanted = config.to_dict()
    if stored != wanted:
        diff = {k: (stored.get(k), wanted.get(k)) for k in wanted | stored
                if stored.get(k) != wanted.get(k)}
        raise RecordError(f"run record {path} was made with another configuration "
                          f"(stored vs asked: {diff}); delete it or use another results folder")
    return True


def records(source) -> list[tuple[Path, dict]]:
    """Every record under a folder (recursively), or the given file(s), sorted by path."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    paths = []
    for s in map(Path, sources):
        paths += sorted(s.rglob("*.json")) if s.is_dir() else [s]
    return [(p, read(p)) for p in paths]


def load(source, level: str = "run") -> pd.DataFrame:
    """Records as a tidy table: one row per run (``level="run"``) with its metrics and R,
    or one row per task of each run (``level="task"``) with update statistics and forgetting."""
    if level not in ("run", "task"):
        raise ConfigError(f"unknown level {level!r}; valid: run, task")
    rows = []
    for path, rec in records(source):
        key = {"profile": rec.get("profile"), **{k: rec["config"][k] for k in RUN_COLUMNS[1:]}}
        R = np.asarray(rec["R"])
        if level == "run":
            rows.append({**key, **rec["metrics"], "wall_time_s": rec.get("wall_time_s"),
                         "R": R, "path": str(path)})
            continue
        forget = np.append(metrics.task_forgetting(R), np.nan)
        for pos, task in enumerate(rec["tasks"]):
            stats = {k: v for k, v in task.items() if k not in ("classes", "train_loss")}
            rows.append({**key, "position": pos, **stats, "acc_learned": R[pos, pos],
                         "acc_final": R[-1, pos], "forgetting": forget[pos]})
    return pd.DataFrame(rows, columns=None if rows else list(RUN_COLUMNS))
