"""The Google adapter, driving the real ``google-genai`` SDK against a local emulator.

Gemini calls go to the Developer API (``/v1/models/...``); Veo goes through Vertex
AI with an API key (``/v1beta1/...publishers/google/models/...``), because
google-genai 3.x refuses ``generate_videos`` in Developer mode. Every test that
may cost money checks how many billable requests reached the emulator.
"""

from __future__ import annotations

import base64
import io
import re
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
from acpbuild.providers.google.gemini import GoogleProvider
from tests.emulators import Journal, Response
from tests.emulators.google import CLOUD_KEY, KEY, GoogleEmulator, error, mp4_bytes, png_bytes

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = GoogleProvider({}).catalogue()
VEO = "veo-3.1-generate-001"
GEN = r"/v1/models/gemini-2\.5-flash:generateContent"
SUBMIT = r".*:predictLongRunning"
FETCH = r".*:fetchPredictOperation"


@pytest.fixture(scope="module")
def server() -> Any:
    # One server per module: stopping one takes half a second (serve_forever's poll).
    with GoogleEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: GoogleEmulator) -> GoogleEmulator:
    """The emulator with an empty log, no scripted failures and default behaviour."""
    server.reset()
    with server.lock:
        server.operations.clear()
    server.polls_before_done = 1
    server.hold = False
    server.bucket.clear()
    server.video = mp4_bytes()
    server.image = png_bytes()
    return server



def env_for(emu: GoogleEmulator | None, **extra: str) -> dict[str, str]:
    env = {
        "GEMINI_API_KEY": KEY,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
    }
    if emu is not None:
        env["ACPBUILD_GOOGLE_URL"] = emu.url
    env.update(extra)
    return env


def make_job(kind: str, model: str, output: Path, timeout_s: float = 20.0, **params: Any) -> Job:
    spec = CATALOGUE[model]
    filled = {n: p.default for n, p in spec.params_for(kind).items() if p.default is not None}
    filled.update(params)
    return Job(kind=kind, model=spec, params=filled, output=output, timeout_s=timeout_s)


def text_job(tmp_path: Path, **params: Any) -> Job:
    params.setdefault("prompt", "Say hi")
    return make_job("text", "gemini-2.5-flash", tmp_path / "out.txt", **params)


def video_job(tmp_path: Path, kind: str = "text_to_video", **params: Any) -> Job:
    params.setdefault("prompt", "a red fox running through snow")
    return make_job(kind, VEO, tmp_path / "clip.mp4", **params)


def input_image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes((4, 4), (0, 120, 255)))
    return path


# -- successes -------------------------------------------------------------------
def test_text_maps_params_and_counts_thinking_as_output(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    job = text_job(tmp_path, system="Be terse.", temperature=0.3, max_tokens=200, seed=42)
    outcome = GoogleProvider(env_for(emu)).generate(job, Journal())

    assert job.output.read_text(encoding="utf-8") == "echo: Say hi"  # the thought part is dropped
    (request,) = emu.generations()
    assert request.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    body = request.json()
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hi"}]}]
    assert body["systemInstruction"]["parts"] == [{"text": "Be terse."}]
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 200, "seed": 42}
    assert outcome.usage == {"input_tokens": 11, "output_tokens": 12}  # 7 candidates + 5 thoughts
    assert outcome.request_id == "resp-1"
    assert outcome.meta["api"] == "gemini"


