"""The built-in local provider: the adapter (``adapter``), its catalogue (``models``), one module per kind of media."""

from acpbuild.providers.local.adapter import LocalProvider

__all__ = ["LocalProvider"]
