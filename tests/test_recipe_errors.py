"""Every recipe error names the file, the line of the offending key, its table, and a fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from acpbuild.cli import main
from acpbuild.errors import RecipeError, closest, did_you_mean
from acpbuild.recipe import load_recipe

RECIPES = Path(__file__).parent / "recipes"
ROOT = Path(__file__).parent.parent

# fixture, line, table, text that must appear in the message, the nearest valid
# name the error suggests (None where there is nothing to be near), and whether
# the suggestion is the TIP or part of the message itself
CASES = [
    # tomli's own line for broken syntax; there is no table to name
    ("bad_toml_syntax.toml", 7, None, "invalid TOML", None, None),
    # a misspelt top-level table is caught at its header line
    ("bad_top_level_key.toml", 5, "varz", "unknown key 'varz'", "vars", "tip"),
    # a misspelt key in [recipe]
    (
        "bad_recipe_key.toml",
        4,
        "recipe.budjet_usd",
        "unknown key 'budjet_usd'",
        "budget_usd",
        "tip",
    ),
    # a kind one letter short; `kind` is not the table's first key, so the line is exact
    ("bad_kind.toml", 4, "steps.cover.kind", "unknown kind 'text_to_imag'", "text_to_image", "tip"),
    # a provider one letter long
    ("bad_provider.toml", 5, "steps.cover.provider", "unknown provider 'fall'", "fal", "tip"),
    # a model the provider does not serve, differing only in case
    ("bad_model.toml", 5, "steps.cover.model", "unknown model 'flux-deV'", "flux-dev", "tip"),
    # a misspelt parameter
    ("bad_param_name.toml", 4, "steps.script.promt", "unknown parameter 'promt'", "prompt", "tip"),
    # a string where the model takes an int
    ("bad_param_type.toml", 5, "steps.cover.seed", "expected int", None, None),
    # a number past the parameter's maximum
    ("bad_param_range.toml", 5, "steps.voice.speed", "above the maximum 450", None, None),
    # a value outside the parameter's choices, with the nearest choice suggested
    (
        "bad_param_choice.toml",
        5,
        "steps.cover.image_size",
        "is not one of",
        "landscape_16_9",
        "message",
    ),
    # a required parameter that is missing points at the step's table
    (
        "bad_missing_param.toml",
        5,
        "steps.script",
        "missing required parameter 'prompt'",
        None,
        None,
    ),
    # a reference to a step that does not exist
    (
        "bad_missing_step.toml",
        9,
        "steps.voice.text",
        "missing step '${steps.scirpt}'",
        "script",
        "tip",
    ),
    # a cycle is spelt out, start to start
    ("bad_cycle.toml", 2, "steps.a", "a -> b -> a", None, None),
    # two steps writing one file: the second one is blamed
    ("bad_same_output.toml", 10, "steps.second.output", "both write script.txt", None, None),
    # an output that climbs out of output_dir
    ("bad_output_escape.toml", 5, "steps.cover.output", "escapes output_dir", None, None),
    # an absolute output path
    ("bad_output_absolute.toml", 5, "steps.cover.output", "must be a relative path", None, None),
    # an input file that is not there
    (
        "bad_missing_input.toml",
        5,
        "steps.grey.image",
        "input file not found: no-such-photo.png",
        None,
        None,
    ),
    # speech written to a .png
    (
        "bad_output_suffix.toml",
        5,
        "steps.voice.output",
        "does not fit kind 'text_to_speech'",
        None,
        None,
    ),
    # an image pasted into a prompt
    ("bad_media_in_text.toml", 9, "steps.script.prompt", "cannot be put into text", None, None),
    # an undefined ${var}, with the nearest defined one suggested
    (
        "bad_unknown_var.toml",
        7,
        "steps.script.prompt",
        "unknown variable '${topik}'",
        "${topic}",
        "message",
    ),
    # an API key pulled into a step is refused even when it is set
    ("bad_env_credential.toml", 4, "steps.script.prompt", "credential", None, None),
    # choices that depend on the kind: "auto" follows an input image, so text_to_video refuses it
    ("bad_veo3_auto_aspect.toml", 7, "steps.clip.aspect_ratio", "'auto' is not one of", None, None),
    ("bad_seedance_auto_aspect.toml", 7, "steps.clip.aspect_ratio", "'auto' is not one of", None, None),
    # what the provider itself cannot write, found by its check hook when the recipe loads
    ("bad_fal_webm.toml", 7, "steps.clip.output", "fal returns MP4 video", None, None),
    ("bad_veo_webm.toml", 7, "steps.clip.output", "Veo returns MP4 video", None, None),
    ("bad_speech_format.toml", 7, "steps.voice.output_format", "does not match the output file's .mp3", None, None),
    # the same mismatch coming from [defaults] points at the defaults' line
    (
        "bad_speech_format_default.toml",
        5,
        "defaults.text_to_speech.output_format",
        "does not match the output file's .wav",
        None,
        None,
    ),
    # a seed past 32 bits, from a model whose catalogue gives seeds no range
    ("bad_seed_range.toml", 5, "steps.cover.seed", "outside the seed range 0..4294967295", None, None),
    # an empty text fails at load, not at run time
    ("bad_empty_text.toml", 4, "steps.voice.text", "is empty", None, None),
    # output_dir outside the project (absolute, and no output_roots say otherwise)
    ("bad_output_dir_outside.toml", 4, "recipe.output_dir", "outside the project", None, None),
    # an absolute glob (was pathlib's NotImplementedError)
    ("bad_foreach_absolute_glob.toml", 4, "steps.notes.foreach", "is absolute", None, None),
    # nan is TOML, but no number
    ("bad_number_nan.toml", 5, "steps.card.duration_s", "not a finite number", None, None),
    # a table where a model name belongs (was a TypeError)
    ("bad_defaults_model_table.toml", 3, "defaults.text.model", "model must be a string", None, None),
    # nesting past MAX_DEPTH (past tomli's own limit it was a RecursionError)
    ("bad_deep_nesting.toml", 6, "steps.script.extra", "nested too deeply", None, None),
]


@pytest.mark.parametrize(("fixture", "line", "table", "message", "near", "hint_in"), CASES)
def test_recipe_error_names_file_line_table_and_fix(
    fixture: str, line: int, table: str | None, message: str, near: str | None, hint_in: str | None
) -> None:
    # FAL_KEY is set so the credential case is refused for what it is, not for being unset
    with pytest.raises(RecipeError) as caught:
        load_recipe(RECIPES / fixture, env={"FAL_KEY": "fal-secret-value"})
    error = caught.value
    assert error.file is not None and error.file.endswith(fixture)
    assert error.line == line
    assert error.table == table
    assert message in error.message
    if hint_in == "tip":
        assert error.tip == f"did you mean {near!r}?"
    elif hint_in == "message":
        assert f"did you mean {near!r}?" in error.message
    # the rendered error leads with file:line, the way an editor jumps to it
    assert f"{fixture}:{line}" in str(error)
    assert "fal-secret-value" not in str(error)


def test_every_bad_fixture_has_a_case() -> None:
    # a fixture nobody tests proves nothing; a case without a fixture cannot run
    assert {p.name for p in RECIPES.glob("bad_*.toml")} == {c[0] for c in CASES}


@pytest.mark.parametrize(
    ("word", "options", "how", "tip"),
    [
        ("promt", ["prompt", "output"], {}, "did you mean 'prompt'?"),  # the closest spelling
        ("zzz", ["prompt", "output"], {}, None),  # nothing close: no tip at all
        ("topik", {"topic": 1}, {}, "did you mean 'topic'?"),  # a mapping's keys are the options
        # written as the message around it quotes things
        ("topik", ["topic"], {"show": lambda n: f"'${{{n}}}'"}, "did you mean '${topic}'?"),
        # a caller's own guess wins over spelling
        ("veo", ["fal/veo3", "google/veo-3.1"], {"find": lambda w, o: o[-1]}, "did you mean 'google/veo-3.1'?"),
    ],
)
def test_did_you_mean_names_the_nearest_option(
    word: str, options: Iterable[str], how: dict[str, Any], tip: str | None
) -> None:
    assert did_you_mean(word, options, **how) == tip


def test_closest_lists_the_near_spellings_best_first() -> None:
    assert closest("Rachael", ["Adam", "Rachel", "Racheal", "Bella"], n=5) == ["Rachel", "Racheal"]


def test_missing_input_tip_says_where_it_looked() -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(RECIPES / "bad_missing_input.toml", env={})
    assert caught.value.tip == f"looked for {RECIPES / 'no-such-photo.png'}"


def test_wrong_suffix_tip_lists_the_suffixes_that_fit() -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(RECIPES / "bad_output_suffix.toml", env={})
    assert caught.value.tip == "use a suffix among .mp3, .wav"


@pytest.mark.parametrize(
    ("fixture", "line"),
    [
        # shape errors (pydantic stage)
        ("bad_recipe_key.toml", 4),
        # meaning errors (catalogue stage)
        ("bad_param_name.toml", 4),
        # graph errors (after every step resolved)
        ("bad_cycle.toml", 2),
        # syntax errors (tomli stage)
        ("bad_toml_syntax.toml", 7),
    ],
)
def test_cli_validate_reports_file_and_line_and_exits_2(
    fixture: str, line: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", f"tests/recipes/{fixture}"]) == 2
    captured = capsys.readouterr()
    assert f"tests/recipes/{fixture}:{line}" in captured.err
    assert "ok" not in captured.out


@pytest.mark.parametrize(
    ("fixture", "line", "key"),
    [
        # each would otherwise fail only when its step ran, after earlier steps were paid for
        ("bad_veo3_auto_aspect.toml", 7, "steps.clip.aspect_ratio"),
        ("bad_seedance_auto_aspect.toml", 7, "steps.clip.aspect_ratio"),
        ("bad_fal_webm.toml", 7, "steps.clip.output"),
        ("bad_veo_webm.toml", 7, "steps.clip.output"),
        ("bad_speech_format.toml", 7, "steps.voice.output_format"),
    ],
)
def test_cli_validate_refuses_what_the_provider_would_refuse(
    fixture: str, line: int, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", f"tests/recipes/{fixture}"]) == 2
    err = capsys.readouterr().err
    assert f"tests/recipes/{fixture}:{line} [{key}]" in err


def test_loading_paid_steps_imports_no_sdk() -> None:
    # the provider check hooks run at load time, so they must not pull in an SDK
    code = (
        "import sys; from acpbuild.recipe import load_recipe; "
        "load_recipe('tests/recipes/mixed.toml', env={}); "
        "loaded = [m for m in ('fal_client', 'elevenlabs', 'google.genai', 'openai') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_cli_validate_mixed_recipes_reports_each_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # one bad recipe among good ones fails the command, and the good one is still checked
    monkeypatch.chdir(ROOT)
    assert main(["validate", "recipes/quickstart.toml", "tests/recipes/bad_kind.toml"]) == 2
    captured = capsys.readouterr()
    assert "recipes/quickstart.toml: ok (5 steps)" in captured.out
    assert "bad_kind.toml:4" in captured.err


def test_cli_validate_quickstart_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "recipes/quickstart.toml"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "recipes/quickstart.toml: ok (5 steps)"
    assert captured.err == ""


@pytest.mark.parametrize(
    "fixture",
    [
        # rejected by the shape check
        "bad_recipe_key.toml",
        # rejected after the first steps were already resolved
        "bad_same_output.toml",
        # rejected while interpolating
        "bad_unknown_var.toml",
    ],
)
def test_cli_run_on_a_bad_recipe_exits_2_and_touches_nothing(
    fixture: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ACPBUILD_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(RECIPES / fixture, tmp_path / fixture)
    assert main(["run", fixture]) == 2
    assert f"{fixture}:" in capsys.readouterr().err
    # no output dir, no store, no ledger: nothing but the recipe itself
    assert sorted(p.name for p in tmp_path.iterdir()) == [fixture]


@pytest.mark.parametrize(
    ("text", "line", "table", "message", "tip"),
    [
        # a misspelt [steps] table, named only as a prefix of [step.a]: its header line
        ('[step.a]\nkind = "text"\nprompt = "x"\noutput = "a.txt"\n', 1, "step", "unknown key 'step'", "'steps'"),
        # a misspelt required key points at the misspelling, not at the table
        ('[steps.a]\nknd = "text"\nprompt = "x"\noutput = "a.txt"\n', 2, "steps.a.knd", "missing required key 'kind'", "'kind' for 'knd'"),
        ('[steps.a]\nkind = "text"\nprompt = "x"\noutptu = "a.txt"\n', 4, "steps.a.outptu", "missing required key 'output'", "'output' for 'outptu'"),
        # doit cannot name a task with '=', and reads a leading '-' as an option
        ('[steps."a=b"]\nkind = "text"\nprompt = "x"\noutput = "a.txt"\n', 1, "steps.a=b", "cannot contain '='", "'a_b'"),
        ('[steps."-x"]\nkind = "text"\nprompt = "x"\noutput = "a.txt"\n', 1, "steps.-x", "cannot start with '-'", "'x'"),
        ('[steps.a]\nkind = "text"\nforeach = [{ id = "p=q" }]\nprompt = "x"\noutput = "${item.id}.txt"\n', 3, "steps.a.foreach", "'p=q' contains '='", "without '='"),
        # the tip of a wrong value says what the parameter takes, not only what it means
        ('[steps.a]\nkind = "text_to_image"\nprompt = "x"\nseed = "seven"\noutput = "a.png"\n', 4, "steps.a.seed", "expected int", "seed: changes the colours (int)"),
        ('[steps.a]\nkind = "text"\noutput = "a.txt"\n', 1, "steps.a", "missing required parameter 'prompt'", "add prompt: the words"),
    ],
)
def test_shape_and_name_errors_point_at_the_culprit(
    tmp_path: Path, text: str, line: int, table: str, message: str, tip: str
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, env={})
    error = caught.value
    assert (error.line, error.table) == (line, table)
    assert message in error.message
    assert error.tip is not None and tip in error.tip


@pytest.mark.parametrize(
    ("steps", "message", "tip"),
    [
        # a step that would overwrite its own input
        ('[steps.gray]\nkind = "image_to_image"\nimage = "photo.png"\noperation = "mirror"\noutput = "photo.png"\n',
         "input file photo.png is also the output of 'gray'", "cannot overwrite its own input"),
        # a step reading, as a plain file, what another step writes
        (('[steps.gray]\nkind = "image_to_image"\nimage = "photo.png"\noperation = "mirror"\noutput = "g.png"\n\n'
          '[steps.blur]\nkind = "image_to_image"\nimage = "g.png"\noperation = "blur"\noutput = "b.png"\n'),
         "input file g.png is also the output of 'gray'", "'${steps.gray}'"),
    ],
)
def test_an_output_that_is_also_an_input_file_is_an_error(
    tmp_path: Path, steps: str, message: str, tip: str
) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "g.png")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\noutput_dir = "."\n\n' + steps, encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, env={})
    assert message in caught.value.message and tip in (caught.value.tip or "")
