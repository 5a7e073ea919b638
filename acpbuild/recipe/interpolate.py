"""``${...}`` interpolation: vars and environment at load time, step outputs at run time.

A string that references other steps' outputs becomes a :class:`Template`, a
tuple of literal text and :class:`Ref` parts, resolved when the upstream step
has produced its output. ``$${`` stands for a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")


@dataclass(frozen=True)
class Ref:
    """A reference to another step's output: ``${steps.NAME}``."""

    step: str


@dataclass(frozen=True)
class Template:
    """A string with step references in it; ``parts`` alternate text and :class:`Ref`."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(p for p in self.parts if isinstance(p, Ref))

    @property
    def single_ref(self) -> Ref | None:
        """The reference when the whole value is one ``${steps.X}``."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], Ref) else None


class InterpolationError(ValueError):
    """A ``${...}`` that cannot be resolved; the message says which and why."""


Lookup = Callable[[str], Any]


def interpolate(value: str, lookup: Lookup) -> Any:
    """Resolve every ``${name}`` in ``value`` except ``${steps.*}``.

    ``lookup(name)`` returns a value or raises :class:`InterpolationError`. A value
    that is exactly one ``${name}`` keeps the looked-up value's type (so
    ``seed = "${seed}"`` stays an integer). Step references make a :class:`Template`.
    """
    whole = _TOKEN.fullmatch(value)
    if whole and whole.group(1) is not None and not whole.group(1).startswith("steps."):
        return lookup(whole.group(1).strip())
    parts: list[str | Ref] = []
    text: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(value):
        text.append(value[pos : match.start()])
        pos = match.end()
        name = match.group(1)
        if name is None:  # "$${" escapes a literal "${"
            text.append("${")
            continue
        name = name.strip()
        if name.startswith("steps."):
            step = name.removeprefix("steps.")
            if not step:
                raise InterpolationError("'${steps.}' names no step")
            parts.append("".join(text))
            text = []
            parts.append(Ref(step))
        else:
            text.append(str(lookup(name)))
    text.append(value[pos:])
    parts.append("".join(text))
    if not any(isinstance(p, Ref) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return Template(tuple(p for p in parts if p != ""))


def interpolate_tree(value: Any, lookup: Lookup) -> Any:
    """:func:`interpolate` every string inside lists and tables of ``value``."""
    if isinstance(value, str):
        return interpolate(value, lookup)
    if isinstance(value, list):
        return [interpolate_tree(v, lookup) for v in value]
    if isinstance(value, dict):
        return {k: interpolate_tree(v, lookup) for k, v in value.items()}
    return value


def refs_in(value: Any) -> list[Ref]:
    """Every step reference inside ``value``, in order."""
    if isinstance(value, Template):
        return list(value.refs)
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs_in(v)]
    return []


def render(value: Any, resolve: Callable[[Ref], Any]) -> Any:
    """Replace each :class:`Ref` using ``resolve``; a template of one ref keeps its type."""
    if isinstance(value, Template):
        single = value.single_ref
        if single is not None:
            return resolve(single)
        return "".join(p if isinstance(p, str) else str(resolve(p)) for p in value.parts)
    if isinstance(value, list):
        return [render(v, resolve) for v in value]
    if isinstance(value, dict):
        return {k: render(v, resolve) for k, v in value.items()}
    return value


def env_lookup(
    vars_: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    secret: Callable[[str], bool],
    read: set[str] | None = None,
) -> Lookup:
    """The lookup for recipe values: ``${name}`` from vars, ``${env.NAME}`` from the environment.

    Each environment variable looked up is added to ``read``, so a caller can tell
    which values the recipe depends on.
    """

    def lookup(name: str) -> Any:
        if name.startswith("env."):
            var = name.removeprefix("env.")
            if read is not None:
                read.add(var)
            if secret(var):
                raise InterpolationError(
                    f"'${{env.{var}}}' would put a credential into a step; keys reach "
                    "providers through the environment, never through the recipe"
                )
            if var not in env:
                raise InterpolationError(f"environment variable {var!r} is not set")
            return env[var]
        if name.startswith("item."):
            raise InterpolationError(f"'${{{name}}}' is only valid inside a foreach step")
        if name not in vars_:
            from acpbuild.errors import did_you_mean

            tip = did_you_mean(name, vars_, show=lambda near: f"'${{{near}}}'")
            raise InterpolationError(f"unknown variable '${{{name}}}'" + (f"; {tip}" if tip else ""))
        return vars_[name]

    return lookup
