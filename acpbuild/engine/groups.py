"""Groups: several steps merged into one output.

``collect_all`` waits for every member and offers all their outputs.
``first_success`` runs its members itself, in order, and stops at the first
that succeeds, so only the members it tries are paid for. ``best_quality``
waits for every member, then a built-in metric or a judge step picks one.

A group that picks a member copies that member's blob, through the store, to
the group's own ``output``. Its key is a key of the choice: the merge, the
members' keys (those tried, for first_success), and the scorer. Downstream
steps key on the copy's digest, as with any step's output.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from typing import Any

from acpbuild.engine.build import build, failed
from acpbuild.engine.context import Context
from acpbuild.engine.material import UnknownInput, Upstream
from acpbuild.engine.results import StepResult
from acpbuild.errors import AcpbuildError
from acpbuild.keys import KEY_SCHEMA, canonical, key_of
from acpbuild.media import measure
from acpbuild.recipe import Group, Step
from acpbuild.store import confine
from acpbuild.store.ledger import OutputRecord
from acpbuild.words import counted

__all__ = ["build_group", "current_choice", "group_material", "pick_named"]


# -- keys ----------------------------------------------------------------------
def group_material(ctx: Context, group: Group, upstream: Upstream, members: list[str]) -> dict[str, Any]:
    """The key material of ``group``'s choice among ``members`` (chosen member not included)."""
    steps = ctx.recipe.steps
    mat: dict[str, Any] = {
        "schema": KEY_SCHEMA,
        "group": group.merge,
        "members": [[m, ctx.prepare(steps[m], upstream).key] for m in members],
    }
    if group.judge:
        mat["judge"] = [group.judge, ctx.prepare(steps[group.judge], upstream).key]
    elif group.score:
        mat["score"] = group.score
    return mat


def current_choice(ctx: Context, group: Group, upstream: Upstream) -> tuple[str, str, str] | None:
    """(key, chosen member, digest) when the group's output holds the choice its inputs make now."""
    assert group.output_path is not None
    for record in ctx.records(group.output_path):
        found = _still_chosen(ctx, group, upstream, record)
        if found is not None:
            return found
    return None


def _still_chosen(ctx: Context, group: Group, upstream: Upstream, record: OutputRecord) -> tuple[str, str, str] | None:
    if not record.material:
        return None
    before = json.loads(record.material)
    chosen = before.get("chosen")
    try:
        if group.merge == "first_success":
            tried = [m for m, _ in before.get("members", [])]
            if not tried or tried[-1] != chosen or list(group.members[: len(tried)]) != tried:
                return None
            mat = group_material(ctx, group, upstream, tried)
            for _, key in mat["members"][:-1]:
                # an earlier member now in the store (made by another run) wins its place back
                done = ctx.ledger.find_done(key)
                if done is not None and done.digest and ctx.store.has(done.digest):
                    return None
            mat["chosen"] = chosen
        else:
            mat = group_material(ctx, group, upstream, list(group.members))
    except (UnknownInput, AcpbuildError):
        return None
    return (record.key, chosen, record.digest) if key_of(mat) == record.key else None


def _place(ctx: Context, group: Group, key: str, chosen: Step, mat: dict[str, Any]) -> str:
    """Copy the chosen member's blob to the group's output, atomically, and record it."""
    assert group.output_path is not None
    digest = ctx.digests.digest(chosen.output_path)
    if digest is None:
        raise AcpbuildError(f"group {group.name!r}: the output of {chosen.name!r} is missing")
    if not ctx.store.has(digest):
        # a member only the lockfile vouched for (a fresh clone): its output enters the store now
        staged = ctx.store.staging(chosen.output_path.suffix)
        # the member's file as the store wrote it, not wherever a symlink planted since leads
        confine.check_read(chosen.output_path, ctx.recipe.output_dir)
        shutil.copyfile(chosen.output_path, staged)
        ctx.store.put(staged)
    ctx.materialise(group.output_path, group.name, key, digest, canonical(mat))
    return digest


# -- building --------------------------------------------------------------------
def build_group(ctx: Context, group: Group) -> StepResult:
    """Make the group's output: the doit action of a group's task. Members' results are recorded too."""
    started = time.monotonic()
    outputs = [str(group.output_path)] if group.output_path else []
    result = StepResult(group.name, "uptodate", provider="group", model=group.merge, outputs=outputs)
    if group.merge == "collect_all":
        _collect_all(ctx, group, result)
    elif group.merge == "first_success":
        _first_success(ctx, group, result)
    else:
        _best_quality(ctx, group, result)
    result.seconds = time.monotonic() - started
    return result


def _member_results(ctx: Context, group: Group) -> list[StepResult]:
    found = []
    for name in group.members:
        member = ctx.results.get(name)
        if member is not None:
            member.group = group.name
            found.append(member)
    return found


