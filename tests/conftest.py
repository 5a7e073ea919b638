"""Shared test helpers: copying fixture recipes and counting provider calls in the ledger."""

from __future__ import annotations

import os
import shutil
import sqlite3
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
