"""CLI start-up: `acpbuild --version` and `acpbuild plan` on a small recipe.

Baseline, measured in the same run: a bare `python -c pass`, so the table shows
what acpbuild adds on top of the interpreter on this (noisy) machine. Medians of
several runs; the ratio is the number to compare across machines.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 15


def median_seconds(argv: list[str], cwd: Path) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recipe = work / "acpbuild.toml"
        recipe.write_text((ROOT / "recipes" / "quickstart.toml").read_text().replace('"../out/quickstart"', '"out"'))
        rows = [
            ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
            ("acpbuild --version", [sys.executable, "-m", "acpbuild", "--version"]),
            ("acpbuild plan (5 steps)", [sys.executable, "-m", "acpbuild", "plan"]),
        ]
        results = [(label, median_seconds(argv, work)) for label, argv in rows]
    base = results[0][1]
    print(f"{'command':<28} {'median s':>9} {'x baseline':>11}")
    for label, seconds in results:
        print(f"{label:<28} {seconds:>9.3f} {seconds / base:>11.1f}")


if __name__ == "__main__":
    main()
