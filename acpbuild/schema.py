"""`acpbuild schema`: a JSON Schema of the recipe format, for TOML editors.

Taplo and Even Better TOML (which embeds Taplo) support JSON Schema draft-07, so
that is what this writes. The shape comes from the pydantic models in
:mod:`acpbuild.recipe` (their field descriptions become hover text); the
catalogue adds what pydantic cannot know: ``kind`` and ``provider`` as enums,
every parameter name with its type and help for completion, and per
(provider, model, kind) an ``if``/``then`` that restricts a step to that model's
parameters, ranges and choices.

The schema helps an editor; :func:`acpbuild.recipe.load_recipe` stays the
judge. A step whose provider or model comes from ``[defaults.KIND]`` is only
checked against the union of all parameters, since a schema sees one table at
a time; references and input files are checked only when loading, and of an
output only its suffix and that it does not start outside ``output_dir``.
"""

from __future__ import annotations

from typing import Any

from acpbuild import providers
from acpbuild.kinds import KINDS, SUFFIXES, Media
from acpbuild.providers.base import FILE_TYPES, Param
from acpbuild.recipe import BAD_NAME, MERGES, METRICS
from acpbuild.recipe_file import STEP_FIELDS, RecipeFile

DRAFT = "http://json-schema.org/draft-07/schema#"

#: a value that is exactly "${name}" keeps the var's type, so any parameter may be one
WHOLE_REFERENCE = r"^\$\{[^{}]+\}$"

