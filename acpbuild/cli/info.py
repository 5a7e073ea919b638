"""`acpbuild info`: what this installation and this directory hold, as data.

Gathers the version, where the store and ledger are (and how big), each
provider's catalogue size and whether its key variable is set (the name only,
never the value), the price registry's dates and the config file's path.
Nothing here prints, and nothing is created: a store or ledger that does not
exist yet is reported as such.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from acpbuild import money, providers
from acpbuild.config.secrets import masked_url, redact
from acpbuild.config.user import config_path
from acpbuild.store import layout
from acpbuild.version import __version__


@dataclass
class ProviderInfo:
    name: str
    #: the catalogue's model names, as recipes write them
    models: list[str]
    paid: bool
    #: variables that can hold the key, and the one that is set (None: none is)
    key_vars: tuple[str, ...]
    key_set_in: str | None
    #: the endpoint override variable, and its value when set
    url_var: str
    url: str | None
    #: "built in", or the plugin package and version it comes from
    origin: str = "built in"


@dataclass
class Info:
    version: str
    recipe: Path | None
    #: where the store location came from: "recipe", "ACPBUILD_STORE" or "default"
    store_from: layout.Source
    store: Path
    blobs: int
    objects_bytes: int
    ledger: Path
    ledger_exists: bool
    ledger_bytes: int
    generations: int
    providers: list[ProviderInfo]
    prices: int
    prices_oldest: str | None
    prices_newest: str | None
    config: Path | None
    config_exists: bool
    #: the team's shared ledger and remote store (their URLs, any password masked), or None
    shared_ledger: str | None = None
    remote: str | None = None
    notes: list[str] = field(default_factory=list)
    #: provider plugins found but skipped, each with the reason
    broken_plugins: list[str] = field(default_factory=list)
    #: with no recipe here and no ledger in the default store: the recipes nearby whose stores have one
    nearby: list[Nearby] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("recipe", "store", "ledger", "config"):
            doc[key] = None if doc[key] is None else str(doc[key])
        doc["nearby"] = [n.to_dict() for n in self.nearby]
        return doc


@dataclass
class Nearby:
    """A recipe in or just below the current folder whose store has a ledger."""

    recipe: Path
    store: Path
    generations: int

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": str(self.recipe), "store": str(self.store), "generations": self.generations}


#: the most TOML files :func:`nearby` reads: a content repo's recipes, not a whole disk
_MOST_FILES = 500


def nearby(env: Mapping[str, str], cwd: Path) -> list[Nearby]:
    """The recipes in ``cwd`` and its folders one level down whose stores have a ledger.

    A command run where there is no recipe and no store (say, a repository's
    root, whose recipes live in ``recipes/``) names these instead of showing an
    empty store as if it were the one meant. Hidden folders are skipped; a TOML
    file that is not a recipe (no ``[recipe]`` or ``[steps]`` table) is ignored.
    """
    import tomli

    found: dict[Path, Nearby] = {}
    candidates = sorted(cwd.glob("*.toml")) + sorted(
        p for p in cwd.glob("*/*.toml") if not p.parent.name.startswith(".")
    )
    for path in candidates[:_MOST_FILES]:
        try:
            doc = tomli.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError):
            continue
        table = doc.get("recipe")
        if not isinstance(table, dict) and not isinstance(doc.get("steps"), dict):
            continue
        setting = table.get("store") if isinstance(table, dict) else None
        store = layout.store_root(env, path.parent.resolve(), setting if isinstance(setting, str) else None)
        if store not in found and layout.has_ledger(store):
            found[store] = Nearby(path, store, _generations(layout.ledger_path(store)))
    return list(found.values())


def gather(recipe: str | None, env: Mapping[str, str], cwd: Path) -> Info:
    """Everything ``acpbuild info`` shows; ``recipe`` None means ``acpbuild.toml`` in ``cwd`` if any.

    Only the recipe's shape is read (its ``[recipe] store``), so a recipe with
    a broken step still shows where its store is. A recipe that cannot be read
    raises :class:`~acpbuild.errors.RecipeError` naming the file.
    """
    recipe_path: Path | None = Path(recipe).resolve() if recipe else (cwd / "acpbuild.toml")
    if recipe is None and not (cwd / "acpbuild.toml").is_file():
        recipe_path = None
    config = config_path(env)
    store, store_from = store_here(recipe_path, env, cwd)
    blobs, objects_bytes = _objects(layout.objects_dir(store))
    ledger = layout.ledger_path(store)
    shared = layout.ledger_url(env)
    lost = store_from == "default" and not ledger.is_file() and shared is None
    return Info(
        version=__version__,
        recipe=recipe_path,
        store_from=store_from,
        store=store,
        blobs=blobs,
        objects_bytes=objects_bytes,
        ledger=ledger,
        ledger_exists=ledger.is_file(),
        ledger_bytes=sum(_size(Path(f"{ledger}{s}")) for s in ("", "-wal", "-shm")),
        generations=_generations(ledger),
        providers=[_provider(name, env) for name in providers.names(env)],
        broken_plugins=[b.describe() for b in providers.broken(env)],
        prices=len(money.registry()),
        prices_oldest=min((p.date for p in money.registry().values() if p.date), default=None),
        prices_newest=max((p.date for p in money.registry().values() if p.date), default=None),
        config=config,
        config_exists=config is not None and config.is_file(),
        shared_ledger=_masked(shared),
        remote=_masked(layout.remote_url(env)),
        nearby=nearby(env, cwd) if lost else [],
    )


def _masked(url: str | None) -> str | None:
    return None if url is None else masked_url(url)


def elsewhere(found: list[Nearby], command: str) -> list[str]:
    """Lines naming the stores of the recipes :func:`nearby` found (none: no lines), and the
    command that shows one."""
    from acpbuild.words import counted

    if not found:
        return []
    lines = ["the recipes here keep their own stores:"]
    lines += [f"  {_shown(n.recipe)}: {_shown(n.store)}, {counted(n.generations, 'generation')}" for n in found]
    lines.append(f"  TIP: name one: acpbuild {command} {_shown(found[0].recipe)}")
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def store_here(recipe: Path | None, env: Mapping[str, str], cwd: Path) -> tuple[Path, layout.Source]:
    """The store of ``recipe`` (None: of no recipe, ``./.acpbuild`` in ``cwd``), and where that came from.

    Only the recipe's shape is read, so a recipe with a broken step still shows where its store is.
    """
    if recipe is None or env.get(layout.STORE_VAR):
        return layout.locate(env, cwd=cwd)
    from acpbuild.recipe import read_file

    raw, _ = read_file(recipe)
    return layout.locate(env, recipe.parent, raw.recipe.store)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _objects(root: Path) -> tuple[int, int]:
    """How many blobs the store holds, and their total size in bytes."""
    count = total = 0
    if not root.is_dir():
        return 0, 0
    for folder in os.scandir(root):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder.path):
            if entry.is_file():
                count += 1
                total += entry.stat().st_size
    return count, total


def _generations(ledger: Path) -> int:
    """Rows in the ledger, read-only: ``info`` never creates a ledger."""
    if not ledger.is_file():
        return 0
    try:
        db = sqlite3.connect(f"{ledger.as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT COUNT(*) FROM generations").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0  # an empty or foreign file: the size still shows
    return int(row[0])


def _provider(name: str, env: Mapping[str, str]) -> ProviderInfo:
    cls = providers.provider_class(name, env)
    key_set_in = next((var for var in cls.key_vars if env.get(var)), None)
    url = env.get(cls.url_var) if cls.url_var else None
    return ProviderInfo(
        name=name,
        models=list(providers.catalogue(name, env)),
        paid=cls.paid,
        key_vars=cls.key_vars,
        key_set_in=key_set_in,
        url_var=cls.url_var,
        # an endpoint is not a secret, but a gateway URL may carry a token in its query
        url=redact(url, env) if url else None,
        origin=providers.origin(name, env).describe(),
    )


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
