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

#: how long a gate of SlowSpeech holds a request before it gives up (and the test fails)
GATE_S = 20.0


class SlowSpeech(ElevenLabsEmulator):
    """Takes 0.3 s per speech request and remembers the most it served at once.

    Two gates take the machine's speed out of the assertions. ``gather``: the first
    requests are held until that many are in flight together, so a limit is reached
    however slowly the requests arrive. ``after``: every request is held until that
    event is set. A gate not met within GATE_S opens for good and says so in ``gave_up``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = self.peak = 0
        self.gather = 0
        self.after: threading.Event | None = None
        self.gave_up: list[str] = []
        self.counting = threading.Condition()

    def _tts(self, request: Request, match: Any) -> Response:
        with self.counting:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.counting.notify_all()
            if not self.counting.wait_for(lambda: self.peak >= self.gather, timeout=GATE_S):
                self.gave_up.append(f"only {self.peak} of {self.gather} requests came at once")
                self.gather = 0
                self.counting.notify_all()
        try:
            after = self.after
            if after is not None and not after.wait(GATE_S):
                self.gave_up.append("the awaited event never came")
                self.after = None
            time.sleep(0.3)
            return super()._tts(request, match)
        finally:
            with self.counting:
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
    speech.gather = peak  # the first requests wait for one another: the limit is reached on any machine
    result = acpbuild.run(recipe, jobs=jobs, env=env_for(speech))
    assert result.success, result.to_dict()
    assert speech.submissions == 8
    assert speech.peak <= peak  # never more than the limit
    assert speech.peak == peak and not speech.gave_up, speech.gave_up  # and no less


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
    # the speech answers wait until every chat step is done: they finish first only if
    # they did not wait for the rate-limited speech steps (else the gate gives up)
    speech.after = notes_done = threading.Event()

    def record(event: Event) -> None:
        if event.kind == "step_done" and event.step:
            finished[event.step] = time.monotonic() - start
            if all(f"note{i}" in finished for i in range(3)):
                notes_done.set()

    with OpenRouterEmulator() as chat:
        result = acpbuild.run(recipe, jobs=16, env=env_for(speech, chat), on_event=record)
    assert result.success, result.to_dict()
    assert not speech.gave_up, speech.gave_up  # the chat steps were done while speech waited
    assert speech.submissions == 6  # three refused with a 429, each asked again once
    slowest_note = max(finished[f"note{i}"] for i in range(3))
    fastest_line = min(finished[f"line{i}"] for i in range(3))
    assert fastest_line >= 1.0  # each speech step waited out its Retry-After
    assert slowest_note < fastest_line


def test_steps_queued_for_a_busy_provider_never_hold_back_another_provider(
    tmp_path: Path, speech: SlowSpeech
) -> None:
    # 12 speech steps, 2 at a time; -j 4. The speech steps come first in the recipe, so
    # doit hands them out first: were a step waiting for ElevenLabs to keep one of the 4
    # places, the chat steps could not start while two speech requests were in flight.
    recipe = tmp_path / "busy.toml"
    chat_steps = "".join(
        f'[steps.note{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\n'
        f'prompt = "Note {i}"\nmax_tokens = 50\noutput = "note{i}.txt"\n\n'
        for i in range(3)
    )
    recipe.write_text("[recipe]\nconcurrency = { elevenlabs = 2 }\n\n" + speech_steps(12) + chat_steps)
    order: list[str] = []
    # ElevenLabs answers nothing until the chat steps are done: with the places lent
    # while speech steps wait their turn, they are; were the places held, they never
    # would be, and the gate gives up
    speech.after = notes_done = threading.Event()

    def record(event: Event) -> None:
        if event.kind == "step_done" and event.step:
            order.append(event.step)
            if all(f"note{i}" in order for i in range(3)):
                notes_done.set()

    with OpenRouterEmulator() as chat:
        result = acpbuild.run(recipe, jobs=4, env=env_for(speech, chat), on_event=record)
    assert result.success, result.to_dict()
    assert not speech.gave_up, speech.gave_up
    assert speech.peak <= 2
    assert set(order[:3]) == {"note0", "note1", "note2"}, order


def test_an_unknown_provider_in_concurrency_is_a_recipe_error(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[recipe]\nconcurrency = { fall = 2 }\n\n[steps.a]\nkind = "text"\nprompt = "x"\noutput = "a.txt"\n')
    with pytest.raises(RecipeError) as caught:
        acpbuild.load_recipe(recipe, env={})
    assert caught.value.line == 2 and "did you mean 'fal'" in str(caught.value)
