"""What Gemini's ``generateContent`` refuses, for :mod:`tests.emulators.google`.

The Google emulator asks :func:`refusal` about every ``generateContent`` request,
on the Gemini Developer API (``/v1/models/{m}``) and on Vertex AI
(``/v1beta1/.../publishers/google/models/{m}``) alike, and answers what it
returns. The facts are this module's own copies (it never reads acpbuild's
catalogue), so a catalogue that drifts from the API fails against it. Errors
take Google's shape, ``{"error": {"code", "status", "message"}}``.

| Rule | Refusal | Source |
|---|---|---|
| the model is one Google serves: ``gemini-2.5-pro``, ``gemini-2.5-flash``, ``gemini-2.5-flash-lite``, ``gemini-2.5-flash-image`` | 404 NOT_FOUND "models/… is not found for API version v1, or is not supported for generateContent. Call ListModels …"; on Vertex "Publisher Model ``…`` was not found or your project does not have access to it. …" | [1] model codes; the messages as the two APIs answer them (public reports of retired models) |
| ``generationConfig.responseModalities`` is a combination the model produces: TEXT for the text models; TEXT and IMAGE, or IMAGE alone, for the image model (unset: its default) | 400 INVALID_ARGUMENT "The requested combination of response modalities (TEXT, IMAGE) is not supported by the model. models/… accepts the following combination of response modalities: * TEXT" | [1] "Supported data types: Output"; [2] "Output types"; the message as the API answers it |
| ``temperature`` 0..2, ``topP`` 0..1 | 400 INVALID_ARGUMENT "Unable to submit request because it has a temperature value of … but the supported range is from 0 (inclusive) to 2.0001 (exclusive). …" | [3] "Parameter defaults" of each model (Temperature 0.0-2.0, topP 0.0-1.0); the wording follows the maxOutputTokens message |
| ``maxOutputTokens`` 1..65,536 on the 2.5 text models, 1..32,768 on the image model | 400 INVALID_ARGUMENT "Unable to submit request because it has a maxOutputTokens value of 70000 but the supported range is from 1 (inclusive) to 65537 (exclusive). Update the value and try again." | [1] "Output token limit"; [3] "Maximum output tokens"; the message as the API answers it |
| ``imageConfig.aspectRatio`` (image model) is 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9 or 21:9 | 400 INVALID_ARGUMENT (wording the emulator's own) | [2] "Aspect ratios"; [3] "Supported aspect ratios" |
| an ``inlineData`` image is PNG, JPEG, WebP, HEIC or HEIF (PNG, JPEG or WebP for the image model): no GIF | 400 INVALID_ARGUMENT "Unsupported MIME type: image/gif" | [4] "Supported image formats"; [3] (image model); the message as the API answers it (Google AI forum, "Gemini 2 API returns invalid parameter error for GIF inputs") |
| ``contents`` is a non-empty list | 400 INVALID_ARGUMENT "* GenerateContentRequest.contents: contents is not specified" | [5] ``contents[]`` (required) |

An image model asked for IMAGE answers with an inline PNG part (after a text
part); a text model answers with a thought part and an "echo: …" text part.

[1] https://ai.google.dev/gemini-api/docs/models (and each model's page, e.g.
https://ai.google.dev/gemini-api/docs/models/gemini-2.5-flash-image)
[2] https://ai.google.dev/gemini-api/docs/image-generation
[3] https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/2-5-flash-image,
…/2-5-flash, …/2-5-pro, …/2-5-flash-lite
[4] https://ai.google.dev/gemini-api/docs/image-understanding#supported-formats
[5] https://ai.google.dev/api/generate-content#method:-models.generatecontent
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import Response

_TEXT = frozenset({"TEXT"})
_INPUT_IMAGES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})


@dataclass(frozen=True)
class GeminiModel:
    """What one model accepts in ``generateContent``."""

    #: the most ``maxOutputTokens`` it takes
    max_output_tokens: int
    #: the ``responseModalities`` combinations it produces; the first is its default
    modalities: tuple[frozenset[str], ...] = (_TEXT,)
    #: the MIME types of the images it reads
    input_images: frozenset[str] = _INPUT_IMAGES
    #: the ``imageConfig.aspectRatio`` values it takes (empty: it makes no images)
    aspect_ratios: tuple[str, ...] = ()

    @property
    def makes_images(self) -> bool:
        return any("IMAGE" in combination for combination in self.modalities)


#: model id -> what it accepts ([1], [3])
MODELS: dict[str, GeminiModel] = {
    "gemini-2.5-pro": GeminiModel(65_536),
    "gemini-2.5-flash": GeminiModel(65_536),
    "gemini-2.5-flash-lite": GeminiModel(65_536),
    "gemini-2.5-flash-image": GeminiModel(
        32_768,
        (frozenset({"TEXT", "IMAGE"}), frozenset({"IMAGE"})),
        frozenset({"image/png", "image/jpeg", "image/webp"}),
        ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"),
    ),
}

#: generationConfig field -> (lowest, highest) for every model ([3])
RANGES: dict[str, tuple[float, float]] = {"temperature": (0.0, 2.0), "topP": (0.0, 1.0)}


def invalid(message: str) -> Response:
    return Response(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": message}})


def not_found(model_id: str, *, vertex: bool) -> Response:
    if vertex:
        message = (
            f"Publisher Model `publishers/google/models/{model_id}` was not found or your "
            "project does not have access to it. Please ensure you are using a valid model "
            "version. For more information, see: "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
        )
    else:
        message = (
            f"models/{model_id} is not found for API version v1, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
    return Response(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": message}})


def modalities(model: GeminiModel, body: dict[str, Any]) -> frozenset[str]:
    """The output modalities a request asks for: its own, else the model's default."""
    asked = (body.get("generationConfig") or {}).get("responseModalities")
    return frozenset(m.upper() for m in asked) if asked else model.modalities[0]


