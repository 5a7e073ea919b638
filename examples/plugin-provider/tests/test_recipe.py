"""The example recipe, built by acpbuild itself with the plugin against the emulator."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import acpbuild
import pytest
from acpbuild.provider.wire import sniff
from PIL import Image

from emulator import KEY, RunwayEmulator

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_recipe_builds_and_never_pays_twice(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    shutil.copy(ROOT / "recipe.toml", recipe)
    # The plugin named in the user's config, as if installed (pip would register its entry point).
    config = tmp_path / "config.toml"
    config.write_text('providers = ["acpbuild_runway.adapter:RunwayProvider"]\n', encoding="utf-8")
    with RunwayEmulator() as emu:
        env = {
            **os.environ,
            "ACPBUILD_CONFIG": str(config),
            "RUNWAYML_API_SECRET": KEY,
            "RUNWAYML_BASE_URL": emu.url,
            "ACPBUILD_POLL_INTERVAL_S": "0.01",
        }
        first = acpbuild.run(recipe, env=env)
        assert first.exit_code == 0, first
        # what Runway reported charging: 25 credits for the clip, 5 for the poster
        assert first.total_cost == pytest.approx(0.30)
        bodies = {body["model"]: body for body in emu.created_bodies()}
        assert bodies["gen4_turbo"]["duration"] == 5
        assert bodies["gen4_image"]["ratio"] == "720:1280"
        assert bodies["gen4_image"]["referenceImages"][0]["tag"] == "Boat"

        again = acpbuild.run(recipe, env=env)
        assert again.exit_code == 0, again
        assert again.total_cost == 0
        assert emu.created == 2  # the second run restored or skipped both paid steps

    out = tmp_path / "out"
    assert sniff(out / "clip.mp4") == "video"
    with Image.open(out / "poster.png") as poster:
        assert poster.size == (720, 1280)
