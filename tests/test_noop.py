"""The no-op fast path: nothing changed means nothing loaded; anything changed means the full build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import copy_recipe, link_until_ctime_moves

from acpbuild.cli import main
from acpbuild.store.blobs import LinkMode

FAST = "nothing changed since the last run"

RECIPE = """
[steps.summary]
kind = "text"
foreach = "scripts/*.md"
prompt = "${item.text} (${env.ACPBUILD_TEST_TONE})"
output = "summaries/${item.stem}.txt"

[steps.cover]
kind = "image_understanding"
image = "picture.png"
output = "facts.txt"
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    from PIL import Image

    monkeypatch.setenv("ACPBUILD_TEST_TONE", "calm")
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.md").write_text("Alpha.")
    (tmp_path / "scripts" / "b.md").write_text("Beta.")
    Image.new("RGB", (32, 32), "teal").save(tmp_path / "picture.png")
    path = tmp_path / "acpbuild.toml"
    path.write_text(RECIPE)
    assert main(["run", str(path)]) == 0
    assert FAST not in capsys.readouterr().out
    return path


def run_out(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["run", str(path), *extra]) == 0
    return capsys.readouterr().out


def test_a_second_run_takes_the_fast_path(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert FAST in run_out(repo, capsys)
    assert FAST in run_out(repo, capsys)


def _edit_recipe(repo: Path) -> None:
    repo.write_text(repo.read_text().replace("Alpha", "Alpha") + "\n# a comment\n")


def _touch_input(repo: Path) -> None:
    (repo.parent / "picture.png").touch()


def _add_item(repo: Path) -> None:
    (repo.parent / "scripts" / "c.md").write_text("Gamma.")


def _edit_item(repo: Path) -> None:
    (repo.parent / "scripts" / "a.md").write_text("Alpha, changed.")


def _delete_output(repo: Path) -> None:
    (repo.parent / "out" / "facts.txt").unlink()


def _modify_output(repo: Path) -> None:
    (repo.parent / "out" / "summaries" / "b.txt").write_text("edited by hand")


@pytest.mark.parametrize(
    "change",
    [
        _edit_recipe,  # any byte of the recipe
        _touch_input,  # an input file's mtime
        _add_item,  # a new file in a globbed folder
        _edit_item,  # a globbed file's content
        _delete_output,  # an output gone
        _modify_output,  # an output edited
    ],
)
def test_any_change_falls_back_to_the_full_build(
    repo: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], None]
) -> None:
    change(repo)
    assert FAST not in run_out(repo, capsys)
    assert FAST in run_out(repo, capsys)  # and the full build leaves a fresh manifest


def _recolour_input(repo: Path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32), "navy").save(repo.parent / "picture.png")


def _reword_recipe(repo: Path) -> None:
    repo.write_text(repo.read_text().replace("(${env.", "[${env.").replace("TONE})", "TONE}]"))


# (what is edited while the build runs, the step after which it is edited, how many steps that reruns)
EDITS_DURING_A_RUN = [
    (_edit_item, "summary[a]", 1),  # a globbed file, read while the recipe loaded
    (_add_item, "summary[a]", 1),  # a new file in a globbed folder
    (_recolour_input, "cover", 1),  # an input file, read by its step
    (_reword_recipe, "summary[b]", 2),  # the recipe itself
]


@pytest.mark.parametrize(("change", "after", "reruns"), EDITS_DURING_A_RUN)
def test_an_input_edited_while_the_build_runs_is_built_next_time(
    repo: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], None], after: str, reruns: int
) -> None:
    import acpbuild
    from acpbuild.engine.results import Event

    def edit_midway(event: Event) -> None:
        if event.kind == "step_done" and event.step == after:
            change(repo)

    assert acpbuild.run(repo, on_event=edit_midway).success
    out = run_out(repo, capsys)
    assert FAST not in out and f"{reruns} ran" in out


# (the glob, the files there at the first build, the file added after it)
NEW_FILES_IN_FOLDERS_WITHOUT_A_MATCH = [
    ("s/**/*.md", ["s/a/x.md", "s/empty/readme.txt"], "s/empty/new.md"),  # a subfolder under **
    ("s/**/*.md", ["s/a/x.md", "s/b/c/readme.txt"], "s/b/c/new.md"),  # a deeper one
    ("s/*/x.md", ["s/a/x.md", "s/empty/readme.txt"], "s/empty/x.md"),  # a folder a wildcard part matches
    ("s/*/*/*.md", ["s/a/b/x.md", "s/a/c/readme.txt"], "s/a/c/new.md"),  # two wildcard parts
]


