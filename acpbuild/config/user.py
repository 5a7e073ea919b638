"""The user's own settings: ``config.toml`` in acpbuild's folder of the user's config.

    monthly_cap_usd = 50      # never spend more than this in a calendar month (per ledger)
    confirm_above_usd = 0     # ask before a run that would pay more than this (0: any paid call)
    ledger = "postgresql://ci@db.internal/acpbuild"   # a team's shared ledger (ACPBUILD_LEDGER wins)
    remote = "s3://media-cache/acpbuild"              # a team's shared store (ACPBUILD_REMOTE wins)
    output_roots = ["/srv/media"]                     # folders outside a project that outputs may go to
    providers = ["studio_tools.voice:StudioVoice"]    # provider plugins by module:Class (see below)

``providers`` names adapters that are not installed as packages: a module
importable from the folder acpbuild runs in (a content repo's own code) or
from Python's path, and the Provider class in it. Installed plugins need no
entry here: they register through the ``acpbuild.providers`` entry points.

The ledger and the remote belong here or in the environment, never in a recipe:
a recipe is committed, and a ledger URL may hold a password.

``ACPBUILD_CONFIG`` names another file. Otherwise the folder is the platform's own
place, as platformdirs knows it: ``$XDG_CONFIG_HOME/acpbuild`` or
``~/.config/acpbuild`` on Linux, ``~/Library/Application Support/acpbuild`` on
macOS, ``%APPDATA%\\acpbuild`` on Windows. A missing file means no cap and the
default threshold.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import tomli

from acpbuild.errors import RecipeError

#: by default an interactive run asks before any paid call
DEFAULT_CONFIRM_ABOVE_USD = 0.0


@dataclass(frozen=True)
class UserConfig:
    path: Path | None = None
    monthly_cap_usd: float | None = None
    confirm_above_usd: float = DEFAULT_CONFIRM_ABOVE_USD
    #: a shared ledger's URL (``postgresql://…``), or None: the store's own SQLite file
    ledger: str | None = None
    #: a shared store's URL (``s3://bucket/prefix``), or None: the local store alone
    remote: str | None = None
    #: folders outside any project that a recipe's ``output_dir`` may name (absolute, as written)
    output_roots: tuple[Path, ...] = ()
    #: provider plugins named by "module:Class", besides the installed ones
    providers: tuple[str, ...] = ()


#: the variables platformdirs finds the user's config folder from, on Linux and macOS
_HOME_VARS = ("XDG_CONFIG_HOME", "HOME")


def config_path(env: Mapping[str, str]) -> Path | None:
    """Where the config file is looked for in the environment ``env`` (None: nowhere).

    platformdirs reads the process environment, so it answers when ``env`` has the
    process's ``XDG_CONFIG_HOME`` and ``HOME``, as the command line's does (the
    process environment plus ``.env``). An ``env`` with others, such as one given
    to the Python API's ``env=``, is read the XDG way: its ``XDG_CONFIG_HOME``,
    else its ``HOME``, else no config file but the one ``ACPBUILD_CONFIG`` names.
    """
    if env.get("ACPBUILD_CONFIG"):
        return Path(env["ACPBUILD_CONFIG"]).expanduser()
    if all(env.get(name) == os.environ.get(name) for name in _HOME_VARS):
        # roaming: on Windows, settings follow the user's profile from machine to machine
        return platformdirs.user_config_path("acpbuild", appauthor=False, roaming=True) / "config.toml"
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "acpbuild" / "config.toml"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".config" / "acpbuild" / "config.toml"
    return None


def load_config(env: Mapping[str, str]) -> UserConfig:
    """Read the user's config; raise :class:`RecipeError` (exit 2) when it is malformed."""
    path = config_path(env)
    if path is None or not path.is_file():
        return UserConfig(path)
    try:
        data = tomli.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomli.TOMLDecodeError) as exc:
        raise RecipeError(f"cannot read the config file: {exc}", file=str(path)) from exc
    dollars = {"monthly_cap_usd", "confirm_above_usd"}
    urls = {"ledger": ("postgresql://", "postgres://"), "remote": ("s3://",)}
    for key, value in data.items():
        if key in urls:
            if not isinstance(value, str) or not value.startswith(urls[key]):
                raise RecipeError(
                    f"{key} must be a URL starting with {' or '.join(urls[key])}", file=str(path)
                )
        elif key == "output_roots":
            _check_roots(value, path)
        elif key == "providers":
            _check_providers(value, path)
        elif key not in dollars:
            known = ", ".join(sorted(dollars | set(urls) | {"output_roots", "providers"}))
            raise RecipeError(f"unknown key {key!r}", file=str(path), tip=f"known keys: {known}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RecipeError(f"{key} must be a number of US dollars, 0 or more", file=str(path))
    return UserConfig(
        path,
        monthly_cap_usd=float(data["monthly_cap_usd"]) if "monthly_cap_usd" in data else None,
        confirm_above_usd=float(data.get("confirm_above_usd", DEFAULT_CONFIRM_ABOVE_USD)),
        ledger=data.get("ledger"),
        remote=data.get("remote"),
        output_roots=tuple(Path(root) for root in data.get("output_roots", ())),
        providers=tuple(data.get("providers", ())),
    )


_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _check_providers(value: object, path: Path) -> None:
    """``providers`` is a list of "module:Class" strings."""
    tip = 'e.g. providers = ["studio_tools.voice:StudioVoice"]'
    if not isinstance(value, list):
        raise RecipeError('providers must be a list of "module:Class" names', file=str(path), tip=tip)
    for target in value:
        if not isinstance(target, str) or not _TARGET.fullmatch(target):
            raise RecipeError(f'providers: {target!r} is not a "module:Class" name', file=str(path), tip=tip)


def _check_roots(value: object, path: Path) -> None:
    """``output_roots`` is a list of absolute folder paths."""
    tip = 'e.g. output_roots = ["/srv/media"]'
    if not isinstance(value, list):
        raise RecipeError("output_roots must be a list of absolute folder paths", file=str(path), tip=tip)
    for root in value:
        if not isinstance(root, str) or "\0" in root or not Path(root).is_absolute():
            raise RecipeError(
                f"output_roots: {root!r} is not an absolute folder path", file=str(path), tip=tip
            )
