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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import xxhash

from acpbuild.engine import lockfile, noop
from acpbuild.engine.results import RunResult, StepResult
from acpbuild.keys import Signature
from acpbuild.recipe import Recipe
from acpbuild.recipe.foreach import Item, ItemError, load_items
from acpbuild.recipe.graph import dependants

if TYPE_CHECKING:
    from acpbuild.engine.plan import Plan

T = TypeVar("T")

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
    #: filled in by :func:`fits` once the recipe is loaded: each source's items as it read
    #: them, the loaded steps' records, and the records of the steps the last run left
    #: that this one neither loaded nor lost
    rows: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    graph: dict[str, Record] = dataclasses.field(default_factory=dict)
    untouched: dict[str, Record] = dataclasses.field(default_factory=dict)


def _digests(items: Iterable[Item], sigs: Mapping[Path, Signature | None]) -> dict[str, str]:
    """Each item's id -> a digest of its fields (and, for a glob's, its file's signature)."""
    # repr: the fields are what CSV, JSON Lines or TOML gave, and 4x quicker to write than JSON
    return {i.id: xxhash.xxh3_64_hexdigest(repr((i.fields, sigs.get(i.file) if i.file else None)).encode()) for i in items}


def _rows(recipe: Recipe) -> dict[str, dict[str, str]]:
    """Each item source -> its items' ids -> digests."""
    rows: dict[str, dict[str, str]] = {}
    for family, source in recipe.item_sources.items():
        if source not in rows:
            rows[source] = _digests(recipe.items[family], recipe.sources)
    return rows


def _kept(recipe: Recipe, rows: dict[str, dict[str, str]], steps: dict[str, Record]) -> dict[str, Any]:
    """The document kept beside the manifest (see :func:`noop.load_items`)."""
    return {
        "families": dict(recipe.item_sources),
        "rows": rows,
        "steps": steps,
        "watch": [str(p) for p in recipe.sources],
    }


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
    return _kept(recipe, _rows(recipe), graph)


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
            now = _digests(load_items(source, recipe_path.parent, seen, store=found.store), seen)
            ids.update(i for i, digest in now.items() if rows.get(i) != digest)
            lost = rows.keys() - now.keys()
            gone.update(n for n, r in steps.items() if r[1] in lost and families.get(r[0]) == source)
    moved |= dependants({name: record[3] for name, record in steps.items()}, moved)
    ids.update(steps[n][1] for n in moved if steps[n][1] is not None)
    return Delta(found, kept, ids, gone)


def fits(found: Delta, recipe: Recipe) -> bool:
    """Whether ``recipe``, loaded for ``found.ids``, can be built on its own: its items still
    wait only on their own, none writes an output an item not loaded keeps, and every item
    that differs from the last run's, as the recipe read them, is loaded (a source edited
    again between :func:`delta` and the load could change another)."""
    graph = _graph(recipe)
    if graph is None:
        return False
    loaded = recipe.steps.keys() | recipe.groups.keys()
    untouched = {n: r for n, r in found.kept["steps"].items() if n not in loaded and n not in found.gone}
    written = {r[2] for r in untouched.values()}
    if any(str(step.output_path) in written for step in recipe.steps.values()):
        return False
    rows = _rows(recipe)
    was: dict[str, dict[str, str]] = found.kept["rows"]
    families: dict[str, str] = found.kept["families"]
    for source, now in rows.items():
        before = was.get(source, {})
        if any(before.get(i) != digest and i not in found.ids for i, digest in now.items()):
            return False
        lost = before.keys() - now.keys()
        if any(r[1] in lost and families.get(r[0]) == source for r in untouched.values()):
            return False
    found.rows, found.graph, found.untouched = rows, graph, untouched
    return True


def _with_left(found: Delta, loaded: Mapping[str, T], stand_in: Callable[[dict[str, Any]], T]) -> dict[str, T]:
    """``loaded`` (by step name) and a ``stand_in`` for each step the last run left untouched
    (see :func:`fits`), in the last run's order; steps it did not have come last."""
    joined: dict[str, T] = {}
    for done in found.found.doc["steps"]:
        name = done["name"]
        if name in found.untouched:
            joined[name] = stand_in(done)
        elif name in loaded:
            joined[name] = loaded[name]
    joined.update(loaded)  # a name already there keeps its place
    return joined


def merged(found: Delta, result: RunResult) -> RunResult:
    """``result`` with every step the last run left and this one did not load, up to date."""

    def uptodate(done: dict[str, Any]) -> StepResult:
        return StepResult(
            done["name"],
            "uptodate",
            key=done["key"],
            outputs=done["outputs"],
            provider=done["provider"],
            model=done["model"],
            reason="up to date",
        )

    return dataclasses.replace(result, steps=_with_left(found, result.steps, uptodate))


def planned(found: Delta, plan: Plan) -> Plan:
    """``plan`` with every step the last run left and this recipe was not loaded for, up to date."""
    from acpbuild.engine.plan import Assessment

    kept: dict[str, dict[str, Any]] = {}

    def uptodate(done: dict[str, Any]) -> Assessment:
        kept[done["name"]] = done
        return Assessment(done["name"], "uptodate", "up to date", done["key"])

    entries = _with_left(found, {e.name: e for e in plan.entries}, uptodate)
    return dataclasses.replace(plan, entries=list(entries.values()), kept=kept)


def save(
    found: Delta,
    recipe: Recipe,
    before: dict[str, Any],
    outputs: Mapping[Path, Signature | None],
    steps: Iterable[dict[str, Any]],
) -> None:
    """The manifest of the last run with the part this run loaded replaced by what it saw."""
    doc = found.found.doc
    files = {file for record in found.untouched.values() for file in record[4]}
    written = {record[2] for record in found.untouched.values()}
    # what the untouched steps read and wrote has not moved (else they would have been loaded)
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
        _kept(recipe, found.rows, {**found.untouched, **found.graph}),
    )
