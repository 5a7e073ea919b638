"""The reading side of ``acpbuild import``: a pipeline file, with the line of every key.

The older tool read a pipeline as YAML or JSON, chosen by the file's extension
(``.json`` is JSON; ``.yaml``, ``.yml`` and anything else YAML), and so does
this. JSON's own parser reads a ``.json`` file, so it means exactly what it
meant to the older tool; its lines come from reading the same text as YAML
(JSON is YAML's subset, near enough for line numbers), and a file that does
not read that way simply has no lines in messages.

PyYAML is imported only here, and only when a pipeline is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from acpbuild.errors import RecipeError

#: a place in the pipeline document: keys and list indexes from the root
Path_ = tuple[Any, ...]


def parse(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Pipeline text -> (data, {path: line}); JSON for a ``.json`` file, else YAML.

    A syntax error names the file and line.
    """
    if Path(file).suffix.lower() == ".json":
        return _parse_json(text, file)
    import yaml

    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
            tip="fix the YAML syntax there, then import again",
        ) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _node_lines(node, (), lines)
    return data, lines


def label(path: Path_) -> str:
    """``steps[2].params.prompt``: a place in the pipeline, as messages name it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _parse_json(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    import yaml

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(
            f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, tip="fix the JSON syntax there, then import again"
        ) from None
    lines: dict[Path_, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        node = None  # valid JSON that YAML reads otherwise: no lines, nothing else lost
    if node is not None:
        _node_lines(node, (), lines)
    return data, lines


def _node_lines(node: Any, path: Path_, out: dict[Path_, int]) -> None:
    import yaml

    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _node_lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _node_lines(value, (*path, i), out)


__all__ = ["Path_", "label", "parse"]