def test_image_understanding_inlines_the_image(emu: GoogleEmulator, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    job = make_job(
        "image_understanding",
        "gemini-2.5-pro",
        tmp_path / "caption.md",
        prompt="Describe it",
        image=str(image),
    )
    GoogleProvider(env_for(emu)).generate(job, Journal())

    assert job.output.read_text(encoding="utf-8") == "echo:  Describe it"
    (request,) = emu.generations()
    assert request.path == "/v1/models/gemini-2.5-pro:generateContent"
    first, second = request.json()["contents"][0]["parts"]
    # The SDK sends the blob's field as mime_type (proto JSON accepts either spelling).
    blob = first["inlineData"]
    assert blob.get("mimeType", blob.get("mime_type")) == "image/png"
    assert blob["data"] == base64.b64encode(image.read_bytes()).decode()
    assert second == {"text": "Describe it"}


@pytest.mark.parametrize(
    ("suffix", "fmt"),
    [
        (".png", "PNG"),  # returned as PNG: written byte for byte
        (".jpg", "JPEG"),  # converted with Pillow to match the suffix
        (".webp", "WEBP"),
    ],
)
def test_text_to_image_writes_the_asked_format(
    emu: GoogleEmulator, tmp_path: Path, suffix: str, fmt: str
) -> None:
    from PIL import Image

    job = make_job(
        "text_to_image",
        "gemini-2.5-flash-image",
        tmp_path / f"pic{suffix}",
        prompt="a red square",
        aspect_ratio="16:9",
    )
    outcome = GoogleProvider(env_for(emu)).generate(job, Journal())

    with Image.open(job.output) as im:
        assert im.format == fmt and im.size == (8, 8)
    if fmt == "PNG":
        assert job.output.read_bytes() == emu.image
    (request,) = emu.generations()
    assert request.path == "/v1/models/gemini-2.5-flash-image:generateContent"
    config = request.json()["generationConfig"]
    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}
    assert outcome.usage == {"images": 1}
    assert not list(tmp_path.glob(".*.part"))


