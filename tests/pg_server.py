"""A throwaway PostgreSQL server for the tests: the ``postgres`` fixture.

One cluster per test session, in a temporary folder, listening on 127.0.0.1 at a
free port with password (SCRAM) authentication, stopped and deleted at the end.
Each test asks it for an empty database of its own. Without the server binaries
(Debian package ``postgresql``) the tests that need it skip, unless
``ACPBUILD_REQUIRE_SERVERS=1`` (as CI sets it) makes that a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import unavailable

USER = "acpbuild"
#: the cluster's password: a test-only value
PASSWORD = "test-only-password"


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: its address, version, and fresh databases on demand."""

    host: str
    port: int
    #: the server's version, as "15.18"
    version: str

    def url(self, dbname: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@{self.host}:{self.port}/{dbname}"

    def new_database(self) -> str:
        """Create an empty database with a name of its own; its URL."""
        import psycopg

        name = f"ledger_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "pg_ctl").exists()]

    def major(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    return max(candidates, key=major) if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


@contextmanager
def cluster() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster in a temp dir, stopped and deleted on the way out;
    :class:`Unavailable` when none can be started (the benchmarks use this too)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise Unavailable("PostgreSQL server binaries not found (Debian package postgresql)")
    try:
        import psycopg
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install 'psycopg[binary]')") from None

    # the server refuses to run as root: run it as the postgres user, in a folder of its own
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        as_user = [runuser, "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="acpbuild-pg-"))
    data, sockets, pwfile = home / "data", home / "sockets", home / "pwfile"
    sockets.mkdir()
    pwfile.write_text(PASSWORD + "\n")
    pwfile.chmod(0o600)
    if as_user:
        for path in (home, sockets, pwfile):
            shutil.chown(path, "postgres", "postgres")

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], check=False, capture_output=True, text=True, cwd=home)
        if done.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            raise Unavailable(f"{Path(args[0]).name} failed: {(done.stderr or done.stdout).strip()}")

    pg_ctl = str(bin_dir / "pg_ctl")
    port = _free_port()
    run(
        str(bin_dir / "initdb"),
        "-D", str(data),
        "--auth=scram-sha-256",
        f"--username={USER}",
        f"--pwfile={pwfile}",
        "--no-locale",
        "--encoding=UTF8",
        "--no-sync",
    )  # fmt: skip
    options = (
        f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    run(pg_ctl, "-D", str(data), "-l", str(home / "server.log"), "-w", "-o", options, "start")
    try:
        with psycopg.connect(
            f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres", connect_timeout=10
        ) as conn:
            number = conn.info.server_version
        yield PostgresServer("127.0.0.1", port, f"{number // 10000}.{number % 10000}")
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "stop", "-m", "immediate"], check=False, capture_output=True, cwd=home
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test session (skipped, or failed under
    ``ACPBUILD_REQUIRE_SERVERS=1``, when none can be started)."""
    try:
        with cluster() as server:
            yield server
    except Unavailable as exc:
        unavailable(str(exc))
