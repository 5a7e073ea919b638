"""The plan: every selected step and group assessed once, before anything runs.

For each: up to date, restorable from the store (free), or will run, why, its
key where its inputs are known, and what it would pay. A run makes one
:class:`Plan`, shows it for confirmation, checks it against the budget and
executes it; ``acpbuild plan`` prints it. Assessing has no side effects.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from acpbuild import money
from acpbuild.engine.context import Context
from acpbuild.engine.groups import current_choice
from acpbuild.engine.material import Prepared, UnknownInput, why, with_defaults
from acpbuild.errors import StoreError
from acpbuild.money.budget import limits_for, over_budget
from acpbuild.money.estimate import (
    CHARS_PER_TOKEN,
    TEXT_UNITS,
    Estimate,
    Expected,
    Unknown,
    estimate,
    expected_media,
    expected_text,
)
from acpbuild.recipe import Group, Recipe, Step
from acpbuild.recipe.interpolate import Ref, render
from acpbuild.store.ledger import Generation, Ledger, latest

if TYPE_CHECKING:
    from acpbuild.engine.needs import Unmet

State = Literal["uptodate", "restorable", "run"]


@dataclass
class Assessment:
    """Whether a step is up to date, restorable or must run, and why."""

    name: str
    state: State
    reason: str
    key: str | None = None
    digest: str | None = None
    #: what a run would pay for this step now ($0 unless it will run)
    estimate: Estimate = field(default_factory=lambda: Estimate(0.0, "nothing to buy"))
    #: a first_success group: the most its fallbacks would add if the first member failed
    fallback_usd: float = 0.0


@dataclass
class Plan:
    """What a run would do now and what it would pay, within which limits."""

    recipe: Recipe
    entries: list[Assessment]
    budget: money.Budget
    #: the steps a run would call their provider for, in build order: those that will run,
    #: and a first_success group's members that would run should those before them fail
    calls: list[str] = field(default_factory=list)
    #: what those calls need and do not have here (keys, voices); filled in by :mod:`acpbuild.engine.needs`
    unmet: list[Unmet] = field(default_factory=list)
    #: entries of steps the recipe was not loaded for (see :mod:`acpbuild.engine.incremental`):
    #: the last run's word on each (provider, model, outputs)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The selected steps and groups, in build order."""
        return [e.name for e in self.entries]

    @property
    def total(self) -> float:
        """What a run is expected to pay: the figure a budget is checked against."""
        return sum(e.estimate.usd for e in self.entries)

    @property
    def at_most(self) -> float:
        """The most a run can pay: each step at its bound (every text at its ``max_tokens``)."""
        return sum(e.estimate.bound for e in self.entries)

    @property
    def worst_case(self) -> float:
        """The most, if every first_success group had to pay for all its fallbacks too."""
        return self.at_most + sum(e.fallback_usd for e in self.entries)

    @property
    def paid_steps(self) -> list[Assessment]:
        return [e for e in self.entries if e.estimate.usd > 0]

    def over_budget(self) -> str | None:
        """Why the plan cannot be paid within the limits, or None when it fits."""
        return over_budget(self.total, self.budget.limits)

    def to_dict(self) -> dict[str, Any]:
        steps = []
        for e in self.entries:
            kept = self.kept.get(e.name)
            group = self.recipe.groups.get(e.name)
            if kept is not None:
                provider, model, outputs = kept["provider"], kept["model"], kept["outputs"]
            else:
                provider, model = self.recipe.who(e.name)
                if group is None:
                    outputs = [str(self.recipe.steps[e.name].output_path)]
                elif group.output_path is None:
                    outputs = [str(self.recipe.steps[m].output_path) for m in group.members]
                else:
                    outputs = [str(group.output_path)]
            steps.append(
                {
                    "name": e.name,
                    "status": e.state,
                    "reason": e.reason,
                    "key": e.key,
                    "provider": provider,
                    "model": model,
                    "outputs": outputs,
                    "estimated_cost": round(e.estimate.usd, 6),
                    "at_most": round(e.estimate.bound, 6),
                    "formula": e.estimate.formula,
                    "guess": e.estimate.guess or None,
                    "cost": 0.0,
                }
            )
        totals: dict[str, Any] = {s: sum(1 for e in self.entries if e.state == s) for s in ("run", "restorable", "uptodate")}
        totals.update(
            estimated=round(self.total, 6), at_most=round(self.at_most, 6), worst_case=round(self.worst_case, 6), cost=0.0
        )
        return {
            "recipe": self.recipe.name,
            "steps": steps,
            "totals": totals,
            "limits": {label: round(v, 6) for label, v in self.budget.limits.items()},
            "over_budget": self.over_budget(),
            "missing": [u.to_dict() for u in self.unmet],
        }


def budget_for(
    recipe: Recipe, ledger: Ledger, env: Mapping[str, str], budget: float | None = None, *, frozen: bool = False
) -> money.Budget:
    """The limits a run of ``recipe`` must keep to: ``budget`` (else the recipe's ``budget_usd``) and the
    monthly cap; ``frozen``: no paid call at all (see :func:`acpbuild.money.budget.limits_for`)."""
    return limits_for(recipe.budget_usd, ledger, env, budget, frozen=frozen)


