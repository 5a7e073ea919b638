"""The fal catalogue: model keys as recipes write them, and how each maps onto fal's wire.

Every entry is a :class:`Spec`: the :class:`~acpbuild.provider.Model` the
recipe loader checks parameters against, plus the few facts the adapter needs
to build fal's JSON arguments (how ``duration_s`` is spelled, whether the model
takes ``output_format``) and the lengths of text fal accepts, which
:meth:`FalProvider.check <acpbuild.providers.fal.adapter.FalProvider.check>`
enforces. Choices that differ by kind (veo3's ``auto`` aspect
ratio is for image_to_video only) are the parameter's ``kind_choices``, so the
recipe loader and ``acpbuild models`` see them. Parameter names are the
recipe's; the adapter renames them (``image`` -> ``image_url``, ``duration_s``
-> ``duration`` ...). Schemas come from each model's fal page (``llms.txt``),
read in 2026; prices live in ``acpbuild/money/prices/fal.toml``.

This module imports nothing from the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from acpbuild.provider import Model, Param

T2I, I2I, T2V, I2V = "text_to_image", "image_to_image", "text_to_video", "image_to_video"
AVATAR, ADD_AUDIO, UPSCALE = "avatar", "add_audio", "upscale_video"

# fal's named image sizes (FLUX, Seedream); each maps to fixed pixel dimensions.
IMAGE_SIZES = (
    "square_hd",
    "square",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
)
SEED_MAX = 2**31 - 1

DurationFormat = Literal["str", "str_s", "float"]


@dataclass(frozen=True)
class Spec:
    """A catalogue model and how its parameters travel to fal."""

    model: Model
    #: the media the result carries ("images" list or a "video" object)
    output: Literal["image", "video"]
    #: how ``duration_s`` is sent as fal's ``duration``: "6", "8s" or 8.0
    duration: DurationFormat | None = None
    #: the endpoint takes ``output_format`` ("jpeg"/"png"), chosen from the output suffix
    output_format: bool = False
    #: the endpoint takes ``num_images``; it is pinned to 1 (one step, one file)
    num_images: bool = False
    #: recipe name -> fal argument name, where they differ (files get ``_url`` anyway)
    rename: Mapping[str, str] = field(default_factory=dict)
    #: kind -> text parameter -> (fewest, most) characters fal's schema accepts
    lengths: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=dict)


def _prompt(required: bool = True, kinds: tuple[str, ...] | None = None) -> Param:
    return Param("str", required=required, kinds=kinds, help="what to generate")


def _seed(maximum: int = SEED_MAX) -> Param:
    return Param("int", min=0, max=maximum, help="fixes the randomness for a repeatable result")


def _image(kinds: tuple[str, ...] | None = None, help: str = "the input image") -> Param:
    return Param("image", required=True, kinds=kinds, help=help)


def _negative(kinds: tuple[str, ...] | None = None) -> Param:
    return Param("str", kinds=kinds, help="what to keep out of the result")


def _durations(choices: tuple[int, ...], default: int) -> Param:
    return Param("int", default=default, choices=choices, help="length of the video in seconds")


def _flux(steps_max: int, steps_default: int, guidance: bool) -> dict[str, Param]:
    params = {
        "prompt": _prompt(),
        "image_size": Param(
            "str", default="landscape_4_3", choices=IMAGE_SIZES, help="one of fal's named sizes"
        ),
        "seed": _seed(),
        "num_inference_steps": Param(
            "int", default=steps_default, min=1, max=steps_max, help="denoising steps"
        ),
        "enable_safety_checker": Param("bool", help="fal's NSFW filter (on by default)"),
    }
    if guidance:
        params["guidance_scale"] = Param(
            "float", default=3.5, min=1, max=20, help="how closely to follow the prompt"
        )
    return params


SPECS: dict[str, Spec] = {
    # -- images ----------------------------------------------------------------
    "flux-dev": Spec(
        Model(
            "flux-dev",
            {T2I: "fal-ai/flux/dev"},
            _flux(steps_max=50, steps_default=28, guidance=True),
            "FLUX.1 [dev], 12B; billed per megapixel.",
        ),
        "image",
        output_format=True,
        num_images=True,
    ),
    "flux-schnell": Spec(
        Model(
            "flux-schnell",
            {T2I: "fal-ai/flux/schnell"},
            _flux(steps_max=12, steps_default=4, guidance=False),
            "FLUX.1 [schnell]: 1-4 steps, the cheapest FLUX.",
        ),
        "image",
        output_format=True,
        num_images=True,
    ),
    "imagen4": Spec(
        Model(
            "imagen4",
            {T2I: "fal-ai/imagen4/preview"},
            {
                "prompt": _prompt(),
                # no negative_prompt: fal's schema dropped it in late 2025, and fal
                # ignores fields its schema does not name
                "aspect_ratio": Param(
                    "str", default="1:1", choices=("1:1", "16:9", "9:16", "3:4", "4:3")
                ),
                "resolution": Param("str", choices=("1K", "2K"), help="2K costs the same"),
                "seed": _seed(),
            },
            "Google Imagen 4 (preview) on fal; billed per image.",
        ),
        "image",
        num_images=True,
        lengths={T2I: {"prompt": (3, 5000)}},
    ),
    "seedream": Spec(
        Model(
            "seedream",
            {T2I: "fal-ai/bytedance/seedream/v3/text-to-image"},
            {
                "prompt": _prompt(),
                "image_size": Param("str", choices=IMAGE_SIZES, help="one of fal's named sizes"),
                "guidance_scale": Param("float", default=2.5, min=1, max=10),
                "seed": _seed(),
                "enable_safety_checker": Param("bool"),
            },
            "ByteDance Seedream 3.0, bilingual, strong text rendering; billed per image.",
        ),
        "image",
        num_images=True,
    ),
    "flux-kontext": Spec(
        Model(
            "flux-kontext",
            {I2I: "fal-ai/flux-pro/kontext"},
            {
                "prompt": _prompt(),
                "image": _image(help="the image to edit"),
                "seed": _seed(),
                "guidance_scale": Param("float", default=3.5, min=1, max=20),
                "aspect_ratio": Param(
                    "str",
                    choices=("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"),
                ),
                "safety_tolerance": Param(
                    "str", choices=("1", "2", "3", "4", "5", "6"), help="1 strictest, 6 loosest"
                ),
            },
            "FLUX.1 Kontext [pro]: edits an image from an instruction; billed per image.",
        ),
        "image",
        output_format=True,
        num_images=True,
    ),
    # -- video -------------------------------------------------------------------
    "hailuo-02": Spec(
        Model(
            "hailuo-02",
            {
                T2V: "fal-ai/minimax/hailuo-02/standard/text-to-video",
                I2V: "fal-ai/minimax/hailuo-02/standard/image-to-video",
            },
            {
                "prompt": _prompt(),
                "image": _image((I2V,), "the first frame"),
                "duration_s": _durations((6, 10), 6),
                "resolution": Param(
                    "str",
                    default="768P",
                    choices=("512P", "768P"),
                    kinds=(I2V,),
                    help="text-to-video is always 768P",
                ),
                "prompt_optimizer": Param("bool", help="let MiniMax rewrite the prompt"),
            },
            "MiniMax Hailuo-02 Standard (768p); billed per second.",
        ),
        "video",
        duration="str",
        lengths={T2V: {"prompt": (1, 2000)}, I2V: {"prompt": (0, 2000)}},
    ),
    "kling": Spec(
        Model(
            "kling",
            {
                T2V: "fal-ai/kling-video/v2.1/master/text-to-video",
                I2V: "fal-ai/kling-video/v2.1/master/image-to-video",
            },
            {
                "prompt": _prompt(),
                "image": _image((I2V,), "the first frame"),
                "duration_s": _durations((5, 10), 5),
                "aspect_ratio": Param(
                    "str", default="16:9", choices=("16:9", "9:16", "1:1"), kinds=(T2V,)
                ),
                "negative_prompt": _negative(),
                "cfg_scale": Param("float", min=0, max=1, help="prompt adherence, 0 to 1"),
            },
            "Kling 2.1 Master; $1.40 per 5 s, billed per second.",
        ),
        "video",
        duration="str",
        lengths={kind: {"prompt": (0, 2500), "negative_prompt": (0, 2500)} for kind in (T2V, I2V)},
    ),
    "veo3": Spec(
        Model(
            "veo3",
            {T2V: "fal-ai/veo3", I2V: "fal-ai/veo3/image-to-video"},
            {
                "prompt": _prompt(),
                "image": _image((I2V,), "the image to animate (720p or more, 16:9 or 9:16)"),
                "duration_s": _durations((4, 6, 8), 8),
                "aspect_ratio": Param(
                    "str",
                    choices=("16:9", "9:16", "auto"),
                    help="text_to_video: 16:9 or 9:16; image_to_video: auto, 16:9 or 9:16",
                    kind_choices={T2V: ("16:9", "9:16"), I2V: ("auto", "16:9", "9:16")},
                ),
                "resolution": Param("str", default="720p", choices=("720p", "1080p")),
                "generate_audio": Param(
                    "bool", default=True, help="native audio; off costs half as much"
                ),
                "negative_prompt": _negative((T2V,)),
                "seed": _seed(),
            },
            "Google Veo 3 on fal, with native audio; billed per second.",
        ),
        "video",
        duration="str_s",
        lengths={kind: {"prompt": (0, 20000)} for kind in (T2V, I2V)},
    ),
    "seedance": Spec(
        Model(
            "seedance",
            {
                T2V: "fal-ai/bytedance/seedance/v1/pro/text-to-video",
                I2V: "fal-ai/bytedance/seedance/v1/pro/image-to-video",
            },
            {
                "prompt": _prompt(),
                "image": _image((I2V,), "the first frame"),
                "duration_s": _durations(tuple(range(2, 13)), 5),
                "aspect_ratio": Param(
                    "str",
                    choices=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto"),
                    help="'auto' (follow the image) is for image_to_video only",
                    kind_choices={T2V: ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")},
                ),
                "resolution": Param("str", default="1080p", choices=("480p", "720p", "1080p")),
                "camera_fixed": Param("bool", help="keep the camera still"),
                "seed": _seed(),
                "enable_safety_checker": Param("bool"),
            },
            "ByteDance Seedance 1.0 Pro; billed per video token (~$0.62 per 1080p 5 s).",
        ),
        "video",
        duration="str",
    ),
    # -- video from other media ---------------------------------------------------
    "kling-avatar": Spec(
        Model(
            "kling-avatar",
            {AVATAR: "fal-ai/kling-video/v1/pro/ai-avatar"},
            {
                "image": _image(help="the face or character to animate"),
                "audio": Param("audio", required=True, help="the speech to lip-sync"),
                "prompt": _prompt(required=False),
            },
            "Kling AI Avatar Pro: a talking video from one image and a voice track.",
        ),
        "video",
    ),
    "mmaudio": Spec(
        Model(
            "mmaudio",
            {ADD_AUDIO: "fal-ai/mmaudio-v2"},
            {
                "video": Param("video", required=True, help="the video to score"),
                "prompt": _prompt(),
                "negative_prompt": _negative(),
                "duration_s": Param(
                    "float", default=8.0, min=1, max=30, help="seconds of audio to generate"
                ),
                "seed": _seed(65535),
                "num_steps": Param("int", min=4, max=50),
                "cfg_strength": Param("float", min=0, max=20),
            },
            "MMAudio v2: synchronised sound for a silent video; $0.001 per second.",
        ),
        "video",
        duration="float",
    ),
    "topaz": Spec(
        Model(
            "topaz",
            {UPSCALE: "fal-ai/topaz/upscale/video"},
            {
                "video": Param("video", required=True, help="the video to upscale"),
                "upscale_factor": Param("float", default=2.0, min=1, max=4),
                "target_fps": Param("int", min=16, max=60, help="interpolate to this frame rate"),
            },
            "Topaz video upscaler (1x enhance, up to 4x).",
        ),
        "video",
    ),
    "bytedance-upscaler": Spec(
        Model(
            "bytedance-upscaler",
            {UPSCALE: "fal-ai/bytedance-upscaler/upscale/video"},
            {
                "video": Param("video", required=True, help="the video to upscale"),
                "resolution": Param("str", default="1080p", choices=("1080p", "2k", "4k")),
                "fps": Param("str", default="30fps", choices=("30fps", "60fps")),
            },
            "ByteDance video upscaler to 1080p/2K/4K; billed per second.",
        ),
        "video",
        rename={"resolution": "target_resolution", "fps": "target_fps"},
    ),
}

CATALOGUE: dict[str, Model] = {key: spec.model for key, spec in SPECS.items()}
