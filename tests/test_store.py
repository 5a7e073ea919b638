"""The local blob store's own ways (the objects folder, read-only blobs, hard links), and the digest cache.

What every blob store must do is in test_store_contract.py, which runs against
this backend too.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import xxhash
from conftest import link_until_ctime_moves

import acpbuild.keys
from acpbuild.errors import StoreError
from acpbuild.keys import DigestCache
from acpbuild.store import layout
from acpbuild.store.blobs import LinkMode
from acpbuild.store.local import LocalBlobStore

DATA = b"\x89PNG not really, but bytes all the same\n" * 100


def staged(store: LocalBlobStore, data: bytes = DATA, suffix: str = ".png") -> Path:
    """A staging file holding ``data``, as a provider would leave it."""
    path = store.staging(suffix)
    path.write_bytes(data)
    return path


def test_open_blobs_keeps_blobs_and_staging_files_where_the_layout_says(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    assert isinstance(store, LocalBlobStore)
    assert store.objects == tmp_path / "store" / "objects" and store.objects.is_dir()
    assert store.tmp == tmp_path / "store" / "tmp" and store.staging(".png").parent == store.tmp


def test_a_blob_is_a_read_only_file_named_by_its_digest(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    digest = store.put(staged(store))
    blob = store.path(digest)
    assert blob == store.objects / digest[:2] / digest[2:]
    assert blob.read_bytes() == DATA
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444


def test_put_of_known_bytes_keeps_one_file(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    first = store.put(staged(store))
    store.put(staged(store))
    assert [p for p in store.objects.rglob("*") if p.is_file()] == [store.path(first)]


# how outputs are made from blobs, and what each mode makes
LINK_MODES: list[LinkMode] = [
    # a private copy the user may edit
    "copy",
    # a hard link sharing the blob's inode, for large media
    "hardlink",
]


@pytest.mark.parametrize("link", LINK_MODES)
def test_materialise_copies_or_links(tmp_path: Path, link: LinkMode) -> None:
    store = layout.open_blobs(tmp_path / "store", link)
    digest = store.put(staged(store))
    dest = tmp_path / "out" / "cover.png"
    store.materialise(digest, dest)
    same_inode = dest.stat().st_ino == store.path(digest).stat().st_ino
    assert same_inode == (link == "hardlink")
    if link == "copy":
        assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_a_hard_link_refused_by_the_file_system_falls_back_to_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the output folder on another file system than the store: no hard link can cross
    def across_file_systems(src: object, dst: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    store = layout.open_blobs(tmp_path / "store", "hardlink")
    digest = store.put(staged(store))
    monkeypatch.setattr(os, "link", across_file_systems)
    dest = tmp_path / "out" / "cover.png"
    store.materialise(digest, dest)
    assert dest.read_bytes() == DATA
    assert dest.stat().st_ino != store.path(digest).stat().st_ino
    assert list(dest.parent.iterdir()) == [dest]  # and no temporary file is left beside it


def test_a_corrupt_blob_is_set_aside_beside_itself(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    digest = store.put(staged(store))
    blob = store.path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"bit rot")
    with pytest.raises(StoreError, match="corrupt"):
        store.get(digest)
    assert not blob.exists()
    assert blob.with_name(blob.name + ".corrupt").read_bytes() == b"bit rot"


@pytest.fixture
def digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path ``acpbuild.keys.file_digest`` reads, in order."""
    calls: list[Path] = []
    real = acpbuild.keys.file_digest

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(acpbuild.keys, "file_digest", counting)
    return calls


def test_digest_cache_reads_an_unchanged_file_once(
    tmp_path: Path, digest_calls: list[Path]
) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"one")
    cache = DigestCache()
    first = cache.digest(path)
    assert first == xxhash.xxh3_128_hexdigest(b"one")
    assert cache.digest(path) == first
    assert cache.digest(path) == first
    assert digest_calls == [path]


