"""Everything a run needs is checked before money is asked for.

``plan``, ``estimate`` and ``run`` (before it asks to spend) name every API key
that is not set and every voice the ElevenLabs account lacks, for every step
that would call a paid provider, a first_success group's fallbacks included, in
one message. The providers are the real SDKs against the emulators; each test
counts what reached them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import acpbuild
from acpbuild.cli import main
from acpbuild.errors import NotReady
from tests.emulators.elevenlabs import KEY as EL_KEY
from tests.emulators.elevenlabs import TTS, ElevenLabsEmulator
from tests.emulators.fal import FalEmulator
from tests.emulators.openrouter import KEY as OR_KEY
from tests.emulators.openrouter import OpenRouterEmulator

TWO_PROVIDERS = """\
[recipe]
name = "two"
output_dir = "out"

[steps.script]
kind = "text"
provider = "openrouter"
model = "openai/gpt-4o-mini"
prompt = "One line about a lighthouse."
output = "script.txt"

[steps.cover]
kind = "text_to_image"
provider = "fal"
model = "flux-schnell"
prompt = "a lighthouse at dawn"
output = "cover.png"

[steps.card]
kind = "text_to_image"
provider = "fal"
model = "flux-schnell"
prompt = "${steps.script}"
output = "card.png"
"""

# the expensive voice first; a cheaper fallback whose voice this account does not have
FALLBACK_VOICE = """\
[recipe]
name = "voiced"
output_dir = "out"

[steps.voice_v2]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "Hello there."
output = "voice_v2.mp3"

[steps.voice_flash]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_flash_v2_5"
voice = "Bella"
text = "Hello there."
output = "voice_flash.mp3"

