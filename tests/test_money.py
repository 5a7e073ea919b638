"""Money: the price registry, estimates, budgets, confirmation and spend reports.

The run tests go through the real SDKs to the loopback emulators, and count
billable requests where the provider sees them.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_recipe, provider_calls

import acpbuild
from acpbuild import money, providers
from acpbuild.cli import main
from acpbuild.errors import BudgetExceeded
from acpbuild.money.estimate import FAL_IMAGE_SIZES, Unknown, estimate
from tests import test_mixed_providers as mixed
from tests.emulators import Response
from tests.test_mixed_providers import World

# the emulator world of the mixed-provider tests, shared as fixtures
media = mixed.media
world = mixed.world

ROOT = Path(__file__).resolve().parents[1]
PAID = [name for name in providers.BUILT_IN if providers.provider_class(name).paid]


def _registry() -> dict[tuple[str, str], dict[str, Any]]:
    """The price files read directly, not through acpbuild.money."""
    found = {}
    for path in (ROOT / "acpbuild" / "money" / "prices").glob("*.toml"):
        for model, entry in tomllib.loads(path.read_text())["models"].items():
            found[(path.stem, model)] = entry
    return found


# -- the registry ---------------------------------------------------------------
def test_every_paid_model_has_a_price_and_every_price_a_model() -> None:
    catalogued = {(p, m) for p in PAID for m in providers.catalogue(p)}
    assert catalogued == set(_registry())
    assert not any(money.price_of("local", m) for m in providers.catalogue("local"))  # local is free
    for entry in _registry().values():
        assert entry["unit"] in money.UNITS
        assert entry["source"] and entry["date"]


def test_every_rate_factor_covers_every_value_of_its_parameter() -> None:
    # a value missing from a `by` table would silently be billed at the base rate
    for (provider, name), entry in _registry().items():
        model = providers.catalogue(provider)[name]
        for param, table in entry.get("by", {}).items():
            specs = [model.params_for(k)[param] for k in model.kinds if param in model.params_for(k)]
            assert specs, f"{provider}/{name}: no parameter {param!r}"
            for spec in specs:
                assert spec.choices is not None and set(map(str, spec.choices)) == set(table), (name, param)


# -- estimates match the registry --------------------------------------------------
def _expected(entry: dict[str, Any], params: dict[str, Any], *, seconds: float | None = None) -> float:
    """The registry's own arithmetic, written out for the test."""
    unit = entry["unit"]
    if unit == "image":
        return float(entry["usd"])
    if unit == "megapixel":
        w, h = FAL_IMAGE_SIZES[params.get("image_size", "landscape_4_3")]
        mp = w * h / 1e6
        return (math.ceil(mp) if entry.get("round_up") else mp) * entry["usd"]
    if unit == "second":
        rate = entry.get("usd_with_audio") if params.get("generate_audio") and "usd_with_audio" in entry else entry["usd"]
        for param, table in entry.get("by", {}).items():
            rate *= table[str(params[param])] if param in params else 1.0
        return float(seconds if seconds is not None else params["duration_s"]) * rate
    if unit == "1k_characters":
        return len(params["text"]) / 1000 * entry["usd"]
    if unit == "1m_tokens":
        tokens_in = math.ceil(len(params["prompt"]) / 4)
        return (tokens_in * entry["input_usd"] + params["max_tokens"] * entry["output_usd"]) / 1e6
    raise AssertionError(unit)


