"""Run records: their schema and assembly, one JSON file per run written atomically, and
tidy tables of them. Torch-free: reading records needs neither torch nor the trainer.

Layout: ``<results>/<profile>/<dataset>/<regime>/<method>/[<variant>/]order<K>-seed<S>.json``,
where ``<variant>`` names the settings that differ from the profile's (absent for
the profile's own runs), so that variants of a run coexist and resume on their own.
A record whose file exists with the same configuration is finished (a sweep
skips it); one with a different configuration is refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from cl_regimes import metrics
from cl_regimes.config import ConfigError, RunConfig, used_settings

SCHEMA_VERSION = 2
RECORD_KEYS = ("schema", "config", "variant", "order", "R", "tasks", "metrics", "environment")
RUN_COLUMNS = ("profile", "dataset", "regime", "method", "bn_stats", "variant", "order", "seed")
ENVIRONMENT_COLUMNS = ("device", "commit", "torch", "precision", "group_size", "host", "node")
MAX_VARIANT_NAME = 80


class RecordError(ConfigError):
    """A run record that cannot be used: corrupt, or made with another configuration."""


class RecordExists(RecordError):
    """A record is already where another was to be saved (records are never overwritten)."""


@cache
@cache
def git_commit() -> str | None:
    """The commit of the library's checkout (with "+dirty" for uncommitted changes), if any,
    read once per process (``train`` reads it on import): the commit of the code that
    runs, even when the checkout moves on while a sweep's workers train."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def variant_name(variant: dict) -> str:
    """A short readable name of a variant (``ewc.lam=100.0``), or a hash of it when long."""
    name = ",".join(f"{k}={v}" for k, v in sorted(variant.items()))
    if len(name) > MAX_VARIANT_NAME or "/" in name or name.startswith("."):
        digest = hashlib.sha1(json.dumps(variant, sort_keys=True).encode()).hexdigest()
        name = f"variant-{digest[:12]}"
    return name


@dataclass(frozen=True)
class Run:
    """One run as a sweep plans it: its configuration, the profile whose grid it belongs to
    (None: outside any, e.g. a benchmark's) and the settings in which it differs from that
    profile's (its variant: part of its record's path and identity)."""

    config: RunConfig
    profile: str | None = None
    variant: dict = field(default_factory=dict)

    def path(self, results_dir) -> Path:
        """Where its record goes under ``results_dir`` (the layout above)."""
        c = self.config
        folder = Path(results_dir) / self.profile / c.dataset / c.regime / c.method
        if self.variant:
            folder = folder / variant_name(self.variant)
        return folder / f"order{c.order:02d}-seed{c.seed}.json"


