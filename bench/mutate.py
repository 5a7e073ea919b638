"""Mutation testing of acpbuild's engine, money and store with mutmut: `doit mutate`.

    python bench/mutate.py [money] [store] [engine]     # all three, smallest first, by default
    python bench/mutate.py engine --resume              # bring the last run up to date and finish it
    python bench/mutate.py engine --again               # that, then test every survivor and timeout again
    python bench/mutate.py engine --report-only         # the survivors of the last (or a running) run

Each package is mutated in a scratch copy of the project, `.acpbuild/mutate/<package>/`, so its
mutmut configuration (which files to mutate, which tests to run) is its own and the worktree
is never touched. mutmut 3 puts every mutant of a function behind one trampoline, runs the
package's tests once to record which tests call which function, then forks one child per
mutant that runs only those tests, with `-x`, under a wall-clock limit of
(the tests' recorded time + 5 s) x 3. Tests run as `python -m acpbuild` subprocesses inherit
the mutant: the copy's `tests/..` is the mutated tree and MUTANT_UNDER_TEST is in the
environment.

Left out, because their tests need servers (PostgreSQL, an S3 server): `store/postgres.py`,
`store/s3.py`, and every test whose name says `postgresql` or `s3`. Left out for time:
`tests/test_claims.py` (overlapping and killed runs as subprocesses, about 4 minutes, which
every surviving store mutant would pay again).

The survivors, with file, line, the mutation and the test files that were run, are written to
`.acpbuild/mutate/<package>/survivors.md` and printed; `bench/mutation-survivors.md` holds the
last full run's list with each survivor judged.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".acpbuild" / "mutate"

DESELECT = [
    # the tests of the backends that need servers (see the docstring)
    "not postgresql",
    "not s3",
    # these run acpbuild in a subprocess whose working directory is not the copy, where the
    # mutated package could not find mutmut's configuration (see _SITE, which lets it now; to
    # select them again changes mutmut's configuration, and with it every result so far)
    "not test_a_new_adapter_version_is_seen",
    "not test_the_projects_dodo_lists_and_builds_recipe_steps_as_doit_tasks",
    "not test_version_is_quick_to_ask_for",
    "not test_python_dash_m_runs_the_cli",
    "not test_readme_command_one_makes_a_playable_video",
]

#: tests that cannot pass under mutmut's trampolines, left out through PYTEST_ADDOPTS (not the
#: configuration, whose change would void every result so far)
UNDER_MUTMUT = [
    # recipe_tasks names its tasks after the function calling it, which a trampoline stands in for
    "tests/test_doit_tasks.py::test_recipe_tasks_are_named_for_the_task_function_that_yields_them",
]

#: package -> (files mutmut mutates, files it must leave alone, the test files that may kill them)
PACKAGES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "money": (
        ["acpbuild/money/*"],
        [],
        ["tests/test_money.py", "tests/test_lockfile.py"],
    ),
    "store": (
        ["acpbuild/store/*"],
        ["acpbuild/store/postgres.py", "acpbuild/store/s3.py"],
        [
            "tests/test_store.py",
            "tests/test_store_contract.py",
            "tests/test_ledger.py",
            "tests/test_layout.py",
            "tests/test_confinement.py",
            # the shared ledger's and remote's settings, which store/layout.py reads
            "tests/test_config.py",
        ],
    ),
    "engine": (
        ["acpbuild/engine/*"],
        [],
        [
            "tests/test_one_plan.py",
            "tests/test_noop.py",
            "tests/test_groups.py",
            "tests/test_doit_tasks.py",
            "tests/test_lockfile.py",
            "tests/test_incremental.py",
            "tests/test_foreach.py",
            "tests/test_resume.py",
            "tests/test_api.py",
            "tests/test_shard.py",
            "tests/test_waiting.py",
        ],
    ),
}


PROJECT_FILES = ["dodo.py", "recipes", "examples", "docs", "bench", ".ci", "README.md"]


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _sync(source: Path, copy: Path) -> None:
    """Make ``copy`` hold what ``source`` holds, writing only the files that differ (so their
    modification time tells mutmut which files changed since it mutated them)."""
    wanted = set()
    for path in source.rglob("*"):
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        rel = path.relative_to(source)
        wanted.add(rel)
        target = copy / rel
        if not target.is_file() or target.read_bytes() != path.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for path in sorted(copy.rglob("*"), reverse=True):
        if path.is_file() and "__pycache__" not in path.parts and path.relative_to(copy) not in wanted:
            path.unlink()


def prepare(package: str, resume: bool = False) -> Path:
    """A copy of the package, its tests and pyproject.toml with this package's [tool.mutmut].

    With `resume`, an earlier copy is brought up to date instead of made afresh: mutmut then keeps
    the result of every mutant whose function is unchanged, tests again those of changed
    functions, and goes on with those it had not reached.
    """
    mutate, leave, tests = PACKAGES[package]
    work = WORK / package
    if work.exists() and not (resume and (work / "mutants").is_dir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    # the package, its tests, and what the tests read besides: dodo.py, recipes, examples, README
    for name in ["acpbuild", "tests", *PROJECT_FILES]:
        if (ROOT / name).is_dir():
            _sync(ROOT / name, work / name)
        elif (ROOT / name).is_file() and (
            not (work / name).is_file() or (work / name).read_bytes() != (ROOT / name).read_bytes()
        ):
            shutil.copyfile(ROOT / name, work / name)
    # beside the mutated package in mutmut's tree, where every Python process the tests start
    # with that tree on its path runs it first
    for folder in (work, work / "mutants"):
        if folder.is_dir():
            (folder / "sitecustomize.py").write_text(_SITE)
    config = f"""
