"""Building one step: claims, restore, the paid call and its journal, failures.

:func:`acpbuild.engine.build.build` is the action doit runs for a step: up to
date -> nothing; in the store -> restored, free; else the key is claimed in the
ledger, the provider is called once and what it cost, asked and answered is
recorded. These tests drive it through ``acpbuild.run`` (and, where a single
step is the point, through ``build`` itself) against the local provider and the
loopback emulators, and read back what the ledger, the store and the results say.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import acpbuild
from acpbuild import process
from acpbuild.engine.build import build, uptodate
from acpbuild.engine.context import Context
from acpbuild.engine.results import Event
from acpbuild.engine.workflow import forecast
from acpbuild.errors import AcpbuildError, ProviderError
from acpbuild.keys import file_digest
from acpbuild.money import spend
from acpbuild.recipe import load_recipe
from acpbuild.store import layout
from acpbuild.store.ledger import Generation, Owner
from tests.emulators import Request, Response
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import FalEmulator
from tests.emulators.fal import error as fal_error
from tests.emulators.google import KEY as GOOGLE_KEY
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import CHAT, REPLY_PREFIX, OpenRouterEmulator
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import error as openrouter_error

HEADER = '[recipe]\nname = "r"\noutput_dir = "out"\n'

#: a local step reading an external file, and a step reading that step's output
LOCAL = (
    HEADER
    + """
[steps.gray]
kind = "image_to_image"
image = "photo.png"
operation = "grayscale"
output = "gray.png"

