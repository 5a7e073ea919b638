"""Video with the bundled ffmpeg: Ken Burns pans, title cards, mux, thumbnail, transcode.

``transcode`` also reframes (``reframe``: crop or pad to a new shape) and burns in captions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acpbuild.provider import Job, Outcome, ProviderError, RequestRejected, files
from acpbuild.provider.media import MediaInfo, input_file, probe, run_ffmpeg

if TYPE_CHECKING:
    from PIL import Image

_PROVIDER = "local"
_EXIF_ORIENTATION = 0x0112
# A title card has no subject to frame, so it gets a gentler push-in than kenburns' default.
_TITLE_ZOOM = 1.15

# zoompan moves its crop window in whole input pixels, which shows as jitter on
# a slow zoom; panning over an upscaled copy makes each step a fraction of an
# output pixel. The cap bounds the cost: 1080p pans over 3x, 720p over 4x.
_PAN_UPSCALE = 4
_PAN_MAX_SIDE = 5760

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _even(n: float) -> int:
    """``n`` rounded down to an even number of at least 2: yuv420p needs even sizes."""
    return max(2, int(n) - int(n) % 2)


def _codec_args(suffix: str, *, audio: bool, copy_video: bool = False) -> list[str]:
    """Encoder arguments for a video container, with or without an audio stream.

    ``copy_video`` passes an H.264 stream through untouched (MP4 and MOV only).
    """
    suffix = suffix.lower()
    if suffix in (".mp4", ".mov"):
        if copy_video:
            args = ["-c:v", "copy"]
        else:
            args = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
        if audio:
            args += ["-c:a", "aac", "-b:a", "192k"]
        return args + ["-movflags", "+faststart"]
    if suffix == ".webm":
        args = [
            "-c:v",
            "libvpx-vp9",
            "-crf",
            "32",
            "-b:v",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-deadline",
            "good",
            "-cpu-used",
            "4",
            "-row-mt",
            "1",
        ]
        return args + (["-c:a", "libopus", "-b:a", "128k"] if audio else [])
    raise RequestRejected(
        f"cannot write video as {suffix or 'a file without a suffix'}; use .mp4, .mov or .webm",
        provider=_PROVIDER,
    )


def _frames(duration_s: float, fps: int) -> int:
    return max(1, round(duration_s * fps))


def _size_keeping_aspect(
    width: int | None, height: int | None, src_w: int, src_h: int
) -> tuple[int, int]:
    """The requested size, filling a missing side from the source's aspect ratio."""
    if width and height:
        return _even(width), _even(height)
    if width:
        return _even(width), _even(width * src_h / src_w)
    if height:
        return _even(height * src_w / src_h), _even(height)
    return _even(src_w), _even(src_h)


