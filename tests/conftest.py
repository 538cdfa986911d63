"""Shared fixtures: smoke-profile configurations and a session cache of smoke runs.

Every smoke run is seconds on two CPU cores; runs that several test files need
(e.g. finetune under every regime) are computed once per session and shared.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: threads that wait sleep instead of spinning, which on a
# small machine shared with other processes would slow every run down many times.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from cl_regimes import profiles, train  # noqa: E402
from cl_regimes.config import RunConfig  # noqa: E402

# `make test` runs the files in two processes (pytest-xdist), one core each
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def make_smoke_config(
    regime: str, method: str, *, order: int = 0, seed: int = 0, **overrides
) -> RunConfig:
    """The smoke profile's configuration on sklearn digits; ``overrides`` are profile
    settings, dotted ones passed as ``**{"ewc.lam": 1e6}``."""
    return profiles.get_profile("smoke").config(
        dataset="digits",
        regime=regime,
        method=method,
        order=order,
        seed=seed,
        overrides=overrides or None,
    )


@dataclass
class SmokeRun:
    """A finished smoke run: its configuration, the trainer (model and method in their
    final state), what the model held before training, and what ``Trainer.run`` returned."""

    config: RunConfig
    trainer: train.Trainer
    before: dict[str, torch.Tensor]  # every parameter and buffer before training
    outcome: dict  # {"order", "R", "tasks"}

    @property
    def after(self) -> dict[str, torch.Tensor]:
        return state(self.trainer.model)

    @property
    def trainable_names(self) -> set[str]:
        ids = {id(p) for p in self.trainer.params}
        return {n for n, p in self.trainer.model.named_parameters() if id(p) in ids}


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer, by name."""
    return {n: t.detach().clone() for n, t in [*model.named_parameters(), *model.named_buffers()]}


def execute(config: RunConfig) -> SmokeRun:
    trainer = train.Trainer([config], device="cpu")
    before = state(trainer.model)
    outcome = trainer.run()[0]
    return SmokeRun(config, trainer, before, outcome)


class SmokeRuns:
    """Runs keyed by their configuration, computed on first request."""

    def __init__(self):
        self._runs: dict[tuple, SmokeRun] = {}

    def get(self, regime: str, method: str, **kwargs) -> SmokeRun:
        config = make_smoke_config(regime, method, **kwargs)
        key = tuple(sorted((k, repr(v)) for k, v in config.to_dict().items()))
        if key not in self._runs:
            self._runs[key] = execute(config)
        return self._runs[key]


@pytest.fixture(scope="session")
def smoke_runs() -> SmokeRuns:
    """Session cache: ``smoke_runs.get(regime, method, order=..., **overrides)``."""
    return SmokeRuns()


@pytest.fixture
def smoke_config():
    """``smoke_config(regime, method, **overrides)`` -> RunConfig of the smoke profile."""
    return make_smoke_config


@pytest.fixture
def smoke_trainer():
    """``smoke_trainer(regime, method, **overrides)`` -> a fresh, untrained CPU Trainer."""
    return lambda regime, method, **kw: train.Trainer(
        [make_smoke_config(regime, method, **kw)], device="cpu"
    )
