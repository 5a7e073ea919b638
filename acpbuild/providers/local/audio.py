"""Audio with the bundled ffmpeg: clips joined one after another, or mixed together."""

from __future__ import annotations

from typing import Any

from acpbuild.provider import Job, Outcome, ProviderError, RequestRejected
from acpbuild.provider.media import input_file, probe, run_ffmpeg

_PROVIDER = "local"
_RATE = 44100

# Encoder arguments by output suffix.
_CODECS: dict[str, list[str]] = {
    ".mp3": ["-c:a", "libmp3lame", "-q:a", "4"],
    ".wav": ["-c:a", "pcm_s16le"],
}


def generate_mix(job: Job, params: dict[str, Any]) -> Outcome:
    """``sequence``: the clips end to end (with ``gap_s`` of silence between); ``overlay``: all at once."""
    files = [input_file(p, "audio") for p in params["audios"]]
    if not files:
        raise RequestRejected("mix_audio needs at least one file in 'audios'", provider=_PROVIDER)
    suffix = job.output.suffix.lower()
    if suffix not in _CODECS:
        raise RequestRejected(
            f"cannot write audio as {suffix or 'a file without a suffix'}; use .mp3 or .wav",
            provider=_PROVIDER,
        )
    durations = []
    for f in files:
        info = probe(f)
        if not info.audio_streams or info.duration_s is None:
            raise ProviderError(f"{f} has no audio stream; pass an audio file", provider=_PROVIDER)
        durations.append(info.duration_s)
    mode = params.get("mode") or "sequence"
    gap = float(params.get("gap_s") or 0.0) if mode == "sequence" else 0.0
    args: list[Any] = []
    filters = []
    for n, (f, seconds) in enumerate(zip(files, durations, strict=True)):
        args += ["-i", f]
        # Every clip to one rate and layout, so concat and amix accept them together.
        chain = f"[{n}:a:0]aresample={_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
        if gap and n < len(files) - 1:
            chain += f",apad=whole_dur={seconds + gap:.3f}"
        filters.append(chain + f"[a{n}]")
    joined = "".join(f"[a{n}]" for n in range(len(files)))
    if mode == "sequence":
        filters.append(f"{joined}concat=n={len(files)}:v=0:a=1[out]")
        total = sum(durations) + gap * (len(files) - 1)
    else:
        filters.append(f"{joined}amix=inputs={len(files)}:duration=longest:normalize=0[out]")
        total = max(durations)
    args += ["-filter_complex", ";".join(filters), "-map", "[out]", *_CODECS[suffix], job.output]
    run_ffmpeg(args, timeout=job.timeout_s)
    return Outcome(usage={"seconds": round(total, 3)}, meta={"clips": len(files), "mode": mode})
