"""The PostgreSQL ledger: the team backend, one database that every run of a team shares.

It keeps the tables and the behaviour of the SQLite ledger for what runs share:
generations, restores, claims and warnings. Output records and file digests are
not shared: they describe this machine's files (absolute paths, inode
signatures) and are read for every step, so they stay in this machine's SQLite
ledger (``local``), where reading them costs no network round trip.

One connection in autocommit mode serves the run's threads behind a lock; an
operation of several statements is one transaction. What must be decided by one
run at a time is serialised across machines by transaction-scoped advisory
locks: a claim by its key, a capped :meth:`PostgresLedger.begin` by the team's
spend, the schema's creation by the schema. Leases are measured by the server's
clock, so machines whose clocks disagree still agree on whose lease ran out;
``created`` and ``finished`` stay the client's time, as the spend queries
compare them with the client's times.

Whenever a claim goes (released, released by a finish, taken over) the
transaction sends ``NOTIFY acpbuild_claims`` with its key, so a run waiting for
it (:meth:`PostgresLedger.wait_released`) on any machine wakes at once.

A connection lost under a read is opened again and the read tried once more; a
write that may have committed is never repeated: it fails with a
:class:`~acpbuild.errors.StoreError`, and the next call connects afresh.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import psycopg

from acpbuild.config.secrets import masked_url
from acpbuild.errors import BudgetExceeded, StoreError, StoreUnreachable
from acpbuild.keys import Signature
from acpbuild.store.ledger import Cap, Claim, Generation, Ledger, OutputRecord, Owner
from acpbuild.store.sql import LOST, MONTH_SPEND, SqlLedger

T = TypeVar("T")

#: the channel a released claim's key is sent on
CHANNEL = "acpbuild_claims"

# Advisory locks of the two-key form, which never meet the one-key locks taken on
# hashtextextended(claim key): 'acpb' and what the lock guards.
_NAMESPACE = 0x61637062
_SCHEMA_LOCK = 1
_SPEND_LOCK = 2

_TABLES = ("generations", "generations_key", "restores", "claims", "warned")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS generations (
        id BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL,
        state TEXT NOT NULL,
        recipe TEXT, step TEXT, kind TEXT, provider TEXT, model TEXT,
        request_id TEXT,
        estimated_cost DOUBLE PRECISION, actual_cost DOUBLE PRECISION,
        digest TEXT,
        material TEXT,
        usage TEXT, meta TEXT, error TEXT,
        draft INTEGER NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION
    )""",
    "CREATE INDEX IF NOT EXISTS generations_key ON generations(key, state)",
    """CREATE TABLE IF NOT EXISTS restores (
        id BIGSERIAL PRIMARY KEY,
        generation BIGINT NOT NULL,
        recipe TEXT, step TEXT,
        saved DOUBLE PRECISION,
        created DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS claims (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL, host TEXT NOT NULL, pid BIGINT NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL,
        recipe TEXT, step TEXT, provider TEXT, model TEXT, estimate DOUBLE PRECISION
    )""",
    "CREATE TABLE IF NOT EXISTS warned (generation BIGINT PRIMARY KEY)",
)

# the server's clock, in Unix seconds: what leases are measured by
_NOW = "extract(epoch from clock_timestamp())::float8"

# remove an owner's claim on a key and tell the waiters, in one statement
_RELEASE = (
    "WITH gone AS (DELETE FROM claims WHERE key=%s AND run_id=%s AND host=%s AND pid=%s RETURNING key) "
    f"SELECT pg_notify('{CHANNEL}', key) FROM gone"
)



def _placeholders(sql: str) -> str:
    """A statement written for :class:`SqlLedger` (``?``) as psycopg takes it (``%s``)."""
    return sql.replace("?", "%s")


_MONTH_SPEND = _placeholders(MONTH_SPEND)


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    """The line of a psycopg error that says what went wrong."""
    text = str(exc).strip()
    if "FATAL:" in text:  # the server refused us: its own words
        text = text.rsplit("FATAL:", 1)[1].strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    for prefix in ("connection failed: ", "connection is bad: "):
        first = first.removeprefix(prefix)
    return first


