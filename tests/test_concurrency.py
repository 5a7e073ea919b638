"""Per-provider concurrency limits, and a rate-limited provider slowing only its own steps."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import acpbuild
from acpbuild.engine.results import Event
from acpbuild.errors import RecipeError
from tests.emulators import Request, Response
from tests.emulators.elevenlabs import KEY as EL_KEY
from tests.emulators.elevenlabs import ElevenLabsEmulator
from tests.emulators.openrouter import KEY as OR_KEY
from tests.emulators.openrouter import OpenRouterEmulator


class SlowSpeech(ElevenLabsEmulator):
    """Takes 0.3 s per speech request and remembers the most it served at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = self.peak = 0
        self.count_lock = threading.Lock()

    def _tts(self, request: Request, match: Any) -> Response:
        with self.count_lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.3)
            return super()._tts(request, match)
        finally:
            with self.count_lock:
                self.in_flight -= 1


@pytest.fixture
def speech() -> Iterator[SlowSpeech]:
    with SlowSpeech() as emulator:
        yield emulator


def env_for(speech: ElevenLabsEmulator, chat: OpenRouterEmulator | None = None) -> dict[str, str]:
    env = {
        "ELEVENLABS_API_KEY": EL_KEY,
        "ACPBUILD_ELEVENLABS_URL": speech.url,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_RETRY_ATTEMPTS": "5",
    }
    if chat is not None:
        env |= {"OPENROUTER_API_KEY": OR_KEY, "ACPBUILD_OPENROUTER_URL": f"{chat.url}/api/v1"}
    return env


def speech_steps(n: int) -> str:
    return "".join(
        f'[steps.line{i}]\nkind = "text_to_speech"\nprovider = "elevenlabs"\nmodel = "eleven_flash_v2_5"\n'
        f'voice = "Rachel"\ntext = "Line number {i}."\noutput = "line{i}.mp3"\n\n'
        for i in range(n)
    )


@pytest.mark.parametrize(
    ("header", "jobs", "peak"),
    [
        ("", 16, 4),  # the adapter's own limit for ElevenLabs
        ("[recipe]\nconcurrency = { elevenlabs = 2 }\n\n", 16, 2),  # the recipe's
        ("[recipe]\nconcurrency = { elevenlabs = 8 }\n\n", 3, 3),  # -j, below the provider's limit
        ("[recipe]\njobs = 2\nconcurrency = { elevenlabs = 8 }\n\n", None, 2),  # the recipe's jobs
        ("[recipe]\nconcurrency = { elevenlabs = 32 }\n\n", None, 8),  # default -j 16: all 8 at once
    ],
)
def test_a_provider_never_runs_more_at_once_than_its_limit(
    tmp_path: Path, speech: SlowSpeech, header: str, jobs: int | None, peak: int
) -> None:
    recipe = tmp_path / "lines.toml"
    recipe.write_text(header + speech_steps(8))
    result = acpbuild.run(recipe, jobs=jobs, env=env_for(speech))
    assert result.success, result.to_dict()
    assert speech.submissions == 8
    assert speech.peak == peak


def test_a_rate_limited_provider_slows_only_its_own_steps(tmp_path: Path, speech: SlowSpeech) -> None:
    speech.fail("POST", r"/v1/text-to-speech/.+", Response(429, {"detail": "slow down"}, {"Retry-After": "1"}), times=3)
    recipe = tmp_path / "mixed.toml"
    chat_steps = "".join(
        f'[steps.note{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\n'
        f'prompt = "Note {i}"\nmax_tokens = 50\noutput = "note{i}.txt"\n\n'
        for i in range(3)
    )
    recipe.write_text(speech_steps(3) + chat_steps)
    finished: dict[str, float] = {}
    start = time.monotonic()

    def record(event: Event) -> None:
        if event.kind == "step_done" and event.step:
            finished[event.step] = time.monotonic() - start

    with OpenRouterEmulator() as chat:
        result = acpbuild.run(recipe, jobs=16, env=env_for(speech, chat), on_event=record)
    assert result.success, result.to_dict()
    slowest_note = max(finished[f"note{i}"] for i in range(3))
    fastest_line = min(finished[f"line{i}"] for i in range(3))
    assert fastest_line >= 1.0  # each speech step waited out its Retry-After
    assert slowest_note < fastest_line  # the chat steps did not wait for them


def test_steps_queued_for_a_busy_provider_never_hold_back_another_provider(
    tmp_path: Path, speech: SlowSpeech
) -> None:
    import openai  # noqa: F401  -- imported up front, so the chat steps time the wire, not the import

    # 12 speech steps, 2 at a time, 0.3 s each; -j 4. The speech steps come first in the
    # recipe, so doit hands them out first: were a step waiting for ElevenLabs to keep one
    # of the 4 places, the chat steps would start only after 8 speech steps had finished.
    recipe = tmp_path / "busy.toml"
    chat_steps = "".join(
        f'[steps.note{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\n'
        f'prompt = "Note {i}"\nmax_tokens = 50\noutput = "note{i}.txt"\n\n'
        for i in range(3)
    )
    recipe.write_text("[recipe]\nconcurrency = { elevenlabs = 2 }\n\n" + speech_steps(12) + chat_steps)
    order: list[str] = []

    def record(event: Event) -> None:
        if event.kind == "step_done" and event.step:
            order.append(event.step)

    with OpenRouterEmulator() as chat:
        result = acpbuild.run(recipe, jobs=4, env=env_for(speech, chat), on_event=record)
    assert result.success, result.to_dict()
    assert speech.peak == 2
    last_note = max(order.index(f"note{i}") for i in range(3))
    speech_before = sum(1 for name in order[:last_note] if name.startswith("line"))
    assert speech_before < 6, order


def test_an_unknown_provider_in_concurrency_is_a_recipe_error(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[recipe]\nconcurrency = { fall = 2 }\n\n[steps.a]\nkind = "text"\nprompt = "x"\noutput = "a.txt"\n')
    with pytest.raises(RecipeError) as caught:
        acpbuild.load_recipe(recipe, env={})
    assert caught.value.line == 2 and "did you mean 'fal'" in str(caught.value)
