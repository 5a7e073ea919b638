"""A doit project that builds recipe.toml's steps beside its own tasks.

    doit list      media (one sub-task per recipe step), publish, checksums
    doit           builds everything; run it again and every task is up to date
    doit publish   builds the final video, and only what it needs, then copies it

``publish`` and ``checksums`` are plain doit tasks: they name the recipe's
outputs as ``file_dep``, so doit runs the steps that make them first, and runs
them again only when those files change.
"""

import hashlib
import shutil
from pathlib import Path

from acpbuild import load_recipe, recipe_tasks

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipe.toml"
DIST = HERE / "dist"

# doit's own state beside acpbuild's store, out of the way of git
(HERE / ".acpbuild").mkdir(exist_ok=True)
DOIT_CONFIG = {
    "dep_file": str(HERE / ".acpbuild" / "doit-dodo.sqlite3"),
    "backend": "sqlite3",
    # `doit list` shows each recipe step (a sub-task) beside the tasks below
    "subtasks": True,
}

# where each step writes, read from the recipe rather than repeated here
OUTPUTS = {name: step.output_path for name, step in load_recipe(RECIPE).steps.items()}


def task_media():
    """The recipe's steps, built by doit with acpbuild's keys, store and ledger."""
    yield from recipe_tasks(RECIPE)


def task_publish():
    """Copy the final video into dist/."""
    final = OUTPUTS["final"]
    target = DIST / final.name
    return {
        "actions": [(publish, [final, target])],
        "file_dep": [final],
        "targets": [target],
        "clean": True,
    }


def task_checksums():
    """Write dist/SHA256SUMS: a digest of every file the recipe makes."""
    files = sorted(OUTPUTS.values())
    target = DIST / "SHA256SUMS"
    return {
        "actions": [(checksums, [files, target])],
        "file_dep": files,
        "targets": [target],
        "clean": True,
    }


def publish(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def checksums(files: list[Path], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files]
    target.write_text("".join(lines), encoding="utf-8")
