"""The SQLite ledger: the embedded backend, one file in the store, in WAL mode.

WAL lets readers (a plan, a second run) look while a run writes. Every write
commits at once; :meth:`SqliteLedger.begin` checks the cap and inserts in one
``BEGIN IMMEDIATE`` transaction, so two processes sharing the file cannot both
take the last dollar.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from acpbuild.errors import BudgetExceeded, StoreError
from acpbuild.keys import Signature
from acpbuild.store.ledger import Cap, Generation, Ledger, OutputRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    state TEXT NOT NULL,             -- submitted, done, failed, abandoned
    recipe TEXT, step TEXT, kind TEXT, provider TEXT, model TEXT,
    request_id TEXT,
    estimated_cost REAL, actual_cost REAL,
    digest TEXT,                     -- the output blob
    material TEXT,                   -- the canonical key material (no secrets)
    usage TEXT, meta TEXT, error TEXT,
    draft INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, finished REAL
);
CREATE INDEX IF NOT EXISTS generations_key ON generations(key, state);
CREATE TABLE IF NOT EXISTS outputs (
    path TEXT PRIMARY KEY,           -- an output file as materialised
    key TEXT NOT NULL, digest TEXT NOT NULL, material TEXT,
    recipe TEXT, step TEXT
);
CREATE TABLE IF NOT EXISTS restores (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,     -- the generation reused instead of bought again
    recipe TEXT, step TEXT,
    saved REAL,                      -- what that generation cost
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, digest TEXT,
    ctime_ns INTEGER                 -- last, where ALTER TABLE puts it in an older ledger
);
"""


# Spend since a moment: done generations at their actual cost, and submitted ones
# (running now, or kept for a later run to resume) at their estimate.
_MONTH_SPEND = (
    "SELECT COALESCE(SUM(CASE state WHEN 'done' THEN COALESCE(actual_cost, estimated_cost, 0) "
    "ELSE COALESCE(estimated_cost, 0) END), 0) FROM generations "
    "WHERE draft=0 AND ((state='done' AND finished >= ?) OR (state='submitted' AND created >= ?))"
)


