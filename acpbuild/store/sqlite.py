"""The SQLite ledger: the embedded backend, one file in the store, in WAL mode.

WAL lets readers (a plan, a second run) look while a run writes. Every write
commits at once; :meth:`SqliteLedger.begin` checks the cap and inserts, and
:meth:`SqliteLedger.claim` checks and takes a claim, each in one ``BEGIN
IMMEDIATE`` transaction, so two processes sharing the file cannot both take the
last dollar or the same key. Under contention a write waits (SQLite's busy
timeout, then retries with backoff): "database is locked" never reaches a user.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from acpbuild.errors import BudgetExceeded, StoreError
from acpbuild.keys import Signature
from acpbuild.store.ledger import Cap, Claim, Generation, OutputRecord, Owner
from acpbuild.store.sql import MONTH_SPEND, SqlLedger

T = TypeVar("T")

#: how long a write keeps trying while other processes hold the database
_CONTENTION_S = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    state TEXT NOT NULL,             -- submitted, done, failed, abandoned, possibly_billed, received
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
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,            -- the generation a run is buying
    run_id TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    lease_until REAL NOT NULL,
    recipe TEXT, step TEXT, provider TEXT, model TEXT, estimate REAL
);
CREATE TABLE IF NOT EXISTS warned (
    generation INTEGER PRIMARY KEY   -- a possibly billed generation a run has warned about
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, digest TEXT,
    ctime_ns INTEGER                 -- last, where ALTER TABLE puts it in an older ledger
);
"""


