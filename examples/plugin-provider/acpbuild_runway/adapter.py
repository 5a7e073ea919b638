"""Runway video and image generation, through the official ``runwayml`` SDK.

Every generation is a Runway task: input images travel inside the request as
data URIs (no upload step), the task is created (the one billable request), its
id is written to the journal *before* waiting, ``GET /v1/tasks/{id}`` is polled
until it SUCCEEDED or FAILED, and the file its output URL names is streamed to
``job.output`` with :func:`~acpbuild.provider.wire.download`. A run killed while
polling resumes from the journal's ``resume_id`` and never creates a task twice.

The SDK's own retries are off (``max_retries=0``): each request is retried by
:func:`~acpbuild.provider.wire.with_retries` only, which never repeats a create
that may have reached Runway. The key goes to ``RUNWAYML_BASE_URL`` or Runway's
API host and nowhere else; output files are signed CDN URLs, fetched without it.
The catalogue lives in :mod:`acpbuild_runway.models`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from acpbuild.provider import (
    BadResponse,
    Job,
    Journal,
    MissingCredentials,
    Model,
    Outcome,
    PaymentRequired,
    Problem,
    Provider,
    ProviderError,
    ProviderTimeout,
    RequestRejected,
    ServiceUnavailable,
    redact,
)
from acpbuild.provider.wire import (
    Origins,
    RetryPolicy,
    common_status_error,
    common_transport_error,
    download,
    image_mime,
    max_download_bytes,
    with_retries,
)

from acpbuild_runway.models import (
    CATALOGUE,
    IMAGE_RATIOS,
    PROMPT_MAX,
    REFERENCES_MAX,
    SPECS,
    TAG_PATTERN,
    Spec,
)

if TYPE_CHECKING:
    from runwayml import RunwayML

T = TypeVar("T")

KEY_VAR = "RUNWAYML_API_SECRET"
#: the variable the SDK itself reads for its endpoint
URL_VAR = "RUNWAYML_BASE_URL"
DEFAULT_URL = "https://api.dev.runwayml.com"
#: the only host, besides RUNWAYML_BASE_URL, that the key is sent to
OFFICIAL_HOSTS = ("api.dev.runwayml.com",)
#: the API version this adapter speaks (docs.dev.runwayml.com/api-details/versioning)
API_VERSION = "2024-11-06"
#: Runway asks for no more than one status request per task every five seconds
_DEFAULT_POLL_S = 5.0
_REQUEST_TIMEOUT_S = 120.0
_CONNECT_TIMEOUT_S = 10.0
_DOWNLOAD_TIMEOUT_S = 300.0
#: a data URI must be under 5 MB, base64 and header included (docs.dev.runwayml.com/assets/inputs)
DATA_URI_MAX = 5 * 1024 * 1024
_INPUT_TYPES = ("image/png", "image/jpeg", "image/webp")
_VIDEO_SUFFIXES = (".mp4", ".mov")
_WAITING = ("PENDING", "THROTTLED", "RUNNING")
# A task id is a UUID; anything else would be pasted into the poll URL's path.
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAYBE_CREATED = "; the task may have been created, so it was not submitted again"


class RunwayProvider(Provider):
    """Video and images on Runway. See the module docstring."""

    name = "runway"
    version = "1"
    api_version = "1.0"
    prices = "prices.toml"
    key_vars = (KEY_VAR,)
    url_var = URL_VAR
    setting_vars = (
        ("ACPBUILD_POLL_INTERVAL_S", "seconds between status requests for a task (default 5)"),
    )
    # Runway's first usage tier runs 1-2 tasks at once and queues the rest as THROTTLED.
    concurrency = 2

    def catalogue(self) -> Mapping[str, Model]:
        return CATALOGUE

    @classmethod
    def check(
        cls, kind: str, model: Model, params: Mapping[str, Any], suffix: str
    ) -> list[Problem]:
        """What Runway refuses that the catalogue cannot say: prompt length, references, tags."""
        spec = SPECS.get(model.name)
        if spec is None:
            return []
        problems: list[Problem] = []
        if spec.output == "video" and suffix.lower() not in _VIDEO_SUFFIXES:
            problems.append(
                Problem("output", "Runway returns MP4 video; name the output .mp4 (or .mov)")
            )
        prompt = params.get("prompt")
        if isinstance(prompt, str) and _utf16_len(prompt) > PROMPT_MAX:
            problems.append(
                Problem(
                    "prompt",
                    f"is {_utf16_len(prompt)} characters; Runway takes at most {PROMPT_MAX}",
                )
            )
        references = params.get("references")
        tags = params.get("reference_tags")
        if isinstance(references, list) and len(references) > REFERENCES_MAX:
            problems.append(
                Problem(
                    "references", f"{len(references)} images; Runway takes at most {REFERENCES_MAX}"
                )
            )
        if isinstance(tags, list):
            count = len(references) if isinstance(references, list) else 0
            if len(tags) > count:
                problems.append(
                    Problem(
                        "reference_tags",
                        f"{len(tags)} tags for {count} reference images; one tag per image at most",
                    )
                )
            for tag in tags:
                if isinstance(tag, str) and not re.fullmatch(TAG_PATTERN, tag):
                    problems.append(
                        Problem(
                            "reference_tags",
                            f"{tag!r} is not a tag Runway takes: 3-16 letters, digits or _, "
                            "starting with a letter",
                        )
                    )
                elif not isinstance(tag, str):
                    problems.append(Problem("reference_tags", f"{tag!r} is not a string"))
        return problems

    # -- generation -----------------------------------------------------------
    def generate(self, job: Job, journal: Journal) -> Outcome:
        """Create the task (or resume it), wait for it, and download its one output."""
        deadline = time.monotonic() + job.timeout_s
        spec = SPECS[job.model.name]
        self.refuse_unfit(job)
        policy = RetryPolicy.from_env(self.env)
        with self._client(job.timeout_s) as client:
            task_id = journal.resume_id
            if task_id:
                _check_task_id(task_id, provider=self.name, sent=False)
            else:
                arguments = self._arguments(job, spec)
                create = getattr(client, spec.route).create
                created = with_retries(
                    lambda: self._call("create", lambda: create(**arguments)),
                    policy=policy,
                    billable=True,
                )
                task_id = str(getattr(created, "id", "") or "")
                _check_task_id(task_id, provider=self.name, sent=True)
                journal.submitted(task_id)
            task = self._wait(client, task_id, deadline, policy)
        url = _output_url(task, task_id, spec, provider=self.name)
        size = with_retries(
            lambda: download(
                url,
                job.output,
                provider=self.name,
                expect=spec.output,
                timeout_s=min(job.timeout_s, _DOWNLOAD_TIMEOUT_S),
                max_bytes=max_download_bytes(spec.output, self.env),
            ),  # a signed CDN URL: fetched without the key
            policy=policy,
            billable=False,
        )
        meta: dict[str, Any] = {"model": job.model.endpoints[job.kind], "bytes": size}
        if spec.output == "image":
            meta["ratio"] = _image_ratio(job.params)
            meta["width"], meta["height"] = _fit_image(job.output, provider=self.name)
            usage: dict[str, float] = {"images": 1}
        else:
            meta["ratio"] = job.params.get("ratio")
            usage = {"seconds": float(job.params["duration_s"])}
        credits = _credits(task)
        if credits is not None:
            meta["credits"] = credits
        # Runway reports what it charged, in credits at $0.01 each.
        cost = None if credits is None else round(credits * 0.01, 4)
        return Outcome(request_id=task_id, actual_cost=cost, usage=usage, meta=meta)

    def _arguments(self, job: Job, spec: Spec) -> dict[str, Any]:
        """The SDK's keyword arguments for the create (it sends them as camelCase JSON)."""
        params = job.params
        arguments: dict[str, Any] = {"model": job.model.endpoints[job.kind]}
        if spec.route == "image_to_video":
            arguments["prompt_image"] = self._data_uri(Path(params["image"]), "image")
            arguments["ratio"] = params["ratio"]
            arguments["duration"] = int(params["duration_s"])
        else:
            arguments["ratio"] = _image_ratio(params)
            references = params.get("references") or []
            tags = params.get("reference_tags") or []
            if references:
                arguments["reference_images"] = [
                    {
                        "uri": self._data_uri(Path(path), "references"),
                        **({"tag": tags[i]} if i < len(tags) else {}),
                    }
                    for i, path in enumerate(references)
                ]
        if params.get("prompt"):
            arguments["prompt_text"] = params["prompt"]
        if params.get("seed") is not None:
            arguments["seed"] = int(params["seed"])
        return arguments

    def _data_uri(self, path: Path, param: str) -> str:
        """``path`` as a base64 data URI, refused before sending when Runway would refuse it."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RequestRejected(
                f"{param}: cannot read {str(path)!r} ({exc.strerror or exc})",
                provider=self.name,
                sent=False,
            ) from exc
        mime = image_mime(data)
        if mime not in _INPUT_TYPES:
            raise RequestRejected(
                f"{param}: {path.name} is not a PNG, JPEG or WebP image, which Runway requires",
                provider=self.name,
                sent=False,
            )
        uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        if len(uri) >= DATA_URI_MAX:
            raise RequestRejected(
                f"{param}: {path.name} ({len(data) / 2**20:.1f} MB) makes a "
                f"{len(uri) / 2**20:.1f} MB data URI; Runway takes under 5 MB, about 3.7 MB "
                "of image: shrink or recompress it",
                provider=self.name,
                sent=False,
            )
        return uri

    def _wait(self, client: RunwayML, task_id: str, deadline: float, policy: RetryPolicy) -> Any:
        """Poll the task until it SUCCEEDED (returned), failed (raised) or the deadline passed."""
        interval = float(self.env.get("ACPBUILD_POLL_INTERVAL_S", _DEFAULT_POLL_S))
        while True:
            task = with_retries(
                lambda: self._call("poll", lambda: client.tasks.retrieve(task_id), task_id),
                policy=policy,
                billable=False,
            )
            status = getattr(task, "status", None)
            if status == "SUCCEEDED":
                return task
            if status == "FAILED":
                raise self._task_failed(task_id, task)
            if status == "CANCELLED":
                raise RequestRejected(
                    f"task {task_id} was cancelled at Runway before it finished",
                    provider=self.name,
                    sent=_credits(task) != 0,
                )
            if status not in _WAITING:
                raise BadResponse(
                    f"task {task_id} has a status Runway does not document: {str(status)[:40]!r}",
                    provider=self.name,
                    job_failed=False,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderTimeout(
                    f"task {task_id} was still {status.lower()} when the step's time limit ran "
                    "out; it keeps running at Runway and the next run resumes polling it "
                    "without paying again",
                    provider=self.name,
                )
            time.sleep(min(interval, remaining))

    def _task_failed(self, task_id: str, task: Any) -> ProviderError:
        """A FAILED task as an error; codes from docs.dev.runwayml.com/errors/task-failures."""
        code = str(getattr(task, "failure_code", None) or "")
        said = redact(str(getattr(task, "failure", None) or "no reason given")[:500], self.env)
        if code:
            said = f"{said} ({code})"
        charged = _credits(task) != 0
        if "SAFETY" in code:
            return RequestRejected(
                f"task {task_id} was refused by Runway's content moderation: {said}; "
                "change the prompt or image",
                provider=self.name,
                sent=charged,
            )
        if code.startswith("INTERNAL"):
            # Runway's own failure: a new task may well succeed, so the step may be run again.
            return ServiceUnavailable(
                f"task {task_id} failed inside Runway: {said}; try again",
                provider=self.name,
                sent=charged,
                job_failed=True,
            )
        return RequestRejected(f"task {task_id} failed: {said}", provider=self.name, sent=charged)

    # -- ping -----------------------------------------------------------------
    def ping(self) -> str:
        """Ask for the organisation's credit balance: authenticated and free."""
        policy = RetryPolicy.from_env(self.env)
        with self._client(30.0) as client:
            org = with_retries(
                lambda: self._call("ping", client.organization.retrieve),
                policy=policy,
                billable=False,
            )
        balance = getattr(org, "credit_balance", None)
        return f"Runway accepted the key ({balance if balance is not None else '?'} credits left)"

    # -- plumbing -------------------------------------------------------------
    def origins(self) -> Origins:
        """Where the key may go: RUNWAYML_BASE_URL or Runway's API host."""
        return Origins(self.base_url(), OFFICIAL_HOSTS)

    @contextlib.contextmanager
    def _client(self, timeout_s: float) -> Iterator[RunwayML]:
        """An SDK client with our key, endpoint and version, its retries off, closed afterwards."""
        key = self.api_key()
        if not key:
            raise MissingCredentials(
                f"no API key: set {KEY_VAR} in the environment or in .env "
                "(create one at dev.runwayml.com)",
                provider=self.name,
                sent=False,
            )
        import httpx
        from runwayml import DefaultHttpxClient, RunwayML

        # httpx drops Authorization on a redirect to another host but would still post
        # the request there; the guard refuses any request outside the trusted origins.
        guard = self.origins().guard(provider=self.name, what="redirect")
        client = RunwayML(
            api_key=key,  # never the SDK's own lookup in os.environ
            base_url=self.base_url() or DEFAULT_URL,
            runway_version=API_VERSION,
            max_retries=0,  # wire.with_retries is the only retry policy
            timeout=httpx.Timeout(
                min(timeout_s, _REQUEST_TIMEOUT_S), connect=min(timeout_s, _CONNECT_TIMEOUT_S)
            ),
            http_client=DefaultHttpxClient(event_hooks={"request": [guard]}),
        )
        with client:
            yield client

    def _call(self, stage: str, call: Callable[[], T], task_id: str | None = None) -> T:
        """Run one SDK call, translating whatever it raises (``stage``: create, poll or ping)."""
        import runwayml

        try:
            return call()
        except runwayml.APIStatusError as exc:
            error = self._status_error(stage, exc, task_id)
            self._scrub(exc)
            raise error from exc
        except runwayml.APIConnectionError as exc:
            raise self._transport_error(stage, exc) from exc
        except (runwayml.APIError, KeyError, ValueError, TypeError) as exc:
            # A malformed answer. After a create the task may exist: not repeated.
            raise BadResponse(
                f"could not read Runway's answer to the {stage} ({type(exc).__name__})",
                provider=self.name,
                sent=stage == "create",
                job_failed=False,
            ) from exc

    def _status_error(self, stage: str, exc: Any, task_id: str | None) -> ProviderError:
        """Runway's HTTP error (docs.dev.runwayml.com/api-details/errors) as acpbuild's."""
        p = self.name
        status: int = exc.status_code
        headers: Mapping[str, str] = exc.response.headers
        message = _error_message(exc.body)
        said = redact(f"HTTP {status}" + (f": {message}" if message else ""), self.env)
        which = f"task {task_id}: " if task_id else ""
        billable = stage == "create"
        lowered = message.lower()
        if status == 402 or (
            "credits" in lowered and ("enough" in lowered or "insufficient" in lowered)
        ):
            return PaymentRequired(
                f"out of credits ({said}); buy more at dev.runwayml.com",
                provider=p,
                status=status,
                sent=False,
            )
        common = common_status_error(
            status,
            said,
            provider=p,
            service="Runway",
            key_var=KEY_VAR,
            headers=headers,
            billable=billable,
            timeout_text=f"{which}Runway timed out",
        )
        if common is not None:
            return common
        if status in (502, 503):
            # Runway answers these when it sheds load, before taking the request: safe to repeat.
            return ServiceUnavailable(
                f"{which}Runway is overloaded ({said}); try again later",
                provider=p,
                status=status,
                sent=False,
            )
        if status >= 500:
            maybe = _MAYBE_CREATED if billable else ""
            return ServiceUnavailable(
                f"{which}Runway failed ({said}); try again later{maybe}",
                provider=p,
                status=status,
                sent=billable,
            )
        if status == 404 and task_id:
            return RequestRejected(
                f"{which}Runway does not know this task ({said}); it was deleted or has expired",
                provider=p,
                status=status,
                sent=False,
            )
        where = f"; check {URL_VAR}" if status in (404, 405) else ""
        return RequestRejected(
            f"{which}the request was rejected ({said}){where}",
            provider=p,
            status=status,
            sent=False,
        )

    def _transport_error(self, stage: str, exc: Exception) -> ProviderError:
        cause = exc.__cause__
        if isinstance(cause, ProviderError):  # our guard refused a redirect
            return cause
        # the SDK wraps httpx's error; after a create was sent, the task may exist: not repeated
        return common_transport_error(
            cause or exc, provider=self.name, service="Runway", url_var=URL_VAR,
            billable=stage == "create", stage=stage, maybe=_MAYBE_CREATED,
        )

    def _scrub(self, exc: Any) -> None:
        """Keep the key out of the chained SDK exception's text too."""
        key = self.api_key()
        if not key:
            return
        body = json.dumps(exc.body, default=str)
        if key in str(exc) or key in body:
            exc.args = (redact(str(exc), self.env),)
            exc.message = redact(str(exc.message), self.env)
            exc.body = json.loads(redact(body, self.env))


