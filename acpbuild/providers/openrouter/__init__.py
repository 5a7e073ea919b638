"""OpenRouter: the adapter (``adapter``) and its model catalogue (``models``)."""

from acpbuild.providers.openrouter.adapter import OpenRouterProvider

__all__ = ["OpenRouterProvider"]
