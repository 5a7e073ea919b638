"""What every paid adapter shares on the wire: retries, where keys go, safe downloads.

Adapters turn off their SDK's own retries and use :func:`with_retries`, so each
request is retried by exactly one policy, one that knows whether a failed call
may already have been billed. :class:`Origins` is the one rule for where a key
may be sent: the endpoint the user configured, or the provider's official hosts;
a URL that came in an answer is checked against it before anything is sent.
Result files are fetched with :func:`download`, which streams to disk under a
size cap, checks the length, and only then renames.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from acpbuild import process
from acpbuild.errors import (
    AuthError,
    BadResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServiceUnavailable,
)

T = TypeVar("T")

# How many redirects a download follows.
_MAX_REDIRECTS = 5

#: the most a download of each kind may weigh, in MB, unless ACPBUILD_MAX_DOWNLOAD_MB says
MAX_DOWNLOAD_MB: Mapping[str, int] = {"image": 64, "audio": 256, "video": 2048, "text": 16}


def max_download_bytes(kind: str | None, env: Mapping[str, str]) -> int:
    """The size cap of a downloaded ``kind`` ("image", "audio", "video", "text"), in bytes.

    ``ACPBUILD_MAX_DOWNLOAD_MB`` replaces every kind's default (64 MB for an image,
    256 MB for audio, 2048 MB for video, 16 MB for text).
    """
    raw = env.get("ACPBUILD_MAX_DOWNLOAD_MB", "").strip()
    try:
        mb = float(raw) if raw else float(MAX_DOWNLOAD_MB.get(kind or "", max(MAX_DOWNLOAD_MB.values())))
    except ValueError:
        mb = float(MAX_DOWNLOAD_MB.get(kind or "", max(MAX_DOWNLOAD_MB.values())))
    return int(mb * 1024 * 1024)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:  # a port that is not a number
        return scheme, "", -1
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class Origins:
    """Where a provider's key may be sent, and nowhere else.

    ``configured`` is the endpoint the user set (``ACPBUILD_*_URL``): a URL of the
    same origin (scheme, host and port) is trusted. ``official`` are the
    provider's own hosts as glob patterns (``"queue.fal.run"``,
    ``"*-aiplatform.googleapis.com"``), trusted over HTTPS only. Every other URL
    an answer names (a status URL, a redirect, a file on a CDN) is either fetched
    without the key or refused, as the caller decides; never sent the key.
    """

    configured: str | None = None
    official: tuple[str, ...] = ()

    def trusts(self, url: str) -> bool:
        """Whether ``url`` may receive the provider's key."""
        scheme, host, port = _origin(url)
        if not host or scheme not in ("http", "https"):
            return False
        if self.configured and (scheme, host, port) == _origin(self.configured):
            return True
        return scheme == "https" and port == 443 and any(
            fnmatch.fnmatchcase(host, pattern) for pattern in self.official
        )

    def credentials_for(self, url: str, credentials: Mapping[str, str] | None) -> dict[str, str]:
        """``credentials`` if ``url`` may receive them, else nothing."""
        return dict(credentials or {}) if self.trusts(url) else {}

    def refusal(self, url: str, *, provider: str, what: str, sent: bool = True) -> BadResponse:
        """The error for an answer that told us to send the key to ``url``.

        Not retried (asking again gets the same answer); ``sent`` says whether the
        billable request had already reached the provider.
        """
        scheme, host, port = _origin(url)
        where = f"{scheme}://{host}" + (f":{port}" if port not in (80, 443, None) else "")
        configured = f" or {self.configured}" if self.configured else ""
        refused = BadResponse(
            f"refused to send the key to {where}: the {what} points outside the provider's "
            f"own hosts{configured}",
            provider=provider,
            sent=sent,
        )
        refused.retryable = False
        return refused

    def guard(self, *, provider: str, what: str = "answer") -> Callable[[Any], None]:
        """An httpx request hook that refuses, before sending, any request (a redirect
        included) to a URL that may not receive the key of a client carrying it."""

        def hook(request: Any) -> None:
            url = str(request.url)
            if not self.trusts(url):
                raise self.refusal(url, provider=provider, what=what)

        return hook


