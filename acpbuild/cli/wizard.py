"""``acpbuild new --interactive``: a recipe written by answering questions.

The questions are plain functions over two callables, ``ask`` (show a prompt,
return the answer) and ``say`` (show a line), so the CLI drives them with the
terminal and tests with scripted answers. Every answer is checked as it is
given, against the same catalogue and rules that load a recipe, and a wrong
one is asked again with the reason. The file written is loaded before the
wizard returns, so it is always a valid recipe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from acpbuild import providers
from acpbuild.errors import RecipeError, did_you_mean
from acpbuild.provider import FILE_TYPES, Model, Param
from acpbuild.recipe.kinds import KINDS, SUFFIXES, Media, media_of_suffix

__all__ = ["Ask", "Invalid", "Say", "StepAnswers", "interview", "parse_value", "render", "served_kinds", "write"]

Ask = Callable[[str], str]
Say = Callable[[str], None]

_REF = re.compile(r"\$\{([^}]*)\}")
_YES = ("y", "yes")
# Parameters a catalogue declares optional (another kind of the same model does
# without them) that these kinds cannot do without.
_NEEDED: dict[str, tuple[str, ...]] = {"text_to_image": ("prompt",), "text_to_video": ("prompt",)}
# Kinds that need at least one of these optional parameters.
_ONE_OF: dict[str, tuple[str, ...]] = {"subtitles": ("audio", "duration_s")}
_NO = ("n", "no", "")


class Invalid(ValueError):
    """An answer that cannot be used; its message says why and what would do."""


@dataclass
class StepAnswers:
    """One step as answered: what ``render`` turns into a ``[steps.NAME]`` table."""

    name: str
    kind: str
    provider: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    output: str = ""

    @property
    def media(self) -> Media:
        return KINDS[self.kind]


def served_kinds() -> list[str]:
    """The kinds at least one provider serves, in the order kinds.py lists them."""
    served = {k for name in providers.names() for m in providers.catalogue(name).values() for k in m.kinds}
    return [k for k in KINDS if k in served]


def _choose(ask: Ask, say: Say, question: str, check: Callable[[str], Any], default: str = "") -> Any:
    """Ask until ``check`` accepts the answer; an empty answer means ``default``."""
    prompt = f"{question} [{default}]: " if default else f"{question}: "
    while True:
        answer = ask(prompt).strip() or default
        try:
            return check(answer)
        except Invalid as exc:
            say(f"  ! {exc}")


def _one_of(answer: str, options: list[str], what: str) -> str:
    if answer in options:
        return answer
    if not answer:
        raise Invalid(f"pick a {what}: {', '.join(options)}")
    tip = did_you_mean(answer, options)
    raise Invalid(f"unknown {what} {answer!r}; " + (f"{tip} " if tip else "") + f"choose one of {', '.join(options)}")


def _refs_ok(text: str, earlier: dict[str, Media], want: tuple[Media, ...] | None) -> None:
    """Every ``${...}`` in ``text`` must name an earlier step making one of ``want`` (None: text)."""
    for ref in _REF.findall(text.replace("$${", "")):
        target = ref.removeprefix("steps.")
        if not ref.startswith("steps.") or target not in earlier:
            steps = ", ".join(f"${{steps.{n}}}" for n in earlier) or "none yet"
            raise Invalid(
                f"'${{{ref}}}' is not an earlier step's output (earlier steps: {steps});"
                " write $${ for a literal ${"
            )
        media = earlier[target]
        if want is None and media != "text":
            raise Invalid(f"step {target!r} makes {media}, which cannot be put into text")
        if want is not None and media not in want:
            raise Invalid(f"step {target!r} makes {media}, but this takes {' or '.join(want)}")


def _file_value(text: str, spec_type: str, earlier: dict[str, Media], root: Path) -> str:
    want: tuple[Media, ...] = (
        ("image", "audio", "video", "subtitles")
        if spec_type in ("file", "files")
        else (spec_type,)  # type: ignore[assignment]
    )
    if text.startswith("${"):
        if not re.fullmatch(r"\$\{steps\.[^}]+\}", text):
            raise Invalid("give one earlier step as ${steps.NAME}, or a file path")
        _refs_ok(text, earlier, want)
        return text
    if not text:
        raise Invalid("give a file path or ${steps.NAME}")
    if not (root / text).is_file():
        raise Invalid(f"no file {text!r} in {root}; give an existing file or ${{steps.NAME}}")
    return text


def parse_value(text: str, spec: Param, earlier: dict[str, Media], root: Path) -> Any:
    """An answer as the parameter's type, checked; Invalid says what is wrong."""
    if spec.type in FILE_TYPES:
        return _file_value(text, spec.type, earlier, root)
    if spec.type == "files":
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise Invalid("give one or more files or ${steps.NAME}, separated by commas")
        return [_file_value(t, "files", earlier, root) for t in items]
    value: Any = text
    try:
        if spec.type == "int":
            value = int(text)
        elif spec.type == "float":
            value = float(text)
        elif spec.type == "bool":
            if text.lower() not in ("y", "yes", "true", "n", "no", "false"):
                raise Invalid("answer yes or no")
            value = text.lower() in ("y", "yes", "true")
        elif spec.type == "list":
            value = json.loads(text)
            tomlkit.item(value)  # refuses what TOML cannot hold (null) now, not when the recipe is written
    except (ValueError, json.JSONDecodeError):
        raise Invalid(f"{text!r} is not a valid {spec.type}") from None
    if isinstance(value, str):
        if not value:
            raise Invalid("give a value")
        _refs_ok(value, earlier, None)
    problem = spec.check(value)
    if problem:
        raise Invalid(problem)
    return value