def _cases() -> list[Any]:
    """(provider, model, kind, params, media seconds) for every catalogued paid model and kind."""
    cases = []
    for provider in PAID:
        for name, model in providers.catalogue(provider).items():
            for kind in model.kinds:
                specs = model.params_for(kind)
                base = {n: p.default for n, p in specs.items() if p.default is not None}
                variants: list[dict[str, Any]] = [{}]
                if "duration_s" in specs and specs["duration_s"].choices:
                    variants = [{"duration_s": d} for d in specs["duration_s"].choices]
                elif "duration_s" in specs:
                    variants = [{"duration_s": 3.0}, {"duration_s": 12.5}]
                if "generate_audio" in specs:
                    variants = [{**v, "generate_audio": a} for v in variants for a in (False, True)]
                if "image_size" in specs:
                    variants = [{**v, "image_size": s} for v in variants for s in FAL_IMAGE_SIZES]
                for param in _registry()[(provider, name)].get("by", {}):
                    # every value of a parameter the rate depends on (resolution, fps)
                    if param in specs:
                        variants = [{**v, param: c} for v in variants for c in specs[param].choices or ()]
                if "text" in specs:
                    variants = [{"text": "x" * n} for n in (1, 140, 5000)]
                if "max_tokens" in specs:
                    variants = [{"prompt": "p" * n, "max_tokens": t} for n, t in ((10, 1), (401, 200), (8000, 4096))]
                for variant in variants:
                    # a model billed by the length of its input media gets a guessed 7.5 s input
                    media_s = None if "duration_s" in {**base, **variant} else 7.5
                    params = {**base, **variant}
                    for pname, spec in specs.items():
                        if spec.type in ("video", "audio") and media_s is not None:
                            params[pname] = Unknown(seconds=media_s, why="test")
                    cases.append(pytest.param(provider, name, kind, params, media_s, id=f"{provider}/{name}/{kind}/{variant}"))
    return cases


@pytest.mark.parametrize(("provider", "name", "kind", "params", "media_s"), _cases())
def test_the_estimate_of_every_catalogued_model_matches_its_registry_entry(
    provider: str, name: str, kind: str, params: dict[str, Any], media_s: float | None
) -> None:
    model = providers.catalogue(provider)[name]
    entry = _registry()[(provider, name)]
    found = estimate(provider, model, kind, params)
    assert found.usd == pytest.approx(_expected(entry, params, seconds=media_s))
    assert found.formula


def test_the_estimate_says_how_it_was_computed() -> None:
    hailuo = providers.catalogue("fal")["hailuo-02"]
    assert estimate("fal", hailuo, "image_to_video", {"duration_s": 6}).formula == "6 s x $0.045/s"
    voice = providers.catalogue("elevenlabs")["eleven_multilingual_v2"]
    guessed = estimate("elevenlabs", voice, "text_to_speech", {"text": Unknown(800, why="800 characters assumed")})
    assert guessed.usd == pytest.approx(0.08) and "assumed" in guessed.guess
    assert estimate("local", providers.catalogue("local")["espeak"], "text_to_speech", {"text": "hi"}, paid=False).usd == 0