def test_image_to_image_sends_the_input(emu: GoogleEmulator, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    job = make_job(
        "image_to_image",
        "gemini-2.5-flash-image",
        tmp_path / "edit.png",
        prompt="make it green",
        image=str(image),
    )
    GoogleProvider(env_for(emu)).generate(job, Journal())

    assert sniff(job.output) == "image"
    parts = emu.generations()[0].json()["contents"][0]["parts"]
    assert parts[0]["inlineData"]["data"] == base64.b64encode(image.read_bytes()).decode()
    assert parts[1] == {"text": "make it green"}


def test_a_gif_reaches_gemini_as_a_png_of_its_first_frame(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    # Gemini refuses image/gif ("Unsupported MIME type: image/gif"), as the emulator does.
    from PIL import Image

    gif = tmp_path / "in.gif"
    red, blue = Image.new("RGB", (6, 4), (255, 0, 0)), Image.new("RGB", (6, 4), (0, 0, 255))
    red.save(gif, save_all=True, append_images=[blue])
    job = make_job(
        "image_understanding", "gemini-2.5-flash", tmp_path / "a.txt", prompt="Hue?", image=str(gif)
    )
    GoogleProvider(env_for(emu)).generate(job, Journal())

    blob = emu.generations()[0].json()["contents"][0]["parts"][0]["inlineData"]
    assert blob.get("mimeType", blob.get("mime_type")) == "image/png"
    data = base64.urlsafe_b64decode(blob["data"])  # the SDK's encoding
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.size) == ("PNG", (6, 4))
        assert im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_a_gif_that_does_not_decode_is_refused_before_sending(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    gif = tmp_path / "broken.gif"
    gif.write_bytes(b"GIF89a" + b"\x00" * 20)
    job = make_job(
        "image_to_image", "gemini-2.5-flash-image", tmp_path / "e.png", prompt="x", image=str(gif)
    )
    with pytest.raises(RequestRejected, match="broken.gif .*does not decode") as info:
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert info.value.sent is False
    assert emu.generations() == []


# Every model of the catalogue, for every kind it serves: the endpoint it names is the
# one called, and the output is what the emulator answered.
EVERY = [(model, kind) for model in CATALOGUE for kind in CATALOGUE[model].kinds]
_SUFFIX = {"text": ".txt", "image_understanding": ".txt", "text_to_image": ".png",
           "image_to_image": ".png", "text_to_video": ".mp4", "image_to_video": ".mp4"}


@pytest.mark.parametrize(("model", "kind"), EVERY, ids=[f"{m}-{k}" for m, k in EVERY])
def test_every_model_and_kind_succeeds(
    emu: GoogleEmulator, tmp_path: Path, model: str, kind: str
) -> None:
    params: dict[str, Any] = {"prompt": "a lighthouse"}
    if "image" in CATALOGUE[model].params_for(kind):
        params["image"] = str(input_image(tmp_path))
    job = make_job(kind, model, tmp_path / f"out{_SUFFIX[kind]}", **params)
    outcome = GoogleProvider(env_for(emu)).generate(job, Journal())

    endpoint = CATALOGUE[model].endpoints[kind]
    if kind.endswith("_video"):
        (submit,) = emu.submissions()
        assert submit.path == f"/v1beta1/publishers/google/models/{endpoint}:predictLongRunning"
        assert job.output.read_bytes() == emu.video
        assert outcome.request_id and f"/models/{endpoint}/operations/" in outcome.request_id
    else:
        (request,) = emu.generations()
        assert request.path == f"/v1/models/{endpoint}:generateContent"
        if kind.endswith("_image"):
            assert job.output.read_bytes() == emu.image
        else:
            assert job.output.read_text(encoding="utf-8").endswith("a lighthouse")


def test_truncated_inline_image_is_rejected(emu: GoogleEmulator, tmp_path: Path) -> None:
    emu.image = png_bytes((64, 64))[:-40]  # a PNG cut short inside the JSON
    job = make_job("text_to_image", "gemini-2.5-flash-image", tmp_path / "pic.png", prompt="x")
    with pytest.raises(BadResponse, match="does not decode"):
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert not job.output.exists()
    assert len(emu.generations()) == 1  # the image was generated (billed): not asked again


def test_text_to_video_express_mode(emu: GoogleEmulator, tmp_path: Path) -> None:
    """No project set: Vertex express mode, paths start at publishers/google/models."""
    job = video_job(
        tmp_path,
        duration_s=6,
        aspect_ratio="9:16",
        resolution="1080p",
        negative_prompt="cars",
        generate_audio=False,
        seed=7,
    )
    journal = Journal()
    env = env_for(emu, GOOGLE_API_KEY=CLOUD_KEY)  # Vertex prefers GOOGLE_API_KEY
    outcome = GoogleProvider(env).generate(job, journal)

    assert job.output.read_bytes() == emu.video
    (submit,) = emu.submissions()
    assert submit.path == f"/v1beta1/publishers/google/models/{VEO}:predictLongRunning"
    assert submit.headers["x-goog-api-key"] == CLOUD_KEY
    assert submit.json() == {
        "instances": [{"prompt": "a red fox running through snow"}],
        "parameters": {
            "sampleCount": 1,
            "durationSeconds": 6,
            "seed": 7,
            "aspectRatio": "9:16",
            "resolution": "1080p",
            "negativePrompt": "cars",
            "generateAudio": False,
        },
    }
    name = journal.ids[0]
    assert journal.ids == [name] and outcome.request_id == name
    polls = emu.calls("POST", FETCH)
    assert len(polls) == 2  # one "running", one done
    resource = name.rpartition("/operations/")[0]
    assert polls[0].path == f"/v1beta1/{resource}:fetchPredictOperation"
    assert polls[0].json() == {"operationName": name}
    assert outcome.usage == {"seconds": 6.0}
    assert outcome.meta["generate_audio"] is False


def test_image_to_video_with_project_and_location(emu: GoogleEmulator, tmp_path: Path) -> None:
    """A project set: regional paths under projects/P/locations/L, still the API key."""
    image = input_image(tmp_path)
    job = video_job(tmp_path, "image_to_video", image=str(image))
    env = env_for(emu, GOOGLE_CLOUD_PROJECT="my-proj", GOOGLE_CLOUD_LOCATION="europe-west4")
    outcome = GoogleProvider(env).generate(job, Journal())

    assert job.output.read_bytes() == emu.video
    (submit,) = emu.submissions()
    assert submit.path == (
        f"/v1beta1/projects/my-proj/locations/europe-west4/publishers/google/models/{VEO}"
        ":predictLongRunning"
    )
    assert submit.headers["x-goog-api-key"] == KEY  # only GEMINI_API_KEY is set
    instance = submit.json()["instances"][0]
    assert instance["image"] == {
        "bytesBase64Encoded": base64.b64encode(image.read_bytes()).decode(),
        "mimeType": "image/png",
    }
    params = submit.json()["parameters"]
    assert params["durationSeconds"] == 8 and params["generateAudio"] is True  # defaults
    assert outcome.usage == {"seconds": 8.0}


def test_vertex_switch_sends_gemini_through_vertex(emu: GoogleEmulator, tmp_path: Path) -> None:
    job = text_job(tmp_path)
    GoogleProvider(env_for(emu, ACPBUILD_GOOGLE_VERTEX="1")).generate(job, Journal())
    (request,) = emu.generations()
    assert request.path == "/v1beta1/publishers/google/models/gemini-2.5-flash:generateContent"


def test_vertex_url_overrides_the_vertex_root_alone(emu: GoogleEmulator, tmp_path: Path) -> None:
    # ACPBUILD_GOOGLE_URL points nowhere; only Vertex calls are made, to the Vertex URL.
    env = env_for(
        None, ACPBUILD_GOOGLE_URL="http://127.0.0.1:9", ACPBUILD_GOOGLE_VERTEX_URL=emu.url
    )
    GoogleProvider(env).generate(video_job(tmp_path), Journal())
    assert len(emu.submissions()) == 1


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({}, "/v1/models"),  # Gemini Developer API
        ({"ACPBUILD_GOOGLE_VERTEX": "1"}, "/v1beta1/publishers/google/models"),  # Vertex
    ],
)
def test_ping_lists_one_model(emu: GoogleEmulator, extra: dict[str, str], path: str) -> None:
    said = GoogleProvider(env_for(emu, **extra)).ping()
    assert "key accepted" in said and KEY not in said
    (request,) = emu.requests
    assert (request.method, request.path, request.query) == ("GET", path, {"pageSize": ["1"]})


