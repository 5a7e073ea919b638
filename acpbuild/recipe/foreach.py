"""``foreach`` item sources: a glob of files, a CSV or JSONL file, or an inline list of tables.

Each item has an ``id`` (it names the expanded step, ``narration[intro]``) and
fields that ``${item.FIELD}`` reads. A file from a glob offers ``path``,
``stem``, ``name`` and ``text`` (read only when a step uses it).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild.keys import Signature, signature

_GLOB = re.compile(r"[*?\[]")


class ItemError(ValueError):
    """An item source that cannot be read; the message says why."""


@dataclass(frozen=True)
class Item:
    id: str
    fields: Mapping[str, Any]
    #: the file a glob item stands for (its ``text`` is read from it)
    file: Path | None = None

    def get(self, name: str) -> Any:
        if name == "text" and self.file is not None and "text" not in self.fields:
            try:
                return self.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ItemError(f"cannot read {self.file}: {exc}") from exc
        if name not in self.fields:
            from acpbuild.errors import did_you_mean

            names = [*self.fields, *(("text",) if self.file else ())]
            tip = did_you_mean(name, names, show=lambda near: f"'${{item.{near}}}'")
            tip = tip or f"items have {', '.join(names)}"
            raise ItemError(f"item {self.id!r} has no field {name!r}; {tip}")
        return self.fields[name]

    def lookup(self, fallback: Callable[[str], Any]) -> Callable[[str], Any]:
        """An interpolation lookup that answers ``item.*`` and passes the rest on."""

        def lookup(name: str) -> Any:
            if name.startswith("item."):
                return self.get(name.removeprefix("item."))
            return fallback(name)

        return lookup


Seen = dict[Path, Signature | None]


def _note(seen: Seen | None, path: Path) -> None:
    """Record ``path``'s signature in ``seen``, unless an earlier one is there."""
    if seen is None or path in seen:
        return
    try:
        seen[path] = signature(path)
    except OSError:
        seen[path] = None  # unreadable: the fast path will never trust it


def _watch_glob(pattern: str, root: Path, seen: Seen, store: Path | None) -> None:
    """Note every folder the glob ``pattern`` lists under ``root``, each before it is listed.

    A new match can only appear as a new entry in one of them, which changes that
    folder's mtime: the folder the literal prefix names, each folder a wildcard part
    matches, every folder below a ``**``, and the folder a missing literal part would
    be created in.
    """
    parts = Path(pattern).parts
    level = [root]
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        below: list[Path] = []
        # the build writes to its store on every run, and a source never lives there
        for folder in (f for f in level if f != store):
            if part == "**":
                below += _tree(folder, seen, store)
            elif _GLOB.search(part):
                _note(seen, folder)
                if not last:
                    below += [sub for sub in _subfolders(folder, links=True) if fnmatch.fnmatch(sub.name, part)]
            elif _exists(folder / part, file=last):
                below.append(folder / part)  # the last part's file is an item, noted as one
            else:
                _note(seen, folder)  # the folder it would be created in
        level = below


def _exists(path: Path, *, file: bool) -> bool:
    """Whether ``path`` is a file (or a folder); a name the system refuses (too long) is neither."""
    try:
        return path.is_file() if file else path.is_dir()
    except OSError:
        return False


def _tree(folder: Path, seen: Seen, store: Path | None) -> list[Path]:
    """``folder`` and every folder below it, as ``**`` walks them (not through links), each noted."""
    if folder == store:
        return []
    _note(seen, folder)
    found = [folder]
    for sub in _subfolders(folder, links=False):
        found += _tree(sub, seen, store)
    return found


def _subfolders(folder: Path, *, links: bool) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_dir() and (links or not e.is_symlink())]
    except OSError:
        return []


def _item_id(row: Mapping[str, Any], index: int) -> str:
    for field in ("id", "name", "stem"):
        if row.get(field) not in (None, ""):
            return str(row[field])
    return str(index + 1)


def _unique(items: list[Item], source: str) -> list[Item]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ItemError(f"two items of {source} share the id {item.id!r}; give each an 'id' field")
        seen.add(item.id)
    return items


def load_items(
    source: str | list[Any], root: Path, seen: Seen | None = None, *, store: Path | None = None
) -> list[Item]:
    """The items of a foreach ``source`` (not a ``${steps.X}`` one), relative to ``root``.

    ``seen`` gets the signature of every file and folder the items come from,
    each taken before it is read (a glob file's ``text`` is read after this
    returns), so the no-op fast path notices a change made at any later moment.
    A ``**`` glob does not watch the folders of the ``store``.
    """
    if isinstance(source, list):
        if not all(isinstance(row, dict) for row in source):
            raise ItemError("an inline foreach is a list of tables, e.g. [{ id = \"a\", prompt = \"...\" }]")
        return _unique([Item(_item_id(row, n), row) for n, row in enumerate(source)], "the inline list")
    suffix = Path(source).suffix.lower()
    if not _GLOB.search(source) and suffix in (".csv", ".jsonl") and "\0" not in source:
        path = (root / source).resolve()
        if not _exists(path, file=True):
            raise ItemError(f"foreach file not found: {source} (looked for {path})")
        _note(seen, path)
        rows = _read_csv(path) if suffix == ".csv" else _read_jsonl(path)
        return _unique([Item(_item_id(row, n), row) for n, row in enumerate(rows)], source)
    if not source or "\0" in source:
        raise ItemError(f"foreach {source!r} is not a glob, a CSV or JSONL file, or a list of tables")
    if Path(source).is_absolute():
        raise ItemError(f"the glob {source!r} is absolute; a glob is relative to the recipe's folder")
    if seen is not None:
        _watch_glob(source, root, seen, store)
    try:
        files = sorted(p for p in root.glob(source) if p.is_file())
    except (ValueError, NotImplementedError, OSError) as exc:
        raise ItemError(f"cannot expand the glob {source!r}: {exc}") from exc
    for path in files:
        _note(seen, path)
    if not files:
        raise ItemError(f"the glob {source!r} matches no file under {root}")
    stems = Counter(p.stem for p in files)
    items = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        # the stem names the item unless two files share it (a/x.md, b/x.md)
        item_id = path.stem if stems[path.stem] == 1 else rel.rsplit(".", 1)[0]
        fields = {"path": rel, "stem": path.stem, "name": path.name}
        items.append(Item(item_id, fields, path))
    return _unique(items, source)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [dict(row) for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ItemError(f"cannot read {path}: {exc}") from exc


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ItemError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ItemError(f"{path.name}:{number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise ItemError(f"{path.name}:{number}: each line must be a JSON object")
        rows.append(row)
    return rows
