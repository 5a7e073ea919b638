"""Provider registry: names as recipes write them -> adapter classes, imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache

from acpbuild.provider import Job, Journal, Model, Outcome, Param, Provider

__all__ = ["NAMES", "Job", "Journal", "Model", "Outcome", "Param", "Provider", "provider_class"]

# Importing an adapter module is cheap: each imports its SDK inside generate().
_ADAPTERS: dict[str, str] = {
    "local": "acpbuild.providers.local:LocalProvider",
    "fal": "acpbuild.providers.fal.adapter:FalProvider",
    "elevenlabs": "acpbuild.providers.elevenlabs.adapter:ElevenLabsProvider",
    "google": "acpbuild.providers.google.gemini:GoogleProvider",
    "openrouter": "acpbuild.providers.openrouter.adapter:OpenRouterProvider",
}

NAMES: tuple[str, ...] = tuple(_ADAPTERS)


@cache
def provider_class(name: str) -> type[Provider]:
    module_name, _, cls_name = _ADAPTERS[name].partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def catalogue(name: str) -> Mapping[str, Model]:
    """The catalogue of provider ``name`` (no SDK is imported)."""
    return provider_class(name)({}).catalogue()
