"""A long job whose run fails after the submission is resumed, not bought again.

Once fal or Veo has a request id, the job exists and will be billed. If what
breaks afterwards is free to repeat (a status poll, the result fetch, the
download), the ledger row stays ``submitted`` and the next run polls the same
job; only a job the provider itself reports as failed is marked ``failed`` and
submitted anew. Every test runs the real SDKs against the emulators and counts
the submissions the provider saw.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import copy_recipe

import acpbuild
from acpbuild.engine.workflow import forecast
from tests.emulators import Response
from tests.emulators.elevenlabs import KEY as EL_KEY
from tests.emulators.elevenlabs import TTS, ElevenLabsEmulator
from tests.emulators.elevenlabs import error as el_error
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import MEDIA, FalEmulator, error, mp4_bytes
from tests.emulators.google import KEY as GOOGLE_KEY
from tests.emulators.google import GoogleEmulator

STATUS = r"/queue/.+/status"
FETCH = r".*:fetchPredictOperation"


def base_env(**extra: str) -> dict[str, str]:
    return {
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
        "ACPBUILD_RETRY_ATTEMPTS": "3",
        "ACPBUILD_CONFIG": os.devnull,
        "PATH": os.environ.get("PATH", ""),
        **extra,
    }


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    with FalEmulator() as emulator:
        yield emulator


@pytest.fixture
def google() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        yield emulator


def fal_env(fal: FalEmulator) -> dict[str, str]:
    return base_env(FAL_KEY=FAL_KEY, ACPBUILD_FAL_URL=fal.url)


def google_env(google: GoogleEmulator) -> dict[str, str]:
    return base_env(GEMINI_API_KEY=GOOGLE_KEY, ACPBUILD_GOOGLE_URL=google.url)


def rows(store: Path) -> list[tuple[str, str | None]]:
    """(state, request id) of every generation in the ledger, oldest first."""
    with sqlite3.connect(store / "ledger.sqlite3") as db:
        return [(str(s), r) for s, r in db.execute("SELECT state, request_id FROM generations ORDER BY id")]


# -- a free stage failed: the next run resumes the same job ---------------------


def test_fal_status_polls_failing_past_their_retries_then_a_rerun_resumes(
    fal: FalEmulator, tmp_path: Path
) -> None:
    recipe = copy_recipe("fal_clip.toml", tmp_path)
    fal.polls = 3
    fal.fail("GET", STATUS, error(503, "busy"), times=10)  # outlasts 3 attempts
    first = acpbuild.run(recipe, env=fal_env(fal))
    assert not first.success
    assert first.steps["clip"].status == "failed"
    assert "req-0001 is kept: the next run resumes it" in (first.steps["clip"].error or "")
    assert rows(tmp_path / ".acpbuild") == [("submitted", "req-0001")]

    fal.failures.clear()
    second = acpbuild.run(recipe, env=fal_env(fal))
    assert second.success, second.to_dict()
    assert fal.submissions == 1  # the queued job was polled again, not bought again
    assert rows(tmp_path / ".acpbuild") == [("done", "req-0001")]
    assert (tmp_path / "out" / "clip.mp4").read_bytes() == mp4_bytes()


def test_a_kept_job_the_user_abandons_is_bought_anew(
    fal: FalEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from acpbuild.cli import main

    recipe = copy_recipe("fal_clip.toml", tmp_path)
    fal.fail("GET", STATUS, error(503, "busy"), times=10)
    assert not acpbuild.run(recipe, env=fal_env(fal)).success
    assert rows(tmp_path / ".acpbuild") == [("submitted", "req-0001")]

    assert main(["abandon", str(recipe), "clip"]) == 0
    assert "abandoned request req-0001 of clip" in capsys.readouterr().out
    assert main(["abandon", str(recipe), "clip"]) == 0  # twice: nothing left to give up
    assert "nothing to abandon" in capsys.readouterr().out
    assert main(["abandon", str(recipe), "clp"]) == 2  # a name that is not a step

    fal.failures.clear()
    again = acpbuild.run(recipe, env=fal_env(fal))
    assert again.success, again.to_dict()
    assert fal.submissions == 2  # the user chose to buy it again
    assert rows(tmp_path / ".acpbuild") == [("abandoned", "req-0001"), ("done", "req-0002")]


def test_fal_download_that_stays_truncated_then_a_rerun_resumes(
    fal: FalEmulator, tmp_path: Path
) -> None:
    recipe = copy_recipe("fal_clip.toml", tmp_path)
    fal.fail("GET", MEDIA, Response(200, mp4_bytes(), truncate_to=100), times=10)
    first = acpbuild.run(recipe, env=fal_env(fal))
    assert not first.success
    assert "truncated" in (first.steps["clip"].error or "")
    assert not (tmp_path / "out" / "clip.mp4").exists()

    fal.failures.clear()  # the CDN recovers
    second = acpbuild.run(recipe, env=fal_env(fal))
    assert second.success, second.to_dict()
    assert fal.submissions == 1  # the finished, paid job was fetched, not bought again
    assert (tmp_path / "out" / "clip.mp4").read_bytes() == mp4_bytes()


def test_veo_final_poll_that_stays_truncated_then_a_rerun_resumes(
    google: GoogleEmulator, tmp_path: Path
) -> None:
    recipe = copy_recipe("veo_teaser.toml", tmp_path)
    google.polls_before_done = 0
    cut = Response(200, {"name": "x", "done": True, "response": {}}, truncate_to=20)
    google.fail("POST", FETCH, cut, times=10)
    first = acpbuild.run(recipe, env=google_env(google))
    assert not first.success
    ((state, name),) = rows(tmp_path / ".acpbuild")
    assert state == "submitted" and name is not None and name.endswith("/operations/op-1")

    google.failures.clear()
    second = acpbuild.run(recipe, env=google_env(google))
    assert second.success, second.to_dict()
    assert len(google.submissions()) == 1  # the operation was polled again, not bought again
    assert google.calls("POST", FETCH)[-1].json() == {"operationName": name}
    assert (tmp_path / "out" / "teaser.mp4").read_bytes() == google.video


def test_plan_shows_a_kept_job_as_a_free_resume_and_a_zero_budget_lets_it_finish(
    fal: FalEmulator, tmp_path: Path
) -> None:
    recipe = copy_recipe("fal_clip.toml", tmp_path)
    fal.fail("GET", STATUS, error(503, "busy"), times=3)
    assert not acpbuild.run(recipe, env=fal_env(fal)).success
    before = forecast(recipe, env=fal_env(fal))
    (entry,) = before.entries
    assert entry.state == "run"
    assert "resumes request req-0001" in entry.reason
    assert entry.estimate.usd == 0
    # the figure says why it is nothing: what a user reads in `acpbuild plan`
    assert entry.estimate.formula == "already submitted as req-0001; resuming it pays nothing more"
    assert before.total == 0  # nothing new to pay for, so nothing to confirm

    # the job is paid for already: a budget of $0 must not stop the run from collecting it
    result = acpbuild.run(recipe, env=fal_env(fal), budget=0.0)
    assert result.success, result.to_dict()
    assert fal.submissions == 1


# -- the job itself failed: it is marked failed and the next run submits anew ---------


@pytest.mark.parametrize(
    "job_error",
    [
        # fal reports the request itself failed (a bad input it only found when running)
        error(422, "image could not be decoded", "request_error"),
        # fal's content checker refused the prompt
        error(422, "flagged by a content checker", "content_policy_violation"),
        # the runner died inside fal: not billed, and the job is over
        error(500, "Runner disconnected", "runner_disconnected"),
    ],
)
def test_a_fal_job_that_failed_is_marked_failed_and_bought_again(
    fal: FalEmulator, tmp_path: Path, job_error: Response
) -> None:
    recipe = copy_recipe("fal_clip.toml", tmp_path)
    fal.job_error = job_error
    first = acpbuild.run(recipe, env=fal_env(fal))
    assert not first.success
    assert "is kept" not in (first.steps["clip"].error or "")
    assert rows(tmp_path / ".acpbuild") == [("failed", "req-0001")]
    assert forecast(recipe, env=fal_env(fal)).entries[0].estimate.usd > 0  # a new job costs

    fal.job_error = None
    second = acpbuild.run(recipe, env=fal_env(fal))
    assert second.success, second.to_dict()
    assert fal.submissions == 2
    assert rows(tmp_path / ".acpbuild") == [("failed", "req-0001"), ("done", "req-0002")]


def test_a_veo_operation_that_failed_is_marked_failed_and_bought_again(
    google: GoogleEmulator, tmp_path: Path
) -> None:
    recipe = copy_recipe("veo_teaser.toml", tmp_path)
    google.polls_before_done = 0
    failed = {"name": "x", "done": True, "error": {"code": 13, "message": "Internal error."}}
    google.fail("POST", FETCH, Response(200, failed))
    first = acpbuild.run(recipe, env=google_env(google))
    assert not first.success
    assert "code 13" in (first.steps["teaser"].error or "")
    assert [state for state, _ in rows(tmp_path / ".acpbuild")] == ["failed"]

    second = acpbuild.run(recipe, env=google_env(google))
    assert second.success, second.to_dict()
    assert len(google.submissions()) == 2


# -- sent, answer lost: no job to resume, possibly billed, and the next run warns once ----------


def doubts(result: acpbuild.RunResult) -> list[str]:
    """The run's warnings about earlier requests that may have been billed."""
    return [w for w in result.warnings if "never answered" in w]


