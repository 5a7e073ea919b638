"""`acpbuild schema`: a JSON Schema of the recipe format, for TOML editors.

Taplo and Even Better TOML (which embeds Taplo) support JSON Schema draft-07, so
that is what this writes. The shape comes from the pydantic models in
:mod:`acpbuild.recipe` (their field descriptions become hover text); the
catalogue adds what pydantic cannot know: ``kind`` and ``provider`` as enums,
every parameter name with its type and help for completion, and per
(provider, kind) a definition naming the models that serve the kind, each of
which takes only its own parameters, ranges and choices and needs its required
ones. Step and group names, and each kind's output suffix, are checked too.

The schema helps an editor; :func:`acpbuild.recipe.load_recipe` stays the
judge. A step table cannot see ``[defaults]``, so the rules that depend on it
sit at the top of the recipe (:func:`_rules_by_defaults`). A step whose model
comes from ``[defaults.KIND]`` is checked only against the parameter names of
all models; references and input files are checked only when loading, and of
an output only its suffix and that it does not start outside ``output_dir``.
"""

from __future__ import annotations

import re
from typing import Any

from acpbuild import providers
from acpbuild.provider import FILE_TYPES, Model, Param
from acpbuild.recipe import BAD_NAME, MERGES, METRICS
from acpbuild.recipe.file import STEP_FIELDS, RecipeFile
from acpbuild.recipe.kinds import KINDS, SUFFIXES, Media

DRAFT = "http://json-schema.org/draft-07/schema#"

#: a value that is exactly "${name}" keeps the var's type, so any parameter may be one
WHOLE_REFERENCE = r"^\$\{[^{}]+\}$"

#: an output that is absolute, or climbs out of output_dir at its start (loading finds the rest)
OUTSIDE = {"pattern": r"^(/|\.\.(/|$))", "description": "an output is a path inside output_dir"}

# Keys are refused with a failing schema on their value rather than with
# additionalProperties: false or propertyNames: Taplo repeats an error about a
# table on every key and value of it, but shows an error about one value once,
# at that value. The description is the text Taplo prints.
UNKNOWN_KEY = {"not": {"description": "not a step key: no step field or model parameter has this name"}}
NOT_TAKEN = {
    "not": {
        "description": "a parameter this step's model does not take "
        "(acpbuild models --provider P --kind K lists what each takes)"
    }
}


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of an acpbuild recipe, catalogue included."""
    schema = _clean(RecipeFile.model_json_schema(ref_template="#/definitions/{model}"))
    definitions = schema.pop("$defs")
    params = _all_params()
    definitions["RawStep"] = _step(definitions["RawStep"], params)
    definitions["NotTaken"] = NOT_TAKEN
    for provider in providers.names():
        for kind in _kinds_of(provider):
            definitions[_def(provider, kind)] = _models_rule(provider, kind, params)
            required = _required_rule(provider, kind)
            if required:
                definitions[_def(provider, kind, "required")] = required
    group = definitions["RawGroup"]
    group["properties"]["merge"]["enum"] = list(MERGES)
    group["properties"]["score"]["enum"] = list(METRICS)
    meta = definitions["RecipeMeta"]
    meta["properties"]["concurrency"]["propertyNames"] = {"enum": list(providers.names())}
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
        "allOf": _rules_by_defaults(),
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
    for provider in providers.names():
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


def _serving(provider: str, kind: str) -> list[Model]:
    return [m for m in providers.catalogue(provider).values() if kind in m.kinds]


def _kinds_of(provider: str) -> list[str]:
    return [kind for kind in KINDS if _serving(provider, kind)]


def _def(provider: str, kind: str, what: str = "") -> str:
    return ".".join(filter(None, (provider, kind, what)))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _is(**values: str) -> dict[str, Any]:
    """Matches a table whose keys have these values."""
    return {"properties": {k: {"const": v} for k, v in values.items()}, "required": list(values)}


def _step(base: dict[str, Any], params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A step table: what holds whatever ``[defaults]`` says (the rest is in :func:`_rules_by_defaults`)."""
    fields = base["properties"]
    fields["kind"]["enum"] = list(KINDS)
    fields["provider"]["enum"] = list(providers.names())
    fields["model"]["examples"] = sorted({m for p in providers.names() for m in providers.catalogue(p)})
    fields["output"]["not"] = OUTSIDE
    by_media = {media: [k for k, m in KINDS.items() if m == media] for media in SUFFIXES}
    return {
        **base,
        "properties": {**fields, **params},
        "additionalProperties": UNKNOWN_KEY,
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
                    "if": {
                        "properties": {"provider": {"const": p}, "kind": {"enum": list(KINDS)}},
                        "required": ["provider", "kind"],
                    },
                    "then": {
                        "properties": {"kind": {"enum": _kinds_of(p)}},
                        "allOf": [{"if": _is(kind=k), "then": _ref(_def(p, k))} for k in _kinds_of(p)],
                    },
                }
                for p in providers.names()
            ),
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


