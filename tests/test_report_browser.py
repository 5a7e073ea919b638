"""The report in a real browser: headless Chromium opens it over file://, as a reviewer would.

Every picture must have loaded, every audio and video element must have its
metadata, and the console must stay free of errors. A screenshot of the page is
saved beside the report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def built_report(tmp_path: Path, recipe: str, *args: str) -> Path:
    """Run a recipe of the repository's offline, then write its report; the report's index.html."""
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes", ignore=shutil.ignore_patterns(".acpbuild", "*.lock"))
    (tmp_path / ".git").mkdir(exist_ok=True)  # a checkout: recipes/ write to ../out, at its root
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ACPBUILD_CONFIG": "/dev/null", "PYTHONPATH": str(ROOT)}
    for command in (["run", f"recipes/{recipe}"], ["report", f"recipes/{recipe}", "-o", "report", *args]):
        done = subprocess.run(
            [sys.executable, "-m", "acpbuild", *command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return tmp_path / "report" / "index.html"


def review(chromium: Any, index: Path, screenshot: Path) -> dict[str, Any]:
    """Open ``index`` over file://, wait for its media, and say what loaded; saves a screenshot."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    # a player that has its metadata cancels the rest of its file (net::ERR_ABORTED): not a failure
    page.on(
        "requestfailed",
        lambda request: None
        if request.failure == "net::ERR_ABORTED" and request.resource_type == "media"
        else errors.append(f"failed to load {request.url}: {request.failure}"),
    )
    page.goto(index.as_uri(), wait_until="load")
    # media load their metadata on their own time (preload="metadata"): wait for all of it
    page.wait_for_function(
        "[...document.querySelectorAll('audio, video')].every(m => m.readyState >= 1 || m.error)",
        timeout=30_000,
    )
    found: dict[str, Any] = page.evaluate(
        """() => ({
            images: [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
            media: [...document.querySelectorAll('audio, video')].map(m => ({
                tag: m.tagName.toLowerCase(), src: m.currentSrc, ready: m.readyState,
                error: m.error ? m.error.code : null, duration: m.duration})),
            scripts: document.querySelectorAll('script').length,
        })"""
    )
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    found["errors"] = errors
    return found


def test_the_quickstart_report_loads_every_picture_and_player(chromium: Any, tmp_path: Path) -> None:
    index = built_report(tmp_path, "quickstart.toml")
    found = review(chromium, index, tmp_path / "report.png")
    assert found["errors"] == []
    assert found["images"], "the quickstart's cover and the clips' posters are pictures"
    for image in found["images"]:
        assert image["width"] > 0, f"{image['src']} did not load"
    tags = sorted(m["tag"] for m in found["media"])
    assert "audio" in tags and "video" in tags, tags
    for media in found["media"]:
        assert media["error"] is None and media["ready"] >= 1, media
        assert media["duration"] > 0, media
    assert found["scripts"] == 0  # a static page: nothing runs
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_a_catalog_report_with_history_loads_in_the_browser(chromium: Any, tmp_path: Path) -> None:
    index = built_report(tmp_path, "catalog.toml", "--history")
    found = review(chromium, index, tmp_path / "catalog.png")
    assert found["errors"] == []
    assert all(image["width"] > 0 for image in found["images"]), found["images"]
    assert all(m["error"] is None and m["ready"] >= 1 for m in found["media"]), found["media"]
