"""The lockfile and CI: a fresh clone with the committed outputs and lock is up to date,
`acpbuild check` gates pull requests, `acpbuild run --frozen` never pays."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli
from conftest import copy_recipe, provider_calls

import acpbuild
from acpbuild.cli import main
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator

STEPS = {"script", "voice", "cover", "clip", "final"}


def _clone(project: Path, into: Path) -> Path:
    """What a CI runner checks out: the recipe, its outputs and its lock, and no store."""
    into.mkdir()
    for name in ("chain.toml", "chain.lock"):
        shutil.copy2(project / name, into / name)
    shutil.copytree(project / "out", into / "out")
    return into / "chain.toml"


def test_a_run_writes_a_sorted_lock_of_keys_and_digests(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    result = acpbuild.run(recipe, env={})
    lock = tmp_path / "chain.lock"
    doc = tomli.loads(lock.read_text())
    assert set(doc["steps"]) == STEPS and list(doc["steps"]) == sorted(STEPS)
    for name, entry in doc["steps"].items():
        assert entry["key"] == result.steps[name].key
        (output,) = entry["outputs"]
        assert output["path"] == f"out/{Path(result.steps[name].outputs[0]).name}"
        assert len(output["digest"]) == 32
    first = lock.read_text()
    acpbuild.run(recipe, env={})
    assert lock.read_text() == first  # deterministic: nothing changed, nothing rewritten


def test_a_fresh_clone_is_up_to_date_from_the_lock_alone(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path / "dev")
    assert acpbuild.run(recipe, env={}).success
    clone = _clone(tmp_path / "dev", tmp_path / "ci")
    assert main(["check", str(clone)]) == 0
    result = acpbuild.run(clone, env={})
    assert {r.status for r in result.steps.values()} == {"uptodate"}
    assert provider_calls(tmp_path / "ci" / ".acpbuild") == 0  # nothing made again


def test_a_changed_output_is_not_vouched_for_by_the_lock(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path / "dev")
    assert acpbuild.run(recipe, env={}).success
    clone = _clone(tmp_path / "dev", tmp_path / "ci")
    (tmp_path / "ci" / "out" / "script.txt").write_text("edited by hand\n")
    assert main(["check", str(clone)]) == 1
    result = acpbuild.run(clone, env={})
    assert result.steps["script"].status == "ran"


def test_check_fails_on_an_edited_prompt_until_it_is_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe), "--yes"]) == 0
    assert main(["check", str(recipe)]) == 0
    capsys.readouterr()
    recipe.write_text(recipe.read_text().replace("width = 160", "width = 176"))  # the pull request
    assert main(["check", str(recipe)]) == 1
    said = capsys.readouterr().err
    assert "cover: width changed" in said and "clip: needs cover" in said and "script" not in said
    assert main(["run", str(recipe), "--yes"]) == 0  # regenerate: outputs and lock change together
    capsys.readouterr()
    assert main(["check", str(recipe), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_check_fails_when_the_lock_is_missing_or_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe), "--yes"]) == 0
    lock = tmp_path / "chain.lock"
    text = lock.read_text()
    lock.unlink()
    assert main(["check", str(recipe)]) == 1
    assert "not in chain.lock" in capsys.readouterr().err
    lock.write_text(text.replace(tomli.loads(text)["steps"]["final"]["key"], "0" * 32))
    assert main(["check", str(recipe)]) == 1
    assert "final: chain.lock holds another generation" in capsys.readouterr().err
    # the next run writes the lock again, even when nothing else changed (the fast path sees it)
    assert main(["run", str(recipe), "--yes"]) == 0
    assert lock.read_text() == text


PAID = """
[recipe]
name = "paid"
output_dir = "out"

[steps.line]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "One line about {topic}."
max_tokens = 50
output = "line.txt"

