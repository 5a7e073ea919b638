"""`acpbuild models`, `doctor`, `list` and `validate` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acpbuild.cli import main
from tests.emulators.elevenlabs import ElevenLabsEmulator
from tests.emulators.google import KEY as GOOGLE_KEY
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import OpenRouterEmulator

ROOT = Path(__file__).resolve().parent.parent


def test_models_lists_the_catalogue_with_parameters_and_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "fal", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    flux = rows["flux-dev"]
    assert flux["kinds"] == ["text_to_image"]
    assert flux["endpoints"] == {"text_to_image": "fal-ai/flux/dev"}
    assert "landscape_16_9" in flux["params"]["text_to_image"]["image_size"]["choices"]
    assert flux["params"]["text_to_image"]["prompt"]["required"] is True
    assert flux["price"] == "$0.025 per megapixel"
    assert "hailuo-02" in rows and set(rows["hailuo-02"]["kinds"]) == {"text_to_video", "image_to_video"}


def test_models_filters_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--kind", "text_to_speech", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["provider"] for r in rows} == {"local", "elevenlabs"}
    assert all(r["kinds"] == ["text_to_speech"] for r in rows)


def test_models_with_an_unknown_provider_suggests_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "eleven"]) == 2
    assert "did you mean 'elevenlabs'" in capsys.readouterr().err


def test_doctor_names_keys_without_their_values_and_pings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with ElevenLabsEmulator() as el, OpenRouterEmulator() as orr:
        monkeypatch.setenv("ELEVENLABS_API_KEY", el.key)
        monkeypatch.setenv("ACPBUILD_ELEVENLABS_URL", el.url)
        monkeypatch.setenv("OPENROUTER_API_KEY", "test-wrong-key-9999")  # the emulator refuses it
        monkeypatch.setenv("ACPBUILD_OPENROUTER_URL", f"{orr.url}/api/v1")
        monkeypatch.setenv("ACPBUILD_RETRY_BASE_S", "0.01")
        code = main(["doctor", "--ping", "--store", str(tmp_path / "store")])
        out = capsys.readouterr().out
    lines = {line.split()[1] + " " + line.split()[2]: line for line in out.splitlines()}
    assert lines["elevenlabs key"].startswith("ok") and "ELEVENLABS_API_KEY is set" in out
    assert lines["elevenlabs ping"].startswith("ok")
    assert lines["openrouter ping"].startswith("FAIL") and "OPENROUTER_API_KEY" in lines["openrouter ping"]
    assert lines["fal key"].startswith("--") and "FAL_KEY not set" in out
    assert "eSpeak NG" in out and "writable" in out
    assert code == 1  # a refused ping is a failure; a key that is not set is not
    assert el.key not in out and "test-wrong-key-9999" not in out


def test_doctor_pings_googles_vertex_route_on_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the AI Studio key works, the Cloud key Veo would use does not: only --ping can tell
    with GoogleEmulator() as google:
        monkeypatch.setenv("GEMINI_API_KEY", GOOGLE_KEY)
        monkeypatch.setenv("GOOGLE_API_KEY", "test-wrong-cloud-0000")
        monkeypatch.setenv("ACPBUILD_GOOGLE_URL", google.url)
        monkeypatch.setenv("ACPBUILD_RETRY_BASE_S", "0.01")
        code = main(["doctor", "--ping", "--store", str(tmp_path / "store")])
        out = capsys.readouterr().out
        paths = [r.path for r in google.requests]
    lines = {" ".join(line.split()[1:3]): line for line in out.splitlines()}
    assert lines["google ping"].startswith("ok") and "Gemini API: key accepted" in lines["google ping"]
    vertex = next(line for line in out.splitlines() if "google vertex ping" in line)
    assert vertex.startswith("FAIL") and "GOOGLE_API_KEY" in vertex
    assert paths == ["/v1/models", "/v1beta1/publishers/google/models"]
    assert code == 1
    assert "test-wrong-cloud-0000" not in out and GOOGLE_KEY not in out


def test_models_with_an_unknown_kind_suggests_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--kind", "text_to_vidoe"]) == 2
    assert "did you mean 'text_to_video'" in capsys.readouterr().err


def test_models_lists_choices_per_kind_where_they_differ(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "fal", "--json"]) == 0
    veo3 = next(r for r in json.loads(capsys.readouterr().out) if r["model"] == "veo3")
    # each kind's own parameters: no single list of choices fits both
    assert veo3["params"]["text_to_video"]["aspect_ratio"]["choices"] == ["16:9", "9:16"]
    assert veo3["params"]["image_to_video"]["aspect_ratio"]["choices"] == ["auto", "16:9", "9:16"]
    assert main(["models", "--provider", "fal", "--kind", "text_to_video"]) == 0
    text = capsys.readouterr().out
    veo3_text = text[text.index("fal/veo3") :].split("\nfal/")[0]
    assert "aspect_ratio: str  one of 16:9, 9:16\n" in veo3_text
    assert "auto" not in veo3_text


def test_list_shows_steps_in_build_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(ROOT / "recipes" / "quickstart.toml")]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names.index("script") < names.index("narration") < names.index("final")
    assert names.index("cover") < names.index("clip") < names.index("final")


def test_commands_default_to_acpbuild_toml_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 2
    assert "acpbuild.toml" in capsys.readouterr().err
    (tmp_path / "acpbuild.toml").write_text('[steps.hello]\nkind = "text"\nprompt = "hi"\noutput = "hello.txt"\n')
    assert main(["validate"]) == 0
    assert main(["run", "hello"]) == 0
    assert (tmp_path / "out" / "hello.txt").read_text()


@pytest.mark.parametrize("jobs", ["0", "-2", "many"])
def test_a_jobs_count_below_one_is_a_usage_error(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "-j", jobs, str(ROOT / "recipes" / "quickstart.toml")])
    assert exited.value.code == 2
    assert "-j/--jobs" in capsys.readouterr().err