class PostgresLedger(SqlLedger):
    """The ledger in a PostgreSQL database named by ``url``; this machine's outputs and
    file digests in ``local`` (its SQLite ledger), which is closed with it."""

    def __init__(self, url: str, *, local: Ledger) -> None:
        self.url = url
        self.local = local
        self.where = masked_url(url)
        self._secret = _password(url)
        self._lock = threading.Lock()
        # the listener: opened by the first wait_released
        self._listen_lock = threading.Lock()
        self._woken = threading.Condition()
        self._notified: dict[str, int] = {}  # how many releases of each key were heard
        self._listener: threading.Thread | None = None
        self._listening = False
        self._stopping = threading.Event()
        #: why the listener stopped listening, if its connection broke
        self.listener_error: psycopg.Error | None = None
        self._conn = self._connect()
        try:
            self._run(self._create_schema, read=True)
        except BaseException:
            self._conn.close()
            raise

    # -- the connection ------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """``text`` without the password, should a message ever quote it."""
        if self._secret:
            for secret in (self._secret, unquote(self._secret)):
                text = text.replace(secret, "***")
        return text

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10, application_name="acpbuild")
            conn.execute("SET client_min_messages TO warning")
        except psycopg.Error as exc:
            raise StoreUnreachable(
                self._scrub(f"cannot reach the ledger at {self.where}: {_reason(exc)}")
            ) from exc
        return conn

    def _error(self, exc: psycopg.Error) -> StoreError:
        return StoreError(self._scrub(f"ledger error ({self.where}): {_reason(exc)}"))

    def _run(self, body: Callable[[psycopg.Connection[Any]], T], *, read: bool = False) -> T:
        """``body`` on the connection, one thread at a time. A ``read`` whose connection was
        lost is tried once more on a new one; a write is not, as it may have committed."""
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()  # nothing was sent yet: safe for a write too
            try:
                return body(self._conn)
            except psycopg.OperationalError as exc:
                if not (read and (self._conn.closed or self._conn.broken)):
                    raise self._error(exc) from exc
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            self._conn = self._connect()
            try:
                return body(self._conn)
            except psycopg.Error as exc:
                raise self._error(exc) from exc

    def _in_transaction(self, body: Callable[[psycopg.Connection[Any]], T]) -> Callable[[psycopg.Connection[Any]], T]:
        def run(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction():
                return body(conn)

        return run

    def _transaction(self, body: Callable[[psycopg.Connection[Any]], T], *, read: bool = False) -> T:
        """``body`` in one transaction: all of it or none."""
        return self._run(self._in_transaction(body), read=read)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._run(lambda conn: conn.execute(_placeholders(sql), args))

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(_placeholders(sql), args).fetchall(), read=True)

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        # a ledger that has its tables is opened without writing (a read-only role may use it)
        names = ", ".join(f"to_regclass('{name}')" for name in _TABLES)
        found = conn.execute(f"SELECT {names}").fetchone()
        if found is not None and all(found):
            return
        with conn.transaction():
            # CREATE ... IF NOT EXISTS races with itself: one process at a time
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NAMESPACE, _SCHEMA_LOCK))
            for statement in _SCHEMA:
                conn.execute(statement)

    def describe(self) -> str:
        """The server's version and where it is; fails with a StoreError unless this
        ledger may write (it writes a row and rolls it back)."""

        def check(conn: psycopg.Connection[Any]) -> str:
            with conn.transaction(force_rollback=True):
                conn.execute("INSERT INTO warned (generation) VALUES (-1) ON CONFLICT DO NOTHING")
            version = conn.info.server_version
            return f"{version // 10000}.{version % 10000}"

        return f"PostgreSQL {self._run(check)} ledger at {self.where}"

    def close(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._lock:
            self._conn.close()
        self.local.close()

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
        def take(conn: psycopg.Connection[Any]) -> Claim:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            now = _server_now(conn)
            row = conn.execute("SELECT run_id, host, pid, lease_until, step FROM claims WHERE key=%s", (key,)).fetchone()
            taken_from = None
            if row is not None:
                holder = Owner(row[0], row[1], int(row[2]))
                if holder != owner:
                    if row[3] > now and holder.alive():
                        return Claim(held_by=holder, step=row[4], lease_left=row[3] - now)
                    taken_from = holder
            conn.execute(
                "INSERT INTO claims (key, run_id, host, pid, lease_until, recipe, step, provider, model, estimate) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                "run_id=EXCLUDED.run_id, host=EXCLUDED.host, pid=EXCLUDED.pid, lease_until=EXCLUDED.lease_until, "
                "recipe=EXCLUDED.recipe, step=EXCLUDED.step, provider=EXCLUDED.provider, model=EXCLUDED.model, "
                "estimate=EXCLUDED.estimate",
                (key, owner.run_id, owner.host, owner.pid, now + lease_s, recipe, step, provider, model, estimate),
            )
            if taken_from is not None:  # the dead holder's claim went: whoever waits for it may look again
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, key))
            return Claim(taken_from=taken_from)

        return self._transaction(take)

    def renew(self, owner: Owner, lease_s: float) -> None:
        self._exec(
            f"UPDATE claims SET lease_until={_NOW} + %s WHERE run_id=%s AND host=%s AND pid=%s",
            (lease_s, owner.run_id, owner.host, owner.pid),
        )

    def release(self, key: str, owner: Owner) -> None:
        self._exec(_RELEASE, (key, owner.run_id, owner.host, owner.pid))

    def wait_released(self, key: str, timeout: float) -> None:
        """Block until ``key``'s claim is released anywhere (its NOTIFY arrives), or is not
        held now, at most ``timeout`` seconds. Without a listener connection, polls."""
        deadline = time.monotonic() + timeout
        if not self._listen():
            super().wait_released(key, timeout)
            return
        with self._woken:
            seen = self._notified.get(key, 0)
        # listening before looking: a release after this look is heard
        if not self.held(key):
            return
        with self._woken:
            while self._notified.get(key, 0) == seen and self._listening:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._woken.wait(left)
            listening = self._listening
        if not listening:  # the listener's connection broke: poll for the rest of the time
            super().wait_released(key, max(0.0, deadline - time.monotonic()))

    def _listen(self) -> bool:
        """Start the listener thread unless it runs; whether it listens."""
        with self._listen_lock:
            if self._listener is not None and self._listening:
                return True
            if self._stopping.is_set():
                return False
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10, application_name="acpbuild")
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error:
                return False
            self._listening = True
            self._listener = threading.Thread(
                target=self._hear, args=(conn,), name="acpbuild-ledger-listener", daemon=True
            )
            self._listener.start()
            return True

    def _hear(self, conn: psycopg.Connection[Any]) -> None:
        """The listener thread: count each key's releases and wake whoever waits."""
        try:
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=0.25):
                    with self._woken:
                        self._notified[note.payload] = self._notified.get(note.payload, 0) + 1
                        self._woken.notify_all()
        except psycopg.Error as exc:  # the connection broke: waiters poll instead
            self.listener_error = exc
        finally:
            with self._woken:
                self._listening = False
                self._woken.notify_all()
            conn.close()

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
        def insert(conn: psycopg.Connection[Any]) -> int:
            now = time.time()
            if cap is not None:
                # the team's cap: one capped begin at a time, on every machine
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NAMESPACE, _SPEND_LOCK))
                found = conn.execute(_MONTH_SPEND, (cap.since, cap.since)).fetchone()
                spent = float(found[0]) if found else 0.0
                if spent + (estimated_cost or 0.0) > cap.usd + 1e-9:
                    raise BudgetExceeded(
                        f"step {step!r} would cost ~${estimated_cost or 0:.4f} but ${spent:.4f} of "
                        f"{cap.label} is already spent or in flight on this store; the call was not made",
                        usd=estimated_cost or 0.0,
                    )
            # an earlier attempt sent by a run that died before the provider gave it an
            # id can never be resumed, and may have been billed
            conn.execute(
                "UPDATE generations SET state=CASE WHEN COALESCE(estimated_cost, 0) > 0 "
                "THEN 'possibly_billed' ELSE 'abandoned' END, finished=%s, "
                "error=COALESCE(error || '; ', '') || %s "
                "WHERE key=%s AND state='submitted' AND request_id IS NULL",
                (now, LOST, key),
            )
            row = conn.execute(
                "INSERT INTO generations (key, state, recipe, step, kind, provider, model, material, "
                "estimated_cost, draft, created) VALUES (%s, 'submitted', %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                (key, recipe, step, kind, provider, model, material, estimated_cost, int(draft), now),
            ).fetchone()
            assert row is not None
            return int(row[0])

        return self._transaction(insert)

    def abandon(self, recipe: str, step: str) -> list[Generation]:
        def give_up(conn: psycopg.Connection[Any]) -> list[Generation]:
            given_up = [
                Generation(*r)
                for r in conn.execute(
                    "SELECT * FROM generations WHERE recipe=%s AND step=%s "
                    "AND state IN ('submitted', 'possibly_billed') ORDER BY id FOR UPDATE",
                    (recipe, step),
                ).fetchall()
            ]
            if given_up:
                conn.execute(
                    "UPDATE generations SET state='abandoned', finished=%s, "
                    "error=COALESCE(error || '; ', '') || 'abandoned by the user' WHERE id = ANY(%s)",
                    (time.time(), [gen.id for gen in given_up]),
                )
            return given_up

        return self._transaction(give_up)

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
        def done(conn: psycopg.Connection[Any]) -> None:
            row = conn.execute(
                "UPDATE generations SET state='done', digest=%s, actual_cost=%s, "
                "request_id=COALESCE(%s, request_id), usage=%s, meta=%s, finished=%s WHERE id=%s RETURNING key",
                (digest, actual_cost, request_id, json.dumps(usage), json.dumps(meta), time.time(), gen_id),
            ).fetchone()
            if owner is not None and row is not None:
                conn.execute(_RELEASE, (row[0], owner.run_id, owner.host, owner.pid))

        self._transaction(done)

    def mark_lost(self, recipe: str) -> int:
        def mark(conn: psycopg.Connection[Any]) -> int:
            now = _server_now(conn)  # leases are the server's time
            rows = conn.execute(
                "SELECT g.id, c.run_id, c.host, c.pid, c.lease_until FROM generations g "
                "LEFT JOIN claims c ON c.key = g.key WHERE g.recipe=%s AND g.state='submitted' "
                "AND g.request_id IS NULL AND COALESCE(g.estimated_cost, 0) > 0",
                (recipe,),
            ).fetchall()
            lost = [r[0] for r in rows if r[1] is None or r[4] <= now or not Owner(r[1], r[2], int(r[3])).alive()]
            if lost:
                conn.execute(
                    "UPDATE generations SET state='possibly_billed', finished=%s, "
                    "error=COALESCE(error || '; ', '') || %s WHERE id = ANY(%s)",
                    (time.time(), LOST, lost),
                )
            return len(lost)

        return self._transaction(mark)

    def doubts(self, recipe: str, *, unwarned: bool = False) -> list[Generation]:
        sql = "SELECT * FROM generations WHERE recipe=%s AND state='possibly_billed' AND draft=0"
        if not unwarned:
            return [Generation(*r) for r in self._rows(sql + " ORDER BY id", (recipe,))]

        def warn(conn: psycopg.Connection[Any]) -> list[Generation]:
            found = [
                Generation(*r)
                for r in conn.execute(
                    sql + " AND id NOT IN (SELECT generation FROM warned) ORDER BY id", (recipe,)
                ).fetchall()
            ]
            if found:
                conn.execute(
                    "INSERT INTO warned (generation) SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
                    ([gen.id for gen in found],),
                )
            return found

        return self._transaction(warn)

    # -- outputs and file digests: this machine's, in its SQLite ledger ----------------
    def output(self, path: Path) -> OutputRecord | None:
        return self.local.output(path)

    def set_output(self, path: Path, *, key: str, digest: str, material: str, recipe: str, step: str) -> None:
        self.local.set_output(path, key=key, digest=digest, material=material, recipe=recipe, step=step)

    def drop_output(self, path: Path) -> None:
        self.local.drop_output(path)

    def outputs_of(self, recipe: str) -> list[OutputRecord]:
        return self.local.outputs_of(recipe)

    def outputs_below(self, folder: str) -> list[OutputRecord]:
        return self.local.outputs_below(folder)

    def load_digest(self, path: str) -> tuple[Signature, str] | None:
        return self.local.load_digest(path)

    def load_digests(self, folder: str) -> dict[str, tuple[Signature, str]]:
        return self.local.load_digests(folder)

    def save_digest(self, path: str, sig: Signature, digest: str) -> None:
        self.local.save_digest(path, sig, digest)


def _server_now(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute(f"SELECT {_NOW}").fetchone()
    assert row is not None
    return float(row[0])
