"""Step keys and content digests.

A step key is the xxh3-128 of a canonical JSON of everything that decides a
generation's result: kind, provider, model, the adapter's version, the semantic
parameters after interpolation, and the digest of every input file or upstream
output. Output names, descriptions, timeouts, key order and API keys never enter
it, so renaming an output or reformatting a recipe never costs money.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import xxhash

#: bump when the shape of the key material changes
KEY_SCHEMA = 1

_CHUNK = 1 << 20


def _normal(value: Any) -> Any:
    # 6 and 6.0 are the same duration: a reformatted number must not change the key
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None or isinstance(value, float):
        return value
    raise TypeError(f"cannot key a value of type {type(value).__name__}")


def canonical(material: Any) -> str:
    """The canonical JSON text of ``material``: sorted keys, no spaces, integral floats as ints."""
    return json.dumps(_normal(material), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_of(material: Any) -> str:
    """The step key: xxh3-128 hex of :func:`canonical`."""
    return key_of_text(canonical(material))


def key_of_text(said: str) -> str:
    """The step key of material already made :func:`canonical`."""
    return xxhash.xxh3_128_hexdigest(said.encode("utf-8"))


def file_digest(path: Path) -> str:
    """xxh3-128 hex of a file's bytes, read in 1 MiB chunks."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


Signature = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns


def signature(path: str | Path) -> Signature | None:
    """The stat fields that move when a file's bytes change, or None when it does not exist."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # a file where a folder on the way should be
        return None
    # ctime catches a same-size rewrite whose mtime was put back (touch -r, os.utime):
    # no one can set it. But adding or removing any name of a file changes its ctime
    # too, and with --link hardlink every output is a name of a store blob that other
    # outputs link and unlink, so for a file with several names it would only make
    # unchanged media be hashed again.
    several = st.st_nlink > 1 and stat.S_ISREG(st.st_mode)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, 0 if several else st.st_ctime_ns)


class DigestCache:
    """File digests remembered by device, inode, size, mtime and ctime (see :func:`signature`).

    An untouched file is never read twice, in one run or across runs when a
    ``load``/``save`` pair (the ledger's ``files`` table) backs the cache.
    """

    def __init__(
        self,
        load: Callable[[str], tuple[Signature, str] | None] | None = None,
        save: Callable[[str, Signature, str], None] | None = None,
        preload: Callable[[], Mapping[str, tuple[Signature, str]]] | None = None,
    ) -> None:
        self._memory: dict[str, tuple[Signature, str]] = {}
        self._load = load
        self._save = save
        #: what ``load`` would say of many paths at once (a project's), asked at the first lookup
        self._preload = preload
        self._lock = threading.Lock()

    def digest(self, path: Path) -> str | None:
        """The digest of ``path``, or None when it does not exist."""
        found = self.signed(path)
        return None if found is None else found[1]

    def signed(self, path: Path) -> tuple[Signature, str] | None:
        """The digest of ``path`` and its signature from before it was read, or None when it does not exist."""
        sig = signature(path)
        if sig is None:
            return None
        name = str(path)
        if self._preload is not None:
            self._load_many()
        with self._lock:
            known = self._memory.get(name)
        if known is None and self._load is not None:
            known = self._load(name)
        if known is not None and tuple(known[0]) == sig:
            return sig, known[1]
        digest = file_digest(path)
        # a file written while we read it gets a new signature; only keep stable ones
        if signature(path) == sig:
            self.remember(path, sig, digest)
        return sig, digest

    def _load_many(self) -> None:
        """Take in what ``preload`` says, once; not holding the lock while it asks (the ledger
        has a lock of its own, held while it calls :meth:`remember`)."""
        with self._lock:
            preload, self._preload = self._preload, None
        if preload is None:
            return
        found = preload()
        with self._lock:
            for name, known in found.items():
                self._memory.setdefault(name, known)  # what was remembered meanwhile is newer

    def remember(self, path: Path, sig: Signature, digest: str) -> None:
        with self._lock:
            self._memory[str(path)] = (sig, digest)
        if self._save is not None:
            self._save(str(path), sig, digest)
