"""`acpbuild graph`: a recipe's step graph as Mermaid or Graphviz dot text.

Nodes are steps (a box labelled with name, kind and provider/model) and groups
(a hexagon labelled with name and merge). Edges run upstream -> downstream:
a solid edge for each ``${steps.NAME}`` reference, a dashed edge from each
group member (and judge) to its group.

A foreach step is drawn as one node for its whole family, labelled with the
item count (``narration  x3 items``): the expanded graph repeats the same shape
once per item, and a glob over a folder of hundreds of files would bury the
pipeline. Edges between expanded steps are folded into edges between families.

Node ids are sanitised (``n_`` plus the name's letters, digits and underscores,
made unique); names appear only inside quoted, escaped labels, so a step name
like ``narration[intro]`` or one holding quotes cannot break either format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acpbuild.recipe import Recipe
from acpbuild.recipe.graph import topological
from acpbuild.words import counted

FORMATS = ("mermaid", "dot")


@dataclass(frozen=True)
class Node:
    name: str
    #: "step" or "group"
    shape: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    #: "data" for a reference, "member" for a group's member or judge
    style: str = "data"


def nodes_and_edges(recipe: Recipe) -> tuple[list[Node], list[Edge]]:
    """The graph in build order, foreach families folded into one node each."""
    family_of = {step.name: step.family or step.name for step in recipe.steps.values()}
    family_of.update({name: name for name in recipe.groups})

    def fold(name: str) -> str:
        return family_of.get(name, name)

    # A step that uses a collect_all group depends on each member; draw it as using the group.
    collected = [(g.name, set(g.members)) for g in recipe.groups.values() if g.merge == "collect_all"]
    deps: dict[str, list[str]] = {}
    for name, step in recipe.steps.items():
        through = [(group, members) for group, members in collected if members <= set(step.deps)]
        via = {m for _, members in through for m in members}
        direct = [fold(d) for d in step.deps if d not in via]
        deps.setdefault(fold(name), []).extend(direct + [group for group, _ in through])
    for name, group in recipe.groups.items():
        deps[name] = [fold(m) for m in group.needs]
    nodes: list[Node] = []
    edges: list[Edge] = []
    for name in topological({n: tuple(dict.fromkeys(d)) for n, d in deps.items()}):
        if name in recipe.groups:
            group = recipe.groups[name]
            into = f"-> {group.output}" if group.output else counted(len(group.members), "output")
            nodes.append(Node(name, "group", (name, f"group: {group.merge}", into)))
            edges += [Edge(fold(m), name, "member") for m in dict.fromkeys(group.needs)]
            continue
        members = recipe.families.get(name)
        step = recipe.steps[members[0]] if members else recipe.steps[name]
        title = f"{name}  x{counted(len(members), 'item')}" if members is not None else name
        nodes.append(Node(name, "step", (title, step.kind, f"{step.provider}/{step.model}")))
        edges += [Edge(d, name) for d in dict.fromkeys(deps[name]) if d != name]
    return nodes, edges


def _ids(nodes: list[Node]) -> dict[str, str]:
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for node in nodes:
        base = "n_" + re.sub(r"\W", "_", node.name, flags=re.ASCII)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        ids[node.name] = candidate
    return ids


def mermaid(recipe: Recipe) -> str:
    """``flowchart LR`` text for Mermaid (GitHub, GitLab and most Markdown viewers render it)."""
    nodes, edges = nodes_and_edges(recipe)
    ids = _ids(nodes)
    out = ["flowchart LR"]
    for node in nodes:
        label = "<br/>".join(_mermaid_text(line) for line in node.lines)
        opening, closing = ("{{", "}}") if node.shape == "group" else ("[", "]")
        out.append(f'    {ids[node.name]}{opening}"{label}"{closing}')
    for edge in edges:
        arrow = "-.->" if edge.style == "member" else "-->"
        out.append(f"    {ids[edge.upstream]} {arrow} {ids[edge.downstream]}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    # Mermaid has no backslash escapes inside "...": characters go in as entity codes
    return "".join(f"#{ord(c)};" if c in '"#<>' else c for c in text)


def dot(recipe: Recipe) -> str:
    """A ``digraph`` for Graphviz (``acpbuild graph --format dot | dot -Tsvg > graph.svg``)."""
    nodes, edges = nodes_and_edges(recipe)
    ids = _ids(nodes)
    out = [
        f"digraph {_dot_string(recipe.name)} {{",
        "    rankdir=LR;",
        '    node [shape=box, fontname="Helvetica"];',
    ]
    for node in nodes:
        label = "\\n".join(_dot_text(line) for line in node.lines)
        shape = ", shape=hexagon" if node.shape == "group" else ""
        out.append(f'    {ids[node.name]} [label="{label}"{shape}];')
    for edge in edges:
        style = " [style=dashed]" if edge.style == "member" else ""
        out.append(f"    {ids[edge.upstream]} -> {ids[edge.downstream]}{style};")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dot_string(text: str) -> str:
    return f'"{_dot_text(text)}"'


def render(recipe: Recipe, fmt: str) -> str:
    """The graph in ``fmt``, one of :data:`FORMATS`."""
    return {"mermaid": mermaid, "dot": dot}[fmt](recipe)