def test_vertex_ping_goes_the_way_veo_goes(emu: GoogleEmulator) -> None:
    # Veo uses Vertex with GOOGLE_API_KEY first; the plain ping uses GEMINI_API_KEY first.
    provider = GoogleProvider(env_for(emu, GOOGLE_API_KEY=CLOUD_KEY))
    assert list(provider.pings()) == ["ping", "vertex ping"]
    said = provider.pings()["vertex ping"]()
    assert "Vertex AI (express mode, no project): key accepted" in said
    (request,) = emu.requests
    assert (request.method, request.path) == ("GET", "/v1beta1/publishers/google/models")
    assert request.headers["x-goog-api-key"] == CLOUD_KEY


def test_vertex_ping_with_a_wrong_cloud_key_fails_while_the_gemini_ping_passes(
    emu: GoogleEmulator,
) -> None:
    provider = GoogleProvider(env_for(emu, GOOGLE_API_KEY="test-wrong-cloud-0000"))
    assert "Gemini API: key accepted" in provider.ping()
    with pytest.raises(AuthError, match="GOOGLE_API_KEY"):
        provider.ping_vertex()


def test_with_gemini_on_vertex_there_is_one_route_to_ping(emu: GoogleEmulator) -> None:
    assert list(GoogleProvider(env_for(emu, ACPBUILD_GOOGLE_VERTEX="1")).pings()) == ["ping"]


def test_ping_with_a_wrong_key_is_an_auth_error(emu: GoogleEmulator) -> None:
    with pytest.raises(AuthError, match="check GEMINI_API_KEY"):
        GoogleProvider(env_for(emu, GEMINI_API_KEY="test-wrong-key-0000")).ping()


# -- errors ------------------------------------------------------------------------
def test_missing_key_names_the_variables(tmp_path: Path) -> None:
    with pytest.raises(MissingCredentials, match="GEMINI_API_KEY or GOOGLE_API_KEY") as info:
        GoogleProvider({"ACPBUILD_GOOGLE_URL": "http://127.0.0.1:9"}).generate(
            text_job(tmp_path), Journal()
        )
    assert info.value.sent is False


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text", AuthError),  # Developer API: 400 API_KEY_INVALID
        ("text_to_video", AuthError),  # Vertex: 401 UNAUTHENTICATED
    ],
)
def test_wrong_key_is_an_auth_error(
    emu: GoogleEmulator, tmp_path: Path, kind: str, expected: type[ProviderError]
) -> None:
    job = text_job(tmp_path) if kind == "text" else video_job(tmp_path)
    with pytest.raises(expected, match="check") as info:
        GoogleProvider(env_for(emu, GEMINI_API_KEY="test-wrong-key-0000")).generate(job, Journal())
    assert "test-wrong-key-0000" not in str(info.value)
    assert len(emu.requests) == 1  # not retried
    assert not job.output.exists()


