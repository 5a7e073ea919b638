"""The ``acpbuild`` commands that build and spend: run, plan, estimate, costs, list, clean,
abandon, validate and report. :mod:`acpbuild.cli` dispatches to them; like it, they print.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acpbuild.words import counted

if TYPE_CHECKING:
    from acpbuild.engine.plan import Plan
    from acpbuild.report import Written


def _split_targets(items: list[str]) -> tuple[str | None, list[str]]:
    """``[RECIPE] [STEP...]``: the first item is the recipe when it is a .toml path."""
    if items and (items[0].endswith(".toml") or Path(items[0]).is_file()):
        return items[0], items[1:]
    return None, items


class _Declined(Exception):
    """The user (or the lack of one) did not confirm the spend; carries the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """While a run runs, SIGTERM and SIGINT stop it: its children's process groups are
    killed, its temporary files deleted, and :class:`~acpbuild.process.Interrupted`
    raised in the main thread to unwind it (see :func:`acpbuild.cli.main`)."""
    import signal
    import threading

    from acpbuild import process

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (a test calling main() from a thread)
        return

    def stop(signum: int, frame: object) -> None:
        # one signal is enough: a second one must not cut the cleanup short
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, signal.SIG_IGN)
        process.stop()
        raise process.Interrupted(signum)

    before = {each: signal.signal(each, stop) for each in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for each, handler in before.items():
            signal.signal(each, handler)


def cmd_run(args: argparse.Namespace) -> int:
    from acpbuild.engine import noop

    with _stopped_by_signals(), noop.remembering():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    recipe, targets = _split_targets(args.items)
    if not targets and not args.draft and not args.shard:
        answered = _nothing_to_do(args, recipe)
        if answered is not None:
            if args.report or args.report_dir:
                _report(args, recipe, answered)
            return 0
    from acpbuild.cli import display
    from acpbuild.engine import workflow

    started = time.monotonic()
    progress = None if args.json else display.Progress(sys.stdout, live=sys.stdout.isatty())
    try:
        result = workflow.run(
            recipe,
            targets,
            jobs=args.jobs,
            keep_going=args.keep_going,
            draft=args.draft,
            link=args.link,
            budget=args.budget,
            on_event=progress,
            # a frozen run never pays, so there is nothing to confirm
            confirm=None if args.yes or args.frozen else lambda plan: _confirm(args, plan),
            frozen=args.frozen,
            shard=args.shard,
        )
    except _Declined as declined:
        return declined.code
    finally:
        if progress is not None:
            progress.stop()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        display.summary(result, sys.stdout, seconds=time.monotonic() - started)
    if (args.report or args.report_dir) and not args.draft:
        _report(args, recipe, result.to_dict())
    return result.exit_code


def _report(args: argparse.Namespace, recipe: str | None, result: dict[str, Any]) -> None:
    """``run --report``: the gallery of what this run left, with its statuses."""
    from acpbuild.report import make_report

    written = make_report(recipe, args.report_dir, result=result)
    # a --json reader gets one document on stdout; the line goes beside it
    print(_written_line(written), file=sys.stderr if args.json else sys.stdout)


def _written_line(written: Written) -> str:
    try:
        shown = written.index.relative_to(Path.cwd())
    except ValueError:
        shown = written.index
    return f"report: {shown} ({counted(written.steps, 'step')}, {counted(written.media, 'media file')})"


def cmd_report(args: argparse.Namespace) -> int:
    from acpbuild.report import make_report

    written = make_report(args.recipe, args.out, history=args.history)
    if args.json:
        print(json.dumps({"index": str(written.index), "media": written.media, **written.report.to_dict()}, indent=2))
    else:
        print(_written_line(written))
    return 0


def _fast_path(recipe: str | None) -> tuple[Path, Mapping[str, str]] | None:
    """The recipe file and its environment, for a fast path that answers from the last
    run's manifest; None when ``ACPBUILD_NO_FASTPATH`` turns the fast paths off."""
    import os

    if os.environ.get("ACPBUILD_NO_FASTPATH"):
        return None
    from acpbuild.config.secrets import environment

    path = Path(recipe or "acpbuild.toml").resolve()
    return path, environment((path.parent, Path.cwd()))


def _nothing_to_do(args: argparse.Namespace, recipe: str | None) -> dict[str, Any] | None:
    """The no-op fast path: when nothing changed since the last complete run, say so and
    return the run's result document (every step up to date); else None."""
    from acpbuild.engine import noop

    located = _fast_path(recipe)
    if located is None:
        return None
    path, env = located
    found = noop.check(path, env)
    if found is None:
        return None
    name, steps = found
    doc = noop.answer(path, env, name, steps)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"ok: {len(steps)} uptodate; paid $0; nothing changed since the last run of {name}")
    return doc


