"""The ``acpbuild`` command: argument parsing, exit codes, and all printing.

The commands that build and spend live here; those that set a project up or
look at it (init, templates, new, import, info, graph, schema) are in
:mod:`acpbuild.cli.project`, imported only when one of them runs.

Exit codes: 0 success, 1 a step failed, 2 bad recipe or usage, 3 refused to
spend, 130 interrupted (state is saved; running again resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acpbuild.version import __version__

if TYPE_CHECKING:
    from acpbuild.engine.plan import Plan
    from acpbuild.providers.base import Model

EXIT_INTERRUPTED = 130


def _split_targets(items: list[str]) -> tuple[str | None, list[str]]:
    """``[RECIPE] [STEP...]``: the first item is the recipe when it is a .toml path."""
    if items and (items[0].endswith(".toml") or Path(items[0]).is_file()):
        return items[0], items[1:]
    return None, items


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too few: run at least 1 step at a time")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acpbuild",
        description="Build AI-generated media from TOML recipes; never pay twice for a generation.",
    )
    parser.add_argument("--version", action="version", version=f"acpbuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="build a recipe (all steps, or the named steps and what they need)")
    run.add_argument("items", nargs="*", metavar="[RECIPE] [STEP]", help="recipe file (default acpbuild.toml), then steps")
    run.add_argument(
        "-j", "--jobs", type=_positive, help="steps to run at once (default: the recipe's jobs, else 16)"
    )
    run.add_argument("-k", "--keep-going", action="store_true", help="run what can run past a failed step")
    run.add_argument("--json", action="store_true", help="print one JSON document instead of the display")
    run.add_argument("--draft", action="store_true", help="replace every paid step with a free local stand-in")
    run.add_argument("--link", choices=("copy", "hardlink"), default="copy", help="how outputs are made from the store")
    run.add_argument("--budget", type=_usd, metavar="USD", help="the most this run may pay (default: the recipe's budget_usd)")
    run.add_argument("-y", "--yes", action="store_true", help="spend without asking (for CI and scripts)")

    plan = sub.add_parser("plan", help="show what a run would do, why, and what it would pay")
    estimate = sub.add_parser("estimate", help="what a run would pay now, step by step")
    for cmd in (plan, estimate):
        cmd.add_argument("items", nargs="*", metavar="[RECIPE] [STEP]")
        cmd.add_argument("--json", action="store_true")
        cmd.add_argument("--draft", action="store_true", help="plan a --draft run")
        cmd.add_argument("--detailed", action="store_true", help="show how each estimate is computed")
        cmd.add_argument("--budget", type=_usd, metavar="USD", help="check the plan against this budget")

    costs = sub.add_parser("costs", help="spend recorded in the ledger, and what restores saved")
    costs.add_argument("recipe", nargs="?", help="whose store to read (default: acpbuild.toml here, else .acpbuild)")
    costs.add_argument("--since", metavar="DATE", help="only from this day on (YYYY-MM-DD)")
    costs.add_argument("--by", choices=("recipe", "step", "provider", "model", "day"), default="recipe")
    costs.add_argument("--store", help="the store to read instead")
    costs.add_argument("--json", action="store_true")

    lst = sub.add_parser("list", help="list a recipe's steps")
    lst.add_argument("recipe", nargs="?")

    clean = sub.add_parser("clean", help="remove a recipe's outputs (the store keeps every generation)")
    clean.add_argument("recipe", nargs="?")
    clean.add_argument("--orphans", action="store_true", help="only outputs that no step makes any more")

    abandon = sub.add_parser(
        "abandon", help="give up a long job kept to resume, so the next run submits (and pays for) a new one"
    )
    abandon.add_argument("items", nargs="+", metavar="[RECIPE] STEP")
    validate = sub.add_parser("validate", help="check recipes without running anything")
    validate.add_argument("recipes", nargs="*")
    imp = sub.add_parser("import", help="convert a pipeline of the older YAML tool into a recipe")
    imp.add_argument("pipeline", metavar="PIPELINE.yaml")
    imp.add_argument("-o", "--output", help="the recipe to write (default: the YAML's name with .toml, beside it)")
    imp.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    doctor = sub.add_parser("doctor", help="check keys (never their values), ffmpeg, eSpeak and the store")
    doctor.add_argument("--ping", action="store_true", help="one cheap authenticated request per configured provider")
    doctor.add_argument("--store", help="store to check (default: .acpbuild here, or ACPBUILD_STORE)")

    models = sub.add_parser("models", help="the model catalogue with parameters and prices")
    models.add_argument("--kind", help="only models serving this kind")
    models.add_argument("--provider", help="only this provider's models")
    models.add_argument("--json", action="store_true")

    init = sub.add_parser("init", help="start a project: a ready recipe, .gitignore and .env.example")
    init.add_argument("dir", nargs="?", default=".", help="where to write it (default: here)")
    init.add_argument("--template", default="quickstart", metavar="NAME", help="which template (acpbuild templates)")
    init.add_argument("--force", action="store_true", help="overwrite an existing acpbuild.toml")
    sub.add_parser("templates", help="the recipe templates acpbuild init can write")
    new = sub.add_parser("new", help="write a recipe by answering questions")
    new.add_argument("--interactive", "-i", action="store_true", help="ask step by step (the only mode)")
    new.add_argument("--dir", default=".", help="where to write the recipe (default: here)")

    info = sub.add_parser("info", help="version, store, ledger, providers and keys (names only), price registry")
    info.add_argument("recipe", nargs="?", help="whose store to show (default: acpbuild.toml here, else .acpbuild)")
    info.add_argument("--json", action="store_true")

    graph = sub.add_parser("graph", help="the step graph as Mermaid or Graphviz dot")
    graph.add_argument("recipe", nargs="?")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid", help="default: mermaid")

    schema = sub.add_parser("schema", help="a JSON Schema of the recipe format, for TOML editors")
    schema.add_argument("-o", "--output", metavar="FILE", help="write it here instead of printing it")
    return parser


def _usd(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in US dollars") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a budget cannot be negative")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``acpbuild`` command; returns the exit code."""
    from acpbuild.errors import AcpbuildError

    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        handler = globals().get(f"_cmd_{args.command}")
        if handler is None:  # a project command (init, import, info, ...): loaded only when asked for
            from acpbuild.cli import project as cli_project

            handler = getattr(cli_project, f"cmd_{args.command}")
        result: int = handler(args)
        return result
    except AcpbuildError as exc:
        print(f"acpbuild: error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            # a JSON reader (CI) gets one document whatever happened
            doc = {"success": False, "exit_code": exc.exit_code, "error": str(exc)}
            print(json.dumps(doc, indent=2))
        return exc.exit_code
    except BrokenPipeError:  # `acpbuild models | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("acpbuild: interrupted; finished generations are saved, run again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


class _Declined(Exception):
    """The user (or the lack of one) did not confirm the spend; carries the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _cmd_run(args: argparse.Namespace) -> int:
    recipe, targets = _split_targets(args.items)
    if not targets and not args.draft and _nothing_to_do(args, recipe):
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
            confirm=None if args.yes else lambda plan: _confirm(args, plan),
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
    return result.exit_code


def _nothing_to_do(args: argparse.Namespace, recipe: str | None) -> bool:
    """The no-op fast path: report and return True when nothing changed since the last complete run."""
    import os

    if os.environ.get("ACPBUILD_NO_FASTPATH"):
        return False
    from acpbuild.config.secrets import environment
    from acpbuild.engine import noop

    path = Path(recipe or "acpbuild.toml").resolve()
    found = noop.check(path, environment((path.parent, Path.cwd())))
    if found is None:
        return False
    name, steps = found
    if args.json:
        print(json.dumps(noop.report(name, steps), indent=2))
    else:
        print(f"ok: {len(steps)} uptodate; paid $0; nothing changed since the last run of {name}")
    return True


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
        display.plan_table(plan, sys.stdout)
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
        display.plan_table(plan, sys.stdout)
    print(
        f"acpbuild: refusing to spend up to ~${upto:.4f} without confirmation; run again with --yes:\n  {again}",
        file=sys.stderr,
    )
    raise _Declined(SpendNotConfirmed.exit_code)


def _cmd_plan(args: argparse.Namespace) -> int:
    from acpbuild.cli import display
    from acpbuild.engine import workflow

    recipe_path, targets = _split_targets(args.items)
    forecast = workflow.forecast(recipe_path, targets, draft=args.draft, budget=args.budget)
    if args.json:
        print(json.dumps(forecast.to_dict(), indent=2))
    else:
        display.plan_table(forecast, sys.stdout, detailed=args.detailed, title=args.command)
    return 0


_cmd_estimate = _cmd_plan


def _cmd_costs(args: argparse.Namespace) -> int:
    from acpbuild.cli import display
    from acpbuild.config.secrets import environment
    from acpbuild.money import spend
    from acpbuild.store import layout

    if args.store:
        store = Path(args.store).resolve()
    elif args.recipe or Path("acpbuild.toml").is_file():
        from acpbuild.engine.workflow import open_recipe

        store = open_recipe(args.recipe)[0].store_dir
    else:
        store = layout.store_root(environment((Path.cwd(),)))
    since = spend.parse_since(args.since) if args.since else None
    rows: list[spend.Row] = []
    if layout.has_ledger(store):  # reading costs never creates a ledger
        ledger = layout.open_ledger(store)
        try:
            rows = spend.report(ledger, since=since, by=args.by)
        finally:
            ledger.close()
    if args.json:
        doc = {
            "store": str(store),
            "by": args.by,
            "since": args.since,
            "rows": [r.to_dict() for r in rows],
            "totals": {
                "generations": sum(r.generations for r in rows),
                "estimated": round(sum(r.estimated for r in rows), 6),
                "cost": round(sum(r.cost for r in rows), 6),
                "restores": sum(r.restores for r in rows),
                "saved": round(sum(r.saved for r in rows), 6),
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        display.costs_table(rows, args.by, sys.stdout)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
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


def _cmd_clean(args: argparse.Namespace) -> int:
    from acpbuild.engine import workflow

    removed = workflow.clean(args.recipe, orphans=args.orphans)
    for path in removed:
        print(f"removed {path}")
    print(f"{len(removed)} outputs removed; the store still holds every generation")
    return 0


def _cmd_abandon(args: argparse.Namespace) -> int:
    from acpbuild.engine import workflow
    from acpbuild.errors import RecipeError

    recipe, targets = _split_targets(args.items)
    if not targets:
        raise RecipeError("name the steps whose kept jobs to give up", tip="acpbuild abandon [RECIPE] STEP...")
    given_up = workflow.abandon(recipe, targets)
    for step, requests in given_up.items():
        for request in requests:
            print(f"abandoned request {request} of {step}: it may still be billed; the next run submits anew")
    if not any(given_up.values()):
        print("nothing to abandon: no job is kept to resume for " + ", ".join(given_up))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
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
        print(f"{path or 'acpbuild.toml'}: ok ({len(recipe.steps)} steps)")
    return worst


def _cmd_doctor(args: argparse.Namespace) -> int:
    from acpbuild.cli import doctor
    from acpbuild.config.secrets import environment
    from acpbuild.store import layout

    env = environment((Path.cwd(),))
    store = Path(args.store).resolve() if args.store else layout.store_root(env)
    results = doctor.checks(env, store, ping=args.ping)
    for check in results:
        mark = "ok " if check.ok else ("-- " if not check.required else "FAIL")
        print(f"{mark:4} {check.name:<18} {check.detail}")
    return 0 if all(c.ok for c in results if c.required) else 1


def _cmd_models(args: argparse.Namespace) -> int:
    from acpbuild import money, providers
    from acpbuild.errors import RecipeError, did_you_mean
    from acpbuild.recipe.kinds import KINDS

    if args.provider and args.provider not in providers.NAMES:
        raise RecipeError(f"unknown provider {args.provider!r}", tip=did_you_mean(args.provider, providers.NAMES))
    if args.kind and args.kind not in KINDS:
        raise RecipeError(
            f"unknown kind {args.kind!r}", tip=did_you_mean(args.kind, KINDS) or "kinds: " + ", ".join(KINDS)
        )
    rows: list[dict[str, Any]] = []
    for name in providers.NAMES:
        if args.provider and name != args.provider:
            continue
        for model in providers.catalogue(name).values():
            kinds = [k for k in model.kinds if not args.kind or k == args.kind]
            if not kinds:
                continue
            price = money.price_of(name, model.name)
            rows.append(
                {
                    "provider": name,
                    "model": model.name,
                    "kinds": kinds,
                    "endpoints": {k: model.endpoints[k] for k in kinds},
                    "price": price.describe() if price else ("free" if name == "local" else None),
                    "price_source": f"{price.source} ({price.date})" if price else None,
                    "params": _model_params(model, kinds),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['provider']}/{row['model']}  [{', '.join(row['kinds'])}]  {row['price'] or 'no price'}")
        for param, spec in row["params"].items():
            extra = []
            if "choices" in spec:
                extra.append("one of " + ", ".join(map(str, spec["choices"])))
            if "choices_by_kind" in spec:
                extra.append(
                    "; ".join(
                        f"{kind}: one of {', '.join(map(str, choices))}" for kind, choices in spec["choices_by_kind"].items()
                    )
                )
            if "min" in spec or "max" in spec:
                extra.append(f"{spec.get('min', '')}..{spec.get('max', '')}")
            if "default" in spec:
                extra.append(f"default {spec['default']!r}")
            required = " (required)" if spec.get("required") else ""
            print(f"    {param}: {spec['type']}{required}" + (f"  {'; '.join(extra)}" if extra else ""))
    if not rows:
        print("no models match")
    return 0


def _model_params(model: Model, kinds: list[str]) -> dict[str, dict[str, Any]]:
    """Each parameter of ``model`` for ``kinds``; choices that differ by kind are listed per kind."""
    per_kind: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        for name, spec in model.params_for(kind).items():
            per_kind.setdefault(name, {})[kind] = spec
    params: dict[str, dict[str, Any]] = {}
    for name, specs in per_kind.items():
        spec = next(iter(specs.values()))
        choices = {kind: list(s.choices) for kind, s in specs.items() if s.choices}
        same = len({tuple(c) for c in choices.values()}) <= 1 and len(choices) in (0, len(specs))
        params[name] = {
            k: v
            for k, v in {
                "type": spec.type,
                "required": spec.required or None,
                "default": spec.default,
                "min": spec.min,
                "max": spec.max,
                "choices": next(iter(choices.values())) if choices and same else None,
                "choices_by_kind": choices if choices and not same else None,
            }.items()
            if v is not None
        }
    return params


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
