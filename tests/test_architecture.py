"""The architecture as code: layers that import only downwards, and a library that never prints."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "acpbuild"


def test_import_contracts_hold() -> None:
    # the contracts in pyproject.toml: layers, no loops, providers never reach the engine...
    exe = shutil.which("lint-imports")
    assert exe is not None, "lint-imports comes with the dev extras: pip install -e '.[dev]'"
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _writes_to_a_terminal(path: Path, root: Path = ROOT) -> list[str]:
    """Each print() call and sys.stdout/sys.stderr write in ``path``, as 'file:line'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        printing = isinstance(func, ast.Name) and func.id == "print"
        writing = (
            isinstance(func, ast.Attribute)
            and func.attr == "write"
            and isinstance(func.value, ast.Attribute)
            and func.value.attr in ("stdout", "stderr")
        )
        if printing or writing:
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_only_the_cli_prints() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if PACKAGE / "cli" not in p.parents]
    assert len(outside) > 40  # the walk found the library
    assert [w for p in outside for w in _writes_to_a_terminal(p)] == []


@pytest.mark.parametrize(
    "source",
    [
        'print("hello")',  # a plain print
        "import sys\nsys.stderr.write('x')",  # a write to a stream
    ],
)
def test_the_print_finder_finds_prints(tmp_path: Path, source: str) -> None:
    module = tmp_path / "probe.py"
    module.write_text(source, encoding="utf-8")
    assert _writes_to_a_terminal(module, tmp_path) == ["probe.py:" + str(source.count("\n") + 1)]


def test_every_provider_package_has_the_same_shape() -> None:
    # one subpackage per vendor: its adapter class exported, its catalogue in models.py
    import importlib

    from acpbuild import providers

    for name in providers.BUILT_IN:
        package = importlib.import_module(f"acpbuild.providers.{name}")
        cls = providers.provider_class(name)
        assert getattr(package, cls.__name__) is cls, name
        models = importlib.import_module(f"acpbuild.providers.{name}.models")
        assert cls({}).catalogue() is models.CATALOGUE, name
        assert cls.__module__.startswith(f"acpbuild.providers.{name}."), name
