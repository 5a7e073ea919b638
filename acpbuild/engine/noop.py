"""The no-op fast path: answer "nothing to do" without loading the recipe, doit or any media.

A complete, successful run writes a manifest beside the ledger in two halves.
:func:`snapshot`, taken before any step runs, holds the digest of the recipe's
bytes as loaded, the values of the environment variables the recipe read, the
versions of the adapters its steps use (they enter the step keys), and the
digest cache's signature (device, inode, size, mtime, ctime) of every input
file, foreach source and globbed folder, each stat'd before the build read it.
:func:`save` adds, once the run is over, each output's signature as it was when
seen to hold what the ledger says it holds. :func:`check` compares all of it
with a handful of ``stat`` calls; if nothing moved, no step can have changed,
and the run is over before pydantic or doit is imported. An input edited while
the build ran no longer matches what the snapshot saw, so it is never taken as
built; an output edited after its step is never vouched for. Anything
different, missing or unreadable falls back to the full build, which is always
correct: the fast path can only say "nothing to do", never skip real work.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from acpbuild import process
from acpbuild.errors import StoreError
from acpbuild.keys import KEY_SCHEMA, signature
from acpbuild.store import layout
from acpbuild.version import __version__

if TYPE_CHECKING:
    from acpbuild.provider import Provider

_FORMAT = 3
_PACKAGE = Path(__file__).resolve().parent.parent  # the acpbuild package


def _signature(path: str | Path) -> list[int] | None:
    try:
        sig = signature(path)
    except OSError:
        return None
    return None if sig is None else list(sig)


def _fingerprint(recipe_digest: str, env: Mapping[str, str], names: Iterable[str]) -> dict[str, Any]:
    import xxhash

    # The names come from the loader, not from scanning the text: TOML escapes
    # ("\u0024{env.X}") and any later way of reaching the environment stay covered.
    return {
        "format": _FORMAT,
        "version": __version__,
        # a new key schema changes every key, as a new adapter version changes its steps' keys
        "schema": KEY_SCHEMA,
        "recipe": recipe_digest,
        "env": {n: xxhash.xxh3_64_hexdigest(env.get(n, "\0unset").encode()) for n in sorted(names)},
    }


def snapshot(
    recipe_path: Path,
    recipe_digest: str,
    env: Mapping[str, str],
    env_names: Iterable[str],
    inputs: Iterable[Path],
    seen: Mapping[Path, Sequence[int] | None],
    adapters: Mapping[str, type[Provider]],
) -> dict[str, Any]:
    """What a run is about to read, taken before any step runs: the first half of a manifest.

    ``recipe_digest`` is the xxh3-128 of the recipe's bytes as loaded,
    ``env_names`` the environment variables the recipe read, ``inputs`` the
    files the steps will read (stat'd now), ``seen`` signatures taken earlier,
    while the recipe loaded (they win over a later stat of the same path), and
    ``adapters`` the provider classes the steps use, whose versions enter their keys.
    """
    doc = _fingerprint(recipe_digest, env, env_names)
    doc["path"] = str(recipe_path)
    doc["adapters"] = {name: _adapter(cls) for name, cls in adapters.items()}
    files = {str(p): _signature(p) for p in inputs}
    files.update({str(p): None if sig is None else list(sig) for p, sig in seen.items()})
    doc["inputs"] = files
    return doc


def _adapter(cls: type[Provider]) -> dict[str, Any]:
    """An adapter's version, and the source file that declares it with that file's signature."""
    owner = next(c for c in cls.__mro__ if "version" in vars(c))
    file = sys.modules[owner.__module__].__file__
    if file is None:
        return {"version": cls.version, "file": None, "signature": None}
    # relative to the package, so a reinstall elsewhere is compared with its own files
    return {"version": cls.version, "file": os.path.relpath(file, _PACKAGE), "signature": _signature(file)}


def _same_adapters(recorded: Mapping[str, Any]) -> bool:
    """Whether each adapter still has the version it had; cheap while the files declaring them are untouched."""
    for name, was in recorded.items():
        if was["signature"] is not None and _signature(_PACKAGE / was["file"]) == was["signature"]:
            continue
        # Its file changed, perhaps without a new version. Adapter modules import
        # their SDKs only when they generate, so asking the class itself is cheap.
        from acpbuild.providers import provider_class

        try:
            if provider_class(name).version != was["version"]:
                return False
        except (KeyError, ImportError):
            return False
    return True


def save(
    store: Path,
    recipe_name: str,
    before: dict[str, Any],
    outputs: Mapping[Path, Sequence[int] | None] | Mapping[str, Sequence[int] | None],
    steps: list[dict[str, Any]],
    items: dict[str, Any] | None = None,
) -> None:
    """Write the manifest of a complete, successful run: its :func:`snapshot`, outputs and steps.

    ``outputs`` maps each output to the signature at which it was seen to hold
    what the ledger says it holds, or to None when it does not (the fast path
    will then never answer for it). ``items``, when the recipe's items can be
    built one at a time, is what :mod:`acpbuild.engine.incremental` compares
    them by: it goes to a file of its own, which the no-op never reads, under a
    token the manifest names.
    """
    doc = {**before, "outputs": {str(p): None if sig is None else list(sig) for p, sig in outputs.items()}}
    doc["steps"] = steps
    target = layout.noop_manifest(store, recipe_name)
    try:
        if items is not None:
            doc["items"] = os.urandom(8).hex()
            process.replace_file(layout.noop_items(store, recipe_name), json.dumps({**items, "token": doc["items"]}))
        # two runs sharing the store may finish at once: each writes a temporary file of its own
        process.replace_file(target, json.dumps(doc))
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc


def load_items(found: Found) -> dict[str, Any] | None:
    """The ``items`` :func:`save` kept beside the manifest ``found`` came from; None if there are none."""
    try:
        doc = json.loads(layout.noop_items(found.store, found.name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or "token" not in doc or doc["token"] != found.doc.get("items"):
        return None  # another run's (two runs finishing at once), or none was kept for this manifest
    return doc


def forget(store: Path, recipe_name: str) -> None:
    """Drop the manifest (any run that changes or fails to finish does this first)."""
    for path in (layout.noop_manifest(store, recipe_name), layout.noop_items(store, recipe_name)):
        try:
            path.unlink()
        except OSError:
            pass


class Found(NamedTuple):
    """The manifest of a recipe's last complete run, and what moved since: the recipe, the
    environment it reads and the adapters are as they were (else there is nothing to compare).

    (A named tuple: dataclasses would cost the fast path the import of ``inspect``.)
    """

    name: str
    store: Path
    doc: dict[str, Any]
    #: inputs (files and folders) and outputs whose signature is not the one recorded
    inputs: list[str]
    outputs: list[str]


#: what :func:`compare` answered, while a command asks it more than once (see :func:`remembering`);
#: a context variable, so each thread (a test calling the CLI from several) has its own
_remembered: contextvars.ContextVar[dict[tuple[str, tuple[tuple[str, str], ...]], Found | None] | None]
_remembered = contextvars.ContextVar("acpbuild_noop_remembered", default=None)


@contextlib.contextmanager
def remembering() -> Iterator[None]:
    """Within the block, :func:`compare` looks at each recipe once: a command's fast path
    asks, then the run (or plan) it falls back to asks again, a moment later."""
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def compare(recipe_path: Path, env: Mapping[str, str]) -> Found | None:
    """The last complete run's manifest and the files that moved since; None when there is
    no manifest, or the recipe, its environment or an adapter changed."""
    memo = _remembered.get()
    if memo is None:
        return _compare(recipe_path, env)
    key = (str(recipe_path), tuple(sorted(env.items())))
    if key not in memo:
        memo[key] = _compare(recipe_path, env)
    return memo[key]


def _compare(recipe_path: Path, env: Mapping[str, str]) -> Found | None:
    import xxhash

    try:
        text = recipe_path.read_bytes()
    except OSError:
        return None
    store = _store_of(recipe_path, text, env)
    name = _name_of(recipe_path, text)
    if name is None:
        return None
    try:
        doc = json.loads(layout.noop_manifest(store, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = doc.get("env")
    if not isinstance(names, dict):
        return None
    now = _fingerprint(xxhash.xxh3_128_hexdigest(text), env, names)
    if doc.get("path") != str(recipe_path) or {k: doc.get(k) for k in now} != now:
        return None
    if not layout.has_ledger(store):
        return None
    try:
        if not _same_adapters(doc["adapters"]):
            return None
        # a path can be in both halves (an output some step also reads as a file); both must hold
        moved = [
            [path for path, recorded in doc[half].items() if recorded is None or _signature(path) != recorded]
            for half in ("inputs", "outputs")
        ]
        if not isinstance(doc["steps"], list):
            return None
    except (KeyError, TypeError, AttributeError):
        return None  # a manifest of another shape: the full build writes a fresh one
    return Found(name, store, doc, moved[0], moved[1])


def check(recipe_path: Path, env: Mapping[str, str]) -> tuple[str, list[dict[str, Any]]] | None:
    """The recipe's name and the steps of its last run when nothing has changed since, else None."""
    found = compare(recipe_path, env)
    if found is None or found.inputs or found.outputs:
        return None
    return found.name, found.doc["steps"]


def answer(recipe_path: Path, env: Mapping[str, str], recipe_name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`report` of a run that found nothing to do, kept as the recipe's last run as well
    (unless the last run kept is already this answer, to this manifest: a run of 10,000
    steps does not write its report again each time nothing changed)."""
    from acpbuild.engine import lastrun
    from acpbuild.errors import StoreError

    doc = report(recipe_name, steps)
    try:
        store = _store_of(recipe_path, recipe_path.read_bytes(), env)
        note = layout.noop_answered(store, recipe_name)
        try:
            known = note.read_text(encoding="utf-8")
        except OSError:
            known = None
        if known != _said(store, recipe_name):
            lastrun.save(store, recipe_name, doc)
            process.replace_file(note, _said(store, recipe_name))
    except (OSError, StoreError):
        pass  # the run is answered all the same; only the report's statuses are older
    return doc


def _said(store: Path, recipe_name: str) -> str:
    """Which manifest the kept last run answered: the signatures of both."""
    manifest, kept = layout.noop_manifest(store, recipe_name), layout.last_run(store, recipe_name)
    return json.dumps([_signature(manifest), _signature(kept)])


def report(recipe_name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``--json`` document of a run that found nothing to do (the shape ``RunResult.to_dict`` has)."""
    done = [
        {
            **step,
            "status": "uptodate",
            "cost": 0.0,
            "estimated_cost": 0.0,
            "reason": "up to date",
            "error": None,
            "seconds": 0.0,
        }
        for step in steps
    ]
    statuses = ("ran", "restored", "uptodate", "failed", "skipped")
    return {
        "recipe": recipe_name,
        "success": True,
        "exit_code": 0,
        "steps": done,
        "totals": {"steps": len(done), **{s: len(done) if s == "uptodate" else 0 for s in statuses}, "cost": 0.0, "estimated": 0.0, "possibly_billed": 0.0},
        "errors": [],
        "warnings": [],
        "refused": [],
        "frozen": False,
        "draft": False,
        "drafted": [],
    }


def forecast(recipe_path: Path, env: Mapping[str, str], budget: float | None = None) -> dict[str, Any] | None:
    """``Plan.to_dict()`` of a recipe unchanged since its last complete run, or None.

    Every step up to date and nothing to pay; the limits (``budget``, else the recipe's
    ``budget_usd``, and the monthly cap less this month's spend) stated as a run would
    state them. ``plan`` and ``check`` answer from it without loading the recipe.
    """
    found = compare(recipe_path, env)
    if found is None or found.inputs or found.outputs:
        return None
    doc = found.doc
    try:
        lazy = set(doc["lazy"])  # first_success members only their group runs: not in a plan
        budget_usd = doc["budget_usd"]
        chosen: dict[str, str] = doc["chosen"]
        if any(s["provider"] == "group" and s["model"] != "collect_all" and not chosen.get(s["name"]) for s in doc["steps"]):
            return None  # a choosing group whose choice is not known
        steps = [
            {
                "name": step["name"],
                "status": "uptodate",
                "reason": f"{chosen[step['name']]} chosen (up to date)" if step["name"] in chosen else "up to date",
                # a collect_all group chooses nothing: a plan gives it no key of its own
                "key": None if (step["provider"], step["model"]) == ("group", "collect_all") else step["key"],
                "provider": step["provider"],
                "model": step["model"],
                "outputs": step["outputs"],
                "estimated_cost": 0.0,
                "at_most": 0.0,
                "formula": "nothing to buy",
                "guess": None,
                "cost": 0.0,
            }
            for step in doc["steps"]
            if step["name"] not in lazy
        ]
    except (KeyError, TypeError):
        return None  # a manifest written before it kept these
    from acpbuild.money.budget import limits_for, over_budget

    ledger = layout.open_ledger(found.store, env)
    try:
        limits = limits_for(budget_usd, ledger, env, budget).limits
    finally:
        ledger.close()
    return {
        "recipe": found.name,
        "steps": steps,
        "totals": {"run": 0, "restorable": 0, "uptodate": len(steps), "estimated": 0.0, "at_most": 0.0, "worst_case": 0.0, "cost": 0.0},
        "limits": {label: round(allowed, 6) for label, allowed in limits.items()},
        "over_budget": over_budget(0.0, limits),
        "missing": [],
    }


# The recipe's name and store decide where the manifest is. Reading them with a
# regex keeps tomli out of the fast path; a recipe that sets them in some other
# way simply never takes it.
_NAME = re.compile(rb'^\s*name\s*=\s*"([^"\\]*)"', re.MULTILINE)
_STORE = re.compile(rb'^\s*store\s*=\s*"([^"\\]*)"', re.MULTILINE)


def _recipe_table(text: bytes) -> bytes:
    start = text.find(b"[recipe]")
    if start < 0:
        return b""
    end = text.find(b"\n[", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _name_of(recipe_path: Path, text: bytes) -> str | None:
    match = _NAME.search(_recipe_table(text))
    name = match.group(1).decode("utf-8", "replace") if match else ""
    return name or recipe_path.stem


def _store_of(recipe_path: Path, text: bytes, env: Mapping[str, str]) -> Path:
    match = _STORE.search(_recipe_table(text))
    setting = match.group(1).decode("utf-8", "replace") if match else None
    return layout.store_root(env, recipe_path.parent, setting)
