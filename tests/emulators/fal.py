"""A fal.ai emulator: the queue, the CDN upload routes and the result files.

Speaks what ``fal-client`` 1.0.3 sends when its URL globals point here
(PROVIDERS.md section 1, method A): ``POST /queue/{app...}`` answered with
loopback ``status_url``/``response_url``/``cancel_url``, ``GET
/queue/{owner}/{alias}/requests/{id}/status`` (IN_QUEUE with
``queue_position``, IN_PROGRESS and COMPLETED with a ``logs`` key), ``GET
.../requests/{id}`` for the result JSON, ``PUT .../cancel``, ``POST
/rest/storage/auth/token`` and ``POST /cdn/files/upload``. Results point at
``GET /media/{id}.{ext}``, which serves a real PNG/JPEG or an MP4-looking file.

Each submission becomes an :class:`EmulatedJob`; :attr:`FalEmulator.polls`,
:attr:`FalEmulator.job_error` and :attr:`FalEmulator.result_extra` script the
next ones. Every queue route wants ``Authorization: Key <key>``.

The emulator is as strict as fal: each body is checked against its
endpoint's input schema (:mod:`tests.emulators.fal_inputs`, which names the
source of every rule). A submit to an app fal does not have is answered 404.
A body the schema refuses is queued all the same, as fal queues it: its job
reaches COMPLETED with no error and the result GET answers fal's 422
(``{"detail": [{"type", "loc", "msg", "input", ...}]}``, not billed); a path
the app does not serve answers 404 there. Fields the schema does not name are
accepted and listed in :attr:`EmulatedJob.ignored`, since fal drops them.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from . import Emulator, Request, Response, real_mp4
from .fal_inputs import APPS, ignored, refusal

KEY = "test-fal-key-0000"
CDN_TOKEN = "cdn-token-0000"

SUBMIT = r"/queue/.+"
REQUEST = r"/queue/(?P<owner>[^/]+)/(?P<alias>[^/]+)/requests/(?P<rid>[^/]+)"
MEDIA = r"/media/(?P<rid>[^/.]+)\.(?P<ext>\w+)"

_IMAGE_APPS = ("fal-ai/flux", "fal-ai/imagen4", "fal-ai/bytedance/seedream")
IMAGE_SIZE = (1024, 768)


def image_bytes(fmt: str = "png", size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    """A real image file of one colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(
        buffer, format="JPEG" if fmt in ("jpg", "jpeg") else fmt.upper()
    )
    return buffer.getvalue()


def mp4_bytes(size: int = 4096) -> bytes:
    """A real one-second MP4 (``size`` is ignored: the file is what ffmpeg makes)."""
    return real_mp4()


def error(status: int, detail: Any, error_type: str | None = None, **headers: str) -> Response:
    body: dict[str, Any] = {"detail": detail}
    if error_type:
        body["error_type"] = error_type
        headers.setdefault("x-fal-error-type", error_type)
    return Response(status, body, dict(headers))


@dataclass
class EmulatedJob:
    rid: str
    app: str
    arguments: dict[str, Any]
    #: status polls still to answer before COMPLETED
    polls: int
    #: the answer to the result GET of a failed job (None: success)
    failure: Response | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    #: the model's refusal of the arguments (fal's 422, or 404 for a path it lacks), None: accepted
    refusal: Response | None = None
    #: arguments the endpoint's schema does not name, which fal ignores
    ignored: list[str] = field(default_factory=list)

    @property
    def media(self) -> str:
        return "image" if self.app.startswith(_IMAGE_APPS) else "video"

    @property
    def ext(self) -> str:
        if self.media == "video":
            return "mp4"
        return "jpeg" if self.arguments.get("output_format") == "jpeg" else "png"


