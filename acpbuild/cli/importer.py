"""``acpbuild import``: pipelines of the older YAML tool -> TOML recipes.

Two YAML dialects are read, and may even be mixed:

- ``name``, ``prompt``, ``output_dir`` and ``steps:`` as ``{type, model, params,
  enabled, name}``; a ``type: parallel_group`` step holds ``max_workers``,
  ``merge_strategy`` and ``parallel_steps`` in its ``params`` (or on the step);
- ``pipeline_name``, ``output_directory``, ``global_config`` (``cost_limit``,
  ``parallel_enabled``) and ``steps:`` as ``{step_type, config, output_filename}``;
  a ``step_type: parallel_group`` holds ``parallel_config`` (``merge_strategy``,
  ``max_workers``) and nested ``steps``.

Data flowed implicitly from each step to the next; the recipe says it with
``${steps.X}``. :func:`convert` is pure (YAML data -> TOML text and warnings);
:func:`parse` reads YAML text with line numbers; :func:`check` loads the
written recipe and turns any error back into one about the YAML step.

How things map (documented for users in the README, "Moving from the YAML pipelines");
the tables named here live in :mod:`acpbuild.cli.import_tables`:

- step types -> kinds: :data:`KIND_OF`; a type not there is an error listing them;
- model names -> (provider, model), in this order: the exact catalogue key, an
  alias of the older tool (:data:`MODEL_ALIASES`), a provider endpoint id
  (``fal-ai/flux/dev``), then the same after normalising (lowercase, ``_`` ->
  ``-``). Anything else is an error naming the nearest catalogue model
  (:func:`_nearest_model`). A step without a model gets its kind's default in
  :data:`DEFAULT_MODEL`, with a warning;
- parameter names -> :data:`PARAM_RENAMES`; ``num_images``/``num_outputs``
  (:data:`COUNT_KEYS`) of 1 is left out with a warning (one step makes one file),
  any other count is an error. For a model that takes fal's named sizes,
  ``aspect_ratio`` becomes ``image_size`` (:data:`IMAGE_SIZE_OF`), and
  ``width``/``height`` the named size nearest their ratio, with a warning. A
  parameter the target model does not take, or a value it refuses, is written
  **commented out** in the recipe with the reason, and a warning says so:
  nothing is dropped silently;
- the output file is the step's ``output_filename``, else the first of
  :data:`OUTPUT_KEYS` in its parameters, else ``NAME<suffix>``;
- an input the step does not set comes from the latest earlier enabled step that
  makes its media: ``image``, ``audio``, ``video`` (so a ``mux`` finds both its
  video and its audio), and text for the text input (``text`` for speech,
  ``prompt`` otherwise), which falls back to the pipeline's top-level ``prompt``.
  Text taken from anywhere but the step right before is warned about, as is an
  optional text input left unset; a required input nothing fills is an error;
- a parallel group becomes ``[groups.NAME]`` with the same merge strategy (the
  older tool's spellings of it are in :data:`MERGES`); its members all take the
  step before the group, and the step after it takes the group. first_success
  and best_quality groups get ``output = "NAME<suffix>"``;
- ``enabled: false`` steps are left out, with a comment where they stood.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import tomlkit
from tomlkit.exceptions import ConvertError
from tomlkit.items import Comment, Item, Table

from acpbuild import providers
from acpbuild.cli.import_tables import (
    COUNT_KEYS,
    DEFAULT_MODEL,
    IMAGE_SIZE_OF,
    KIND_OF,
    MERGES,
    MODEL_ALIASES,
    OUTPUT_KEYS,
    PARAM_RENAMES,
    TOP_KEYS,
)
from acpbuild.cli.import_yaml import Path_, parse
from acpbuild.errors import RecipeError, did_you_mean, nearest
from acpbuild.provider import FILE_TYPES, Model, Param
from acpbuild.recipe.kinds import KINDS, SUFFIXES, Media, media_of_suffix


@dataclass
class Imported:
    """A converted pipeline: the recipe's text, what to tell the user, and where each step came from."""

    text: str
    warnings: list[str]
    #: the YAML file as messages name it
    source: str = "pipeline.yaml"
    #: step or group name -> (YAML line, YAML path) of the item it came from
    origins: dict[str, tuple[int | None, str]] = field(default_factory=dict)