[steps.card]
kind = "text_to_image"
prompt = "${steps.line}"
width = 64
height = 64
output = "card.png"
"""


@pytest.fixture
def openrouter(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenRouterEmulator]:
    with OpenRouterEmulator() as orr:
        monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
        monkeypatch.setenv("ACPBUILD_OPENROUTER_URL", f"{orr.url}/api/v1")
        yield orr


def test_frozen_refuses_to_buy_and_names_what_it_would_have_bought(
    tmp_path: Path, openrouter: OpenRouterEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "paid.toml"
    recipe.write_text(PAID.replace("{topic}", "a lighthouse"))
    assert main(["run", str(recipe), "--frozen"]) == 3
    said = capsys.readouterr().out
    assert openrouter.submissions == 0
    assert "line" in said and "--frozen" in said and "never pays" in said


def test_frozen_restores_what_the_store_holds(
    tmp_path: Path, openrouter: OpenRouterEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "paid.toml"
    recipe.write_text(PAID.replace("{topic}", "a lighthouse"))
    assert main(["run", str(recipe), "--yes"]) == 0
    assert openrouter.submissions == 1
    assert main(["clean", str(recipe)]) == 0
    assert main(["run", str(recipe), "--frozen"]) == 0  # restored, and the free step made again
    assert openrouter.submissions == 1
    assert (tmp_path / "out" / "line.txt").is_file() and (tmp_path / "out" / "card.png").is_file()
    recipe.write_text(PAID.replace("{topic}", "a harbour"))
    capsys.readouterr()
    assert main(["run", str(recipe), "--frozen", "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["frozen"] is True and doc["refused"] == ["line"]
    assert openrouter.submissions == 1


def test_the_lock_reads_back_what_it_wrote_whatever_the_names(tmp_path: Path) -> None:
    from acpbuild.engine import lockfile

    # foreach item ids and prompts can hold quotes, backslashes, tabs, accents and DEL
    odd = 'é "x" \x7f \\ tab\t'
    entries = [
        lockfile.Entry(f"shots[{odd}{i}]", f"{i:032x}", "fal", "flux-schnell", 0.0031234567 * i, ((f"out/{i}.png", "d" * 32),))
        for i in range(3)
    ]
    entries.append(lockfile.Entry("best", "e" * 32, "group", "best_quality", 0.0, (("out/best.png", "f" * 32),), '{"chosen": "a"}'))
    text = lockfile.render("promo", entries)
    doc = tomli.loads(text)
    assert doc["recipe"] == "promo" and list(doc["steps"]) == sorted(e.name for e in entries)
    for entry in entries:
        table = doc["steps"][entry.name]
        assert table["key"] == entry.key and table["cost"] == round(entry.cost, 6)
        assert [(o["path"], o["digest"]) for o in table["outputs"]] == list(entry.outputs)
        assert table.get("material") == entry.material
    assert lockfile.render("promo", reversed(entries)) == text  # order in, same text out
    # a file people read in diffs: it says what it is, keeps accents as they are, costs to a millionth
    assert text.startswith("# Written by acpbuild run") and '"shots[é \\"x\\"' in text
    assert "cost = 0.003123\n" in text
    # read back as written, quickly; and the same once a person reformats it (then TOML reads it)
    path = tmp_path / "promo.lock"
    path.write_text(text)
    expected = {e.name: dataclasses.replace(e, cost=round(e.cost, 6)) for e in entries}
    assert lockfile.read(path) == expected
    path.write_text(text.replace("\nkey = ", "\n# checked by hand\nkey  =  "))
    assert lockfile.read(path) == expected
    # a table twice (a merge gone wrong) is refused, as TOML refuses it, not read as the last one
    path.write_text(text + text[text.index("\n[steps.") :])
    with pytest.raises(acpbuild.RecipeError, match="malformed"):
        lockfile.read(path)


def test_a_teammates_pull_is_trusted_even_where_my_ledger_remembers_older(tmp_path: Path) -> None:
    mine = copy_recipe("chain.toml", tmp_path / "mine")
    theirs = copy_recipe("chain.toml", tmp_path / "theirs")
    assert acpbuild.run(mine, env={}).success and acpbuild.run(theirs, env={}).success
    theirs.write_text(theirs.read_text().replace("width = 160", "width = 176"))
    assert acpbuild.run(theirs, env={}).success  # they regenerate and push outputs and lock
    made = provider_calls(tmp_path / "mine" / ".acpbuild")
    for name in ("chain.toml", "chain.lock"):
        shutil.copy2(tmp_path / "theirs" / name, tmp_path / "mine" / name)
    shutil.rmtree(tmp_path / "mine" / "out")
    shutil.copytree(tmp_path / "theirs" / "out", tmp_path / "mine" / "out")
    assert main(["check", str(mine)]) == 0
    result = acpbuild.run(mine, env={})
    assert {r.status for r in result.steps.values()} == {"uptodate"}
    assert provider_calls(tmp_path / "mine" / ".acpbuild") == made  # nothing made again


def test_an_output_edited_as_its_step_finishes_is_never_locked(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path / "dev")
    script = tmp_path / "dev" / "out" / "script.txt"

    def meddle(event: acpbuild.engine.results.Event) -> None:
        if event.kind == "step_done" and event.step == "final":
            script.write_text("edited by hand while the run went on\n")

    assert acpbuild.run(recipe, env={}, on_event=meddle).success
    # the edited output goes unlocked; every other step is locked as usual
    assert set(tomli.loads((tmp_path / "dev" / "chain.lock").read_text())["steps"]) == STEPS - {"script"}
    clone = _clone(tmp_path / "dev", tmp_path / "ci")
    assert main(["check", str(clone)]) == 1  # the lock does not vouch for the edit
    assert acpbuild.run(clone, env={}).steps["script"].status == "ran"


def test_a_lock_with_conflict_markers_fails_check_and_is_written_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe), "--yes"]) == 0
    lock = tmp_path / "chain.lock"
    good = lock.read_text()
    lock.write_text("<<<<<<< HEAD\n" + good + "=======\n" + good + ">>>>>>> theirs\n")
    assert main(["check", str(recipe)]) == 1
    said = capsys.readouterr().err
    # the file, what is wrong with it, and what to do
    assert f"{lock}: the lockfile is malformed (" in said and "delete it: the next run writes it anew" in said
    assert main(["run", str(recipe), "--yes"]) == 0
    assert "writes it anew" in capsys.readouterr().out
    assert lock.read_text() == good


def test_check_flags_entries_of_removed_steps_and_wrong_digests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe), "--yes"]) == 0
    lock = tmp_path / "chain.lock"
    good = lock.read_text()
    digest = tomli.loads(good)["steps"]["cover"]["outputs"][0]["digest"]
    lock.write_text(good.replace(digest, "0" * 32))
    capsys.readouterr()
    assert main(["check", str(recipe)]) == 1
    assert "cover: chain.lock holds another output" in capsys.readouterr().err
    lock.write_text(good + '\n[steps.gone]\nkey = "k"\noutputs = []\n')
    assert main(["check", str(recipe)]) == 1
    assert "gone: in chain.lock, but no longer in chain.toml" in capsys.readouterr().err


def test_frozen_refuses_a_paid_call_even_at_an_estimate_of_nothing() -> None:
    from acpbuild.errors import BudgetExceeded
    from acpbuild.money import Budget

    with pytest.raises(BudgetExceeded, match="--frozen"):
        Budget(never_pay=True).reserve("line", 0.0)
    Budget().reserve("line", 0.0)  # without --frozen, a free estimate is no refusal


def test_the_lock_keeps_what_each_step_cost_and_a_clone_keeps_it_as_it_is(
    tmp_path: Path, openrouter: OpenRouterEmulator
) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    recipe = dev / "paid.toml"
    recipe.write_text(PAID.replace("{topic}", "a lighthouse"))
    result = acpbuild.run(recipe)
    assert result.success, result.to_dict()
    lock = dev / "paid.lock"
    steps = tomli.loads(lock.read_text())["steps"]
    (billed,) = openrouter.costs
    assert steps["line"]["cost"] == round(billed, 6) > 0  # what the provider billed
    assert (steps["line"]["provider"], steps["line"]["model"]) == ("openrouter", "google/gemini-2.5-flash")
    assert steps["card"]["cost"] == 0.0  # a free step
    # a teammate's clone: outputs and lock, no ledger. Its run vouches for every output from
    # the lock, and leaves the lock as it is, costs included
    ci = tmp_path / "ci"
    ci.mkdir()
    shutil.copy2(recipe, ci / "paid.toml")
    shutil.copy2(lock, ci / "paid.lock")
    shutil.copytree(dev / "out", ci / "out")
    again = acpbuild.run(ci / "paid.toml")
    assert {r.status for r in again.steps.values()} == {"uptodate"}
    assert (ci / "paid.lock").read_text() == lock.read_text()
    assert openrouter.submissions == 1


def test_a_paid_generation_a_group_chose_is_counted_once_in_the_lock(
    tmp_path: Path, openrouter: OpenRouterEmulator
) -> None:
    recipe = tmp_path / "paid.toml"
    group = '\n[steps.spare]\nkind = "text"\nprompt = "a spare line"\noutput = "spare.txt"\n'
    group += '\n[groups.best]\nsteps = ["line", "spare"]\nmerge = "first_success"\noutput = "best.txt"\n'
    recipe.write_text(PAID.replace("{topic}", "a lighthouse") + group)
    result = acpbuild.run(recipe)
    assert result.success, result.to_dict()
    steps = tomli.loads((tmp_path / "paid.lock").read_text())["steps"]
    (billed,) = openrouter.costs
    assert steps["line"]["cost"] == round(billed, 6) > 0
    # the group holds the member's generation: it costs nothing of its own
    assert (steps["best"]["provider"], steps["best"]["cost"]) == ("group", 0.0)


FAILING = """
[recipe]
name = "r"
output_dir = "out"