@pytest.mark.parametrize(("glob", "files", "added"), NEW_FILES_IN_FOLDERS_WITHOUT_A_MATCH)
def test_a_new_match_in_any_folder_the_glob_walks_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], glob: str, files: list[str], added: str
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    path = tmp_path / "acpbuild.toml"
    path.write_text(
        f'[steps.t]\nkind = "text"\nforeach = "{glob}"\nprompt = "${{item.text}}"\noutput = "o/${{item.path}}.txt"\n'
    )
    assert "1 ran" in run_out(path, capsys)
    assert FAST in run_out(path, capsys)
    (tmp_path / added).write_text("new")
    out = run_out(path, capsys)
    assert FAST not in out and "1 ran" in out


def test_a_glob_over_the_whole_project_does_not_watch_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # every run writes into .acpbuild; watching it would make the fast path never apply
    (tmp_path / "a.md").write_text("Alpha.")
    path = tmp_path / "acpbuild.toml"
    path.write_text('[steps.t]\nkind = "text"\nforeach = "**/*.md"\nprompt = "${item.text}"\noutput = "${item.stem}.txt"\n')
    run_out(path, capsys)
    run_out(path, capsys)  # the first build made out/ in a watched folder
    assert FAST in run_out(path, capsys)
    assert FAST in run_out(path, capsys)