def pan_filter(width: int, height: int, frames: int, fps: int, zoom: float) -> str:
    """An ffmpeg filter chain: cover ``width`` x ``height``, then zoom in and drift right."""
    k = max(1, min(_PAN_UPSCALE, _PAN_MAX_SIDE // max(width, height)))
    big_w, big_h = width * k, height * k
    last = max(frames - 1, 1)
    # Smoothstep progress: the move eases in and out instead of starting abruptly.
    p = f"(on/{last})"
    ease = f"({p}*{p}*(3-2*{p}))"
    z = f"1+{zoom - 1:.6f}*{ease}"
    # The window's left edge moves from 30% to 70% of the free margin.
    x = f"(iw-iw/zoom)*(0.3+0.4*{ease})"
    y = "(ih-ih/zoom)/2"
    return (
        f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase:flags=lanczos,"
        f"crop={big_w}:{big_h},setsar=1,"
        f"zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps},"
        "format=yuv420p"
    )


def ken_burns(
    image: Path,
    output: Path,
    *,
    width: int,
    height: int,
    duration_s: float,
    fps: int,
    zoom: float,
    timeout: float,
) -> float:
    """Render the pan over ``image`` to ``output``; return the video's duration."""
    frames = _frames(duration_s, fps)
    run_ffmpeg(
        [
            "-i",
            image,
            "-vf",
            pan_filter(width, height, frames, fps, zoom),
            "-frames:v",
            str(frames),
            "-an",
            *_codec_args(output.suffix, audio=False),
            output,
        ],
        timeout=timeout,
    )
    return frames / fps


def _still_size(path: Path) -> tuple[int, int]:
    info = probe(path)
    if info.duration_s is not None or not info.width or not info.height:
        raise ProviderError(
            f"{path} is not a still image; image_to_video needs one", provider=_PROVIDER
        )
    return info.width, info.height


def _needs_turning(path: Path) -> bool:
    """Whether the image has an EXIF orientation other than upright (phone photos)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.getexif().get(_EXIF_ORIENTATION, 1) != 1
    except (UnidentifiedImageError, OSError):
        return False  # a still only ffmpeg can read; it has no EXIF for us to apply


@contextmanager
def _scratch_png(img: Image.Image, directory: Path) -> Iterator[Path]:
    """``img`` as a temporary PNG in ``directory``, deleted afterwards."""
    path = files.temp_file(directory, prefix=".still-", suffix=".png")
    try:
        img.save(path, "PNG", compress_level=1)  # read once, straight away: speed over size
        yield path
    finally:
        path.unlink(missing_ok=True)
        files.forget(path)


def generate_image_to_video(job: Job, params: dict[str, Any]) -> Outcome:
    image = input_file(params["image"], "image")
    src_w, src_h = _still_size(image)
    with ExitStack() as stack:
        if _needs_turning(image):
            # ffmpeg ignores EXIF orientation on stills, so hand it an upright copy.
            from acpbuild.providers.local.image import open_image

            upright = open_image(image)
            src_w, src_h = upright.size
            image = stack.enter_context(_scratch_png(upright, job.output.parent))
        width, height = _size_keeping_aspect(
            params.get("width"), params.get("height"), src_w, src_h
        )
        seconds = ken_burns(
            image,
            job.output,
            width=width,
            height=height,
            duration_s=float(params["duration_s"]),
            fps=int(params["fps"]),
            zoom=float(params["zoom"]),
            timeout=job.timeout_s,
        )
    return Outcome(usage={"seconds": seconds}, meta={"width": width, "height": height})


def generate_text_to_video(job: Job, params: dict[str, Any]) -> Outcome:
    from acpbuild.providers.local.image import render_card

    width, height = _even(params["width"]), _even(params["height"])
    card = render_card(params["prompt"], width, height, int(params.get("seed") or 0))
    with _scratch_png(card, job.output.parent) as still:
        seconds = ken_burns(
            still,
            job.output,
            width=width,
            height=height,
            duration_s=float(params["duration_s"]),
            fps=int(params["fps"]),
            zoom=_TITLE_ZOOM,
            timeout=job.timeout_s,
        )
    return Outcome(usage={"seconds": seconds}, meta={"width": width, "height": height})


def _video_info(path: Path) -> MediaInfo:
    info = probe(path)
    if not info.video_streams or info.duration_s is None:
        raise ProviderError(
            f"{path} has no video stream with a duration; pass a video file", provider=_PROVIDER
        )
    return info


def generate_mux(job: Job, params: dict[str, Any]) -> Outcome:
    video = input_file(params["video"], "video")
    audio = input_file(params["audio"], "audio")
    v = _video_info(video)
    a = probe(audio)
    if not a.audio_streams or a.duration_s is None:
        raise ProviderError(
            f"{audio} has no audio stream with a duration; pass an audio file", provider=_PROVIDER
        )
    assert v.duration_s is not None
    vd, ad = v.duration_s, a.duration_s
    fit = params.get("fit") or "longest"
    target = max(vd, ad) if fit == "longest" else min(vd, ad)
    args: list[str | Path] = ["-i", video, "-i", audio, "-map", "0:v:0", "-map", "1:a:0"]
    hold = ad - vd if fit == "longest" else 0.0
    suffix = job.output.suffix.lower()
    if hold > 0.01:
        # Narration longer than the picture: hold the last frame, never cut the voice.
        args += ["-filter:v", f"tpad=stop_mode=clone:stop_duration={hold:.3f}"]
    args += ["-filter:a", f"apad=whole_dur={target:.3f}"]
    # When the picture is neither held nor cut, copy it rather than lose quality
    # re-encoding; a copied stream can only be cut at packet boundaries.
    copy = hold <= 0.01 and target >= vd - 0.01 and v.video_codec == "h264"
    args += [*_codec_args(suffix, audio=True, copy_video=copy), "-t", f"{target:.3f}", job.output]
    run_ffmpeg(args, timeout=job.timeout_s)
    return Outcome(
        usage={"seconds": round(target, 3)},
        meta={"video_s": round(vd, 3), "audio_s": round(ad, 3), "held_s": round(max(hold, 0), 3)},
    )


def generate_concat(job: Job, params: dict[str, Any]) -> Outcome:
    """Join videos end to end at the first one's size; silence fills clips without sound."""
    files = [input_file(p, "video") for p in params["videos"]]
    if not files:
        raise RequestRejected("concat needs at least one video in 'videos'", provider=_PROVIDER)
    infos = [_video_info(f) for f in files]
    width = (infos[0].width or 640) // 2 * 2
    height = (infos[0].height or 360) // 2 * 2
    fps = int(params.get("fps") or 25)
    with_audio = any(i.audio_streams for i in infos)
    args: list[str | Path] = []
    for f in files:
        args += ["-i", f]
    filters = []
    silent = len(files)
    for n, info in enumerate(infos):
        filters.append(
            f"[{n}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p[v{n}]"
        )
        if not with_audio:
            continue
        if info.audio_streams:
            source = f"[{n}:a:0]"
        else:
            # a clip without sound gets silence of its own length, so the joins stay in sync
            args += ["-f", "lavfi", "-t", f"{info.duration_s:.3f}", "-i", "anullsrc=r=44100:cl=stereo"]
            source, silent = f"[{silent}:a:0]", silent + 1
        filters.append(f"{source}aresample=44100,aformat=channel_layouts=stereo,apad=whole_dur={info.duration_s:.3f}[a{n}]")
    joined = "".join(f"[v{n}]" + (f"[a{n}]" if with_audio else "") for n in range(len(files)))
    filters.append(f"{joined}concat=n={len(files)}:v=1:a={int(with_audio)}[v]" + ("[a]" if with_audio else ""))
    args += ["-filter_complex", ";".join(filters), "-map", "[v]"] + (["-map", "[a]"] if with_audio else [])
    args += [*_codec_args(job.output.suffix.lower(), audio=with_audio), job.output]
    run_ffmpeg(args, timeout=job.timeout_s)
    total = sum(i.duration_s or 0.0 for i in infos)
    return Outcome(usage={"seconds": round(total, 3)}, meta={"clips": len(files)})


def generate_thumbnail(job: Job, params: dict[str, Any]) -> Outcome:
    video = input_file(params["video"], "video")
    suffix = job.output.suffix.lower()
    if suffix not in _IMAGE_SUFFIXES:
        raise RequestRejected(
            f"cannot write a thumbnail as {suffix or 'a file without a suffix'};"
            f" use one of {', '.join(_IMAGE_SUFFIXES)}",
            provider=_PROVIDER,
        )
    info = _video_info(video)
    assert info.duration_s is not None
    at = float(params.get("at_s") or 0.0)
    if at > info.duration_s:
        raise RequestRejected(
            f"at_s={at:g} is past the end of the video ({info.duration_s:g} s)", provider=_PROVIDER
        )
    # The very last instant has no frame to decode after it; step back a little.
    at = max(0.0, min(at, info.duration_s - 0.05))
    quality = ["-q:v", "2"] if suffix in (".jpg", ".jpeg") else []
    run_ffmpeg(
        ["-ss", f"{at:.3f}", "-i", video, "-frames:v", "1", "-update", "1", *quality, job.output],
        timeout=job.timeout_s,
    )
    if not job.output.is_file() or job.output.stat().st_size == 0:
        raise ProviderError(f"ffmpeg decoded no frame at {at:g} s of {video}", provider=_PROVIDER)
    return Outcome(meta={"at_s": at})


def _fit_filter(w: int, h: int, fit: str) -> str:
    """Scale to exactly ``w`` x ``h``: stretched, cropped to fill, or padded to fit."""
    if fit == "crop":
        return f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=lanczos,crop={w}:{h},setsar=1"
    if fit == "pad":
        return (
            f"scale={w}:{h}:force_original_aspect_ratio=decrease:flags=lanczos,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1"
        )
    return f"scale={w}:{h}:flags=lanczos,setsar=1"


def generate_transcode(job: Job, params: dict[str, Any]) -> Outcome:
    video = input_file(params["video"], "video")
    info = _video_info(video)
    assert info.duration_s is not None
    filters = []
    src_w, src_h = info.width or 2, info.height or 2
    # Also rounds an odd source size down to even, which yuv420p needs.
    w, h = _size_keeping_aspect(params.get("width"), params.get("height"), src_w, src_h)
    if (w, h) != (src_w, src_h):
        filters.append(_fit_filter(w, h, params.get("reframe") or "stretch"))
    if params.get("fps"):
        filters.append(f"fps={int(params['fps'])}")
    has_audio = info.audio_streams > 0
    with ExitStack() as stack:
        args: list[str | Path] = ["-i", video]
        if params.get("subtitles"):
            from acpbuild.providers.local.captions import caption_frames, read_cues

            cues = read_cues(input_file(params["subtitles"], "subtitles"))
            frames = stack.enter_context(caption_frames(cues, w, h, job.output.parent))
            # Each caption is a still laid over the picture while its cue lasts.
            chain = [f"[0:v:0]{','.join(filters) or 'null'}[c0]"]
            for n, (still, cue) in enumerate(frames, 1):
                args += ["-i", still]
                chain.append(
                    f"[c{n - 1}][{n}:v]overlay=0:0:enable='between(t,{cue.start:.3f},{cue.end:.3f})'[c{n}]"
                )
            args += ["-filter_complex", ";".join(chain), "-map", f"[c{len(frames)}]"]
        else:
            args += ["-map", "0:v:0"]
            if filters:
                args += ["-vf", ",".join(filters)]
        if has_audio:
            args += ["-map", "0:a:0"]
        args += [*_codec_args(job.output.suffix, audio=has_audio), job.output]
        run_ffmpeg(args, timeout=job.timeout_s)
    return Outcome(usage={"seconds": round(info.duration_s, 3)})
