"""One plan per run: the recipe is loaded once, assessed once, and each step keyed once.

These tests count calls to acpbuild's own stages while a real run goes through
doit and the local provider; the counting wrappers change nothing they wrap.
"""

from __future__ import annotations

import collections
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_recipe

import acpbuild
import acpbuild.engine.context
import acpbuild.engine.material
import acpbuild.engine.workflow
import acpbuild.recipe.loader
from acpbuild.cli import main
from acpbuild.engine.plan import Plan
from acpbuild.errors import SpendNotConfirmed

STEPS = ["script", "voice", "cover", "clip", "final"]


class Counts:
    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        #: step name -> how many times its parameters were rendered and keyed
        self.keyed: collections.Counter[str] = collections.Counter()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    found = Counts()

    def counting(module: Any, name: str, label: str, per_step: bool = False) -> None:
        real: Callable[..., Any] = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found.calls[label] += 1
            if per_step:
                found.keyed[args[0].name] += 1  # (step, upstream, ...)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(acpbuild.recipe.loader, "read_with_digest", "loads")
    counting(acpbuild.engine.workflow, "make_plan", "plans")
    counting(acpbuild.engine.material, "prepare", "keyed", per_step=True)
    real_init = acpbuild.engine.context.Context.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        found.calls["contexts"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(acpbuild.engine.context.Context, "__init__", init)
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")  # the fast path would skip the run altogether
    return found


# (extra arguments to `acpbuild run`, what they prove)
@pytest.mark.parametrize(
    "extra",
    [
        [],  # a plain run
        ["--budget", "5"],  # a budget is checked against the same plan, not a second one
        ["-j", "1"],  # doit's sequential runner asks the same questions
    ],
)
def test_a_run_loads_plans_and_keys_each_step_once(tmp_path: Path, counts: Counts, extra: list[str]) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe), "--yes", *extra]) == 0
    assert counts.calls["loads"] == 1
    assert counts.calls["plans"] == 1
    assert counts.calls["contexts"] == 1
    assert dict(counts.keyed) == {name: 1 for name in STEPS}

    # nothing changed: every step is up to date, and still keyed only once
    counts.calls.clear()
    counts.keyed.clear()
    assert main(["run", str(recipe), "--yes", *extra]) == 0
    assert counts.calls["loads"] == 1 and counts.calls["plans"] == 1
    assert dict(counts.keyed) == {name: 1 for name in STEPS}


def test_an_edit_keys_the_edited_step_and_its_dependants_once(tmp_path: Path, counts: Counts) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert acpbuild.run(recipe, env={}).success
    recipe.write_text(recipe.read_text().replace("width = 160", "width = 176"))
    counts.keyed.clear()
    result = acpbuild.run(recipe, env={})
    assert {n for n, r in result.steps.items() if r.status == "ran"} == {"cover", "clip", "final"}
    # cover is keyed by the plan; clip and final only once cover's new output exists
    assert dict(counts.keyed) == {name: 1 for name in STEPS}


def test_the_confirmed_plan_is_the_one_that_runs(tmp_path: Path, counts: Counts) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    seen: list[Plan] = []
    result = acpbuild.run(recipe, env={}, budget=1.0, confirm=seen.append)
    assert result.success
    assert len(seen) == 1 and counts.calls["plans"] == 1
    assert seen[0].names == list(result.steps)
    assert [e.state for e in seen[0].entries] == ["run"] * len(STEPS)
    assert {name: r.key for name, r in result.steps.items()}["script"] == seen[0].entries[0].key


def test_a_refusal_at_confirmation_builds_nothing(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)

    def refuse(plan: Plan) -> None:
        raise SpendNotConfirmed(f"not paying for {len(plan.entries)} steps")

    with pytest.raises(SpendNotConfirmed, match="5 steps"):
        acpbuild.run(recipe, env={}, confirm=refuse)
    assert not (tmp_path / "out").exists()


# a recipe with every kind of entry a plan shows: local texts (one up to date, one in the
# store), a collect_all of them, paid texts in a first_success group with two fallbacks, and
# a first_success group of a single paid member; no key is set, so a run would stop for one
PRICED = """
[recipe]
name = "priced"
output_dir = "out"

[steps.notes]
kind = "text"
prompt = "notes on a lighthouse"
output = "notes.txt"

[steps.draft]
kind = "text"
prompt = "a draft about a harbour"
output = "draft.txt"

[groups.texts]
steps = ["notes", "draft"]
merge = "collect_all"

[steps.a]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "Summarise: ${steps.notes}"
max_tokens = 333
output = "a.txt"

[steps.b]
kind = "text"
provider = "openrouter"
model = "openai/gpt-4o-mini"
prompt = "Summarise: ${steps.notes}"
max_tokens = 333
output = "b.txt"

[steps.c]
kind = "text"
provider = "openrouter"
model = "anthropic/claude-sonnet-4.5"
prompt = "Summarise: ${steps.notes}"
max_tokens = 333
output = "c.txt"

[groups.answer]
steps = ["a", "b", "c"]
merge = "first_success"
output = "answer.txt"

[steps.d]
kind = "text"
provider = "openrouter"
model = "openai/gpt-4o-mini"
prompt = "Say ${steps.draft}"
max_tokens = 100
output = "d.txt"

[groups.solo]
steps = ["d"]
merge = "first_success"
output = "solo.txt"
"""


