"""The continual-learning methods, one short file each, and their registry."""

from __future__ import annotations

import inspect

from cl_regimes.config import ConfigError, check_choice
from cl_regimes.methods.base import Method, flatten
from cl_regimes.methods.ewc import EWC
from cl_regimes.methods.finetune import Finetune
from cl_regimes.methods.gem import GEM
from cl_regimes.methods.joint import Joint
from cl_regimes.methods.lwf import LwF
from cl_regimes.methods.si import SI
from cl_regimes.profiles import METHOD_NAMES

METHODS: dict[str, type[Method]] = {
    "finetune": Finetune, "joint": Joint, "ewc": EWC, "lwf": LwF, "si": SI, "gem": GEM}
assert tuple(METHODS) == METHOD_NAMES


def parameter_names(name: str) -> tuple[str, ...]:
    """The hyperparameters a method takes (its constructor's arguments after the trainer)."""
    check_choice("method", name, METHOD_NAMES)
    return tuple(inspect.signature(METHODS[name]).parameters)[1:]


def make(name: str, trainer, params: dict) -> Method:
    """An instance of method ``name``; its parameters must be exactly the ones it takes."""
    valid = parameter_names(name)
    if set(params) != set(valid):
        bad = sorted(set(params) ^ set(valid))
        raise ConfigError(f"method {name!r}: bad or missing parameters {bad}; "
                          f"it takes: {', '.join(valid) or 'none'}")
    return METHODS[name](trainer, **params)


__all__ = ["METHODS", "Method", "flatten", "make", "parameter_names"]