[steps.gray]
kind = "image_to_image"
image = "photo.png"
operation = "grayscale"
output = "gray.png"

[steps.note]
kind = "text"
prompt = "{note}"
output = "note.txt"
{extra}"""


def test_a_failed_step_keeps_its_entry_and_only_a_full_run_drops_a_removed_steps(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 24), (200, 40, 40)).save(tmp_path / "photo.png")
    recipe = tmp_path / "r.toml"
    extra = '\n[steps.aside]\nkind = "text"\nprompt = "an aside"\noutput = "aside.txt"\n'
    recipe.write_text(FAILING.format(note="a harbour", extra=extra))
    first = acpbuild.run(recipe, env={})
    assert first.success, first.to_dict()
    lock = tmp_path / "r.lock"

    def entries() -> dict[str, dict[str, object]]:
        return tomli.loads(lock.read_text())["steps"]

    assert set(entries()) == {"gray", "note", "aside"}
    assert not any("material" in entry for entry in entries().values())  # plain steps: no choice to record
    kept = entries()["gray"]
    assert (kept["key"], kept["provider"], kept["model"]) == (first.steps["gray"].key, "local", first.steps["gray"].model)
    # gray's input no longer decodes, and note's prompt changed: gray fails, note runs
    (tmp_path / "photo.png").write_bytes(b"not a picture")
    recipe.write_text(FAILING.format(note="a lighthouse", extra=extra))
    second = acpbuild.run(recipe, env={}, keep_going=True)
    assert (second.steps["gray"].status, second.steps["note"].status) == ("failed", "ran")
    assert entries()["gray"] == kept  # its earlier entry stands, as it was
    assert entries()["note"]["key"] == second.steps["note"].key != first.steps["note"].key

    # aside leaves the recipe: a run of some steps keeps its entry, a full run drops it
    recipe.write_text(FAILING.format(note="a lighthouse", extra=""))
    acpbuild.run(recipe, ["note"], env={})
    assert "aside" in entries()
    acpbuild.run(recipe, env={}, keep_going=True)
    assert set(entries()) == {"gray", "note"}


def test_a_deleted_lock_is_written_again_and_costs_nothing(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert acpbuild.run(recipe, env={}).success
    lock = tmp_path / "chain.lock"
    text = lock.read_text()
    lock.unlink()
    again = acpbuild.run(recipe, env={})
    # the ledger still vouches for every output: nothing is made or restored, only the lock written
    assert {r.status for r in again.steps.values()} == {"uptodate"}
    assert lock.read_text() == text
    assert provider_calls(tmp_path / ".acpbuild") == len(STEPS)


def test_a_lock_that_cannot_be_read_fails_check_naming_it_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    lock = tmp_path / "chain.lock"
    lock.mkdir()  # something in the way of the file
    assert main(["check", str(recipe)]) == 1
    said = capsys.readouterr()
    assert f"{lock}: cannot read the lockfile: Is a directory" in said.out + said.err
