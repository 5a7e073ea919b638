"""Shared test helpers: copying fixture recipes and counting provider calls in the ledger."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.browser import chromium  # noqa: F401
from tests.pg_server import postgres  # noqa: F401
from tests.s3_server import s3_server  # noqa: F401

RECIPES = Path(__file__).parent / "recipes"


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see a developer's real keys or store settings."""
    for var in (
        "FAL_KEY",
        "ELEVENLABS_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "OPENROUTER_API_KEY",
        "ACPBUILD_STORE",
        "ACPBUILD_LEDGER",
        "ACPBUILD_REMOTE",
    ):
        monkeypatch.delenv(var, raising=False)
    # nor the developer's own config file (monthly cap, confirmation threshold)
    monkeypatch.setenv("ACPBUILD_CONFIG", os.devnull)


def copy_recipe(name: str, dest: Path) -> Path:
    """Copy ``tests/recipes/NAME`` into ``dest`` and return the copy's path."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    shutil.copyfile(RECIPES / name, target)
    return target


def provider_calls(store: Path) -> int:
    """How many generations the ledger has recorded: one row per provider call."""
    db = store / "ledger.sqlite3"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0])


def link_until_ctime_moves(target: Path, folder: Path, *, deadline_s: float = 5.0) -> int:
    """Give ``target`` new names in ``folder`` until its ctime shows the change; return how many.

    Each new hard link updates the inode's ctime, but the clock that stamps it ticks
    coarsely (a few milliseconds on Linux). A filesystem whose ctime has not moved
    after ``deadline_s`` cannot show what the caller tests: the test is skipped.
    """
    ctime = target.stat().st_ctime_ns
    deadline = time.monotonic() + deadline_s
    made = 0
    while target.stat().st_ctime_ns == ctime:
        if time.monotonic() > deadline:
            pytest.skip(f"the ctime of {target.name} did not move after {made} new hard links in {deadline_s:g} s")
        os.link(target, folder / f"{target.stem}-link-{made}{target.suffix}")
        made += 1
        time.sleep(0.001)  # one tick of a coarse clock is a few of these, not thousands of links
    return made

