"""What the SQL ledgers (SQLite, PostgreSQL) say alike: the statements that need no transaction.

Both backends keep the same tables; :class:`SqlLedger` holds the queries and
single-statement writes they share, written with ``?`` placeholders. A backend
supplies :meth:`~SqlLedger._exec` and :meth:`~SqlLedger._rows` (PostgreSQL turns
``?`` into its ``%s``), and implements itself what needs its own locking: claims,
``begin``, ``finish`` and the other transactions.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from typing import Any

from acpbuild.store.ledger import Generation, Ledger, Owner, latest

# Spend since a moment: done (and received) generations at their actual cost, and
# submitted ones (running now, or kept to resume) and possibly billed ones at their estimate.
MONTH_SPEND = (
    "SELECT COALESCE(SUM(CASE WHEN state IN ('done', 'received') THEN COALESCE(actual_cost, estimated_cost, 0) "
    "ELSE COALESCE(estimated_cost, 0) END), 0) FROM generations "
    "WHERE draft=0 AND ((state IN ('done', 'received') AND finished >= ?) "
    "OR (state IN ('submitted', 'possibly_billed') AND created >= ?))"
)

#: what an attempt whose run died before the answer arrived says
LOST = "its run stopped before the answer arrived"


class SqlLedger(Ledger):
    """The statements both SQL backends share; they differ in connections, locking and time."""

    @abstractmethod
    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> object:
        """Run one statement (``?`` placeholders), committed when it returns."""

    @abstractmethod
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (``?`` placeholders)."""

    def history(self, key: str) -> list[Generation]:
        return [Generation(*r) for r in self._rows("SELECT * FROM generations WHERE key=? ORDER BY id DESC", (key,))]

    def claims(self) -> list[tuple[str, Owner, float, str | None]]:
        rows = self._rows("SELECT key, run_id, host, pid, lease_until, step FROM claims ORDER BY key")
        return [(r[0], Owner(r[1], r[2], int(r[3])), float(r[4]), r[5]) for r in rows]

    def held(self, key: str) -> bool:
        return bool(self._rows("SELECT 1 FROM claims WHERE key=?", (key,)))

    def find_done(self, key: str) -> Generation | None:
        return latest(self.history(key), "done")

    def find_resumable(self, key: str) -> Generation | None:
        return latest(self.history(key), "resumable")

    def find_received(self, key: str) -> Generation | None:
        return latest(self.history(key), "received")

    def submitted(self, gen_id: int, request_id: str) -> None:
        self._exec("UPDATE generations SET request_id=? WHERE id=?", (request_id, gen_id))

    def fail(self, gen_id: int, error: str, *, resumable: bool, billed: bool = False) -> None:
        if resumable:
            self._exec("UPDATE generations SET error=? WHERE id=?", (error, gen_id))
        else:
            self._exec(
                "UPDATE generations SET state=?, error=?, finished=? WHERE id=?",
                ("possibly_billed" if billed else "failed", error, time.time(), gen_id),
            )

    def received(
        self, gen_id: int, *, actual_cost: float | None, usage: dict[str, Any], meta: dict[str, Any], error: str
    ) -> None:
        self._exec(
            "UPDATE generations SET state='received', actual_cost=?, usage=?, meta=?, error=?, finished=? WHERE id=?",
            (actual_cost, json.dumps(usage), json.dumps(meta), error, time.time(), gen_id),
        )

    def generations(self, *, since: float | None = None) -> list[Generation]:
        rows = self._rows(
            # when it finished, as the monthly cap counts it; a job still running by when it began
            "SELECT * FROM generations WHERE COALESCE(finished, created) >= ? ORDER BY id",
            (since or 0.0,),
        )
        return [Generation(*r) for r in rows]

    def made_by(self, provider: str, model: str, *, limit: int = 50) -> list[Generation]:
        rows = self._rows(
            "SELECT * FROM generations WHERE provider=? AND model=? AND state='done' ORDER BY id DESC LIMIT ?",
            (provider, model, limit),
        )
        return [Generation(*r) for r in rows]

    def spent_since(self, since: float) -> float:
        return float(self._rows(MONTH_SPEND, (since, since))[0][0])

    def restored(self, generation: Generation, *, recipe: str, step: str) -> None:
        self._exec(
            "INSERT INTO restores (generation, recipe, step, saved, created) VALUES (?, ?, ?, ?, ?)",
            (generation.id, recipe, step, generation.actual_cost or 0.0, time.time()),
        )

    def restores(self, *, since: float | None = None) -> list[tuple[Generation, str | None, str | None, float, float]]:
        rows = self._rows(
            "SELECT g.*, r.recipe, r.step, r.saved, r.created FROM restores r "
            "JOIN generations g ON g.id = r.generation WHERE r.created >= ? ORDER BY r.id",
            (since or 0.0,),
        )
        n = len(Generation.__dataclass_fields__)
        return [(Generation(*r[:n]), r[n], r[n + 1], float(r[n + 2] or 0.0), float(r[n + 3])) for r in rows]
