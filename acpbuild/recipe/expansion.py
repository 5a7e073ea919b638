"""Expanding a recipe's steps: foreach items, and groups resolved against the steps.

Called by :func:`acpbuild.recipe.loader` once every plain step is resolved:
:func:`all_items` reads each foreach step's items, :func:`bind_families` points
``${steps.FAMILY}`` at the same item's step (or at every item's output),
:func:`resolve_groups` checks ``[groups.NAME]`` tables, and
:func:`bind_collected` turns a reference to a ``collect_all`` group into its
members' outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acpbuild import providers
from acpbuild.errors import did_you_mean
from acpbuild.recipe.file import RawGroup, RecipeFile, Where
from acpbuild.recipe.foreach import Item, ItemError, Seen, load_items
from acpbuild.recipe.interpolate import InterpolationError, Ref, Template, interpolate_tree, refs_in
from acpbuild.recipe.kinds import SUFFIXES
from acpbuild.recipe.model import (
    DEFAULT_METRIC,
    MERGES,
    METRICS,
    Group,
    Step,
)
from acpbuild.recipe.paths import output_path
from acpbuild.recipe.sourcemap import line_of


def all_items(
    raw: RecipeFile, root: Path, lookup: Any, where: Where, store: Path
) -> tuple[dict[str, list[Item]], Seen, dict[str, str]]:
    """The items of every foreach step (``${steps.X}`` sources take X's items).

    Also the signature of every file and folder they came from, taken before it
    was read, and the file or glob each step's items come from (inline lists aside).
    """
    found: dict[str, list[Item]] = {}
    sources: Seen = {}
    files: dict[str, str] = {}

    def items_of(name: str, visiting: tuple[str, ...]) -> list[Item]:
        if name in found:
            return found[name]
        source = raw.steps[name].foreach
        at = ("steps", name, "foreach")
        if isinstance(source, str):
            try:
                source = interpolate_tree(source, lookup)
            except InterpolationError as exc:
                raise where.error(str(exc), at) from None
        if isinstance(source, Template):
            ref = source.single_ref
            if ref is None or ref.step not in raw.steps or raw.steps[ref.step].foreach is None:
                raise where.error(
                    "foreach over another step takes exactly '${steps.NAME}' of a foreach step",
                    at,
                    did_you_mean(ref.step, [n for n, s in raw.steps.items() if s.foreach is not None])
                    if ref
                    else None,
                )
            if ref.step in visiting:
                raise where.error("foreach steps iterate over each other in a cycle", at)
            found[name] = items_of(ref.step, (*visiting, name))
            if ref.step in files:
                files[name] = files[ref.step]
            return found[name]
        if isinstance(source, str):
            files[name] = source
        try:
            found[name] = load_items(source, root, sources, store=store)  # type: ignore[arg-type]
        except ItemError as exc:
            raise where.error(str(exc), at) from None
        return found[name]

    for name, step in raw.steps.items():
        if step.foreach is not None:
            items_of(name, ())
    return found, sources, files


def bind_families(steps: dict[str, Step], families: dict[str, list[str]], where: Where) -> None:
    """Point ``${steps.FAMILY}`` at the same item's step, or at all of a family's outputs."""
    if not families:
        return

    def bind(step: Step, key: str, value: Any) -> Any:
        if isinstance(value, list):
            return [bind(step, key, v) for v in value]
        if not isinstance(value, Template) or not any(r.step in families for r in value.refs):
            return value
        at = ("steps", step.family or step.name, key)
        same_item = [
            f"{r.step}[{step.item}]" for r in value.refs if r.step in families and f"{r.step}[{step.item}]" in steps
        ]
        if step.item is not None and len(same_item) == len([r for r in value.refs if r.step in families]):
            return Template(
                tuple(
                    Ref(f"{p.step}[{step.item}]") if isinstance(p, Ref) and p.step in families else p
                    for p in value.parts
                )
            )
        spec = providers.catalogue(step.provider)[step.model].params[key]
        single = value.single_ref
        if spec.type == "files" and single is not None:
            return [Template((Ref(member),)) for member in families[single.step]]
        family = next(r.step for r in value.refs if r.step in families)
        raise where.error(
            f"step {family!r} is a foreach step: it has one output per item",
            at,
            "take all of them with a files parameter (kind = \"concat\", videos = \"${steps."
            + family
            + "}\"), or make this step foreach over the same items",
        )

    for step in steps.values():
        step.params = {k: bind(step, k, v) for k, v in step.params.items()}
        step.deps = tuple(dict.fromkeys(r.step for r in refs_in(step.params)))


def resolve_groups(raw: RecipeFile, steps: dict[str, Step], output_dir: Path, where: Where) -> dict[str, Group]:
    """Check each ``[groups.NAME]`` against the steps and return the groups."""
    groups: dict[str, Group] = {}
    owner: dict[str, str] = {}
    for name, raw_group in raw.groups.items():
        at = ("groups", name)
        if name in raw.steps:
            raise where.error(
                f"group {name!r} has the name of a step", at, "groups and steps share one namespace: rename one"
            )
        if raw_group.merge not in MERGES:
            raise where.error(
                f"unknown merge {raw_group.merge!r}",
                (*at, "merge"),
                did_you_mean(raw_group.merge, list(MERGES)) or f"merge is one of {', '.join(MERGES)}",
            )
        members: list[str] = []
        for member in raw_group.steps:
            if member == name:
                raise where.error(f"group {name!r} lists itself as a member", (*at, "steps"))
            if member in raw.groups:
                raise where.error(
                    f"member {member!r} is a group; members are steps", (*at, "steps"), "list its steps instead"
                )
            if member not in raw.steps:
                raise where.error(
                    f"unknown member step {member!r}",
                    (*at, "steps"),
                    did_you_mean(member, list(raw.steps)),
                )
            if raw.steps[member].foreach is not None:
                raise where.error(
                    f"member {member!r} is a foreach step; members must be single steps", (*at, "steps")
                )
            if member in members:
                raise where.error(f"member {member!r} is listed twice", (*at, "steps"))
            if member in owner:
                raise where.error(
                    f"step {member!r} is already a member of group {owner[member]!r}",
                    (*at, "steps"),
                    "a step can be in one group only",
                )
            owner[member] = name
            members.append(member)
        media = {steps[m].media for m in members}
        if len(media) > 1:
            made = ", ".join(f"{m} makes {steps[m].media}" for m in members)
            raise where.error(f"members of group {name!r} make different media ({made})", (*at, "steps"))
        kind = steps[members[0]].media
        merge = raw_group.merge
        group = Group(name, merge, tuple(members), kind, None, None, description=raw_group.description)
        group.line = line_of(where.lines, at)
        if merge == "collect_all":
            for key in ("output", "score", "judge"):
                if getattr(raw_group, key) is not None:
                    raise where.error(
                        f"a collect_all group has no {key!r}", (*at, key), "its output is every member's output"
                    )
        else:
            if raw_group.output is None:
                raise where.error(
                    f"a {merge} group needs an 'output': where the chosen member's copy goes",
                    at,
                    f"e.g. output = \"{name}{SUFFIXES[kind][0]}\"",
                )
            group.output = raw_group.output
            group.output_path = output_path(
                raw_group.output, output_dir, kind, (*at, "output"), where, f"the members' media ({kind})"
            )
        if merge != "best_quality":
            for key in ("score", "judge"):
                if getattr(raw_group, key) is not None:
                    raise where.error(f"only a best_quality group takes {key!r}", (*at, key))
        else:
            _resolve_scorer(group, raw_group, raw, steps, where)
        groups[name] = group
    return groups


def _resolve_scorer(group: Group, raw_group: RawGroup, raw: RecipeFile, steps: dict[str, Step], where: Where) -> None:
    at = ("groups", group.name)
    if raw_group.score is not None and raw_group.judge is not None:
        raise where.error("set either 'score' or 'judge', not both", (*at, "judge"))
    if raw_group.judge is not None:
        judge = raw_group.judge
        if judge not in raw.steps:
            raise where.error(
                f"unknown judge step {judge!r}", (*at, "judge"), did_you_mean(judge, list(raw.steps))
            )
        if judge in group.members:
            raise where.error(f"the judge {judge!r} is a member of the group it judges", (*at, "judge"))
        if raw.steps[judge].foreach is not None or steps[judge].media != "text":
            raise where.error(
                f"the judge {judge!r} must be a single step that makes text naming the winning member",
                (*at, "judge"),
            )
        group.judge = judge
        return
    if raw_group.score is None:
        if group.media not in DEFAULT_METRIC:
            raise where.error(
                f"best_quality has no built-in metric for {group.media}", at, "set judge = \"STEP\": a text step naming the winner"
            )
        group.score = DEFAULT_METRIC[group.media]
        return
    if raw_group.score not in METRICS:
        raise where.error(
            f"unknown score {raw_group.score!r}",
            (*at, "score"),
            did_you_mean(raw_group.score, list(METRICS)) or f"scores: {', '.join(METRICS)}",
        )
    if group.media not in METRICS[raw_group.score]:
        fits = [m for m, media in METRICS.items() if group.media in media]
        raise where.error(
            f"score {raw_group.score!r} does not measure {group.media}",
            (*at, "score"),
            f"for {group.media}: {', '.join(fits)}" if fits else "set judge = \"STEP\" instead",
        )
    group.score = raw_group.score


def bind_collected(steps: dict[str, Step], groups: dict[str, Group], where: Where) -> None:
    """Point ``${steps.GROUP}`` of a collect_all group at every member's output.

    A files parameter takes the list of files; a text parameter takes the members'
    texts joined by blank lines.
    """
    collected = {n: g for n, g in groups.items() if g.merge == "collect_all"}
    if not collected:
        return

    def bind(step: Step, key: str, value: Any) -> Any:
        if isinstance(value, list):
            return [bind(step, key, v) for v in value]
        if not isinstance(value, Template) or not any(r.step in collected for r in value.refs):
            return value
        at = ("steps", step.family or step.name, key)
        spec = providers.catalogue(step.provider)[step.model].params[key]
        single = value.single_ref
        if spec.type == "files" and single is not None:
            return [Template((Ref(m),)) for m in collected[single.step].members]
        group = next(collected[r.step] for r in value.refs if r.step in collected)
        if spec.type == "str" and group.media == "text":
            parts: list[str | Ref] = []
            for part in value.parts:
                if isinstance(part, Ref) and part.step in collected:
                    for i, member in enumerate(collected[part.step].members):
                        parts += (["\n\n"] if i else []) + [Ref(member)]
                else:
                    parts.append(part)
            return Template(tuple(parts))
        raise where.error(
            f"group {group.name!r} collects all its members' outputs: it has one per member",
            at,
            "take them with a files parameter (kind = \"concat\", videos = \"${steps." + group.name + "}\")"
            + (", or inline their texts into a text parameter" if group.media == "text" else ""),
        )

    for step in steps.values():
        step.params = {k: bind(step, k, v) for k, v in step.params.items()}
        step.deps = tuple(dict.fromkeys(r.step for r in refs_in(step.params)))
