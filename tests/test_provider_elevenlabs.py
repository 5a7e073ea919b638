"""The ElevenLabs adapter, driving the real ``elevenlabs`` SDK against a local emulator.

ElevenLabs has no long-running jobs (the audio is the answer to the one
request), so there is no resume test: instead, every test checks how many
text-to-speech requests reached the emulator, because each one may be billed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from acpbuild.errors import (
    AuthError,
    BadResponse,
    MissingCredentials,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
)
from acpbuild.provider import Job
from acpbuild.provider.wire import sniff
from acpbuild.providers.elevenlabs.adapter import ElevenLabsProvider
from tests.emulators import Journal, Response
from tests.emulators.elevenlabs import KEY, TTS, VOICES, ElevenLabsEmulator, error, mp3_bytes

ROOT = Path(__file__).resolve().parents[1]
KIND = "text_to_speech"
CATALOGUE = ElevenLabsProvider({}).catalogue()
RACHEL = "21m00Tcm4TlvDq8ikWAM"
GEORGE = "JBFqnCBsd6RMkjVDRZzb"


@pytest.fixture(scope="module")
def server() -> Any:
    # One server per module: stopping one takes half a second (serve_forever's poll).
    with ElevenLabsEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: ElevenLabsEmulator) -> ElevenLabsEmulator:
    """The emulator with an empty request log and no scripted failures."""
    server.reset()
    return server



def env_for(emu: ElevenLabsEmulator | None, **extra: str) -> dict[str, str]:
    env = {
        "ELEVENLABS_API_KEY": KEY,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
    }
    if emu is not None:
        env["ACPBUILD_ELEVENLABS_URL"] = emu.url
    env.update(extra)
    return env


def make_job(
    tmp_path: Path,
    model: str = "eleven_multilingual_v2",
    output: str = "speech.mp3",
    timeout_s: float = 30.0,
    **params: Any,
) -> Job:
    """A job as the runner builds it: parameters checked, defaults filled in."""
    entry = CATALOGUE[model]
    params.setdefault("text", "Hello from acpbuild.")
    for name, value in params.items():
        assert entry.params[name].check(value) is None, name
    full = {n: p.default for n, p in entry.params_for(KIND).items() if p.default is not None}
    full.update(params)
    return Job(KIND, entry, full, tmp_path / output, timeout_s)


def leftovers(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# -- successes -----------------------------------------------------------------


def test_mp3_by_voice_name_maps_every_parameter(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    provider = ElevenLabsProvider(env_for(emu))
    journal = Journal()
    job = make_job(
        tmp_path,
        text="The quick brown fox.",
        voice="Rachel",
        stability=0.4,
        similarity_boost=0.8,
        style=0.1,
        use_speaker_boost=True,
        speed=1.1,
        seed=42,
    )
    outcome = provider.generate(job, journal)

    assert job.output.read_bytes() == mp3_bytes()
    assert sniff(job.output) == "audio"
    assert leftovers(tmp_path) == []
    [lookup] = emu.calls("GET", "/v1/voices")
    assert lookup.headers["xi-api-key"] == KEY
    assert lookup.query["show_legacy"] == ["true"]
    [tts] = emu.calls("POST", TTS)
    assert tts.path == f"/v1/text-to-speech/{RACHEL}"
    assert tts.query["output_format"] == ["mp3_44100_128"]
    assert tts.headers["xi-api-key"] == KEY
    assert tts.json() == {
        "text": "The quick brown fox.",
        "model_id": "eleven_multilingual_v2",
        "voice_settings": {
            "stability": 0.4,
            "similarity_boost": 0.8,
            "style": 0.1,
            "use_speaker_boost": True,
            "speed": 1.1,
        },
        "seed": 42,
    }
    assert outcome.request_id == "req-1"
    assert outcome.actual_cost is None
    assert outcome.usage == {"characters": 20, "seconds": 0.5}
    assert outcome.meta["voice_id"] == RACHEL
    assert outcome.meta["credits"] == 20
    assert journal.ids == []  # no long-running jobs: the journal is unused


def test_wav_by_voice_id_needs_no_lookup(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    provider = ElevenLabsProvider(env_for(emu))
    job = make_job(
        tmp_path, "eleven_v3", "line.wav", voice=GEORGE, language_code="de", stability=0.5
    )
    outcome = provider.generate(job, Journal())

    assert job.output.read_bytes()[:4] == b"RIFF"
    assert sniff(job.output) == "audio"
    assert emu.calls("GET", "/v1/voices") == []
    [tts] = emu.calls("POST", TTS)
    assert tts.path == f"/v1/text-to-speech/{GEORGE}"
    assert tts.query["output_format"] == ["wav_44100"]
    assert tts.json() == {
        "text": "Hello from acpbuild.",
        "model_id": "eleven_v3",
        "voice_settings": {"stability": 0.5},
        "language_code": "de",
    }
    assert outcome.usage == {"characters": 20, "seconds": 0.25}


@pytest.mark.parametrize("model", sorted(CATALOGUE))
def test_every_model_speaks(emu: ElevenLabsEmulator, tmp_path: Path, model: str) -> None:
    job = make_job(tmp_path, model, output_format="mp3_22050_32")
    outcome = ElevenLabsProvider(env_for(emu)).generate(job, Journal())
    [tts] = emu.calls("POST", TTS)
    assert tts.json()["model_id"] == model
    assert tts.path == f"/v1/text-to-speech/{GEORGE}"  # the default voice
    assert tts.query["output_format"] == ["mp3_22050_32"]
    assert outcome.usage["seconds"] == pytest.approx(0.5)
    assert job.output.stat().st_size == outcome.meta["bytes"]


def test_voice_names_are_cached_and_matched_loosely(
    emu: ElevenLabsEmulator, tmp_path: Path
) -> None:
    provider = ElevenLabsProvider(env_for(emu))
    provider.generate(make_job(tmp_path, output="a.mp3", voice="rachel"), Journal())
    provider.generate(make_job(tmp_path, output="b.mp3", voice="Sarah"), Journal())  # short name
    assert [r.path for r in emu.calls("POST", TTS)] == [
        f"/v1/text-to-speech/{RACHEL}",
        "/v1/text-to-speech/EXAVITQu4vr4xnSDxMaL",
    ]
    assert len(emu.calls("GET", "/v1/voices")) == 1


def test_v2_search_is_the_fallback_when_v1_refuses(tmp_path: Path) -> None:
    many = VOICES + [{"voice_id": f"v{i:019d}", "name": f"Narrator {i}"} for i in range(150)]
    with ElevenLabsEmulator(voices=many) as emu:
        emu.fail("GET", "/v1/voices", error(400, "too_many_voices", "Use GET /v2/voices."))
        provider = ElevenLabsProvider(env_for(emu))
        provider.generate(make_job(tmp_path, voice="Narrator 140"), Journal())
        pages = emu.calls("GET", "/v2/voices")
        assert [p.query.get("next_page_token") for p in pages] == [None, ["100"]]
        [tts] = emu.calls("POST", TTS)
        assert tts.path == f"/v1/text-to-speech/v{140:019d}"


def test_ping_reads_the_subscription(emu: ElevenLabsEmulator) -> None:
    text = ElevenLabsProvider(env_for(emu)).ping()
    assert text == "ElevenLabs creator plan: 1,234 of 100,000 characters used"
    [call] = emu.calls("GET", "/v1/user/subscription")
    assert call.headers["xi-api-key"] == KEY
    assert KEY not in text


# -- refusals before anything is sent -------------------------------------------


def test_missing_key_names_the_variable(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    env = env_for(emu)
    del env["ELEVENLABS_API_KEY"]
    with pytest.raises(MissingCredentials, match="ELEVENLABS_API_KEY"):
        ElevenLabsProvider(env).generate(make_job(tmp_path), Journal())
    with pytest.raises(MissingCredentials, match="ELEVENLABS_API_KEY"):
        ElevenLabsProvider(env).ping()
    assert emu.requests == []


@pytest.mark.parametrize(
    ("output", "fmt", "says"),
    [
        ("speech.mp3", "wav_44100", "does not match"),  # the format would write WAV into .mp3
        ("speech.wav", "mp3_44100_128", "does not match"),
        ("speech.ogg", None, ".mp3 or .wav"),  # no audio container we can fill
    ],
)
def test_output_format_must_fit_the_suffix(
    emu: ElevenLabsEmulator, tmp_path: Path, output: str, fmt: str | None, says: str
) -> None:
    params = {"output_format": fmt} if fmt else {}
    with pytest.raises(RequestRejected, match=says) as info:
        ElevenLabsProvider(env_for(emu)).generate(
            make_job(tmp_path, output=output, **params), Journal()
        )
    assert info.value.sent is False
    assert emu.requests == []


def test_unknown_voice_name_lists_the_nearest(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    with pytest.raises(RequestRejected, match="did you mean 'Rachel'") as info:
        ElevenLabsProvider(env_for(emu)).generate(make_job(tmp_path, voice="Rachael"), Journal())
    assert "no voice named 'Rachael'" in str(info.value)
    assert emu.submissions == 0


def test_catalogue_rejects_wrong_parameters_at_load() -> None:
    assert CATALOGUE["eleven_v3"].params["stability"].check(0.3) is not None  # v3: 0, 0.5 or 1
    assert CATALOGUE["eleven_flash_v2_5"].params["stability"].check(0.3) is None
    assert CATALOGUE["eleven_turbo_v2_5"].params["speed"].check(1.5) is not None
    assert CATALOGUE["eleven_turbo_v2_5"].params["output_format"].check("mp3_44100_127") is not None
    assert "language_code" not in CATALOGUE["eleven_multilingual_v2"].params  # not enforced
    assert CATALOGUE["eleven_flash_v2_5"].params["language_code"].check("hu") is None
    assert CATALOGUE["eleven_flash_v2_5"].params["language_code"].check("xx") is not None
    assert CATALOGUE["eleven_v3"].params["language_code"].check("sw") is None  # 70+ languages
    assert CATALOGUE["eleven_v3"].params["text"].required
    assert all(m.kinds == (KIND,) and m.endpoints[KIND] == key for key, m in CATALOGUE.items())


# The per-request character limits of https://elevenlabs.io/docs/models#character-limits
LIMITS = {
    "eleven_v3": 5_000,
    "eleven_multilingual_v2": 10_000,
    "eleven_flash_v2_5": 40_000,
    "eleven_turbo_v2_5": 40_000,
}


@pytest.mark.parametrize("model", sorted(LIMITS))
def test_text_up_to_the_models_limit_is_sent_and_longer_is_refused_unsent(
    emu: ElevenLabsEmulator, tmp_path: Path, model: str
) -> None:
    provider = ElevenLabsProvider(env_for(emu))
    provider.generate(make_job(tmp_path, model, text="a" * LIMITS[model]), Journal())
    assert emu.submissions == 1  # the emulator, like the API, takes the limit itself

    with pytest.raises(RequestRejected, match=f"at most {LIMITS[model]:,} characters") as info:
        provider.generate(make_job(tmp_path, model, text="a" * (LIMITS[model] + 1)), Journal())
    assert info.value.sent is False
    assert emu.submissions == 1


@pytest.mark.parametrize("code", ["eng", "EN", "en-US"])
def test_v3_language_code_must_be_iso_639_1(
    emu: ElevenLabsEmulator, tmp_path: Path, code: str
) -> None:
    # the API refuses "Model 'eleven_v3' does not support the language_code eng"
    job = make_job(tmp_path, "eleven_v3", language_code=code)
    with pytest.raises(RequestRejected, match="not an ISO 639-1 code") as info:
        ElevenLabsProvider(env_for(emu)).generate(job, Journal())
    assert info.value.sent is False
    assert emu.requests == []


def test_every_model_has_a_price() -> None:
    prices = tomllib.loads((ROOT / "acpbuild/money/prices/elevenlabs.toml").read_text())["models"]
    assert set(prices) == set(CATALOGUE)
    assert {p["unit"] for p in prices.values()} == {"1k_characters"}
    assert prices["eleven_flash_v2_5"]["usd"] < prices["eleven_v3"]["usd"]


# -- errors from the service -----------------------------------------------------

ERRORS = [
    # (answer to the text-to-speech request, error class, words the message must carry)
    (error(401, "invalid_api_key", "Invalid API key"), AuthError, "check ELEVENLABS_API_KEY"),
    (
        error(403, "missing_permissions", "The key lacks the text_to_speech permission"),
        AuthError,
        "lacks the text_to_speech permission",
    ),
    # quota exhaustion arrives as a 401, and is not an auth problem
    (
        error(401, "quota_exceeded", "This request exceeds your quota of 10000."),
        PaymentRequired,
        "exceeds your quota",
    ),
    (error(402, "payment_required", "Payment required"), PaymentRequired, "top up"),
    (
        error(400, "max_character_limit_exceeded", "Text is too long"),
        RequestRejected,
        "Text is too long",
    ),
    (
        error(
            403, "output_format_not_allowed", "pcm_44100 is only allowed for Pro tier and above."
        ),
        RequestRejected,
        "Pro tier",
    ),
    (
        error(400, "bad_prompt", "Your prompt appears to have violated our Terms of Service."),
        RequestRejected,
        "refused by the ElevenLabs content policy",
    ),
    # a 5xx after a billable request is not repeated
    (
        error(500, "something_went_wrong", "We are sorry, something went wrong."),
        ServiceUnavailable,
        "HTTP 500",
    ),
    (Response(502, "<html><h1>502 Bad Gateway</h1></html>"), ServiceUnavailable, "Bad Gateway"),
    # a 200 that is not audio
    (Response(200, {"ok": True}), BadResponse, "not MP3 audio"),
]


@pytest.mark.parametrize(("answer", "cls", "says"), ERRORS)
def test_service_errors_are_translated_and_never_repeated(
    emu: ElevenLabsEmulator, tmp_path: Path, answer: Response, cls: type, says: str
) -> None:
    emu.fail("POST", TTS, answer, times=5)
    job = make_job(tmp_path, voice=GEORGE)
    with pytest.raises(cls, match=says) as info:
        ElevenLabsProvider(env_for(emu)).generate(job, Journal())
    assert type(info.value) is cls
    assert info.value.provider == "elevenlabs"
    assert emu.submissions == 1
    assert not job.output.exists()
    assert leftovers(tmp_path) == []


def test_rejection_carries_the_providers_validation_message(
    emu: ElevenLabsEmulator, tmp_path: Path
) -> None:
    with pytest.raises(RequestRejected, match=r"HTTP 422: body.text: Field required") as info:
        ElevenLabsProvider(env_for(emu)).generate(make_job(tmp_path, text="  "), Journal())
    assert info.value.status == 422
    with pytest.raises(RequestRejected, match="voice_not_found: A voice with the voice_id"):
        ElevenLabsProvider(env_for(emu)).generate(make_job(tmp_path, voice="Z" * 20), Journal())


def test_429_is_retried_after_retry_after(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    emu.fail(
        "POST",
        TTS,
        error(429, "too_many_concurrent_requests", "Slow down", **{"Retry-After": "0.3"}),
    )
    job = make_job(tmp_path)
    start = time.monotonic()
    outcome = ElevenLabsProvider(env_for(emu)).generate(job, Journal())
    assert time.monotonic() - start >= 0.3
    assert emu.submissions == 2
    assert outcome.request_id == "req-2"
    assert sniff(job.output) == "audio"


def test_429_that_persists_becomes_rate_limited(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    emu.fail("POST", TTS, error(429, "system_busy", "Busy", **{"Retry-After": "0"}), times=10)
    env = env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")
    with pytest.raises(RateLimited, match="system_busy") as info:
        ElevenLabsProvider(env).generate(make_job(tmp_path), Journal())
    assert info.value.retry_after == 0
    assert emu.submissions == 3


def test_lookups_are_retried_even_on_5xx(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    emu.fail("GET", "/v1/voices", error(500, "something_went_wrong", "oops"))
    emu.fail(
        "GET", "/v1/user/subscription", error(429, "system_busy", "Busy", **{"Retry-After": "0"})
    )
    provider = ElevenLabsProvider(env_for(emu))
    provider.generate(make_job(tmp_path, voice="Adam"), Journal())
    assert len(emu.calls("GET", "/v1/voices")) == 2
    assert "creator" in provider.ping()
    assert len(emu.calls("GET", "/v1/user/subscription")) == 2


def test_ping_translates_errors(emu: ElevenLabsEmulator) -> None:
    with pytest.raises(AuthError, match="ELEVENLABS_API_KEY"):
        ElevenLabsProvider(env_for(emu, ELEVENLABS_API_KEY="test-el-wrong-0000")).ping()


def test_truncated_audio_never_becomes_the_output(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    # The audio is the answer to the billable request, so a cut-off stream is
    # reported, not silently bought again; the next run of the step succeeds.
    audio = mp3_bytes()
    emu.fail("POST", TTS, Response(200, audio, {"Content-Type": "audio/mpeg"}, truncate_to=1000))
    job = make_job(tmp_path)
    provider = ElevenLabsProvider(env_for(emu))
    with pytest.raises(BadResponse, match="truncated"):
        provider.generate(job, Journal())
    assert emu.submissions == 1
    assert not job.output.exists()
    assert leftovers(tmp_path) == []

    provider.generate(job, Journal())
    assert job.output.read_bytes() == audio
    assert emu.submissions == 2


def test_a_slow_answer_times_out_without_a_second_request(
    emu: ElevenLabsEmulator, tmp_path: Path
) -> None:
    emu.fail("POST", TTS, Response(200, mp3_bytes(), {"Content-Type": "audio/mpeg"}, delay_s=0.6))
    job = make_job(tmp_path, timeout_s=0.2)
    with pytest.raises(ProviderTimeout, match="not repeated"):
        ElevenLabsProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 1
    assert not job.output.exists()


def test_refused_connection_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(
        None, ACPBUILD_ELEVENLABS_URL=f"http://127.0.0.1:{port}", ACPBUILD_RETRY_ATTEMPTS="2"
    )
    with pytest.raises(ServiceUnavailable, match="cannot connect") as info:
        ElevenLabsProvider(env).generate(make_job(tmp_path), Journal())
    assert info.value.sent is False


# -- secrets and imports -----------------------------------------------------------


def _texts(exc: BaseException) -> list[str]:
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        seen += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return seen


def test_no_error_text_contains_the_key(emu: ElevenLabsEmulator, tmp_path: Path) -> None:
    errors: list[ProviderError] = []

    def catch(call: Any) -> None:
        with pytest.raises(ProviderError) as info:
            call()
        errors.append(info.value)

    provider = ElevenLabsProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="2"))
    # a service that echoes the key back in its message
    emu.fail("POST", TTS, error(400, "invalid_request", f"bad request from key {KEY}"))
    catch(lambda: provider.generate(make_job(tmp_path), Journal()))
    emu.fail(
        "GET", "/v1/user/subscription", error(401, "invalid_api_key", f"Invalid API key {KEY}")
    )
    catch(provider.ping)
    for answer, _, _ in ERRORS:
        emu.fail("POST", TTS, answer)
        catch(lambda: provider.generate(make_job(tmp_path), Journal()))
    emu.fail("POST", TTS, error(429, "system_busy", "Busy", **{"Retry-After": "0"}), times=2)
    catch(lambda: provider.generate(make_job(tmp_path), Journal()))
    emu.fail("POST", TTS, Response(200, mp3_bytes(), truncate_to=10))
    catch(lambda: provider.generate(make_job(tmp_path), Journal()))
    catch(lambda: provider.generate(make_job(tmp_path, voice="Nobody"), Journal()))
    emu.fail("POST", TTS, Response(200, mp3_bytes(), delay_s=0.3))
    catch(lambda: provider.generate(make_job(tmp_path, timeout_s=0.1), Journal()))
    catch(lambda: ElevenLabsProvider({}).generate(make_job(tmp_path), Journal()))

    kinds = {type(e) for e in errors}
    assert {AuthError, PaymentRequired, RateLimited, ServiceUnavailable, RequestRejected} <= kinds
    assert {BadResponse, MissingCredentials, ProviderTimeout} <= kinds
    assert "***" in str(errors[0]) and "***" in str(errors[1])  # redacted, not dropped
    for exc in errors:
        for text in _texts(exc):
            assert KEY not in text


def test_importing_the_adapter_does_not_import_the_sdk() -> None:
    code = "import acpbuild.providers.elevenlabs.adapter, sys; assert 'elevenlabs' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
