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


# a key that is not set and a voice the account lacks, in one recipe
KEY_AND_VOICE = """\
[recipe]
name = "mixed"
output_dir = "out"

[steps.cover]
kind = "text_to_image"
provider = "fal"
model = "flux-schnell"
prompt = "a lighthouse at dawn"
output = "cover.png"

[steps.voice]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Bella"
text = "Hello there."
output = "voice.mp3"
"""

# the README's TIP for each kind of missing thing ("Before anything is paid")
KEY_TIP = (
    "set each key in the environment or in a .env file beside the recipe "
    "(acpbuild init writes a .env.example naming them)"
)
ACCOUNT_TIP = "change the recipe to what the account has, or add it to the account"


def test_estimate_json_says_whether_each_missing_thing_is_a_key_or_the_accounts(
    tmp_path: Path,
    wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the README: `--json` gives each missing thing with its `what`, `kind` and `steps`
    import json

    monkeypatch.setenv("ELEVENLABS_API_KEY", EL_KEY)
    recipe = write(tmp_path, KEY_AND_VOICE)
    assert main(["estimate", str(recipe), "--json"]) == 0
    missing = json.loads(capsys.readouterr().out)["missing"]
    assert all(set(m) == {"what", "kind", "steps"} for m in missing), missing
    by_kind = {m["kind"]: m for m in missing}
    assert set(by_kind) == {"key", "account"}
    assert (by_kind["key"]["what"], by_kind["key"]["steps"]) == ("FAL_KEY is not set (fal)", ["cover"])
    assert by_kind["account"]["what"].startswith("elevenlabs: no voice named 'Bella'")
    assert by_kind["account"]["steps"] == ["voice"]


@pytest.mark.parametrize(
    ("text", "el_key", "tips"),
    [
        (TWO_PROVIDERS, False, [KEY_TIP]),
        (FALLBACK_VOICE, True, [ACCOUNT_TIP]),
        (KEY_AND_VOICE, True, [KEY_TIP, ACCOUNT_TIP]),
    ],
    ids=["keys", "voice", "both"],
)
def test_the_message_has_a_line_per_missing_thing_and_a_tip_for_each_kind(
    tmp_path: Path,
    wire: tuple[FalEmulator, OpenRouterEmulator, ElevenLabsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    el_key: bool,
    tips: list[str],
) -> None:
    # the message as the README shows it: a heading, each missing thing indented with the
    # steps that need it below it, and one TIP line saying what to do about each kind
    if el_key:
        monkeypatch.setenv("ELEVENLABS_API_KEY", EL_KEY)
    recipe = write(tmp_path, text)
    assert main(["run", "--yes", str(recipe)]) == 2
    lines = capsys.readouterr().err.rstrip("\n").split("\n")
    name = text.split('name = "', 1)[1].split('"', 1)[0]
    heading = f"acpbuild: error: a run of {name} needs what is missing here, and stops before paying for anything:"
    assert heading in lines, lines
    body = lines[lines.index(heading) + 1 :]
    assert body[-1] == "  TIP: " + "; ".join(tips)
    things = body[:-1]
    assert len(things) % 2 == 0 and len(things) >= 2, things
    for what, needed in zip(things[::2], things[1::2], strict=True):
        assert what.startswith("  ") and not what.startswith("   "), what
        assert needed.startswith("    needed by "), needed
    if text is KEY_AND_VOICE:
        assert things[:2] == ["  FAL_KEY is not set (fal)", "    needed by cover"]
        assert things[2].startswith("  elevenlabs: no voice named 'Bella'") and things[3] == "    needed by voice"


def test_a_key_any_of_two_variables_may_hold_is_named_by_both_after_a_free_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Google reads GEMINI_API_KEY or GOOGLE_API_KEY: the message names either; a free
    # local step checked first (it needs nothing) does not end the check
    recipe = write(
        tmp_path,
        '[recipe]\nname = "g"\noutput_dir = "out"\n\n'
        '[steps.draft]\nkind = "text"\nprompt = "a lighthouse"\noutput = "draft.txt"\n\n'
        '[steps.script]\nkind = "text"\nprovider = "google"\nmodel = "gemini-2.5-flash"\n'
        'prompt = "One line about ${steps.draft}"\noutput = "script.txt"\n',
    )
    assert main(["plan", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "  GEMINI_API_KEY or GOOGLE_API_KEY is not set (google)\n    needed by script\n" in err
    assert "draft" not in err


# A provider from outside acpbuild whose account check says what it was asked about.
PROBE = '''
from acpbuild.provider import Model, Outcome, Param, Problem, Provider, files


class Probe(Provider):
    name = "probe"
    api_version = "1.0"
    prices = "probe_prices.toml"

    def catalogue(self):
        return {
            "scribe": Model(
                "scribe",
                {"text": "scribe-v1"},
                {
                    "prompt": Param("str", required=True),
                    "notes": Param("list"),
                    "tone": Param("str", default="plain"),
                    "length": Param("int", default=2, kinds=("text",)),
                },
            ),
        }

    def generate(self, job, journal):
        files.replace_file(job.output, job.params["prompt"])
        return Outcome(usage={"requests": 1})

    def lacks(self, kind, model, params):
        return [Problem("prompt", f"asked about {kind} {model.name} with {', '.join(sorted(params))}")]
'''

PROBE_RECIPE = """\
[recipe]
name = "probed"
output_dir = "out"

[steps.one]
kind = "text"
provider = "probe"
model = "scribe"
prompt = "a lighthouse"
notes = ["dawn", {mood = "calm"}]
output = "one.txt"

[steps.two]
kind = "text"
provider = "probe"
model = "scribe"
prompt = "about ${steps.one}"
output = "two.txt"

[steps.three]
kind = "text"
provider = "probe"
model = "scribe"
prompt = "a harbour"
notes = ["dusk", "${steps.one}"]
output = "three.txt"

[steps.four]
kind = "text"
provider = "probe"
model = "scribe"
prompt = "a boat"
notes = [{mood = "${steps.one}"}]
output = "four.txt"
"""


def test_a_providers_account_check_gets_the_kind_model_and_only_the_values_known_before_the_run(
    tmp_path: Path,
) -> None:
    # Provider.lacks: parameters with defaults filled in, as far as they are known before the
    # run (a default for the step's kind only too); a value another step will make (alone, in a
    # list or in a table) is left out
    import os
    import subprocess
    import sys

    (tmp_path / "probe_plugin.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "probe_prices.toml").write_text(
        '[models.scribe]\nunit = "request"\nusd = 0.5\nsource = "the probe price list"\ndate = "2026-12"\n',
        encoding="utf-8",
    )
    (tmp_path / "config.toml").write_text('providers = ["probe_plugin:Probe"]\n', encoding="utf-8")
    recipe = write(tmp_path, PROBE_RECIPE)
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "ACPBUILD_CONFIG": str(tmp_path / "config.toml"),
        "ACPBUILD_STORE": str(tmp_path / ".acpbuild"),
        "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "acpbuild", "plan", str(recipe)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert "  probe: asked about text scribe with length, notes, prompt, tone\n    needed by one\n" in err
    assert "  probe: asked about text scribe with length, prompt, tone\n    needed by three, four\n" in err
    assert "  probe: asked about text scribe with length, tone\n    needed by two\n" in err
    assert "  TIP: change the recipe to what the account has, or add it to the account" in err
