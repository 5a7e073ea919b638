"""The bundled ffmpeg: running it, reading what a media file holds, and measuring how good it is.

The ``imageio-ffmpeg`` wheel ships an ffmpeg binary but no ffprobe, so
:func:`probe` reads the stream summary ffmpeg writes to stderr when given an
input and no output. Still images are read with Pillow instead, which is
exact and much faster than starting a process.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from acpbuild import process
from acpbuild.errors import ProviderError, ProviderTimeout

__all__ = ["MediaInfo", "decode", "ffmpeg_exe", "input_file", "measure", "probe", "run_ffmpeg"]

_PROVIDER = "local"

# Suffixes Pillow reads directly; everything else goes through ffmpeg.
_STILL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

# How much of ffmpeg's stderr a failure message quotes.
_TAIL_LINES = 8


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds.

    A still image counts as one video stream with no duration, as ffmpeg
    sees it. ``format`` is ffmpeg's demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"``,
    ``"wav"``, ``"mp3"``) or Pillow's format name in lower case for stills.
    """

    duration_s: float | None
    width: int | None
    height: int | None
    video_streams: int
    audio_streams: int
    format: str
    video_codec: str | None = None  # of the first video stream
    audio_codec: str | None = None  # of the first audio stream


@cache
def ffmpeg_exe() -> str:
    """The path of the ffmpeg binary bundled with ``imageio-ffmpeg``."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ProviderError(
            "imageio-ffmpeg is not installed; install it with `pip install imageio-ffmpeg`",
            provider=_PROVIDER,
        ) from exc
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise ProviderError(f"no ffmpeg binary found: {exc}", provider=_PROVIDER) from exc


def _tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return "\n".join(lines[-_TAIL_LINES:])


def run_ffmpeg(args: Sequence[str | Path], *, timeout: float) -> None:
    """Run the bundled ffmpeg with ``args``; raise ProviderError when it fails.

    ``-y -hide_banner -loglevel error -nostdin`` are always passed: outputs are
    staging paths we own, and ffmpeg must never wait on a terminal. It runs in
    its own process group (:func:`acpbuild.process.run`), which a stopped run kills.
    """
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-nostdin"]
    cmd += [str(a) for a in args]
    try:
        done = process.run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ProviderTimeout(
            f"ffmpeg did not finish within {timeout:g} s; raise the step's timeout or make it "
            "shorter or smaller",
            provider=_PROVIDER,
        ) from exc
    except OSError as exc:
        raise ProviderError(f"cannot run ffmpeg ({cmd[0]}): {exc}", provider=_PROVIDER) from exc
    if done.returncode != 0:
        if process.stopping():
            raise ProviderError("ffmpeg was stopped: acpbuild is stopping", provider=_PROVIDER)
        detail = _tail(done.stderr) or f"exit status {done.returncode}"
        raise ProviderError(f"ffmpeg failed:\n{detail}", provider=_PROVIDER)


def input_file(path: str | Path, what: str = "input file") -> Path:
    """``path`` as a Path, or a ProviderError saying it is missing."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise ProviderError(
            f"{what} not found: {path}{hint}; check the path or the step that should produce it",
            provider=_PROVIDER,
        )
    return path


def probe(path: str | Path, *, timeout: float = 60.0) -> MediaInfo:
    """Duration, size and stream counts of the media file at ``path``."""
    path = input_file(path)
    if path.suffix.lower() in _STILL_SUFFIXES:
        still = _probe_still(path)
        if still is not None:
            return still
    return _probe_ffmpeg(path, timeout)


def _probe_still(path: Path) -> MediaInfo | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            # An animated GIF or WebP has a duration; let ffmpeg report it.
            if getattr(img, "n_frames", 1) > 1:
                return None
            fmt = (img.format or path.suffix.lstrip(".")).lower()
            return MediaInfo(None, img.width, img.height, 1, 0, fmt, video_codec=fmt)
    except (UnidentifiedImageError, OSError):
        return None  # a misnamed file: ffmpeg may still know it


_INPUT_RE = re.compile(r"^Input #0, (?P<format>.+?), from '", re.MULTILINE)
_DURATION_RE = re.compile(
    r"^\s*Duration: (?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)", re.MULTILINE
)
_STREAM_RE = re.compile(
    r"^\s*Stream #0:\d+\S*: (?P<type>Video|Audio|Subtitle|Data): (?P<rest>.*)$", re.MULTILINE
)
# "1280x720" as a stream property; the bounded digit counts and the delimiters
# keep codec tags such as "(avc1 / 0x31637661)" and "[0x1]" from matching.
_SIZE_RE = re.compile(r"(?:^|[ ,])(?P<w>\d{1,5})x(?P<h>\d{1,5})(?=[ ,\[]|$)")


