"""Stopping a run: SIGTERM and SIGINT sent to a real `acpbuild run` process, temporary files
of dead runs, and full or unwritable disks on the store's side.

A stopped run kills its ffmpeg children (each in its own process group), deletes its own
temporary files, keeps what it finished and the paid jobs still running at the provider,
and exits 143 (SIGTERM) or 130 (SIGINT); the next run finishes the work.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acpbuild import process
from acpbuild.engine import lockfile, noop
from acpbuild.errors import StoreError
from acpbuild.store import layout
from tests.conftest import copy_recipe
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import FalEmulator

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "ACPBUILD_CONFIG": os.devnull,
        "ACPBUILD_NO_FASTPATH": "1",
        **extra,
    }
    env.pop("ACPBUILD_STORE", None)
    return env


def _start(recipe: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "acpbuild", "run", str(recipe), "--yes", *args],
        cwd=recipe.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_again(recipe: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "acpbuild", "run", str(recipe), "--yes"]
    return subprocess.run(cmd, cwd=recipe.parent, env=env, capture_output=True, text=True, timeout=120, check=False)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command may hold spaces and parentheses: fields follow the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _ffmpeg_of(run: subprocess.Popen[str], timeout: float = 60) -> int:
    """The pid of the ffmpeg rendering ``run``'s long clip, once well into its work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(run.pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "ffmpeg" in cmdline and ".mp4" in cmdline:
                time.sleep(0.3)
                if child in _children(run.pid):
                    return child
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    raise AssertionError("the run started no ffmpeg")


