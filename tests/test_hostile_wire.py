"""Hostile answers: a key goes only where it was configured, and only decodable outputs are stored.

Each provider's emulator answers with a URL on a second loopback server (a
stranger's host) that logs every request: the stranger must never see the key.
A status or redirect URL elsewhere is refused, clearly, and a job that was
queued stays resumable; a result file elsewhere (a CDN) is fetched without
the key. Outputs that only look right (a PNG signature then zeros, a cut MP4
or MP3, a body with no length past the size cap) are refused, never stored as
done, and a queued job is fetched again by the next run without paying twice.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_recipe

import acpbuild
from acpbuild.engine.workflow import forecast
from acpbuild.errors import BadResponse, ProviderError
from acpbuild.media import ffmpeg_exe
from acpbuild.provider.outputs import MAX_IMAGE_SIDE, check_output
from acpbuild.provider.wire import Origins, download, write_atomic
from acpbuild.providers.elevenlabs.adapter import ElevenLabsProvider
from acpbuild.providers.fal.adapter import FalProvider
from acpbuild.providers.google.gemini import GoogleProvider
from acpbuild.providers.openrouter.adapter import OpenRouterProvider
from tests.emulators import Emulator, Journal, Response, real_mp4
from tests.emulators.elevenlabs import KEY as EL_KEY
from tests.emulators.elevenlabs import TTS, ElevenLabsEmulator
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import MEDIA, FalEmulator, image_bytes
from tests.emulators.google import KEY as GOOGLE_KEY
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import OpenRouterEmulator
from tests.test_provider_fal import make_job as fal_job
from tests.test_provider_google import video_job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FETCH = r".*:fetchPredictOperation"


def base_env(**extra: str) -> dict[str, str]:
    return {
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
        "ACPBUILD_RETRY_ATTEMPTS": "2",
        "ACPBUILD_CONFIG": os.devnull,
        "PATH": os.environ.get("PATH", ""),
        **extra,
    }


@pytest.fixture
def stranger() -> Iterator[Emulator]:
    """Another host: it answers everything and logs what it was sent."""
    with Emulator() as server:
        yield server


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    with FalEmulator() as emulator:
        yield emulator


def fal_env(fal: FalEmulator, **extra: str) -> dict[str, str]:
    return base_env(FAL_KEY=FAL_KEY, ACPBUILD_FAL_URL=fal.url, **extra)


def rows(store: Path) -> list[tuple[str, str | None]]:
    """(state, request id) of every generation in the ledger, oldest first."""
    with sqlite3.connect(store / "ledger.sqlite3") as db:
        return [(str(s), r) for s, r in db.execute("SELECT state, request_id FROM generations ORDER BY id")]


def saw_no_key(server: Emulator, *keys: str) -> bool:
    return all(key not in value for r in server.requests for value in r.headers.values() for key in keys)


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Half a second of real MP3 (a sine tone), made by the bundled ffmpeg."""
    out = tmp_path_factory.mktemp("mp3") / "tone.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=d=0.5", "-b:a", "128k", str(out)],
        check=True,
        timeout=60,
    )
    return out.read_bytes()


# -- where keys go ----------------------------------------------------------------


def test_origins_trust_the_configured_endpoint_and_the_official_hosts_only() -> None:
    origins = Origins("http://127.0.0.1:8000/api", ("queue.fal.run", "*-aiplatform.googleapis.com"))
    assert origins.trusts("http://127.0.0.1:8000/queue/x")  # same origin as configured
    assert origins.trusts("https://queue.fal.run/fal-ai/x/requests/1/status")
    assert origins.trusts("https://us-central1-aiplatform.googleapis.com/v1beta1/x")
    assert not origins.trusts("http://127.0.0.1:8001/queue/x")  # another port
    assert not origins.trusts("http://queue.fal.run/x")  # an official host, but not over HTTPS
    assert not origins.trusts("https://queue.fal.run.evil.example/x")
    assert not origins.trusts("https://evil.example/queue.fal.run")
    assert not origins.trusts("file:///etc/passwd")