def _model_is(model: Model, serving: list[Model]) -> dict[str, Any]:
    """Matches a step of ``model``; with one model for the kind, ``model`` may be left out."""
    return _is(model=model.name) if len(serving) > 1 else {"properties": {"model": {"const": model.name}}}


def _models_rule(provider: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """For a step of ``provider`` and ``kind``: the models serving it, each taking only its parameters."""
    serving = _serving(provider, kind)
    rules = []
    for model in serving:
        accepted = model.params_for(kind)
        own = {name: _described(_param(spec), spec) for name, spec in accepted.items()}
        refused = "|".join(re.escape(name) for name in params if name not in accepted)
        then: dict[str, Any] = {"properties": own}
        if refused:
            then["patternProperties"] = {f"^({refused})$": _ref("NotTaken")}
        rules.append({"if": _model_is(model, serving), "then": then})
    return {"properties": {"model": {"enum": [m.name for m in serving]}}, "allOf": rules}


def _required_rule(provider: str, kind: str) -> dict[str, Any] | None:
    """For a step of ``provider`` and ``kind``: its model's required parameters, or None if none has any."""
    serving = _serving(provider, kind)
    rules = []
    for model in serving:
        accepted = model.params_for(kind)
        required = [name for name, spec in accepted.items() if spec.required]
        if required:
            # asked only of a step without unknown keys: a misspelt required key is one error, not two
            only_known = {"propertyNames": {"enum": [*STEP_FIELDS, *accepted]}}
            rules.append({"if": {**_model_is(model, serving), **only_known}, "then": {"required": required}})
    return {"allOf": rules} if rules else None


def _rules_by_defaults() -> list[dict[str, Any]]:
    """Root rules for what a step's table cannot show alone: its ``[defaults.KIND]``.

    A step without ``provider`` is the defaults' provider's, else local's; and
    a required parameter may come from the defaults, so the model's required
    parameters are asked of the step only when its kind's defaults set none.
    """
    rules: list[dict[str, Any]] = []
    for kind in KINDS:
        no_params = _defaults_are(kind, {"propertyNames": {"enum": ["provider", "model"]}})
        unnamed = {**_is(kind=kind), "not": {"required": ["provider"]}}
        for provider in providers.names():
            if provider == "local":  # also when the defaults leave the provider out
                chosen = _defaults_are(kind, {"properties": {"provider": {"const": "local"}}})
            else:
                chosen = _defaults_are(kind, _is(provider=provider), required=True)
            if kind not in _kinds_of(provider):
                if provider == "local":
                    rules.append(_for_steps(chosen, unnamed, {"required": ["provider"]}))
                continue
            rules.append(_for_steps(chosen, unnamed, _ref(_def(provider, kind))))
            if _required_rule(provider, kind) is not None:
                required = _ref(_def(provider, kind, "required"))
                rules.append(_for_steps({"allOf": [chosen, no_params]}, unnamed, required))
                rules.append(_for_steps(no_params, _is(kind=kind, provider=provider), required))
    return rules


def _defaults_are(kind: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    """Matches a recipe whose ``[defaults.KIND]`` meets ``schema`` (or, unless ``required``, has none)."""
    if not required:
        return {"properties": {"defaults": {"properties": {kind: schema}}}}
    return {"properties": {"defaults": {"properties": {kind: schema}, "required": [kind]}}, "required": ["defaults"]}


def _for_steps(recipe_is: dict[str, Any], step_is: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """If the recipe matches ``recipe_is``, each step matching ``step_is`` must meet ``then``."""
    return {
        "if": recipe_is,
        "then": {"properties": {"steps": {"additionalProperties": {"if": step_is, "then": then}}}},
    }


def _described(schema: dict[str, Any], spec: Param) -> dict[str, Any]:
    return {**schema, "description": spec.help} if spec.help else schema


def _defaults(kind: str, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``[defaults.KIND]``: provider, model, and the parameters of any model serving the kind."""
    serving = [(provider, model) for provider in providers.names() for model in _serving(provider, kind)]
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
