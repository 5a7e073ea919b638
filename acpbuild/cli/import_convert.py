"""The conversion itself: a pipeline's data -> blocks, notes and the recipe's settings.

:class:`Converter` walks the pipeline once, in order. It never refuses a
pipeline that has steps: what does not convert is kept in the recipe as a
comment and reported in a :class:`~acpbuild.cli.import_toml.Note`. One step is
written by :class:`~acpbuild.cli.import_steps.StepSpec`; the step types whose
conversion is more than a renaming (prompt_generation, image_understanding,
avatar and multitalk, generate_subtitles) by :mod:`acpbuild.cli.import_special`.
:mod:`acpbuild.cli.importer` says what each word of the older tool becomes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acpbuild.cli import import_special as special
from acpbuild.cli.import_models import pick
from acpbuild.cli.import_steps import Made, StepSpec, Workspace
from acpbuild.cli.import_tables import (
    IGNORED,
    KIND_OF,
    MERGES,
    NO_KIND,
    OUTPUT_KEYS,
    STEP_KEYS,
    TOP_KEYS,
)
from acpbuild.cli.import_toml import Block, ref
from acpbuild.cli.import_yaml import Path_, label
from acpbuild.errors import RecipeError, did_you_mean
from acpbuild.recipe.kinds import Media


class Converter(Workspace):
    """One pipeline's conversion; :meth:`convert` runs it, the attributes hold the result."""

    # -- the pipeline --------------------------------------------------------------
    def convert(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
            where = ("steps",) if isinstance(data, dict) and "steps" in data else ()
            raise RecipeError(
                "not a pipeline: a pipeline file is a mapping with a non-empty 'steps' list",
                file=self.file,
                line=self.line(where),
                table=label(where) or None,
                tip="see the README: Moving from the YAML pipelines",
            )
        for key in data:
            if key not in TOP_KEYS:
                self.ignore(str(key), (key,), IGNORED.get(str(key), "acpbuild has no such setting"))
        config = data.get("global_config") or {}
        if not isinstance(config, dict):
            self.ignore("global_config", ("global_config",), "not a mapping")
            config = {}
        for key in config:
            if key not in ("cost_limit", "parallel_enabled", "max_workers"):
                self.ignore(str(key), ("global_config", key), "acpbuild has no such setting")
        prompt = data.get("prompt")
        if prompt is not None and not isinstance(prompt, (dict, list)):
            self.set_prompt(str(prompt))
        self.pipeline_inputs(data)
        for i, step in enumerate(data["steps"]):
            made = self.item(step, ("steps", i))
            if made is not None:
                self.by_ref[f"step_{i + 1}"] = made
        self.settings(data, config)
        if self.ignored:
            listed = ", ".join(
                f"{key} ({f'line {self.line(at)}: ' if self.line(at) else ''}{why})" for key, at, why in self.ignored
            )
            self.note(f"ignored, as acpbuild has no use for them: {listed}", (), meaning=False)

    def pipeline_inputs(self, data: dict[str, Any]) -> None:
        kind = data.get("input_type", "auto")
        if kind not in ("auto", "text", "image", "video"):
            self.ignore("input_type", ("input_type",), f"{kind!r} is not auto, text, image or video")
        inputs: tuple[tuple[str, Media], ...] = (("input_image", "image"), ("input_video", "video"))
        for key, media in inputs:
            if data.get(key) is not None:
                path = self.input_file(data[key], (key,), media)
                if path is not None:
                    self.inputs[media] = Made(None, media, path)

    def settings(self, data: dict[str, Any], config: dict[str, Any]) -> None:
        name = data.get("pipeline_name") or data.get("name") or Path(self.file).stem
        self.meta.append(("name", str(name)))
        if data.get("description"):
            self.meta.append(("description", str(data["description"])))
        output_dir = data.get("output_directory") or data.get("output_dir") or "output"
        self.meta.append(("output_dir", str(output_dir)))
        for key, at in (("cost_limit", ("global_config", "cost_limit")), ("cost_limit", ("cost_limit",)), ("budget_usd", ("budget_usd",))):
            budget = config.get(key) if at[0] == "global_config" else data.get(key)
            if budget is None:
                continue
            if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
                self.note(f"{key} {budget!r} is not an amount in US dollars: the recipe has no budget", at, meaning=True)
            else:
                self.meta.append(("budget_usd", float(budget)))
            break
        if isinstance(config.get("max_workers"), int) and not isinstance(config["max_workers"], bool):
            self.workers.append(config["max_workers"])
        if config.get("parallel_enabled") is False:
            self.meta.append(("jobs", 1))
        elif self.workers:
            self.meta.append(("jobs", max(self.workers)))

    # -- steps and groups ---------------------------------------------------------------
    def item(self, item: Any, path: Path_) -> Made | None:
        """One entry of a ``steps`` list: a step or a parallel group."""
        if not isinstance(item, dict):
            self.blocks.append(f"{label(path)}: {item!r} is not a step; not imported")
            self.note("not a step (a mapping with a type): left out, with a comment", path, meaning=True)
            return None
        type_ = item.get("type") or item.get("step_type")
        if not type_:
            self.blocks.append(f"{label(path)} has no type; not imported: {item!r}")
            self.note("step has no type (or step_type): left out, with a comment", path, meaning=True)
            return None
        type_ = str(type_)
        if item.get("enabled", True) is False:
            with self.disabled(f"{label(path)} has enabled: false in the pipeline; kept, commented out"):
                if type_ == "parallel_group":
                    self.group(item, path)
                else:
                    self.step(item, path, type_)
            self.note("disabled (enabled: false): kept in the recipe, commented out", path, meaning=False)
            return None
        made = self.group(item, path) if type_ == "parallel_group" else self.step(item, path, type_)
        if made is not None:
            self.made.append(made)
            if item.get("name"):
                self.by_ref[str(item["name"])] = made
        return made

    def group(self, item: dict[str, Any], path: Path_) -> Made | None:
        params: dict[str, Any] = item["params"] if isinstance(item.get("params"), dict) else {}
        config: dict[str, Any] = item["parallel_config"] if isinstance(item.get("parallel_config"), dict) else {}
        settings = {**item, **params, **config}

        def at(key: str) -> Path_:
            home = "parallel_config" if key in config else ("params" if key in params else None)
            return (*path, *((home,) if home else ()), key)

        members_key = next((k for k in ("parallel_steps", "steps") if isinstance(settings.get(k), list)), None)
        if members_key is None or not settings[members_key]:
            self.blocks.append(f"{label(path)}: a parallel group with no member steps; not imported")
            self.note("parallel group has no member steps: left out", path, meaning=True)
            return None
        strategy = str(settings.get("merge_strategy", "collect_all")).lower()
        merge = MERGES.get(strategy)
        if merge is None:
            merge = "collect_all"
            tip = did_you_mean(strategy, MERGES)
            self.note(
                f"unknown merge_strategy {strategy!r}{f' ({tip})' if tip else ''}: imported as collect_all, "
                "which runs every member and keeps every output",
                at("merge_strategy"),
                meaning=True,
            )
        if isinstance(settings.get("max_workers"), int) and not isinstance(settings["max_workers"], bool):
            self.workers.append(settings["max_workers"])
        given = settings.get("group_id") or settings.get("name")
        name = self.unique(str(given or "parallel"), numbered=not given)
        members: list[Made] = []
        for mpath, member in self.members(settings[members_key], at(members_key)):
            made = self.step(member, mpath, str(member.get("type") or member.get("step_type")))
            if made is not None:
                members.append(made)
                if member.get("name"):
                    self.by_ref[str(member["name"])] = made
        if not members:
            self.blocks.append(f"{label(path)}: every member of this parallel group is disabled or not imported")
            self.note("no member of this parallel group imports: the group is left out", path, meaning=True)
            return None
        if any(m.media != members[0].media for m in members):
            made_of = ", ".join(f"{m.name} ({m.media})" for m in members)
            self.note(
                f"acpbuild merges only members that make the same media, and these make {made_of}: "
                "imported as separate steps, each taking the step before the group; later steps take "
                "the latest of the media they need",
                path,
                meaning=True,
            )
            self.made.extend(members[:-1])  # the caller appends the last
            return members[-1]
        media = members[0].media
        if merge == "best_quality" and media == "text":
            merge = "first_success"
            self.note(
                "best_quality cannot score text: imported as first_success (the first member that "
                "succeeds), which is what the older tool's best_quality, with no score, kept",
                at("merge_strategy"),
                meaning=True,
            )
        elif merge == "best_quality":
            self.note(
                f"best_quality: acpbuild scores the {media} members with its built-in metric and keeps the "
                "best; the older tool had no score (add score = ... or judge = ... to the group to choose)",
                at("merge_strategy"),
                meaning=True,
            )
        entries: list[tuple[str | None, Any]] = [("steps", [m.name for m in members]), ("merge", merge)]
        if merge != "collect_all":
            entries.append(("output", self.output(name, media, path)))
        self.blocks.append(Block("groups", name, entries))
        self.origins[name] = (self.line(path), label(path))
        collect = tuple(str(m.name) for m in members) if merge == "collect_all" else ()
        return Made(name, media, ref(name), collect)

    def members(self, items: list[Any], where: Path_) -> Iterator[tuple[Path_, dict[str, Any]]]:
        """A group's member steps, with nested groups flattened and disabled members commented out."""
        for i, member in enumerate(items):
            mpath = (*where, i)
            if not isinstance(member, dict) or not (member.get("type") or member.get("step_type")):
                self.item(member, mpath)  # says why and leaves it out
                continue
            if member.get("enabled", True) is False:
                with self.disabled(f"{label(mpath)} has enabled: false in the pipeline; kept, commented out"):
                    if (member.get("type") or member.get("step_type")) != "parallel_group":
                        self.step(member, mpath, str(member.get("type") or member.get("step_type")))
                self.note("disabled (enabled: false): kept in the recipe, commented out", mpath, meaning=False)
                continue
            if (member.get("type") or member.get("step_type")) == "parallel_group":
                inner = {**member, **(member.get("params") or {}), **(member.get("parallel_config") or {})}
                key = next((k for k in ("parallel_steps", "steps") if isinstance(inner.get(k), list)), None)
                self.note("a parallel group inside a parallel group: its members join the outer group", mpath, meaning=False)
                if key is not None:
                    home = "params" if key in (member.get("params") or {}) else None
                    yield from self.members(inner[key], (*mpath, *((home,) if home else ()), key))
                continue
            yield mpath, member

    def step(self, item: dict[str, Any], path: Path_, type_: str) -> Made | None:
        """One step; None when it is kept only as a comment."""
        kind = KIND_OF.get(type_)
        if kind is None:
            why = NO_KIND.get(type_)
            if why is None:
                tip = did_you_mean(type_, KIND_OF)
                why = f"acpbuild has no kind for the step type {type_!r}" + (f" ({tip})" if tip else "")
            self.blocks.append(f"{label(path)} ({type_}) not imported: {why}. It was: {_brief(item)}")
            before = self.made[-1].name if self.made and self.made[-1].name else None
            after = f"the step after it takes {before!r} instead" if before else "the step after it takes the pipeline's input"
            self.note(f"step type {type_!r} not imported: {why}; kept as a comment, and {after}", path, meaning=True)
            return None
        params_key = "params" if "params" in item else "config"
        raw = item.get(params_key)
        if raw is not None and not isinstance(raw, dict):
            self.ignore(params_key, (*path, params_key), "not a mapping")
        raw = dict(raw) if isinstance(raw, dict) else {}
        model_name = item.get("model") or raw.pop("model", None)
        raw.pop("provider", None)
        for key in item:
            if key not in STEP_KEYS:
                self.ignore(str(key), (*path, key), "the older tool read a step's settings from params")
        prefer = self.input_from(item, path)
        given = item.get("output_filename")
        for key in OUTPUT_KEYS:
            value = raw.pop(key, None)
            given = given or value
        name = self.unique(str(item.get("name") or ("video_prompt" if type_ == "prompt_generation" else kind)), numbered="name" not in item)
        step = StepSpec(self, item, path, type_, kind, raw, params_key, name, str(model_name) if model_name else None, prefer, str(given) if given else None)
        handler = special.HANDLERS.get(type_) or special.HANDLERS.get(kind)
        return handler(step) if handler else step.build(pick(kind, step.model_name))

    def input_from(self, item: dict[str, Any], path: Path_) -> Made | None:
        source = item.get("input_from")
        if source is None:
            return None
        found = self.by_ref.get(str(source))
        if found is None:
            self.note(f"input_from {source!r} names no earlier step: the step takes the one before it", (*path, "input_from"), meaning=True)
        return found


def _brief(item: dict[str, Any]) -> str:
    text = repr({k: v for k, v in item.items() if k != "enabled"})
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["Converter"]
