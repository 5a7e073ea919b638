"""What a report shows, as plain data: gathered once, then rendered and written.

:mod:`acpbuild.report.gather` fills these from the recipe, the ledger, the
store and the last run; :mod:`acpbuild.report.render` turns them into HTML
without reading anything; :mod:`acpbuild.report.write` copies the media they
name. Text here is as the user wrote it: escaping is the renderer's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Asset:
    """One output's bytes: where to copy them from, and how to show them."""

    #: image, video, audio, text or subtitles (the recipe's media)
    media: str
    digest: str
    suffix: str
    source: Path
    #: a text output's first characters, to show inline
    text: str | None = None
    truncated: bool = False

    @property
    def name(self) -> str:
        """The file's name under ``media/``: equal outputs are one file."""
        return f"{self.digest}{self.suffix}"

    @property
    def poster(self) -> str:
        """A video's poster frame's name under ``media/``."""
        return f"{self.digest}-poster.png"


@dataclass(frozen=True)
class Param:
    """One rendered parameter: its value as text, and the step whose output it is, if any."""

    name: str
    text: str
    step: str | None = None


@dataclass(frozen=True)
class Change:
    """A parameter that differs between an earlier generation and the current one."""

    name: str
    before: str
    after: str


@dataclass
class Past:
    """An earlier generation of a step that the store still holds."""

    key: str
    finished: float | None
    cost: float
    asset: Asset
    changes: list[Change]


@dataclass
class Card:
    """One step (or one foreach item): its output and how it was made."""

    name: str
    kind: str
    provider: str
    model: str
    #: ran, restored, uptodate, failed, skipped, store, stale or unbuilt
    status: str
    reason: str = ""
    error: str | None = None
    item: str | None = None
    item_fields: dict[str, str] = field(default_factory=dict)
    asset: Asset | None = None
    prompt: str | None = None
    params: list[Param] = field(default_factory=list)
    key: str | None = None
    cost: float | None = None
    seconds: float | None = None
    finished: float | None = None
    draft_of: str | None = None
    inputs: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    history: list[Past] = field(default_factory=list)
    #: a group member: whether its group chose it, and how it scored
    chosen: bool = False
    score: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "provider": self.provider,
            "model": self.model,
            "prompt": self.prompt,
            "cost": self.cost,
            "key": self.key,
            "output": f"media/{self.asset.name}" if self.asset else None,
            "history": [p.key for p in self.history],
            **({"chosen": self.chosen} if self.chosen else {}),
        }


@dataclass
class Section:
    """A step, a foreach step (one card per item) or a group (its members, the chosen one marked)."""

    name: str
    #: step, foreach or group
    kind: str
    cards: list[Card]
    description: str = ""
    #: a group: its merge, how it chooses, what it chose, and its own status
    merge: str | None = None
    how: str = ""
    chosen: str | None = None
    status: str | None = None
    reason: str = ""
    users: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Everything ``acpbuild report`` shows for one recipe."""

    recipe: str
    recipe_file: Path
    description: str
    #: when the report was made (Unix time)
    made: float
    #: where the statuses come from: "the last run", "this run" or "the plan"
    source: str
    sections: list[Section]
    #: this recipe's spend per step and per provider, and every recipe's per day (UTC)
    by_step: list[tuple[str, float]]
    by_provider: list[tuple[str, float]]
    by_day: list[tuple[str, float]]
    history: bool = False

    @property
    def cards(self) -> list[Card]:
        return [card for section in self.sections for card in section.cards]

    @property
    def assets(self) -> list[Asset]:
        found = [c.asset for c in self.cards if c.asset is not None]
        found += [p.asset for c in self.cards for p in c.history]
        return found

    @property
    def spent(self) -> float:
        return sum(usd for _, usd in self.by_step)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "statuses_from": self.source,
            "steps": [c.to_dict() for c in self.cards],
            "spent": round(self.spent, 6),
        }
