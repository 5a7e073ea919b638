"""fal.ai image and video generation, through the official ``fal-client`` SDK.

Every step goes through fal's queue: local input files are uploaded to fal's
CDN (free), the job is submitted (the one billable request), its request id is
written to the journal *before* waiting, the status is polled until
COMPLETED, the result JSON is fetched and the image or video it points at is
streamed to ``job.output`` with :func:`~acpbuild.provider.wire.download`.
A run killed while polling resumes from the journal's ``resume_id`` and never
submits twice. The catalogue lives in :mod:`acpbuild.providers.fal.models`.

``ACPBUILD_FAL_URL`` sends every request to one HTTP(S) root instead of fal's
hosts; see :func:`_configure_sdk` for the path prefixes a gateway must serve.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from acpbuild.provider import (
    FILE_TYPES,
    AcpbuildError,
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
    max_download_bytes,
    with_retries,
)
from acpbuild.providers.fal.models import CATALOGUE, SPECS, Spec

if TYPE_CHECKING:
    from fal_client import SyncClient, SyncRequestHandle

T = TypeVar("T")

KEY_VAR = "FAL_KEY"
_DEFAULT_POLL_S = 2.0
_SUBMIT_TIMEOUT_S = 120.0
_DOWNLOAD_TIMEOUT_S = 300.0
_VIDEO_SUFFIXES = (".mp4", ".mov")
_MAYBE_QUEUED = "; the job may have been queued, so it was not submitted again"
# fal's error_type for a prompt or image refused by a content checker.
_POLICY = "content_policy_violation"
# error_type values fal gives to failures of its own infrastructure (not billed).
_SERVER_ERROR_TYPES = frozenset(
    {"request_timeout", "runner_disconnected", "runner_error", "internal_server_error"}
)

# -- the SDK's module globals ---------------------------------------------------
_URL_GLOBALS = ("RUN_URL_FORMAT", "QUEUE_URL_FORMAT", "REST_URL", "CDN_URL")
# fal's own API hosts, and the fallback domain fal-client retries a failed connection on:
# the only places, besides ACPBUILD_FAL_URL, that FAL_KEY is sent to.
OFFICIAL_HOSTS = ("fal.run", "queue.fal.run", "rest.fal.ai", "falrun.com", "queue.falrun.com")
_sdk_lock = threading.Lock()
_sdk_defaults: dict[str, str] = {}


def _configure_sdk(base_url: str | None) -> None:
    """Point fal-client at ``base_url`` (or back at fal) and switch its retries off.

    fal-client builds every URL from module globals, so the override sets them
    (PROVIDERS.md "Base-URL override", method A). A gateway or emulator at
    ``ACPBUILD_FAL_URL`` must serve four path prefixes:
    ``{url}/run/{app}`` (sync runs, unused here), ``{url}/queue/{app}`` (submit,
    status, result, cancel), ``{url}/rest/storage/auth/token`` (CDN upload
    token) and ``{url}/cdn/files/upload`` (uploads). Status and result URLs are
    the ones the submit answer names, so they must point back at the gateway.
    The globals are process-wide: every fal step of a run shares one endpoint.

    Retries: the SDK wraps each request in its own loop (10 attempts; it
    repeats 408/409/429, nginx 502-504 and every transport error, including a
    read timeout on the billable submit). Setting its documented module knob
    ``MAX_ATTEMPTS`` to 1 is the least invasive way to get exactly one policy,
    ours (:func:`~acpbuild.provider.wire.with_retries`, which knows what may
    have been billed): no SDK function is replaced. It is set once and never
    restored, because a save-and-restore around each call would race between
    steps running in parallel threads; acpbuild is the SDK's only user in the
    process. The SDK's fallback from fal.run to falrun.com only follows a
    *failed connection*, when nothing was sent, so it is left alone.
    """
    import fal_client.client as sdk

    with _sdk_lock:
        if not _sdk_defaults:
            _sdk_defaults.update({name: getattr(sdk, name) for name in _URL_GLOBALS})
        if base_url:
            root = base_url.rstrip("/")
            values = {
                "RUN_URL_FORMAT": f"{root}/run/",
                "QUEUE_URL_FORMAT": f"{root}/queue/",
                "REST_URL": f"{root}/rest",
                "CDN_URL": f"{root}/cdn",
            }
        else:
            values = dict(_sdk_defaults)
        for name, value in values.items():
            setattr(sdk, name, value)
        sdk.MAX_ATTEMPTS = 1


class FalProvider(Provider):
    """Images and video on fal.ai. See the module docstring."""

    name = "fal"
    version = "1"
    api_version = "1.0"
    key_vars = (KEY_VAR,)
    url_var = "ACPBUILD_FAL_URL"
    concurrency = 8

    def catalogue(self) -> Mapping[str, Model]:
        return CATALOGUE

    # -- generation -----------------------------------------------------------
    def generate(self, job: Job, journal: Journal) -> Outcome:
        """Run ``job`` on fal's queue (or resume it) and download its one output."""
        deadline = time.monotonic() + job.timeout_s
        spec = SPECS[job.model.name]
        endpoint = job.model.endpoints[job.kind]
        self.refuse_unfit(job)
        policy = RetryPolicy.from_env(self.env)
        with self._client(job.timeout_s) as client:
            request_id = journal.resume_id
            if request_id:
                handle = client.get_handle(endpoint, request_id)
            else:
                arguments = self._arguments(client, job, spec, policy)
                handle = with_retries(
                    lambda: self._call("submit", lambda: client.submit(endpoint, arguments)),
                    policy=policy,
                    billable=True,
                )
                request_id = handle.request_id
                journal.submitted(request_id)
            self._refuse_foreign_urls(handle)
            result = self._wait(handle, deadline, policy)
            media = self._media(result, spec, request_id)
            url = str(media.get("url") or "")
            if not url.startswith(("http://", "https://")):
                raise BadResponse(
                    f"request {request_id}: the result has no downloadable {spec.output} URL",
                    provider=self.name,
                    job_failed=True,
                )
            size = with_retries(
                lambda: download(
                    url,
                    job.output,
                    provider=self.name,
                    expect=spec.output,
                    timeout_s=min(job.timeout_s, _DOWNLOAD_TIMEOUT_S),
                    max_bytes=max_download_bytes(spec.output, self.env),
                ),  # a result file lives on fal's CDN: fetched without the key
                policy=policy,
                billable=False,
            )
        meta: dict[str, Any] = {"endpoint": endpoint, "bytes": size}
        if spec.output == "image":
            usage = self._image_usage(job.output, media, meta)
        else:
            usage = _video_usage(job, media)
            if "generate_audio" in job.params:
                meta["generate_audio"] = bool(job.params["generate_audio"])
        if isinstance(result.get("seed"), int):
            meta["seed"] = result["seed"]
        return Outcome(request_id=request_id, usage=usage, meta=meta)

    def origins(self) -> Origins:
        """Where FAL_KEY may go: ``ACPBUILD_FAL_URL`` or fal's own hosts."""
        return Origins(self.base_url(), OFFICIAL_HOSTS)

    def _refuse_foreign_urls(self, handle: SyncRequestHandle) -> None:
        """Refuse a submit answer whose status, result or cancel URL is on another host.

        fal-client follows those URLs with ``Authorization: Key <FAL_KEY>``, so one
        naming a stranger's host would hand it the key. The job is queued (and
        billed) already; the error keeps it resumable, and a resumed job's URLs
        are rebuilt from the configured queue host, not taken from an answer.
        """
        origins = self.origins()
        for what, url in (
            ("status URL", handle.status_url),
            ("result URL", handle.response_url),
            ("cancel URL", handle.cancel_url),
        ):
            if not origins.trusts(url):
                raise origins.refusal(url, provider=self.name, what=f"{what} of request {handle.request_id}")

    @classmethod
    def check(
        cls, kind: str, model: Model, params: Mapping[str, Any], suffix: str
    ) -> list[Problem]:
        """fal returns MP4 video, and some endpoints bound the length of a prompt.

        A video step must write .mp4 (or .mov, which reads MP4). Text outside the
        endpoint's length limits would be queued and then refused by fal with a
        422, so it is refused here first.
        """
        spec = SPECS.get(model.name)
        if spec is None:
            return []
        if spec.output == "video" and suffix.lower() not in _VIDEO_SUFFIXES:
            return [Problem("output", "fal returns MP4 video; name the output .mp4 (or .mov)")]
        problems = []
        for name, (fewest, most) in spec.lengths.get(kind, {}).items():
            text = params.get(name)
            if isinstance(text, str) and not fewest <= len(text) <= most:
                span = f"at most {most}" if fewest == 0 else f"{fewest} to {most}"
                problems.append(
                    Problem(
                        name,
                        f"fal's {model.endpoints[kind]} takes {span} characters; "
                        f"this one has {len(text)}",
                    )
                )
        return problems

    def _arguments(
        self, client: SyncClient, job: Job, spec: Spec, policy: RetryPolicy
    ) -> dict[str, Any]:
        """fal's JSON arguments from the step's parameters; input files are uploaded first."""
        params = job.model.params_for(job.kind)
        arguments: dict[str, Any] = {}
        for name, value in job.params.items():
            param = params.get(name)
            if value is None or param is None:
                continue
            if param.type in FILE_TYPES:
                arguments[f"{name}_url"] = self._upload(client, Path(value), policy)
            elif name == "duration_s":
                arguments["duration"] = _duration(value, spec)
            else:
                arguments[spec.rename.get(name, name)] = value
        if spec.num_images:
            arguments["num_images"] = 1
        if spec.output_format:
            suffix = job.output.suffix.lower()
            arguments["output_format"] = "png" if suffix in (".png", ".webp") else "jpeg"
        return arguments

    def _upload(self, client: SyncClient, path: Path, policy: RetryPolicy) -> str:
        if not path.is_file():
            raise RequestRejected(
                f"input file {str(path)!r} does not exist", provider=self.name, sent=False
            )
        # No fallback repository: a failed upload is retried by our policy only.
        return with_retries(
            lambda: self._call("upload", lambda: client.upload_file(path, fallback_repository=[])),
            policy=policy,
            billable=False,
        )

    def _wait(
        self, handle: SyncRequestHandle, deadline: float, policy: RetryPolicy
    ) -> dict[str, Any]:
        """Poll until COMPLETED (or the deadline), then fetch the result JSON."""
        from fal_client import Completed, Queued

        interval = float(self.env.get("ACPBUILD_POLL_INTERVAL_S", _DEFAULT_POLL_S))
        rid = handle.request_id
        while True:
            status = with_retries(
                lambda: self._call("poll", lambda: handle.status(with_logs=False), rid),
                policy=policy,
                billable=False,
            )
            if isinstance(status, Completed):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = "queued" if isinstance(status, Queued) else "running"
                raise ProviderTimeout(
                    f"request {rid} was still {state} when the step's "
                    "time limit ran out; it keeps running at fal and the next run resumes "
                    "polling it without paying again",
                    provider=self.name,
                )
            time.sleep(min(interval, remaining))
        if status.error or status.error_type:
            # The result GET of a failed request answers with fal's HTTP error and
            # message; it is asked once, since asking again cannot change it.
            try:
                self._call("job", handle.get, rid)
            except ProviderError as exc:
                exc.job_failed = True  # whatever the GET said, the job is over
                raise
            raise self._job_failed(rid, status.error, status.error_type)
        result = with_retries(
            lambda: self._call("result", handle.get, rid), policy=policy, billable=False
        )
        if not isinstance(result, dict):
            raise BadResponse(f"request {rid}: the result is not a JSON object", provider=self.name)
        return result

    def _media(self, result: dict[str, Any], spec: Spec, rid: str) -> dict[str, Any]:
        """The image or video object of a result."""
        if spec.output == "image":
            images = result.get("images")
            media = images[0] if isinstance(images, list) and images else result.get("image")
            nsfw = result.get("has_nsfw_concepts")
            if isinstance(nsfw, list) and nsfw and nsfw[0]:
                # fal's safety checker answers with a blank image instead of an error.
                raise RequestRejected(
                    f"request {rid} was refused by fal's content policy: the safety checker "
                    "flagged the image and returned a blank one; change the prompt",
                    provider=self.name,
                )
        else:
            media = result.get("video")
        if not isinstance(media, dict):
            raise BadResponse(
                f"request {rid}: the result holds no {spec.output} (keys: "
                f"{', '.join(sorted(result)) or 'none'})",
                provider=self.name,
                job_failed=True,
            )
        return media

    def _image_usage(
        self, path: Path, media: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, float]:
        size = _fit_image(path)
        width, height = media.get("width"), media.get("height")
        if not (isinstance(width, int) and isinstance(height, int)) and size:
            width, height = size
        usage: dict[str, float] = {"images": 1}
        if isinstance(width, int) and isinstance(height, int):
            usage["megapixels"] = width * height / 1e6
            meta.update(width=width, height=height)
        return usage

    # -- ping -----------------------------------------------------------------
    def ping(self) -> str:
        """Ask fal's REST API for a CDN upload token: authenticated and free."""
        import httpx

        key = self._key()
        _configure_sdk(self.base_url())
        import fal_client.client as sdk

        url = f"{sdk.REST_URL}/storage/auth/token?storage_type=fal-cdn-v3"

        def once() -> dict[str, Any]:
            def post() -> dict[str, Any]:
                response = httpx.post(
                    url, headers={"Authorization": f"Key {key}"}, json={}, timeout=30.0
                )
                response.raise_for_status()
                data: dict[str, Any] = response.json()
                return data

            return self._call("ping", post)

        token = with_retries(once, policy=RetryPolicy.from_env(self.env), billable=False)
        return f"fal accepted the key (upload token valid until {token.get('expires_at', '?')})"

    # -- plumbing -------------------------------------------------------------
    def _key(self) -> str:
        key = self.api_key()
        if not key:
            raise MissingCredentials(
                f"no API key: set {KEY_VAR} in the environment or in .env "
                "(create one at fal.ai/dashboard/keys)",
                provider=self.name,
                sent=False,
            )
        return key

    @contextlib.contextmanager
    def _client(self, timeout_s: float) -> Iterator[SyncClient]:
        """An SDK client with our key (never the SDK's own credential lookup)."""
        key = self._key()
        _configure_sdk(self.base_url())
        from fal_client import SyncClient

        client = SyncClient(key=key, default_timeout=max(10.0, min(timeout_s, _SUBMIT_TIMEOUT_S)))
        try:
            yield client
        finally:
            # SyncClient has no close(); its lazily built httpx pool would
            # otherwise keep sockets open until garbage collection.
            http = vars(client).get("_client")
            if http is not None:
                http.close()

    def _call(self, stage: str, call: Callable[[], T], rid: str | None = None) -> T:
        """Run one SDK call, translating whatever it raises (``stage`` says which)."""
        import httpx
        from fal_client import FalClientHTTPError

        try:
            return call()
        except FalClientHTTPError as exc:
            detail = exc.message  # fal's "detail": a string or a list of errors
            if redact(str(detail), self.env) != str(detail):
                exc.message = redact(str(detail), self.env)  # keep the key out of the chain
            raise self._translate_status(
                stage, exc.status_code, detail, exc.error_type, exc.response, rid
            ) from exc
        except httpx.HTTPStatusError as exc:  # the CDN token request and ping
            response = exc.response
            detail, error_type = _body_detail(response)
            raise self._translate_status(
                stage, response.status_code, detail, error_type, response, rid
            ) from exc
        except httpx.HTTPError as exc:
            raise self._translate_transport(stage, exc) from exc
        except (KeyError, ValueError, TypeError) as exc:
            # A malformed answer. After a submit the job may exist: not repeated.
            raise BadResponse(
                f"could not read fal's answer to the {stage} ({type(exc).__name__}: "
                f"{redact(str(exc), self.env)[:200]})",
                provider=self.name,
                sent=stage == "submit",
            ) from exc

    def _translate_transport(self, stage: str, exc: Exception) -> ProviderError:
        # a submit that broke after it was sent may have queued the job: not repeated
        return common_transport_error(
            exc, provider=self.name, service="fal", url_var="ACPBUILD_FAL_URL",
            billable=stage == "submit", stage=stage, maybe=_MAYBE_QUEUED,
        )

    def _translate_status(
        self,
        stage: str,
        status: int,
        detail: Any,
        error_type: str | None,
        response: Any,
        rid: str | None,
    ) -> ProviderError:
        """Map fal's HTTP error onto acpbuild's error tree."""
        p = self.name
        message, types = _describe(detail)
        if error_type:
            types.add(error_type)
        said = redact(
            f"HTTP {status}"
            + (f" {error_type}" if error_type else "")
            + (f": {message}" if message else ""),
            self.env,
        )
        which = f"request {rid}: " if rid else ""
        billable = stage == "submit"
        headers: Mapping[str, str] = getattr(response, "headers", None) or {}
        if _POLICY in types:
            return RequestRejected(
                f"{which}refused by fal's content policy ({said}); change the prompt or input",
                provider=p,
                status=status,
                sent=stage == "job",
            )
        lowered = message.lower()
        if status == 402 or (status == 403 and ("balance" in lowered or "locked" in lowered)):
            return PaymentRequired(
                f"out of credit ({said}); top up at fal.ai/dashboard/billing",
                provider=p,
                status=status,
                sent=False,
            )
        common = common_status_error(
            status,
            said,
            provider=p,
            service="fal",
            key_var=KEY_VAR,
            headers=headers,
            billable=billable,
            timeout_text=f"{which}fal timed out",
        )
        if common is not None:
            return common
        if status >= 500:
            # fal does not bill server errors, but a 5xx answer to the submit does
            # not prove the job was not queued behind the proxy (it would then run
            # and be billed). Only an ingress error, nginx answering with no fal
            # request id (the SDK's own test), shows it never reached the queue.
            ingress = (
                status in (502, 503, 504)
                and "x-fal-request-id" not in headers
                and "nginx" in (getattr(response, "text", "") or "")
            )
            maybe = _MAYBE_QUEUED if billable and not ingress else ""
            return ServiceUnavailable(
                f"{which}fal failed ({said}); try again later{maybe}",
                provider=p,
                status=status,
                sent=billable and not ingress,
            )
        if status == 404 and rid:
            return RequestRejected(
                f"{which}fal does not know this request ({said}); it may have expired",
                provider=p,
                status=status,
                sent=False,
            )
        return RequestRejected(
            f"{which}the request was rejected ({said})",
            provider=p,
            status=status,
            sent=stage == "job",
        )

    def _job_failed(self, rid: str, error: str | None, error_type: str | None) -> ProviderError:
        """A COMPLETED status that carries an error, when the result GET did not raise."""
        said = redact(f"{error_type or 'error'}: {error or 'no message'}", self.env)
        if error_type == _POLICY:
            return RequestRejected(
                f"request {rid} was refused by fal's content policy ({said}); change the prompt",
                provider=self.name,
            )
        if error_type in _SERVER_ERROR_TYPES:
            return ServiceUnavailable(
                f"request {rid} failed inside fal ({said}); fal does not bill it, try again",
                provider=self.name,
                sent=False,
                job_failed=True,
            )
        return RequestRejected(f"request {rid} failed ({said})", provider=self.name)


