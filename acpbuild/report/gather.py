"""Gathering a report: what each output holds, how it was made, what it cost, and what came before.

Everything is read here, once: the recipe, the plan (what a run would do
now), the last run's result, the ledger's output records and generations, the
lockfile and the blob store. The rest of the package only arranges what this
returns.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acpbuild.engine import lockfile, workflow
from acpbuild.errors import AcpbuildError, RecipeError
from acpbuild.keys import file_digest
from acpbuild.media import measure
from acpbuild.recipe import Group, Recipe, Step
from acpbuild.recipe.graph import topological
from acpbuild.report import params
from acpbuild.report.data import Asset, Card, Past, Report, Section
from acpbuild.store import layout
from acpbuild.store.blobs import BlobStore
from acpbuild.store.ledger import IN_DOUBT, Generation, OutputRecord

#: how much of a text output a card shows inline; the whole file is linked
TEXT_SHOWN = 2000

_HOW = {
    "collect_all": "collects every member's output",
    "first_success": "tries its members in order and keeps the first that succeeds",
}


def gather(
    path: workflow.RecipeSource,
    *,
    history: bool = False,
    result: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Report:
    """What the report of the recipe at ``path`` shows.

    Statuses come from ``result`` (a ``RunResult.to_dict()``: the run that just
    finished), else from the recipe's last run, and for steps neither mentions
    (or whose inputs changed since) from a plan made now. With ``history``, each
    step lists the earlier generations the store still holds.
    """
    recipe, env = workflow.open_recipe(path, env)
    plan = workflow.forecast(recipe, env=env, needs=False)  # a report shows; it needs no key
    run = result if result is not None else workflow.last_run(recipe)
    source = "this run" if result is not None else "the last run" if run is not None else "the plan"
    ledger = layout.open_ledger(recipe.store_dir, env)
    try:
        generations = ledger.generations()
        records = {Path(r.path): r for r in ledger.outputs_of(recipe.name)}
    finally:
        ledger.close()
    blobs = layout.open_blobs(recipe.store_dir, env=env)
    try:
        lock = lockfile.read(lockfile.lock_path(recipe.path))
    except RecipeError:
        lock = {}  # a malformed lock says nothing the report needs
    gatherer = _Gatherer(recipe, blobs, records, generations, history)
    gatherer.ran = {s["name"]: s for s in (run or {}).get("steps", [])}
    gatherer.planned = {e.name: (e.state, e.key, e.reason) for e in plan.entries}
    gatherer.locked = {name: (e.key, e.cost) for name, e in lock.items()}
    return Report(
        recipe=recipe.name,
        recipe_file=recipe.path,
        description=recipe.description,
        made=time.time(),
        source=source,
        sections=gatherer.sections(),
        by_step=gatherer.spend_by(lambda g: (g.step or "?").split("[")[0], [s.family or s.name for s in recipe.steps.values()]),
        by_provider=gatherer.spend_by(lambda g: g.provider or "?", [s.provider for s in recipe.steps.values()]),
        by_day=_by_day(generations),
        history=history,
    )


def cost_of(gen: Generation) -> float:
    """What a generation counts as spend: its actual cost when done, its estimate while in doubt."""
    if gen.draft:
        return 0.0
    if gen.state in ("done", "received"):
        return gen.actual_cost or 0.0
    return (gen.estimated_cost or 0.0) if gen.state in IN_DOUBT else 0.0


def _by_day(generations: list[Generation]) -> list[tuple[str, float]]:
    days: dict[str, float] = defaultdict(float)
    for gen in generations:
        usd = cost_of(gen)
        if usd > 0:
            days[datetime.fromtimestamp(gen.finished or gen.created, UTC).date().isoformat()] += usd
    return sorted(days.items())


def _loads(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    found = json.loads(text)
    return found if isinstance(found, dict) else None


class _Gatherer:
    """One report's reading: the recipe and what the store and ledger say about it."""

    def __init__(
        self,
        recipe: Recipe,
        blobs: BlobStore,
        records: dict[Path, OutputRecord],
        generations: list[Generation],
        history: bool,
    ) -> None:
        self.recipe, self.blobs, self.records, self.history = recipe, blobs, records, history
        self.generations = [g for g in generations if g.recipe == recipe.name]
        self.done = {g.key: g for g in generations if g.state == "done"}  # oldest first: the latest wins
        self.ran: dict[str, Mapping[str, Any]] = {}
        self.planned: dict[str, tuple[str, str | None, str]] = {}
        self.locked: dict[str, tuple[str, float]] = {}
        # a file parameter names the step whose output it is; a step's own record wins over a group's copy
        self.step_of_digest = {r.digest: r.step for r in records.values() if r.step in recipe.groups}
        self.step_of_digest.update({r.digest: r.step for r in records.values() if r.step in recipe.steps})
        self.users: dict[str, list[str]] = defaultdict(list)
        for name, deps in [*recipe.deps().items(), *((g.name, g.needs) for g in recipe.groups.values())]:
            for dep in deps:
                if name not in self.users[dep]:
                    self.users[dep].append(name)

    # -- sections --------------------------------------------------------------
    def sections(self) -> list[Section]:
        recipe = self.recipe
        in_group = {m for g in recipe.groups.values() for m in g.members}
        found: list[Section] = []
        families: set[str] = set()
        for name in topological(recipe.deps()):
            if name in recipe.groups:
                found.append(self.group(recipe.groups[name]))
                continue
            step = recipe.steps[name]
            if name in in_group:
                continue  # shown in its group's section
            if step.family is None:
                found.append(Section(name, "step", [self.card(step)], description=step.description))
            elif step.family not in families:
                families.add(step.family)
                items = [self.card(recipe.steps[n]) for n in recipe.families[step.family]]
                found.append(Section(step.family, "foreach", items, description=step.description))
        return found

    def group(self, group: Group) -> Section:
        record = self.records.get(group.output_path) if group.output_path else None
        chosen = (_loads(record.material) or {}).get("chosen") if record else None
        cards = [self.card(self.recipe.steps[m]) for m in group.members]
        how = _HOW.get(group.merge, "")
        if group.merge == "best_quality":
            how = f"keeps the member its judge {group.judge} names" if group.judge else f"keeps the highest {group.score}"
        for card in cards:
            card.chosen = card.name == chosen
            if group.judge and card.chosen:
                card.score = f"named by {group.judge}"
            elif group.merge == "best_quality" and group.score and card.asset is not None:
                card.score = _score(card.asset, group.score, group.media)
        status, reason, _ = self.status(group.name, record is not None or group.output_path is None)
        return Section(
            group.name,
            "group",
            cards,
            description=group.description,
            merge=group.merge,
            how=how,
            chosen=chosen,
            status=status,
            reason=reason,
            users=list(self.users.get(group.name, [])),
        )

    # -- cards -----------------------------------------------------------------
    def card(self, step: Step) -> Card:
        record = self.records.get(step.output_path)
        material = _loads(record.material) if record else None
        locked = self.locked.get(step.name)
        key = record.key if record else locked[0] if locked else None
        gen = self.done.get(key) if key else None
        asset = self.asset(step.media, step.output_path, record.digest if record else None)
        status, reason, error = self.status(step.name, asset is not None)
        cost = gen.actual_cost if gen is not None and gen.actual_cost is not None else gen.estimated_cost if gen else None
        if cost is None and locked is not None:
            cost = locked[1]
        card = Card(
            name=step.name,
            kind=step.kind,
            provider=step.provider,
            model=step.model,
            status=status,
            reason=reason,
            error=error,
            item=step.item,
            item_fields={k: str(v) for k, v in step.item_fields.items()},
            asset=asset,
            prompt=params.prompt_of(material) if material else _written_prompt(step),
            params=params.params_of(material, self.step_of_digest),
            key=key,
            cost=cost,
            seconds=(gen.finished - gen.created) if gen is not None and gen.finished else None,
            finished=gen.finished if gen is not None else None,
            draft_of=step.draft_of,
            inputs=list(step.deps),
            users=list(self.users.get(step.name, [])),
        )
        if self.history:
            card.history = self.earlier(step, key, material)
        return card

    def status(self, name: str, built: bool) -> tuple[str, str, str | None]:
        """(status, reason, error): the run's word while the plan agrees it made this generation, else the plan's."""
        done, planned = self.ran.get(name), self.planned.get(name)
        if done is not None and (planned is None or not planned[1] or not done.get("key") or planned[1] == done["key"]):
            return str(done["status"]), str(done.get("reason") or ""), done.get("error")
        if planned is not None:
            state, _, reason = planned
            if state == "uptodate":
                return "uptodate", reason, None
            if state == "restorable":
                return "store", reason, None
            return ("stale" if built else "unbuilt"), reason, None
        return ("built" if built else "unbuilt"), "", None

    def asset(self, media: str, path: Path, digest: str | None) -> Asset | None:
        """The output as it is on disk, else the blob its record names, else None."""
        if path.is_file():
            return _asset(media, path, file_digest(path), path.suffix.lower())
        if digest is not None and self.blobs.has(digest):
            try:
                return _asset(media, self.blobs.get(digest), digest, path.suffix.lower())
            except AcpbuildError:
                return None  # a corrupt blob: set aside by the store, nothing to show
        return None

    def earlier(self, step: Step, key: str | None, material: dict[str, Any] | None) -> list[Past]:
        """The step's earlier generations the store still holds, newest first, each with what differs now."""
        found: list[Past] = []
        seen = {key}
        mine = [g for g in self.generations if g.step == step.name and g.state == "done" and g.digest and not g.draft]
        for gen in sorted(mine, key=lambda g: g.finished or g.created, reverse=True):
            if gen.key in seen or gen.digest is None or not self.blobs.has(gen.digest):
                continue
            seen.add(gen.key)
            before = _loads(gen.material)
            suffix = str((before or {}).get("format") or step.output_path.suffix).lower()
            try:
                asset = _asset(step.media, self.blobs.get(gen.digest), gen.digest, suffix)
            except AcpbuildError:
                continue
            found.append(Past(gen.key, gen.finished, cost_of(gen), asset, params.changes(before, material)))
        return found

    # -- spend -----------------------------------------------------------------
    def spend_by(self, label: Any, names: list[str]) -> list[tuple[str, float]]:
        """This recipe's spend per ``label(generation)``: every one of ``names``, even at $0, then any other that cost something."""
        rows: dict[str, float] = dict.fromkeys(names, 0.0)
        for gen in self.generations:
            usd = cost_of(gen)
            name = label(gen)
            if name in rows or usd > 0:
                rows[name] = rows.get(name, 0.0) + usd
        return list(rows.items())


def _asset(media: str, source: Path, digest: str, suffix: str) -> Asset:
    if media not in ("text", "subtitles"):
        return Asset(media, digest, suffix, source)
    with open(source, encoding="utf-8", errors="replace") as f:
        text = f.read(TEXT_SHOWN + 1)
    return Asset(media, digest, suffix, source, text[:TEXT_SHOWN], len(text) > TEXT_SHOWN)


def _score(asset: Asset, metric: str, media: str) -> str | None:
    """A member's value by its group's metric, shown as the group's reason shows it."""
    try:
        value = measure(asset.source, metric, media)
    except AcpbuildError:
        return None
    return f"{metric} {value[0]:.0f}" if metric == "resolution" else f"{metric} {value[0]:.1f}"


def _written_prompt(step: Step) -> str | None:
    """A step never built has no prompt as sent: show it as the recipe writes it, when it is plain text."""
    for name in ("prompt", "text"):
        value = step.params.get(name)
        if isinstance(value, str):
            return value
    return None
