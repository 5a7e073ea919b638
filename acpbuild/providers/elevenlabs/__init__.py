"""ElevenLabs: the adapter (``adapter``) and its model catalogue (``models``)."""

from acpbuild.providers.elevenlabs.adapter import ElevenLabsProvider

__all__ = ["ElevenLabsProvider"]
