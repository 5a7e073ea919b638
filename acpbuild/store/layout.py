"""Where a store is and what its files are called: the one module that knows.

A store is a folder: ``ACPBUILD_STORE`` when set, else a recipe's
``[recipe] store`` (relative to the recipe), else ``.acpbuild`` beside the
recipe; with no recipe, ``.acpbuild`` in the current directory. It holds::

    ledger.sqlite3           the SQLite ledger (and SQLite's own -wal and -shm files)
    objects/ab/cdef...       the local blob store, one file per digest
    tmp/                     staging files that providers write before they enter objects/
    doit-<recipe>.sqlite3    doit's dependency file: a fast path only, the ledger is the truth
    noop-<recipe>.json       the no-op fast path's manifest
    noop-<recipe>.items.json its foreach items and steps, for a run that builds only the changed ones
    last-run-<recipe>.json   what the recipe's last run did to each step (``acpbuild report`` reads it)

A team shares more than a folder: ``ACPBUILD_LEDGER`` (or ``ledger`` in the
user's config file) names a PostgreSQL ledger, and ``ACPBUILD_REMOTE`` (or
``remote``) an S3 bucket that holds the blobs. The local store stays in front
of the remote as its cache, and the local SQLite file keeps what only this
machine knows: which output file holds what, and its files' digests.

:func:`open_ledger` and :func:`open_blobs` are the only places a backend is
constructed. The no-op fast path imports this module before pydantic or doit,
so it imports nothing heavy itself; backends are imported when opened.
"""

from __future__ import annotations

import os
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
#: the environment variable naming a shared ledger (``postgresql://…``)
LEDGER_VAR: Final = "ACPBUILD_LEDGER"
#: the environment variable naming a shared store (``s3://bucket/prefix``)
REMOTE_VAR: Final = "ACPBUILD_REMOTE"

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


def noop_items(root: Path, recipe_name: str) -> Path:
    """What the incremental path compares a recipe's foreach items by (see :mod:`acpbuild.engine.incremental`)."""
    return root / f"noop-{recipe_name}.items.json"


def noop_answered(root: Path, recipe_name: str) -> Path:
    """Which manifest the kept last run of a recipe answered (see :func:`acpbuild.engine.noop.answer`)."""
    return root / f"noop-{recipe_name}.answered"


def last_run(root: Path, recipe_name: str) -> Path:
    """The result of a recipe's last run (``RunResult.to_dict()`` as JSON)."""
    return root / f"last-run-{recipe_name}.json"


def _setting(env: Mapping[str, str] | None, var: str, key: str) -> str | None:
    env = os.environ if env is None else env
    if env.get(var):
        return env[var]
    from acpbuild.config.user import load_config

    found: str | None = getattr(load_config(env), key)
    return found


def ledger_url(env: Mapping[str, str] | None = None) -> str | None:
    """The shared ledger's URL: ``ACPBUILD_LEDGER``, else the user's config file's ``ledger``;
    None: each store has its own SQLite ledger. ``env`` defaults to the process environment."""
    return _setting(env, LEDGER_VAR, "ledger")


def remote_url(env: Mapping[str, str] | None = None) -> str | None:
    """The shared store's URL: ``ACPBUILD_REMOTE``, else the user's config file's ``remote``;
    None: the local store alone. ``env`` defaults to the process environment."""
    return _setting(env, REMOTE_VAR, "remote")


def open_ledger(root: Path, env: Mapping[str, str] | None = None) -> Ledger:
    """The ledger of the store at ``root``, created if need be; the caller closes it.

    With a shared ledger configured (:func:`ledger_url`), generations and claims
    live there, and this machine's output records and file digests in the
    store's SQLite file. A shared ledger that cannot be reached is a
    :class:`~acpbuild.errors.StoreUnreachable`.
    """
    from acpbuild.store.sqlite import SqliteLedger

    local = SqliteLedger(ledger_path(root))
    url = ledger_url(env)
    if url is None:
        return local
    from acpbuild.store.postgres import PostgresLedger

    try:
        return PostgresLedger(url, local=local)
    except BaseException:
        local.close()
        raise


def open_blobs(root: Path, link: LinkMode = "copy", env: Mapping[str, str] | None = None) -> BlobStore:
    """The blob store at ``root``, created if need be; outputs are made from it by ``link``.

    With a remote configured (:func:`remote_url`), the local store is its cache.
    A remote that cannot be reached is a :class:`~acpbuild.errors.StoreUnreachable`.
    """
    from acpbuild.store.local import LocalBlobStore

    local = LocalBlobStore(objects_dir(root), tmp_dir(root), link)
    url = remote_url(env)
    if url is None:
        return local
    from acpbuild.store.s3 import S3BlobStore

    return S3BlobStore(url, local=local, env=os.environ if env is None else env)
