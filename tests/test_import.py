"""`acpbuild import`: pipelines of the older YAML tool become recipes that load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tomli

import acpbuild
from acpbuild.cli import importer, main
from acpbuild.errors import RecipeError
from tests.conftest import RECIPES


def _import(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, acpbuild.Recipe, str]:
    source = tmp_path / name
    shutil.copyfile(RECIPES / name, source)
    assert main(["import", str(source)]) == 0
    target = source.with_suffix(".toml")
    err = capsys.readouterr().err
    return tomli.loads(target.read_text()), acpbuild.load_recipe(target, env={}), err


def test_first_dialect_makes_flow_explicit_and_keeps_the_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, recipe, err = _import("legacy_steps.yaml", tmp_path, capsys)
    steps = data["steps"]
    # llm -> image -> parallel videos -> add_audio: each takes the one before
    assert steps["text_to_image_1"]["prompt"] == "${steps.text_1}"
    assert steps["image_to_video_1"]["image"] == "${steps.text_to_image_1}"
    assert steps["image_to_video_2"]["image"] == "${steps.text_to_image_1}"
    assert steps["add_audio_1"]["video"] == "${steps.parallel_1}"
    # model names through the catalogue: endpoint id, alias, alias
    assert (steps["text_to_image_1"]["provider"], steps["text_to_image_1"]["model"]) == ("fal", "flux-dev")
    assert steps["image_to_video_1"]["model"] == "hailuo-02" and steps["image_to_video_2"]["model"] == "kling"
    assert steps["image_to_video_1"]["duration_s"] == 6  # duration "6" -> duration_s = 6
    assert "num_images" not in steps["text_to_image_1"]
    assert "[steps[1].params.num_images]: num_images: 1 left out" in err  # left out, but said so
    assert data["groups"]["parallel_1"] == {
        "steps": ["image_to_video_1", "image_to_video_2"],
        "merge": "first_success",
        "output": "parallel_1.mp4",
    }
    assert data["recipe"] == {
        "name": "lighthouse_promo",
        "description": "A script, a picture, two video candidates and a soundtrack",
        "output_dir": "output",
        "jobs": 2,
    }
    # the disabled upscale step is left out, with a note in the recipe and on stderr
    assert "upscale_video_1" not in steps and "topaz" not in {s["model"] for s in steps.values()}
    text = (tmp_path / "legacy_steps.toml").read_text()
    assert text.startswith("# Imported by `acpbuild import` from ")
    assert "enabled: false" in text and "disabled" in err and "temp_dir" in err
    assert recipe.groups["parallel_1"].merge == "first_success"


def test_second_dialect_maps_budget_groups_and_unknown_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, recipe, err = _import("legacy_pipeline.yaml", tmp_path, capsys)
    steps = data["steps"]
    assert data["recipe"]["budget_usd"] == 20.0 and recipe.budget_usd == 20.0
    assert data["recipe"]["output_dir"] == "content_output" and data["recipe"]["name"] == "narrated_kite"
    assert data["recipe"]["jobs"] == 4
    assert data["groups"]["parallel_1"] == {"steps": ["text_to_speech_1", "text_to_speech_2"], "merge": "collect_all"}
    # both voices take the script; the mux after takes the picture's clip and a voice
    assert steps["text_to_speech_1"]["text"] == "${steps.text_1}"
    assert steps["text_to_speech_2"]["text"] == "${steps.text_1}"
    assert steps["text_to_speech_1"]["voice"] == "Rachel"  # voice_id -> voice
    assert steps["text_to_speech_2"]["model"] == "eleven_turbo_v2_5"
    assert steps["image_to_video_1"]["image"] == "${steps.text_to_image_1}"
    assert steps["image_to_video_1"]["duration_s"] == 8
    assert steps["mux_1"] == {
        "kind": "mux",
        "provider": "local",
        "model": "ffmpeg",
        "video": "${steps.image_to_video_1}",
        "audio": "${steps.text_to_speech_1}",
        "output": "final.mp4",
    }
    assert steps["text_to_image_1"]["image_size"] == "landscape_16_9"  # 1920x1080
    assert steps["text_1"]["output"] == "script.txt"
    # a parameter the model does not take is kept, commented out, and reported
    text = (tmp_path / "legacy_pipeline.toml").read_text()
    assert '# emotion = "calm"  # not imported' in text
    assert "emotion" in err and "collects all its members" in err
    assert set(recipe.steps) == {"text_1", "text_to_speech_1", "text_to_speech_2", "text_to_image_1", "image_to_video_1", "mux_1"}


@pytest.mark.parametrize(
    ("given", "kind", "expected"),
    [
        ("flux-dev", "text_to_image", ("fal", "flux-dev")),  # the exact key
        ("fal-ai/flux/dev", "text_to_image", ("fal", "flux-dev")),  # fal's endpoint id
        ("flux_dev", "text_to_image", ("fal", "flux-dev")),  # normalised
        ("hailuo", "image_to_video", ("fal", "hailuo-02")),  # an alias of the older tool
        ("kling-2.1", "text_to_video", ("fal", "kling")),
        ("veo3", "image_to_video", ("fal", "veo3")),
        ("eleven_multilingual_v2", "text_to_speech", ("elevenlabs", "eleven_multilingual_v2")),
        ("elevenlabs", "text_to_speech", ("elevenlabs", "eleven_multilingual_v2")),
        ("gemini-2.5-flash", "text", ("google", "gemini-2.5-flash")),
        ("google/gemini-2.5-flash", "text", ("openrouter", "google/gemini-2.5-flash")),
        ("Gemini_2.5_Flash", "image_understanding", ("google", "gemini-2.5-flash")),
        ("local", "text_to_speech", ("local", "espeak")),
    ],
)
def test_model_names_map_to_the_catalogue(given: str, kind: str, expected: tuple[str, str]) -> None:
    conv = importer._Converter("p.yaml", {}, None, None)
    provider, model = conv.model(kind, given, ("steps", 0, "model"), {})
    assert (provider, model.name) == expected


def _convert(yaml_text: str) -> importer.Imported:
    data, lines = importer.parse(yaml_text, "p.yaml")
    return importer.convert(data, source="p.yaml", lines=lines)


@pytest.mark.parametrize(
    ("given", "kind", "suggested"),
    [
        ("flux-deev", "text_to_image", "fal/flux-dev"),  # a misspelling: the closest spelling
        ("veo-3.1", "text_to_video", "google/veo-3.1-generate-001"),  # a prefix beats the closer fal/veo3
        ("Veo 3.1 Fast", "image_to_video", "google/veo-3.1-fast-generate-001"),  # case and punctuation ignored
        ("claude-sonnet", "text", "openrouter/anthropic/claude-sonnet-4.5"),  # contained in the name
    ],
)
def test_an_unknown_model_names_the_nearest_one(given: str, kind: str, suggested: str) -> None:
    with pytest.raises(RecipeError) as exc:
        _convert(f"steps:\n  - type: {kind}\n    model: {given}\n    params: {{prompt: a, image: a.png}}\n")
    assert exc.value.line == 3 and exc.value.table == "steps[0].model"
    assert f"unknown model {given!r}" in str(exc.value) and f"did you mean {suggested!r}?" in str(exc.value)


def test_an_endpoint_id_for_another_kind_names_its_model() -> None:
    with pytest.raises(RecipeError) as exc:
        _convert("steps:\n  - {type: image_to_video, model: fal-ai/flux/dev, params: {image: a.png, prompt: a}}\n")
    assert "model 'fal-ai/flux/dev' (fal/flux-dev) does not make image_to_video" in str(exc.value)


_SCRIPT = "  - {type: llm, model: local, params: {prompt: a red kite}}\n"
_VOICE = "  - {type: tts, model: espeak}\n"
_PICTURE = "  - {type: text_to_image, model: pillow, params: {prompt: a kite}}\n"


@pytest.mark.parametrize(
    ("yaml_text", "step", "expected", "warned"),
    [
        # the step right before makes text: taken from it, nothing to say
        ("steps:\n" + _SCRIPT + _VOICE, "text_to_speech_1", "${steps.text_1}", None),
        # the first step takes the pipeline's prompt, as the older tool fed it
        ("prompt: a kite\nsteps:\n  - {type: llm, model: local}\n", "text_1", "${prompt}", None),
        # text skips over a step that makes other media, as media inputs do, and says so
        ("steps:\n" + _SCRIPT + _VOICE + "  - {type: text_to_image, model: flux-dev}\n",
         "text_to_image_1", "${steps.text_1}", "prompt taken from 'text_1', the latest earlier step that makes text (the step before, 'text_to_speech_1', makes audio)"),
        # ... even when there is a top-level prompt: the script, not ${prompt}
        ("prompt: a kite\nsteps:\n" + _SCRIPT + _VOICE + "  - {type: text_to_image, model: flux-dev}\n",
         "text_to_image_1", "${steps.text_1}", "latest earlier step that makes text"),
        # ... and into a model whose prompt is optional
        ("prompt: a kite\nsteps:\n" + _SCRIPT + _VOICE + "  - {type: text_to_image, model: pillow}\n",
         "text_to_image_1", "${steps.text_1}", "latest earlier step that makes text"),
        # ... and into every member of a group
        ("steps:\n" + _SCRIPT + _VOICE + "  - type: parallel_group\n    params:\n      parallel_steps:\n"
         "        - {type: text_to_image, model: flux-dev}\n        - {type: text_to_image, model: pillow}\n",
         "text_to_image_2", "${steps.text_1}", "[steps[2].params.parallel_steps[1]]: prompt taken from 'text_1'"),
        # no step makes text: a later step takes the top-level prompt, and says so
        ("prompt: a kite\nsteps:\n" + _PICTURE + "  - {type: image_to_video, model: hailuo}\n",
         "image_to_video_1", "${prompt}", "prompt taken from the pipeline's top-level prompt, as no earlier step makes text"),
        # an optional text input nothing can fill is left unset, and said so
        ("steps:\n" + _PICTURE + "  - {type: image_to_video, model: kenburns}\n",
         "image_to_video_1", None, "[steps[1]]: prompt left unset"),
    ],
)
def test_text_flows_from_the_latest_earlier_text(
    yaml_text: str, step: str, expected: str | None, warned: str | None, tmp_path: Path
) -> None:
    imported = _convert(yaml_text)
    assert tomli.loads(imported.text)["steps"][step].get("text" if "speech" in step else "prompt") == expected
    if warned is None:
        assert not imported.warnings
    else:
        assert any(warned in w for w in imported.warnings), imported.warnings
    path = tmp_path / "r.toml"
    path.write_text(imported.text)
    importer.check(imported, path)  # and the recipe loads


@pytest.mark.parametrize(
    ("yaml_text", "line", "says"),
    [
        # bad YAML: the line of the problem
        ("steps:\n  - type: llm\n    params: {prompt: [unclosed\n", 4, "invalid YAML"),
        # a type with no kind lists the ones that import
        ("steps:\n  - type: speech_to_text\n    model: x\n", 2, "types that import"),
        # more than one image per step cannot be one file
        ("steps:\n  - type: text_to_image\n    model: flux_dev\n    params: {prompt: a, num_images: 3}\n", 4, "one acpbuild step makes one file"),
        # an unknown merge strategy
        ("steps:\n  - type: parallel_group\n    params:\n      merge_strategy: vote\n      parallel_steps: [{type: llm, model: local}]\n", 4, "unknown merge_strategy"),
        # a model that exists, for another kind
        ("steps:\n  - type: image_to_video\n    model: flux-dev\n    params: {image: a.png, prompt: a}\n", 3, "does not make image_to_video"),
        # a URL input
        ("steps:\n  - type: image_to_video\n    model: hailuo\n    params: {image_url: 'https://x/a.png', prompt: a}\n", 4, "download it"),
        # a model that needs text, with no text before it and no top-level prompt
        ("steps:\n  - {type: text_to_image, model: pillow, params: {prompt: a}}\n  - {type: image_to_video, model: hailuo}\n", 3,
         "needs 'prompt', but no earlier step makes text and the pipeline has no top-level prompt"),
        # an image_to_video with nothing before it to take an image from
        ("steps:\n  - type: image_to_video\n    model: hailuo\n    params: {prompt: a}\n", 2, "no earlier step makes one"),
        # group members of different media
        ("steps:\n  - type: parallel_group\n    params:\n      parallel_steps:\n        - {type: llm, model: local, params: {prompt: a}}\n        - {type: text_to_image, model: local}\n", 6, "but the group's first member makes text"),
    ],
)
def test_errors_name_the_yaml_line_and_what_to_fix(yaml_text: str, line: int, says: str) -> None:
    with pytest.raises(RecipeError) as exc:
        _convert(yaml_text)
    assert exc.value.line == line and exc.value.file == "p.yaml"
    assert says in str(exc.value)


def test_strings_are_escaped_for_toml_and_interpolation(tmp_path: Path) -> None:
    yaml_text = 'name: q\nprompt: "say \\"hi\\" \\\\ ${not_a_var}\\nbye"\nsteps:\n  - {type: llm, model: local}\n'
    imported = _convert(yaml_text)
    path = tmp_path / "q.toml"
    path.write_text(imported.text)
    recipe = acpbuild.load_recipe(path, env={})
    assert recipe.vars["prompt"] == 'say "hi" \\ $${not_a_var}\nbye'


def test_import_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.yaml"
    source.write_text("steps:\n  - {type: llm, model: local, params: {prompt: hi}}\n")
    target = tmp_path / "out" / "r.toml"
    assert main(["import", str(source), "-o", str(target)]) == 0
    assert main(["import", str(source), "-o", str(target)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["import", str(source), "-o", str(target), "--force"]) == 0


def test_bad_yaml_from_the_command_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text("steps:\n  - type: llm\n   model: local\n")
    assert main(["import", str(source)]) == 2
    assert f"{source}:3" in capsys.readouterr().err
    assert not (tmp_path / "bad.toml").exists()


def test_input_files_are_rebased_onto_the_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "media").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "media" / "in.png")
    source = tmp_path / "p.yaml"
    source.write_text("steps:\n  - {type: image_to_video, model: kenburns, params: {input_image: media/in.png}}\n")
    target = tmp_path / "recipes" / "r.toml"
    assert main(["import", str(source), "-o", str(target)]) == 0
    assert tomli.loads(target.read_text())["steps"]["image_to_video_1"]["image"] == "../media/in.png"


@pytest.mark.slow
def test_an_imported_local_pipeline_runs_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, recipe, _ = _import("legacy_local.yaml", tmp_path, capsys)
    assert recipe.groups["parallel_1"].merge == "best_quality"
    result = acpbuild.run(tmp_path / "legacy_local.toml", env={})
    failures = [(s.name, s.error) for s in result.steps.values() if s.error]
    assert result.exit_code == 0, (failures, result.errors)
    assert (tmp_path / "out" / "mux_1.mp4").stat().st_size > 0
    assert (tmp_path / "out" / "parallel_1.mp4").is_file()


@pytest.mark.parametrize(
    ("parallel", "jobs"),
    [
        (False, 1),  # parallel_enabled: false wins over the group's max_workers
        (True, 3),  # parallel as before: the group's max_workers
    ],
)
def test_parallel_enabled_false_runs_one_step_at_a_time(parallel: bool, jobs: int) -> None:
    imported = _convert(
        f"global_config: {{parallel_enabled: {str(parallel).lower()}}}\nsteps:\n"
        "  - step_type: parallel_group\n    parallel_config: {max_workers: 3}\n"
        "    steps: [{step_type: llm, config: {model: local, prompt: a}}, {step_type: llm, config: {model: local, prompt: b}}]\n"
    )
    assert tomli.loads(imported.text)["recipe"]["jobs"] == jobs


_MUX = "  - {type: text_to_video, model: titlecard}\n  - {type: tts, model: espeak, params: {text: b}}\n"


@pytest.mark.parametrize(
    ("steps", "step", "written", "reason"),
    [
        # out of range
        ("  - {type: tts, model: espeak, params: {speed: 1000}}\n", "text_to_speech_1", "speed = 1000", "speed for local/espeak: "),
        # the wrong type
        ("  - {type: tts, model: espeak, params: {pitch: high}}\n", "text_to_speech_1", 'pitch = "high"', "pitch for local/espeak: "),
        # not among the model's choices
        (_MUX + "  - {type: mux, model: ffmpeg, params: {fit: middle}}\n", "mux_1", 'fit = "middle"', "fit for local/ffmpeg: "),
    ],
)
def test_a_refused_value_is_written_commented_out(
    steps: str, step: str, written: str, reason: str, tmp_path: Path
) -> None:
    imported = _convert("prompt: hi\nsteps:\n" + steps)
    assert f"\n# {written}  # not imported: {reason}" in imported.text  # kept, with the reason
    key = written.split(" = ")[0]
    assert any(f".params.{key}]: {reason}" in w and "written commented out" in w for w in imported.warnings)
    path = tmp_path / "r.toml"
    path.write_text(imported.text)
    assert key not in acpbuild.load_recipe(path, env={}).steps[step].params


def test_a_recipe_that_would_not_load_is_not_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # converts step by step, but the written recipe fails to load: an mp3 format into a .wav file
    source = tmp_path / "p.yaml"
    source.write_text(
        "steps:\n  - {type: llm, model: local, params: {prompt: hi}}\n"
        "  - type: tts\n    model: elevenlabs\n    params: {output_format: mp3_44100_128}\n"
        "    output_filename: voice.wav\n"
    )
    assert main(["import", str(source)]) == 2
    err = capsys.readouterr().err
    assert f"{source}:3 [steps[1]]: does not convert: " in err and "output_format" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]  # no recipe, no temporary file
