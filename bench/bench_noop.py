"""No-op rebuild: a recipe of N local text steps, built once, then run again with nothing changed.

Like for like with plain doit: acpbuild's N steps are a ``foreach`` over N
input files (each step reads one file and writes one output), compared in the
same run with plain doit running N trivial tasks (one file_dep and one target
each) that are all up to date. Whole-process wall time,
median of several runs. Also shown: acpbuild's full check (the fast path turned
off with ACPBUILD_NO_FASTPATH=1), which loads the recipe and asks doit and the
ledger about every step.

    python bench/bench_noop.py            # 1,000 and 10,000 steps
    python bench/bench_noop.py 2000       # other sizes
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5

DODO = '''
N = {n}

def _touch(path):
    with open(path, "w") as f:
        f.write("done")

def task_t():
    for i in range(N):
        yield {{
            "name": str(i),
            "file_dep": [f"in/{{i}}.txt"],
            "targets": [f"out/{{i}}.txt"],
            "actions": [(_touch, [f"out/{{i}}.txt"])],
        }}
'''


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=check, capture_output=True, env=env)
    return time.perf_counter() - start


def median(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    return statistics.median(timed(argv, cwd, env) for _ in range(RUNS))


def make_recipe(folder: Path, n: int) -> None:
    (folder / "in").mkdir()
    for i in range(n):
        (folder / "in" / f"{i}.txt").write_text(f"note number {i}")
    (folder / "acpbuild.toml").write_text(
        '[recipe]\nname = "bench"\n\n[steps.note]\nkind = "text"\nforeach = "in/*.txt"\n'
        'prompt = "${item.text}"\noutput = "notes/${item.stem}.txt"\n'
    )


def make_dodo(folder: Path, n: int) -> None:
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    for i in range(n):
        (folder / "in" / f"{i}.txt").write_text(str(i))
    (folder / "dodo.py").write_text(DODO.format(n=n))


def bench(n: int) -> list[tuple[str, float]]:
    acpbuild = [sys.executable, "-m", "acpbuild", "run", "-j", "2"]
    doit = [sys.executable, "-m", "doit", "-n", "2", "-P", "thread"]
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "acpbuild", Path(tmp) / "doit"
        ours.mkdir()
        theirs.mkdir()
        make_recipe(ours, n)
        make_dodo(theirs, n)
        build_ours = timed(acpbuild, ours)
        # doit's thread runner can exit 120 after a big first build (a flush error at
        # interpreter exit) although every task ran; check the targets instead
        build_theirs = timed(doit, theirs, check=False)
        assert len(list((theirs / "out").iterdir())) == n, "plain doit did not build every target"
        slow_env = {**os.environ, "ACPBUILD_NO_FASTPATH": "1"}
        return [
            ("plain doit, first build", build_theirs),
            ("acpbuild, first build", build_ours),
            ("plain doit, no-op", median(doit, theirs)),
            ("acpbuild, no-op", median(acpbuild, ours)),
            ("acpbuild, no-op, full check", median(acpbuild, ours, slow_env)),
        ]


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    print(f"{'steps':>6}  {'what':<30} {'seconds':>8}  {'plain doit no-op / this':>24}")
    for n in sizes:
        rows = bench(n)
        baseline = dict(rows)["plain doit, no-op"]
        for label, seconds in rows:
            ratio = f"{baseline / seconds:.1f}x" if "no-op" in label else ""
            print(f"{n:>6}  {label:<30} {seconds:>8.3f}  {ratio:>24}")


if __name__ == "__main__":
    main()
