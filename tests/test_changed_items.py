"""The incremental path: a run after some foreach items changed loads and builds only those.

Each test builds a recipe once, changes something, and runs again through the
real local provider and doit. It checks what ran, how many steps the run loaded
(its ``start`` event), what the provider was asked (the ledger's rows), and
that the lockfile, the manifest and the last run it leaves are the ones a run
loading the whole recipe leaves.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import provider_calls
from PIL import Image

import acpbuild
from acpbuild.cli import main
from acpbuild.engine import incremental, workflow
from acpbuild.engine.results import Event
from acpbuild.recipe import load_recipe
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator

CHAIN = """
[recipe]
name = "catalog"

[steps.line]
kind = "text"
foreach = "items.csv"
prompt = "${item.line}"
output = "lines/${item.id}.txt"

[steps.shout]
kind = "text"
foreach = "${steps.line}"
prompt = "Say it louder: ${steps.line}"
output = "shouts/${item.id}.txt"
"""


def write_table(root: Path, rows: dict[str, str]) -> None:
    with (root / "items.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "line"])
        out.writerows(rows.items())


def catalog(root: Path, count: int = 12, recipe: str = CHAIN) -> Path:
    write_table(root, {f"i{n}": f"line number {n}" for n in range(count)})
    path = root / "acpbuild.toml"
    path.write_text(recipe)
    return path


class Run:
    """One run of the recipe: its result, and how many steps it loaded and set out to build."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        events: list[Event] = []
        self.result = acpbuild.run(path, env=env or {}, on_event=events.append)
        assert self.result.success, self.result.to_dict()
        self.loaded = next(e.total for e in events if e.kind == "start")

    def ran(self) -> set[str]:
        return {n for n, s in self.result.steps.items() if s.status == "ran"}

    def statuses(self) -> set[str]:
        return {s.status for n, s in self.result.steps.items() if n not in self.ran()}


def whole_run_changes_nothing(root: Path, path: Path, env: dict[str, str] | None = None) -> None:
    """A run that loads the whole recipe finds everything built and writes the same lockfile."""
    lock = (root / "acpbuild.lock").read_text()
    manifest = json.loads((root / ".acpbuild" / "noop-catalog.json").read_text())
    result = acpbuild.run(path, env={**(env or {}), "ACPBUILD_NO_FASTPATH": "1"})
    assert result.success, result.to_dict()
    assert {s.status for s in result.steps.values()} == {"uptodate"}
    assert (root / "acpbuild.lock").read_text() == lock
    again = json.loads((root / ".acpbuild" / "noop-catalog.json").read_text())
    assert sorted(manifest["outputs"]) == sorted(again["outputs"])
    assert sorted(manifest["inputs"]) == sorted(again["inputs"])
    assert sorted(s["name"] for s in manifest["steps"]) == sorted(s["name"] for s in again["steps"])


def test_one_edited_row_loads_and_builds_that_item_and_nothing_else(tmp_path: Path) -> None:
    path = catalog(tmp_path)
    first = Run(path)
    assert first.loaded == 24 and len(first.ran()) == 24
    calls = provider_calls(tmp_path / ".acpbuild")
    write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n == 7 else "") for n in range(12)})

    second = Run(path)

    assert second.loaded == 2  # line[i7] and the shout that waits on it: not 24
    assert second.ran() == {"line[i7]", "shout[i7]"}
    assert len(second.result.steps) == 24 and second.statuses() == {"uptodate"}
    assert provider_calls(tmp_path / ".acpbuild") == calls + 2
    assert (tmp_path / "out" / "lines" / "i7.txt").read_text() != (tmp_path / "out" / "lines" / "i6.txt").read_text()
    assert "edited" in (tmp_path / "out" / "lines" / "i7.txt").read_text()
    whole_run_changes_nothing(tmp_path, path)


def test_the_run_after_an_incremental_one_is_answered_by_the_fast_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    catalog(tmp_path)
    assert main(["run"]) == 0
    capsys.readouterr()
    write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n == 3 else "") for n in range(12)})
    assert main(["run"]) == 0
    assert "ok: 2 ran, 22 uptodate" in capsys.readouterr().out
    assert main(["run"]) == 0
    assert "nothing changed since the last run of catalog" in capsys.readouterr().out
    assert main(["check"]) == 0


