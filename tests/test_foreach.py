"""foreach: one task per item, per-item reruns, consuming another foreach item by item or all at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import provider_calls

import acpbuild
from acpbuild.cli import main
from acpbuild.errors import RecipeError
from acpbuild.media import probe

SCRIPTS = {"intro": "Welcome to the harbour.", "middle": "Boats come and go.", "outro": "Goodbye for now."}

RECIPE = """
[recipe]
name = "series"

[steps.summary]
kind = "text"
foreach = "scripts/*.md"
prompt = "Summarise: ${item.text}"
output = "summaries/${item.stem}.txt"

[steps.title]
kind = "text"
foreach = "${steps.summary}"
prompt = "A title for ${steps.summary} (from ${item.name})"
output = "titles/${item.stem}.txt"
"""


def write_repo(root: Path, recipe: str = RECIPE) -> Path:
    (root / "scripts").mkdir(parents=True, exist_ok=True)
    for stem, text in SCRIPTS.items():
        (root / "scripts" / f"{stem}.md").write_text(text)
    path = root / "acpbuild.toml"
    path.write_text(recipe)
    return path


def ran(result: acpbuild.RunResult) -> set[str]:
    return {n for n, s in result.steps.items() if s.status == "ran"}


def test_a_glob_expands_into_one_step_per_file(tmp_path: Path) -> None:
    recipe = acpbuild.load_recipe(write_repo(tmp_path), env={})
    assert recipe.families["summary"] == ["summary[intro]", "summary[middle]", "summary[outro]"]
    step = recipe.steps["summary[middle]"]
    assert step.params["prompt"] == "Summarise: Boats come and go."
    assert step.output_path == tmp_path / "out" / "summaries" / "middle.txt"
    # item by item: each title consumes the summary of the same script
    assert recipe.steps["title[outro]"].deps == ("summary[outro]",)
    assert recipe.steps["title[outro]"].params["prompt"].parts[-1] == " (from outro.md)"
    result = acpbuild.run(tmp_path / "acpbuild.toml", env={})
    assert ran(result) == set(recipe.steps)


def test_editing_adding_and_removing_items_touch_only_their_tasks(tmp_path: Path) -> None:
    path = write_repo(tmp_path)
    store = tmp_path / ".acpbuild"
    acpbuild.run(path, env={})
    assert provider_calls(store) == 6

    (tmp_path / "scripts" / "middle.md").write_text("Boats come, boats go.")
    assert ran(acpbuild.run(path, env={})) == {"summary[middle]", "title[middle]"}
    assert provider_calls(store) == 8

    (tmp_path / "scripts" / "extra.md").write_text("One more thing.")
    assert ran(acpbuild.run(path, env={})) == {"summary[extra]", "title[extra]"}
    assert provider_calls(store) == 10

    (tmp_path / "scripts" / "intro.md").unlink()
    result = acpbuild.run(path, env={})
    assert ran(result) == set() and "summary[intro]" not in result.steps
    assert (tmp_path / "out" / "summaries" / "intro.txt").exists()  # left alone until asked

    assert main(["clean", "--orphans", str(path)]) == 0
    assert not (tmp_path / "out" / "summaries" / "intro.txt").exists()
    assert not (tmp_path / "out" / "titles" / "intro.txt").exists()
    assert (tmp_path / "out" / "summaries" / "middle.txt").exists()
    assert provider_calls(store) == 10


#: words of each script the local text model may write back (it reuses the prompt's own words)
SCRIPT_WORDS = {"intro": {"welcome", "harbour"}, "middle": {"boats", "come"}, "outro": {"goodbye", "now"}}


def test_naming_a_foreach_step_builds_all_its_items(tmp_path: Path) -> None:
    result = acpbuild.run(write_repo(tmp_path), ["summary"], env={})
    assert result.success, result.to_dict()
    assert {n: s.status for n, s in result.steps.items()} == {f"summary[{stem}]": "ran" for stem in SCRIPTS}
    for stem, own in SCRIPT_WORDS.items():
        # each item's output exists and summarises its own script, not another item's
        output = tmp_path / "out" / "summaries" / f"{stem}.txt"
        assert result.steps[f"summary[{stem}]"].outputs == [str(output)]
        words = set(re.findall(r"[a-z]+", output.read_text().lower()))
        others = set().union(*(w for s, w in SCRIPT_WORDS.items() if s != stem))
        assert words & own and not words & others, (stem, output.read_text())
    assert not (tmp_path / "out" / "titles").exists()  # only what was named, and what it needs


@pytest.mark.parametrize(
    ("source", "extra_file"),
    [
        # CSV: one item per row, columns as fields
        ('"products.csv"', ("products.csv", "id,name,tagline\nk1,Kettle,boils fast\nm2,Mug,holds tea\n")),
        # JSONL: one object per line
        ('"products.jsonl"', ("products.jsonl", ('{"id": "k1", "name": "Kettle", "tagline": "boils fast"}\n'
                                                 '{"id": "m2", "name": "Mug", "tagline": "holds tea"}\n'))),
        # an inline list of tables
        ('[{ id = "k1", name = "Kettle", tagline = "boils fast" }, { id = "m2", name = "Mug", tagline = "holds tea" }]', None),
    ],
)
def test_rows_of_a_table_become_items(tmp_path: Path, source: str, extra_file: tuple[str, str] | None) -> None:
    if extra_file:
        (tmp_path / extra_file[0]).write_text(extra_file[1])
    path = tmp_path / "catalog.toml"
    path.write_text(
        f'[steps.ad]\nkind = "text"\nforeach = {source}\nprompt = "${{item.name}}: ${{item.tagline}}"\n'
        'output = "ads/${item.id}.txt"\n'
    )
    recipe = acpbuild.load_recipe(path, env={})
    assert recipe.families["ad"] == ["ad[k1]", "ad[m2]"]
    assert recipe.steps["ad[m2]"].params["prompt"] == "Mug: holds tea"
    result = acpbuild.run(path, env={})
    assert ran(result) == {"ad[k1]", "ad[m2]"}
    # the local text model builds its sentences from the prompt's words
    assert "Mug" in (tmp_path / "out" / "ads" / "m2.txt").read_text()
    assert "Kettle" in (tmp_path / "out" / "ads" / "k1.txt").read_text()


def test_glob_items_offer_path_stem_name_and_text(tmp_path: Path) -> None:
    (tmp_path / "scripts" / "deep").mkdir(parents=True)
    (tmp_path / "scripts" / "deep" / "harbour.md").write_text("Gulls over water.")
    path = tmp_path / "acpbuild.toml"
    path.write_text(
        '[steps.s]\nkind = "text"\nforeach = "scripts/**/*.md"\n'
        'prompt = "${item.path} | ${item.stem} | ${item.name} | ${item.text}"\noutput = "${item.stem}.txt"\n'
    )
    recipe = acpbuild.load_recipe(path, env={})
    assert recipe.steps["s[harbour]"].params["prompt"] == (
        "scripts/deep/harbour.md | harbour | harbour.md | Gulls over water."
    )


def test_concat_consumes_every_item_at_once(tmp_path: Path) -> None:
    path = tmp_path / "reel.toml"
    path.write_text(
        """
