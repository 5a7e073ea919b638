"""Captions: an .srt or .vtt timed from a text, and caption images to burn into video.

Captions are burnt in by overlaying Pillow-drawn transparent frames rather than
with ffmpeg's ``subtitles`` filter: libass needs fontconfig and system fonts,
which a fresh machine may lack, while Pillow's default font ships with Pillow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild.provider import Job, Outcome, ProviderError, RequestRejected, files
from acpbuild.provider.media import input_file, probe

_PROVIDER = "local"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TIMING = re.compile(
    r"(\d+):(\d{2}):(\d{2})[,.](\d{3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{3})"
)


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def make_cues(text: str, duration_s: float, words_per_cue: int) -> list[Cue]:
    """``text`` in chunks of at most ``words_per_cue`` words, each on screen for its share of time.

    A chunk never spans two sentences, and its share follows its length in
    characters, which tracks speech better than a count of words.
    """
    chunks: list[str] = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        words = sentence.split()
        chunks += [" ".join(words[i : i + words_per_cue]) for i in range(0, len(words), words_per_cue)]
    weights = [len(c) + 1 for c in chunks]
    total = sum(weights) or 1
    cues, at = [], 0.0
    for chunk, weight in zip(chunks, weights, strict=True):
        end = at + duration_s * weight / total
        cues.append(Cue(round(at, 3), round(end, 3), chunk))
        at = end
    return cues


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_cues(cues: list[Cue], suffix: str) -> str:
    """The cues as SubRip (``.srt``) or WebVTT (``.vtt``) text."""
    vtt = suffix == ".vtt"
    sep = "." if vtt else ","
    blocks = [
        f"{n}\n{_stamp(c.start, sep)} --> {_stamp(c.end, sep)}\n{c.text}\n"
        for n, c in enumerate(cues, 1)
    ]
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(blocks)


def read_cues(path: Path) -> list[Cue]:
    """The cues of an .srt or .vtt file (timings and text; styling tags are kept as text)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProviderError(f"cannot read subtitles {path}: {exc}", provider=_PROVIDER) from exc
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = block.strip().splitlines()
        for i, line in enumerate(lines):
            m = _TIMING.search(line)
            if m:
                g = [int(x) for x in m.groups()]
                start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
                end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
                cues.append(Cue(start, end, "\n".join(lines[i + 1 :]).strip()))
                break
    if not cues:
        raise RequestRejected(f"{path} holds no subtitle cues (expected SubRip or WebVTT)", provider=_PROVIDER)
    return cues


def generate_subtitles(job: Job, params: dict[str, Any]) -> Outcome:
    suffix = job.output.suffix.lower()
    if suffix not in (".srt", ".vtt"):
        raise RequestRejected(
            f"cannot write subtitles as {suffix or 'a file without a suffix'}; use .srt or .vtt",
            provider=_PROVIDER,
        )
    if params.get("audio"):
        audio = input_file(params["audio"], "audio")
        duration = probe(audio).duration_s
        if not duration:
            raise ProviderError(f"{audio} has no duration; pass an audio file", provider=_PROVIDER)
    elif params.get("duration_s"):
        duration = float(params["duration_s"])
    else:
        raise RequestRejected(
            "subtitles needs 'audio' (the narration the captions follow) or 'duration_s'",
            provider=_PROVIDER,
        )
    if not str(params["text"]).strip():
        raise RequestRejected("subtitles needs some text in 'text'", provider=_PROVIDER)
    cues = make_cues(params["text"], duration, int(params["words_per_cue"]))
    job.output.write_text(format_cues(cues, suffix), encoding="utf-8")
    return Outcome(meta={"cues": len(cues), "duration_s": round(duration, 3)})


@contextmanager
def caption_frames(cues: list[Cue], width: int, height: int, directory: Path) -> Iterator[list[tuple[Path, Cue]]]:
    """One transparent ``width`` x ``height`` PNG per cue, its text near the bottom; deleted afterwards."""
    from PIL import Image, ImageDraw

    from acpbuild.providers.local.image import _font, _wrap

    size = max(12, min(width, height) // 14)
    font = _font(size)
    line_h = round(size * 1.25)
    # Tall frames keep captions clear of the controls apps draw at the bottom.
    bottom = height * (0.80 if height > width else 0.90)
    made: list[tuple[Path, Cue]] = []
    try:
        for cue in cues:
            img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            draw = ImageDraw.Draw(img)
            lines = _wrap(cue.text, font, width * 0.88)
            top = bottom - len(lines) * line_h
            for i, line in enumerate(lines):
                draw.text(
                    (width / 2, top + i * line_h + line_h / 2),
                    line,
                    font=font,
                    fill=(255, 255, 255, 255),
                    anchor="mm",
                    stroke_width=max(1, size // 10),
                    stroke_fill=(0, 0, 0, 255),
                )
            name = files.temp_file(directory, prefix=".caption-", suffix=".png")
            made.append((name, cue))
            img.save(name, "PNG", compress_level=1)
        yield made
    finally:
        for path, _ in made:
            path.unlink(missing_ok=True)
            files.forget(path)
