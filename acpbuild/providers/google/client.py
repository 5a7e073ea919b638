"""Google's connection, shared by Gemini and Veo: keys, endpoints, SDK clients, one request.

:class:`GoogleConnection` is the part of the Google provider both surfaces use;
:class:`~acpbuild.providers.google.gemini.GoogleProvider` builds on it, and the
Veo functions take it, so neither module imports the other's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from acpbuild.provider import MissingCredentials, Provider, RequestRejected
from acpbuild.provider.wire import Origins, RetryPolicy, image_mime, with_retries
from acpbuild.providers.google.errors import translate

if TYPE_CHECKING:
    from google.genai import Client

T = TypeVar("T")

_DEV_API_VERSION = "v1"
_VERTEX_API_VERSION = "v1beta1"
_DEFAULT_LOCATION = "us-central1"
# Google's API hosts: the Gemini API, Vertex's global and regional endpoints.
OFFICIAL_HOSTS = (
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    "*-aiplatform.googleapis.com",
)


class GoogleConnection(Provider):
    """How a Google call is made: which key, which endpoint, which API version."""

    # -- clients ----------------------------------------------------------------
    def _gemini_on_vertex(self) -> bool:
        return self.env.get("ACPBUILD_GOOGLE_VERTEX", "").strip().lower() in ("1", "true", "yes")

    def _vertex_url(self) -> str | None:
        return self.env.get("ACPBUILD_GOOGLE_VERTEX_URL") or self.base_url() or None

    def origins(self, *, vertex: bool) -> Origins:
        """Where the key may go: the configured endpoint of ``vertex`` or Gemini calls, or Google's hosts."""
        return Origins(self._vertex_url() if vertex else self.base_url(), OFFICIAL_HOSTS)

    def _key(self, *, vertex: bool) -> str:
        order = ("GOOGLE_API_KEY", "GEMINI_API_KEY") if vertex else self.key_vars
        for var in order:
            value = self.env.get(var)
            if value:
                return value.strip()
        where = "Veo and other Vertex AI calls need a Google Cloud API key" if vertex else ""
        raise MissingCredentials(
            "no API key: set GEMINI_API_KEY or GOOGLE_API_KEY in the environment or in .env"
            + (f" ({where}, preferably in GOOGLE_API_KEY)" if where else ""),
            provider=self.name,
            sent=False,
        )

    @contextlib.contextmanager
    def _client(self, *, vertex: bool, timeout_s: float) -> Iterator[Client]:
        """An SDK client for one call, held (and closed) for the call's whole duration.

        Holding it matters: a client that is garbage-collected mid-call closes its
        HTTP connection pool under the request (googleapis/python-genai#1763).
        """
        key = self._key(vertex=vertex)
        from google import genai
        from google.genai import types

        kwargs: dict[str, Any] = {}
        if vertex:
            base = self._vertex_url()
            project = self.env.get("GOOGLE_CLOUD_PROJECT")
            if project:
                kwargs["project"] = project
                kwargs["location"] = self.env.get("GOOGLE_CLOUD_LOCATION") or _DEFAULT_LOCATION
        else:
            base = self.base_url()
        # The key travels as a custom header (x-goog-api-key), which httpx keeps on a
        # redirect to another host; the guard refuses any request, redirects included,
        # that would carry it outside Google's API hosts or the configured endpoint.
        guard = self.origins(vertex=vertex).guard(provider=self.name, what="redirect")
        options = types.HttpOptions(
            base_url=base or None,
            api_version=_VERTEX_API_VERSION if vertex else _DEV_API_VERSION,
            timeout=int(timeout_s * 1000),  # milliseconds
            client_args={"event_hooks": {"request": [guard]}},
        )
        client = genai.Client(vertexai=vertex, api_key=key, http_options=options, **kwargs)
        with client:
            yield client

    # -- requests ---------------------------------------------------------------
    def _call(self, call: Callable[[], T], *, billable: bool, vertex: bool) -> T:
        """One request, translated into acpbuild's errors and retried by our policy."""

        def once() -> T:
            try:
                return call()
            except Exception as exc:
                translated = translate(
                    exc, provider=self.name, env=self.env, billable=billable, vertex=vertex
                )
                if translated is None:
                    raise
                raise translated from exc

        return with_retries(once, policy=RetryPolicy.from_env(self.env), billable=billable)


def read_image(path: Path, provider: str) -> tuple[bytes, str]:
    """An input image's bytes and MIME type (from its content, not its name), for Gemini
    and Veo alike."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RequestRejected(
            f"cannot read the input image {path}: {exc.strerror}", provider=provider, sent=False
        ) from exc
    mime = image_mime(data)
    if mime is not None:
        return data, mime
    raise RequestRejected(
        f"the input image {path.name} is not a PNG, JPEG, WebP or GIF file",
        provider=provider,
        sent=False,
    )


