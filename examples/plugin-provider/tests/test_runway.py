"""The Runway adapter, driving the real ``runwayml`` SDK against the loopback emulator.

Every task creation may be billed, so the tests count them: a failure that may
have reached Runway is never submitted twice, a resumed task is polled rather
than created again, and only free requests (polls, downloads) are repeated freely.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from acpbuild.provider import (
    AuthError,
    BadResponse,
    Job,
    MissingCredentials,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
)
from acpbuild.provider.prices import table_problems
from acpbuild.provider.wire import sniff
from acpbuild.testing import RecordingJournal, Response
from PIL import Image

from acpbuild_runway.adapter import RunwayProvider

from emulator import KEY, RunwayEmulator

CATALOGUE = RunwayProvider({}).catalogue()


@pytest.fixture(scope="module")
def server() -> Any:
    # One server per module: stopping one takes half a second (serve_forever's poll).
    with RunwayEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: RunwayEmulator) -> RunwayEmulator:
    """The emulator with an empty log, no tasks and no scripted failures."""
    server.reset()
    return server


def env_for(emu: RunwayEmulator, **extra: str) -> dict[str, str]:
    env = {
        "RUNWAYML_API_SECRET": KEY,
        "RUNWAYML_BASE_URL": emu.url,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.01",
    }
    env.update(extra)
    return env


def picture(path: Path, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> Path:
    Image.new("RGB", size, (20, 120, 220)).save(path, format=fmt)
    return path


def make_job(
    tmp_path: Path, model: str, output: str, timeout_s: float = 30.0, **params: Any
) -> Job:
    """A job as the runner builds it: parameters checked, the catalogue's defaults filled in."""
    entry = CATALOGUE[model]
    kind = entry.kinds[0]
    allowed = entry.params_for(kind)
    if model == "gen4-turbo":
        params.setdefault("image", str(picture(tmp_path / "first.png")))
    else:
        params.setdefault("prompt", "a lighthouse at dusk")
    for name, value in params.items():
        assert allowed[name].check(value) is None, (name, allowed[name].check(value))
    full = {n: p.default for n, p in allowed.items() if p.default is not None}
    full.update(params)
    return Job(kind, entry, full, tmp_path / output, timeout_s)