QUOTA_FAILURE = {
    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
}
BILLING_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "BILLING_DISABLED"}


@pytest.mark.parametrize(
    ("response", "expected", "words"),
    [
        # 403 PERMISSION_DENIED: the key may not use this API
        (
            Response(
                403, error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers")
            ),
            AuthError,
            "check GEMINI_API_KEY",
        ),
        # 403 with billing disabled is about money, not the key
        (
            Response(403, error(403, "PERMISSION_DENIED", "Billing is disabled", BILLING_INFO)),
            PaymentRequired,
            "billing",
        ),
        # a 429 whose quota is per day: retrying today cannot help
        (
            Response(
                429, error(429, "RESOURCE_EXHAUSTED", "You exceeded your quota", QUOTA_FAILURE)
            ),
            PaymentRequired,
            "daily quota",
        ),
        # prepaid credits used up
        (
            Response(
                429, error(429, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted.")
            ),
            PaymentRequired,
            "prepaid",
        ),
        (
            Response(402, error(402, "PAYMENT_REQUIRED", "Payment required")),
            PaymentRequired,
            "billing",
        ),
        # a plain bad request carries Google's own message
        (
            Response(400, error(400, "INVALID_ARGUMENT", "max_output_tokens must be positive")),
            RequestRejected,
            "max_output_tokens must be positive",
        ),
        (
            Response(404, error(404, "NOT_FOUND", "models/gemini-2.5-flash is not found")),
            RequestRejected,
            "is not found",
        ),
    ],
)
def test_error_statuses_map_onto_the_tree(
    emu: GoogleEmulator,
    tmp_path: Path,
    response: Response,
    expected: type[ProviderError],
    words: str,
) -> None:
    emu.fail("POST", GEN, response, times=5)
    job = text_job(tmp_path)
    with pytest.raises(expected, match=words) as info:
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert type(info.value) is expected
    assert info.value.status == response.status
    assert len(emu.generations()) == 1  # none of these is retried
    assert not job.output.exists()


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("BLOCKME please", "prompt was refused by Google's content policy"),  # promptFeedback
        ("UNSAFE please", "answer was refused by Google's content policy"),  # finishReason SAFETY
    ],
)
def test_gemini_content_policy_refusals(
    emu: GoogleEmulator, tmp_path: Path, prompt: str, words: str
) -> None:
    job = text_job(tmp_path, prompt=prompt)
    with pytest.raises(RequestRejected, match=words):
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert not job.output.exists()
    # a refusal is an answer, and the call may be billed: asking again would pay twice
    assert len(emu.generations()) == 1 and len(emu.requests) == 1


def test_veo_content_policy_refusal(emu: GoogleEmulator, tmp_path: Path) -> None:
    job = video_job(tmp_path, prompt="UNSAFE scene")
    with pytest.raises(
        RequestRejected, match="refused by Google's content policy.*usage guidelines"
    ):
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert not job.output.exists()
    assert len(emu.submissions()) == 1


