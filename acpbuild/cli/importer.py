"""``acpbuild import``: pipelines of the older YAML tool -> TOML recipes.

A pipeline file is YAML or JSON, chosen by its extension as the older tool
chose (:func:`parse`). Two dialects are read, and may even be mixed:

- ``name``, ``prompt``, ``input_image``/``input_video``, ``output_dir`` and
  ``steps:`` as ``{type, model, params, enabled, retry_count}``; a ``type:
  parallel_group`` step holds ``max_workers``, ``merge_strategy`` and
  ``parallel_steps`` in its ``params`` (or on the step);
- ``pipeline_name``, ``output_directory``, ``global_config`` (``cost_limit``,
  ``parallel_enabled``, ``max_workers``) and ``steps:`` as ``{step_type, config,
  output_filename}``; a ``step_type: parallel_group`` holds ``parallel_config``
  and nested ``steps``.

Only a file that is not a pipeline at all (no ``steps`` list) is refused.
Everything else imports, and what changes on the way is a note
(:class:`~acpbuild.cli.import_toml.Note`): first those that change what the
pipeline does, then the cosmetic ones, printed and written at the top of the
recipe. How each word maps (the README's "Moving from the YAML pipelines" says
the same for users; the tables live in :mod:`acpbuild.cli.import_tables`):

- step types -> kinds (``KIND_OF``); a type acpbuild has no kind for
  (``NO_KIND``, or unknown) is kept as a comment, and the step after it takes
  the one before;
- model names -> a catalogue model (:mod:`acpbuild.cli.import_models`): the
  same model under any of its spellings, else a substitute of the same kind,
  named in a comment beside the model and in a note;
- parameters -> ``PARAM_RENAMES``; fixed texts (``text_override``,
  ``subtitle_text``) become the step's ``text``, so the step reads them rather
  than the text flowing in; a parameter the model does not take, or a value it
  refuses, is written commented out with the reason;
- data flow becomes ``${steps.X}``: an input a step does not set comes from the
  latest earlier step that makes its media (or the pipeline's ``prompt``,
  ``input_image``, ``input_video``); ``input_from`` and ``{{step_N.output}}``
  are honoured; a text step's prompt flows in, a media step's prompt only from
  a prompt_generation step (:mod:`acpbuild.cli.import_special`);
- a parallel group becomes ``[groups.NAME]`` with the same merge;
- ``enabled: false`` steps are converted and written commented out;
  ``retry_count`` is written as a comment saying why it is not a setting;
- ``output_filename`` / ``output_file`` are kept, else ``NAME<suffix>``.

:func:`convert` is pure (data -> :class:`Imported`); :func:`check` loads the
written recipe and comments out any parameter it still refuses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acpbuild.cli.import_convert import Converter
from acpbuild.cli.import_toml import Block, Note, render
from acpbuild.cli.import_yaml import Path_, parse
from acpbuild.errors import RecipeError

#: the headings notes are grouped under, changes of meaning first
MEANING = "These change what the pipeline does, or need you before it runs:"
COSMETIC = "Cosmetic (the pipeline does the same):"


@dataclass
class Imported:
    """A converted pipeline: its recipe (:attr:`text`), what to tell the user, and where each step came from."""

    source: str
    meta: list[tuple[str, Any]]
    variables: dict[str, Any]
    blocks: list[Block | str]
    notes: list[Note]
    #: step or group name -> (line, place) of the pipeline item it came from
    origins: dict[str, tuple[int | None, str]] = field(default_factory=dict)
    #: input files the recipe names that do not exist yet
    missing: set[str] = field(default_factory=set)

    @property
    def warnings(self) -> list[str]:
        """Every note's text, changes of meaning first."""
        return [n.text for n in self.notes if n.meaning] + [n.text for n in self.notes if not n.meaning]

    def groups(self) -> list[tuple[str, list[str]]]:
        """(heading, notes) for each kind of note there is, changes of meaning first."""
        found = [(MEANING, [n.text for n in self.notes if n.meaning]), (COSMETIC, [n.text for n in self.notes if not n.meaning])]
        return [(heading, texts) for heading, texts in found if texts]

    @property
    def text(self) -> str:
        return self.render()

    def render(self, swap: Mapping[str, str] | None = None) -> str:
        header = [f"Imported by `acpbuild import` from {self.source} (the older YAML pipeline format)."]
        for heading, texts in self.groups():
            header.append(heading)
            header += [f"  {t}" for t in texts]
        return render(header, self.meta, self.variables, self.blocks, swap)


