"""A resolved recipe: steps and groups ready to key and run, and the graph between them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acpbuild.keys import Signature
from acpbuild.recipe.kinds import Media

if TYPE_CHECKING:
    from acpbuild.recipe.foreach import Item


@dataclass
class Step:
    """A step ready to key and run."""

    name: str
    kind: str
    provider: str
    model: str
    #: semantic parameters as the recipe sets them (after ``[defaults]`` and
    #: vars); strings that reference steps are :class:`Template` s, input files
    #: are absolute :class:`Path` s
    params: dict[str, Any]
    output: str  # as written, relative to output_dir
    output_path: Path
    media: Media
    deps: tuple[str, ...]
    description: str = ""
    timeout_s: float = 600.0
    line: int | None = None
    #: "provider/model" of the paid step a ``--draft`` run replaced with this local stand-in
    draft_of: str | None = None
    #: for a step expanded from ``foreach``: the step as the recipe names it, and the item's id
    family: str | None = None
    item: str | None = None
    #: the foreach item's fields (a CSV row, an inline table, a file's path and stem)
    item_fields: Mapping[str, Any] = field(default_factory=dict)


MERGES = ("collect_all", "first_success", "best_quality")

#: built-in best_quality metrics -> the media each one can score
METRICS: dict[str, tuple[Media, ...]] = {
    "resolution": ("image", "video"),
    "sharpness": ("image",),
    "duration": ("video", "audio"),
    "loudness": ("audio", "video"),
}

#: the metric best_quality uses when neither ``score`` nor ``judge`` is set
DEFAULT_METRIC: dict[Media, str] = {"image": "sharpness", "video": "resolution", "audio": "loudness"}


@dataclass
class Group:
    """A ``[groups.NAME]``: steps whose outputs merge into one output (or, for collect_all, a list)."""

    name: str
    merge: str
    members: tuple[str, ...]
    media: Media
    #: the chosen member's copy (first_success, best_quality); None for collect_all
    output: str | None
    output_path: Path | None
    #: best_quality: a built-in metric, or the text step whose output names the winner
    score: str | None = None
    judge: str | None = None
    #: what the group's task waits for; first_success waits only for its members' inputs,
    #: because it runs the members itself, one at a time
    deps: tuple[str, ...] = ()
    description: str = ""
    line: int | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        """Everything the group's output depends on (for cycles)."""
        return (*self.members, *((self.judge,) if self.judge else ()))


@dataclass
class Recipe:
    """A validated recipe."""

    path: Path
    name: str
    output_dir: Path
    store_dir: Path
    steps: dict[str, Step]
    budget_usd: float | None = None
    jobs: int | None = None
    description: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    #: provider -> how many of its generations may run at once (default: the adapter's own)
    concurrency: dict[str, int] = field(default_factory=dict)
    #: a foreach step's name -> the names of the steps it expanded into
    families: dict[str, list[str]] = field(default_factory=dict)
    #: files and folders foreach sources read, each with its signature from just before it was
    #: read (a new file in a globbed folder changes the folder's)
    sources: dict[Path, Signature | None] = field(default_factory=dict)
    #: a foreach step's name -> the file or glob its items come from, as interpolated (a step
    #: over another foreach step's outputs has that step's); inline items are not here
    item_sources: dict[str, str] = field(default_factory=dict)
    #: a foreach step's name -> every one of its items, expanded or not (a recipe loaded
    #: for some items only expands those)
    items: dict[str, list[Item]] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    #: the environment variables ``${env.NAME}`` read while loading (the fast path watches their values)
    env_names: list[str] = field(default_factory=list)
    #: xxh3-128 of the recipe file's bytes as loaded
    digest: str = ""

    @property
    def root(self) -> Path:
        return self.path.parent

    def deps(self) -> dict[str, tuple[str, ...]]:
        """The build graph: every step and group -> what it waits for."""
        graph = {n: s.deps for n, s in self.steps.items()}
        graph.update({n: g.deps for n, g in self.groups.items()})
        return graph

    @property
    def lazy(self) -> set[str]:
        """first_success members nothing else needs: only their group runs them, one at a time."""
        needed = {d for deps in self.deps().values() for d in deps}
        return {m for g in self.groups.values() if g.merge == "first_success" for m in g.members} - needed

    def output_of(self, name: str) -> tuple[Media, Path]:
        """The media and output path of a step, or of a group that chooses one member."""
        step = self.steps.get(name)
        if step is not None:
            return step.media, step.output_path
        group = self.groups[name]
        # collect_all references are bound to the members' own outputs at load time
        assert group.output_path is not None, name
        return group.media, group.output_path

    def who(self, name: str) -> tuple[str, str]:
        """(provider, model) of a step; ("group", merge) of a group."""
        if name in self.groups:
            return "group", self.groups[name].merge
        step = self.steps[name]
        return step.provider, step.model

    def expand(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Step names with each foreach step's name replaced by its expanded steps."""
        return [n for name in names for n in self.families.get(name, [name])]
