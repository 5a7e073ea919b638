"""Every value the fal catalogue lets a recipe set is accepted by fal's input schema, on the wire.

The fal emulator is strict (:mod:`tests.emulators.fal_inputs` holds each
endpoint's input schema as fal publishes it). Each model and kind of the
catalogue goes through :meth:`FalProvider.generate` and the real fal-client
with each choice of each enumerated parameter, both ends of each range, both
booleans, the shortest and the longest text fal's bounds allow, and each
output format: round ``i`` of a model's kind sets every parameter to its
``i``-th value, so each value is sent once. fal must accept every body and
read every field of it (it drops a field its schema does not name, silently).

The second half checks the emulator itself: it refuses what fal refuses, in
fal's shape, through the same SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acpbuild.errors import RequestRejected
from acpbuild.provider import FILE_TYPES, Job, Param
from acpbuild.providers.fal.adapter import FalProvider, _configure_sdk
from acpbuild.providers.fal.models import SPECS, Spec
from tests.emulators import Journal
from tests.emulators.fal import KEY, FalEmulator
from tests.emulators.fal_inputs import SCHEMAS
from tests.test_provider_fal import env_for, inputs, make_job

# the text sent where fal sets no bound
TEXT = {"prompt": "a lighthouse at dusk", "negative_prompt": "fog"}


@pytest.fixture(scope="module")
def server() -> Iterator[FalEmulator]:
    with FalEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: FalEmulator) -> FalEmulator:
    server.reset()
    server.polls = 0  # COMPLETED at the first poll
    return server


def _values(name: str, param: Param, spec: Spec, kind: str) -> list[Any]:
    """The values of one parameter a recipe can set, each once (a file is a placeholder)."""
    if param.type in FILE_TYPES:
        return [f"<{param.type}>"]
    if param.choices:
        return list(param.choices)
    if param.type == "bool":
        return [True, False]
    if param.min is not None or param.max is not None:
        cast = int if param.type == "int" else float
        return [cast(end) for end in (param.min, param.max) if end is not None]
    bounds = spec.lengths.get(kind, {}).get(name)
    if bounds:
        return ["x" * bounds[0], "x" * bounds[1]]
    return [TEXT[name]]


def _rounds(key: str, kind: str) -> list[dict[str, Any]]:
    """Round i sets each parameter to its i-th value; a required one always has a value."""
    spec = SPECS[key]
    table = {
        name: (param.required, _values(name, param, spec, kind))
        for name, param in spec.model.params_for(kind).items()
    }
    count = max(len(values) for _, values in table.values())
    if spec.output_format:
        count = max(count, 2)  # a .png and a .jpg output
    return [
        {
            name: values[i % len(values)]
            for name, (required, values) in table.items()
            if required or i < len(values)
        }
        for i in range(count)
    ]


CASES = [
    (key, kind, i)
    for key, spec in SPECS.items()
    for kind in spec.model.kinds
    for i in range(len(_rounds(key, kind)))
]


def test_the_emulator_has_a_schema_for_every_catalogued_endpoint_and_no_other() -> None:
    endpoints = {e for spec in SPECS.values() for e in spec.model.endpoints.values()}
    assert endpoints == set(SCHEMAS)


@pytest.mark.parametrize(
    ("key", "kind", "i"), CASES, ids=[f"{key}-{kind}-{i}" for key, kind, i in CASES]
)
def test_each_catalogue_value_is_accepted_by_fal(
    emu: FalEmulator, tmp_path: Path, key: str, kind: str, i: int
) -> None:
    spec = SPECS[key]
    files = {f"<{media}>": str(path) for media, path in inputs(tmp_path).items()}
    params = {name: files.get(value, value) for name, value in _rounds(key, kind)[i].items()}
    suffix = ".mp4" if spec.output == "video" else (".jpg" if i % 2 else ".png")
    job = make_job(tmp_path, key, kind, "out" + suffix, **params)

    # a body fal refuses raises here, with fal's 422 detail in the message
    outcome = FalProvider(env_for(emu, ACPBUILD_POLL_INTERVAL_S="0.01")).generate(job, Journal())

    endpoint = spec.model.endpoints[kind]
    assert emu.submitted().path == f"/queue/{endpoint}"
    sent = emu.jobs[outcome.request_id]
    assert sent.refusal is None
    assert sent.ignored == [], f"fal's {endpoint} ignores {sent.ignored}"
    assert job.output.stat().st_size > 0


# -- the emulator refuses what fal refuses ---------------------------------------


@pytest.fixture
def client(emu: FalEmulator) -> Iterator[Any]:
    """The real fal-client pointed at the emulator."""
    from fal_client import SyncClient

    _configure_sdk(emu.url)
    sdk = SyncClient(key=KEY)
    yield sdk
    http = vars(sdk).get("_client")
    if http is not None:
        http.close()


KLING = "fal-ai/kling-video/v2.1/master/text-to-video"
VEO_I2V = "fal-ai/veo3/image-to-video"
BYTEDANCE_UP = "fal-ai/bytedance-upscaler/upscale/video"
TOPAZ = "fal-ai/topaz/upscale/video"


@pytest.mark.parametrize(
    ("endpoint", "arguments", "field", "error"),
    [
        # value forms: Kling's duration is the string "5", Veo's "8s"; neither takes the other
        (KLING, {"prompt": "p", "duration": 5}, "duration", "literal_error"),
        (KLING, {"prompt": "p", "duration": "5s"}, "duration", "literal_error"),
        ("fal-ai/veo3", {"prompt": "p", "duration": "8"}, "duration", "literal_error"),
        ("fal-ai/veo3", {"prompt": "p", "aspect_ratio": "1:1"}, "aspect_ratio", "literal_error"),
        # one image is image_url; a list under another name leaves it missing
        (VEO_I2V, {"prompt": "p", "image_urls": ["u"]}, "image_url", "missing"),
        ("fal-ai/kling-video/v1/pro/ai-avatar", {"image_url": "u"}, "audio_url", "missing"),
        # target_fps is "30fps" for ByteDance's upscaler and an integer for Topaz's
        (BYTEDANCE_UP, {"video_url": "u", "target_fps": 30}, "target_fps", "literal_error"),
        (TOPAZ, {"video_url": "u", "target_fps": "30fps"}, "target_fps", "int_parsing"),
        (TOPAZ, {"video_url": "u", "target_fps": 61}, "target_fps", "less_than_equal"),
        # ranges and lengths
        ("fal-ai/flux/schnell", {"prompt": "p", "num_inference_steps": 13}, "num_inference_steps",
         "less_than_equal"),
        ("fal-ai/mmaudio-v2", {"video_url": "u", "prompt": "p", "seed": -1}, "seed",
         "greater_than_equal"),
        ("fal-ai/imagen4/preview", {"prompt": "ab"}, "prompt", "string_too_short"),
        (
            "fal-ai/minimax/hailuo-02/standard/image-to-video",
            {"prompt": "p", "image_url": "u", "resolution": "1080P"},
            "resolution",
            "literal_error",
        ),
        (
            "fal-ai/bytedance/seedance/v1/pro/text-to-video",
            {"prompt": "p", "aspect_ratio": "auto"},
            "aspect_ratio",
            "literal_error",
        ),
    ],
)
def test_a_body_fal_refuses_is_queued_then_answered_422(
    emu: FalEmulator, client: Any, endpoint: str, arguments: dict[str, Any], field: str, error: str
) -> None:
    from fal_client import Completed, FalClientHTTPError

    handle = client.submit(endpoint, arguments)  # fal queues it; the model refuses it
    status = handle.status()
    assert isinstance(status, Completed) and status.error is None
    with pytest.raises(FalClientHTTPError) as info:
        handle.get()
    assert info.value.status_code == 422
    assert info.value.response.headers["x-fal-billable-units"] == "0"
    detail = info.value.response.json()["detail"]
    assert [(item["loc"], item["type"]) for item in detail] == [(["body", field], error)]
    assert all(isinstance(item["msg"], str) and "input" in item for item in detail)


def test_an_unknown_app_is_refused_at_submit(emu: FalEmulator, client: Any) -> None:
    from fal_client import FalClientHTTPError

    with pytest.raises(FalClientHTTPError) as info:
        client.submit("fal-ai/no-such-model", {"prompt": "p"})
    assert info.value.status_code == 404
    assert emu.jobs == {}


def test_a_path_the_app_lacks_is_answered_404_by_the_app(emu: FalEmulator, client: Any) -> None:
    from fal_client import FalClientHTTPError

    handle = client.submit("fal-ai/flux/dev-2", {"prompt": "p"})
    with pytest.raises(FalClientHTTPError) as info:
        handle.get()
    assert info.value.status_code == 404
    assert info.value.response.json() == {"detail": "Path /dev-2 not found"}


def test_a_field_no_schema_names_is_accepted_and_listed_as_ignored(
    emu: FalEmulator, client: Any
) -> None:
    handle = client.submit("fal-ai/imagen4/preview", {"prompt": "abc", "negative_prompt": "fog"})
    assert handle.get()["images"]
    assert emu.jobs[handle.request_id].ignored == ["negative_prompt"]


def test_the_adapter_reports_fals_refusal_once_and_as_not_billed(
    emu: FalEmulator, tmp_path: Path
) -> None:
    # A job the catalogue would refuse, built by hand: the adapter itself does not
    # check choices, so this is what reaches fal if the catalogue is wrong.
    model = SPECS["veo3"].model
    params = {"prompt": "p", "aspect_ratio": "1:1", "duration_s": 8}
    job = Job("text_to_video", model, params, tmp_path / "v.mp4", 30.0)
    journal = Journal()
    said = r"HTTP 422: aspect_ratio: Input should be '16:9' or '9:16'"
    with pytest.raises(RequestRejected, match=said) as info:
        FalProvider(env_for(emu)).generate(job, journal)
    assert info.value.status == 422
    assert info.value.job_failed is True  # the job is over: the next run submits anew
    assert info.value.sent is False  # fal bills no validation refusal
    assert emu.submissions == 1 and journal.ids == ["req-0001"]
    assert len(emu.calls("GET", r"/queue/fal-ai/veo3/requests/req-0001")) == 1
    assert not job.output.exists()
