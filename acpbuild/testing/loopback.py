"""A loopback HTTP server to stand in for a provider's API in tests, and a recording journal.

:class:`LoopbackServer` is a threaded server on 127.0.0.1 with a port chosen by
the OS, a log of every request, a route table, and a queue of scripted failures
("the next 2 requests to this route answer 429", "the next submission gets no
answer at all"). An emulator of one service subclasses it and adds that
service's routes, giving each route a role (``"submit"``, ``"poll"``,
``"result"``, ``"download"``) so tests can ask what a client did: the provider
contract suite (:mod:`acpbuild.testing.contract`) checks that a submission is
never repeated and that polling starts only after the job id was journalled.

Point the service's real SDK at :attr:`LoopbackServer.url`: the adapter is then
tested the way it runs, on the wire.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["Failure", "LoopbackServer", "RecordingJournal", "Request", "Response", "real_mp4"]


@functools.cache
def real_mp4() -> bytes:
    """A real, playable MP4 (one second of 64x48 H.264), made once by the bundled ffmpeg.

    Every output is decoded before it is stored, so the video an emulator serves
    must be one; tests of broken videos cut or zero it.
    """
    from acpbuild.provider.media import ffmpeg_exe

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=d=1:s=64x48:r=10",
             "-pix_fmt", "yuv420p", str(out)],
            check=True,
            timeout=60,
        )
        return out.read_bytes()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    #: when it arrived (time.monotonic()), for tests of how long a client waited
    at: float = field(default_factory=time.monotonic)
    #: the role of the route it reached ("submit", "poll", ...), "" for none
    role: str = ""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: send only this many bytes of the body while declaring its full length
    truncate_to: int | None = None
    #: seconds to wait before answering
    delay_s: float = 0.0
    #: send the body in chunks of this many bytes, with no Content-Length
    chunked: int | None = None
    #: read the request, then close the connection without answering (a lost answer)
    drop: bool = False


Handler = Callable[[Request, "re.Match[str]"], Response]


@dataclass
class Failure:
    """A scripted answer for the next ``times`` requests matching ``method`` and ``pattern``.

    ``method`` ``"*"`` matches any method; ``role``, when set, matches only
    requests that reach a route of that role.
    """

    method: str
    pattern: str
    response: Response
    times: int = 1
    role: str = ""

    def matches(self, request: Request) -> bool:
        if self.method not in ("*", request.method) or (self.role and self.role != request.role):
            return False
        return re.match(self.pattern + r"\Z", request.path) is not None


class _Server(ThreadingHTTPServer):
    # the default listen backlog of 5 drops connections when many steps call at
    # once, and a dropped SYN is only retried after a second
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up mid-answer (a timeout test, a killed run) is expected
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class RecordingJournal:
    """A :class:`~acpbuild.provider.Journal` that records the request ids an adapter commits, and when.

    ``resume_id`` is the id of a job an earlier run submitted, as the runner sets
    it when a run was killed while polling. ``times`` holds the
    ``time.monotonic()`` of each :meth:`submitted`, comparable with
    :attr:`Request.at`.
    """

    def __init__(self, resume_id: str | None = None) -> None:
        self.resume_id = resume_id
        self.ids: list[str] = []
        self.times: list[float] = []

    def submitted(self, request_id: str) -> None:
        self.times.append(time.monotonic())
        self.ids.append(request_id)


class LoopbackServer:
    """Base of every provider emulator. Use as a context manager.

    With no routes of its own it is a stranger's server: it answers every request
    with :attr:`answer` and logs it, for tests that a key never reaches it.
    """

    #: what a bare Emulator answers to any request
    answer = Response(200, {"status": "COMPLETED", "logs": None})

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler, role: str = "") -> None:
        """Answer ``method`` requests whose path matches ``pattern`` with ``handler``.

        ``role`` says what the route is for, in the contract suite's words:
        ``"submit"`` (a request that may be billed), ``"poll"`` (a job's status),
        ``"result"``, ``"download"``, ``"upload"``, or ``""``.
        """
        self.routes.append((method, re.compile(pattern + r"\Z"), handler, role))

    def fail(self, method: str, pattern: str, response: Response, times: int = 1, *, role: str = "") -> None:
        """Answer the next ``times`` matching requests with ``response`` (see :class:`Failure`)."""
        with self.lock:
            self.failures.append(Failure(method, pattern, response, times, role))

    def fail_role(self, role: str, response: Response, times: int = 1) -> None:
        """Answer the next ``times`` requests that reach a route of ``role`` with ``response``."""
        self.fail("*", ".*", response, times, role=role)

    def by_role(self, role: str) -> list[Request]:
        """Requests so far that reached a route of ``role``."""
        with self.lock:
            return [r for r in self.requests if r.role == role]

    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Forget the requests seen and the failures scripted (a server shared by a module's tests)."""
        with self.lock:
            self.requests.clear()
            self.failures.clear()

    def calls(self, method: str, pattern: str) -> list[Request]:
        """Requests so far whose method and path match."""
        rx = re.compile(pattern + r"\Z")
        with self.lock:
            return [r for r in self.requests if r.method == method and rx.match(r.path)]

    # -- serving --------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        found: tuple[Handler, re.Match[str]] | None = None
        for method, rx, handler, role in self.routes:
            match = rx.match(request.path)
            if method == request.method and match:
                found, request.role = (handler, match), role
                break
        with self.lock:
            self.requests.append(request)
            for failure in self.failures:
                if failure.matches(request):
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    return failure.response
        if found is not None:
            return found[0](request, found[1])
        if not self.routes:
            return self.answer
        return Response(404, {"detail": f"no route for {request.method} {request.path}"})

    def __enter__(self) -> Self:
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                response = emulator.dispatch(request)
                if response.drop:
                    self.close_connection = True
                    return
                if response.delay_s:
                    threading.Event().wait(response.delay_s)
                payload = response.body
                headers = dict(response.headers)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(payload, str):
                    payload = payload.encode()
                self.send_response(response.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if response.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        for at in range(0, len(payload), response.chunked):
                            block = payload[at : at + response.chunked]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                        self.wfile.write(b"0\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True  # the client stopped reading: expected
                    return
                self.send_header("Content-Length", str(len(payload)))
                if response.truncate_to is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(payload[: response.truncate_to] if response.truncate_to is not None else payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        # shutdown() waits for serve_forever's next poll: at the default 0.5 s, stopping a test's
        # four emulators took two seconds
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
