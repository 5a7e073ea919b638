"""What each fal endpoint of acpbuild's catalogue accepts, and how fal refuses the rest.

A fal model is a pydantic model behind FastAPI, so :data:`SCHEMAS` writes each
endpoint's input as the pydantic model it is, and :func:`refusal` lets pydantic
itself produce fal's answer. fal answers as FastAPI does: a body that fails
validation gets ``422 {"detail": [{"type", "loc": ["body", field], "msg",
"input", "ctx"?}]}`` with ``x-fal-billable-units: 0`` (not billed); fields no
schema names are ignored, not refused (no schema forbids extra fields), so
:func:`ignored` lists them for tests to assert that nothing the adapter sends
is silently dropped. Through the queue the submit is accepted and the job
reaches COMPLETED with no ``error``; the refusal is the answer to the result
GET. An endpoint path an app does not serve is refused the same way, with
``404 {"detail": "Path /... not found"}``.

Sources
-------
Schemas: fal's published OpenAPI for each endpoint,
``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<endpoint>``, which
is what the endpoint's API page ``https://fal.ai/models/<endpoint>/api`` and
its ``llms.txt`` render. Read as fal's own JavaScript client bundles it:
github.com/fal-ai/fal-js at 3293c7d (2026-05-12),
``libs/schemas/src/{image,video}/schemas.gen.ts``, schema names below; ranges
cross-checked against ``libs/types/src/*/zod.gen.ts`` at 6c45fd5 (2026-04-16).

Per endpoint (its page is ``https://fal.ai/models/<endpoint>/api``; the
schema's name in ``schemas.gen.ts`` in brackets):

- ``fal-ai/flux/dev`` [FluxDevInputSchema]: prompt required; image_size a
  preset or {width, height}; num_inference_steps int 1-50; guidance_scale
  1-20; num_images 1-4; output_format jpeg|png; seed int or null.
- ``fal-ai/flux/schnell`` [FluxSchnellInputSchema]: the same, steps 1-12.
- ``fal-ai/imagen4/preview`` [Imagen4PreviewInputSchema]: prompt 3-5000
  characters; aspect_ratio 1:1|16:9|9:16|4:3|3:4; resolution 1K|2K;
  output_format jpeg|png|webp; seed int or null. No negative_prompt: fal-js's
  types had it at 5677122 (2025-10-17) and not at edd6d93 (2025-12-15).
- ``fal-ai/bytedance/seedream/v3/text-to-image``
  [BytedanceSeedreamV3TextToImageInputSchema]: image_size a preset, an
  object or null; guidance_scale 1-10.
- ``fal-ai/flux-pro/kontext`` [FluxProKontextInputSchema]: image_url
  required (1 character or more); aspect_ratio one of 9 or null;
  safety_tolerance "1"-"6"; guidance_scale 1-20.
- ``fal-ai/minimax/hailuo-02/standard/text-to-video``
  [MinimaxHailuo02StandardTextToVideoInputSchema]: prompt 1-2000 characters;
  duration the strings "6"|"10".
- ``.../hailuo-02/standard/image-to-video``
  [MinimaxHailuo02StandardImageToVideoInputSchema]: prompt up to 2000
  characters; image_url required; duration likewise; resolution 512P|768P.
- ``fal-ai/kling-video/v2.1/master/text-to-video``
  [KlingVideoV21MasterTextToVideoInputSchema]: prompt and negative_prompt up
  to 2500 characters; duration the strings "5"|"10"; aspect_ratio
  16:9|9:16|1:1; cfg_scale 0-1.
- ``.../v2.1/master/image-to-video``
  [KlingVideoV21MasterImageToVideoInputSchema]: the same with image_url
  required and no aspect_ratio.
- ``fal-ai/veo3`` [Veo3InputSchema]: prompt up to 20000 characters; duration
  "4s"|"6s"|"8s"; aspect_ratio 16:9|9:16 (1:1 left between the same two
  fal-js commits); resolution 720p|1080p; negative_prompt and seed optional.
- ``fal-ai/veo3/image-to-video`` [Veo3ImageToVideoInputSchema]: the same with
  image_url required and aspect_ratio auto|16:9|9:16.
- ``fal-ai/bytedance/seedance/v1/pro/text-to-video``
  [BytedanceSeedanceV1ProTextToVideoInputSchema]: duration the strings
  "2"-"12"; aspect_ratio 21:9|16:9|4:3|1:1|3:4|9:16; resolution
  480p|720p|1080p.
- ``.../seedance/v1/pro/image-to-video``
  [BytedanceSeedanceV1ProImageToVideoInputSchema]: the same with image_url
  required and aspect_ratio also auto.
- ``fal-ai/kling-video/v1/pro/ai-avatar`` [KlingVideoV1ProAiAvatarInputSchema]:
  image_url and audio_url required; prompt optional.
- ``fal-ai/mmaudio-v2`` [MmaudioV2InputSchema]: video_url and prompt
  required; duration a number 1-30; num_steps int 4-50; cfg_strength 0-20;
  seed 0-65535 or null.
- ``fal-ai/topaz/upscale/video`` [TopazUpscaleVideoInputSchema]: video_url
  required; upscale_factor 1-4; target_fps int 16-60 or null.
- ``fal-ai/bytedance-upscaler/upscale/video``
  [BytedanceUpscalerUpscaleVideoInputSchema]: video_url required;
  target_resolution 1080p|2k|4k; target_fps the strings "30fps"|"60fps".

Refusals:

- 422 body and header: fal's app server, github.com/fal-ai/fal
  ``projects/fal/src/fal/api/api.py`` (c6f0afa, 2026-08): its
  ``RequestValidationError`` handler answers ``{"detail": exc.errors()}``, 422,
  ``x-fal-billable-units: 0``; FastAPI drops pydantic's ``url`` from those
  errors. A real refusal quoted in a public report reads
  ``[{'type': 'literal_error', 'loc': ['body', 'duration'], 'msg': "Input
  should be '6' or '10'", 'input': '5', 'ctx': {'expected': "'6' or '10'"}}]``;
  fal's error page (docs.fal.ai/errors) describes the same ``detail`` array.
- 404 for a path: the same file's 404 handler, ``{"detail": "Path {path} not
  found"}`` with ``x-fal-billable-units: 0``.
- When: github.com/TanStack/ai pull 396 (checked against live fal): an
  invalid job goes IN_PROGRESS then COMPLETED, and the 422 comes with the
  result; a public note on a content-policy 422 saw COMPLETED "without
  error/error_type".
- Types: pydantic's lax mode, as FastAPI validates: ``"5"`` passes for an
  int, ``5`` does not pass for a ``Literal["5", "10"]``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

ImageSizePreset = Literal[
    "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"
]
Tolerance = Literal["1", "2", "3", "4", "5", "6"]
SeedanceDuration = Literal["2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
SeedanceRatio = Literal["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"]
SeedanceImageRatio = Literal["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto"]


class ImageSize(BaseModel):
    """fal's explicit size (fal.toolkit ImageSize: 0 < side <= 14142)."""

    width: int = Field(512, gt=0, le=14142)
    height: int = Field(512, gt=0, le=14142)


