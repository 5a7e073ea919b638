"""Headless Chromium for the tests: the ``chromium`` fixture.

Debian's ``chromium`` package (``/usr/bin/chromium``, installed by ``.ci/run``)
driven through Playwright's Python API, started with the flags a closed network
needs: no background networking, no component updates, no sync, a fresh
profile. Without Chromium or Playwright the tests that need it skip, unless
``ACPBUILD_REQUIRE_SERVERS=1`` (as CI sets it) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.servers import unavailable

#: flags for a headless run on a machine with no network to speak of
FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


class Unavailable(Exception):
    """No headless Chromium can be started here; the message says why."""


def executable() -> str | None:
    """Debian's Chromium, or another on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on the way out."""
    exe = executable()
    if exe is None:
        raise Unavailable("Chromium not found (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise Unavailable("playwright is not installed (pip install -e '.[dev]')") from None
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=exe, headless=True, args=FLAGS)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    try:
        with browser() as found:
            yield found
    except Unavailable as exc:
        unavailable(str(exc))
