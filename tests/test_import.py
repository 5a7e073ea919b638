"""`acpbuild import`: pipelines of the older YAML tool become recipes that load and do what they did."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli
import yaml

import acpbuild
from acpbuild.cli import import_models, importer, main
from acpbuild.errors import RecipeError
from acpbuild.provider import Job
from acpbuild.providers.local import LocalProvider
from tests.conftest import RECIPES
from tests.emulators import elevenlabs as el_emulator
from tests.emulators.elevenlabs import ElevenLabsEmulator
from tests.emulators.fal import FalEmulator
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import OpenRouterEmulator
from tests.test_mixed_providers import _Journal, _local_media, emulator_env


def _import(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, acpbuild.Recipe, str]:
    source = tmp_path / name
    shutil.copyfile(RECIPES / name, source)
    assert main(["import", str(source)]) == 0
    target = source.with_suffix(".toml")
    err = capsys.readouterr().err
    return tomli.loads(target.read_text()), acpbuild.load_recipe(target, env={}), err


def _convert(yaml_text: str, file: str = "p.yaml") -> importer.Imported:
    data, lines = importer.parse(yaml_text, file)
    return importer.convert(data, source=file, lines=lines)


def _loads(imported: importer.Imported, tmp_path: Path) -> acpbuild.Recipe:
    """The converted recipe, checked as `acpbuild import` checks it, then loaded."""
    path = tmp_path / "r.toml"
    importer.check(imported, path)
    for missing in imported.missing:  # the inputs the notes ask for, put there
        (tmp_path / missing).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / missing).touch()
    return acpbuild.load_recipe(path, env={})


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
    # the disabled upscale step is kept, commented out, and said so
    assert "upscale_video_1" not in steps and "topaz" not in {s["model"] for s in steps.values()}
    text = (tmp_path / "legacy_steps.toml").read_text()
    assert text.startswith("# Imported by `acpbuild import` from ")
    assert '# [steps.upscale_video_1]\n# # from steps[3]: upscale_video, model \'topaz\'\n# kind = "upscale_video"' in text
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
    # the disabled imagen step keeps its name, text_to_image_1, in a comment
    assert steps["image_to_video_1"]["image"] == "${steps.text_to_image_2}"
    assert steps["image_to_video_1"]["duration_s"] == 8
    assert steps["mux_1"] == {
        "kind": "mux",
        "provider": "local",
        "model": "ffmpeg",
        "video": "${steps.image_to_video_1}",
        "audio": "${steps.text_to_speech_1}",
        "output": "final.mp4",
    }
    assert steps["text_to_image_2"]["image_size"] == "landscape_16_9"  # 1920x1080
    assert steps["text_1"]["output"] == "script.txt"
    # a parameter the model does not take is kept, commented out, and reported
    text = (tmp_path / "legacy_pipeline.toml").read_text()
    assert '# emotion = "calm"  # not imported' in text
    assert "emotion" in err and "collects all its members" in err
    assert set(recipe.steps) == {"text_1", "text_to_speech_1", "text_to_speech_2", "text_to_image_2", "image_to_video_1", "mux_1"}


# -- model names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kind", "expected"),
    [
        ("flux-dev", "text_to_image", ("fal", "flux-dev")),  # the exact key
        ("fal-ai/flux/dev", "text_to_image", ("fal", "flux-dev")),  # fal's endpoint id
        ("flux_dev", "text_to_image", ("fal", "flux-dev")),  # normalised
        ("hailuo", "image_to_video", ("fal", "hailuo-02")),  # an alias of the older tool
        ("minimax-hailuo", "image_to_video", ("fal", "hailuo-02")),
        ("kling-2.1", "text_to_video", ("fal", "kling")),
        ("veo3", "image_to_video", ("fal", "veo3")),
        ("veo3_fast", "text_to_video", ("google", "veo-3.0-fast-generate-001")),
        ("eleven_multilingual_v2", "text_to_speech", ("elevenlabs", "eleven_multilingual_v2")),
        ("elevenlabs", "text_to_speech", ("elevenlabs", "eleven_multilingual_v2")),
        ("elevenlabs_v3", "text_to_speech", ("elevenlabs", "eleven_v3")),
        ("gemini-2.5-flash", "text", ("google", "gemini-2.5-flash")),
        ("google/gemini-2.5-flash", "text", ("openrouter", "google/gemini-2.5-flash")),
        # a provider/model label, as the import's own notes name models
        ("openrouter/google/gemini-2.5-flash", "text", ("openrouter", "google/gemini-2.5-flash")),
        ("google/gemini-2.5-flash-lite", "image_understanding", ("google", "gemini-2.5-flash-lite")),
        ("Gemini_2.5_Flash", "image_understanding", ("google", "gemini-2.5-flash")),
        ("local", "text_to_speech", ("local", "espeak")),
        ("video_tools", "subtitles", ("local", "captions")),
    ],
)
def test_model_names_map_to_the_catalogue(given: str, kind: str, expected: tuple[str, str]) -> None:
    chosen = import_models.pick(kind, given)
    assert (chosen.provider, chosen.model.name) == expected and chosen.substitute is None


@pytest.mark.parametrize(
    ("given", "kind", "substitute", "says"),
    [
        # the three names that stopped real pipelines: documented models acpbuild does not serve
        ("eleven_monolingual_v1", "text_to_speech", "elevenlabs/eleven_multilingual_v2", "retired"),
        ("minimax-hailuo-pro", "image_to_video", "fal/hailuo-02", "not Pro"),
        ("hailuo_pro", "text_to_video", "fal/hailuo-02", "not Pro"),
        ("eleven_turbo_v2", "text_to_speech", "elevenlabs/eleven_turbo_v2_5", "replaces"),
        ("photon_flash", "image_to_image", "fal/flux-kontext", "Luma Photon"),
        ("thinksound", "add_audio", "fal/mmaudio", "ThinkSound"),
        ("dalle3", "text_to_image", "fal/imagen4", "OpenAI"),
        # unknown names: the closest of the kind by name (a prefix beats a closer spelling) ...
        ("flux-deev", "text_to_image", "fal/flux-dev", "closest text_to_image model by name"),
        ("veo-3.1", "text_to_video", "google/veo-3.1-generate-001", "closest"),
        ("Veo 3.1 Fast", "image_to_video", "google/veo-3.1-fast-generate-001", "closest"),
        ("claude-sonnet", "text", "openrouter/anthropic/claude-sonnet-4.5", "closest"),
        # ... else the kind's default
        ("zzzz-unheard-of", "text_to_speech", "elevenlabs/eleven_multilingual_v2", "default text_to_speech model"),
        # a model of another kind
        ("fal-ai/flux/dev", "image_to_video", "fal/hailuo-02", "fal/flux-dev does not make image_to_video"),
    ],
)
def test_a_name_acpbuild_does_not_serve_gets_a_substitute_that_round_trips(
    given: str, kind: str, substitute: str, says: str, tmp_path: Path
) -> None:
    chosen = import_models.pick(kind, given)
    assert chosen.label == substitute and says in str(chosen.substitute)
    # the label the import names is one it accepts, as that very model
    again = import_models.pick(kind, chosen.label)
    assert (again.label, again.substitute) == (substitute, None)
    # and a pipeline naming it imports, with the original in a comment and a warning
    params = "{prompt: a, image: a.png, video: v.mp4, text: hi}"
    imported = _convert(f"steps:\n  - type: {kind}\n    model: {given}\n    params: {params}\n")
    assert f"# model: the pipeline's {given!r}; " in imported.text
    (warning,) = [w for w in imported.warnings if "became" in w]
    assert warning.startswith("p.yaml:3 [steps[0].model]: ") and substitute in warning


# The older tool's step table (OLDER-TOOL.md): every step type with every model key.
_TABLE = {
    "text_to_image": ["flux_dev", "flux_schnell", "imagen4", "seedream_v3", "seedream3", "gen4", "dalle3", "stable_diffusion"],
    "image_understanding": ["gemini_describe", "gemini_detailed", "gemini_classify", "gemini_objects", "gemini_ocr", "gemini_composition", "gemini_qa"],
    "prompt_generation": ["openrouter_video_prompt", "openrouter_video_cinematic", "openrouter_video_realistic", "openrouter_video_artistic", "openrouter_video_dramatic"],
    "image_to_image": ["photon_flash", "photon_base", "flux_kontext", "flux_kontext_multi", "seededit_v3", "clarity_upscaler"],
    "image_to_video": ["hailuo", "kling", "veo3", "veo3_fast", "veo2"],
    "text_to_video": ["hailuo_pro", "veo3", "veo3_fast"],
    "avatar": ["ai_avatar", "ai_avatar_single_text", "ai_avatar_multi"],
    "text_to_speech": ["elevenlabs", "elevenlabs_turbo", "elevenlabs_v3"],
    "add_audio": ["thinksound"],
    "upscale_video": ["topaz"],
    "generate_subtitles": ["video_tools"],
    "replicate_multitalk": ["multitalk"],
    # the first dialect's documentation
    "concat_videos": ["ffmpeg"],
}
_DOCUMENTED = [
    ("text_to_image", ["flux-dev", "flux-schnell", "imagen4"]),
    ("image_to_video", ["minimax-hailuo-pro", "minimax-hailuo", "kling", "veo3", "veo3-fast"]),
    ("text_to_speech", [
        "eleven_monolingual_v1", "eleven_multilingual_v1", "eleven_multilingual_v2", "eleven_turbo_v2",
        "eleven_turbo_v2_5", "eleven_flash_v2", "eleven_flash_v2_5", "eleven_v3",
    ]),
]  # fmt: skip
# a step before each, so every input a type takes has something to come from
_BEFORE = "prompt: a lighthouse\nsteps:\n  - {type: text_to_image, model: flux_dev}\n  - {type: image_to_video, model: hailuo}\n  - {type: tts, model: elevenlabs}\n"


@pytest.mark.parametrize(
    ("type_", "model"),
    [(t, m) for t, models in _TABLE.items() for m in models] + [(t, m) for t, models in _DOCUMENTED for m in models],
)
def test_every_step_type_and_model_of_the_older_tool_imports(type_: str, model: str, tmp_path: Path) -> None:
    imported = _convert(_BEFORE + f"  - {{type: {type_}, model: {model}, params: {{first_audio: a.mp3, second_audio: b.mp3}}}}\n")
    assert not any("not imported: acpbuild has no" in w or "no kind" in w for w in imported.warnings)
    recipe = _loads(imported, tmp_path)
    last = list(recipe.steps.values())[-1]
    assert last.provider != "local" or type_ in ("generate_subtitles", "concat_videos")


_VOICES = ["rachel", "drew", "clyde", "paul", "domi", "dave", "fin", "bella", "antoni", "thomas", "charlie", "emily", "elli", "callum", "patrick", "harry", "liam", "dorothy", "josh", "arnold", "charlotte", "matilda", "james", "joseph", "jeremy", "michael", "ethan", "gigi", "freya", "grace", "daniel", "serena", "adam", "nicole", "jessie", "ryan", "sam", "glinda", "giovanni", "mimi"]


@pytest.mark.parametrize("voice", _VOICES)
def test_every_premade_voice_of_the_older_tool_imports(voice: str) -> None:
    imported = _convert(f"prompt: hi\nsteps:\n  - {{type: text_to_speech, model: elevenlabs, params: {{voice: {voice}}}}}\n")
    written = tomli.loads(imported.text)["steps"]["text_to_speech_1"]["voice"]
    # the name as ElevenLabs lists it; Bella by her id, as ElevenLabs now calls her Sarah
    assert written == ("EXAVITQu4vr4xnSDxMaL" if voice == "bella" else voice.title())
    assert not imported.warnings


# -- what a converted pipeline does -------------------------------------------------


def test_fixed_texts_stay_fixed(tmp_path: Path) -> None:
    imported = _convert(
        "prompt: a beach\nsteps:\n"
        "  - {type: llm, model: openrouter/google/gemini-2.5-flash}\n"
        "  - type: parallel_group\n    params:\n      parallel_steps:\n"
        '        - {type: text_to_speech, model: elevenlabs, params: {voice: rachel, text_override: "Sunset on the shore."}}\n'
        '        - {type: text_to_speech, model: elevenlabs_turbo, params: {voice: adam, text: ignored, text_override: "Sunset on the shore."}}\n'
        '  - {type: generate_subtitles, model: video_tools, params: {subtitle_text: "Sunset on the shore, at last.", format: vtt, words_per_second: 2.5}}\n'
    )
    recipe = _loads(imported, tmp_path)
    # both voices read the fixed line, not the LLM's text
    assert recipe.steps["text_to_speech_1"].params["text"] == "Sunset on the shore."
    assert recipe.steps["text_to_speech_2"].params["text"] == "Sunset on the shore."
    # the subtitles too, timed as the older tool timed them: 6 words at 2.5 a second
    subtitles = recipe.steps["subtitles_1"]
    assert subtitles.params["text"] == "Sunset on the shore, at last." and subtitles.params["duration_s"] == 2.4
    assert subtitles.output == "subtitles_1.vtt"
    assert "the fixed text_override wins" in imported.text


def test_prompt_generation_writes_the_prompt_the_next_video_uses(tmp_path: Path) -> None:
    imported = _convert(
        "prompt: a kite over the hills\nsteps:\n"
        "  - {type: text_to_image, model: flux_dev}\n"
        "  - type: prompt_generation\n    model: openrouter_video_cinematic\n"
        "    params: {background_context: a windy afternoon, video_style: slow, duration_preference: short}\n"
        "  - {type: image_to_video, model: hailuo}\n"
    )
    steps = tomli.loads(imported.text)["steps"]
    generated = steps["video_prompt_1"]
    # an LLM step that reads the image, its prompt carrying the preset and every wish
    assert (generated["kind"], generated["provider"], generated["model"]) == ("image_understanding", "openrouter", "google/gemini-2.5-flash")
    assert generated["image"] == "${steps.text_to_image_1}"
    for wanted in ("cinematic", "Video style: slow", "Length: short", "Background: a windy afternoon", "The idea: ${prompt}"):
        assert wanted in generated["prompt"]
    # the video takes the picture and the generated prompt
    assert steps["image_to_video_1"]["image"] == "${steps.text_to_image_1}"
    assert steps["image_to_video_1"]["prompt"] == "${steps.video_prompt_1}"
    assert not any("prompt taken" in w for w in imported.warnings)  # the documented flow: nothing to warn
    _loads(imported, tmp_path)


def test_prompt_generation_without_an_image_is_a_text_step() -> None:
    steps = tomli.loads(_convert("prompt: a kite\nsteps:\n  - {type: prompt_generation, model: openrouter_video_dramatic}\n").text)["steps"]
    assert steps["video_prompt_1"]["kind"] == "text" and "dramatic" in steps["video_prompt_1"]["prompt"]


def test_image_understanding_presets_become_the_prompt() -> None:
    steps = tomli.loads(
        _convert(
            "input_image: in.png\nsteps:\n  - {type: image_understanding, model: gemini_ocr}\n"
            "  - {type: image_understanding, model: gemini_qa, params: {question: 'How many birds?'}}\n"
        ).text
    )["steps"]
    assert steps["image_understanding_1"]["prompt"].startswith("Read out all the text")
    assert steps["image_understanding_2"]["prompt"] == "Answer this question about the image: How many birds?"
    assert steps["image_understanding_1"]["image"] == "in.png"  # the pipeline's input_image


def test_an_avatar_that_speaks_a_text_gets_a_speech_step(tmp_path: Path) -> None:
    imported = _convert(
        "input_image: face.png\nsteps:\n"
        "  - {type: avatar, model: ai_avatar_single_text, params: {text: Hello there, voice: bella}}\n"
    )
    steps = tomli.loads(imported.text)["steps"]
    assert steps["avatar_1_speech"]["text"] == "Hello there"
    assert steps["avatar_1_speech"]["voice"] == "EXAVITQu4vr4xnSDxMaL"  # bella, since renamed by ElevenLabs
    assert steps["avatar_1"]["audio"] == "${steps.avatar_1_speech}" and steps["avatar_1"]["model"] == "kling-avatar"


def test_disabled_steps_are_kept_commented_out_and_load_when_uncommented(tmp_path: Path) -> None:
    imported = _convert(
        "prompt: a kite\nsteps:\n  - {type: llm, model: local}\n"
        "  - {type: tts, model: elevenlabs_v3, enabled: false, params: {voice: rachel}}\n"
        "  - type: parallel_group\n    enabled: false\n    params:\n      parallel_steps:\n"
        "        - {type: text_to_image, model: flux_dev}\n        - {type: text_to_image, model: imagen4}\n"
        "  - {type: tts, model: espeak}\n"
    )
    recipe = _loads(imported, tmp_path)
    assert set(recipe.steps) == {"text_1", "text_to_speech_2"}
    assert tomli.loads(imported.text)["steps"]["text_to_speech_2"]["text"] == "${steps.text_1}"
    # each commented-out block follows its reason, up to a blank line: uncomment those
    blocks = [part.split("\n", 1)[1] for part in imported.text.split("\n\n") if "has enabled: false" in part.split("\n", 1)[0]]
    uncommented = "\n".join(line.removeprefix("# ") for block in blocks for line in block.splitlines())
    data = tomli.loads(uncommented)
    assert data["steps"]["text_to_speech_1"]["model"] == "eleven_v3"
    assert data["groups"]["parallel_1"] == {"steps": ["text_to_image_1", "text_to_image_2"], "merge": "collect_all"}


def test_retry_count_is_explained_in_a_comment() -> None:
    imported = _convert("steps:\n  - {type: llm, model: local, retry_count: 3, params: {prompt: hi}}\n")
    assert "\n# retry_count = 3  # not imported: the older tool never read it; acpbuild retries" in imported.text
    assert "retry_count" not in tomli.loads(imported.text)["steps"]["text_1"]


def test_warnings_come_grouped_changes_of_meaning_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.yaml"
    source.write_text(
        "temp_dir: t\nsteps:\n  - {type: llm, model: local, params: {prompt: hi, num_outputs: 1}}\n"
        "  - {type: tts, model: eleven_monolingual_v1}\n"
    )
    assert main(["import", str(source)]) == 0
    err = capsys.readouterr().err.splitlines()
    meaning, cosmetic = err.index(f"acpbuild: {importer.MEANING}"), err.index(f"acpbuild: {importer.COSMETIC}")
    assert meaning < cosmetic
    assert "eleven_monolingual_v1" in "".join(err[meaning:cosmetic])
    assert "num_outputs" in "".join(err[cosmetic:]) and "temp_dir (line 1" in "".join(err[cosmetic:])
    text = (tmp_path / "p.toml").read_text()
    assert text.index(importer.MEANING) < text.index("eleven_monolingual_v1") < text.index(importer.COSMETIC)


# -- flow ----------------------------------------------------------------------------

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
        # an optional prompt of a step whose input is media is left unset, and said so
        ("steps:\n" + _PICTURE + "  - {type: image_to_video, model: kenburns}\n",
         "image_to_video_1", None, "[steps[1]]: prompt left unset"),
        # input_from names the step an input comes from; {{step_N.output}} a text
        ("steps:\n" + _SCRIPT + "  - {type: llm, model: local, params: {prompt: other}}\n"
         "  - {type: tts, model: espeak, input_from: step_1}\n", "text_to_speech_1", "${steps.text_1}", None),
        ("steps:\n" + _SCRIPT + _PICTURE + "  - {type: llm, model: local, params: {prompt: 'Shorter: {{step_1.output}}'}}\n",
         "text_2", "Shorter: ${steps.text_1}", None),
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
    _loads(imported, tmp_path)  # and the recipe loads


# -- nothing stops an import but a file that is not a pipeline ------------------------


@pytest.mark.parametrize(
    ("yaml_text", "line", "says"),
    [
        # a type with no kind is kept as a comment; the next step takes the one before it
        ("steps:\n  - {type: llm, model: local, params: {prompt: a}}\n  - type: speech_to_text\n    model: x\n  - {type: tts, model: espeak}\n",
         3, "step type 'speech_to_text' not imported: acpbuild has no speech-to-text kind"),
        ("steps:\n  - {type: llm, model: local, params: {prompt: a}}\n  - {type: hologram, model: x}\n", 3, "no kind for the step type 'hologram'"),
        # more than one image per step makes one
        ("steps:\n  - type: text_to_image\n    model: flux_dev\n    params: {prompt: a, num_images: 3}\n", 4, "so this makes one"),
        # an unknown merge strategy collects all
        ("steps:\n  - type: parallel_group\n    params:\n      merge_strategy: vote\n      parallel_steps: [{type: llm, model: local, params: {prompt: a}}]\n",
         4, "imported as collect_all"),
        # a URL input: download it there
        ("steps:\n  - type: image_to_video\n    model: hailuo\n    params: {image_url: 'https://example.invalid/a.png', prompt: a}\n",
         4, "download it to 'inputs/a.png'"),
        # a model that needs text, with no text before it and no top-level prompt: a placeholder
        ("steps:\n  - {type: text_to_image, model: pillow, params: {prompt: a}}\n  - {type: image_to_video, model: hailuo}\n", 3,
         "a placeholder in [vars]; write the prompt there"),
        # an image_to_video with nothing before it to take an image from
        ("steps:\n  - type: image_to_video\n    model: hailuo\n    params: {prompt: a}\n", 2, "put one there before running"),
        # group members of different media become separate steps
        ("steps:\n  - type: parallel_group\n    params:\n      parallel_steps:\n        - {type: llm, model: local, params: {prompt: a}}\n        - {type: text_to_image, model: local}\n",
         2, "imported as separate steps"),
        # best_quality cannot score text
        ("steps:\n  - type: parallel_group\n    params:\n      merge_strategy: best\n      parallel_steps: [{type: llm, model: local, params: {prompt: a}}]\n",
         4, "imported as first_success"),
        # a parallel group inside a parallel group joins it
        (("steps:\n  - type: parallel_group\n    params:\n      parallel_steps:\n        - {type: llm, model: local, params: {prompt: a}}\n"
         "        - {type: parallel_group, params: {parallel_steps: [{type: llm, model: local, params: {prompt: b}}]}}\n"), 6, "its members join the outer group"),
        # two steps writing one file: the second is renamed
        (("steps:\n  - {type: llm, model: local, params: {prompt: b, output_file: a.txt}}\n"
         "  - {type: llm, model: local, params: {prompt: c, output_file: a.txt}}\n"), 3, "this one writes 'a_2.txt'"),
        # a value the loader refuses: an mp3 format into a .wav file
        (("steps:\n  - {type: llm, model: local, params: {prompt: hi}}\n  - type: tts\n    model: elevenlabs\n"
         "    params: {output_format: mp3_44100_128}\n    output_filename: voice.wav\n"), 3, "output_format written commented out"),
    ],
)
def test_nothing_in_a_pipeline_stops_the_import(yaml_text: str, line: int, says: str, tmp_path: Path) -> None:
    imported = _convert(yaml_text)
    _loads(imported, tmp_path)
    assert any(w.startswith(f"p.yaml:{line} ") and says in w for w in imported.warnings), imported.warnings


@pytest.mark.parametrize(
    ("text", "file", "line", "says"),
    [
        ("steps:\n  - type: llm\n    params: {prompt: [unclosed\n", "p.yaml", 4, "invalid YAML"),
        ('{"steps": [\n  {"type": "llm",}\n]}\n', "p.json", 2, "invalid JSON"),
        ("- just\n- a list\n", "p.yaml", None, "not a pipeline"),
        ("name: x\nsteps: []\n", "p.yaml", 2, "not a pipeline"),
        ('{"name": "x"}', "p.json", None, "not a pipeline"),
    ],
)
def test_only_a_file_that_is_not_a_pipeline_is_refused(text: str, file: str, line: int | None, says: str) -> None:
    with pytest.raises(RecipeError) as exc:
        _convert(text, file)
    assert exc.value.line == line and exc.value.file == file and says in str(exc.value)


@pytest.mark.parametrize("name", ["legacy_every_step.yaml", "legacy_every_step_documented.yaml", "legacy_pipeline.yaml"])
def test_json_and_yaml_pipelines_import_alike(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (RECIPES / name).read_text()
    (tmp_path / "from_yaml.yml").write_text(text)
    (tmp_path / "from_json.json").write_text(json.dumps(yaml.safe_load(text), indent=2))
    for source in ("from_yaml.yml", "from_json.json"):
        assert main(["import", str(tmp_path / source), "-o", str(tmp_path / (source + ".toml"))]) == 0
    body = [(tmp_path / f"{s}.toml").read_text().split("\n[recipe]", 1)[1] for s in ("from_yaml.yml", "from_json.json")]
    assert body[0] == body[1]
    # the JSON's notes name its lines too
    assert "from_json.json:" in capsys.readouterr().err


def test_unknown_names_import_from_the_command_with_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.yaml"
    source.write_text(
        "prompt: hi\nsteps:\n  - {type: tts, model: eleven_monolingual_v1}\n"
        "  - {type: text_to_image, model: dalle_99}\n  - {type: prompt_generation, model: openrouter_video_realistic}\n"
    )
    assert main(["import", str(source)]) == 0
    err = capsys.readouterr().err
    assert "model 'eleven_monolingual_v1' became elevenlabs/eleven_multilingual_v2" in err
    assert "model 'dalle_99' became fal/" in err
    assert acpbuild.load_recipe(tmp_path / "p.toml", env={})


# -- the command -------------------------------------------------------------------


def test_strings_are_escaped_for_toml_and_interpolation(tmp_path: Path) -> None:
    yaml_text = 'name: q\nprompt: "say \\"hi\\" \\\\ ${not_a_var}\\nbye"\nsteps:\n  - {type: llm, model: local}\n'
    recipe = _loads(_convert(yaml_text), tmp_path)
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


def test_a_missing_input_file_is_named_and_the_recipe_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.yaml"
    source.write_text("input_image: photos/face.png\nsteps:\n  - {type: image_to_video, model: kenburns}\n")
    assert main(["import", str(source)]) == 0
    assert "input file 'photos/face.png' is not there yet" in capsys.readouterr().err
    assert tomli.loads((tmp_path / "p.toml").read_text())["steps"]["image_to_video_1"]["image"] == "photos/face.png"


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
    assert key not in _loads(imported, tmp_path).steps[step].params


# -- the older tool's pipelines, run on the emulators ------------------------------------

@dataclass
class _World:
    fal: FalEmulator
    elevenlabs: ElevenLabsEmulator
    google: GoogleEmulator
    openrouter: OpenRouterEmulator

    def paid(self) -> dict[str, int]:
        """Billable requests each provider received."""
        return {
            "fal": len(self.fal.by_role("submit")),
            "elevenlabs": len(self.elevenlabs.by_role("submit")),
            "google": len(self.google.by_role("submit")),
            "openrouter": len(self.openrouter.by_role("submit")),
        }


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[_World]:
    # real media from the local provider, so the local steps after paid ones decode it
    video, audio = _local_media(tmp_path_factory.mktemp("media"))
    monkeypatch.setattr(el_emulator, "mp3_bytes", lambda *a, **k: audio)
    with FalEmulator() as fal, ElevenLabsEmulator() as el, GoogleEmulator() as google, OpenRouterEmulator() as orr:
        google.video = video
        for name, value in emulator_env(fal, el, google, orr).items():
            monkeypatch.setenv(name, value)
        yield _World(fal, el, google, orr)


def _pipeline_media(folder: Path) -> None:
    """The input files the pipelines name: a picture and two voices."""
    from PIL import Image

    (folder / "media").mkdir()
    for name in ("keepers.png", "hosts.png"):
        Image.new("RGB", (320, 240), (90, 140, 200)).save(folder / "media" / name)
    local = LocalProvider({})
    for name, words in (("first.mp3", "Good evening."), ("second.mp3", "And good night.")):
        local.generate(Job("text_to_speech", local.catalogue()["espeak"], {"text": words}, folder / "media" / name), _Journal())


# dialect, file format, the groups the YAML made, the outputs it named, the members a
# first_success group never tries (and so never pays for)
_RUNS = [
    (
        "legacy_every_step.yaml",
        "yaml",
        {"parallel_1": (["image_to_video_1", "image_to_video_2"], "first_success"),
         "parallel_2": (["text_to_speech_1", "text_to_speech_2"], "collect_all"),
         "parallel_3": (["text_to_video_1", "text_to_video_2"], "collect_all")},
        ["cover.png", "description.txt", "clip_hailuo.mp4", "clip_hd.mp4", "rachel.mp3", "adam.mp3", "waves.mp4"],
        {"image_to_video_2"},
    ),
    (
        "legacy_every_step_documented.yaml",
        "json",
        {"parallel_1": (["image_to_video_1", "image_to_video_2"], "first_success"),
         "parallel_2": (["text_to_video_1", "text_to_video_2"], "collect_all")},
        ["kite.png", "answer.txt", "motion.txt", "kite_pro.mp4", "kite_sound.mp4", "kite_hd.mp4", "narration.mp3",
         "kite.srt", "host.mp4", "kite_sunset.png", "festival.mp4", "hosts.mp4"],
        {"image_to_video_2"},
    ),
]  # fmt: skip


# each pipeline's paid steps: 8 on fal (picture, video, soundtrack, upscale, avatar, edit, a
# text video, the MultiTalk avatar), 2 voices, Gemini and a Veo video on Google, one prompt
_PAID = {"fal": 8, "elevenlabs": 2, "google": 2, "openrouter": 1}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt", "groups", "outputs", "untried"), _RUNS)
def test_an_imported_pipeline_of_every_step_type_runs_on_the_providers(
    name: str,
    fmt: str,
    groups: dict[str, tuple[list[str], str]],
    outputs: list[str],
    untried: set[str],
    world: _World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _pipeline_media(tmp_path)
    data = yaml.safe_load((RECIPES / name).read_text())
    source = tmp_path / f"pipeline.{fmt}"
    source.write_text(json.dumps(data, indent=2) if fmt == "json" else (RECIPES / name).read_text())
    assert main(["import", str(source)]) == 0
    target = source.with_suffix(".toml")
    recipe = acpbuild.load_recipe(target, env=dict(os.environ))
    # the same groups and merges
    assert {g: (list(group.members), group.merge) for g, group in recipe.groups.items()} == groups
    # every step type became a step (or is said not to have a kind)
    kinds = {s.kind for s in recipe.steps.values()}
    assert kinds >= {"text_to_image", "image_understanding", "image_to_video", "add_audio", "upscale_video", "subtitles",
                     "text_to_speech", "avatar", "image_to_image", "text_to_video", "concat", "mix_audio"}  # fmt: skip
    capsys.readouterr()

    assert main(["run", str(target), "--yes", "-j", "4"]) == 0, capsys.readouterr().err

    # one paid request per paid step, none for a first_success member never tried
    expected: dict[str, int] = {"fal": 0, "elevenlabs": 0, "google": 0, "openrouter": 0}
    for step_name, step in recipe.steps.items():
        if step.provider != "local" and step_name not in untried:
            expected[step.provider] += 1
    assert world.paid() == expected == _PAID
    out = recipe.output_dir
    # the output names the YAML gave
    missing = [o for o in outputs if not (out / o).is_file()]
    assert not missing, sorted(p.name for p in out.iterdir())
    assert not any(recipe.steps[s].output_path.exists() for s in untried)
    # the fixed text was spoken, not the flowing one
    spoken = [json.loads(r.body) for r in world.elevenlabs.by_role("submit")]
    assert all(s["text"] in ("Sunset on the shore.", "The kite flies high.", "Hello from the hills.") for s in spoken)
