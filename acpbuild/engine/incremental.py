"""The incremental path: when some foreach items changed, load and build only those.

The no-op fast path (:mod:`acpbuild.engine.noop`) answers only when nothing
moved. When the recipe, the environment it reads and the adapters are as they
were but some inputs did move (a row of the CSV edited, a file added to a
globbed folder, a step's input file replaced), a complete run's manifest still
says what each of them fed. Beside it (:func:`shape`) a run keeps, for every
foreach item, a digest of its fields (and of its file's signature, for a glob),
and for every step its item, what it waits for, the files it reads and its
output. :func:`delta` compares them: the items whose digest changed or that are
new are loaded and built, with the steps outside any foreach (always loaded,
and checked as usual) and whatever waits on a step that moved; the steps of
items that are gone leave the lockfile and the manifest. The rest stay as the
last run left them, and the run's result, lockfile, last run and manifest are
the last ones with the built part replaced (:func:`merged`, :func:`save`).

This holds when no step outside a foreach and no group waits on a foreach
item, and an item's steps wait only on steps of the same item or outside any
foreach: then nothing an item builds depends on another item. A recipe of any
other shape keeps no items, and every run of it that is not a no-op loads it
whole. Anything unexpected (a file that moved and that no step reads, the
lockfile edited, an output clash with a kept item) falls back to the full
build too, which is always correct.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from acpbuild.engine import lockfile, noop
from acpbuild.engine.results import RunResult, StepResult
from acpbuild.keys import Signature
from acpbuild.recipe import Recipe
from acpbuild.recipe.foreach import Item, ItemError, load_items

if TYPE_CHECKING:
    from acpbuild.engine.plan import Plan

#: a step in the kept shape: [family, item id, output, what it waits for, the files it reads]
Record = list[Any]


@dataclasses.dataclass
class Delta:
    """What an incremental run builds, and what it merges the result with."""

    found: noop.Found
    #: what :func:`shape` kept beside the manifest
    kept: dict[str, Any]
    #: the ids of the items to load and build
    ids: set[str]
    #: steps of items that are gone from their source
    gone: set[str]
    #: each source's items as the recipe loaded them (see :func:`fits`)
    rows: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


def _digest(item: Item, sig: Signature | None) -> str:
    # repr: the fields are what CSV, JSON Lines or TOML gave, and 4x quicker to write than JSON
    return xxhash.xxh3_64_hexdigest(repr((item.fields, sig)).encode())


def _rows(recipe: Recipe) -> dict[str, dict[str, str]]:
    """Each item source -> its items' ids -> digests (a glob's with the file's signature)."""
    rows: dict[str, dict[str, str]] = {}
    for family, source in recipe.item_sources.items():
        if source not in rows:
            sigs = recipe.sources
            rows[source] = {i.id: _digest(i, sigs.get(i.file) if i.file else None) for i in recipe.items[family]}
    return rows


def _graph(recipe: Recipe) -> dict[str, Record] | None:
    """Each loaded step and group as a :data:`Record`; None when items depend on one another."""
    from acpbuild.engine.tasks import input_files

    item_of = {name: step.item for name, step in recipe.steps.items()}
    graph: dict[str, Record] = {}
    for name, group in recipe.groups.items():
        if any(item_of.get(n) is not None for n in (*group.members, *group.deps)):
            return None
        graph[name] = [None, None, None if group.output_path is None else str(group.output_path), list(group.deps), []]
    for name, step in recipe.steps.items():
        if any(item_of.get(dep) not in (None, step.item) for dep in step.deps):
            return None  # waits on another item's step, or (outside a foreach) on any item's
        files = sorted({str(p) for p in input_files(step)})
        graph[name] = [step.family, step.item, str(step.output_path), list(step.deps), files]
    return graph


def shape(recipe: Recipe) -> dict[str, Any] | None:
    """What :func:`delta` compares the recipe's items by, kept beside a complete run's manifest;
    None when its items cannot be built one at a time."""
    graph = _graph(recipe)
    if graph is None or not recipe.item_sources:
        return None
    return {
        "families": dict(recipe.item_sources),
        "rows": _rows(recipe),
        "steps": graph,
        "watch": [str(p) for p in recipe.sources],
    }


def delta(recipe_path: Path, env: Mapping[str, str], *, unmoved: bool = False) -> Delta | None:
    """The items to build since the last complete run of the recipe at ``recipe_path``
    (resolved); None when the whole recipe must be loaded (see the module's doc).

    When nothing moved, there is nothing to pick, and a run is better answered by the
    no-op fast path or by doit; with ``unmoved`` (a plan), the answer is then: no item.
    """
    if env.get("ACPBUILD_NO_FASTPATH"):
        return None
    found = noop.compare(recipe_path, env)
    if found is None or not (found.inputs or found.outputs or unmoved):
        return None
    kept = noop.load_items(found)
    if kept is None:
        return None
    try:
        return _delta(found, kept, recipe_path)
    except (KeyError, TypeError, ValueError, IndexError, ItemError):
        return None  # a source that no longer reads (the full load says why), or a shape of another version