def disk_error(exc: OSError, path: Path, *, provider: str, sent: bool) -> ProviderError:
    """An OSError met while writing a result (a full disk, a read-only directory) as a
    ProviderError naming the path; ``sent`` whether the paid request was made."""
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    tip = "; free some space" if exc.errno == errno.ENOSPC else ""
    error = ProviderError(
        f"cannot write the result to {path}: {reason}" + (f" ({code})" if code else "") + tip,
        provider=provider,
        sent=sent,
    )
    return error


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, honouring ``Retry-After``."""

    attempts: int = 4
    base_s: float = 1.0
    cap_s: float = 30.0
    #: a Retry-After longer than this is not waited for: the call fails instead
    max_wait_s: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """Read ``ACPBUILD_RETRY_ATTEMPTS`` and ``ACPBUILD_RETRY_BASE_S`` (tests make them small)."""
        return cls(
            attempts=max(1, int(env.get("ACPBUILD_RETRY_ATTEMPTS", cls.attempts))),
            base_s=float(env.get("ACPBUILD_RETRY_BASE_S", cls.base_s)),
        )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.cap_s, self.base_s * 2**attempt) * random.uniform(0.5, 1.5)
        return max(backoff, retry_after or 0.0)


def with_retries(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    billable: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``, retrying :class:`ProviderError` s that say retrying can help.

    A billable call (one that may cost money when the provider processes it) is
    only retried when the error says the request never reached processing
    (``sent`` is False: a refused connection, a 429, a 5xx the provider does not bill).
    """
    attempt = 0
    while True:
        try:
            return call()
        except ProviderError as exc:
            attempt += 1
            if not exc.retryable or attempt >= policy.attempts or (billable and exc.sent):
                raise
            if exc.retry_after is not None and exc.retry_after > policy.max_wait_s:
                raise
            sleep(policy.delay(attempt - 1, exc.retry_after))


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header; dates are not used."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return float(lowered["retry-after-ms"]) / 1000
        except ValueError:
            pass
    try:
        return float(lowered["retry-after"]) if "retry-after" in lowered else None
    except ValueError:
        return None


def common_status_error(
    status: int,
    said: str,
    *,
    provider: str,
    service: str,
    key_var: str,
    headers: Mapping[str, str] | None,
    billable: bool,
    timeout_text: str = "request timed out",
) -> ProviderError | None:
    """The HTTP statuses every adapter translates alike: 401/403, 429 and 408.

    Adapters handle their provider's own cases (quota, moderation, ...) first and
    fall back to this; None means the status is not one of these.
    """
    if status in (401, 403):
        return AuthError(f"the key was refused ({said}); check {key_var}", provider=provider, status=status, sent=False)
    if status == 429:
        return RateLimited(
            f"rate limited ({said}); wait, or run fewer {service} steps at once",
            provider=provider,
            status=status,
            sent=False,
            retry_after=parse_retry_after(headers),
        )
    if status == 408:
        return ProviderTimeout(f"{timeout_text} ({said})", provider=provider, status=status, sent=billable)
    return None