@dataclass
class _Made:
    """A step or group already converted: what later steps can take from it."""

    name: str
    media: Media
    collect: tuple[str, ...] = ()  # a collect_all group's members



def _label(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Converter:
    def __init__(
        self, file: str, lines: Mapping[Path_, int], source_dir: Path | None, recipe_dir: Path | None
    ) -> None:
        self.file = file
        self.lines = lines
        self.source_dir = source_dir
        self.recipe_dir = recipe_dir
        self.warnings: list[str] = []
        self.origins: dict[str, tuple[int | None, str]] = {}
        #: the recipe's steps and groups in the pipeline's order, as (table, name, body),
        #: and comments where disabled steps stood
        self.blocks: list[tuple[str, str, Table] | Comment] = []
        self.names: set[str] = set()
        self.outputs: set[str] = set()
        self.counts: dict[str, int] = {}
        self.made: list[_Made] = []
        self.prompt: str | None = None
        self.workers: list[int] = []

    # -- messages ----------------------------------------------------------------
    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def error(self, message: str, path: Path_, tip: str | None = None) -> RecipeError:
        return RecipeError(message, file=self.file, line=self.line(path), table=_label(path), tip=tip)

    def warn(self, message: str, path: Path_) -> None:
        line = self.line(path)
        table = f" [{_label(path)}]" if path else ""
        self.warnings.append(f"{self.file}{f':{line}' if line else ''}{table}: {message}")

    # -- the pipeline --------------------------------------------------------------
    def convert(self, data: Any) -> tomlkit.TOMLDocument:
        if not isinstance(data, dict):
            raise self.error("a pipeline file is a mapping with a 'steps' list", (), "see the README: Moving from the YAML pipelines")
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise self.error("the pipeline has no 'steps' list", ("steps",) if "steps" in data else (), "add steps: with one item per step")
        ignored = sorted(str(k) for k in data if k not in TOP_KEYS)
        if ignored:
            self.warn(f"ignored (acpbuild has no such setting): {', '.join(ignored)}", ())
        config = data.get("global_config") or {}
        if not isinstance(config, dict):
            raise self.error("global_config must be a mapping", ("global_config",))
        extra = sorted(str(k) for k in config if k not in ("cost_limit", "parallel_enabled"))
        if extra:
            self.warn(f"ignored (acpbuild has no such setting): {', '.join(extra)}", ("global_config",))
        if isinstance(data.get("prompt"), str):
            self.prompt = data["prompt"]
        for i, item in enumerate(steps):
            self.item(item, ("steps", i))
        meta: list[tuple[str, Any]] = []
        name = data.get("pipeline_name") or data.get("name") or Path(self.file).stem
        meta.append(("name", str(name)))
        if data.get("description"):
            meta.append(("description", str(data["description"])))
        meta.append(("output_dir", str(data.get("output_directory") or data.get("output_dir") or "output")))
        budget = config.get("cost_limit", data.get("cost_limit", data.get("budget_usd")))
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
                raise self.error(f"cost_limit must be an amount in US dollars, not {budget!r}", ("global_config", "cost_limit"))
            meta.append(("budget_usd", float(budget)))
        parallel = config.get("parallel_enabled")
        if parallel is False:
            meta.append(("jobs", 1))
        elif self.workers:
            meta.append(("jobs", max(self.workers)))
        doc = tomlkit.document()
        doc.add(tomlkit.comment(f"Imported by `acpbuild import` from {self.file} (the older YAML pipeline format)."))
        if self.warnings:
            doc.add(tomlkit.comment("Review these notes from the import:"))
            for warning in self.warnings:
                doc.add(tomlkit.comment(f"  {warning}"))
        doc.add(tomlkit.nl())
        doc.add("recipe", _table(meta))
        if self.prompt is not None:
            doc.add("vars", _table([("prompt", _escape(self.prompt))]))
        for block in self.blocks:
            if isinstance(block, Comment):
                doc.add(tomlkit.nl())
                doc.add(block)
            else:
                # A table already in the document takes more tables after others: the
                # steps and groups keep the pipeline's order, as [steps.a] [groups.g] [steps.b].
                section, name, body = block
                outer = tomlkit.table(is_super_table=True)
                outer.add(name, body)
                doc.append(section, outer)
        return doc

    def item(self, item: Any, path: Path_) -> None:
        if not isinstance(item, dict):
            raise self.error("a step is a mapping with a type (or step_type)", path)
        type_ = item.get("type") or item.get("step_type")
        if not type_:
            raise self.error("step has no type", path, "set type: (or step_type:) to one of " + ", ".join(sorted(KIND_OF)))
        if item.get("enabled", True) is False:
            self.blocks.append(
                tomlkit.comment(
                    f"{_label(path)} ({type_}{', model ' + repr(item.get('model')) if item.get('model') else ''})"
                    " has enabled: false in the YAML; not imported"
                )
            )
            self.warn("disabled (enabled: false): left out, with a comment in the recipe", path)
            return
        if type_ == "parallel_group":
            self.group(item, path)
        else:
            made = self.step(item, path, str(type_), self.made[-1] if self.made else None)
            self.made.append(made)

    def group(self, item: dict[str, Any], path: Path_) -> None:
        params = item.get("params") or {}
        config = item.get("parallel_config") or {}
        settings = {**item, **params, **config}
        members_key = next((k for k in ("parallel_steps", "steps") if isinstance(settings.get(k), list)), None)
        if members_key is None or not settings[members_key]:
            raise self.error("parallel group has no member steps", path, "list them under params.parallel_steps (or steps)")
        def at(key: str) -> Path_:
            home = "parallel_config" if key in config else ("params" if key in params else None)
            return (*path, *((home,) if home else ()), key)

        where = at(members_key)
        strategy = str(settings.get("merge_strategy", "collect_all"))
        merge = MERGES.get(strategy)
        if merge is None:
            raise self.error(
                f"unknown merge_strategy {strategy!r}",
                at("merge_strategy"),
                f"use one of {', '.join(dict.fromkeys(MERGES.values()))}",
            )
        if isinstance(settings.get("max_workers"), int):
            self.workers.append(settings["max_workers"])
        name = self.unique(str(settings.get("group_id") or settings.get("name") or "parallel"), numbered=not (settings.get("group_id") or settings.get("name")))
        before = self.made[-1] if self.made else None
        members: list[_Made] = []
        member_paths: list[Path_] = []
        for i, member in enumerate(settings[members_key]):
            mpath = (*where, i)
            if not isinstance(member, dict):
                raise self.error("a step is a mapping with a type (or step_type)", mpath)
            mtype = member.get("type") or member.get("step_type")
            if mtype == "parallel_group":
                raise self.error("a parallel group inside a parallel group cannot be imported", mpath, "flatten it into one group")
            if member.get("enabled", True) is False:
                self.blocks.append(tomlkit.comment(f"{_label(mpath)} has enabled: false in the YAML; not imported"))
                self.warn("disabled (enabled: false): left out, with a comment in the recipe", mpath)
                continue
            if not mtype:
                raise self.error("step has no type", mpath)
            members.append(self.step(member, mpath, str(mtype), before))
            member_paths.append(mpath)
        if not members:
            raise self.error("every member of this parallel group is disabled", path)
        odd = next((n for n, m in enumerate(members) if m.media != members[0].media), None)
        if odd is not None:
            # Point at the first member that breaks ranks: that is the one to move out.
            raise self.error(
                f"this member makes {members[odd].media}, but the group's first member makes "
                f"{members[0].media}",
                member_paths[odd],
                "acpbuild merges only members that make the same media: split the group",
            )
        group_media = members[0].media
        table = _table([("steps", [m.name for m in members]), ("merge", merge)])
        if merge != "collect_all":
            if merge == "best_quality" and group_media == "text":
                raise self.error(
                    "best_quality cannot score text members by itself",
                    at("merge_strategy"),
                    "use first_success or collect_all, or add a judge step to the recipe after importing",
                )
            table.add("output", self.output(name, group_media, path))
        self.blocks.append(("groups", name, table))
        self.origins[name] = (self.line(path), _label(path))
        self.made.append(_Made(name, group_media, tuple(m.name for m in members) if merge == "collect_all" else ()))

    # -- one step ----------------------------------------------------------------------
    def step(self, item: dict[str, Any], path: Path_, type_: str, prev: _Made | None) -> _Made:
        kind = KIND_OF.get(type_)
        if kind is None:
            tip = did_you_mean(type_, KIND_OF)
            raise self.error(
                f"step type {type_!r} has no acpbuild kind",
                (*path, "type" if "type" in item else "step_type"),
                (f"{tip} " if tip else "") + "types that import: " + ", ".join(sorted(KIND_OF)),
            )
        params_key = "params" if isinstance(item.get("params"), dict) else "config"
        raw = dict(item.get(params_key) or {})
        model_name = item.get("model") or raw.pop("model", None)
        raw.pop("provider", None)
        if kind == "text" and prev is not None and prev.media == "image" and type_ == "prompt_generation":
            kind = "image_understanding"
        provider, model = self.model(kind, model_name, (*path, "model" if "model" in item else params_key), item)
        name = self.unique(str(item.get("name") or kind), numbered="name" not in item)
        output = item.get("output_filename")
        for key in OUTPUT_KEYS:
            value = raw.pop(key, None)
            output = output or value
        media = KINDS[kind]
        out = self.output(name, media, path, str(output) if output else None)
        accepted = model.params_for(kind)
        table = _table([("kind", kind), ("provider", provider), ("model", model.name)])
        params: dict[str, Any] = {}
        for old_key, value in raw.items():
            key = PARAM_RENAMES.get(str(old_key), str(old_key))
            at = (*path, params_key, old_key)
            if key in COUNT_KEYS:
                if value != 1:
                    raise self.error(
                        f"{old_key} = {value!r}: one acpbuild step makes one file",
                        at,
                        f"make {value} steps (or a foreach step) instead, or set {old_key}: 1",
                    )
                self.warn(f"{old_key}: 1 left out: one acpbuild step always makes one file", at)
                continue
            if key in ("width", "height") and "width" not in accepted and "image_size" in accepted:
                continue  # handled below, as one image_size
            if key == "aspect_ratio" and key not in accepted and "image_size" in accepted and value in IMAGE_SIZE_OF:
                key, value = "image_size", IMAGE_SIZE_OF[value]
            spec = accepted.get(key)
            if spec is not None and spec.type in FILE_TYPES | {"files"}:
                value = self.input_file(value, at)
            elif spec is not None:
                value = _coerce(value, spec)
            if spec is None:
                tip = did_you_mean(key, accepted)
                reason = f"{provider}/{model.name} ({kind}) takes no parameter {key!r}" + (f"; {tip}" if tip else "")
                table.add(_commented_out(key, value, reason))
                self.warn(f"{reason}: written commented out", at)
                continue
            problem = None if isinstance(value, _Ref) else spec.check(value)
            if problem:
                reason = f"{key} for {provider}/{model.name}: {problem}"
                table.add(_commented_out(key, value, reason))
                self.warn(f"{reason}: written commented out", at)
                continue
            params[key] = value
        if "width" in raw and "height" in raw and "image_size" in accepted and "width" not in accepted and "image_size" not in params:
            size = _size_name(raw["width"], raw["height"])
            params["image_size"] = size
            self.warn(f"width x height {raw['width']}x{raw['height']} became image_size = {size!r} ({model.name} takes named sizes)", (*path, params_key))
        self.flow(kind, accepted, params, prev, path, provider, model)
        for key, value in params.items():
            table.add(key, _item(value))
        table.add("output", out)
        self.blocks.append(("steps", name, table))
        self.origins[name] = (self.line(path), _label(path))
        return _Made(name, media)

    def flow(
        self,
        kind: str,
        accepted: Mapping[str, Param],
        params: dict[str, Any],
        prev: _Made | None,
        path: Path_,
        provider: str,
        model: Model,
    ) -> None:
        """Fill the inputs the step does not set from the steps before it."""
        earlier = self.made  # a group's members are added only after the group: they see what came before it
        for key, spec in accepted.items():
            if key in params:
                continue
            if spec.type == "files":
                if prev is not None and prev.media == "video":
                    params[key] = _Ref(prev.name) if prev.collect else [_Ref(prev.name)]
                continue
            if spec.type in FILE_TYPES:
                media = spec.type if spec.type != "file" else None
                source = next((m for m in reversed(earlier) if media is None or m.media == media), None)
                if source is None:
                    if spec.required:
                        raise self.error(
                            f"{kind} needs an input {key} ({spec.type}), and no earlier step makes one",
                            path,
                            f"set params.{key} to a file path (relative to the YAML file)",
                        )
                    continue
                if source.collect:
                    self.warn(
                        f"takes one {source.media} but group {source.name!r} collects all its members: "
                        f"took the first, {source.collect[0]!r}",
                        path,
                    )
                    params[key] = _Ref(source.collect[0])
                else:
                    params[key] = _Ref(source.name)
        text_key = "text" if "text" in accepted else ("prompt" if "prompt" in accepted else None)
        if text_key is None or text_key in params:
            return
        # Text flows like media: from the latest earlier step that makes it. The older tool
        # handed each step only the output right before it, so any other source is a warning.
        source = next((m for m in reversed(earlier) if m.media == "text"), None)
        if source is None and self.prompt is None:
            if accepted[text_key].required:
                raise self.error(
                    f"{provider}/{model.name} ({kind}) needs {text_key!r}, but no earlier step makes "
                    "text and the pipeline has no top-level prompt",
                    path,
                    f"set params.{text_key}, or a top-level prompt:",
                )
            self.warn(f"{text_key} left unset: no earlier step makes text and the pipeline has no top-level prompt", path)
            return
        params[text_key] = _Ref(source.name if source else None)
        if prev is not None and source is not prev:
            origin = (
                f"from {source.name!r}, the latest earlier step that makes text"
                if source
                else "from the pipeline's top-level prompt, as no earlier step makes text"
            )
            self.warn(f"{text_key} taken {origin} (the step before, {prev.name!r}, makes {prev.media})", path)

    def model(self, kind: str, name: Any, at: Path_, item: dict[str, Any]) -> tuple[str, Model]:
        serving = [(p, m) for p in providers.names() for m in providers.catalogue(p).values() if kind in m.kinds]
        if not name:
            provider, key = DEFAULT_MODEL[kind]
            self.warn(f"no model given: using {provider}/{key}, acpbuild's default for {kind}", at[:-1])
            return provider, providers.catalogue(provider)[key]
        name = str(name)
        norm = _norm(name)
        found = (
            [(p, m) for p, m in serving if m.name == name]
            or self.alias(norm, kind, serving)
            or [(p, m) for p, m in serving if m.endpoints[kind] == name]
            or [(p, m) for p, m in serving if norm in (_norm(m.name), _norm(m.endpoints[kind]))]
        )
        if found:
            return found[0]
        if len({m.name for _, m in serving}) == 1 and serving[0][0] == "local":
            self.warn(f"model {name!r} is not in the catalogue; {kind} runs on local/{serving[0][1].name}", at)
            return serving[0]
        choices = [f"{p}/{m.name}" for p, m in serving]
        elsewhere = [
            f"{p}/{m.name}"
            for p in providers.names()
            for m in providers.catalogue(p).values()
            if norm == _norm(m.name) or name in m.endpoints.values()
        ]
        message = f"unknown model {name!r} for {kind}"
        if elsewhere:
            message = f"model {name!r} ({elsewhere[0]}) does not make {kind}"
        tip = did_you_mean(name, choices, find=_nearest_model)
        tip = (f"{tip} " if tip else "") + "models for " + kind + ": " + ", ".join(choices)
        raise self.error(message, at, tip)

    @staticmethod
    def alias(norm: str, kind: str, serving: list[tuple[str, Model]]) -> list[tuple[str, Model]]:
        target = MODEL_ALIASES.get(norm)
        if target is None:
            return []
        provider, key = target
        return [(p, m) for p, m in serving if p == provider and (key is None or m.name == key)]

    # -- names and files ---------------------------------------------------------------
    def unique(self, base: str, numbered: bool) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "step"
        if numbered:
            while True:
                self.counts[base] = self.counts.get(base, 0) + 1
                name = f"{base}_{self.counts[base]}"
                if name not in self.names:
                    break
        else:
            name, n = base, 1
            while name in self.names:
                n += 1
                name = f"{base}_{n}"
        self.names.add(name)
        return name

    def output(self, name: str, media: Media, path: Path_, given: str | None = None) -> str:
        if given:
            if Path(given).is_absolute() or ".." in Path(given).parts:
                raise self.error(f"output {given!r} must be a relative path inside the output directory", path)
            if media_of_suffix(Path(given).suffix) != media:
                raise self.error(
                    f"output {given!r} does not fit this step, which makes {media}",
                    path,
                    "use a suffix among " + ", ".join(SUFFIXES[media]),
                )
            out = given
        else:
            out = f"{name}{SUFFIXES[media][0]}"
        if out in self.outputs:
            raise self.error(f"two steps write {out!r}", path, "give each step its own output_filename")
        self.outputs.add(out)
        return out

    def input_file(self, value: Any, at: Path_) -> Any:
        if isinstance(value, list):
            return [self.input_file(v, at) for v in value]
        if not isinstance(value, str) or not value:
            raise self.error(f"{at[-1]} must be a file path, not {value!r}", at)
        if re.match(r"^[a-z]+://", value):
            raise self.error(
                f"{at[-1]} is a URL ({value}); acpbuild reads inputs from files",
                at,
                "download it next to the YAML file and give its path",
            )
        if self.source_dir is not None and self.recipe_dir is not None and not Path(value).is_absolute():
            value = os.path.relpath(self.source_dir / value, self.recipe_dir)
        return _escape(value)


class _Ref(str):
    """``${steps.NAME}`` (or ``${prompt}`` when ``name`` is None): text written unescaped."""

    def __new__(cls, name: str | None) -> Self:
        return super().__new__(cls, "${prompt}" if name is None else f"${{steps.{name}}}")


def _item(value: Any) -> Item:
    """A YAML value as a TOML value written on its key's line.

    Mappings become inline tables, not tables of their own; null, which TOML
    lacks, becomes "" (and is left out of a mapping); what TOML has no type for
    is written as its text.
    """
    if value is None:
        return tomlkit.item("")
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({str(k): _item(v) for k, v in value.items() if v is not None})
        return table
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        array.extend(_item(v) for v in value)
        return array
    try:
        return tomlkit.item(value)
    except ConvertError:
        return tomlkit.item(str(value))


def _table(pairs: list[tuple[str, Any]]) -> Table:
    table = tomlkit.table()
    for key, value in pairs:
        table.add(key, _item(value))
    return table


def _commented_out(key: str, value: Any, reason: str) -> Comment:
    """``# key = value  # not imported: reason``: a parameter kept in the recipe, for the user to judge."""
    return tomlkit.comment(f"{tomlkit.key(key).as_string()} = {_item(value).as_string()}  # not imported: {reason}")


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _nearest_model(name: str, choices: list[str]) -> str | None:
    """The "did you mean" for an unknown model name, among ``provider/model`` choices.

    Ignoring case and punctuation, the first model (in catalogue order) whose name starts
    with the given one wins, then one whose name contains it, so ``veo-3.1`` finds
    ``google/veo-3.1-generate-001`` rather than the closer spelling ``fal/veo3``; failing
    both, the closest spelling.
    """
    models = {choice: choice.split("/", 1)[1] for choice in choices}  # a model's own name may hold a "/"
    squash = re.compile(r"[^a-z0-9]")
    given = squash.sub("", name.lower())
    if len(given) >= 3:  # shorter names match too much to help
        for fits in (str.startswith, str.__contains__):
            hit = next((c for c, m in models.items() if fits(squash.sub("", m.lower()), given)), None)
            if hit:
                return hit
    near = nearest(_norm(name), [_norm(m) for m in models.values()])
    return next((c for c, m in models.items() if _norm(m) == near), None)


def _escape(text: str) -> str:
    """A literal string as a recipe value: ``${`` would interpolate."""
    return text.replace("${", "$${")


def _coerce(value: Any, spec: Param) -> Any:
    if isinstance(value, str):
        value = _escape(value)
    if spec.type in ("int", "float") and isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", value)
        if match:
            value = float(match.group(1))
    if spec.type == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _size_name(width: Any, height: Any) -> str:
    try:
        ratio = float(width) / float(height)
    except (TypeError, ValueError, ZeroDivisionError):
        return "landscape_4_3"
    for limit, size in ((1.6, "landscape_16_9"), (1.15, "landscape_4_3"), (0.87, "square_hd"), (0.65, "portrait_4_3")):
        if ratio >= limit:
            return size
    return "portrait_16_9"



def convert(
    data: Any,
    *,
    source: str = "pipeline.yaml",
    lines: Mapping[Path_, int] | None = None,
    source_dir: Path | None = None,
    recipe_dir: Path | None = None,
) -> Imported:
    """Convert a parsed pipeline into recipe text.

    ``source`` names the YAML file in messages and in the recipe's header;
    ``lines`` (from :func:`parse`) lets errors and warnings name YAML lines.
    Relative input files are rebased from ``source_dir`` onto ``recipe_dir``
    when both are given. Raises :class:`RecipeError` naming the YAML step.
    """
    conv = _Converter(source, lines or {}, source_dir, recipe_dir)
    doc = conv.convert(data)
    return Imported(doc.as_string(), conv.warnings, source, conv.origins)


def check(imported: Imported, path: Path) -> None:
    """Load the recipe written at ``path``; a problem becomes an error about the YAML step it came from."""
    from acpbuild.recipe import load_recipe

    try:
        load_recipe(path, env={})
    except RecipeError as exc:
        parts = (exc.table or "").split(".")
        origin = imported.origins.get(parts[1]) if len(parts) > 1 else None
        if origin is None:
            raise RecipeError(f"the imported recipe does not validate: {exc}") from None
        raise RecipeError(
            f"does not convert: {exc.message} (recipe table [{exc.table}])",
            file=imported.source,
            line=origin[0],
            table=origin[1],
            tip=exc.tip,
        ) from None


__all__ = ["Imported", "check", "convert", "parse"]
