"""The step graph: order, cycles, and which steps a target needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from acpbuild.errors import RecipeError, did_you_mean


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle as a list of names ending where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in deps.get(node, ()):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in deps:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Names ordered so that each comes after everything it depends on (file order kept)."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for dep in deps.get(node, ()):
            visit(dep)
        order.append(node)

    for node in deps:
        visit(node)
    return order


def closure(deps: Mapping[str, Iterable[str]], targets: Iterable[str]) -> set[str]:
    """The targets and everything they need. Unknown names are a :class:`RecipeError`."""
    wanted: set[str] = set()
    stack = []
    for target in targets:
        if target not in deps:
            raise RecipeError(
                f"no step named {target!r}", tip=did_you_mean(target, deps) or "acpbuild list shows the steps"
            )
        stack.append(target)
    while stack:
        node = stack.pop()
        if node not in wanted:
            wanted.add(node)
            stack.extend(deps.get(node, ()))
    return wanted


def dependants(deps: Mapping[str, Iterable[str]], names: Iterable[str]) -> set[str]:
    """Every step that needs one of ``names``, directly or through others."""
    reverse: dict[str, list[str]] = {}
    for node, node_deps in deps.items():
        for dep in node_deps:
            reverse.setdefault(dep, []).append(node)
    found: set[str] = set()
    stack = [node for name in names for node in reverse.get(name, ())]
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(reverse.get(node, ()))
    return found
