"""The recipe as doit sees it: the task contract, doit's own file, and a plain `dodo.py`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import acpbuild
from acpbuild.engine.context import Context
from acpbuild.engine.tasks import task_dicts
from acpbuild.recipe import load_recipe
from tests.conftest import provider_calls

ROOT = Path(__file__).resolve().parent.parent

# An external input file, a step reading it, and a step using that step's output.
WITH_INPUT = """\
[recipe]
name = "photo"
output_dir = "out"

[steps.gray]
kind = "image_to_image"
image = "photo.png"
operation = "grayscale"
output = "gray.png"

[steps.facts]
kind = "image_understanding"
image = "${steps.gray}"
prompt = "What is this?"
output = "facts.txt"
"""


@pytest.fixture
def photo_recipe(tmp_path: Path) -> Path:
    Image.new("RGB", (64, 48), (200, 40, 40)).save(tmp_path / "photo.png")
    recipe = tmp_path / "photo.toml"
    recipe.write_text(WITH_INPUT, encoding="utf-8")
    return recipe


def _call(entry: tuple[Any, ...]) -> object:
    function, args = entry
    return function(*args)


def test_each_step_is_a_task_with_its_edges_files_targets_and_ledger_check(photo_recipe: Path) -> None:
    recipe = load_recipe(photo_recipe, env={})
    ctx = Context(recipe, env={})
    try:
        tasks = {t["name"]: t for t in task_dicts(ctx)}
    finally:
        ctx.close()
    out = photo_recipe.parent / "out"
    assert list(tasks) == ["gray", "facts"]  # build order
    # an external input is a file_dep; another step's output is a task_dep, not a file_dep
    assert tasks["gray"]["file_dep"] == [str(photo_recipe.parent / "photo.png")]
    assert tasks["gray"]["task_dep"] == []
    assert tasks["facts"]["file_dep"] == [] and tasks["facts"]["task_dep"] == ["gray"]
    assert tasks["gray"]["targets"] == [str(out / "gray.png")]
    assert tasks["facts"]["targets"] == [str(out / "facts.txt")]
    # the uptodate check asks the ledger: nothing is built yet, so nothing is up to date
    # (as doit takes it: a function and its arguments)
    assert all(len(t["uptodate"]) == 1 and _call(t["uptodate"][0]) is False for t in tasks.values())
    # what `doit list` shows: the step's description, else what it makes and with what
    assert tasks["gray"]["doc"] == f"image_to_image with local/{recipe.steps['gray'].model} -> gray.png"


TEXT = '[steps.a]\nkind = "text"\nprompt = "one"\noutput = "a.txt"\n'
IMAGE = '[steps.b]\nkind = "text_to_image"\nprompt = "two"\noutput = "b.png"\n'
PAID = '[steps.{0}]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\nprompt = "{0}"\noutput = "{0}.txt"\n'


@pytest.mark.parametrize(
    ("steps", "threads"),
    [
        (TEXT, 0),  # template text only: pure Python, so doit's own serial runner, whatever -j says
        (TEXT + IMAGE, 4),  # a local image as well: -j threads
        (TEXT + PAID.format("b") + PAID.format("c"), 6),  # and one more for each paid step, which may wait
    ],
    ids=["in-process only", "local media", "paid"],
)
def test_doit_gets_threads_only_where_a_step_can_wait(tmp_path: Path, steps: str, threads: int) -> None:
    from acpbuild.engine.tasks import RecipeLoader

    (tmp_path / "r.toml").write_text(steps)
    ctx = Context(load_recipe(tmp_path / "r.toml", env={}), env={}, jobs=4)
    try:
        assert RecipeLoader(ctx, jobs=4, keep_going=False).load_doit_config()["num_process"] == threads
        assert RecipeLoader(ctx, jobs=1, keep_going=False).load_doit_config()["num_process"] == 0
    finally:
        ctx.close()


def test_every_input_file_of_a_step_is_read_single_or_in_lists() -> None:
    # a provider's kind may take one file and a list of files (say, an image and its references)
    from acpbuild.engine.tasks import input_files
    from acpbuild.recipe import Step

    a, b, c = (Path(f"/project/{n}.png") for n in "abc")
    params = {"image": a, "prompt": "a harbour", "references": [b, [c]], "strength": 0.5}
    step = Step("s", "image_to_image", "plugin", "m", params, "s.png", Path("/project/out/s.png"), "image", ())
    assert input_files(step) == [a, b, c]


def test_editing_a_parameter_of_a_step_with_an_input_file_reruns_it(photo_recipe: Path) -> None:
    # doit alone would call the step up to date: its file_dep and target are untouched
    store = photo_recipe.parent / ".acpbuild"
    assert acpbuild.run(photo_recipe, jobs=2).success
    photo_recipe.write_text(WITH_INPUT.replace('"grayscale"', '"mirror"'), encoding="utf-8")
    result = acpbuild.run(photo_recipe, jobs=2)
    assert result.steps["gray"].status == "ran" and result.steps["gray"].reason == "operation changed"
    assert result.steps["facts"].status == "ran"
    assert provider_calls(store) == 4


def test_doits_dependency_file_is_sqlite_inside_the_store(photo_recipe: Path) -> None:
    assert acpbuild.run(photo_recipe).success
    (dep_file,) = (photo_recipe.parent / ".acpbuild").glob("doit-*")
    assert dep_file.name == "doit-photo.sqlite3"
    assert dep_file.read_bytes()[:16] == b"SQLite format 3\0"
    assert not list(photo_recipe.parent.glob(".doit.db*"))


@pytest.mark.slow
def test_the_projects_dodo_lists_and_builds_recipe_steps_as_doit_tasks(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dodo.py", tmp_path / "dodo.py")
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    (tmp_path / ".git").mkdir()  # a checkout: recipes/ write to ../out, at the work tree's root

    def doit(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "doit", *args], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    listed = {line.split()[0] for line in doit("list").splitlines()}
    steps = {"quickstart:script", "quickstart:narration", "quickstart:cover", "quickstart:clip", "quickstart:final"}
    assert {"test", "lint", "bench", "quickstart"} | steps <= listed
    doit("quickstart:clip")  # one step and what it needs, nothing else
    out = tmp_path / "out" / "quickstart"
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "cover.png"]
    assert (tmp_path / ".acpbuild" / "doit-project.sqlite3").read_bytes()[:15] == b"SQLite format 3"
    assert not list(tmp_path.glob(".doit.db*"))


def test_a_run_doit_refuses_fails_and_is_never_taken_for_up_to_date(
    photo_recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pure plumbing: whatever makes doit refuse the tasks (here a name it cannot take),
    # the run must fail with doit's reason, and no no-op manifest may record it as done.
    import acpbuild.engine.tasks

    real = acpbuild.engine.tasks.task_dicts

    def refused(*args: object, **kwargs: object) -> list[dict[str, object]]:
        tasks = real(*args, **kwargs)  # type: ignore[arg-type]
        tasks[0]["name"] = "gray=broken"
        return tasks

    monkeypatch.setattr(acpbuild.engine.tasks, "task_dicts", refused)
    result = acpbuild.run(photo_recipe)
    assert not result.success and result.exit_code == 1
    # doit's own words, on one line
    assert any("doit stopped the run" in e and "name must not use the char '='" in e for e in result.errors), result.errors
    assert {r.status for r in result.steps.values()} == {"skipped"}
    assert {r.reason for r in result.steps.values()} == {"not run: doit stopped the run"}
    assert not list((photo_recipe.parent / ".acpbuild").glob("noop-*"))


def test_recipe_tasks_are_named_for_the_task_function_that_yields_them(photo_recipe: Path) -> None:
    # in a dodo.py, `task_photo` yields the steps as sub-tasks: doit calls them photo:gray and
    # photo:facts, so one step's dependency on another must name the other's full name
    def task_photo() -> Iterator[dict[str, Any]]:
        yield from acpbuild.recipe_tasks(photo_recipe)

    def task_shoot() -> Iterator[dict[str, Any]]:
        yield from acpbuild.recipe_tasks(str(photo_recipe), basename="album")

    for task_fn, basename in ((task_photo, "photo"), (task_shoot, "album")):
        tasks = {t["name"]: t for t in task_fn()}
        assert list(tasks) == ["gray", "facts"]  # doit adds the basename itself
        assert tasks["gray"]["task_dep"] == []
        assert tasks["facts"]["task_dep"] == [f"{basename}:gray"]
        assert tasks["facts"]["targets"] == [str(photo_recipe.parent / "out" / "facts.txt")]
        assert _call(tasks["gray"]["uptodate"][0]) is False  # the ledger says nothing is built yet


def test_a_dodo_builds_a_paid_step_as_written_never_its_draft(tmp_path: Path) -> None:
    recipe = tmp_path / "paid.toml"
    recipe.write_text(
        '[steps.line]\nkind = "text"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
        'prompt = "One line about a harbour."\noutput = "line.txt"\n'
    )
    (task,) = acpbuild.recipe_tasks(recipe)
    assert task["doc"] == "text with openrouter/google/gemini-2.5-flash -> line.txt"
