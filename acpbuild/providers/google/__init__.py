"""Google: Gemini (``gemini``), Veo (``veo``), error translation (``errors``) and the catalogue (``models``)."""

from acpbuild.providers.google.gemini import GoogleProvider

__all__ = ["GoogleProvider"]