def make_plan(ctx: Context, names: list[str], budget: money.Budget) -> Plan:
    """Assess ``names`` (dependencies first) without building anything."""
    assessor = _Assessor(ctx)
    entries = assessor.assess(names)
    # first_success members are assessed with their group: found holds them, entries may not
    calls = [n for n, a in assessor.found.items() if a.state == "run" and n in ctx.recipe.steps]
    return Plan(ctx.recipe, entries, budget, calls)


class _Assessor:
    """One pass over the graph: what each step's inputs will be, as far as they are known."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.found: dict[str, Assessment] = {}
        #: step or group -> where its output can be read now, and its digest
        self.known: dict[str, tuple[Path, str]] = {}
        #: a restorable step or group -> its blob's digest, until a dependant reads it (a
        #: remote store fetches a blob only then: planning never downloads what nobody reads)
        self.stored: dict[str, str] = {}
        #: what a step that will run is expected to make (for its dependants' estimates)
        self.expected: dict[str, Unknown] = {}
        #: (provider, model) -> its last generations in the ledger, newest first
        self.made: dict[tuple[str, str], list[Generation]] = {}
        #: (provider, model, kind) -> what that model wrote for that kind of step, measured once a plan
        self.typical: dict[tuple[str, str, str], Expected | None] = {}

    def assess(self, order: list[str]) -> list[Assessment]:
        for name in order:
            group = self.ctx.recipe.groups.get(name)
            self.found[name] = self.group(group) if group is not None else self.step(self.ctx.recipe.steps[name])
        return [self.found[n] for n in order]

    def upstream(self, name: str) -> tuple[Path, str]:
        if name not in self.known and name in self.stored:
            digest = self.stored[name]
            try:
                self.known[name] = (self.ctx.store.fetch(digest), digest)
            except StoreError as exc:  # a remote's object refused: the run makes it again
                raise UnknownInput(name) from exc
        if name not in self.known:
            raise UnknownInput(name)
        return self.known[name]

    def readable(self, name: str) -> bool:
        """Whether the output of ``name`` is known before the run (on disk, or in the store)."""
        return name in self.known or name in self.stored

    def pending(self, deps: tuple[str, ...]) -> list[str]:
        return [d for d in deps if d not in self.found or self.found[d].state == "run"]

    def step(self, step: Step) -> Assessment:
        ctx, name = self.ctx, step.name
        pending = self.pending(step.deps)
        if pending:
            entry = Assessment(name, "run", f"needs {', '.join(pending)}, which will run")
            entry.estimate = self.estimate(step, None)
            return entry
        try:
            prepared = ctx.prepare(step, self.upstream)
        except UnknownInput as missing:
            entry = Assessment(name, "run", f"needs {missing}, whose stored output could not be fetched")
            entry.estimate = self.estimate(step, None)
            return entry
        key = prepared.key
        record = next((r for r in ctx.records(step.output_path) if r.key == key), None)
        if record is not None:
            self.known[name] = (step.output_path, record.digest)
            return Assessment(name, "uptodate", "up to date", key, record.digest)
        history = ctx.ledger.history(key)
        done = latest(history, "done")
        if done is not None and done.digest and ctx.store.has(done.digest):
            self.stored[name] = done.digest
            return Assessment(name, "restorable", "in the store (free)", key, done.digest)
        entry = Assessment(name, "run", why(ctx.output_record(step.output_path), prepared.material), key)
        entry.estimate = self.estimate(step, prepared)
        kept = latest(history, "resumable")
        if kept is not None:
            # an earlier run submitted this very generation: a run waits for that job
            entry.reason = f"resumes request {kept.request_id}, submitted by an earlier run"
            entry.estimate = Estimate(0.0, f"already submitted as {kept.request_id}; resuming it pays nothing more")
        return entry

    def estimate(self, step: Step, prepared: Prepared | None) -> Estimate:
        """The estimate of a step that will run; outputs not made yet are what they are expected to be."""
        ctx = self.ctx
        provider = ctx.provider(step.provider)
        model = provider.catalogue()[step.model]
        unknown: list[str] = []
        most: dict[str, Any] | None = None
        if prepared is not None:
            # inputs still in the store are measured where they are now
            params = {k: _readable(v, prepared.readable) for k, v in prepared.params.items()}
        else:

            def value(ref: Ref, *, largest: bool = False) -> Any:
                media = ctx.recipe.output_of(ref.step)[0]
                if self.readable(ref.step):
                    try:
                        path = self.upstream(ref.step)[0]
                    except UnknownInput:
                        pass
                    else:
                        return path.read_text(encoding="utf-8") if media == "text" else path
                guess = self.expected.get(ref.step) or Unknown(why=f"output of {ref.step!r} unknown")
                if largest:
                    return Unknown(guess.max_chars or guess.chars, guess.seconds, guess.why)
                if guess.why and media == "text":
                    unknown.append(f"{ref.step}: {guess.why}")
                return guess

            specs = model.params_for(step.kind)
            params = with_defaults(specs, render(step.params, value))
            if unknown:  # a text not yet written went in: render it again at its longest, for the bound
                most = with_defaults(specs, render(step.params, lambda ref: value(ref, largest=True)))
        expect = self.learnt(step) if step.media == "text" else None
        if step.media == "text":
            self.expected[step.name] = expected_text(step.kind, params, paid=provider.paid, expect=expect)
        else:
            self.expected[step.name] = expected_media(step.kind, params)
        found = estimate(step.provider, model, step.kind, params, paid=provider.paid, expect=expect, most=most)
        price = money.price_of(step.provider, step.model)
        by_text = price is not None and price.unit in TEXT_UNITS
        if unknown and by_text and not found.guess:
            # a guessed upstream text went into a longer string: still a guess
            return Estimate(found.usd, found.formula, "; ".join(unknown), found.at_most)
        return found

    def learnt(self, step: Step) -> Expected | None:
        """What the ledger says ``step`` will write: what its last run wrote, else the median of
        what its model wrote for this kind of step; None when it has no history."""
        made = self.made.get((step.provider, step.model))
        if made is None:
            made = self.made[(step.provider, step.model)] = self.ctx.ledger.made_by(step.provider, step.model)
        own = [g for g in made if g.recipe == self.ctx.recipe.name and g.step == step.name and g.kind == step.kind]
        last = self.measured(own[:1], "as its last run wrote")
        if last is not None:
            return last
        kind = (step.provider, step.model, step.kind)
        if kind not in self.typical:
            alike = [g for g in made if g.kind == step.kind]
            found = self.measured(alike, f"the median of {len(alike)} earlier {step.model} texts") if alike else None
            self.typical[kind] = found
        return self.typical[kind]

    def measured(self, made: list[Generation], source: str) -> Expected | None:
        """The median characters and output tokens of texts ``made`` (from the blobs this machine
        holds, else from the tokens billed); None when none of them can be measured (a free text
        made elsewhere, whose copy this machine lacks)."""
        chars: list[int] = []
        tokens: list[int] = []
        for gen in made:
            billed = _output_tokens(gen)
            blob = self.ctx.store.path(gen.digest) if gen.digest else None
            if blob is not None and blob.is_file():
                chars.append(blob.stat().st_size)
            elif billed is not None:
                chars.append(billed * CHARS_PER_TOKEN)
            if billed is not None:
                tokens.append(billed)
        if not chars:
            return None
        written = _median(chars)
        return Expected(written, _median(tokens) if tokens else -(-written // CHARS_PER_TOKEN), source)

    def group(self, group: Group) -> Assessment:
        """What a run would do for ``group`` now: its members (first_success: the first) decide."""
        ctx, name = self.ctx, group.name
        pending = self.pending(group.deps)
        if group.merge == "collect_all":
            if pending:
                return Assessment(name, "run", f"needs {', '.join(pending)}, which will run")
            return Assessment(name, "uptodate", "up to date")
        if not pending:
            choice = current_choice(ctx, group, self.upstream)
            if choice is not None:
                key, chosen, digest = choice
                assert group.output_path is not None
                self.known[name] = (group.output_path, digest)
                return Assessment(name, "uptodate", f"{chosen} chosen (up to date)", key, digest)
        if group.merge == "best_quality":
            if pending:
                return Assessment(name, "run", f"needs {', '.join(pending)}, which will run")
            return Assessment(name, "run", f"will choose among {', '.join(group.members)} (free)")
        first_name = group.members[0]
        first = self.member(first_name)
        rest = f", then {', '.join(group.members[1:])} if it fails" if len(group.members) > 1 else ""
        if first.state != "run" and self.readable(first_name):
            if first_name in self.known:
                self.known[name] = self.known[first_name]
            else:
                self.stored[name] = self.stored[first_name]
            return Assessment(name, "restorable", f"{first_name}: {first.reason}", digest=first.digest)
        entry = Assessment(name, "run", f"will try {first_name}{rest}")
        entry.estimate = first.estimate
        for member in group.members[1:]:
            fallback = self.member(member)
            if fallback.state == "run":
                entry.fallback_usd += fallback.estimate.bound
        return entry

    def member(self, name: str) -> Assessment:
        """A first_success member: assessed with its group when it has no task of its own."""
        if name not in self.found:
            self.found[name] = self.step(self.ctx.recipe.steps[name])
        return self.found[name]


def _output_tokens(gen: Generation) -> int | None:
    try:
        usage = json.loads(gen.usage or "{}")
    except ValueError:
        return None
    tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
    return int(tokens) if isinstance(tokens, (int, float)) else None


def _median(values: list[int]) -> int:
    return int(statistics.median(values))


def _readable(value: Any, readable: Mapping[Path, Path]) -> Any:
    if isinstance(value, list):
        return [_readable(v, readable) for v in value]
    return readable.get(value, value) if isinstance(value, Path) else value
