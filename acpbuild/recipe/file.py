"""The recipe file itself: TOML read with tomli, its shape checked by pydantic models.

This is the first of the two stages of loading (:mod:`acpbuild.recipe` holds
the second): unknown keys are forbidden, and every error names the file, the
line and the table path, with the nearest valid key where there is one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomli
import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acpbuild.errors import RecipeError, did_you_mean, nearest
from acpbuild.recipe.sourcemap import key_lines, line_of

#: step keys that are not provider parameters, and never enter the step key
#: (``kind``, ``provider`` and ``model`` enter it on their own)
STEP_FIELDS = ("kind", "provider", "model", "output", "description", "timeout_s", "foreach")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RecipeMeta(_Strict):
    """The ``[recipe]`` table: name, where outputs go, and how the recipe runs."""

    name: str | None = Field(default=None, description="The recipe's name (default: the file's name).")
    description: str = Field(default="", description="What the recipe makes; shown nowhere else.")
    output_dir: str = Field(
        default="out", description="Where outputs go, relative to the recipe; every output stays inside it."
    )
    budget_usd: float | None = Field(
        default=None, ge=0, description="The most a run may pay, in US dollars (--budget overrides it)."
    )
    jobs: int | None = Field(
        default=None, ge=1, le=256, description="How many steps run at once (-j overrides it; default 16)."
    )
    store: str | None = Field(
        default=None,
        description="Where the store and ledger live, relative to the recipe (default .acpbuild; "
        "ACPBUILD_STORE overrides it).",
    )
    #: provider -> how many of its generations may run at once
    concurrency: dict[str, int] = Field(
        default={}, description="Provider -> how many of its generations may run at once, e.g. { fal = 4 }."
    )


class RawStep(BaseModel):
    """A ``[steps.NAME]`` table; keys beyond these are the model's parameters."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    kind: str = Field(description="What the step makes (text, text_to_image, mux, ...).")
    provider: str | None = Field(
        default=None, description="Who makes it (default: [defaults.KIND] provider, else local)."
    )
    model: str | None = Field(
        default=None, description="The provider's model; may be left out when it has one model for the kind."
    )
    output: str = Field(description="The output file, relative to output_dir; its suffix must fit the kind.")
    description: str = Field(default="", description="A note on the step; never enters its key.")
    timeout_s: float = Field(
        default=600.0, gt=0, le=7 * 24 * 3600, description="Seconds the generation may take (at most a week)."
    )
    foreach: str | list[dict[str, Any]] | None = Field(
        default=None,
        description="One step per item: a glob, a CSV or JSONL file, '${steps.NAME}' of another "
        "foreach step, or an inline list of tables.",
    )


class RawGroup(_Strict):
    """A ``[groups.NAME]`` table: member steps and how their outputs merge."""

    steps: list[str] = Field(min_length=1, description="Member step names, in order.")
    merge: str = Field(description="collect_all, first_success or best_quality.")
    output: str | None = Field(
        default=None, description="first_success and best_quality: where the chosen member's copy goes."
    )
    score: str | None = Field(
        default=None, description="best_quality: a built-in metric (resolution, sharpness, duration, loudness)."
    )
    judge: str | None = Field(
        default=None, description="best_quality: a text step whose output names the winner."
    )
    description: str = Field(default="", description="A note on the group.")


class RecipeFile(_Strict):
    """An acpbuild recipe: a pipeline of generation steps built like make builds code."""

    recipe: RecipeMeta = Field(default=RecipeMeta(), description="Name, output_dir, jobs, budget, store.")
    vars: dict[str, str | int | float | bool] = Field(
        default={}, description="Values that steps use as ${name}."
    )
    defaults: dict[str, dict[str, Any]] = Field(
        default={}, description="[defaults.KIND]: provider, model and parameters merged under every step of KIND."
    )
    steps: dict[str, RawStep] = Field(min_length=1, description="[steps.NAME]: one generation or local step each.")
    groups: dict[str, RawGroup] = Field(
        default={}, description="[groups.NAME]: steps whose outputs merge into one."
    )



