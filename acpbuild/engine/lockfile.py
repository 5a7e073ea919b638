"""The lockfile: what each step of a recipe holds, committed beside it, so a fresh clone can prove it.

``acpbuild run`` writes it beside the recipe (``acpbuild.lock`` for
``acpbuild.toml``, ``promo.lock`` for ``promo.toml``): TOML, sorted, with no
timestamps, so it changes only when an output does. Per step (and foreach item,
and choosing group): its key, provider and model, what its generation cost, and
each output's path (relative to the recipe's folder) and digest; a group also
keeps what it chose among.

A CI runner or a teammate starts with the committed outputs and the lock but no
store: a step whose key matches the lock and whose output on disk has the
lock's digest is up to date. The lock alone proves it, so nothing is bought again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from acpbuild import process
from acpbuild.errors import RecipeError, StoreError
from acpbuild.keys import Signature, signature
from acpbuild.store.ledger import OutputRecord

if TYPE_CHECKING:
    from acpbuild.recipe import Recipe

FORMAT = 1
_HEADER = (
    "Written by acpbuild run: what each step of the recipe holds. Commit it with the outputs;\n"
    "acpbuild check compares the recipe with it, and a fresh clone is up to date where it matches."
)


@dataclass(frozen=True)
class Entry:
    """One step's (or group's) line in the lock."""

    name: str
    key: str
    provider: str
    model: str
    cost: float
    #: output path (relative to the recipe's folder, POSIX) -> digest
    outputs: tuple[tuple[str, str], ...]
    #: a choosing group's key material (what it chose among, and which), for the next run to trust
    material: str | None = None


def lock_path(recipe_path: Path) -> Path:
    """Where the lock of the recipe at ``recipe_path`` lives: beside it, named after it."""
    return recipe_path.with_suffix(".lock")


#: the last lock read, by path: its signature when read, and its entries
_last: dict[str, tuple[Signature, dict[str, Entry]]] = {}


def read(path: Path) -> dict[str, Entry]:
    """The entries of the lock at ``path`` (none when there is no lock); a malformed one is an error.

    A lock read before is read again only once its signature has changed (a run reads it,
    then ``check`` does, and a lock of 10,000 entries takes 80 ms to parse).
    """
    try:
        sig = signature(path)
        if sig is None:
            return {}
        last = _last.get(str(path))
        if last is not None and last[0] == sig:
            return dict(last[1])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RecipeError(f"cannot read the lockfile: {exc.strerror}", file=str(path)) from exc
    entries = _read_own(text)
    if entries is None:
        entries = _read_toml(path, text)
    _last.clear()  # one lock kept: a process reads one recipe's, or reads each once
    _last[str(path)] = (sig, dict(entries))
    return entries


def _read_toml(path: Path, text: str) -> dict[str, Entry]:
    import tomli

    try:
        doc = tomli.loads(text)
        entries = {}
        for name, table in doc.get("steps", {}).items():
            outputs = tuple((str(o["path"]), str(o["digest"])) for o in table.get("outputs", []))
            entries[name] = Entry(
                name,
                str(table["key"]),
                str(table.get("provider", "")),
                str(table.get("model", "")),
                float(table.get("cost", 0.0)),
                outputs,
                table.get("material"),
            )
    except (tomli.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RecipeError(
            f"the lockfile is malformed ({exc})", file=str(path), tip="delete it: the next run writes it anew"
        ) from exc
    return entries


_STRING = r'"(?:[^"\\\n]|\\.)*"'
_ENTRY = re.compile(
    rf"\n\[steps\.({_STRING})\]\nkey = ({_STRING})\nprovider = ({_STRING})\nmodel = ({_STRING})\n"
    rf"cost = ([0-9.e+-]+)\noutputs = \[((?:{{path = {_STRING}, digest = {_STRING}}}(?:, )?)*)\]\n"
    rf"(?:material = ({_STRING})\n)?"
)
_OUTPUT = re.compile(rf"{{path = ({_STRING}), digest = ({_STRING})}}")


def _read_own(text: str) -> dict[str, Entry] | None:
    """The entries of a lock as :func:`render` writes it, read 4x quicker than a TOML parser
    can; None for any other text (edited by hand, merged), which :func:`read` parses as TOML."""
    if not text.startswith(_OWN_HEADER):
        return None
    pos = text.find("\n", len(_OWN_HEADER)) + 1
    entries = {}
    try:
        while pos < len(text):
            found = _ENTRY.match(text, pos)
            if found is None:
                return None
            name, key, provider, model, cost, outputs, material = found.groups()
            if _unquote(name) in entries:
                return None  # twice (a merge gone wrong): the TOML parser names the line
            pairs = tuple((_unquote(p), _unquote(d)) for p, d in _OUTPUT.findall(outputs))
            entries[_unquote(name)] = Entry(
                _unquote(name),
                _unquote(key),
                _unquote(provider),
                _unquote(model),
                float(cost),
                pairs,
                None if material is None else _unquote(material),
            )
            pos = found.end()
    except ValueError:
        return None  # an escape JSON does not share with TOML: the TOML parser reads it
    return entries


def _unquote(text: str) -> str:
    return text[1:-1] if "\\" not in text else json.loads(text)


def render(recipe_name: str, entries: Iterable[Entry]) -> str:
    """The lock's text: sorted, deterministic. Written by hand, not through a TOML library:
    a content repo's lock has thousands of entries, and this is on every run's path."""
    lines = [f"# {line}" for line in _HEADER.splitlines()]
    lines += [f"format = {FORMAT}", f"recipe = {_string(recipe_name)}"]
    for entry in sorted(entries, key=lambda e: e.name):
        lines += ["", f"[steps.{_string(entry.name)}]"]
        lines += [f"key = {_string(entry.key)}", f"provider = {_string(entry.provider)}"]
        lines += [f"model = {_string(entry.model)}", f"cost = {round(entry.cost, 6)!r}"]
        outputs = ", ".join(f"{{path = {_string(p)}, digest = {_string(d)}}}" for p, d in entry.outputs)
        lines.append(f"outputs = [{outputs}]")
        if entry.material is not None:
            lines.append(f"material = {_string(entry.material)}")
    return "\n".join(lines) + "\n"


_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f]*')


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped."""
    if _PLAIN.fullmatch(text):
        return f'"{text}"'  # nothing to escape: most names, keys, paths and digests
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


#: how every lock :func:`render` writes begins, up to the recipe's name
_OWN_HEADER = render("", ()).split("\nrecipe = ")[0] + "\nrecipe = "


def write(path: Path, recipe_name: str, entries: Iterable[Entry]) -> bool:
    """Write the lock atomically, only if its text changes; return whether it did."""
    text = render(recipe_name, entries)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    try:
        process.replace_file(path, text)
    except OSError as exc:
        raise StoreError(f"cannot write the lockfile {path}: {exc.strerror or exc}") from exc
    return True


def relative(recipe: Recipe, path: Path) -> str:
    """An output's path as the lock writes it: relative to the recipe's folder, with forward slashes."""
    return PurePosixPath(Path(os.path.relpath(path, recipe.root))).as_posix()


def records(recipe: Recipe, entries: Mapping[str, Entry]) -> dict[str, OutputRecord]:
    """What the lock says each output holds, as the ledger would say it, by absolute path."""
    found = {}
    root = str(recipe.root)
    for entry in entries.values():
        for path, digest in entry.outputs:
            absolute = os.path.normpath(os.path.join(root, path))
            found[absolute] = OutputRecord(absolute, entry.key, digest, entry.material, recipe.name, entry.name)
    return found
