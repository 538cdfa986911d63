"""The continual-learning methods, one short file each; the registry derives from those files.

Every module of this package is imported, and every ``Method`` subclass with a
``name`` registers itself, so adding a method is adding a file (and its values
in profiles.py).
"""

from __future__ import annotations

import importlib
import pkgutil

from cl_regimes.config import ConfigError, check, check_choice
from cl_regimes.methods.base import REGISTRY, Method, Runs

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def names() -> tuple[str, ...]:
    """Every registered method: the reference points first, then the others by name."""
    return tuple(sorted(REGISTRY, key=lambda n: (not REGISTRY[n].reference, n)))


def get(name: str) -> type[Method]:
    check_choice("method", name, names())
    return REGISTRY[name]


def check_params(name: str, params: dict) -> None:
    """Raise ConfigError unless ``params`` are exactly the method's, each in its range."""
    valid = get(name).parameters()
    if set(params) != set(valid):
        bad = sorted(set(params) ^ set(valid))
        raise ConfigError(
            f"method {name!r}: bad or missing parameters {bad}; "
            f"it takes: {', '.join(valid) or 'none'}"
        )
    for key, value in params.items():
        check(f"{name}.{key}", value, valid[key])


def make(name: str, runs: Runs, params: dict) -> Method:
    check_params(name, params)
    return get(name)(runs, **params)


__all__ = ["Method", "Runs", "check_params", "get", "make", "names"]