def _grow(path: Path) -> None:
    path.write_bytes(b"a longer content")


def _rewrite_later(path: Path) -> None:
    before = path.stat()
    path.write_bytes(b"two")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))


def _swap_in_twin(path: Path) -> None:
    before = path.stat()
    twin = path.with_name("twin")
    twin.write_bytes(b"two")
    os.utime(twin, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(twin, path)


def _rewrite_and_put_mtime_back(path: Path) -> None:
    before = path.stat()
    with open(path, "r+b") as f:
        f.write(b"two")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


# how a file changes between two digests
CHANGES = [
    # new bytes, new size
    pytest.param(_grow, id="size"),
    # same size, new bytes, a later mtime
    pytest.param(_rewrite_later, id="mtime"),
    # replaced by another file (new inode) of the same size and mtime
    pytest.param(_swap_in_twin, id="inode"),
    # same inode, same size, rewritten and its mtime put back (touch -r): only ctime moved
    pytest.param(_rewrite_and_put_mtime_back, id="ctime"),
]


@pytest.mark.parametrize("change", CHANGES)
def test_digest_cache_rereads_a_changed_file(
    tmp_path: Path, digest_calls: list[Path], change: Callable[[Path], object]
) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"one")
    cache = DigestCache()
    first = cache.digest(path)
    change(path)
    second = cache.digest(path)
    assert second == xxhash.xxh3_128_hexdigest(path.read_bytes()) != first
    assert digest_calls == [path, path]
    # and the new digest is remembered in turn
    assert cache.digest(path) == second
    assert len(digest_calls) == 2


def test_digest_cache_trusts_a_linked_file_whose_links_change(
    tmp_path: Path, digest_calls: list[Path]
) -> None:
    # with --link hardlink, outputs are names of store blobs; linking the blob
    # elsewhere changes its ctime, but not a byte of it
    blob = tmp_path / "blob"
    blob.write_bytes(b"one")
    output = tmp_path / "photo.png"
    os.link(blob, output)
    cache = DigestCache()
    first = cache.digest(output)
    link_until_ctime_moves(blob, tmp_path)  # new names until the clock shows one
    assert cache.digest(output) == first
    assert digest_calls == [output]


def test_digest_cache_is_not_read_again_across_runs(
    tmp_path: Path, digest_calls: list[Path]
) -> None:
    # a load/save pair (the ledger's files table) carries digests to the next run
    saved: dict[str, tuple[tuple[int, int, int, int, int], str]] = {}
    path = tmp_path / "photo.png"
    path.write_bytes(b"one")
    first_run = DigestCache(
        saved.get, lambda name, sig, digest: saved.__setitem__(name, (sig, digest))
    )
    digest = first_run.digest(path)
    second_run = DigestCache(
        saved.get, lambda name, sig, digest: saved.__setitem__(name, (sig, digest))
    )
    assert second_run.digest(path) == digest
    assert digest_calls == [path]


def test_digest_cache_of_a_missing_file_is_none(tmp_path: Path, digest_calls: list[Path]) -> None:
    assert DigestCache().digest(tmp_path / "nothing.png") is None
    assert digest_calls == []


def test_sweep_removes_only_what_dead_processes_of_this_machine_left(tmp_path: Path) -> None:
    import subprocess
    import sys

    store = layout.open_blobs(tmp_path / "store")
    mine = staged(store, b"in progress")  # this process is alive: its file stays
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host = mine.name.split("@")[1]
    orphan = store.tmp / f"{dead.stdout.strip()}@{host}@abc.png"
    orphan.write_bytes(b"half a picture")
    elsewhere = store.tmp / f"{dead.stdout.strip()}@another-machine@abc.png"  # may be alive there
    elsewhere.write_bytes(b"someone else's")
    assert store.sweep() == 1
    assert sorted(p.name for p in store.tmp.iterdir()) == sorted([mine.name, elsewhere.name])
