"""The worked plugin example, examples/plugin-provider, installed by pip into a new virtual
environment as a user installs it, then found through its entry point and used by a recipe whose
Runway steps go through the official runwayml client to a loopback emulator of Runway's API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-provider"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with the example installed in it, and acpbuild and the SDKs this one has."""
    where = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    python = where / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    # what this environment has installed (acpbuild, runwayml, pytest…) is seen from the new one,
    # so pip installs the example alone (building it with the setuptools it asks for)
    shared = dict.fromkeys([str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "parent-env.pth").write_text("\n".join(shared) + "\n")
    # from a copy, as pip's build leaves build/ and *.egg-info beside the sources
    source = where / "acpbuild-runway"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*"))
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", str(source)]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=600, cwd=where, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield python


def acpbuild(python: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "acpbuild", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_installed_example_is_found_by_its_entry_point_and_builds_a_recipe(venv: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLE / "tests"))
    try:
        from emulator import KEY, RunwayEmulator  # the example's own emulator of Runway's API
    finally:
        sys.path.remove(str(EXAMPLE / "tests"))
    (tmp_path / ".git").mkdir()
    (tmp_path / "recipe.toml").write_text((EXAMPLE / "recipe.toml").read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"ACPBUILD_CONFIG": os.devnull, "ACPBUILD_STORE": str(tmp_path / ".acpbuild")})

    models = json.loads(acpbuild(venv, "models", "--provider", "runway", "--json", cwd=tmp_path, env=env).stdout)
    assert {m["model"] for m in models} >= {"gen4-turbo", "gen4-image"}
    assert {m["origin"] for m in models} == {"plugin acpbuild-runway 0.1.0"}
    doctor = acpbuild(venv, "doctor", cwd=tmp_path, env=env)
    assert "plugin runway" in doctor.stdout and "acpbuild-runway 0.1.0" in doctor.stdout

    estimate = json.loads(acpbuild(venv, "estimate", "recipe.toml", "--json", cwd=tmp_path, env=env).stdout)
    assert estimate["totals"]["estimated"] == pytest.approx(0.30)  # 25 + 5 credits at $0.01, the plugin's prices

    with RunwayEmulator() as emu:
        env.update({"RUNWAYML_API_SECRET": KEY, "RUNWAYML_BASE_URL": emu.url, "ACPBUILD_POLL_INTERVAL_S": "0.01"})
        first = acpbuild(venv, "run", "recipe.toml", "--yes", "--json", cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert emu.created == 2
        second = acpbuild(venv, "run", "recipe.toml", "--yes", "--json", cwd=tmp_path, env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert emu.created == 2  # nothing paid twice
    assert (tmp_path / "out" / "clip.mp4").stat().st_size > 0
    costs = json.loads(acpbuild(venv, "costs", "--json", cwd=tmp_path, env=env).stdout)
    assert costs["totals"]["cost"] == pytest.approx(0.30)


def test_the_installed_example_passes_its_own_tests_and_the_shipped_contract_suite(venv: Path, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "tests"],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    cases = list(ET.parse(report).getroot().iter("testcase"))
    contract = [c for c in cases if c.get("classname", "").endswith("TestRunwayContract")]
    assert len(contract) == 8 and len(cases) > 8
    assert not [c for c in cases if c.find("skipped") is not None or c.find("failure") is not None]
