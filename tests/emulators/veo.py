"""What Vertex AI's Veo accepts in a ``predictLongRunning`` request, and where each rule comes from.

:class:`tests.emulators.google.GoogleEmulator` refuses every request these rules
refuse, with Vertex's ``400 INVALID_ARGUMENT`` (an unknown model gets ``404
NOT_FOUND``), so an adapter that sends what Vertex would refuse fails its tests
instead of passing against an emulator that takes anything.

Sources (the revision each was read at, where the page gives one):

=======  ==========================================================================================
REF      https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation
         (Veo on Vertex AI API reference: request body, instances, parameters, response; 2025-10)
V30      https://cloud.google.com/vertex-ai/generative-ai/docs/models/veo/3-0-generate-001
V30F     https://cloud.google.com/vertex-ai/generative-ai/docs/models/veo/3-0-fast-generate-001
         (2025-09-04)
V31      https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/veo/3-1-generate
         (veo-3.1-generate-001 and veo-3.1-fast-generate-001)
ERR      https://cloud.google.com/apis/design/errors (``{"error": {"code", "message", "status"}}``)
=======  ==========================================================================================

==================  ===============================================================  ===============
field               accepted (anything else: 400 INVALID_ARGUMENT)                   source
==================  ===============================================================  ===============
model (path)        veo-3.0-generate-001, veo-3.0-fast-generate-001,                 REF, V30, V30F,
                    veo-3.1-generate-001, veo-3.1-fast-generate-001; another:        V31
                    404 NOT_FOUND "Publisher Model ... was not found"
body                ``instances``, ``parameters`` and the SDK's ``labels``; another  REF, ERR
                    name: "Invalid JSON payload received. Unknown name ..."
instances           exactly one object, with ``prompt`` and/or ``image``             REF
prompt              a string; required unless ``image`` is given                     REF
image               exactly one of ``bytesBase64Encoded`` (valid base64) or          REF
                    ``gcsUri`` (``gs://...``), and ``mimeType``, which is required
                    and one of ``image/jpeg``, ``image/png``
parameters          an object, required (``durationSeconds`` is); names as below     REF
durationSeconds     required integer: 4, 6 or 8 ("Veo 3 models: 4, 6, or 8")         REF, V30, V31
aspectRatio         ``16:9`` (default) or ``9:16``                                   REF, V30, V31
resolution          ``720p`` (default) or ``1080p``, with either aspect ratio        REF, V30, V31
generateAudio       required boolean ("Required for Veo 3 models")                   REF
sampleCount         integer 1 to 4 ("Maximum videos returned per request: 4")        REF, V30, V31
negativePrompt      a string                                                         REF
seed                integer 0 to 4,294,967,295 (uint32)                              REF
personGeneration    ``allow_adult`` (default) or ``dont_allow``                      REF
enhancePrompt       a boolean                                                        REF
compressionQuality  ``optimized`` (default) or ``lossless``                          REF
resizeMode          ``pad`` (default) or ``crop``, with an image only                REF
storageUri          ``gs://BUCKET[/PREFIX]``. Set: the videos are written there and  REF
                    the operation answers only ``gcsUri: gs://.../sample_N.mp4``;
                    unset: each video comes inline as ``bytesBase64Encoded``
==================  ===============================================================  ===============

Not encoded, and why:

* ``lastFrame``, ``video``, ``referenceImages`` and ``mask`` (REF) exist but are
  not modelled; acpbuild sends none of them, so the emulator refuses them rather
  than pretend to serve them. A parameter name REF does not list (``fps``,
  ``pubsubTopic``...) is refused too: the point is that a misspelt name fails
  here instead of being silently ignored (whether Vertex ignores or refuses an
  unknown name is not documented).
* V30F (revision 2025-09-04) gives veo-3.0-fast-generate-001 a video length of
  8 seconds only and lists image-to-video as not supported; REF (newer) gives
  "Veo 3 models" 4, 6 or 8 seconds, and a Vertex-backed catalogue
  (vercel.com/ai-gateway/models/veo-3.0-fast-generate-001) lists 8 s but also
  image-to-video. The emulator follows REF, so it does not settle whether Vertex
  takes 4 or 6 s, or a first frame, on Veo 3.0 Fast: that is open until checked
  against the live API.
* Summaries of the Gemini API's Veo page (ai.google.dev/gemini-api/docs/video)
  limit Veo 3's 1080p to 16:9. That is the Developer API; V30 and V31 list both
  aspect ratios and both resolutions with no such limit, so none is encoded.
* 4K output for Veo 3.1 (a preview some resellers list) is not on V31 and is refused.

The wording of each message is the emulator's own; the status, code and shape are Vertex's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

#: parameter names REF lists for Veo
PARAMETERS = frozenset(
    {
        "aspectRatio",
        "compressionQuality",
        "durationSeconds",
        "enhancePrompt",
        "generateAudio",
        "negativePrompt",
        "personGeneration",
        "resizeMode",
        "resolution",
        "sampleCount",
        "seed",
        "storageUri",
    }
)
IMAGE_MIME_TYPES = ("image/jpeg", "image/png")
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class VeoModel:
    """What one Veo model version accepts."""

    durations: tuple[int, ...] = (4, 6, 8)
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    resolutions: tuple[str, ...] = ("720p", "1080p")
    max_samples: int = 4
    audio_required: bool = True


MODELS: dict[str, VeoModel] = {
    "veo-3.0-generate-001": VeoModel(),  # V30
    "veo-3.0-fast-generate-001": VeoModel(),  # REF over V30F, see the docstring
    "veo-3.1-generate-001": VeoModel(),  # V31
    "veo-3.1-fast-generate-001": VeoModel(),  # V31
}


class _Invalid(Exception):
    pass


def refusal(body: Any, model: VeoModel) -> str | None:
    """Why Vertex answers 400 INVALID_ARGUMENT to the request ``body``, or None if it accepts it."""
    try:
        _check(body, model)
    except _Invalid as exc:
        return str(exc)
    return None


def _check(body: Any, model: VeoModel) -> None:
    if not isinstance(body, dict):
        raise _Invalid("Invalid JSON payload received. Expected an object.")
    for name in body:
        if name not in ("instances", "parameters", "labels"):
            raise _Invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise _Invalid("instances must hold exactly one video generation instance.")
    instance = instances[0]
    for name in instance:
        if name not in ("prompt", "image"):
            raise _Invalid(f"Unsupported instance field: {name}.")
    image = instance.get("image")
    if image is not None:
        _check_image(image)
    prompt = instance.get("prompt")
    if prompt is None and image is None:
        raise _Invalid("A text prompt is required for text-to-video generation.")
    if prompt is not None and not isinstance(prompt, str):
        raise _Invalid("prompt must be a string.")
    params = body.get("parameters")
    if not isinstance(params, dict):
        raise _Invalid("parameters are required: durationSeconds is a required parameter.")
    _check_parameters(params, model, has_image=image is not None)


def _check_image(image: Any) -> None:
    if not isinstance(image, dict):
        raise _Invalid("image must be an object with bytesBase64Encoded or gcsUri, and mimeType.")
    for name in image:
        if name not in ("bytesBase64Encoded", "gcsUri", "mimeType"):
            raise _Invalid(f"Unsupported image field: {name}.")
    sources = [name for name in ("bytesBase64Encoded", "gcsUri") if name in image]
    if len(sources) != 1:
        raise _Invalid("image must set exactly one of bytesBase64Encoded and gcsUri.")
    if "bytesBase64Encoded" in image:
        data = image["bytesBase64Encoded"]
        try:
            if not isinstance(data, str) or not base64.b64decode(data, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise _Invalid("image.bytesBase64Encoded is not valid base64 image data.") from None
    else:
        _check_gcs_uri("image.gcsUri", image["gcsUri"])
    mime = image.get("mimeType")
    if mime is None:
        raise _Invalid("image.mimeType is required.")
    if mime not in IMAGE_MIME_TYPES:
        supported = ", ".join(IMAGE_MIME_TYPES)
        raise _Invalid(f"Unsupported image mimeType: {mime!r}. Supported: {supported}.")


def _check_gcs_uri(field: str, value: Any) -> None:
    bucket = value.removeprefix("gs://").split("/")[0] if isinstance(value, str) else ""
    if not isinstance(value, str) or not value.startswith("gs://") or not bucket:
        raise _Invalid(f"{field} must be a Cloud Storage URI, gs://BUCKET[/PATH], not {value!r}.")


def _one_of(name: str, value: Any, accepted: tuple[Any, ...]) -> None:
    if value not in accepted or isinstance(value, bool) != isinstance(accepted[0], bool):
        supported = ", ".join(map(str, accepted))
        raise _Invalid(f"Unsupported {name}: {value!r}. Supported values: {supported}.")


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{name} must be an integer, not {value!r}.")
    if not low <= value <= high:
        raise _Invalid(f"{name} must be between {low} and {high}, not {value}.")


def _check_parameters(params: dict[str, Any], model: VeoModel, *, has_image: bool) -> None:
    for name in params:
        if name not in PARAMETERS:
            raise _Invalid(f"Unsupported parameter: {name}.")
    if "durationSeconds" not in params:
        raise _Invalid("durationSeconds is a required parameter.")
    duration = params["durationSeconds"]
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise _Invalid(f"durationSeconds must be an integer, not {duration!r}.")
    _one_of("durationSeconds", duration, model.durations)
    if "aspectRatio" in params:
        _one_of("aspectRatio", params["aspectRatio"], model.aspect_ratios)
    if "resolution" in params:
        _one_of("resolution", params["resolution"], model.resolutions)
    if "generateAudio" in params:
        if not isinstance(params["generateAudio"], bool):
            raise _Invalid(f"generateAudio must be a boolean, not {params['generateAudio']!r}.")
    elif model.audio_required:
        raise _Invalid("generateAudio is required for Veo 3 models.")
    if "sampleCount" in params:
        _integer("sampleCount", params["sampleCount"], 1, model.max_samples)
    if "seed" in params:
        _integer("seed", params["seed"], 0, SEED_MAX)
    if "negativePrompt" in params and not isinstance(params["negativePrompt"], str):
        raise _Invalid("negativePrompt must be a string.")
    if "personGeneration" in params:
        _one_of("personGeneration", params["personGeneration"], ("allow_adult", "dont_allow"))
    if "enhancePrompt" in params and not isinstance(params["enhancePrompt"], bool):
        raise _Invalid("enhancePrompt must be a boolean.")
    if "compressionQuality" in params:
        _one_of("compressionQuality", params["compressionQuality"], ("optimized", "lossless"))
    if "resizeMode" in params:
        if not has_image:
            raise _Invalid("resizeMode applies to image-to-video requests only.")
        _one_of("resizeMode", params["resizeMode"], ("pad", "crop"))
    if "storageUri" in params:
        _check_gcs_uri("storageUri", params["storageUri"])
