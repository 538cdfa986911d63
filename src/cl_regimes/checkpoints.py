"""Task-boundary checkpoints of a grouped cell, so that a stopped sweep loses at most one
task's training of it.

After each task the trainer saves what the rest of the runs depends on: the grouped
network's weights and BatchNorm statistics, the method's state (its attributes other
than its view of the runs: Fisher, importances, anchors, memories, teacher...), every
run's random stream and the process's global ones, and what was measured so far (R's
rows, per-task statistics). The optimiser and the early-stopping state restart at each
task, so nothing else carries over. A resumed group gives the same numbers as an
uninterrupted one (``tests/test_checkpoints.py``).

A checkpoint lives beside the group's records as a hidden file named by the group's slots
(each run's order and seed: within one folder of records they name the group), and holds
its configurations and the digest of an outside method's code, which must match for it to be used. A
checkpoint made before a configuration or the method's code changed is thus replaced by
the group's next one, never left behind. It is written atomically and removed once the
group's records are saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cl_regimes.config import RunConfig

PATTERN = ".checkpoint-*.pt"


def kept(folders) -> int:
    """How many checkpoints ``folders`` hold (what an interrupted sweep kept)."""
    return sum(len(list(Path(f).glob(PATTERN))) for f in folders)


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint of the group ``configs`` (in their slot order) in ``folder``."""

    folder: Path
    configs: tuple[RunConfig, ...]
    source: dict | None = None  # an outside method's code (``provenance.method_source``)

    @property
    def path(self) -> Path:
        slots = json.dumps([[c.order, c.seed] for c in self.configs])
        return Path(self.folder) / PATTERN.replace(
            "*", hashlib.sha256(slots.encode()).hexdigest()[:16]
        )

    @property
    def identity(self) -> dict:
        """What a checkpoint must hold to be used: the configurations, and the digest of an
        outside method's code (not where it was loaded from)."""
        code = self.source and self.source.get("sha256")
        return {"configs": [c.to_dict() for c in self.configs], "source": code}

    def save(self, state: dict) -> None:
        """Write ``state`` with this group's identity, atomically (a temporary file, then
        a rename)."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            torch.save({**state, **self.identity}, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, device: torch.device) -> dict | None:
        """The saved state if it holds this group (same configurations in the same slots,
        same method source), else None; an unreadable one (a write cut short by a kill)
        counts as none."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=False)
        except Exception:  # truncated or from an incompatible version: start the group anew
            return None
        if any(state.get(k) != v for k, v in self.identity.items()):
            return None
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def capture(trainer, position: int, rows: list, per_task: list) -> dict:
    """Everything the trainer needs to go on at task ``position`` (the next to train)."""
    return {
        "position": position,
        "model": trainer.model.state_dict(),
        "method": {  # a growing network (DER's) is the trainer's, saved as "model"
            k: v for k, v in vars(trainer.method).items() if k != "runs" and v is not trainer.model
        },
        "generators": [g.get_state() for g in trainer.generators],
        "global": (torch.get_rng_state(), np.random.get_state(), random.getstate()),
        "rows": rows,
        "per_task": per_task,
    }


def restore(trainer, state: dict) -> tuple[int, list, list]:
    """Put ``trainer`` back in the captured state -> (next position, rows, per_task)."""
    trainer.model.load_state_dict(state["model"])
    vars(trainer.method).update(state["method"])
    for generator, saved in zip(trainer.generators, state["generators"]):
        generator.set_state(saved.cpu())  # states are CPU tensors, whatever the device
    torch_state, numpy_state, python_state = state["global"]
    torch.set_rng_state(torch_state.cpu())
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    return state["position"], state["rows"], state["per_task"]
