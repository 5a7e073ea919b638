"""Outputs stay inside the project: output_dir at load, each output path at load, every write and removal.

Each way out is tried, and each test ends by checking that the folder outside
is still empty: a refusal that wrote anyway would not count.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import acpbuild
from acpbuild.cli import main
from acpbuild.engine.workflow import clean
from acpbuild.errors import RecipeError, StoreError
from acpbuild.recipe import load_recipe
from acpbuild.store import confine

ROOT = Path(__file__).parent.parent

STEP = """
[steps.note]
kind = "text"
prompt = "a lighthouse"
output = "{output}"
"""


def project(tmp_path: Path, *, output: str = "note.txt", output_dir: str = "out", head: str = "") -> Path:
    """A recipe at tmp_path/project/acpbuild.toml (not in a git work tree), and an empty tmp_path/outside."""
    (tmp_path / "outside").mkdir(exist_ok=True)
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    recipe = folder / "acpbuild.toml"
    text = f'[recipe]\nname = "p"\noutput_dir = "{output_dir}"\n{head}' + STEP.format(output=output)
    recipe.write_text(text, encoding="utf-8")
    return recipe


def nothing_outside(tmp_path: Path) -> None:
    assert list((tmp_path / "outside").iterdir()) == []


def config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return {"ACPBUILD_CONFIG": str(path)}


# -- output_dir at load ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "output_dir",
    [
        "../outside",  # climbs out of the recipe's folder, with no git work tree around it
        "{outside}",  # an absolute path nobody listed in output_roots
        "../project/../outside",  # climbs back in and out again
    ],
)
def test_an_output_dir_outside_the_project_is_refused(tmp_path: Path, output_dir: str) -> None:
    recipe = project(tmp_path, output_dir=output_dir.format(outside=tmp_path / "outside"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, env={})
    assert caught.value.table == "recipe.output_dir" and caught.value.line == 3
    assert "outside the project" in caught.value.message and "output_roots" in (caught.value.tip or "")
    assert main(["run", "--yes", str(recipe)]) == 2
    nothing_outside(tmp_path)


def test_an_output_dir_that_is_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    (recipe.parent / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(RecipeError, match="through a symlink") as caught:
        load_recipe(recipe, env={})
    assert caught.value.table == "recipe.output_dir"
    nothing_outside(tmp_path)


def test_an_output_dir_with_a_nul_byte_is_a_recipe_error(tmp_path: Path) -> None:
    recipe = project(tmp_path, output_dir="o\\u0000ut")
    with pytest.raises(RecipeError, match="not a folder path") as caught:
        load_recipe(recipe, env={})
    assert caught.value.table == "recipe.output_dir"


def test_an_absolute_output_dir_listed_in_output_roots_is_accepted(tmp_path: Path) -> None:
    media = tmp_path / "media"
    recipe = project(tmp_path, output_dir=str(media / "promo"))
    env = config(tmp_path, f'output_roots = ["{media}"]\n')
    assert load_recipe(recipe, env=env).output_dir == media / "promo"
    assert acpbuild.run(recipe, env=env).success
    assert (media / "promo" / "note.txt").is_file()
    # and another root does not let it through
    with pytest.raises(RecipeError, match="outside the project"):
        load_recipe(recipe, env=config(tmp_path, f'output_roots = ["{tmp_path / "elsewhere"}"]\n'))


def test_the_git_work_tree_root_is_inside_the_project(tmp_path: Path) -> None:
    # the shipped layout: recipes/NAME.toml writing to ../out/NAME, at the root of a work tree
    (tmp_path / "repo" / "recipes").mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    recipe = tmp_path / "repo" / "recipes" / "promo.toml"
    recipe.write_text('[recipe]\noutput_dir = "../out/promo"\n' + STEP.format(output="a.txt"), encoding="utf-8")
    assert load_recipe(recipe, env={}).output_dir == tmp_path / "repo" / "out" / "promo"
    # a linked worktree has a .git file, not a folder: it counts too
    (tmp_path / "repo" / ".git").rmdir()
    (tmp_path / "repo" / ".git").write_text("gitdir: /somewhere/.git/worktrees/x\n", encoding="utf-8")
    assert load_recipe(recipe, env={}).output_dir == tmp_path / "repo" / "out" / "promo"
    # but not above the work tree
    recipe.write_text('[recipe]\noutput_dir = "../../out"\n' + STEP.format(output="a.txt"), encoding="utf-8")
    with pytest.raises(RecipeError, match="outside the project"):
        load_recipe(recipe, env={})


def test_the_shipped_recipes_write_to_out_at_the_work_tree_root() -> None:
    if not os.path.lexists(ROOT / ".git"):
        pytest.skip("not a git checkout")
    recipe = load_recipe(ROOT / "recipes" / "quickstart.toml", env={})
    assert recipe.output_dir == (ROOT / "out" / "quickstart").resolve()


def test_config_output_roots_are_validated(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    for text in ('output_roots = "/srv"\n', 'output_roots = ["relative/path"]\n', "output_roots = [1]\n"):
        env = config(tmp_path, text)
        with pytest.raises(RecipeError, match="output_roots"):
            acpbuild.run(recipe, env=env)


# -- each output at load ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row_id", "message"),
    [
        ("../../outside/x", "escapes output_dir"),  # climbs out of output_dir
        ("{outside}/x", "must be a relative path"),  # absolute
        ("a/../../x", "escapes output_dir"),
        ("a/../b", "has a '..' part"),  # stays inside, but '..' is not an output path's business
    ],
)
def test_a_csv_row_cannot_put_an_output_outside(tmp_path: Path, row_id: str, message: str) -> None:
    recipe = project(tmp_path)
    recipe.write_text(
        '[recipe]\nname = "p"\n\n[steps.card]\nkind = "text"\nforeach = "rows.csv"\n'
        'prompt = "${item.name}"\noutput = "${item.id}.txt"\n',
        encoding="utf-8",
    )
    row = row_id.format(outside=tmp_path / "outside")
    (recipe.parent / "rows.csv").write_text(f"id,name\nok,fine\n{row},evil\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=message) as caught:
        load_recipe(recipe, env={})
    # the step and the item are named
    assert caught.value.table == "steps.card.output" and caught.value.line == 8
    assert f"foreach item {row!r}" in caught.value.message
    assert main(["run", "--yes", str(recipe)]) == 2
    nothing_outside(tmp_path)


def test_an_inline_foreach_field_cannot_put_an_output_outside(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    recipe.write_text(
        '[steps.card]\nkind = "text"\nforeach = [{ id = "a", dir = "../../outside" }]\n'
        'prompt = "x"\noutput = "${item.dir}/${item.id}.txt"\n',
        encoding="utf-8",
    )
    with pytest.raises(RecipeError, match="escapes output_dir"):
        load_recipe(recipe, env={})
    nothing_outside(tmp_path)


def test_an_output_with_a_nul_byte_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="must be a relative path") as caught:
        load_recipe(project(tmp_path, output="a\\u0000.txt"), env={})
    assert caught.value.table == "steps.note.output"


# -- at write time ---------------------------------------------------------------------------
def test_a_symlink_inside_output_dir_pointing_outside_is_not_followed(tmp_path: Path) -> None:
    # a cloned project can carry out/link -> /elsewhere: the recipe is fine as written
    recipe = project(tmp_path, output="link/x.txt")
    (recipe.parent / "out").mkdir()
    (recipe.parent / "out" / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    load_recipe(recipe, env={})
    result = acpbuild.run(recipe, env={})
    assert not result.success
    error = result.steps["note"].error or ""
    assert "refusing to write" in error and "link" in error and str(tmp_path / "outside") in error
    nothing_outside(tmp_path)


def test_a_symlink_deeper_down_is_refused_too(tmp_path: Path) -> None:
    recipe = project(tmp_path, output="a/link/b/x.txt")
    (recipe.parent / "out" / "a").mkdir(parents=True)
    (recipe.parent / "out" / "a" / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    result = acpbuild.run(recipe, env={})
    assert not result.success and "refusing to write" in (result.steps["note"].error or "")
    nothing_outside(tmp_path)


def test_a_symlink_that_stays_inside_output_dir_is_followed(tmp_path: Path) -> None:
    recipe = project(tmp_path, output="latest/x.txt")
    (recipe.parent / "out" / "v2").mkdir(parents=True)
    (recipe.parent / "out" / "latest").symlink_to("v2", target_is_directory=True)
    assert acpbuild.run(recipe, env={}).success
    assert (recipe.parent / "out" / "v2" / "x.txt").is_file()


def test_an_output_file_that_is_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    target = tmp_path / "outside" / "victim.txt"
    (recipe.parent / "out").mkdir()
    (recipe.parent / "out" / "note.txt").symlink_to(target)
    assert acpbuild.run(recipe, env={}).success
    assert not (recipe.parent / "out" / "note.txt").is_symlink() and not target.exists()
    nothing_outside(tmp_path)


def test_an_output_dir_swapped_for_a_symlink_after_loading_is_refused(tmp_path: Path) -> None:
    recipe = load_recipe(project(tmp_path), env={})
    recipe.output_dir.symlink_to(tmp_path / "outside", target_is_directory=True)
    result = acpbuild.run(recipe, env={})
    assert not result.success and "refusing to write" in (result.steps["note"].error or "")
    nothing_outside(tmp_path)


def test_make_parents_refuses_a_symlink_planted_on_the_way(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (tmp_path / "outside").mkdir()
    root.mkdir()
    (root / "a").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(StoreError, match=f"{root / 'a'} leads to {tmp_path / 'outside'}"):
        confine.make_parents(root / "a" / "b" / "c" / "x.txt", root)
    nothing_outside(tmp_path)  # not even the folders b/c


@pytest.mark.parametrize("dest", ["outside/x.txt", "out"])
def test_make_parents_refuses_a_destination_outside_the_output_folder_or_the_folder_itself(
    tmp_path: Path, dest: str
) -> None:
    (tmp_path / "outside").mkdir()
    with pytest.raises(StoreError, match="is not inside the output folder"):
        confine.make_parents(tmp_path / dest, tmp_path / "out")
    nothing_outside(tmp_path)


def test_a_group_output_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    recipe.write_text(
        '[steps.a]\nkind = "text"\nprompt = "one"\noutput = "a.txt"\n'
        '[steps.b]\nkind = "text"\nprompt = "two"\noutput = "b.txt"\n'
        '[groups.best]\nsteps = ["a", "b"]\nmerge = "first_success"\noutput = "chosen/best.txt"\n',
        encoding="utf-8",
    )
    (recipe.parent / "out").mkdir()
    (recipe.parent / "out" / "chosen").symlink_to(tmp_path / "outside", target_is_directory=True)
    result = acpbuild.run(recipe, env={})
    assert not result.success
    assert any("refusing to write" in (r.error or "") for r in result.steps.values()) or any(
        "refusing to write" in e for e in result.errors
    )
    nothing_outside(tmp_path)


def test_a_groups_chosen_member_replaced_by_a_symlink_out_of_the_project_is_not_read(tmp_path: Path) -> None:
    # A fresh clone holds the outputs and the lock but no store: the group copies its chosen
    # member's file into the store. A symlink planted in that file's place, to a file outside
    # with the same bytes (so the lock still vouches for it), must not carry that file in.
    recipe = project(tmp_path)
    recipe.write_text(
        '[recipe]\nname = "p"\noutput_dir = "out"\n'
        '[steps.a]\nkind = "text"\nprompt = "one"\noutput = "a.txt"\n'
        '[steps.b]\nkind = "text"\nprompt = "two"\noutput = "b.txt"\n'
        '[groups.best]\nsteps = ["a", "b"]\nmerge = "first_success"\noutput = "best.txt"\n',
        encoding="utf-8",
    )
    assert acpbuild.run(recipe, env={}).success
    clone = tmp_path / "clone"
    (clone / "out").mkdir(parents=True)
    for name in ("acpbuild.toml", "acpbuild.lock"):
        (clone / name).write_bytes((recipe.parent / name).read_bytes())
    planted = tmp_path / "outside" / "a.txt"  # the chosen member's bytes, outside
    planted.write_bytes((recipe.parent / "out" / "a.txt").read_bytes())
    (clone / "out" / "a.txt").symlink_to(planted)

    result = acpbuild.run(clone / "acpbuild.toml", env={})
    error = result.steps["best"].error or ""
    assert result.steps["best"].status == "failed"
    assert f"refusing to read {clone / 'out' / 'a.txt'}: it leads to {planted}" in error
    assert not (clone / "out" / "best.txt").exists()
    # the member's own file, where the symlink was, is placed as before
    (clone / "out" / "a.txt").unlink()
    (clone / "out" / "a.txt").write_bytes(planted.read_bytes())
    assert acpbuild.run(clone / "acpbuild.toml", env={}).success
    assert (clone / "out" / "best.txt").read_bytes() == planted.read_bytes()


def test_clean_does_not_remove_through_a_symlink(tmp_path: Path) -> None:
    recipe = project(tmp_path, output="link/x.txt")
    (recipe.parent / "out").mkdir()
    (recipe.parent / "out" / "link").mkdir()
    assert acpbuild.run(recipe, env={}).success
    # replaced by a symlink to a folder holding a file of the same name
    (recipe.parent / "out" / "link" / "x.txt").unlink()
    (recipe.parent / "out" / "link").rmdir()
    (tmp_path / "outside" / "x.txt").write_text("keep me", encoding="utf-8")
    (recipe.parent / "out" / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert main(["clean", str(recipe)]) == 1
    assert (tmp_path / "outside" / "x.txt").read_text(encoding="utf-8") == "keep me"


def test_clean_removes_a_symlink_output_itself_not_its_target(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    (tmp_path / "outside" / "victim.txt").write_text("keep me", encoding="utf-8")
    (recipe.parent / "out").mkdir()
    (recipe.parent / "out" / "note.txt").symlink_to(tmp_path / "outside" / "victim.txt")
    assert main(["clean", str(recipe)]) == 0
    assert not os.path.lexists(recipe.parent / "out" / "note.txt")
    assert (tmp_path / "outside" / "victim.txt").read_text(encoding="utf-8") == "keep me"


def test_clean_lists_only_the_outputs_it_removed(tmp_path: Path) -> None:
    recipe = project(tmp_path)
    assert acpbuild.run(recipe, env={}).success
    assert clean(recipe, env={}) == [recipe.parent / "out" / "note.txt"]
    assert clean(recipe, env={}) == []  # nothing was left to remove
