"""End to end: what reruns, what is restored, and how many provider calls each run makes.

Every test here runs the real local provider through doit and counts provider
calls in the ledger (one row per generation requested).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_recipe, provider_calls

import acpbuild
from acpbuild.cli import main
from acpbuild.engine import lockfile
from acpbuild.engine.results import Event

STEPS = {"script", "voice", "cover", "clip", "final"}


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = copy_recipe("chain.toml", tmp_path)
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert {n for n, r in result.steps.items() if r.status == "ran"} == STEPS
    assert provider_calls(tmp_path / ".acpbuild") == 5
    return path


def statuses(result: acpbuild.RunResult) -> dict[str, str]:
    return {name: step.status for name, step in result.steps.items()}


def test_second_run_with_nothing_changed_runs_nothing(recipe: Path) -> None:
    # behaviour 1
    result = acpbuild.run(recipe, env={})
    assert set(statuses(result).values()) == {"uptodate"}
    assert provider_calls(recipe.parent / ".acpbuild") == 5


def test_editing_a_prompt_runs_that_step_and_its_dependants_only(recipe: Path) -> None:
    # behaviour 2: script changes; voice and final depend on it; the image branch does not
    recipe.write_text(recipe.read_text().replace('prompt = "Narrate ${topic}"', 'prompt = "Describe ${topic}"'))
    result = acpbuild.run(recipe, env={})
    assert statuses(result) == {
        "script": "ran",
        "voice": "ran",
        "cover": "uptodate",
        "clip": "uptodate",
        "final": "ran",
    }
    assert result.steps["script"].reason == "prompt changed"
    assert provider_calls(recipe.parent / ".acpbuild") == 5 + 3


def test_reverting_an_edit_restores_from_the_store_for_free(recipe: Path) -> None:
    # behaviour 3
    out = recipe.parent / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    original = recipe.read_text()
    recipe.write_text(original.replace("a red kite", "a grey heron"))
    edited = acpbuild.run(recipe, env={})
    assert statuses(edited) == dict.fromkeys(STEPS, "ran")
    assert (out / "script.txt").read_bytes() != before["script.txt"]
    calls = provider_calls(recipe.parent / ".acpbuild")

    recipe.write_text(original)
    reverted = acpbuild.run(recipe, env={})
    assert statuses(reverted) == dict.fromkeys(STEPS, "restored")
    assert provider_calls(recipe.parent / ".acpbuild") == calls
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_deleted_output_is_restored_without_a_call(recipe: Path) -> None:
    # behaviour 4, one file
    (recipe.parent / "out" / "clip.mp4").unlink()
    result = acpbuild.run(recipe, env={})
    assert statuses(result)["clip"] == "restored"
    assert {s for n, s in statuses(result).items() if n != "clip"} == {"uptodate"}
    assert provider_calls(recipe.parent / ".acpbuild") == 5


def test_clean_then_run_restores_everything_without_a_call(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # behaviour 4, `acpbuild clean`
    assert main(["clean", str(recipe)]) == 0
    assert not any((recipe.parent / "out").iterdir())
    assert "5 outputs removed" in capsys.readouterr().out
    result = acpbuild.run(recipe, env={})
    assert statuses(result) == dict.fromkeys(STEPS, "restored")
    assert provider_calls(recipe.parent / ".acpbuild") == 5


def test_renaming_an_output_costs_nothing(recipe: Path) -> None:
    # behaviour 5, rename: the key ignores the file name
    recipe.write_text(recipe.read_text().replace('output = "final.mp4"', 'output = "movie.mp4"'))
    result = acpbuild.run(recipe, env={})
    assert statuses(result)["final"] == "restored"
    assert (recipe.parent / "out" / "movie.mp4").read_bytes() == (recipe.parent / "out" / "final.mp4").read_bytes()
    assert provider_calls(recipe.parent / ".acpbuild") == 5


def test_reordering_and_reformatting_the_toml_costs_nothing(recipe: Path) -> None:
    # behaviour 5, reorder: step tables reversed, keys reordered, comments and spacing added
    text = recipe.read_text()
    head, _, body = text.partition("[steps.script]")
    tables = ("[steps.script]" + body).split("\n[steps.")
    tables = [tables[0]] + ["[steps." + t for t in tables[1:]]
    reordered = head + "\n\n# reordered\n".join(reversed([_reverse_keys(t) for t in tables]))
    recipe.write_text(reordered)
    result = acpbuild.run(recipe, env={})
    assert set(statuses(result).values()) == {"uptodate"}
    assert provider_calls(recipe.parent / ".acpbuild") == 5


def _reverse_keys(table: str) -> str:
    header, *keys = [line for line in table.strip().splitlines() if line]
    return "\n".join([header, *(k.replace(" = ", "   =   ") for k in reversed(keys))]) + "\n"


def test_deleting_doits_dependency_file_costs_nothing(recipe: Path) -> None:
    # behaviour 6: doit's file is a fast path only; the ledger is the truth
    store = recipe.parent / ".acpbuild"
    doit_files = list(store.glob("doit-*"))
    assert doit_files
    for path in doit_files:
        path.unlink()
    result = acpbuild.run(recipe, env={})
    assert set(statuses(result).values()) == {"uptodate"}
    assert provider_calls(store) == 5


def test_a_target_builds_only_what_it_needs(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    result = acpbuild.run(path, ["clip"], env={})
    assert statuses(result) == {"cover": "ran", "clip": "ran"}
    assert not (tmp_path / "out" / "script.txt").exists()
    assert provider_calls(tmp_path / ".acpbuild") == 2


def test_parallel_run_gives_the_same_outputs(tmp_path: Path) -> None:
    serial = copy_recipe("chain.toml", tmp_path / "serial")
    parallel = copy_recipe("chain.toml", tmp_path / "parallel")
    assert acpbuild.run(serial, jobs=1, env={}).success
    assert acpbuild.run(parallel, jobs=4, env={}).success
    for name in ("script.txt", "cover.png"):
        assert (serial.parent / "out" / name).read_bytes() == (parallel.parent / "out" / name).read_bytes()


def _break_voice(path: Path) -> None:
    # an eSpeak voice that does not exist fails at run time, not when the recipe loads
    path.write_text(path.read_text().replace("speed = 300", 'speed = 300\nvoice = "xx-nowhere"'))


def test_a_failure_stops_the_run_and_leaves_no_half_written_output(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    _break_voice(path)
    result = acpbuild.run(path, jobs=1, env={})
    assert not result.success and result.exit_code == 1
    assert result.failed == ["voice"]
    assert "xx-nowhere" in (result.steps["voice"].error or "")
    assert result.steps["final"].status == "skipped"
    # doit stopping at the first failure is how a run without --keep-going ends, not an error of the run
    assert result.errors == []
    assert (result.steps["final"].reason or "").startswith("not run: an earlier step failed")
    assert not (tmp_path / "out" / "voice.wav").exists()
    assert not list((tmp_path / ".acpbuild" / "tmp").iterdir())


def test_keep_going_runs_what_it_can_and_skips_dependants(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    _break_voice(path)
    result = acpbuild.run(path, keep_going=True, env={})
    assert statuses(result) == {
        "script": "ran",
        "voice": "failed",
        "cover": "ran",
        "clip": "ran",
        "final": "skipped",
    }
    assert "voice" in result.steps["final"].reason
    assert result.errors == []  # doit's exit 2 for a skipped dependant is no error of the run


def test_cli_run_json_reports_each_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["ran"] == 5 and doc["success"] is True
    step = {s["name"]: s for s in doc["steps"]}["final"]
    assert step["status"] == "ran" and len(step["key"]) == 32
    assert step["outputs"] == [str(tmp_path / "out" / "final.mp4")]
    assert step["cost"] == 0

    _break_voice(path)
    assert main(["run", str(path), "--json", "-k"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {s["name"]: s["status"] for s in doc["steps"]}["final"] == "skipped"


def test_cli_plan_says_what_would_run_and_why(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe.write_text(recipe.read_text().replace("width = 160", "width = 128"))
    (recipe.parent / "out" / "script.txt").unlink()
    assert main(["plan", str(recipe), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    states = {s["name"]: (s["status"], s["reason"]) for s in doc["steps"]}
    assert states["cover"] == ("run", "width changed")
    assert states["clip"][0] == "run" and "cover" in states["clip"][1]
    assert states["script"][0] == "restorable"
    assert states["voice"][0] == "uptodate"
    assert provider_calls(recipe.parent / ".acpbuild") == 5  # planning never calls anything


def test_the_summary_is_plain_text_when_not_a_terminal(
    recipe: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")  # the whole display, not the no-op line
    (recipe.parent / "out" / "final.mp4").unlink()
    assert main(["run", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert "restored final" in out  # a plain progress line per step that did something
    assert "1 restored, 4 uptodate" in out
    # the summary lists what did something, not cut to 80 columns: the output path is whole
    path = recipe.parent / "out" / "final.mp4"
    assert str(path) in out or os.path.relpath(path) in out
    assert "clip.mp4" not in out  # up to date: counted, not listed


def test_each_step_is_announced_when_it_starts_and_again_when_it_is_done(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    events: list[Event] = []
    assert acpbuild.run(path, env={}, on_event=events.append).success
    assert (events[0].kind, events[0].total) == ("start", len(STEPS))  # the display counts k of 5
    assert [e.kind for e in events].count("finish") == 1 and events[-1].kind == "finish"  # the display stops there
    said = [(e.kind, e.step) for e in events if e.kind in ("step_start", "step_done")]
    for name in STEPS:
        assert said.count(("step_start", name)) == 1, said
        assert said.index(("step_start", name)) < said.index(("step_done", name))


def test_a_failed_step_and_the_dependant_it_skips_keep_their_provider_and_model(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    _break_voice(path)
    result = acpbuild.run(path, keep_going=True, env={})
    recipe = acpbuild.load_recipe(path, env={})
    for name in ("voice", "final"):
        made, step = result.steps[name], recipe.steps[name]
        assert (made.provider, made.model) == (step.provider, step.model)
    error = result.steps["voice"].error or ""
    assert "xx-nowhere" in error and "Traceback" not in error  # the step's own reason, not a crash


def test_a_fresh_clone_records_what_its_lockfile_vouches_for(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acpbuild.report.gather import gather

    def linked_inputs() -> list[tuple[str, str | None]]:
        """The final step's inputs that the report links to the step that made them."""
        final = next(c for c in gather(recipe, env={}).cards if c.name == "final")
        return sorted((p.name, p.step) for p in final.params if p.step)

    assert linked_inputs() == [("audio", "voice"), ("video", "clip")]  # as the run that made them recorded
    # a fresh clone: the outputs and the committed lockfile, no store yet
    shutil.rmtree(recipe.parent / ".acpbuild")
    assert set(statuses(acpbuild.run(recipe, env={})).values()) == {"uptodate"}
    assert provider_calls(recipe.parent / ".acpbuild") == 0
    # the ledger now knows what each output holds and which step made it: the report links
    # an input to the step that made it, and the next run is answered by the fast path
    assert linked_inputs() == [("audio", "voice"), ("video", "clip")]
    assert main(["run", str(recipe)]) == 0
    assert "nothing changed since the last run of chain" in capsys.readouterr().out