def _group_gone(pgid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# (signal, -j: the threaded runner, or the action in the main thread; the exit code it proves)
SIGNALS = {
    "SIGTERM, threads": (signal.SIGTERM, "4", 143),
    "SIGINT, threads": (signal.SIGINT, "4", 130),
    "SIGTERM, -j 1": (signal.SIGTERM, "1", 143),
}


@pytest.mark.parametrize("case", list(SIGNALS))
def test_a_signal_stops_ffmpeg_removes_temp_files_and_the_next_run_finishes(tmp_path: Path, case: str) -> None:
    signum, jobs, code = SIGNALS[case]
    recipe = copy_recipe("slow_local.toml", tmp_path)
    env = _env()
    run = _start(recipe, env, "-j", jobs)
    ffmpeg = _ffmpeg_of(run)
    assert os.getpgid(ffmpeg) == ffmpeg != os.getpgid(run.pid)  # its own process group
    run.send_signal(signum)
    out, err = run.communicate(timeout=30)
    assert run.returncode == code, out + err
    assert _group_gone(ffmpeg), "ffmpeg outlived the run"
    assert "temporary files removed" in err and "Traceback" not in err, err
    tmp = tmp_path / ".acpbuild" / "tmp"
    assert not [p.name for p in tmp.iterdir() if str(run.pid) in p.name]
    outputs = tmp_path / "out"
    assert not (outputs / "long.mp4").exists()
    assert not [p.name for p in outputs.iterdir() if p.name.startswith(".")], "a half-written output"
    again = _run_again(recipe, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (outputs / "long.mp4").stat().st_size > 0
    assert not list(tmp.iterdir())


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    with FalEmulator() as emulator:
        yield emulator


FAL_RECIPE = """\
[recipe]
name = "paid"
output_dir = "out"

[steps.picture]
kind = "text_to_image"
provider = "fal"
model = "flux-schnell"
prompt = "a lighthouse at dusk"
image_size = "square"
output = "picture.png"
"""


def test_sigterm_while_a_paid_job_runs_keeps_it_and_the_next_run_resumes_it(
    tmp_path: Path, fal: FalEmulator
) -> None:
    recipe = tmp_path / "paid.toml"
    recipe.write_text(FAL_RECIPE)
    env = _env(
        FAL_KEY=FAL_KEY,
        ACPBUILD_FAL_URL=fal.url,
        ACPBUILD_RETRY_BASE_S="0.01",
        ACPBUILD_POLL_INTERVAL_S="0.05",
    )
    fal.polls = 10**6  # IN_PROGRESS until the test says otherwise: the run is polling
    run = _start(recipe, env)
    deadline = time.monotonic() + 60
    while not fal.submissions and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        time.sleep(0.02)
    time.sleep(0.3)  # a few polls
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 143, out + err
    (rid,) = fal.jobs
    assert f"1 paid job to resume: picture ({rid})" in err, err
    with sqlite3.connect(tmp_path / ".acpbuild" / "ledger.sqlite3") as db:
        assert db.execute("SELECT state, request_id FROM generations").fetchall() == [("submitted", rid)]
    assert not (tmp_path / "out" / "picture.png").exists()
    fal.jobs[rid].polls = 0  # the job finishes while no run watches it
    again = _run_again(recipe, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert fal.submissions == 1, "the next run paid again instead of resuming"
    assert (tmp_path / "out" / "picture.png").stat().st_size > 0


# -- temporary files of dead runs -------------------------------------------------
def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


HOST = process.HOST.replace("@", "_")


def test_the_sweep_removes_every_kind_of_temp_file_a_dead_run_left_in_the_store(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    dead = _dead_pid()
    staging = f"{dead}@{HOST}@0123456789abcdef.mp4"
    left = [
        staging,  # a staging file
        f".{staging}.k2j4_x9q.part",  # wire.write_atomic's, beside the staging file
        f"{staging}.part",  # wire.download's
        f".caption-{dead}@{HOST}@ab12cd34.png",  # the local provider's scratch files
        f".still-{dead}@{HOST}@ab12cd34.png",
    ]
    alive = [
        f"{os.getpid()}@{HOST}@0123456789abcdef.mp4",  # this process: alive
        f".{dead}@another-machine@0123456789abcdef.mp4.abcdefgh.part",  # may be alive there
        "kept-0123abcd",  # a paid result kept for the next run
        ".espeak-young.wav",  # no owner, but new: perhaps a live older acpbuild's
    ]
    for name in left + alive:
        (store.tmp / name).write_bytes(b"half")
    assert store.sweep() == len(left)
    assert sorted(p.name for p in store.tmp.iterdir()) == sorted(alive)
    # a file that says no owner goes once it is a day old
    unowned = store.tmp / ".espeak-young.wav"
    os.utime(unowned, (time.time() - 2 * 24 * 3600,) * 2)
    assert store.sweep() == 1 and not unowned.exists()


def test_temp_files_beside_outputs_name_their_owner_and_dead_ones_are_swept(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    src = store.staging(".png")
    src.write_bytes(b"\x89PNG picture")
    digest = store.put(src)
    dest = tmp_path / "out" / "a.png"
    dest.parent.mkdir()
    dead = _dead_pid()
    stray = dest.parent / f".a.png.{dead}@{HOST}@xk2_9abc.tmp"  # a killed run's
    live = dest.parent / f".a.png.{os.getpid()}@{HOST}@xk2_9abd.tmp"  # a running one's
    other = dest.parent / f".b.png.{dead}@{HOST}@xk2_9abe.tmp"  # another output's, in the same folder
    for path in (stray, live, other):
        path.write_bytes(b"half")
    store.materialise(digest, dest)
    assert dest.read_bytes() == b"\x89PNG picture"
    # the first write into a folder sweeps all of it; the live run's file stays
    assert not stray.exists() and live.exists() and not other.exists()
    # and only the first: a store lists a folder of thousands of outputs once, not once per output
    later = dest.parent / f".c.png.{dead}@{HOST}@xk2_9abf.tmp"
    later.write_bytes(b"half")
    store.materialise(digest, dest.with_name("c.png"))
    assert later.exists()
    # the next run's store sweeps it
    layout.open_blobs(tmp_path / "store").materialise(digest, dest.with_name("d.png"))
    assert not later.exists()
    # what acpbuild names such a file, the sweep parses
    made = process.temp_file(dest.parent, prefix=".a.png.", suffix=".tmp")
    assert process.owner_of(made.name) == (os.getpid(), HOST)
    made.unlink()
    process.forget(made)


def test_a_stop_deletes_this_process_s_temp_files_and_refuses_new_ones(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    staging = store.staging(".mp4")
    staging.write_bytes(b"half")
    part = staging.with_name(f".{staging.name}.abcdefgh.part")
    part.write_bytes(b"half")
    beside = process.temp_file(tmp_path, prefix=".out.mp4.")
    kept = store.tmp / "kept-0123abcd"
    kept.write_bytes(b"paid")
    try:
        process.stop(grace=0.1)
        assert not staging.exists() and not part.exists() and not beside.exists() and kept.exists()
        with pytest.raises(process.Interrupted):
            process.temp_file(tmp_path)
    finally:
        process.reset()


# -- full and unwritable disks ------------------------------------------------------
def _to_dev_full(*args: object, **kwargs: object) -> int:
    """Copy as a full disk does: the write fails with ENOSPC (from /dev/full itself)."""
    with open("/dev/full", "wb") as full:
        full.write(b"x" * 65536)
        full.flush()
    return 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_while_writing_an_output_is_a_store_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = layout.open_blobs(tmp_path / "store")
    src = store.staging(".png")
    src.write_bytes(b"\x89PNG picture")
    digest = store.put(src)
    monkeypatch.setattr(os, "sendfile", _to_dev_full)  # how an output is copied from its blob
    dest = tmp_path / "out" / "a.png"
    with pytest.raises(StoreError, match=r"cannot write .*a\.png: No space left on device") as caught:
        store.materialise(digest, dest)
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC
    assert not dest.exists() and os.listdir(dest.parent) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_while_writing_the_lockfile_or_manifest_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, *args: object, **kwargs: object) -> None:
        _to_dev_full(None, self)

    monkeypatch.setattr(Path, "write_text", full)
    lock = tmp_path / "acpbuild.lock"
    with pytest.raises(StoreError, match=r"cannot write the lockfile .*acpbuild\.lock: No space left on device"):
        lockfile.write(lock, "r", [])
    with pytest.raises(StoreError, match=r"noop-r\.json: No space left on device"):
        noop.save(tmp_path, "r", {}, {}, [])
    assert os.listdir(tmp_path) == []  # no temporary file stays


def test_an_output_folder_that_is_a_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    store = layout.open_blobs(tmp_path / "store")
    src = store.staging(".png")
    src.write_bytes(b"\x89PNG picture")
    digest = store.put(src)
    (tmp_path / "out").write_text("a file where a folder should be")
    with pytest.raises(StoreError, match=r"cannot write .*out/a\.png: "):
        store.materialise(digest, tmp_path / "out" / "a.png")


def test_a_lockfile_folder_that_is_gone_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot write the lockfile .*gone/acpbuild\.lock"):
        lockfile.write(tmp_path / "gone" / "acpbuild.lock", "r", [])


def test_a_ledger_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("a file where the store should be")
    with pytest.raises(StoreError, match=r"cannot open the ledger at .*store/ledger\.sqlite3"):
        layout.open_ledger(tmp_path / "store")
    with pytest.raises(StoreError, match=r"cannot create the store at .*store"):
        layout.open_blobs(tmp_path / "store")
