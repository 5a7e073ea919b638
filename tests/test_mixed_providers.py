"""One recipe mixing all four paid providers and local steps, run end to end on the wire.

The real SDKs talk to the loopback emulators in tests/emulators; the media they
serve here is real (made with the local provider), so the local steps
downstream of paid ones (mux, thumbnail) really decode it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import copy_recipe, provider_calls

import acpbuild
from acpbuild.cli import main
from acpbuild.errors import NotReady
from acpbuild.media import probe
from acpbuild.provider import Job
from acpbuild.providers.local import LocalProvider
from tests.emulators import elevenlabs as el_emulator
from tests.emulators import fal as fal_emulator
from tests.emulators.elevenlabs import ElevenLabsEmulator
from tests.emulators.fal import FalEmulator
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import OpenRouterEmulator

# Distinctive fake keys, so a leak is easy to find.
KEYS = {
    "FAL_KEY": fal_emulator.KEY,
    "ELEVENLABS_API_KEY": el_emulator.KEY,
    "GEMINI_API_KEY": "test-google-key-0000",
    "OPENROUTER_API_KEY": "test-or-key-0000",
}
PAID = ["script", "voice", "cover", "clip", "caption", "teaser"]


class _Journal:
    resume_id = None

    def submitted(self, request_id: str) -> None:
        pass


def _local_media(tmp: Path) -> tuple[bytes, bytes]:
    """A real MP4 (with no audio) and a real MP3, made by the local provider."""
    local = LocalProvider({})
    catalogue = local.catalogue()
    video, audio = tmp / "emu.mp4", tmp / "emu.mp3"
    local.generate(
        Job("text_to_video", catalogue["titlecard"], {"prompt": "emulated", "duration_s": 2, "width": 160, "height": 96}, video),
        _Journal(),
    )
    local.generate(Job("text_to_speech", catalogue["espeak"], {"text": "emulated speech"}, audio), _Journal())
    return video.read_bytes(), audio.read_bytes()


@dataclass
class World:
    fal: FalEmulator
    elevenlabs: ElevenLabsEmulator
    google: GoogleEmulator
    openrouter: OpenRouterEmulator
    env: dict[str, str]

    def requests(self) -> int:
        return sum(len(e.requests) for e in (self.fal, self.elevenlabs, self.google, self.openrouter))

    def lookups(self) -> int:
        """The free requests a run makes before it asks to spend: ElevenLabs' voice listing,
        which checks that the account has every voice the recipe names."""
        return len(self.elevenlabs.calls("GET", "/v1/voices"))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    return _local_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def world(media: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    video, audio = media
    # the emulators' stand-in bytes are only shaped like media; serve real files instead
    monkeypatch.setattr(fal_emulator, "mp4_bytes", lambda *a, **k: video)
    monkeypatch.setattr(el_emulator, "mp3_bytes", lambda *a, **k: audio)
    with FalEmulator() as fal, ElevenLabsEmulator() as el, GoogleEmulator() as google, OpenRouterEmulator() as orr:
        google.video = video
        yield World(fal, el, google, orr, {**emulator_env(fal, el, google, orr), "PATH": os.environ.get("PATH", "")})


def emulator_env(
    fal: FalEmulator, el: ElevenLabsEmulator, google: GoogleEmulator, orr: OpenRouterEmulator
) -> dict[str, str]:
    """The keys and URLs that point each provider at its emulator, with quick retries and polls."""
    return {
        **KEYS,
        "ACPBUILD_FAL_URL": fal.url,
        "ACPBUILD_ELEVENLABS_URL": el.url,
        "ACPBUILD_GOOGLE_URL": google.url,
        "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1",
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
    }


def test_a_recipe_mixing_every_provider_runs_then_reruns_for_free(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    result = acpbuild.run(recipe, env=world.env, jobs=4)
    assert result.success, result.to_dict()
    assert {n for n, s in result.steps.items() if s.status == "ran"} == {*PAID, "final", "poster"}
    # exactly one billable request per paid step
    assert world.openrouter.submissions == 1
    assert world.elevenlabs.submissions == 1
    assert world.fal.submissions == 2
    assert len(world.google.submissions()) == 1  # the Veo job
    (gemini,) = world.google.calls("POST", r"/v1/models/.+:generateContent")
    # no max_tokens in the recipe: the model's default cap is sent, so the estimate bounds the cost
    assert gemini.json()["generationConfig"]["maxOutputTokens"] == 8192
    # the paid media is real: the local steps downstream decode it
    final = probe(tmp_path / "out" / "final.mp4")
    assert (final.video_streams, final.audio_streams) == (1, 1)
    assert (tmp_path / "out" / "poster.png").stat().st_size > 0
    # costs: reported by OpenRouter, computed from the price registry for the rest
    (reported,) = world.openrouter.costs
    assert result.steps["script"].cost == reported  # OpenRouter's usage.cost, to the last digit
    with sqlite3.connect(tmp_path / ".acpbuild" / "ledger.sqlite3") as db:
        (ledgered,) = db.execute("SELECT actual_cost FROM generations WHERE step='script'").fetchone()
    assert ledgered == reported
    voice_chars = len((tmp_path / "out" / "script.txt").read_text())
    assert result.steps["voice"].cost == pytest.approx(voice_chars / 1000 * 0.10)
    assert result.steps["final"].cost == 0
    assert result.total_cost == pytest.approx(sum(s.cost for s in result.steps.values()))
    assert all(result.steps[n].cost > 0 for n in PAID)

    before = world.requests()
    again = acpbuild.run(recipe, env=world.env, jobs=4)
    assert {s.status for s in again.steps.values()} == {"uptodate"}
    assert world.requests() == before  # not even a lookup

    assert main(["clean", str(recipe)]) == 0
    restored = acpbuild.run(recipe, env=world.env, jobs=4)
    assert {s.status for s in restored.steps.values()} == {"restored"}
    assert restored.total_cost == 0
    assert world.requests() == before


def test_a_restored_paid_output_is_up_to_date_on_the_next_run(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    original = recipe.read_text()
    cover = tmp_path / "out" / "cover.png"
    assert acpbuild.run(recipe, ["cover"], env=world.env).steps["cover"].status == "ran"
    made = cover.read_bytes()
    # another generation takes the file's place: the ledger and the lockfile now name it
    recipe.write_text(original.replace("watercolour", "ink drawing"))
    assert acpbuild.run(recipe, ["cover"], env=world.env).steps["cover"].status == "ran"
    assert world.fal.submissions == 2
    paid, requests = provider_calls(tmp_path / ".acpbuild"), world.requests()

    # the edit reverted and the output deleted: the first generation comes back from the store
    recipe.write_text(original)
    cover.unlink()
    restored = acpbuild.run(recipe, ["cover"], env=world.env)
    assert restored.steps["cover"].status == "restored"
    assert cover.read_bytes() == made

    # only a restore that recorded what it wrote lets the next run see the file as current
    again = acpbuild.run(recipe, ["cover"], env=world.env)
    assert again.steps["cover"].status == "uptodate", again.steps["cover"].reason
    assert again.total_cost == 0
    assert world.requests() == requests and provider_calls(tmp_path / ".acpbuild") == paid


def test_no_key_reaches_the_ledger_the_store_the_output_or_a_report(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", str(recipe), "--json", "--yes"]) == 0
    assert main(["plan", str(recipe), "--json"]) == 0
    # and a failure: the fal emulator now expects another key and echoes the one it got
    world.fal.key = "test-other-key-1111"
    recipe.write_text(recipe.read_text().replace("seed = 3", "seed = 4"))
    assert main(["run", str(recipe), "--json", "-k", "--yes"]) == 1
    out, err = capsys.readouterr()
    failed = {s["name"]: s for s in _last_json(out)["steps"]}
    assert failed["cover"]["status"] == "failed"
    assert "FAL_KEY" in failed["cover"]["error"]
    assert main(["doctor", "--store", str(tmp_path / ".acpbuild")]) == 0
    doctor_out = capsys.readouterr().out
    assert "FAL_KEY is set" in doctor_out
    texts = [out, err, doctor_out]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    for key in KEYS.values():
        assert not any(key in text for text in texts), key


def _last_json(out: str) -> dict[str, object]:
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while pos < len(out):
        start = out.find("{", pos)
        if start < 0:
            break
        doc, pos = decoder.raw_decode(out, start)
        docs.append(doc)
    return docs[-1]


def test_draft_replaces_paid_steps_and_never_satisfies_a_real_run(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    draft = acpbuild.run(recipe, draft=True, env={"PATH": os.environ.get("PATH", "")})
    assert draft.success, draft.to_dict()
    assert sorted(draft.drafted) == sorted(PAID)
    assert draft.total_cost == 0
    assert world.requests() == 0
    assert probe(tmp_path / "out" / "final.mp4").video_streams == 1

    real = acpbuild.run(recipe, env=world.env)
    assert {n for n, s in real.steps.items() if s.status == "ran"} == {*PAID, "final", "poster"}
    assert not real.drafted


def _wait_for_request_id(ledger: Path, step: str, deadline_s: float = 60) -> str:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if ledger.exists():
            try:
                with sqlite3.connect(ledger) as db:
                    row = db.execute(
                        "SELECT request_id FROM generations WHERE step=? AND request_id IS NOT NULL", (step,)
                    ).fetchone()
            except sqlite3.OperationalError:
                row = None  # the child has created the file but not its tables yet
            if row:
                return str(row[0])
        time.sleep(0.05)
    raise AssertionError(f"{step} was never submitted")


def _run_in_a_child(recipe: Path, step: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "acpbuild", "run", str(recipe), step, "--yes"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_run_killed_while_polling_resumes_the_same_job(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    world.fal.polls = 10**6  # every job stays in the queue until we say
    child = _run_in_a_child(recipe, "clip", world.env)
    try:
        # wait for the cover's job itself (a logged request comes before the job exists),
        # release it; the clip is then submitted and polled forever
        deadline = time.monotonic() + 60
        while not world.fal.jobs and time.monotonic() < deadline:
            time.sleep(0.02)
        for job in list(world.fal.jobs.values()):
            job.polls = 0
        request_id = _wait_for_request_id(tmp_path / ".acpbuild" / "ledger.sqlite3", "clip")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert world.fal.submissions == 2  # cover, then clip

    world.fal.jobs[request_id].polls = 0
    world.fal.polls = 0
    result = acpbuild.run(recipe, ["clip"], env=world.env)
    assert result.success, result.to_dict()
    assert result.steps["clip"].status == "ran"
    assert result.steps["cover"].status == "uptodate"
    assert world.fal.submissions == 2  # the service saw exactly one submission of the clip
    assert probe(tmp_path / "out" / "clip.mp4").video_streams == 1
    assert provider_calls(tmp_path / ".acpbuild") == 2


def test_a_run_killed_while_polling_veo_resumes_the_same_operation(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    world.google.hold = True  # the Veo operation keeps running until we say
    child = _run_in_a_child(recipe, "teaser", world.env)  # cover, caption, then teaser
    polled: list[str] = []
    try:
        name = _wait_for_request_id(tmp_path / ".acpbuild" / "ledger.sqlite3", "teaser")
        deadline = time.monotonic() + 60  # killed while polling, not between submit and poll
        while not world.google.calls("POST", r".*:fetchPredictOperation") and time.monotonic() < deadline:
            time.sleep(0.02)
        polled = [r.json()["operationName"] for r in world.google.calls("POST", r".*:fetchPredictOperation")]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the kill came while polling: after the one submission, after a poll of its operation,
    # and before any answer carried the video (the operation was held running)
    assert len(world.google.submissions()) == 1
    assert polled and set(polled) == {name}, "the run was killed before it polled"
    assert not world.google.by_role("download") and not (tmp_path / "out" / "teaser.mp4").exists()

    world.google.hold = False
    result = acpbuild.run(recipe, ["teaser"], env=world.env)
    assert result.success, result.to_dict()
    assert result.steps["teaser"].status == "ran"
    assert result.steps["caption"].status == "uptodate"
    assert len(world.google.submissions()) == 1  # Google saw exactly one submission of the teaser
    assert world.google.calls("POST", r".*:fetchPredictOperation")[-1].json() == {"operationName": name}
    assert (tmp_path / "out" / "teaser.mp4").read_bytes() == world.google.video
    assert provider_calls(tmp_path / ".acpbuild") == 3  # cover, caption, teaser: one row each


def test_a_draft_run_says_so_in_its_summary(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    monkeypatch.chdir(tmp_path)
    for name, value in world.env.items():  # keys and endpoints a real run would use
        monkeypatch.setenv(name, value)
    assert main(["run", str(recipe), "cover", "--draft", "--yes"]) == 0  # one paid step: quick
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "DRAFT: 1 paid step replaced by free local stand-ins (cover)" in out
    assert "a run without --draft will generate them for real" in out
    assert world.requests() == 0


def test_keys_can_come_from_a_dotenv_file_beside_the_recipe(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        if name != "FAL_KEY":
            monkeypatch.setenv(name, value)
    with pytest.raises(NotReady, match="FAL_KEY is not set"):  # found before anything is paid
        acpbuild.run(recipe, ["cover"])
    assert world.fal.submissions == 0

    (tmp_path / ".env").write_text(f"# keys for this content repo\nexport FAL_KEY='{KEYS['FAL_KEY']}'\n")
    result = acpbuild.run(recipe, ["cover"])
    assert result.steps["cover"].status == "ran"
    assert world.fal.submissions == 1
