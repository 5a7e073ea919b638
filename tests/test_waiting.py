"""A run that meets another run's claim says whom it waits for, waits, and then restores
what that run made, or takes the claim over when that run is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import acpbuild
from acpbuild import process
from acpbuild.engine.results import Event
from acpbuild.engine.workflow import forecast
from acpbuild.store import layout
from acpbuild.store.ledger import Owner
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import FalEmulator
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


def _claim_elsewhere(
    recipe: Path, env: dict[str, str], lease_s: float, *, owner: Owner = ELSEWHERE, step: str = "line"
) -> str:
    key = forecast(recipe, env=env).entries[0].key
    assert key is not None
    ledger = layout.open_ledger(recipe.parent / ".acpbuild")
    try:
        got = ledger.claim(
            key, owner, lease_s=lease_s, recipe="r", step=step, provider="openrouter", model="m", estimate=0.0
        )
        assert got.held_by is None
    finally:
        ledger.close()
    return key


# the waiting run names the step the other run is building, where it is another one
@pytest.mark.parametrize(("holder", "doing"), [("line", ""), ("other", " (other)")])
def test_a_live_claim_is_waited_for_and_its_result_restored(
    setup: tuple[Path, dict[str, str], OpenRouterEmulator], holder: str, doing: str
) -> None:
    recipe, env, orr = setup
    key = _claim_elsewhere(recipe, env, lease_s=600, step=holder)
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
    line = result.steps["line"]
    assert (line.status, line.reason) == ("restored", "restored from the store (made by another run)")
    assert (recipe.parent / "out" / "line.txt").read_text() == "A line the other run bought.\n"
    assert [(e.step, e.message) for e in events if e.kind == "waiting"] == [
        ("line", f"waiting for run run-on-ci on ci-runner-7 (pid 4242){doing}")
    ]
    ledger = layout.open_ledger(recipe.parent / ".acpbuild")
    try:
        assert ledger.claims() == []  # this run's own claim went with the restore
    finally:
        ledger.close()


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


# -- a run keeps its claims alive while its steps work ----------------------------------
FAL_RECIPE = """
[recipe]
name = "paid"
output_dir = "out"