def _ask_step(ask: Ask, say: Say, steps: list[StepAnswers], root: Path) -> StepAnswers:
    from acpbuild.money import price_of

    kinds = served_kinds()
    say("Kinds: " + ", ".join(kinds))
    kind = _choose(ask, say, "Kind of step", lambda a: _one_of(a, kinds, "kind"))

    taken = {s.name for s in steps}
    base = {"text": "script", "text_to_image": "image", "text_to_speech": "voice"}.get(kind, kind)
    default_name = next(n for n in (base, *(f"{base}{i}" for i in range(2, 1000))) if n not in taken)

    def check_name(answer: str) -> str:
        from acpbuild.recipe import name_problem

        problem = name_problem(answer) if answer else "cannot be empty"
        if problem:
            raise Invalid(f"a step name {problem}; use letters, digits, '_', '-' and '.'")
        if answer in taken:
            raise Invalid(f"there is already a step {answer!r}")
        return answer

    name = _choose(ask, say, "Step name", check_name, default_name)

    serving = [p for p in providers.names() if any(kind in m.kinds for m in providers.catalogue(p).values())]
    for p in serving:
        cls = providers.provider_class(p)
        say(f"  {p}: " + ("free, offline" if not cls.paid else "paid, needs " + " or ".join(cls.key_vars)))
    provider = _choose(
        ask, say, "Provider", lambda a: _one_of(a, serving, f"provider for {kind}"), "local" if "local" in serving else serving[0]
    )

    models: dict[str, Model] = {m.name: m for m in providers.catalogue(provider).values() if kind in m.kinds}
    for m in models.values():
        price = price_of(provider, m.name)
        cost = price.describe() if price else ("free" if provider == "local" else "no price")
        say(f"  {m.name}: {cost}" + (f"  {m.description}" if m.description else ""))
    model = models[_choose(ask, say, "Model", lambda a: _one_of(a, list(models), "model"), next(iter(models)))]

    earlier = {s.name: s.media for s in steps}
    params: dict[str, Any] = {}
    accepted = model.params_for(kind)
    for pname, spec in accepted.items():
        if spec.required or pname in _NEEDED.get(kind, ()):
            say(f"  {pname}: {spec.describe()}")
            if spec.type in FILE_TYPES or spec.type == "files":
                fitting = [n for n, m in earlier.items() if m != "text"]
                if fitting:
                    say("    earlier outputs: " + ", ".join(f"${{steps.{n}}}" for n in fitting))
            params[pname] = _choose(
                ask, say, pname, lambda a, s=spec: parse_value(a, s, earlier, root)  # type: ignore[misc]
            )
    optional = [p for p in accepted if p not in params]
    if optional:
        say("  optional: " + ", ".join(optional))

    def check_extra(answer: str) -> tuple[str, Any] | None:
        if not answer:
            return None
        key, sep, raw = answer.partition("=")
        key = key.strip()
        if not sep:
            raise Invalid("write name=value, or nothing to go on")
        if key not in accepted:
            tip = did_you_mean(key, accepted)
            raise Invalid(f"{model.name} takes no parameter {key!r}" + (f"; {tip}" if tip else ""))
        try:
            return key, parse_value(raw.strip(), accepted[key], earlier, root)
        except Invalid as exc:
            raise Invalid(f"{key}: {exc}") from None

    while optional:
        extra = _choose(ask, say, "Another parameter as name=value (empty to go on)", check_extra)
        if extra is not None:
            params[extra[0]] = extra[1]
            continue
        either = _ONE_OF.get(kind, ())
        if not either or any(p in params for p in either):
            break
        say(f"  ! {kind} needs {' or '.join(either)}: set one as name=value")

    media = KINDS[kind]

    def check_output(answer: str) -> str:
        path = Path(answer)
        if path.is_absolute() or ".." in path.parts or not answer:
            raise Invalid("give a relative path inside the output folder, without '..'")
        if "$" in answer:
            raise Invalid("an output name cannot hold '$': it would read as a reference")
        if media_of_suffix(path.suffix) != media:
            raise Invalid(f"{kind} makes {media}: end the file name with {' or '.join(SUFFIXES[media])}")
        if answer in {s.output for s in steps}:
            raise Invalid("another step already writes that file")
        return answer

    output = _choose(ask, say, "Output file", check_output, f"{name}{SUFFIXES[media][0]}")
    return StepAnswers(name, kind, provider, model.name, params, output)