def test_a_request_whose_answer_was_lost_is_possibly_billed_and_the_next_run_warns_once(tmp_path: Path) -> None:
    recipe = copy_recipe("speech.toml", tmp_path)
    # "Hello there." is 12 characters at $0.10 per 1k characters
    usd = 12 * 0.10 / 1000
    with ElevenLabsEmulator() as el:
        env = base_env(ELEVENLABS_API_KEY=EL_KEY, ACPBUILD_ELEVENLABS_URL=el.url)
        el.fail("POST", TTS, el_error(500, "internal_error", "An internal error occurred."), times=2)
        first = acpbuild.run(recipe, env=env).to_dict()
        assert not first["success"] and el.submissions == 1  # sent once: it may have been billed
        (step,) = first["steps"]
        assert step["possibly_billed"] == pytest.approx(usd)
        assert first["totals"]["possibly_billed"] == pytest.approx(usd)
        assert not any("never answered" in w for w in first["warnings"])

        # the next run names the step and what it may have cost; the request is sent again
        second = acpbuild.run(recipe, env=env)
        assert not second.success and el.submissions == 2
        (warning,) = doubts(second)
        assert warning.startswith("1 earlier request of line was sent but never answered")
        assert "~$0.0012" in warning and warning.endswith("acpbuild abandon speech.toml line")

        # warned once: the run after that warns only about the second lost request
        third = acpbuild.run(recipe, env=env)
        assert third.success, third.to_dict()
        (warning,) = doubts(third)
        assert warning.startswith("1 earlier request of line was sent but never answered")
        done = third.to_dict()["steps"][0]
        assert done["cost"] == pytest.approx(usd) and done["estimated_cost"] == pytest.approx(usd)
        assert "possibly_billed" not in done
    assert [state for state, _ in rows(tmp_path / ".acpbuild")] == ["possibly_billed", "possibly_billed", "done"]