def common_transport_error(
    exc: BaseException,
    *,
    provider: str,
    service: str,
    url_var: str,
    billable: bool,
    stage: str = "",
    maybe: str = "; the request may have been processed, so it was not repeated",
) -> ProviderError:
    """The transport failures every adapter translates alike (an ``httpx`` or ``httpx2`` error).

    Nothing was sent when the connection could not be made; after that, a
    ``billable`` request may have been processed, which ``maybe`` says (and the
    error is ``sent``, so it is never repeated). ``stage`` names the request
    ("submit", "create") where an adapter makes several.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    where = f"check the network or {url_var}"
    if "ConnectTimeout" in names:
        return ProviderTimeout(f"timed out connecting to {service}; {where}", provider=provider, sent=False)
    if "ConnectError" in names:
        return ServiceUnavailable(f"cannot connect to {service}; {where}", provider=provider, sent=False)
    tail = maybe if billable else ""
    kind = type(exc).__name__
    if "TimeoutException" in names:
        answer = f"answer the {stage}" if stage else "answer"
        return ProviderTimeout(f"{service} did not {answer} in time ({kind}){tail}", provider=provider, sent=billable)
    request = f"the {stage} request" if stage else "the request"
    return ServiceUnavailable(f"{request} to {service} failed ({kind}){tail}", provider=provider, sent=billable)


# Leading bytes of each media container we accept as an output.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image"),
    (b"\xff\xd8\xff", 0, "image"),
    (b"WEBP", 8, "image"),
    (b"ftyp", 4, "video"),
    (b"\x1aE\xdf\xa3", 0, "video"),  # Matroska / WebM
    (b"ID3", 0, "audio"),
    (b"WAVE", 8, "audio"),
    (b"OggS", 0, "audio"),
)


# (magic bytes, offset, MIME type) of the input images the vision and image models read.
_IMAGE_MIME: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"WEBP", 8, "image/webp"),
    (b"GIF8", 0, "image/gif"),
)


def image_mime(data: bytes) -> str | None:
    """The MIME type of a PNG, JPEG, WebP or GIF image from its first bytes, else None."""
    for magic, offset, mime in _IMAGE_MIME:
        if data[offset : offset + len(magic)] == magic:
            return mime
    return None


def write_atomic(dest: Path, data: bytes, *, provider: str = "") -> None:
    """Write ``data`` beside ``dest``, then rename it into place: never half a file at ``dest``.

    A full disk or an unwritable directory raises :class:`ProviderError` naming
    the path (with ``sent`` True: what is written is an answer already paid for).
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        process.replace_file(dest, data)
    except OSError as exc:
        raise disk_error(exc, dest, provider=provider, sent=True) from exc


