"""Recipes: TOML -> validated models, with every error pointing at file, line and key.

Loading happens in two stages. :class:`RecipeFile` (pydantic, unknown keys
forbidden, in :mod:`acpbuild.recipe.file`) checks the shape of the file; :func:`resolve` then checks meaning
against the provider catalogues (kinds, providers, models, parameters, input
files, output paths, references) and returns a :class:`Recipe` whose steps are
ready to key and run. Both stages raise :class:`RecipeError` before any work.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from acpbuild import providers
from acpbuild.config.secrets import is_secret_name
from acpbuild.config.user import load_config
from acpbuild.errors import did_you_mean
from acpbuild.provider import FILE_TYPES, Model, Param
from acpbuild.recipe import paths
from acpbuild.recipe.file import (
    STEP_FIELDS,
    RawStep,
    RecipeFile,
    Where,
    read_with_digest,
)
from acpbuild.recipe.foreach import ItemError
from acpbuild.recipe.interpolate import (
    InterpolationError,
    Template,
    env_lookup,
    interpolate_tree,
    refs_in,
)
from acpbuild.recipe.kinds import KINDS
from acpbuild.recipe.model import Group, Recipe, Step
from acpbuild.recipe.sourcemap import line_of
from acpbuild.store import layout


def load_recipe(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *, items: Collection[str] | None = None
) -> Recipe:
    """Read, check and resolve the recipe at ``path``.

    Raises :class:`RecipeError` naming file, line and key for anything wrong:
    unknown keys, kinds, providers, models or parameters, references to missing
    steps, cycles, clashing or escaping outputs, missing input files.

    ``items`` (ids) expands each foreach step for those of its items only: the
    part of a recipe an incremental run builds (see :mod:`acpbuild.engine.incremental`).
    """
    recipe_path = Path(path).resolve()
    raw, where, digest = read_with_digest(recipe_path)
    recipe = resolve(raw, recipe_path, where, os.environ if env is None else env, items)
    recipe.digest = digest
    return recipe


def resolve(
    raw: RecipeFile, path: Path, where: Where, env: Mapping[str, str], only: Collection[str] | None = None
) -> Recipe:
    root = path.parent
    meta = raw.recipe
    output_dir = paths.output_dir(meta.output_dir, root, where, lambda: load_config(env).output_roots)
    if meta.store is not None and "\0" in meta.store:
        raise where.error(f"store {meta.store!r} is not a folder path", ("recipe", "store"))
    store = layout.store_root(env, root, meta.store)
    for provider, limit in meta.concurrency.items():
        at = ("recipe", "concurrency", provider)
        if not providers.is_known(provider, env):
            message, tip = _unknown_provider(provider, "in concurrency", env)
            raise where.error(message, at, tip)
        if limit < 1:
            raise where.error(f"concurrency for {provider} must be 1 or more", at)
    for kind in raw.defaults:
        if kind not in KINDS:
            raise where.error(f"unknown kind {kind!r} in [defaults]", ("defaults", kind), did_you_mean(kind, KINDS))
    from acpbuild.recipe.expansion import all_items, bind_collected, bind_families, resolve_groups

    for table, names in (("steps", raw.steps), ("groups", raw.groups)):
        for name in names:
            _check_name(name, (table, name), where)
    env_names: set[str] = set()
    lookup = env_lookup(raw.vars, env, secret=is_secret_name, read=env_names)
    items, sources, item_sources = all_items(raw, root, lookup, where, store)
    steps: dict[str, Step] = {}
    families: dict[str, list[str]] = {}
    for name, raw_step in raw.steps.items():
        if name not in items:
            steps[name] = _resolve_step(name, raw_step, raw, root, output_dir, lookup, where, env)
            continue
        if "${item." not in raw_step.output:
            # with one item today it would work, and break the day a second one arrives
            raise where.error(
                f"the output of foreach step {name!r} is the same for every item",
                ("steps", name, "output"),
                'put the item in it, e.g. "' + name + '/${item.id}' + Path(raw_step.output).suffix + '"',
            )
        families[name] = []
        for item in items[name]:
            if only is not None and item.id not in only:
                continue
            if "=" in item.id:
                # doit names tasks by step name, and refuses an '=' in one
                raise where.error(
                    f"foreach item id {item.id!r} contains '='",
                    ("steps", name, "foreach"),
                    "give each item an 'id' field without '='",
                )
            expanded = f"{name}[{item.id}]"
            step = _resolve_step(name, raw_step, raw, root, output_dir, item.lookup(lookup), where, env, item.id)
            step.name, step.family, step.item = expanded, name, item.id
            step.item_fields = item.fields  # shared with recipe.items: nothing changes either
            steps[expanded] = step
            families[name].append(expanded)
    groups = resolve_groups(raw, steps, output_dir, where)
    bind_collected(steps, groups, where)
    bind_families(steps, families, where)
    _check_references(steps, groups, where)
    _check_outputs(steps, where, groups)
    for group in groups.values():
        if group.merge == "first_success":
            group.deps = tuple(dict.fromkeys(d for m in group.members for d in steps[m].deps))
        else:
            group.deps = group.needs
    from acpbuild.recipe.graph import find_cycle

    graph: dict[str, tuple[str, ...]] = {n: s.deps for n, s in steps.items()}
    graph.update({n: g.needs for n, g in groups.items()})
    cycle = find_cycle(graph)
    if cycle:
        table = "groups" if cycle[0] in groups else "steps"
        raise where.error(
            "the steps form a cycle: " + " -> ".join(cycle),
            (table, cycle[0]),
            "a step cannot depend, directly or through others, on its own output",
        )
    return Recipe(
        path=path,
        name=meta.name or path.stem,
        output_dir=output_dir,
        store_dir=store,
        steps=steps,
        budget_usd=meta.budget_usd,
        jobs=meta.jobs,
        description=meta.description,
        vars=dict(raw.vars),
        families=families,
        sources=sources,
        item_sources=item_sources,
        items=items,
        concurrency=dict(meta.concurrency),
        groups=groups,
        env_names=sorted(env_names),
    )


# Characters a step or group name cannot hold: '[' and ']' name foreach items,
# ':' separates a recipe's tasks from their dodo.py task, doit refuses '=',
# and a leading '-' would read as an option on the command line. The JSON Schema
# (schema.py) uses the same pattern, so it is written in syntax ECMA-262 shares.
BAD_NAME = re.compile(r"[\[\]:=\s$]|^-")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a step or group (None when it can)."""
    bad = BAD_NAME.search(name)
    if bad is None:
        return None
    return "cannot start with '-'" if bad.group() == "-" else f"cannot contain {bad.group()!r}"


