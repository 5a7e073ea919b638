"""The provider registry: names as recipes write them -> adapter classes, built in or from plugins.

The built-in adapters are named here. Plugins come from two places, merged in:

- installed packages that register an adapter in the ``acpbuild.providers``
  entry-point group (``runway = "acpbuild_runway.adapter:RunwayProvider"``);
- the user's config, ``providers = ["module:Class"]``, for a content repo's own
  adapter (the module is imported from the folder acpbuild runs in, or Python's path).

Plugins are looked for only when a name is not built in, or when every provider
is listed (``models``, ``schema``, ``info``, ``doctor``): ``--version``, the
no-op fast path and a recipe that names no plugin import none. Each plugin is
checked when it loads (a Provider subclass, a compatible ``api_version``, a
catalogue of Models, prices in the registry's format that agree with it); one
that fails is reported by :func:`broken` and skipped, so it only stops a recipe
that uses it. Importing an adapter module is cheap: each imports its SDK inside
``generate``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from acpbuild.provider import API_VERSION, Model, Param, Provider, compatible
from acpbuild.provider.prices import table_problems

__all__ = [
    "BUILT_IN",
    "Broken",
    "Origin",
    "broken",
    "catalogue",
    "is_known",
    "names",
    "origin",
    "plugin_prices",
    "provider_class",
]

_ADAPTERS: dict[str, str] = {
    "local": "acpbuild.providers.local:LocalProvider",
    "fal": "acpbuild.providers.fal.adapter:FalProvider",
    "elevenlabs": "acpbuild.providers.elevenlabs.adapter:ElevenLabsProvider",
    "google": "acpbuild.providers.google.gemini:GoogleProvider",
    "openrouter": "acpbuild.providers.openrouter.adapter:OpenRouterProvider",
}

#: the providers acpbuild ships, in the order they are listed
BUILT_IN: tuple[str, ...] = tuple(_ADAPTERS)

GROUP = "acpbuild.providers"


@dataclass(frozen=True)
class Origin:
    """Where a provider comes from: acpbuild itself, an installed package, or the user's config."""

    #: "built in", "entry point" or "config"
    via: str
    #: the distribution that ships it ("acpbuild", "acpbuild-runway"), or "" for a config module
    package: str
    version: str
    #: "module:Class"
    target: str

    def describe(self) -> str:
        if self.via == "built in":
            return "built in"
        if self.package:
            return f"plugin {self.package} {self.version}".rstrip()
        return f"plugin {self.target} (config)"


@dataclass(frozen=True)
class Broken:
    """A plugin that could not be used, and why."""

    name: str
    origin: Origin
    reason: str

    def describe(self) -> str:
        where = self.origin.package or self.origin.target
        return f"provider plugin {self.name!r} ({where}) skipped: {self.reason}"


@dataclass(frozen=True)
class _Plugins:
    classes: Mapping[str, type[Provider]]
    origins: Mapping[str, Origin]
    broken: tuple[Broken, ...]


def _config_targets(env: Mapping[str, str] | None) -> tuple[str, ...]:
    import os

    from acpbuild.config.user import load_config

    return load_config(os.environ if env is None else env).providers


def names(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every usable provider: the built-in ones, then the plugins by name."""
    return BUILT_IN + tuple(sorted(_plugins(_config_targets(env)).classes))


def is_known(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``name`` is a usable provider (plugins are looked for only when it is not built in)."""
    return name in _ADAPTERS or name in _seen or name in _plugins(_config_targets(env)).classes


def provider_class(name: str, env: Mapping[str, str] | None = None) -> type[Provider]:
    """The adapter class of provider ``name``; KeyError when there is none (a broken plugin says why).

    ``env`` is the environment whose config file may name plugins (default: the
    process's); a plugin loaded once in a process is found again without it.
    """
    if name in _ADAPTERS:
        return _built_in(name)
    if name in _seen:
        return _seen[name][0]
    found = _plugins(_config_targets(env))
    if name in found.classes:
        return found.classes[name]
    why = next((b for b in found.broken if b.name == name), None)
    raise KeyError(why.describe() if why else f"unknown provider {name!r}")


def origin(name: str, env: Mapping[str, str] | None = None) -> Origin:
    """Where provider ``name`` comes from."""
    if name in _ADAPTERS:
        from acpbuild.version import __version__

        return Origin("built in", "acpbuild", __version__, _ADAPTERS[name])
    if name in _seen:
        return _seen[name][1]
    return _plugins(_config_targets(env)).origins[name]


def broken(env: Mapping[str, str] | None = None) -> tuple[Broken, ...]:
    """The plugins found that could not be loaded, each with the reason."""
    return _plugins(_config_targets(env)).broken


def catalogue(name: str, env: Mapping[str, str] | None = None) -> Mapping[str, Model]:
    """The catalogue of provider ``name`` (no SDK is imported)."""
    return provider_class(name, env)({}).catalogue()


def plugin_prices(name: str, env: Mapping[str, str] | None = None) -> Mapping[str, Mapping[str, Any]] | None:
    """A plugin's price table by model, or None when ``name`` is built in or no usable plugin.

    Built-in prices live with the money code; a plugin brings its own.
    """
    if name in _ADAPTERS:
        return None
    cls = _seen[name][0] if name in _seen else _plugins(_config_targets(env)).classes.get(name)
    return None if cls is None else _prices_of(cls)


@cache
def _built_in(name: str) -> type[Provider]:
    module_name, _, cls_name = _ADAPTERS[name].partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), cls_name)
    return cls


