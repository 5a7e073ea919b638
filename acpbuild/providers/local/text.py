"""Text without a language model: template sentences, and facts about an image.

Both are honest stand-ins. The template text only rearranges the prompt's own
words through fixed sentence patterns, and the image description reports what
can be measured (size, mode, colours) and says it cannot answer questions.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acpbuild.provider import Job, Outcome, ProviderError, RequestRejected
from acpbuild.provider.media import input_file

_PROVIDER = "local"

# Each pattern takes the prompt's topic and two of its content words.
_TEMPLATES: tuple[str, ...] = (
    "It all begins with {a}.",
    "Everything here turns on {a} and {b}.",
    "Picture {a}, then {b}, and {topic} comes into view.",
    "{a} is the detail to hold on to.",
    "At its heart, this is about {a}.",
    "Look closer and {a} gives way to {b}.",
    "Nothing about {topic} is complete without {b}.",
    "Start with {a}; end with {b}.",
    "There is more to {a} than first meets the eye.",
    "{b} and {a} belong together here.",
    "Think of {topic}, and think of {b}.",
    "Slowly, {a} takes the stage.",
)

# Words that carry no subject matter, including the instructions people write
# to language models ("two sentences of narration about ...").
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "over",
        "the",
        "then",
        "this",
        "that",
        "to",
        "under",
        "with",
        "without",
        "about",
        "write",
        "describe",
        "explain",
        "give",
        "make",
        "create",
        "short",
        "long",
        "brief",
        "one",
        "two",
        "three",
        "four",
        "five",
        "sentence",
        "sentences",
        "paragraph",
        "paragraphs",
        "narration",
        "text",
        "words",
        "word",
        "please",
        "some",
        "very",
        "style",
    }
)

_WORD_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _digests(*first: object) -> Callable[..., int]:
    """Stable integers from ``first`` and then more parts; unlike ``hash()`` they do not vary
    per process. The first parts (a long prompt) are hashed once for every call."""
    start = hashlib.sha256("".join(f"{p}\x00" for p in first).encode("utf-8"))

    def digest(*parts: object) -> int:
        h = start.copy()
        h.update("\x00".join(str(p) for p in parts).encode("utf-8"))
        return int.from_bytes(h.digest()[:8], "big")

    return digest


def _topic(prompt: str) -> str:
    # "Two sentences of narration about a lighthouse at dawn." -> "a lighthouse at dawn"
    text = prompt.strip().rstrip(".!?;:")
    tail = re.split(r"\babout\s+", text, flags=re.IGNORECASE)[-1].strip()
    text = tail or text
    words = text.split()
    return " ".join(words[:10]) if len(words) > 10 else text


def template_text(prompt: str, seed: int, sentences: int) -> str:
    """Deterministic sentences from ``prompt``'s words; ``seed`` picks the patterns."""
    words = _WORD_RE.findall(prompt)
    if not words:
        raise RequestRejected("the prompt has no words to build text from", provider=_PROVIDER)
    content = [w for w in words if w.lower() not in _STOPWORDS and len(w) > 2] or words
    # Keep the first spelling of each word, in prompt order.
    pool = list(dict.fromkeys(content))
    topic = _topic(prompt)
    # With one word, "{a} gives way to {b}" would pair it with itself.
    templates = _TEMPLATES if len(pool) > 1 else tuple(t for t in _TEMPLATES if "{b}" not in t)
    # A seeded permutation: no pattern repeats until every one has been used.
    digest = _digests(prompt, seed)
    order = sorted(templates, key=lambda t: digest("order", t))
    out = []
    for n in range(sentences):
        a_index = digest("a", n) % len(pool)
        b_index = digest("b", n) % len(pool)
        if b_index == a_index and len(pool) > 1:
            b_index = (a_index + 1) % len(pool)
        line = order[n % len(order)].format(topic=topic, a=pool[a_index], b=pool[b_index])
        out.append(line[0].upper() + line[1:])
    return " ".join(out)