[steps.picture]
kind = "text_to_image"
provider = "fal"
model = "flux-schnell"
prompt = "a lighthouse at dusk"
image_size = "square"
output = "picture.png"
"""


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    with FalEmulator() as emulator:
        yield emulator


def test_a_step_that_outlasts_its_lease_keeps_its_claim_so_a_second_run_waits(tmp_path: Path, fal: FalEmulator) -> None:
    recipe = tmp_path / "paid.toml"
    recipe.write_text(FAL_RECIPE)
    # a lease of 0.6 s: only the run's renewals keep its claim alive while its job runs for longer
    env = {"FAL_KEY": FAL_KEY, "ACPBUILD_FAL_URL": fal.url, "ACPBUILD_POLL_INTERVAL_S": "0.05",
           "ACPBUILD_CLAIM_LEASE_S": "0.6"}
    fal.polls = 10**6  # IN_PROGRESS until the test says otherwise
    first: list[acpbuild.RunResult] = []
    second: list[acpbuild.RunResult] = []
    events: list[Event] = []
    one = threading.Thread(target=lambda: first.append(acpbuild.run(recipe, env=env)))
    one.start()
    deadline = time.monotonic() + 30
    while not fal.submissions and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.5)  # more than two leases
    two = threading.Thread(target=lambda: second.append(acpbuild.run(recipe, env=env, on_event=events.append)))
    two.start()
    # it waits for the live claim; a claim it found lapsed it takes over (a warning says so)
    while not any(e.kind in ("waiting", "warning") for e in events) and time.monotonic() < deadline:
        time.sleep(0.02)
    fal.polls = 0
    for job in list(fal.jobs.values()):
        job.polls = 0  # the job finishes
    one.join()
    two.join()
    assert fal.submissions == 1
    assert first[0].steps["picture"].status == "ran"
    assert second[0].steps["picture"].status == "restored"
    assert [e.step for e in events if e.kind == "waiting"] == ["picture"]
    assert not [e.message for e in events if e.kind == "warning"], "the second run took over a live claim"


def test_a_doit_process_that_bought_a_step_exits_when_its_tasks_are_done(
    setup: tuple[Path, dict[str, str], OpenRouterEmulator],
) -> None:
    recipe, env, orr = setup
    (recipe.parent / "dodo.py").write_text(
        "from acpbuild import recipe_tasks\n\n\ndef task_r():\n    yield from recipe_tasks('r.toml')\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "doit"],
        cwd=recipe.parent,
        env={**os.environ, **env, "PYTHONPATH": str(root), "ACPBUILD_CONFIG": os.devnull},
        capture_output=True,
        text=True,
        timeout=60,  # a claim-renewing thread left running would keep the process alive
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert orr.submissions == 1
    assert (recipe.parent / "out" / "line.txt").read_text().strip()


def test_a_budget_warning_is_emitted_once_as_it_is_crossed(setup: tuple[Path, dict[str, str], OpenRouterEmulator]) -> None:
    recipe, env, orr = setup
    other = RECIPE.split("[steps.line]")[1].replace("line.txt", "other.txt").replace("a harbour", "a lighthouse")
    # a call reserves its bound, every token it may write: far more than the one line it writes
    recipe.write_text((RECIPE + "\n[steps.other]" + other).replace("max_tokens = 40", "max_tokens = 4000"))
    bound = forecast(recipe, env=env).at_most / 2  # what each call reserves before it is made
    events: list[Event] = []
    # the first reservation crosses 80% of the budget; the second still fits, what the first paid being small
    result = acpbuild.run(recipe, env=env, jobs=1, budget=bound / 0.85, keep_going=True, on_event=events.append)
    assert result.success and orr.submissions == 2, result.to_dict()
    warned = [e.message for e in events if e.kind == "warning"]
    assert len(warned) == 1 and warned == result.warnings, warned
    assert "past 80% of the budget of" in warned[0]


def test_an_attempt_that_may_have_been_billed_is_warned_about_once(
    setup: tuple[Path, dict[str, str], OpenRouterEmulator],
) -> None:
    recipe, env, orr = setup
    ledger = layout.open_ledger(recipe.parent / ".acpbuild")
    try:  # an earlier run sent a request for `line` and lost the answer
        lost = ledger.begin(
            "k-lost", recipe="r", step="line", kind="text", provider="openrouter", model="m", material="{}",
            estimated_cost=0.002, draft=False,
        )
        ledger.fail(lost, "the answer was lost", resumable=False, billed=True)
    finally:
        ledger.close()
    events: list[Event] = []
    first = acpbuild.run(recipe, env=env, on_event=events.append)
    assert first.success, first.to_dict()
    said = [e.message or "" for e in events if e.kind == "warning"]
    assert len(said) == 1 and said == first.warnings
    assert said[0].startswith("1 earlier request of line was sent but never answered")
    assert said[0].endswith("acpbuild abandon r.toml line")
    again = acpbuild.run(recipe, env=env, on_event=events.append)
    assert again.success and again.warnings == []  # warned once: the ledger remembers
    assert orr.submissions == 1


def test_the_claim_of_a_run_that_died_on_this_host_is_taken_over_at_once_with_a_warning(
    setup: tuple[Path, dict[str, str], OpenRouterEmulator],
) -> None:
    recipe, env, orr = setup
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True)
    dead = Owner("run-dead", process.HOST, int(gone.stdout))
    _claim_elsewhere(recipe, env, lease_s=600, owner=dead)
    events: list[Event] = []
    result = acpbuild.run(recipe, env=env, on_event=events.append)
    assert result.success, result.to_dict()
    assert orr.submissions == 1
    assert [(e.kind, e.message) for e in events if "took over" in e.message] == [
        ("warning", f"line: took over the claim of {dead}, which stopped")
    ]
