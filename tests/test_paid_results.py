"""A paid result survives what breaks on this machine: a store that cannot be written keeps
the bytes for the next run, which pays nothing more once the store is fixed.

The real SDKs talk to the loopback emulators; the store's objects folder is made
unwritable in a way that holds for root too (each shard folder's name is taken by a
file), as a read-only or full disk would refuse the write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import acpbuild
from acpbuild.cli import main
from acpbuild.engine import lockfile
from acpbuild.report.gather import gather
from acpbuild.store import layout
from acpbuild.store.ledger import Generation
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


# -- what is kept, and what becomes of it ------------------------------------------------------
def _recipe(tmp_path: Path, steps: str) -> Path:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "r"\noutput_dir = "out"\n' + steps)
    return recipe


def _key(recipe: Path, step: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The generation key ``step`` will buy, as ``acpbuild plan --json`` says."""
    assert main(["plan", str(recipe), "--json"]) == 0
    (key,) = [s["key"] for s in json.loads(capsys.readouterr().out)["steps"] if s["name"] == step]
    return str(key)


def _nowhere_to_keep(store: Path, key: str) -> Path:
    """Make the place a paid result of ``key`` would be kept impossible to write: a folder, not empty."""
    blocked = store / "tmp" / f"kept-{key}"
    blocked.mkdir(parents=True)
    (blocked / "in-the-way").write_bytes(b"")
    return blocked


def _done(store: Path) -> Generation:
    ledger = layout.open_ledger(store)
    try:
        (done,) = [g for g in ledger.generations() if g.state == "done"]
    finally:
        ledger.close()
    return done


@pytest.mark.parametrize("kind", ["sync", "queued"])
def test_a_result_stored_from_what_was_kept_is_recorded_as_a_store_that_took_it_at_once_would(
    kind: str, emulators: tuple[FalEmulator, OpenRouterEmulator], tmp_path: Path
) -> None:
    # the same recipe twice: once with a store that takes the result at once, once with one
    # that refuses it until the disk is fixed; the ledger, the lock and the run agree on both
    step = "line" if kind == "sync" else "cover"
    healthy, broken = tmp_path / "healthy", tmp_path / "broken"
    made = {}
    for project in (healthy, broken):
        project.mkdir()
        recipe = _recipe(project, RECIPES[kind])
        os.chdir(project)
        if project == broken:
            taken = _break_objects(project / ".acpbuild")
            assert acpbuild.run(recipe).steps[step].status == "failed"
            for shard in taken:
                shard.unlink()
        made[project] = acpbuild.run(recipe).steps[step]
    assert made[broken].status == "ran"
    assert made[broken].reason == "stored the result an earlier run paid for and kept"
    fresh, stored = _done(healthy / ".acpbuild"), _done(broken / ".acpbuild")
    assert stored.actual_cost is not None and stored.actual_cost > 0
    assert (stored.actual_cost, stored.digest) == (fresh.actual_cost, fresh.digest)
    # what the provider said of it (tokens, seed, size) outlives the refusal
    assert stored.usage is not None and stored.meta is not None
    assert json.loads(stored.usage) and json.loads(stored.meta)
    assert (stored.usage, stored.meta) == (fresh.usage, fresh.meta)
    # the run that finishes the generation says what it cost, as a run that bought it does
    assert made[broken].cost == made[healthy].cost == stored.actual_cost
    # and the lock records it at that cost
    locked = lockfile.read(lockfile.lock_path(broken / "r.toml"))[step]
    assert locked == lockfile.read(lockfile.lock_path(healthy / "r.toml"))[step]
    assert locked.cost == stored.actual_cost

LOCAL = """
[steps.pic]
kind = "text_to_image"
provider = "local"
model = "pillow"
prompt = "a lighthouse"
width = 64
height = 64
output = "pic.png"

[steps.mirrored]
kind = "image_to_image"
provider = "local"
model = "pillow"
image = "${steps.pic}"
operation = "mirror"
output = "mirrored.png"
"""