# -- helpers ------------------------------------------------------------------
def _duration(value: Any, spec: Spec) -> Any:
    if spec.duration == "str_s":
        return f"{int(value)}s"
    if spec.duration == "float":
        return float(value)
    return str(int(value))


def _video_usage(job: Job, media: dict[str, Any]) -> dict[str, float]:
    """Seconds billed: the step's ``duration_s``, the result's duration, else the video's own length."""
    seconds = job.params.get("duration_s")
    if not isinstance(seconds, (int, float)):
        seconds = media.get("duration")
    if not isinstance(seconds, (int, float)):
        # fal's upscalers and avatars say nothing of length: measure what came back
        from acpbuild.provider.media import probe

        try:
            seconds = probe(job.output).duration_s
        except AcpbuildError:
            seconds = None  # unmeasurable: the runner charges the estimate instead
    return {"seconds": float(seconds)} if isinstance(seconds, (int, float)) else {}


def _body_detail(response: Any) -> tuple[Any, str | None]:
    try:
        body = response.json()
    except ValueError:
        return (response.text or "")[:300], response.headers.get("x-fal-error-type")
    if isinstance(body, dict):
        error_type = body.get("error_type") or response.headers.get("x-fal-error-type")
        return body.get("detail", body), error_type
    return body, response.headers.get("x-fal-error-type")


