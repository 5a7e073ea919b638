"""A paid result survives what breaks on this machine: a store that cannot be written keeps
the bytes for the next run, which pays nothing more once the store is fixed.

The real SDKs talk to the loopback emulators; the store's objects folder is made
unwritable in a way that holds for root too (each shard folder's name is taken by a
file), as a read-only or full disk would refuse the write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from acpbuild.cli import main
from acpbuild.store import layout
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import FalEmulator
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator

RECIPES = {
    # a synchronous provider: the answer is the result
    "sync": """
[steps.line]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "One line about a lighthouse."
max_tokens = 50
output = "line.txt"
""",
    # a queued provider: submit, poll, fetch the result, download it
    "queued": """
[steps.cover]
kind = "text_to_image"
provider = "fal"
model = "flux-schnell"
prompt = "a lighthouse at dusk"
output = "cover.png"
""",
}


@pytest.fixture
def emulators(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FalEmulator, OpenRouterEmulator]]:
    with FalEmulator() as fal, OpenRouterEmulator() as orr:
        for name, value in {
            "FAL_KEY": FAL_KEY,
            "OPENROUTER_API_KEY": OPENROUTER_KEY,
            "ACPBUILD_FAL_URL": fal.url,
            "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1",
            "ACPBUILD_RETRY_BASE_S": "0.01",
            "ACPBUILD_POLL_INTERVAL_S": "0.02",
        }.items():
            monkeypatch.setenv(name, value)
        yield fal, orr


def _break_objects(store: Path) -> list[Path]:
    """Make every blob's shard folder impossible to create: its name is taken by a file."""
    objects = layout.objects_dir(store)
    objects.mkdir(parents=True, exist_ok=True)
    taken = []
    for n in range(256):
        shard = objects / f"{n:02x}"
        shard.write_bytes(b"")
        taken.append(shard)
    return taken


@pytest.mark.parametrize("kind", ["sync", "queued"])
def test_a_result_the_store_refuses_is_kept_and_stored_by_the_next_run_for_free(
    kind: str,
    emulators: tuple[FalEmulator, OpenRouterEmulator],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fal, orr = emulators
    paid = (lambda: orr.submissions) if kind == "sync" else (lambda: fal.submissions)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "r"\noutput_dir = "out"\n' + RECIPES[kind])
    output = tmp_path / "out" / ("line.txt" if kind == "sync" else "cover.png")
    taken = _break_objects(tmp_path / ".acpbuild")
    os.chdir(tmp_path)

    assert main(["run", str(recipe), "--yes"]) == 1
    said = capsys.readouterr()
    assert paid() == 1
    assert "Traceback" not in said.out + said.err
    # acpbuild's own error: which folder refused, and where the paid bytes are
    kept = tmp_path / ".acpbuild" / "tmp"
    assert str(layout.objects_dir(tmp_path / ".acpbuild")) in said.out
    assert str(kept) in said.out and "without paying again" in said.out
    assert not output.exists()
    # the run's own summary counts what was paid, though the step failed
    assert "paid $0 " not in said.out and "paid $0." in said.out

    # what it cost is on record already, though the result is not stored yet
    assert main(["costs", str(recipe), "--json"]) == 0
    costs = capsys.readouterr().out
    assert '"generations": 1' in costs

    for shard in taken:  # the disk is fixed
        shard.unlink()
    assert main(["run", str(recipe), "--yes"]) == 0
    assert paid() == 1  # stored from what was kept: not bought again
    assert output.is_file() and output.stat().st_size > 0
    assert not list(kept.glob("kept-*"))
    assert main(["run", str(recipe), "--yes"]) == 0
    assert paid() == 1
