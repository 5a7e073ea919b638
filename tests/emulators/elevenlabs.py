"""An ElevenLabs API emulator: text to speech, voices and the subscription.

Speaks what the ``elevenlabs`` SDK sends (PROVIDERS.md section 2): the key in
``xi-api-key``, ``POST /v1/text-to-speech/{voice_id}?output_format=...`` with a
JSON body answered by raw audio bytes, ``GET /v1/voices``, the paginated
``GET /v2/voices`` and ``GET /v1/user/subscription``. Errors are JSON
``{"detail": {"status", "message"}}`` like the real service's, and FastAPI's
``{"detail": [{"type", "loc", "msg", "input"}]}`` (422) where a field has the wrong type.

It refuses what the real text-to-speech endpoint refuses. Its facts are its own
copies (it never reads acpbuild's catalogue), so a catalogue that drifts from
the API fails against it:

| Rule | Refusal | Source |
|---|---|---|
| ``model_id`` is a text-to-speech model id: ``eleven_v3``, ``eleven_multilingual_v2``, ``eleven_flash_v2_5``, ``eleven_turbo_v2_5``, ``eleven_flash_v2``, ``eleven_turbo_v2``, and the legacy ``eleven_multilingual_v1``, ``eleven_monolingual_v1`` | 400 ``model_not_found`` "A model with model ID … does not exist or is not available to you." | [1] model tables; the status, code and words as ElevenLabs answers them in public reports (elevenlabs-python#163, talk-to-chatgpt#182) |
| ``text`` at most 5,000 characters on ``eleven_v3``, 10,000 on the multilingual models, 40,000 on the v2.5 Flash/Turbo models, 30,000 on the v2 ones | 400 ``max_character_limit_exceeded`` | [1] "Character limits" (v3 was 3,000 while in alpha; 5,000 since GA, as every model listing of 2026 gives it); code: ElevenLabs help centre "Error codes" |
| ``voice_settings.stability``, ``similarity_boost`` and ``style`` within 0..1 | 400 ``invalid_voice_settings`` "Invalid setting for stability received, expected to be greater or equal to 0.0 and less or equal to 1.0, received 2.0." | [2] (sliders of 0 to 100%); the bounds as the API states them in that message (a public error survey, 2025-06) |
| ``voice_settings.speed`` within 0.7..1.2 | 400 ``invalid_voice_settings``, worded as above | [3] "Values below 1.0 will slow the voice down, to a minimum of 0.7 … to a maximum of 1.2" |
| on ``eleven_v3``, ``stability`` is 0.0, 0.5 or 1.0 (Creative, Natural, Robust) | 400 ``invalid_ttd_stability`` "Invalid TTD stability value. Must be one of: [0.0, 0.5, 1.0]" | [4] "Stability"; the code and message as the API answers them (many public reports, e.g. n8n and ElevenLabs-v3 migration notes) |
| the voice settings are numbers, ``use_speaker_boost`` a boolean; ``seed`` an integer 0..4294967295 | 422 ``{"detail": [{"type": "float_parsing" / "bool_parsing" / "int_parsing" / "less_than_equal" …}]}`` | [5] ``VoiceSettingsResponseModel`` (number / boolean), ``seed`` ("Must be integer between 0 and 4294967295"), the 422 ``HTTPValidationError`` |
| ``language_code`` only on models that enforce a language: on v2.5 Flash/Turbo one of their 32 languages, on ``eleven_v3`` an ISO 639-1 code; on every other model it is refused | 400 ``unsupported_language`` "Model 'eleven_multilingual_v2' does not support the language_code hu." | [5] ("Currently only Turbo v2.5 and Flash v2.5 support language enforcement. For other models, an error will be returned"); [6] (v3 takes it too, multilingual v2 does not); [1] languages per model; the message as the API answers it (public reports for multilingual v2, and for v3 given the three-letter "eng") |
| ``output_format`` is one the API names | 422 ``{"detail": [{"type": "enum", "loc": ["query", "output_format"], …}]}`` | [6] ``TextToSpeechConvertRequestOutputFormat`` (the SDK's enum, generated from the API definition) |

Not modelled: plan tiers (``mp3_44100_192`` needs Creator, 44.1 kHz PCM/WAV needs
Pro: 403 ``output_format_not_allowed``), which a test scripts with :meth:`fail`.
Where the sources disagree the emulator refuses: ElevenLabs support said in
2026 that ``language_code`` on multilingual v2 is now ignored rather than
refused ([6] says "not supported"), and a parameter silently ignored is a bug
for acpbuild all the same.

[1] https://elevenlabs.io/docs/models (models overview, character limits; also
``fern/docs/pages/models.mdx`` in github.com/elevenlabs/elevenlabs-docs)
[2] https://elevenlabs.io/docs/product-guides/playground/text-to-speech#settings
[3] https://elevenlabs.io/docs/best-practices/prompting/controls#speed
[4] https://elevenlabs.io/docs/best-practices/prompting/eleven-v3#settings
[5] https://elevenlabs.io/docs/api-reference/text-to-speech/convert (the OpenAPI
document ``fern/apis/api/openapi.json`` in elevenlabs-docs, 2025-08)
[6] the ``elevenlabs`` SDK 2.78.0, ``text_to_speech/client.py`` and
``text_to_speech/types/text_to_speech_convert_request_output_format.py``
"""