def test_veo_operation_error_is_rejected_with_its_message(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    def failed(request: Any, match: Any) -> Response:
        name = request.json()["operationName"]
        return Response(
            200,
            {
                "name": name,
                "done": True,
                "error": {"code": 3, "message": "Image aspect ratio is invalid"},
            },
        )

    emu.routes.insert(0, ("POST", re.compile(FETCH + r"\Z"), failed, "poll"))
    try:
        with pytest.raises(RequestRejected, match="Image aspect ratio is invalid"):
            GoogleProvider(env_for(emu)).generate(video_job(tmp_path), Journal())
    finally:
        emu.routes.pop(0)
    # one submission and the one poll that answered: a failed operation is not submitted again
    assert len(emu.submissions()) == 1 and len(emu.calls("POST", FETCH)) == 1
    assert len(emu.requests) == 2


@pytest.mark.parametrize(
    ("status", "grpc"),
    [
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),  # "model overloaded": not documented as unbilled either
    ],
)
def test_5xx_on_a_billable_call_is_not_repeated(
    emu: GoogleEmulator, tmp_path: Path, status: int, grpc: str
) -> None:
    emu.fail("POST", GEN, Response(status, error(status, grpc, "An internal error occurred")), 3)
    with pytest.raises(ServiceUnavailable, match="internal error") as info:
        GoogleProvider(env_for(emu)).generate(text_job(tmp_path), Journal())
    assert info.value.sent is True and info.value.status == status
    assert len(emu.generations()) == 1


def test_500_on_veo_submit_is_not_repeated(emu: GoogleEmulator, tmp_path: Path) -> None:
    emu.fail("POST", SUBMIT, Response(500, error(500, "INTERNAL", "boom")), 3)
    journal = Journal()
    with pytest.raises(ServiceUnavailable):
        GoogleProvider(env_for(emu)).generate(video_job(tmp_path), journal)
    assert len(emu.submissions()) == 1
    assert journal.ids == []


def test_read_timeout_on_a_billable_call_is_not_repeated(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    emu.fail("POST", GEN, Response(200, {}, delay_s=1.0))
    job = text_job(tmp_path)
    job.timeout_s = 0.2
    with pytest.raises(ProviderTimeout, match="not repeated") as info:
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert info.value.sent is True
    assert len(emu.generations()) == 1


def test_500_while_polling_is_retried(emu: GoogleEmulator, tmp_path: Path) -> None:
    emu.fail("POST", FETCH, Response(500, error(500, "INTERNAL", "poll hiccup")), 2)
    job = video_job(tmp_path)
    GoogleProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_bytes() == emu.video
    assert len(emu.submissions()) == 1


@pytest.mark.parametrize("pattern", [GEN, SUBMIT])
def test_429_then_success_is_retried(emu: GoogleEmulator, tmp_path: Path, pattern: str) -> None:
    emu.fail(
        "POST",
        pattern,
        Response(429, error(429, "RESOURCE_EXHAUSTED", "Too many requests"), {"Retry-After": "0"}),
    )
    if pattern == GEN:
        job = text_job(tmp_path)
        calls = emu.generations
    else:
        job = video_job(tmp_path)
        calls = emu.submissions
    GoogleProvider(env_for(emu)).generate(job, Journal())
    assert len(calls()) == 2
    assert job.output.exists()


def test_429_uses_the_retry_info_delay(emu: GoogleEmulator, tmp_path: Path) -> None:
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s"}
    emu.fail("POST", GEN, Response(429, error(429, "RESOURCE_EXHAUSTED", "slow down", retry_info)))
    started = time.monotonic()
    GoogleProvider(env_for(emu)).generate(text_job(tmp_path), Journal())
    assert time.monotonic() - started >= 0.2
    assert len(emu.generations()) == 2


def test_429_that_persists_is_rate_limited(emu: GoogleEmulator, tmp_path: Path) -> None:
    emu.fail(
        "POST",
        GEN,
        Response(429, error(429, "RESOURCE_EXHAUSTED", "Too many"), {"Retry-After": "0"}),
        9,
    )
    with pytest.raises(RateLimited, match="rate limited"):
        GoogleProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")).generate(
            text_job(tmp_path), Journal()
        )
    assert len(emu.generations()) == 3


def test_refused_connection_is_service_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on: bound, then released
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(None, ACPBUILD_GOOGLE_URL=f"http://127.0.0.1:{port}", ACPBUILD_RETRY_ATTEMPTS="2")
    with pytest.raises(ServiceUnavailable, match="cannot connect") as info:
        GoogleProvider(env).generate(text_job(tmp_path), Journal())
    assert info.value.sent is False


