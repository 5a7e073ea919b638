"""A big run hands doit its steps a batch at a time: whole connected parts, the same result.

Each test lowers ``tasks.BATCH`` so a recipe of a dozen steps runs in batches,
builds it through the real local provider and doit, and checks what ran, in
which batch, and what the run reports, against the same recipe run in one batch.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import acpbuild
from acpbuild.engine import tasks, workflow
from acpbuild.engine.results import Event
from acpbuild.recipe import load_recipe
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator
from tests.test_changed_items import CHAIN

# line[i] and shout[i] (a part of two steps per item), and a part of three: a group and its members
RECIPE = (
    CHAIN
    + """
[steps.voice]
kind = "text_to_speech"
foreach = "items.csv"
text = "${item.line}"
voice = "${item.voice}"
output = "voices/${item.id}.wav"

[steps.fancy]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "no-such-voice"
output = "fancy.wav"

[steps.plain]
kind = "text_to_speech"
text = "Hello from the harbour."
output = "plain.wav"

[groups.greeting]
steps = ["fancy", "plain"]
merge = "first_success"
output = "greeting.wav"
"""
)


def catalog(root: Path, voices: dict[str, str]) -> Path:
    with (root / "items.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "line", "voice"])
        out.writerows([i, f"line {i}", v] for i, v in voices.items())
    path = root / "acpbuild.toml"
    path.write_text(RECIPE)
    return path


def good(count: int) -> dict[str, str]:
    return {f"i{n}": "en" for n in range(count)}


def test_batches_are_whole_connected_parts_in_build_order(tmp_path: Path) -> None:
    recipe = load_recipe(catalog(tmp_path, good(5)), env={})
    names = workflow.selected(recipe, None)
    found = tasks.batches(recipe, names, size=4)
    assert sorted(n for batch in found for n in batch) == sorted(names)
    placed = {n: i for i, batch in enumerate(found) for n in batch}
    for i, batch in enumerate(found):
        assert batch == [n for n in names if placed[n] == i]  # build order kept
    for name in names:
        deps = recipe.groups[name].members if name in recipe.groups else recipe.steps[name].deps
        assert all(placed[d] == placed[name] for d in deps if d in placed), name
    # line[i] and shout[i] form a part of two; every batch but the last holds at least 4
    assert len(found) > 1 and all(len(b) >= 4 for b in found[:-1])
    assert tasks.batches(recipe, names, size=len(names)) == [names]


def _run(path: Path, monkeypatch: pytest.MonkeyPatch, size: int, **kw: object) -> tuple[acpbuild.RunResult, int]:
    monkeypatch.setattr(tasks, "BATCH", size)
    seen: list[Event] = []
    result = acpbuild.run(path, env={}, on_event=seen.append, **kw)  # type: ignore[arg-type]
    return result, sum(1 for e in seen if e.kind == "step_done")


def _outputs(root: Path) -> dict[str, bytes | None]:
    """Every output file, with the bytes of the text ones (speech differs a little from one synthesis to the next)."""
    out = root / "out"
    return {
        str(p.relative_to(out)): p.read_bytes() if p.suffix == ".txt" else None for p in sorted(out.rglob("*")) if p.is_file()
    }


def test_a_run_in_batches_builds_and_reports_what_one_batch_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, batched = tmp_path / "whole", tmp_path / "batched"
    results = []
    for root, size in ((whole, 10_000), (batched, 4)):
        root.mkdir()
        result, done = _run(catalog(root, good(6)), monkeypatch, size, jobs=2)
        assert result.success, result.to_dict()
        assert done == len(result.steps) - 2  # fancy and plain ran inside their group
        results.append(result)
    one, many = results
    assert {n: (r.status, r.key) for n, r in many.steps.items()} == {n: (r.status, r.key) for n, r in one.steps.items()}
    assert many.steps["greeting"].reason == "fancy failed, fell back to plain"
    assert many.steps["shout[i5]"].status == "ran"
    assert _outputs(batched) == _outputs(whole)
    # and again: nothing to do, in batches too
    again, _ = _run(batched / "acpbuild.toml", monkeypatch, 4, jobs=2)
    assert {r.status for r in again.steps.values() if r.group is None} == {"uptodate"}


def test_a_failed_step_stops_the_batches_after_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voices = good(8)
    voices["i1"] = "no-such-voice"
    path = catalog(tmp_path, voices)
    recipe = load_recipe(path, env={})
    names = workflow.selected(recipe, None)
    found = tasks.batches(recipe, names, size=4)
    first = next(i for i, b in enumerate(found) if "voice[i1]" in b)
    later = [n for b in found[first + 1 :] for n in b]
    assert later, found

    result, _ = _run(path, monkeypatch, 4, jobs=1)
    assert not result.success and result.exit_code != 0
    assert result.steps["voice[i1]"].status == "failed"
    assert "no-such-voice" in (result.steps["voice[i1]"].error or "")
    for name in later:  # never handed to doit
        assert result.steps[name].status == "skipped", name
        assert result.steps[name].reason == "not run: an earlier step failed (--keep-going runs what it can)"
    assert not any((tmp_path / "out").rglob("voices/i7.wav"))


def test_keep_going_runs_every_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voices = good(8)
    voices["i1"] = "no-such-voice"
    result, done = _run(catalog(tmp_path, voices), monkeypatch, 4, jobs=1, keep_going=True)
    assert result.steps["voice[i1]"].status == "failed"
    assert {n for n, r in result.steps.items() if r.status not in ("ran", "restored")} == {"voice[i1]", "fancy"}
    assert (tmp_path / "out" / "voices" / "i7.wav").is_file()
    assert done == len(result.steps) - 2  # fancy and plain ran inside their group


def test_paid_steps_in_batches_are_each_bought_once_on_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenRouterEmulator() as openrouter:
        env = {"OPENROUTER_API_KEY": OPENROUTER_KEY, "ACPBUILD_OPENROUTER_URL": f"{openrouter.url}/api/v1"}
        path = catalog(tmp_path, good(7))
        path.write_text(
            '[recipe]\nname = "catalog"\nconcurrency = { openrouter = 4 }\n\n[steps.line]\nkind = "text"\n'
            'provider = "openrouter"\nmodel = "openai/gpt-4o-mini"\nforeach = "items.csv"\nprompt = "${item.line}"\n'
            'max_tokens = 20\noutput = "lines/${item.id}.txt"\n'
        )
        monkeypatch.setattr(tasks, "BATCH", 3)
        assert len(tasks.batches(load_recipe(path, env=env), [f"line[i{n}]" for n in range(7)])) == 3
        result = acpbuild.run(path, env=env, jobs=4)
        assert result.success, result.to_dict()
        assert {r.status for r in result.steps.values()} == {"ran"} and len(result.steps) == 7
        assert openrouter.submissions == 7
        sent = sorted(c.json()["messages"][-1]["content"] for c in openrouter.calls("POST", "/api/v1/chat/completions"))
        assert sent == [f"line i{n}" for n in range(7)]
        assert result.total_cost > 0
        again = acpbuild.run(path, env=env, jobs=4)
        assert {r.status for r in again.steps.values()} == {"uptodate"} and openrouter.submissions == 7