class FluxDev(BaseModel):
    prompt: str
    image_size: ImageSize | ImageSizePreset = "landscape_4_3"
    num_inference_steps: int = Field(28, ge=1, le=50)
    seed: int | None = None
    guidance_scale: float = Field(3.5, ge=1, le=20)
    sync_mode: bool = False
    num_images: int = Field(1, ge=1, le=4)
    enable_safety_checker: bool = True
    output_format: Literal["jpeg", "png"] = "jpeg"
    acceleration: Literal["none", "regular", "high"] = "none"


class FluxSchnell(FluxDev):
    num_inference_steps: int = Field(4, ge=1, le=12)


class Imagen4Preview(BaseModel):
    prompt: str = Field(min_length=3, max_length=5000)
    aspect_ratio: Literal["1:1", "16:9", "9:16", "4:3", "3:4"] = "1:1"
    resolution: Literal["1K", "2K"] = "1K"
    num_images: int = Field(1, ge=1, le=4)
    seed: int | None = None
    safety_tolerance: Tolerance = "4"
    output_format: Literal["jpeg", "png", "webp"] = "png"
    sync_mode: bool = False


class SeedreamV3(BaseModel):
    prompt: str
    image_size: ImageSize | ImageSizePreset | None = None
    guidance_scale: float = Field(2.5, ge=1, le=10)
    num_images: int = Field(1, ge=1, le=4)
    seed: int | None = None
    enable_safety_checker: bool = True
    sync_mode: bool = False


class FluxProKontext(BaseModel):
    prompt: str
    image_url: str = Field(min_length=1)
    aspect_ratio: (
        Literal["21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"] | None
    ) = None
    seed: int | None = None
    guidance_scale: float = Field(3.5, ge=1, le=20)
    num_images: int = Field(1, ge=1, le=4)
    safety_tolerance: Tolerance = "2"
    output_format: Literal["jpeg", "png"] = "jpeg"
    enhance_prompt: bool = False
    sync_mode: bool = False


class Hailuo02TextToVideo(BaseModel):
    prompt: str = Field(min_length=1, max_length=2000)
    duration: Literal["6", "10"] = "6"
    prompt_optimizer: bool = True


class Hailuo02ImageToVideo(BaseModel):
    prompt: str = Field(max_length=2000)
    image_url: str
    end_image_url: str | None = None
    duration: Literal["6", "10"] = "6"
    resolution: Literal["512P", "768P"] = "768P"
    prompt_optimizer: bool = True


class Kling21MasterImageToVideo(BaseModel):
    prompt: str = Field(max_length=2500)
    image_url: str
    duration: Literal["5", "10"] = "5"
    negative_prompt: str = Field("blur, distort, and low quality", max_length=2500)
    cfg_scale: float = Field(0.5, ge=0, le=1)


class Kling21MasterTextToVideo(BaseModel):
    prompt: str = Field(max_length=2500)
    duration: Literal["5", "10"] = "5"
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    negative_prompt: str = Field("blur, distort, and low quality", max_length=2500)
    cfg_scale: float = Field(0.5, ge=0, le=1)