[steps.facts]
kind = "image_understanding"
image = "${steps.gray}"
prompt = "What is this?"
output = "facts.txt"
"""
)


def _line(name: str, prompt: str, extra: str = "") -> str:
    return (
        f'\n[steps.{name}]\nkind = "text"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
        f'prompt = "{prompt}"\nmax_tokens = 40\noutput = "{name}.txt"\n{extra}'
    )


#: one paid, synchronous step
PAID = HEADER + _line("line", "One line about a harbour.")


def _generations(store: Path) -> list[Generation]:
    ledger = layout.open_ledger(store)
    try:
        return ledger.generations()
    finally:
        ledger.close()


@pytest.fixture
def local(tmp_path: Path) -> Path:
    Image.new("RGB", (64, 48), (200, 40, 40)).save(tmp_path / "photo.png")
    recipe = tmp_path / "r.toml"
    recipe.write_text(LOCAL)
    return recipe


@pytest.fixture
def orr() -> Iterator[OpenRouterEmulator]:
    with OpenRouterEmulator() as emulator:
        yield emulator


def _env(orr: OpenRouterEmulator, **extra: str) -> dict[str, str]:
    return {
        "OPENROUTER_API_KEY": OPENROUTER_KEY,
        "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1",
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_RETRY_ATTEMPTS": "1",
        "ACPBUILD_CONFIG": os.devnull,
        **extra,
    }


def _paid(tmp_path: Path, text: str = PAID) -> Path:
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    return recipe


# -- up to date, restored, made: one step at a time ---------------------------------------


def test_a_built_step_is_up_to_date_and_a_deleted_output_is_restored_from_the_store(local: Path) -> None:
    recipe = load_recipe(local, env={})
    step = recipe.steps["gray"]
    ctx = Context(recipe, env={})
    try:
        before = time.monotonic()
        made = build(ctx, step)
        took = time.monotonic() - before
        assert made.status == "ran" and made.reason == "never built"
        assert 0 <= made.seconds <= took
        assert uptodate(ctx, step)  # doit skips it

        again = build(ctx, step)  # doit runs it anyway when an input was only touched
        assert (again.status, again.reason, again.key) == ("uptodate", "up to date", made.key)

        picture = step.output_path.read_bytes()
        step.output_path.unlink()
        assert not uptodate(ctx, step)
        back = build(ctx, step)
        assert (back.status, back.reason) == ("restored", "restored from the store")
        assert step.output_path.read_bytes() == picture
        ((generation, restored_in, restored_step, _, _),) = ctx.ledger.restores()
        assert (restored_in, restored_step, generation.step) == ("r", "gray", "gray")
        record = ctx.ledger.output(step.output_path)
        assert record is not None and (record.step, record.key) == ("gray", made.key)
    finally:
        ctx.close()
    assert len(_generations(local.parent / ".acpbuild")) == 1  # made once


def test_an_output_only_the_lockfile_vouches_for_is_up_to_date_and_recorded(local: Path) -> None:
    first = acpbuild.run(local, env={})
    assert first.success, first.to_dict()
    store = local.parent / ".acpbuild"
    (store / "ledger.sqlite3").unlink()  # a fresh clone: the committed lockfile, no ledger
    recipe = load_recipe(local, env={})
    step = recipe.steps["gray"]
    ctx = Context(recipe, env={})
    try:
        result = build(ctx, step)  # as a first_success group builds its members: no uptodate check first
        assert (result.status, result.key) == ("uptodate", first.steps["gray"].key)
        record = ctx.ledger.output(step.output_path)
        assert record is not None and record.key == result.key and record.step == "gray"
        assert ctx.ledger.generations() == []  # nothing made
    finally:
        ctx.close()


def test_a_step_whose_input_step_made_nothing_names_both(local: Path) -> None:
    recipe = load_recipe(local, env={})
    ctx = Context(recipe, env={})
    try:
        with pytest.raises(AcpbuildError, match=r"^step 'facts': the output of 'gray' is missing$"):
            build(ctx, recipe.steps["facts"])
    finally:
        ctx.close()


def test_a_second_step_asking_for_the_same_generation_restores_it_and_says_where_it_was_restored(
    tmp_path: Path,
) -> None:
    cover = '\n[steps.{}]\nkind = "text_to_image"\nprompt = "a kite"\nwidth = 64\nheight = 64\noutput = "{}.png"\n'
    (tmp_path / "one.toml").write_text(HEADER.replace('"r"', '"one"') + cover.format("a", "a"))
    (tmp_path / "two.toml").write_text(HEADER.replace('"r"', '"two"') + cover.format("b", "b") + cover.format("c", "c"))
    assert acpbuild.run(tmp_path / "one.toml", env={}).success
    result = acpbuild.run(tmp_path / "two.toml", env={}, jobs=1)
    assert result.success, result.to_dict()
    for name in ("b", "c"):
        assert (result.steps[name].status, result.steps[name].reason) == ("restored", "restored from the store")
    store = tmp_path / ".acpbuild"
    ledger = layout.open_ledger(store)
    try:
        assert sorted((r, s) for _, r, s, _, _ in ledger.restores()) == [("two", "b"), ("two", "c")]
        by_recipe = {row.group: row.restores for row in spend.report(ledger, by="recipe")}
        assert by_recipe == {"one": 0, "two": 2}
        by_step = {row.group: row.restores for row in spend.report(ledger, by="step")}
        assert by_step == {"one:a": 0, "two:b": 1, "two:c": 1}
    finally:
        ledger.close()


def test_a_corrupt_or_missing_blob_is_made_again_not_restored(local: Path) -> None:
    first = acpbuild.run(local, env={})
    assert first.success
    store = local.parent / ".acpbuild"
    gray = local.parent / "out" / "gray.png"
    digest = file_digest(gray)
    blob = layout.open_blobs(store).path(digest)
    blob.write_bytes(b"not the picture")
    gray.unlink()
    again = acpbuild.run(local, env={})
    assert again.success, again.to_dict()
    assert again.steps["gray"].status == "ran"
    assert file_digest(gray) == digest
    blob.unlink()  # now the ledger names a blob the store lacks
    gray.unlink()
    third = acpbuild.run(local, env={})
    assert third.success, third.to_dict()
    assert third.steps["gray"].status == "ran" and file_digest(gray) == digest


# -- the paid call and what the ledger keeps of it ----------------------------------------


def test_a_paid_call_records_what_it_asked_and_what_it_cost(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    recipe = _paid(tmp_path)
    env = _env(orr)
    expected = forecast(recipe, env=env).entries[0].estimate.usd
    events: list[Event] = []
    result = acpbuild.run(recipe, env=env, on_event=events.append)
    assert result.success, result.to_dict()
    line = result.steps["line"]
    (billed,) = orr.costs
    assert 0 < billed < expected
    assert (line.status, line.reason, line.cost, line.estimated_cost) == ("ran", "never built", billed, expected)
    assert not [e for e in events if e.kind == "warning"]  # nobody else's claim was taken over
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert (gen.state, gen.recipe, gen.step, gen.kind, gen.provider, gen.model) == (
        "done", "r", "line", "text", "openrouter", "google/gemini-2.5-flash"
    )
    assert (gen.estimated_cost, gen.actual_cost, gen.draft, gen.request_id) == (expected, billed, 0, "gen-1-emulated")
    assert gen.material is not None and json.loads(gen.material)["params"]["prompt"] == "One line about a harbour."
    assert gen.usage is not None and json.loads(gen.usage)["output_tokens"] > 0
    assert gen.meta is not None and json.loads(gen.meta)
    assert (tmp_path / "out" / "line.txt").read_text().startswith(REPLY_PREFIX)
    ledger = layout.open_ledger(tmp_path / ".acpbuild")
    try:
        assert ledger.claims() == []
        record = ledger.output(tmp_path / "out" / "line.txt")
        assert record is not None and record.step == "line"
    finally:
        ledger.close()


def test_a_call_whose_answer_is_lost_is_counted_as_possibly_billed(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    recipe = _paid(tmp_path)
    env = _env(orr)
    expected = forecast(recipe, env=env).entries[0].estimate.usd
    orr.fail("POST", CHAT, Response(drop=True))
    result = acpbuild.run(recipe, env=env)
    line = result.steps["line"]
    assert (line.status, line.provider, line.model) == ("failed", "openrouter", "google/gemini-2.5-flash")
    assert line.possibly_billed == expected > 0 and result.possibly_billed == expected
    assert line.error is not None and line.error.startswith("openrouter: ")
    assert f"the request may have been billed: ~${expected:.4f} is counted as possibly billed" in line.error
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert gen.state == "possibly_billed"
    assert gen.error is not None and gen.error.startswith("openrouter: ") and "may have been billed" in gen.error


def test_a_call_refused_before_it_was_sent_is_failed_not_billed_and_frees_its_budget(
    orr: OpenRouterEmulator, tmp_path: Path
) -> None:
    recipe = _paid(tmp_path, HEADER + _line("one", "The first line.") + _line("two", "The second line."))
    env = _env(orr)
    expected = max(e.estimate.usd for e in forecast(recipe, env=env).entries)
    orr.fail("POST", CHAT, openrouter_error(429, "slow down"))  # a 429 is not processed, so not billed
    result = acpbuild.run(recipe, env=env, budget=1.5 * expected, keep_going=True, jobs=1)
    failed = [s for s in result.steps.values() if s.status == "failed"]
    assert len(failed) == 1 and not failed[0].refused and failed[0].possibly_billed == 0
    # its reservation was given back: the other step fits in what is left
    assert [s.status for s in result.steps.values() if s is not failed[0]] == ["ran"]
    assert sorted(g.state for g in _generations(tmp_path / ".acpbuild")) == ["done", "failed"]


def test_each_call_holds_its_estimate_only_until_its_cost_is_known(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    recipe = _paid(tmp_path, HEADER + _line("one", "The first line.") + _line("two", "The second line."))
    env = _env(orr)
    expected = max(e.estimate.usd for e in forecast(recipe, env=env).entries)
    result = acpbuild.run(recipe, env=env, budget=1.5 * expected, keep_going=True, jobs=1)
    assert sum(orr.costs) < 0.5 * expected  # what was billed leaves room for the second estimate
    assert result.success, result.to_dict()
    assert [s.status for s in result.steps.values()] == ["ran", "ran"]


def test_a_call_over_the_budget_is_refused_and_says_what_it_would_have_cost(
    orr: OpenRouterEmulator, tmp_path: Path
) -> None:
    recipe = _paid(tmp_path)
    env = _env(orr)
    expected = forecast(recipe, env=env).entries[0].estimate.usd
    result = acpbuild.run(recipe, env=env, budget=expected / 2, keep_going=True)
    line = result.steps["line"]
    assert (line.status, line.refused, line.provider, line.model) == ("failed", True, "openrouter", "google/gemini-2.5-flash")
    assert line.estimated_cost == expected
    assert line.error is not None and line.error.startswith("step 'line' would cost")
    assert orr.submissions == 0 and result.exit_code == 3


def _spent_elsewhere(store: Path, usd: float) -> None:
    """Another recipe's request of this month, sent and never answered: ``usd`` counts as spent."""
    ledger = layout.open_ledger(store)
    try:
        gen_id = ledger.begin(
            "elsewhere", recipe="other", step="s", kind="text", provider="openrouter", model="m",
            material="{}", estimated_cost=usd, draft=False,
        )
        ledger.fail(gen_id, "sent, never answered", resumable=False, billed=True)
    finally:
        ledger.close()