def test_fal_status_url_on_another_host_is_refused_and_the_job_resumes(
    fal: FalEmulator, stranger: Emulator, tmp_path: Path
) -> None:
    recipe = copy_recipe("fal_clip.toml", tmp_path)
    fal.queue_root = stranger.url  # the submit answer names a stranger's status/result URLs
    first = acpbuild.run(recipe, env=fal_env(fal))
    assert not first.success
    error = first.steps["clip"].error or ""
    assert "refused to send the key to http://127.0.0.1:" in error
    assert "req-0001 is kept" in error
    assert stranger.requests == []  # never polled, so never sent the key
    assert rows(tmp_path / ".acpbuild") == [("submitted", "req-0001")]

    second = acpbuild.run(recipe, env=fal_env(fal))  # resumed at the configured host
    assert second.success, second.to_dict()
    assert fal.submissions == 1
    assert stranger.requests == []


def test_fal_result_file_on_another_host_is_fetched_without_the_key(
    fal: FalEmulator, stranger: Emulator, tmp_path: Path
) -> None:
    stranger.answer = Response(200, image_bytes("png", (64, 48)), {"Content-Type": "image/png"})
    fal.result_extra = {"images": [{"url": f"{stranger.url}/files/out.png", "content_type": "image/png"}]}
    job = fal_job(tmp_path)
    FalProvider(fal_env(fal)).generate(job, Journal())
    assert job.output.read_bytes() == stranger.answer.body
    (fetched,) = stranger.requests
    assert "authorization" not in fetched.headers
    assert saw_no_key(stranger, FAL_KEY)


def test_elevenlabs_redirect_to_another_host_is_refused(stranger: Emulator, tmp_path: Path) -> None:
    with ElevenLabsEmulator() as el:
        el.fail("POST", TTS, Response(307, b"", {"Location": f"{stranger.url}/v1/text-to-speech/x"}))
        env = base_env(ELEVENLABS_API_KEY=EL_KEY, ACPBUILD_ELEVENLABS_URL=el.url)
        recipe = copy_recipe("speech.toml", tmp_path)
        result = acpbuild.run(recipe, env=env)
        assert not result.success
        assert "refused to send the key" in (result.steps["line"].error or "")
        assert el.submissions == 1  # not repeated
    assert stranger.requests == []
    assert not (tmp_path / "out" / "line.mp3").exists()


def test_veo_video_on_another_host_is_fetched_without_the_key(stranger: Emulator, tmp_path: Path) -> None:
    with GoogleEmulator() as google:
        google.polls_before_done = 0
        stranger.answer = Response(200, real_mp4(), {"Content-Type": "video/mp4"})
        done = {"name": "x", "done": True, "response": {"videos": [{"gcsUri": f"{stranger.url}/v.mp4"}]}}
        google.fail("POST", FETCH, Response(200, done))
        # and a redirect from the API host itself to the stranger loses the key on the way
        google.fail("GET", r"/media/.*", Response(302, b"", {"Location": f"{stranger.url}/moved.mp4"}))
        env = base_env(GEMINI_API_KEY=GOOGLE_KEY, ACPBUILD_GOOGLE_URL=google.url)
        job = video_job(tmp_path)
        GoogleProvider(env).generate(job, Journal())
        assert job.output.read_bytes() == real_mp4()

        download(
            f"{google.url}/media/op-1.mp4",
            tmp_path / "again.mp4",
            provider="google",
            expect="video",
            headers={"x-goog-api-key": GOOGLE_KEY},
            origins=GoogleProvider(env).origins(vertex=True),
        )
        assert google.calls("GET", r"/media/.*")[0].headers["x-goog-api-key"] == GOOGLE_KEY
    assert [r.path for r in stranger.requests] == ["/v.mp4", "/moved.mp4"]
    assert saw_no_key(stranger, GOOGLE_KEY)


def test_gemini_redirect_to_another_host_is_refused(stranger: Emulator, tmp_path: Path) -> None:
    from tests.test_provider_google import make_job as google_job

    with GoogleEmulator() as google:
        google.fail("POST", r".*:generateContent", Response(307, b"", {"Location": f"{stranger.url}/v1/x"}))
        env = base_env(GEMINI_API_KEY=GOOGLE_KEY, ACPBUILD_GOOGLE_URL=google.url)
        job = google_job("text", "gemini-2.5-flash", tmp_path / "a.txt", prompt="hi")
        with pytest.raises(BadResponse, match="refused to send the key"):
            GoogleProvider(env).generate(job, Journal())
    assert stranger.requests == []