def _delta(found: noop.Found, kept: dict[str, Any], recipe_path: Path) -> Delta | None:
    steps: dict[str, Record] = kept["steps"]
    families: dict[str, str] = kept["families"]
    watched = set(kept["watch"])
    readers: dict[str, list[str]] = defaultdict(list)
    for name, record in steps.items():
        for file in record[4]:
            readers[file].append(name)
    moved: set[str] = set()
    reread = False
    for path in found.inputs:
        if path not in watched and path not in readers:
            return None  # something the run reads that no step owns: load it all
        reread = reread or path in watched
        moved.update(readers.get(path, ()))
    writer = {record[2]: name for name, record in steps.items() if record[2] is not None}
    lock = str(lockfile.lock_path(recipe_path))
    for path in found.outputs:
        if path == lock or path not in writer:
            return None  # the lockfile edited or deleted: the full run writes it anew
        moved.add(writer[path])  # an output edited or deleted: its step restores it
    ids: set[str] = set()
    gone: set[str] = set()
    if reread:
        for source, rows in kept["rows"].items():
            seen: dict[Path, Signature | None] = {}
            items = load_items(source, recipe_path.parent, seen, store=found.store)
            now = {i.id: _digest(i, seen.get(i.file) if i.file else None) for i in items}
            ids.update(i for i, digest in now.items() if rows.get(i) != digest)
            lost = rows.keys() - now.keys()
            gone.update(n for n, r in steps.items() if r[1] in lost and families.get(r[0]) == source)
    waiting: dict[str, list[str]] = defaultdict(list)
    for name, record in steps.items():
        for dep in record[3]:
            waiting[dep].append(name)
    todo = list(moved)
    while todo:
        name = todo.pop()
        for other in waiting.get(name, ()):
            if other not in moved:
                moved.add(other)
                todo.append(other)
    ids.update(steps[n][1] for n in moved if steps[n][1] is not None)
    return Delta(found, kept, ids, gone)


def fits(found: Delta, recipe: Recipe) -> bool:
    """Whether ``recipe``, loaded for ``found.ids``, can be built on its own: its items still
    wait only on their own, none writes an output an item not loaded keeps, and every item
    that differs from the last run's, as the recipe read them, is loaded (a source edited
    again between :func:`delta` and the load could change another)."""
    if _graph(recipe) is None:
        return False
    loaded = recipe.steps.keys() | recipe.groups.keys()
    kept = {r[2] for n, r in found.kept["steps"].items() if n not in loaded and n not in found.gone}
    if any(str(step.output_path) in kept for step in recipe.steps.values()):
        return False
    found.rows = _rows(recipe)
    was: dict[str, dict[str, str]] = found.kept["rows"]
    families: dict[str, str] = found.kept["families"]
    for source, rows in found.rows.items():
        before = was.get(source, {})
        if any(before.get(i) != digest and i not in found.ids for i, digest in rows.items()):
            return False
        lost = before.keys() - rows.keys()
        if lost and any(
            r[1] in lost and families.get(r[0]) == source and n not in found.gone
            for n, r in found.kept["steps"].items()
        ):
            return False
    return True


def merged(found: Delta, recipe: Recipe, result: RunResult) -> RunResult:
    """``result`` with every step the last run left and this one did not load, up to date."""
    built = result.steps
    loaded = recipe.steps.keys() | recipe.groups.keys()
    steps: dict[str, StepResult] = {}
    for done in found.found.doc["steps"]:
        name = done["name"]
        if name in built:
            steps[name] = built[name]
        elif name not in loaded and name not in found.gone:
            steps[name] = StepResult(
                name,
                "uptodate",
                key=done["key"],
                outputs=done["outputs"],
                provider=done["provider"],
                model=done["model"],
                reason="up to date",
            )
    steps.update((name, made) for name, made in built.items() if name not in steps)
    return dataclasses.replace(result, steps=steps)


def planned(found: Delta, recipe: Recipe, plan: Plan) -> Plan:
    """``plan`` with every step the last run left and this recipe was not loaded for, up to date."""
    from acpbuild.engine.plan import Assessment

    loaded = recipe.steps.keys() | recipe.groups.keys()
    assessed = {e.name: e for e in plan.entries}
    entries = []
    kept: dict[str, dict[str, Any]] = {}
    for done in found.found.doc["steps"]:
        name = done["name"]
        if name in assessed:
            entries.append(assessed.pop(name))
        elif name not in loaded and name not in found.gone:
            entries.append(Assessment(name, "uptodate", "up to date", done["key"]))
            kept[name] = done
    entries.extend(assessed.values())
    return dataclasses.replace(plan, entries=entries, kept=kept)


def save(
    found: Delta,
    recipe: Recipe,
    before: dict[str, Any],
    outputs: Mapping[Path, Signature | None],
    steps: Iterable[dict[str, Any]],
) -> None:
    """The manifest of the last run with the part this run loaded replaced by what it saw."""
    doc = found.found.doc
    loaded = recipe.steps.keys() | recipe.groups.keys()
    kept = {n: r for n, r in found.kept["steps"].items() if n not in loaded and n not in found.gone}
    graph = _graph(recipe)
    assert graph is not None, "fits() said the loaded part stands alone"
    files = {file for record in kept.values() for file in record[4]}
    written = {record[2] for record in kept.values()}
    # what the kept steps read and wrote has not moved (else they would have been loaded)
    inputs = {path: sig for path, sig in doc["inputs"].items() if path in files}
    inputs.update(before["inputs"])
    everything: dict[str, Any] = {p: sig for p, sig in doc["outputs"].items() if p in written}
    everything.update((str(p), sig) for p, sig in outputs.items())
    noop.save(
        recipe.store_dir,
        recipe.name,
        # the recipe is as it was: the last run's word on it holds (only part of it was loaded)
        {**before, "inputs": inputs, "adapters": {**doc["adapters"], **before["adapters"]}, "lazy": doc.get("lazy")},
        everything,
        list(steps),
        {
            "families": dict(recipe.item_sources),
            "rows": found.rows,
            "steps": {**kept, **graph},
            "watch": [str(p) for p in recipe.sources],
        },
    )
