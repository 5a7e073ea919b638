"""Where a store is and what its files are called: the one module that knows.

A store is a folder: ``ACPBUILD_STORE`` when set, else a recipe's
``[recipe] store`` (relative to the recipe), else ``.acpbuild`` beside the
recipe; with no recipe, ``.acpbuild`` in the current directory. It holds::

    ledger.sqlite3           the SQLite ledger (and SQLite's own -wal and -shm files)
    objects/ab/cdef...       the local blob store, one file per digest
    tmp/                     staging files that providers write before they enter objects/
    doit-<recipe>.sqlite3    doit's dependency file: a fast path only, the ledger is the truth
    noop-<recipe>.json       the no-op fast path's manifest

:func:`open_ledger` and :func:`open_blobs` are the only places a backend is
constructed. The no-op fast path imports this module before pydantic or doit,
so it imports nothing heavy itself; backends are imported when opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from acpbuild.store.blobs import BlobStore, LinkMode
    from acpbuild.store.ledger import Ledger

#: the environment variable that puts the store somewhere else, whatever the recipe says
STORE_VAR: Final = "ACPBUILD_STORE"
#: the store's folder name when neither the environment nor the recipe names one
DEFAULT_DIR: Final = ".acpbuild"

_LEDGER = "ledger.sqlite3"
_OBJECTS = "objects"
_TMP = "tmp"

#: where a store's location came from
Source = Literal["ACPBUILD_STORE", "recipe", "default"]


def locate(
    env: Mapping[str, str],
    recipe_dir: Path | None = None,
    setting: str | None = None,
    *,
    cwd: Path | None = None,
) -> tuple[Path, Source]:
    """The store's absolute path, and where that came from.

    ``recipe_dir`` is the folder holding the recipe and ``setting`` its
    ``[recipe] store``; without a recipe the store is looked for in ``cwd``
    (default: the current directory). An empty setting or variable counts as unset.
    """
    if env.get(STORE_VAR):
        return Path(env[STORE_VAR]).resolve(), STORE_VAR
    if recipe_dir is not None:
        return (recipe_dir / (setting or DEFAULT_DIR)).resolve(), "recipe"
    return ((cwd or Path.cwd()) / DEFAULT_DIR).resolve(), "default"


def store_root(
    env: Mapping[str, str],
    recipe_dir: Path | None = None,
    setting: str | None = None,
    *,
    cwd: Path | None = None,
) -> Path:
    """The store's absolute path, as :func:`locate` finds it."""
    return locate(env, recipe_dir, setting, cwd=cwd)[0]


def ledger_path(root: Path) -> Path:
    """The SQLite ledger's file in the store at ``root``."""
    return root / _LEDGER


def has_ledger(root: Path) -> bool:
    """Whether the store at ``root`` has a ledger yet; commands that only read check this
    first, so that they never create one."""
    return ledger_path(root).is_file()


def objects_dir(root: Path) -> Path:
    """The local blob store's folder of blobs."""
    return root / _OBJECTS


def tmp_dir(root: Path) -> Path:
    """The folder of staging files, on the same file system as :func:`objects_dir`."""
    return root / _TMP


def dep_file(root: Path, recipe_name: str) -> Path:
    """doit's dependency file (sqlite3 backend) for one recipe."""
    return root / f"doit-{recipe_name}.sqlite3"


def noop_manifest(root: Path, recipe_name: str) -> Path:
    """The no-op fast path's manifest for one recipe."""
    return root / f"noop-{recipe_name}.json"


def open_ledger(root: Path) -> Ledger:
    """The ledger of the store at ``root``, created if need be; the caller closes it."""
    from acpbuild.store.sqlite import SqliteLedger

    return SqliteLedger(ledger_path(root))


def open_blobs(root: Path, link: LinkMode = "copy") -> BlobStore:
    """The blob store at ``root``, created if need be; outputs are made from it by ``link``."""
    from acpbuild.store.local import LocalBlobStore

    return LocalBlobStore(objects_dir(root), tmp_dir(root), link)
