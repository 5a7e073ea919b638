"""What a new user meets in the first hour: each command says what the README says it does.

Each test here was a surprise once: a command that did something else than the
README promised, or a README that promised what the code never did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acpbuild.cli import main
from acpbuild.words import counted

ONE_STEP = """\
[recipe]
name = "one"
output_dir = "out"

[steps.hello]
kind = "text"
prompt = "hello"
output = "hello.txt"
"""


def one_step(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "acpbuild.toml"
    path.write_text(ONE_STEP, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("count", "noun", "plural", "said"),
    [
        (1, "output", None, "1 output"),  # one: the noun as it is
        (0, "output", None, "0 outputs"),  # none is plural in English
        (2, "entry", "entries", "2 entries"),  # a plural that is not noun + s
        (1, "entry", "entries", "1 entry"),
    ],
)
def test_counts_say_one_thing_or_several_things(count: int, noun: str, plural: str | None, said: str) -> None:
    assert counted(count, noun, plural) == said


def test_one_output_removed_and_one_step_validated_are_said_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = one_step(tmp_path)
    assert main(["validate", str(recipe)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok (1 step)")
    assert main(["run", str(recipe)]) == 0
    capsys.readouterr()
    assert main(["clean", str(recipe)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 output removed; the store still holds every generation"


def test_a_new_projects_outputs_stay_out_of_git_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # init, run, git status: what git offers to commit is the project, not the media it made
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    project = tmp_path / "promo"
    assert main(["init", str(project), "--template", "image"]) == 0
    subprocess.run([git, "init", "-q", str(project)], check=True)
    assert main(["run", str(project / "acpbuild.toml")]) == 0
    capsys.readouterr()
    assert any((project / "out").iterdir())  # the run made its outputs there
    status = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=all"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    untracked = sorted(line[3:] for line in status.splitlines())
    assert untracked == [".env.example", ".gitignore", "acpbuild.lock", "acpbuild.toml"]


def test_new_interactive_makes_the_folder_dir_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    # one text step taking every default; then the recipe file's default name
    answers = ["text", "", "", "", "rain", "", "", "n", ""]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(a + "\n" for a in answers)))
    folder = tmp_path / "projects" / "rain"
    assert main(["new", "--interactive", "--dir", str(folder)]) == 0
    assert (folder / "acpbuild.toml").is_file()
    assert main(["validate", str(folder / "acpbuild.toml")]) == 0


def test_new_interactive_cut_short_leaves_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("text\n"))
    assert main(["new", "--interactive", "--dir", str(tmp_path / "later")]) == 2
    assert not (tmp_path / "later").exists()


def test_new_interactive_refuses_a_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("")
    assert main(["new", "--interactive", "--dir", str(tmp_path / "taken" / "sub")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_models_lists_each_kinds_own_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    # ffmpeg serves mux, concat, mix_audio...: a concat step needs videos, never a video and an audio
    assert main(["models", "--provider", "local"]) == 0
    text = capsys.readouterr().out
    ffmpeg = text[text.index("local/ffmpeg") :].split("\nlocal/")[0].splitlines()[1:]
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in ffmpeg:  # "  concat:" heads a kind's block, "      videos: ..." is one of its parameters
        if line.startswith("      "):
            current.append(line.strip())
        else:
            current = blocks.setdefault(line.strip().rstrip(":"), [])
    assert set(blocks) == {"mux", "thumbnail", "transcode", "concat", "mix_audio"}
    assert [p for p in blocks["concat"] if "(required)" in p] == ["videos: files (required)"]
    assert [p for p in blocks["mux"] if "(required)" in p] == ["video: video (required)", "audio: audio (required)"]
    assert [p for p in blocks["mix_audio"] if "(required)" in p] == ["audios: files (required)"]
    assert main(["models", "--provider", "local", "--json"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    params = rows["ffmpeg"]["params"]
    assert set(params) == {"mux", "thumbnail", "transcode", "concat", "mix_audio"}
    assert {n for n, spec in params["concat"].items() if spec.get("required")} == {"videos"}
    assert {n for n, spec in params["mux"].items() if spec.get("required")} == {"video", "audio"}


def test_models_of_one_kind_list_one_set_of_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "local", "--kind", "concat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("local/ffmpeg  [concat]")
    assert lines[1:] == ["    videos: files (required)", "    fps: int  1..120"]


def recipe_named(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(ONE_STEP.replace('name = "one"', f'name = "{name}"').replace('"hello"', f'"hello from {name}"'))
    return path


def test_doctor_makes_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    main(["doctor"])
    store_line = next(line for line in capsys.readouterr().out.splitlines() if " store " in line)
    assert store_line.startswith("ok") and "not created yet" in store_line
    assert not (tmp_path / ".acpbuild").exists()


def test_info_and_costs_where_no_recipe_is_name_the_stores_of_the_recipes_below(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a repository whose recipes live in recipes/: their store is recipes/.acpbuild, not ./.acpbuild
    recipe = recipe_named(tmp_path / "recipes", "quick")
    assert main(["run", str(recipe)]) == 0
    monkeypatch.chdir(tmp_path)
    main(["doctor"])
    capsys.readouterr()
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "(default: no acpbuild.toml here)" in out
    assert "recipes/quick.toml: recipes/.acpbuild, 1 generation" in out
    assert "acpbuild info recipes/quick.toml" in out
    assert main(["info", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [n["recipe"] for n in doc["nearby"]] == [str(recipe)]
    assert main(["costs"]) == 0
    err = capsys.readouterr().err
    assert "no ledger in" in err and "recipes/quick.toml: recipes/.acpbuild, 1 generation" in err
    assert "acpbuild costs recipes/quick.toml" in err
    # named, the recipe's own store answers
    assert main(["costs", "recipes/quick.toml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["generations"] == 1


def test_costs_of_a_recipe_by_step_lists_that_recipes_steps_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # two recipes in one folder share its store, and so its ledger
    first, second = recipe_named(tmp_path, "first"), recipe_named(tmp_path, "second")
    assert main(["run", str(first)]) == 0
    assert main(["run", str(second)]) == 0
    capsys.readouterr()
    assert main(["costs", str(first), "--by", "step", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [row["group"] for row in doc["rows"]] == ["first:hello"]
    assert doc["recipe"] == "first"
    # without a recipe, the store's whole ledger: both recipes
    assert main(["costs", "--store", str(tmp_path / ".acpbuild"), "--by", "step", "--json"]) == 0
    assert sorted(row["group"] for row in json.loads(capsys.readouterr().out)["rows"]) == ["first:hello", "second:hello"]


def test_an_unset_max_tokens_bounds_the_estimate_at_what_openrouter_is_sent(tmp_path: Path) -> None:
    # the estimate's output tokens are the max_tokens the call carries, and the README says which
    import acpbuild
    from acpbuild.engine.workflow import forecast
    from tests.emulators.openrouter import CHAT, KEY, OpenRouterEmulator

    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(
        '[steps.line]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\n'
        'prompt = "One line about rain."\noutput = "line.txt"\n'
    )
    with OpenRouterEmulator() as emu:
        env = {"OPENROUTER_API_KEY": KEY, "ACPBUILD_OPENROUTER_URL": f"{emu.url}/api/v1"}
        [entry] = forecast(recipe, env=env).entries
        assert acpbuild.run(recipe, env=env).success
        [chat] = emu.calls("POST", CHAT)
    sent = chat.json()["max_tokens"]
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M; "One line about rain." is 20 characters, 5 tokens:
    # the most the call can cost is 5 in and every token it may write out
    assert entry.estimate.bound == pytest.approx((5 * 0.15 + sent * 0.60) / 1e6)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    estimates = " ".join(readme.split("**Estimates.**", 1)[1].split("**Budget.**", 1)[0].split())
    assert f"{sent:,} for OpenRouter's models" in estimates
