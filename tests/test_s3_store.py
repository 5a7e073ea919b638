"""What the S3 store does beyond the blob contract: sharing through a bucket, and refusing bad objects.

Every test talks to moto's S3 server on 127.0.0.1 (``tests/s3_server.py``)
through the real boto3 client, or to a small HTTP server that refuses
everything; none reaches AWS. The contract itself runs in test_store_contract.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import xxhash

from acpbuild.errors import StoreError, StoreUnreachable
from acpbuild.store import layout
from acpbuild.store.local import LocalBlobStore
from acpbuild.store.s3 import S3BlobStore
from tests.s3_server import S3Server, isolate

DATA = b"\x89PNG a cover, or near enough\n" * 200
DIGEST = xxhash.xxh3_128_hexdigest(DATA)


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own AWS settings never reach these tests."""
    isolate(monkeypatch)


@pytest.fixture
def url(s3_server: S3Server) -> str:
    return f"s3://{s3_server.new_bucket()}/acp"


def machine(tmp_path: Path, name: str, url: str, env: dict[str, str]) -> S3BlobStore:
    """An S3 store as one machine opens it: its own local cache, the shared bucket behind it."""
    root = tmp_path / name
    local = LocalBlobStore(layout.objects_dir(root), layout.tmp_dir(root))
    return S3BlobStore(url, local=local, env=env)


def put(store: S3BlobStore, data: bytes = DATA) -> str:
    staged = store.staging(".png")
    staged.write_bytes(data)
    return store.put(staged)


def bucket_of(url: str) -> str:
    return url.removeprefix("s3://").split("/")[0]


def count_calls(store: S3BlobStore, operation: str, then: Any = None) -> list[int]:
    """A list that grows by one each time ``store`` sends ``operation``; ``then(n)`` runs first."""
    calls: list[int] = []

    def before(**_: Any) -> None:
        calls.append(len(calls) + 1)
        if then is not None:
            then(len(calls))

    store.client.meta.events.register(f"before-call.s3.{operation}", before)
    return calls


# -- sharing -------------------------------------------------------------------------------


def test_a_second_machine_gets_what_the_first_put(s3_server: S3Server, url: str, tmp_path: Path) -> None:
    first = machine(tmp_path, "one", url, s3_server.env)
    second = machine(tmp_path, "two", url, s3_server.env)
    assert put(first) == DIGEST
    assert not second.local.has(DIGEST)
    assert second.has(DIGEST)
    assert second.get(DIGEST).read_bytes() == DATA
    # now in its own cache: the next read is local, and outputs are made from it
    assert second.local.has(DIGEST) and second.get(DIGEST) == second.path(DIGEST)
    out = tmp_path / "out" / "cover.png"
    second.materialise(DIGEST, out)
    assert out.read_bytes() == DATA
    # no download was left behind in its staging folder
    assert list(layout.tmp_dir(tmp_path / "two").iterdir()) == []


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        # the usual: a folder of the bucket
        ("/acp", f"acp/{DIGEST[:2]}/{DIGEST[2:]}"),
        # slashes around the prefix are not part of the name
        ("/team/acp/", f"team/acp/{DIGEST[:2]}/{DIGEST[2:]}"),
        # the whole bucket
        ("", f"{DIGEST[:2]}/{DIGEST[2:]}"),
    ],
)
def test_the_object_is_named_by_the_digest(s3_server: S3Server, tmp_path: Path, prefix: str, expected: str) -> None:
    bucket = s3_server.new_bucket()
    put(machine(tmp_path, "one", f"s3://{bucket}{prefix}", s3_server.env))
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == [expected]


def test_a_second_put_of_the_same_bytes_does_not_rewrite_the_object(
    s3_server: S3Server, url: str, tmp_path: Path
) -> None:
    client, bucket = s3_server.client(), bucket_of(url)
    # with versioning on, every write of the object would leave a version
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = machine(tmp_path, "one", url, s3_server.env)
    second = machine(tmp_path, "two", url, s3_server.env)
    put(first)
    puts = count_calls(second, "PutObject")
    assert put(second) == DIGEST
    assert len(puts) == 1  # one conditional put, refused: no repair followed
    versions = client.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 1
    assert second.get(DIGEST).read_bytes() == DATA


# -- bad objects ---------------------------------------------------------------------------

