"""`acpbuild init`, `templates` and `new --interactive`: from nothing to a recipe that runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli

import acpbuild
from acpbuild.cli import main, scaffold, wizard
from acpbuild.media import probe
from acpbuild.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent

# --- templates and init --------------------------------------------------------------


def test_templates_lists_every_template_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if not line.startswith("use one")]
    assert listed == ["quickstart", "image", "video", "podcast", "social", "catalog"]
    assert "catalog.csv" in out  # data files a template brings are named


def test_templates_are_the_recipes_shipped_in_recipes() -> None:
    # one source: what init writes is what runs in place under recipes/
    for tpl in scaffold.templates():
        assert tpl.recipe == (ROOT / "recipes" / f"{tpl.name}.toml").read_text(encoding="utf-8")
        for name, text in tpl.files.items():
            assert text == (ROOT / "recipes" / name).read_text(encoding="utf-8")


def test_init_writes_a_recipe_gitignore_and_env_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "promo"
    assert main(["init", str(project)]) == 0
    assert "acpbuild run" in capsys.readouterr().out
    recipe = load_recipe(project / "acpbuild.toml", env={})
    assert recipe.output_dir == (project / "out").resolve()  # beside the recipe, not ../out
    assert set(recipe.steps) == {"script", "narration", "cover", "clip", "final"}
    ignored = [line for line in (project / ".gitignore").read_text().splitlines() if not line.startswith("#")]
    assert ignored == [".acpbuild/", ".env", "/out/"]  # the store, the keys, and the outputs
    example = (project / ".env.example").read_text()
    for var in ("FAL_KEY", "ELEVENLABS_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY"):
        assert f"\n{var}=\n" in example  # named, never with a value
    assert "\n# GOOGLE_CLOUD_PROJECT=" in example  # an optional setting: there, but commented out


def test_init_appends_to_a_gitignore_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n.env", encoding="utf-8")
    scaffold.init(tmp_path, "image")
    scaffold.init(tmp_path, "image", force=True)
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == ["node_modules/", ".env", ".acpbuild/", "/out/"]


def test_init_copies_a_templates_data_files(tmp_path: Path) -> None:
    scaffold.init(tmp_path, "catalog")
    recipe = load_recipe(tmp_path / "acpbuild.toml", env={})
    rows = (tmp_path / "catalog.csv").read_text().splitlines()
    assert len([s for s in recipe.steps if s.startswith("card[")]) == len(rows) - 1


def test_init_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "acpbuild.toml"
    mine.write_text("# my own recipe\n", encoding="utf-8")
    assert main(["init", str(tmp_path), "--template", "video"]) == 2
    err = capsys.readouterr().err
    assert "acpbuild.toml already exists" in err and "--force" in err
    assert mine.read_text() == "# my own recipe\n"
    assert not (tmp_path / ".env.example").exists()  # nothing written at all
    assert main(["init", str(tmp_path), "--template", "video", "--force"]) == 0
    assert "[steps.reel]" in mine.read_text()


@pytest.mark.parametrize(
    ("where", "says"),
    [
        # a path through a file
        ("notes.txt/project", "notes.txt is a file, not a directory"),
        # a .gitignore that is a folder: found before anything is written
        ("gitfolder", ".gitignore is a directory"),
    ],
)
def test_init_where_it_cannot_write_says_why_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, says: str
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "gitfolder" / ".gitignore").mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["init", str(tmp_path / where)]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_an_unknown_template_names_the_nearest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path), "--template", "podcst"]) == 2
    err = capsys.readouterr().err
    assert "unknown template 'podcst'" in err and "did you mean 'podcast'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "outputs", "media"),
    [
        ("quickstart", ["final.mp4"], (1, 1)),
        ("image", ["variant.png", "description.txt"], None),
        ("video", ["reel.mp4", "poster.png"], (1, 0)),
        ("podcast", ["episode.mp3"], (0, 1)),
        ("social", ["square.mp4", "vertical.mp4", "captions.srt"], (1, 1)),
        ("catalog", ["cards/mug.png", "blurbs/scarf.txt"], None),
    ],
)
def test_every_template_runs_offline_from_init(
    tmp_path: Path, name: str, outputs: list[str], media: tuple[int, int] | None
) -> None:
    scaffold.init(tmp_path, name)
    result = acpbuild.run(tmp_path / "acpbuild.toml", jobs=2)
    assert result.success, result.failed
    assert result.total_cost == 0
    for output in outputs:
        assert (tmp_path / "out" / output).stat().st_size > 0
    first = tmp_path / "out" / outputs[0]
    if media is not None:
        info = probe(first)
        assert (info.video_streams, info.audio_streams) == media
    if name == "social":
        assert (probe(first).width, probe(first).height) == (360, 360)
        assert (probe(tmp_path / "out" / "vertical.mp4").width, probe(tmp_path / "out" / "vertical.mp4").height) == (360, 640)


def _paid_switches(text: str) -> Iterator[tuple[str, str]]:
    """Each commented switch to a paid model in a template, applied as its hint says: (model, recipe).

    A hint reads ``# model = "M"  # [or "M2", "M3";] then drop A and B; k = v`` or
    ``then replace `A` with k = v``.
    """
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if not line.startswith("# model = "):
            continue
        model_part, _, hint = line[2:].partition("#")
        models = [tomli.loads(model_part)["model"]]
        drop: set[str] = set()
        sets: list[str] = []
        for clause in (c.strip() for c in hint.split(";") if c.strip()):
            if clause.startswith("or "):
                models += re.findall(r'"([^"]+)"', clause)
            elif clause.startswith("then drop "):
                drop |= {w for w in re.findall(r"[a-z_]+", clause.removeprefix("then drop ")) if w != "and"}
            elif clause.startswith("then replace "):
                replaced, _, assignment = clause.removeprefix("then replace ").partition(" with ")
                drop.add(replaced.strip("` "))
                sets.append(assignment)
            else:
                sets.append(clause)
        drop |= {assignment.split("=")[0].strip() for assignment in sets}  # a value set replaces the old one
        provider_line = lines[n - 1]
        assert provider_line.startswith("# provider = "), provider_line
        start = max(i for i in range(n) if lines[i].startswith("[steps."))
        end = next((i for i in range(n, len(lines)) if lines[i].startswith("[")), len(lines))
        body = [
            ln for ln in lines[start + 1 : end]
            if not ln.startswith("#") and ln.split("=")[0].strip() not in drop | {"provider", "model"}
        ]
        for model in models:
            table = [lines[start], provider_line[2:], f'model = "{model}"', *sets, *body]
            yield model, "\n".join(lines[:start] + table + lines[end:]) + "\n"


@pytest.mark.parametrize("name", scaffold.NAMES)
def test_every_paid_switch_a_template_suggests_validates(tmp_path: Path, name: str) -> None:
    # following a template's own hint to a paid model must give a recipe that loads
    tpl = scaffold.template(name)
    # where the templates sit: recipes/ in a git work tree, writing to ../out/NAME
    (tmp_path / ".git").mkdir()
    folder = tmp_path / "recipes"
    folder.mkdir()
    for data, text in tpl.files.items():
        (folder / data).write_text(text)
    switches = list(_paid_switches(tpl.recipe))
    assert switches, f"{name} suggests no paid model"
    for model, text in switches:
        path = folder / "switched.toml"
        path.write_text(text)
        recipe = load_recipe(path, env={})
        assert any(s.model == model for s in recipe.steps.values()), (name, model)


def test_the_readme_recipe_example_validates(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Recipe format", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "promo.toml"
    path.write_text(example)
    recipe = load_recipe(path, env={})
    assert {"script", "cover", "voice", "clip", "final"} <= set(recipe.steps)


# --- new --interactive ---------------------------------------------------------------


def scripted(answers: list[str]) -> tuple[wizard.Ask, list[str], list[str]]:
    """An ``ask`` that replays ``answers`` and records the prompts; and what ``say`` printed."""
    queue: Iterator[str] = iter(answers)
    prompts: list[str] = []
    said: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(queue)

    return ask, prompts, said


def test_new_writes_a_recipe_that_loads_and_runs(tmp_path: Path) -> None:
    ask, _, said = scripted(
        [
            "text", "", "", "",  # kind, name [script], provider [local], model [template]
            "Two lines about rain",  # prompt
            "sentences=2", "",  # an optional parameter, then go on
            "",  # output [script.txt]
            "y",  # another step
            "text_to_speech", "", "", "",  # kind, name [voice], provider, model [espeak]
            "${steps.script}",  # text
            "", "",  # no more parameters, output [voice.mp3]
            "n", "rain.toml",
        ]
    )
    path = wizard.write(ask, said.append, tmp_path)
    assert path == tmp_path / "rain.toml"
    recipe = load_recipe(path, env={})
    assert recipe.steps["script"].params["prompt"] == "Two lines about rain"
    assert recipe.steps["script"].params["sentences"] == 2
    assert recipe.steps["voice"].deps == ("script",)
    result = acpbuild.run(path)
    assert result.success and set(result.steps) == {"script", "voice"}
    assert probe(tmp_path / "out" / "voice.mp3").audio_streams == 1


# A one-step text recipe taking every default: kind, name, provider, model, prompt,
# no optional parameter, output, no other step, recipe file.
TEXT_STEP = ["text", "", "", "", "rain", "", "", "n", ""]


@pytest.mark.parametrize(
    ("answers", "complaint"),
    [
        # the kind is checked against what providers serve, with the nearest name
        (["text_to_imag", *TEXT_STEP], "did you mean 'text_to_image'"),
        # a reference to a step that does not exist yet, then a plain prompt
        ([*TEXT_STEP[:4], "About ${steps.later}", *TEXT_STEP[4:]], "not an earlier step's output"),
        # a parameter the model does not take, then one it does
        ([*TEXT_STEP[:5], "sentence=2", "sentences=2", *TEXT_STEP[5:]], "did you mean 'sentences'"),
        # a value out of the parameter's range
        ([*TEXT_STEP[:5], "sentences=0", *TEXT_STEP[5:]], "sentences: 0 is below the minimum 1"),
        # an output whose suffix does not fit the kind
        ([*TEXT_STEP[:6], "script.png", *TEXT_STEP[6:]], "end the file name with .txt"),
        # a recipe file that is not .toml
        ([*TEXT_STEP[:8], "recipe.yaml", *TEXT_STEP[8:]], "ends with .toml"),
        # a recipe file in a folder (missing, or outside --dir): a plain name is asked for
        ([*TEXT_STEP[:8], "sub/b.toml", *TEXT_STEP[8:]], "without folders"),
        ([*TEXT_STEP[:8], "../b.toml", *TEXT_STEP[8:]], "without folders"),
        # an output that would read as a reference when the recipe loads
        ([*TEXT_STEP[:6], "a${x}.txt", *TEXT_STEP[6:]], "cannot hold '$'"),
        # a step name doit could not take
        ([TEXT_STEP[0], "a=b", *TEXT_STEP[1:]], "cannot contain '='"),
    ],
)
def test_new_asks_again_with_the_reason(tmp_path: Path, answers: list[str], complaint: str) -> None:
    ask, _, said = scripted(answers)
    path = wizard.write(ask, said.append, tmp_path)
    assert any(complaint in line for line in said if line.startswith("  !")), said
    assert load_recipe(path, env={}).steps["script"].params["prompt"] == "rain"


def test_new_without_interactive_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new"]) == 2
    assert "--interactive" in capsys.readouterr().err


def test_new_when_input_ends_early_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("text\n"))
    assert main(["new", "--interactive", "--dir", str(tmp_path)]) == 2
    assert "standard input ended" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
