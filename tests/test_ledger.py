"""The SQLite ledger's own ways: one WAL-mode file in the store, and older files upgraded.

What every ledger must do is in test_store_contract.py, which runs against this
backend too. Checks here read through a second, independent SQLite connection:
what it sees is what a process that starts after a crash would see.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from acpbuild.store import layout
from acpbuild.store.sqlite import SqliteLedger


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return layout.ledger_path(tmp_path / "store")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    opened = layout.open_ledger(tmp_path / "store")
    assert isinstance(opened, SqliteLedger)
    yield opened
    opened.close()


def outside(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows as another process sees them, through a connection of its own."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def test_the_ledger_is_one_file_in_the_store(ledger: SqliteLedger, db: Path) -> None:
    assert ledger.path == db and db.name == "ledger.sqlite3" and db.is_file()
    assert layout.has_ledger(db.parent)


def test_the_ledger_is_in_wal_mode(ledger: SqliteLedger, db: Path) -> None:
    # WAL lets readers (plan, a second run) look while a run writes
    assert outside(db, "PRAGMA journal_mode") == [("wal",)]
    with ledger._lock:  # the ledger's own connection says the same
        assert ledger._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_each_write_is_committed_before_the_call_returns(ledger: SqliteLedger, db: Path) -> None:
    gen_id = ledger.begin(
        "k1", recipe="demo", step="cover", kind="text_to_image", provider="fal", model="flux-dev",
        material="{}", estimated_cost=0.025, draft=False,
    )
    assert outside(db, "SELECT state, request_id FROM generations WHERE id=?", (gen_id,)) == [("submitted", None)]
    ledger.submitted(gen_id, "req-123")
    assert outside(db, "SELECT state, request_id FROM generations WHERE id=?", (gen_id,)) == [("submitted", "req-123")]


def test_writes_made_together_are_committed_as_one_or_not_at_all(ledger: SqliteLedger, db: Path) -> None:
    cover = db.parent / "cover.png"
    with ledger.together():
        ledger.save_digest("a.png", (1, 2, 3, 4, 5), "one")
        with ledger.together():  # nested: part of the same transaction
            ledger.set_output(cover, key="k1", digest="a" * 32, material="{}", recipe="demo", step="cover")
        # this connection sees its own writes; another process sees none until the block ends
        assert ledger.load_digest("a.png") == ((1, 2, 3, 4, 5), "one")
        assert outside(db, "SELECT COUNT(*) FROM files") == [(0,)]
    assert outside(db, "SELECT path, digest FROM files") == [("a.png", "one")]
    assert outside(db, "SELECT key FROM outputs") == [("k1",)]
    with pytest.raises(RuntimeError), ledger.together():
        ledger.save_digest("b.png", (1, 2, 3, 4, 5), "two")
        ledger.drop_output(cover)
        raise RuntimeError("a step broke half-way")
    assert ledger.load_digest("b.png") is None
    assert outside(db, "SELECT key FROM outputs") == [("k1",)]
    ledger.save_digest("c.png", (1, 2, 3, 4, 5), "three")  # and writes outside a block commit at once
    assert outside(db, "SELECT digest FROM files WHERE path='c.png'") == [("three",)]


def test_a_ledger_from_before_ctime_gains_the_column(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db)) as old:
        old.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, "
            "mtime_ns INTEGER, digest TEXT)"
        )
        old.execute("INSERT INTO files VALUES ('a.png', 1, 2, 3, 4, 'old')")
        old.commit()
    ledger = SqliteLedger(db)
    try:
        # the old row holds no ctime, so it matches no file's signature: hashed once more
        assert ledger.load_digest("a.png") == ((1, 2, 3, 4, None), "old")
        ledger.save_digest("a.png", (1, 2, 3, 4, 5), "new")
        assert ledger.load_digest("a.png") == ((1, 2, 3, 4, 5), "new")
    finally:
        ledger.close()
    SqliteLedger(db).close()  # and opening it again finds the column there