def _collect_all(ctx: Context, group: Group, result: StepResult) -> None:
    members = _member_results(ctx, group)
    result.outputs = [str(ctx.recipe.steps[m].output_path) for m in group.members]
    result.key = key_of({"schema": KEY_SCHEMA, "group": group.merge, "members": [[r.name, r.key] for r in members]})
    if any(r.status != "uptodate" for r in members):
        result.status = "ran"
    result.reason = f"collected {counted(len(group.members), 'output')}"


def _first_success(ctx: Context, group: Group, result: StepResult) -> None:
    steps = ctx.recipe.steps
    upstream = ctx.current_upstream
    choice = current_choice(ctx, group, upstream)
    if choice is not None:
        result.key, chosen, _ = choice
        result.reason = f"{chosen} chosen (up to date)"
        for name in group.members:
            member = steps[name]
            ctx.record(
                StepResult(
                    name,
                    "uptodate" if name == chosen else "skipped",
                    provider=member.provider,
                    model=member.model,
                    outputs=[str(member.output_path)] if name == chosen else [],
                    reason="up to date" if name == chosen else f"not tried: {group.name} keeps {chosen}",
                    group=group.name,
                )
            )
        return
    tried: list[StepResult] = []
    for name in group.members:
        member = steps[name]
        try:
            outcome = build(ctx, member)
        except AcpbuildError as exc:
            outcome = failed(ctx, member, exc)
        outcome.group = group.name
        tried.append(outcome)
        if outcome.status != "failed":
            break
    winner = tried[-1]
    if winner.status == "failed":
        for outcome in tried:
            ctx.record(outcome)
        raise AcpbuildError(
            f"group {group.name!r}: every member failed ("
            + "; ".join(f"{r.name}: {(r.error or '').splitlines()[0] if r.error else 'failed'}" for r in tried)
            + ")"
        )
    for outcome in tried[:-1]:
        outcome.fallback = True
        ctx.record(outcome)
    ctx.record(winner)
    for name in group.members[len(tried) :]:
        member = steps[name]
        ctx.record(
            StepResult(
                name,
                "skipped",
                provider=member.provider,
                model=member.model,
                reason=f"not needed: {winner.name} succeeded",
                group=group.name,
            )
        )
    mat = group_material(ctx, group, upstream, [r.name for r in tried])
    mat["chosen"] = winner.name
    result.key = key_of(mat)
    _place(ctx, group, result.key, steps[winner.name], mat)
    result.status = "ran" if any(r.status == "ran" for r in tried) else "restored"
    fell_back = [r.name for r in tried[:-1]]
    result.reason = (
        f"{', '.join(fell_back)} failed, fell back to {winner.name}" if fell_back else f"chose {winner.name}, the first member"
    )


def _best_quality(ctx: Context, group: Group, result: StepResult) -> None:
    _member_results(ctx, group)
    upstream = ctx.current_upstream
    choice = current_choice(ctx, group, upstream)
    if choice is not None:
        result.key, chosen, _ = choice
        result.reason = f"{chosen} chosen (up to date)"
        return
    mat = group_material(ctx, group, upstream, list(group.members))
    result.key = key_of(mat)
    if group.judge:
        chosen, result.reason = _judged(ctx, group)
    else:
        chosen, result.reason = _scored(ctx, group)
    # the choice follows from the members, so it is recorded but not part of the key
    _place(ctx, group, result.key, ctx.recipe.steps[chosen], {**mat, "chosen": chosen})
    result.status = "ran"


def _judged(ctx: Context, group: Group) -> tuple[str, str]:
    assert group.judge is not None
    text = ctx.recipe.steps[group.judge].output_path.read_text(encoding="utf-8")
    chosen = pick_named(text, group.members)
    if chosen is None:
        short = " ".join(text.split())[:200]
        raise AcpbuildError(
            f"group {group.name!r}: the judge {group.judge!r} named none of {', '.join(group.members)}; "
            f"it said: {short!r}. Ask it to answer with the name of one member"
        )
    return chosen, f"chose {chosen}, named by {group.judge}"


def pick_named(text: str, members: tuple[str, ...]) -> str | None:
    """The member a judge's text names: the whole text if it is a name, else the one it mentions first.

    Names match as whole words, ignoring case ("Wide is sharper" names ``wide``).
    """
    stripped = text.strip().strip(".\"'`*").strip()
    if stripped in members:
        return stripped
    first: dict[str, int] = {}
    for name in members:
        found = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)
        if found:
            first[name] = found.start()
    return min(first, key=lambda n: first[n]) if first else None


def _scored(ctx: Context, group: Group) -> tuple[str, str]:
    assert group.score is not None
    values = {name: measure(ctx.recipe.steps[name].output_path, group.score, group.media) for name in group.members}
    name = max(values, key=lambda n: values[n])  # max keeps the earlier member of a tie
    value = values[name]
    shown = f"{value[0]:.0f}" if group.score == "resolution" else f"{value[0]:.1f}"
    reason = f"chose {name} by {group.score} {shown}"
    if len(value) > 1 and sum(v[0] == value[0] for v in values.values()) > 1:
        reason += f", then duration {value[1]:.1f} s"  # a video resolution tie broken on duration
    return name, reason
