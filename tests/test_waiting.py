"""A run that meets another run's claim says whom it waits for, waits, and then restores
what that run made, or takes the claim over when that run is gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import acpbuild
from acpbuild.engine.results import Event
from acpbuild.engine.workflow import forecast
from acpbuild.store import layout
from acpbuild.store.ledger import Owner
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator

RECIPE = """
[recipe]
name = "r"
output_dir = "out"

[steps.line]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "One line about a harbour."
max_tokens = 40
output = "line.txt"
"""

#: a run on another machine: this host cannot see its process, only its lease
ELSEWHERE = Owner("run-on-ci", "ci-runner-7", 4242)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], OpenRouterEmulator]]:
    with OpenRouterEmulator() as orr:
        recipe = tmp_path / "r.toml"
        recipe.write_text(RECIPE)
        env = {"OPENROUTER_API_KEY": OPENROUTER_KEY, "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1"}
        yield recipe, env, orr


def _claim_elsewhere(recipe: Path, env: dict[str, str], lease_s: float) -> str:
    key = forecast(recipe, env=env).entries[0].key
    assert key is not None
    ledger = layout.open_ledger(recipe.parent / ".acpbuild")
    try:
        got = ledger.claim(
            key, ELSEWHERE, lease_s=lease_s, recipe="r", step="line", provider="openrouter", model="m", estimate=0.0
        )
        assert got.held_by is None
    finally:
        ledger.close()
    return key


def test_a_live_claim_is_waited_for_and_its_result_restored(
    setup: tuple[Path, dict[str, str], OpenRouterEmulator],
) -> None:
    recipe, env, orr = setup
    key = _claim_elsewhere(recipe, env, lease_s=600)
    store = recipe.parent / ".acpbuild"

    def the_other_run_finishes() -> None:
        time.sleep(1.0)
        blobs, ledger = layout.open_blobs(store), layout.open_ledger(store)
        staged = blobs.staging(".txt")
        staged.write_text("A line the other run bought.\n")
        gen_id = ledger.begin(
            key, recipe="r", step="line", kind="text", provider="openrouter", model="m", material="{}",
            estimated_cost=0.001, draft=False,
        )
        ledger.finish(
            gen_id, digest=blobs.put(staged), actual_cost=0.001, request_id=None, usage={}, meta={}, owner=ELSEWHERE
        )
        ledger.close()

    events: list[Event] = []
    other = threading.Thread(target=the_other_run_finishes)
    other.start()
    result = acpbuild.run(recipe, env=env, on_event=events.append)
    other.join()
    assert result.success, result.to_dict()
    assert orr.submissions == 0  # nothing bought: what the other run paid for is restored
    assert result.steps["line"].status == "restored"
    assert (recipe.parent / "out" / "line.txt").read_text() == "A line the other run bought.\n"
    waiting = [e for e in events if e.kind == "waiting"]
    assert len(waiting) == 1 and waiting[0].step == "line"
    assert "run run-on-ci on ci-runner-7" in waiting[0].message


def test_a_claim_whose_lease_runs_out_is_taken_over(setup: tuple[Path, dict[str, str], OpenRouterEmulator]) -> None:
    recipe, env, orr = setup
    _claim_elsewhere(recipe, env, lease_s=2.0)  # that run stops renewing: it is gone in 2 s
    events: list[Event] = []
    result = acpbuild.run(recipe, env=env, on_event=events.append)
    assert result.success, result.to_dict()
    assert result.steps["line"].status == "ran" and orr.submissions == 1  # bought once, by this run
    assert [e.step for e in events if e.kind == "waiting"] == ["line"]
    ledger = layout.open_ledger(recipe.parent / ".acpbuild")
    try:
        assert ledger.claims() == []  # released with the finished generation
    finally:
        ledger.close()