class Where:
    """Builds RecipeErrors that name the file, line and table path."""

    def __init__(self, path: Path, text: str) -> None:
        self.file = display_path(path)
        self.lines = key_lines(text)

    def error(self, message: str, path: tuple[Any, ...], tip: str | None = None) -> RecipeError:
        table = ".".join(str(p) for p in path)
        return RecipeError(message, file=self.file, line=line_of(self.lines, path), table=table, tip=tip)


def display_path(path: Path) -> str:
    """The path as the user most likely typed it: relative below the current directory."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_file(path: Path) -> tuple[RecipeFile, Where]:
    """Parse ``path`` and check its shape."""
    raw, where, _ = read_with_digest(path)
    return raw, where


def read_with_digest(path: Path) -> tuple[RecipeFile, Where, str]:
    """:func:`read_file`, and the xxh3-128 of the very bytes parsed."""
    try:
        data = path.read_bytes()
        # what read_text gives, from the very bytes the digest is taken of
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise RecipeError(
            "recipe file not found",
            file=display_path(path),
            tip="pass a recipe path, or run where an acpbuild.toml is (acpbuild init makes one)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the recipe: {exc}", file=display_path(path)) from exc
    where = Where(path, text)
    try:
        table = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        message = str(exc).split(" (at line")[0]
        raise RecipeError(f"invalid TOML: {message}", file=where.file, line=getattr(exc, "lineno", None)) from None
    except RecursionError:
        # tomli's own limit on nested arrays and inline tables
        raise RecipeError(
            f"values are nested too deeply (more than {MAX_DEPTH} levels)", file=where.file
        ) from None
    deep = _too_deep(table)
    if deep is not None:
        raise where.error(f"values are nested too deeply (more than {MAX_DEPTH} levels)", deep)
    try:
        return RecipeFile.model_validate(table), where, xxhash.xxh3_128_hexdigest(data)
    except ValidationError as exc:
        raise _shape_error(exc, where, table) from None


#: how deep tables and lists may nest in a recipe; real ones use four or five levels, and
#: checking, keying and writing a value walk it recursively
MAX_DEPTH = 32


def _too_deep(value: Any) -> tuple[Any, ...] | None:
    """The key path of the first value nested deeper than :data:`MAX_DEPTH`, or None."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            # the error names the deepest key the source map knows: the value's own key
            return tuple(p for p in path if isinstance(p, str))
        if isinstance(item, dict):
            stack.extend((v, (*path, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))
    return None


def _shape_error(exc: ValidationError, where: Where, data: dict[str, Any]) -> RecipeError:
    errors = exc.errors()
    # An unknown key first: it is often the misspelling of the key reported missing.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        valid = _valid_keys(parent)
        tip = did_you_mean(str(loc[-1]), valid) or (f"valid keys: {', '.join(valid)}" if valid else None)
        return where.error(f"unknown key {loc[-1]!r}", loc, tip)
    if first["type"] == "missing":
        table = _table_at(data, loc[:-1])
        typo = nearest(str(loc[-1]), [str(k) for k in table]) if table else None
        if typo is not None:
            return where.error(
                f"missing required key {loc[-1]!r}", (*loc[:-1], typo), f"did you mean {loc[-1]!r} for {typo!r}?"
            )
        return where.error(f"missing required key {loc[-1]!r}", loc)
    if first["type"] == "too_short" and loc == ("steps",):
        return where.error("the recipe has no steps", ("steps",), "add a [steps.NAME] table")
    return where.error(first["msg"].lower(), loc)


def _table_at(data: dict[str, Any], loc: tuple[Any, ...]) -> dict[str, Any] | None:
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data if isinstance(data, dict) else None


def _valid_keys(parent: tuple[Any, ...]) -> list[str]:
    if parent == ():
        return list(RecipeFile.model_fields)
    if parent == ("recipe",):
        return list(RecipeMeta.model_fields)
    if len(parent) == 2 and parent[0] == "groups":
        return list(RawGroup.model_fields)
    return []



__all__ = ["STEP_FIELDS", "RawGroup", "RawStep", "RecipeFile", "RecipeMeta", "Where", "display_path", "read_file", "read_with_digest"]
