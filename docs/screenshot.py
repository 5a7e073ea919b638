"""Make docs/report.png, the README's picture of a report: the offline quickstart's, in headless Chromium.

    python docs/screenshot.py          # or: doit screenshot

Runs recipes/quickstart.toml (free, on the local provider) in a temporary copy,
writes its report with `acpbuild report`, and photographs the top of the page
at 1100 x 760 with Debian's Chromium (see tests/browser.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import browser

OUT = ROOT / "docs" / "report.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "recipes", work / "recipes", ignore=shutil.ignore_patterns(".acpbuild", "*.lock"))
        (work / ".git").mkdir()  # a checkout: recipes/ write to ../out, at its root
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "ACPBUILD_CONFIG": "/dev/null", "PYTHONPATH": str(ROOT)}
        for command in (["run", "recipes/quickstart.toml"], ["report", "recipes/quickstart.toml", "-o", "report"]):
            subprocess.run([sys.executable, "-m", "acpbuild", *command], cwd=work, env=env, check=True)
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1100, "height": 760})
            page.goto((work / "report" / "index.html").as_uri(), wait_until="load")
            page.wait_for_function("[...document.querySelectorAll('audio, video')].every(m => m.readyState >= 1)")
            page.evaluate("document.querySelector('#step-narration')?.scrollIntoView()")
            page.screenshot(path=str(OUT))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
