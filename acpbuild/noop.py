"""The no-op fast path: answer "nothing to do" without loading the recipe, doit or any media.

After a complete, successful run, :func:`save` writes a manifest beside the
ledger: the digest of the recipe's bytes, the values of the environment
variables the recipe read while loading, and the size, mtime and inode of every
file the build read or wrote (inputs, foreach sources and their folders, outputs). :func:`check`
compares those with a handful of ``stat`` calls; if nothing moved, no step can
have changed, and the run is over before pydantic or doit is imported. Anything
different, missing or unreadable falls back to the full build, which is always
correct: the fast path can only say "nothing to do", never skip real work.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from acpbuild import __version__

_FORMAT = 3


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _fingerprint(text: bytes, env: Mapping[str, str], names: Iterable[str]) -> dict[str, Any]:
    import xxhash

    # The names come from the loader, not from scanning the text: TOML escapes
    # ("\u0024{env.X}") and any later way of reaching the environment stay covered.
    return {
        "format": _FORMAT,
        "version": __version__,
        "recipe": xxhash.xxh3_128_hexdigest(text),
        "env": {n: xxhash.xxh3_64_hexdigest(env.get(n, "\0unset").encode()) for n in sorted(names)},
    }


def manifest_path(store: Path, recipe_name: str) -> Path:
    return store / f"noop-{recipe_name}.json"


def save(
    recipe_path: Path,
    store: Path,
    recipe_name: str,
    env: Mapping[str, str],
    env_names: Iterable[str],
    files: Iterable[Path],
    steps: list[dict[str, Any]],
) -> None:
    """Record the state a complete, successful run left behind.

    ``env_names`` are the environment variables the recipe read while loading.
    """
    doc = _fingerprint(recipe_path.read_bytes(), env, env_names)
    doc["path"] = str(recipe_path)
    doc["files"] = {str(p): _stat(str(p)) for p in files}
    doc["steps"] = steps
    target = manifest_path(store, recipe_name)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, target)


def forget(store: Path, recipe_name: str) -> None:
    """Drop the manifest (any run that changes or fails to finish does this first)."""
    try:
        manifest_path(store, recipe_name).unlink()
    except OSError:
        pass


def check(recipe_path: Path, env: Mapping[str, str]) -> tuple[str, list[dict[str, Any]]] | None:
    """The recipe's name and the steps of its last run when nothing has changed since, else None."""
    try:
        text = recipe_path.read_bytes()
    except OSError:
        return None
    store = _store_of(recipe_path, text, env)
    name = _name_of(recipe_path, text)
    if store is None or name is None:
        return None
    try:
        doc = json.loads(manifest_path(store, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = doc.get("env")
    if not isinstance(names, dict):
        return None
    if doc.get("path") != str(recipe_path) or {k: doc.get(k) for k in ("format", "version", "recipe", "env")} != (
        _fingerprint(text, env, names)
    ):
        return None
    if not (store / "ledger.sqlite3").exists():
        return None
    for path, recorded in doc["files"].items():
        if recorded is None or _stat(path) != recorded:
            return None
    steps: list[dict[str, Any]] = doc["steps"]
    return name, steps


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
        "totals": {"steps": len(done), **{s: len(done) if s == "uptodate" else 0 for s in statuses}, "cost": 0.0, "estimated": 0.0},
        "errors": [],
        "warnings": [],
        "refused": [],
        "draft": False,
        "drafted": [],
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


def _store_of(recipe_path: Path, text: bytes, env: Mapping[str, str]) -> Path | None:
    if env.get("ACPBUILD_STORE"):
        return Path(env["ACPBUILD_STORE"]).resolve()
    match = _STORE.search(_recipe_table(text))
    store = match.group(1).decode("utf-8", "replace") if match else ".acpbuild"
    return (recipe_path.parent / store).resolve()