class Veo3TextToVideo(BaseModel):
    prompt: str = Field(max_length=20000)
    aspect_ratio: Literal["16:9", "9:16"] = "16:9"
    duration: Literal["4s", "6s", "8s"] = "8s"
    negative_prompt: str | None = None
    resolution: Literal["720p", "1080p"] = "720p"
    generate_audio: bool = True
    seed: int | None = None
    auto_fix: bool = True
    safety_tolerance: Tolerance = "4"


class Veo3ImageToVideo(Veo3TextToVideo):
    image_url: str
    aspect_ratio: Literal["auto", "16:9", "9:16"] = "auto"  # type: ignore[assignment]
    auto_fix: bool = False


class SeedanceTextToVideo(BaseModel):
    prompt: str
    duration: SeedanceDuration = "5"
    aspect_ratio: SeedanceRatio = "16:9"
    resolution: Literal["480p", "720p", "1080p"] = "1080p"
    num_frames: int | None = Field(None, ge=29, le=289)
    camera_fixed: bool = False
    seed: int | None = None
    enable_safety_checker: bool = True


class SeedanceImageToVideo(SeedanceTextToVideo):
    image_url: str
    end_image_url: str | None = None
    aspect_ratio: SeedanceImageRatio = "auto"  # type: ignore[assignment]


class KlingAvatar(BaseModel):
    image_url: str
    audio_url: str
    prompt: str = "."


class MMAudioV2(BaseModel):
    video_url: str
    prompt: str
    negative_prompt: str = ""
    seed: int | None = Field(None, ge=0, le=65535)
    num_steps: int = Field(25, ge=4, le=50)
    duration: float = Field(8, ge=1, le=30)
    cfg_strength: float = Field(4.5, ge=0, le=20)
    mask_away_clip: bool = False


class TopazVideo(BaseModel):
    video_url: str
    upscale_factor: float = Field(2, ge=1, le=4)
    target_fps: int | None = Field(None, ge=16, le=60)
    H264_output: bool = False
    # fal's enhancement knobs (model, noise, halo, ...) are left out: acpbuild never sends them


class BytedanceUpscaler(BaseModel):
    video_url: str
    target_resolution: Literal["1080p", "2k", "4k"] = "1080p"
    target_fps: Literal["30fps", "60fps"] = "30fps"
    scale_ratio: float | None = Field(None, ge=1.1, le=10)
    # enhancement_preset, enhancement_tier and fidelity are left out likewise


#: endpoint id -> its input model
SCHEMAS: dict[str, type[BaseModel]] = {
    "fal-ai/flux/dev": FluxDev,
    "fal-ai/flux/schnell": FluxSchnell,
    "fal-ai/imagen4/preview": Imagen4Preview,
    "fal-ai/bytedance/seedream/v3/text-to-image": SeedreamV3,
    "fal-ai/flux-pro/kontext": FluxProKontext,
    "fal-ai/minimax/hailuo-02/standard/text-to-video": Hailuo02TextToVideo,
    "fal-ai/minimax/hailuo-02/standard/image-to-video": Hailuo02ImageToVideo,
    "fal-ai/kling-video/v2.1/master/text-to-video": Kling21MasterTextToVideo,
    "fal-ai/kling-video/v2.1/master/image-to-video": Kling21MasterImageToVideo,
    "fal-ai/veo3": Veo3TextToVideo,
    "fal-ai/veo3/image-to-video": Veo3ImageToVideo,
    "fal-ai/bytedance/seedance/v1/pro/text-to-video": SeedanceTextToVideo,
    "fal-ai/bytedance/seedance/v1/pro/image-to-video": SeedanceImageToVideo,
    "fal-ai/kling-video/v1/pro/ai-avatar": KlingAvatar,
    "fal-ai/mmaudio-v2": MMAudioV2,
    "fal-ai/topaz/upscale/video": TopazVideo,
    "fal-ai/bytedance-upscaler/upscale/video": BytedanceUpscaler,
}
#: the apps (owner/alias) those endpoints live in: fal's queue knows these
APPS = frozenset("/".join(endpoint.split("/")[:2]) for endpoint in SCHEMAS)


def refusal(endpoint: str, body: Any) -> tuple[int, Any] | None:
    """fal's answer to ``body`` sent to a known app's ``endpoint``: (status, detail), or None."""
    schema = SCHEMAS.get(endpoint)
    if schema is None:
        path = endpoint.split("/", 2)[2] if endpoint.count("/") >= 2 else ""
        return 404, f"Path /{path} not found"
    try:
        # as FastAPI validates a body model: Python mode, lax, attributes allowed
        schema.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(include_url=False)]
        return 422, json.loads(json.dumps(errors, default=str))
    return None


def ignored(endpoint: str, body: Any) -> list[str]:
    """The fields of ``body`` that ``endpoint``'s schema does not name: fal drops them silently."""
    schema = SCHEMAS.get(endpoint)
    if schema is None or not isinstance(body, dict):
        return []
    return sorted(set(body) - set(schema.model_fields))
