"""A Runway API emulator on the loopback interface, for the real ``runwayml`` SDK.

It speaks what the SDK 5.24 sends when ``base_url`` points here:

- ``POST /v1/image_to_video`` and ``POST /v1/text_to_image`` (role "submit"), each
  answered ``{"id": ...}`` (runwayml ``resources/image_to_video.py``,
  ``resources/text_to_image.py``);
- ``GET /v1/tasks/{id}`` (role "poll"): PENDING (or THROTTLED), RUNNING, then
  SUCCEEDED with ``output: [url]`` and ``cost`` or FAILED with ``failure`` and
  ``failureCode`` (``types/task_retrieve_response.py``);
- ``DELETE /v1/tasks/{id}``: cancel or delete; the task is gone afterwards
  (``resources/tasks.py``: "Aborted and deleted tasks will not be able to be
  fetched again");
- ``GET /v1/organization``: the credit balance, for ``ping``;
- ``GET /files/{name}.{ext}`` (role "download"): the output URLs point here and
  serve a real MP4 or PNG, with no key (Runway's are signed CDN URLs).

What it checks, and where each rule comes from, is said beside each check. Errors
have Runway's shape, ``{"error": "<field>: <reason>"}``, with the status codes of
docs.dev.runwayml.com/api-details/errors. :attr:`RunwayEmulator.polls`,
:attr:`RunwayEmulator.throttled` and :attr:`RunwayEmulator.failure` script the
next tasks; :attr:`RunwayEmulator.tasks` holds every task created.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import io
import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from acpbuild.testing import LoopbackServer, Request, Response, real_mp4

KEY = "test-runway-key"

CREATE = r"/v1/(?P<route>image_to_video|text_to_image)"
TASK = r"/v1/tasks/(?P<tid>[^/]+)"
FILE = r"/files/(?P<name>[A-Za-z0-9_-]+)\.(?P<ext>mp4|png)"

# The versions the API accepts in X-Runway-Version: the SDK's default
# (runwayml/_client.py, runway_version="2024-11-06"); docs.dev.runwayml.com/api-details/versioning.
VERSIONS = ("2024-11-06",)

# Ratios by model, from the SDK's request types (types/image_to_video_create_params.py
# Gen4Turbo.ratio, types/text_to_image_create_params.py Gen4Image.ratio).
VIDEO_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
IMAGE_RATIOS = (
    "1024:1024", "1080:1080", "1168:880", "1360:768", "1440:1080", "1080:1440", "1808:768",
    "1920:1080", "1080:1920", "2112:912", "1280:720", "720:1280", "720:720", "960:720",
    "720:960", "1680:720",
)  # fmt: skip
# gen4_image costs 5 credits at 720p, 8 at 1080p (github.com/runwayml/skills rw-api-reference);
# the four "1K" sizes (1024:1024 ...) are not priced anywhere found, so they cost 8 here.
IMAGE_720P = ("1280:720", "720:1280", "720:720", "960:720", "720:960", "1680:720")

# Fields each model takes, from the SDK's request types; anything else is refused
# (stricter than Runway may be, so that a misspelt field fails here, not silently).
FIELDS = {
    "gen4_turbo": {
        "model",
        "promptImage",
        "ratio",
        "duration",
        "promptText",
        "seed",
        "contentModeration",
    },
    "gen4_image": {"model", "promptText", "ratio", "referenceImages", "seed", "contentModeration"},
}
MODELS = {"image_to_video": ("gen4_turbo",), "text_to_image": ("gen4_image",)}

# seed 0..4294967295: docs.dev.runwayml.com/api as API mirrors quote it (and ComfyUI's Runway nodes)
SEED_MAX = 4_294_967_295
PROMPT_MAX = 1000  # SDK: "A non-empty string up to 1000 characters (measured in UTF-16 code units)"
DATA_URI_MAX = (
    5 * 1024 * 1024
)  # docs.dev.runwayml.com/assets/inputs: "under 5MB (1024 x 1024 x 5 bytes)"
URL_MAX = 2048  # docs.dev.runwayml.com/assets/inputs: "should not exceed 2048 characters"
# docs.dev.runwayml.com/assets/inputs and rw-api-reference: JPEG, PNG, WebP (no GIF)
IMAGE_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/webp")
TAG = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,15}")  # SDK Gen4ImageReferenceImage.tag: 3-16 characters

_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}


def error(status: int, message: str) -> Response:
    """Runway's error body: "a JSON response with an error member" (api-details/errors)."""
    return Response(status, {"error": message})


