"""The fal adapter, driving the real ``fal-client`` SDK against a local emulator.

Every submission to fal's queue may be billed, so the tests count them: a
failure that may have reached fal is never submitted twice, a resumed job is
polled rather than resubmitted, and only free requests (polls, result fetches,
uploads, downloads) are repeated freely.
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
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
from acpbuild.providers.fal.adapter import FalProvider
from acpbuild.providers.fal.models import SPECS
from acpbuild.recipe.kinds import KINDS
from tests.emulators import Journal, Response
from tests.emulators.fal import (
    IMAGE_SIZE,
    KEY,
    MEDIA,
    SUBMIT,
    FalEmulator,
    error,
    image_bytes,
    mp4_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = FalProvider({}).catalogue()
VALIDATION = [
    {
        "loc": ["body", "duration"],
        "msg": "value is not a valid enumeration member",
        "type": "type_error.enum",
    }
]
POLICY = [
    {
        "loc": ["body", "prompt"],
        "msg": "The content was flagged by a content checker.",
        "type": "content_policy_violation",
        "input": "...",
    }
]


@pytest.fixture(scope="module")
def server() -> Any:
    # One server per module: stopping one takes half a second (serve_forever's poll).
    with FalEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: FalEmulator) -> FalEmulator:
    """The emulator with an empty log, no jobs and no scripted failures."""
    server.reset()
    return server



def env_for(emu: FalEmulator | None, **extra: str) -> dict[str, str]:
    env = {
        "FAL_KEY": KEY,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
    }
    if emu is not None:
        env["ACPBUILD_FAL_URL"] = emu.url
    env.update(extra)
    return env


def make_job(
    tmp_path: Path,
    model: str = "flux-dev",
    kind: str = "text_to_image",
    output: str = "out.png",
    timeout_s: float = 30.0,
    **params: Any,
) -> Job:
    """A job as the runner builds it: parameters checked, defaults filled in."""
    entry = CATALOGUE[model]
    allowed = entry.params_for(kind)
    if "prompt" in allowed:
        params.setdefault("prompt", "a lighthouse at dusk")
    for name, value in params.items():
        assert name in allowed, name
        assert allowed[name].check(value) is None, (name, allowed[name].check(value))
    full = {n: p.default for n, p in allowed.items() if p.default is not None}
    full.update(params)
    missing = [n for n, p in allowed.items() if p.required and n not in full]
    assert not missing, missing
    return Job(kind, entry, full, tmp_path / output, timeout_s)


def inputs(tmp_path: Path) -> dict[str, Path]:
    """Local input files of each media type."""
    files = {
        "image": tmp_path / "input.png",
        "audio": tmp_path / "voice.mp3",
        "video": tmp_path / "clip.mp4",
    }
    files["image"].write_bytes(image_bytes("png", (64, 48)))
    files["audio"].write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" * 64)
    files["video"].write_bytes(mp4_bytes(2048))
    return files


def leftovers(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def assert_no_key(exc: BaseException, key: str = KEY) -> None:
    """The key is in no message or repr along the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        assert key not in str(seen), type(seen)
        assert key not in repr(seen), type(seen)
        seen = seen.__cause__ or seen.__context__


def _job_error(response: Response) -> Any:
    return lambda emu: setattr(emu, "job_error", response)


def _submit_fails(response: Response, times: int = 1) -> Any:
    return lambda emu: emu.fail("POST", SUBMIT, response, times=times)


# -- successes -----------------------------------------------------------------


