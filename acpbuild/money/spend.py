"""Spend reports from the ledger: what was bought, what it was expected to cost, what restores saved."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from acpbuild.errors import RecipeError
from acpbuild.store.ledger import IN_DOUBT, Generation, Ledger

By = Literal["recipe", "step", "provider", "model", "day"]
BY: tuple[By, ...] = ("recipe", "step", "provider", "model", "day")


@dataclass
class Row:
    """Spend for one group: generations bought, their cost, and restores that cost nothing.

    ``possibly_billed`` is what requests that were sent but never answered may have
    cost (at their estimates), and jobs still running or kept to resume, which
    will cost it; ``cost`` is only what is known to be paid.
    """

    group: str
    generations: int = 0
    estimated: float = 0.0
    cost: float = 0.0
    restores: int = 0
    saved: float = 0.0
    in_doubt: int = 0
    possibly_billed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "generations": self.generations,
            "estimated": round(self.estimated, 6),
            "cost": round(self.cost, 6),
            "restores": self.restores,
            "saved": round(self.saved, 6),
            "in_doubt": self.in_doubt,
            "possibly_billed": round(self.possibly_billed, 6),
        }


def parse_since(text: str) -> float:
    """``YYYY-MM-DD`` (local midnight) as a Unix time; a bad date is a usage error."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise RecipeError(f"--since {text!r} is not a date", tip="write it as YYYY-MM-DD") from None
    return time.mktime(day.timetuple())


def _group(gen: Generation, by: By, recipe: str | None, step: str | None, when: float) -> str:
    if by == "day":
        return datetime.fromtimestamp(when).date().isoformat()
    if by == "recipe":
        return recipe or gen.recipe or "?"
    if by == "step":
        return f"{recipe or gen.recipe or '?'}:{step or gen.step or '?'}"
    if by == "provider":
        return gen.provider or "?"
    return f"{gen.provider}/{gen.model}"


def report(ledger: Ledger, *, since: float | None = None, by: By = "recipe", recipe: str | None = None) -> list[Row]:
    """Spend since ``since`` grouped ``by`` one dimension, largest cost first.

    ``recipe`` keeps only that recipe's generations and restores (a store, and a
    team's shared ledger, hold several recipes'); None keeps every recipe's.
    """
    rows: dict[str, Row] = {}
    for gen in ledger.generations(since=since):
        if gen.draft or gen.state not in ("done", "received", *IN_DOUBT):
            continue
        if recipe is not None and gen.recipe != recipe:
            continue
        row = rows.setdefault(_group(gen, by, None, None, gen.finished or gen.created), Row(""))
        if gen.state in IN_DOUBT:
            row.in_doubt += 1
            row.possibly_billed += gen.estimated_cost or 0.0
            continue
        # a received result is paid for, though not stored yet
        row.generations += 1
        row.estimated += gen.estimated_cost or 0.0
        row.cost += gen.actual_cost or 0.0
    for gen, restored_in, step, saved, when in ledger.restores(since=since):
        if gen.draft:
            continue
        # a restore counts for the recipe it happened in, whichever recipe first paid for it
        if recipe is not None and (restored_in or gen.recipe) != recipe:
            continue
        row = rows.setdefault(_group(gen, by, restored_in, step, when), Row(""))
        row.restores += 1
        row.saved += saved
    for name, row in rows.items():
        row.group = name
    return sorted(rows.values(), key=lambda r: (-(r.cost + r.possibly_billed), r.group))
