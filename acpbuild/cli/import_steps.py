"""Writing one step: the state a conversion keeps, and the rules every step follows.

:class:`Workspace` holds what the conversion has made so far (blocks, notes,
names, outputs, what later steps can take from) and the services every step
uses: notes, input files, output names, ``{{step_N.output}}``, and
:meth:`Workspace.source`, the latest earlier step that makes a medium.
:class:`StepSpec` is one step of the pipeline; :meth:`StepSpec.build` maps its
parameters onto the chosen model, fills the inputs it does not set from the
steps before it (:func:`flow`), and writes its block. The pipeline and its
groups are walked in :mod:`acpbuild.cli.import_convert`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from acpbuild.cli.import_models import Pick
from acpbuild.cli.import_tables import (
    ASPECT_OF,
    COUNT_KEYS,
    FIXED_TEXTS,
    IMAGE_SIZE_OF,
    PARAM_RENAMES,
    VOICES,
)
from acpbuild.cli.import_toml import Block, Note, Raw, commented_out, escape, ref
from acpbuild.cli.import_yaml import Path_, label
from acpbuild.errors import did_you_mean
from acpbuild.provider import FILE_TYPES, Param
from acpbuild.recipe.kinds import KINDS, SUFFIXES, Media, media_of_suffix

#: kinds whose input is text: the text flowing from the step before fills their prompt or text
TEXT_INPUT = ("text", "text_to_image", "text_to_video", "text_to_speech", "subtitles")
#: what a step reads when the pipeline gives no prompt at all
PROMPT_PLACEHOLDER = "TODO: the pipeline gave no prompt; write it here"
#: ``{{step_2.output}}`` or ``{{NAME.output}}`` in the older tool's parameters
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+?)\.output\s*\}\}")


@dataclass
class Made:
    """A step, group or pipeline input that later steps can take from."""

    name: str | None  # None: the pipeline's own input (its prompt, input_image, input_video)
    media: Media
    #: what a step taking it writes: ``${steps.NAME}``, ``${prompt}`` or a file path
    value: Any
    collect: tuple[str, ...] = ()  # a collect_all group's members
    prompt_gen: bool = False  # written by a prompt_generation step
    duration: float | None = None  # a video's length, where the recipe says it


class Workspace:
    """What a conversion has made so far, and the services its steps share."""

    def __init__(
        self, file: str, lines: Mapping[Path_, int], source_dir: Path | None, recipe_dir: Path | None
    ) -> None:
        self.file = file
        self.lines = lines
        self.source_dir = source_dir
        self.recipe_dir = recipe_dir
        self.notes: list[Note] = []
        #: (key, where, why) of every setting left out, reported in one note at the end
        self.ignored: list[tuple[str, Path_, str]] = []
        self.blocks: list[Block | str] = []
        self.origins: dict[str, tuple[int | None, str]] = {}
        self.meta: list[tuple[str, Any]] = []
        self.variables: dict[str, Any] = {}
        #: input files the recipe names that do not exist yet (escaped, as written)
        self.missing: set[str] = set()
        self.names: set[str] = set()
        self.outputs: set[str] = set()
        self.counts: dict[str, int] = {}
        self.made: list[Made] = []
        #: the pipeline's own inputs by media: its prompt, input_image, input_video
        self.inputs: dict[str, Made] = {}
        #: what ``input_from`` and ``{{X.output}}`` may name: step_N, YAML names, step names
        self.by_ref: dict[str, Made] = {}
        self.workers: list[int] = []
        self._quiet = 0

    # -- messages ----------------------------------------------------------------
    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def note(self, message: str, path: Path_, *, meaning: bool) -> None:
        if self._quiet:
            return
        line = self.line(path)
        where = f" [{label(path)}]" if path else ""
        self.notes.append(Note(f"{self.file}{f':{line}' if line else ''}{where}: {message}", meaning))

    def ignore(self, key: str, path: Path_, why: str) -> None:
        if not self._quiet:
            self.ignored.append((key, path, why))

    @contextmanager
    def disabled(self, why: str) -> Iterator[None]:
        """Convert a step as usual but write it commented out, keep its notes quiet, claim no output."""
        start, outputs = len(self.blocks), set(self.outputs)
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1
            self.outputs = outputs
            for block in self.blocks[start:]:
                if isinstance(block, Block):
                    block.commented = why
                    self.origins.pop(block.name, None)

    @property
    def quiet(self) -> bool:
        """True while a disabled step is converted (to be written commented out)."""
        return self._quiet > 0

    def set_prompt(self, text: str) -> None:
        self.variables["prompt"] = escape(text)
        self.inputs["text"] = Made(None, "text", ref(None))

    # -- inputs ----------------------------------------------------------------------
    def source(self, media: str | None, prefer: Made | None = None) -> Made | None:
        """The latest earlier step (or, else, pipeline input) that makes ``media`` (None: any)."""
        if prefer is not None and media in (None, prefer.media):
            return prefer
        found = next((m for m in reversed(self.made) if media is None or m.media == media), None)
        return found or (self.inputs.get(media) if media else None)

    def placeholder(self, name: str, key: str, media: str, path: Path_, why: str) -> str:
        """A file the user must provide: named in the recipe, noted, and allowed for by ``check``."""
        value = escape(f"{name}_{key}{SUFFIXES[media][0]}")  # type: ignore[index]
        self.missing.add(value)
        self.note(f"{why}: the recipe reads {key} from {value!r} beside it; put one there before running", path, meaning=True)
        return value

    def input_file(self, value: Any, at: Path_, media: str | None = None) -> Any:
        """A file the pipeline names, as the recipe names it; None (and a note) when it is no file."""
        if isinstance(value, list):
            files = [self.input_file(v, at, media) for v in value]
            return [f for f in files if f is not None]
        if not isinstance(value, str) or not value:
            self.note(f"{at[-1]} {value!r} is not a file path: left out", at, meaning=True)
            return None
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            local = "inputs/" + (PurePosixPath(value.split("?")[0]).name or f"{at[-1]}")
            self.note(
                f"{at[-1]} is a URL ({value}); acpbuild reads inputs from files: download it to "
                f"{local!r} beside the recipe before running",
                at,
                meaning=True,
            )
            self.missing.add(escape(local))
            return escape(local)
        written = value
        if self.source_dir is not None and self.recipe_dir is not None and not Path(value).is_absolute():
            written = os.path.relpath(self.source_dir / value, self.recipe_dir)
        if self.source_dir is not None and not (self.source_dir / value).is_file():
            self.note(f"input file {value!r} is not there yet: put it there before running", at, meaning=True)
            self.missing.add(escape(written))
        return escape(written)

    def coerce(self, value: Any, spec: Param, at: Path_) -> Any:
        """A parameter's value as the model's catalogue types it; ``{{step_N.output}}`` -> ``${steps.X}``."""
        if isinstance(value, str):
            value = self.templated(escape(value), at)
        if spec.type in ("int", "float") and isinstance(value, str) and not isinstance(value, Raw):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", value)
            if match:
                value = float(match.group(1))
        if spec.type == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def templated(self, text: str, at: Path_, media: str = "text") -> str:
        """``{{step_N.output}}`` (or ``{{NAME.output}}``) in ``text`` -> that step's ``${steps.X}``."""
        if "{{" not in text:
            return text

        def step_ref(match: re.Match[str]) -> str:
            found = self.by_ref.get(match[1])
            if found is None or found.name is None:
                self.note(f"{match[0]} names no earlier step: kept as written", at, meaning=True)
                return match[0]
            if found.media != media:
                self.note(f"{match[0]} names a step that makes {found.media}, not {media}: kept as written", at, meaning=True)
                return match[0]
            return str(found.value)

        return Raw(_TEMPLATE.sub(step_ref, text))

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

    def output(self, name: str, media: Media, path: Path_, given: str | None = None, suffix: str | None = None) -> str:
        """The step's output file: the name the pipeline gave, kept where it fits, else ``NAME<suffix>``."""
        suffix = suffix or SUFFIXES[media][0]
        out = f"{name}{suffix}"
        if given:
            wanted = PurePosixPath(given.replace("\\", "/"))
            if wanted.is_absolute() or ".." in wanted.parts:
                self.note(f"output {given!r} lies outside the output directory: written as {wanted.name!r} in it", path, meaning=False)
                wanted = PurePosixPath(wanted.name)
            if wanted.name and media_of_suffix(wanted.suffix) != media:
                fixed = wanted.with_suffix(suffix) if wanted.suffix else wanted.with_name(wanted.name + suffix)
                self.note(f"output {given!r} does not fit {media}: written as {str(fixed)!r}", path, meaning=False)
                wanted = fixed
            out = str(wanted) if wanted.name else out
        stem, ext = os.path.splitext(out)
        n = 1
        while out in self.outputs:
            n += 1
            out = f"{stem}_{n}{ext}"
        if n > 1 and given:
            self.note(f"another step already writes {given!r}: this one writes {out!r}", path, meaning=False)
        self.outputs.add(out)
        return out


