"""``acpbuild doctor``: is this machine ready? Keys (never their values), tools, store, and optional pings."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from acpbuild import providers
from acpbuild.config.secrets import redact
from acpbuild.errors import AcpbuildError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    #: a missing key is information, not a failure: the local provider needs none
    required: bool = True


def _ffmpeg() -> Check:
    try:
        from acpbuild import process
        from acpbuild.media import ffmpeg_exe

        exe = ffmpeg_exe()
        first = process.run([exe, "-version"], timeout=20).stdout.splitlines()
        return Check("ffmpeg", True, f"{first[0] if first else 'ffmpeg'} ({exe})")
    except (AcpbuildError, OSError, subprocess.SubprocessError) as exc:
        return Check("ffmpeg", False, f"not usable: {exc}; reinstall with pip install --force-reinstall imageio-ffmpeg")


def _espeak() -> Check:
    try:
        from acpbuild.providers.local.speech import synthesize

        samples, rate = synthesize("ok")
        return Check("eSpeak NG", bool(samples), f"speaks ({len(samples) / rate:.2f} s of audio for 'ok')")
    except AcpbuildError as exc:
        return Check("eSpeak NG", False, f"not usable: {exc}; reinstall espeakng-loader")


def _store(store: Path) -> Check:
    """Whether a run could write the store. A store that does not exist yet is not made here
    (a check that leaves an empty store behind would have ``info`` and ``costs`` report it): the
    nearest folder that exists must take a file, since the first run makes the store in it."""
    folder = next((p for p in (store, *store.parents) if p.exists()), store)
    if folder.exists() and not folder.is_dir():
        return Check("store", False, f"not writable: {folder} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("store", False, f"not writable: {store} ({exc.strerror} in {folder})")
    if folder == store:
        return Check("store", True, f"writable: {store}")
    return Check("store", True, f"writable: {store} (not created yet: the first run makes it in {folder})")


def _shared(env: Mapping[str, str], store: Path) -> list[Check]:
    """The team's shared ledger and remote store, when configured: reachable, writable, which server.

    Each is opened as a run opens it, so a wrong password or a missing bucket
    shows here exactly as a run would report it (credentials masked).
    """
    from acpbuild.config.secrets import masked_url
    from acpbuild.store import layout

    found: list[Check] = []
    url = layout.ledger_url(env)
    if url is None:
        found.append(Check("shared ledger", False, "none: this store's own SQLite ledger (ACPBUILD_LEDGER not set)", False))
    else:
        try:
            ledger = layout.open_ledger(store, env)
            try:
                found.append(Check("shared ledger", True, ledger.describe()))
            finally:
                ledger.close()
        except AcpbuildError as exc:
            found.append(Check("shared ledger", False, redact(str(exc), env) or masked_url(url)))
    url = layout.remote_url(env)
    if url is None:
        found.append(Check("remote store", False, "none: the local store alone (ACPBUILD_REMOTE not set)", False))
    else:
        try:
            found.append(Check("remote store", True, layout.open_blobs(store, env=env).describe()))
        except AcpbuildError as exc:
            found.append(Check("remote store", False, redact(str(exc), env)))
    return found


def checks(env: Mapping[str, str], store: Path, *, ping: bool) -> list[Check]:
    """Every check, in the order shown."""
    found: list[Check] = []
    for name in providers.names(env):
        cls = providers.provider_class(name, env)
        origin = providers.origin(name, env)
        if origin.via != "built in":
            found.append(Check(f"plugin {name}", True, f"{origin.describe()} ({origin.target})"))
        if not cls.paid:
            continue
        provider = cls(env)
        key_set = provider.api_key() is not None
        vars_ = " or ".join(cls.key_vars)
        url = f"; endpoint {cls.url_var}={env[cls.url_var]}" if cls.url_var in env else ""
        found.append(Check(f"{name} key", key_set, (f"{vars_} is set" if key_set else f"{vars_} not set") + url, False))
        if ping and key_set:
            # one line per route the provider uses (Google: Gemini API, and Vertex AI for Veo)
            for label, call in provider.pings().items():
                try:
                    found.append(Check(f"{name} {label}", True, redact(call(), env)))
                except AcpbuildError as exc:
                    found.append(Check(f"{name} {label}", False, redact(str(exc), env)))
    found += [Check(f"plugin {b.name}", False, b.describe()) for b in providers.broken(env)]
    found += [_ffmpeg(), _espeak(), _store(store), *_shared(env, store)]
    return found