def _probe_ffmpeg(path: Path, timeout: float) -> MediaInfo:
    # With an input and no output ffmpeg prints the stream summary and exits
    # with status 1 ("At least one output file must be specified"): expected.
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    try:
        done = process.run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ProviderTimeout(
            f"ffmpeg could not read {path} within {timeout:g} s", provider=_PROVIDER
        ) from exc
    except OSError as exc:
        raise ProviderError(f"cannot run ffmpeg ({cmd[0]}): {exc}", provider=_PROVIDER) from exc
    return _summary(done.stderr, path)


def decode(path: str | Path, *, seconds: float = 1.0, timeout: float = 120.0) -> MediaInfo:
    """Decode the first ``seconds`` of the audio or video at ``path``; what it holds.

    Unlike :func:`probe`, which reads the container's summary, this decodes
    samples and frames, stopping at the first error (``-xerror``): a file whose
    header is right but whose contents are not (zeros after the magic bytes, a
    truncated MP4 without its index) raises ProviderError.
    """
    path = input_file(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-xerror", "-i", str(path), "-t", f"{seconds:g}", "-f", "null", "-"]
    try:
        done = subprocess.run(
            cmd, check=False, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise ProviderTimeout(f"ffmpeg could not decode {path} within {timeout:g} s", provider=_PROVIDER) from exc
    except OSError as exc:
        raise ProviderError(f"cannot run ffmpeg ({cmd[0]}): {exc}", provider=_PROVIDER) from exc
    # ffmpeg describes its output after the input: only the input's part is read
    text = done.stderr.split("\nOutput #0", 1)[0].split("\nStream mapping:", 1)[0]
    if done.returncode != 0:
        raise ProviderError(f"ffmpeg cannot decode {path}:\n{_tail(done.stderr)}", provider=_PROVIDER)
    return _summary(text, path)


def _summary(text: str, path: Path) -> MediaInfo:
    """What ffmpeg's description of its input (on stderr) says the file holds."""
    head = _INPUT_RE.search(text)
    if head is None:
        raise ProviderError(
            f"{path} is not a media file ffmpeg can read:\n{_tail(text)}", provider=_PROVIDER
        )
    duration = None
    found = _DURATION_RE.search(text)
    if found:
        duration = int(found["h"]) * 3600 + int(found["m"]) * 60 + float(found["s"])
    width = height = None
    counts = {"Video": 0, "Audio": 0}
    codecs: dict[str, str] = {}
    for stream in _STREAM_RE.finditer(text):
        kind, rest = stream["type"], stream["rest"]
        # Cover art in an MP3 or M4A shows up as a video stream; it is not video.
        if kind not in counts or "(attached pic)" in rest:
            continue
        counts[kind] += 1
        codecs.setdefault(kind, rest.split(",")[0].split()[0])
        if kind == "Video" and width is None:
            size = _SIZE_RE.search(rest)
            if size:
                width, height = int(size["w"]), int(size["h"])
    return MediaInfo(
        duration_s=duration,
        width=width,
        height=height,
        video_streams=counts["Video"],
        audio_streams=counts["Audio"],
        format=head["format"],
        video_codec=codecs.get("Video"),
        audio_codec=codecs.get("Audio"),
    )


# -- metrics: how good an output is, for best_quality groups ---------------------
def measure(path: Path, metric: str, media: str) -> tuple[float, ...]:
    """``path`` by a built-in metric: higher is better; a video's resolution ties break on duration."""
    if metric == "sharpness":
        return (_sharpness(path),)
    if metric == "loudness":
        return (_loudness(path),)
    info = probe(path)
    duration = info.duration_s or 0.0
    if metric == "duration":
        return (duration,)
    pixels = float((info.width or 0) * (info.height or 0))
    return (pixels, duration) if media == "video" else (pixels,)


def _sharpness(path: Path) -> float:
    """The variance of an edge filter over the grayscale image: blur lowers it, detail raises it."""
    from PIL import Image, ImageFilter, ImageStat, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            edges = img.convert("L").filter(ImageFilter.FIND_EDGES)
    except (UnidentifiedImageError, OSError) as exc:
        raise ProviderError(f"cannot read {path} as an image: {exc}", provider="local") from exc
    return float(ImageStat.Stat(edges).var[0])


_MEAN_VOLUME = re.compile(r"mean_volume:\s*(-?(?:inf|[\d.]+))\s*dB")


def _loudness(path: Path) -> float:
    """Mean volume in dB (ffmpeg's volumedetect); silence is -inf."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path), "-vn", "-af", "volumedetect", "-f", "null", "-"]
    try:
        done = process.run(cmd, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProviderError(f"cannot measure the loudness of {path}: {exc}", provider="local") from exc
    found = _MEAN_VOLUME.search(done.stderr)
    if found is None:
        raise ProviderError(f"cannot measure the loudness of {path}: it has no audio ffmpeg can read", provider="local")
    return float(found.group(1))
