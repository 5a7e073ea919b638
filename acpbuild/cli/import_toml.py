"""The recipe side of ``acpbuild import``: steps and groups as blocks, written with tomlkit.

A converted pipeline is a list of :class:`Block` (one per step or group, in the
pipeline's order) and :class:`Note` (what the user should know). Blocks hold
plain values and comment lines, not tomlkit tables, so the import can still
comment a parameter out after the recipe failed to load (:mod:`acpbuild.cli.importer`,
``check``), and :func:`render` writes the same recipe again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from tomlkit.exceptions import ConvertError
from tomlkit.items import Item, Table


@dataclass(frozen=True)
class Note:
    """One thing the import tells the user: ``file:line [where]: message``."""

    text: str
    #: True: the recipe does something other than the pipeline did, or needs something
    #: before it runs; False: a change of form only (a renamed key, an ignored setting)
    meaning: bool


@dataclass
class Block:
    """A ``[steps.NAME]`` or ``[groups.NAME]`` table; ``entries`` are (key, value) or (None, comment)."""

    section: str
    name: str
    entries: list[tuple[str | None, Any]] = field(default_factory=list)
    #: why the whole table is written commented out (None: it is live)
    commented: str | None = None

    def comment_out(self, key: str, reason: str) -> bool:
        """Turn ``key = value`` into a comment saying ``reason``; False when there is no such key."""
        for i, (k, value) in enumerate(self.entries):
            if k == key:
                self.entries[i] = (None, commented_out(key, value, reason))
                return True
        return False


class Raw(str):
    """Recipe text written as it is: already escaped, with ``${...}`` references in it."""


def ref(name: str | None) -> Raw:
    """``${steps.NAME}``, or ``${prompt}`` (the pipeline's top-level prompt) for None."""
    return Raw("${prompt}" if name is None else f"${{steps.{name}}}")


def escape(text: str) -> str:
    """A literal string as a recipe value: ``${`` would interpolate."""
    return text if isinstance(text, Raw) else text.replace("${", "$${")


def item(value: Any) -> Item:
    """A pipeline value as a TOML value written on its key's line.

    Mappings become inline tables, not tables of their own; null, which TOML
    lacks, becomes "" (and is left out of a mapping); what TOML has no type for
    is written as its text.
    """
    if value is None:
        return tomlkit.item("")
    if isinstance(value, Raw):
        return tomlkit.item(str(value))
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({str(k): item(v) for k, v in value.items() if v is not None})
        return table
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        array.extend(item(v) for v in value)
        return array
    try:
        return tomlkit.item(value)
    except ConvertError:
        return tomlkit.item(str(value))


def commented_out(key: str, value: Any, reason: str) -> str:
    """``key = value  # not imported: reason``: a parameter kept in the recipe, for the user to judge."""
    return f"{tomlkit.key(key).as_string()} = {item(value).as_string()}  # not imported: {reason}"


def _table(entries: Sequence[tuple[str | None, Any]], swap: Mapping[str, str]) -> Table:
    table = tomlkit.table()
    for key, value in entries:
        if key is None:
            table.add(tomlkit.comment(str(value)))
        else:
            table.add(key, item(_swapped(value, swap)))
    return table


def _swapped(value: Any, swap: Mapping[str, str]) -> Any:
    if isinstance(value, list):
        return [_swapped(v, swap) for v in value]
    return swap.get(value, value) if isinstance(value, str) else value


def _comment(text: str) -> str:
    return tomlkit.comment(text).as_string().rstrip("\n")


def _alone(block: Block, swap: Mapping[str, str]) -> str:
    """``[section.name]`` and its entries, as a document of its own writes them."""
    doc = tomlkit.document()
    outer = tomlkit.table(is_super_table=True)
    outer.add(block.name, _table(block.entries, swap))
    doc.add(block.section, outer)
    return doc.as_string().strip("\n")


def render(
    header: Sequence[str],
    meta: Sequence[tuple[str, Any]],
    variables: Mapping[str, Any],
    blocks: Sequence[Block | str],
    swap: Mapping[str, str] | None = None,
) -> str:
    """The recipe's text: ``header`` comment lines, ``[recipe]``, ``[vars]``, then the blocks.

    A string among ``blocks`` is a comment line where it stands; ``swap`` replaces
    values (input files the recipe names but that do not exist yet, when the import
    checks that the recipe loads). Each block is written on its own and the texts
    joined, so steps, groups and comments keep the pipeline's order: TOML allows
    ``[steps.a]``, ``[groups.g]``, ``[steps.b]`` in that order.
    """
    swap = swap or {}
    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line))
    doc.add(tomlkit.nl())
    doc.add("recipe", _table(list(meta), swap))
    if variables:
        doc.add("vars", _table(list(variables.items()), swap))
    parts = [doc.as_string().strip("\n")]
    for block in blocks:
        if isinstance(block, str):
            parts.append(_comment(block))
        elif block.commented:
            lines = [f"{block.commented}:", *_alone(block, swap).splitlines()]
            parts.append("\n".join(_comment(line) for line in lines))
        else:
            parts.append(_alone(block, swap))
    return "\n\n".join(parts) + "\n"


__all__ = ["Block", "Note", "Raw", "commented_out", "escape", "item", "ref", "render"]