#: an output that is absolute, or climbs out of output_dir at its start (loading finds the rest)
OUTSIDE = {"pattern": r"^(/|\.\.(/|$))", "description": "an output is a path inside output_dir"}


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of an acpbuild recipe, catalogue included."""
    schema = _clean(RecipeFile.model_json_schema(ref_template="#/definitions/{model}"))
    definitions = schema.pop("$defs")
    params = _all_params()
    definitions["RawStep"] = _step(definitions["RawStep"], params)
    group = definitions["RawGroup"]
    group["properties"]["merge"]["enum"] = list(MERGES)
    group["properties"]["score"]["enum"] = list(METRICS)
    meta = definitions["RecipeMeta"]
    meta["properties"]["concurrency"]["propertyNames"] = {"enum": list(providers.NAMES)}
    meta["properties"]["concurrency"]["additionalProperties"] = {"type": "integer", "minimum": 1}
    group["properties"]["output"]["not"] = OUTSIDE
    for table in ("steps", "groups"):
        schema["properties"][table]["propertyNames"] = {
            "not": {
                "pattern": BAD_NAME.pattern,
                "description": "a name cannot contain [ ] : = $ or whitespace, nor start with '-'",
            }
        }
    schema["properties"]["defaults"] = {
        "description": schema["properties"]["defaults"]["description"],
        "type": "object",
        "properties": {kind: _defaults(kind, params) for kind in KINDS},
        "additionalProperties": False,
    }
    return {
        "$schema": DRAFT,
        "$id": "https://acpbuild.invalid/recipe.schema.json",
        "title": "acpbuild recipe",
        **schema,
        "allOf": _local_by_default(),
        "definitions": definitions,
    }


def _clean(node: Any) -> Any:
    """Pydantic's schema made editor-friendly: no generated titles, no ``null`` (TOML has none)."""
    if isinstance(node, list):
        return [_clean(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _clean(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        options = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        if out.get("default", 0) is None:
            del out["default"]
        if len(options) == 1:
            out.update(options[0])
        else:
            out["anyOf"] = options
    return out


def _param(spec: Param) -> dict[str, Any]:
    """One parameter's value: its own type, or a whole-value reference like "${seed}"."""
    reference = {"type": "string", "pattern": WHOLE_REFERENCE}
    if spec.type in FILE_TYPES:
        return {"type": "string", "description": f"{spec.type}: a file path or '${{steps.NAME}}'"}
    if spec.type == "files":
        return {"anyOf": [{"type": "array", "items": {"type": "string"}}, reference]}
    own: dict[str, Any] = {
        "str": {"type": "string"},
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "list": {"type": "array"},
    }[spec.type]
    if spec.choices is not None:
        own = {"enum": list(spec.choices)}
    if spec.min is not None:
        own["minimum"] = spec.min
    if spec.max is not None:
        own["maximum"] = spec.max
    if spec.type == "str" and spec.choices is None:
        return own  # any string, references included
    return {"anyOf": [own, reference]}


def _all_params() -> dict[str, dict[str, Any]]:
    """Every parameter name in the catalogue -> a schema loose enough for every model taking it."""
    found: dict[str, dict[str, Any]] = {}
    types: dict[str, set[str]] = {}
    for provider in providers.NAMES:
        for model in providers.catalogue(provider).values():
            for name, spec in model.params.items():
                json_type = {"int": "integer", "float": "number", "bool": "boolean", "list": "array"}.get(
                    spec.type, "string"
                )
                types.setdefault(name, set()).add(json_type)
                if spec.type == "files":
                    types[name].add("array")
                entry = found.setdefault(name, {})
                if spec.help and "description" not in entry:
                    entry["description"] = spec.help
    for name, entry in found.items():
        kinds = sorted(types[name] | {"string"})  # "${var}" is always a string
        entry["type"] = kinds[0] if len(kinds) == 1 else kinds
        entry.setdefault("description", f"a model parameter ({', '.join(sorted(types[name]))})")
    return dict(sorted(found.items()))


def _step(base: dict[str, Any], params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fields = base["properties"]
    fields["kind"]["enum"] = list(KINDS)
    fields["provider"]["enum"] = list(providers.NAMES)
    fields["model"]["examples"] = sorted({m for p in providers.NAMES for m in providers.catalogue(p)})
    fields["output"]["not"] = OUTSIDE
    by_media = {media: [k for k, m in KINDS.items() if m == media] for media in SUFFIXES}
    return {
        **base,
        "properties": {**fields, **params},
        "additionalProperties": False,
        "allOf": [
            *(
                {
                    "if": {"properties": {"kind": {"enum": kinds}}, "required": ["kind"]},
                    "then": {"properties": {"output": {"pattern": _suffix_pattern(media)}}},
                }
                for media, kinds in by_media.items()
            ),
            *(
                {
                    "if": {"properties": {"provider": {"const": p}}, "required": ["provider"]},
                    "then": {"properties": {"model": {"enum": list(providers.catalogue(p))}}},
                }
                for p in providers.NAMES
            ),
            *(rule for p in providers.NAMES for kind in KINDS for rule in _model_rules(p, kind, True)),
        ],
    }


def _suffix_pattern(media: Media) -> str:
    """An output ending in a suffix of ``media``, in any case as loading allows.

    An output ending in "}" is let through: its suffix comes from a variable or
    a foreach item, which only loading knows.
    """
    either_case = [
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in s.removeprefix("."))
        for s in SUFFIXES[media]
    ]
    return r"(\.(" + "|".join(either_case) + r")|\})$"


def _model_rules(provider: str, kind: str, explicit: bool) -> list[dict[str, Any]]:
    """For each of ``provider``'s models serving ``kind``: a step of theirs takes only their parameters.

    ``explicit``: the step names the provider; otherwise the rule is for steps
    that leave it out (see :func:`_local_by_default`).
    """
    serving = [m for m in providers.catalogue(provider).values() if kind in m.kinds]
    rules = []
    for model in serving:
        accepted = model.params_for(kind)
        model_is: dict[str, Any] = {"properties": {"model": {"const": model.name}}}
        if len(serving) > 1:  # with one model for the kind, `model` may be left out
            model_is["required"] = ["model"]
        provider_is: dict[str, Any] = (
            {"properties": {"provider": {"const": provider}}, "required": ["provider"]}
            if explicit
            else {"not": {"required": ["provider"]}}
        )
        rules.append(
            {
                "if": {
                    "properties": {"kind": {"const": kind}},
                    "required": ["kind"],
                    "allOf": [provider_is, model_is],
                },
                "then": {
                    "properties": {name: _described(_param(spec), spec) for name, spec in accepted.items()},
                    "propertyNames": {"enum": [*STEP_FIELDS, *accepted]},
                },
            }
        )
    return rules


def _local_by_default() -> list[dict[str, Any]]:
    """Root rules: a step without ``provider`` is local unless ``[defaults.KIND]`` names one.

    A step table cannot see ``[defaults]``, so these sit at the top of the
    recipe, one per kind, and apply the local model's parameters to the steps
    of that kind only when the recipe's defaults leave the provider alone.
    """
    rules = []
    for kind in KINDS:
        local = _model_rules("local", kind, False)
        if not local:
            continue
        rules.append(
            {
                "if": {"properties": {"defaults": {"properties": {kind: {"not": {"required": ["provider"]}}}}}},
                "then": {"properties": {"steps": {"additionalProperties": {"allOf": local}}}},
            }
        )
    return rules


def _described(schema: dict[str, Any], spec: Param) -> dict[str, Any]:
    return {**schema, "description": spec.help} if spec.help else schema


def _defaults(kind: str, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``[defaults.KIND]``: provider, model, and the parameters of any model serving the kind."""
    serving = [
        (provider, model)
        for provider in providers.NAMES
        for model in providers.catalogue(provider).values()
        if kind in model.kinds
    ]
    names = sorted({n for _, model in serving for n in model.params_for(kind)})
    return {
        "type": "object",
        "description": f"Merged under every step of kind {kind} ({KINDS[kind]}).",
        "properties": {
            "provider": {
                **({"enum": sorted({p for p, _ in serving})} if serving else {"type": "string"}),
                "description": "The provider for these steps.",
            },
            "model": {"type": "string", "examples": sorted({m.name for _, m in serving})},
            **{n: params[n] for n in names},
        },
        "additionalProperties": False,
    }
