"""The Google catalogue: Gemini text and image models, and Veo video models.

Catalogue keys are Google's own model ids, so a recipe's ``model = "gemini-2.5-flash"``
is what reaches the API. Parameter names are acpbuild's (``max_tokens``,
``duration_s``...); :mod:`acpbuild.providers.google.gemini` (Gemini) and
:mod:`acpbuild.providers.google.veo` (Veo) map them onto the SDK's.
"""

from __future__ import annotations

from acpbuild.provider import Model, Param

TEXT = "text"
IMAGE_UNDERSTANDING = "image_understanding"
TEXT_TO_IMAGE = "text_to_image"
IMAGE_TO_IMAGE = "image_to_image"
TEXT_TO_VIDEO = "text_to_video"
IMAGE_TO_VIDEO = "image_to_video"

GEMINI_KINDS = (TEXT, IMAGE_UNDERSTANDING)
IMAGE_KINDS = (TEXT_TO_IMAGE, IMAGE_TO_IMAGE)
VIDEO_KINDS = (TEXT_TO_VIDEO, IMAGE_TO_VIDEO)

# Gemini 2.5 Flash Image's documented output aspect ratios.
IMAGE_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")

_SEED = Param("int", min=0, max=2**31 - 1, help="best-effort deterministic sampling")
_UINT32_SEED = Param("int", min=0, max=2**32 - 1, help="best-effort deterministic sampling")


def _gemini_params() -> dict[str, Param]:
    return {
        "prompt": Param("str", required=True, help="the user message"),
        "image": Param(
            "image",
            required=True,
            kinds=(IMAGE_UNDERSTANDING,),
            help="an image to describe or answer questions about (PNG, JPEG, WebP; a GIF is "
            "sent as its first frame)",
        ),
        "system": Param("str", help="system instruction"),
        "temperature": Param("float", min=0.0, max=2.0, help="sampling temperature"),
        "max_tokens": Param(
            "int",
            # always sent, so the estimate (and the budget reserved for it) is an upper bound
            default=8192,
            min=1,
            max=65536,
            help="cap on output tokens; on 2.5 models thinking tokens count against it; bounds the cost",
        ),
        "seed": _SEED,
    }


def _gemini(model_id: str, description: str) -> Model:
    return Model(
        model_id,
        {TEXT: model_id, IMAGE_UNDERSTANDING: model_id},
        _gemini_params(),
        description,
    )


def _image_params() -> dict[str, Param]:
    return {
        "prompt": Param("str", required=True, help="what to draw, or how to change the image"),
        "image": Param("image", required=True, kinds=(IMAGE_TO_IMAGE,), help="the image to edit"),
        "aspect_ratio": Param(
            "str", choices=IMAGE_ASPECT_RATIOS, help="output shape; default square (1:1)"
        ),
        "temperature": Param("float", min=0.0, max=2.0, help="sampling temperature"),
        "seed": _SEED,
    }


def _veo_params() -> dict[str, Param]:
    return {
        "prompt": Param("str", required=True, help="what happens in the video"),
        "image": Param(
            "image",
            required=True,
            kinds=(IMAGE_TO_VIDEO,),
            help="the first frame (PNG or JPEG)",
        ),
        "duration_s": Param("int", default=8, choices=(4, 6, 8), help="length in seconds"),
        "aspect_ratio": Param("str", default="16:9", choices=("16:9", "9:16")),
        "resolution": Param("str", default="720p", choices=("720p", "1080p")),
        "negative_prompt": Param("str", help="what the video should not show"),
        "generate_audio": Param(
            "bool", default=True, help="generate a sound track (billed at a higher rate per second)"
        ),
        "seed": _UINT32_SEED,
    }


def _veo(model_id: str, description: str) -> Model:
    return Model(
        model_id, {TEXT_TO_VIDEO: model_id, IMAGE_TO_VIDEO: model_id}, _veo_params(), description
    )


CATALOGUE: dict[str, Model] = {
    "gemini-2.5-flash": _gemini(
        "gemini-2.5-flash", "Gemini 2.5 Flash: fast thinking model, text and image input."
    ),
    "gemini-2.5-pro": _gemini(
        "gemini-2.5-pro", "Gemini 2.5 Pro: the most capable 2.5 model for reasoning and code."
    ),
    "gemini-2.5-flash-lite": _gemini(
        "gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite: the cheapest and fastest 2.5 model."
    ),
    "gemini-2.5-flash-image": Model(
        "gemini-2.5-flash-image",
        {TEXT_TO_IMAGE: "gemini-2.5-flash-image", IMAGE_TO_IMAGE: "gemini-2.5-flash-image"},
        _image_params(),
        "Gemini 2.5 Flash Image: image generation and editing from a prompt.",
    ),
    "veo-3.0-generate-001": _veo(
        "veo-3.0-generate-001", "Veo 3: text or first frame to 720p/1080p video with audio."
    ),
    "veo-3.0-fast-generate-001": _veo(
        "veo-3.0-fast-generate-001", "Veo 3 Fast: quicker and cheaper Veo 3."
    ),
    "veo-3.1-generate-001": _veo(
        "veo-3.1-generate-001", "Veo 3.1: better prompt adherence and audio than Veo 3."
    ),
    "veo-3.1-fast-generate-001": _veo(
        "veo-3.1-fast-generate-001", "Veo 3.1 Fast: quicker and cheaper Veo 3.1."
    ),
}