def test_a_same_size_rewrite_with_its_mtime_put_back_is_built(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    picture = repo.parent / "picture.png"
    before = picture.stat()
    Image.new("RGB", (32, 32), "navy").save(picture)  # in place: same inode
    os.utime(picture, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = picture.stat()
    # only ctime tells: size, inode and mtime are what they were
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    out = run_out(repo, capsys)
    assert FAST not in out and "1 ran" in out
    assert "#000080" in (repo.parent / "out" / "facts.txt").read_text()  # navy


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_a_full_no_op_run_hashes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: LinkMode) -> None:
    from PIL import Image

    import acpbuild
    import acpbuild.keys

    Image.new("RGB", (32, 32), "teal").save(tmp_path / "picture.png")
    path = tmp_path / "acpbuild.toml"
    path.write_text(
        '[steps.cover]\nkind = "text_to_image"\nprompt = "a kite"\nwidth = 48\nheight = 32\noutput = "cover.png"\n'
        '[steps.facts]\nkind = "image_understanding"\nimage = "${steps.cover}"\noutput = "facts.txt"\n'
        '[steps.photo]\nkind = "image_understanding"\nimage = "picture.png"\noutput = "photo.txt"\n'
        # with hardlinks, the group's copy is one more name of cover's blob
        '[groups.best]\nsteps = ["cover"]\nmerge = "first_success"\noutput = "best.png"\n'
        '[steps.more]\nkind = "image_understanding"\nimage = "${steps.best}"\noutput = "more.txt"\n'
    )
    assert acpbuild.run(path, link=link).success
    if link == "hardlink":
        # Another name for the blob (another recipe sharing the store) changes the
        # ctime of every output linked to it; add names until the clock shows it.
        link_until_ctime_moves(tmp_path / "out" / "cover.png", tmp_path)
    calls: list[Path] = []
    real = acpbuild.keys.file_digest
    monkeypatch.setattr(acpbuild.keys, "file_digest", lambda p: calls.append(p) or real(p))
    result = acpbuild.run(path, link=link)
    assert {r.status for r in result.steps.values()} == {"uptodate"}
    assert calls == []


def test_an_output_edited_while_the_build_runs_is_restored_next_time(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import acpbuild
    from acpbuild.engine.results import Event

    facts = repo.parent / "out" / "facts.txt"
    built = facts.read_text()

    def edit_output(event: Event) -> None:
        if event.kind == "step_done" and event.step == "cover":
            facts.write_text("edited by hand")

    assert acpbuild.run(repo, on_event=edit_output).success
    out = run_out(repo, capsys)
    assert FAST not in out and "1 restored" in out
    assert facts.read_text() == built


def test_an_environment_value_the_recipe_uses_invalidates_it(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACPBUILD_TEST_TONE", "brisk")
    out = run_out(repo, capsys)
    assert FAST not in out and "2 ran" in out


def test_targets_drafts_and_the_switch_take_the_full_path(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert FAST not in run_out(repo, capsys, "cover")
    assert FAST not in run_out(repo, capsys, "--draft")
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")
    assert FAST not in run_out(repo, capsys)


def test_a_failed_run_leaves_no_manifest(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write_text(repo.read_text() + '\n[steps.voice]\nkind = "text_to_speech"\ntext = "hi"\nvoice = "xx-none"\noutput = "v.wav"\n')
    assert main(["run", str(repo)]) == 1
    capsys.readouterr()
    assert not list((repo.parent / ".acpbuild").glob("noop-*"))


def test_fast_json_has_the_shape_of_the_full_json(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = json.loads(run_out(repo, capsys, "--json"))
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")
    full = json.loads(run_out(repo, capsys, "--json"))
    assert fast.keys() == full.keys() and fast["totals"] == full["totals"]
    # and says the same of the run: its recipe, success, exit code, flags, errors
    assert {k: v for k, v in fast.items() if k != "steps"} == {k: v for k, v in full.items() if k != "steps"}
    assert fast["recipe"] == "acpbuild" and fast["success"] and fast["exit_code"] == 0
    for a, b in zip(fast["steps"], full["steps"], strict=True):
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
        assert a["seconds"] == 0.0  # no step did anything


def test_a_new_adapter_version_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy of the package stands for an installation whose adapter is edited;
    # step keys hold the adapter's version, so bumping it must rebuild the step.
    import acpbuild

    site = tmp_path / "site"
    shutil.copytree(Path(acpbuild.__file__).parent, site / "acpbuild", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "acpbuild.toml").write_text('[steps.t]\nkind = "text"\nprompt = "hello"\noutput = "t.txt"\n')

    def run() -> str:
        argv = [sys.executable, "-m", "acpbuild", "run"]
        return subprocess.run(argv, cwd=project, capture_output=True, text=True, check=True).stdout

    adapter = site / "acpbuild" / "providers" / "local" / "adapter.py"
    source = adapter.read_text()
    assert '    version = "1"\n' in source
    assert "1 ran" in run()
    assert FAST in run()
    adapter.write_text(source + "\n# an edit that keeps the version\n")
    assert FAST in run()  # the file moved, but the version it declares did not
    adapter.write_text(source.replace('    version = "1"\n', '    version = "2"\n'))
    out = run()
    assert FAST not in out and "1 ran" in out


def test_the_fast_path_imports_neither_doit_nor_pydantic(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe)]) == 0
    code = (
        "import sys; from acpbuild.cli import main\n"
        f"assert main(['run', {str(recipe)!r}]) == 0\n"
        "loaded = [m for m in ('doit', 'pydantic', 'tomli', 'rich', 'PIL') if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert FAST in done.stdout


def test_an_environment_variable_named_through_a_toml_escape_is_watched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # TOML decodes \u0024 to "$" before the loader sees the string, so no scan of
    # the file's bytes finds this reference; the names the loader read do.
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    monkeypatch.setenv("ACPBUILD_TEST_TONE", "calm")
    path = tmp_path / "acpbuild.toml"
    path.write_text('[steps.t]\nkind = "text"\nprompt = "Tone: \\u0024{env.ACPBUILD_TEST_TONE}"\noutput = "t.txt"\n')
    assert "1 ran" in run_out(path, capsys)
    assert FAST in run_out(path, capsys)
    monkeypatch.setenv("ACPBUILD_TEST_TONE", "angry")
    out = run_out(path, capsys)
    assert FAST not in out and "1 ran" in out
    assert "angry" in (tmp_path / "out" / "t.txt").read_text()


def test_a_run_the_fast_path_answers_is_the_last_run_the_report_shows(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert FAST in run_out(repo, capsys)
    assert main(["report", str(repo), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["statuses_from"] == "the last run"
    # what the fast path said, not what the full run before it did ("ran")
    assert {s["status"] for s in shown["steps"]} == {"uptodate"}


def test_the_fast_path_writes_the_last_run_once_until_another_run_writes_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acpbuild.keys import signature
    from acpbuild.store import layout

    kept = layout.last_run(repo.parent / ".acpbuild", "acpbuild")
    assert FAST in run_out(repo, capsys)
    answered = signature(kept)
    assert json.loads(kept.read_text())["totals"]["uptodate"] == 3
    # nothing changed, and the kept last run already says so: it is not written again
    assert FAST in run_out(repo, capsys)
    assert signature(kept) == answered
    # a full run writes its own last run; the next fast answer replaces it
    assert main(["run", str(repo), "summary"]) == 0
    assert json.loads(kept.read_text())["totals"]["uptodate"] == 2
    assert FAST in run_out(repo, capsys)
    assert json.loads(kept.read_text())["totals"]["uptodate"] == 3


# The fast path finds the recipe's name and store without a TOML parser; each
# layout must still lead it to the manifest the full build wrote.
RECIPE_TABLE_LAST = (
    '[steps.t]\nkind = "text"\n'
    f'prompt = "{"a long prompt, to put the recipe table well into the file; " * 5}"\n'
    'output = "t.txt"\n\n'
    '[recipe]\nname = "demo"\nstore = "cache"'  # the last line, without a newline
)
RECIPE_TABLE_FIRST = (
    '[recipe]\nstore = "cache"\n'
    '[vars]\nname = "Bob"\n'  # another table's "name" is not the recipe's
    '[steps.t]\nkind = "text"\nprompt = "hello ${name} [recipe]"\noutput = "t.txt"\n'
)


@pytest.mark.parametrize(
    ("text", "name"), [(RECIPE_TABLE_LAST, "demo"), (RECIPE_TABLE_FIRST, "acpbuild")], ids=["last", "first"]
)
def test_a_recipe_that_names_itself_or_its_store_takes_the_fast_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str, name: str
) -> None:
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    path = tmp_path / "acpbuild.toml"
    path.write_text(text)
    assert "1 ran" in run_out(path, capsys)
    assert (tmp_path / "cache" / f"noop-{name}.json").is_file()
    assert f"{FAST} of {name}" in run_out(path, capsys)


def test_a_recipe_that_is_not_utf8_gets_the_loaders_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    path = tmp_path / "acpbuild.toml"
    path.write_bytes(b'[recipe]\nname = "d\xff"\nstore = "c\xff"\n[steps.t]\nkind = "text"\nprompt = "hi"\noutput = "t.txt"\n')
    assert main(["run", str(path)]) == 2
    assert "acpbuild.toml: cannot read the recipe" in capsys.readouterr().err


def test_an_environment_variable_unset_since_the_last_run_is_an_error_naming_it(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACPBUILD_TEST_TONE")
    assert main(["run", str(repo)]) == 2
    assert "environment variable 'ACPBUILD_TEST_TONE' is not set" in capsys.readouterr().err


def test_a_source_that_could_not_be_read_is_never_vouched_for(tmp_path: Path) -> None:
    # The loader notes a source it could not stat as None ("unreadable"): say, a
    # folder inside one the user may list but not search. Root can stat anything,
    # so the manifest is written here as such a run would write it.
    import xxhash

    from acpbuild.engine import noop
    from acpbuild.keys import signature
    from acpbuild.store import layout

    path = tmp_path / "acpbuild.toml"
    path.write_text('[steps.t]\nkind = "text"\nprompt = "hi"\noutput = "t.txt"\n')
    assert main(["run", str(path)]) == 0
    store = layout.store_root({}, tmp_path)
    digest = xxhash.xxh3_128_hexdigest(path.read_bytes())
    folder = tmp_path / "scripts"
    folder.mkdir()

    def answered(seen: dict[Path, tuple[int, ...] | None]) -> object:
        noop.save(store, "acpbuild", noop.snapshot(path, digest, {}, [], [], seen, {}), {}, [])
        return noop.check(path, {})

    assert answered({folder: signature(folder)}) == ("acpbuild", [])
    assert answered({folder: None}) is None


# A free plugin provider that notes each time it is imported in the file STUDIO_IMPORTS names.
PLUGIN = """
import os

from acpbuild.provider import API_VERSION, Model, Outcome, Param, Provider, files

with open(os.environ["STUDIO_IMPORTS"], "a") as f:
    f.write("imported\\n")


class StudioProvider(Provider):
    name = "studio"
    version = "1"
    api_version = API_VERSION
    paid = False

    def catalogue(self):
        return {"upper": Model("upper", {"text": "upper-v1"}, {"prompt": Param("str", required=True)})}

    def generate(self, job, journal):
        files.replace_file(job.output, job.params["prompt"].upper())
        return Outcome(request_id="studio-1")
"""


def test_the_fast_path_checks_every_adapter_without_importing_one_that_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "local" sorts before "studio": the plugin is the second adapter the manifest lists
    (tmp_path / "studio_plugin.py").write_text(PLUGIN)
    (tmp_path / "config.toml").write_text('providers = ["studio_plugin:StudioProvider"]\n')
    imports = tmp_path / "imports.log"
    monkeypatch.setenv("ACPBUILD_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("STUDIO_IMPORTS", str(imports))
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    (tmp_path / "acpbuild.toml").write_text(
        '[steps.a]\nkind = "text"\nprompt = "local"\noutput = "a.txt"\n'
        '[steps.b]\nkind = "text"\nprovider = "studio"\nmodel = "upper"\nprompt = "plugin"\noutput = "b.txt"\n'
    )

    def run() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "acpbuild", "run"]
        return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)

    assert "2 ran" in run().stdout and (tmp_path / "out" / "b.txt").read_text() == "PLUGIN"
    imports.unlink()
    assert FAST in run().stdout
    assert not imports.exists()  # its file is untouched: its version is not asked for
    (tmp_path / "studio_plugin.py").unlink()  # the plugin is uninstalled
    gone = run()
    assert FAST not in gone.stdout and gone.returncode == 2
    assert "unknown provider 'studio'" in gone.stderr


def test_a_draft_run_leaves_no_answer_for_the_real_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a draft stands in for the paid step; the real run after it must still buy the real one
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(
        '[steps.line]\nkind = "text"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
        'prompt = "One line about a harbour."\nmax_tokens = 50\noutput = "line.txt"\n'
    )
    assert FAST not in run_out(recipe, capsys, "--draft")
    assert main(["run", str(recipe)]) != 0  # the full path: the real step needs its key
    said = capsys.readouterr()
    assert FAST not in said.out and "OPENROUTER_API_KEY" in said.out + said.err


def test_a_run_of_some_steps_leaves_no_answer_for_the_steps_it_left_out(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an input of a step left out of a run of targets changed: that run must not vouch for it
    (repo.parent / "scripts" / "a.md").write_text("Alpha, edited.")
    assert FAST not in run_out(repo, capsys, "cover")
    out = run_out(repo, capsys)
    assert FAST not in out and "1 ran" in out


GROUPED = """
[recipe]
name = "grouped"
budget_usd = 2.5

[steps.line]
kind = "text"
foreach = [{ id = "a", words = "first" }, { id = "b", words = "second" }]
prompt = "${item.words}"
output = "lines/${item.id}.txt"

[steps.one]
kind = "text"
prompt = "harbour"
output = "one.txt"

[steps.two]
kind = "text"
prompt = "lighthouse"
output = "two.txt"

[groups.either]
steps = ["one", "two"]
merge = "first_success"
output = "either.txt"

[steps.three]
kind = "text"
prompt = "quay"
output = "three.txt"

[steps.four]
kind = "text"
prompt = "tide"
output = "four.txt"

[groups.both]
steps = ["three", "four"]
merge = "collect_all"
"""


@pytest.mark.parametrize(
    "command",
    [["plan"], ["plan", "--json"], ["plan", "--detailed"], ["estimate", "--budget", "1.5"], ["check"], ["check", "--json"]],
)
def test_plan_and_check_of_an_unchanged_recipe_say_what_the_whole_path_says_without_loading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 40\n")
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    path = tmp_path / "acpbuild.toml"
    path.write_text(GROUPED)
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")
    assert main([*command, str(path)]) == 0
    whole = capsys.readouterr().out
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH")

    from acpbuild.engine import workflow

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the recipe was loaded")

    monkeypatch.setattr(workflow, "load_recipe", no_load)
    assert main([*command, str(path)]) == 0
    assert capsys.readouterr().out == whole
    assert "one chosen" in whole and "line[b]" in whole or "ok: 6 up to date" in whole
    # anything moved: the whole path answers, and says what moved
    monkeypatch.undo()
    monkeypatch.delenv("ACPBUILD_NO_FASTPATH", raising=False)
    path.write_text(GROUPED.replace('"quay"', '"quay side"'))
    code = main([*command, str(path)])
    said = capsys.readouterr().out
    assert said != whole
    assert code == (1 if command[0] == "check" else 0)


def test_the_manifest_is_compared_once_a_command_and_afresh_by_the_next(repo: Path) -> None:
    from acpbuild.engine import noop

    env = {**os.environ}
    assert noop.compare(repo, env) is not None and not noop.compare(repo, env).inputs  # type: ignore[union-attr]
    (repo.parent / "scripts" / "a.md").write_text("Alpha, edited.")
    with noop.remembering():
        moved = noop.compare(repo, env)
        assert moved is not None and moved.inputs == [str(repo.parent / "scripts" / "a.md")]
        (repo.parent / "scripts" / "b.md").write_text("Beta, edited.")
        assert noop.compare(repo, env) is moved  # within one command: the same answer
    after = noop.compare(repo, env)  # a library that runs again and again always looks afresh
    assert after is not None and sorted(after.inputs) == sorted(
        str(repo.parent / "scripts" / name) for name in ("a.md", "b.md")
    )
