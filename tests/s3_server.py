"""A local S3 for tests: moto's server on 127.0.0.1, one per test session, with fake credentials.

Tests hand :attr:`S3Server.env` to the store explicitly, and :func:`isolate`
keeps the developer's own ``AWS_*`` settings out of the process, so no test
ever reaches a real AWS host. Without moto's server mode the tests that need it
are skipped, or fail when ``ACPBUILD_REQUIRE_SERVERS=1`` (CI, where it must run).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers import unavailable


@dataclass
class S3Server:
    """A running moto server: its address, and the environment that points a store at it."""

    endpoint: str
    env: dict[str, str]
    _client: Any = None

    def client(self) -> Any:
        """A boto3 S3 client of the server's, with the same fake credentials (one, shared)."""
        if self._client is None:
            import boto3

            session = boto3.session.Session(
                aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                region_name=self.env["AWS_DEFAULT_REGION"],
            )
            self._client = session.client("s3", endpoint_url=self.endpoint)
        return self._client

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name: each test gets its own."""
        name = f"acp-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name


def isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the developer's ``AWS_*`` settings and files out of ``os.environ`` for one test."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1, stopped on the way out (the benchmarks use
    this too); ImportError when moto's server mode is not installed."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # 0: the OS picks a free port
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        yield S3Server(endpoint, env)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1, for the whole session."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        unavailable(f"moto's server mode cannot be imported ({exc}); pip install 'moto[server]'")
    with moto_server() as server:
        yield server