class StepSpec:
    """One step being converted: what the pipeline says, and :meth:`build` to write it."""

    def __init__(
        self,
        conv: Workspace,
        item: dict[str, Any],
        path: Path_,
        type_: str,
        kind: str,
        raw: dict[str, Any],
        params_key: str,
        name: str,
        model_name: str | None,
        prefer: Made | None,
        given: str | None,
    ) -> None:
        self.conv = conv
        self.item = item
        self.path = path
        self.type = type_
        self.kind = kind
        self.raw = raw
        self.params_key = params_key
        self.name = name
        self.model_name = model_name
        self.prefer = prefer
        self.given = given

    def at(self, key: str) -> Path_:
        return (*self.path, self.params_key, key)

    def at_model(self) -> Path_:
        return (*self.path, "model") if "model" in self.item else self.at("model")

    def build(
        self,
        chosen: Pick,
        *,
        preset: dict[str, Any] | None = None,
        comments: tuple[str, ...] = (),
        suffix: str | None = None,
        after: Callable[[dict[str, Any]], tuple[str, ...]] | None = None,
    ) -> Made:
        """Write the step on ``chosen``: ``preset`` values as they are, the pipeline's params
        mapped and checked, then the inputs it does not set taken from the steps before."""
        conv, kind, provider, model = self.conv, self.kind, chosen.provider, chosen.model
        accepted = model.params_for(kind)
        origin = f"{self.type}" + (f", model {self.model_name!r}" if self.model_name else "")
        entries: list[tuple[str | None, Any]] = [(None, f"from {label(self.path)}: {origin}")]
        entries += [("kind", kind), ("provider", provider), ("model", model.name)]
        if chosen.substitute:
            entries.append((None, f"model: the pipeline's {chosen.original!r}; {chosen.substitute}"))
            conv.note(f"model {chosen.original!r} became {chosen.label}: {chosen.substitute}", self.at_model(), meaning=True)
        elif not self.model_name and self.type != "prompt_generation":
            conv.note(f"no model given: using {chosen.label}, the older tool's default for {kind}", self.path, meaning=False)
        entries += [(None, c) for c in comments]
        if self.item.get("description"):
            entries.append(("description", str(self.item["description"])))
        params: dict[str, Any] = dict(preset or {})
        for key, value, reason in self.mapped(chosen, accepted):
            if reason is None:
                params.setdefault(key, value)
                continue
            entries.append((None, commented_out(key, value, reason)))
            conv.note(f"{reason}: written commented out", self.at(key), meaning=True)
        flow(conv, kind, accepted, params, self)
        if after is not None:
            entries += [(None, c) for c in after(params)]
        entries += list(params.items())
        media = KINDS[kind]
        entries.append(("output", conv.output(self.name, media, self.path, self.given, suffix)))
        retries = self.item.get("retry_count")
        if retries is not None:
            entries.append((None, commented_out("retry_count", retries, RETRIES)))
            conv.note(f"retry_count not imported: {RETRIES}", (*self.path, "retry_count"), meaning=False)
        conv.blocks.append(Block("steps", self.name, entries))
        conv.origins[self.name] = (conv.line(self.path), label(self.path))
        duration = params.get("duration_s", accepted["duration_s"].default if "duration_s" in accepted else None)
        made = Made(self.name, media, ref(self.name), duration=duration if isinstance(duration, (int, float)) else None)
        if not conv.quiet:
            conv.by_ref.setdefault(self.name, made)
        return made

    def mapped(self, chosen: Pick, accepted: Mapping[str, Param]) -> Iterator[tuple[str, Any, str | None]]:
        """(key, value, None) for each parameter the model takes; (key, value, why) for one it does not."""
        conv, raw, kind = self.conv, dict(self.raw), self.kind
        label_ = f"{chosen.label} ({kind})"
        fixed = [k for k in FIXED_TEXTS if k in raw]
        if fixed and "text" in raw:
            conv.note(f"text and {fixed[0]} both given: the fixed {fixed[0]} wins, as in the older tool", self.at("text"), meaning=False)
            raw.pop("text")
        for old_key, value in raw.items():
            key = PARAM_RENAMES.get(str(old_key), str(old_key))
            at = self.at(old_key)
            if key in COUNT_KEYS:
                if value != 1:
                    conv.note(f"{old_key}: {value!r}: one acpbuild step makes one file, so this makes one (add steps for more)", at, meaning=True)
                else:
                    conv.note(f"{old_key}: 1 left out: one acpbuild step always makes one file", at, meaning=False)
                continue
            if key in ("width", "height") and "width" not in accepted and "image_size" in accepted:
                continue  # below, as one image_size
            if key == "aspect_ratio" and key not in accepted and "image_size" in accepted and value in IMAGE_SIZE_OF:
                key, value = "image_size", IMAGE_SIZE_OF[value]
            elif key == "image_size" and key not in accepted and "aspect_ratio" in accepted and value in ASPECT_OF:
                key, value = "aspect_ratio", ASPECT_OF[value]
                conv.note(f"image_size {raw[old_key]!r} became aspect_ratio {value!r} ({chosen.label} takes ratios)", at, meaning=False)
            spec = accepted.get(key)
            if spec is None:
                tip = did_you_mean(key, accepted)
                yield key, value, f"{label_} takes no parameter {key!r}" + (f"; {tip}" if tip else "")
                continue
            if key == "voice" and chosen.provider == "elevenlabs" and isinstance(value, str) and value.lower() in VOICES:
                value = VOICES[value.lower()]
            if spec.type in FILE_TYPES and isinstance(value, str) and _TEMPLATE.fullmatch(value.strip()):
                value = conv.templated(value.strip(), at, spec.type)
                if not isinstance(value, Raw):
                    yield key, value, f"{key}: {value} names no earlier step that makes {spec.type}"
                    continue
            elif spec.type in FILE_TYPES or spec.type == "files":
                value = conv.input_file(value, at, spec.type if spec.type in FILE_TYPES else None)
                if value is None or value == []:
                    continue
            else:
                value = conv.coerce(value, spec, at)
            problem = None if isinstance(value, Raw) else spec.check(value)
            if problem:
                yield key, value, f"{key} for {chosen.label}: {problem}"
                continue
            yield key, value, None
        if "width" in raw and "height" in raw and "image_size" in accepted and "width" not in accepted and "image_size" not in raw:
            size = _size_name(raw["width"], raw["height"])
            conv.note(f"width x height {raw['width']}x{raw['height']} became image_size = {size!r} ({chosen.model.name} takes named sizes)", (*self.path, self.params_key), meaning=False)
            yield "image_size", size, None