def data_uri(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def leftovers(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def assert_no_key(exc: BaseException, key: str = KEY) -> None:
    """The key is in no message or repr along the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        assert key not in str(seen), type(seen)
        assert key not in repr(seen), type(seen)
        seen = seen.__cause__ or seen.__context__


# -- what goes on the wire ------------------------------------------------------------


def test_gen4_turbo_sends_the_documented_body_and_headers(
    emu: RunwayEmulator, tmp_path: Path
) -> None:
    image = picture(tmp_path / "first.png")
    job = make_job(
        tmp_path, "gen4-turbo", "clip.mp4", image=str(image), prompt="waves", seed=7, duration_s=10
    )
    journal = RecordingJournal()
    outcome = RunwayProvider(env_for(emu)).generate(job, journal)

    (create,) = emu.by_role("submit")
    assert create.path == "/v1/image_to_video"
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.headers["x-runway-version"] == "2024-11-06"
    assert create.headers["x-stainless-retry-count"] == "0"
    assert create.json() == {
        "model": "gen4_turbo",
        "promptImage": data_uri(image),
        "ratio": "1280:720",
        "duration": 10,
        "promptText": "waves",
        "seed": 7,
    }
    # The id is journalled before the first status request.
    polls = emu.by_role("poll")
    assert journal.ids == [outcome.request_id] and journal.times[0] < polls[0].at
    assert {p.path for p in polls} == {f"/v1/tasks/{outcome.request_id}"}
    assert sniff(job.output) == "video"
    assert outcome.usage == {"seconds": 10.0}
    assert outcome.actual_cost == pytest.approx(0.50)  # 50 credits at $0.01
    assert outcome.meta["model"] == "gen4_turbo" and outcome.meta["credits"] == 50
    assert emu.created == 1 and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("aspect", "resolution", "ratio", "usd"),
    [
        ("16:9", "1080p", "1920:1080", 0.08),  # the default: 8 credits
        ("4:3", "720p", "960:720", 0.05),  # 720p: 5 credits
        ("21:9", "720p", "1680:720", 0.05),  # Runway's widest 720p size
        ("9:16", "1080p", "1080:1920", 0.08),  # portrait
    ],
)
def test_gen4_image_sends_runways_pixel_ratio(
    emu: RunwayEmulator, tmp_path: Path, aspect: str, resolution: str, ratio: str, usd: float
) -> None:
    job = make_job(tmp_path, "gen4-image", "still.png", ratio=aspect, resolution=resolution)
    outcome = RunwayProvider(env_for(emu)).generate(job, RecordingJournal())

    assert emu.by_role("submit")[0].json() == {
        "model": "gen4_image",
        "ratio": ratio,
        "promptText": "a lighthouse at dusk",
    }
    width, height = map(int, ratio.split(":"))
    with Image.open(job.output) as made:
        assert (made.format, made.size) == ("PNG", (width, height))
    assert outcome.usage == {"images": 1}
    assert outcome.actual_cost == pytest.approx(usd)


def test_gen4_image_sends_references_with_their_tags(emu: RunwayEmulator, tmp_path: Path) -> None:
    hero = picture(tmp_path / "hero.jpg", fmt="JPEG")
    place = picture(tmp_path / "place.webp", fmt="WEBP")
    job = make_job(
        tmp_path,
        "gen4-image",
        "still.png",
        prompt="@Hero at the harbour",
        references=[str(hero), str(place)],
        reference_tags=["Hero"],
    )
    RunwayProvider(env_for(emu)).generate(job, RecordingJournal())

    body = emu.by_role("submit")[0].json()
    # a tag per image where one was given; each image as a data URI of its own type
    assert body["referenceImages"] == [
        {"uri": data_uri(hero, "image/jpeg"), "tag": "Hero"},
        {"uri": data_uri(place, "image/webp")},
    ]


@pytest.mark.parametrize(("name", "fmt"), [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.webp", "WEBP")])
def test_an_image_output_takes_the_format_of_its_suffix(
    emu: RunwayEmulator, tmp_path: Path, name: str, fmt: str
) -> None:
    job = make_job(tmp_path, "gen4-image", name)
    RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    with Image.open(job.output) as made:
        assert made.format == fmt
    assert leftovers(tmp_path) == []


def test_a_throttled_task_is_waited_for(emu: RunwayEmulator, tmp_path: Path) -> None:
    # Over the concurrency limit Runway queues a task as THROTTLED rather than refusing it.
    emu.polls, emu.throttled = 4, 2
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    assert len(emu.by_role("poll")) == 5 and emu.created == 1
    assert job.output.exists()


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "charged", "job_failed"),
    [
        # refused by moderation: over, and Runway keeps the credits for a refused input
        ("SAFETY.INPUT.TEXT", RequestRejected, True, True),
        # Runway's own failure, not charged: a new task may succeed
        ("INTERNAL.BAD_OUTPUT.CODE01", ServiceUnavailable, False, True),
        # an input Runway could not use: fix it
        ("ASSET.INVALID", RequestRejected, False, True),
    ],
)
def test_a_failed_task_surfaces_runways_reason(
    emu: RunwayEmulator,
    tmp_path: Path,
    code: str,
    error: type[ProviderError],
    charged: bool,
    job_failed: bool,
) -> None:
    emu.failure = ("The prompt was flagged by our content moderation system.", code)
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    with pytest.raises(error) as caught:
        RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    assert "flagged by our content moderation system" in str(caught.value)
    assert code in str(caught.value)
    assert caught.value.sent is charged and caught.value.job_failed is job_failed
    assert emu.created == 1 and not job.output.exists()


def test_a_429_on_create_is_retried(emu: RunwayEmulator, tmp_path: Path) -> None:
    # 429: Runway's daily limit or load; the task was not created, so asking again is safe.
    emu.fail_role("submit", Response(429, {"error": "Too many requests"}, {"Retry-After": "0"}))
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    assert len(emu.by_role("submit")) == 2 and emu.created == 1


def test_a_429_that_persists_is_rate_limited(emu: RunwayEmulator, tmp_path: Path) -> None:
    emu.fail_role("submit", Response(429, {"error": "Daily task limit reached"}), times=10)
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    with pytest.raises(RateLimited) as caught:
        RunwayProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")).generate(job, RecordingJournal())
    assert "Daily task limit reached" in str(caught.value)
    assert len(emu.by_role("submit")) == 3 and emu.created == 0


@pytest.mark.parametrize(
    ("answer", "sent", "creates"),
    [
        # a 500 or 504 may come after the task was made: never repeated
        (Response(500, {"error": "Internal error"}), True, 1),
        (Response(504, {"error": "Gateway timeout"}), True, 1),
        # a lost answer: the task may exist
        (Response(drop=True), True, 1),
        # 502/503: Runway shedding load before taking the request (api-details/errors)
        (Response(503, {"error": "Service unavailable"}), False, 3),
    ],
)
def test_a_create_that_may_have_been_billed_is_sent_once(
    emu: RunwayEmulator, tmp_path: Path, answer: Response, sent: bool, creates: int
) -> None:
    emu.fail_role("submit", answer, times=10)
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    with pytest.raises(ServiceUnavailable) as caught:
        RunwayProvider(env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")).generate(job, RecordingJournal())
    assert caught.value.sent is sent
    assert len(emu.by_role("submit")) == creates


def test_runways_400_names_the_field_and_is_not_retried(
    emu: RunwayEmulator, tmp_path: Path
) -> None:
    # A job the catalogue would have refused, sent anyway: the emulator answers as Runway does.
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    job.params["duration_s"] = 11
    with pytest.raises(RequestRejected) as caught:
        RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    assert "HTTP 400: duration: Number must be between 2 and 10" in str(caught.value)
    assert caught.value.sent is False and len(emu.by_role("submit")) == 1


@pytest.mark.parametrize(
    ("headers", "status", "said"),
    [
        ({"Authorization": f"Bearer {KEY}"}, 400, "X-Runway-Version: the header is required"),
        (
            {"Authorization": f"Bearer {KEY}", "X-Runway-Version": "2023-01-01"},
            400,
            "unsupported API version",
        ),
        ({"X-Runway-Version": "2024-11-06"}, 401, "Invalid API key"),
        ({"Authorization": f"Key {KEY}", "X-Runway-Version": "2024-11-06"}, 401, "Invalid API key"),
    ],
)
def test_the_emulator_checks_key_and_version_first(
    emu: RunwayEmulator, headers: dict[str, str], status: int, said: str
) -> None:
    answer = httpx.post(
        f"{emu.url}/v1/text_to_image", headers=headers, json={"model": "gen4_image"}
    )
    assert answer.status_code == status
    assert said in answer.json()["error"]
    assert emu.created == 0


def test_a_refused_key_never_appears_in_the_error(emu: RunwayEmulator, tmp_path: Path) -> None:
    wrong = "test-runway-wrong-key"
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    with pytest.raises(AuthError) as caught:
        RunwayProvider(env_for(emu, RUNWAYML_API_SECRET=wrong)).generate(job, RecordingJournal())
    assert "RUNWAYML_API_SECRET" in str(caught.value)
    assert_no_key(caught.value, wrong)
    assert len(emu.by_role("submit")) == 1  # a 401 is not retried


def test_no_key_sends_nothing(emu: RunwayEmulator, tmp_path: Path) -> None:
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
    with pytest.raises(MissingCredentials):
        RunwayProvider({"RUNWAYML_BASE_URL": emu.url}).generate(job, RecordingJournal())
    assert emu.requests == []


# -- waiting and resuming ---------------------------------------------------------------


def test_a_timed_out_task_is_resumed_without_creating_another(
    emu: RunwayEmulator, tmp_path: Path
) -> None:
    emu.polls = 10**6
    provider = RunwayProvider(env_for(emu))
    first = RecordingJournal()
    with pytest.raises(ProviderTimeout) as caught:
        provider.generate(make_job(tmp_path, "gen4-turbo", "clip.mp4", timeout_s=0.2), first)
    (task_id,) = first.ids
    assert caught.value.job_failed is False and "resumes" in str(caught.value)

    emu.tasks[task_id].polls = emu.tasks[task_id].seen  # the task finishes meanwhile
    again = RecordingJournal(resume_id=task_id)
    outcome = provider.generate(make_job(tmp_path, "gen4-turbo", "clip.mp4"), again)
    assert outcome.request_id == task_id and again.ids == []
    assert len(emu.by_role("submit")) == 1 and emu.created == 1


def test_resuming_a_task_runway_no_longer_has(emu: RunwayEmulator, tmp_path: Path) -> None:
    journal = RecordingJournal(resume_id="00000000-0000-4000-8000-000000000999")
    with pytest.raises(RequestRejected) as caught:
        RunwayProvider(env_for(emu)).generate(make_job(tmp_path, "gen4-turbo", "clip.mp4"), journal)
    # only a new task can help now, and nothing was billed for this one
    assert caught.value.job_failed is True and caught.value.sent is False
    assert emu.by_role("submit") == []


def test_a_cancelled_task_is_gone_and_cannot_be_resumed(
    emu: RunwayEmulator, tmp_path: Path
) -> None:
    emu.polls = 10**6
    provider = RunwayProvider(env_for(emu))
    first = RecordingJournal()
    with pytest.raises(ProviderTimeout):
        provider.generate(make_job(tmp_path, "gen4-turbo", "clip.mp4", timeout_s=0.1), first)
    headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": "2024-11-06"}
    cancelled = httpx.delete(f"{emu.url}/v1/tasks/{first.ids[0]}", headers=headers)
    assert cancelled.status_code == 204

    with pytest.raises(RequestRejected, match="deleted or has expired"):
        provider.generate(
            make_job(tmp_path, "gen4-turbo", "clip.mp4"), RecordingJournal(resume_id=first.ids[0])
        )
    assert len(emu.by_role("submit")) == 1


def test_a_resume_id_that_is_not_a_task_id_is_refused_before_any_request(
    emu: RunwayEmulator, tmp_path: Path
) -> None:
    journal = RecordingJournal(resume_id="../organization")
    with pytest.raises(BadResponse):
        RunwayProvider(env_for(emu)).generate(make_job(tmp_path, "gen4-turbo", "clip.mp4"), journal)
    assert emu.requests == []


# -- inputs refused before sending ------------------------------------------------------


def test_an_image_too_big_for_a_data_uri_is_refused_before_sending(
    emu: RunwayEmulator, tmp_path: Path
) -> None:
    big = tmp_path / "big.png"
    # 4 MB: under 5 MB on disk, over it once base64 makes it a third bigger
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4_000_000))
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4", image=str(big))
    with pytest.raises(RequestRejected, match="under 5 MB") as caught:
        RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    assert caught.value.sent is False and emu.requests == []


def test_a_gif_is_refused_before_sending(emu: RunwayEmulator, tmp_path: Path) -> None:
    gif = picture(tmp_path / "first.gif", fmt="GIF")
    job = make_job(tmp_path, "gen4-turbo", "clip.mp4", image=str(gif))
    with pytest.raises(RequestRejected, match="PNG, JPEG or WebP"):
        RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
    assert emu.requests == []


# -- where the key goes -------------------------------------------------------------------


def test_the_output_file_is_fetched_without_the_key(emu: RunwayEmulator, tmp_path: Path) -> None:
    with RunwayEmulator(key="another-key") as cdn:
        emu.files_root = cdn.url
        job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
        RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
        (fetched,) = cdn.by_role("download")
    assert "authorization" not in fetched.headers
    assert emu.by_role("download") == [] and sniff(job.output) == "video"


def test_a_redirect_to_another_host_is_not_followed(emu: RunwayEmulator, tmp_path: Path) -> None:
    with RunwayEmulator() as stranger:
        emu.fail_role(
            "submit", Response(307, b"", {"Location": f"{stranger.url}/v1/image_to_video"})
        )
        job = make_job(tmp_path, "gen4-turbo", "clip.mp4")
        with pytest.raises(BadResponse, match="refused to send the key"):
            RunwayProvider(env_for(emu)).generate(job, RecordingJournal())
        assert stranger.requests == []


# -- what check() and the catalogue refuse -------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "suffix", "key"),
    [
        ("gen4-turbo", {}, ".webm", "output"),  # Runway answers MP4 only
        ("gen4-turbo", {"prompt": "x" * 1001}, ".mp4", "prompt"),  # 1000 UTF-16 units at most
        ("gen4-turbo", {"prompt": "\U0001f30a" * 501}, ".mp4", "prompt"),  # an emoji is two units
        ("gen4-image", {"references": ["a.png"] * 4}, ".png", "references"),  # 3 at most
        (
            "gen4-image",
            {"references": ["a.png"], "reference_tags": ["One", "Two"]},
            ".png",
            "reference_tags",
        ),
        (
            "gen4-image",
            {"reference_tags": ["Hero"]},
            ".png",
            "reference_tags",
        ),  # a tag with no image
        (
            "gen4-image",
            {"references": ["a.png"], "reference_tags": ["1st"]},
            ".png",
            "reference_tags",
        ),
        (
            "gen4-image",
            {"references": ["a.png"], "reference_tags": ["ab"]},
            ".png",
            "reference_tags",
        ),
        (
            "gen4-image",
            {"references": ["a.png"], "reference_tags": ["my-tag"]},
            ".png",
            "reference_tags",
        ),
    ],
)
def test_check_refuses_what_runway_refuses(
    model: str, params: dict[str, Any], suffix: str, key: str
) -> None:
    entry = CATALOGUE[model]
    problems = RunwayProvider.check(entry.kinds[0], entry, params, suffix)
    assert [p.key for p in problems] == [key], problems


@pytest.mark.parametrize(
    ("model", "params", "suffix"),
    [
        ("gen4-turbo", {"prompt": "x" * 1000}, ".mp4"),  # exactly the limit
        ("gen4-turbo", {}, ".mov"),  # a .mov reads MP4
        ("gen4-image", {"references": ["a", "b", "c"], "reference_tags": ["One", "Two_2"]}, ".jpg"),
        (
            "gen4-image",
            {"references": ["a"], "reference_tags": ["Abcdefghijklmnop"]},
            ".webp",
        ),  # 16
    ],
)
def test_check_lets_through_what_runway_takes(
    model: str, params: dict[str, Any], suffix: str
) -> None:
    entry = CATALOGUE[model]
    assert RunwayProvider.check(entry.kinds[0], entry, params, suffix) == []


@pytest.mark.parametrize(
    ("model", "name", "value"),
    [
        ("gen4-turbo", "duration_s", 7),  # Runway's Gen-4 Turbo makes 5 or 10 s
        ("gen4-turbo", "ratio", "16:9"),  # the API's own pixel ratios
        ("gen4-turbo", "seed", -1),
        ("gen4-turbo", "seed", 2**32),
        ("gen4-image", "resolution", "4k"),
        ("gen4-image", "ratio", "1920:1080"),  # an aspect ratio here; resolution picks the size
    ],
)
def test_the_catalogue_refuses_out_of_range_values(model: str, name: str, value: Any) -> None:
    entry = CATALOGUE[model]
    assert entry.params_for(entry.kinds[0])[name].check(value) is not None


def test_prices_agree_with_the_catalogue() -> None:
    assert table_problems(RunwayProvider.price_table(), CATALOGUE, paid=True) == []


# -- ping --------------------------------------------------------------------------------


def test_ping_reports_the_credit_balance(emu: RunwayEmulator) -> None:
    assert "1000 credits left" in RunwayProvider(env_for(emu)).ping()
    (asked,) = emu.requests
    assert asked.path == "/v1/organization" and asked.method == "GET"


def test_ping_with_a_refused_key(emu: RunwayEmulator) -> None:
    wrong = "test-runway-wrong-key"
    with pytest.raises(AuthError) as caught:
        RunwayProvider(env_for(emu, RUNWAYML_API_SECRET=wrong)).ping()
    assert_no_key(caught.value, wrong)


def test_the_emulator_answers_in_runways_error_shape(emu: RunwayEmulator) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": "2024-11-06"}
    answer = httpx.post(
        f"{emu.url}/v1/image_to_video",
        headers=headers,
        json={
            "model": "gen4_turbo",
            "promptImage": "http://example.com/a.png",
            "ratio": "1280:720",
        },
    )
    assert answer.status_code == 400
    assert json.loads(answer.text) == {"error": "promptImage: Only HTTPS URLs are allowed."}
