"""Rerun run records and say, number by number, whether they come out the same.

A run's numbers depend on more than its configuration: the runs it was trained beside
(a grouped network's kernels differ with the group's size, and the group's members
share its data loading), the CPU's instruction set and the thread count (different
roundings), the package versions and the images. A record names all of these
(``provenance``); ``verify`` retrains each record's group as it was trained (same
members in the same slots, same threads, same precision), compares every number, and
names the facts of this machine that differ from the record's when the numbers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from cl_regimes import methods, provenance, results, runner
from cl_regimes.config import ConfigError, RunConfig
from cl_regimes.results import Run


@dataclass
class Check:
    """One record against its rerun."""

    path: Path
    group: list[list[int]]  # the (order, seed) of each run of its group, in slot order
    slot: int
    inferred: bool  # the group was inferred from the folder (a record that did not name it)
    differing: list[str] = field(default_factory=list)  # the numbers that differ, by name
    max_diff: float = 0.0  # the largest absolute difference over every number
    facts: dict[str, tuple] = field(default_factory=dict)  # fact: (recorded, now), if differ

    @property
    def identical(self) -> bool:
        return not self.differing


def numbers(record: dict) -> dict[str, float]:
    """Every number a record holds that training produced (R, metrics, per-task
    statistics), by a name such as ``R[2][0]`` or ``tasks[1].g2``."""
    out: dict[str, float] = {}

    def walk(name: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{name}.{key}" if name else key, item)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(f"{name}[{i}]", item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)

    walk("", {k: record[k] for k in ("R", "metrics", "tasks")})
    return out


def compare(recorded: dict, rerun: dict) -> tuple[list[str], float]:
    """(names of the record's numbers that differ, the largest absolute difference); NaN
    equals NaN, and a number the rerun lacks differs by infinity. Numbers the rerun adds
    (statistics added to the library since the record was made) are not compared."""
    a, b = numbers(recorded), numbers(rerun)
    differing, largest = [], 0.0
    for name in a:
        x, y = a[name], b.get(name)
        if y is None:
            differing.append(name)
            largest = math.inf
        elif x != y and not (math.isnan(x) and math.isnan(y)):
            differing.append(name)
            largest = max(largest, abs(x - y))
    return differing, largest


def facts(environment: dict) -> dict:
    """The facts of an environment that can change a run's numbers (None: not recorded)."""
    return {key: environment.get(key) for key in provenance.FACTS}


def group_of(record: dict, neighbours: list[dict]) -> tuple[list[list[int]], int, bool]:
    """(the record's group as (order, seed) pairs in slot order, its slot, inferred?).
    A record that does not name its group is inferred to have been trained with the
    records of its folder (``neighbours``) that share its group size, wall time per run
    and creation time (a group's records are made at once and share these), in plan
    order (order, then seed)."""
    env = record["environment"]
    if "group" in env:
        return env["group"], env["slot"], False

    def stamp(r: dict) -> tuple:
        return r["environment"].get("group_size"), r.get("wall_time_s"), r.get("created")

    members = sorted(
        (r["config"]["order"], r["config"]["seed"]) for r in neighbours if stamp(r) == stamp(record)
    )
    me = members.index((record["config"]["order"], record["config"]["seed"]))
    return [list(m) for m in members], me, True


def recorded_isa(sources) -> str | None:
    """The instruction set (ATen's capability) the records were trained with, when they
    name one and all agree; raises ConfigError when they name several."""
    named = {r["environment"].get("cpu_capability") for _, r in results.records(sources)}
    named.discard(None)
    if len(named) > 1:
        raise ConfigError(
            f"the records were trained with several instruction sets ({', '.join(sorted(named))}); "
            "verify those of one at a time"
        )
    return named.pop() if named else None


def isa_environment(isa: str) -> dict[str, str]:
    """The environment variables that make torch use ``isa`` (set before torch loads)."""
    valid = tuple(provenance.ISA_VARIABLES)
    if isa.upper() not in valid:
        raise ConfigError(f"--isa {isa!r} is not an instruction set; valid: {', '.join(valid)}")
    return provenance.ISA_VARIABLES[isa.upper()]


def isa_hint(checks: list[Check]) -> str:
    """The ``--isa`` to pass for records that differ and were, or may have been, trained
    with another instruction set than the rerun's, one this CPU has ("" if none)."""
    differing = [
        c.facts["cpu_capability"] for c in checks if not c.identical and "cpu_capability" in c.facts
    ]
    if not differing:
        return ""
    has, now = provenance.cpu_isas(), differing[0][1]
    named = {then for then, _ in differing if then in has}
    unnamed = sum(then is None for then, _ in differing)
    lines = [
        f"records trained with the {isa} instruction set differ on this CPU's {now}: "
        f"rerun them with --isa {isa}"
        for isa in sorted(named)
    ]
    others = [isa for isa in has if isa != now]
    if unnamed and others:
        lines.append(
            f"{unnamed} record(s) that differ do not name their instruction set (made before "
            f"records did); if it was not this CPU's {now}, rerun them with "
            + " or ".join(f"--isa {isa}" for isa in others)
        )
    return "\n".join(lines)


def verify(sources, device="cpu", data_dir=None, progress: bool = True) -> list[Check]:
    """Rerun every record under ``sources`` (files or folders), one group at a time, with
    the record's threads; one ``Check`` per record."""
    found = results.records(sources)
    if not found:
        raise ConfigError(f"no run records under {', '.join(map(str, sources))}")
    groups: dict[str, list[tuple[Path, dict, Check]]] = {}
    folders: dict[Path, list[dict]] = {}  # records beside older records, read once a folder
    for path, record in found:
        if path.parent not in folders and "group" not in record["environment"]:
            folders[path.parent] = [r for _, r in results.records(path.parent.glob("*.json"))]
        group, slot, inferred = group_of(record, folders.get(path.parent, []))
        cell = {**record["config"], "order": None, "seed": None}
        key = repr((cell, group, record.get("profile")))
        groups.setdefault(key, []).append((path, record, Check(path, group, slot, inferred)))
    checks = []
    threads = torch.get_num_threads()
    for number, members in enumerate(groups.values(), 1):
        path, record, check = members[0]
        if progress:
            print(f"[{number}/{len(groups)}] rerunning {len(check.group)} run(s) of {path.parent}")
        source = record.get("method_source")
        if source:
            methods.load(source["path"])
        runs = [
            Run(
                RunConfig.from_dict({**record["config"], "order": o, "seed": s}),
                record.get("profile"),
                record.get("variant", {}),
            )
            for o, s in check.group
        ]
        torch.set_num_threads(record["environment"].get("threads") or threads)
        try:
            reruns = runner.run_group(runs, device, data_dir)
        finally:
            torch.set_num_threads(threads)
        for _, record, check in members:
            rerun = reruns[check.slot]
            check.differing, check.max_diff = compare(record, rerun)
            now = facts({**rerun["environment"], "group": check.group})
            then = facts(record["environment"])
            check.facts = {k: (then[k], now[k]) for k in now if then[k] != now[k]}
            if not results.same_code(source, rerun.get("method_source")):
                check.facts["method_source"] = (source["sha256"], rerun["method_source"]["sha256"])
            checks.append(check)
    return checks


def table(checks: list[Check], root=None) -> pd.DataFrame:
    """One row per record: identical or not, by how much, and the facts that differ."""

    def fact_text(facts: dict) -> str:
        return "; ".join(
            f"{k}: {'not recorded' if then is None else then} -> {now}"
            for k, (then, now) in facts.items()
        )

    return pd.DataFrame(
        {
            "record": [str(c.path.relative_to(root) if root else c.path) for c in checks],
            "group": [
                f"{len(c.group)} runs, slot {c.slot}" + (" (inferred)" if c.inferred else "")
                for c in checks
            ],
            "identical": ["yes" if c.identical else "no" for c in checks],
            "numbers differing": [len(c.differing) for c in checks],
            "largest difference": [c.max_diff for c in checks],
            "facts that differ": [fact_text(c.facts) for c in checks],
        }
    )
