"""Veo against an emulator that refuses what Vertex refuses (:mod:`tests.emulators.veo`).

Three things are checked here, all on the wire through the real google-genai SDK:

* every value the catalogue lets a Veo step send (each choice of each enum, the
  ends of each range, both booleans, each kind and each input image format)
  reaches Vertex where it should and is accepted;
* the emulator itself refuses, with Vertex's 400 INVALID_ARGUMENT, each thing
  its rule table says Vertex refuses (so "accepted" above means something);
* a video comes back the two ways Vertex answers: inline bytes (what acpbuild
  asks for), or only a ``gs://`` URI when the operation was submitted with
  ``storageUri``, which acpbuild refuses to fetch and says why.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acpbuild.errors import BadResponse, RequestRejected
from acpbuild.provider import Job, Param
from acpbuild.providers.google.gemini import GoogleProvider
from acpbuild.providers.google.models import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, VIDEO_KINDS
from tests.emulators import Journal
from tests.emulators.google import CLOUD_KEY, GoogleEmulator, mp4_bytes, png_bytes

CATALOGUE = GoogleProvider({}).catalogue()
VEO_MODELS = [name for name, model in CATALOGUE.items() if set(model.kinds) & set(VIDEO_KINDS)]
SUBMIT = r".*:predictLongRunning"

#: acpbuild's Veo parameter -> where Vertex's request carries it (section, field)
WIRE = {
    "prompt": ("instance", "prompt"),
    "image": ("instance", "image"),
    "duration_s": ("parameters", "durationSeconds"),
    "aspect_ratio": ("parameters", "aspectRatio"),
    "resolution": ("parameters", "resolution"),
    "negative_prompt": ("parameters", "negativePrompt"),
    "generate_audio": ("parameters", "generateAudio"),
    "seed": ("parameters", "seed"),
}
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}  # what Vertex takes as a first frame


@pytest.fixture(scope="module")
def server() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: GoogleEmulator) -> GoogleEmulator:
    server.reset()
    with server.lock:
        server.operations.clear()
    server.bucket.clear()
    server.polls_before_done = 0
    server.hold = False
    server.video = mp4_bytes()
    return server


def env_for(emu: GoogleEmulator) -> dict[str, str]:
    return {
        "GOOGLE_API_KEY": CLOUD_KEY,
        "ACPBUILD_GOOGLE_URL": emu.url,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
    }


def image_file(tmp_path: Path, fmt: str) -> Path:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 9), (30, 120, 200)).save(buffer, format=fmt)
    path = tmp_path / f"frame.{fmt.lower()}"
    path.write_bytes(buffer.getvalue())
    return path


def video_job(model: str, kind: str, tmp_path: Path, **params: Any) -> Job:
    spec = CATALOGUE[model]
    filled = {n: p.default for n, p in spec.params_for(kind).items() if p.default is not None}
    filled["prompt"] = "a paper boat on a river"
    if kind == IMAGE_TO_VIDEO:
        filled["image"] = str(image_file(tmp_path, "PNG"))
    filled.update(params)
    return Job(kind=kind, model=spec, params=filled, output=tmp_path / "clip.mp4", timeout_s=20.0)


# -- every catalogue value is accepted -----------------------------------------------
def values(name: str, param: Param) -> list[Any]:
    """Each value of ``param`` the catalogue allows that could change what Vertex accepts."""
    if param.type == "image":
        return list(IMAGE_FORMATS)
    if param.choices is not None:
        return list(param.choices)
    if param.type == "bool":
        return [True, False]
    if param.min is not None or param.max is not None:
        assert param.type == "int" and param.min is not None and param.max is not None, name
        return [int(param.min), int(param.max)]
    assert param.type == "str", f"{name}: no values to send for a {param.type} parameter"
    return ["no text on screen"]


def _cases() -> list[Any]:
    cases = []
    for model in VEO_MODELS:
        spec = CATALOGUE[model]
        # each kind with the catalogue's defaults
        for kind in spec.kinds:
            cases.append(pytest.param(model, kind, None, None, id=f"{model}-{kind}-defaults"))
        # each value of each parameter once; the image only exists for image_to_video
        for kind in (TEXT_TO_VIDEO, IMAGE_TO_VIDEO):
            for name, param in spec.params_for(kind).items():
                if (name == "image") != (kind == IMAGE_TO_VIDEO):
                    continue
                for value in values(name, param):
                    case_id = f"{model}-{name}={value}"
                    cases.append(pytest.param(model, kind, name, value, id=case_id))
    return cases


def test_every_veo_parameter_has_a_place_on_the_wire() -> None:
    # a parameter added to the catalogue without a WIRE entry would go unchecked below
    for model in VEO_MODELS:
        for kind in CATALOGUE[model].kinds:
            assert set(CATALOGUE[model].params_for(kind)) <= set(WIRE), model


@pytest.mark.parametrize(("model", "kind", "name", "value"), _cases())
def test_every_catalogue_value_is_accepted_by_vertex(
    emu: GoogleEmulator, tmp_path: Path, model: str, kind: str, name: str | None, value: Any
) -> None:
    params: dict[str, Any] = {}
    if name == "image":
        params["image"] = str(image_file(tmp_path, value))
    elif name is not None:
        params[name] = value
    job = video_job(model, kind, tmp_path, **params)

    GoogleProvider(env_for(emu)).generate(job, Journal())  # a refusal raises RequestRejected

    assert job.output.read_bytes() == emu.video
    (submit,) = emu.submissions()
    assert submit.path == f"/v1beta1/publishers/google/models/{model}:predictLongRunning"
    body = submit.json()
    sent = {"instance": body["instances"][0], "parameters": body["parameters"]}
    if name == "image":
        image = sent["instance"]["image"]
        assert image["mimeType"] == IMAGE_FORMATS[value]
        assert base64.b64decode(image["bytesBase64Encoded"]) == Path(params["image"]).read_bytes()
    elif name is not None:
        section, field = WIRE[name]
        assert sent[section][field] == value
    assert "storageUri" not in sent["parameters"]  # acpbuild always asks for the bytes


def test_a_webp_first_frame_is_refused_before_anything_is_sent(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    # Vertex takes PNG and JPEG first frames only; WebP would be a 400 after a round trip
    frame = image_file(tmp_path, "WEBP")
    job = video_job("veo-3.1-generate-001", IMAGE_TO_VIDEO, tmp_path, image=str(frame))
    with pytest.raises(RequestRejected, match="PNG or JPEG") as caught:
        GoogleProvider(env_for(emu)).generate(job, Journal())
    assert caught.value.sent is False
    assert emu.submissions() == []


def test_a_value_vertex_refuses_is_a_rejected_request_sent_once(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    # The catalogue stops 1:1 when a recipe loads; a job built around it reaches Vertex.
    job = video_job("veo-3.0-generate-001", TEXT_TO_VIDEO, tmp_path, aspect_ratio="1:1")
    journal = Journal()
    with pytest.raises(RequestRejected, match="aspectRatio"):
        GoogleProvider(env_for(emu)).generate(job, journal)
    assert len(emu.submissions()) == 1  # a 400 is not retried
    assert journal.ids == []  # no operation exists to resume
    assert not job.output.exists()


# -- the emulator refuses what Vertex refuses ------------------------------------------
def post(emu: GoogleEmulator, model: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{emu.url}/v1beta1/publishers/google/models/{model}:predictLongRunning",
        data=json.dumps(body).encode(),
        headers={"x-goog-api-key": CLOUD_KEY, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


B64 = base64.b64encode(png_bytes()).decode()
MIME = "image/png"
PNG = {"bytesBase64Encoded": B64, "mimeType": MIME}
GOOD = {
    "instances": [{"prompt": "a paper boat"}],
    "parameters": {"durationSeconds": 8, "generateAudio": True, "sampleCount": 1},
}


def body(*, params: dict[str, Any] | None = None, drop: str = "", **instance: Any) -> Any:
    """:data:`GOOD` with parameters and instance fields changed, and ``drop`` removed."""
    new = json.loads(json.dumps(GOOD))
    new["instances"][0].update(instance)
    new["parameters"].update(params or {})
    new["parameters"].pop(drop, None)
    new["instances"][0].pop(drop, None)
    return new


@pytest.mark.parametrize(
    "request_body",
    [
        # durations are 4, 6 or 8, sent as an integer, and required
        pytest.param(body(params={"durationSeconds": 5}), id="duration-5"),
        pytest.param(body(params={"durationSeconds": 10}), id="duration-10"),
        pytest.param(body(params={"durationSeconds": "8"}), id="duration-string"),
        pytest.param(body(drop="durationSeconds"), id="duration-missing"),
        # 16:9 and 9:16 only; 720p and 1080p only
        pytest.param(body(params={"aspectRatio": "1:1"}), id="aspect-1:1"),
        pytest.param(body(params={"resolution": "4k"}), id="resolution-4k"),
        pytest.param(body(params={"resolution": "1080"}), id="resolution-no-p"),
        # generateAudio is required for Veo 3, and a boolean
        pytest.param(body(drop="generateAudio"), id="audio-missing"),
        pytest.param(body(params={"generateAudio": "true"}), id="audio-string"),
        # 1 to 4 videos; a uint32 seed
        pytest.param(body(params={"sampleCount": 0}), id="samples-0"),
        pytest.param(body(params={"sampleCount": 5}), id="samples-5"),
        pytest.param(body(params={"seed": -1}), id="seed-negative"),
        pytest.param(body(params={"seed": 2**32}), id="seed-over-uint32"),
        pytest.param(body(params={"personGeneration": "allow_all"}), id="person-allow-all"),
        pytest.param(body(params={"compressionQuality": "high"}), id="compression-high"),
        pytest.param(body(params={"resizeMode": "pad"}), id="resize-without-image"),
        # the output location is a gs:// URI, not a web address
        pytest.param(body(params={"storageUri": "https://example.com/out/"}), id="storage-https"),
        pytest.param(body(params={"storageUri": "gs://"}), id="storage-no-bucket"),
        # a misspelt parameter is refused, not silently ignored
        pytest.param(body(params={"duration": 8}), id="unknown-parameter"),
        pytest.param({**GOOD, "config": {}}, id="unknown-top-level-field"),
        # the instance: a prompt or an image, and only the forms the reference lists
        pytest.param(body(drop="prompt"), id="no-prompt-no-image"),
        pytest.param(body(image={**PNG, "mimeType": "image/webp"}), id="image-webp"),
        pytest.param(body(image={"bytesBase64Encoded": B64}), id="image-no-mime"),
        pytest.param(body(image={**PNG, "gcsUri": "gs://b/frame.png"}), id="image-bytes-and-uri"),
        pytest.param(body(image={"gcsUri": "https://b/f.png", "mimeType": MIME}), id="image-https"),
        pytest.param(body(image={**PNG, "bytesBase64Encoded": "not base64!"}), id="image-bad-b64"),
        pytest.param(body(lastFrame=PNG), id="last-frame-not-modelled"),
        pytest.param({**GOOD, "instances": [GOOD["instances"][0]] * 2}, id="two-instances"),
        pytest.param({"instances": GOOD["instances"]}, id="no-parameters"),
    ],
)
def test_the_emulator_refuses_what_vertex_refuses(emu: GoogleEmulator, request_body: Any) -> None:
    status, answer = post(emu, "veo-3.1-generate-001", request_body)
    assert status == 400
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"]
    assert emu.operations == {}


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param(GOOD, id="minimal"),
        pytest.param(body(drop="prompt", image=PNG), id="image-without-prompt"),
        pytest.param(body(image={"gcsUri": "gs://b/f.png", "mimeType": MIME}), id="image-gs"),
        pytest.param(
            body(
                image=PNG,
                params={
                    "durationSeconds": 4,
                    "aspectRatio": "9:16",
                    "resolution": "1080p",
                    "sampleCount": 4,
                    "seed": 2**32 - 1,
                    "negativePrompt": "x",
                    "personGeneration": "dont_allow",
                    "enhancePrompt": False,
                    "compressionQuality": "lossless",
                    "resizeMode": "crop",
                    "storageUri": "gs://bucket/prefix/",
                },
            ),
            id="every-parameter",
        ),
    ],
)
def test_the_emulator_accepts_what_vertex_accepts(emu: GoogleEmulator, request_body: Any) -> None:
    status, answer = post(emu, "veo-3.1-generate-001", request_body)
    assert status == 200, answer
    assert answer["name"].endswith("/operations/op-1")


def test_an_unknown_veo_model_is_not_found(emu: GoogleEmulator) -> None:
    status, answer = post(emu, "veo-2.5-imaginary", GOOD)
    assert status == 404
    assert answer["error"]["status"] == "NOT_FOUND"


# -- inline bytes, or a gs:// URI -------------------------------------------------------------
def test_an_inline_video_is_written_and_nothing_is_downloaded(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    job = video_job("veo-3.1-fast-generate-001", TEXT_TO_VIDEO, tmp_path)
    outcome = GoogleProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_bytes() == emu.video
    assert outcome.meta["bytes"] == len(emu.video)
    assert "storageUri" not in emu.submissions()[0].json()["parameters"]
    assert emu.calls("GET", r".*") == []  # the bytes came inside the final poll
    assert emu.bucket == {}


def submit_with_storage_uri(emu: GoogleEmulator, model: str, storage_uri: str) -> str:
    """Submit an operation through the real SDK the way acpbuild never does: with storageUri."""
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=emu.url, api_version="v1beta1")
    with genai.Client(vertexai=True, api_key=CLOUD_KEY, http_options=options) as client:
        operation = client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(prompt="a paper boat on a river"),
            config=types.GenerateVideosConfig(
                number_of_videos=1,
                duration_seconds=8,
                generate_audio=True,
                output_gcs_uri=storage_uri,
            ),
        )
    assert operation.name
    return operation.name


def test_a_video_stored_in_cloud_storage_is_refused_naming_storage_uri(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    model = "veo-3.1-generate-001"
    name = submit_with_storage_uri(emu, model, "gs://acp-test-bucket/veo/")
    job = video_job(model, TEXT_TO_VIDEO, tmp_path)
    journal = Journal(resume_id=name)  # acpbuild resumes that operation

    with pytest.raises(BadResponse) as caught:
        GoogleProvider(env_for(emu)).generate(job, journal)

    stored = "gs://acp-test-bucket/veo/op-1/sample_0.mp4"
    assert list(emu.bucket) == [stored]  # Vertex wrote the video there...
    message = str(caught.value)
    assert stored in message and "storageUri" in message  # ...and the user is told so
    assert "gcloud storage cp" in message  # and what to do
    assert caught.value.job_failed is True  # polling again returns the same URI
    assert caught.value.retryable is False
    assert emu.calls("GET", r".*") == []  # no attempt to fetch gs:// as if it were a link
    assert len(emu.submissions()) == 1  # the SDK's own submission, none from acpbuild
    assert not job.output.exists()
    assert not list(tmp_path.glob(".*.part"))
