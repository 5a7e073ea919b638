"""Where each key of a TOML document stands: ``("steps", "cover", "prompt") -> line``.

tomli gives values but no positions, and every recipe error must name its line,
so this reads the text once more. It understands what recipes use: table
headers, dotted and quoted keys, multi-line strings and arrays. Positions inside
inline tables and arrays map to the line of the key that holds them.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _parse_key(text: str, pos: int) -> tuple[list[str], int] | None:
    """Parse a dotted key at ``pos``; return its parts and the position after it."""
    parts: list[str] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text):
            return None
        ch = text[pos]
        if ch in "\"'":
            end = pos + 1
            while end < len(text) and text[end] != ch:
                end += 2 if ch == '"' and text[end] == "\\" else 1
            if end >= len(text):
                return None
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            match = _BARE.match(text, pos)
            if not match:
                return None
            parts.append(match.group())
            pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


def _scan_value(text: str, pos: int, state: dict[str, object]) -> None:
    """Advance through a value, tracking open brackets and multi-line strings."""
    depth = int(state.get("depth", 0))  # type: ignore[call-overload]
    i = pos
    while i < len(text):
        ch = text[i]
        if ch == "#":
            break
        if text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i : i + 3]
            end = text.find(quote, i + 3)
            if end < 0:
                state["string"] = quote
                state["depth"] = depth
                return
            i = end + 3
            continue
        if ch in "\"'":
            end = i + 1
            while end < len(text) and text[end] != ch:
                end += 2 if ch == '"' and text[end] == "\\" else 1
            i = end + 1
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        i += 1
    state["depth"] = max(depth, 0)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map every table and key path in ``text`` to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    state: dict[str, object] = {"depth": 0, "string": None}
    array_counts: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        quote = state.get("string")
        if isinstance(quote, str):  # inside a multi-line string
            end = line.find(quote)
            if end < 0:
                continue
            state["string"] = None
            _scan_value(line, end + 3, state)
            continue
        if state.get("depth"):  # inside a multi-line array or inline table
            _scan_value(line, 0, state)
            continue
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        start = len(line) - len(stripped)
        if stripped.startswith("[["):
            parsed = _parse_key(line, start + 2)
            if parsed:
                base = tuple(parsed[0])
                index = array_counts.get(base, 0)
                array_counts[base] = index + 1
                table = (*base, str(index))
                lines.setdefault(base, number)
                lines[table] = number
            continue
        if stripped.startswith("["):
            parsed = _parse_key(line, start + 1)
            if parsed:
                table = tuple(parsed[0])
                lines[table] = number
            continue
        parsed = _parse_key(line, start)
        if not parsed:
            continue
        parts, pos = parsed
        rest = line[pos:].lstrip()
        if not rest.startswith("="):
            continue
        path = (*table, *parts)
        for depth in range(len(table) + 1, len(path) + 1):
            lines.setdefault(path[:depth], number)
        _scan_value(line, line.index("=", pos) + 1, state)
    return lines


def line_of(lines: dict[tuple[str, ...], int], path: tuple[object, ...]) -> int | None:
    """The line of ``path``, or of its longest prefix that has one."""
    keys = tuple(str(p) for p in path)
    for end in range(len(keys), 0, -1):
        if keys[:end] in lines:
            return lines[keys[:end]]
    # A table only ever named as a prefix ([step.a] makes `step`): its first mention.
    below = [line for known, line in lines.items() if known[: len(keys)] == keys]
    return min(below) if keys and below else None
