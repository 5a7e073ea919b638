"""The Runway catalogue: model keys as recipes write them, and how each maps onto Runway's wire.

Every entry is a :class:`Spec`: the :class:`~acpbuild.provider.Model` the recipe
loader checks parameters against, plus the endpoint it posts to and the media it
returns. Parameter names are the recipe's (``image``, ``prompt``, ``duration_s``);
the adapter renames them (``promptImage``, ``promptText``, ``duration``).

Schemas come from the ``runwayml`` 5.24 SDK (``types/image_to_video_create_params.py``
and ``types/text_to_image_create_params.py``) and Runway's API reference
(github.com/runwayml/skills, ``skills/rw-api-reference/SKILL.md``), read in December
2026. The rules a :class:`~acpbuild.provider.Param` cannot say (a prompt's length
in UTF-16 units, at most three reference images, the tags' spelling) are checked by
:meth:`acpbuild_runway.adapter.RunwayProvider.check`.

This module imports nothing from the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from acpbuild.provider import Model, Param

I2V: Final = "image_to_video"
T2I: Final = "text_to_image"

#: the largest seed Runway takes, an unsigned 32-bit integer (Runway's API reference)
SEED_MAX = 4_294_967_295
#: the longest ``promptText``, in UTF-16 code units
PROMPT_MAX = 1000
#: the most reference images gen4_image takes
REFERENCES_MAX = 3
#: a reference tag: 3-16 letters, digits or underscores, starting with a letter
TAG_PATTERN = r"[A-Za-z][A-Za-z0-9_]{2,15}"

#: gen4_turbo's output sizes, as the API lists them (width:height in pixels)
VIDEO_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")

#: gen4_image's output sizes: resolution -> aspect ratio -> the API's width:height (the SDK's
#: Gen4Image.ratio values; its four "1K" sizes, which Runway prices nowhere, are left out)
IMAGE_RATIOS: Mapping[str, Mapping[str, str]] = {
    "720p": {
        "16:9": "1280:720",
        "9:16": "720:1280",
        "1:1": "720:720",
        "4:3": "960:720",
        "3:4": "720:960",
        "21:9": "1680:720",
    },
    "1080p": {
        "16:9": "1920:1080",
        "9:16": "1080:1920",
        "1:1": "1080:1080",
        "4:3": "1440:1080",
        "3:4": "1080:1440",
        "21:9": "2112:912",
    },
}
ASPECTS = tuple(IMAGE_RATIOS["1080p"])


@dataclass(frozen=True)
class Spec:
    """A catalogue model and how it travels to Runway."""

    model: Model
    #: the SDK resource (and API path) that creates its tasks
    route: Literal["image_to_video", "text_to_image"]
    #: what its task's output URL holds
    output: Literal["image", "video"]


def _seed() -> Param:
    return Param("int", min=0, max=SEED_MAX, help="fixes the randomness for a repeatable result")


SPECS: dict[str, Spec] = {
    "gen4-turbo": Spec(
        Model(
            "gen4-turbo",
            {I2V: "gen4_turbo"},
            {
                "image": Param(
                    "image",
                    required=True,
                    help="the first frame: PNG, JPEG or WebP, under about 3.7 MB",
                ),
                "prompt": Param("str", help="what should happen, up to 1000 characters"),
                "duration_s": Param(
                    "int", default=5, choices=(5, 10), help="length of the video in seconds"
                ),
                "ratio": Param(
                    "str",
                    default="1280:720",
                    choices=VIDEO_RATIOS,
                    help="the video's width:height in pixels",
                ),
                "seed": _seed(),
            },
            "Runway Gen-4 Turbo: animates an image (720p, 24 fps); billed per second.",
        ),
        route=I2V,
        output="video",
    ),
    "gen4-image": Spec(
        Model(
            "gen4-image",
            {T2I: "gen4_image"},
            {
                "prompt": Param(
                    "str",
                    required=True,
                    help="what to draw, up to 1000 characters; name a reference as @tag",
                ),
                "ratio": Param("str", default="16:9", choices=ASPECTS, help="aspect ratio"),
                "resolution": Param(
                    "str", default="1080p", choices=("720p", "1080p"), help="720p costs less"
                ),
                "references": Param("files", help="up to 3 reference images (PNG, JPEG or WebP)"),
                "reference_tags": Param(
                    "list",
                    help="a tag per reference image, for @tag in the prompt (3-16 letters, "
                    "digits or _)",
                ),
                "seed": _seed(),
            },
            "Runway Gen-4 Image, with up to 3 reference images; billed per image.",
        ),
        route=T2I,
        output="image",
    ),
}

CATALOGUE: dict[str, Model] = {key: spec.model for key, spec in SPECS.items()}
