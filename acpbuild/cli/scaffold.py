"""Starter projects: the recipe templates, and what ``acpbuild init`` writes.

The templates are the recipes in ``recipes/``, runnable in place; the package
reaches them through ``acpbuild/templates``, a symlink to that folder, which
the wheel turns into package data, so an installed acpbuild (not only a
checkout) can copy them. A template is ``NAME.toml`` plus any data files named
``NAME.*`` (the catalog's CSV). In place they write to ``../out/NAME``;
``init`` rewrites ``output_dir`` to ``out`` beside the new recipe, and
``.gitignore`` ignores it with the store and ``.env``: generated media stay out
of ``git status`` until a team chooses to commit them with the lockfile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli

from acpbuild.errors import RecipeError, did_you_mean
from acpbuild.store import layout

__all__ = ["RECIPE_FILE", "Template", "env_example", "init", "template", "templates"]

#: the order `acpbuild templates` lists them in: simplest first
NAMES: tuple[str, ...] = ("quickstart", "image", "video", "podcast", "social", "catalog")

RECIPE_FILE = "acpbuild.toml"
#: the output folder of a project ``init`` writes, beside its recipe
OUTPUT_DIR = "out"
_IGNORED = (f"{layout.DEFAULT_DIR}/", ".env", f"/{OUTPUT_DIR}/")
#: the line written above an entry, saying why it is there
_WHY = {
    f"/{OUTPUT_DIR}/": "# what acpbuild makes; to commit the outputs with acpbuild.lock, delete the next line",
}
_OUTPUT_DIR = re.compile(r'^output_dir\s*=.*$', re.MULTILINE)


@dataclass(frozen=True)
class Template:
    """A runnable starter recipe and the data files it reads."""

    name: str
    description: str
    recipe: str  # the TOML text, as shipped
    files: dict[str, str] = field(default_factory=dict)  # data file name -> text


def templates() -> list[Template]:
    """Every template, in the order they are listed."""
    return [template(name) for name in NAMES]


def template(name: str) -> Template:
    """The template called ``name``; RecipeError with the nearest name when there is none."""
    if name not in NAMES:
        tip = did_you_mean(name, NAMES)
        raise RecipeError(
            f"unknown template {name!r}",
            tip=(f"{tip} " if tip else "") + "templates: " + ", ".join(NAMES),
        )
    folder = resources.files("acpbuild") / "templates"
    recipe = (folder / f"{name}.toml").read_text(encoding="utf-8")
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.startswith(f"{name}.") and not entry.name.endswith(".toml")
    }
    description = tomli.loads(recipe).get("recipe", {}).get("description", "")
    return Template(name, description, recipe, files)


def env_example() -> str:
    """A ``.env.example``: every key variable, grouped by provider, with no values."""
    from acpbuild import providers
    from acpbuild.config.secrets import KEY_VARS

    lines = [
        "# API keys for acpbuild's paid providers. Copy this file to .env and fill in the",
        "# ones you use; the local provider needs none. Never commit .env.",
    ]
    listed: set[str] = set()
    for name in providers.names():
        cls = providers.provider_class(name)
        if not cls.key_vars:
            continue
        either = " (either one)" if len(cls.key_vars) > 1 else ""
        lines += ["", f"# {name}{either}"]
        lines += [f"{var}=" for var in cls.key_vars]
        # settings that are not keys, commented out: they are optional and change the route
        lines += [f"# {var}=    # {what}" for var, what in cls.setting_vars]
        listed.update(cls.key_vars)
    rest = [var for var in KEY_VARS if var not in listed]
    if rest:
        lines += ["", "# other"] + [f"{var}=" for var in rest]
    return "\n".join(lines) + "\n"


def init(directory: Path, name: str = "quickstart", *, force: bool = False) -> list[tuple[Path, str]]:
    """Write template ``name`` into ``directory`` as a ready project; return (path, what was done).

    Refuses (RecipeError) to overwrite an existing recipe or data file unless ``force``.
    ``.gitignore`` gets each missing entry appended once; ``.env.example`` is
    (re)written, since it holds no values.
    """
    chosen = template(name)
    directory = directory.resolve()
    blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise RecipeError(f"{blocker} is a file, not a directory", tip="name a directory for the project")
    writes = {RECIPE_FILE: _OUTPUT_DIR.sub(f'output_dir = "{OUTPUT_DIR}"', chosen.recipe, count=1), **chosen.files}
    if not force:
        taken = [n for n in writes if (directory / n).exists()]
        if taken:
            raise RecipeError(
                f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''} in {directory}",
                tip="pass --force to overwrite, or init another directory (acpbuild init DIR)",
            )
    for file_name in (*writes, ".gitignore", ".env.example"):
        if (directory / file_name).is_dir():
            raise RecipeError(f"{directory / file_name} is a directory", tip="move it aside, or init another directory")
    done: list[tuple[Path, str]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, text in writes.items():
            path = directory / file_name
            existed = path.exists()
            path.write_text(text, encoding="utf-8")
            done.append((path, "overwrote" if existed else "wrote"))
        done.append(_ignore(directory / ".gitignore"))
        example = directory / ".env.example"
        example.write_text(env_example(), encoding="utf-8")
        done.append((example, "wrote"))
    except OSError as exc:
        raise RecipeError(
            f"cannot write {exc.filename or directory}: {exc.strerror}",
            tip="pick a directory you can write to (acpbuild init DIR)",
        ) from exc
    return done


def _ignore(path: Path) -> tuple[Path, str]:
    """Append the entries .gitignore lacks, each once; say what happened."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip().strip("/") for line in text.splitlines()}
    missing = [entry for entry in _IGNORED if entry.strip("/") not in present]
    if not missing:
        return path, f"kept (already ignores {', '.join(_IGNORED)})"
    if text and not text.endswith("\n"):
        text += "\n"
    lines = [line for entry in missing for line in ((_WHY[entry], entry) if entry in _WHY else (entry,))]
    path.write_text(text + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path, ("appended " if text else "wrote ") + ", ".join(missing)