def _out_of_range(name: str, value: Any, low: float, high: float, step: float) -> Response:
    return invalid(
        f"Unable to submit request because it has a {name} value of {value} but the supported "
        f"range is from {low:g} (inclusive) to {high + step:g} (exclusive). Update the value "
        "and try again."
    )


def _images(body: dict[str, Any]) -> list[str]:
    """The MIME types of the request's inline images (either JSON spelling of the fields)."""
    found = []
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                found.append(blob.get("mimeType") or blob.get("mime_type") or "")
    return found


def refusal(model_id: str, body: dict[str, Any], *, vertex: bool) -> Response | None:
    """What the real API answers to a ``generateContent`` it refuses, else None."""
    model = MODELS.get(model_id)
    if model is None:
        return not_found(model_id, vertex=vertex)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return invalid("* GenerateContentRequest.contents: contents is not specified\n")
    config = body.get("generationConfig") or {}
    asked = modalities(model, body)
    if asked not in model.modalities:
        accepted = "\n".join(
            "* " + ", ".join(sorted(combination, reverse=True)) for combination in model.modalities
        )
        return invalid(
            f"The requested combination of response modalities ({', '.join(sorted(asked, reverse=True))}) "
            f"is not supported by the model. models/{model_id} accepts the following "
            f"combination of response modalities:\n{accepted}\n"
        )
    for name, (low, high) in RANGES.items():
        value = config.get(name)
        if value is not None and not low <= value <= high:
            return _out_of_range(name, value, low, high, 0.0001)
    tokens = config.get("maxOutputTokens")
    if tokens is not None and not 1 <= tokens <= model.max_output_tokens:
        return _out_of_range("maxOutputTokens", tokens, 1, model.max_output_tokens, 1)
    aspect = (config.get("imageConfig") or {}).get("aspectRatio")
    if aspect is not None and aspect not in model.aspect_ratios:
        supported = ", ".join(model.aspect_ratios) or "none: the model makes no images"
        return invalid(f"Unsupported aspect ratio {aspect!r}; supported: {supported}")
    for mime in _images(body):
        if mime not in model.input_images:
            return invalid(f"Unsupported MIME type: {mime}")
    return None