[tool.mutmut]
source_paths = ["acpbuild"]
also_copy = {_toml_list([*PROJECT_FILES, "sitecustomize.py"])}
only_mutate = {_toml_list(mutate)}
do_not_mutate = {_toml_list(leave)}
pytest_add_cli_args_test_selection = {_toml_list(tests)}
pytest_add_cli_args = {_toml_list(["-p", "no:cacheprovider", "-k", " and ".join(DESELECT)])}
# a mutant's wall-clock limit is (its tests' recorded time + constant) x multiplier
timeout_multiplier = 3.0
timeout_constant = 5.0
use_git_change_detection = false
"""
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + config)
    return work


#: run at the start of every Python process the tests start (as ``sitecustomize``). A test that runs `python -m acpbuild`
#: in a folder of its own passes the mutant on (MUTANT_UNDER_TEST is in its environment), and
#: mutmut's trampolines then read mutmut's configuration, which mutmut looks for in the current
#: folder only: it is loaded here from the package's copy, and the folder left as it was.
_SITE = """
import os

if os.environ.get("MUTANT_UNDER_TEST") and os.environ.get("ACPBUILD_MUTMUT_HOME"):
    try:
        import mutmut.configuration

        here = os.getcwd()
        os.chdir(os.environ["ACPBUILD_MUTMUT_HOME"])
        try:
            mutmut.configuration.config()
        finally:
            os.chdir(here)
    except Exception:
        pass
"""


def run(package: str, children: int, resume: bool = False, again: bool = False) -> float:
    """Run mutmut on one package; the seconds it took."""
    work = prepare(package, resume)
    env = dict(os.environ)
    # subprocesses the tests start import the mutated tree, never the worktree or /work/main,
    # and find mutmut's configuration from any folder (see _SITE)
    env["PYTHONPATH"] = str(work / "mutants")
    env["ACPBUILD_MUTMUT_HOME"] = str(work)
    env["PYTEST_ADDOPTS"] = " ".join(f"--deselect {test}" for test in UNDER_MUTMUT)
    started = time.monotonic()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)]
    done = subprocess.run(command, cwd=work, env=env, check=False)
    if done.returncode and not (work / "mutants" / "mutmut-stats.json").exists():
        # mutmut 3.8.1's first pytest call after generating mutants ends in a usage error (exit 4)
        # with no message; the same command on the generated tree then runs
        subprocess.run(command, cwd=work, env=env, check=False)
    if again:
        # a result stands until its function changes: test every survivor again, since tests
        # added since may kill it now, and every timeout, which a loaded machine can cause
        retest = ("survived", "no tests", "timeout", "suspicious")
        names = [r["name"] for r in _results(package) if r["status"] in retest]
        for start in range(0, len(names), 200):
            subprocess.run([*command, *names[start : start + 200]], cwd=work, env=env, check=False)
    return time.monotonic() - started


# what the report script, run inside a package's copy, prints: one JSON object per mutant
_COLLECT = r"""
import json
from mutmut.__main__ import walk_mutatable_files
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import load_stats, status_by_exit_code
from mutmut.state import state
from mutmut.utils.format_utils import mangled_name_from_mutant_name
load_stats()
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        row = {"name": name, "path": str(path), "status": status}
        if status not in ("killed", "caught by type check"):
            row["diff"] = get_diff_for_mutant(name, path=path)
            row["tests"] = sorted(state().tests_by_mangled_function_name.get(mangled_name_from_mutant_name(name), ()))
        print(json.dumps(row))
