"""TOML text for values and keys, for the commands that write recipes (``import``, ``new``)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["key", "value"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key(name: str) -> str:
    """A TOML key: bare when it can be, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else value(name)


def value(item: Any) -> str:
    """A TOML value. Strings become basic strings: JSON's escapes are TOML's, but for DEL."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if math.isnan(item):
            return "nan"
        if math.isinf(item):
            return "inf" if item > 0 else "-inf"
        return repr(item)
    if isinstance(item, str):
        return json.dumps(item, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(v) for v in item) + "]"
    if isinstance(item, dict):
        return "{ " + ", ".join(f"{key(str(k))} = {value(v)}" for k, v in item.items() if v is not None) + " }"
    if item is None:
        return '""'
    return value(str(item))  # a reference, a path: as its text
