"""The ``acpbuild`` commands that set a project up or look at it: init, templates, new,
import, info, graph, schema, doctor and models. Like :mod:`acpbuild.cli`, which dispatches to them,
they are where printing happens.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acpbuild.words import counted

if TYPE_CHECKING:
    from acpbuild.provider import Model


def cmd_import(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from acpbuild.cli import importer
    from acpbuild.errors import RecipeError

    source = Path(args.pipeline)
    target = Path(args.output) if args.output else source.with_suffix(".toml")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the pipeline: {exc}", file=str(source)) from None
    if target.exists() and not args.force:
        raise RecipeError(f"{target} exists", tip="pass --force to overwrite it, or -o to write elsewhere")
    data, lines = importer.parse(text, str(source))
    blocker = next((p for p in (target.parent, *target.parent.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise RecipeError(f"{blocker} is a file, not a folder", tip="pass -o with a path in a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecipeError(
            f"cannot create the folder for {target}: {exc.strerror}", tip="pass -o with a path you can write to"
        ) from exc
    imported = importer.convert(
        data,
        source=str(source),
        lines=lines,
        source_dir=source.resolve().parent,
        recipe_dir=target.resolve().parent,
    )
    # validate beside the target (relative inputs resolve from there), then move into place
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".toml", dir=target.parent)
    except OSError as exc:
        raise RecipeError(f"cannot write {target}: {exc.strerror}", tip="pass -o with a path you can write to") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(imported.text)
        importer.check(imported, Path(tmp))
        os.replace(tmp, target)
    except OSError as exc:
        raise RecipeError(f"cannot write {target}: {exc.strerror}", tip="pass -o with a path you can write to") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for heading, notes in imported.groups():
        print(f"acpbuild: {heading}", file=sys.stderr)
        for note in notes:
            print(f"acpbuild: warning: {note}", file=sys.stderr)
    print(f"wrote {target} from {source}; check it with: acpbuild plan {target}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import textwrap

    from acpbuild.cli import info as gather
    from acpbuild.config.secrets import environment

    recipe_dir = Path(args.recipe).resolve().parent if args.recipe else Path.cwd()
    found = gather.gather(args.recipe, environment((recipe_dir, Path.cwd())), Path.cwd())
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
        return 0
    size = gather.human_size
    where = {
        "recipe": f"from {found.recipe}",
        "ACPBUILD_STORE": "from ACPBUILD_STORE",
        "default": "default: no acpbuild.toml here",
    }
    print(f"acpbuild {found.version}")
    config = "" if found.config_exists else " (not found: defaults apply)"
    print(f"config     {found.config or 'none (no HOME)'}{config}")
    print(f"store      {found.store}  ({where[found.store_from]})")
    print(f"  objects  {counted(found.blobs, 'blob')}, {size(found.objects_bytes)}")
    if found.shared_ledger:
        print(f"ledger     {found.shared_ledger}  (shared: the team's generations and claims)")
        print(f"  local    {found.ledger}  (this machine's outputs and file digests)")
    elif found.ledger_exists:
        print(f"ledger     {found.ledger}  {size(found.ledger_bytes)}, {counted(found.generations, 'generation')}")
    else:
        print(f"ledger     {found.ledger}  (not created yet: the first run makes it)")
    for line in gather.elsewhere(found.nearby, "info"):
        print(f"  {line}")
    if found.remote:
        print(f"remote     {found.remote}  (the shared store; the local store is its cache)")
    dates = f"dated {found.prices_oldest} to {found.prices_newest}" if found.prices_newest else "undated"
    print(f"prices     {counted(found.prices, 'entry', 'entries')}, {dates}")
    print("providers")
    for p in found.providers:
        if not p.paid:
            key = "no key needed"
        elif p.key_set_in:
            key = f"{p.key_set_in} is set"
        else:
            key = f"{' or '.join(p.key_vars)} not set"
        url = f"; endpoint {p.url_var}={p.url}" if p.url else ""
        origin = "" if p.origin == "built in" else f"  ({p.origin})"
        models = counted(len(p.models), "model")
        print(f"  {p.name:<11} {models:>9}  {key}{url}{origin}")
        for line in textwrap.wrap(", ".join(p.models), width=88, break_on_hyphens=False):
            print(f"              {line}")
    for line in found.broken_plugins:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from acpbuild.cli import diagram
    from acpbuild.engine.workflow import open_recipe

    recipe, _ = open_recipe(args.recipe)
    sys.stdout.write(diagram.render(recipe, args.format))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from acpbuild.errors import AcpbuildError
    from acpbuild.recipe.schema import recipe_schema

    text = json.dumps(recipe_schema(), indent=2) + "\n"
    if not args.output:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if not target.parent.is_dir():
        raise AcpbuildError(
            f"cannot write {target}: folder {target.parent} does not exist; create it or pick another path"
        )
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AcpbuildError(f"cannot write {target}: {exc.strerror}; pick a writable path") from exc
    print(
        f"wrote {target}; attach it to a recipe here (./acpbuild.toml) with a first line "
        f"'#:schema {_directive_path(target)}' (the path is relative to the recipe; see README)"
    )
    return 0


def _directive_path(target: Path) -> str:
    """``target`` as a ``#:schema`` line in a recipe in the current directory would name it."""
    import os

    try:
        relative = Path(os.path.relpath(target)).as_posix()
    except ValueError:  # on another drive: only an absolute URI reaches it
        return target.resolve().as_uri()
    return relative if relative.startswith("../") else "./" + relative