from __future__ import annotations

import io
import re
import wave
from dataclasses import dataclass
from typing import Any

from . import Emulator, Request, Response

KEY = "test-el-key-0000"

TTS = r"/v1/text-to-speech/[^/]+"

# The languages of Multilingual v2 ([1]); Flash and Turbo v2.5 add hu, no and vi.
_V2_LANGUAGES = frozenset(
    ["en", "ja", "zh", "de", "hi", "fr", "ko", "pt", "it", "es", "id", "nl", "tr", "fil", "pl"]
    + ["sv", "bg", "ro", "ar", "cs", "el", "fi", "hr", "ms", "sk", "da", "ta", "uk", "ru"]
)
_V25_LANGUAGES = _V2_LANGUAGES | {"hu", "no", "vi"}
#: eleven_v3 takes any ISO 639-1 code (its 70+ languages are listed by name in [1])
ISO_639_1 = re.compile(r"[a-z]{2}")


@dataclass(frozen=True)
class TtsModel:
    """What one text-to-speech model accepts."""

    #: the most characters of ``text`` one request may carry
    max_chars: int
    #: the ``language_code`` values it enforces: a set, a pattern, or None (it takes none)
    languages: frozenset[str] | re.Pattern[str] | None = None
    #: the only stability values it takes (None: any in 0..1)
    stabilities: tuple[float, ...] | None = None


#: model id -> what it accepts ([1], [5], [6]; see the module docstring)
MODELS: dict[str, TtsModel] = {
    "eleven_v3": TtsModel(5_000, ISO_639_1, (0.0, 0.5, 1.0)),
    "eleven_multilingual_v2": TtsModel(10_000),
    "eleven_flash_v2_5": TtsModel(40_000, _V25_LANGUAGES),
    "eleven_turbo_v2_5": TtsModel(40_000, _V25_LANGUAGES),
    "eleven_flash_v2": TtsModel(30_000),
    "eleven_turbo_v2": TtsModel(30_000),
    "eleven_multilingual_v1": TtsModel(10_000),
    "eleven_monolingual_v1": TtsModel(10_000),
}

#: the API's own output formats ([6]), as the SDK 2.78.0 enumerates them
OUTPUT_FORMATS = frozenset(
    ["mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96"]
    + ["mp3_44100_128", "mp3_44100_192"]
    + [f"pcm_{r}" for r in (8000, 16000, 22050, 24000, 32000, 44100, 48000)]
    + [f"wav_{r}" for r in (8000, 16000, 22050, 24000, 32000, 44100, 48000)]
    + ["ulaw_8000", "alaw_8000"]
    + [f"opus_48000_{k}" for k in (32, 64, 96, 128, 192)]
)

