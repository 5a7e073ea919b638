"""``--draft``: every paid step swapped, explicitly, for a free local stand-in.

A stand-in keeps the step's output path and every parameter the local model
understands (a prompt, a size, a duration); the rest are dropped. Its key
carries ``draft_of``, so a draft output never satisfies a later real run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from acpbuild import providers
from acpbuild.provider import FILE_TYPES, Model
from acpbuild.recipe import Recipe, Step
from acpbuild.recipe.interpolate import Template, refs_in

# Paid kinds the local provider has no model for, and the local kind standing in.
_STAND_IN_KIND = {
    "avatar": "image_to_video",  # the portrait, panned
    "add_audio": "transcode",  # the video as it was
    "upscale_video": "transcode",
}


# Parameters whose values name things only the paid provider knows (an ElevenLabs voice).
_NOT_PORTABLE = frozenset({"voice"})


def _local_model(kind: str) -> Model:
    for model in providers.catalogue("local").values():
        if kind in model.kinds:
            return model
    raise LookupError(kind)  # every kind in _STAND_IN_KIND maps to a served kind


def _fits(spec: Any, value: Any) -> bool:
    if isinstance(value, Template):
        return spec.type in FILE_TYPES or spec.type == "str"
    return spec.check(value) is None


def stand_in(step: Step) -> Step:
    """The local stand-in for a paid ``step``."""
    kind = _STAND_IN_KIND.get(step.kind, step.kind)
    model = _local_model(kind)
    accepted = model.params_for(kind)
    params = {
        k: v for k, v in step.params.items() if k in accepted and k not in _NOT_PORTABLE and _fits(accepted[k], v)
    }
    return dataclasses.replace(
        step,
        kind=kind,
        provider="local",
        model=model.name,
        params=params,
        deps=tuple(dict.fromkeys(r.step for r in refs_in(params))),
        draft_of=f"{step.provider}/{step.model}",
    )


def draft_recipe(recipe: Recipe) -> Recipe:
    """``recipe`` with every paid step replaced by its stand-in."""
    steps = {}
    for name, step in recipe.steps.items():
        paid = providers.provider_class(step.provider).paid
        steps[name] = stand_in(step) if paid else step
    return dataclasses.replace(recipe, steps=steps)


def drafted(recipe: Recipe) -> list[str]:
    """The steps of a drafted recipe that stand in for paid ones."""
    return [n for n, s in recipe.steps.items() if s.draft_of]
