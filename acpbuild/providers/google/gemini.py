"""Google Gemini and Veo, through the official ``google-genai`` SDK (3.x).

What each kind sends:

* ``text`` and ``image_understanding`` (Gemini 2.5 Flash, Pro, Flash-Lite): one
  ``generateContent`` request; the image, if any, travels inline in the request
  (a GIF as a PNG of its first frame: Gemini does not read GIF).
  Token counts come from ``usageMetadata`` (thinking tokens are billed as output).
* ``text_to_image`` and ``image_to_image`` (Gemini 2.5 Flash Image): the same
  request with ``responseModalities`` TEXT and IMAGE; the image comes back inline
  and is converted with Pillow when the output suffix asks for another format.
* ``text_to_video`` and ``image_to_video`` (Veo 3.0 / 3.1): a long-running
  operation, submitted once and polled until done; a run that was interrupted
  resumes it instead of submitting again. It lives in
  :mod:`acpbuild.providers.google.veo`.

Two API surfaces. google-genai 3.x refuses ``generate_videos`` in Gemini
Developer API mode (a client-side ValueError, before any request), so Veo always
goes through **Vertex AI** mode with an API key; Gemini text and images use the
**Gemini Developer API** (AI Studio) unless ``ACPBUILD_GOOGLE_VERTEX=1``.

What a user sets (environment or ``.env``):

``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``
    The key. Gemini calls use ``GEMINI_API_KEY`` first; Vertex calls (Veo, or
    everything with ``ACPBUILD_GOOGLE_VERTEX=1``) use ``GOOGLE_API_KEY`` first,
    so an AI Studio key and a Google Cloud key can live side by side. A Vertex
    call needs a Google Cloud API key of a project with the Vertex AI API
    enabled; an AI Studio (Gemini API) key is generally not accepted there.
``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_CLOUD_LOCATION``
    Optional, Vertex only. Unset: Vertex "express mode", the global endpoint
    with paths ``publishers/google/models/...``. Set: the regional endpoint with
    paths ``projects/P/locations/L/publishers/...`` (location defaults to
    ``us-central1``), for keys bound to a project. The SDK accepts a key
    together with a project and location and still authenticates with the key
    (``x-goog-api-key``; no Application Default Credentials are looked up):
    verified on 3.6.1, the floor in pyproject.toml (early releases refused the pair).
    gcloud users often have ``GOOGLE_CLOUD_PROJECT`` set for other tools: with
    an express-mode key, unset it for acpbuild.
``ACPBUILD_GOOGLE_VERTEX=1``
    Send Gemini text and image calls through Vertex too.
``ACPBUILD_GOOGLE_URL``
    Replaces the API root, i.e. the part before ``/v1/...`` (Developer API,
    default ``https://generativelanguage.googleapis.com``) and before
    ``/v1beta1/...`` (Vertex, default ``https://aiplatform.googleapis.com``).
    ``ACPBUILD_GOOGLE_VERTEX_URL``, if set, replaces the Vertex root alone.

The API versions are pinned (``v1`` for the Developer API, ``v1beta1`` for
Vertex, the SDK's own defaults) so the SDK's environment variables cannot move
requests elsewhere. The SDK's retries are off (its default); every request goes
through :func:`~acpbuild.provider.wire.with_retries`, and what it raises is
translated in :mod:`acpbuild.providers.google.errors`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from acpbuild.provider import (
    BadResponse,
    Job,
    Journal,
    Model,
    Outcome,
    Problem,
    RequestRejected,
    redact,
)
from acpbuild.provider.wire import write_atomic
from acpbuild.providers.google import models as gm
from acpbuild.providers.google import veo
from acpbuild.providers.google.client import GoogleConnection, read_image

if TYPE_CHECKING:
    from google.genai import types

T = TypeVar("T")

_LOOKUP_TIMEOUT_S = 60.0

_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# The input images Gemini reads (it also takes HEIC and HEIF, which acpbuild does not
# detect); it refuses GIF with "Unsupported MIME type: image/gif", so a GIF is sent
# as a PNG of its first frame.
# https://ai.google.dev/gemini-api/docs/image-understanding#supported-formats
_READS = frozenset({"image/png", "image/jpeg", "image/webp"})
_VIDEO_SUFFIXES = (".mp4", ".mov")  # Veo returns MP4, which QuickTime also reads

# Finish and block reasons that mean a safety or policy filter stopped the answer.
_POLICY_REASONS = frozenset(
    {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "RECITATION"}
    | {"IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR", "JAILBREAK"}
)


class GoogleProvider(GoogleConnection):
    """Gemini text and images, Veo video. See the module docstring."""

    name = "google"
    version = "1"
    api_version = "1.0"
    key_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    url_var = "ACPBUILD_GOOGLE_URL"
    setting_vars = (
        ("GOOGLE_CLOUD_PROJECT", "Veo through this project's regional Vertex endpoint (else express mode)"),
        ("GOOGLE_CLOUD_LOCATION", "the project's region (default us-central1)"),
        ("ACPBUILD_GOOGLE_VERTEX", "1: Gemini steps go through Vertex too"),
    )
    concurrency = 4

    def catalogue(self) -> Mapping[str, Model]:
        return gm.CATALOGUE

    @classmethod
    def check(
        cls, kind: str, model: Model, params: Mapping[str, Any], suffix: str
    ) -> list[Problem]:
        """Veo returns MP4 (a .webm output would hold the wrong container); Gemini images
        are saved as PNG, JPEG or WebP."""
        suffix = suffix.lower()
        if kind in gm.VIDEO_KINDS and suffix not in _VIDEO_SUFFIXES:
            return [Problem("output", "Veo returns MP4 video; name the output .mp4 (or .mov)")]
        if kind in gm.IMAGE_KINDS and suffix not in _IMAGE_FORMATS:
            return [
                Problem("output", f"Gemini images are saved as {', '.join(_IMAGE_FORMATS)}")
            ]
        return []

    def generate(self, job: Job, journal: Journal) -> Outcome:
        """Perform one Gemini call or one Veo operation, writing ``job.output``."""
        self.refuse_unfit(job)
        if job.kind in gm.GEMINI_KINDS:
            return self._text(job)
        if job.kind in gm.IMAGE_KINDS:
            return self._image(job)
        if job.kind in gm.VIDEO_KINDS:

            return veo.generate_video(self, job, journal)
        raise RequestRejected(
            f"model {job.model.name!r} does not serve {job.kind!r}", provider=self.name, sent=False
        )

    # -- Gemini text ------------------------------------------------------------
    def _text(self, job: Job) -> Outcome:
        from google.genai import types

        p = job.params
        config = types.GenerateContentConfig(
            system_instruction=p.get("system"),
            temperature=p.get("temperature"),
            max_output_tokens=p.get("max_tokens"),
            seed=p.get("seed"),
        )
        response = self._generate_content(job, config)
        candidate = self._answer(response)
        parts = (candidate.content.parts if candidate.content else None) or []
        text = "".join(part.text for part in parts if part.text and not part.thought)
        if not text:
            why = _reason(candidate.finish_reason)
            if why == "MAX_TOKENS":
                raise RequestRejected(
                    "the answer reached max_tokens before any text (thinking can use them "
                    "all); raise max_tokens",
                    provider=self.name,
                )
            raise BadResponse(f"Gemini returned no text (finish reason {why})", provider=self.name)
        write_atomic(job.output, text.encode("utf-8"), provider=self.name)
        return Outcome(
            request_id=response.response_id,
            usage=_token_usage(response),
            meta=self._meta(job, response, candidate),
        )

    # -- Gemini images ----------------------------------------------------------
    def _image(self, job: Job) -> Outcome:
        from google.genai import types

        want = _IMAGE_FORMATS[job.output.suffix.lower()]  # refuse_unfit checked it
        p = job.params
        aspect = p.get("aspect_ratio")
        config = types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect) if aspect else None,
            temperature=p.get("temperature"),
            seed=p.get("seed"),
        )
        response = self._generate_content(job, config)
        candidate = self._answer(response)
        parts = (candidate.content.parts if candidate.content else None) or []
        images = [
            part.inline_data
            for part in parts
            if part.inline_data
            and part.inline_data.data
            and (part.inline_data.mime_type or "").startswith("image/")
            and not part.thought
        ]
        if not images:
            said = " ".join(part.text for part in parts if part.text)[:300]
            raise BadResponse(
                f"Gemini returned no image (finish reason {_reason(candidate.finish_reason)})"
                + (f"; it said: {redact(said, self.env)}" if said else ""),
                provider=self.name,
            )
        blob = images[-1]  # a model that refines its image sends the final one last
        assert blob.data is not None
        self._write_image(blob.data, want, job.output)
        meta = self._meta(job, response, candidate)
        meta.update(_token_usage(response))
        meta["returned_mime_type"] = blob.mime_type
        return Outcome(request_id=response.response_id, usage={"images": 1}, meta=meta)

    def _write_image(self, data: bytes, want: str, dest: Path) -> None:
        """Check the image decodes completely; convert it when its format is not ``want``."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # decodes every pixel: a truncated image fails here
                if im.format == want:
                    payload = data
                else:
                    out: Image.Image = im
                    if want == "JPEG" and im.mode not in ("RGB", "L"):
                        out = im.convert("RGB")
                    buffer = io.BytesIO()
                    out.save(buffer, format=want)
                    payload = buffer.getvalue()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise BadResponse(
                f"the image Gemini returned does not decode ({len(data)} bytes: {exc})",
                provider=self.name,
            ) from exc
        write_atomic(dest, payload, provider=self.name)

    # -- shared Gemini plumbing -------------------------------------------------
    def _generate_content(
        self, job: Job, config: types.GenerateContentConfig
    ) -> types.GenerateContentResponse:
        from google.genai import types

        parts: list[types.Part] = []
        if job.params.get("image") is not None:
            data, mime = self._input_image(Path(job.params["image"]))
            parts.append(types.Part.from_bytes(data=data, mime_type=mime))
        parts.append(types.Part.from_text(text=job.params["prompt"]))
        contents = [types.Content(role="user", parts=parts)]
        model_id = job.model.endpoints[job.kind]
        vertex = self._gemini_on_vertex()
        with self._client(vertex=vertex, timeout_s=job.timeout_s) as client:
            return self._call(
                lambda: client.models.generate_content(
                    model=model_id, contents=contents, config=config
                ),
                billable=True,
                vertex=vertex,
            )

    def _input_image(self, path: Path) -> tuple[bytes, str]:
        """The image's bytes and MIME type, in a format Gemini reads (a GIF becomes a PNG)."""
        data, mime = read_image(path, self.name)
        if mime in _READS:
            return data, mime
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.seek(0)  # an animated GIF: its first frame
                buffer = io.BytesIO()
                im.convert("RGBA").save(buffer, format="PNG")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise RequestRejected(
                f"the input image {path.name} ({mime}) does not decode, so it cannot be sent "
                f"as the PNG Gemini reads: {exc}",
                provider=self.name,
                sent=False,
            ) from exc
        return buffer.getvalue(), "image/png"

    def _answer(self, response: types.GenerateContentResponse) -> types.Candidate:
        """The first candidate, or the content-policy refusal that replaced it."""
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            why = _reason(feedback.block_reason)
            said = redact(feedback.block_reason_message or "", self.env)[:300]
            detail = f": {said}" if said else ""
            raise RequestRejected(
                f"the prompt was refused by Google's content policy (blocked: {why}{detail}); "
                "change the prompt or image",
                provider=self.name,
            )
        if not response.candidates:
            raise BadResponse("Gemini returned no candidates", provider=self.name)
        candidate = response.candidates[0]
        why = _reason(candidate.finish_reason)
        if why in _POLICY_REASONS:
            raise RequestRejected(
                f"the answer was refused by Google's content policy (finish reason {why}); "
                "change the prompt or image",
                provider=self.name,
            )
        return candidate

    def _meta(
        self, job: Job, response: types.GenerateContentResponse, candidate: types.Candidate
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "model": job.model.endpoints[job.kind],
            "api": "vertex" if self._gemini_on_vertex() else "gemini",
            "finish_reason": _reason(candidate.finish_reason),
        }
        if response.model_version:
            meta["model_version"] = response.model_version
        return meta

    # -- ping -------------------------------------------------------------------
    def pings(self) -> dict[str, Callable[[], str]]:
        """The Gemini API, and Vertex AI apart from it: Veo always goes through Vertex,
        with ``GOOGLE_API_KEY`` first, so a key that works for Gemini proves nothing there."""
        if self._gemini_on_vertex():
            return {"ping": self.ping}  # every call goes through Vertex already
        return {"ping": self.ping, "vertex ping": self.ping_vertex}

    def ping(self) -> str:
        """List one model (free): proves the key and the endpoint Gemini calls use."""
        return self._ping(vertex=self._gemini_on_vertex())

    def ping_vertex(self) -> str:
        """List one model through Vertex AI, as Veo calls go (key, project and endpoint)."""
        return self._ping(vertex=True)

    def _ping(self, *, vertex: bool) -> str:
        with self._client(vertex=vertex, timeout_s=_LOOKUP_TIMEOUT_S) as client:
            pager = self._call(
                lambda: client.models.list(config={"page_size": 1}), billable=False, vertex=vertex
            )
            first = pager.page[0].name if pager.page else None
        if vertex:
            project = self.env.get("GOOGLE_CLOUD_PROJECT")
            where = f"project {project}" if project else "express mode, no project"
            api = f"Vertex AI ({where})"
        else:
            api = "Gemini API"
        return f"Google {api}: key accepted" + (f" (first model listed: {first})" if first else "")


# -- helpers -------------------------------------------------------------------
def _reason(value: Any) -> str:
    """An SDK enum (or a raw string) as its plain name."""
    if value is None:
        return "none"
    return str(getattr(value, "value", value))


def _token_usage(response: Any) -> dict[str, float]:
    meta = response.usage_metadata
    if meta is None:
        return {}
    return {
        "input_tokens": float(meta.prompt_token_count or 0),
        "output_tokens": float(
            (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
        ),
    }
