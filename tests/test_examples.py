"""Each example in examples/ run as a user would, in a copy of the folder so nothing lands in the repository."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acpbuild.media import probe

ROOT = Path(__file__).resolve().parent.parent
STEPS = {"script", "narration", "card", "clip", "final"}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A fresh copy of examples/, without anything a run in the repository left behind."""
    dest = tmp_path / "examples"
    shutil.copytree(
        ROOT / "examples",
        dest,
        ignore=shutil.ignore_patterns(".acpbuild", "out", "dist", "__pycache__"),
    )
    return dest


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd`` with this checkout of acpbuild importable, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_the_script_prints_progress_from_run_events_and_exits_with_the_runs_code(
    examples: Path,
) -> None:
    done = run([sys.executable, "run_with_events.py"], examples)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # start comes first, one line per step_done, finish after the last of them
    assert lines[0] == "start: 5 steps to check"
    finished = [m.groups() for m in map(re.compile(r"\[(\d)/5\] (\w+): (\w+),").match, lines) if m]
    assert [n for n, _, _ in finished] == ["1", "2", "3", "4", "5"]
    assert {step for _, step, _ in finished} == STEPS
    assert {status for _, _, status in finished} == {"ran"}
    assert lines.index("finish: 5 of 5 steps done") > max(
        lines.index(line) for line in lines if line.startswith("[5/5]")
    )
    assert "summary: 5 ran, 0 restored, 0 uptodate, 0 failed, 0 skipped; paid $0.0000" in lines

    out = examples / "out"
    assert {p.stem for p in out.iterdir()} == STEPS
    final = probe(out / "final.mp4")
    assert (final.video_streams, final.audio_streams) == (1, 1)
    assert final.duration_s is not None and final.duration_s >= 1.5

    again = run([sys.executable, "run_with_events.py", str(examples / "recipe.toml")], examples)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        "summary: 0 ran, 0 restored, 5 uptodate, 0 failed, 0 skipped; paid $0.0000" in again.stdout
    )


def test_the_script_exits_with_an_error_for_a_bad_recipe(examples: Path) -> None:
    recipe = examples / "recipe.toml"
    recipe.write_text(
        recipe.read_text(encoding="utf-8").replace('kind = "mux"', 'kind = "muxx"'),
        encoding="utf-8",
    )
    done = run([sys.executable, "run_with_events.py"], examples)
    assert done.returncode == 2
    assert "muxx" in done.stderr and not (examples / "out").exists()


@pytest.mark.slow
def test_the_dodo_builds_recipe_steps_and_its_own_tasks_and_then_nothing(examples: Path) -> None:
    def doit(*args: str) -> list[str]:
        done = run([sys.executable, "-m", "doit", *args], examples)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.splitlines()

    listed = {line.split()[0] for line in doit("list")}
    assert listed == {"media", "publish", "checksums"} | {f"media:{s}" for s in STEPS}

    # doit prints ".  NAME" for a task it runs and "-- NAME" for one that is up to date
    tasks = {"publish", "checksums"} | {f"media:{s}" for s in STEPS}
    first = doit()
    assert {line.removeprefix(".  ") for line in first if line.startswith(".  ")} == tasks, first
    second = doit()
    assert {line.removeprefix("-- ") for line in second if line.startswith("-- ")} == tasks, second
    assert not [line for line in second if line.startswith(".  ")], second

    out, dist = examples / "out", examples / "dist"
    assert (dist / "final.mp4").read_bytes() == (out / "final.mp4").read_bytes()
    sums = (dist / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert sums == [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(out.iterdir())
    ]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefiles_check_fails_until_the_outputs_match_the_recipe(examples: Path) -> None:
    def make(target: str) -> subprocess.CompletedProcess[str]:
        return run(["make", f"PYTHON={sys.executable}", target], examples)

    def check_fails() -> str:
        done = make("check-media")
        assert done.returncode != 0, done.stdout + done.stderr
        assert "not up to date: run `make media`" in done.stderr
        return done.stderr

    def succeeds(target: str) -> str:
        done = make(target)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "script: run (never built)" in check_fails()
    succeeds("media")
    assert "all 5 steps up to date" in succeeds("check-media")

    recipe = examples / "recipe.toml"
    text = recipe.read_text(encoding="utf-8")
    assert "in a sentence" in text
    recipe.write_text(text.replace("in a sentence", "in one line"), encoding="utf-8")
    stale = check_fails()
    assert "script: run (prompt changed)" in stale and "card:" not in stale

    succeeds("media")
    succeeds("check-media")
    succeeds("clean")  # outputs gone; the store can put them back, but until then they are stale
    assert "final: restorable" in check_fails()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefiles_check_fails_for_an_invalid_recipe(examples: Path) -> None:
    recipe = examples / "recipe.toml"
    recipe.write_text(recipe.read_text(encoding="utf-8") + 'bogus = "x"\n', encoding="utf-8")
    done = run(["make", f"PYTHON={sys.executable}", "check-media"], examples)
    assert done.returncode != 0
    assert "unknown parameter 'bogus'" in done.stderr
    assert "plan --json" not in done.stdout  # make echoes each command: validate stopped it first


def test_the_ci_workflow_names_its_secrets_and_runs_targets_the_makefile_has() -> None:
    import yaml

    ci = ROOT / "examples" / "ci"
    text = (ci / ".github" / "workflows" / "media.yml").read_text()
    workflow = yaml.safe_load(text)
    makefile = (ci / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    assert {"doctor", "check", "media", "media-shard"} <= targets
    commands = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    made = [t for c in commands for t in re.findall(r"make -f examples/ci/Makefile ([a-z -]+)", c)]
    assert made and all(set(m.split()) <= targets for m in made)
    # credentials come from the repository's secrets, by name; none is written here
    for name in ("ACPBUILD_LEDGER", "AWS_SECRET_ACCESS_KEY", "FAL_KEY", "OPENROUTER_API_KEY"):
        assert f"${{{{ secrets.{name} }}}}" in text
    # a ledger URL appears only as the placeholder of a comment, never with a password
    assert not re.search(r"postgres(ql)?://[^$\s:]*:(?!PASSWORD@)[^$\s]*@", text)
    # pull requests only check; main builds, the matrix by shard
    assert "$(ACPBUILD) check $(RECIPE)" in makefile and "--shard $(SHARD)" in makefile
    assert workflow["jobs"]["items"]["strategy"]["matrix"]["shard"] == ["1/4", "2/4", "3/4", "4/4"]
