"""What a step will cost, from its own parameters, before it runs.

The estimate turns a step's parameters into the usage its price is billed on
(images, megapixels, seconds, characters, tokens), then prices that usage with
:func:`acpbuild.money.cost`, the same function that prices the real output
afterwards, so an estimate and an actual cost differ only where the usage does.

Some usage is unknown until an upstream step has run; those figures are
guesses, and the :class:`Estimate` says so:

- a text made by another step: that step's ``max_tokens`` x 4 characters
  (:data:`CHARS_PER_TOKEN`), or :data:`DEFAULT_TEXT_CHARS` for a local step;
- the length of a media file made by another step: its ``duration_s``, speech
  at :data:`SPEECH_CHARS_PER_S`, else :data:`DEFAULT_MEDIA_S`;
- output tokens of a model call with no ``max_tokens``: :data:`DEFAULT_OUTPUT_TOKENS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild import money
from acpbuild.provider import FILE_TYPES, Model

CHARS_PER_TOKEN = 4
#: output tokens assumed for a text call that sets no ``max_tokens`` (thinking tokens included)
DEFAULT_OUTPUT_TOKENS = 8192
#: input tokens an image costs a vision model (Gemini counts 258 per 768 px tile; a generous figure)
IMAGE_INPUT_TOKENS = 1290
#: characters assumed for a text made by a local step
DEFAULT_TEXT_CHARS = 1000
#: speaking rate used to guess the length of speech not yet generated
SPEECH_CHARS_PER_S = 15
#: seconds assumed for a media input whose length cannot be known before the run
DEFAULT_MEDIA_S = 10.0

#: fal's named image sizes in pixels (width, height)
FAL_IMAGE_SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


@dataclass(frozen=True)
class Estimate:
    """A step's expected cost; ``formula`` shows the arithmetic; ``guess`` why it may be off."""

    usd: float
    formula: str
    guess: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"usd": round(self.usd, 6), "formula": self.formula, "guess": self.guess or None}


FREE = Estimate(0.0, "free")


@dataclass(frozen=True)
class Unknown:
    """Stands in for an upstream output that does not exist yet, with what it is expected to be."""

    chars: int = 0
    seconds: float = DEFAULT_MEDIA_S
    why: str = ""

    def __str__(self) -> str:  # a text reference inside a longer string
        return "x" * self.chars


