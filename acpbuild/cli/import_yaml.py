"""The YAML side of ``acpbuild import``: a pipeline file read with the line of every key.

PyYAML is imported only here, and only when a pipeline is imported.
"""

from __future__ import annotations

from typing import Any

from acpbuild.errors import RecipeError

#: a place in the YAML document: keys and list indexes from the root
Path_ = tuple[Any, ...]

def parse(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """YAML text -> (data, {path: line}). A syntax error names the file and line."""
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


__all__ = ["Path_", "parse"]