def assemble(run: Run, outcome: dict, environment: dict, wall_time_s: float) -> dict:
    """A run's record: its full configuration and how it differs from its profile, what
    it produced (R, per-task statistics), its metrics, versions and timing."""
    return {
        "schema": SCHEMA_VERSION,
        "profile": run.profile,
        "variant": run.variant,
        "config": run.config.to_dict(),
        **outcome,
        "metrics": metrics.summary(outcome["R"]),
        "environment": environment,
        "wall_time_s": wall_time_s,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def check_writable(results_dir, what: str = "results folder", option: str = "--results") -> None:
    """Raise ConfigError, naming the folder (``what``), why it cannot be used and the
    ``option`` that chooses another, unless files can be written under it."""
    folder = Path(results_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        if folder.is_dir():  # writing in it failed, whatever errno says (/proc/1: ENOENT)
            why = "exists but is not writable"
        elif folder.exists():
            why = "is a file, not a folder"
        else:
            why = f"cannot be created or written ({err.strerror or err})"
        raise ConfigError(f"{what} {str(folder)!r} {why}; choose another with {option}") from None


def save(record: dict, path, replace: bool = False) -> Path:
    """Write ``record`` atomically: a temporary file in the same folder, then a hard link to
    ``path``, which fails if ``path`` exists, so that of two writers of one run, on any node
    of a shared filesystem, only the first lands. ``replace``: a rename over ``path``
    instead, for a record recomputed on purpose (``--force``, or an outside method's
    source changed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1))
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise RecordExists(f"run record {path} exists already; it is never overwritten") from None
    finally:  # a failed or interrupted write leaves no partial file behind
        tmp.unlink(missing_ok=True)
    return path


def read(path) -> dict:
    """Load and check one record; a clear RecordError names the file if it is unusable."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"corrupt run record {path}: {err}; delete it to recompute") from None
    if isinstance(record, dict) and record.get("schema") not in (None, SCHEMA_VERSION):
        raise RecordError(
            f"run record {path} has schema {record['schema']}, this library "
            f"reads {SCHEMA_VERSION}; delete it to recompute"
        )
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise RecordError(f"corrupt run record {path}: missing {missing}; delete it to recompute")
    upgrade(record["config"])
    R = np.asarray(record["R"], dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or len(record["tasks"]) != len(R):
        raise RecordError(f"corrupt run record {path}: R is not a T x T matrix with T tasks")
    return record


def upgrade(config: dict) -> dict:
    """Fill the settings added since a record was made with the values its code ran."""
    config.setdefault("scenario", "task_incremental")
    config.setdefault("init", "random")  # before pretrained initialisation
    config.setdefault("validation_per_task", None)
    domain = config["scenario"] == "domain_incremental"
    config.setdefault("permuted_tasks", 5 if domain else 10)  # 5: the dataset's task count
    config.setdefault("permuted_images", "resize" if domain else "pad")
    config.setdefault("permuted_first", "permuted")
    if config["method"] == "lwf":  # every scored output, the new task's task-incrementally
        scored = config["scenario"] != "task_incremental"
        config["method_params"].setdefault("warmup_outputs", "scored" if scored else "new")
    return config


def same_code(stored: dict | None, current: dict | None) -> bool:
    """Whether two ``method_source`` facts name the same code: the same digest, wherever
    it was loaded from (None, a library method's: the same commit's). A record without a
    digest (a notebook's class, before it was hashed) is never the same."""
    if stored is None or current is None:
        return stored is current
    return stored.get("sha256") is not None and stored.get("sha256") == current.get("sha256")


def is_done(path, config: RunConfig, source: dict | None = None) -> bool:
    """True if ``path`` holds a finished run of ``config``, made by an outside method's
    current code (``source``, see ``provenance.method_source`` and ``same_code``); False
    if there is none, or if the method's code changed since (a rerun replaces it).
    Refuses a record of another configuration."""
    path = Path(path)
    if not path.exists():
        return False
    record = read(path)
    stored, wanted = used_settings(record["config"]), used_settings(config.to_dict())
    if stored != wanted:
        diff = {
            k: (stored.get(k), wanted.get(k))
            for k in wanted | stored
            if stored.get(k) != wanted.get(k)
        }
        raise RecordError(
            f"run record {path} was made with another configuration "
            f"(stored vs asked: {diff}); delete it or use another results folder"
        )
    return same_code(record.get("method_source"), source)


def records(source) -> list[tuple[Path, dict]]:
    """Every record under a folder (recursively), or the given file(s), sorted by path."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    paths = []
    for s in map(Path, sources):
        paths += sorted(s.rglob("*.json")) if s.is_dir() else [s]
    return [(p, read(p)) for p in paths]


def with_committed(folder, committed) -> list[Path]:
    """``folder`` (a build's records of one profile) and the records in ``committed`` (the
    same profile's committed ones, e.g. DER's, which no build trains) of the (dataset,
    regime, method) cells ``folder`` has none of: never two records of one run."""
    folder, committed = Path(folder), Path(committed)
    if not committed.is_dir() or (folder.exists() and committed.samefile(folder)):
        return [folder]
    extra = [
        p
        for p in sorted(committed.rglob("*.json"))
        if not folder.joinpath(*p.relative_to(committed).parts[:3]).exists()
    ]
    return [folder, *extra]


METHOD_ORDER = (
    "finetune",
    "joint",
    "agem",
    "der",
    "derpp",
    "er",
    "er_ace",
    "ewc",
    "gem",
    "lwf",
    "si",
)  # the book's: methods.names()
KEY_COLUMNS = (*RUN_COLUMNS, "seeding", "scenario", "classes_per_task", "n_trainable")
LEVEL_COLUMNS = {  # the columns of an empty table (a task's update statistics vary by method)
    "run": (*KEY_COLUMNS, *metrics.summary(np.eye(2)), "chance", "wall_time_s", "R", "path")
    + ENVIRONMENT_COLUMNS,
    "task": (*KEY_COLUMNS, "position", "chance", "acc_learned", "acc_final", "forgetting"),
}


def load(source, level: str = "run") -> pd.DataFrame:
    """Records as a tidy table: one row per run (``level="run"``) with its metrics and R,
    or one row per task of each run (``level="task"``) with update statistics and
    forgetting. ``source``: a folder (searched recursively), record files, or a Parquet
    file of a runs table saved as ``runs.assign(R=runs.R.map(np.ndarray.tolist))``. ``variant``
    names the settings that differ from the profile ("" for the profile's own runs);
    ``regime`` and ``method`` are ordered categoricals (regimes by depth, methods in the
    book's order, others after), so that tables sort and group in that order."""
    if level not in ("run", "task"):
        raise ConfigError(f"unknown level {level!r}; valid: run, task")
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    for missing in (Path(s) for s in sources if not Path(s).exists()):
        raise ConfigError(f"no such folder or file: {missing}")
    if len(sources) == 1 and str(sources[0]).endswith(".parquet"):
        table = pd.read_parquet(sources[0])
        return _ordered(table.assign(R=table.R.map(np.stack)) if "R" in table else table)
    rows = []
    for path, rec in records(sources):
        cfg = rec["config"]
        key = {
            "profile": rec.get("profile"),
            **{k: cfg[k] for k in RUN_COLUMNS[1:5]},
            "variant": variant_name(rec["variant"]) if rec["variant"] else "",
            "order": cfg["order"],
            "seed": cfg["seed"],
            "seeding": cfg.get("seeding"),
            "scenario": cfg["scenario"],
            "classes_per_task": rec.get("classes_per_task"),
            "n_trainable": rec.get("n_trainable"),
        }
        R = np.asarray(rec["R"])
        chance = [1 / t.get("scored_classes", rec.get("classes_per_task")) for t in rec["tasks"]]
        if level == "run":
            env = rec["environment"]
            rows.append(
                {
                    **key,
                    **rec["metrics"],
                    "chance": float(np.mean(chance)),  # of the diagonal R[i, i]
                    "wall_time_s": rec.get("wall_time_s"),
                    "R": R,
                    "path": str(path),
                    **{k: env.get(k) for k in ENVIRONMENT_COLUMNS},
                }
            )
            continue
        forget = np.append(metrics.task_forgetting(R), np.nan)
        for pos, task in enumerate(rec["tasks"]):
            stats = {k: v for k, v in task.items() if k not in ("classes", "train_loss")}
            rows.append(
                {
                    **key,
                    "position": pos,
                    **stats,
                    "chance": chance[pos],
                    "acc_learned": R[pos, pos],
                    "acc_final": R[-1, pos],
                    "forgetting": forget[pos],
                }
            )
    return _ordered(pd.DataFrame(rows, columns=None if rows else LEVEL_COLUMNS[level]))


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """``regime`` by depth and ``method`` in the book's order, as ordered categoricals of
    the values present (unknown ones last, by name)."""
    from cl_regimes.regimes import REGIMES

    for column, order in (("regime", tuple(REGIMES)), ("method", METHOD_ORDER)):
        present = set(table[column].dropna())
        known = [v for v in order if v in present]
        categories = known + sorted(present - set(known))
        table[column] = pd.Categorical(table[column], categories=categories, ordered=True)
    return table
