"""Where a recipe may write: ``output_dir`` inside the project, each output inside ``output_dir``.

The project is the recipe's folder, or the root of the git work tree it sits in
(the shipped ``recipes/`` write to ``../out``); the user's config file may add
other roots (``output_roots``). These are checks on the recipe as written, made
when it loads; the store checks again, on the real file system, when it writes
(:mod:`acpbuild.store.confine`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from acpbuild.recipe.file import Where
from acpbuild.recipe.kinds import SUFFIXES, Media, media_of_suffix


def work_tree_root(folder: Path) -> Path | None:
    """The root of the git work tree ``folder`` is in: the nearest folder up holding ``.git``.

    A ``.git`` file counts too: a linked worktree's (or a submodule's) points elsewhere.
    """
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return None


def output_dir(
    written: str,
    root: Path,
    where: Where,
    other_roots: Callable[[], Sequence[Path]],
) -> Path:
    """The real path of ``output_dir`` as ``written`` in the recipe at ``root`` (a real path).

    It must lie inside the recipe's folder, its git work tree, or one of
    ``other_roots()`` (the user's ``output_roots``, read only when needed);
    symlinks are followed, so a link inside the project to a folder outside it
    does not pass.
    """
    at = ("recipe", "output_dir")
    if not written or "\0" in written:
        raise where.error(f"output_dir {written!r} is not a folder path", at, 'e.g. output_dir = "out"')
    try:
        real = Path(os.path.realpath(root / written))
    except (OSError, ValueError) as exc:
        raise where.error(f"output_dir {written!r} cannot be resolved: {exc}", at) from None
    project = [root]
    tree = work_tree_root(root)
    if tree is not None:
        project.append(Path(os.path.realpath(tree)))
    if any(real.is_relative_to(p) for p in project):
        return real
    configured = [Path(os.path.realpath(r)) for r in other_roots()]
    if any(real.is_relative_to(r) for r in configured):
        return real
    inside = "the recipe's folder" + (" or its git work tree" if tree is not None else "")
    via = "" if Path(os.path.normpath(root / written)) == real else f" (through a symlink, it is {real})"
    raise where.error(
        f"output_dir {written!r} is outside the project{via}",
        at,
        f"keep it inside {inside} ({project[-1]}), or list the folder in output_roots "
        "in your config file (acpbuild info shows where it is)",
    )


def output_path(
    output: str,
    output_dir: Path,
    media: Media,
    at: tuple[str, ...],
    where: Where,
    what: str,
    item: str | None = None,
) -> Path:
    """The path of an output as written (after interpolation): relative, below ``output_dir``."""
    said = f"foreach item {item!r}: output {output!r}" if item is not None else f"output {output!r}"
    if not output or "\0" in output or Path(output).is_absolute():
        raise where.error(f"{said} must be a relative path inside output_dir", at, f"output_dir is {output_dir}")
    # lexical: output_dir is already resolved, and a syscall per output adds up over 10,000 items;
    # the store checks the real path when it writes
    path = Path(os.path.normpath(output_dir / output))
    if not path.is_relative_to(output_dir) or path == output_dir:
        raise where.error(f"{said} escapes output_dir", at, f"keep outputs inside {output_dir}")
    if ".." in Path(output).parts:
        raise where.error(f"{said} has a '..' part", at, "write the path without '..'")
    if media_of_suffix(path.suffix) != media:
        raise where.error(
            f"{said} does not fit {what}, which makes {media}",
            at,
            "use a suffix among " + ", ".join(SUFFIXES[media]),
        )
    return path
