"""What every paid adapter shares on the wire: retries and safe downloads.

Adapters turn off their SDK's own retries and use :func:`with_retries`, so each
request is retried by exactly one policy, one that knows whether a failed call
may already have been billed. Result files are fetched with :func:`download`,
which streams to disk, checks length and content, and only then renames.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from acpbuild.errors import (
    AuthError,
    BadResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServiceUnavailable,
)

T = TypeVar("T")


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


def write_atomic(dest: Path, data: bytes) -> None:
    """Write ``data`` beside ``dest``, then rename it into place: never half a file at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
    chunk: int = 1 << 20,
) -> int:
    """Stream ``url`` to ``dest`` and return its size.

    The body goes to ``dest`` plus ``.part`` in chunks (a 1 GB video never sits
    in memory); it is renamed onto ``dest`` only when its length matches
    ``Content-Length`` and its first bytes are of the ``expect`` media type.
    A short body raises :class:`BadResponse` with ``sent=False`` (a GET of a
    finished result is free), so :func:`with_retries` fetches it again.

    The file is asked for uncompressed (``Accept-Encoding: identity``; httpx
    would otherwise offer gzip). A server that compresses anyway is decoded,
    and ``Content-Length``, which counts the bytes on the wire, is checked
    against those rather than the decoded ones.
    """
    import httpx

    part = dest.with_name(dest.name + ".part")
    asked = {"Accept-Encoding": "identity", **dict(headers or {})}
    try:
        with httpx.stream(
            "GET", url, headers=asked, timeout=timeout_s, follow_redirects=True
        ) as response:
            if response.status_code >= 400:
                error = ServiceUnavailable if response.status_code >= 500 else BadResponse
                raise error(
                    f"download of the result failed with HTTP {response.status_code}",
                    provider=provider,
                    status=response.status_code,
                    sent=False,
                )
            declared = response.headers.get("content-length")
            written = 0
            with open(part, "wb") as f:
                for block in response.iter_bytes(chunk):
                    f.write(block)
                    written += len(block)
            received = response.num_bytes_downloaded  # on the wire, before decoding
    except httpx.TimeoutException as exc:
        part.unlink(missing_ok=True)
        raise ProviderTimeout(f"download timed out after {timeout_s:g} s", provider=provider, sent=False) from exc
    except httpx.RemoteProtocolError as exc:
        part.unlink(missing_ok=True)
        raise BadResponse(
            "download truncated: the connection closed before the whole body arrived",
            provider=provider,
            sent=False,
        ) from exc
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise ServiceUnavailable(
            f"download failed: {type(exc).__name__}", provider=provider, sent=False
        ) from exc
    except ProviderError:
        part.unlink(missing_ok=True)
        raise
    if declared is not None and int(declared) != received:
        part.unlink(missing_ok=True)
        raise BadResponse(
            f"download truncated: got {received} of {declared} bytes", provider=provider, sent=False
        )
    if written == 0 or (expect is not None and expect != "text" and sniff(part) != expect):
        part.unlink(missing_ok=True)
        raise BadResponse(
            f"downloaded file is not a valid {expect or 'file'} ({written} bytes)",
            provider=provider,
            sent=False,
        )
    os.replace(part, dest)
    return written