def test_spend_another_run_records_meanwhile_counts_against_the_monthly_cap(
    orr: OpenRouterEmulator, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 1.0\n")
    recipe = _paid(tmp_path)
    store = tmp_path / ".acpbuild"

    def another_run_spends(event: Event) -> None:
        if event.kind == "start":  # after this run planned within the cap, before it calls
            _spent_elsewhere(store, 1.0)

    result = acpbuild.run(recipe, env=_env(orr, ACPBUILD_CONFIG=str(config)), on_event=another_run_spends, keep_going=True)
    assert result.steps["line"].status == "failed" and result.steps["line"].refused
    # the refusal names the cap and the file that sets it
    assert f"of the monthly cap of $1 ({config})" in (result.steps["line"].error or "")
    assert orr.submissions == 0


def test_the_warning_at_80_percent_of_the_monthly_cap_counts_this_months_earlier_spend(
    orr: OpenRouterEmulator, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 1.0\n")
    recipe = _paid(tmp_path)
    env = _env(orr, ACPBUILD_CONFIG=str(config))
    expected = forecast(recipe, env=env).entries[0].estimate.usd
    # earlier this month: all but half this step's estimate short of 80%
    _spent_elsewhere(tmp_path / ".acpbuild", 0.8 - expected / 2)
    result = acpbuild.run(recipe, env=env)
    assert result.success, result.to_dict()
    assert any("past 80% of the monthly cap of $1" in w for w in result.warnings), result.warnings


def test_a_free_step_runs_though_the_monthly_cap_is_spent(tmp_path: Path, local: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 1.0\n")
    _spent_elsewhere(tmp_path / ".acpbuild", 2.0)
    result = acpbuild.run(local, env={"ACPBUILD_CONFIG": str(config)}, keep_going=True)
    assert result.success, result.to_dict()
    assert result.steps["gray"].status == "ran"


def test_a_step_s_own_time_limit_bounds_its_call(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    recipe = _paid(tmp_path, HEADER + _line("line", "One line.", "timeout_s = 1\n"))
    orr.fail("POST", CHAT, Response(200, {}, delay_s=4.0))
    result = acpbuild.run(recipe, env=_env(orr))
    assert result.steps["line"].status == "failed"
    assert "timed out" in (result.steps["line"].error or "") or "in time" in (result.steps["line"].error or "")


def test_a_step_reached_once_the_run_is_stopping_buys_nothing(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    recipe = load_recipe(_paid(tmp_path), env=_env(orr))
    ctx = Context(recipe, env=_env(orr))
    try:
        process.stop(grace=0.1)
        with pytest.raises(ProviderError) as caught:
            build(ctx, recipe.steps["line"])
        assert str(caught.value) == "openrouter: not sent: acpbuild is stopping"
        assert caught.value.sent is False
        assert ctx.ledger.generations() == [] and ctx.ledger.claims() == []
        assert ctx.budget.committed == 0
    finally:
        process.reset()
        ctx.close()
    assert orr.submissions == 0


# -- results that cannot be used or stored -------------------------------------------------


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    with FalEmulator() as emulator:
        yield emulator


def _fal_env(fal: FalEmulator) -> dict[str, str]:
    return {
        "FAL_KEY": FAL_KEY,
        "ACPBUILD_FAL_URL": fal.url,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
        "ACPBUILD_RETRY_ATTEMPTS": "3",
        "ACPBUILD_CONFIG": os.devnull,
    }


COVER = (
    HEADER
    + '\n[steps.cover]\nkind = "text_to_image"\nprovider = "fal"\nmodel = "flux-schnell"\n'
    + 'prompt = "a lighthouse at dusk"\noutput = "cover.png"\n'
)


def test_a_resumed_job_that_fails_again_on_a_free_stage_stays_resumable(fal: FalEmulator, tmp_path: Path) -> None:
    recipe = _paid(tmp_path, COVER)
    fal.fail("GET", r"/queue/.+/status", fal_error(503, "busy"), times=100)
    for _ in range(2):
        result = acpbuild.run(recipe, env=_fal_env(fal))
        assert "request req-0001 is kept: the next run resumes it" in (result.steps["cover"].error or "")
        assert [(g.state, g.request_id) for g in _generations(tmp_path / ".acpbuild")] == [("submitted", "req-0001")]
    assert fal.submissions == 1


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


def test_a_paid_result_the_store_refuses_is_kept_then_stored_for_free(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    recipe = _paid(tmp_path)
    env = _env(orr)
    store = tmp_path / ".acpbuild"
    taken = _break_objects(store)
    first = acpbuild.run(recipe, env=env)
    line = first.steps["line"]
    (billed,) = orr.costs
    assert (line.status, line.cost, first.total_cost) == ("failed", billed, billed)
    error = line.error or ""
    assert error.startswith("cannot ") and str(layout.objects_dir(store)) in error
    assert "; the paid result is kept at " in error and "the next run stores it without paying again" in error
    (gen,) = _generations(store)
    assert (gen.state, gen.actual_cost) == ("received", billed)
    assert gen.error is not None and gen.error.startswith("cannot ")
    usage, meta = json.loads(gen.usage or "null"), json.loads(gen.meta or "null")
    assert usage["output_tokens"] > 0 and meta

    for shard in taken:  # the disk is fixed
        shard.unlink()
    second = acpbuild.run(recipe, env=env)
    line = second.steps["line"]
    assert second.success, second.to_dict()
    assert (line.status, line.reason, line.cost) == ("ran", "stored the result an earlier run paid for and kept", billed)
    assert orr.submissions == 1  # not bought again
    (gen,) = _generations(store)
    assert (gen.state, gen.actual_cost) == ("done", billed)
    assert (json.loads(gen.usage or "null"), json.loads(gen.meta or "null")) == (usage, meta)
    assert (tmp_path / "out" / "line.txt").read_text().startswith(REPLY_PREFIX)
    ledger = layout.open_ledger(store)
    try:
        record = ledger.output(tmp_path / "out" / "line.txt")
        assert record is not None and record.step == "line" and json.loads(record.material or "{}")["kind"] == "text"
    finally:
        ledger.close()


# -- claims: steps and runs at work on generations ------------------------------------------
# (a run waiting on another run's claim, or taking over a dead one's: tests/test_waiting.py)


class _Together(OpenRouterEmulator):
    """Answers a request only once a second one has arrived: two calls must be in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.both = threading.Barrier(2, timeout=5.0)

    def _chat(self, request: Request, match: re.Match[str]) -> Response:
        try:
            self.both.wait()
        except threading.BrokenBarrierError:
            return openrouter_error(400, "the other request never came")
        return super()._chat(request, match)


def test_steps_asking_for_different_generations_are_bought_at_once(tmp_path: Path) -> None:
    recipe = _paid(tmp_path, HEADER + _line("one", "The first line.") + _line("two", "The second line."))
    with _Together() as together:
        result = acpbuild.run(recipe, env=_env(together), jobs=2)
    assert result.success, result.to_dict()
    assert together.submissions == 2


def test_an_estimate_counts_the_images_a_step_sends(orr: OpenRouterEmulator, tmp_path: Path) -> None:
    Image.new("RGB", (64, 48), (200, 40, 40)).save(tmp_path / "photo.png")
    recipe = _paid(
        tmp_path,
        HEADER
        + '\n[steps.facts]\nkind = "image_understanding"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
        + 'image = "photo.png"\nprompt = "What is this?"\nmax_tokens = 40\noutput = "facts.txt"\n',
    )
    env = _env(orr)
    (entry,) = forecast(recipe, env=env).entries
    result = acpbuild.run(recipe, env=env)
    assert result.success, result.to_dict()
    assert result.steps["facts"].estimated_cost == entry.estimate.usd > 0
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert gen.estimated_cost == entry.estimate.usd


#: one Gemini text step, with no max_tokens: the model's default cap of 8,192 is sent
GEMINI = (
    HEADER
    + '\n[steps.line]\nkind = "text"\nprovider = "google"\nmodel = "gemini-2.5-flash"\n'
    + 'prompt = "One line about a harbour."\noutput = "line.txt"\n'
)


def test_a_provider_that_reports_no_cost_is_billed_on_what_it_says_it_used(tmp_path: Path) -> None:
    # Gemini answers with token counts, not a price: the cost is worked out from them at the
    # model's price, not taken from the estimate (which bounds the answer at 8,192 tokens)
    recipe = _paid(tmp_path, GEMINI)
    with GoogleEmulator() as google:
        env = {"GEMINI_API_KEY": GOOGLE_KEY, "ACPBUILD_GOOGLE_URL": google.url, "ACPBUILD_CONFIG": os.devnull}
        result = acpbuild.run(recipe, env=env)
    assert result.success, result.to_dict()
    # the emulator's usageMetadata: 11 prompt tokens; 7 answer + 5 thinking tokens, billed as
    # output. Gemini 2.5 Flash: $0.30 per 1M input tokens, $2.50 per 1M output tokens
    # (ai.google.dev/pricing): 11 x 0.30e-6 + 12 x 2.50e-6 = $0.0000333
    assert result.steps["line"].cost == pytest.approx(0.0000333)
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert gen.actual_cost == pytest.approx(0.0000333)


class CachedChat(OpenRouterEmulator):
    """OpenRouter answering as it does when part of the prompt was cached: ``usage.cost`` is
    below what the tokens cost at list price."""

    def _chat(self, request: Request, match: re.Match[str]) -> Response:
        answer = super()._chat(request, match)
        assert isinstance(answer.body, dict)
        answer.body["usage"]["cost"] = 0.000001
        return answer


def test_the_cost_a_provider_reports_is_what_is_recorded_not_our_price_for_its_tokens(tmp_path: Path) -> None:
    recipe = _paid(tmp_path)
    with CachedChat() as chat:
        result = acpbuild.run(recipe, env=_env(chat))
    assert result.success, result.to_dict()
    assert result.steps["line"].cost == 0.000001
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert gen.actual_cost == 0.000001



class Untallied(GoogleEmulator):
    """Gemini answering without ``usageMetadata``: nothing says how many tokens it used."""

    def _generate(self, request: Request, match: re.Match[str]) -> Response:
        answer = super()._generate(request, match)
        assert isinstance(answer.body, dict)
        answer.body.pop("usageMetadata")
        return answer


def test_a_paid_call_that_says_neither_its_cost_nor_its_usage_is_counted_at_its_estimate(tmp_path: Path) -> None:
    recipe = _paid(tmp_path, GEMINI)
    with Untallied() as google:
        env = {"GEMINI_API_KEY": GOOGLE_KEY, "ACPBUILD_GOOGLE_URL": google.url, "ACPBUILD_CONFIG": os.devnull}
        bound = forecast(recipe, env=env).entries[0].estimate.bound
        result = acpbuild.run(recipe, env=env)
    assert result.success, result.to_dict()
    assert bound > 0.01  # 8,192 output tokens at $2.50 per 1M
    assert result.steps["line"].cost == pytest.approx(bound)
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert gen.actual_cost == pytest.approx(bound)


# -- what a provider hands back is checked before it is stored ------------------------------

#: a free plugin provider that says it succeeded whatever it wrote: the prompt says what to write
FAULTY = '''
import os

from acpbuild.provider import API_VERSION, Model, Outcome, Param, Provider


class FaultyProvider(Provider):
    name = "faulty"
    version = "1"
    api_version = API_VERSION
    paid = False
    key_vars = ()

    def catalogue(self):
        return {"paint": Model("paint", {"text_to_image": "paint-v1"}, {"prompt": Param("str", required=True)})}

    def generate(self, job, journal):
        what = job.params["prompt"]
        if what == "crash":  # a bug in the plugin, quoting its key as it goes
            raise RuntimeError(f"the plugin broke holding {os.environ['FAULTY_API_KEY']}")
        if what == "interrupted":
            raise KeyboardInterrupt  # Ctrl-C before a byte was written
        if what != "nothing":
            job.output.write_bytes({"empty": b"", "one byte": b"P", "prose": b"a picture of a harbour"}[what])
        return Outcome(request_id="faulty-1")
'''


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        ("nothing", "faulty: the provider reported success but wrote no output"),
        ("empty", "faulty: the provider reported success but wrote no output"),
        ("one byte", "faulty: the image does not decode"),
        ("prose", "faulty: the image does not decode"),
    ],
)
def test_an_output_that_is_missing_empty_or_not_what_the_step_makes_fails_the_step(
    tmp_path: Path, prompt: str, error: str
) -> None:
    (tmp_path / "faulty_plugin.py").write_text(FAULTY)
    (tmp_path / "config.toml").write_text('providers = ["faulty_plugin:FaultyProvider"]\n')
    (tmp_path / "r.toml").write_text(
        HEADER + f'\n[steps.pic]\nkind = "text_to_image"\nprovider = "faulty"\nmodel = "paint"\n'
        f'prompt = "{prompt}"\noutput = "pic.png"\n'
    )
    env = {**os.environ, "ACPBUILD_CONFIG": str(tmp_path / "config.toml")}
    argv = [sys.executable, "-m", "acpbuild", "run", "r.toml", "--json"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    (pic,) = json.loads(done.stdout)["steps"]
    assert pic["status"] == "failed" and pic["error"].startswith(error), pic["error"]
    assert not (tmp_path / "out" / "pic.png").exists()
    (gen,) = _generations(tmp_path / ".acpbuild")
    assert (gen.state, gen.digest) == ("failed", None)


def test_a_free_call_interrupted_before_the_provider_wrote_anything_stops_the_run_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "faulty_plugin.py").write_text(FAULTY)
    (tmp_path / "config.toml").write_text('providers = ["faulty_plugin:FaultyProvider"]\n')
    (tmp_path / "r.toml").write_text(
        HEADER + '\n[steps.pic]\nkind = "text_to_image"\nprovider = "faulty"\nmodel = "paint"\n'
        'prompt = "interrupted"\noutput = "pic.png"\n'
    )
    env = {**os.environ, "ACPBUILD_CONFIG": str(tmp_path / "config.toml")}
    argv = [sys.executable, "-m", "acpbuild", "run", "r.toml"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 130, done.stderr  # the interrupt, not a missing staging file
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr
    # a free call with no request id yet has nothing to resume or bill: its row is never written
    assert _generations(tmp_path / ".acpbuild") == []
    assert list((tmp_path / ".acpbuild" / "tmp").iterdir()) == []


class Watching(OpenRouterEmulator):
    """OpenRouter that, while it answers, reads the claims the asking run holds in its ledger."""

    def __init__(self, store: Path) -> None:
        super().__init__()
        self.store = store
        self.claims: list[tuple[str, Owner, float, str | None]] = []

    def _chat(self, request: Request, match: re.Match[str]) -> Response:
        ledger = layout.open_ledger(self.store)
        try:
            self.claims = ledger.claims()
        finally:
            ledger.close()
        return super()._chat(request, match)


def test_a_claim_names_the_step_it_is_bought_for_while_the_call_is_made(tmp_path: Path) -> None:
    # another run waiting on this key says what it waits for by this name ("waiting for ... (line)")
    recipe = _paid(tmp_path)
    with Watching(tmp_path / ".acpbuild") as orr:
        result = acpbuild.run(recipe, env=_env(orr))
    assert result.success, result.to_dict()
    ((key, owner, _, step),) = orr.claims
    assert (key, step) == (result.steps["line"].key, "line")
    assert owner.pid == os.getpid()


def test_a_plugin_that_raises_fails_its_step_with_the_traceback_and_no_secret(tmp_path: Path) -> None:
    (tmp_path / "faulty_plugin.py").write_text(FAULTY)
    (tmp_path / "config.toml").write_text('providers = ["faulty_plugin:FaultyProvider"]\n')
    (tmp_path / "r.toml").write_text(
        HEADER + '\n[steps.pic]\nkind = "text_to_image"\nprovider = "faulty"\nmodel = "paint"\n'
        'prompt = "crash"\noutput = "pic.png"\n'
        '\n[steps.after]\nkind = "image_to_image"\nimage = "${steps.pic}"\noperation = "mirror"\noutput = "after.png"\n'
    )
    secret = "test-faulty-key-0000"
    env = {**os.environ, "ACPBUILD_CONFIG": str(tmp_path / "config.toml"), "FAULTY_API_KEY": secret}
    argv = [sys.executable, "-m", "acpbuild", "run", "r.toml", "--json"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert secret not in done.stdout + done.stderr
    steps = {s["name"]: s for s in json.loads(done.stdout)["steps"]}
    pic, after = steps["pic"], steps["after"]
    assert (pic["status"], pic["provider"], pic["model"]) == ("failed", "faulty", "paint")
    # the plugin's own traceback, for its author; the key it quoted is masked
    assert "Traceback" in pic["error"] and "RuntimeError: the plugin broke holding ***" in pic["error"]
    assert (after["status"], after["provider"], after["model"]) == ("skipped", "local", "pillow")
    # and as it goes, the step's progress line says it failed
    shown = subprocess.run(argv[:-1], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert "failed pic" in [line.strip() for line in shown.stdout.splitlines()]
    assert secret not in shown.stdout + shown.stderr