class FalEmulator(Emulator):
    """Counts billable submissions in :attr:`submissions`; jobs by id in :attr:`jobs`."""

    def __init__(self, key: str = KEY) -> None:
        super().__init__()
        self.key = key
        self.jobs: dict[str, EmulatedJob] = {}
        self.uploads: dict[str, bytes] = {}
        #: status polls the next jobs answer before COMPLETED
        self.polls = 1
        #: the result GET answer of the next jobs, making them fail (COMPLETED with error)
        self.job_error: Response | None = None
        #: merged into the next jobs' result JSON
        self.result_extra: dict[str, Any] = {}
        #: the root the submit answer's status/result/cancel URLs name (None: this server)
        self.queue_root: str | None = None
        self._ids = self._files = 0
        self._ids_lock = threading.Lock()
        self.route("POST", SUBMIT, self._submit, role="submit")
        self.route("GET", REQUEST + "/status", self._status, role="poll")
        self.route("GET", REQUEST, self._result, role="result")
        self.route("PUT", REQUEST + "/cancel", self._cancel)
        self.route("POST", r"/rest/storage/auth/token", self._token)
        self.route("POST", r"/cdn/files/upload", self._upload, role="upload")
        self.route("GET", r"/cdn/files/(?P<fid>[^/]+)/[^/]+", self._file, role="download")
        self.route("GET", MEDIA, self._media, role="download")

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.jobs.clear()
            self.uploads.clear()
            self._ids = self._files = 0
        self.polls, self.job_error, self.result_extra, self.queue_root = 1, None, {}, None

    @property
    def submissions(self) -> int:
        return len(self.calls("POST", SUBMIT))

    def submitted(self, index: int = -1) -> Request:
        return self.calls("POST", SUBMIT)[index]

    # -- queue -------------------------------------------------------------------
    def _refuse(self, request: Request) -> Response | None:
        presented = request.headers.get("authorization", "")
        if presented != f"Key {self.key}":
            # Echo what was presented: the adapter must keep it out of its errors.
            return error(401, f"Invalid credentials: {presented!r}", "authentication_error")
        return None

    def _submit(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        app = request.path.removeprefix("/queue/")
        parts = app.split("/")
        if "/".join(parts[:2]) not in APPS:
            # the status is fal's; its exact wording for an unknown app is not published
            return error(404, f"Application {app!r} not found")
        with self._ids_lock:
            self._ids += 1
            rid = f"req-{self._ids:04d}"
        arguments = request.json()
        refused = refusal(app, arguments)
        self.jobs[rid] = EmulatedJob(
            rid,
            app,
            arguments if isinstance(arguments, dict) else {},
            self.polls,
            self.job_error,
            dict(self.result_extra),
            refusal=None if refused is None else error(*refused, **{"x-fal-billable-units": "0"}),
            ignored=ignored(app, arguments),
        )
        base = f"{self.queue_root or self.url}/queue/{parts[0]}/{parts[1]}/requests/{rid}"
        return Response(
            200,
            {
                "status": "IN_QUEUE",
                "request_id": rid,
                "response_url": base,
                "status_url": base + "/status",
                "cancel_url": base + "/cancel",
                "logs": None,
                "metrics": {},
                "queue_position": 0,
            },
            {"x-fal-request-id": rid},
        )

    def _job(self, request: Request, match: re.Match[str]) -> EmulatedJob | Response:
        if refused := self._refuse(request):
            return refused
        job = self.jobs.get(match["rid"])
        if job is None:
            return error(404, f"Request {match['rid']} not found")
        return job

    def _status(self, request: Request, match: re.Match[str]) -> Response:
        job = self._job(request, match)
        if isinstance(job, Response):
            return job
        if job.polls > 0:
            job.polls -= 1
            job.seen += 1
            if job.seen == 1:
                return Response(200, {"status": "IN_QUEUE", "queue_position": 0})
            return Response(200, {"status": "IN_PROGRESS", "logs": None})
        body: dict[str, Any] = {
            "status": "COMPLETED",
            "logs": None,
            "metrics": {"inference_time": 1.5},
        }
        if job.failure is not None and job.refusal is None:
            failure = job.failure.body if isinstance(job.failure.body, dict) else {}
            body["error"] = str(failure.get("detail", "failed"))
            body["error_type"] = failure.get("error_type") or "request_error"
        return Response(200, body)

    def _result(self, request: Request, match: re.Match[str]) -> Response:
        job = self._job(request, match)
        if isinstance(job, Response):
            return job
        if job.polls > 0:
            return error(400, "Request is still in progress")
        if job.refusal is not None:  # the model refused its input before running
            return job.refusal
        if job.failure is not None:
            return job.failure
        url = f"{self.url}/media/{job.rid}.{job.ext}"
        if job.media == "image":
            width, height = IMAGE_SIZE
            result: dict[str, Any] = {
                "images": [
                    {
                        "url": url,
                        "width": width,
                        "height": height,
                        "content_type": f"image/{job.ext}",
                    }
                ],
                "seed": job.arguments.get("seed", 1234),
                "has_nsfw_concepts": [False],
                "prompt": job.arguments.get("prompt", ""),
            }
        else:
            result = {"video": {"url": url, "content_type": "video/mp4", "file_size": 4096}}
        result.update(job.extra)
        return Response(200, result, {"x-fal-request-id": job.rid})

    def _cancel(self, request: Request, match: re.Match[str]) -> Response:
        job = self._job(request, match)
        if isinstance(job, Response):
            return job
        return Response(202, {"status": "CANCELLATION_REQUESTED"})

    # -- storage -------------------------------------------------------------------
    def _token(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return Response(
            200,
            {
                "token": CDN_TOKEN,
                "token_type": "Bearer",
                "base_url": f"{self.url}/cdn",
                "expires_at": expires.isoformat(),
            },
        )

    def _upload(self, request: Request, match: re.Match[str]) -> Response:
        if request.headers.get("authorization") != f"Bearer {CDN_TOKEN}":
            return error(401, "invalid CDN token")
        name = request.headers.get("x-fal-file-name", "upload.bin")
        with self._ids_lock:
            self._files += 1
            fid = f"f{self._files:04d}"
        self.uploads[fid] = request.body
        # The upload answer is the last request of its (unclosed) SDK client.
        return Response(
            200, {"access_url": f"{self.url}/cdn/files/{fid}/{name}"}, {"Connection": "close"}
        )

    def _file(self, request: Request, match: re.Match[str]) -> Response:
        data = self.uploads.get(match["fid"])
        return Response(200, data) if data is not None else error(404, "no such file")

    def _media(self, request: Request, match: re.Match[str]) -> Response:
        job = self.jobs.get(match["rid"])
        if job is None:
            return Response(404, b"not found")
        if job.media == "video":
            return Response(200, mp4_bytes(), {"Content-Type": "video/mp4"})
        return Response(200, image_bytes(job.ext), {"Content-Type": f"image/{job.ext}"})