#: voice setting -> its (lowest, highest) value ([2], [3])
SETTING_RANGES: dict[str, tuple[float, float]] = {
    "stability": (0.0, 1.0),
    "similarity_boost": (0.0, 1.0),
    "style": (0.0, 1.0),
    "speed": (0.7, 1.2),
}
SEED_MAX = 4_294_967_295

VOICES: list[dict[str, Any]] = [
    {"voice_id": "21m00Tcm4TlvDq8ikWAM", "name": "Rachel", "category": "premade"},
    {"voice_id": "JBFqnCBsd6RMkjVDRZzb", "name": "George", "category": "premade"},
    {
        "voice_id": "EXAVITQu4vr4xnSDxMaL",
        "name": "Sarah - Mature, Reassuring",
        "category": "premade",
    },
    {"voice_id": "pNInz6obpgDQGcFMaJgB", "name": "Adam", "category": "premade"},
    {"voice_id": "ErXwobaYiN019PkySvjV", "name": "Antoni", "category": "premade"},
]


def mp3_bytes(seconds: float = 0.5, kbps: int = 128) -> bytes:
    """An ID3 tag then MPEG frame headers, sized like ``seconds`` of CBR audio."""
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    frame = b"\xff\xfb\x90\x64" + b"\x00" * 413  # one 128 kbps / 44.1 kHz frame
    size = int(kbps * 1000 / 8 * seconds)
    body = (frame * (size // len(frame) + 1))[: size - len(tag)]
    return tag + body


def wav_bytes(rate: int, seconds: float = 0.25) -> bytes:
    """A real 16-bit mono WAV file of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


def error(status: int, code: str, message: str, **headers: str) -> Response:
    return Response(status, {"detail": {"status": code, "message": message}}, dict(headers))


def invalid(kind: str, loc: list[str | int], msg: str, given: Any) -> Response:
    """FastAPI's 422 for one field of the wrong type or out of its declared range."""
    return Response(422, {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": given}]})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def refusal(model_id: Any, body: dict[str, Any], output_format: str) -> Response | None:
    """What the real text-to-speech endpoint answers to a request it refuses, else None.

    Each rule is a row of the module docstring's table.
    """
    if output_format not in OUTPUT_FORMATS:
        allowed = ", ".join(f"'{f}'" for f in sorted(OUTPUT_FORMATS))
        return invalid(
            "enum", ["query", "output_format"], f"Input should be {allowed}", output_format
        )
    settings = body.get("voice_settings")
    if settings is not None and not isinstance(settings, dict):
        return invalid(
            "model_attributes_type",
            ["body", "voice_settings"],
            "Input should be a valid dictionary or object to extract fields from",
            settings,
        )
    for name, value in (settings or {}).items():
        if value is None:
            continue
        if name == "use_speaker_boost" and not isinstance(value, bool):
            return invalid(
                "bool_parsing",
                ["body", "voice_settings", name],
                "Input should be a valid boolean, unable to interpret input",
                value,
            )
        if name in SETTING_RANGES and not _number(value):
            return invalid(
                "float_parsing",
                ["body", "voice_settings", name],
                "Input should be a valid number, unable to parse string as a number",
                value,
            )
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            return invalid(
                "int_parsing",
                ["body", "seed"],
                "Input should be a valid integer, unable to parse string as an integer",
                seed,
            )
        if not 0 <= seed <= SEED_MAX:
            kind, bound = (
                ("greater_than_equal", "greater than or equal to 0")
                if seed < 0
                else ("less_than_equal", f"less than or equal to {SEED_MAX}")
            )
            return invalid(kind, ["body", "seed"], f"Input should be {bound}", seed)
    model = MODELS.get(model_id) if isinstance(model_id, str) else None
    if model is None:
        return error(
            400,
            "model_not_found",
            f"A model with model ID {model_id} does not exist or is not available to you.",
        )
    text = body.get("text") or ""
    if len(text) > model.max_chars:
        return error(
            400,
            "max_character_limit_exceeded",
            f"This request's text has {len(text)} characters and exceeds the character "
            f"limit of {model.max_chars} characters for model {model_id}.",
        )
    for name, (low, high) in SETTING_RANGES.items():
        value = (settings or {}).get(name)
        if value is not None and not low <= value <= high:
            return error(
                400,
                "invalid_voice_settings",
                f"Invalid setting for {name} received, expected to be greater or equal to "
                f"{low} and less or equal to {high}, received {float(value)}.",
            )
    stability = (settings or {}).get("stability")
    if model.stabilities and stability is not None and stability not in model.stabilities:
        return error(
            400,
            "invalid_ttd_stability",
            "Invalid TTD stability value. Must be one of: [0.0, 0.5, 1.0]",
        )
    code = body.get("language_code")
    if code is not None:
        known = model.languages
        fits = (
            (known.fullmatch(code) is not None)
            if isinstance(known, re.Pattern)
            else (known is not None and code in known)
        )
        if not fits:
            return error(
                400,
                "unsupported_language",
                f"Model '{model_id}' does not support the language_code {code}.",
            )
    return None


class ElevenLabsEmulator(Emulator):
    """Counts text-to-speech submissions in :attr:`submissions`."""

    def __init__(self, key: str = KEY, voices: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.key = key
        self.voices = list(VOICES if voices is None else voices)
        self.route("POST", TTS, self._tts, role="submit")
        self.route("GET", r"/v1/voices", self._voices_v1)
        self.route("GET", r"/v2/voices", self._voices_v2)
        self.route("GET", r"/v1/user/subscription", self._subscription)

    @property
    def submissions(self) -> int:
        return len(self.calls("POST", TTS))

    def _refuse(self, request: Request) -> Response | None:
        if request.headers.get("xi-api-key") != self.key:
            return error(401, "invalid_api_key", "Invalid API key")
        return None

    def _tts(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        voice_id = request.path.rsplit("/", 1)[1]
        if voice_id not in {v["voice_id"] for v in self.voices}:
            return error(
                404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found."
            )
        body = request.json() or {}
        text = body.get("text") or ""
        if not text.strip():
            return Response(422, {"detail": [{"loc": ["body", "text"], "msg": "Field required"}]})
        fmt = (request.query.get("output_format") or ["mp3_44100_128"])[0]
        # the API's default model when the body names none ([5])
        refused = refusal(body.get("model_id", "eleven_multilingual_v2"), body, fmt)
        if refused:
            return refused
        codec, rate, *rest = fmt.split("_")
        if codec == "wav":
            audio, kind = wav_bytes(int(rate)), "audio/wav"
        elif codec == "mp3":
            audio, kind = mp3_bytes(kbps=int(rest[0])), "audio/mpeg"
        else:  # raw PCM, u-law, a-law or Opus: acpbuild never asks for these
            audio, kind = b"\x00" * 1024, f"audio/{codec}"
        n = self.submissions
        return Response(
            200,
            audio,
            {
                "Content-Type": kind,
                "request-id": f"req-{n}",
                "history-item-id": f"hist-{n}",
                "character-cost": str(len(text)),
            },
        )

    def _voices_v1(self, request: Request, match: re.Match[str]) -> Response:
        return self._refuse(request) or Response(200, {"voices": self.voices})

    def _voices_v2(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        size = int((request.query.get("page_size") or ["10"])[0])
        start = int((request.query.get("next_page_token") or ["0"])[0])
        page = self.voices[start : start + size]
        more = start + size < len(self.voices)
        return Response(
            200,
            {
                "voices": page,
                "has_more": more,
                "total_count": len(self.voices),
                "next_page_token": str(start + size) if more else None,
            },
        )

    def _subscription(self, request: Request, match: re.Match[str]) -> Response:
        return self._refuse(request) or Response(
            200,
            {
                "tier": "creator",
                "character_count": 1234,
                "character_limit": 100000,
                "status": "active",
            },
        )