"""


def _line(path: Path, diff: str, name: str) -> tuple[int, str, str]:
    """The mutated line in the original file: its number, what it said, what the mutant says.

    mutmut's diff is of the mutated function alone, numbered from its ``def``; the function is
    found by the mutant's name (``x_func__mutmut_3``, ``xǁClassǁmethod__mutmut_3``).
    """
    lines = diff.splitlines()
    removed = [line[1:] for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
    before = removed[0].strip() if removed else ""
    after = added[0].strip() if added else ""
    hunk = next((i for i, line in enumerate(lines) if line.startswith("@@")), None)
    if hunk is None:
        return 0, before, after
    first = int(lines[hunk].split()[1].lstrip("-").split(",")[0])
    offset = next(
        (i for i, line in enumerate(lines[hunk + 1 :]) if line.startswith("-") and not line.startswith("---")), 0
    )
    mangled = name.rpartition(".")[2].rpartition("__mutmut_")[0]
    parts = [p for p in mangled.split("ǁ") if p] if mangled.startswith("xǁ") else []
    function = parts[-1] if parts else mangled.removeprefix("x_")
    owner = parts[1] if len(parts) == 3 else None
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and owner is not None and node.name != owner:
            continue
        scope = node.body if isinstance(node, (ast.Module, ast.ClassDef)) else []
        for child in scope:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == function:
                if owner is None and isinstance(node, ast.ClassDef):
                    continue
                top = min([d.lineno for d in child.decorator_list] + [child.lineno])
                guess = top + first - 1 + offset
                # the diff counts from the function's text, which may begin with comments above it
                source = path.read_text().splitlines()
                near = [n for n in range(guess - 3, guess + 4) if 0 < n <= len(source)]
                return min(
                    (n for n in near if source[n - 1].strip() == before), key=lambda n: abs(n - guess), default=guess
                ), before, after
    return 0, before, after


def _results(package: str) -> list[dict[str, object]]:
    """Every mutant of the package's last run: name, path, status (and diff and tests where it lived)."""
    found = subprocess.run(
        [sys.executable, "-c", _COLLECT], cwd=WORK / package, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [json.loads(line) for line in found if line.startswith("{")]


def report(package: str, seconds: float | None) -> str:
    """Counts and the survivors of one package's last run, as Markdown."""
    work = WORK / package
    rows: list[dict[str, Any]] = _results(package)  # type: ignore[assignment]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    took = f", {seconds / 60:.1f} min" if seconds is not None else ""
    out = [f"## acpbuild/{package}/ ({len(rows)} mutants{took})", ""]
    out.append(", ".join(f"{status}: {n}" for status, n in sorted(counts.items())))
    out.append("")
    out.append("| mutant | file:line | original → mutant | tests run |")
    out.append("|---|---|---|---|")
    for row in rows:
        # a timeout counts as caught; "not checked" is what an interrupted run did not reach
        if "diff" not in row or row["status"] in ("timeout", "not checked"):
            continue
        path = work / row["path"].removeprefix("mutants/")
        line, before, after = _line(path, row["diff"], row["name"])
        files = sorted({t.split("::")[0].removeprefix("mutants/") for t in row["tests"]}) or ["(none cover it)"]
        where = f"{row['path'].removeprefix('mutants/')}:{line}"
        name = row["name"].rpartition(".")[2]
        change = f"`{before}` → `{after}`".replace("|", "\\|")
        out.append(f"| {name} ({row['status']}) | {where} | {change} | {', '.join(files)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    packages = [a for a in argv if not a.startswith("-")] or list(PACKAGES)
    report_only = "--report-only" in argv
    again = "--again" in argv
    resume = "--resume" in argv or again
    for package in packages:
        seconds = None if report_only else run(package, children=2, resume=resume, again=again)
        text = report(package, seconds)
        (WORK / package / "survivors.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