def test_estimate_needs_no_key_and_shows_each_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    assert main(["estimate", str(recipe), "--detailed"]) == 0
    out = capsys.readouterr().out
    assert "6 s x $0.045/s" in out and "a run now would pay ~$" in out
    assert main(["estimate", str(recipe), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["clip"]["estimated_cost"] == pytest.approx(0.27)
    assert steps["final"]["estimated_cost"] == 0
    assert steps["voice"]["guess"]  # its text is not written yet
    assert doc["totals"]["estimated"] == pytest.approx(sum(s["estimated_cost"] for s in doc["steps"]))
    assert doc["totals"]["cost"] == 0


# -- budget reservations --------------------------------------------------------------
class SlowBudget(money.Budget):
    """Reads what is committed slowly, so that unguarded reservations would overlap."""

    @property
    def committed(self) -> float:
        value = super().committed
        time.sleep(0.002)
        return value


def test_reservations_never_cross_the_budget_under_contention() -> None:
    budget = SlowBudget({"the budget": 0.35 + 1e-9})
    granted: list[int] = []
    start = threading.Barrier(32)

    def take(i: int) -> None:
        start.wait()
        try:
            budget.reserve(f"s{i}", 0.05)
            granted.append(i)
        except BudgetExceeded:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 7
    assert budget.warnings  # 0.35 of 0.35 is past 80%
    budget.settle(f"s{granted[0]}", 0.01)  # a cheaper actual frees room
    budget.reserve("extra", 0.04)


def test_a_recipe_whose_plan_is_over_budget_makes_zero_paid_calls(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", str(recipe), "--yes", "--budget", "0.10"]) == 3
    assert "nothing was spent" in capsys.readouterr().err
    assert world.requests() == 0
    assert provider_calls(tmp_path / ".acpbuild") == 0
    # the recipe's own budget_usd does the same through the Python API
    recipe.write_text(recipe.read_text().replace('output_dir = "out"', 'output_dir = "out"\nbudget_usd = 0.1'))
    with pytest.raises(BudgetExceeded):
        acpbuild.run(recipe, env=world.env)
    assert world.requests() == 0


def test_twenty_steps_under_a_budget_for_seven_make_exactly_seven_calls_at_j16(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("twenty.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    # -k: build what fits rather than refuse the whole plan up front
    code = main(["run", str(recipe), "-j", "16", "-k", "--yes", "--json", "--budget", str(7 * 0.05 + 1e-6)])
    assert code == 3
    assert world.fal.submissions == 7
    assert provider_calls(tmp_path / ".acpbuild") == 7
    doc = json.loads(capsys.readouterr().out)
    statuses = [s["status"] for s in doc["steps"]]
    assert statuses.count("ran") == 7 and statuses.count("failed") == 13
    assert len(doc["refused"]) == 13 and doc["exit_code"] == 3
    refused = next(s for s in doc["steps"] if s["status"] == "failed")
    assert "budget" in refused["error"] and "not made" in refused["error"]
    assert refused["estimated_cost"] == pytest.approx(0.05) and refused["cost"] == 0  # what it would have cost
    assert doc["totals"]["cost"] == pytest.approx(0.35)
    assert doc["totals"]["estimated"] == pytest.approx(0.35)
    assert doc["warnings"]  # past 80% of the budget


def test_a_refused_step_skips_its_dependants_and_independent_steps_still_run(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    result = acpbuild.run(recipe, env=world.env, budget=0.10, keep_going=True)
    status = {n: s.status for n, s in result.steps.items()}
    assert status["clip"] == "failed" and status["teaser"] == "failed"  # $0.27 and $0.60 do not fit
    assert status["final"] == "skipped" and status["poster"] == "skipped"
    assert {status[n] for n in ("script", "voice", "cover", "caption")} == {"ran"}
    assert result.refused == ["clip", "teaser"] or sorted(result.refused) == ["clip", "teaser"]
    assert result.exit_code == 3
    assert result.total_cost <= 0.10
    assert world.fal.submissions == 1  # the cover only


SPEECH_PAIR = """
[recipe]
name = "pair"
output_dir = "out"

[steps.a]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "{text}"
output = "a.mp3"

[steps.b]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Adam"
text = "{text}"
output = "b.mp3"
"""


@pytest.mark.parametrize(
    ("failure", "b_runs"),
    [
        # a 500 after the request reached ElevenLabs may be billed: its estimate stays spent
        (Response(500, {"detail": {"status": "internal", "message": "boom"}}), False),
        # a rejected request is not billed: its reservation is given back, and b fits
        (Response(422, {"detail": [{"loc": ["body", "text"], "msg": "bad"}]}), True),
    ],
)
def test_a_failed_call_keeps_its_estimate_spent_only_when_it_may_be_billed(
    world: World, tmp_path: Path, failure: Response, b_runs: bool
) -> None:
    text = "x" * 500  # $0.05 each at $0.10 per 1k characters
    recipe = tmp_path / "pair.toml"
    recipe.write_text(SPEECH_PAIR.format(text=text))
    world.elevenlabs.fail("POST", r"/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM", failure)  # a's voice
    result = acpbuild.run(recipe, env=world.env, jobs=1, budget=0.075, keep_going=True)
    assert result.steps["a"].status == "failed"
    if b_runs:
        assert result.steps["b"].status == "ran" and world.elevenlabs.submissions == 2
    else:
        assert result.refused == ["b"] and world.elevenlabs.submissions == 1
        assert result.exit_code == 3


def test_a_cheaper_actual_cost_frees_budget_for_the_next_call(world: World, tmp_path: Path) -> None:
    # OpenRouter's estimate counts max_tokens in full; the emulator's usage.cost is far lower
    body = "".join(
        f'[steps.n{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "anthropic/claude-sonnet-4.5"\n'
        f'prompt = "Note {i}"\nmax_tokens = 4000\noutput = "n{i}.txt"\n\n'
        for i in range(2)
    )
    recipe = tmp_path / "notes.toml"
    recipe.write_text(body)
    one = estimate(
        "openrouter", providers.catalogue("openrouter")["anthropic/claude-sonnet-4.5"], "text",
        {"prompt": "Note 0", "max_tokens": 4000},
    ).usd
    result = acpbuild.run(recipe, env=world.env, jobs=1, budget=one * 1.5, keep_going=True)
    assert result.success, result.to_dict()  # the first call settled at its (small) actual cost
    assert result.total_cost < one * 0.5
    assert world.openrouter.submissions == 2


def test_the_monthly_cap_counts_what_other_runs_have_in_flight(world: World, tmp_path: Path) -> None:
    # another run on this store has a $0.45 job in flight: the cap has room for one $0.05 image
    recipe = copy_recipe("twenty.toml", tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 0.55\n")
    env = {**world.env, "ACPBUILD_CONFIG": str(config)}
    from acpbuild.store import layout

    ledger = layout.open_ledger(tmp_path / ".acpbuild")
    ledger.begin(
        "someone-elses-key", recipe="other", step="video", kind="text_to_video", provider="fal",
        model="kling", material="{}", estimated_cost=0.45, draft=False,
    )
    ledger.close()
    result = acpbuild.run(recipe, env=env, keep_going=True)
    assert world.fal.submissions == 2 and len(result.refused) == 18


# -- confirmation ---------------------------------------------------------------------
def test_a_non_interactive_run_without_yes_makes_zero_paid_calls(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["run", str(recipe)]) == 3
    out, err = capsys.readouterr()
    assert "will run" in out  # the plan is printed
    assert "refusing to spend" in err and "--yes" in err
    assert world.requests() == 0 and provider_calls(tmp_path / ".acpbuild") == 0


@pytest.mark.parametrize(
    ("answer", "code", "calls"),
    [
        ("", 3, 0),  # the default is no
        ("n", 3, 0),
        ("y", 0, 8),  # one generation per step: six paid, two local
    ],
)
def test_an_interactive_run_asks_first(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, calls: int
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    assert main(["run", str(recipe)]) == code
    assert asked and "[y/N]" in asked[0]
    assert provider_calls(tmp_path / ".acpbuild") == calls


def test_the_threshold_comes_from_the_config_and_free_runs_never_ask(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    local = copy_recipe("chain.toml", tmp_path / "local")
    assert main(["run", str(local)]) == 0  # all local, $0: never asks
    config = tmp_path / "config.toml"
    config.write_text("confirm_above_usd = 5\n")
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    recipe = copy_recipe("mixed.toml", tmp_path / "paid")
    assert main(["run", str(recipe)]) == 0  # ~$1 is under the $5 threshold


# -- the monthly cap --------------------------------------------------------------------
def test_the_monthly_cap_counts_this_months_spend_in_the_ledger(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("twenty.toml", tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 0.5\n")
    env = {**world.env, "ACPBUILD_CONFIG": str(config)}
    first = acpbuild.run(recipe, ["img01", "img02", "img03", "img04", "img05", "img06"], env=env)
    assert first.success and first.total_cost == pytest.approx(0.30)
    assert first.warnings == []
    second = acpbuild.run(recipe, env=env, keep_going=True)  # $0.20 of the cap is left: four more
    assert world.fal.submissions == 10
    assert len(second.refused) == 10 and second.exit_code == 3
    assert any("monthly cap" in w for w in second.warnings)


# -- actual cost and reports --------------------------------------------------------------
def test_the_ledger_records_estimate_and_actual_and_costs_reports_savings(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    result = acpbuild.run(recipe, env=world.env)
    assert result.success
    with sqlite3.connect(tmp_path / ".acpbuild" / "ledger.sqlite3") as db:
        rows = dict(db.execute("SELECT step, estimated_cost FROM generations WHERE state='done'").fetchall())
        actual = dict(db.execute("SELECT step, actual_cost FROM generations WHERE state='done'").fetchall())
    assert rows["clip"] == pytest.approx(0.27) and actual["clip"] == pytest.approx(0.27)
    # at run time the voice's text is known: its estimate is exact
    chars = len((tmp_path / "out" / "script.txt").read_text())
    assert rows["voice"] == pytest.approx(chars / 1000 * 0.10) == actual["voice"]
    assert result.steps["clip"].estimated_cost == pytest.approx(0.27)
    assert result.estimated_cost == pytest.approx(sum(s.estimated_cost for s in result.steps.values()))

    assert main(["clean", str(recipe)]) == 0
    restored = acpbuild.run(recipe, env=world.env)
    assert restored.total_cost == 0 and restored.estimated_cost == 0
    capsys.readouterr()
    assert main(["costs", str(recipe), "--by", "model", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["cost"] == pytest.approx(result.total_cost)
    assert doc["totals"]["saved"] == pytest.approx(result.total_cost)  # everything was restored once
    assert doc["totals"]["restores"] == 8
    by_model = {r["group"]: r for r in doc["rows"]}
    assert by_model["fal/hailuo-02"]["cost"] == pytest.approx(0.27)
    assert main(["costs", str(recipe), "--by", "day", "--since", "2000-01-01"]) == 0
    assert "restores saved" in capsys.readouterr().out
    assert main(["costs", str(recipe), "--since", "yesterday"]) == 2


def test_an_output_that_does_not_say_its_size_costs_none_not_zero() -> None:
    # $0 would hand the money back to the budget; None makes the runner charge the estimate
    assert money.actual_cost("fal", "topaz", None, {}, {}, True) is None
    assert money.actual_cost("fal", "topaz", None, {"seconds": 2.0}, {}, True) == pytest.approx(0.34)
    assert money.actual_cost("fal", "imagen4", None, {}, {}, True) == pytest.approx(0.05)  # per image: one
    assert money.actual_cost("openrouter", "openai/gpt-4o-mini", 0.0123, {}, {}, True) == 0.0123  # as reported


def test_confirmation_counts_what_first_success_fallbacks_could_cost(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_groups import PAID_FALLBACK

    recipe = tmp_path / "voice.toml"
    recipe.write_text(PAID_FALLBACK)
    plan = workflow_forecast(recipe, world.env)
    first = len("Welcome aboard.") / 1000 * 0.10  # eleven_multilingual_v2
    fallback = len("Welcome aboard.") / 1000 * 0.05  # eleven_flash_v2_5
    assert plan.total == pytest.approx(first) and plan.worst_case == pytest.approx(first + fallback)
    # a threshold between the two: the first member alone would not ask, the fallback makes it ask
    config = tmp_path / "config.toml"
    config.write_text(f"confirm_above_usd = {first + fallback / 2}\n")
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["run", str(recipe)]) == 3
    out, err = capsys.readouterr()
    assert "if every first_success fallback has to run" in out
    assert f"refusing to spend up to ~${first + fallback:.4f}" in err
    assert err.strip().endswith(f"acpbuild run {recipe} --yes")  # the command to copy
    assert world.elevenlabs.submissions == 0


def test_a_threshold_below_the_plan_asks(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("confirm_above_usd = 0.5\n")  # the mixed plan is about $0.97
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    recipe = copy_recipe("mixed.toml", tmp_path)
    assert main(["run", str(recipe), "-j", "2"]) == 3
    assert f"acpbuild run {recipe} -j 2 --yes" in capsys.readouterr().err
    assert world.requests() == 0


def workflow_forecast(recipe: Path, env: dict[str, str]) -> Any:
    from acpbuild.engine import workflow

    return workflow.forecast(recipe, env=env)
