"""This process, its children and its temporary files: what a stopped run must not leave behind.

Every child process acpbuild starts (ffmpeg) goes through :func:`run`, which
starts it in its own process group and remembers it while it runs; every
temporary file is named by :func:`temp_file`, with this process's id and host
in its name. When the run is stopped (SIGTERM, SIGINT), :func:`stop` kills
those process groups and deletes those files, and refuses new ones from then
on; a later run tells a dead run's leftovers by the names (:func:`dead_leftover`).
"""

from __future__ import annotations

import glob
import os
import re
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "HOST",
    "Interrupted",
    "dead_leftover",
    "forget",
    "open_temp",
    "own_folder",
    "owner_of",
    "pid_alive",
    "replace_file",
    "reset",
    "run",
    "stop",
    "stopping",
    "sweep_beside",
    "sweep_folder",
    "sweep_own",
    "tag",
    "temp_file",
]

#: this machine, as claims and temporary files name it
HOST = os.uname().nodename if hasattr(os, "uname") else __import__("socket").gethostname()
# a temporary file's name holds its host between '@'s
_HOST = HOST.replace("@", "_")

#: how long a stopped child has to exit after SIGTERM before it gets SIGKILL
GRACE_S = 2.0

# The owner in a temporary file's name: ``<pid>@<host>@<random>``, at the start (a
# staging file, perhaps behind a dot) or after a dot or dash (a temporary file beside an output,
# a scratch file such as ".caption-<pid>@<host>@xxxx.png").
_OWNER = re.compile(r"(?:^\.?|[.-])(?P<pid>\d+)@(?P<host>[^@/]+)@[0-9A-Za-z_]")


class Interrupted(KeyboardInterrupt):
    """The run was stopped by signal ``signum``; ``kept`` says, in a few words, what it keeps."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.kept = ""

    @property
    def exit_code(self) -> int:
        """128 plus the signal's number, as a shell reports a process a signal stopped."""
        return 128 + self.signum


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def tag() -> str:
    """``<pid>@<host>@``: how a temporary file's name says which process owns it."""
    return f"{os.getpid()}@{_HOST}@"


def owner_of(name: str) -> tuple[int, str] | None:
    """The (pid, host) a temporary file's ``name`` says owns it, or None for a name without one.

    The last owner in the name counts: a temporary file beside an output whose
    own name looks like one is still told by the owner acpbuild appended.
    """
    found = list(_OWNER.finditer(name))
    if not found:
        return None
    return int(found[-1]["pid"]), found[-1]["host"]


def dead_leftover(name: str) -> bool:
    """Whether ``name`` is a temporary file of a process of this machine that no longer runs."""
    owner = owner_of(name)
    return owner is not None and owner[1] == _HOST and not pid_alive(owner[0])


def sweep_beside(dest: Path) -> int:
    """Remove the temporary files dead processes of this machine left beside ``dest``
    (``.<name>.<pid>@<host>@xxxx.tmp``, as :func:`temp_file` names them); return how many."""
    return _sweep(dest.parent, f".{glob.escape(dest.name)}.*@*@*.tmp")


def sweep_folder(folder: Path) -> int:
    """:func:`sweep_beside` for every file of ``folder`` at once, listing it once: for a
    writer of many outputs into one folder, which sweeps each folder once."""
    return _sweep(folder, ".*.*@*@*.tmp")


def _sweep(folder: Path, pattern: str) -> int:
    removed = 0
    for name in glob.glob(pattern, root_dir=folder):
        if dead_leftover(name):
            try:
                os.unlink(folder / name)
                removed += 1
            except OSError:
                pass
    return removed


# -- what this process must clean up when stopped ---------------------------------
_lock = threading.RLock()  # re-entrant: the signal handler may run while the main thread holds it
_stopping = threading.Event()
_children: set[subprocess.Popen[str]] = set()
_temp_files: set[Path] = set()
_own_folders: set[Path] = set()


def stopping() -> bool:
    """Whether :func:`stop` was called: a step must not start, nor a child process."""
    return _stopping.is_set()