@cache
def _prices_of(cls: type[Provider]) -> Mapping[str, Mapping[str, Any]]:
    return cls.price_table()


# every plugin loaded in this process, whichever config named it, with where it came from
_seen: dict[str, tuple[type[Provider], Origin]] = {}


@cache
def _plugins(config_targets: tuple[str, ...]) -> _Plugins:
    classes: dict[str, type[Provider]] = {}
    origins: dict[str, Origin] = {}
    bad: list[Broken] = []
    for name, found in [*_entry_points(), *_configured(config_targets)]:
        if isinstance(found, Broken):
            bad.append(found)
            continue
        cls, where = found
        if name in _ADAPTERS or name in classes:
            taken = "acpbuild's own" if name in _ADAPTERS else f"taken by {origins[name].describe()}"
            bad.append(Broken(name, where, f"the name {name!r} is {taken}"))
            continue
        reason = _unfit(name, cls)
        if reason:
            bad.append(Broken(name, where, reason))
            continue
        classes[name], origins[name] = cls, where
        _seen.setdefault(name, (cls, where))
    return _Plugins(classes, origins, tuple(bad))


_Found = tuple[str, "tuple[type[Provider], Origin] | Broken"]


def _entry_points() -> list[_Found]:
    from importlib.metadata import entry_points

    found: list[_Found] = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        dist = point.dist
        where = Origin("entry point", dist.name if dist else "", dist.version if dist else "", point.value)
        try:
            loaded = point.load()
        except Exception as exc:  # noqa: BLE001 — a plugin's import may fail in any way; it must not stop acpbuild
            found.append((point.name, Broken(point.name, where, f"cannot import {point.value}: {_short(exc)}")))
            continue
        found.append((point.name, _as_class(point.name, loaded, where)))
    return found


def _configured(targets: tuple[str, ...]) -> list[_Found]:
    import os

    found: list[_Found] = []
    for target in targets:
        module_name, _, attr = target.partition(":")
        where = Origin("config", "", "", target)
        label = attr
        added = os.getcwd() not in sys.path
        if added:  # a content repo's own module, next to its recipes
            sys.path.insert(0, os.getcwd())
        try:
            loaded = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # noqa: BLE001 — as above: reported, never fatal
            found.append((label, Broken(label, where, f"cannot import {target}: {_short(exc)}")))
            continue
        finally:
            if added:
                sys.path.remove(os.getcwd())
        name = getattr(loaded, "name", "") or label
        found.append((name, _as_class(name, loaded, where)))
    return found


def _as_class(name: str, loaded: object, where: Origin) -> tuple[type[Provider], Origin] | Broken:
    if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
        return Broken(name, where, f"{where.target} is not a subclass of acpbuild.provider.Provider")
    return loaded, where


def _unfit(name: str, cls: type[Provider]) -> str | None:
    """Why a plugin's class cannot serve, or None when it can."""
    if cls.name != name:
        return f"it is registered as {name!r} but its class says name = {cls.name!r}"
    if not cls.api_version:
        return f"it declares no api_version (this acpbuild has API {API_VERSION})"
    if not compatible(cls.api_version):
        return f"it was written for API {cls.api_version}; this acpbuild has API {API_VERSION}"
    try:
        models = cls({}).catalogue()
        problems = _catalogue_problems(models)
        if not problems:
            problems = table_problems(_prices_of(cls), models, paid=cls.paid)
    except Exception as exc:  # noqa: BLE001 — a catalogue or price file that fails to build is a broken plugin
        return f"its catalogue or prices cannot be read: {_short(exc)}"
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return problems[0] + more
    return None


def _catalogue_problems(models: object) -> list[str]:
    if not isinstance(models, Mapping) or not models:
        return ["its catalogue is empty or not a mapping of model keys to Models"]
    problems = []
    for key, model in models.items():
        if not isinstance(model, Model):
            problems.append(f"catalogue entry {key!r} is not a Model")
        elif model.name != key:
            problems.append(f"catalogue entry {key!r} is a Model named {model.name!r}")
        elif not model.endpoints:
            problems.append(f"model {key!r} serves no kind")
        elif not all(isinstance(p, Param) for p in model.params.values()):
            problems.append(f"model {key!r} has a parameter that is not a Param")
    return problems


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