def _write_text(path: Path, text: str, as_json: dict[str, Any]) -> None:
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(as_json, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    else:
        path.write_text(text + "\n", encoding="utf-8")


def generate_template(job: Job, params: dict[str, Any]) -> Outcome:
    prompt: str = params["prompt"]
    text = template_text(prompt, int(params["seed"]), int(params["sentences"]))
    _write_text(job.output, text, {"text": text})
    return Outcome(usage={"characters": len(text)}, meta={"sentences": params["sentences"]})


# Hue bands (upper bound in degrees) and their names.
_HUES: tuple[tuple[float, str], ...] = (
    (15, "red"),
    (40, "orange"),
    (65, "yellow"),
    (85, "yellow-green"),
    (160, "green"),
    (195, "teal"),
    (255, "blue"),
    (285, "purple"),
    (335, "pink"),
    (360, "red"),
)


def colour_name(rgb: tuple[int, int, int]) -> str:
    """A plain-English name for ``rgb``, such as "dark blue" or "greyish pink"."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if v < 0.15:
        return "black"
    if s < 0.12:
        return (
            "white"
            if v > 0.9
            else "light grey"
            if v > 0.65
            else "grey"
            if v > 0.35
            else ("dark grey")
        )
    hue = next(name for bound, name in _HUES if h * 360 <= bound)
    if hue == "orange" and v < 0.6:
        hue = "brown"  # dark orange reads as brown
    if v < 0.45:
        return f"dark {hue}"
    if s < 0.35:
        return f"greyish {hue}" if v < 0.8 else f"pale {hue}"
    return f"light {hue}" if v > 0.85 and s < 0.6 else hue


def image_facts(path: Path, prompt: str | None) -> dict[str, Any]:
    """Size, mode, format, brightness and dominant colours of the image at ``path``."""
    from PIL import Image, ImageStat, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            fmt, mode, size = img.format or "unknown", img.mode, img.size
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ProviderError(
            f"cannot read {path} as an image ({exc}); pass a PNG, JPEG or WebP file",
            provider=_PROVIDER,
        ) from exc
    small = rgb.copy()
    small.thumbnail((96, 96))
    # Median cut groups similar pixels, so the counts are shares of the image.
    quant = small.quantize(colors=4, method=Image.Quantize.MEDIANCUT)
    palette = quant.getpalette() or []
    total = small.width * small.height
    colours = []
    for count, index in sorted(quant.getcolors() or [], reverse=True):
        if not isinstance(index, int):  # a quantized image reports palette indexes
            continue
        r, g, b = palette[index * 3 : index * 3 + 3]
        colours.append(
            {
                "name": colour_name((r, g, b)),
                "hex": f"#{r:02x}{g:02x}{b:02x}",
                "share": round(count / total, 3),
            }
        )
    luma = ImageStat.Stat(small.convert("L")).mean[0]
    return {
        "width": size[0],
        "height": size[1],
        "mode": mode,
        "format": fmt,
        "brightness": round(luma / 255, 3),
        "dominant_colours": colours,
        "prompt": prompt,
    }


def describe(facts: dict[str, Any]) -> str:
    """The facts as a few plain sentences."""
    w, h = facts["width"], facts["height"]
    shape = "square" if w == h else ("landscape" if w > h else "portrait")
    light = facts["brightness"]
    tone = "dark" if light < 0.35 else ("bright" if light > 0.65 else "mid-toned")
    colours = ", ".join(
        f"{c['name']} ({c['hex']}, {c['share']:.0%})" for c in facts["dominant_colours"]
    )
    lines = [
        f"A {shape} {facts['format']} image of {w}x{h} pixels in {facts['mode']} mode.",
        f"It is {tone} overall (mean brightness {light:.0%}).",
        f"Dominant colours: {colours}.",
    ]
    if facts["prompt"]:
        lines.append(
            f'You asked: "{facts["prompt"]}". This offline description reports measurable '
            "facts only; it does not interpret the picture."
        )
    return "\n".join(lines)


def generate_facts(job: Job, params: dict[str, Any]) -> Outcome:
    facts = image_facts(input_file(params["image"], "image"), params.get("prompt"))
    text = describe(facts)
    _write_text(job.output, text, facts | {"description": text})
    return Outcome(
        usage={"characters": len(text)}, meta={"width": facts["width"], "height": facts["height"]}
    )
