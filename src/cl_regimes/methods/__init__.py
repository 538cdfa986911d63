"""The continual-learning methods, one short file each; the registry derives from those files.

Every module of this package is imported, and every ``Method`` subclass with a
``name`` registers itself, so adding a method to the library is adding a file (and its
values in profiles.py). A method of one's own needs no edit here (a plug-in): given by
path, ``--method mypkg.module:MyMethod`` (``load``), or declared by an installed
package in the entry-point group ``cl_regimes.methods``, whose key is another name for
it (records and cards use the class's ``name``). Only the class named is registered,
not the module's other methods; one given by path takes the place of an installed one
of the same name (a development copy beside its installed release). Its settings'
values are its constructor's defaults, overridden with ``--set <name>.<setting>=value``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from importlib.metadata import entry_points

from cl_regimes.config import ConfigError, check, check_choice
from cl_regimes.methods.base import REGISTRY, Method, Runs, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

ENTRY_POINTS = "cl_regimes.methods"
PATHS_ENV = "CL_REGIMES_METHODS"  # methods given by path, for the sweep's worker processes
ALIASES: dict[str, str] = {}  # entry-point key -> the name of the method it declares
BROKEN: dict[str, ConfigError] = {}  # entry-point key -> why its method cannot be loaded
_named: set[type[Method]] = set()  # the plug-in classes asked for by path or entry point
_installed: set[type[Method]] = set()  # those of them declared by an entry point
_discovered = False


def builtin_class(cls: type[Method]) -> bool:
    return cls.__module__.startswith(f"{__name__}.")


def builtin(name: str) -> bool:
    return builtin_class(get(name))


def _module_methods(module_name: str, spec: str, origin: str) -> dict[str, type[Method]]:
    """Import a plug-in's module; its Method classes with a name, by attribute. Those not
    asked for by name are unregistered (a module's test-only or helper methods). An
    installed method makes way for a class of its name given by path (a development copy
    of it): it is registered again only where the name stayed free."""
    by_path = not origin.startswith("entry point")
    installed = {name: cls for name, cls in REGISTRY.items() if by_path and cls in _installed}
    for name in installed:
        del REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a broken plug-in is one line, whatever it raises
        raise ConfigError(
            f"method {spec!r} ({origin}): cannot import {module_name!r}: "
            f"{type(err).__name__}: {err}"
        ) from None
    finally:
        for name, cls in installed.items():
            REGISTRY.setdefault(name, cls)
    found = {
        attr: cls
        for attr, cls in vars(module).items()
        if inspect.isclass(cls)
        and issubclass(cls, Method)
        and "name" in cls.__dict__
        and cls.__module__ == module.__name__
    }
    for cls in found.values():
        if cls not in _named and not builtin_class(cls) and REGISTRY.get(cls.name) is cls:
            del REGISTRY[cls.name]
    return found


def _import(spec: str, origin: str) -> type[Method]:
    """The class ``spec`` ("module:Class") names, checked and registered."""
    module_name, _, attr = spec.partition(":")
    found = _module_methods(module_name, spec, origin)
    listed = f"its methods: {', '.join(f'{module_name}:{a}' for a in found) or 'none'}"
    cls = found.get(attr)
    if cls is None:
        what = (
            f"{attr!r} is not a subclass of cl_regimes.methods.Method with a name"
            if attr and hasattr(sys.modules[module_name], attr)
            else f"{module_name!r} has no {attr!r}"
        )
        raise ConfigError(f"method {spec!r} ({origin}): {what}; {listed}")
    if origin.startswith("entry point"):
        _installed.add(cls)
    _named.add(cls)
    register(cls)
    cls.parameters()  # every setting annotated with its valid values
    return cls


def _paths() -> list[str]:
    """The methods given by path so far (``$CL_REGIMES_METHODS``, comma-separated)."""
    return list(filter(None, os.environ.get(PATHS_ENV, "").split(",")))


def _discover() -> None:
    """Register the plug-ins: installed entry points, then methods given by path. An
    installed plug-in that cannot be imported fails only a run that asks for it, so one
    broken package does not stop the library's own methods."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for point in entry_points(group=ENTRY_POINTS):
        try:
            ALIASES[point.name] = _import(point.value, f"entry point {point.name!r}").name
        except ConfigError as err:
            BROKEN[point.name] = err
    for spec in _paths():
        _import(spec, f"${PATHS_ENV}")


def _unknown(method: str) -> ConfigError:
    """Unknown method ``method``: the valid names, and the module:Class form, with the
    classes of ``method`` when it is a module (``--method mypkg.module`` without ``:Class``)."""
    text = (
        f"unknown method {method!r}; valid: {', '.join(names())}, "
        "or a method of your own as module:Class"
    )
    try:  # the standard library's modules hold no methods ("this" would print a poem)
        is_module = method.split(".")[0] not in sys.stdlib_module_names and bool(
            importlib.util.find_spec(method)
        )
    except (ImportError, ValueError):
        is_module = False
    if is_module:
        found = _module_methods(method, method, "a module")
        text += (
            f" (did you mean {' or '.join(f'{method}:{a}' for a in found)}?)"
            if found
            else f" ({method!r} is a module with no Method subclass with a name)"
        )
    return ConfigError(text)


def load(method: str) -> str:
    """A method's name: a registered name as it is, an entry point's key as the name of
    the method it declares; ``module:Class`` imported, registered and remembered in
    $CL_REGIMES_METHODS for worker processes. Raises ConfigError for anything else."""
    _discover()
    if ":" not in method:
        if method in REGISTRY:
            return method
        if method in ALIASES:
            return ALIASES[method]
        if method in BROKEN:
            raise BROKEN[method]
        raise _unknown(method)
    name = _import(method, "given by path").name
    os.environ[PATHS_ENV] = ",".join(dict.fromkeys([*_paths(), method]))
    return name


def names(plugins: bool = True) -> tuple[str, ...]:
    """Registered methods, the reference points first, then the others by name (the
    library's own only with ``plugins=False``: what a profile's grid holds)."""
    _discover()
    chosen = [n for n in REGISTRY if plugins or builtin_class(REGISTRY[n])]
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