def convert(
    data: Any,
    *,
    source: str = "pipeline.yaml",
    lines: Mapping[Path_, int] | None = None,
    source_dir: Path | None = None,
    recipe_dir: Path | None = None,
) -> Imported:
    """Convert a parsed pipeline into a recipe.

    ``source`` names the pipeline file in notes and in the recipe's header;
    ``lines`` (from :func:`parse`) lets notes name its lines. Relative input files
    are rebased from ``source_dir`` onto ``recipe_dir`` when both are given, and
    with ``source_dir`` an input file that is not there is noted. Raises
    :class:`RecipeError` only for data that is not a pipeline.
    """
    conv = Converter(source, lines or {}, source_dir, recipe_dir)
    conv.convert(data)
    return Imported(source, conv.meta, conv.variables, conv.blocks, conv.notes, conv.origins, conv.missing)


#: how many refused parameters :func:`check` comments out before it gives up
_MAX_FIXES = 200


def check(imported: Imported, path: Path) -> None:
    """Load the recipe, written at ``path``; comment out what it refuses until it loads.

    A parameter the recipe's loader refuses (an output format that does not fit
    the file's suffix, say) is written commented out, with the loader's reason
    and a note. Input files that do not exist yet stand in as empty files while
    it loads. Any other problem becomes an error about the pipeline step it came from.
    """
    from acpbuild.recipe import load_recipe

    with tempfile.TemporaryDirectory(prefix="acpbuild-import-") as scratch:
        swap: dict[str, str] = {}

        def stand_in(value: str) -> None:
            swap[value] = str(Path(scratch) / f"{len(swap)}{Path(value).suffix}")
            Path(swap[value]).touch()

        for value in sorted(imported.missing):
            stand_in(value)
        for _ in range(_MAX_FIXES):
            path.write_text(imported.render(swap), encoding="utf-8")
            try:
                load_recipe(path, env={})
                break
            except RecipeError as exc:
                missing = _missing_file(imported, exc)
                if missing is not None and missing not in swap:
                    stand_in(missing)
                elif not _comment_out(imported, exc):
                    raise _about_the_pipeline(imported, exc) from None
    path.write_text(imported.text, encoding="utf-8")


def _missing_file(imported: Imported, exc: RecipeError) -> str | None:
    """The input file a load error says is not there (one :func:`convert` could not look for)."""
    if not exc.message.startswith(_NOT_FOUND):
        return None
    value = exc.message.removeprefix(_NOT_FOUND)
    if value not in imported.missing:
        imported.missing.add(value)
        line, place = imported.origins.get((exc.table or "..").split(".")[1], (None, ""))
        where = f"{imported.source}{f':{line}' if line else ''}{f' [{place}]' if place else ''}"
        imported.notes.append(Note(f"{where}: input file {value!r} is not there yet: put it there before running", True))
    return value


_NOT_FOUND = "input file not found: "


def _comment_out(imported: Imported, exc: RecipeError) -> bool:
    parts = (exc.table or "").split(".")
    if len(parts) != 3 or parts[0] != "steps" or parts[2] in ("kind", "provider", "model", "output"):
        return False
    block = next((b for b in imported.blocks if isinstance(b, Block) and b.name == parts[1] and not b.commented), None)
    if block is None or not block.comment_out(parts[2], exc.message):
        return False
    line, place = imported.origins.get(parts[1], (None, ""))
    where = f"{imported.source}{f':{line}' if line else ''}{f' [{place}]' if place else ''}"
    imported.notes.append(Note(f"{where}: {exc.message}: {parts[2]} written commented out", True))
    return True


def _about_the_pipeline(imported: Imported, exc: RecipeError) -> RecipeError:
    parts = (exc.table or "").split(".")
    origin = imported.origins.get(parts[1]) if len(parts) > 1 else None
    if origin is None:
        return RecipeError(f"the imported recipe does not validate: {exc}")
    return RecipeError(
        f"does not convert: {exc.message} (recipe table [{exc.table}])",
        file=imported.source,
        line=origin[0],
        table=origin[1],
        tip=exc.tip,
    )


__all__ = ["Imported", "Note", "check", "convert", "parse"]
