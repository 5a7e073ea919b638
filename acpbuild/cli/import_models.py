"""Model names of the older YAML tool -> a model in acpbuild's catalogues, never a refusal.

:func:`pick` tries, in this order: the exact catalogue key (``flux-dev``), a
``provider/model`` label (``openrouter/google/gemini-2.5-flash``, as the import's
own notes write models), an alias of the older tool for the same model
(:data:`~acpbuild.cli.import_tables.MODEL_ALIASES`), a provider endpoint id
(``fal-ai/flux/dev``), and each of these after normalising (lower case, ``_``
-> ``-``). A name that is none of these still imports: a name the older tool
documented for a model acpbuild does not serve gets the substitute chosen for
it by hand (:data:`~acpbuild.cli.import_tables.SUBSTITUTES`); any other gets
the closest model of the same kind by name (:func:`nearest_model`), else the
kind's default. A substitute says why in :attr:`Pick.substitute`, which the
recipe writes as a comment beside the model and the import prints as a
warning. Every label a pick names (:attr:`Pick.label`) picks itself again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acpbuild import providers
from acpbuild.cli.import_tables import DEFAULT_MODEL, MODEL_ALIASES, SUBSTITUTES
from acpbuild.errors import nearest
from acpbuild.provider import Model


@dataclass(frozen=True)
class Pick:
    """The model a step of the older tool runs on in acpbuild."""

    provider: str
    model: Model
    #: why this is not the model the pipeline named (None: it is that model)
    substitute: str | None = None
    #: the name the pipeline gave, when :attr:`substitute` says why it is not this model
    original: str | None = None

    @property
    def label(self) -> str:
        """``provider/model``, as notes and comments name it (and :func:`pick` reads it back)."""
        return f"{self.provider}/{self.model.name}"


def norm(name: str) -> str:
    """A model name with case, ``_`` and spaces out of the way: ``Flux_Dev`` -> ``flux-dev``."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def serving(kind: str) -> list[tuple[str, Model]]:
    """Every (provider, model) that makes ``kind``, in catalogue order."""
    return [(p, m) for p in providers.names() for m in providers.catalogue(p).values() if kind in m.kinds]


def pick(kind: str, name: str | None) -> Pick:
    """The model a step of ``kind`` naming ``name`` runs on; ``None`` or ``""``: the kind's default."""
    choices = serving(kind)
    if not name:
        provider, key = DEFAULT_MODEL.get(kind) or (choices[0][0], choices[0][1].name)
        return Pick(provider, providers.catalogue(provider)[key])
    found = _known(kind, name, choices)
    if found is not None:
        return Pick(*found)
    key = norm(name)
    if key in SUBSTITUTES:
        provider, model_key, why = SUBSTITUTES[key]
        model = providers.catalogue(provider)[model_key]
        if kind in model.kinds:
            return Pick(provider, model, why, name)
    paid = [(p, m) for p, m in choices if p != "local"] or choices
    if len(paid) == 1:
        provider, model = paid[0]
        return Pick(provider, model, f"not in acpbuild's catalogues; the only {kind} model", name)
    elsewhere = next(
        (f"{p}/{m.name}" for p in providers.names() for m in providers.catalogue(p).values()
         if key == norm(m.name) or name in m.endpoints.values()),
        None,
    )  # fmt: skip
    near = nearest_model(name, [f"{p}/{m.name}" for p, m in paid])
    if near is not None:
        provider, model_key = near.split("/", 1)
        reason = f"the closest {kind} model by name"
    else:
        provider, model_key = DEFAULT_MODEL.get(kind) or (paid[0][0], paid[0][1].name)
        reason = f"acpbuild's default {kind} model"
    model = providers.catalogue(provider)[model_key]
    if elsewhere:
        return Pick(provider, model, f"{elsewhere} does not make {kind}; this is {reason}", name)
    return Pick(provider, model, f"not in acpbuild's catalogues; this is {reason}", name)


def _known(kind: str, name: str, choices: list[tuple[str, Model]]) -> tuple[str, Model] | None:
    """``name`` as a model acpbuild serves for ``kind`` under some spelling, or None."""
    key = norm(name)
    provider, _, rest = name.partition("/")
    target = MODEL_ALIASES.get(key)
    tries = (
        lambda p, m: m.name == name,
        lambda p, m: p == provider and m.name == rest,
        lambda p, m: target is not None and p == target[0] and target[1] in (None, m.name),
        lambda p, m: m.endpoints[kind] == name,
        lambda p, m: key in (norm(m.name), norm(m.endpoints[kind]), norm(f"{p}/{m.name}")),
    )
    for fits in tries:
        found = [(p, m) for p, m in choices if fits(p, m)]
        if found:
            return found[0]
    return None


def nearest_model(name: str, choices: list[str]) -> str | None:
    """The closest model to an unknown name, among ``provider/model`` choices.

    Ignoring case and punctuation, the first model (in catalogue order) whose name starts
    with the given one wins, then one whose name contains it, so ``veo-3.1`` finds
    ``google/veo-3.1-generate-001`` rather than the closer spelling ``fal/veo3``; failing
    both, the closest spelling; failing that, None.
    """
    models = {choice: choice.split("/", 1)[1] for choice in choices}  # a model's own name may hold a "/"
    squash = re.compile(r"[^a-z0-9]")
    given = squash.sub("", name.lower())
    if len(given) >= 3:  # shorter names match too much to help
        for fits in (str.startswith, str.__contains__):
            hit = next((c for c, m in models.items() if fits(squash.sub("", m.lower()), given)), None)
            if hit:
                return hit
    near = nearest(norm(name), [norm(m) for m in models.values()])
    return next((c for c, m in models.items() if norm(m) == near), None)


__all__ = ["Pick", "nearest_model", "norm", "pick", "serving"]