def _contended(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _patiently(action: Callable[[], T]) -> T:
    """``action``, tried again with backoff while other processes hold the database."""
    deadline = time.monotonic() + _CONTENTION_S
    pause = 0.01
    while True:
        try:
            return action()
        except sqlite3.Error as exc:
            if not _contended(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.5)


class SqliteLedger(SqlLedger):
    """The ledger in one SQLite file (WAL mode): one connection shared by the run's threads behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # re-entrant: a call inside together() runs in the transaction this thread holds
        self._lock = threading.RLock()
        self._together = 0  # how deep this thread is in together() blocks (under _lock)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            _patiently(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=NORMAL")
            _patiently(lambda: self._db.executescript(_SCHEMA))
            _patiently(self._add_ctime)
        except (sqlite3.Error, OSError) as exc:
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

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} ledger at {self.path}"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return _patiently(lambda: self._db.execute(sql, args))
        except sqlite3.Error as exc:
            raise StoreError(f"ledger error ({self.path}): {exc}") from exc

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return _patiently(lambda: self._db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"ledger error ({self.path}): {exc}") from exc

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` in one ``BEGIN IMMEDIATE`` transaction: all of it or none, one writer at a time."""
        try:
            with self._lock:
                if self._together:  # part of the transaction together() holds
                    return body(self._db)
                _patiently(lambda: self._db.execute("BEGIN IMMEDIATE"))
                try:
                    found = body(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                _patiently(lambda: self._db.execute("COMMIT"))
                return found
        except sqlite3.Error as exc:
            raise StoreError(f"ledger error ({self.path}): {exc}") from exc

    @contextmanager
    def together(self) -> Iterator[None]:
        with self._lock:
            if self._together:
                self._together += 1
                try:
                    yield
                finally:
                    self._together -= 1
                return
            try:
                _patiently(lambda: self._db.execute("BEGIN IMMEDIATE"))
            except sqlite3.Error as exc:
                raise StoreError(f"ledger error ({self.path}): {exc}") from exc
            self._together = 1
            try:
                yield
            except BaseException:
                self._together = 0
                self._db.execute("ROLLBACK")
                raise
            self._together = 0
            try:
                _patiently(lambda: self._db.execute("COMMIT"))
            except sqlite3.Error as exc:
                raise StoreError(f"ledger error ({self.path}): {exc}") from exc

    # -- claims --------------------------------------------------------------
    def claim(
        self,
        key: str,
        owner: Owner,
        *,
        lease_s: float,
        recipe: str,
        step: str,
        provider: str,
        model: str,
        estimate: float,
    ) -> Claim:
        def take(db: sqlite3.Connection) -> Claim:
            now = time.time()
            row = db.execute("SELECT run_id, host, pid, lease_until, step FROM claims WHERE key=?", (key,)).fetchone()
            taken_from = None
            if row is not None:
                holder = Owner(row[0], row[1], int(row[2]))
                if holder != owner:
                    if row[3] > now and holder.alive():
                        return Claim(held_by=holder, step=row[4], lease_left=row[3] - now)
                    taken_from = holder
            db.execute(
                "INSERT OR REPLACE INTO claims (key, run_id, host, pid, lease_until, recipe, step, provider, "
                "model, estimate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, owner.run_id, owner.host, owner.pid, now + lease_s, recipe, step, provider, model, estimate),
            )
            return Claim(taken_from=taken_from)

        return self._transaction(take)

    def renew(self, owner: Owner, lease_s: float) -> None:
        self._exec(
            "UPDATE claims SET lease_until=? WHERE run_id=? AND host=? AND pid=?",
            (time.time() + lease_s, owner.run_id, owner.host, owner.pid),
        )

    def release(self, key: str, owner: Owner) -> None:
        self._exec(
            "DELETE FROM claims WHERE key=? AND run_id=? AND host=? AND pid=?", (key, owner.run_id, owner.host, owner.pid)
        )

    # -- generations ---------------------------------------------------------
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
        def insert(db: sqlite3.Connection) -> int:
            now = time.time()
            if cap is not None:
                spent = db.execute(MONTH_SPEND, (cap.since, cap.since)).fetchone()[0]
                if spent + (estimated_cost or 0.0) > cap.usd + 1e-9:
                    raise BudgetExceeded(
                        f"step {step!r} would cost ~${estimated_cost or 0:.4f} but ${spent:.4f} of "
                        f"{cap.label} is already spent or in flight on this store; the call was not made",
                        usd=estimated_cost or 0.0,
                    )
            # an earlier attempt sent by a run that died before the provider gave it an
            # id can never be resumed, and may have been billed
            db.execute(
                "UPDATE generations SET state=CASE WHEN COALESCE(estimated_cost, 0) > 0 "
                "THEN 'possibly_billed' ELSE 'abandoned' END, finished=?, "
                "error=COALESCE(error || '; ', '') || 'its run stopped before the answer arrived' "
                "WHERE key=? AND state='submitted' AND request_id IS NULL",
                (now, key),
            )
            cursor = db.execute(
                "INSERT INTO generations (key, state, recipe, step, kind, provider, model, material, "
                "estimated_cost, draft, created) VALUES (?, 'submitted', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, recipe, step, kind, provider, model, material, estimated_cost, int(draft), now),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return self._transaction(insert)

    def abandon(self, recipe: str, step: str) -> list[Generation]:
        given_up = [
            Generation(*r)
            for r in self._rows(
                "SELECT * FROM generations WHERE recipe=? AND step=? AND state IN ('submitted', 'possibly_billed')",
                (recipe, step),
            )
        ]
        for gen in given_up:
            self._exec(
                "UPDATE generations SET state='abandoned', finished=?, "
                "error=COALESCE(error || '; ', '') || 'abandoned by the user' WHERE id=?",
                (time.time(), gen.id),
            )
        return given_up

    def finish(
        self,
        gen_id: int,
        *,
        digest: str,
        actual_cost: float | None,
        request_id: str | None,
        usage: dict[str, Any],
        meta: dict[str, Any],
        owner: Owner | None = None,
    ) -> None:
        def done(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE generations SET state='done', digest=?, actual_cost=?, "
                "request_id=COALESCE(?, request_id), usage=?, meta=?, finished=? WHERE id=?",
                (digest, actual_cost, request_id, json.dumps(usage), json.dumps(meta), time.time(), gen_id),
            )
            if owner is not None:
                db.execute(
                    "DELETE FROM claims WHERE key=(SELECT key FROM generations WHERE id=?) "
                    "AND run_id=? AND host=? AND pid=?",
                    (gen_id, owner.run_id, owner.host, owner.pid),
                )

        self._transaction(done)

    def mark_lost(self, recipe: str) -> int:
        def mark(db: sqlite3.Connection) -> int:
            now = time.time()
            rows = db.execute(
                "SELECT g.id, c.run_id, c.host, c.pid, c.lease_until FROM generations g "
                "LEFT JOIN claims c ON c.key = g.key WHERE g.recipe=? AND g.state='submitted' "
                "AND g.request_id IS NULL AND COALESCE(g.estimated_cost, 0) > 0",
                (recipe,),
            ).fetchall()
            lost = [r[0] for r in rows if r[1] is None or r[4] <= now or not Owner(r[1], r[2], int(r[3])).alive()]
            for gen_id in lost:
                db.execute(
                    "UPDATE generations SET state='possibly_billed', finished=?, "
                    "error=COALESCE(error || '; ', '') || 'its run stopped before the answer arrived' WHERE id=?",
                    (now, gen_id),
                )
            return len(lost)

        return self._transaction(mark)

    def doubts(self, recipe: str, *, unwarned: bool = False) -> list[Generation]:
        sql = "SELECT * FROM generations WHERE recipe=? AND state='possibly_billed' AND draft=0"
        if unwarned:
            sql += " AND id NOT IN (SELECT generation FROM warned)"
        found = [Generation(*r) for r in self._rows(sql + " ORDER BY id", (recipe,))]
        if unwarned:
            for gen in found:
                self._exec("INSERT OR IGNORE INTO warned (generation) VALUES (?)", (gen.id,))
        return found

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

    def outputs_below(self, folder: str) -> list[OutputRecord]:
        rows = self._rows("SELECT * FROM outputs WHERE path >= ? AND path < ?", _below(folder))
        return [OutputRecord(*r) for r in rows]

    # -- file digests ----------------------------------------------------------
    def load_digest(self, path: str) -> tuple[Signature, str] | None:
        rows = self._rows("SELECT dev, ino, size, mtime_ns, ctime_ns, digest FROM files WHERE path=?", (path,))
        if not rows:
            return None
        dev, ino, size, mtime_ns, ctime_ns, digest = rows[0]
        return (dev, ino, size, mtime_ns, ctime_ns), digest

    def load_digests(self, folder: str) -> dict[str, tuple[Signature, str]]:
        rows = self._rows(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest FROM files WHERE path >= ? AND path < ?", _below(folder)
        )
        return {path: ((dev, ino, size, mtime_ns, ctime_ns), digest) for path, dev, ino, size, mtime_ns, ctime_ns, digest in rows}

    def save_digest(self, path: str, sig: Signature, digest: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO files (path, dev, ino, size, mtime_ns, ctime_ns, digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, *sig, digest),
        )


def _below(folder: str) -> tuple[str, str]:
    """The primary-key range of every path below ``folder``: those that start with "<folder>/" ("0" follows "/")."""
    below = folder.rstrip("/") + "/"
    return below, below[:-1] + "0"