def _confirm(args: argparse.Namespace, plan: Plan) -> None:
    """Ask before a run that would pay more than the threshold; raise :class:`_Declined` to stop it."""
    import shlex

    from acpbuild.cli import display
    from acpbuild.config.secrets import environment
    from acpbuild.config.user import load_config
    from acpbuild.errors import SpendNotConfirmed

    threshold = load_config(environment((Path.cwd(),))).confirm_above_usd
    if not plan.paid_steps or plan.worst_case <= threshold:
        return
    # what the user agrees to includes every fallback a first_success group may try
    upto = plan.worst_case
    again = shlex.join(["acpbuild", *args.argv, "--yes"])
    if sys.stdin.isatty() and not args.json:
        display.plan_table(plan.to_dict(), sys.stdout)
        try:
            answer = input(f"Proceed and pay up to ~${upto:.4f}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            return
        print("acpbuild: nothing was spent", file=sys.stderr)
        raise _Declined(SpendNotConfirmed.exit_code)
    if args.json:
        print(json.dumps({**plan.to_dict(), "confirmed": False, "proceed": again}, indent=2))
    else:
        display.plan_table(plan.to_dict(), sys.stdout)
    print(
        f"acpbuild: refusing to spend up to ~${upto:.4f} without confirmation; run again with --yes:\n  {again}",
        file=sys.stderr,
    )
    raise _Declined(SpendNotConfirmed.exit_code)


def _unchanged(recipe: str | None, budget: float | None = None) -> dict[str, Any] | None:
    """The plan of a recipe unchanged since its last complete run, read from that run's
    manifest without loading the recipe (see :func:`acpbuild.engine.noop.forecast`); else None."""
    from acpbuild.engine import noop

    located = _fast_path(recipe)
    return None if located is None else noop.forecast(*located, budget)


def cmd_plan(args: argparse.Namespace) -> int:
    from acpbuild.engine import noop

    with noop.remembering():
        return _plan(args)


def _plan(args: argparse.Namespace) -> int:
    recipe_path, targets = _split_targets(args.items)
    unchanged = None if targets or args.draft or args.shard else _unchanged(recipe_path, args.budget)
    if unchanged is not None:
        if args.json:
            print(json.dumps(unchanged, indent=2))
        else:
            from acpbuild.cli import display

            display.plan_table(unchanged, sys.stdout, detailed=args.detailed, title=args.command)
        return 0
    from acpbuild.cli import display
    from acpbuild.engine import needs, workflow
    from acpbuild.errors import NotReady

    forecast = workflow.forecast(recipe_path, targets, draft=args.draft, budget=args.budget, shard=args.shard)
    if args.json:
        print(json.dumps(forecast.to_dict(), indent=2))
    else:
        display.plan_table(forecast.to_dict(), sys.stdout, detailed=args.detailed, title=args.command)
    if forecast.unmet:
        # the prices stand either way; `plan` answers what a run would do now, and a run now
        # would stop before paying: a script asking it should know
        says = "error" if args.command == "plan" else "warning"
        print(f"acpbuild: {says}: {needs.message(forecast.recipe.name, forecast.unmet)}", file=sys.stderr)
        return NotReady.exit_code if args.command == "plan" else 0
    return 0


cmd_estimate = cmd_plan


def cmd_check(args: argparse.Namespace) -> int:
    """The CI gate: 0 when nothing would run and the lockfile matches the recipe, else 1."""
    from acpbuild.engine import noop

    with noop.remembering():
        return _check(args)


def _check(args: argparse.Namespace) -> int:
    unchanged = _unchanged(args.recipe)
    if unchanged is not None:
        # the last complete run wrote the lockfile, and neither has moved since
        if args.json:
            print(json.dumps({**unchanged, "ok": True, "problems": []}, indent=2))
        else:
            from acpbuild.engine.lockfile import lock_path

            path = Path(args.recipe or "acpbuild.toml")
            print(f"ok: {len(unchanged['steps'])} up to date or restorable; {lock_path(path).name} matches {path.name}")
        return 0
    from acpbuild.cli import display
    from acpbuild.engine import lockfile, workflow
    from acpbuild.errors import RecipeError

    # the gate asks whether the outputs are current, not whether this machine could make them
    plan = workflow.forecast(args.recipe, needs=False)
    lock_file = lockfile.lock_path(plan.recipe.path)
    problems = [f"{e.name}: {e.reason}" for e in plan.entries if e.state == "run"]
    try:
        lock = lockfile.read(lock_file)
    except RecipeError as exc:
        lock = {}
        problems.append(str(exc))
    for entry in plan.entries:
        if entry.state == "run" or entry.key is None:
            continue  # a collect_all group, or a step already named above
        locked = lock.get(entry.name)
        if locked is None:
            problems.append(f"{entry.name}: not in {lock_file.name}")
        elif locked.key != entry.key:
            problems.append(f"{entry.name}: {lock_file.name} holds another generation")
        elif entry.digest is not None and any(digest != entry.digest for _, digest in locked.outputs):
            problems.append(f"{entry.name}: {lock_file.name} holds another output than the recipe makes")
    recipe = plan.recipe
    for name in sorted(set(lock) - set(plan.names) - set(recipe.steps) - set(recipe.groups)):
        problems.append(f"{name}: in {lock_file.name}, but no longer in {recipe.path.name}")
    if args.json:
        print(json.dumps({**plan.to_dict(), "ok": not problems, "problems": problems}, indent=2))
    elif problems:
        display.plan_table(plan.to_dict(), sys.stdout, title="check")
    if problems:
        print(f"acpbuild check: {len(problems)} not up to date (~${plan.total:.4f} to make):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(f"  TIP: acpbuild run {plan.recipe.path.name}, then commit the outputs and {lock_file.name}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"ok: {len(plan.entries)} up to date or restorable; {lock_file.name} matches {plan.recipe.path.name}")
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    from acpbuild.cli import display
    from acpbuild.config.secrets import environment
    from acpbuild.engine.workflow import open_recipe
    from acpbuild.money import spend
    from acpbuild.store import layout

    # a recipe named on the command line: its own spend; else the whole ledger of the store here
    only: str | None = None
    if args.recipe:
        recipe = open_recipe(args.recipe)[0]
        store, only = recipe.store_dir, recipe.name
    elif not args.store and Path("acpbuild.toml").is_file():
        store = open_recipe(None)[0].store_dir
    else:
        store = layout.store_root(environment((Path.cwd(),)))
    if args.store:
        store = Path(args.store).resolve()
    since = spend.parse_since(args.since) if args.since else None
    rows: list[spend.Row] = []
    env = environment((store.parent, Path.cwd()))
    # reading costs never creates a ledger; a team's shared one holds everybody's spend
    if layout.has_ledger(store) or layout.ledger_url(env):
        ledger = layout.open_ledger(store, env)
        try:
            rows = spend.report(ledger, since=since, by=args.by, recipe=only)
        finally:
            ledger.close()
    elif not (args.recipe or args.store or Path("acpbuild.toml").is_file()):
        # no recipe here and no ledger in ./.acpbuild: say whose stores there are, not just "$0"
        from acpbuild.cli import info

        lines = info.elsewhere(info.nearby(env, Path.cwd()), "costs")
        if lines:
            print(f"acpbuild: no ledger in {store} (no acpbuild.toml here); {lines[0]}", file=sys.stderr)
            for line in lines[1:]:
                print(line, file=sys.stderr)
    if args.json:
        doc = {
            "store": str(store),
            "recipe": only,
            "by": args.by,
            "since": args.since,
            "rows": [r.to_dict() for r in rows],
            "totals": {
                "generations": sum(r.generations for r in rows),
                "estimated": round(sum(r.estimated for r in rows), 6),
                "cost": round(sum(r.cost for r in rows), 6),
                "restores": sum(r.restores for r in rows),
                "saved": round(sum(r.saved for r in rows), 6),
                "in_doubt": sum(r.in_doubt for r in rows),
                "possibly_billed": round(sum(r.possibly_billed for r in rows), 6),
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        display.costs_table(rows, args.by, sys.stdout)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from acpbuild.engine.workflow import open_recipe
    from acpbuild.recipe.graph import topological

    recipe, _ = open_recipe(args.recipe)
    order = topological(recipe.deps())
    width = max(len(n) for n in order)
    for name in order:
        group = recipe.groups.get(name)
        if group is not None:
            into = f" -> {group.output}" if group.output else ""
            print(f"{name:<{width}}  {'group':<15} {group.merge} of {', '.join(group.members)}{into}")
            continue
        step = recipe.steps[name]
        needs = f"  needs {', '.join(step.deps)}" if step.deps else ""
        print(f"{name:<{width}}  {step.kind:<15} {step.provider}/{step.model:<12} -> {step.output}{needs}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from acpbuild.engine import workflow

    removed = workflow.clean(args.recipe, orphans=args.orphans)
    for path in removed:
        print(f"removed {path}")
    print(f"{counted(len(removed), 'output')} removed; the store still holds every generation")
    return 0


def cmd_abandon(args: argparse.Namespace) -> int:
    from acpbuild.engine import workflow
    from acpbuild.errors import RecipeError

    recipe, targets = _split_targets(args.items)
    if not targets:
        raise RecipeError("name the steps whose kept jobs to give up", tip="acpbuild abandon [RECIPE] STEP...")
    given_up = workflow.abandon(recipe, targets)
    for step, generations in given_up.items():
        for gen in generations:
            if gen.request_id:
                print(f"abandoned request {gen.request_id} of {step}: it may still be billed; the next run submits anew")
            elif gen.state == "possibly_billed":
                print(f"{step}: an attempt possibly billed ~${gen.estimated_cost or 0:.4f} no longer counts as spend")
    if not any(given_up.values()):
        print("nothing to abandon: no job is kept to resume for " + ", ".join(given_up))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from acpbuild.engine.workflow import open_recipe
    from acpbuild.errors import RecipeError

    worst = 0
    for path in args.recipes or [None]:
        try:
            recipe, _ = open_recipe(path)
        except RecipeError as exc:
            print(f"acpbuild: error: {exc}", file=sys.stderr)
            worst = 2
            continue
        print(f"{path or 'acpbuild.toml'}: ok ({counted(len(recipe.steps), 'step')})")
    return worst