@functools.cache
def png(width: int, height: int) -> bytes:
    """A real PNG of one colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 90, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class EmulatedTask:
    id: str
    route: str
    body: dict[str, Any]
    #: status answers still to give before the terminal one
    polls: int
    #: how many of them say THROTTLED
    throttled: int
    #: (failure, failureCode) for a task that fails; None succeeds
    failure: tuple[str, str] | None
    credits: int
    created_at: str
    seen: int = 0

    @property
    def file(self) -> str:
        if self.route == "image_to_video":
            return f"{self.id}.mp4"
        width, height = self.body["ratio"].split(":")
        return f"{self.id}-{width}x{height}.png"


class RunwayEmulator(LoopbackServer):
    """Counts billable creations in :attr:`created`; tasks by id in :attr:`tasks`."""

    def __init__(self, key: str = KEY) -> None:
        super().__init__()
        self.key = key
        self.tasks: dict[str, EmulatedTask] = {}
        #: non-terminal answers the next tasks give before SUCCEEDED or FAILED
        self.polls = 1
        #: of those, how many are THROTTLED (Runway's queue when over the concurrency limit)
        self.throttled = 0
        #: (failure, failureCode) the next tasks end with; None: they succeed
        self.failure: tuple[str, str] | None = None
        #: the root output URLs name (None: this server), to stand in for a CDN elsewhere
        self.files_root: str | None = None
        self._ids = 0
        self._ids_lock = threading.Lock()
        self.route("POST", CREATE, self._create, role="submit")
        self.route("GET", TASK, self._task, role="poll")
        self.route("DELETE", TASK, self._delete)
        self.route("GET", r"/v1/organization", self._organization)
        self.route("GET", FILE, self._file, role="download")

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.tasks.clear()
            self._ids = 0
        self.polls, self.throttled, self.failure, self.files_root = 1, 0, None, None

    @property
    def created(self) -> int:
        """How many tasks were created (each one billable)."""
        with self.lock:
            return len(self.tasks)

    def created_bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [task.body for task in self.tasks.values()]

    # -- the checks every API request passes ------------------------------------------
    def _refuse(self, request: Request) -> Response | None:
        presented = request.headers.get("authorization", "")
        if presented != f"Bearer {self.key}":
            # Runway answers 401 to a missing or wrong key (api-details/errors,
            # errors/troubleshooting: "Authorization: Bearer key_..."). Echoing what was
            # presented is the emulator's own: it lets tests see the key kept out of errors.
            return error(401, f"Invalid API key: {presented!r}")
        version = request.headers.get("x-runway-version")
        if version is None:
            # api-details/versioning: every request names its version in X-Runway-Version.
            return error(400, "X-Runway-Version: the header is required (for example 2024-11-06)")
        if version not in VERSIONS:
            return error(400, f"X-Runway-Version: unsupported API version {version!r}")
        return None

    # -- routes ------------------------------------------------------------------------
    def _create(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        try:
            body = request.json()
        except ValueError:
            return error(400, "The request body is not valid JSON")
        if not isinstance(body, dict):
            return error(400, "The request body must be a JSON object")
        route = match["route"]
        problem = _validate(route, body)
        if problem:
            return error(400, problem)
        with self._ids_lock:
            self._ids += 1
            tid = f"00000000-0000-4000-8000-{self._ids:012d}"
        task = EmulatedTask(
            tid,
            route,
            body,
            self.polls,
            self.throttled,
            self.failure,
            _credits(body),
            dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        with self.lock:
            self.tasks[tid] = task
        return Response(200, {"id": tid})

    def _find(self, request: Request, match: re.Match[str]) -> EmulatedTask | Response:
        if refused := self._refuse(request):
            return refused
        with self.lock:
            task = self.tasks.get(match["tid"])
        # api-details/errors: "a 404 when the referenced resource is not available"
        return task if task is not None else error(404, "Task not found")

    def _task(self, request: Request, match: re.Match[str]) -> Response:
        task = self._find(request, match)
        if isinstance(task, Response):
            return task
        base = {"id": task.id, "createdAt": task.created_at}
        if task.seen < task.polls:
            task.seen += 1
            waiting = {**base, "estimatedCost": {"credits": task.credits}}
            if task.seen <= task.throttled:
                return Response(200, {**waiting, "status": "THROTTLED"})
            if task.seen == task.throttled + 1:
                return Response(200, {**waiting, "status": "PENDING"})
            return Response(200, {**waiting, "status": "RUNNING", "progress": 0.5})
        if task.failure is not None:
            failure, code = task.failure
            # a failed task is refunded (cost.credits 0, types/task_retrieve_response.py) except
            # one refused for its input: rw-api-reference, "SAFETY.INPUT.* ... not refundable"
            charged = task.credits if code.startswith("SAFETY.INPUT") else 0
            return Response(
                200,
                {
                    **base,
                    "status": "FAILED",
                    "failure": failure,
                    "failureCode": code,
                    "cost": {"credits": charged},
                },
            )
        url = f"{self.files_root or self.url}/files/{task.file}"
        return Response(
            200, {**base, "status": "SUCCEEDED", "output": [url], "cost": {"credits": task.credits}}
        )

    def _delete(self, request: Request, match: re.Match[str]) -> Response:
        task = self._find(request, match)
        if isinstance(task, Response):
            return task
        with self.lock:
            self.tasks.pop(task.id, None)
        return Response(204)

    def _organization(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        return Response(
            200,
            {
                "creditBalance": 1000,
                "tier": {"maxMonthlyCreditSpend": 10000, "models": {}},
                "usage": {"models": {}},
            },
        )

    def _file(self, request: Request, match: re.Match[str]) -> Response:
        if match["ext"] == "mp4":
            return Response(200, real_mp4(), {"Content-Type": "video/mp4"})
        size = re.search(r"-(\d+)x(\d+)\Z", match["name"])
        if size is None:
            return Response(404, b"no such file")
        return Response(200, png(int(size[1]), int(size[2])), {"Content-Type": "image/png"})


# -- the body rules, per model ------------------------------------------------------------
def _validate(route: str, body: dict[str, Any]) -> str | None:
    """Why Runway would answer 400 to this body, or None."""
    model = body.get("model")
    if model not in MODELS[route]:
        # the SDK lists many more models; this emulator serves the plugin's two
        expected = ", ".join(MODELS[route])
        return f"model: {model!r} is not a model of /v1/{route} here (expected {expected})"
    unknown = sorted(set(body) - FIELDS[model])
    if unknown:
        return f"{unknown[0]}: unrecognized field"
    checks: list[tuple[str, Callable[[Any], str | None], bool]]
    if model == "gen4_turbo":
        checks = [
            ("promptImage", _prompt_image, True),
            ("ratio", _choice(VIDEO_RATIOS), True),
            # Runway's API reference: 2-10 s (rw-api-reference "Video duration: 2-10 seconds")
            ("duration", _integer(2, 10), False),
            ("promptText", _prompt, False),
            ("seed", _integer(0, SEED_MAX), False),
            ("contentModeration", _moderation, False),
        ]
    else:
        checks = [
            ("promptText", _prompt, True),
            ("ratio", _choice(IMAGE_RATIOS), True),
            ("referenceImages", _references, False),
            ("seed", _integer(0, SEED_MAX), False),
            ("contentModeration", _moderation, False),
        ]
    for field, check, required in checks:
        if field not in body:
            if required:
                return f"{field}: Required"
            continue
        problem = check(body[field])
        if problem:
            return f"{field}: {problem}"
    return None


def _credits(body: dict[str, Any]) -> int:
    if body["model"] == "gen4_turbo":
        return 5 * int(body.get("duration", 10))  # the API reference: duration defaults to 10
    return 5 if body["ratio"] in IMAGE_720P else 8


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return (
            None
            if value in options
            else f"Invalid enum value. Expected {' | '.join(options)}, received {value!r}"
        )

    return check


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"Expected integer, received {type(value).__name__}"
        if not low <= value <= high:
            return f"Number must be between {low} and {high}"
        return None

    return check


def _prompt(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"Expected string, received {type(value).__name__}"
    if not value:
        return "String must contain at least 1 character(s)"
    if len(value.encode("utf-16-le")) // 2 > PROMPT_MAX:
        return f"String must contain at most {PROMPT_MAX} character(s)"
    return None


def _moderation(value: Any) -> str | None:
    if not isinstance(value, dict) or set(value) - {"publicFigureThreshold"}:
        return "Expected an object with publicFigureThreshold only"
    if value.get("publicFigureThreshold", "auto") not in ("auto", "low"):
        return "publicFigureThreshold must be auto or low"
    return None


def _prompt_image(value: Any) -> str | None:
    # SDK Gen4Turbo.prompt_image: a URI, or [{"uri", "position": "first"}]
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("position") != "first":
            return "gen4_turbo takes one image, at position first"
        value = value[0].get("uri")
    return _asset(value)


def _references(value: Any) -> str | None:
    # SDK Gen4Image.reference_images: "An array of up to three images", each {uri, tag?}
    if not isinstance(value, list):
        return f"Expected array, received {type(value).__name__}"
    if len(value) > 3:
        return "Array must contain at most 3 element(s)"
    for item in value:
        if not isinstance(item, dict) or "uri" not in item or set(item) - {"uri", "tag"}:
            return "each reference image is {uri, tag?}"
        if "tag" in item and not (isinstance(item["tag"], str) and TAG.fullmatch(item["tag"])):
            return (
                "tag must be 3-16 characters, start with a letter, and use only letters, "
                "digits and underscores"
            )
        if problem := _asset(item["uri"]):
            return problem
    return None


def _asset(value: Any) -> str | None:
    """An image input: a data URI, an HTTPS URL on a domain, or a runway:// upload."""
    if not isinstance(value, str):
        return f"Expected string, received {type(value).__name__}"
    if value.startswith("runway://"):
        return None
    if value.startswith("data:"):
        return _data_uri(value)
    # errors/troubleshooting: "Only HTTPS URLs are allowed", "URLs must be hosted on a domain"
    parts = urlsplit(value)
    if parts.scheme != "https":
        return "Only HTTPS URLs are allowed."
    if len(value) > URL_MAX:
        return f"The URL is longer than {URL_MAX} characters."
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None if parts.hostname else "Invalid URL"
    return "URLs must be hosted on a domain."


def _data_uri(value: str) -> str | None:
    # docs.dev.runwayml.com/assets/inputs and errors/troubleshooting
    if len(value) >= DATA_URI_MAX:
        return "The data URI is larger than 5MB."
    found = re.fullmatch(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", value, re.DOTALL)
    if found is None:
        return "Invalid data URI."
    if found[1] not in IMAGE_TYPES:
        return "Unsupported asset type."
    try:
        data = base64.b64decode(found[2], validate=True)
    except (binascii.Error, ValueError):
        return "Invalid data URI."
    is_webp = data[8:12] == b"WEBP"
    if not is_webp and not any(data.startswith(magic) for magic in _MAGIC):
        return "The asset could not be read as an image."
    return None