class SqliteLedger(Ledger):
    """The ledger in one SQLite file (WAL mode): one connection shared by the run's threads behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_ctime()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the ledger at {path}: {exc}") from exc

    def _add_ctime(self) -> None:
        """Give a ledger from before ctime entered file signatures its column.

        Its rows hold no ctime, so they match no file: each file is hashed once more.
        """
        if any(row[1] == "ctime_ns" for row in self._db.execute("PRAGMA table_info(files)")):
            return
        try:
            self._db.execute("ALTER TABLE files ADD COLUMN ctime_ns INTEGER")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it first
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"ledger error ({self.path}): {exc}") from exc

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"ledger error ({self.path}): {exc}") from exc

    # -- generations ---------------------------------------------------------
    def find_done(self, key: str) -> Generation | None:
        rows = self._rows(
            "SELECT * FROM generations WHERE key=? AND state='done' ORDER BY id DESC LIMIT 1", (key,)
        )
        return Generation(*rows[0]) if rows else None

    def find_resumable(self, key: str) -> Generation | None:
        rows = self._rows(
            "SELECT * FROM generations WHERE key=? AND state='submitted' AND request_id IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (key,),
        )
        return Generation(*rows[0]) if rows else None

    def begin(
        self,
        key: str,
        *,
        recipe: str,
        step: str,
        kind: str,
        provider: str,
        model: str,
        material: str,
        estimated_cost: float | None,
        draft: bool,
        cap: Cap | None = None,
    ) -> int:
        now = time.time()
        try:
            with self._lock:
                # cap check and insert in one write transaction: another process waits its turn
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if cap is not None:
                        spent = self._db.execute(_MONTH_SPEND, (cap.since, cap.since)).fetchone()[0]
                        if spent + (estimated_cost or 0.0) > cap.usd + 1e-9:
                            raise BudgetExceeded(
                                f"step {step!r} would cost ~${estimated_cost or 0:.4f} but ${spent:.4f} of "
                                f"{cap.label} is already spent or in flight on this store; the call was not made",
                                usd=estimated_cost or 0.0,
                            )
                    # an earlier attempt that died before the provider gave it an id can never be resumed
                    self._db.execute(
                        "UPDATE generations SET state='abandoned', finished=? "
                        "WHERE key=? AND state='submitted' AND request_id IS NULL",
                        (now, key),
                    )
                    cursor = self._db.execute(
                        "INSERT INTO generations (key, state, recipe, step, kind, provider, model, material, "
                        "estimated_cost, draft, created) VALUES (?, 'submitted', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (key, recipe, step, kind, provider, model, material, estimated_cost, int(draft), now),
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"ledger error ({self.path}): {exc}") from exc
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def abandon(self, recipe: str, step: str) -> list[str]:
        rows = self._rows(
            "SELECT id, request_id FROM generations WHERE recipe=? AND step=? AND state='submitted'",
            (recipe, step),
        )
        for gen_id, _ in rows:
            self._exec(
                "UPDATE generations SET state='abandoned', finished=?, "
                "error=COALESCE(error || '; ', '') || 'abandoned by the user' WHERE id=?",
                (time.time(), gen_id),
            )
        return [str(request_id) for _, request_id in rows if request_id]

    def submitted(self, gen_id: int, request_id: str) -> None:
        self._exec("UPDATE generations SET request_id=? WHERE id=?", (request_id, gen_id))

    def finish(
        self,
        gen_id: int,
        *,
        digest: str,
        actual_cost: float | None,
        request_id: str | None,
        usage: dict[str, Any],
        meta: dict[str, Any],
    ) -> None:
        self._exec(
            "UPDATE generations SET state='done', digest=?, actual_cost=?, "
            "request_id=COALESCE(?, request_id), usage=?, meta=?, finished=? WHERE id=?",
            (digest, actual_cost, request_id, json.dumps(usage), json.dumps(meta), time.time(), gen_id),
        )

    def fail(self, gen_id: int, error: str, *, resumable: bool) -> None:
        if resumable:
            self._exec("UPDATE generations SET error=? WHERE id=?", (error, gen_id))
        else:
            self._exec(
                "UPDATE generations SET state='failed', error=?, finished=? WHERE id=?",
                (error, time.time(), gen_id),
            )

    def generations(self, *, since: float | None = None) -> list[Generation]:
        rows = self._rows(
            # when it finished, as the monthly cap counts it; a job still running by when it began
            "SELECT * FROM generations WHERE COALESCE(finished, created) >= ? ORDER BY id",
            (since or 0.0,),
        )
        return [Generation(*r) for r in rows]

    def spent_since(self, since: float) -> float:
        return float(self._rows(_MONTH_SPEND, (since, since))[0][0])

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

    # -- outputs -------------------------------------------------------------
    def output(self, path: Path) -> OutputRecord | None:
        rows = self._rows("SELECT * FROM outputs WHERE path=?", (str(path),))
        return OutputRecord(*rows[0]) if rows else None

    def set_output(self, path: Path, *, key: str, digest: str, material: str, recipe: str, step: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO outputs (path, key, digest, material, recipe, step) VALUES (?, ?, ?, ?, ?, ?)",
            (str(path), key, digest, material, recipe, step),
        )

    def drop_output(self, path: Path) -> None:
        self._exec("DELETE FROM outputs WHERE path=?", (str(path),))

    def outputs_of(self, recipe: str) -> list[OutputRecord]:
        return [OutputRecord(*r) for r in self._rows("SELECT * FROM outputs WHERE recipe=?", (recipe,))]

    # -- file digests ----------------------------------------------------------
    def load_digest(self, path: str) -> tuple[Signature, str] | None:
        rows = self._rows("SELECT dev, ino, size, mtime_ns, ctime_ns, digest FROM files WHERE path=?", (path,))
        if not rows:
            return None
        dev, ino, size, mtime_ns, ctime_ns, digest = rows[0]
        return (dev, ino, size, mtime_ns, ctime_ns), digest

    def save_digest(self, path: str, sig: Signature, digest: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO files (path, dev, ino, size, mtime_ns, ctime_ns, digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, *sig, digest),
        )
