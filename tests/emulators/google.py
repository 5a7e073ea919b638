"""A local stand-in for the Gemini Developer API and Vertex AI, as google-genai 3.x speaks them.

Developer API (``vertexai=False``, ``api_version v1``):

* ``POST /v1/models/{model}:generateContent``: text, or from an image model an
  inline PNG part. It refuses what Gemini refuses (unknown models, modalities a
  model does not produce, values out of range): :mod:`tests.emulators.gemini`
  holds those rules and their sources.
* ``GET /v1/models``: the model list (``ping``).

Vertex AI (``vertexai=True``, API key, ``api_version v1beta1``); paths may carry
``projects/{p}/locations/{l}/`` before ``publishers`` when a project is set:

* ``POST /v1beta1/.../publishers/google/models/{model}:generateContent``
* ``POST /v1beta1/.../publishers/google/models/{veo}:predictLongRunning``: checks the
  request as Vertex does (the rules, each with its source, are in
  :mod:`tests.emulators.veo`), then submits an operation, answering
  ``{"name": "projects/.../operations/op-N"}``.
* ``POST /v1beta1/{resource}:fetchPredictOperation`` with ``{"operationName"}``:
  ``{"name"}`` while running, then ``{"name","done":true,"response":{"videos":[...]}}``,
  each video inline (``bytesBase64Encoded``) or, when the request set
  ``parameters.storageUri``, only its ``gcsUri`` (``gs://...``), as Vertex answers.
* ``GET /v1beta1/publishers/google/models``: the model list.
* ``GET /media/{id}.mp4``: a video by URL. Vertex never answers with one; it is
  there for tests that script a gateway answering with a download link.

Errors use Google's shape ``{"error":{"code","status","message","details"}}``. A
wrong ``x-goog-api-key`` gets what each API really answers: 400 API_KEY_INVALID
from the Developer API, 401 UNAUTHENTICATED from Vertex. Prompts containing
``BLOCKME`` are blocked, ``UNSAFE`` ones end with finish reason SAFETY (Gemini)
or are filtered by RAI (Veo).
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

from tests.emulators import Emulator, Request, Response, gemini, real_mp4, veo

KEY = "test-google-key-0000"
CLOUD_KEY = "test-gcloud-key-0000"

_VERTEX_MODEL = r"/v1beta1/(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/([^/:]+)"


def error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "status": status, "message": message}
    if details:
        body["details"] = list(details)
    return {"error": body}


def png_bytes(size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def mp4_bytes(payload: int = 4000) -> bytes:
    """A real one-second MP4 (``payload`` is ignored: the file is what ffmpeg makes)."""
    return real_mp4()


class GoogleEmulator(Emulator):
    """Gemini and Veo on 127.0.0.1; ``submissions()`` counts Veo submits (the billed calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys = {KEY, CLOUD_KEY}
        self.image = png_bytes()
        self.video = mp4_bytes()
        #: polls an operation answers "running" before it is done
        self.polls_before_done = 1
        #: operations never finish while set (tests of timeouts)
        self.hold = False
        self.operations: dict[str, dict[str, Any]] = {}
        #: the Cloud Storage objects Veo wrote (requests with ``storageUri``): gs:// URI -> bytes
        self.bucket: dict[str, bytes] = {}
        self.route("POST", r"/v1/models/([^/:]+):generateContent", self._generate, role="submit")
        self.route("POST", _VERTEX_MODEL + r":generateContent", self._generate, role="submit")
        self.route("POST", _VERTEX_MODEL + r":predictLongRunning", self._submit, role="submit")
        self.route("POST", r"/v1beta1/(.+):fetchPredictOperation", self._fetch, role="poll")
        self.route("GET", r"/v1/models", self._models)
        self.route("GET", r"/v1beta1/publishers/google/models", self._models)
        self.route("GET", r"/media/([a-z0-9-]+)\.mp4", self._media, role="download")

    def submissions(self) -> list[Request]:
        return self.calls("POST", r".*:predictLongRunning")

    def generations(self) -> list[Request]:
        return self.calls("POST", r".*:generateContent")

    # -- auth -------------------------------------------------------------------
    def _refuse(self, request: Request) -> Response | None:
        if request.headers.get("x-goog-api-key") in self.keys:
            return None
        if request.path.startswith("/v1beta1/"):
            return Response(
                401,
                error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            )
        return Response(
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                },
            ),
        )

    # -- Gemini -----------------------------------------------------------------
    def _generate(self, request: Request, match: re.Match[str]) -> Response:
        refused = self._refuse(request)
        if refused:
            return refused
        body = request.json()
        model_id = match.group(1)
        vertex = request.path.startswith("/v1beta1/")
        refused = gemini.refusal(model_id, body, vertex=vertex)
        if refused:
            return refused
        parts = body["contents"][0]["parts"]
        prompt = " ".join(part.get("text", "") for part in parts)
        usage = {
            "promptTokenCount": 11,
            "candidatesTokenCount": 7,
            "thoughtsTokenCount": 5,
            "totalTokenCount": 23,
        }
        if "BLOCKME" in prompt:
            return Response(
                200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}
            )
        if "UNSAFE" in prompt:
            candidate: dict[str, Any] = {"finishReason": "SAFETY", "index": 0}
            return Response(200, {"candidates": [candidate], "usageMetadata": usage})
        if "IMAGE" in gemini.modalities(gemini.MODELS[model_id], body):
            out = [
                {"text": "Here is your picture."},
                {
                    "inlineData": {
                        "mimeType": "image/png",
                        "data": base64.b64encode(self.image).decode(),
                    }
                },
            ]
        else:
            out = [
                {"text": "pondering", "thought": True},
                {"text": f"echo: {prompt}"},
            ]
        return Response(
            200,
            {
                "candidates": [
                    {"content": {"role": "model", "parts": out}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": usage,
                "modelVersion": match.group(1),
                "responseId": f"resp-{len(self.generations())}",
            },
        )

    def _models(self, request: Request, match: re.Match[str]) -> Response:
        refused = self._refuse(request)
        if refused:
            return refused
        return Response(200, {"models": [{"name": "models/gemini-2.5-flash"}]})

    # -- Veo --------------------------------------------------------------------
    def _submit(self, request: Request, match: re.Match[str]) -> Response:
        refused = self._refuse(request)
        if refused:
            return refused
        model_id = match.group(1)
        model = veo.MODELS.get(model_id)
        if model is None:
            return Response(
                404,
                error(
                    404,
                    "NOT_FOUND",
                    f"Publisher Model `publishers/google/models/{model_id}` was not found "
                    "or your project does not have access to it.",
                ),
            )
        body = request.json()
        problem = veo.refusal(body, model)
        if problem:
            return Response(400, error(400, "INVALID_ARGUMENT", problem))
        params = body["parameters"]
        with self.lock:
            number = len(self.operations) + 1
            name = (
                f"projects/test-project/locations/us-central1/publishers/google/models/"
                f"{model_id}/operations/op-{number}"
            )
            self.operations[name] = {
                "polls": 0,
                "prompt": body["instances"][0].get("prompt", ""),
                "samples": params.get("sampleCount", 1),
                "storage_uri": params.get("storageUri"),
            }
        return Response(200, {"name": name})

    def _fetch(self, request: Request, match: re.Match[str]) -> Response:
        refused = self._refuse(request)
        if refused:
            return refused
        name = request.json().get("operationName", "")
        with self.lock:
            state = self.operations.get(name)
            if state is None or not name.startswith(match.group(1) + "/operations/"):
                return Response(404, error(404, "NOT_FOUND", f"Operation {name} not found."))
            state["polls"] += 1
            running = self.hold or state["polls"] <= self.polls_before_done
        if running:
            return Response(200, {"name": name})
        if "UNSAFE" in state["prompt"]:
            result: dict[str, Any] = {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": ["The video violates Vertex AI's usage guidelines."],
            }
        elif state["storage_uri"]:
            # Vertex writes each video under the storageUri prefix and answers with
            # its gs:// URI alone (the API reference, REF in tests.emulators.veo:
            # "If you don't provide a Cloud Storage bucket, base64-encoded video
            # bytes are returned in the response").
            folder = f"{state['storage_uri'].rstrip('/')}/{name.rsplit('/', 1)[-1]}"
            uris = [f"{folder}/sample_{i}.mp4" for i in range(state["samples"])]
            with self.lock:
                self.bucket.update(dict.fromkeys(uris, self.video))
            result = {"videos": [{"gcsUri": uri, "mimeType": "video/mp4"} for uri in uris]}
        else:
            encoded = base64.b64encode(self.video).decode()
            video = {"bytesBase64Encoded": encoded, "mimeType": "video/mp4"}
            result = {"videos": [video] * state["samples"]}
        result["@type"] = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
        return Response(200, {"name": name, "done": True, "response": result})

    def _media(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, self.video, {"Content-Type": "video/mp4"})
