"""The local provider makes real media: checked by reading the files it writes."""

from __future__ import annotations

import array
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from acpbuild.errors import ProviderError
from acpbuild.media import probe
from acpbuild.provider import Job, Outcome
from acpbuild.providers.local import LocalProvider
from acpbuild.recipe.kinds import KINDS

ROOT = Path(__file__).resolve().parents[1]


class NullJournal:
    """Local jobs finish synchronously, so nothing is ever submitted or resumed."""

    resume_id = None

    def submitted(self, request_id: str) -> None:
        pass


def generate(kind: str, model: str, output: Path, **params: Any) -> Outcome:
    provider = LocalProvider()
    job = Job(
        kind=kind, model=provider.catalogue()[model], params=params, output=output, timeout_s=60
    )
    return provider.generate(job, NullJournal())


def wav_stats(path: Path) -> tuple[float, float]:
    """Duration in seconds and RMS (0..32767) of a mono 16-bit WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    samples = array.array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
    return len(samples) / rate, rms


def not_uniform(img: Image.Image) -> bool:
    return any(lo != hi for lo, hi in img.convert("RGB").getextrema())


# Shared inputs, made once: rendering them per test would double the run time.


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    out = {"image": root / "card.png", "speech": root / "speech.wav", "video": root / "clip.mp4"}
    generate(
        "text_to_image", "pillow", out["image"], prompt="A lighthouse at dawn", width=160, height=90
    )
    generate(
        "text_to_speech",
        "espeak",
        out["speech"],
        text="The lighthouse keeps its watch over the harbour.",
    )
    generate(
        "image_to_video", "kenburns", out["video"], image=str(out["image"]), duration_s=1.0, fps=10
    )
    return out


# --- catalogue and import cost ------------------------------------------------


def test_catalogue_serves_known_kinds_only() -> None:
    catalogue = LocalProvider().catalogue()
    kinds = {kind for model in catalogue.values() for kind in model.kinds}
    assert kinds <= set(KINDS)
    assert {"text", "text_to_image", "text_to_speech", "image_to_video", "mux"} <= kinds
    assert LocalProvider.paid is False and LocalProvider.name == "local"


def test_importing_the_provider_does_not_import_pillow() -> None:
    code = "import sys, acpbuild.providers.local; print('PIL' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False"


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    provider = LocalProvider()
    job = Job("avatar", provider.catalogue()["ffmpeg"], {}, tmp_path / "x.mp4")
    with pytest.raises(ProviderError, match="does not do 'avatar'"):
        provider.generate(job, NullJournal())


# --- text ----------------------------------------------------------------------


def test_template_text_is_deterministic_and_seeded(tmp_path: Path) -> None:
    prompt = "Two sentences of narration about a lighthouse at dawn."
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    outcome = generate("text", "template", a, prompt=prompt, seed=0, sentences=3)
    generate("text", "template", b, prompt=prompt, seed=0, sentences=3)
    generate("text", "template", c, prompt=prompt, seed=1, sentences=3)
    text = a.read_text(encoding="utf-8")
    assert a.read_bytes() == b.read_bytes()
    assert c.read_bytes() != a.read_bytes()
    assert "lighthouse" in text.lower() and text.count(".") >= 3
    assert outcome.usage["characters"] == len(text.strip())


def test_template_text_as_json(tmp_path: Path) -> None:
    out = tmp_path / "script.json"
    generate("text", "template", out, prompt="Harbour lights")
    assert "Harbour" in json.loads(out.read_text(encoding="utf-8"))["text"]


def test_image_facts_report_size_and_prompt(tmp_path: Path, media: dict[str, Path]) -> None:
    out = tmp_path / "facts.txt"
    generate(
        "image_understanding", "facts", out, image=str(media["image"]), prompt="What is shown?"
    )
    text = out.read_text(encoding="utf-8")
    assert "160x90" in text
    assert "What is shown?" in text
    assert "#" in text  # at least one colour as hex


# --- images --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "suffix", "size"),
    [
        ({"width": 160, "height": 90}, ".png", (160, 90)),  # width and height override
        ({"image_size": "square", "width": 64}, ".jpg", (64, 64)),  # one side keeps the aspect
        ({"image_size": "portrait_16_9"}, ".webp", (576, 1024)),  # a named fal size
    ],
)
def test_text_to_image_draws_the_requested_size(
    tmp_path: Path, params: dict[str, Any], suffix: str, size: tuple[int, int]
) -> None:
    out = tmp_path / f"card{suffix}"
    outcome = generate("text_to_image", "pillow", out, prompt="Hello world", **params)
    with Image.open(out) as img:
        assert img.size == size
        assert img.format == {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP"}[suffix]
        assert not_uniform(img)
    assert outcome.usage == {"images": 1, "megapixels": size[0] * size[1] / 1e6}


def test_text_to_image_is_deterministic_and_seeded(tmp_path: Path) -> None:
    paths = [tmp_path / f"{n}.png" for n in range(3)]
    for path, seed in zip(paths, (5, 5, 6), strict=True):
        generate(
            "text_to_image", "pillow", path, prompt="Same prompt", seed=seed, width=160, height=90
        )
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_text_to_image_needs_a_prompt(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="prompt"):
        generate("text_to_image", "pillow", tmp_path / "x.png", width=160, height=90)


def test_image_to_image_operations(tmp_path: Path, media: dict[str, Path]) -> None:
    with Image.open(media["image"]) as src:
        source = src.convert("RGB")
    gray = tmp_path / "gray.png"
    generate("image_to_image", "pillow", gray, image=str(media["image"]), operation="grayscale")
    with Image.open(gray) as img:
        assert img.mode == "L" and img.size == (160, 90)
        assert not_uniform(img)
    mirrored = tmp_path / "mirror.png"
    generate(
        "image_to_image",
        "pillow",
        mirrored,
        image=str(media["image"]),
        operation="mirror",
        width=80,
    )
    with Image.open(mirrored) as img:
        assert img.size == (80, 45)
    flipped = tmp_path / "flip.png"
    generate("image_to_image", "pillow", flipped, image=str(media["image"]), operation="mirror")
    with Image.open(flipped) as img:
        assert img.convert("RGB").getpixel((0, 45)) == source.getpixel((159, 45))


# --- speech --------------------------------------------------------------------


def test_speech_wav_is_audible(media: dict[str, Path]) -> None:
    seconds, rms = wav_stats(media["speech"])
    assert seconds > 0.3
    assert rms > 300  # silence is 0; speech from eSpeak measures in the thousands


def test_speech_mp3(tmp_path: Path) -> None:
    out = tmp_path / "voice.mp3"
    outcome = generate(
        "text_to_speech",
        "espeak",
        out,
        text="Guten Morgen, wie geht es?",
        voice="de",
        speed=160,
        pitch=40,
    )
    info = probe(out)
    assert info.format == "mp3" and info.audio_streams == 1 and info.video_streams == 0
    assert info.duration_s is not None and info.duration_s > 0.3
    assert outcome.usage["seconds"] > 0.3
    assert list(tmp_path.iterdir()) == [out]  # the temporary WAV is gone


def test_speech_rate_changes_the_length(tmp_path: Path) -> None:
    slow, fast = tmp_path / "slow.wav", tmp_path / "fast.wav"
    text = "One, two, three, four, five, six, seven."
    generate("text_to_speech", "espeak", slow, text=text, speed=100)
    generate("text_to_speech", "espeak", fast, text=text, speed=300)
    assert wav_stats(slow)[0] > 1.5 * wav_stats(fast)[0]


def test_speech_from_many_threads_matches_serial(tmp_path: Path) -> None:
    # eSpeak is one global state; the lock must keep concurrent syntheses apart.
    # eSpeak carries a little state from one utterance to the next (its pitch
    # flutter), so repeats differ slightly: compare lengths, not bytes. The
    # speeds make the lengths differ by 15% or more, so interleaved syntheses,
    # which would swap or merge samples, miss by far more than the tolerance.
    texts = [f"Sentence number {n} is spoken here." for n in range(4)]

    def speak(n: int, prefix: str) -> float:
        out = tmp_path / f"{prefix}{n}.wav"
        generate("text_to_speech", "espeak", out, text=texts[n], speed=120 + 80 * n)
        return wav_stats(out)[0]

    serial = [speak(n, "s") for n in range(len(texts))]
    threaded: dict[int, float] = {}
    errors: list[Exception] = []

    def worker(n: int) -> None:
        try:
            threaded[n] = speak(n, "t")
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for n, seconds in enumerate(serial):
        assert threaded[n] == pytest.approx(seconds, rel=0.05)


@pytest.mark.parametrize("voice", ["klingon-xx", "en+nosuchvariant"])
def test_unknown_voice_is_a_clear_error(tmp_path: Path, voice: str) -> None:
    out = tmp_path / "x.wav"
    with pytest.raises(ProviderError, match="unknown eSpeak voice") as info:
        generate("text_to_speech", "espeak", out, text="Hello", voice=voice)
    assert info.value.provider == "local"
    assert voice.partition("+")[2] in str(info.value) or voice in str(info.value)
    assert not out.exists()


# --- video ---------------------------------------------------------------------


def test_kenburns_video_has_requested_duration_and_size(media: dict[str, Path]) -> None:
    info = probe(media["video"])
    assert info.video_streams == 1 and info.audio_streams == 0
    assert info.video_codec == "h264"
    assert (info.width, info.height) == (160, 90)
    assert info.duration_s == pytest.approx(1.0, abs=0.05)


def test_kenburns_odd_size_is_made_even(tmp_path: Path, media: dict[str, Path]) -> None:
    out = tmp_path / "odd.mp4"
    outcome = generate(
        "image_to_video",
        "kenburns",
        out,
        image=str(media["image"]),
        duration_s=0.5,
        fps=10,
        width=101,
        zoom=1.5,
    )
    info = probe(out)
    assert (info.width, info.height) == (100, 56)
    assert info.duration_s == pytest.approx(0.5, abs=0.05)
    assert outcome.usage["seconds"] == pytest.approx(0.5)


def test_kenburns_turns_a_phone_photo_upright(tmp_path: Path, media: dict[str, Path]) -> None:
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    with Image.open(media["image"]) as img:
        img.convert("RGB").save(photo, exif=exif)
    out = tmp_path / "photo.mp4"
    generate("image_to_video", "kenburns", out, image=str(photo), duration_s=0.5, fps=10)
    info = probe(out)
    assert (info.width, info.height) == (90, 160)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.mp4"]


def test_titlecard(tmp_path: Path) -> None:
    out = tmp_path / "title.mp4"
    generate(
        "text_to_video",
        "titlecard",
        out,
        prompt="Chapter one",
        duration_s=1.0,
        fps=10,
        width=160,
        height=90,
    )
    info = probe(out)
    assert (info.width, info.height, info.video_streams) == (160, 90, 1)
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    assert list(tmp_path.iterdir()) == [out]  # the temporary card is gone


@pytest.mark.parametrize(
    ("fit", "expected"),
    [
        ("longest", "audio"),  # speech (~2.5 s) outlasts the clip (1 s): hold the last frame
        ("shortest", "video"),  # cut both to the clip
    ],
)
def test_mux_has_one_video_and_one_audio_stream(
    tmp_path: Path, media: dict[str, Path], fit: str, expected: str
) -> None:
    out = tmp_path / "final.mp4"
    generate("mux", "ffmpeg", out, video=str(media["video"]), audio=str(media["speech"]), fit=fit)
    info = probe(out)
    assert (info.video_streams, info.audio_streams) == (1, 1)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    audio_s, _ = wav_stats(media["speech"])
    want = audio_s if expected == "audio" else 1.0
    assert info.duration_s == pytest.approx(want, abs=0.1)
    # The picture lasts as long as the file: a frame decodes near the very end.
    end = tmp_path / "end.png"
    generate("thumbnail", "ffmpeg", end, video=str(out), at_s=want - 0.15)
    with Image.open(end) as img:
        assert img.size == (160, 90)


def test_mux_with_missing_video_is_a_clear_error(tmp_path: Path, media: dict[str, Path]) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(ProviderError, match="not found") as info:
        generate(
            "mux", "ffmpeg", tmp_path / "out.mp4", video=str(missing), audio=str(media["speech"])
        )
    assert str(missing) in str(info.value)
    assert info.value.provider == "local"


def test_mux_with_audio_as_video_is_a_clear_error(tmp_path: Path, media: dict[str, Path]) -> None:
    with pytest.raises(ProviderError, match="no video stream"):
        generate(
            "mux",
            "ffmpeg",
            tmp_path / "out.mp4",
            video=str(media["speech"]),
            audio=str(media["speech"]),
        )


def test_thumbnail(tmp_path: Path, media: dict[str, Path]) -> None:
    out = tmp_path / "thumb.jpg"
    generate("thumbnail", "ffmpeg", out, video=str(media["video"]), at_s=0.5)
    with Image.open(out) as img:
        assert img.size == (160, 90) and img.format == "JPEG"
        assert not_uniform(img)
    with pytest.raises(ProviderError, match="past the end"):
        generate("thumbnail", "ffmpeg", tmp_path / "late.png", video=str(media["video"]), at_s=30.0)


def test_transcode(tmp_path: Path, media: dict[str, Path]) -> None:
    out = tmp_path / "small.mp4"
    generate("transcode", "ffmpeg", out, video=str(media["video"]), width=80, fps=5)
    info = probe(out)
    assert (info.width, info.height) == (80, 44)
    assert info.duration_s == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    ("reframe", "crop_edges"),
    [
        ("crop", False),  # 16:9 cropped to fill 1:1: picture reaches every edge
        ("pad", True),  # 16:9 padded into 1:1: black bars above and below
    ],
)
def test_transcode_reframes_to_another_shape(
    tmp_path: Path, media: dict[str, Path], reframe: str, crop_edges: bool
) -> None:
    out = tmp_path / "square.mp4"
    generate("transcode", "ffmpeg", out, video=str(media["video"]), width=90, height=90, reframe=reframe)
    info = probe(out)
    assert (info.width, info.height) == (90, 90)
    frame = tmp_path / "frame.png"
    generate("thumbnail", "ffmpeg", frame, video=str(out), at_s=0.5)
    with Image.open(frame) as img:
        top_row = img.convert("L").crop((0, 0, 90, 4))
        is_black_bar = max(top_row.tobytes()) < 24
    assert is_black_bar == crop_edges


def test_transcode_burns_captions_in_while_their_cue_lasts(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    captions = tmp_path / "captions.srt"
    captions.write_text("1\n00:00:00,000 --> 00:00:00,500\nHELLO THERE\n", encoding="utf-8")
    plain, burnt = tmp_path / "plain.mp4", tmp_path / "burnt.mp4"
    generate("transcode", "ffmpeg", plain, video=str(media["video"]), width=320, height=180)
    generate(
        "transcode", "ffmpeg", burnt, video=str(media["video"]), width=320, height=180,
        subtitles=str(captions),
    )

    def lower_band(video: Path, at: float) -> list[int]:
        frame = tmp_path / f"{video.stem}-{at}.png"
        generate("thumbnail", "ffmpeg", frame, video=str(video), at_s=at)
        with Image.open(frame) as img:
            return list(img.convert("L").crop((0, 130, 320, 175)).tobytes())

    def differs(a: list[int], b: list[int]) -> int:
        return sum(abs(x - y) > 60 for x, y in zip(a, b, strict=True))

    # During the cue the caption's white text and black outline change the lower band ...
    assert differs(lower_band(plain, 0.2), lower_band(burnt, 0.2)) > 200
    # ... and after it the two videos look the same again.
    assert differs(lower_band(plain, 0.8), lower_band(burnt, 0.8)) < 20


@pytest.mark.parametrize(
    ("mode", "gap_s", "suffix"),
    [
        ("sequence", 0.0, ".mp3"),  # end to end: the sum of the clips
        ("sequence", 0.5, ".wav"),  # with half a second of silence between the two
        ("overlay", 0.0, ".mp3"),  # at once: as long as the longest clip
    ],
)
def test_mix_audio_lengths(
    tmp_path: Path, media: dict[str, Path], mode: str, gap_s: float, suffix: str
) -> None:
    short = tmp_path / "short.wav"
    generate("text_to_speech", "espeak", short, text="Hello.")
    long_s, _ = wav_stats(media["speech"])
    short_s, _ = wav_stats(short)
    out = tmp_path / f"mix{suffix}"
    generate(
        "mix_audio", "ffmpeg", out, audios=[str(media["speech"]), str(short)], mode=mode, gap_s=gap_s
    )
    want = long_s + short_s + gap_s if mode == "sequence" else max(long_s, short_s)
    info = probe(out)
    assert info.audio_streams == 1 and info.video_streams == 0
    assert info.duration_s == pytest.approx(want, abs=0.08)


def test_mix_audio_rejects_a_file_without_sound(tmp_path: Path, media: dict[str, Path]) -> None:
    with pytest.raises(ProviderError, match="no audio stream"):
        generate("mix_audio", "ffmpeg", tmp_path / "m.mp3", audios=[str(media["video"])])


@pytest.mark.parametrize("suffix", [".srt", ".vtt"])
def test_subtitles_span_the_narration_in_order(
    tmp_path: Path, media: dict[str, Path], suffix: str
) -> None:
    from acpbuild.providers.local.captions import read_cues

    text = "The lighthouse keeps its watch. Over the harbour, all night long, it turns."
    out = tmp_path / f"captions{suffix}"
    generate("subtitles", "captions", out, text=text, audio=str(media["speech"]), words_per_cue=3)
    assert out.read_text(encoding="utf-8").startswith("WEBVTT" if suffix == ".vtt" else "1\n")
    cues = read_cues(out)
    speech_s, _ = wav_stats(media["speech"])
    assert cues[0].start == 0 and cues[-1].end == pytest.approx(speech_s, abs=0.01)
    assert all(a.end == b.start for a, b in itertools.pairwise(cues))
    assert all(len(c.text.split()) <= 3 for c in cues)
    # a cue never runs across a sentence end
    assert "watch. Over" not in " | ".join(c.text for c in cues)
    assert " ".join(c.text for c in cues) == text


def test_subtitles_need_audio_or_a_duration(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="'audio'.*or 'duration_s'"):
        generate("subtitles", "captions", tmp_path / "c.srt", text="words", words_per_cue=6)


def test_mux_fit_and_transcode_reframe_are_separate_parameters() -> None:
    ffmpeg = LocalProvider().catalogue()["ffmpeg"]
    assert ffmpeg.params_for("mux")["fit"].choices == ("longest", "shortest")
    assert ffmpeg.params_for("transcode")["reframe"].choices == ("stretch", "crop", "pad")
    assert "reframe" not in ffmpeg.params_for("mux") and "fit" not in ffmpeg.params_for("transcode")


# --- probe and ffmpeg errors -----------------------------------------------------


def test_probe_rejects_a_file_that_is_not_media(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(ProviderError, match="not a media file"):
        probe(junk)


def test_ffmpeg_failure_quotes_stderr(tmp_path: Path) -> None:
    from acpbuild.media import run_ffmpeg

    with pytest.raises(ProviderError, match="ffmpeg failed") as info:
        run_ffmpeg(["-i", tmp_path / "absent.wav", tmp_path / "out.mp3"], timeout=30)
    assert "absent.wav" in str(info.value)
