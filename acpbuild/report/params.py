"""A generation's rendered parameters as text, and what changed between two generations.

Both read the key material the ledger keeps: ``params`` as the provider
received them (an input file as ``{"digest": ...}``), beside ``provider``,
``model`` and ``kind``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from acpbuild.report.data import Change, Param

#: the longest value a change shows in full; longer ones are cut in the middle
_SHOWN = 240
#: what a generation is besides its parameters, compared first
_HEADLINE = ("provider", "model", "kind", "format")


def prompt_of(material: Mapping[str, Any] | None) -> str | None:
    """The prompt as sent: the ``prompt`` parameter, else the ``text`` one (speech)."""
    params = (material or {}).get("params", {})
    for name in ("prompt", "text"):
        if isinstance(params.get(name), str):
            return str(params[name])
    return None


def digest_of(value: Any) -> str | None:
    """The digest an input file parameter holds, or None for any other value."""
    if isinstance(value, Mapping) and set(value) == {"digest"} and isinstance(value["digest"], str):
        return value["digest"]
    return None


def show(value: Any) -> str:
    """A parameter's value as a user reads it: text as it is, a file by its digest, the rest as JSON."""
    digest = digest_of(value)
    if digest is not None:
        return f"file {digest[:12]}"
    if isinstance(value, list):
        return ", ".join(show(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def params_of(material: Mapping[str, Any] | None, step_of_digest: Mapping[str, str]) -> list[Param]:
    """Every rendered parameter, in name order; an input that is another step's output names that step."""
    params = (material or {}).get("params", {})
    found = []
    for name in sorted(params):
        digest = digest_of(params[name])
        found.append(Param(name, show(params[name]), step_of_digest.get(digest) if digest else None))
    return found


def _quoted(value: Any) -> str:
    if value is None:
        return "(none)"
    text = show(value)
    if len(text) > _SHOWN:
        text = text[: _SHOWN // 2] + " … " + text[-_SHOWN // 2 :]
    return f"'{text}'" if isinstance(value, str) else text


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Change]:
    """What differs from ``before`` (an earlier generation's material) to ``after`` (the current one's)."""
    if not after:
        return []  # nothing current to compare with
    before = before or {}
    found = [
        Change(name, _quoted(before.get(name)), _quoted(after.get(name)))
        for name in _HEADLINE
        if before.get(name) != after.get(name)
    ]
    old, new = before.get("params", {}), after.get("params", {})
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            found.append(Change(name, _quoted(old.get(name)), _quoted(new.get(name))))
    return found