def test_flux_dev_maps_every_parameter(emu: FalEmulator, tmp_path: Path) -> None:
    provider = FalProvider(env_for(emu))
    journal = Journal()
    job = make_job(
        tmp_path,
        image_size="square_hd",
        seed=7,
        num_inference_steps=20,
        guidance_scale=4.0,
        enable_safety_checker=True,
    )
    outcome = provider.generate(job, journal)

    assert job.output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert emu.submissions == 1
    submit = emu.submitted()
    assert submit.path == "/queue/fal-ai/flux/dev"
    assert submit.headers["authorization"] == f"Key {KEY}"
    assert submit.headers["user-agent"].startswith("fal-client/")
    assert submit.json() == {
        "prompt": "a lighthouse at dusk",
        "image_size": "square_hd",
        "seed": 7,
        "num_inference_steps": 20,
        "guidance_scale": 4.0,
        "enable_safety_checker": True,
        "num_images": 1,
        "output_format": "png",
    }
    # The id is committed before polling; status and result use fal's owner/alias URLs.
    assert journal.ids == [outcome.request_id] == ["req-0001"]
    assert emu.calls("GET", r"/queue/fal-ai/flux/requests/req-0001/status")
    assert emu.calls("GET", r"/queue/fal-ai/flux/requests/req-0001")
    width, height = IMAGE_SIZE
    assert outcome.usage == {"images": 1, "megapixels": width * height / 1e6}
    assert outcome.actual_cost is None
    assert outcome.meta["endpoint"] == "fal-ai/flux/dev"
    assert outcome.meta["seed"] == 7
    assert leftovers(tmp_path) == []


def test_jpg_output_asks_for_jpeg(emu: FalEmulator, tmp_path: Path) -> None:
    job = make_job(tmp_path, "flux-schnell", output="out.jpg")
    FalProvider(env_for(emu)).generate(job, Journal())
    assert emu.submitted().json()["output_format"] == "jpeg"
    assert job.output.read_bytes()[:3] == b"\xff\xd8\xff"


def test_image_in_another_format_is_converted_to_the_suffix(
    emu: FalEmulator, tmp_path: Path
) -> None:
    # Imagen has no output_format: it answers PNG, and a .jpg must hold JPEG bytes.
    job = make_job(tmp_path, "imagen4", output="out.jpg", aspect_ratio="16:9", resolution="2K")
    outcome = FalProvider(env_for(emu)).generate(job, Journal())
    body = emu.submitted().json()
    assert body == {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "num_images": 1,
    }
    assert job.output.read_bytes()[:3] == b"\xff\xd8\xff"
    assert outcome.usage["images"] == 1
    assert leftovers(tmp_path) == []


# Each row: one model and kind through the whole queue; the JSON fal must receive
# (file parameters arrive as uploaded CDN URLs, checked separately).
CASES = [
    (
        "seedream",
        "text_to_image",
        "out.png",
        {"image_size": "portrait_4_3", "seed": 3},
        {"image_size": "portrait_4_3", "seed": 3, "guidance_scale": 2.5, "num_images": 1},
    ),
    (
        "flux-kontext",
        "image_to_image",
        "out.png",
        {"image": "image", "aspect_ratio": "1:1"},
        {
            "image_url": "image",
            "aspect_ratio": "1:1",
            "guidance_scale": 3.5,
            "num_images": 1,
            "output_format": "png",
        },
    ),
    (
        "hailuo-02",
        "text_to_video",
        "out.mp4",
        {"duration_s": 10, "prompt_optimizer": False},
        {"duration": "10", "prompt_optimizer": False},
    ),
    (
        "hailuo-02",
        "image_to_video",
        "out.mp4",
        {"image": "image", "resolution": "512P"},
        {"image_url": "image", "duration": "6", "resolution": "512P"},
    ),
    (
        "kling",
        "text_to_video",
        "out.mp4",
        {"aspect_ratio": "9:16", "cfg_scale": 0.7},
        {"duration": "5", "aspect_ratio": "9:16", "cfg_scale": 0.7},
    ),
    (
        "kling",
        "image_to_video",
        "out.mp4",
        {"image": "image", "duration_s": 10},
        {"image_url": "image", "duration": "10"},
    ),
    (
        "veo3",
        "text_to_video",
        "out.mp4",
        {"aspect_ratio": "9:16", "generate_audio": False, "seed": 5},
        {
            "duration": "8s",
            "aspect_ratio": "9:16",
            "resolution": "720p",
            "generate_audio": False,
            "seed": 5,
        },
    ),
    (
        "veo3",
        "image_to_video",
        "out.mov",
        {"image": "image", "duration_s": 4, "aspect_ratio": "auto"},
        {
            "image_url": "image",
            "duration": "4s",
            "aspect_ratio": "auto",
            "resolution": "720p",
            "generate_audio": True,
        },
    ),
    (
        "seedance",
        "text_to_video",
        "out.mp4",
        {"duration_s": 3, "camera_fixed": True},
        {"duration": "3", "resolution": "1080p", "camera_fixed": True},
    ),
    (
        "seedance",
        "image_to_video",
        "out.mp4",
        {"image": "image", "aspect_ratio": "auto"},
        {"image_url": "image", "duration": "5", "resolution": "1080p", "aspect_ratio": "auto"},
    ),
    (
        "kling-avatar",
        "avatar",
        "out.mp4",
        {"image": "image", "audio": "audio", "prompt": "smile"},
        {"image_url": "image", "audio_url": "audio"},
    ),
    (
        "mmaudio",
        "add_audio",
        "out.mp4",
        {"video": "video", "duration_s": 5.5, "num_steps": 20},
        {"video_url": "video", "duration": 5.5, "num_steps": 20},
    ),
    (
        "topaz",
        "upscale_video",
        "out.mp4",
        {"video": "video", "upscale_factor": 4.0},
        {"video_url": "video", "upscale_factor": 4.0},
    ),
    (
        "bytedance-upscaler",
        "upscale_video",
        "out.mp4",
        {"video": "video", "resolution": "4k"},
        {"video_url": "video", "target_resolution": "4k", "target_fps": "30fps"},
    ),
]


