"""What an output must pass before it is stored: it decodes as what its step makes.

Magic bytes only say what a file claims to be; a PNG signature followed by
zeros, an MP4 cut before its index, or an MP3 tag with no frames all look right
to them. :func:`check_output` decodes instead: an image completely with Pillow
(within :data:`MAX_IMAGE_SIDE` pixels a side), audio and video with the bundled
ffmpeg (the first second decodes, there is a stream of the right kind and it
lasts longer than zero), text as UTF-8. The engine calls it on every
provider's result, the free local provider's included, before the store sees
it; a result that fails raises :class:`~acpbuild.errors.BadResponse`, so it is
never recorded as done.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

from acpbuild.errors import AcpbuildError, BadResponse

__all__ = ["MAX_IMAGE_SIDE", "MIN_IMAGE_SIDE", "check_output", "mp4_problem"]

#: the smallest and largest width or height, in pixels, an image output may have
MIN_IMAGE_SIDE = 1
MAX_IMAGE_SIDE = 20_000

# How much of the start of an audio or video file is decoded.
_DECODE_S = 1.0
_MP4_SUFFIXES = (".mp4", ".mov", ".m4a")


def check_output(path: Path, media: str | None, *, provider: str) -> None:
    """Raise :class:`BadResponse` naming what is wrong unless ``path`` decodes as ``media``
    ("image", "audio", "video", "text", "subtitles"; None checks nothing)."""
    problem: str | None
    if media == "image":
        problem = _image_problem(path)
    elif media in ("audio", "video"):
        problem = _stream_problem(path, media)
    elif media in ("text", "subtitles"):
        problem = _text_problem(path)
    else:
        return
    if problem:
        raise BadResponse(f"the {media} {problem}", provider=provider)


def _image_problem(path: Path) -> str | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # the sides are bounded below; Pillow's own pixel-count warning is not wanted
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if not (MIN_IMAGE_SIDE <= width <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= height <= MAX_IMAGE_SIDE):
                    return (
                        f"is {width}x{height} pixels; each side must be "
                        f"{MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE}"
                    )
                image.load()  # every pixel: a truncated or zeroed image fails here
    except Image.DecompressionBombError as exc:
        return f"is too large to decode: {exc}"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return f"does not decode: {exc}"
    return None


def _stream_problem(path: Path, media: str) -> str | None:
    from acpbuild.media import decode

    if path.suffix.lower() in _MP4_SUFFIXES:
        broken = mp4_problem(path)
        if broken:
            return f"does not decode: {broken}"
    try:
        info = decode(path, seconds=_DECODE_S)
    except AcpbuildError as exc:
        said = str(exc).removeprefix("local: ")
        return f"does not decode: {said.splitlines()[-1] if said else exc}"
    streams = info.audio_streams if media == "audio" else info.video_streams
    if streams == 0:
        return f"does not decode: it holds no {media} stream ({info.format})"
    if not info.duration_s or info.duration_s <= 0:
        return "does not decode: its duration is zero"
    return None


def _text_problem(path: Path) -> str | None:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text: {exc.reason} at byte {exc.start}"
    return None


def mp4_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete MP4 (its top-level boxes must tile the file), or None.

    Cheap, and it catches what decoding the first second misses: an MP4 whose
    index comes first ("faststart") and whose media data was cut short.
    """
    size = path.stat().st_size
    seen: set[bytes] = set()
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            header = f.read(8)
            if len(header) < 8:
                return f"truncated: {size - pos} stray bytes at the end"
            length, kind = struct.unpack(">I4s", header)
            if length == 1:
                wide = f.read(8)
                if len(wide) < 8:
                    return "truncated inside a box header"
                length = struct.unpack(">Q", wide)[0]
            elif length == 0:
                length = size - pos
            if length < 8 or pos + length > size:
                return (
                    f"truncated: box {kind.decode('latin-1')!r} needs {pos + length} bytes, "
                    f"the file has {size}"
                )
            seen.add(kind)
            pos += length
    if b"ftyp" not in seen or b"moov" not in seen:
        return f"not an MP4 file ({size} bytes, no ftyp/moov box)"
    return None
