"""``--shard I/N``: a CI matrix splits a recipe's foreach items, the same way on every machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import acpbuild
from acpbuild.cli import main
from acpbuild.engine.workflow import selected, shard_of
from acpbuild.errors import RecipeError

IDS = [f"row{n:02d}" for n in range(24)]

RECIPE = """
[recipe]
name = "catalogue"

[steps.caption]
kind = "text"
foreach = [{items}]
prompt = "A caption for ${{item.id}}"
output = "captions/${{item.id}}.txt"

[steps.title]
kind = "text"
foreach = "${{steps.caption}}"
prompt = "A title from ${{steps.caption}}"
output = "titles/${{item.id}}.txt"

[steps.index]
kind = "text"
prompt = "The catalogue's index page"
output = "index.txt"
"""


def write(root: Path, ids: list[str] = IDS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "acpbuild.toml"
    path.write_text(RECIPE.format(items=", ".join(f'{{ id = "{i}" }}' for i in ids)))
    return path


def items_of(names: list[str]) -> set[str]:
    return {n.split("[", 1)[1].rstrip("]") for n in names if "[" in n}


def test_the_shards_split_the_items_with_each_item_in_exactly_one(tmp_path: Path) -> None:
    recipe = acpbuild.load_recipe(write(tmp_path), env={})
    shards = [items_of(selected(recipe, None, (i, 3))) for i in (1, 2, 3)]
    assert set().union(*shards) == set(IDS)
    assert sum(len(s) for s in shards) == len(IDS)
    assert all(shards), "24 items over 3 shards: none is empty"
    # an item's steps fall together: its title is built where its caption is
    for i in (1, 2, 3):
        names = selected(recipe, None, (i, 3))
        assert {n for n in names if n.startswith("caption[")} == {f"caption[{x}]" for x in shards[i - 1]}
        assert {n for n in names if n.startswith("title[")} == {f"title[{x}]" for x in shards[i - 1]}
        assert "index" not in names  # steps outside a foreach are left to a run without a shard


def test_an_item_stays_in_its_shard_when_other_items_come_and_go(tmp_path: Path) -> None:
    recipe = acpbuild.load_recipe(write(tmp_path), env={})
    fewer = acpbuild.load_recipe(write(tmp_path / "fewer", IDS[5:17]), env={})
    for i in (1, 2, 3, 4):
        assert items_of(selected(fewer, None, (i, 4))) == items_of(selected(recipe, None, (i, 4))) & set(IDS[5:17])
    assert shard_of("row07", 4) == shard_of("row07", 4) and 1 <= shard_of("row07", 4) <= 4


def test_sharded_runs_then_a_full_run_build_everything_once(tmp_path: Path) -> None:
    path = write(tmp_path)
    built: list[str] = []
    for i in (1, 2):
        result = acpbuild.run(path, env={}, shard=(i, 2))
        assert result.success
        built += [n for n, r in result.steps.items() if r.status == "ran"]
    assert sorted(built) == sorted(n for n in acpbuild.load_recipe(path, env={}).steps if n != "index")
    final = acpbuild.run(path, env={})
    assert {n for n, r in final.steps.items() if r.status == "ran"} == {"index"}


def test_the_command_line_takes_a_shard_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path)
    assert main(["plan", "--shard", "2/3", "--json"]) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out)["steps"]]
    assert items_of(names) == items_of(selected(acpbuild.load_recipe(tmp_path / "acpbuild.toml", env={}), None, (2, 3)))
    for bad in ("0/3", "4/3", "two", "1/"):
        with pytest.raises(SystemExit) as exited:
            main(["run", "--shard", bad])
        assert exited.value.code == 2
        assert "shard" in capsys.readouterr().err


def test_a_recipe_without_foreach_cannot_be_sharded(tmp_path: Path) -> None:
    path = tmp_path / "acpbuild.toml"
    path.write_text('[steps.one]\nkind = "text"\nprompt = "hi"\noutput = "one.txt"\n')
    with pytest.raises(RecipeError, match="foreach"):
        acpbuild.run(path, env={}, shard=(1, 2))
