"""The recipe's last run, kept in the store for ``acpbuild report``: ``RunResult.to_dict()`` as JSON.

Imports nothing heavy: the no-op fast path records its (empty) run here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from acpbuild import process
from acpbuild.errors import StoreError
from acpbuild.store import layout


def save(store: Path, recipe_name: str, doc: Mapping[str, Any]) -> None:
    """Keep ``doc`` as the recipe's last run.

    Written through a temporary file of this process's own, then renamed: two
    runs sharing a store never interleave, and a reader never sees half a file.
    """
    path = layout.last_run(store, recipe_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # compact: json's C encoder writes it (an indent takes the pure-Python one, 10x slower)
        process.replace_file(path, json.dumps(doc, separators=(",", ":")))
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc


def load(store: Path, recipe_name: str) -> dict[str, Any] | None:
    """The recipe's last run as :func:`save` kept it; None when there is none (or it is unreadable)."""
    try:
        found = json.loads(layout.last_run(store, recipe_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