def test_a_new_row_builds_its_item_and_a_removed_row_leaves_the_lock(tmp_path: Path) -> None:
    path = catalog(tmp_path)
    Run(path)
    rows = {f"i{n}": f"line number {n}" for n in range(12)}
    write_table(tmp_path, {**rows, "fresh": "a new line"})
    added = Run(path)
    assert added.loaded == 2 and added.ran() == {"line[fresh]", "shout[fresh]"}
    assert len(added.result.steps) == 26
    assert '[steps."shout[fresh]"]' in (tmp_path / "acpbuild.lock").read_text()

    del rows["i4"]
    write_table(tmp_path, {**rows, "fresh": "a new line"})
    removed = Run(path)
    assert removed.loaded == 0 and removed.ran() == set()
    assert "line[i4]" not in removed.result.steps and len(removed.result.steps) == 24
    lock = (tmp_path / "acpbuild.lock").read_text()
    assert "[i4]" not in lock and "[i5]" in lock
    whole_run_changes_nothing(tmp_path, path)


def test_a_deleted_output_of_one_item_is_restored_for_free(tmp_path: Path) -> None:
    path = catalog(tmp_path)
    Run(path)
    calls = provider_calls(tmp_path / ".acpbuild")
    made = (tmp_path / "out" / "shouts" / "i2.txt").read_text()
    (tmp_path / "out" / "shouts" / "i2.txt").unlink()
    again = Run(path)
    assert again.loaded == 2  # shout[i2] and the line it waits on, both of item i2
    assert again.result.steps["shout[i2]"].status == "restored"
    assert (tmp_path / "out" / "shouts" / "i2.txt").read_text() == made
    assert provider_calls(tmp_path / ".acpbuild") == calls


GLOB = """
[recipe]
name = "catalog"

[steps.note]
kind = "text"
foreach = "notes/*.md"
prompt = "Note: ${item.text}"
output = "notes/${item.stem}.txt"
"""


def test_a_globbed_file_edited_added_or_deleted_builds_only_its_item(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    for n in range(8):
        (tmp_path / "notes" / f"n{n}.md").write_text(f"note {n}")
    path = tmp_path / "acpbuild.toml"
    path.write_text(GLOB)
    Run(path)

    (tmp_path / "notes" / "n5.md").write_text("note five, rewritten")
    edited = Run(path)
    assert edited.loaded == 1 and edited.ran() == {"note[n5]"}
    assert "rewritten" in (tmp_path / "out" / "notes" / "n5.txt").read_text()

    (tmp_path / "notes" / "n9.md").write_text("a ninth note")
    (tmp_path / "notes" / "n1.md").unlink()
    changed = Run(path)
    assert changed.loaded == 1 and changed.ran() == {"note[n9]"}
    assert "note[n1]" not in changed.result.steps and len(changed.result.steps) == 8
    whole_run_changes_nothing(tmp_path, path)


def test_a_step_outside_the_foreach_whose_input_changed_runs_with_the_items_that_wait_on_it(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "navy").save(tmp_path / "style.png")
    path = catalog(
        tmp_path,
        6,
        """
[recipe]
name = "catalog"

[steps.style]
kind = "image_understanding"
image = "style.png"
output = "style.txt"

[steps.line]
kind = "text"
foreach = "items.csv"
prompt = "${item.line} in the style of ${steps.style}"
output = "lines/${item.id}.txt"

[steps.other]
kind = "text"
prompt = "unrelated"
output = "other.txt"
""",
    )
    Run(path)
    Image.new("RGB", (16, 8), "orange").save(tmp_path / "style.png")
    again = Run(path)
    assert again.ran() == {"style", *(f"line[i{n}]" for n in range(6))}
    assert again.result.steps["other"].status == "uptodate"
    whole_run_changes_nothing(tmp_path, path)


def test_a_recipe_with_a_step_over_every_item_is_loaded_whole(tmp_path: Path) -> None:
    path = catalog(
        tmp_path,
        5,
        CHAIN
        + """
[steps.all]
kind = "text"
prompt = "${steps.line[i0]} and ${steps.line[i1]}"
output = "all.txt"
""",
    )
    Run(path)
    assert not (tmp_path / ".acpbuild" / "noop-catalog.items.json").exists()
    write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n == 1 else "") for n in range(5)})
    again = Run(path)
    assert again.loaded == 11  # every step: "all" waits on items, so no item stands alone
    assert again.ran() == {"line[i1]", "shout[i1]", "all"}