def test_a_free_result_the_store_refuses_is_kept_and_stored_later_as_the_output_of_its_step(
    tmp_path: Path,
) -> None:
    recipe = _recipe(tmp_path, LOCAL)
    taken = _break_objects(tmp_path / ".acpbuild")
    os.chdir(tmp_path)

    first = acpbuild.run(recipe, keep_going=True)
    pic = first.steps["pic"]
    assert pic.status == "failed" and "is kept at" in (pic.error or "")
    assert pic.cost == 0 and first.total_cost == 0  # a free step pays nothing, refused or not
    assert first.steps["mirrored"].status == "skipped"

    for shard in taken:
        shard.unlink()
    second = acpbuild.run(recipe)
    pic = second.steps["pic"]
    assert (pic.status, pic.reason) == ("ran", "stored the result an earlier run paid for and kept")
    assert pic.cost == 0 and second.total_cost == 0
    assert second.steps["mirrored"].status == "ran"
    # the report knows the stored file as pic's output where the next step takes it in
    (section,) = [s for s in gather(recipe, env={}).sections if s.name == "mirrored"]
    (card,) = section.cards
    assert [(p.name, p.step) for p in card.params if p.name == "image"] == [("image", "pic")]


def test_a_queued_result_that_cannot_even_be_kept_is_fetched_again_for_free_once_the_disk_is_fixed(
    emulators: tuple[FalEmulator, OpenRouterEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fal, _ = emulators
    recipe = _recipe(tmp_path, RECIPES["queued"])
    os.chdir(tmp_path)
    store = tmp_path / ".acpbuild"
    taken = _break_objects(store)
    blocked = _nowhere_to_keep(store, _key(recipe, "cover", capsys))

    cover = acpbuild.run(recipe).steps["cover"]
    assert cover.status == "failed" and fal.submissions == 1
    # the job is still the provider's: the error says which, and that fetching it again is free
    error = cover.error or ""
    assert str(layout.objects_dir(store)) in error
    assert "request req-0001 is kept" in error and "without paying again" in error
    assert [p.name for p in (store / "tmp").iterdir()] == [blocked.name]  # no bytes left behind
    # the next run resumes that request rather than buying another
    assert main(["plan", str(recipe), "--json"]) == 0
    (planned,) = json.loads(capsys.readouterr().out)["steps"]
    assert "resumes request req-0001" in planned["reason"]

    for shard in taken:
        shard.unlink()
    blocked.joinpath("in-the-way").unlink()
    blocked.rmdir()
    again = acpbuild.run(recipe)
    assert again.steps["cover"].status == "ran" and again.success
    assert fal.submissions == 1
    assert (tmp_path / "out" / "cover.png").stat().st_size > 0


@pytest.mark.parametrize("kind", ["sync", "local"])
def test_a_paid_answer_that_cannot_be_stored_or_kept_is_counted_as_possibly_billed(
    kind: str,
    emulators: tuple[FalEmulator, OpenRouterEmulator],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # an answer with no job behind it: nothing to fetch again, and nowhere to keep its bytes
    _, orr = emulators
    step = "line" if kind == "sync" else "pic"
    recipe = _recipe(tmp_path, RECIPES["sync"] if kind == "sync" else LOCAL)
    os.chdir(tmp_path)
    store = tmp_path / ".acpbuild"
    taken = _break_objects(store)
    blocked = _nowhere_to_keep(store, _key(recipe, step, capsys))

    first = acpbuild.run(recipe, keep_going=True)
    failed = first.steps[step]
    assert failed.status == "failed"
    error = failed.error or ""
    assert str(layout.objects_dir(store)) in error
    said = "the result was paid for but could not be kept anywhere" if kind == "sync" else "the result could not be kept anywhere"
    assert error.endswith(said)
    assert not [p for p in (store / "tmp").iterdir() if p != blocked]  # no bytes left behind
    assert main(["costs", str(recipe), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    if kind == "local":
        # nothing was bought: nothing is said to be paid for, or in doubt, now or on the next run
        assert failed.cost == 0 and first.total_cost == 0 and "was paid for" not in error
        assert not any(row["in_doubt"] for row in rows)
        for shard in taken:
            shard.unlink()
        again = acpbuild.run(recipe)
        assert again.success and not again.warnings
        return
    # what the provider billed is on the run's record
    assert orr.submissions == 1 and failed.cost > 0 and first.total_cost == failed.cost
    # and on the ledger's: it may have been billed, counted at its estimate until told otherwise
    (costs,) = rows
    assert (costs["generations"], costs["in_doubt"]) == (0, 1)
    assert costs["possibly_billed"] > 0

    for shard in taken:
        shard.unlink()
    again = acpbuild.run(recipe)
    assert again.success and orr.submissions == 2  # there was nothing to store it from: bought anew
    assert any("possibly billed" in w and step in w for w in again.warnings)


def _two_answers_the_store_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, float]:
    """Two paid steps and a store that refuses every blob; and the most one of them can cost."""
    second = RECIPES["sync"].replace("[steps.line]", "[steps.other]").replace("line.txt", "other.txt")
    recipe = _recipe(tmp_path, RECIPES["sync"] + second.replace("a lighthouse", "a harbour"))
    os.chdir(tmp_path)
    assert main(["plan", str(recipe), "--json"]) == 0
    one = max(s["at_most"] for s in json.loads(capsys.readouterr().out)["steps"])
    _break_objects(tmp_path / ".acpbuild")
    return recipe, one


def test_a_paid_result_the_store_refuses_still_counts_against_the_runs_budget(
    emulators: tuple[FalEmulator, OpenRouterEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # two answers, a budget for one: the first is paid for though the store refuses it, so
    # --keep-going must not buy the second with money the first already spent
    _, orr = emulators
    recipe, one = _two_answers_the_store_refuses(tmp_path, capsys)

    run = acpbuild.run(recipe, jobs=1, keep_going=True, budget=one * 1.01)
    assert orr.submissions == 1
    paid, refused = sorted(run.steps.values(), key=lambda r: r.refused)
    assert paid.status == "failed" and "is kept at" in (paid.error or "") and paid.cost > 0
    assert refused.status == "failed" and refused.refused


def test_a_paid_result_the_store_refuses_counts_what_it_cost_not_what_it_held(
    emulators: tuple[FalEmulator, OpenRouterEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same two answers, a budget for one and a half: the first was billed far below the
    # bound it held, so once its cost is known the second fits
    _, orr = emulators
    recipe, one = _two_answers_the_store_refuses(tmp_path, capsys)

    run = acpbuild.run(recipe, jobs=1, keep_going=True, budget=one * 1.5)
    assert orr.submissions == 2
    assert all("is kept at" in (r.error or "") for r in run.steps.values())
    assert sum(orr.costs) < one / 2  # what made the room


def test_a_kept_result_that_is_gone_is_bought_again_and_the_lost_one_stays_counted(
    emulators: tuple[FalEmulator, OpenRouterEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, orr = emulators
    recipe = _recipe(tmp_path, RECIPES["sync"])
    os.chdir(tmp_path)
    taken = _break_objects(tmp_path / ".acpbuild")
    assert acpbuild.run(recipe).steps["line"].status == "failed"
    for shard in taken:
        shard.unlink()
    (kept,) = (tmp_path / ".acpbuild" / "tmp").glob("kept-*")
    kept.unlink()  # say, a clean-up of temporary files

    again = acpbuild.run(recipe)
    assert again.success and orr.submissions == 2  # nothing to store it from: bought anew
    assert again.steps["line"].reason != "stored the result an earlier run paid for and kept"
    # the lost one is not forgotten, nor taken for the result of this run: it stays in doubt
    assert main(["costs", str(recipe), "--json"]) == 0
    (costs,) = json.loads(capsys.readouterr().out)["rows"]
    assert (costs["generations"], costs["in_doubt"]) == (1, 1)
    assert costs["possibly_billed"] > 0
    assert acpbuild.run(recipe).steps["line"].status == "uptodate"
    assert orr.submissions == 2
