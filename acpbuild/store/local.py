"""The local blob store: the embedded backend, a folder of files named by digest.

``objects/ab/cdef…`` holds each blob once, named by the xxh3-128 of its bytes.
A blob enters by rename from ``tmp/`` (same file system), so a crash leaves at
worst a stray temporary file, never a partial blob; the next run sweeps those
away. Outputs are copied (or hard-linked, when asked) into a temporary file
beside the output and renamed over it, so no output path ever holds half a file.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from pathlib import Path

from acpbuild import process
from acpbuild.errors import StoreError
from acpbuild.keys import Signature, file_digest, signature
from acpbuild.store import confine
from acpbuild.store.blobs import BlobStore, LinkMode

#: a file in ``tmp/`` whose name says no owner is swept once it is this old (seconds)
UNOWNED_AGE_S = 24 * 3600


class LocalBlobStore(BlobStore):
    """Blobs under ``objects``; staging files under ``tmp`` (on the same file system).

    :func:`acpbuild.store.layout.open_blobs` says where those folders are in a store.
    """

    def __init__(self, objects: Path, tmp: Path, link: LinkMode = "copy") -> None:
        self.root = objects.parent
        self.objects = objects
        self.tmp = tmp
        self.link = link
        #: the output folders this store has made (inside the output folder) and swept of
        #: dead runs' leftovers: each once
        self._ready: set[Path] = set()
        #: blobs this store stored or checked itself, by their signature then: while a
        #: blob's signature holds, it is not hashed again before each copy
        self._intact: dict[str, Signature] = {}
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.root}: {_reason(exc)}") from exc
        process.own_folder(self.tmp)  # a stopped run deletes its own staging files here

    def path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def staging(self, suffix: str) -> Path:
        """A fresh path in the store's own file system (so :meth:`put` is a rename).

        Its name says which process on which machine owns it, so :meth:`sweep`
        can tell a killed run's leftovers from a live run's work in a shared store.
        """
        return self.tmp / f"{process.tag()}{uuid.uuid4().hex}{suffix}"

    def sweep(self) -> int:
        """Remove the temporary files of processes on this machine that are no longer running.

        That is every file whose name holds a dead owner: staging files, and what
        a provider wrote beside one (``.<staging>.xxxx.part``). Another machine's
        files stay: whether their process is alive cannot be told from here. A
        file whose name says no owner (an older acpbuild's) goes once a day old;
        results kept for the next run (:meth:`keep`) always stay.
        """
        removed = 0
        try:
            entries = list(os.scandir(self.tmp))
        except OSError:
            return 0
        old = time.time() - UNOWNED_AGE_S
        for entry in entries:
            if entry.name.startswith("kept-"):
                continue
            if process.owner_of(entry.name) is None:
                try:
                    if entry.stat(follow_symlinks=False).st_mtime > old:
                        continue
                except OSError:
                    continue
            elif not process.dead_leftover(entry.name):
                continue
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
        return removed

    def put(self, src: Path, *, digest: str | None = None) -> str:
        """As :meth:`BlobStore.put`; ``digest``, when the caller has just hashed ``src``, is not computed again."""
        digest = digest or file_digest(src)
        dest = self.path(digest)
        try:
            dest.parent.mkdir(exist_ok=True)
            # keep the existing blob only if it is intact; fresh bytes repair a corrupt one
            if dest.exists() and file_digest(dest) == digest:
                src.unlink()
            else:
                os.chmod(src, 0o444)  # a blob is never edited in place
                os.replace(src, dest)
        except OSError as exc:
            raise StoreError(f"cannot store a blob in {dest.parent}: {_reason(exc)}") from exc
        self._vouch(digest, dest)
        return digest

    def keep(self, staged: Path, key: str) -> Path:
        # named by the key, with no process in the name: the sweep leaves it alone
        kept = self.tmp / f"kept-{key}"
        try:
            os.replace(staged, kept)
        except OSError as exc:
            raise StoreError(f"cannot keep the result at {kept}: {_reason(exc)}") from exc
        return kept

    def kept(self, key: str) -> Path | None:
        kept = self.tmp / f"kept-{key}"
        return kept if kept.is_file() else None

    def get(self, digest: str) -> Path:
        blob = self.path(digest)
        sig = signature(blob)
        if sig is not None and self._intact.get(digest) == sig:
            return blob
        if sig is None or not blob.is_file():
            raise StoreError(f"blob {digest} is missing from the store at {self.root}")
        actual = file_digest(blob)
        if actual != digest:
            # quarantine it, so the next run pays once rather than failing forever
            blob.replace(blob.with_name(blob.name + ".corrupt"))
            raise StoreError(f"blob {digest} is corrupt (its bytes hash to {actual}); it was set aside")
        self._intact[digest] = sig
        return blob

    def _vouch(self, digest: str, blob: Path) -> None:
        sig = signature(blob)
        if sig is not None:
            self._intact[digest] = sig

    def materialise(self, digest: str, dest: Path, *, inside: Path | None = None) -> None:
        blob = self.get(digest)
        try:
            fd, tmp = self._beside(dest, inside)
        except OSError as exc:
            raise StoreError(f"cannot write {dest}: {_reason(exc)}") from exc
        try:
            try:
                if self.link == "hardlink":
                    os.close(fd)
                    fd = -1
                    tmp.unlink()
                    try:
                        os.link(blob, tmp)
                    except OSError:
                        shutil.copyfile(blob, tmp)
                else:
                    _copy_into(blob, fd)
                    os.fchmod(fd, 0o644)
            finally:
                if fd >= 0:
                    os.close(fd)
            if inside is not None:
                # a folder on the way swapped for a symlink since make_parents: nothing stays outside
                confine.check_inside(dest, inside)
            os.replace(tmp, dest)
            tmp.unlink(missing_ok=True)  # rename is a no-op when both already link the blob
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {dest}: {_reason(exc)}") from exc
        except BaseException:  # a StoreError from confine among them
            tmp.unlink(missing_ok=True)
            raise
        finally:
            process.forget(tmp)

    def _beside(self, dest: Path, inside: Path | None) -> tuple[int, Path]:
        """A temporary file beside ``dest``, open, named with this process (a killed run's
        leftover is told from a live run's); its folder made and swept first, once per store."""
        folder = dest.parent
        if folder in self._ready:
            try:
                return process.open_temp(folder, prefix=f".{dest.name}.")
            except FileNotFoundError:
                self._ready.discard(folder)  # removed since: made again
        if inside is None:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            confine.make_parents(dest, inside)
        process.sweep_folder(folder)
        self._ready.add(folder)
        return process.open_temp(folder, prefix=f".{dest.name}.")

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.objects.rglob("*") if p.is_file())

    def describe(self) -> str:
        return f"local store at {self.root}"


#: what sendfile says where a file system cannot do it: copy through user space instead
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODEV, errno.ENOTSOCK}


def _copy_into(blob: Path, fd: int) -> None:
    """Copy the file ``blob`` into the open file ``fd``: in the kernel where it can."""
    with open(blob, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        done = 0
        try:
            while done < size:
                sent = os.sendfile(fd, src.fileno(), done, size - done)
                if sent == 0:
                    break
                done += sent
        except OSError as exc:
            if done or exc.errno not in _NO_SENDFILE:
                raise
            with open(fd, "wb", closefd=False) as out:  # a file system without sendfile
                shutil.copyfileobj(src, out)


def _reason(exc: OSError) -> str:
    """What the OS said, in words (``No space left on device``)."""
    return exc.strerror or str(exc)
