"""The public surface: what `import acpbuild` offers, the console script, and the quickstart."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import acpbuild
from acpbuild.media import probe

ROOT = Path(__file__).resolve().parent.parent


def test_exported_members() -> None:
    # a short, curated surface: adding to it is a decision, so this list is spelled out
    assert sorted(acpbuild.__all__) == sorted(
        [
            "AcpbuildError",
            "BudgetExceeded",
            "ProviderError",
            "Recipe",
            "RecipeError",
            "RunResult",
            "StoreError",
            "__version__",
            "load_recipe",
            "recipe_tasks",
            "run",
        ]
    )
    for name in acpbuild.__all__:
        assert getattr(acpbuild, name) is not None
    with pytest.raises(AttributeError):
        acpbuild.nothing_here  # noqa: B018


def test_version_is_quick_to_ask_for() -> None:
    # --version must not import doit, pydantic, rich or any provider SDK
    code = (
        "import sys; from acpbuild.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('doit', 'pydantic', 'rich', 'fal_client', 'openai', 'google.genai', 'elevenlabs') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"acpbuild {acpbuild.__version__}"


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "acpbuild", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and acpbuild.__version__ in done.stdout


def test_load_recipe_returns_the_validated_model() -> None:
    recipe = acpbuild.load_recipe(ROOT / "recipes" / "quickstart.toml")
    assert isinstance(recipe, acpbuild.Recipe)
    assert list(recipe.steps) == ["script", "narration", "cover", "clip", "final"]
    assert recipe.steps["final"].deps == ("clip", "narration")
    assert recipe.steps["cover"].params["seed"] == 7


def test_readme_command_one_makes_a_playable_video(tmp_path: Path) -> None:
    # `acpbuild run recipes/quickstart.toml` on a copy of the repository's recipes, no keys
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes", ignore=shutil.ignore_patterns(".acpbuild"))
    (tmp_path / ".git").mkdir(exist_ok=True)  # a checkout: recipes/ write to ../out, at its root
    done = subprocess.run(
        [sys.executable, "-m", "acpbuild", "run", "recipes/quickstart.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 ran" in done.stdout
    final = probe(tmp_path / "out" / "quickstart" / "final.mp4")
    assert (final.video_streams, final.audio_streams) == (1, 1)
    assert final.duration_s is not None and final.duration_s >= 3.9
