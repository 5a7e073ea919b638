"""Counts in messages: ``1 output``, ``2 outputs``.

Every message that says how many of something there are reads it through
:func:`counted`, so a count of one never says "1 outputs".
"""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one.

    The plural is ``noun`` + "s" unless ``plural`` gives another ("entry", "entries").
    """
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"