def _yes_no(answer: str) -> bool:
    if answer.lower() in _YES:
        return True
    if answer.lower() in _NO:
        return False
    raise Invalid("answer y or n")


def interview(ask: Ask, say: Say, directory: Path) -> tuple[Path, list[StepAnswers]]:
    """Ask for steps, then a file name in ``directory``; return where to write and the steps."""
    say("A new recipe, step by step. Press Enter to take the [default].")
    steps: list[StepAnswers] = []
    while True:
        steps.append(_ask_step(ask, say, steps, directory))
        if not _choose(ask, say, "Add another step? (y/N)", _yes_no, "n"):
            break

    def check_file(answer: str) -> Path:
        if not answer.endswith(".toml"):
            raise Invalid("a recipe file name ends with .toml")
        if Path(answer).name != answer:
            # the recipe's relative paths (inputs, outputs) are answered from --dir
            raise Invalid(f"give a file name, without folders: the recipe goes in {directory}")
        path = directory / answer
        if path.exists():
            raise Invalid(f"{answer} already exists; choose another name")
        return path

    return _choose(ask, say, "Recipe file", check_file, "acpbuild.toml"), steps



def render(steps: list[StepAnswers], name: str) -> str:
    """The recipe's TOML text."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Written by `acpbuild new --interactive`; `acpbuild run` builds it."))
    doc.add(tomlkit.nl())
    recipe = tomlkit.table()
    recipe.update({"name": name, "output_dir": "out"})
    doc.add("recipe", recipe)
    tables = tomlkit.table(is_super_table=True)
    for step in steps:
        table = tomlkit.table()
        table.add("kind", step.kind)
        if step.provider != "local":
            table.add("provider", step.provider)
        table.add("model", step.model)
        table.update(step.params)
        table.add("output", step.output)
        tables.add(step.name, table)
    doc.add("steps", tables)
    return doc.as_string()


def write(ask: Ask, say: Say, directory: Path) -> Path:
    """Run the interview, write the recipe, and check that it loads; return its path.

    ``directory`` is created (with its parents) when the recipe is written, as
    ``git init`` or ``acpbuild init`` create theirs; never before the interview
    is complete, so an interview cut short leaves nothing behind.
    """
    from acpbuild.recipe import load_recipe

    path, steps = interview(ask, say, directory)
    name = path.stem if path.name != "acpbuild.toml" else (directory.resolve().name or "recipe")
    made = [folder for folder in (directory, *directory.parents) if not folder.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(render(steps, name), encoding="utf-8")
    except OSError as exc:
        _remove(made)
        raise RecipeError(
            f"cannot write {exc.filename or path}: {exc.strerror}", tip="pass --dir with a folder you can write to"
        ) from exc
    try:
        load_recipe(path, env={})
    except Exception:
        path.unlink(missing_ok=True)  # never leave a recipe that does not load
        _remove(made)
        raise
    return path


def _remove(folders: list[Path]) -> None:
    """Remove the folders this command made, deepest first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
