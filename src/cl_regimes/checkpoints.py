"""Task-boundary checkpoints of a grouped cell, so that a stopped sweep loses at most one
task's training of it.

After each task the trainer saves what the rest of the runs depends on: the grouped
network's weights and BatchNorm statistics, the method's state (its attributes other
than its view of the runs: Fisher, importances, anchors, memories, teacher...), every
run's random stream and the process's global ones, and what was measured so far (R's
rows, per-task statistics). The optimiser and the early-stopping state restart at each
task, so nothing else carries over. A resumed group gives the same numbers as an
uninterrupted one (``tests/test_checkpoints.py``).

A checkpoint is named by the group's configurations (and an outside method's source),
lives beside the group's records as a hidden file, is written atomically, and is
removed once the group's records are saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from cl_regimes.config import RunConfig


def path_for(folder, configs: list[RunConfig], source: dict | None = None) -> Path:
    """The checkpoint file of the group ``configs`` (in their slot order) in ``folder``."""
    key = json.dumps([[c.to_dict() for c in configs], source], sort_keys=True, default=str)
    return Path(folder) / f".checkpoint-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def capture(trainer, position: int, rows: list, per_task: list) -> dict:
    """Everything the trainer needs to go on at task ``position`` (the next to train)."""
    return {
        "configs": [c.to_dict() for c in trainer.configs],
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


def save(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, configs: list[RunConfig], device: torch.device) -> dict | None:
    """The checkpoint at ``path`` if it holds this group (same configurations, same slots),
    else None; an unreadable one (a write cut short by a kill) counts as none."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception:  # truncated or from an incompatible version: start the group anew
        return None
    if state.get("configs") != [c.to_dict() for c in configs]:
        return None
    return state