def _plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["plan", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_plan_json_gives_each_step_its_state_outputs_and_figures_and_the_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(PRICED)
    made = acpbuild.run(recipe, ["notes", "draft"], env={})
    assert made.success
    (tmp_path / "out" / "draft.txt").unlink()  # still in the store: restorable

    code, doc = _plan_json(capsys, str(recipe), "--budget", "0.0012345")
    assert code == 2  # a run now would stop for the key, before paying
    plan = forecast(recipe, env={}, budget=0.0012345)
    entries = {e.name: e for e in plan.entries}
    steps = {s["name"]: s for s in doc["steps"]}
    assert doc["recipe"] == "priced"
    assert list(steps) == ["notes", "draft", "texts", "answer", "solo"]
    out = tmp_path / "out"
    expected = {
        "notes": ("uptodate", "up to date", "local", [out / "notes.txt"]),
        "draft": ("restorable", "in the store (free)", "local", [out / "draft.txt"]),
        "texts": ("uptodate", "up to date", "group", [out / "notes.txt", out / "draft.txt"]),
        "answer": ("run", "will try a, then b, c if it fails", "group", [out / "answer.txt"]),
        "solo": ("run", "will try d", "group", [out / "solo.txt"]),
    }
    for name, (status, reason, provider, outputs) in expected.items():
        step = steps[name]
        assert (step["status"], step["reason"], step["provider"]) == (status, reason, provider), name
        assert step["outputs"] == [str(p) for p in outputs], name
        assert step["cost"] == 0.0  # a plan has paid nothing yet
    assert steps["notes"]["key"] == made.steps["notes"].key and steps["draft"]["key"] == made.steps["draft"].key
    assert steps["answer"]["model"] == "first_success" and steps["texts"]["model"] == "collect_all"
    assert steps["notes"]["guess"] is None and steps["notes"]["estimated_cost"] == 0.0

    # the figures are the plan's, to the millionth of a dollar
    answer = entries["answer"].estimate
    assert answer.usd > 0 and round(answer.usd, 7) != round(answer.usd, 6)  # finer than a millionth
    assert round(answer.bound, 7) != round(answer.bound, 6)
    for name, step in steps.items():
        estimate = entries[name].estimate
        assert step["estimated_cost"] == round(estimate.usd, 6) and step["at_most"] == round(estimate.bound, 6), name
        assert step["formula"] == estimate.formula
    assert "$2.50/1M" in steps["answer"]["formula"]  # gemini-2.5-flash's output price
    assert steps["answer"]["guess"] == answer.guess and answer.guess

    totals = doc["totals"]
    assert (totals["run"], totals["restorable"], totals["uptodate"]) == (2, 1, 2)
    assert totals["cost"] == 0.0
    assert totals["estimated"] == round(answer.usd + entries["solo"].estimate.usd, 6)
    assert totals["at_most"] == round(answer.bound + entries["solo"].estimate.bound, 6)
    assert round(plan.worst_case, 7) != round(plan.worst_case, 6)
    # the worst case adds what each fallback of answer would pay, each priced on its own
    fallbacks = sum(forecast(recipe, [m], env={}).entries[-1].estimate.bound for m in ("b", "c"))
    assert fallbacks > 0
    assert totals["worst_case"] == round(plan.at_most + fallbacks, 6) == round(plan.worst_case, 6)
    assert doc["limits"] == {"the budget of $0.0012345 (--budget)": round(0.0012345, 6)}
    assert doc["over_budget"] is None
    assert [m["what"] for m in doc["missing"]] == ["OPENROUTER_API_KEY is not set (openrouter)"]


# a best_quality group whose first member has an input of its own, a first_success group
# whose first member has one too, a step that reads the first_success group's output, and a
# collect_all group
GROUPS = """
[defaults.text_to_image]
prompt = "harbour"
width = 64
height = 48

[steps.base]
kind = "text_to_image"
output = "base.png"

[steps.small]
kind = "image_to_image"
image = "${steps.base}"
operation = "mirror"
output = "small.png"

[steps.large]
kind = "text_to_image"
width = 128
height = 96
output = "large.png"

[groups.cover]
steps = ["small", "large"]
merge = "best_quality"
output = "cover.png"
score = "resolution"

[steps.first]
kind = "image_to_image"
image = "${steps.base}"
operation = "grayscale"
output = "first.png"

[steps.second]
kind = "text_to_image"
prompt = "lighthouse"
output = "second.png"

[groups.pick]
steps = ["first", "second"]
merge = "first_success"
output = "pick.png"

[steps.thumb]
kind = "image_to_image"
image = "${steps.pick}"
operation = "mirror"
output = "thumb.png"

[steps.extra]
kind = "text_to_image"
prompt = "quay"
output = "extra.png"

[groups.both]
steps = ["base", "extra"]
merge = "collect_all"
"""


def test_plan_names_every_input_of_a_step_that_is_still_to_be_made(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = copy_recipe("chain.toml", tmp_path)
    entries = forecast(recipe, env={}).entries
    assert {(e.estimate.usd, e.estimate.formula, e.estimate.guess) for e in entries} == {(0.0, "free", "")}
    reasons = {e.name: (e.state, e.reason) for e in entries}
    assert reasons["voice"] == ("run", "needs script, which will run")
    assert reasons["final"] == ("run", "needs clip, voice, which will run")


def test_plan_tells_each_group_apart_before_after_and_between_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acpbuild.engine.workflow import clean, forecast
    from acpbuild.keys import file_digest

    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(GROUPS)
    out = tmp_path / "out"

    def groups() -> dict[str, tuple[str, str]]:
        code, doc = _plan_json(capsys, str(recipe))
        assert code == 0
        return {s["name"]: (s["status"], s["reason"]) for s in doc["steps"] if s["name"] in ("cover", "pick", "both")}

    # nothing made yet: each group waits for what it needs
    assert groups() == {
        "cover": ("run", "needs small, large, which will run"),
        "pick": ("run", "will try first, then second if it fails"),
        "both": ("run", "needs base, extra, which will run"),
    }
    made = acpbuild.run(recipe, env={})
    assert made.success, made.to_dict()

    # all made: each group is up to date, the chosen member named, with the key and output it holds
    assert groups() == {
        "cover": ("uptodate", "large chosen (up to date)"),
        "pick": ("uptodate", "first chosen (up to date)"),
        "both": ("uptodate", "up to date"),
    }
    entries = {e.name: e for e in forecast(recipe, env={}).entries}
    for name in ("cover", "pick"):
        assert entries[name].key == made.steps[name].key, name
        assert entries[name].digest == file_digest(out / f"{name}.png"), name

    # the group's copy gone, its first member still here: the copy is made again for free,
    # and a step reading the group stays up to date
    (out / "pick.png").unlink()
    entries = {e.name: e for e in forecast(recipe, env={}).entries}
    assert (entries["pick"].state, entries["pick"].reason) == ("restorable", "first: up to date")
    assert entries["pick"].digest == file_digest(out / "first.png")
    assert entries["thumb"].state == "uptodate"

    # every output gone: the members come back from the store, best_quality chooses again
    digest = file_digest(out / "first.png")
    assert clean(recipe, env={})
    assert groups() == {
        "cover": ("run", "will choose among small, large (free)"),
        "pick": ("restorable", "first: in the store (free)"),
        "both": ("uptodate", "up to date"),
    }
    entries = {e.name: e for e in forecast(recipe, env={}).entries}
    assert entries["pick"].digest == digest
    assert entries["thumb"].state == "restorable"


def test_the_monthly_cap_counts_from_midnight_on_the_first_of_the_month(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from datetime import datetime

    from acpbuild.money.budget import month_start

    # a zone with summer time, so that a mid-January date is not on summer time
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    try:
        time.tzset()
        for when in (datetime(2025, 1, 17, 15, 30), datetime(2025, 7, 31, 23, 59)):
            assert month_start(when.timestamp()) == datetime(when.year, when.month, 1).timestamp()
            assert month_start(when.timestamp()) != month_start(None)  # its own month, not now's
    finally:
        monkeypatch.undo()  # TZ as it was
        time.tzset()


TOLD = """
[recipe]
name = "{name}"
output_dir = "out"

[steps.{step}]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "{prompt}"
max_tokens = 1000
output = "script.txt"

[steps.tag]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "A title for: ${{steps.{step}}}"
output = "tag.txt"

[steps.intro]
kind = "text"
prompt = "{prompt}"
output = "intro.txt"

[steps.fresh]
kind = "text"
provider = "openrouter"
model = "openai/gpt-4o-mini"
prompt = "Something new"
output = "fresh.txt"

[steps.voice]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "${{steps.{step}}}"
output = "voice.mp3"

[steps.spoken_intro]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "${{steps.intro}}"
output = "intro.mp3"

[steps.spoken_fresh]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "${{steps.fresh}}"
output = "fresh.mp3"
"""


def test_the_plan_expects_a_text_as_long_as_its_step_or_its_model_wrote_before(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast
    from tests.emulators.openrouter import KEY, OpenRouterEmulator

    per_char = 0.10 / 1000  # eleven_multilingual_v2, per character
    recipe = tmp_path / "acpbuild.toml"
    out = tmp_path / "out"

    def told(prompt: str, name: str = "told", step: str = "script") -> None:
        recipe.write_text(TOLD.format(name=name, step=step, prompt=prompt))

    with OpenRouterEmulator() as emulator:
        env = {"OPENROUTER_API_KEY": KEY, "ACPBUILD_OPENROUTER_URL": f"{emulator.url}/api/v1", "ACPBUILD_RETRY_BASE_S": "0.01"}
        # twice, so that the ledger holds two scripts of different lengths, each followed by a title
        written: list[str] = []  # what the model wrote, oldest first
        intros: list[str] = []  # what the free local model wrote
        for prompt in ("Narrate a lighthouse at dawn " * 3, "Narrate a harbour " * 12):
            told(prompt)
            assert acpbuild.run(recipe, ["script", "tag", "intro"], env=env).success
            written += [(out / f"{name}.txt").read_text(encoding="utf-8") for name in ("script", "tag")]
            intros.append((out / "intro.txt").read_text(encoding="utf-8"))
        script = (out / "script.txt").read_text(encoding="utf-8")
        intro = (out / "intro.txt").read_text(encoding="utf-8")
        assert len(script.encode()) != len((out / "tag.txt").read_text(encoding="utf-8").encode())

        told("Narrate a river " * 7)
        entries = {e.name: e for e in forecast(recipe, env=env).entries}
        # the script's own last run: its length, and the tokens it was billed for
        voice, own = entries["voice"].estimate, entries["script"].estimate
        assert voice.usd == pytest.approx(len(script.encode()) * per_char)
        assert voice.guess == f"text not yet written: {len(script.encode())} characters, as its last run wrote"
        assert f" {len(script.split())} out x $2.50/1M" in own.formula  # the emulator bills a token a word
        assert entries["spoken_intro"].estimate.usd == pytest.approx(len(intro.encode()) * per_char)
        # a model that never wrote anything: the prior of 1,200 characters
        assert entries["spoken_fresh"].estimate.usd == pytest.approx(1200 * per_char)

        # without the blobs here (another machine's ledger), the billed tokens tell the length
        outputs = {text.encode() for text in written} | {intro.encode()}
        blobs = [p for p in (tmp_path / ".acpbuild").rglob("*") if p.is_file() and p.read_bytes() in outputs]
        assert len(blobs) == 5
        for blob in blobs:
            blob.unlink()
        entries = {e.name: e for e in forecast(recipe, env=env).entries}
        assert entries["voice"].estimate.usd == pytest.approx(len(script.split()) * 4 * per_char)
        assert entries["spoken_intro"].state == "run"
        # the free intro was billed no tokens: with its copy gone its last run says nothing of
        # its length, so it is expected as long as the earlier intro this machine still holds
        assert entries["spoken_intro"].estimate.usd == pytest.approx(len(intros[0].encode()) * per_char)
        assert "the median of" in (entries["spoken_intro"].estimate.guess or "")

        # another recipe's first script from the same model: the median of what that model wrote
        told("Describe a harbour", name="other", step="line")
        lengths = [len(text.split()) * 4 for text in written]
        entries = {e.name: e for e in forecast(recipe, env=env).entries}
        assert entries["voice"].estimate.usd == pytest.approx(int(statistics.median(lengths)) * per_char)
        assert entries["voice"].estimate.guess.endswith(f"the median of {len(lengths)} earlier google/gemini-2.5-flash texts")
        assert entries["spoken_fresh"].estimate.usd == pytest.approx(1200 * per_char)


def test_the_reason_a_step_runs_names_what_changed_since_its_output_was_made() -> None:
    from acpbuild.engine.material import why
    from acpbuild.store.ledger import OutputRecord

    def made(material: dict[str, Any]) -> OutputRecord:
        return OutputRecord("/p/out/a.txt", "k" * 32, "d" * 32, json.dumps(material), "r", "a")

    before = {"kind": "text", "provider": "local", "model": "template", "adapter": "1", "format": "txt",
              "params": {"prompt": "a harbour", "seed": 1}}
    assert why(None, before) == "never built"
    assert why(made(before), before) == "output missing or modified"
    after = {"kind": "image", "provider": "fal", "model": "flux", "adapter": "2", "format": "png",
             "params": {"prompt": "a quay", "width": 64}}
    assert why(made(before), after) == "kind, provider, model, adapter, format, prompt changed, seed removed, width added"
    # an output last made by something else (a group's choice records no params): every param is new
    assert why(made({"group": "first_success"}), before) == "kind, provider, model, adapter, format, prompt added, seed added"
