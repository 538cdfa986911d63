"""Named parameter sets: the single source of every hyperparameter.

``paper`` is the protocol of the original study (DESIGN section 3); ``quick``
is a reduced but real experiment that builds the whole book on a laptop CPU;
``smoke`` takes seconds and exists for tests.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from cl_regimes.config import FIELDS, ConfigError, RunConfig, check_choice

DATASETS = ("digits", "mnist", "fashion_mnist", "kmnist", "qmnist", "cifar100")
REGIME_NAMES = ("head", "bn_affine", "from_layer4", "from_layer3", "from_layer2", "from_layer1",
                "full")
METHOD_NAMES = ("finetune", "joint", "ewc", "lwf", "si", "gem")
PAPER_METHODS = ("ewc", "lwf", "si", "gem")
BN_STATS = ("always_update", "follow_regime")
NUM_ORDERS = 11  # the canonical order + 10 permutations

# Run settings of the paper protocol, and the method hyperparameters as
# "<method>.<parameter>" keys.
PAPER_SETTINGS = {
    "width": 64,
    "image_size": 32,
    "epochs": 3,
    "batch_size": 256,
    "lr": 1e-3,
    "lr_min": 1e-5,
    "patience": 5,
    "min_delta": 1e-4,
    "train_per_task": None,
    "test_per_task": None,
    "eval_batch_size": 1024,
    "precision": "auto",
    "track_updates": True,
    "ewc.lam": 5000.0,
    "ewc.gamma": 1.0,
    "ewc.fisher_samples": 200,
    "lwf.lam": 1.0,
    "lwf.temperature": 2.0,
    "lwf.warmup_epochs": 3,
    "si.c": 100.0,
    "si.xi": 0.1,
    "si.clip": 1.0,
    "gem.memories_per_task": 200,
    "gem.margin": 0.0,
    "gem.ridge": 1e-5,
}
IDENTITY = ("dataset", "regime", "method", "order", "seed", "bn_stats")


@dataclass(frozen=True)
class Profile:
    """Settings plus the grid a sweep covers."""

    name: str
    description: str
    settings: dict
    datasets: tuple[str, ...]
    orders: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    bn_stats: tuple[str, ...] = ("always_update",)
    regimes: tuple[str, ...] = REGIME_NAMES
    methods: tuple[str, ...] = METHOD_NAMES
    per_dataset: dict[str, dict] = field(default_factory=dict)


PROFILES = {
    "paper": Profile(
        "paper",
        "the exact protocol of the original study (GPU: hours)",
        PAPER_SETTINGS,
        datasets=("mnist", "fashion_mnist", "kmnist", "qmnist", "cifar100"),
        orders=tuple(range(NUM_ORDERS)),
        per_dataset={"cifar100": {"epochs": 20, "lwf.warmup_epochs": 10}},
    ),
    "quick": Profile(
        "quick",
        "Fashion-MNIST at 16x16, 500 images per task, ResNet-18 of width 8, 3 orders "
        "(the whole book in about 15 minutes on 2 CPU cores)",
        {**PAPER_SETTINGS, "width": 8, "image_size": 16, "epochs": 2, "batch_size": 32,
         "train_per_task": 500, "test_per_task": 200, "eval_batch_size": 500,
         "lwf.warmup_epochs": 1, "gem.memories_per_task": 32, "ewc.fisher_samples": 100},
        datasets=("fashion_mnist",),
        orders=(0, 1, 2),
    ),
    "smoke": Profile(
        "smoke",
        "sklearn digits, width 8, one epoch: seconds per run, for tests",
        {**PAPER_SETTINGS, "width": 8, "image_size": 16, "epochs": 1, "batch_size": 32,
         "lwf.warmup_epochs": 1,
         "gem.memories_per_task": 32, "ewc.fisher_samples": 64, "eval_batch_size": 512},
        datasets=("digits",),
        orders=(0,),
    ),
}


def get_profile(name: str) -> Profile:
    check_choice("profile", name, tuple(PROFILES))
    return PROFILES[name]


def parse_overrides(pairs: list[str] | None, settings: dict = PAPER_SETTINGS) -> dict:
    """Turn ``["epochs=2", "ewc.lam=100"]`` into typed values, checking each key exists."""
    overrides = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        check_choice("setting", key, tuple(settings))
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        default = settings[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not None and type(value) is not type(default):
            raise ConfigError(f"setting {key} expects {type(default).__name__}, got {text!r}")
        overrides[key] = value
    return overrides


def resolve(profile: str, *, dataset: str, regime: str, method: str, order: int = 0,
            seed: int = 0, bn_stats: str = "always_update", overrides: dict | None = None
            ) -> RunConfig:
    """The full configuration of one run: profile, then per-dataset values, then overrides."""
    prof = get_profile(profile)
    check_choice("dataset", dataset, DATASETS)
    check_choice("regime", regime, REGIME_NAMES)
    check_choice("method", method, METHOD_NAMES)
    check_choice("bn_stats", bn_stats, BN_STATS)
    check_choice("order", order, range(NUM_ORDERS))
    for key in overrides or {}:
        check_choice("setting", key, tuple(prof.settings))
    values = {**prof.settings, **prof.per_dataset.get(dataset, {}), **(overrides or {})}
    run = {k: v for k, v in values.items() if "." not in k}
    params = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(method + ".")}
    assert set(run) | set(IDENTITY) | {"method_params"} == set(FIELDS), "profile misses a field"
    return RunConfig(dataset=dataset, regime=regime, method=method, order=order, seed=seed,
                     bn_stats=bn_stats, method_params=params, **run)
