"""The continual-learning methods, one short file each; the registry derives from those files.

Every module of this package is imported, and every ``Method`` subclass with a
``name`` registers itself, so adding a method to the library is adding a file (and its
values in profiles.py). A method of one's own needs no edit here (a plug-in): given by
path, ``--method mypkg.module:MyMethod`` (``load``), or declared by an installed
package in the entry-point group ``cl_regimes.methods``. Its settings' values are its
constructor's defaults, overridden with ``--set <name>.<setting>=value``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from importlib.metadata import entry_points

from cl_regimes.config import ConfigError, check, check_choice
from cl_regimes.methods.base import REGISTRY, Method, Runs

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

ENTRY_POINTS = "cl_regimes.methods"
PATHS_ENV = "CL_REGIMES_METHODS"  # methods given by path, for the sweep's worker processes
_discovered = False


def builtin(name: str) -> bool:
    return REGISTRY[name].__module__.startswith(f"{__name__}.")


def _import(spec: str, origin: str) -> type[Method]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"method {spec!r} ({origin}): cannot import {module_name!r}: {err}"
        ) from None
    cls = getattr(module, attr, None)
    if not (inspect.isclass(cls) and issubclass(cls, Method) and "name" in cls.__dict__):
        raise ConfigError(
            f"method {spec!r} ({origin}): {attr!r} is not a subclass of "
            "cl_regimes.methods.Method with a name"
        )
    return cls


def _paths() -> list[str]:
    """The methods given by path so far (``$CL_REGIMES_METHODS``, comma-separated)."""
    return list(filter(None, os.environ.get(PATHS_ENV, "").split(",")))


def _discover() -> None:
    """Register the plug-ins: installed entry points, then methods given by path."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for point in entry_points(group=ENTRY_POINTS):
        _import(point.value, f"entry point {point.name!r}")
    for spec in _paths():
        _import(spec, f"${PATHS_ENV}")


def load(method: str) -> str:
    """A method's name: a registered name as it is; ``module:Class`` imported (which
    registers it) and remembered in $CL_REGIMES_METHODS for worker processes."""
    _discover()
    if ":" not in method:
        return method
    name = _import(method, "given by path").name
    os.environ[PATHS_ENV] = ",".join(dict.fromkeys([*_paths(), method]))
    return name


def names(plugins: bool = True) -> tuple[str, ...]:
    """Registered methods, the reference points first, then the others by name (the
    library's own only with ``plugins=False``: what a profile's grid holds)."""
    _discover()
    chosen = [n for n in REGISTRY if plugins or builtin(n)]
    return tuple(sorted(chosen, key=lambda n: (not REGISTRY[n].reference, n)))


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


__all__ = ["Method", "Runs", "check_params", "get", "load", "make", "names"]
