"""API keys: where they come from (the environment, then ``.env``), and keeping them out of text."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

#: every variable acpbuild reads a key from; their values never reach a log,
#: the ledger, a report or an exception message
KEY_VARS: tuple[str, ...] = (
    "FAL_KEY",
    "ELEVENLABS_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
)

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a variable name looks like it holds a credential."""
    return name in KEY_VARS or bool(_SECRET_NAME.search(name))


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables a ``.env`` file sets ({} when there is none), read by python-dotenv.

    So it is read as other tools read it: ``export`` and comments allowed, quoted
    values may span lines and hold escapes (``\\n``, ``\\"``) in double quotes, and
    ``${VAR}`` expands from an earlier line or the process environment. A name
    without ``=`` sets nothing.
    """
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {name: value for name, value in dotenv_values(path).items() if value is not None}


def environment(dotenv_dirs: tuple[Path, ...] = ()) -> dict[str, str]:
    """The process environment over any ``.env`` files found in ``dotenv_dirs``.

    A variable set in the environment wins over ``.env``; the first directory wins
    over later ones.
    """
    merged: dict[str, str] = {}
    for directory in reversed(dotenv_dirs):
        merged.update(read_dotenv(directory / ".env"))
    merged.update(os.environ)
    return merged


def masked_url(url: str) -> str:
    """``url`` with its password (``scheme://user:password@host``) replaced by ``***``."""
    # up to the last '@': a password may hold an unescaped one
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):.*@", r"\1:***@", url)


def redact(text: str, env: Mapping[str, str]) -> str:
    """``text`` with the value of every secret variable in ``env`` replaced by ``***``."""
    for name, value in env.items():
        if value and len(value) >= 4 and is_secret_name(name) and value in text:
            text = text.replace(value, "***")
    return text