def _check_name(name: str, at: tuple[str, ...], where: Where) -> None:
    problem = name_problem(name)
    if problem:
        raise where.error(
            f"a {at[0][:-1]} name {problem}: {name!r}",
            at,
            "use letters, digits, '_', '-' and '.', e.g. " + repr(BAD_NAME.sub("_", name).lstrip("_-") or "step"),
        )


def _resolve_step(
    name: str,
    raw_step: RawStep,
    raw: RecipeFile,
    root: Path,
    output_dir: Path,
    lookup: Any,
    where: Where,
    env: Mapping[str, str],
    item: str | None = None,
) -> Step:
    at = ("steps", name)
    kind = raw_step.kind
    if kind not in KINDS:
        raise where.error(f"unknown kind {kind!r}", (*at, "kind"), did_you_mean(kind, list(KINDS)))
    defaults = dict(raw.defaults.get(kind, {}))
    set_fields = raw_step.model_fields_set
    for field in ("provider", "model"):
        if field in defaults and not isinstance(defaults[field], str):
            raise where.error(f"{field} must be a string, not {type(defaults[field]).__name__}", ("defaults", kind, field))
    provider = raw_step.provider if "provider" in set_fields else defaults.get("provider", "local")
    model_name = raw_step.model if "model" in set_fields else defaults.get("model")
    defaults.pop("provider", None)
    defaults.pop("model", None)
    field_at = (*at, "provider") if "provider" in set_fields else ("defaults", kind, "provider")
    if not isinstance(provider, str) or not providers.is_known(provider, env):
        message, tip = _unknown_provider(str(provider), "", env)
        raise where.error(message, field_at, tip)
    catalogue = providers.catalogue(provider, env)
    model = _pick_model(kind, provider, model_name, catalogue, at, set_fields, where)
    accepted = model.params_for(kind)
    given = {**defaults, **(raw_step.model_extra or {})}
    params: dict[str, Any] = {}
    for key, value in given.items():
        key_at = (*at, key) if key in (raw_step.model_extra or {}) else ("defaults", kind, key)
        spec = accepted.get(key)
        if spec is None:
            valid = ", ".join(accepted) or "none"
            raise where.error(
                f"unknown parameter {key!r} for {provider}/{model.name} ({kind})",
                key_at,
                did_you_mean(key, [*accepted, *STEP_FIELDS]) or f"parameters it accepts: {valid}",
            )
        try:
            value = interpolate_tree(value, lookup)
        except (InterpolationError, ItemError) as exc:
            raise where.error(str(exc), key_at) from None
        params[key] = _check_param(key, spec, value, root, key_at, where)
    for key, spec in accepted.items():
        if spec.required and key not in params:
            raise where.error(
                f"missing required parameter {key!r} for {provider}/{model.name} ({kind})",
                at,
                f"add {key}: {spec.describe()}",
            )
    try:
        output = interpolate_tree(raw_step.output, lookup)
    except (InterpolationError, ItemError) as exc:
        raise where.error(str(exc), (*at, "output")) from None
    if not isinstance(output, str):
        raise where.error("an output path cannot reference a step's output", (*at, "output"))
    output_path = paths.output_path(
        output, output_dir, KINDS[kind], (*at, "output"), where, f"kind {kind!r}", item
    )
    # what the provider itself would refuse (a container it cannot write, a format that
    # does not fit the suffix), found now rather than after earlier steps were paid for
    for problem in providers.provider_class(provider, env).check(kind, model, params, output_path.suffix):
        if problem.key == "output" or problem.key in (raw_step.model_extra or {}):
            blamed: tuple[str, ...] = (*at, problem.key)
        elif problem.key in defaults:
            blamed = ("defaults", kind, problem.key)
        else:
            blamed = at
        raise where.error(f"{provider}/{model.name}: {problem.message}", blamed)
    deps = tuple(dict.fromkeys(r.step for r in refs_in(params)))
    return Step(
        name=name,
        kind=kind,
        provider=provider,
        model=model.name,
        params=params,
        output=output,
        output_path=output_path,
        media=KINDS[kind],
        deps=deps,
        description=raw_step.description,
        timeout_s=raw_step.timeout_s,
        line=line_of(where.lines, at),
    )