VOICES = """
[recipe]
name = "voices"
output_dir = "out"

[steps.fancy]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "{fancy}"
output = "fancy.wav"

[steps.plain]
kind = "text_to_speech"
text = "Hello from the harbour."
speed = 150
{plain}
output = "plain.wav"

[groups.voice]
steps = ["fancy", "plain"]
merge = "first_success"
output = "voice.wav"
"""


def test_a_group_whose_members_all_fail_is_reported_failed_with_each_members_reason(tmp_path: Path) -> None:
    path = tmp_path / "voices.toml"
    path.write_text(VOICES.format(fancy="xx-nowhere", plain='voice = "xx-nowhere-either"'))
    result = acpbuild.run(path, env={})
    assert not result.success
    group = result.steps["voice"]
    assert (group.status, group.provider, group.model) == ("failed", "group", "first_success")
    error = group.error or ""
    assert error.startswith("group 'voice': every member failed (fancy: ") and error.endswith(")"), error
    assert "xx-nowhere-either" in error and "Traceback" not in error


def test_a_run_after_a_fallback_is_answered_by_the_fast_path_with_the_member_that_made_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "voices.toml"
    path.write_text(VOICES.format(fancy="xx-nowhere", plain=""))
    first = acpbuild.run(path, env={})
    assert statuses(first) == {"fancy": "failed", "plain": "ran", "voice": "ran"}
    assert main(["run", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # the failed member made nothing: the answer vouches only for what holds the output
    assert {s["name"]: s["status"] for s in doc["steps"]} == {"plain": "uptodate", "voice": "uptodate"}


def test_two_collect_all_groups_without_outputs_run_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "acpbuild.toml"
    steps = "".join(f'[steps.{n}]\nkind = "text"\nprompt = "{n}"\nsentences = 1\noutput = "{n}.txt"\n\n' for n in "abcd")
    groups = '[groups.first]\nsteps = ["a", "b"]\nmerge = "collect_all"\n\n[groups.second]\nsteps = ["c", "d"]\nmerge = "collect_all"\n'
    path.write_text(steps + groups)
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.errors == []
    assert statuses(result) == {"a": "ran", "b": "ran", "c": "ran", "d": "ran", "first": "ran", "second": "ran"}


def test_a_dodo_file_gets_a_task_per_group_with_its_output_as_target_and_a_description(tmp_path: Path) -> None:
    path = tmp_path / "voices.toml"
    path.write_text(VOICES.format(fancy="xx-nowhere", plain=""))
    tasks = {t["name"]: t for t in acpbuild.recipe_tasks(path, basename="voices")}
    assert tasks["voice"]["targets"] == [str(tmp_path / "out" / "voice.wav")]
    assert tasks["voice"]["doc"] == "group (first_success) of fancy, plain"


def test_an_output_folder_that_is_a_file_fails_the_steps_with_a_reason_that_names_it(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    (tmp_path / "out").write_text("a file where the outputs' folder goes")
    result = acpbuild.run(path, keep_going=True, env={})
    assert not result.success and result.exit_code == 1
    assert statuses(result) == {"script": "failed", "voice": "skipped", "cover": "failed", "clip": "skipped", "final": "skipped"}
    assert str(tmp_path / "out") in (result.steps["script"].error or "")


def test_a_first_success_group_after_a_failed_step_is_skipped_with_the_reason(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    _break_voice(path)
    second = '[steps.final2]\nkind = "mux"\nvideo = "${steps.clip}"\naudio = "${steps.voice}"\noutput = "final2.mp4"\n'
    group = '[groups.best]\nsteps = ["final", "final2"]\nmerge = "first_success"\noutput = "best.mp4"\n'
    path.write_text(path.read_text() + "\n" + second + "\n" + group)
    result = acpbuild.run(path, keep_going=True, env={})
    assert statuses(result) == {"script": "ran", "voice": "failed", "cover": "ran", "clip": "ran", "best": "skipped"}
    assert "voice" in (result.steps["best"].reason or "")
    assert not (tmp_path / "out" / "best.mp4").exists()


def test_the_doit_settings_of_a_content_repos_pyproject_do_not_change_a_run(
    recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a content repo may drive its own dodo.py with doit settings in pyproject.toml;
    # acpbuild runs doit with its own settings only (here: not "always run every task")
    (recipe.parent / "pyproject.toml").write_text('[tool.doit.commands.run]\nalways = true\nverbosity = 2\n')
    monkeypatch.chdir(recipe.parent)
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")  # through doit, not the no-op answer
    events: list[Event] = []
    result = acpbuild.run(recipe, env={}, on_event=events.append)
    assert set(statuses(result).values()) == {"uptodate"}
    assert [e.step for e in events if e.kind == "step_start"] == []  # no step was worked on


def test_a_run_whose_summary_cannot_be_kept_still_succeeds_and_says_so(recipe: Path) -> None:
    kept = recipe.parent / ".acpbuild" / "last-run-chain.json"
    kept.unlink()
    kept.mkdir()  # something in the way of the file `acpbuild report` reads
    (recipe.parent / "out" / "final.mp4").unlink()
    result = acpbuild.run(recipe, env={})
    assert result.success and statuses(result)["final"] == "restored"
    assert any(w.startswith(f"cannot write {kept}") for w in result.warnings), result.warnings


def test_an_unreadable_lock_is_warned_about_before_any_step_starts(recipe: Path) -> None:
    lock = recipe.parent / "chain.lock"
    lock.write_text("<<<<<<< HEAD\n" + lock.read_text())
    events: list[Event] = []
    assert acpbuild.run(recipe, env={}, on_event=events.append).success
    said = [(e.kind, e.message) for e in events if e.kind in ("warning", "step_start", "step_done")]
    kind, message = said[0]
    assert kind == "warning" and "chain.lock" in message and message.endswith("this run writes it anew"), said


def test_editing_one_clip_of_a_concat_runs_the_concat_again(tmp_path: Path) -> None:
    path = tmp_path / "reel.toml"
    clips = "".join(
        f'[steps.{n}]\nkind = "text_to_video"\nprompt = "{n} at sea"\nduration_s = 1\nfps = 10\noutput = "{n}.mp4"\n\n'
        for n in ("first", "second")
    )
    reel = '[steps.reel]\nkind = "concat"\nvideos = ["${steps.first}", "${steps.second}"]\noutput = "reel.mp4"\n'
    path.write_text(clips + reel)
    assert acpbuild.run(path, env={}).success
    path.write_text(clips.replace("second at sea", "second at dusk") + reel)
    again = acpbuild.run(path, env={})
    assert statuses(again) == {"first": "uptodate", "second": "ran", "reel": "ran"}


def test_an_input_deleted_as_its_step_finishes_fails_the_step_that_reads_it_by_name(tmp_path: Path) -> None:
    path = copy_recipe("chain.toml", tmp_path)
    cover = tmp_path / "out" / "cover.png"

    def meddle(event: Event) -> None:
        if event.kind == "step_done" and event.step == "cover":
            cover.unlink()

    result = acpbuild.run(path, env={}, jobs=1, keep_going=True, on_event=meddle)
    assert result.steps["clip"].status == "failed"
    assert result.steps["clip"].error == "step 'clip': the output of 'cover' is missing"


def test_a_fresh_clone_of_a_recipe_with_a_group_is_up_to_date_from_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "voices.toml"
    path.write_text(VOICES.format(fancy="xx-nowhere", plain=""))
    assert acpbuild.run(path, env={}).steps["voice"].status == "ran"
    made = provider_calls(tmp_path / ".acpbuild")
    shutil.rmtree(tmp_path / ".acpbuild")  # a fresh clone: the outputs and the lock
    again = acpbuild.run(path, env={})
    assert statuses(again) == {"fancy": "skipped", "plain": "uptodate", "voice": "uptodate"}
    assert again.steps["fancy"].reason == "not tried: voice keeps plain"  # the lock keeps the group's choice
    assert provider_calls(tmp_path / ".acpbuild") == 0 < made


def test_a_recipe_of_many_steps_reads_the_ledger_in_bulk_and_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acpbuild.engine import context
    from acpbuild.store.sqlite import SqliteLedger

    monkeypatch.setattr(context, "BULK", 0)  # every recipe counts as one of thousands of steps
    bulk: list[str] = []
    for method in ("outputs_of", "outputs_below", "load_digests"):
        original = getattr(SqliteLedger, method)

        def spy(self: SqliteLedger, arg: str, original: Any = original, method: str = method) -> Any:
            bulk.append(method)
            return original(self, arg)

        monkeypatch.setattr(SqliteLedger, method, spy)
    path = copy_recipe("chain.toml", tmp_path)
    assert acpbuild.run(path, env={}).success
    assert {"outputs_of", "outputs_below", "load_digests"} <= set(bulk)

    path.write_text(path.read_text().replace('prompt = "Narrate ${topic}"', 'prompt = "Describe ${topic}"'))
    edited = acpbuild.run(path, env={})
    assert statuses(edited) == {"script": "ran", "voice": "ran", "cover": "uptodate", "clip": "uptodate", "final": "ran"}
    (tmp_path / "out" / "clip.mp4").unlink()
    assert statuses(acpbuild.run(path, env={}))["clip"] == "restored"
    calls = provider_calls(tmp_path / ".acpbuild")
    assert calls == 5 + 3
    # a fresh clone: the lock alone vouches for every output
    shutil.rmtree(tmp_path / ".acpbuild")
    assert set(statuses(acpbuild.run(path, env={})).values()) == {"uptodate"}
    assert provider_calls(tmp_path / ".acpbuild") == 0


def test_a_renamed_recipe_of_many_steps_finds_its_outputs_in_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from acpbuild.engine import context
    from acpbuild.store.sqlite import SqliteLedger

    monkeypatch.setattr(context, "BULK", 0)
    path = copy_recipe("chain.toml", tmp_path)
    assert acpbuild.run(path, env={}).success
    made = provider_calls(tmp_path / ".acpbuild")
    # renamed, and its lockfile gone: only the ledger's records (made under the old name) vouch
    text = path.read_text()
    name = text.split('name = "', 1)[1].split('"', 1)[0]
    path.write_text(text.replace(f'name = "{name}"', f'name = "{name}-renamed"', 1))
    path.with_suffix(".lock").unlink()
    asked: list[str] = []
    original = SqliteLedger.output

    def one_by_one(self: SqliteLedger, where: Path) -> Any:
        asked.append(str(where))
        return original(self, where)

    monkeypatch.setattr(SqliteLedger, "output", one_by_one)
    again = acpbuild.run(path, env={})
    assert set(statuses(again).values()) == {"uptodate"}, again.to_dict()
    assert provider_calls(tmp_path / ".acpbuild") == made
    assert asked == []  # every output lies below the output folder: read with the rest
    # and the lockfile written anew vouches for every output again
    assert set(lockfile.read(path.with_suffix(".lock"))) == set(again.steps)