BAD_OBJECTS = [
    # other bytes altogether
    pytest.param(b"bit rot", id="corrupt"),
    # a transfer cut off half way
    pytest.param(DATA[: len(DATA) // 2], id="truncated"),
]


@pytest.mark.parametrize("bad", BAD_OBJECTS)
def test_a_bad_remote_object_is_refused_until_a_put_repairs_it(
    s3_server: S3Server, url: str, tmp_path: Path, bad: bytes
) -> None:
    first = machine(tmp_path, "one", url, s3_server.env)
    put(first)
    s3_server.client().put_object(Bucket=bucket_of(url), Key=first.key(DIGEST), Body=bad)
    second = machine(tmp_path, "two", url, s3_server.env)
    assert second.has(DIGEST)  # a HEAD cannot tell
    downloads = count_calls(second, "GetObject")
    with pytest.raises(StoreError, match=f"the remote's object for {DIGEST} is corrupt"):
        second.get(DIGEST)
    assert len(downloads) == 2  # downloaded once more before giving up
    # nothing entered the cache, no download was left behind, and no output is made from it
    assert not second.local.has(DIGEST)
    assert list(layout.tmp_dir(tmp_path / "two").iterdir()) == []
    out = tmp_path / "out" / "cover.png"
    with pytest.raises(StoreError):
        second.materialise(DIGEST, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    # so the run makes it again, and its put repairs the object for everyone
    assert not second.has(DIGEST)
    assert put(second) == DIGEST
    assert second.get(DIGEST).read_bytes() == DATA
    third = machine(tmp_path, "three", url, s3_server.env)
    assert third.get(DIGEST).read_bytes() == DATA


def test_a_put_over_a_damaged_object_of_another_size_repairs_it(
    s3_server: S3Server, url: str, tmp_path: Path
) -> None:
    # the machine that finds the damage is not always the one that stores the bytes again
    first = machine(tmp_path, "one", url, s3_server.env)
    client = s3_server.client()
    client.put_object(Bucket=bucket_of(url), Key=first.key(DIGEST), Body=DATA[:10])
    put(first)
    assert client.get_object(Bucket=bucket_of(url), Key=first.key(DIGEST))["Body"].read() == DATA


def test_a_damage_repaired_between_two_downloads_is_accepted(
    s3_server: S3Server, url: str, tmp_path: Path
) -> None:
    first = machine(tmp_path, "one", url, s3_server.env)
    put(first)
    s3_server.client().put_object(Bucket=bucket_of(url), Key=first.key(DIGEST), Body=b"bit rot")
    second = machine(tmp_path, "two", url, s3_server.env)

    def repair(attempt: int) -> None:
        if attempt == 2:  # the first machine stores the bytes again (a real put) before the retry
            put(first)

    downloads = count_calls(second, "GetObject", then=repair)
    assert second.get(DIGEST).read_bytes() == DATA
    assert len(downloads) == 2
    assert second.local.has(DIGEST)


def test_a_blob_the_bucket_lacks_is_missing(s3_server: S3Server, url: str, tmp_path: Path) -> None:
    store = machine(tmp_path, "one", url, s3_server.env)
    assert not store.has(DIGEST)
    with pytest.raises(StoreError, match=f"blob {DIGEST} is missing .* and from {url}"):
        store.get(DIGEST)


def test_a_failed_upload_is_a_store_error(s3_server: S3Server, url: str, tmp_path: Path) -> None:
    # put returns only once the bucket holds the blob: a step is not done before that
    store = machine(tmp_path, "one", url, s3_server.env)
    s3_server.client().delete_bucket(Bucket=bucket_of(url))
    src = store.staging(".png")
    src.write_bytes(DATA)
    with pytest.raises(StoreError, match=f"cannot upload blob {DIGEST} to {url}: the bucket '.*' does not exist"):
        store.put(src)
    # the bytes are still where the provider left them, for the run to keep: a paid result is not lost
    assert src.read_bytes() == DATA
    assert not store.local.has(DIGEST)


# -- opening -------------------------------------------------------------------------------


def test_a_missing_bucket_is_unreachable(s3_server: S3Server, tmp_path: Path) -> None:
    with pytest.raises(StoreUnreachable) as refused:
        machine(tmp_path, "one", "s3://no-such-bucket/acp", s3_server.env)
    assert str(refused.value) == (
        "cannot use the remote store s3://no-such-bucket/acp: the bucket 'no-such-bucket' does not exist"
    )
    assert refused.value.exit_code == 2


@pytest.mark.parametrize(
    "bad_url",
    [
        "https://bucket/acp",  # another scheme
        "s3://",  # no bucket
        "s3:///acp",  # an empty bucket name
        "media/acp",  # no scheme at all
    ],
)
def test_a_url_that_is_not_s3_is_unreachable(s3_server: S3Server, tmp_path: Path, bad_url: str) -> None:
    with pytest.raises(StoreUnreachable, match="is not an s3://bucket/prefix URL") as refused:
        machine(tmp_path, "one", bad_url, s3_server.env)
    assert bad_url in str(refused.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_endpoint_that_does_not_answer_is_unreachable_quickly(s3_server: S3Server, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {**s3_server.env, "AWS_ENDPOINT_URL": endpoint}
    began = time.monotonic()
    with pytest.raises(StoreUnreachable, match=f"cannot use the remote store s3://media/acp: no answer from {endpoint}"):
        machine(tmp_path, "one", "s3://media/acp", env)
    assert time.monotonic() - began < 10


def test_the_s3_endpoint_variable_wins(s3_server: S3Server, url: str, tmp_path: Path) -> None:
    # AWS_ENDPOINT_URL_S3 is S3's own; AWS_ENDPOINT_URL may point other services elsewhere
    env = {**s3_server.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}", "AWS_ENDPOINT_URL_S3": s3_server.endpoint}
    assert machine(tmp_path, "one", url, env).endpoint == s3_server.endpoint


class _Refusing(BaseHTTPRequestHandler):
    """An S3 endpoint that refuses every request, as S3 refuses a wrong secret key."""

    def _refuse(self) -> None:
        body = b"" if self.command == "HEAD" else b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET = do_PUT = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_refused_credentials_are_unreachable_and_never_shown(refusing_endpoint: str, tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG",
        "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-never-shown",
        "AWS_ENDPOINT_URL": refusing_endpoint,
    }
    with pytest.raises(StoreUnreachable) as refused:
        machine(tmp_path, "one", "s3://media/acp", env)
    assert str(refused.value) == (
        "cannot use the remote store s3://media/acp: access denied (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )
    assert refused.value.exit_code == 2


# -- describing ----------------------------------------------------------------------------


def test_describe_names_bucket_and_endpoint_and_never_the_secret(
    s3_server: S3Server, url: str, tmp_path: Path
) -> None:
    env = {**s3_server.env, "AWS_SECRET_ACCESS_KEY": "a-secret-that-must-not-show"}
    store = machine(tmp_path, "one", url, env)
    described = store.describe()
    assert described == f"S3 bucket '{bucket_of(url)}' prefix 'acp' at {s3_server.endpoint} (read, write and delete ok)"
    assert "a-secret-that-must-not-show" not in described
    # the probe is gone again
    assert s3_server.client().list_objects_v2(Bucket=bucket_of(url)).get("Contents", []) == []


def test_describe_of_a_store_that_cannot_write_is_a_store_error(
    s3_server: S3Server, url: str, tmp_path: Path
) -> None:
    store = machine(tmp_path, "one", url, s3_server.env)
    s3_server.client().delete_bucket(Bucket=bucket_of(url))
    with pytest.raises(StoreError, match=f"cannot use the remote store {url}: cannot write a probe object: the bucket"):
        store.describe()


def test_the_local_store_describes_its_folder(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store", "copy", {})
    assert store.describe() == f"local store at {tmp_path / 'store'}"


def test_open_blobs_with_a_remote_gives_the_s3_store(s3_server: S3Server, url: str, tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store", "copy", {**s3_server.env, layout.REMOTE_VAR: url})
    assert isinstance(store, S3BlobStore)
    assert (store.url, store.local.root) == (url, tmp_path / "store")


def test_a_plan_whose_stored_input_the_remote_refuses_runs_the_step_that_reads_it(
    s3_server: S3Server, url: str, tmp_path: Path
) -> None:
    from acpbuild.engine.workflow import forecast, run

    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(
        '[steps.script]\nkind = "text"\nprompt = "a harbour at dawn"\noutput = "script.txt"\n\n'
        '[steps.card]\nkind = "text_to_image"\nprompt = "${steps.script}"\nwidth = 32\nheight = 32\noutput = "card.png"\n'
    )
    env = {**s3_server.env, layout.REMOTE_VAR: url}
    first = run(recipe, env=env)
    assert first.success, first.to_dict()
    script = (tmp_path / "out" / "script.txt").read_bytes()
    digest = xxhash.xxh3_128_hexdigest(script)
    # the outputs and this machine's copies are gone; the bucket's copy of the script is damaged
    for folder in (tmp_path / "out", layout.objects_dir(tmp_path / ".acpbuild")):
        for path in [p for p in folder.rglob("*") if p.is_file()]:
            path.unlink()
    remote = machine(tmp_path, "peek", url, s3_server.env)
    s3_server.client().put_object(Bucket=bucket_of(url), Key=remote.key(digest), Body=b"bit rot")
    plan = forecast(recipe, env=env)
    found = {e.name: e for e in plan.entries}
    assert found["script"].state == "restorable"  # a HEAD cannot tell
    card = found["card"]
    assert (card.state, card.reason) == ("run", "needs script, whose stored output could not be fetched")
    assert card.estimate.usd == 0 and plan.total == 0  # a free step, estimated as one
