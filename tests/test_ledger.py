"""The ledger commits every state change at once, so a crash never forgets a paid result.

Each check reads through a second, independent SQLite connection: what it sees is
what a process that starts after a crash would see.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from acpbuild.store.ledger import Ledger


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "ledger.sqlite3"


@pytest.fixture
def ledger(db: Path) -> Iterator[Ledger]:
    opened = Ledger(db)
    yield opened
    opened.close()


def begin(ledger: Ledger, key: str = "k1", **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "recipe": "demo",
        "step": "cover",
        "kind": "text_to_image",
        "provider": "fal",
        "model": "flux-dev",
        "material": '{"kind":"text_to_image"}',
        "estimated_cost": 0.025,
        "draft": False,
    }
    fields.update(overrides)
    return ledger.begin(key, **fields)


def outside(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows as another process sees them, through a connection of its own."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def row(db: Path, gen_id: int) -> dict[str, Any]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM generations WHERE id=?", (gen_id,)).fetchone()
    assert found is not None, f"generation {gen_id} is not visible outside"
    return dict(found)


def test_the_ledger_is_in_wal_mode(ledger: Ledger, db: Path) -> None:
    # WAL lets readers (plan, a second run) look while a run writes
    assert outside(db, "PRAGMA journal_mode") == [("wal",)]
    with ledger._lock:  # the ledger's own connection says the same
        assert ledger._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_begin_is_committed_before_the_provider_is_called(ledger: Ledger, db: Path) -> None:
    gen_id = begin(ledger)
    seen = row(db, gen_id)
    assert seen["key"] == "k1"
    assert seen["state"] == "submitted"
    assert seen["request_id"] is None
    assert (seen["recipe"], seen["step"], seen["provider"], seen["model"]) == (
        "demo",
        "cover",
        "fal",
        "flux-dev",
    )
    assert seen["estimated_cost"] == 0.025
    assert seen["finished"] is None


def test_submitted_request_id_is_committed_at_once(ledger: Ledger, db: Path) -> None:
    gen_id = begin(ledger)
    ledger.submitted(gen_id, "req-123")
    seen = row(db, gen_id)
    assert seen["request_id"] == "req-123"
    assert seen["state"] == "submitted"


def test_finish_makes_the_generation_found_by_key(ledger: Ledger, db: Path) -> None:
    gen_id = begin(ledger)
    assert ledger.find_done("k1") is None
    ledger.submitted(gen_id, "req-123")
    ledger.finish(
        gen_id,
        digest="d" * 32,
        actual_cost=0.03,
        request_id=None,
        usage={"images": 1},
        meta={"seed": 7},
    )
    done = ledger.find_done("k1")
    assert done is not None
    assert (done.id, done.state, done.digest, done.actual_cost) == (gen_id, "done", "d" * 32, 0.03)
    # a finish without a request id keeps the one recorded at submission
    assert done.request_id == "req-123"
    assert row(db, gen_id)["state"] == "done"
    # a finished job is never resumed, and other keys are not affected
    assert ledger.find_resumable("k1") is None
    assert ledger.find_done("k2") is None


def test_find_done_returns_the_latest(ledger: Ledger) -> None:
    for digest in ("a" * 32, "b" * 32):
        gen_id = begin(ledger)
        ledger.finish(gen_id, digest=digest, actual_cost=0.0, request_id=None, usage={}, meta={})
    done = ledger.find_done("k1")
    assert done is not None and done.digest == "b" * 32


def test_a_resumable_failure_stays_resumable(ledger: Ledger, db: Path) -> None:
    # a timeout while polling: the job may still finish at the provider, so poll it again
    gen_id = begin(ledger)
    ledger.submitted(gen_id, "req-123")
    ledger.fail(gen_id, "timed out while polling", resumable=True)
    pending = ledger.find_resumable("k1")
    assert pending is not None
    assert (pending.id, pending.request_id, pending.state) == (gen_id, "req-123", "submitted")
    assert row(db, gen_id)["error"] == "timed out while polling"
    assert ledger.find_done("k1") is None


def test_a_final_failure_is_not_resumable(ledger: Ledger, db: Path) -> None:
    gen_id = begin(ledger)
    ledger.submitted(gen_id, "req-123")
    ledger.fail(gen_id, "content policy", resumable=False)
    assert ledger.find_resumable("k1") is None
    seen = row(db, gen_id)
    assert (seen["state"], seen["error"]) == ("failed", "content policy")
    assert seen["finished"] is not None


def test_a_submission_without_request_id_is_never_resumable(ledger: Ledger) -> None:
    # the process died before the provider answered: there is nothing to poll
    begin(ledger)
    assert ledger.find_resumable("k1") is None


def test_begin_abandons_earlier_submissions_that_never_got_a_request_id(
    ledger: Ledger, db: Path
) -> None:
    lost = begin(ledger)  # died before the provider gave it an id
    polled = begin(ledger)  # got an id, then died while polling
    ledger.submitted(polled, "req-9")
    other = begin(ledger, key="k2")  # another generation altogether
    finished = begin(ledger)
    ledger.finish(finished, digest="d" * 32, actual_cost=0.0, request_id=None, usage={}, meta={})

    again = begin(ledger)

    states = dict(outside(db, "SELECT id, state FROM generations"))
    assert states == {
        lost: "abandoned",
        polled: "submitted",
        other: "submitted",
        finished: "done",
        again: "submitted",
    }
    assert row(db, lost)["finished"] is not None
    # the job with a request id is still the one to resume
    pending = ledger.find_resumable("k1")
    assert pending is not None and pending.id == polled


def test_rows_survive_reopening(db: Path) -> None:
    first = Ledger(db)
    gen_id = begin(first)
    first.submitted(gen_id, "req-123")
    first.close()
    second = Ledger(db)
    try:
        pending = second.find_resumable("k1")
        assert pending is not None and pending.id == gen_id
    finally:
        second.close()


def test_a_ledger_from_before_ctime_gains_the_column(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db)) as old:
        old.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, "
            "mtime_ns INTEGER, digest TEXT)"
        )
        old.execute("INSERT INTO files VALUES ('a.png', 1, 2, 3, 4, 'old')")
        old.commit()
    ledger = Ledger(db)
    try:
        # the old row holds no ctime, so it matches no file's signature: hashed once more
        assert ledger.load_digest("a.png") == ((1, 2, 3, 4, None), "old")
        ledger.save_digest("a.png", (1, 2, 3, 4, 5), "new")
        assert ledger.load_digest("a.png") == ((1, 2, 3, 4, 5), "new")
    finally:
        ledger.close()
    Ledger(db).close()  # and opening it again finds the column there
