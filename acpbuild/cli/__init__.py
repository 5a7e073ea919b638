"""The ``acpbuild`` command: argument parsing, exit codes, and all printing.

The parser and the entry point live here; the commands that build and spend
are in :mod:`acpbuild.cli.build`, those that set a project up or look at it
in :mod:`acpbuild.cli.project`, each imported only when one of its commands runs.

Exit codes: 0 success, 1 a step failed, 2 bad recipe or usage, 3 refused to
spend, 130 interrupted (Ctrl-C, SIGINT), 143 stopped by SIGTERM (state is saved;
running again resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from acpbuild.version import __version__

EXIT_INTERRUPTED = 130


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
    run.add_argument(
        "--frozen", action="store_true", help="restore and run free steps, but never pay (CI): exit 3 naming what would be bought"
    )
    run.add_argument(
        "--shard", type=_shard, metavar="I/N", help="build the I-th of N slices of the foreach items (a CI matrix)"
    )
    run.add_argument("--report", action="store_true", help="then write the HTML report (report/ beside the recipe)")
    run.add_argument("--report-dir", metavar="DIR", help="write the report here instead (implies --report)")

    report = sub.add_parser("report", help="write a static HTML gallery of every output, its prompt, status and cost")
    report.add_argument("recipe", nargs="?", help="the recipe (default acpbuild.toml)")
    report.add_argument("-o", "--out", metavar="DIR", help="where to write it (default: report/ beside the recipe)")
    report.add_argument(
        "--history", action="store_true", help="also show each step's earlier generations the store still holds"
    )
    report.add_argument("--json", action="store_true", help="print what the report shows as JSON")

    check = sub.add_parser(
        "check", help="CI gate: exit 0 when every step is up to date or restorable and the lockfile matches"
    )
    check.add_argument("recipe", nargs="?", help="the recipe (default acpbuild.toml)")
    check.add_argument("--json", action="store_true")

    plan = sub.add_parser("plan", help="show what a run would do, why, and what it would pay")
    estimate = sub.add_parser("estimate", help="what a run would pay now, step by step")
    for cmd in (plan, estimate):
        cmd.add_argument("items", nargs="*", metavar="[RECIPE] [STEP]")
        cmd.add_argument("--json", action="store_true")
        cmd.add_argument("--draft", action="store_true", help="plan a --draft run")
        cmd.add_argument("--detailed", action="store_true", help="show how each estimate is computed")
        cmd.add_argument("--budget", type=_usd, metavar="USD", help="check the plan against this budget")
        cmd.add_argument("--shard", type=_shard, metavar="I/N", help="plan the I-th of N slices of the foreach items")

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
    imp.add_argument("pipeline", metavar="PIPELINE", help="the older tool's pipeline file: .yaml, .yml or .json")
    imp.add_argument("-o", "--output", help="the recipe to write (default: the pipeline's name with .toml, beside it)")
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


def _shard(text: str) -> tuple[int, int]:
    index, slash, count = text.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard: write I/N, e.g. 2/4")
    found = int(index), int(count)
    if not 1 <= found[0] <= found[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: a shard is I/N with 1 <= I <= N")
    return found


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
        # each command's module is loaded only when one of its commands runs
        from acpbuild.cli import build

        handler = getattr(build, f"cmd_{args.command}", None)
        if handler is None:
            from acpbuild.cli import project

            handler = getattr(project, f"cmd_{args.command}")
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
    except KeyboardInterrupt as exc:
        return _interrupted(exc, json_doc=getattr(args, "json", False))


def _interrupted(exc: KeyboardInterrupt, *, json_doc: bool) -> int:
    """Finish stopping a run (its children killed, its temporary files deleted) and say what it kept."""
    from acpbuild import process

    process.stop()  # again: a file a step made while the run unwound goes too
    process.reset()  # a caller of main() may run again in this process
    if isinstance(exc, process.Interrupted):
        import signal

        code, how = exc.exit_code, f"stopped by {signal.Signals(exc.signum).name}"
    else:
        code, how = EXIT_INTERRUPTED, "interrupted"
    kept = getattr(exc, "kept", "") or "finished generations are saved"
    message = f"acpbuild: {how}; {kept}; temporary files removed; run again to resume"
    print(message, file=sys.stderr)
    if json_doc:
        print(json.dumps({"success": False, "exit_code": code, "error": message.removeprefix("acpbuild: ")}, indent=2))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