RETRIES = (
    "the older tool never read it; acpbuild retries a failed request itself "
    "(ACPBUILD_RETRY_ATTEMPTS), never one that may have been billed"
)


def flow(conv: Workspace, kind: str, accepted: Mapping[str, Param], params: dict[str, Any], step: StepSpec) -> None:
    """Fill the inputs a step does not set from the steps before it, as the older tool's data flowed."""
    prev = conv.made[-1] if conv.made else None
    for key, spec in accepted.items():
        if key in params or not spec.required:
            continue
        if spec.type == "files":
            media = "audio" if kind == "mix_audio" else "video"
            source = conv.source(media, step.prefer)
            if source is None:
                params[key] = [conv.placeholder(step.name, key, media, step.path, f"{kind} needs {media} files and no earlier step makes {media}")]
            elif source.collect:
                params[key] = source.value
            else:
                params[key] = [source.value]
            continue
        if spec.type not in FILE_TYPES:
            continue
        wanted = None if spec.type == "file" else spec.type
        source = conv.source(wanted, step.prefer)
        if source is None:
            params[key] = conv.placeholder(step.name, key, wanted or "image", step.path, f"{kind} needs an input {key} ({spec.type}), and no earlier step makes one")
        elif source.collect:
            conv.note(
                f"takes one {source.media} but group {source.name!r} collects all its members: took the first, {source.collect[0]!r}",
                step.path,
                meaning=True,
            )
            params[key] = ref(source.collect[0])
        else:
            params[key] = source.value
    text_key = "text" if "text" in accepted else ("prompt" if "prompt" in accepted else None)
    if text_key is None or text_key in params:
        return
    source = conv.source("text", step.prefer)
    required = accepted[text_key].required
    if kind not in TEXT_INPUT:
        if source is not None and source.prompt_gen and kind == "image_to_video":
            params[text_key] = source.value  # the documented exception: the generated prompt
            return
        if not required:
            conv.note(f"{text_key} left unset: the older tool gave this step media, not text", step.path, meaning=False)
            return
    if source is None:
        if not required or conv.quiet:
            conv.note(f"{text_key} left unset: no earlier step makes text and the pipeline has no top-level prompt", step.path, meaning=False)
            return
        conv.set_prompt(PROMPT_PLACEHOLDER)
        conv.note(
            f"{text_key} is required, but no earlier step makes text and the pipeline has no top-level prompt: "
            "it reads ${prompt}, a placeholder in [vars]; write the prompt there",
            step.path,
            meaning=True,
        )
        source = conv.inputs["text"]
    params[text_key] = source.value
    if prev is not None and source is not prev and source is not step.prefer:
        origin = (
            f"from {source.name!r}, the latest earlier step that makes text"
            if source.name
            else "from the pipeline's top-level prompt, as no earlier step makes text"
        )
        conv.note(f"{text_key} taken {origin} (the step before, {prev.name!r}, makes {prev.media})", step.path, meaning=True)


def _size_name(width: Any, height: Any) -> str:
    try:
        ratio = float(width) / float(height)
    except (TypeError, ValueError, ZeroDivisionError):
        return "landscape_4_3"
    for limit, size in ((1.6, "landscape_16_9"), (1.15, "landscape_4_3"), (0.87, "square_hd"), (0.65, "portrait_4_3")):
        if ratio >= limit:
            return size
    return "portrait_16_9"


__all__ = ["Made", "StepSpec", "Workspace", "flow"]