def sniff(path: Path) -> str | None:
    """The media type a file's first bytes show ("image", "video", "audio"), or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    for magic, offset, media in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return media
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame
        return "audio"
    return None


def download(
    url: str,
    dest: Path,
    *,
    provider: str,
    expect: str | None,
    timeout_s: float = 300.0,
    headers: Mapping[str, str] | None = None,
    origins: Origins | None = None,
    max_bytes: int | None = None,
    chunk: int = 1 << 20,
) -> int:
    """Stream ``url`` to ``dest`` and return its size.

    ``headers`` are credentials: they go only to a URL ``origins`` trusts, on the
    first request and on every redirect alike (a file on a CDN is fetched
    without them). The body goes to ``dest`` plus ``.part`` in chunks (a 1 GB
    video never sits in memory), counted against ``max_bytes`` (by default the
    cap of the ``expect`` kind, :func:`max_download_bytes`) across all of them;
    it is renamed onto ``dest`` only when its length matches
    ``Content-Length`` and its first bytes are of the ``expect`` media type
    (decoding it is left to :mod:`acpbuild.provider.outputs`, which every
    output passes before it is stored). A short body raises :class:`BadResponse`
    with ``sent=False`` (a GET of a finished result is free), so
    :func:`with_retries` fetches it again; one over the cap is not retried.

    The file is asked for uncompressed (``Accept-Encoding: identity``; httpx
    would otherwise offer gzip). A server that compresses anyway is decoded,
    and ``Content-Length``, which counts the bytes on the wire, is checked
    against those rather than the decoded ones.
    """
    import httpx

    cap = max_bytes if max_bytes is not None else max_download_bytes(expect, os.environ)
    trust = origins or Origins()
    part = dest.with_name(dest.name + ".part")
    target = url
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                asked = {"Accept-Encoding": "identity", **trust.credentials_for(target, headers)}
                with client.stream("GET", target, headers=asked) as response:
                    if response.is_redirect and "location" in response.headers:
                        target = str(response.url.join(response.headers["location"]))
                        continue
                    written, received, declared = _receive(response, part, cap, chunk, provider, expect)
                    break
            else:
                raise BadResponse(
                    f"download failed: more than {_MAX_REDIRECTS} redirects", provider=provider, sent=False
                )
    except httpx.TimeoutException as exc:
        _discard(part)
        raise ProviderTimeout(f"download timed out after {timeout_s:g} s", provider=provider, sent=False) from exc
    except httpx.RemoteProtocolError as exc:
        _discard(part)
        raise BadResponse(
            "download truncated: the connection closed before the whole body arrived",
            provider=provider,
            sent=False,
        ) from exc
    except httpx.HTTPError as exc:
        _discard(part)
        raise ServiceUnavailable(
            f"download failed: {type(exc).__name__}", provider=provider, sent=False
        ) from exc
    except OSError as exc:
        _discard(part)
        raise disk_error(exc, part, provider=provider, sent=False) from exc
    except ProviderError:
        _discard(part)
        raise
    if declared is not None and declared != received:
        _discard(part)
        raise BadResponse(
            f"download truncated: got {received} of {declared} bytes", provider=provider, sent=False
        )
    if written == 0 or (expect is not None and expect != "text" and sniff(part) != expect):
        # a first look only; every output is decoded before it is stored (providers.outputs)
        _discard(part)
        raise BadResponse(
            f"downloaded file is not a valid {expect or 'file'} ({written} bytes)",
            provider=provider,
            sent=False,
        )
    try:
        os.replace(part, dest)
    except OSError as exc:
        _discard(part)
        raise disk_error(exc, dest, provider=provider, sent=False) from exc
    return written


def _receive(
    response: Any, part: Path, cap: int, chunk: int, provider: str, expect: str | None
) -> tuple[int, int, int | None]:
    """Write ``response``'s body onto ``part``; (bytes written, bytes on the wire, declared length)."""
    if response.status_code >= 400:
        error = ServiceUnavailable if response.status_code >= 500 else BadResponse
        raise error(
            f"download of the result failed with HTTP {response.status_code}",
            provider=provider,
            status=response.status_code,
            sent=False,
        )
    raw = response.headers.get("content-length")
    declared = int(raw) if raw is not None and raw.strip().isdigit() else None
    if declared is not None and declared > cap:
        raise too_big(declared, cap, provider=provider, expect=expect)
    written = 0
    with open(part, "wb") as f:
        for block in response.iter_bytes(chunk):
            written += len(block)
            if written > cap:  # counted across chunks: a body with no length stops here too
                raise too_big(written, cap, provider=provider, expect=expect, more=True)
            f.write(block)
    return written, response.num_bytes_downloaded, declared


def too_big(
    size: int, cap: int, *, provider: str, expect: str | None, more: bool = False, sent: bool = False
) -> BadResponse:
    """The error for a result over its size cap (not retried: it would be as big again).

    ``more``: ``size`` is only what arrived before the cap stopped it (no length was
    declared). ``sent``: it came in the answer to a billable request, not a free GET.
    """
    what = expect or "file"
    how = "sent no length and went past" if more else f"is {_mb(size)} MB, over"
    error = BadResponse(
        f"the {what} {how} the {_mb(cap)} MB cap for a downloaded {what}; "
        "set ACPBUILD_MAX_DOWNLOAD_MB to allow more",
        provider=provider,
        sent=sent,
    )
    error.retryable = False
    return error


def _mb(size: int) -> str:
    return f"{size / 2**20:.2f}".rstrip("0").rstrip(".")


def _discard(part: Path) -> None:
    """Remove a partial download, if there is one to remove (its directory may be the problem)."""
    with contextlib.suppress(OSError):
        part.unlink(missing_ok=True)