def test_a_lockfile_edited_by_hand_sends_the_run_through_the_whole_recipe(tmp_path: Path) -> None:
    path = catalog(tmp_path, 4)
    Run(path)
    lock = tmp_path / "acpbuild.lock"
    lock.write_text(lock.read_text().replace('model = "template"', 'model = "template"  # checked', 1))
    write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n == 0 else "") for n in range(4)})
    again = Run(path)
    assert again.loaded == 8 and again.ran() == {"line[i0]", "shout[i0]"}
    assert "# checked" not in lock.read_text()  # written anew, from the whole recipe


def test_a_row_edited_again_while_the_run_loads_is_never_taken_as_built(tmp_path: Path) -> None:
    path = catalog(tmp_path, 6)
    Run(path)
    write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n == 1 else "") for n in range(6)})
    found = incremental.delta(path, {})
    assert found is not None and found.ids == {"i1"}
    # between the comparison and the load, another row changes
    write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n in (1, 2) else "") for n in range(6)})
    part = load_recipe(path, {}, items=found.ids)
    assert set(part.steps) == {"line[i1]", "shout[i1]"}
    assert not incremental.fits(found, part)
    again = Run(path)  # a run compares afresh
    assert again.loaded == 4 and again.ran() == {"line[i1]", "shout[i1]", "line[i2]", "shout[i2]"}


def test_an_items_output_clashing_with_a_kept_items_loads_the_whole_recipe_to_name_it(tmp_path: Path) -> None:
    recipe = CHAIN.replace('output = "lines/${item.id}.txt"', 'output = "lines/${item.line}.txt"')
    path = catalog(tmp_path, 4, recipe)
    Run(path)
    write_table(tmp_path, {f"i{n}": f"line number {n}" if n != 3 else "line number 0" for n in range(4)})
    with pytest.raises(acpbuild.RecipeError, match="both write lines/line number 0.txt"):
        acpbuild.run(path, env={})


def test_plan_and_check_after_one_edited_row_assess_that_item_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    path = catalog(tmp_path)
    Run(path)
    rows = {f"i{n}": f"line number {n}" + (" edited" if n == 5 else "") for n in range(12)}
    write_table(tmp_path, rows)

    plan = workflow.forecast(path, env={})
    assert {e.name for e in plan.entries if e.state == "run"} == {"line[i5]", "shout[i5]"}
    assert len(plan.entries) == 24 and len(plan.kept) == 22  # two assessed; the rest as the last run left them
    whole = workflow.forecast(path, env={"ACPBUILD_NO_FASTPATH": "1"})
    assert not whole.kept

    def by_name(doc: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(doc["steps"], key=lambda step: step["name"])

    assert by_name(plan.to_dict()) == by_name(whole.to_dict())

    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 1
    said = capsys.readouterr().err
    assert "2 not up to date" in said and "line[i5]: prompt changed" in said

    del rows["i9"]
    write_table(tmp_path, rows)
    assert main(["check"]) == 1
    said = capsys.readouterr().err
    assert "line[i9]: in acpbuild.lock, but no longer in acpbuild.toml" in said
    assert main(["run"]) == 0
    assert main(["check"]) == 0


def test_one_edited_row_of_a_paid_foreach_sends_one_request_on_the_wire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OpenRouterEmulator() as openrouter:
        monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
        monkeypatch.setenv("ACPBUILD_OPENROUTER_URL", f"{openrouter.url}/api/v1")
        path = catalog(
            tmp_path,
            8,
            '[recipe]\nname = "catalog"\n\n[steps.line]\nkind = "text"\nprovider = "openrouter"\n'
            'model = "openai/gpt-4o-mini"\nforeach = "items.csv"\nprompt = "${item.line}"\nmax_tokens = 20\n'
            'output = "lines/${item.id}.txt"\n',
        )
        first = Run(path, dict(os.environ))
        assert len(first.ran()) == 8 and openrouter.submissions == 8
        write_table(tmp_path, {f"i{n}": f"line number {n}" + (" edited" if n == 6 else "") for n in range(8)})

        second = Run(path, dict(os.environ))

        assert second.loaded == 1 and second.ran() == {"line[i6]"}
        assert openrouter.submissions == 9
        sent = openrouter.calls("POST", "/api/v1/chat/completions")[-1].json()
        assert sent["messages"][-1]["content"] == "line number 6 edited"
        assert second.result.total_cost > 0 and len(second.result.steps) == 8
        whole_run_changes_nothing(tmp_path, path, dict(os.environ))
        assert openrouter.submissions == 9
