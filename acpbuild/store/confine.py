"""Writing and removing outputs without leaving ``output_dir``, whatever symlinks it holds.

The recipe loader checks output paths as written; this checks them on the file
system at the moment of writing, because a folder inside ``output_dir`` may be a
symlink (cloned with the project, or planted between two runs) to anywhere. A
symlink is followed only when its real target stays inside the real
``output_dir``. Folders are created one at a time, each checked after it exists,
and the destination's folder is checked again just before the rename that
writes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from acpbuild.errors import StoreError


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _refuse(dest: Path, root: Path, link: Path, target: Path) -> StoreError:
    return StoreError(
        f"refusing to write {dest}: {link} leads to {target}, outside the output folder {root} "
        "(a symlink there points out of it); remove the symlink"
    )


def check_inside(dest: Path, root: Path) -> None:
    """Raise :class:`StoreError` unless the real folder of ``dest`` is inside the real ``root``."""
    if _plainly_inside(dest.parent, root):
        return
    real_root = _real(root)
    if real_root != root:
        # output_dir itself (or a folder above it) became a symlink since the recipe was loaded
        raise _refuse(dest, root, root, real_root)
    real_parent = _real(dest.parent)
    if not real_parent.is_relative_to(real_root):
        raise _refuse(dest, root, _culprit(dest.parent, root), real_parent)


def _plainly_inside(folder: Path, root: Path) -> bool:
    """Whether ``folder`` lies below ``root`` (a real path) with no symlink on the way: its
    real path is itself. One walk of the path; the common case, checked first."""
    return folder.is_relative_to(root) and os.path.realpath(folder) == str(folder)


def check_read(path: Path, root: Path) -> None:
    """Raise :class:`StoreError` unless the file ``path`` really is inside the real ``root``.

    For an output read back to be copied elsewhere (a group's chosen member): a
    symlink planted in its place must not carry a file from outside into the store.
    """
    real = _real(path)
    if not real.is_relative_to(_real(root)):
        raise StoreError(
            f"refusing to read {path}: it leads to {real}, outside the output folder {root}; remove the symlink"
        )


def _culprit(folder: Path, root: Path) -> Path:
    """The first folder from ``root`` down to ``folder`` whose real path leaves ``root``."""
    real_root = _real(root)
    here = root
    for part in folder.relative_to(root).parts if folder.is_relative_to(root) else ():
        here = here / part
        if not _real(here).is_relative_to(real_root):
            return here
    return folder


def make_parents(dest: Path, root: Path) -> None:
    """Create the folders from ``root`` down to ``dest``'s, refusing any that leads outside ``root``.

    ``root`` is ``output_dir`` as the recipe resolved it (a real path); ``dest`` a path below it.
    """
    if not dest.is_relative_to(root) or dest == root:
        raise StoreError(f"refusing to write {dest}: it is not inside the output folder {root}")
    if os.path.isdir(dest.parent) and _plainly_inside(dest.parent, root):
        return  # made already, and no symlink on the way
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {root}: {exc.strerror}") from exc
    real_root = _real(root)
    if real_root != root:
        raise _refuse(dest, root, root, real_root)
    here = root
    for part in dest.parent.relative_to(root).parts:
        here = here / part
        try:
            os.mkdir(here)  # never through a symlink named `here`: that is "exists"
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create {here}: {exc.strerror}") from exc
        real = _real(here)
        if not real.is_relative_to(real_root):
            raise _refuse(dest, root, here, real)
        if not real.is_dir():
            raise StoreError(f"cannot write {dest}: {here} is not a folder")


def remove(path: Path, root: Path) -> bool:
    """Remove the output at ``path`` (a symlink itself, never its target); False if there was none.

    Refused, as writing is, when a folder on the way leads outside ``root``.
    """
    if not os.path.lexists(path):
        return False
    check_inside(path, root)
    path.unlink()
    return True