def cmd_init(args: argparse.Namespace) -> int:
    from acpbuild.cli import scaffold

    directory = Path(args.dir)
    for path, what in scaffold.init(directory, args.template, force=args.force):
        print(f"{path}: {what}")
    recipe = directory / scaffold.RECIPE_FILE
    where = "" if directory.resolve() == Path.cwd() else f"cd {args.dir} && "
    print(f"next: {where}acpbuild run    (template {args.template!r}, offline: no key needed)")
    print(f"      edit {recipe} to switch a step to a paid provider, and copy .env.example to .env")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from acpbuild.cli import scaffold

    found = scaffold.templates()
    width = max(len(t.name) for t in found)
    for tpl in found:
        data = f"  (+ {', '.join(tpl.files)})" if tpl.files else ""
        print(f"{tpl.name:<{width}}  {tpl.description}{data}")
    print("use one: acpbuild init [DIR] --template NAME")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    import shlex

    from acpbuild.cli import wizard
    from acpbuild.errors import RecipeError

    if not args.interactive:
        raise RecipeError(
            "acpbuild new asks questions: pass --interactive",
            tip="or start from a template: acpbuild init --template NAME (acpbuild templates lists them)",
        )

    def ask(question: str) -> str:
        try:
            return input(question)
        except EOFError:
            raise RecipeError(
                "no answer: standard input ended before the recipe was complete",
                tip="run acpbuild new --interactive in a terminal, or pipe one answer per line",
            ) from None

    directory = Path(args.dir)
    # a folder that does not exist yet is made when the recipe is written; a file in the way is an error
    blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise RecipeError(f"{blocker} is a file, not a directory", tip="pass --dir with a folder for the recipe")
    path = wizard.write(ask, print, directory)
    print(f"wrote {path}; build it with: acpbuild run {shlex.quote(str(path))}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from acpbuild.cli import doctor
    from acpbuild.cli.info import store_here
    from acpbuild.config.secrets import environment

    env = environment((Path.cwd(),))
    here = Path.cwd() / "acpbuild.toml"
    store = Path(args.store).resolve() if args.store else store_here(here if here.is_file() else None, env, Path.cwd())[0]
    results = doctor.checks(env, store, ping=args.ping)
    for check in results:
        mark = "ok " if check.ok else ("-- " if not check.required else "FAIL")
        print(f"{mark:4} {check.name:<18} {check.detail}")
    return 0 if all(c.ok for c in results if c.required) else 1


def cmd_models(args: argparse.Namespace) -> int:
    from acpbuild import money, providers
    from acpbuild.config.secrets import environment
    from acpbuild.errors import RecipeError, did_you_mean
    from acpbuild.recipe.kinds import KINDS

    env = environment((Path.cwd(),))
    for plugin in providers.broken(env):
        print(f"warning: {plugin.describe()}", file=sys.stderr)
    if args.provider and not providers.is_known(args.provider, env):
        raise RecipeError(f"unknown provider {args.provider!r}", tip=did_you_mean(args.provider, providers.names(env)))
    if args.kind and args.kind not in KINDS:
        raise RecipeError(
            f"unknown kind {args.kind!r}", tip=did_you_mean(args.kind, KINDS) or "kinds: " + ", ".join(KINDS)
        )
    rows: list[dict[str, Any]] = []
    for name in providers.names(env):
        if args.provider and name != args.provider:
            continue
        origin = providers.origin(name, env).describe()
        for model in providers.catalogue(name, env).values():
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
                    "origin": origin,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        origin = "" if row["origin"] == "built in" else f"  ({row['origin']})"
        print(f"{row['provider']}/{row['model']}  [{', '.join(row['kinds'])}]  {row['price'] or 'no price'}{origin}")
        by_kind: dict[str, dict[str, dict[str, Any]]] = row["params"]
        # kinds that take the same parameters share one list; a model whose kinds differ lists each
        shared: dict[str, list[str]] = {}
        for kind, params in by_kind.items():
            shared.setdefault(json.dumps(params, sort_keys=True, default=str), []).append(kind)
        for kinds in shared.values():
            indent = "    "
            if len(shared) > 1:
                print(f"  {', '.join(kinds)}:")
                indent = "      "
            for param, spec in by_kind[kinds[0]].items():
                print(indent + _param_line(param, spec))
    if not rows:
        print("no models match")
    return 0


def _param_line(name: str, spec: dict[str, Any]) -> str:
    """One parameter as ``acpbuild models`` lists it: type, required, choices, range, default."""
    extra = []
    if "choices" in spec:
        extra.append("one of " + ", ".join(map(str, spec["choices"])))
    if "min" in spec or "max" in spec:
        extra.append(f"{spec.get('min', '')}..{spec.get('max', '')}")
    if "default" in spec:
        extra.append(f"default {spec['default']!r}")
    required = " (required)" if spec.get("required") else ""
    return f"{name}: {spec['type']}{required}" + (f"  {'; '.join(extra)}" if extra else "")


def _model_params(model: Model, kinds: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The parameters ``model`` takes for each of ``kinds``: a step of one kind may need
    what another kind never takes (ffmpeg's mux needs ``video`` and ``audio``, its concat ``videos``)."""
    return {
        kind: {
            name: {
                k: v
                for k, v in {
                    "type": spec.type,
                    "required": spec.required or None,
                    "default": spec.default,
                    "min": spec.min,
                    "max": spec.max,
                    "choices": list(spec.choices) if spec.choices else None,
                }.items()
                if v is not None
            }
            for name, spec in model.params_for(kind).items()
        }
        for kind in kinds
    }
