"""An ElevenLabs API emulator: text to speech, voices and the subscription.

Speaks what the ``elevenlabs`` SDK sends (PROVIDERS.md section 2): the key in
``xi-api-key``, ``POST /v1/text-to-speech/{voice_id}?output_format=...`` with a
JSON body answered by raw audio bytes, ``GET /v1/voices``, the paginated
``GET /v2/voices`` and ``GET /v1/user/subscription``. Errors are JSON
``{"detail": {"status", "message"}}`` like the real service's.
"""

from __future__ import annotations

import io
import re
import wave
from typing import Any

from . import Emulator, Request, Response

KEY = "test-el-key-0000"

TTS = r"/v1/text-to-speech/[^/]+"

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
        codec, rate, *rest = fmt.split("_")
        if codec == "wav":
            audio, kind = wav_bytes(int(rate)), "audio/wav"
        elif codec == "mp3":
            audio, kind = mp3_bytes(kbps=int(rest[0])), "audio/mpeg"
        else:
            return error(400, "invalid_output_format", f"unsupported output format {fmt}")
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
