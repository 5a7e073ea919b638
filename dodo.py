"""The project's own doit tasks: `doit list` shows them beside a recipe's steps.

    doit test          the test suite
    doit lint          ruff and mypy
    doit bench         the benchmarks in bench/
    doit mutate        mutation testing of engine/, money/ and store/ (slow; not in CI)
    doit screenshot    docs/report.png, the README's picture of a report (needs Chromium)
    doit quickstart    the steps of recipes/quickstart.toml, as ordinary doit tasks
"""

from pathlib import Path

from acpbuild import recipe_tasks

# doit's own state beside acpbuild's, in SQLite, out of the way of git
Path(".acpbuild").mkdir(exist_ok=True)
DOIT_CONFIG = {
    "default_tasks": ["test"],
    "verbosity": 2,
    "dep_file": ".acpbuild/doit-project.sqlite3",
    "backend": "sqlite3",
    # `doit list` shows each recipe step (a sub-task) beside the project's own tasks
    "subtasks": True,
}


def task_test():
    """Run the test suite."""
    return {"actions": ["pytest -q"], "verbosity": 2}


def task_lint():
    """ruff and mypy over the package."""
    return {"actions": ["ruff check acpbuild tests", "mypy"], "verbosity": 2}


def task_bench():
    """Run every benchmark in bench/ and print its table."""
    for script in sorted(Path("bench").glob("bench_*.py")):
        yield {"name": script.stem, "actions": [f"python {script}"], "verbosity": 2}


def task_mutate():
    """Mutation testing (mutmut) of engine/, money/ and store/: lists the surviving mutants."""
    # smallest first; `doit mutate:money` runs one package
    for package in ("money", "store", "engine"):
        yield {"name": package, "actions": [f"python bench/mutate.py {package}"], "verbosity": 2}


def task_screenshot():
    """docs/report.png: the quickstart's report, photographed in headless Chromium."""
    return {"actions": ["python docs/screenshot.py"], "targets": ["docs/report.png"], "verbosity": 2}


def task_quickstart():
    """The quickstart recipe's steps, loaded into this plain doit run."""
    yield from recipe_tasks("recipes/quickstart.toml")
