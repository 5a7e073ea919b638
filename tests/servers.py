"""The one rule for a test that needs a real server (PostgreSQL, S3, Chromium) this machine lacks:
skip with the reason locally, fail when ``ACPBUILD_REQUIRE_SERVERS=1`` (CI, where it must run)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("ACPBUILD_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason}, and ACPBUILD_REQUIRE_SERVERS=1")
    pytest.skip(reason)
