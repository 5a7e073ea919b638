"""What a step will cost, from its own parameters, before it runs.

The estimate turns a step's parameters into the usage its price is billed on
(images, megapixels, seconds, characters, tokens), then prices that usage with
:func:`acpbuild.money.cost`, the same function that prices the real output
afterwards, so an estimate and an actual cost differ only where the usage does.

Some usage is unknown until a step has run. There an :class:`Estimate` holds two
figures: what the step is expected to cost (``usd``), and the most it can cost
(``at_most``), and says why it is a guess:

- a text another step will write: what that step wrote last time, or the median of
  what its model wrote in earlier runs (:class:`Expected`, from the ledger); with no
  history, a prior for that kind of request (:data:`PRIOR_TEXT_TOKENS`), and at most
  its ``max_tokens`` x 4 characters (:data:`CHARS_PER_TOKEN`);
- output tokens of a model call: the same expectation; at most its ``max_tokens``,
  else :data:`DEFAULT_OUTPUT_TOKENS`;
- the length of a media file made by another step: its ``duration_s``, speech at
  :data:`SPEECH_CHARS_PER_S`, else :data:`DEFAULT_MEDIA_S`.

A plan is checked against a budget on the expected figure; the reservation each paid
call makes when it runs sees its real inputs and reserves at most its bound.

A step that sets no ``max_tokens`` has its model's catalogue default filled in
before it is estimated, and that default is what the adapter sends (4,096 for
OpenRouter's models, 16,384 for ``openai/gpt-5-mini``, 8,192 for Gemini), so
the bound counts what the call may really bill. :data:`DEFAULT_OUTPUT_TOKENS`
is only for a model whose catalogue gives ``max_tokens`` no default (a plugin's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild import money
from acpbuild.provider import FILE_TYPES, Model

CHARS_PER_TOKEN = 4
#: the most output tokens counted for a text call whose model's catalogue has no ``max_tokens``
#: default (thinking tokens included); a built-in model's own default is counted instead
DEFAULT_OUTPUT_TOKENS = 8192
#: output tokens a text call is expected to write when no earlier run says otherwise, per kind:
#: a short script, a post or a set of lines (about 200 words), a description of an image (about 100)
PRIOR_TEXT_TOKENS = {"text": 300, "image_understanding": 150}
#: input tokens an image costs a vision model (Gemini counts 258 per 768 px tile; a generous figure)
IMAGE_INPUT_TOKENS = 1290
#: the units priced by a text's length: the only ones where a run can pay more than expected
TEXT_UNITS = ("1k_characters", "1m_tokens")
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
    #: the most it can cost, where that is more than expected (an LLM's text, a text not yet written)
    at_most: float | None = None

    @property
    def bound(self) -> float:
        """The most it can cost: what a paid call reserves before it is made."""
        return self.usd if self.at_most is None else max(self.usd, self.at_most)


FREE = Estimate(0.0, "free")


@dataclass(frozen=True)
class Unknown:
    """Stands in for an upstream output that does not exist yet, with what it is expected to be."""

    chars: int = 0
    seconds: float = DEFAULT_MEDIA_S
    why: str = ""
    #: the longest text it can be (its maker's max_tokens x 4), where that is more than ``chars``
    max_chars: int | None = None

    def __str__(self) -> str:  # a text reference inside a longer string
        return "x" * self.chars


@dataclass(frozen=True)
class Expected:
    """What a text step is expected to write (learnt from the ledger, or a prior): its characters,
    the output tokens it is billed (thinking included), and where the figures come from."""

    chars: int
    output_tokens: int
    source: str


def prior(kind: str, max_tokens: int | None) -> Expected:
    """What a text step with no history is expected to write: :data:`PRIOR_TEXT_TOKENS`."""
    tokens = PRIOR_TEXT_TOKENS.get(kind, PRIOR_TEXT_TOKENS["text"])
    if max_tokens is not None:
        tokens = min(tokens, max_tokens)
    return Expected(tokens * CHARS_PER_TOKEN, tokens, f"no earlier run: ~{tokens} tokens expected")


def _money(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 0.01 and round(usd, 2) == usd else f"${usd:g}"


def _text_len(value: Any, upper: bool = False) -> int:
    if isinstance(value, Unknown):
        return value.max_chars if upper and value.max_chars is not None else value.chars
    return len(str(value)) if value is not None else 0


def _seconds_of(value: Any) -> tuple[float, str]:
    if isinstance(value, Unknown):
        return value.seconds, value.why
    if value is None:
        return DEFAULT_MEDIA_S, f"no duration_s and no media input: {DEFAULT_MEDIA_S:g} s assumed"
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


def estimate(
    provider: str,
    model: Model,
    kind: str,
    params: Mapping[str, Any],
    *,
    paid: bool = True,
    expect: Expected | None = None,
    most: Mapping[str, Any] | None = None,
) -> Estimate:
    """The cost of one generation with ``params`` (model defaults filled in; unknown upstream outputs
    as :class:`Unknown`), and the most it can cost.

    ``expect``: what this step is expected to write, if it writes a text (else a prior);
    ``most``: the parameters at their largest, where an upstream text inside a longer string
    was rendered at its expected length in ``params`` (else ``params``, each :class:`Unknown` at
    its ``max_chars``).
    """
    if not paid:
        return FREE
    price = money.price_of(provider, model.name)
    if price is None:
        return Estimate(0.0, "no price in the registry", guess="unpriced model")
    guesses: list[str] = []
    usage, formula = _usage(price, model, kind, params, expect, guesses, upper=False)
    for name, value, factor in price.factors(params):
        formula += f" x {factor:g} ({name} {value})"
    usd = money.cost(price, usage, params)
    at_most = None
    if price.unit in TEXT_UNITS:  # only a text's length can be more than expected
        largest = most if most is not None else params
        ceiling, _ = _usage(price, model, kind, largest, expect, [], upper=True)
        most_usd = money.cost(price, ceiling, largest)
        at_most = most_usd if most_usd > usd + 1e-12 else None
    return Estimate(usd, formula, "; ".join(dict.fromkeys(guesses)), at_most)


def _usage(
    price: money.Price,
    model: Model,
    kind: str,
    params: Mapping[str, Any],
    expect: Expected | None,
    guesses: list[str],
    *,
    upper: bool,
) -> tuple[dict[str, float], str]:
    """The usage ``params`` would be billed on (``upper``: at its largest), and the arithmetic."""

    def text_len(value: Any) -> int:
        if isinstance(value, Unknown) and value.why:
            guesses.append(value.why)
        return _text_len(value, upper)

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
        limit = max_tokens if isinstance(max_tokens, int) else DEFAULT_OUTPUT_TOKENS
        if upper:
            out = limit
        else:
            written = expect or prior(kind, max_tokens if isinstance(max_tokens, int) else None)
            out = min(written.output_tokens, limit)
            guesses.append(written.source)
        usage["output_tokens"] = out
        formula = (
            f"{usage['input_tokens']:g} in x {_money(price.input_usd)}/1M"
            f" + {out:g} out x {_money(price.output_usd)}/1M"
        )
    else:  # "request"
        usage["requests"] = 1
        formula = f"1 request x {_money(price.usd)}"
    return usage, formula


def _pixels(params: Mapping[str, Any]) -> tuple[int, int]:
    width, height = params.get("width"), params.get("height")
    if isinstance(width, int) and isinstance(height, int):
        return width, height
    return FAL_IMAGE_SIZES.get(str(params.get("image_size") or "landscape_4_3"), FAL_IMAGE_SIZES["landscape_4_3"])


def expected_text(kind: str, params: Mapping[str, Any], *, paid: bool, expect: Expected | None = None) -> Unknown:
    """What a text step not yet run is expected to write: what ``expect`` says it wrote before,
    else a prior; at most its ``max_tokens`` x 4 characters."""
    max_tokens = params.get("max_tokens")
    limit = max_tokens if isinstance(max_tokens, int) else DEFAULT_OUTPUT_TOKENS
    if expect is not None:
        chars = min(expect.chars, limit * CHARS_PER_TOKEN) if paid else expect.chars
        why = f"text not yet written: {chars} characters, {expect.source}"
        return Unknown(chars, why=why, max_chars=limit * CHARS_PER_TOKEN if paid else None)
    if not paid:
        return Unknown(DEFAULT_TEXT_CHARS, why=f"a local text, {DEFAULT_TEXT_CHARS} characters assumed")
    written = prior(kind, max_tokens if isinstance(max_tokens, int) else None)
    return Unknown(
        written.chars,
        why=f"text not yet written: {written.chars} characters expected (no earlier run), at most {limit} max_tokens x {CHARS_PER_TOKEN}",
        max_chars=limit * CHARS_PER_TOKEN,
    )


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
