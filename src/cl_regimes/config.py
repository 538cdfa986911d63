"""The configuration of one run, the valid values of every setting, and the error for bad input.

Torch-free: records, tables and validation use it without loading the trainer.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """Bad input from a user: the message names the bad value and the valid ones."""


def check_choice(kind: str, value, valid) -> None:
    """Raise ConfigError unless ``value`` is one of ``valid``."""
    if value not in valid:
        raise ConfigError(f"unknown {kind} {value!r}; valid: {', '.join(map(str, valid))}")


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric setting: ``low <= value <= high`` (``<`` where open);
    ``optional`` also allows None."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def __contains__(self, value) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        low, high = (f"{v:g}" if isinstance(v, float) else v for v in (self.low, self.high))
        if self.low is not None and self.high is not None:
            text = (
                f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
            )
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {low}"
        else:
            text = f"{'<' if self.high_open else '<='} {high}"
        return f"None or {text}" if self.optional else text


@dataclass(frozen=True)
class Choice:
    """The valid values of a setting with a few named values."""

    values: tuple

    def __contains__(self, value) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(map(str, self.values))


def check(name: str, value, valid: Range | Choice) -> None:
    """Raise ConfigError naming the setting, its value and its valid values."""
    if value not in valid:
        raise ConfigError(f"setting {name}={value!r} is out of range; valid: {valid}")


def setting(valid: Range | Choice):
    """A RunConfig field with its valid values."""
    return field(metadata={"valid": valid})


POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
SEEDS = Range(0, 2**32 - 1)  # numpy's seed range
TUNING_SEEDS = 1000  # the first seed of the tuning replicates (``tuning``)
SCENARIOS = ("task_incremental", "class_incremental", "domain_incremental")  # scenarios.py
INITS = ("random", "pretrained")  # initialisation.py
MIN_IMAGE_SIZE = 8  # three stride-2 stages leave 1 pixel; the crop pads by size // 8


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines the numbers of one continual-learning run.

    Values come from a profile (profiles.py); nothing here has a default, so that
    every hyperparameter has exactly one source. Each field declares its valid
    values; a RunConfig with a value out of range cannot be made.
    """

    dataset: str
    regime: str
    method: str
    order: int
    seed: int = setting(SEEDS)
    seeding: str = setting(Choice(("independent", "shared")))
    scenario: str = setting(Choice(SCENARIOS))
    permuted_tasks: int = setting(Range(2))  # the domain-incremental scenario's task count
    permuted_images: str = setting(Choice(("pad", "resize")))  # its 28x28 images to 32x32
    permuted_first: str = setting(Choice(("permuted", "identity")))  # its first task's pixels
    bn_stats: str = setting(Choice(("always_update", "follow_regime")))
    init: str = setting(Choice(INITS))
    width: int = setting(AT_LEAST_ONE)
    image_size: int = setting(Range(MIN_IMAGE_SIZE))
    epochs: int = setting(AT_LEAST_ONE)
    batch_size: int = setting(AT_LEAST_ONE)
    lr: float = setting(POSITIVE)
    lr_min: float = setting(NON_NEGATIVE)
    patience: int = setting(AT_LEAST_ONE)
    min_delta: float = setting(NON_NEGATIVE)
    train_per_task: int | None = setting(Range(1, optional=True))
    test_per_task: int | None = setting(Range(1, optional=True))
    # tuning runs: training images per task held out and scored instead of the test images
    validation_per_task: int | None = setting(Range(1, optional=True))
    eval_batch_size: int = setting(AT_LEAST_ONE)
    precision: str = setting(Choice(("fp32", "bf16")))
    track_updates: bool = setting(Choice((True, False)))
    method_params: dict = field(default_factory=dict)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if "valid" in f.metadata:
                check(f.name, getattr(self, f.name), f.metadata["valid"])
        tuning = self.validation_per_task is not None
        if tuning != (self.seed >= TUNING_SEEDS):
            raise ConfigError(
                f"seed {self.seed} {'with' if tuning else 'without'} validation_per_task: "
                f"tuning runs (validation images) take seeds >= {TUNING_SEEDS}, evaluation "
                f"runs (test images) seeds < {TUNING_SEEDS}, so that they never share a replicate"
            )
        if self.lr_min > self.lr:
            raise ConfigError(
                f"setting lr_min={self.lr_min!r} is out of range; valid: <= lr ({self.lr!r})"
            )

    @property
    def stream_seed(self) -> int:
        """The seed of the run's initial weights and data stream. ``shared``: ``seed``
        itself, so the runs of one order share both across methods and regimes (common
        random numbers). ``independent``: a hash of the run's identity, so every run has
        its own, as in the original study (which seeded nothing), yet reruns repeat."""
        if self.seeding == "shared":
            return self.seed
        identity = f"{self.dataset}/{self.regime}/{self.method}/{self.order}/{self.seed}"
        return hash32(identity)

    def seed_for(self, salt: str) -> int:
        """The seed of a further draw of the run (DER's later extractors), named by ``salt``:
        a hash of the stream seed and the salt; the stream seed itself for ``""``."""
        return derived_seed(self.stream_seed, salt)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        return cls(**values)

    def differs_only_in_order_and_seed(self, other: RunConfig) -> bool:
        """Whether two runs can train as one group (same everything but order and seed)."""
        a, b = self.to_dict(), other.to_dict()
        return all(a[k] == b[k] for k in a if k not in ("order", "seed"))


def derived_seed(seed: int, salt: str) -> int:
    """``seed`` for the empty salt, else 32 bits of the sha256 of both."""
    if not salt:
        return seed
    return hash32(f"{seed}/{salt}")


def hash32(text: str) -> int:
    """32 bits of the sha256 of ``text``: a seed named by text."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))


SCENARIO_ONLY = dict.fromkeys(
    ("permuted_tasks", "permuted_images", "permuted_first"), "domain_incremental"
)


def used_settings(config: dict) -> dict:
    """A configuration (``RunConfig.to_dict()``) without the settings its scenario does not
    read (``SCENARIO_ONLY``): two records of one computation then match, whatever those
    settings were when each was made."""
    scenario = config["scenario"]
    return {k: v for k, v in config.items() if SCENARIO_ONLY.get(k, scenario) == scenario}