# -- helpers ------------------------------------------------------------------
def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _image_ratio(params: Mapping[str, Any]) -> str:
    return IMAGE_RATIOS[str(params.get("resolution") or "1080p")][
        str(params.get("ratio") or "16:9")
    ]


def _check_task_id(task_id: str, *, provider: str, sent: bool) -> None:
    if not _TASK_ID.fullmatch(task_id):
        raise BadResponse(
            f"Runway answered with a task id that is not one ({task_id[:40]!r})",
            provider=provider,
            sent=sent,
            job_failed=True,
        )


def _credits(task: Any) -> int | None:
    """What a finished task cost in credits, when Runway says."""
    cost = getattr(task, "cost", None)
    credits = getattr(cost, "credits", None) if cost is not None else None
    if isinstance(cost, Mapping):
        credits = cost.get("credits")
    return credits if isinstance(credits, int) and not isinstance(credits, bool) else None


def _output_url(task: Any, task_id: str, spec: Spec, *, provider: str) -> str:
    output = getattr(task, "output", None)
    url = output[0] if isinstance(output, list) and output else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise BadResponse(
            f"task {task_id} SUCCEEDED without a downloadable {spec.output} URL",
            provider=provider,
            job_failed=True,
        )
    return url


def _error_message(body: Any) -> str:
    """Runway's error body (``{"error": "..."}``, maybe with ``issues``) as one line."""
    if isinstance(body, Mapping):
        said = body.get("error") or body.get("message") or ""
        if isinstance(said, Mapping):  # not Runway's shape, but a proxy's may be
            said = said.get("message") or said
        text = str(said)
        issues = body.get("issues")
        if isinstance(issues, list):
            parts = []
            for issue in issues:
                if isinstance(issue, Mapping):
                    path = ".".join(str(x) for x in issue.get("path") or [])
                    said = str(issue.get("message") or "")
                    parts.append(f"{path}: {said}" if path else said)
            if parts:
                text = f"{text} ({'; '.join(parts)})" if text else "; ".join(parts)
        return " ".join(text.split())[:500]
    return " ".join(str(body or "").split())[:300]


_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _fit_image(path: Path, *, provider: str) -> tuple[int, int]:
    """Re-encode the image when its format does not fit its suffix (Runway answers PNG or JPEG).

    Returns its size in pixels. An image that cannot be read or converted is
    removed, so no half-made output is left.
    """
    from PIL import Image, UnidentifiedImageError

    wanted = _IMAGE_FORMATS.get(path.suffix.lower())
    part = path.with_name(path.name + ".part")
    try:
        with Image.open(path) as image:
            size = image.size
            if wanted is None or image.format == wanted:
                return size
            converted = image.convert("RGB") if wanted == "JPEG" else image
            converted.save(part, format=wanted)
        os.replace(part, path)
    except (OSError, UnidentifiedImageError) as exc:
        part.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise BadResponse(
            f"the image could not be converted to {wanted}: {exc}", provider=provider
        ) from exc
    return size