@pytest.mark.parametrize(
    ("model", "kind", "output", "params", "expected"),
    CASES,
    ids=[f"{case[0]}-{case[1]}" for case in CASES],
)
def test_every_kind_succeeds(
    emu: FalEmulator,
    tmp_path: Path,
    model: str,
    kind: str,
    output: str,
    params: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    files = inputs(tmp_path)
    params = {k: str(files[v]) if k in files else v for k, v in params.items()}
    job = make_job(tmp_path, model, kind, output, **params)
    journal = Journal()
    outcome = FalProvider(env_for(emu)).generate(job, journal)

    endpoint = CATALOGUE[model].endpoints[kind]
    submit = emu.submitted()
    assert submit.path == f"/queue/{endpoint}"
    assert submit.headers["authorization"] == f"Key {KEY}"
    body = submit.json()
    for name, value in expected.items():
        if name.endswith("_url"):
            # Uploaded through the CDN routes; the argument is the URL the upload returned.
            fid = body[name].split("/cdn/files/")[1].split("/")[0]
            assert emu.uploads[fid] == files[value].read_bytes(), name
        else:
            assert body[name] == value, name
    if "prompt" in job.params:
        assert body["prompt"] == job.params["prompt"]
    assert emu.submissions == 1
    assert journal.ids == [outcome.request_id]
    assert sniff(job.output) == SPECS[model].output
    if job.output.suffix == ".png":
        assert outcome.usage["images"] == 1 and outcome.usage["megapixels"] > 0
    elif "duration_s" in job.params:
        assert outcome.usage == {"seconds": float(job.params["duration_s"])}
    if model == "veo3":
        assert outcome.meta["generate_audio"] is body["generate_audio"]
    assert leftovers(tmp_path) == []


def test_uploads_use_the_cdn_token_and_file_name(emu: FalEmulator, tmp_path: Path) -> None:
    files = inputs(tmp_path)
    job = make_job(
        tmp_path,
        "kling-avatar",
        "avatar",
        "talk.mp4",
        image=str(files["image"]),
        audio=str(files["audio"]),
    )
    FalProvider(env_for(emu)).generate(job, Journal())
    token = emu.calls("POST", r"/rest/storage/auth/token")
    assert token and token[0].headers["authorization"] == f"Key {KEY}"
    uploads = emu.calls("POST", r"/cdn/files/upload")
    assert {u.headers["x-fal-file-name"] for u in uploads} == {"input.png", "voice.mp3"}
    assert all(u.headers["authorization"].startswith("Bearer ") for u in uploads)


def test_video_duration_comes_from_the_result_without_a_duration_param(
    emu: FalEmulator, tmp_path: Path
) -> None:
    emu.result_extra = {"video": {"url": f"{emu.url}/media/req-0001.mp4", "duration": 7.2}}
    files = inputs(tmp_path)
    job = make_job(tmp_path, "topaz", "upscale_video", "up.mp4", video=str(files["video"]))
    outcome = FalProvider(env_for(emu)).generate(job, Journal())
    assert outcome.usage == {"seconds": 7.2}


@pytest.mark.parametrize(
    ("model", "kind", "params", "rate"),
    [
        # billed per second of video; fal's answers carry no length, so it is measured
        ("bytedance-upscaler", "upscale_video", {"resolution": "4k"}, 0.0072 * 4),
        ("topaz", "upscale_video", {}, 0.17),
        ("kling-avatar", "avatar", {"image": "image", "audio": "audio"}, 0.115),
    ],
)
def test_a_video_without_a_length_in_the_answer_is_measured_for_its_cost(
    emu: FalEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    model: str, kind: str, params: dict[str, Any], rate: float,
) -> None:
    from acpbuild import money
    from acpbuild.media import probe
    from acpbuild.providers.local import LocalProvider

    clip = tmp_path / "real.mp4"
    local = LocalProvider()
    local.generate(
        Job("text_to_video", local.catalogue()["titlecard"], {"prompt": "x", "duration_s": 1.5, "width": 64, "height": 48}, clip, 60),
        Journal(),
    )
    monkeypatch.setattr("tests.emulators.fal.mp4_bytes", lambda *a, **k: clip.read_bytes())
    files = inputs(tmp_path)
    given = {k: str(files[v]) for k, v in params.items() if v in files} | {k: v for k, v in params.items() if v not in files}
    if kind == "upscale_video":
        given["video"] = str(files["video"])
    job = make_job(tmp_path, model, kind, "out.mp4", **given)
    outcome = FalProvider(env_for(emu)).generate(job, Journal())
    seconds = probe(clip).duration_s
    assert seconds is not None and outcome.usage == {"seconds": pytest.approx(seconds)}
    charged = money.actual_cost("fal", model, None, outcome.usage, job.params, True)
    assert charged == pytest.approx(seconds * rate)


# -- refused before anything is sent ---------------------------------------------


def test_missing_key(emu: FalEmulator, tmp_path: Path) -> None:
    env = env_for(emu)
    del env["FAL_KEY"]
    with pytest.raises(MissingCredentials, match="FAL_KEY") as info:
        FalProvider(env).generate(make_job(tmp_path), Journal())
    assert info.value.sent is False
    assert emu.requests == []


def test_webm_output_is_refused_locally(emu: FalEmulator, tmp_path: Path) -> None:
    # fal returns MP4: a .webm output would hold the wrong container. The recipe
    # loader refuses it first (test_recipe_errors); generate asks the same hook again.
    with pytest.raises(RequestRejected, match="name the output .mp4") as info:
        FalProvider(env_for(emu)).generate(
            make_job(tmp_path, "kling", "text_to_video", "v.webm"), Journal()
        )
    assert info.value.sent is False
    assert emu.requests == []


@pytest.mark.parametrize(
    ("model", "kind", "name", "length", "refused"),
    [
        # fal's schemas bound these texts; past the bound fal queues the job, then 422s it
        ("hailuo-02", "text_to_video", "prompt", 0, True),  # text-to-video needs 1 character
        ("hailuo-02", "image_to_video", "prompt", 0, False),  # image-to-video does not
        ("hailuo-02", "text_to_video", "prompt", 2000, False),
        ("hailuo-02", "image_to_video", "prompt", 2001, True),
        ("imagen4", "text_to_image", "prompt", 2, True),
        ("imagen4", "text_to_image", "prompt", 3, False),
        ("kling", "text_to_video", "negative_prompt", 2501, True),
        ("kling", "image_to_video", "prompt", 2500, False),
        ("veo3", "image_to_video", "prompt", 20001, True),
        ("flux-dev", "text_to_image", "prompt", 30000, False),  # FLUX sets no bound
    ],
)
def test_text_outside_fals_length_bounds_is_refused_locally(
    model: str, kind: str, name: str, length: int, refused: bool
) -> None:
    problems = FalProvider.check(kind, CATALOGUE[model], {name: "x" * length}, ".mp4")
    assert [p.key for p in problems] == ([name] if refused else [])
    if refused:
        assert f"this one has {length}" in problems[0].message


def test_a_prompt_too_long_is_not_sent(emu: FalEmulator, tmp_path: Path) -> None:
    job = make_job(tmp_path, "hailuo-02", "text_to_video", "v.mp4", prompt="x" * 2001)
    with pytest.raises(RequestRejected, match="prompt: fal's .* takes 1 to 2000 characters") as info:
        FalProvider(env_for(emu)).generate(job, Journal())
    assert info.value.sent is False
    assert emu.requests == []


@pytest.mark.parametrize(
    ("model", "kind", "choices"),
    [
        # veo3 and seedance take "auto" (follow the image) for image_to_video only;
        # fal's veo3 dropped 1:1 in late 2025 (tests/emulators/fal_inputs.py)
        ("veo3", "text_to_video", ("16:9", "9:16")),
        ("veo3", "image_to_video", ("auto", "16:9", "9:16")),
        ("seedance", "text_to_video", ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")),
        ("seedance", "image_to_video", ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto")),
    ],
)
def test_aspect_ratio_choices_are_per_kind(model: str, kind: str, choices: tuple[str, ...]) -> None:
    aspect = CATALOGUE[model].params_for(kind)["aspect_ratio"]
    assert aspect.choices == choices
    assert (aspect.check("auto") is None) == ("auto" in choices)


# -- errors from fal -------------------------------------------------------------


def test_wrong_key_is_an_auth_error_without_the_key(emu: FalEmulator, tmp_path: Path) -> None:
    wrong = "test-fal-key-9999"
    with pytest.raises(AuthError, match="check FAL_KEY") as info:
        FalProvider(env_for(emu, FAL_KEY=wrong)).generate(make_job(tmp_path), Journal())
    assert info.value.status == 401
    assert_no_key(info.value, wrong)  # the emulator echoed it; the adapter redacted it
    assert emu.submissions == 1


@pytest.mark.parametrize(
    "response",
    [
        error(
            403,
            "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.",
        ),
        error(402, "Payment required"),
    ],
)
def test_out_of_credit(emu: FalEmulator, tmp_path: Path, response: Response) -> None:
    emu.fail("POST", SUBMIT, response)
    journal = Journal()
    with pytest.raises(PaymentRequired, match="top up") as info:
        FalProvider(env_for(emu)).generate(make_job(tmp_path), journal)
    assert info.value.sent is False
    assert emu.submissions == 1 and journal.ids == []


def test_failed_job_carries_fals_message(emu: FalEmulator, tmp_path: Path) -> None:
    emu.job_error = error(422, VALIDATION)
    journal = Journal()
    job = make_job(tmp_path, "kling", "text_to_video", "v.mp4")
    with pytest.raises(RequestRejected, match="duration: value is not a valid enumeration") as info:
        FalProvider(env_for(emu)).generate(job, journal)
    assert info.value.status == 422
    assert "req-0001" in str(info.value)
    assert journal.ids == ["req-0001"] and emu.submissions == 1
    assert not job.output.exists()


def test_submit_rejection_carries_fals_message(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail("POST", SUBMIT, error(400, "Invalid request body"))
    with pytest.raises(RequestRejected, match="HTTP 400: Invalid request body"):
        FalProvider(env_for(emu)).generate(make_job(tmp_path), Journal())
    assert emu.submissions == 1


@pytest.mark.parametrize(
    "setup",
    [
        # the checker refused the job: the result GET answers 422 content_policy_violation
        pytest.param(_job_error(error(422, POLICY, "content_policy_violation")), id="job"),
        # refused at submission, with only the header naming the type
        pytest.param(
            _submit_fails(
                Response(
                    422, {"detail": "flagged"}, {"x-fal-error-type": "content_policy_violation"}
                )
            ),
            id="submit",
        ),
        # FLUX's safety checker answers a blank image with has_nsfw_concepts
        pytest.param(
            lambda emu: setattr(emu, "result_extra", {"has_nsfw_concepts": [True]}), id="nsfw"
        ),
    ],
)
def test_content_policy_refusal(emu: FalEmulator, tmp_path: Path, setup: Any) -> None:
    setup(emu)
    job = make_job(tmp_path)
    with pytest.raises(RequestRejected, match="content policy"):
        FalProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 1
    assert not job.output.exists()
    assert emu.calls("GET", MEDIA) == []


def test_server_error_on_submit_is_not_repeated(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail("POST", SUBMIT, error(500, "Internal server error"), times=5)
    journal = Journal()
    with pytest.raises(ServiceUnavailable, match="not submitted again") as info:
        FalProvider(env_for(emu)).generate(make_job(tmp_path), journal)
    assert info.value.sent is True and info.value.status == 500
    assert emu.submissions == 1 and journal.ids == []


def test_ingress_error_on_submit_is_retried(emu: FalEmulator, tmp_path: Path) -> None:
    # nginx answering with no x-fal-request-id: the submit never reached fal's queue.
    page = "<html><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    emu.fail("POST", SUBMIT, Response(502, page, {"Content-Type": "text/html"}))
    job = make_job(tmp_path)
    FalProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 2
    assert job.output.exists()


def test_failed_job_on_fals_side_is_service_unavailable(emu: FalEmulator, tmp_path: Path) -> None:
    emu.job_error = error(500, "Runner disconnected", "runner_disconnected")
    with pytest.raises(ServiceUnavailable, match="runner_disconnected") as info:
        FalProvider(env_for(emu)).generate(make_job(tmp_path), Journal())
    # Asked once: a failed job's answer cannot change.
    assert len(emu.calls("GET", r"/queue/fal-ai/flux/requests/req-0001")) == 1
    assert info.value.status == 500


def test_rate_limit_then_success(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail("POST", SUBMIT, error(429, "Too many requests", **{"Retry-After": "0"}))
    job = make_job(tmp_path)
    FalProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 2
    assert job.output.exists()


def test_retry_after_is_waited_for(emu: FalEmulator, tmp_path: Path) -> None:
    # Our own backoff is 0.01 s here, so only fal's Retry-After can hold the second submit
    # back; the emulator's arrival times are a fact of the wire, not a benchmark.
    emu.fail("POST", SUBMIT, error(429, "Too many requests", **{"Retry-After": "1"}))
    FalProvider(env_for(emu)).generate(make_job(tmp_path), Journal())
    first, second = emu.calls("POST", SUBMIT)
    assert second.at - first.at >= 0.9


@pytest.mark.slow  # the SDK waits out its 10 s floor for the answer
def test_submit_read_timeout_is_not_repeated(emu: FalEmulator, tmp_path: Path) -> None:
    # The submit reached fal and its answer never came: the job may be queued (and
    # billed), so it is not submitted again. The SDK's floor for a request is 10 s.
    emu.fail("POST", SUBMIT, Response(200, {}, delay_s=12.0))
    journal = Journal()
    with pytest.raises(ProviderTimeout, match="was not submitted again") as info:
        FalProvider(env_for(emu)).generate(make_job(tmp_path, timeout_s=1.0), journal)
    assert info.value.sent is True
    assert emu.submissions == 1
    assert journal.ids == []  # no request id: nothing to resume


def test_rate_limit_that_persists(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail("POST", SUBMIT, error(429, "Too many requests", **{"Retry-After": "0"}), times=10)
    with pytest.raises(RateLimited) as info:
        FalProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")).generate(
            make_job(tmp_path), Journal()
        )
    assert info.value.retry_after == 0
    assert emu.submissions == 3


def test_free_requests_are_retried(emu: FalEmulator, tmp_path: Path) -> None:
    # A 503 on a status poll, the result fetch and the upload costs nothing to repeat.
    emu.fail("GET", r"/queue/.+/status", error(503, "busy"))
    emu.fail("GET", r"/queue/[^/]+/[^/]+/requests/[^/]+", error(502, "busy"))
    # (fal-client never closes the httpx client it uploads with; "Connection: close"
    # keeps its socket from outliving the test, as the emulator's upload route does.)
    emu.fail("POST", r"/cdn/files/upload", error(503, "busy", Connection="close"))
    files = inputs(tmp_path)
    job = make_job(tmp_path, "flux-kontext", "image_to_image", image=str(files["image"]))
    FalProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 1
    assert len(emu.calls("POST", r"/cdn/files/upload")) == 2
    assert job.output.exists()


def test_connection_refused_is_service_unavailable_quickly(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(None, ACPBUILD_FAL_URL=f"http://127.0.0.1:{port}", ACPBUILD_RETRY_ATTEMPTS="2")
    with pytest.raises(ServiceUnavailable, match="cannot connect") as info:
        FalProvider(env).generate(make_job(tmp_path), Journal())
    assert info.value.sent is False


# -- downloads -------------------------------------------------------------------


def test_truncated_download_is_fetched_again(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail(
        "GET", MEDIA, Response(200, mp4_bytes(), {"Content-Type": "video/mp4"}, truncate_to=100)
    )
    job = make_job(tmp_path, "hailuo-02", "text_to_video", "v.mp4")
    FalProvider(env_for(emu)).generate(job, Journal())
    assert len(emu.calls("GET", MEDIA)) == 2
    assert job.output.read_bytes() == mp4_bytes()
    assert emu.submissions == 1


def test_download_that_stays_truncated_leaves_no_output(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail("GET", MEDIA, Response(200, mp4_bytes(), truncate_to=100), times=10)
    job = make_job(tmp_path, "hailuo-02", "text_to_video", "v.mp4")
    with pytest.raises(BadResponse, match="truncated"):
        FalProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")).generate(job, Journal())
    assert len(emu.calls("GET", MEDIA)) == 3
    assert not job.output.exists()
    assert leftovers(tmp_path) == []
    assert emu.submissions == 1


def test_download_asks_for_identity_and_decodes_a_gzip_answer_anyway(
    emu: FalEmulator, tmp_path: Path
) -> None:
    png = image_bytes("png")
    packed = gzip.compress(png)
    gz = {"Content-Type": "image/png", "Content-Encoding": "gzip"}
    # first a compressed copy cut short (Content-Length counts the compressed bytes),
    # then a whole one from a server that compresses although it was asked not to
    emu.fail("GET", MEDIA, Response(200, packed, gz, truncate_to=len(packed) // 2))
    emu.fail("GET", MEDIA, Response(200, packed, gz))
    job = make_job(tmp_path)
    FalProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_bytes() == png
    downloads = emu.calls("GET", MEDIA)
    assert len(downloads) == 2
    assert {d.headers["accept-encoding"] for d in downloads} == {"identity"}
    assert emu.submissions == 1


def test_result_that_is_not_media_is_rejected(emu: FalEmulator, tmp_path: Path) -> None:
    emu.fail("GET", MEDIA, Response(200, b"<html>gateway login</html>"), times=10)
    job = make_job(tmp_path)
    with pytest.raises(BadResponse, match="not a valid image"):
        FalProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="2")).generate(job, Journal())
    assert not job.output.exists()


# -- long jobs: timeout, then resume -------------------------------------------


def test_timeout_while_polling_then_resume_without_resubmitting(
    emu: FalEmulator, tmp_path: Path
) -> None:
    emu.polls = 10**6  # the job never finishes while the first run waits
    provider = FalProvider(env_for(emu))
    job = make_job(tmp_path, "veo3", "text_to_video", "v.mp4", timeout_s=0.3)
    journal = Journal()
    with pytest.raises(ProviderTimeout, match="resumes") as info:
        provider.generate(job, journal)
    assert journal.ids == ["req-0001"]
    assert "req-0001" in str(info.value)
    assert not job.output.exists()

    emu.jobs["req-0001"].polls = 2  # fal finishes it meanwhile
    resumed = Journal(resume_id="req-0001")
    outcome = provider.generate(job, resumed)
    assert outcome.request_id == "req-0001"
    assert resumed.ids == []  # nothing new to record
    assert emu.submissions == 1
    assert job.output.exists()
    # The resumed polls are built from the endpoint's owner/alias, as fal expects.
    assert emu.calls("GET", r"/queue/fal-ai/veo3/requests/req-0001/status")


def test_resume_of_an_unknown_request(emu: FalEmulator, tmp_path: Path) -> None:
    with pytest.raises(RequestRejected, match="does not know this request"):
        FalProvider(env_for(emu)).generate(make_job(tmp_path), Journal(resume_id="req-gone"))
    assert emu.submissions == 0


# -- ping ------------------------------------------------------------------------


def test_ping(emu: FalEmulator) -> None:
    said = FalProvider(env_for(emu)).ping()
    assert "fal accepted the key" in said and KEY not in said
    assert (
        emu.calls("POST", r"/rest/storage/auth/token")[0].headers["authorization"] == f"Key {KEY}"
    )


def test_ping_with_a_wrong_key(emu: FalEmulator) -> None:
    wrong = "test-fal-key-8888"
    with pytest.raises(AuthError, match="FAL_KEY") as info:
        FalProvider(env_for(emu, FAL_KEY=wrong)).ping()
    assert_no_key(info.value, wrong)


# -- secrets, imports, catalogue, prices ----------------------------------------


# Every error class the adapter raises, with fal's text quoting the key where it can.
@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param(_submit_fails(error(401, f"bad key {KEY}")), AuthError, id="401"),
        pytest.param(
            _submit_fails(error(403, f"Exhausted balance for Key {KEY}")),
            PaymentRequired,
            id="balance",
        ),
        pytest.param(_submit_fails(error(429, f"slow {KEY}"), 10), RateLimited, id="429"),
        pytest.param(_submit_fails(error(500, f"crash {KEY}")), ServiceUnavailable, id="500"),
        pytest.param(_submit_fails(error(400, f"bad {KEY}")), RequestRejected, id="400"),
        pytest.param(
            _job_error(error(422, [{"msg": f"flagged {KEY}", "type": "content_policy_violation"}])),
            RequestRejected,
            id="policy",
        ),
        pytest.param(
            _job_error(error(422, [{"loc": ["body", "x"], "msg": f"bad {KEY}"}])),
            RequestRejected,
            id="422",
        ),
        pytest.param(
            _job_error(error(503, f"down {KEY}", "runner_disconnected")),
            ServiceUnavailable,
            id="job-5xx",
        ),
        pytest.param(
            lambda emu: emu.fail("GET", MEDIA, Response(200, mp4_bytes(), truncate_to=10), 10),
            BadResponse,
            id="truncated",
        ),
        pytest.param(lambda emu: setattr(emu, "polls", 10**6), ProviderTimeout, id="timeout"),
    ],
)
def test_no_error_text_holds_the_key(
    emu: FalEmulator, tmp_path: Path, setup: Any, expected: type[ProviderError]
) -> None:
    setup(emu)
    job = make_job(tmp_path, "kling", "text_to_video", "v.mp4", timeout_s=0.3)
    env = env_for(emu, ACPBUILD_RETRY_ATTEMPTS="2")
    with pytest.raises(expected) as info:
        FalProvider(env).generate(job, Journal())
    assert info.value.provider == "fal"
    assert_no_key(info.value)


def test_importing_the_adapter_does_not_import_the_sdk() -> None:
    code = (
        "import sys, acpbuild.providers.fal.adapter as m; m.FalProvider({}).catalogue(); "
        "assert 'fal_client' not in sys.modules, 'fal_client imported'; "
        "assert 'httpx' not in sys.modules, 'httpx imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_override_is_undone_for_a_provider_without_one(emu: FalEmulator) -> None:
    import fal_client.client as sdk

    from acpbuild.providers.fal.adapter import _configure_sdk

    _configure_sdk(emu.url)
    assert (sdk.QUEUE_URL_FORMAT, sdk.REST_URL) == (f"{emu.url}/queue/", f"{emu.url}/rest")
    _configure_sdk(None)
    assert sdk.QUEUE_URL_FORMAT == "https://queue.fal.run/"
    assert (sdk.REST_URL, sdk.CDN_URL) == ("https://rest.fal.ai", "https://v3.fal.media")
    assert sdk.MAX_ATTEMPTS == 1


def test_catalogue_kinds_and_prices() -> None:
    prices = tomllib.loads((ROOT / "acpbuild/money/prices/fal.toml").read_text())["models"]
    assert set(prices) == set(CATALOGUE)
    units = {"image", "megapixel", "second", "1k_characters", "1m_tokens", "request"}
    for key, model in CATALOGUE.items():
        assert model.name == key
        assert set(model.kinds) <= set(KINDS), key
        assert prices[key]["unit"] in units and prices[key]["usd"] > 0, key
        assert prices[key]["source"] and prices[key]["date"], key
        for name, param in model.params.items():
            assert param.default is None or param.check(param.default) is None, (key, name)
    assert prices["flux-dev"]["round_up"] is True
    assert prices["veo3"]["usd_with_audio"] > prices["veo3"]["usd"]
