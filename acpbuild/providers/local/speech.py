"""Offline speech with eSpeak NG, loaded through ctypes from the espeakng-loader wheel.

eSpeak keeps one global state per process (current voice, rate, the synthesis
callback), so initialisation and every synthesis run under one module-level
lock: steps run on doit's thread pool, and two interleaved syntheses would mix
their samples and settings.

eSpeak also carries a little state from one utterance to the next, so the same
text can come out a few samples different from call to call within one
process. The output is therefore not byte-stable, unlike the text and images.
"""

from __future__ import annotations

import array
import ctypes
import os
import sys
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild.provider import Job, Outcome, ProviderError, RequestRejected, did_you_mean, files
from acpbuild.provider.media import run_ffmpeg

_PROVIDER = "local"

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_EE_OK = 0

_LOCK = threading.Lock()


class _Voice(ctypes.Structure):
    # espeak_VOICE; ``languages`` is a run of (priority byte, NUL-terminated
    # name) pairs, so it is read as a raw pointer, not as one C string.
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass
class _Engine:
    """The loaded library and what it told us at initialisation."""

    lib: ctypes.CDLL
    sample_rate: int
    data_path: Path
    voices: dict[str, str]  # lower-cased name, language or identifier -> identifier
    callback: Any  # kept referenced: eSpeak holds a raw pointer to it
    samples: array.array[int]


_engine: _Engine | None = None


def _load() -> _Engine:
    """Load and initialise eSpeak NG once per process. Call with ``_LOCK`` held."""
    global _engine
    if _engine is not None:
        return _engine
    try:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = Path(espeakng_loader.get_data_path())
    except (ImportError, OSError, RuntimeError) as exc:
        raise ProviderError(
            f"eSpeak NG is not available ({exc}); install it with `pip install espeakng-loader`",
            provider=_PROVIDER,
        ) from exc
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]

    path = os.fsencode(data_path)
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)
    if rate <= 0:
        raise ProviderError(
            f"eSpeak NG failed to initialise with data at {data_path}", provider=_PROVIDER
        )
    samples: array.array[int] = array.array("h")

    def collect(wav: Any, count: int, _events: Any) -> int:
        if wav and count > 0:
            samples.extend(ctypes.cast(wav, ctypes.POINTER(ctypes.c_short * count)).contents)
        return 0  # 0: carry on synthesising

    callback = _SYNTH_CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    _engine = _Engine(lib, rate, data_path, _list_voices(lib), callback, samples)
    return _engine


def _list_voices(lib: ctypes.CDLL) -> dict[str, str]:
    """Every spelling of each installed voice that a recipe might use -> its identifier."""
    found: dict[str, str] = {}
    table = lib.espeak_ListVoices(None)
    i = 0
    while table[i]:
        voice = table[i].contents
        i += 1
        ident = (voice.identifier or b"").decode("utf-8", "replace")
        if not ident:
            continue
        names = [ident, ident.rsplit("/", 1)[-1], (voice.name or b"").decode("utf-8", "replace")]
        offset = 0
        # Pairs of (priority byte, name) until an empty name.
        while voice.languages:
            lang = ctypes.string_at(voice.languages + offset + 1)
            if not lang:
                break
            names.append(lang.decode("utf-8", "replace"))
            offset += len(lang) + 2
        for name in names:
            found.setdefault(name.strip().lower(), ident)
    return found


def _set_voice(engine: _Engine, voice: str) -> None:
    """Make ``voice`` current, or raise RequestRejected saying what exists."""
    base, _, variant = voice.strip().partition("+")
    if variant:
        # eSpeak silently ignores an unknown variant, so check the file ourselves.
        variants = engine.data_path / "voices" / "!v"
        if "/" in variant or "\\" in variant or not (variants / variant).is_file():
            known = sorted(p.name for p in variants.iterdir()) if variants.is_dir() else []
            tip = did_you_mean(variant, known, show='"{}"'.format)
            raise RequestRejected(
                f'unknown eSpeak voice variant "{variant}"' + (f"; {tip}" if tip else ""),
                provider=_PROVIDER,
            )
    suffix = f"+{variant}" if variant else ""
    # eSpeak's own reading of the name first ("en", "de", "English (America)"),
    # then our table, which also knows language codes such as "en-gb" and "fr-fr".
    for candidate in (base, engine.voices.get(base.lower())):
        if candidate and engine.lib.espeak_SetVoiceByName((candidate + suffix).encode()) == _EE_OK:
            return
    tip = did_you_mean(base.lower(), sorted(engine.voices), show='"{}"'.format)
    said = f'unknown eSpeak voice "{voice}"' + (f"; {tip}" if tip else ".")
    raise RequestRejected(
        f'{said} Use a language code such as "en", "en-us" '
        'or "de", optionally with a variant such as "en+f3"',
        provider=_PROVIDER,
    )


def synthesize(
    text: str, voice: str = "en", speed: int = 175, pitch: int = 50
) -> tuple[array.array[int], int]:
    """Mono 16-bit samples of ``text`` spoken, and their sample rate."""
    with _LOCK:
        engine = _load()
        _set_voice(engine, voice)
        lib = engine.lib
        lib.espeak_SetParameter(_ESPEAK_RATE, int(speed), 0)
        lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
        del engine.samples[:]
        data = text.encode("utf-8")
        # The size includes the terminating NUL, as speak_lib.h asks.
        status = lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        lib.espeak_Synchronize()
        if status != _EE_OK:
            raise ProviderError(f"eSpeak synthesis failed (status {status})", provider=_PROVIDER)
        samples = array.array("h", engine.samples)
        del engine.samples[:]
        return samples, engine.sample_rate


def write_wav(path: Path, samples: array.array[int], rate: int) -> None:
    """Write ``samples`` as a mono 16-bit little-endian WAV."""
    if sys.byteorder != "little":  # pragma: no cover - WAV is little-endian
        samples = array.array("h", samples)
        samples.byteswap()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def generate_speech(job: Job, params: dict[str, Any]) -> Outcome:
    text: str = params["text"]
    if not text.strip():
        raise RequestRejected("text_to_speech needs some text to say", provider=_PROVIDER)
    suffix = job.output.suffix.lower()
    if suffix not in (".wav", ".mp3"):
        raise RequestRejected(
            f"cannot write speech as {suffix or 'a file without a suffix'}; use .wav or .mp3",
            provider=_PROVIDER,
        )
    samples, rate = synthesize(text, params["voice"], params["speed"], params["pitch"])
    if not samples:
        raise ProviderError("eSpeak produced no audio for this text", provider=_PROVIDER)
    seconds = len(samples) / rate
    if suffix == ".wav":
        write_wav(job.output, samples, rate)
    else:
        # Encode outside the eSpeak lock: ffmpeg needs no global state.
        tmp = files.temp_file(job.output.parent, prefix=".espeak-", suffix=".wav")
        try:
            write_wav(tmp, samples, rate)
            run_ffmpeg(
                ["-i", tmp, "-c:a", "libmp3lame", "-q:a", "4", job.output], timeout=job.timeout_s
            )
        finally:
            tmp.unlink(missing_ok=True)
            files.forget(tmp)
    return Outcome(
        usage={"characters": len(text), "seconds": round(seconds, 3)},
        meta={"voice": params["voice"], "sample_rate": rate},
    )