def _unknown_provider(name: str, context: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The error and tip for a provider name that is neither built in nor a usable plugin."""
    known = providers.names(env)
    for plugin in providers.broken(env):
        if plugin.name == name:
            return plugin.describe(), "fix or reinstall the plugin; `acpbuild doctor` lists every provider"
    message = f"unknown provider {name!r}" + (f" {context}" if context else "")
    return message, did_you_mean(name, known) or f"providers: {', '.join(known)}"


def _pick_model(
    kind: str,
    provider: str,
    model_name: str | None,
    catalogue: Mapping[str, Model],
    at: tuple[str, ...],
    set_fields: set[str],
    where: Where,
) -> Model:
    serving = [m for m in catalogue.values() if kind in m.kinds]
    if not serving:
        raise where.error(
            f"provider {provider!r} has no model for kind {kind!r}",
            (*at, "kind"),
            "pick another provider (acpbuild models --kind " + kind + ")",
        )
    if model_name is None:
        if len(serving) == 1:
            return serving[0]
        raise where.error(
            f"step needs a model: {provider} serves {kind!r} with several",
            at,
            "set model = one of " + ", ".join(repr(m.name) for m in serving),
        )
    model_at = (*at, "model") if "model" in set_fields else ("defaults", kind, "model")
    model = catalogue.get(model_name)
    if model is None:
        tip = did_you_mean(model_name, [m.name for m in serving]) or did_you_mean(model_name, list(catalogue))
        raise where.error(
            f"unknown model {model_name!r} for provider {provider!r}",
            model_at,
            tip or "models for this kind: " + ", ".join(m.name for m in serving),
        )
    if kind not in model.kinds:
        raise where.error(
            f"model {model_name!r} does not serve kind {kind!r} (it serves {', '.join(model.kinds)})",
            model_at,
            "models for this kind: " + ", ".join(m.name for m in serving),
        )
    return model


def _check_param(key: str, spec: Param, value: Any, root: Path, at: tuple[str, ...], where: Where) -> Any:
    if spec.type == "files":
        if isinstance(value, Template) and value.single_ref is not None:
            return value  # a foreach step's outputs, bound once every step is known
        if not isinstance(value, list):
            raise where.error(f"parameter {key!r} takes a list of files, or one '${{steps.NAME}}'", at)
        return [_check_param(key, Param("file"), v, root, at, where) for v in value]
    if isinstance(value, Template):
        if spec.type in FILE_TYPES and value.single_ref is None:
            raise where.error(
                f"parameter {key!r} takes a file: give a path or exactly one '${{steps.NAME}}'", at
            )
        if spec.type not in FILE_TYPES and spec.type != "str":
            raise where.error(f"parameter {key!r} takes {spec.type}, not a step's output", at)
        return value
    if spec.type in FILE_TYPES:
        if not isinstance(value, str) or not value or "\0" in value:
            raise where.error(f"parameter {key!r} takes a file path", at)
        file = (root / value).resolve()
        try:
            found = file.is_file()
        except OSError:  # a name the file system refuses, e.g. too long
            found = False
        if not found:
            raise where.error(f"input file not found: {value}", at, f"looked for {file}")
        return file
    problem = spec.check(value) or _number_problem(key, spec, value) or _text_problem(key, spec, value)
    if problem:
        raise where.error(f"parameter {key!r}: {problem}", at, f"{key}: {spec.describe()}")
    return value


#: the largest magnitude a number without a range of its own may have: what every JSON
#: parser on a provider's side reads exactly (a double holds integers up to 2**53)
MAX_NUMBER = 2**53
#: a seed's range when the catalogue gives none: an unsigned 32-bit integer, as most providers take
SEED_RANGE = (0, 2**32 - 1)
#: parameters that carry the words a step is about: an empty one is refused when the recipe loads
TEXT_PARAMS = ("prompt", "text")


def _number_problem(key: str, spec: Param, value: Any) -> str | None:
    """What the catalogue's own range leaves unchecked: nan, infinities, giant numbers, wild seeds."""
    if spec.type not in ("int", "float") or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if key == "seed" and spec.max is None:
        low, high = SEED_RANGE
        if not low <= value <= high:
            return f"{value!r} is outside the seed range {low}..{high}"
    if abs(value) > MAX_NUMBER and (spec.min is None or spec.max is None):
        return f"{value!r} is too large (at most {MAX_NUMBER:.3g} either way)"
    return None


def _text_problem(key: str, spec: Param, value: Any) -> str | None:
    """An empty prompt or text: the step would fail (or be refused, after paying) when it runs."""
    if spec.type != "str" or not isinstance(value, str) or value.strip():
        return None
    if spec.required or key in TEXT_PARAMS:
        return "is empty; the step needs words here" if not value else "holds only blanks; the step needs words here"
    return None


def _check_references(steps: dict[str, Step], groups: dict[str, Group], where: Where) -> None:
    for step in steps.values():
        for key, value in step.params.items():
            for ref in refs_in(value):
                at = ("steps", step.family or step.name, key)
                target: Step | Group | None = steps.get(ref.step) or groups.get(ref.step)
                if target is None:
                    raise where.error(
                        f"reference to a missing step '${{steps.{ref.step}}}'",
                        at,
                        did_you_mean(ref.step, [*steps, *groups]),
                    )
                _check_ref_media(step, key, value, target, at, where)


def _check_ref_media(
    step: Step, key: str, value: Any, target: Step | Group, at: tuple[str, ...], where: Where
) -> None:
    spec = providers.catalogue(step.provider)[step.model].params[key]
    if spec.type == "files":
        if target.media == "text":
            raise where.error(f"parameter {key!r} takes files, but step {target.name!r} makes text", at)
    elif spec.type in FILE_TYPES:
        if spec.type != "file" and target.media != spec.type:
            raise where.error(
                f"parameter {key!r} takes {spec.type}, but step {target.name!r} makes {target.media}", at
            )
    elif target.media != "text":
        raise where.error(
            f"step {target.name!r} makes {target.media}, which cannot be put into text",
            at,
            "reference it from a file parameter (image, audio, video)",
        )
    del value


def _check_outputs(steps: dict[str, Step], where: Where, groups: Mapping[str, Group] | None = None) -> None:
    seen: dict[Path, str] = {}
    for group in (groups or {}).values():
        if group.output_path is not None:
            seen[group.output_path] = group.name
    for step in steps.values():
        other = seen.get(step.output_path)
        if other is not None:
            tip = (
                "a foreach step's output must differ per item, e.g. \"clips/${item.stem}.mp4\""
                if step.family
                else "give each step its own output path"
            )
            raise where.error(
                f"{'group' if other in (groups or {}) else 'steps'} {other!r} and {step.name!r} both write {step.output}",
                ("steps", step.family or step.name, "output"),
                tip,
            )
        seen[step.output_path] = step.name
    for step in steps.values():
        for key, value in step.params.items():
            for file in value if isinstance(value, list) else [value]:
                writer = seen.get(file) if isinstance(file, Path) else None
                if writer is not None:
                    tip = (
                        "a step cannot overwrite its own input: give it another output"
                        if writer == step.name
                        else f"reference it as '${{steps.{writer}}}', or give {writer!r} another output"
                    )
                    raise where.error(
                        f"input file {file.name} is also the output of {writer!r}",
                        ("steps", step.family or step.name, key),
                        tip,
                    )