def test_openrouter_redirect_to_another_host_is_refused(stranger: Emulator, tmp_path: Path) -> None:
    from tests.emulators.openrouter import KEY as OR_KEY
    from tests.test_provider_openrouter import make_job as or_job

    with OpenRouterEmulator() as orr:
        orr.fail("POST", r"/api/v1/chat/completions", Response(307, b"", {"Location": f"{stranger.url}/x"}))
        env = base_env(OPENROUTER_API_KEY=OR_KEY, ACPBUILD_OPENROUTER_URL=f"{orr.url}/api/v1")
        with pytest.raises(BadResponse, match="refused to send the key") as info:
            OpenRouterProvider(env).generate(or_job(tmp_path), Journal())
        assert info.value.sent  # the prompt reached OpenRouter: not repeated
    assert stranger.requests == []


# -- what outputs must pass --------------------------------------------------------


def _fal_broken(fal: FalEmulator, response: Response) -> None:
    fal.fail("GET", MEDIA, response, times=10)


@pytest.mark.parametrize(
    ("recipe", "step", "output", "answer", "expected"),
    [
        # a PNG signature followed by zeros: the magic bytes pass, the pixels do not
        ("fal_poster.toml", "poster", "poster.png", Response(200, PNG_SIGNATURE + bytes(4096)),
         "the image does not decode"),
        # an MP4 cut in half, served with a length that matches what was cut
        ("fal_clip.toml", "clip", "clip.mp4", Response(200, real_mp4()[: len(real_mp4()) // 2]),
         "the video does not decode"),
        # a body with no length that passes the cap (50 kB here) is stopped, not stored
        ("fal_poster.toml", "poster", "poster.png",
         Response(200, PNG_SIGNATURE + os.urandom(200_000), chunked=8192), "went past the 0.05 MB cap"),
    ],
)
def test_a_fal_result_that_fails_its_check_is_never_stored_and_the_job_is_fetched_again(
    fal: FalEmulator, tmp_path: Path, recipe: str, step: str, output: str, answer: Response, expected: str
) -> None:
    path = copy_recipe(recipe, tmp_path)
    env = fal_env(fal, ACPBUILD_MAX_DOWNLOAD_MB="0.05")
    _fal_broken(fal, answer)
    first = acpbuild.run(path, env=env)
    assert not first.success
    error = first.steps[step].error or ""
    assert expected in error and "req-0001 is kept" in error, error
    assert not (tmp_path / "out" / output).exists()
    assert rows(tmp_path / ".acpbuild") == [("submitted", "req-0001")]  # nothing stored as done
    (entry,) = forecast(path, env=env).entries
    assert entry.state == "run" and "resumes request req-0001" in entry.reason

    fal.failures.clear()  # the CDN serves the real file now
    second = acpbuild.run(path, env=env)
    assert second.success, second.to_dict()
    assert fal.submissions == 1
    assert rows(tmp_path / ".acpbuild") == [("done", "req-0001")]


def test_a_cut_mp3_is_refused_and_not_stored(mp3: bytes, tmp_path: Path) -> None:
    with ElevenLabsEmulator() as el:
        el.fail("POST", TTS, Response(200, mp3[:300], {"Content-Type": "audio/mpeg"}))
        env = base_env(ELEVENLABS_API_KEY=EL_KEY, ACPBUILD_ELEVENLABS_URL=el.url)
        recipe = copy_recipe("speech.toml", tmp_path)
        first = acpbuild.run(recipe, env=env)
        assert not first.success
        error = first.steps["line"].error or ""
        assert "the audio does not decode" in error and "possibly billed" in error, error
        # not stored: the broken answer counts as possibly billed, and the next run asks again
        assert [state for state, _ in rows(tmp_path / ".acpbuild")] == ["possibly_billed"]
        assert forecast(recipe, env=env).entries[0].state == "run"
        assert el.submissions == 1


def test_elevenlabs_audio_past_the_cap_is_stopped(tmp_path: Path, mp3: bytes) -> None:
    with ElevenLabsEmulator() as el:
        el.fail("POST", TTS, Response(200, mp3 * 40, {"Content-Type": "audio/mpeg"}, chunked=4096))
        env = base_env(ELEVENLABS_API_KEY=EL_KEY, ACPBUILD_ELEVENLABS_URL=el.url, ACPBUILD_MAX_DOWNLOAD_MB="0.1")
        from tests.test_provider_elevenlabs import make_job as el_job

        job = el_job(tmp_path)
        with pytest.raises(BadResponse, match="went past the 0.1 MB cap") as info:
            ElevenLabsProvider(env).generate(job, Journal())
        assert info.value.sent and not info.value.retryable
        assert el.submissions == 1
    assert not job.output.exists()
    assert not list(tmp_path.glob(".*.part"))


def test_a_declared_length_past_the_cap_is_refused_before_reading(stranger: Emulator, tmp_path: Path) -> None:
    stranger.answer = Response(200, PNG_SIGNATURE + bytes(300_000))
    with pytest.raises(BadResponse, match="is 0.29 MB, over the 0.1 MB cap"):
        download(f"{stranger.url}/big.png", tmp_path / "big.png", provider="fal", expect="image", max_bytes=2**20 // 10)
    assert list(tmp_path.iterdir()) == []


def _media_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _image(size: tuple[int, int]) -> bytes:
    return image_bytes("png", size)


@pytest.mark.parametrize(
    ("name", "media", "data", "problem"),
    [
        ("a.png", "image", lambda mp3: _image((64, 48)), None),
        ("a.png", "image", lambda mp3: PNG_SIGNATURE + bytes(4096), "the image does not decode"),
        ("a.png", "image", lambda mp3: _image((64, 48))[:-40], "the image does not decode"),  # cut short
        ("a.png", "image", lambda mp3: _image((MAX_IMAGE_SIDE + 1, 1)), f"each side must be 1..{MAX_IMAGE_SIDE}"),
        ("a.mp3", "audio", lambda mp3: mp3, None),
        ("a.mp3", "audio", lambda mp3: b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(5000), "the audio does not decode"),
        ("a.mp3", "audio", lambda mp3: mp3[:300], "the audio does not decode"),
        ("a.mp4", "video", lambda mp3: real_mp4(), None),
        ("a.mp4", "video", lambda mp3: real_mp4()[:-200], "the video does not decode"),
        ("a.mp4", "video", lambda mp3: b"\x00\x00\x00\x18ftypmp42" + bytes(4000), "the video does not decode"),
        ("a.mp4", "video", lambda mp3: mp3, "the video does not decode"),  # audio is not a video
        ("a.txt", "text", lambda mp3: "héllo".encode(), None),
        ("a.txt", "text", lambda mp3: b"\xff\xfe\x00bad", "is not UTF-8 text"),
    ],
)
def test_check_output_decodes(
    tmp_path: Path, mp3: bytes, name: str, media: str, data: Any, problem: str | None
) -> None:
    path = _media_file(tmp_path, name, data(mp3))
    if problem is None:
        check_output(path, media, provider="fal")
    else:
        with pytest.raises(BadResponse, match=problem):
            check_output(path, media, provider="fal")


# -- a disk that refuses the write ----------------------------------------------------


def test_a_download_whose_directory_is_a_file_names_the_path(stranger: Emulator, tmp_path: Path) -> None:
    stranger.answer = Response(200, _image((8, 8)))
    (tmp_path / "staging").write_text("a file where a directory should be")
    dest = tmp_path / "staging" / "out.png"
    with pytest.raises(ProviderError, match="cannot write the result to .*staging/out.png.part.*ENOTDIR") as info:
        download(f"{stranger.url}/x.png", dest, provider="fal", expect="image")
    assert not info.value.sent  # a download is free: the job stays resumable


def test_a_full_disk_during_a_download_names_the_path(stranger: Emulator, tmp_path: Path) -> None:
    stranger.answer = Response(200, _image((8, 8)))
    dest = tmp_path / "out.png"
    (tmp_path / "out.png.part").symlink_to("/dev/full")  # every write there fails with ENOSPC
    with pytest.raises(ProviderError, match="cannot write the result to .*out.png.part.*ENOSPC.*free some space"):
        download(f"{stranger.url}/x.png", dest, provider="fal", expect="image")
    assert not dest.exists()


def test_write_atomic_under_a_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    with pytest.raises(ProviderError, match="cannot write the result to .*blocker/answer.txt") as info:
        write_atomic(tmp_path / "blocker" / "answer.txt", b"paid for", provider="openrouter")
    assert info.value.sent  # what it held was an answer already paid for
