"""Two machines sharing a ledger and a store split the work: 64 paid steps of 1.0 s each.

A real PostgreSQL cluster (the ledger) and moto's S3 server (the store) are
started here, as the tests start them, with the OpenRouter emulator answering
each chat completion after 1.0 s. Each figure is the median of REPEATS runs on a
fresh database and bucket, all measured in this run:

- one machine, ``-j 16``, the shared ledger and store: the baseline;
- two machines (two clones, each with its own local store), ``-j 8`` each,
  started together: the time until both have finished, and how many steps each bought;
- the ideal: 64 steps / 16 at once x 1.0 s = 4.0 s.

The recipe raises the provider's concurrency to 16, so only ``-j`` limits.

    python bench/bench_team.py            # 3 repeats
    python bench/bench_team.py 5          # 5 repeats
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_parallel import DELAY_S, STEPS, SlowChat
from tests.emulators.openrouter import KEY
from tests.pg_server import cluster
from tests.s3_server import moto_server


def recipe(tag: str) -> str:
    body = ['[recipe]\nname = "team"\nconcurrency = { openrouter = 16 }\n']
    for i in range(STEPS):
        body.append(
            f'[steps.s{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\n'
            f'prompt = "Line {i} ({tag})"\nmax_tokens = 20\noutput = "s{i}.txt"\n'
        )
    return "\n".join(body)


def machine(root: Path, name: str, text: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "acpbuild.toml").write_text(text)
    return folder


def start(folder: Path, jobs: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "acpbuild", "run", "--yes", "--json", "-j", str(jobs)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait(run: subprocess.Popen[str]) -> int:
    out, err = run.communicate(timeout=600)
    if run.returncode != 0:
        sys.exit(f"a run failed:\n{out[-2000:]}\n{err[-2000:]}")
    ran: int = json.loads(out)["totals"]["ran"]
    return ran


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with cluster() as postgres, moto_server() as s3, SlowChat() as chat:
        base = {
            **os.environ,
            **s3.env,
            "PYTHONPATH": str(ROOT),
            "OPENROUTER_API_KEY": KEY,
            "ACPBUILD_OPENROUTER_URL": f"{chat.url}/api/v1",
            "ACPBUILD_CONFIG": os.devnull,
            "ACPBUILD_NO_FASTPATH": "1",
        }
        base.pop("ACPBUILD_STORE", None)
        one: list[float] = []
        two: list[float] = []
        splits: list[tuple[int, int]] = []
        paid: list[int] = []
        for n in range(repeats):
            for layout in ("one", "two"):
                env = {
                    **base,
                    "ACPBUILD_LEDGER": postgres.new_database(),
                    "ACPBUILD_REMOTE": f"s3://{s3.new_bucket()}/team",
                }
                text = recipe(f"{layout} {n}")
                root = Path(tempfile.mkdtemp(prefix="acpbuild-bench-"))
                before = chat.submissions
                try:
                    began = time.perf_counter()
                    if layout == "one":
                        wait(start(machine(root, "a", text), 16, env))
                        one.append(time.perf_counter() - began)
                    else:
                        runs = [start(machine(root, m, text), 8, env) for m in ("a", "b")]
                        splits.append((wait(runs[0]), wait(runs[1])))
                        two.append(time.perf_counter() - began)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
                paid.append(chat.submissions - before)
    ideal = STEPS / 16 * DELAY_S
    print(f"PostgreSQL {postgres.version}, moto S3 server; {STEPS} paid steps of {DELAY_S:.1f} s; median of {repeats}")
    print(f"{'layout':<34} {'wall s':>7} {'ideal s':>8} {'vs ideal':>9} {'vs one -j16':>12}")
    one_s, two_s = statistics.median(one), statistics.median(two)
    print(f"{'one machine, -j 16':<34} {one_s:7.2f} {ideal:8.2f} {ideal / one_s:9.0%} {1.0:12.2f}")
    print(f"{'two machines, -j 8 each, together':<34} {two_s:7.2f} {ideal:8.2f} {ideal / two_s:9.0%} {two_s / one_s:12.2f}")
    print("steps bought by A / B: " + ", ".join(f"{a}/{b}" for a, b in splits))
    print(f"provider calls per run: {sorted(set(paid))} (each run buys each of the {STEPS} steps once)")


if __name__ == "__main__":
    main()