def test_requests_of_several_steps_lost_in_one_run_are_warned_about_together(tmp_path: Path) -> None:
    recipe = copy_recipe("speech.toml", tmp_path)
    with recipe.open("a") as f:
        f.write('\n[steps.aside]\nkind = "text_to_speech"\nprovider = "elevenlabs"\nmodel = "eleven_multilingual_v2"\n')
        f.write('text = "Goodbye now."\noutput = "aside.mp3"\n')
    with ElevenLabsEmulator() as el:
        env = base_env(ELEVENLABS_API_KEY=EL_KEY, ACPBUILD_ELEVENLABS_URL=el.url)
        el.fail("POST", TTS, el_error(500, "internal_error", "An internal error occurred."), times=2)
        first = acpbuild.run(recipe, env=env, jobs=1, keep_going=True)
        assert el.submissions == 2 and [s.status for s in first.steps.values()] == ["failed", "failed"]
        second = acpbuild.run(recipe, env=env, jobs=1)
        assert second.success, second.to_dict()
    (warning,) = doubts(second)
    # 12 + 12 characters at $0.10 per 1k characters
    assert warning.startswith("2 earlier requests of aside, line were sent but never answered")
    assert "~$0.0024 at their estimates" in warning
    assert warning.endswith("acpbuild abandon speech.toml aside line")
