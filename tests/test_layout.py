"""Where a store is, and what its files are called: one answer, whoever asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RECIPES

from acpbuild.engine import noop
from acpbuild.recipe import load_recipe
from acpbuild.store import layout

# (ACPBUILD_STORE, is there a recipe, its [recipe] store) -> the store, relative to tmp_path, and its source
CASES = [
    # the environment wins over what the recipe says
    pytest.param("team", True, "cache", "team", "ACPBUILD_STORE", id="env-over-recipe"),
    # a relative ACPBUILD_STORE is taken from the current directory, not the recipe's
    pytest.param("../shared", True, None, "../shared", "ACPBUILD_STORE", id="env-relative-to-cwd"),
    # the recipe's setting is relative to the recipe
    pytest.param(None, True, "cache", "project/cache", "recipe", id="recipe-setting"),
    # no setting: .acpbuild beside the recipe
    pytest.param(None, True, None, "project/.acpbuild", "recipe", id="beside-recipe"),
    # an empty setting or variable counts as unset
    pytest.param("", True, "", "project/.acpbuild", "recipe", id="empty-is-unset"),
    # no recipe: .acpbuild in the current directory
    pytest.param(None, False, None, "work/.acpbuild", "default", id="no-recipe"),
    # no recipe, and the environment still wins
    pytest.param("team", False, None, "team", "ACPBUILD_STORE", id="no-recipe-env"),
]


@pytest.mark.parametrize(("var", "recipe", "setting", "expected", "source"), CASES)
def test_locate(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    var: str | None,
    recipe: bool,
    setting: str | None,
    expected: str,
    source: str,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # where a relative ACPBUILD_STORE is taken from
    env = {} if var is None else {"ACPBUILD_STORE": var}
    found = layout.locate(env, tmp_path / "project" if recipe else None, setting, cwd=work)
    # relative ACPBUILD_STORE values are read from work/
    base = work if var else tmp_path
    assert found == ((base / expected).resolve(), source)
    assert found[0].is_absolute()


def test_store_root_takes_the_recipes_setting_and_the_folder_asked_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the process's own folder is not the one asked about
    root = tmp_path.resolve()
    assert layout.store_root({}, tmp_path / "project", "cache") == root / "project" / "cache"
    assert layout.store_root({}, cwd=tmp_path / "work") == root / "work" / ".acpbuild"


@pytest.mark.parametrize(
    ("var", "line"),
    [
        # the recipe names its store
        (None, 'store = "cache"\n'),
        # an empty setting is the default, to the fast path as to the build
        (None, 'store = ""\n'),
        # no setting
        (None, ""),
        # the environment wins
        ("elsewhere", 'store = "cache"\n'),
    ],
)
def test_the_build_and_the_fast_path_agree_on_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str | None, line: str
) -> None:
    monkeypatch.chdir(tmp_path)
    text = (RECIPES / "chain.toml").read_text().replace("[recipe]\n", "[recipe]\n" + line, 1)
    recipe = tmp_path / "chain.toml"
    recipe.write_text(text)
    env = {} if var is None else {"ACPBUILD_STORE": var}
    store = load_recipe(recipe, env).store_dir
    assert noop._store_of(recipe, text.encode(), env) == store
    assert store == layout.store_root(env, tmp_path, "cache" if "cache" in line else None)


def test_file_names_in_a_store(tmp_path: Path) -> None:
    # existing stores hold these names: renaming one orphans what users already paid for
    assert layout.ledger_path(tmp_path) == tmp_path / "ledger.sqlite3"
    assert layout.objects_dir(tmp_path) == tmp_path / "objects"
    assert layout.tmp_dir(tmp_path) == tmp_path / "tmp"
    assert layout.dep_file(tmp_path, "demo") == tmp_path / "doit-demo.sqlite3"
    assert layout.noop_manifest(tmp_path, "demo") == tmp_path / "noop-demo.json"


def test_reading_the_layout_opens_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert not layout.has_ledger(store)
    assert layout.store_root({}, tmp_path) == tmp_path / ".acpbuild"
    assert not store.exists() and not (tmp_path / ".acpbuild").exists()
    layout.open_ledger(store).close()
    assert layout.has_ledger(store)


def test_the_layout_imports_no_backend() -> None:
    # the no-op fast path reads the layout before anything heavy is imported
    code = (
        "import sys, acpbuild.store.layout\n"
        "loaded = [m for m in ('sqlite3', 'acpbuild.store.sqlite', 'acpbuild.store.local', 'xxhash') if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