def _describe(detail: Any) -> tuple[str, set[str]]:
    """fal's ``detail`` as one line of text, and the error types its items name."""
    if isinstance(detail, list):  # validation errors: [{"loc", "msg", "type"}, ...]
        parts, types = [], set()
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
                if item.get("type"):
                    types.add(str(item["type"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)[:500], types
    if isinstance(detail, Mapping):
        return str(detail.get("msg") or detail.get("message") or detail)[:500], set()
    text = "" if detail is None else str(detail)
    return " ".join(text.split())[:500], set()


_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _image_format(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(12)
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _fit_image(path: Path) -> tuple[int, int] | None:
    """Re-encode the image when its format does not match its suffix; return its size then.

    Not every fal model lets us choose the format (Imagen answers PNG), and a
    .jpg file holding PNG bytes would mislead every later step.
    """
    wanted = _IMAGE_FORMATS.get(path.suffix.lower())
    if wanted is None or _image_format(path) == wanted:
        return None
    from PIL import Image

    part = path.with_name(path.name + ".part")
    try:
        with Image.open(path) as image:
            size = image.size
            converted = image.convert("RGB") if wanted == "JPEG" else image
            converted.save(part, format=wanted)
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise BadResponse(
            f"the image could not be converted to {wanted}: {exc}", provider="fal"
        ) from exc
    return size
