"""The ElevenLabs catalogue: its text-to-speech models, their parameters, and the output formats.

Catalogue keys are ElevenLabs' own model ids; prices live in
``acpbuild/money/prices/elevenlabs.toml``.
"""

from __future__ import annotations

import re
from typing import Any

from acpbuild.provider import Model, Param

KIND = "text_to_speech"

# The SDK's own output formats that fit a file suffix acpbuild accepts for audio.
# (pcm_*, ulaw/alaw and opus have no container we can name, so they are not offered.)
MP3_FORMATS = (
    "mp3_22050_32",
    "mp3_24000_48",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
)
WAV_FORMATS = tuple(f"wav_{rate}" for rate in (8000, 16000, 22050, 24000, 32000, 44100, 48000))
DEFAULT_FORMAT = {".mp3": "mp3_44100_128", ".wav": "wav_44100"}

# "George", a premade voice every account has; an id needs no lookup.
DEFAULT_VOICE = "JBFqnCBsd6RMkjVDRZzb"

# The most characters of text one request may carry, by model
# (https://elevenlabs.io/docs/models#character-limits); a longer text is refused
# with 400 max_character_limit_exceeded.
MAX_CHARS = {
    "eleven_multilingual_v2": 10_000,
    "eleven_v3": 5_000,
    "eleven_flash_v2_5": 40_000,
    "eleven_turbo_v2_5": 40_000,
}

# The languages Flash and Turbo v2.5 enforce with language_code: Multilingual v2's
# 29 and hu, no, vi (https://elevenlabs.io/docs/models). Any other code is refused
# with 400 unsupported_language.
V25_LANGUAGES = (
    "ar", "bg", "cs", "da", "de", "el", "en", "es", "fi", "fil", "fr", "hi", "hr", "hu", "id",
    "it", "ja", "ko", "ms", "nl", "no", "pl", "pt", "ro", "ru", "sk", "sv", "ta", "tr", "uk",
    "vi", "zh",
)
# eleven_v3 speaks 70+ languages and takes their ISO 639-1 codes (it refuses "eng").
ISO_639_1 = re.compile(r"[a-z]{2}")


def _unit(help: str, **kw: Any) -> Param:
    return Param("float", min=0.0, max=1.0, help=help, **kw)


def _params(*, languages: tuple[str, ...] | None, v3: bool) -> dict[str, Param]:
    """``languages``: the codes ``language_code`` takes, () for any ISO 639-1 code, None: none."""
    params = {
        "text": Param("str", required=True, help="the text to speak"),
        "voice": Param(
            "str",
            default=DEFAULT_VOICE,
            help="a voice name from your ElevenLabs account (e.g. 'Rachel') or a voice id",
        ),
        # eleven_v3 only accepts three stability presets: creative, natural, robust.
        "stability": (
            Param("float", choices=(0.0, 0.5, 1.0), help="0 creative, 0.5 natural, 1 robust")
            if v3
            else _unit("lower is more expressive, higher more consistent")
        ),
        "similarity_boost": _unit("how closely to match the original voice"),
        "style": _unit("style exaggeration; 0 is fastest and most stable"),
        "use_speaker_boost": Param("bool", help="boost similarity to the speaker"),
        "speed": Param("float", min=0.7, max=1.2, help="speaking rate; 1.0 is normal"),
        "seed": Param("int", min=0, max=4294967295, help="best-effort deterministic sampling"),
        "output_format": Param(
            "str",
            choices=MP3_FORMATS + WAV_FORMATS,
            help="default from the output suffix: .mp3 -> mp3_44100_128, .wav -> wav_44100 "
            "(44.1 kHz WAV and 192 kbps MP3 need a higher ElevenLabs plan)",
        ),
    }
    if languages is not None:
        params["language_code"] = Param(
            "str", choices=languages or None, help="ISO 639-1 code to enforce a language"
        )
    return params


# Catalogue keys are ElevenLabs' own model ids.
CATALOGUE: dict[str, Model] = {
    "eleven_multilingual_v2": Model(
        "eleven_multilingual_v2",
        {KIND: "eleven_multilingual_v2"},
        # Multilingual v2 enforces no language: language_code is refused or ignored.
        _params(languages=None, v3=False),
        "Multilingual v2: stable, lifelike speech in 29 languages.",
    ),
    "eleven_v3": Model(
        "eleven_v3",
        {KIND: "eleven_v3"},
        _params(languages=(), v3=True),
        "Eleven v3: the most expressive model, audio tags, 70+ languages.",
    ),
    "eleven_flash_v2_5": Model(
        "eleven_flash_v2_5",
        {KIND: "eleven_flash_v2_5"},
        _params(languages=V25_LANGUAGES, v3=False),
        "Flash v2.5: lowest latency, half the price per character.",
    ),
    "eleven_turbo_v2_5": Model(
        "eleven_turbo_v2_5",
        {KIND: "eleven_turbo_v2_5"},
        _params(languages=V25_LANGUAGES, v3=False),
        "Turbo v2.5: low latency, half the price per character.",
    ),
}