def temp_file(directory: Path, *, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """Create an empty temporary file in ``directory``, named with this process's :func:`tag`.

    :func:`stop` deletes it unless :func:`forget` was called first (it was renamed
    into place, or deleted); once stopping, no temporary file is made.
    """
    fd, path = open_temp(directory, prefix=prefix, suffix=suffix)
    os.close(fd)
    return path


def open_temp(directory: Path, *, prefix: str = ".", suffix: str = ".tmp") -> tuple[int, Path]:
    """:func:`temp_file`, left open for writing (mode 0600): its descriptor, and its path."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    with _lock:
        if _stopping.is_set():
            raise Interrupted(signal.SIGTERM)
        while True:
            path = directory / f"{prefix}{tag()}{os.urandom(5).hex()}{suffix}"
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:
                continue
            _temp_files.add(path)
            return fd, path


def forget(path: Path) -> None:
    """``path``, a :func:`temp_file`, is no longer this process's to clean up."""
    with _lock:
        _temp_files.discard(path)


def replace_file(dest: Path, data: bytes | str) -> None:
    """Make ``dest`` hold ``data`` (text as UTF-8) atomically: written into a :func:`temp_file`
    beside it, then renamed over it, so a reader never sees half a file and a killed run's
    leftover is swept. Its folder must exist; raises :class:`OSError` for the caller to name.
    """
    sweep_beside(dest)
    tmp = temp_file(dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        forget(tmp)


def own_folder(folder: Path) -> None:
    """When stopped, delete this process's files in ``folder`` (a store's staging folder)."""
    with _lock:
        _own_folders.add(folder)


def run(cmd: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group, capturing its output as text; kill the group on timeout.

    Raises :class:`subprocess.TimeoutExpired` and :class:`OSError` as
    :func:`subprocess.run` does. A stopped run kills the group (see :func:`stop`):
    the child's exit status then says so, and :func:`stopping` is True.
    """
    import subprocess

    with _lock:
        if _stopping.is_set():
            raise Interrupted(signal.SIGTERM)
        child = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            # its own process group: a terminal's Ctrl-C reaches acpbuild only, and
            # acpbuild stops the child, with anything the child itself started
            start_new_session=True,
        )
        _children.add(child)
    try:
        try:
            out, err = child.communicate(timeout=timeout)
        except BaseException:  # a timeout, or this thread interrupted
            _signal_group(child, signal.SIGKILL)
            child.wait()
            raise
    finally:
        with _lock:
            _children.discard(child)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _signal_group(child: subprocess.Popen[str], signum: int) -> None:
    try:
        os.killpg(child.pid, signum)  # its own session: its pid is its group's id
    except OSError:
        pass  # already gone


def stop(grace: float = GRACE_S) -> tuple[int, int]:
    """Stop this process's work: refuse new children and temporary files, kill the children's
    process groups (SIGTERM, then SIGKILL after ``grace`` seconds) and delete its temporary files.

    Safe to call again (the CLI does, once the run has unwound). Returns
    (children stopped, files deleted).
    """
    with _lock:
        _stopping.set()
        children = list(_children)
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(child.poll() is None for child in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    for child in children:
        if child.poll() is None:
            _signal_group(child, signal.SIGKILL)
    return len(children), sweep_own()


def sweep_own() -> int:
    """Delete this process's temporary files: those made by :func:`temp_file`, and its files
    in each :func:`own_folder`. Returns how many."""
    with _lock:
        files = set(_temp_files)
        _temp_files.clear()
        folders = list(_own_folders)
    mine = f"{os.getpid()}@{_HOST}"
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            owner = owner_of(entry.name)
            if owner is not None and f"{owner[0]}@{owner[1]}" == mine:
                files.add(Path(entry.path))
    removed = 0
    for path in files:
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def reset() -> None:
    """Forget a stop: for a process (a test, a long-lived caller) that runs again after one."""
    with _lock:
        _stopping.clear()
        _temp_files.clear()