def test_webm_output_is_refused_before_submitting(emu: GoogleEmulator, tmp_path: Path) -> None:
    job = make_job("text_to_video", VEO, tmp_path / "clip.webm", prompt="x")
    with pytest.raises(RequestRejected, match=r"\.mp4") as info:
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert info.value.sent is False
    assert emu.requests == []


# -- long jobs: timeout, then resume -------------------------------------------------
def test_timeout_while_polling_then_resume_submits_once(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    emu.hold = True
    journal = Journal()
    job = video_job(tmp_path, timeout_s=0.1)
    with pytest.raises(ProviderTimeout, match="resume") as info:
        GoogleProvider(env_for(emu)).generate(job, journal)
    assert info.value.retryable
    assert not job.output.exists()
    (name,) = journal.ids
    assert name.endswith("/operations/op-1")

    emu.hold = False
    resumed = Journal(resume_id=name)
    outcome = GoogleProvider(env_for(emu)).generate(video_job(tmp_path), resumed)

    assert job.output.read_bytes() == emu.video
    assert len(emu.submissions()) == 1  # the resumed run never submitted
    assert resumed.ids == []
    assert outcome.request_id == name


def test_resume_of_an_unknown_operation_is_rejected(emu: GoogleEmulator, tmp_path: Path) -> None:
    bogus = (
        "projects/test-project/locations/us-central1/publishers/google/models/"
        f"{VEO}/operations/nope"
    )
    with pytest.raises(RequestRejected, match="not found"):
        GoogleProvider(env_for(emu)).generate(video_job(tmp_path), Journal(resume_id=bogus))
    assert emu.submissions() == []


# -- truncated downloads ---------------------------------------------------------------
def test_truncated_final_poll_is_fetched_again(emu: GoogleEmulator, tmp_path: Path) -> None:
    # The video travels inside the final poll's JSON; the first copy is cut short.
    emu.polls_before_done = 0
    emu.fail(
        "POST", FETCH, Response(200, {"name": "x", "done": True, "response": {}}, truncate_to=20)
    )
    job = video_job(tmp_path)
    GoogleProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_bytes() == emu.video
    assert len(emu.submissions()) == 1
    assert len(emu.calls("POST", FETCH)) == 2


def test_final_poll_that_stays_truncated_leaves_no_output(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    cut = Response(200, {"name": "x", "done": True, "response": {}}, truncate_to=20)
    emu.fail("POST", FETCH, cut, times=10)
    journal = Journal()
    job = video_job(tmp_path)
    with pytest.raises(BadResponse, match="cut off"):
        GoogleProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")).generate(job, journal)
    assert not job.output.exists()
    assert not list(tmp_path.glob(".*.part"))
    assert len(journal.ids) == 1 and len(emu.submissions()) == 1  # resumable, not resubmitted


def test_short_video_bytes_never_become_an_output(emu: GoogleEmulator, tmp_path: Path) -> None:
    emu.video = mp4_bytes()[:-500]  # complete JSON, but the MP4 inside it is cut short
    job = video_job(tmp_path)
    with pytest.raises(BadResponse, match="truncated"):
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert not job.output.exists()
    assert not list(tmp_path.glob(".*.part"))


def _gateway_link(emu: GoogleEmulator) -> None:
    """The final poll answers with a download link, as a gateway in front of Vertex might
    (Vertex itself answers with inline bytes, or a gs:// URI when asked to store the video)."""
    emu.polls_before_done = 0
    done = {
        "name": "op-1",
        "done": True,
        "response": {"videos": [{"gcsUri": f"{emu.url}/media/op-1.mp4", "mimeType": "video/mp4"}]},
    }
    emu.fail("POST", FETCH, Response(200, done))


def test_video_link_is_downloaded_and_a_truncated_copy_retried(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    _gateway_link(emu)
    emu.fail("GET", r"/media/.*", Response(200, emu.video, truncate_to=100))
    job = video_job(tmp_path)
    GoogleProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_bytes() == emu.video
    downloads = emu.calls("GET", r"/media/.*")
    assert len(downloads) == 2
    assert downloads[0].headers["x-goog-api-key"] == KEY  # same host as the API root


def test_video_link_that_stays_truncated_leaves_no_output(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    _gateway_link(emu)
    emu.fail("GET", r"/media/.*", Response(200, emu.video, truncate_to=100), times=10)
    job = video_job(tmp_path)
    with pytest.raises(BadResponse, match="truncated"):
        GoogleProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="2")).generate(job, Journal())
    assert not job.output.exists()
    assert not list(tmp_path.glob(".*.part*"))


# -- the key never leaks ---------------------------------------------------------------
def _echo(status: int, grpc: str) -> Response:
    return Response(status, error(status, grpc, f"bad key {KEY} in request"))


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_echo(401, "UNAUTHENTICATED"), AuthError),
        (_echo(403, "PERMISSION_DENIED"), AuthError),
        (
            Response(402, error(402, "PAYMENT_REQUIRED", f"key {KEY} has no credit")),
            PaymentRequired,
        ),
        (_echo(429, "RESOURCE_EXHAUSTED"), RateLimited),
        (_echo(500, "INTERNAL"), ServiceUnavailable),
        (_echo(400, "INVALID_ARGUMENT"), RequestRejected),
    ],
)
def test_no_key_in_any_error_text(
    emu: GoogleEmulator, tmp_path: Path, response: Response, expected: type[ProviderError]
) -> None:
    emu.fail("POST", GEN, response, times=10)
    with pytest.raises(expected) as info:
        GoogleProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="2")).generate(
            text_job(tmp_path), Journal()
        )
    _assert_no_key(info.value)