[groups.voice]
steps = ["voice_v2", "voice_flash"]
merge = "first_success"
output = "voice.mp3"
"""

VOICES = "/v1/voices"


def write(folder: Path, text: str) -> Path:
    path = folder / "acpbuild.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator]]:
    """The three emulators, each provider pointed at its own; no key is set."""
    with FalEmulator() as fal, OpenRouterEmulator() as chat, ElevenLabsEmulator() as speech:
        monkeypatch.setenv("ACPBUILD_FAL_URL", fal.url)
        monkeypatch.setenv("ACPBUILD_OPENROUTER_URL", f"{chat.url}/api/v1")
        monkeypatch.setenv("ACPBUILD_ELEVENLABS_URL", speech.url)
        monkeypatch.setenv("ACPBUILD_RETRY_BASE_S", "0.01")
        yield fal, chat, speech


@pytest.mark.parametrize("command", [["plan"], ["estimate"], ["run", "--yes"], ["run"]])
def test_every_missing_key_is_named_before_any_request(
    tmp_path: Path,
    wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator],
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    recipe = write(tmp_path, TWO_PROVIDERS)
    # estimate prices a recipe, keys or not, and says what a run would need: a warning, exit 0;
    # plan says what a run would do now: it would stop, exit 2
    pricing = command == ["estimate"]
    assert main([*command, str(recipe)]) == (0 if pricing else 2)
    err = capsys.readouterr().err
    # both keys in one message, each with the steps that need it
    assert "OPENROUTER_API_KEY is not set (openrouter)\n    needed by script\n" in err
    assert "FAL_KEY is not set (fal)\n    needed by cover, card\n" in err
    assert err.count("acpbuild: warning:" if pricing else "acpbuild: error:") == 1
    assert [r for emulator in wire for r in emulator.requests] == []
    assert not (tmp_path / "out").exists()


def test_plan_still_prices_the_steps_whose_keys_are_missing(
    tmp_path: Path, wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    # what a recipe would cost is worth knowing before signing up: the table comes first
    import json

    recipe = write(tmp_path, TWO_PROVIDERS)
    assert main(["estimate", str(recipe), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["estimated"] > 0
    assert {m["what"]: m["steps"] for m in doc["missing"]} == {
        "OPENROUTER_API_KEY is not set (openrouter)": ["script"],
        "FAL_KEY is not set (fal)": ["cover", "card"],
    }


def test_the_python_api_raises_before_anything_is_spent(
    tmp_path: Path, wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator]
) -> None:
    recipe = write(tmp_path, TWO_PROVIDERS)
    asked: list[object] = []
    with pytest.raises(NotReady) as caught:
        acpbuild.run(recipe, confirm=asked.append)
    assert asked == []  # nobody is asked to pay for a run that cannot happen
    assert {what for what, _ in caught.value.missing} == {
        "OPENROUTER_API_KEY is not set (openrouter)",
        "FAL_KEY is not set (fal)",
    }
    assert [r for emulator in wire for r in emulator.requests] == []


@pytest.mark.parametrize("command", [["plan"], ["run", "--yes"]])
def test_a_fallbacks_missing_voice_is_named_before_any_generation(
    tmp_path: Path,
    wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    speech = wire[2]
    monkeypatch.setenv("ELEVENLABS_API_KEY", EL_KEY)
    recipe = write(tmp_path, FALLBACK_VOICE)
    assert main([*command, str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "no voice named 'Bella' in this ElevenLabs account" in err
    assert "\n    needed by voice_flash (a fallback of group voice)\n" in err
    assert "voice_v2" not in err.split("needed by", 1)[1]  # Rachel is there: only the fallback is named
    assert speech.calls("POST", TTS) == []  # not one generation
    assert len(speech.calls("GET", VOICES)) == 1  # one listing for the whole run
    assert EL_KEY not in err


def test_one_voice_listing_serves_the_check_and_every_step(
    tmp_path: Path, wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    speech = wire[2]
    monkeypatch.setenv("ELEVENLABS_API_KEY", EL_KEY)
    steps = "".join(
        f'[steps.line{i}]\nkind = "text_to_speech"\nprovider = "elevenlabs"\nmodel = "eleven_multilingual_v2"\n'
        f'voice = "{voice}"\ntext = "Line {i}."\noutput = "line{i}.mp3"\n\n'
        for i, voice in enumerate(["Rachel", "George", "Adam"])
    )
    recipe = write(tmp_path, f'[recipe]\nname = "lines"\noutput_dir = "out"\n\n{steps}')
    result = acpbuild.run(recipe)
    assert result.success, result.to_dict()
    assert len(speech.calls("POST", TTS)) == 3
    assert len(speech.calls("GET", VOICES)) == 1


def test_a_refused_key_is_named_by_its_variable_never_its_value(
    tmp_path: Path,
    wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    speech = wire[2]
    monkeypatch.setenv("ELEVENLABS_API_KEY", "test-wrong-key-4321")
    recipe = write(tmp_path, FALLBACK_VOICE)
    assert main(["run", "--yes", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "ELEVENLABS_API_KEY" in err and "test-wrong-key-4321" not in err
    assert speech.calls("POST", TTS) == []


def test_steps_already_built_need_no_key(
    tmp_path: Path,
    wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fal, chat, _ = wire
    recipe = write(tmp_path, TWO_PROVIDERS)
    monkeypatch.setenv("FAL_KEY", fal.key)
    monkeypatch.setenv("OPENROUTER_API_KEY", OR_KEY)
    assert main(["run", "--yes", str(recipe)]) == 0
    monkeypatch.delenv("FAL_KEY")
    monkeypatch.delenv("OPENROUTER_API_KEY")
    bought = len(fal.requests) + len(chat.requests)
    (tmp_path / "out" / "cover.png").unlink()  # restorable from the store: still no key needed
    capsys.readouterr()
    assert main(["plan", str(recipe)]) == 0
    assert "restorable" in capsys.readouterr().out
    assert main(["run", str(recipe)]) == 0
    assert (tmp_path / "out" / "cover.png").is_file()
    assert len(fal.requests) + len(chat.requests) == bought


def test_a_frozen_run_needs_no_key(
    tmp_path: Path, wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    # --frozen never pays: the steps it would buy are refused (exit 3), not missing keys (exit 2)
    recipe = write(tmp_path, TWO_PROVIDERS)
    assert main(["run", "--frozen", str(recipe)]) == 3
    assert "is not set" not in capsys.readouterr().err
