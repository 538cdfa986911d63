"""The configuration of one run, and the error raised for any bad input."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """Bad input from a user: the message names the bad value and the valid ones."""


def check_choice(kind: str, value, valid) -> None:
    """Raise ConfigError unless ``value`` is one of ``valid``."""
    if value not in valid:
        raise ConfigError(f"unknown {kind} {value!r}; valid: {', '.join(map(str, valid))}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines the numbers of one continual-learning run.

    Values come from a profile (profiles.py); nothing here has a default so that
    every hyperparameter has exactly one source.
    """

    dataset: str
    regime: str
    method: str
    order: int
    seed: int
    bn_stats: str
    width: int
    image_size: int
    epochs: int
    batch_size: int
    lr: float
    lr_min: float
    patience: int
    min_delta: float
    train_per_task: int | None
    test_per_task: int | None
    eval_batch_size: int
    precision: str
    track_updates: bool
    method_params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        return cls(**values)


FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
