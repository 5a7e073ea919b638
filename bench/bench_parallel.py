"""Parallel efficiency: 64 independent paid steps against a loopback emulator that answers after 1.0 s.

At -j 1, 4, 16 and 64, wall time is compared with the ideal ceil(64 / j) seconds
against the same emulator in the same run. The provider's concurrency limit is
raised to 64 in the recipe so that -j alone decides. One warm-up run of a single
step comes first and is reported on its own: it pays the one-off cost of
importing the openai SDK (about 0.4 s), which every process pays once.

    python bench/bench_parallel.py            # -j 1 4 16 64
    python bench/bench_parallel.py 16 64      # only these
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import acpbuild
from tests.emulators import Request, Response
from tests.emulators.openrouter import KEY, OpenRouterEmulator

STEPS = 64
DELAY_S = 1.0


class SlowChat(OpenRouterEmulator):
    def _chat(self, request: Request, match: object) -> Response:
        time.sleep(DELAY_S)
        return super()._chat(request, match)  # type: ignore[arg-type]


def recipe(folder: Path, steps: int = STEPS) -> Path:
    path = folder / "parallel.toml"
    body = ['[recipe]\nname = "parallel"\nconcurrency = { openrouter = 64 }\n']
    for i in range(steps):
        body.append(
            f'[steps.s{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "openai/gpt-4o-mini"\n'
            f'prompt = "Line {i}"\nmax_tokens = 20\noutput = "s{i}.txt"\n'
        )
    path.write_text("\n".join(body))
    return path


def main() -> None:
    jobs = [int(a) for a in sys.argv[1:]] or [1, 4, 16, 64]
    print(f"{'-j':>4} {'wall s':>8} {'ideal s':>8} {'efficiency':>11} {'calls':>6}")
    with SlowChat() as chat:
        env = {"OPENROUTER_API_KEY": KEY, "ACPBUILD_OPENROUTER_URL": f"{chat.url}/api/v1"}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            assert acpbuild.run(recipe(Path(tmp), steps=1), env=env).success
            print(f"warm-up, 1 step: {time.perf_counter() - start:.2f} s (ideal {DELAY_S:.2f} s; SDK import included)")
        for j in jobs:
            with tempfile.TemporaryDirectory() as tmp:
                before = chat.submissions
                start = time.perf_counter()
                result = acpbuild.run(recipe(Path(tmp)), jobs=j, env=env)
                wall = time.perf_counter() - start
                assert result.success, result.to_dict()
                ideal = math.ceil(STEPS / j) * DELAY_S
                calls = chat.submissions - before
                print(f"{j:>4} {wall:>8.2f} {ideal:>8.2f} {ideal / wall:>10.0%} {calls:>6}")


if __name__ == "__main__":
    main()