def _money(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 0.01 and round(usd, 2) == usd else f"${usd:g}"


def _text_len(value: Any) -> int:
    return value.chars if isinstance(value, Unknown) else len(str(value)) if value is not None else 0


def _seconds_of(value: Any) -> tuple[float, str]:
    if isinstance(value, Unknown):
        return value.seconds, value.why
    if isinstance(value, (str, Path)) and Path(value).is_file():
        from acpbuild.errors import AcpbuildError
        from acpbuild.media import probe

        try:
            duration = probe(value).duration_s
        except AcpbuildError:
            duration = None
        if duration:
            return float(duration), ""
    return DEFAULT_MEDIA_S, f"length of {Path(str(value)).name} unknown, {DEFAULT_MEDIA_S:g} s assumed"


def estimate(provider: str, model: Model, kind: str, params: Mapping[str, Any], *, paid: bool = True) -> Estimate:
    """The cost of one generation with ``params`` (model defaults filled in; unknown upstream outputs as :class:`Unknown`)."""
    if not paid:
        return FREE
    price = money.price_of(provider, model.name)
    if price is None:
        return Estimate(0.0, "no price in the registry", guess="unpriced model")
    guesses: list[str] = []

    def text_len(value: Any) -> int:
        if isinstance(value, Unknown) and value.why:
            guesses.append(value.why)
        return _text_len(value)

    unit = price.unit
    usage: dict[str, float] = {}
    if unit == "image":
        usage["images"] = 1
        formula = f"1 image x {_money(price.usd)}"
    elif unit == "megapixel":
        width, height = _pixels(params)
        usage["megapixels"] = width * height / 1e6
        billed = money.cost(price, usage, params) / price.usd
        rounded = " (rounded up)" if price.round_up else ""
        formula = f"{width}x{height} = {usage['megapixels']:.2f} MP, {billed:g} MP{rounded} x {_money(price.usd)}/MP"
    elif unit == "second":
        if "duration_s" in params and isinstance(params["duration_s"], (int, float)):
            seconds, why = float(params["duration_s"]), ""
        else:
            media = next((params[n] for n, p in model.params_for(kind).items() if p.type in ("video", "audio") and n in params), None)
            seconds, why = _seconds_of(media)
        if why and why not in guesses:
            guesses.append(why)
        usage["seconds"] = seconds
        audio = price.usd_with_audio is not None and bool(params.get("generate_audio", False))
        rate = price.usd_with_audio if audio and price.usd_with_audio is not None else price.usd
        formula = f"{seconds:g} s x {_money(rate)}/s" + (" (with audio)" if audio else "")
    elif unit == "1k_characters":
        usage["characters"] = text_len(params.get("text"))
        formula = f"{usage['characters']:g} chars x {_money(price.usd)}/1k chars"
    elif unit == "1m_tokens":
        text = text_len(params.get("prompt")) + text_len(params.get("system"))
        images = sum(1 for n, p in model.params_for(kind).items() if p.type in FILE_TYPES and params.get(n) is not None)
        usage["input_tokens"] = -(-text // CHARS_PER_TOKEN) + images * IMAGE_INPUT_TOKENS
        max_tokens = params.get("max_tokens")
        if not isinstance(max_tokens, int):
            max_tokens = DEFAULT_OUTPUT_TOKENS
            guesses.append(f"no max_tokens: {DEFAULT_OUTPUT_TOKENS} output tokens assumed")
        usage["output_tokens"] = max_tokens
        formula = (
            f"{usage['input_tokens']:g} in x {_money(price.input_usd)}/1M"
            f" + {max_tokens:g} out x {_money(price.output_usd)}/1M"
        )
    else:  # "request"
        usage["requests"] = 1
        formula = f"1 request x {_money(price.usd)}"
    for name, value, factor in price.factors(params):
        formula += f" x {factor:g} ({name} {value})"
    return Estimate(money.cost(price, usage, params), formula, "; ".join(dict.fromkeys(guesses)))


def _pixels(params: Mapping[str, Any]) -> tuple[int, int]:
    width, height = params.get("width"), params.get("height")
    if isinstance(width, int) and isinstance(height, int):
        return width, height
    return FAL_IMAGE_SIZES.get(str(params.get("image_size") or "landscape_4_3"), FAL_IMAGE_SIZES["landscape_4_3"])


def expected_text(provider: str, model: Model, kind: str, params: Mapping[str, Any], *, paid: bool) -> Unknown:
    """What a text step not yet run is expected to produce: its ``max_tokens`` x 4 characters."""
    if not paid:
        return Unknown(DEFAULT_TEXT_CHARS, why=f"a local text, {DEFAULT_TEXT_CHARS} characters assumed")
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = DEFAULT_OUTPUT_TOKENS
    chars = max_tokens * CHARS_PER_TOKEN
    return Unknown(chars, why=f"text not yet written: {max_tokens} max_tokens x {CHARS_PER_TOKEN} = {chars} characters assumed")


def expected_media(kind: str, params: Mapping[str, Any]) -> Unknown:
    """What a media step not yet run is expected to produce: its length in seconds."""
    duration = params.get("duration_s")
    if isinstance(duration, (int, float)):
        return Unknown(seconds=float(duration), why="")
    if kind == "text_to_speech":
        seconds = max(1.0, _text_len(params.get("text")) / SPEECH_CHARS_PER_S)
        return Unknown(seconds=seconds, why=f"speech not yet made: {seconds:.0f} s assumed at {SPEECH_CHARS_PER_S} chars/s")
    for value in params.values():
        if isinstance(value, Unknown) and value.seconds:
            return value  # a mux or an upscale lasts as long as its input
    return Unknown(seconds=DEFAULT_MEDIA_S, why=f"media not yet made: {DEFAULT_MEDIA_S:g} s assumed")