def test_no_key_in_timeout_missing_key_or_bad_response_text(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    errors: list[BaseException] = []
    emu.hold = True
    with pytest.raises(ProviderTimeout) as timeout:
        GoogleProvider(env_for(emu)).generate(video_job(tmp_path, timeout_s=0.05), Journal())
    errors.append(timeout.value)
    emu.hold = False
    emu.video = b"not a video " + KEY.encode()
    with pytest.raises(BadResponse) as bad:
        GoogleProvider(env_for(emu)).generate(video_job(tmp_path), Journal())
    errors.append(bad.value)
    with pytest.raises(MissingCredentials) as missing:
        GoogleProvider({}).generate(text_job(tmp_path), Journal())
    errors.append(missing.value)
    for exc in errors:
        _assert_no_key(exc)


def _assert_no_key(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert KEY not in str(seen) and KEY not in repr(seen), type(seen)
        seen = seen.__cause__ or seen.__context__


# -- packaging -----------------------------------------------------------------------
def test_importing_the_adapter_does_not_import_the_sdk() -> None:
    code = (
        "import sys, acpbuild.providers.google.gemini, acpbuild.providers.google.models, "
        "acpbuild.providers.google.errors, acpbuild.providers.google.veo; "
        "assert 'google.genai' not in sys.modules, 'google.genai imported'; "
        "assert 'PIL' not in sys.modules, 'Pillow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_prices_cover_the_catalogue() -> None:
    prices = tomllib.loads((ROOT / "acpbuild/money/prices/google.toml").read_text())["models"]
    assert set(prices) == set(CATALOGUE)
    for key, entry in prices.items():
        assert entry["unit"] in ("image", "second", "1m_tokens"), key
        if entry["unit"] == "1m_tokens":
            assert entry["input_usd"] > 0 and entry["output_usd"] > 0
        else:
            assert entry["usd"] > 0
        assert entry["source"] and entry["date"]


def test_catalogue_rejects_bad_values() -> None:
    veo = CATALOGUE[VEO].params
    assert veo["duration_s"].check(5) is not None  # Veo takes 4, 6 or 8 seconds
    assert veo["aspect_ratio"].check("1:1") is not None
    assert veo["duration_s"].check(8) is None
    gemini = CATALOGUE["gemini-2.5-flash"]
    assert "image" not in gemini.params_for("text")
    assert gemini.params_for("image_understanding")["image"].required
    assert CATALOGUE["gemini-2.5-flash"].params["temperature"].check(3.0) is not None
