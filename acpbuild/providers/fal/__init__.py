"""fal.ai: the adapter (``adapter``) and its model catalogue (``models``)."""

from acpbuild.providers.fal.adapter import FalProvider

__all__ = ["FalProvider"]