[steps.card]
kind = "text_to_video"
foreach = [{ id = "a", words = "first" }, { id = "b", words = "second" }, { id = "c", words = "third" }]
prompt = "${item.words}"
duration_s = 1
fps = 10
width = 160
height = 96
output = "cards/${item.id}.mp4"

[steps.reel]
kind = "concat"
videos = "${steps.card}"
output = "reel.mp4"
"""
    )
    recipe = acpbuild.load_recipe(path, env={})
    assert recipe.steps["reel"].deps == ("card[a]", "card[b]", "card[c]")
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    reel = probe(tmp_path / "out" / "reel.mp4")
    assert reel.duration_s == pytest.approx(3.0, abs=0.15)


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        # every item writing the same file: caught even while there is one item
        ('[steps.s]\nkind = "text"\nforeach = "scripts/*.md"\nprompt = "${item.text}"\noutput = "same.txt"\n',
         "is the same for every item", 5),
        ('[steps.s]\nkind = "text"\nforeach = [{ id = "only" }]\nprompt = "x"\noutput = "same.txt"\n',
         "is the same for every item", 5),
        # two items whose ids collide on one output
        ('[steps.s]\nkind = "text"\nforeach = [{ id = "a", n = "x" }, { id = "b", n = "x" }]\nprompt = "x"\noutput = "${item.n}.txt"\n',
         "both write x.txt", 5),
        # a field items do not have, with the nearest one suggested
        ('[steps.s]\nkind = "text"\nforeach = "scripts/*.md"\nprompt = "${item.txt}"\noutput = "${item.stem}.txt"\n',
         "did you mean '${item.text}'", 4),
        # a glob that matches nothing
        ('[steps.s]\nkind = "text"\nforeach = "drafts/*.md"\nprompt = "x"\noutput = "${item.stem}.txt"\n',
         "matches no file", 3),
        # a CSV that is not there
        ('[steps.s]\nkind = "text"\nforeach = "rows.csv"\nprompt = "x"\noutput = "${item.id}.txt"\n',
         "foreach file not found", 3),
        # a foreach step's outputs put into one text parameter
        (('[steps.s]\nkind = "text"\nforeach = "scripts/*.md"\nprompt = "x"\noutput = "${item.stem}.txt"\n'
         '[steps.t]\nkind = "text"\nprompt = "${steps.s}"\noutput = "t.txt"\n'),
         "is a foreach step", 8),
    ],
)
def test_foreach_mistakes_are_recipe_errors(tmp_path: Path, body: str, message: str, line: int) -> None:
    path = write_repo(tmp_path, body)
    with pytest.raises(RecipeError) as caught:
        acpbuild.load_recipe(path, env={})
    assert message in str(caught.value)
    assert caught.value.line == line
